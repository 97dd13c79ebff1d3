/* Store buffering across nodes: hart 0 stores x = r then loads y, hart 1
 * stores y = r then loads x, each with fence rw,rw between.  Sequential
 * consistency of the fenced pair forbids both loads seeing the previous
 * round's value.  x and y sit on different pages (different homes). */
#include "../mp/mp.h"

#define ROUNDS 300
static volatile u64 x __attribute__((aligned(4096)));
static volatile u64 y __attribute__((aligned(4096)));
static volatile u64 go, done1, r1;

int secondary_main(unsigned h)
{
	if (h != 1)
		for (;;)
			asm volatile("wfi");
	mp_arrive();
	for (u64 r = 1; r <= ROUNDS; r++) {
		mp_wait_eq(&go, r, "go");
		y = r;
		asm volatile("fence rw, rw" ::: "memory");
		r1 = x;
		__atomic_store_n(&done1, r, __ATOMIC_RELEASE);
	}
	for (;;)
		asm volatile("wfi");
}

int main(void)
{
	u64 both_old = 0;
	mp_arrive();
	for (u64 r = 1; r <= ROUNDS; r++) {
		__atomic_store_n(&go, r, __ATOMIC_RELEASE);
		x = r;
		asm volatile("fence rw, rw" ::: "memory");
		u64 r0 = y;
		mp_wait_eq(&done1, r, "done1");
		if (r0 < r && r1 < r)
			both_old++;
	}
	CHECK_EQ(both_old, 0);
	rt_printf("dsm_sb: %d rounds, %d checks passed\n", ROUNDS, rt_check_no);
	return 0;
}
