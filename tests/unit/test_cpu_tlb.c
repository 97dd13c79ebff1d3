/*
 * cpu/: the soft TLB's generation tags and the order of derivations.
 *
 * - A full flush (sfence.vma x0, satp writes, cpu_flush_*) retires every
 *   entry at once (the TLB window moves): later accesses refill (see the
 *   new mapping), and the observer hears of the retired entries lazily, at
 *   the latest when the window starts over (one scan per TLB_SLIDE + 1
 *   flushes).
 * - sfence.vma with rs1 drops only that address's entry (4 KiB mappings).
 * - Every page_get of the engine comes after it reported the derivation it
 *   is for (TLB fill, page-table page of a walk): the DSM glue relies on it
 *   (a revoker that changed a page's state after page_get's check finds the
 *   hart subscribed; docs/trace.md, "Revocation").
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
#define CODE_PA (T_RAM_BASE + 0x4000) /* VA 0x2000, 4 KiB, X */
#define V 1
#define R 2
#define X 8
#define A 64

static uint64_t *pte(struct tmem *m, uint64_t table, unsigned idx)
{
	return (uint64_t *)gp(m, table) + idx;
}

static uint64_t mk(uint64_t pa, unsigned flags)
{
	return ((pa >> 12) << 10) | flags;
}

/* ---- an observer that knows which (page, kind) are derived now, and a
 * page_get that checks it was told first ---------------------------------- */

#define NDER 256
static struct {
	uint64_t page[NDER];
	int kind[NDER];
	int n[NDER];
} der;
static int derived_tlb, dropped_tlb;
static int page_gets, unannounced;

static int der_slot(uint64_t page, int kind, bool add)
{
	int free_i = -1;
	for (int i = 0; i < NDER; i++) {
		if (der.n[i] && der.page[i] == page && der.kind[i] == kind)
			return i;
		if (!der.n[i] && free_i < 0)
			free_i = i;
	}
	if (add && free_i >= 0) {
		der.page[free_i] = page;
		der.kind[free_i] = kind;
	}
	return add ? free_i : -1;
}

static void o_derived(void *arg, int kind, uint64_t page)
{
	int i = der_slot(page, kind, true);
	assert_true(i >= 0);
	der.n[i]++;
	derived_tlb += kind == CPU_DERIV_TLB;
}

static void o_dropped(void *arg, int kind, uint64_t page)
{
	int i = der_slot(page, kind, false);
	assert_true(i >= 0); /* never a drop without its derivation */
	der.n[i]--;
	dropped_tlb += kind == CPU_DERIV_TLB;
}

static int checked_page_get(void *o, int hart, uint64_t gpa, unsigned acc, struct cpu_page *out)
{
	uint64_t page = gpa & ~4095ull;
	page_gets++;
	if (der_slot(page, CPU_DERIV_TLB, false) < 0 && der_slot(page, CPU_DERIV_PT, false) < 0)
		unannounced++;
	return tmem_page_get(o, hart, gpa, acc, out);
}

static const struct cpu_mem_ops checked_ops = {
	.page_get = checked_page_get,
	.mmio_read = tmem_mmio_read,
	.mmio_write = tmem_mmio_write,
};

/* Sv39 with 4 KiB leaves only (no superpage entry may be live, so a
 * per-address fence stays per-address):
 *   VA 0x2000 -> CODE_PA (X), VA 0x5000 -> 0x80006000, VA 0x6000 -> 0x80007000 (R) */
static struct cpu *setup(struct tmem **mp)
{
	struct tmem *m = tmem_new();
	memset(&der, 0, sizeof(der));
	derived_tlb = dropped_tlb = page_gets = unannounced = 0;
	struct cpu_cfg cfg = {.hart_id = 0, .mem = &checked_ops, .mem_opaque = m,
			      .reset_pc = T_RAM_BASE, .obs = {o_derived, o_dropped, m}};
	assert_int_equal(cpu_create(&cfg, &m->cpu[0]), 0);
	struct cpu *c = m->cpu[0];
	emit_stop(gp(m, MHANDLER));
	cpu_set_csr(c, 0x305, MHANDLER);
	*pte(m, ROOT, 0) = mk(L1, V);
	*pte(m, L1, 0) = mk(L0, V);
	*pte(m, L0, 2) = mk(CODE_PA, V | X | A);
	*pte(m, L0, 5) = mk(0x80006000, V | R | A);
	*pte(m, L0, 6) = mk(0x80007000, V | R | A);
	for (uint64_t p = 0x80006000; p <= 0x80009000; p += 0x1000)
		*(uint64_t *)gp(m, p) = (p >> 12) & 0xf; /* 6, 7, 8, 9 */
	cpu_set_csr(c, 0x180, (8ull << 60) | (ROOT >> 12));
	*mp = m;
	return c;
}

