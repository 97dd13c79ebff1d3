/* C extension: every RV64C integer form, written with explicit c.*
 * mnemonics so the assembler must emit the 16-bit encoding; each result is
 * checked.  Operands live in a0/a1 (x10/x11, reachable by the 3-bit
 * register fields). */
#include "isa.h"

#define C2(body, x, y) ({ register u64 a0_ asm("a0") = (u64)(x); register u64 a1_ asm("a1") = (u64)(y); \
	asm volatile(".option push\n .option rvc\n" body "\n .option pop" : "+r"(a0_), "+r"(a1_) :: "memory", "a2", "ra"); a0_; })

static u64 mem[4] __attribute__((aligned(16)));

static u64 cfunc(u64 x) { return x + 1000; }

static void alu(void)
{
	CHECK_EQ(C2("c.addi a0, -32", 100, 0), 68);
	CHECK_EQ(C2("c.addi a0, 31", 100, 0), 131);
	CHECK_EQ(C2("c.addiw a0, 1", 0x7fffffff, 0), 0xffffffff80000000ull);
	CHECK_EQ(C2("c.addiw a0, 0", 0x1234567880000000ull, 0), 0xffffffff80000000ull);
	CHECK_EQ(C2("c.li a0, -1", 5, 0), 0xffffffffffffffffull);
	CHECK_EQ(C2("c.li a0, 31", 5, 0), 31);
	CHECK_EQ(C2("c.lui a0, 0xfffe0", 0, 0), 0xfffffffffffe0000ull);
	CHECK_EQ(C2("c.lui a0, 1", 0, 0), 0x1000);
	CHECK_EQ(C2("c.lui a0, 0x1f", 0, 0), 0x1f000);
	CHECK_EQ(C2("c.srli a0, 63", 0x8000000000000000ull, 0), 1);
	CHECK_EQ(C2("c.srli a0, 4", 0xf0, 0), 0xf);
	CHECK_EQ(C2("c.srai a0, 63", 0x8000000000000000ull, 0), 0xffffffffffffffffull);
	CHECK_EQ(C2("c.srai a0, 32", 0x8000000100000000ull, 0), 0xffffffff80000001ull);
	CHECK_EQ(C2("c.andi a0, -16", 0xffff, 0), 0xfff0);
	CHECK_EQ(C2("c.andi a0, 5", 0xffff, 0), 5);
	CHECK_EQ(C2("c.slli a0, 63", 1, 0), 0x8000000000000000ull);
	CHECK_EQ(C2("c.slli a0, 32", 3, 0), 0x300000000ull);
	CHECK_EQ(C2("c.mv a0, a1", 1, 0xabcdef), 0xabcdef);
	CHECK_EQ(C2("c.add a0, a1", 40, 2), 42);
	CHECK_EQ(C2("c.sub a0, a1", 40, 50), (u64)-10);
	CHECK_EQ(C2("c.xor a0, a1", 0xff00, 0x0ff0), 0xf0f0);
	CHECK_EQ(C2("c.or a0, a1", 0xff00, 0x0ff0), 0xfff0);
	CHECK_EQ(C2("c.and a0, a1", 0xff00, 0x0ff0), 0x0f00);
	CHECK_EQ(C2("c.addw a0, a1", 0x7fffffff, 1), 0xffffffff80000000ull);
	CHECK_EQ(C2("c.subw a0, a1", 0x100000000ull, 1), 0xffffffffffffffffull);
	CHECK_EQ(C2("c.nop\n c.nop", 9, 0), 9);
}

