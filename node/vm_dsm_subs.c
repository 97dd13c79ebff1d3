/*
 * Per-page counters for node/vm_dsm.c: how many secondary structures (TLB
 * entries, translated blocks, cached walks) a hart, and the node as a
 * whole, derived from each guest page.  A chained hash map; the caller
 * holds the lock that guards the map (the hart's or the node's).
 */
#include <stdlib.h>

#include "node/vm_dsm_int.h"

struct vmd_pm_ent {
	struct vmd_pm_ent *next;
	uint64_t page;
	uint32_t n;
};

static unsigned bucket(uint64_t page)
{
	return (unsigned)((page >> 12) * 0x9e3779b97f4a7c15ull >> 56) % VMD_PMAP_BUCKETS;
}

int vmd_pmap_add(struct vmd_pmap *m, uint64_t page, int delta, uint32_t *after)
{
	struct vmd_pm_ent **pp = &m->b[bucket(page)], *e;

	for (e = *pp; e && e->page != page; pp = &e->next, e = e->next)
		;
	if (!e) {
		if (delta < 0) { /* a drop we never saw derived: ignore */
			*after = 0;
			return 0;
		}
		if (!(e = calloc(1, sizeof(*e))))
			return -1;
		e->page = page;
		e->next = m->b[bucket(page)];
		m->b[bucket(page)] = e;
		pp = &m->b[bucket(page)];
	}
	if (delta < 0 && e->n < (uint32_t)-delta)
		e->n = 0;
	else
		e->n += (uint32_t)delta;
	*after = e->n;
	if (e->n == 0) {
		for (pp = &m->b[bucket(page)]; *pp != e; pp = &(*pp)->next)
			;
		*pp = e->next;
		free(e);
	}
	return 0;
}

uint32_t vmd_pmap_get(const struct vmd_pmap *m, uint64_t page)
{
	for (const struct vmd_pm_ent *e = m->b[bucket(page)]; e; e = e->next)
		if (e->page == page)
			return e->n;
	return 0;
}

void vmd_pmap_clear(struct vmd_pmap *m)
{
	for (unsigned i = 0; i < VMD_PMAP_BUCKETS; i++) {
		struct vmd_pm_ent *e = m->b[i];
		while (e) {
			struct vmd_pm_ent *n = e->next;
			free(e);
			e = n;
		}
		m->b[i] = NULL;
	}
}
