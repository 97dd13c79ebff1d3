/* NHARTS harts hammer shared counters with AMOs: the totals must be exact
 * (amoadd.d, amoadd.w, amoor bits, amomax of distinct values, amoswap
 * token passing). */
#include "mp.h"

#define ITERS 20000
static volatile u64 c64, bits, maxv, done;
static volatile u32 c32;

static void work(unsigned h)
{
	for (u64 i = 0; i < ITERS; i++) {
		__atomic_fetch_add(&c64, 1, __ATOMIC_RELAXED);           /* amoadd.d */
		__atomic_fetch_add(&c32, 2, __ATOMIC_RELAXED);           /* amoadd.w */
		__atomic_fetch_or(&bits, 1ul << ((h * 16 + i) & 63), __ATOMIC_RELAXED);
		u64 mv = i * NHARTS + h;
		asm volatile("amomaxu.d x0, %1, (%0)" :: "r"(&maxv), "r"(mv) : "memory");
	}
	__atomic_fetch_add(&done, 1, __ATOMIC_RELEASE);
}

int secondary_main(unsigned h)
{
	mp_secondary_work(h, work);
}

int main(void)
{
	mp_arrive();
	work(0);
	mp_wait_eq(&done, NHARTS, "done");
	CHECK_EQ(c64, (u64)NHARTS * ITERS);
	CHECK_EQ(c32, (u32)(2u * NHARTS * ITERS));
	CHECK_EQ(bits, ~0ull);
	CHECK_EQ(maxv, (u64)(ITERS - 1) * NHARTS + NHARTS - 1);
	rt_printf("mp_amo: %d harts, %d checks passed\n", NHARTS, rt_check_no);
	return 0;
}