static void sp_forms(void)
{
	u64 spv, d;
	/* c.addi16sp and c.addi4spn */
	asm volatile(".option push\n .option rvc\n mv a2, sp\n c.addi16sp sp, -64\n sub %0, a2, sp\n"
		     " c.addi4spn a0, sp, 24\n sub %1, a0, sp\n c.addi16sp sp, 64\n .option pop"
		     : "=r"(spv), "=r"(d) :: "a0", "a2", "memory");
	CHECK_EQ(spv, 64);
	CHECK_EQ(d, 24);
	/* c.sdsp / c.ldsp / c.swsp / c.lwsp */
	CHECK_EQ(C2("c.addi16sp sp, -32\n c.sdsp a1, 8(sp)\n c.li a0, 0\n c.ldsp a0, 8(sp)\n c.addi16sp sp, 32",
		    0, 0x1122334455667788ull), 0x1122334455667788ull);
	CHECK_EQ(C2("c.addi16sp sp, -32\n c.swsp a1, 4(sp)\n c.lwsp a0, 4(sp)\n c.addi16sp sp, 32",
		    0, 0x00000000f0000001ull), 0xfffffffff0000001ull);
	CHECK_EQ(C2("c.addi16sp sp, -32\n c.sdsp a1, 16(sp)\n c.lwsp a0, 20(sp)\n c.addi16sp sp, 32",
		    0, 0x7fffffff00000000ull), 0x7fffffff);
}

static void loads_stores(void)
{
	mem[0] = mem[1] = mem[2] = 0;
	C2("c.sd a1, 8(a0)", mem, 0xfedcba9876543210ull);
	CHECK_EQ(mem[1], 0xfedcba9876543210ull);
	CHECK_EQ(C2("c.ld a0, 8(a0)", mem, 0), 0xfedcba9876543210ull);
	C2("c.sw a1, 16(a0)", mem, 0xaaaaaaaa80000000ull);
	CHECK_EQ(mem[2], 0x80000000ull);
	CHECK_EQ(C2("c.lw a0, 16(a0)", mem, 0), 0xffffffff80000000ull);
	CHECK_EQ(C2("c.lw a0, 12(a0)", mem, 0), 0xfffffffffedcba98ull);
}

static void control(void)
{
	CHECK_EQ(C2("c.j 1f\n c.li a0, 7\n1:", 3, 0), 3);
	CHECK_EQ(C2("c.beqz a1, 1f\n c.li a0, 7\n1:", 3, 0), 3);
	CHECK_EQ(C2("c.beqz a1, 1f\n c.li a0, 7\n1:", 3, 1), 7);
	CHECK_EQ(C2("c.bnez a1, 1f\n c.li a0, 7\n1:", 3, 0), 7);
	CHECK_EQ(C2("c.bnez a1, 1f\n c.li a0, 7\n1:", 3, -1), 3);
	/* backward c.bnez loop */
	CHECK_EQ(C2("c.li a0, 0\n1: c.addi a0, 2\n c.addi a1, -1\n c.bnez a1, 1b", 0, 10), 20);
	/* c.jr to a label */
	CHECK_EQ(C2("la a2, 1f\n c.jr a2\n c.li a0, 7\n1:", 3, 0), 3);
	/* c.jalr: calls and links pc + 2 */
	CHECK_EQ(C2("mv a2, a1\n c.jalr a2", 5, cfunc), 1005);
	u64 link, want;
	asm volatile(".option push\n .option rvc\n la a2, 2f\n c.jalr a2\n1: j 3f\n2: mv %0, ra\n la %1, 1b\n3:\n .option pop"
		     : "=r"(link), "=r"(want) :: "a2", "ra");
	CHECK_EQ(link, want);
}

static void sizes(void)
{
	/* every form must really be 16 bits wide: checked when assembling */
	asm volatile(".option push\n .option rvc\n j 3f\n 1: c.addi a0, 1\n c.lui a0, 1\n c.ld a0, 0(a0)\n c.add a0, a0\n 2:\n"
		     " .if (2b - 1b) != 8\n .error \"c.* forms not compressed\"\n .endif\n 3:\n .option pop" ::: "a0");
}

static void ebreak(void)
{
	rt_trap_clear();
	rt_expect_trap();
	u64 at;
	asm volatile(".option push\n .option rvc\n la %0, 1f\n1: c.ebreak\n .option pop" : "=r"(at) :: "memory");
	CHECK_EQ(rt_mtrap[0].count, 1);
	CHECK_EQ(rt_mtrap[0].cause, CAUSE_BREAKPOINT);
	CHECK_EQ(rt_mtrap[0].epc, at);
}

int main(void)
{
	alu();
	sp_forms();
	loads_stores();
	control();
	sizes();
	ebreak();
	rt_printf("isa_rvc: %d checks passed\n", rt_check_no);
	return 0;
}
