/* Message passing: hart 0 writes a message, fence w,w, then a sequence
 * flag; every other hart waits for the flag, fence r,r, and checks the
 * whole message, then acknowledges.  Thousands of rounds. */
#include "mp.h"

#define ROUNDS 300
#define WORDS 16
static volatile u64 msg[WORDS], seq, acks, bad;

static u64 word(u64 r, int i) { return r * 0x9e3779b97f4a7c15ull + (u64)i; }

int secondary_main(unsigned h)
{
	if (h >= NHARTS)
		for (;;)
			asm volatile("wfi");
	mp_arrive();
	for (u64 r = 1; r <= ROUNDS; r++) {
		mp_wait_eq(&seq, r, "seq");
		asm volatile("fence r, r" ::: "memory");
		for (int i = 0; i < WORDS; i++)
			if (msg[i] != word(r, i))
				__atomic_fetch_add(&bad, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&acks, 1, __ATOMIC_RELEASE);
	}
	for (;;)
		asm volatile("wfi");
}

int main(void)
{
	mp_arrive();
	for (u64 r = 1; r <= ROUNDS; r++) {
		for (int i = 0; i < WORDS; i++)
			msg[i] = word(r, i);
		asm volatile("fence w, w" ::: "memory");
		seq = r;
		mp_wait_eq(&acks, r * (NHARTS - 1), "acks");
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(acks, (u64)ROUNDS * (NHARTS - 1));
	rt_printf("mp_msg: %d harts, %d rounds, %d checks passed\n", NHARTS, ROUNDS, rt_check_no);
	return 0;
}
