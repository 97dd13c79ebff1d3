/* A tiny multi-hart JIT (bench/trace (b)): each round hart 0 generates a
 * function (a loop summing i*K_r for i < N_r) into one of two code buffers,
 * fence rw,rw, publishes the round; every other hart executes fence.i, calls
 * it and reports the result; hart 0 checks every result.  Exercises CODE
 * traces (the buffer each worker translated is written again two rounds
 * later) together with the architected fence.i. */
#include "../mp/mp.h"

#ifndef ROUNDS
#define ROUNDS 300
#endif
static u32 buf[2][64] __attribute__((aligned(4096)));
static volatile u64 seq, done_count, results[NHARTS];

static u32 r_type(int f7, int rs2, int rs1, int f3, int rd, int op) { return ((u32)f7 << 25) | ((u32)rs2 << 20) | ((u32)rs1 << 15) | ((u32)f3 << 12) | ((u32)rd << 7) | (u32)op; }
static u32 i_type(int imm, int rs1, int f3, int rd, int op) { return ((u32)(imm & 0xfff) << 20) | ((u32)rs1 << 15) | ((u32)f3 << 12) | ((u32)rd << 7) | (u32)op; }
static u32 b_type(int imm, int rs2, int rs1, int f3)
{
	u32 u = (u32)imm;
	return (((u >> 12) & 1) << 31) | (((u >> 5) & 0x3f) << 25) | ((u32)rs2 << 20) | ((u32)rs1 << 15) |
	       ((u32)f3 << 12) | (((u >> 1) & 0xf) << 8) | (((u >> 11) & 1) << 7) | 0x63;
}

static u64 k_of(u64 r) { return (r * 7919u) % 2000 + 1; }
static u64 n_of(u64 r) { return r % 23 + 3; }
static u64 expect(u64 r) { u64 s = 0; for (u64 i = 0; i < n_of(r); i++) s += i * k_of(r); return s; }

/* a0 = 0; t0 = 0; t1 = N; t2 = K; loop: a0 += t0*t2; t0++; blt t0,t1,loop; ret */
static void generate(u32 *p, u64 r)
{
	int n = 0;
	p[n++] = i_type(0, 0, 0, 10, 0x13);                 /* li a0, 0 */
	p[n++] = i_type(0, 0, 0, 5, 0x13);                  /* li t0, 0 */
	p[n++] = i_type((int)n_of(r), 0, 0, 6, 0x13);       /* li t1, N */
	p[n++] = i_type((int)k_of(r), 0, 0, 7, 0x13);       /* li t2, K */
	p[n++] = r_type(1, 7, 5, 0, 28, 0x33);              /* mul t3, t0, t2 */
	p[n++] = r_type(0, 28, 10, 0, 10, 0x33);            /* add a0, a0, t3 */
	p[n++] = i_type(1, 5, 0, 5, 0x13);                  /* addi t0, t0, 1 */
	p[n++] = b_type(-12, 6, 5, 4);                      /* blt t0, t1, loop */
	p[n++] = 0x00008067;                                /* ret */
}

int secondary_main(unsigned h)
{
	mp_arrive();
	for (u64 r = 1; r <= ROUNDS; r++) {
		mp_wait_eq(&seq, r, "seq");
		asm volatile("fence.i" ::: "memory");
		results[h] = ((u64(*)(void))buf[r & 1])();
		__atomic_fetch_add(&done_count, 1, __ATOMIC_ACQ_REL);
	}
	for (;;)
		asm volatile("wfi");
}

int main(void)
{
	mp_arrive();
	for (u64 r = 1; r <= ROUNDS; r++) {
		generate(buf[r & 1], r);
		asm volatile("fence rw, rw" ::: "memory");
		__atomic_store_n(&done_count, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&seq, r, __ATOMIC_RELEASE);
		mp_wait_eq(&done_count, NHARTS - 1, "done_count");
		for (unsigned h = 1; h < NHARTS; h++)
			if (results[h] != expect(r)) {
				rt_printf("round %lu hart %u: got %lu want %lu\n", r, h, results[h], expect(r));
				CHECK_EQ(results[h], expect(r));
			}
	}
	rt_printf("trace_jit: %d rounds on %d harts, all results exact\n", ROUNDS, NHARTS);
	return 0;
}