/* Runs insns from VA 0x2000 in S-mode; ends with ecall (to M: stop). */
static void run_s(struct tmem *m, struct cpu *c, const uint32_t *insns, int n)
{
	uint32_t *p = gp(m, CODE_PA);
	for (int k = 0; k < n; k++)
		p[k] = insns[k];
	p[n] = ECALL;
	cpu_invalidate_gpa(c, CODE_PA, CPU_KIND_BIT(CPU_DERIV_CODE));
	cpu_set_priv(c, CPU_PRIV_S);
	cpu_set_pc(c, 0x2000);
	cpu_set_reg(c, 11, 0x5000);
	cpu_set_reg(c, 13, 0x6000);
	assert_int_equal(cpu_run(c, 10000), CPU_EXIT_STOPPED);
	uint64_t cause = 0;
	cpu_get_csr(c, 0x342, &cause);
	assert_int_equal(cause, 9); /* the ecall, not a fault */
}

static void test_full_flush_retires_all(void **state)
{
	struct tmem *m;
	struct cpu *c = setup(&m);
	const uint32_t loads[] = {LD(10, 11, 0), LD(12, 13, 0)};
	run_s(m, c, loads, 2);
	assert_int_equal(cpu_get_reg(c, 10), 6);
	assert_int_equal(cpu_get_reg(c, 12), 7);
	*pte(m, L0, 5) = mk(0x80008000, V | R | A);
	*pte(m, L0, 6) = mk(0x80009000, V | R | A);
	/* without a fence the TLB still maps the old pages */
	run_s(m, c, loads, 2);
	assert_int_equal(cpu_get_reg(c, 10), 6);
	int fills = derived_tlb;
	const uint32_t fenced[] = {SFENCE_VMA(0, 0), LD(10, 11, 0), LD(12, 13, 0)};
	run_s(m, c, fenced, 3);
	assert_int_equal(cpu_get_reg(c, 10), 8);
	assert_int_equal(cpu_get_reg(c, 12), 9);
	assert_true(derived_tlb >= fills + 3); /* code and both data pages refilled */
	assert_int_equal(unannounced, 0);
	tmem_free(m);
}

static void test_fence_va_is_selective(void **state)
{
	struct tmem *m;
	struct cpu *c = setup(&m);
	const uint32_t loads[] = {LD(10, 11, 0), LD(12, 13, 0)};
	run_s(m, c, loads, 2);
	*pte(m, L0, 5) = mk(0x80008000, V | R | A);
	*pte(m, L0, 6) = mk(0x80009000, V | R | A);
	const uint32_t fenced[] = {SFENCE_VMA(11, 0), LD(10, 11, 0), LD(12, 13, 0)};
	run_s(m, c, fenced, 3);
	assert_int_equal(cpu_get_reg(c, 10), 8); /* fenced address: new mapping */
	assert_int_equal(cpu_get_reg(c, 12), 7); /* the other kept its entry (allowed) */
	tmem_free(m);
}

/* Retired entries are reported dropped lazily, but never later than the
 * window's restart: after TLB_SLIDE + 1 (513) full flushes nothing is left. */
static void test_retired_entries_dropped_by_wrap(void **state)
{
	struct tmem *m;
	struct cpu *c = setup(&m);
	const uint32_t loads[] = {LD(10, 11, 0), LD(12, 13, 0)};
	run_s(m, c, loads, 2);
	assert_true(derived_tlb > dropped_tlb);
	cpu_flush_all(c);
	int after_one = dropped_tlb;
	for (int k = 0; k < 512; k++)
		cpu_flush_all(c);
	assert_int_equal(derived_tlb, dropped_tlb);
	assert_true(after_one <= dropped_tlb);
	/* and the engine still works after the wrap */
	run_s(m, c, loads, 2);
	assert_int_equal(cpu_get_reg(c, 10), 6);
	assert_int_equal(unannounced, 0);
	tmem_free(m);
}

/* Many satp/sfence flushes interleaved with accesses: always the current
 * mapping, and the observer's books balance. */
static void test_flush_storm(void **state)
{
	struct tmem *m;
	struct cpu *c = setup(&m);
	const uint32_t fenced[] = {SFENCE_VMA(0, 0), LD(10, 11, 0), LD(12, 13, 0)};
	for (int k = 0; k < 1200; k++) {
		uint64_t pa = (k & 1) ? 0x80008000 : 0x80006000;
		*pte(m, L0, 5) = mk(pa, V | R | A);
		run_s(m, c, fenced, 3);
		assert_int_equal(cpu_get_reg(c, 10), (k & 1) ? 8 : 6);
	}
	assert_true(derived_tlb - dropped_tlb <= 3 * 512);
	assert_int_equal(unannounced, 0);
	assert_true(page_gets > 0);
	tmem_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_flush_retires_all),
		cmocka_unit_test(test_fence_va_is_selective),
		cmocka_unit_test(test_retired_entries_dropped_by_wrap),
		cmocka_unit_test(test_flush_storm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
