/* Sieve of Eratosthenes up to 2^21, repeated; the prime count must be
 * pi(2^21) = 155611, and primes are spot-checked by trial division. */
#include "work.h"

#define LIMIT (1u << 21)
#define REPS 60
static uint8_t composite[LIMIT];

static int is_prime_slow(u32 n)
{
	if (n < 2)
		return 0;
	for (u32 d = 2; d * d <= n; d++)
		if (n % d == 0)
			return 0;
	return 1;
}

int main(void)
{
	u32 count = 0;
	for (int r = 0; r < REPS; r++) {
		for (u32 i = 0; i < LIMIT; i++)
			composite[i] = 0;
		count = 0;
		for (u32 i = 2; i < LIMIT; i++) {
			if (composite[i])
				continue;
			count++;
			for (u64 j = (u64)i * i; j < LIMIT; j += i)
				composite[j] = 1;
		}
	}
	CHECK_EQ(count, 155611);
	u64 s = 99;
	for (int k = 0; k < 200; k++) {
		u32 n = 2 + (u32)(xorshift(&s) % (LIMIT - 2));
		CHECK_EQ(!composite[n], is_prime_slow(n));
		rt_check_no--;
	}
	rt_check_no++;
	return work_done("sieve", count);
}
