/* ecall from M/S/U (cause per mode), mret/sret privilege changes and the
 * MPP/MPIE/MIE and SPP/SPIE/SIE stacks, medeleg delegation of U traps to
 * S (and M traps never delegated). */
#include "rt.h"

static u64 seen_mstatus, seen_cause;

/* a7 = 1: answer with the cause; a7 = 2: note mstatus, then end rt_run */
static int m_hook(struct rt_frame *f, u64 cause)
{
	if (cause == CAUSE_ECALL_M || cause == CAUSE_ECALL_S || cause == CAUSE_ECALL_U) {
		if (f->x[17] == 1) {
			f->x[10] = cause;
			csr_write(mepc, csr_read(mepc) + 4);
			return 1;
		}
		if (f->x[17] == 2) {
			seen_mstatus = csr_read(mstatus);
			seen_cause = cause;
		}
	}
	return 0;
}

static u64 do_ecall(void)
{
	register u64 a0 asm("a0");
	register u64 a7 asm("a7") = 1;
	asm volatile("ecall" : "=r"(a0) : "r"(a7) : "memory");
	return a0;
}

static void ecall_u_note(void)
{
	register u64 a7 asm("a7") = 2;
	asm volatile("ecall" :: "r"(a7) : "memory");
}

/* runs in S: drop to U at ecall_u_note through sret */
static void s_sret_to_u(void)
{
	csr_clear(sstatus, MSTATUS_SPP | MSTATUS_SIE);
	csr_set(sstatus, MSTATUS_SPIE);
	csr_write(sepc, (u64)ecall_u_note);
	asm volatile("sret");
}

static void ecalls(void)
{
	CHECK_EQ(do_ecall(), CAUSE_ECALL_M);
	CHECK_EQ(rt_run(PRV_S, do_ecall, 0, 0), CAUSE_ECALL_S);
	CHECK_EQ(rt_run(PRV_U, do_ecall, 0, 0), CAUSE_ECALL_U);
	CHECK_EQ(rt_run(PRV_M, do_ecall, 0, 0), CAUSE_ECALL_M);
}

static void mret_stack(void)
{
	/* MPIE=1, MIE=0 before the mret into U: U runs with MIE=1 (no
	 * interrupt is enabled in mie); the ecall stacks MIE into MPIE */
	csr_write(mie, 0);
	csr_clear(mstatus, MSTATUS_MIE);
	csr_set(mstatus, MSTATUS_MPIE);
	CHECK_EQ(rt_run(PRV_U, ecall_u_note, 0, 0), RT_TRAPPED);
	CHECK_EQ(seen_cause, CAUSE_ECALL_U);
	CHECK_EQ(seen_mstatus & MSTATUS_MPP, 0);
	CHECK(seen_mstatus & MSTATUS_MPIE);
	CHECK(!(seen_mstatus & MSTATUS_MIE));
	/* the mret back to M (landing) set MIE from MPIE and MPP to U */
	u64 ms = csr_read(mstatus);
	CHECK(ms & MSTATUS_MIE);
	CHECK(ms & MSTATUS_MPIE);
	CHECK_EQ(ms & MSTATUS_MPP, 0);
	csr_clear(mstatus, MSTATUS_MIE);
	/* MPIE=0: the mode entered by mret runs with MIE=0, stacked as MPIE=0 */
	csr_clear(mstatus, MSTATUS_MPIE);
	CHECK_EQ(rt_run(PRV_S, ecall_u_note, 0, 0), RT_TRAPPED);
	CHECK_EQ(seen_cause, CAUSE_ECALL_S);
	CHECK_EQ((seen_mstatus & MSTATUS_MPP) >> 11, PRV_S);
	CHECK(!(seen_mstatus & MSTATUS_MPIE));
}

static void sret_stack(void)
{
	CHECK_EQ(rt_run(PRV_S, s_sret_to_u, 0, 0), RT_TRAPPED);
	CHECK_EQ(seen_cause, CAUSE_ECALL_U); /* sret went to U */
	CHECK(!(seen_mstatus & MSTATUS_SPP));  /* SPP reset to U by sret */
	CHECK(seen_mstatus & MSTATUS_SPIE);    /* SPIE set to 1 by sret */
	CHECK(seen_mstatus & MSTATUS_SIE);     /* SIE loaded from SPIE = 1 */
	csr_clear(mstatus, MSTATUS_SIE);
}

static void u_illegal(void) { asm volatile(".word 0xffffffff"); }

static void delegation(void)
{
	rt_s_trap_install();
	csr_write(medeleg, (1ul << CAUSE_ECALL_U) | (1ul << CAUSE_ILLEGAL) | (1ul << CAUSE_BREAKPOINT));
	rt_trap_clear();
	/* ecall from U now lands in S, which skips it; do_ecall's a0 is then
	 * whatever a0 held (not a cause written by M) */
	rt_run(PRV_U, do_ecall, 0x1234, 0);
	CHECK_EQ(rt_strap[0].count, 1);
	CHECK_EQ(rt_strap[0].cause, CAUSE_ECALL_U);
	CHECK_EQ(rt_strap[0].prev_mode, 0); /* SPP = U */
	CHECK_EQ(rt_mtrap[0].count, 0);
	rt_trap_clear();
	CHECK(rt_run(PRV_U, u_illegal, 0, 0) != RT_TRAPPED);
	CHECK_EQ(rt_strap[0].count, 1);
	CHECK_EQ(rt_strap[0].cause, CAUSE_ILLEGAL);
	CHECK_EQ(rt_strap[0].tval, 0xffffffff);
	CHECK_EQ(rt_strap[0].epc, (u64)u_illegal);
	/* from S the same trap goes to S too (SPP = S) */
	rt_trap_clear();
	CHECK(rt_run(PRV_S, u_illegal, 0, 0) != RT_TRAPPED);
	CHECK_EQ(rt_strap[0].cause, CAUSE_ILLEGAL);
	CHECK_EQ(rt_strap[0].prev_mode, 1);
	/* traps taken in M are never delegated */
	rt_trap_clear();
	rt_expect_trap();
	u_illegal();
	CHECK_EQ(rt_mtrap[0].count, 1);
	CHECK_EQ(rt_mtrap[0].cause, CAUSE_ILLEGAL);
	CHECK_EQ(rt_strap[0].count, 0);
	/* ecall from S is not delegated: reaches M */
	CHECK_EQ(rt_run(PRV_S, do_ecall, 0, 0), CAUSE_ECALL_S);
	csr_write(medeleg, 0);
	rt_trap_clear();
	CHECK_EQ(rt_run(PRV_U, u_illegal, 0, 0), RT_TRAPPED);
	CHECK_EQ(rt_mtrap[0].cause, CAUSE_ILLEGAL);
	CHECK_EQ(rt_mtrap[0].prev_mode, PRV_U);
	CHECK_EQ(rt_mtrap[0].tval, 0xffffffff);
}

int main(void)
{
	rt_m_hook[0] = m_hook;
	ecalls();
	mret_stack();
	sret_stack();
	delegation();
	rt_printf("priv_modes: %d checks passed\n", rt_check_no);
	return 0;
}
