/*
 * cpu/: execution of small guest programs built in place: integer and M
 * edge cases, branches and exact instret, misaligned accesses, CSR rules,
 * traps with delegation, interrupt priority, wfi wake-up, self-modifying
 * code, write traps and the derivation observer.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_cpu_util.h"

#define CODE T_RAM_BASE
#define MHANDLER (T_RAM_BASE + 0x800)
#define DATA (T_RAM_BASE + 0x10000)
#define SLLI(rd, rs1, sh) enc_i(0x13, 1, rd, rs1, sh)

static uint64_t csr(struct cpu *c, unsigned n)
{
	uint64_t v = 0;
	assert_int_equal(cpu_get_csr(c, n, &v), 0);
	return v;
}

/* M-mode trap handler that stops the hart; mtvec points at it. */
static struct cpu *setup(struct tmem **mp, bool observe)
{
	struct tmem *m = tmem_new();
	struct cpu *c = tmem_cpu(m, 0, observe);
	assert_non_null(c);
	emit_stop(gp(m, MHANDLER));
	assert_int_equal(cpu_set_csr(c, 0x305, MHANDLER), 0);
	*mp = m;
	return c;
}

static void test_alu_m(void **state)
{
	struct tmem *m;
	struct cpu *c = setup(&m, false);
	uint32_t *p = gp(m, CODE);
	*p++ = ADDI(10, 0, -7);
	*p++ = ADDI(11, 0, 2);
	*p++ = DIV(12, 10, 11);
	*p++ = REM(13, 10, 11);
	*p++ = DIV(14, 10, 0);
	*p++ = DIVU(15, 10, 0);
	*p++ = REM(16, 10, 0);
	*p++ = MULH(17, 10, 11);
	*p++ = LUI(18, 0x80000);          /* INT32_MIN, sign-extended */
	*p++ = ADDI(19, 0, -1);
	*p++ = DIVW(20, 18, 19);          /* overflow: INT32_MIN */
	*p++ = ADDI(21, 0, 36);           /* shift amount 36 & 31 = 4 */
	*p++ = SRAW(22, 18, 21);
	*p++ = ADD(0, 10, 11);            /* x0 stays 0 */
	*p++ = MULHSU(23, 10, 11);        /* -7 * 2 (unsigned): high = -1 */
	p = emit_stop(p);
	assert_int_equal(cpu_run(c, 1000), CPU_EXIT_STOPPED);
	assert_int_equal((int64_t)cpu_get_reg(c, 12), -3);
	assert_int_equal((int64_t)cpu_get_reg(c, 13), -1);
	assert_int_equal((int64_t)cpu_get_reg(c, 14), -1);
	assert_int_equal(cpu_get_reg(c, 15), ~0ull);
	assert_int_equal((int64_t)cpu_get_reg(c, 16), -7);
	assert_int_equal((int64_t)cpu_get_reg(c, 17), -1);
	assert_int_equal((int64_t)cpu_get_reg(c, 20), INT32_MIN);
	assert_int_equal((int64_t)cpu_get_reg(c, 22), INT32_MIN / 16);
	assert_int_equal(cpu_get_reg(c, 0), 0);
	assert_int_equal((int64_t)cpu_get_reg(c, 23), -1);
	tmem_free(m);
}

static void test_loop_instret(void **state)
{
	struct tmem *m;
	struct cpu *c = setup(&m, false);
	uint32_t *p = gp(m, CODE);
	*p++ = ADDI(5, 0, 0);
	*p++ = ADDI(6, 0, 0);
	*p++ = ADDI(7, 0, 100);
	*p++ = ADDI(5, 5, 1);  /* loop: */
	*p++ = ADD(6, 6, 5);
	*p++ = BLT(5, 7, -8);
	*p++ = CSRRS(8, 0xb02, 0); /* minstret */
	p = emit_stop(p);
	assert_int_equal(cpu_run(c, 100000), CPU_EXIT_STOPPED);
	assert_int_equal(cpu_get_reg(c, 6), 5050);
	/* 3 + 3*100 instructions before the csrr, which sees them all */
	assert_int_equal(cpu_get_reg(c, 8), 303);
	struct cpu_stats st;
	cpu_get_stats(c, &st);
	assert_int_equal(st.instret, 306);
	tmem_free(m);
}

