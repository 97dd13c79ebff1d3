/*
 * cpu/: several harts on real threads sharing the test RAM: AMO and LR/SC
 * counters must be exact; cpu_run_on runs work on the hart's own thread at
 * a block boundary of a guest spinning forever; cpu_request_stop ends it.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "test_cpu_util.h"

#define NHARTS 4
#define ITERS 20000
#define CTR (T_RAM_BASE + 0x10000)
#define CTR2 (T_RAM_BASE + 0x10040)
#define CTR3 (T_RAM_BASE + 0x10080)
#define BNEZ(rs, off) enc_b(1, rs, 0, off)

static void *hart_thread(void *arg)
{
	cpu_run(arg, 0);
	return NULL;
}

/* Per hart: ITERS x (amoadd.d; lr/sc increment of a 64-bit and a 32-bit
 * counter), then stop. */
static void build_counter_prog(struct tmem *m)
{
	uint32_t *p = gp(m, T_RAM_BASE);
	/* a0 = CTR, a2 = ITERS, a3 = CTR2, a4 = CTR3 are set from outside */
	*p++ = ADDI(0, 0, 0);
	*p++ = ADDI(11, 0, 1);
	*p++ = ADDI(0, 0, 0);
	*p++ = ADDI(0, 0, 0);
	/* loop: */
	*p++ = AMOADD_D(0, 10, 11);
	*p++ = enc_r(0x2f, 3, 0x02 << 2, 5, 13, 0); /* lr.d t0, (a3) */
	*p++ = ADDI(5, 5, 1);
	*p++ = enc_r(0x2f, 3, 0x03 << 2, 6, 13, 5);  /* sc.d t1, t0, (a3) */
	*p++ = BNEZ(6, -12);
	*p++ = enc_r(0x2f, 2, 0x02 << 2, 7, 14, 0);  /* lr.w t2, (a4) */
	*p++ = ADDI(7, 7, 1);
	*p++ = enc_r(0x2f, 2, 0x03 << 2, 6, 14, 7);  /* sc.w t1, t2, (a4) */
	*p++ = BNEZ(6, -12);
	*p++ = ADDI(12, 12, -1);
	*p++ = BNEZ(12, -40);
	p = emit_stop(p);
}

static void test_counters(void **state)
{
	struct tmem *m = tmem_new();
	build_counter_prog(m);
	pthread_t t[NHARTS];
	for (int h = 0; h < NHARTS; h++) {
		struct cpu *c = tmem_cpu(m, h, false);
		assert_non_null(c);
		cpu_set_reg(c, 10, CTR);
		cpu_set_reg(c, 12, ITERS);
		cpu_set_reg(c, 13, CTR2);
		cpu_set_reg(c, 14, CTR3);
	}
	for (int h = 0; h < NHARTS; h++)
		pthread_create(&t[h], NULL, hart_thread, m->cpu[h]);
	for (int h = 0; h < NHARTS; h++)
		pthread_join(t[h], NULL);
	assert_int_equal(m->stops, NHARTS);
	assert_int_equal(*(uint64_t *)gp(m, CTR), (uint64_t)NHARTS * ITERS);
	assert_int_equal(*(uint64_t *)gp(m, CTR2), (uint64_t)NHARTS * ITERS);
	assert_int_equal(*(uint32_t *)gp(m, CTR3), (uint32_t)NHARTS * ITERS);
	tmem_free(m);
}

struct probe {
	pthread_t hart_thread;
	pthread_t ran_on;
	uint64_t pc_seen;
	int calls;
};

static void probe_fn(struct cpu *c, void *arg)
{
	struct probe *p = arg;
	p->ran_on = pthread_self();
	p->pc_seen = cpu_get_pc(c);
	p->calls++;
}

/* A guest spinning in a tight loop still runs posted work and stops. */
static void test_run_on_and_stop(void **state)
{
	struct tmem *m = tmem_new();
	struct cpu *c = tmem_cpu(m, 0, false);
	uint32_t *p = gp(m, T_RAM_BASE);
	p[0] = ADDI(6, 0, 1);
	p[1] = LUI(31, T_MMIO_STOP >> 12);
	p[2] = SD(6, 31, 8);                  /* "running" flag via MMIO */
	p[3] = ADDI(5, 5, 1);
	p[4] = JAL(0, -4);
	struct probe pr = {0};
	pthread_create(&pr.hart_thread, NULL, hart_thread, c);
	while (__atomic_load_n(&m->mmio_reg, __ATOMIC_ACQUIRE) != 1)
		sched_yield();
	for (int k = 0; k < 3; k++)
		assert_int_equal(cpu_run_on(c, probe_fn, &pr, true), 0);
	/* the work ran on the hart's thread, at a block boundary */
	assert_int_equal(pr.calls, 3);
	assert_true(pthread_equal(pr.ran_on, pr.hart_thread));
	assert_true(pr.pc_seen == T_RAM_BASE + 12 || pr.pc_seen == T_RAM_BASE + 16);
	/* invalidations from another thread are posted the same way */
	cpu_invalidate_gpa(c, T_RAM_BASE, CPU_KINDS_ALL);
	cpu_flush_all(c);
	cpu_request_stop(c);
	pthread_join(pr.hart_thread, NULL);
	assert_true(cpu_get_reg(c, 5) > 0);
	tmem_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counters),
		cmocka_unit_test(test_run_on_and_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
