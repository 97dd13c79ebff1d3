/*
 * cpu/: Sv39 translation with page tables built in the flat test RAM:
 * 1 GiB, 2 MiB and 4 KiB leaves, A/D updates by the walker, every
 * page-fault cause, SUM and MXR, misaligned superpages, non-canonical
 * addresses, sfence.vma and the walk cache observer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "test_cpu_util.h"

#define MHANDLER (T_RAM_BASE + 0x800)
#define ROOT (T_RAM_BASE + 0x100000)
#define L1 (T_RAM_BASE + 0x101000)
#define L0 (T_RAM_BASE + 0x102000)
#define SCODE_VA 0x40000000ull          /* gigapage -> T_RAM_BASE */
#define V 1
#define R 2
#define W 4
#define X 8
#define U 16
#define A 64
#define D 128

static uint64_t *pte(struct tmem *m, uint64_t table, unsigned idx)
{
	return (uint64_t *)gp(m, table) + idx;
}

static uint64_t mk(uint64_t pa, unsigned flags)
{
	return ((pa >> 12) << 10) | flags;
}

static uint64_t csr(struct cpu *c, unsigned n)
{
	uint64_t v = 0;
	assert_int_equal(cpu_get_csr(c, n, &v), 0);
	return v;
}

/* Page tables:
 *   VA 0x40000000 (1 GiB)  -> PA 0x80000000, RWX (A/D clear at first)
 *   VA 0x00200000 (2 MiB)  -> PA 0x80200000, RW
 *   VA 0x00001000 (4 KiB)  -> PA 0x80003000, R, U
 *   VA 0x00002000 (4 KiB)  -> PA 0x80004000, X only
 *   VA 0x00400000 (2 MiB)  -> misaligned PA 0x80201000
 *   VA 0x00003000          -> invalid */
static struct cpu *setup(struct tmem **mp, bool observe)
{
	struct tmem *m = tmem_new();
	struct cpu *c = tmem_cpu(m, 0, observe);
	assert_non_null(c);
	emit_stop(gp(m, MHANDLER));
	cpu_set_csr(c, 0x305, MHANDLER);
	*pte(m, ROOT, 1) = mk(0x80000000, V | R | W | X);
	*pte(m, ROOT, 0) = mk(L1, V);
	*pte(m, L1, 1) = mk(0x80200000, V | R | W | A);
	*pte(m, L1, 2) = mk(0x80201000, V | R | W | A | D);
	*pte(m, L1, 0) = mk(L0, V);
	*pte(m, L0, 1) = mk(0x80003000, V | R | U | A);
	*pte(m, L0, 2) = mk(0x80004000, V | X | A);
	cpu_set_csr(c, 0x180, (8ull << 60) | (ROOT >> 12));
	*mp = m;
	return m->cpu[0] = c;
}

/* Runs `insns` in S-mode from SCODE_VA; the program ends with ecall. */
static void run_s(struct tmem *m, struct cpu *c, const uint32_t *insns, int n)
{
	uint32_t *p = gp(m, T_RAM_BASE + 0x2000);
	for (int k = 0; k < n; k++)
		p[k] = insns[k];
	p[n] = ECALL;
	/* the host rewrote code behind the engine: tell it */
	cpu_invalidate_gpa(c, T_RAM_BASE + 0x2000, CPU_KIND_BIT(CPU_DERIV_CODE));
	cpu_set_priv(c, CPU_PRIV_S);
	cpu_set_pc(c, SCODE_VA + 0x2000);
	assert_int_equal(cpu_run(c, 10000), CPU_EXIT_STOPPED);
}

static void test_leaves_and_ad(void **state)
{
	struct tmem *m;
	struct cpu *c = setup(&m, true);
	*(uint64_t *)gp(m, 0x80200008) = 0xabcdef;
	*(uint64_t *)gp(m, 0x80003010) = 0x1234;
	cpu_set_reg(c, 11, 0x00200008);
	cpu_set_reg(c, 12, 0x00001010);
	cpu_set_csr(c, 0x100, 1u << 18); /* SUM: S may read the U page */
	uint32_t prog[] = {LD(10, 11, 0), SD(10, 11, 8), LD(13, 12, 0)};
	run_s(m, c, prog, 3);
	assert_int_equal(csr(c, 0x342), 9);        /* ecall from S */
	assert_int_equal(cpu_get_reg(c, 10), 0xabcdef);
	assert_int_equal(*(uint64_t *)gp(m, 0x80200010), 0xabcdef);
	assert_int_equal(cpu_get_reg(c, 13), 0x1234);
	/* walker set A on the executed gigapage (no D: not written), D on the 2 MiB page */
	assert_int_equal(*pte(m, ROOT, 1) & (A | D), A);
	assert_int_equal(*pte(m, L1, 1) & (A | D), A | D);
	assert_true(m->derived[CPU_DERIV_PT] >= 3);
	tmem_free(m);
}