static void test_misaligned(void **state)
{
	struct tmem *m;
	struct cpu *c = setup(&m, false);
	uint32_t *p = gp(m, CODE);
	cpu_set_reg(c, 10, DATA + 0x1001);    /* misaligned, inside a page */
	cpu_set_reg(c, 11, DATA + 0x1ffd);    /* crosses into the next page */
	cpu_set_reg(c, 12, 0x1122334455667788ull);
	*p++ = SD(12, 10, 0);
	*p++ = SD(12, 11, 0);
	*p++ = LD(13, 11, 0);
	*p++ = LW(14, 10, 1);
	*p++ = AMOADD_W(15, 10, 12);          /* misaligned AMO: traps */
	p = emit_stop(p);
	assert_int_equal(cpu_run(c, 1000), CPU_EXIT_STOPPED);
	uint64_t v;
	memcpy(&v, gp(m, DATA + 0x1ffd), 8);
	assert_int_equal(v, 0x1122334455667788ull);
	memcpy(&v, gp(m, DATA + 0x1001), 8);
	assert_int_equal(v, 0x1122334455667788ull);
	assert_int_equal(cpu_get_reg(c, 13), 0x1122334455667788ull);
	assert_int_equal(cpu_get_reg(c, 14), 0x44556677ull);
	assert_int_equal(csr(c, 0x342), 6);          /* store/AMO misaligned */
	assert_int_equal(csr(c, 0x343), DATA + 0x1001);
	assert_int_equal(csr(c, 0x341), CODE + 16);
	tmem_free(m);
}

static void test_access_fault(void **state)
{
	struct tmem *m;
	struct cpu *c = setup(&m, false);
	uint32_t *p = gp(m, CODE);
	cpu_set_reg(c, 10, 0x4000);           /* nothing there */
	*p++ = LD(11, 10, 0);
	p = emit_stop(p);
	assert_int_equal(cpu_run(c, 1000), CPU_EXIT_STOPPED);
	assert_int_equal(csr(c, 0x342), 5);   /* load access fault */
	assert_int_equal(csr(c, 0x343), 0x4000);
	/* fetch from outside RAM: instruction access fault at the target */
	cpu_set_pc(c, 0x5000);
	assert_int_equal(cpu_run(c, 1000), CPU_EXIT_STOPPED);
	assert_int_equal(csr(c, 0x342), 1);
	assert_int_equal(csr(c, 0x341), 0x5000);
	tmem_free(m);
}

static void test_csr_rules(void **state)
{
	struct tmem *m;
	struct cpu *c = setup(&m, false);
	uint32_t *p = gp(m, CODE);
	*p++ = ADDI(5, 0, 9);
	*p++ = SLLI(5, 5, 60);                /* satp MODE = Sv48: unsupported */
	*p++ = CSRRW(0, 0x180, 5);
	*p++ = CSRRS(6, 0x180, 0);
	*p++ = CSRRS(7, 0x7a1, 0);            /* tdata1 reads 0 */
	*p++ = CSRRS(8, 0x301, 0);            /* misa */
	uint32_t bad = CSRRS(9, 0x5c0, 0);    /* no such CSR */
	*p++ = bad;
	p = emit_stop(p);
	cpu_set_reg(c, 6, 77);
	cpu_set_reg(c, 7, 77);
	assert_int_equal(cpu_run(c, 1000), CPU_EXIT_STOPPED);
	assert_int_equal(cpu_get_reg(c, 6), 0);
	assert_int_equal(cpu_get_reg(c, 7), 0);
	uint64_t misa = cpu_get_reg(c, 8);
	assert_int_equal(misa >> 62, 2);
	for (const char *e = "IMACSU"; *e; e++)
		assert_true(misa & (1ull << (*e - 'A')));
	assert_int_equal(csr(c, 0x342), 2);
	assert_int_equal(csr(c, 0x343), bad);
	/* Sv39 is accepted */
	assert_int_equal(cpu_set_csr(c, 0x180, (8ull << 60) | 0x80100), 0);
	assert_int_equal(csr(c, 0x180) >> 60, 8);
	tmem_free(m);
}

/* U-mode rdcycle traps unless mcounteren and scounteren allow it. */
static void test_counter_gating(void **state)
{
	struct tmem *m;
	struct cpu *c = setup(&m, false);
	uint32_t *p = gp(m, CODE + 0x100);
	*p++ = CSRRS(10, 0xc00, 0);
	*p++ = CSRRS(11, 0xc01, 0);
	*p++ = ECALL;
	for (int allow = 0; allow < 2; allow++) {
		cpu_set_csr(c, 0x306, allow ? 3 : 0);
		cpu_set_csr(c, 0x106, allow ? 3 : 0);
		cpu_set_priv(c, CPU_PRIV_U);
		cpu_set_pc(c, CODE + 0x100);
		assert_int_equal(cpu_run(c, 1000), CPU_EXIT_STOPPED);
		assert_int_equal(csr(c, 0x342), allow ? 8 : 2); /* ecall from U / illegal */
		assert_int_equal(csr(c, 0x341), CODE + 0x100 + (allow ? 8 : 0));
	}
	tmem_free(m);
}

