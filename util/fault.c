#include "util/util.h"

/* One armed site at a time is all the k = 1..N unwinding tests need. */
static int armed_site = -1;
static unsigned armed_k;
static unsigned hits;

void util_fault_arm(int site, unsigned k)
{
	__atomic_store_n(&hits, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&armed_k, k, __ATOMIC_RELAXED);
	__atomic_store_n(&armed_site, site, __ATOMIC_RELEASE);
}

void util_fault_disarm(void)
{
	__atomic_store_n(&armed_site, -1, __ATOMIC_RELEASE);
}

bool util_fault_hit(int site)
{
	if (__atomic_load_n(&armed_site, __ATOMIC_ACQUIRE) != site)
		return false;
	unsigned n = __atomic_add_fetch(&hits, 1, __ATOMIC_RELAXED);
	return n == __atomic_load_n(&armed_k, __ATOMIC_RELAXED);
}
