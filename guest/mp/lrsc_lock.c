/* An LR/SC spinlock guards a non-atomic read-modify-write of a shared
 * counter and an owner word: the final count is exact and no hart ever
 * sees another inside the critical section. */
#include "mp.h"

#define ITERS 5000
static volatile u64 lock, counter, owner, done, violations;

static void lock_acquire(volatile u64 *l)
{
	u64 tmp;
	asm volatile("1: lr.d.aq %0, (%1)\n bnez %0, 1b\n sc.d %0, %2, (%1)\n bnez %0, 1b"
		     : "=&r"(tmp) : "r"(l), "r"(1ul) : "memory");
}

static void lock_release(volatile u64 *l) { asm volatile("amoswap.d.rl x0, x0, (%0)" :: "r"(l) : "memory"); }

static void work(unsigned h)
{
	for (int i = 0; i < ITERS; i++) {
		lock_acquire(&lock);
		owner = h + 1;
		u64 v = counter; /* plain load / store: only the lock makes this safe */
		for (volatile int k = 0; k < (i & 7); k++)
			;
		counter = v + 1;
		if (owner != h + 1)
			violations++;
		owner = 0;
		lock_release(&lock);
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
	CHECK_EQ(counter, (u64)NHARTS * ITERS);
	CHECK_EQ(violations, 0);
	CHECK_EQ(lock, 0);
	rt_printf("mp_lrsc: %d harts, %d checks passed\n", NHARTS, rt_check_no);
	return 0;
}
