/* Sv39 page-table construction for tests.  Pages come from a static pool
 * (shared by all harts, guarded by a lock); tables are never freed. */
#include "rt.h"

#define POOL_PAGES 96
static uint8_t pool[POOL_PAGES][4096] __attribute__((aligned(4096)));
static unsigned pool_used;
static volatile int pool_lock;

void *rt_page_alloc(void)
{
	rt_spin_lock(&pool_lock);
	if (pool_used == POOL_PAGES) {
		rt_spin_unlock(&pool_lock);
		rt_printf("page pool exhausted\n");
		rt_exit(203);
	}
	void *p = pool[pool_used++];
	rt_spin_unlock(&pool_lock);
	rt_memset(p, 0, 4096);
	return p;
}

u64 *pt_alloc(void) { return rt_page_alloc(); }

static unsigned vpn(u64 va, int level) { return (va >> (12 + 9 * level)) & 0x1ff; }

void pt_map(u64 *root, u64 va, u64 pa, int level, u64 flags)
{
	u64 *t = root;
	for (int l = 2; l > level; l--) {
		u64 *e = &t[vpn(va, l)];
		if (!(*e & PTE_V))
			*e = (((u64)pt_alloc() >> 12) << 10) | PTE_V;
		t = (u64 *)((*e >> 10) << 12);
	}
	t[vpn(va, level)] = ((pa >> 12) << 10) | flags;
}

u64 *pt_pte(u64 *root, u64 va)
{
	u64 *t = root;
	for (int l = 2; l >= 0; l--) {
		u64 *e = &t[vpn(va, l)];
		if (!(*e & PTE_V))
			return NULL;
		if (*e & PTE_RWX)
			return e;
		t = (u64 *)((*e >> 10) << 12);
	}
	return NULL;
}
