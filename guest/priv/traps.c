/* Synchronous exceptions in M-mode: illegal instructions (mtval = the
 * instruction bits, 32- and 16-bit), breakpoint, load/store/fetch access
 * faults outside RAM (mtval = the address).  Misaligned fetch cannot occur
 * with C enabled (every jump target is 2-aligned and jalr clears bit 0);
 * isa_branch checks the bit-0 clearing. */
#include "rt.h"

#define NOWHERE 0x1000000000ul /* 64 GiB: no RAM or device there */

static u64 exec_word(u32 insn)
{
	static u32 code[2] __attribute__((aligned(8)));
	code[0] = insn;
	code[1] = 0x00008067; /* ret */
	rt_fence_i();
	rt_trap_clear();
	rt_expect_trap();
	((void (*)(void))code)();
	return rt_mtrap[0].count;
}

static void illegal(void)
{
	static const u32 bad[] = {
		0xffffffff, /* all ones */
		0x0000707b, /* custom-3 opcode */
		0x02001033, /* mulh x0, x0, x0: legal, must not trap */
	};
	CHECK_EQ(exec_word(bad[0]), 1);
	CHECK_EQ(rt_mtrap[0].cause, CAUSE_ILLEGAL);
	CHECK_EQ(rt_mtrap[0].tval, bad[0]);
	CHECK_EQ(exec_word(bad[1]), 1);
	CHECK_EQ(rt_mtrap[0].tval, bad[1]);
	/* mulh is legal (M present): must not trap */
	CHECK_EQ(exec_word(bad[2]), 0);
	/* slli with shamt bit 5 set is legal on RV64; sraiw with shamt[5]=1 is not */
	CHECK_EQ(exec_word(0x03f51513), 0); /* slli a0, a0, 63 */
	CHECK_EQ(exec_word(0x4205551b), 1); /* sraiw-like with imm[5]=1 */
	CHECK_EQ(rt_mtrap[0].cause, CAUSE_ILLEGAL);
	/* addw-like with funct7 = 0x7f */
	CHECK_EQ(exec_word(0xfe05053b), 1);
	/* fence with unusual bits is still a fence: no trap */
	CHECK_EQ(exec_word(0x0ff0000f), 0);
	/* 16-bit: c.addi4spn with zero immediate is reserved; tval holds the
	 * 16 instruction bits (the upper half is c.nop) */
	CHECK_EQ(exec_word(0x00010000), 1);
	CHECK_EQ(rt_mtrap[0].cause, CAUSE_ILLEGAL);
	CHECK_EQ(rt_mtrap[0].tval, 0);
	/* c.lui with zero immediate (rd = a0) is reserved */
	CHECK_EQ(exec_word(0x00016501), 1);
	CHECK_EQ(rt_mtrap[0].tval, 0x6501);
	/* mret/sret/wfi from M are legal; an unknown SYSTEM funct12 is not */
	CHECK_EQ(exec_word(0x00300073), 1); /* funct12 = 3 */
	CHECK_EQ(rt_mtrap[0].cause, CAUSE_ILLEGAL);
}

static void breakpoint(void)
{
	u64 at;
	rt_trap_clear();
	rt_expect_trap();
	asm volatile(".option push\n .option norvc\n la %0, 1f\n1: ebreak\n .option pop" : "=r"(at) :: "memory");
	CHECK_EQ(rt_mtrap[0].count, 1);
	CHECK_EQ(rt_mtrap[0].cause, CAUSE_BREAKPOINT);
	CHECK_EQ(rt_mtrap[0].epc, at);
}

static void access(void)
{
	volatile u64 *p = (volatile u64 *)NOWHERE;
	rt_trap_clear();
	rt_expect_trap();
	(void)*p;
	CHECK_EQ(rt_mtrap[0].count, 1);
	CHECK_EQ(rt_mtrap[0].cause, CAUSE_LOAD_ACCESS);
	CHECK_EQ(rt_mtrap[0].tval, NOWHERE);
	rt_trap_clear();
	rt_expect_trap();
	*(volatile u32 *)(NOWHERE + 0x10) = 5;
	CHECK_EQ(rt_mtrap[0].count, 1);
	CHECK_EQ(rt_mtrap[0].cause, CAUSE_STORE_ACCESS);
	CHECK_EQ(rt_mtrap[0].tval, NOWHERE + 0x10);
	/* an AMO outside RAM: store/AMO access fault (QEMU 7.2 reports a load
	 * access fault for AMOs, so both are accepted) */
	rt_trap_clear();
	rt_expect_trap();
	asm volatile("amoadd.w x0, %1, (%0)" :: "r"(NOWHERE + 8), "r"(1) : "memory");
	CHECK_EQ(rt_mtrap[0].count, 1);
	CHECK(rt_mtrap[0].cause == CAUSE_STORE_ACCESS || rt_mtrap[0].cause == CAUSE_LOAD_ACCESS);
	/* fetch: rt_run jumps there in M-mode and comes back on the trap */
	rt_trap_clear();
	CHECK_EQ(rt_run(PRV_M, (void *)(NOWHERE + 0x40), 0, 0), RT_TRAPPED);
	CHECK_EQ(rt_mtrap[0].cause, CAUSE_FETCH_ACCESS);
	CHECK_EQ(rt_mtrap[0].tval, NOWHERE + 0x40);
	CHECK_EQ(rt_mtrap[0].epc, NOWHERE + 0x40);
	/* a load just below RAM */
	rt_trap_clear();
	rt_expect_trap();
	(void)*(volatile uint8_t *)0x7ffffff0ul;
	CHECK_EQ(rt_mtrap[0].cause, CAUSE_LOAD_ACCESS);
	CHECK_EQ(rt_mtrap[0].tval, 0x7ffffff0ul);
}

int main(void)
{
	illegal();
	breakpoint();
	access();
	rt_printf("priv_traps: %d checks passed\n", rt_check_no);
	return 0;
}