/* ecall from U goes to S when medeleg says so, to M otherwise. */
static void test_delegation(void **state)
{
	struct tmem *m;
	struct cpu *c = setup(&m, false);
	uint32_t *u = gp(m, CODE + 0x200), *s = gp(m, CODE + 0x300);
	*u = ECALL;
	*s = EBREAK; /* S handler: breakpoint, not delegated -> M */
	cpu_set_csr(c, 0x105, CODE + 0x300);  /* stvec */
	cpu_set_csr(c, 0x302, 1u << 8);       /* medeleg: ecall from U */
	cpu_set_priv(c, CPU_PRIV_U);
	cpu_set_pc(c, CODE + 0x200);
	assert_int_equal(cpu_run(c, 1000), CPU_EXIT_STOPPED);
	assert_int_equal(csr(c, 0x142), 8);   /* scause */
	assert_int_equal(csr(c, 0x141), CODE + 0x200);
	assert_int_equal(csr(c, 0x100) & (1u << 8), 0); /* SPP = U */
	assert_int_equal(csr(c, 0x342), 3);   /* then ebreak in S went to M */
	assert_int_equal((csr(c, 0x300) >> 11) & 3, CPU_PRIV_S); /* MPP = S */
	tmem_free(m);
}

static void test_irq_priority(void **state)
{
	struct tmem *m;
	struct cpu *c = setup(&m, false);
	uint32_t *p = gp(m, CODE);
	*p++ = ADDI(5, 0, 8);
	*p++ = CSRRS(0, 0x300, 5);            /* mstatus.MIE = 1: taken right after */
	*p++ = ADDI(6, 0, 1);                 /* not reached before the trap */
	p = emit_stop(p);
	cpu_set_csr(c, 0x304, (1u << 3) | (1u << 7) | (1u << 11));
	cpu_set_irq(c, CPU_IRQ_MTI, true);
	cpu_set_irq(c, CPU_IRQ_MSI, true);
	assert_int_equal(cpu_run(c, 1000), CPU_EXIT_STOPPED);
	assert_int_equal(csr(c, 0x342), (1ull << 63) | 3); /* MSI before MTI */
	assert_int_equal(csr(c, 0x341), CODE + 8);
	assert_int_equal(cpu_get_reg(c, 6), 0);
	/* MEI beats both */
	cpu_set_irq(c, CPU_IRQ_MEI, true);
	cpu_set_csr(c, 0x300, 8);
	cpu_set_pc(c, CODE + 8);
	assert_int_equal(cpu_run(c, 1000), CPU_EXIT_STOPPED);
	assert_int_equal(csr(c, 0x342), (1ull << 63) | 11);
	tmem_free(m);
}

static void *raise_later(void *arg)
{
	usleep(20000);
	cpu_set_irq(arg, CPU_IRQ_MTI, true);
	return NULL;
}

/* wfi sleeps until mip & mie, even with MIE = 0 (then no trap). */
static void test_wfi_wakeup(void **state)
{
	struct tmem *m;
	struct cpu *c = setup(&m, false);
	uint32_t *p = gp(m, CODE);
	*p++ = WFI;
	*p++ = ADDI(6, 0, 5);
	p = emit_stop(p);
	cpu_set_csr(c, 0x304, 1u << 7);
	pthread_t t;
	pthread_create(&t, NULL, raise_later, c);
	assert_int_equal(cpu_run(c, 0), CPU_EXIT_STOPPED); /* unbounded: wfi sleeps */
	pthread_join(t, NULL);
	assert_int_equal(cpu_get_reg(c, 6), 5);
	assert_true(csr(c, 0x344) & (1u << 7)); /* it waited for MTIP */
	assert_int_equal(csr(c, 0x342), 0);   /* no trap taken */
	tmem_free(m);
}