struct fault_case {
	uint32_t insn;
	uint64_t addr;
	uint64_t mstatus;
	uint64_t cause;
};

static void test_fault_causes(void **state)
{
	const struct fault_case cases[] = {
		{LD(10, 11, 0), 0x00001000, 0, 13},          /* U page from S, no SUM */
		{SD(10, 11, 0), 0x00001000, 1u << 18, 15},   /* read-only page */
		{LD(10, 11, 0), 0x00003000, 0, 13},          /* invalid PTE */
		{LD(10, 11, 0), 0x00400000, 0, 13},          /* misaligned superpage */
		{LD(10, 11, 0), 0x0000004000000000ull, 0, 13}, /* not sign-extended */
		{SD(10, 11, 0), 0x00003000, 0, 15},
		{JALR(0, 11, 0), 0x00200000, 0, 12},         /* fetch from RW page */
		{LD(10, 11, 0), 0x00002000, 0, 13},          /* X-only, no MXR */
	};
	for (unsigned k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct tmem *m;
		struct cpu *c = setup(&m, false);
		cpu_set_reg(c, 11, cases[k].addr);
		cpu_set_csr(c, 0x100, cases[k].mstatus);
		run_s(m, c, &cases[k].insn, 1);
		assert_int_equal(csr(c, 0x342), cases[k].cause);
		assert_int_equal(csr(c, 0x343), cases[k].addr);
		tmem_free(m);
	}
}

static void test_mxr(void **state)
{
	struct tmem *m;
	struct cpu *c = setup(&m, false);
	*(uint64_t *)gp(m, 0x80004000) = 77;
	cpu_set_reg(c, 11, 0x00002000);
	cpu_set_csr(c, 0x100, 1u << 19); /* MXR: X pages are readable */
	uint32_t prog[] = {LD(10, 11, 0)};
	run_s(m, c, prog, 1);
	assert_int_equal(csr(c, 0x342), 9);
	assert_int_equal(cpu_get_reg(c, 10), 77);
	tmem_free(m);
}

/* A PTE change is seen after sfence.vma (walk cache and TLB dropped). */
static void test_sfence(void **state)
{
	struct tmem *m;
	struct cpu *c = setup(&m, true);
	*(uint64_t *)gp(m, 0x80003000) = 1;
	*(uint64_t *)gp(m, 0x80005000) = 2;
	cpu_set_reg(c, 11, 0x00001000);
	cpu_set_csr(c, 0x100, 1u << 18);
	uint32_t prog[] = {LD(10, 11, 0)};
	run_s(m, c, prog, 1);
	assert_int_equal(cpu_get_reg(c, 10), 1);
	*pte(m, L0, 1) = mk(0x80005000, V | R | U | A);
	int dropped = m->dropped[CPU_DERIV_PT];
	uint32_t prog2[] = {SFENCE_VMA(0, 0), LD(10, 11, 0)};
	run_s(m, c, prog2, 2);
	assert_int_equal(cpu_get_reg(c, 10), 2);
	assert_true(m->dropped[CPU_DERIV_PT] > dropped);
	/* cpu_invalidate_gpa(PT) of the leaf table works without sfence */
	*pte(m, L0, 1) = mk(0x80003000, V | R | U | A);
	cpu_invalidate_gpa(c, L0, CPU_KIND_BIT(CPU_DERIV_PT));
	run_s(m, c, prog, 1);
	assert_int_equal(cpu_get_reg(c, 10), 1);
	tmem_free(m);
}

/* MPRV: M-mode loads translate as MPP says. */
static void test_mprv(void **state)
{
	struct tmem *m;
	struct cpu *c = setup(&m, false);
	*(uint64_t *)gp(m, 0x80200000) = 99;
	uint32_t *p = gp(m, T_RAM_BASE);
	*p++ = LD(10, 11, 0);
	p = emit_stop(p);
	cpu_set_reg(c, 11, 0x00200000);
	cpu_set_csr(c, 0x300, (1u << 17) | (1u << 11)); /* MPRV, MPP = S */
	cpu_set_pc(c, T_RAM_BASE);
	cpu_set_priv(c, CPU_PRIV_M);
	assert_int_equal(cpu_run(c, 1000), CPU_EXIT_STOPPED);
	assert_int_equal(cpu_get_reg(c, 10), 99);
	tmem_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_leaves_and_ad),
		cmocka_unit_test(test_fault_causes),
		cmocka_unit_test(test_mxr),
		cmocka_unit_test(test_sfence),
		cmocka_unit_test(test_mprv),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
