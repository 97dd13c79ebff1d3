/* False sharing and ping-pong on one page: every hart increments its own
 * slot with plain (non-atomic) loads and stores, and the harts take turns
 * on a shared turn counter (plain store by the hart whose turn it is).
 * Page-granular single-writer coherence must lose no update. */
#include "../mp/mp.h"

#define ITERS 3000
#define TURNS 100
static volatile u64 slot[NHARTS] __attribute__((aligned(4096)));
static volatile u64 turn, done;

static void work(unsigned h)
{
	for (u64 i = 0; i < ITERS; i++)
		slot[h] = slot[h] + 1;
	for (u64 t = 0; t < TURNS; t++) {
		u64 t0 = clint_mtime();
		while (turn % NHARTS != h)
			if (clint_mtime() - t0 > MP_WAIT_TICKS) {
				rt_printf("hart %u: turn stuck at %lu\n", h, turn);
				rt_exit(252);
			}
		turn = turn + 1;
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
	for (unsigned h = 0; h < NHARTS; h++)
		CHECK_EQ(slot[h], ITERS);
	CHECK_EQ(turn, (u64)NHARTS * TURNS);
	rt_printf("dsm_falseshare: %d harts, %d checks passed\n", NHARTS, rt_check_no);
	return 0;
}