/* A store into a page with translated code invalidates it (own hart). */
static void test_self_modifying(void **state)
{
	struct tmem *m;
	struct cpu *c = setup(&m, true);
	uint32_t *p = gp(m, CODE);
	uint32_t *fn = gp(m, CODE + 0x100);
	fn[0] = ADDI(10, 0, 1);
	fn[1] = JALR(0, 1, 0);
	cpu_set_reg(c, 20, CODE + 0x100);
	cpu_set_reg(c, 21, ADDI(10, 0, 2));
	*p++ = JALR(1, 20, 0);                /* a0 = 1 */
	*p++ = ADD(11, 10, 0);
	*p++ = SW(21, 20, 0);                 /* patch: li a0, 2 */
	*p++ = JALR(1, 20, 0);                /* a0 = 2 */
	p = emit_stop(p);
	assert_int_equal(cpu_run(c, 1000), CPU_EXIT_STOPPED);
	assert_int_equal(cpu_get_reg(c, 11), 1);
	assert_int_equal(cpu_get_reg(c, 10), 2);
	struct cpu_stats st;
	cpu_get_stats(c, &st);
	assert_true(st.smc_invalidations >= 1);
	assert_true(m->dropped[CPU_DERIV_CODE] >= 1);
	assert_true(m->derived[CPU_DERIV_CODE] > m->dropped[CPU_DERIV_CODE] - 1);
	assert_true(m->derived[CPU_DERIV_TLB] >= 1);
	tmem_free(m);
}

/* Write-trapped page: stores call the hooks, loads stay fast. */
static void test_write_trap(void **state)
{
	struct tmem *m;
	struct cpu *c = setup(&m, false);
	uint32_t *p = gp(m, CODE);
	cpu_set_reg(c, 10, DATA);
	cpu_set_reg(c, 11, 42);
	*p++ = LD(12, 10, 0);
	*p++ = SD(11, 10, 8);
	*p++ = AMOADD_D(13, 10, 11);
	*p++ = LD(14, 10, 0);
	p = emit_stop(p);
	assert_int_equal(cpu_set_write_trap(c, DATA, true), 0);
	assert_int_equal(cpu_run(c, 1000), CPU_EXIT_STOPPED);
	assert_int_equal(m->pre_calls, 2);
	assert_int_equal(m->post_calls, 2);
	assert_int_equal(m->last_trap_gpa, DATA);
	assert_int_equal(cpu_get_reg(c, 14), 42);
	/* off again: no more hook calls */
	cpu_set_write_trap(c, DATA, false);
	cpu_set_pc(c, CODE);
	assert_int_equal(cpu_run(c, 1000), CPU_EXIT_STOPPED);
	assert_int_equal(m->pre_calls, 2);
	tmem_free(m);
}

/* An instruction across a page boundary runs, is cached (not retranslated
 * every time), and is dropped when its second page is invalidated. */
static void test_straddle(void **state)
{
	struct tmem *m;
	struct cpu *c = setup(&m, true);
	uint64_t at = CODE + 0x1ffe;
	uint32_t insn = ADDI(5, 5, 1);
	memcpy(gp(m, at), &insn, 4);
	uint32_t ret = JALR(0, 1, 0);
	memcpy(gp(m, at + 4), &ret, 4);
	uint32_t *p = gp(m, CODE);
	cpu_set_reg(c, 20, at);
	*p++ = ADDI(7, 0, 10);
	*p++ = JALR(1, 20, 0);                /* loop: */
	*p++ = ADDI(7, 7, -1);
	*p++ = BNE(7, 0, -8);
	p = emit_stop(p);
	assert_int_equal(cpu_run(c, 10000), CPU_EXIT_STOPPED);
	assert_int_equal(cpu_get_reg(c, 5), 10);
	struct cpu_stats st;
	cpu_get_stats(c, &st);
	assert_true(st.blocks_translated < 10);
	/* new immediate in the second half (bits 31:16 live at at + 2) */
	insn = ADDI(5, 5, 3);
	memcpy(gp(m, at + 2), (uint8_t *)&insn + 2, 2);
	cpu_invalidate_gpa(c, CODE + 0x2000, CPU_KIND_BIT(CPU_DERIV_CODE));
	cpu_set_pc(c, CODE);
	assert_int_equal(cpu_run(c, 10000), CPU_EXIT_STOPPED);
	assert_int_equal(cpu_get_reg(c, 5), 40);
	tmem_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alu_m),
		cmocka_unit_test(test_loop_instret),
		cmocka_unit_test(test_misaligned),
		cmocka_unit_test(test_access_fault),
		cmocka_unit_test(test_csr_rules),
		cmocka_unit_test(test_counter_gating),
		cmocka_unit_test(test_delegation),
		cmocka_unit_test(test_irq_priority),
		cmocka_unit_test(test_wfi_wakeup),
		cmocka_unit_test(test_self_modifying),
		cmocka_unit_test(test_write_trap),
		cmocka_unit_test(test_straddle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
