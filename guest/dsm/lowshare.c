/* A low-sharing parallel workload (bench/dsm "lowshare_guest"): each hart
 * scrambles its own 64 KiB (its own pages) PASSES times and adds to one
 * shared counter, with an AMO, once every SHARE_PASSES passes.  Run on one
 * node or with the harts on different nodes, it shows what the DSM costs a
 * program that shares little.  Checks: the shared total is exact, and the
 * weighted checksum of each hart's final array, as hart 0 reads it (its
 * pages pulled through the DSM), equals the one the hart computed itself.
 * Prints the parallel part's time (start barrier to the last hart done) by
 * the 10 MHz mtime, which spanvm keeps in step across nodes. */
#include "../mp/mp.h"

#define WORDS 8192 /* 64 KiB: 16 pages per hart */
#define PASSES 16384
#define SHARE_PASSES 256

static u64 priv[NHARTS][WORDS] __attribute__((aligned(4096)));
static volatile u64 shared_total __attribute__((aligned(4096)));
static volatile u64 sums[NHARTS] __attribute__((aligned(4096)));
static volatile u64 done;

static u64 weighted(const u64 *p)
{
	u64 s = 0;
	for (u64 i = 0; i < WORDS; i++)
		s += p[i] * (i + 1);
	return s;
}

static void work(unsigned h)
{
	u64 *p = priv[h], x = 0x9e3779b97f4a7c15ull * (h + 1);

	for (int pass = 0; pass < PASSES; pass++) {
		for (u64 i = 0; i < WORDS; i++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			p[i] ^= x >> (pass & 15);
		}
		if (pass % SHARE_PASSES == 0)
			__atomic_fetch_add(&shared_total, 1, __ATOMIC_RELAXED);
	}
	sums[h] = weighted(p);
	__atomic_fetch_add(&done, 1, __ATOMIC_RELEASE);
}

int secondary_main(unsigned h)
{
	mp_secondary_work(h, work);
}

int main(void)
{
	mp_arrive();
	u64 t0 = clint_mtime();
	work(0);
	mp_wait_eq(&done, NHARTS, "done");
	u64 t1 = clint_mtime();
	CHECK_EQ(shared_total, (u64)NHARTS * (PASSES / SHARE_PASSES));
	for (unsigned h = 0; h < NHARTS; h++)
		CHECK_EQ(weighted(priv[h]), sums[h]);
	rt_printf("dsm_lowshare: %d harts, parallel part %lu us, %d checks passed\n", NHARTS,
		  (t1 - t0) / 10, rt_check_no);
	return 0;
}
