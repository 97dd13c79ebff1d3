/* Helpers for multi-hart tests.  NHARTS comes from the build (the hart
 * count the test is registered with; run with --harts NHARTS / -smp
 * NHARTS).  mp_arrive() is a one-shot start barrier with a time limit, so
 * a run with too few harts fails with a message instead of hanging. */
#ifndef GUEST_MP_H
#define GUEST_MP_H
#include "rt.h"

#ifndef NHARTS
#define NHARTS 2
#endif
#define MP_WAIT_TICKS (10000000ul * 20) /* 20 s of mtime at 10 MHz */

static volatile int mp_arrived;

static inline void mp_arrive(void)
{
	__atomic_fetch_add(&mp_arrived, 1, __ATOMIC_ACQ_REL);
	u64 t0 = clint_mtime();
	while (__atomic_load_n(&mp_arrived, __ATOMIC_ACQUIRE) < NHARTS) {
		if (clint_mtime() - t0 > MP_WAIT_TICKS) {
			rt_printf("hart %u: only %d of %d harts arrived (run with %d harts)\n", rt_hartid(),
				  mp_arrived, NHARTS, NHARTS);
			rt_exit(250);
		}
	}
}

/* A hart with nothing (more) to do. */
static inline __attribute__((noreturn)) void mp_park(void)
{
	for (;;)
		asm volatile("wfi");
}

/* secondary_main of a guest where every hart runs work(h) once (hart 0 from
 * main): harts beyond NHARTS park at once, the others meet at the start
 * barrier, work, then park. */
static inline __attribute__((noreturn)) void mp_secondary_work(unsigned h,
								void (*work)(unsigned))
{
	if (h < NHARTS) {
		mp_arrive();
		work(h);
	}
	mp_park();
}

/* wait until *p == v (or fail after MP_WAIT_TICKS) */
static inline void mp_wait_eq(volatile u64 *p, u64 v, const char *what)
{
	u64 t0 = clint_mtime();
	while (__atomic_load_n(p, __ATOMIC_ACQUIRE) != v)
		if (clint_mtime() - t0 > MP_WAIT_TICKS) {
			rt_printf("hart %u: timeout waiting for %s == %lu (is %lu)\n", rt_hartid(), what, v, *p);
			rt_exit(251);
		}
}
#endif
