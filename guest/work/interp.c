/* A small stack-machine bytecode interpreter (switch dispatch) running an
 * iterative Fibonacci-mod and a nested-loop checksum program; results are
 * checked against the same computations written in C. */
#include "work.h"

enum { PUSH, LOAD, STORE, ADD, SUB, MUL, AND, LT, JZ, JMP, DUP, DROP, HALT, XOR, SHR };

struct insn { uint8_t op; i32 arg; };

static u64 run(const struct insn *prog, u64 *vars)
{
	u64 stack[64];
	int sp = 0, pc = 0;
	for (;;) {
		const struct insn in = prog[pc++];
		switch (in.op) {
		case PUSH: stack[sp++] = (u64)(i64)in.arg; break;
		case LOAD: stack[sp++] = vars[in.arg]; break;
		case STORE: vars[in.arg] = stack[--sp]; break;
		case ADD: sp--; stack[sp - 1] += stack[sp]; break;
		case SUB: sp--; stack[sp - 1] -= stack[sp]; break;
		case MUL: sp--; stack[sp - 1] *= stack[sp]; break;
		case AND: sp--; stack[sp - 1] &= stack[sp]; break;
		case XOR: sp--; stack[sp - 1] ^= stack[sp]; break;
		case SHR: sp--; stack[sp - 1] >>= stack[sp]; break;
		case LT: sp--; stack[sp - 1] = stack[sp - 1] < stack[sp]; break;
		case JZ: if (!stack[--sp]) pc = in.arg; break;
		case JMP: pc = in.arg; break;
		case DUP: stack[sp] = stack[sp - 1]; sp++; break;
		case DROP: sp--; break;
		case HALT: return sp ? stack[sp - 1] : 0;
		}
	}
}

/* v0 = a, v1 = b, v2 = i, v3 = n: for (i = 0; i < n; i++) { t = a + b; a = b; b = t & 0xffffffff } */
static const struct insn fib[] = {
	{PUSH, 0}, {STORE, 0}, {PUSH, 1}, {STORE, 1}, {PUSH, 0}, {STORE, 2},
	/* 6 */ {LOAD, 2}, {LOAD, 3}, {LT, 0}, {JZ, 24},
	{LOAD, 0}, {LOAD, 1}, {ADD, 0}, {LOAD, 1}, {STORE, 0}, {PUSH, -1}, {PUSH, 32}, {SHR, 0}, {AND, 0}, {STORE, 1},
	{LOAD, 2}, {PUSH, 1}, {ADD, 0}, {STORE, 2},
	/* 24? fix below */ {JMP, 6}, {LOAD, 1}, {HALT, 0},
};

/* v0 = acc, v2 = i, v3 = n: acc = (acc * 31) ^ i */
static const struct insn hashp[] = {
	{PUSH, 7}, {STORE, 0}, {PUSH, 0}, {STORE, 2},
	/* 4 */ {LOAD, 2}, {LOAD, 3}, {LT, 0}, {JZ, 17},
	{LOAD, 0}, {PUSH, 31}, {MUL, 0}, {LOAD, 2}, {XOR, 0}, {STORE, 0},
	{LOAD, 2}, {PUSH, 1}, {ADD, 0}, /* 17 is STORE 2 below: jump targets patched */
	{STORE, 2}, {JMP, 4}, {LOAD, 0}, {HALT, 0},
};

int main(void)
{
	static struct insn f[sizeof(fib) / sizeof(fib[0])], h[sizeof(hashp) / sizeof(hashp[0])];
	rt_memcpy(f, fib, sizeof(fib));
	rt_memcpy(h, hashp, sizeof(hashp));
	f[9].arg = 25;  /* loop exit -> LOAD 1 */
	h[7].arg = 19;  /* loop exit -> LOAD 0 */
	u64 vars[4] = {0, 0, 0, 2000000};
	u64 r1 = run(f, vars);
	u64 a = 0, b = 1;
	for (u64 i = 0; i < 2000000; i++) {
		u64 t = a + b;
		a = b;
		b = t & 0xffffffff;
	}
	CHECK_EQ(r1, b);
	u64 vars2[4] = {0, 0, 0, 3000000};
	u64 r2 = run(h, vars2);
	u64 acc = 7;
	for (u64 i = 0; i < 3000000; i++)
		acc = (acc * 31) ^ i;
	CHECK_EQ(r2, acc);
	return work_done("interp", r1 ^ r2);
}
