/* mstatus.TVM (satp and sfence.vma from S trap), TW (wfi below M traps),
 * TSR (sret from S traps), and mode-restricted instructions: sret/mret
 * from U, mret from S, M CSRs from S. */
#include "rt.h"

static u64 read_satp(void) { return csr_read(satp); }
static void do_sfence(void) { asm volatile("sfence.vma" ::: "memory"); }
static void do_wfi(void) { asm volatile("wfi"); }
static void do_sret(void) { asm volatile("sret"); }
static void do_mret(void) { asm volatile("mret"); }
static u64 read_mstatus(void) { return csr_read(mstatus); }

static int traps_illegal(int mode, void *fn)
{
	rt_trap_clear();
	u64 r = rt_run(mode, fn, 0, 0);
	return r == RT_TRAPPED && rt_mtrap[0].cause == CAUSE_ILLEGAL && rt_mtrap[0].epc == (u64)fn;
}

int main(void)
{
	/* baseline: S may touch satp and sfence.vma */
	CHECK_EQ(rt_run(PRV_S, read_satp, 0, 0), 0);
	CHECK(rt_run(PRV_S, do_sfence, 0, 0) != RT_TRAPPED);
	csr_set(mstatus, MSTATUS_TVM);
	CHECK(traps_illegal(PRV_S, read_satp));
	CHECK(traps_illegal(PRV_S, do_sfence));
	CHECK_EQ(rt_mtrap[0].tval, 0x12000073); /* sfence.vma x0, x0 */
	CHECK_EQ(read_satp(), 0); /* M is not affected */
	csr_clear(mstatus, MSTATUS_TVM);

	/* TW: wfi from S traps (immediately, whatever the wake state) */
	csr_set(mstatus, MSTATUS_TW);
	CHECK(traps_illegal(PRV_S, do_wfi));
	CHECK_EQ(rt_mtrap[0].tval, 0x10500073);
	csr_clear(mstatus, MSTATUS_TW);

	/* TSR: sret from S traps */
	csr_set(mstatus, MSTATUS_TSR);
	CHECK(traps_illegal(PRV_S, do_sret));
	csr_clear(mstatus, MSTATUS_TSR);

	CHECK(traps_illegal(PRV_U, do_sret));
	CHECK(traps_illegal(PRV_U, do_mret));
	CHECK(traps_illegal(PRV_S, do_mret));
	CHECK(traps_illegal(PRV_S, read_mstatus));
	CHECK(traps_illegal(PRV_U, read_satp));
	rt_printf("priv_tvm: %d checks passed\n", rt_check_no);
	return 0;
}
