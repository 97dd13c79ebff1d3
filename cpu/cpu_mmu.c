/*
 * Soft MMU: the per-hart soft TLB (QEMU-style host addend, separate
 * read/write/exec tags so that a write-trapped or code page keeps its fast
 * read mapping), the Sv39 walker with atomic A/D updates, the shadow walk
 * cache keyed by (root page table, VPN), and the slow paths of loads,
 * stores and AMOs (misaligned, MMIO, write-trapped, self-modifying code).
 *
 * Guest memory is reached only through cfg.mem->page_get.  vCPU thread only.
 */
#include <errno.h>
#include <string.h>

#include "cpu/cpu_int.h"

#define PTE_V (1ull << 0)
#define PTE_R (1ull << 1)
#define PTE_W (1ull << 2)
#define PTE_X (1ull << 3)
#define PTE_U (1ull << 4)
#define PTE_A (1ull << 6)
#define PTE_D (1ull << 7)
#define PTE_PPN(p) (((p) >> 10) & ((1ull << 44) - 1))
#define PTE_RESERVED (0x3ffull << 54)

static int page_fault_cause(unsigned acc)
{
	return acc == ACC_X ? EXC_INSN_PAGE : acc == ACC_W ? EXC_STORE_PAGE : EXC_LOAD_PAGE;
}

static int access_fault_cause(unsigned acc)
{
	return acc == ACC_X ? EXC_INSN_ACCESS : acc == ACC_W ? EXC_STORE_ACCESS : EXC_LOAD_ACCESS;
}

/* ---------------------------------------------------------------- TLB */

/* The entry holds a derivation (live, or retired by a window move). */
static inline bool tlb_valid(const struct tlb_entry *e)
{
	return (e->tag_r & e->tag_w & e->tag_x) != TLB_INVALID;
}

static void tlb_kill(struct cpu *c, struct tlb_entry *e)
{
	if (tlb_valid(e))
		cpu_obs(c, false, CPU_DERIV_TLB, *tlb_gpa(c, e));
	e->tag_r = e->tag_w = e->tag_x = TLB_INVALID;
}

/* O(1): the window moves on (cpu_int.h); once it reached the end of the
 * array, every entry is dropped and it starts over. */
void tlb_flush_mmu(struct cpu *c, int mmu)
{
	unsigned w = c->tlb_win[mmu] + 1;
	if (w > TLB_SLIDE) {
		for (int k = 0; k < TLB_ALLOC; k++)
			tlb_kill(c, &c->tlb[mmu][k]);
		w = 0;
	}
	c->tlb_win[mmu] = w;
	c->tlb_super[mmu] = false;
	if (mmu == c->dmmu)
		c->dtlb = &c->tlb[mmu][w];
	tb_jc_flush(c);
}

void tlb_flush_all(struct cpu *c)
{
	for (int m = 0; m < TLB_MMU_COUNT; m++)
		tlb_flush_mmu(c, m);
}

/* Retired entries are dropped too: the page is going (or changing). */
void tlb_flush_gpa(struct cpu *c, uint64_t gpa_page)
{
	for (int m = 0; m < TLB_MMU_COUNT; m++)
		for (int k = 0; k < TLB_ALLOC; k++)
			if (c->tlb_gpa[m][k] == gpa_page && tlb_valid(&c->tlb[m][k]))
				tlb_kill(c, &c->tlb[m][k]);
	tb_jc_flush(c);
}

/* The TLB is direct-mapped and its entries are 4 KiB even when they come
 * from a superpage: one slot per index, unless a superpage entry may be
 * live, whose other 4 KiB pieces sit in other slots (then the whole index,
 * which is O(1) too). */
void tlb_flush_va(struct cpu *c, uint64_t va)
{
	for (int m = 0; m < 2; m++) {
		if (c->tlb_super[m])
			tlb_flush_mmu(c, m);
		else
			tlb_kill(c, tlb_slot(c, m, va));
	}
	tb_jc_flush(c);
}

void tlb_drop_write(struct cpu *c, uint64_t gpa_page)
{
	for (int m = 0; m < TLB_MMU_COUNT; m++)
		for (int k = 0; k < TLB_ALLOC; k++)
			if (c->tlb_gpa[m][k] == gpa_page)
				c->tlb[m][k].tag_w = TLB_INVALID;
}

/* --------------------------------------------------------- walk cache */

static void wc_kill(struct cpu *c, struct walk_entry *w)
{
	if (!(w->root & 1))
		return;
	for (int k = 0; k < w->npt; k++)
		cpu_obs(c, false, CPU_DERIV_PT, w->pt[k]);
	w->root = 0;
}

void walk_cache_flush(struct cpu *c, bool all, uint64_t va)
{
	uint64_t vpn = (va >> PG_SHIFT) & ((1ull << 27) - 1);
	for (int k = 0; k < WC_SIZE; k++) {
		struct walk_entry *w = &c->wc[k];
		if (!(w->root & 1))
			continue;
		/* a superpage entry covers more than its own vpn */
		uint64_t span = 9ull * w->level;
		if (all || (w->vpn >> span) == (vpn >> span))
			wc_kill(c, w);
	}
}

void walk_cache_drop_pt(struct cpu *c, uint64_t gpa_page)
{
	for (int k = 0; k < WC_SIZE; k++) {
		struct walk_entry *w = &c->wc[k];
		if (!(w->root & 1))
			continue;
		for (int j = 0; j < w->npt; j++)
			if (w->pt[j] == gpa_page) {
				wc_kill(c, w);
				break;
			}
	}
}

/* ------------------------------------------------------------- walker */

/* Rights (CPU_PERM_*) a leaf PTE grants to an access from mmu index mmu
 * (0 = U, 1 = S), under the current SUM/MXR.  W only once D is set, so the
 * first store takes the walker and sets D. */
static unsigned pte_rights(const struct cpu *c, uint64_t pte, int mmu)
{
	unsigned r = 0;
	bool u = pte & PTE_U;
	if (mmu == 0 && !u)
		return 0;
	if (mmu == 1 && u && !(c->mstatus & MS_SUM))
		return 0;
	if (pte & PTE_R)
		r |= CPU_PERM_R;
	if (pte & PTE_X) {
		r |= CPU_PERM_X;
		if (c->mstatus & MS_MXR)
			r |= CPU_PERM_R;
	}
	if ((pte & PTE_W) && (pte & PTE_D))
		r |= CPU_PERM_W;
	if (mmu == 1 && u)
		r &= ~(unsigned)CPU_PERM_X;
	if (!(pte & PTE_A))
		r = 0;
	return r;
}

/* Sets A (and D for stores) in the PTE at host p with a compare-and-swap,
 * as a write to the page-table page (trace hooks included).  Returns false
 * when the PTE changed under us (the caller walks again). */
static bool pte_set_ad(struct cpu *c, uint64_t pte_gpa, uint64_t *p, uint64_t old, uint64_t nv)
{
	const struct cpu_mem_ops *ops = c->cfg.mem;
	uint64_t page = pte_gpa & PG_MASK;
	bool trapped = pageset_has(&c->trap_pages, page);
	if (trapped && ops->write_pre)
		ops->write_pre(c->cfg.mem_opaque, c->cfg.hart_id, pte_gpa, 8, nv);
	bool ok = __atomic_compare_exchange_n(p, &old, nv, false, __ATOMIC_SEQ_CST,
					      __ATOMIC_SEQ_CST);
	if (trapped && ops->write_post)
		ops->write_post(c->cfg.mem_opaque, c->cfg.hart_id, pte_gpa, 8, nv);
	if (ok && pageset_has(&c->code_pages, page))
		tb_invalidate_page(c, page);
	return ok;
}

/* Undoes the PT derivations a walk reported before failing or retrying. */
static int walk_undo(struct cpu *c, struct walk_entry *w, int cause)
{
	for (int k = 0; k < w->npt; k++)
		cpu_obs(c, false, CPU_DERIV_PT, w->pt[k]);
	w->npt = 0;
	return cause;
}

/* Each table page's derivation is reported before its page_get (so before
 * its PTE is read), so a store by another hart either is seen by the
 * read or notifies us (docs/trace.md); on success the caller owns them. */
static int walk(struct cpu *c, uint64_t root, uint64_t va, unsigned acc, int mmu,
		struct walk_entry *w)
{
	const struct cpu_mem_ops *ops = c->cfg.mem;
	w->npt = 0;
retry:
	walk_undo(c, w, 0);
	c->st.walks++;
	uint64_t a = root;
	for (int level = 2; level >= 0; level--) {
		uint64_t pte_gpa = a + ((va >> (PG_SHIFT + 9 * level)) & 511) * 8;
		struct cpu_page pg;
		/* before page_get, for the same reason as in tlb_fill */
		w->pt[w->npt++] = pte_gpa & PG_MASK;
		cpu_obs(c, true, CPU_DERIV_PT, pte_gpa & PG_MASK);
		if (ops->page_get(c->cfg.mem_opaque, c->cfg.hart_id, pte_gpa & PG_MASK, ACC_R,
				  &pg) != 0 ||
		    pg.mmio || !(pg.perms & CPU_PERM_R))
			return walk_undo(c, w, access_fault_cause(acc));
		uint64_t *p = (uint64_t *)((uint8_t *)pg.host + (pte_gpa & (PG_SIZE - 1)));
		uint64_t pte = __atomic_load_n(p, __ATOMIC_ACQUIRE);
		if (!(pte & PTE_V) || (!(pte & PTE_R) && (pte & PTE_W)) || (pte & PTE_RESERVED))
			return walk_undo(c, w, page_fault_cause(acc));
		if (!(pte & (PTE_R | PTE_X))) {
			if (pte & (PTE_A | PTE_D | PTE_U))
				return walk_undo(c, w, page_fault_cause(acc));
			a = PTE_PPN(pte) << PG_SHIFT;
			continue;
		}
		if (level > 0 && (PTE_PPN(pte) & ((1ull << (9 * level)) - 1)))
			return walk_undo(c, w, page_fault_cause(acc)); /* misaligned superpage */
		/* rights as if A/D were set, to decide whether to set them */
		unsigned r = pte_rights(c, pte | PTE_A | PTE_D, mmu);
		if (!(r & acc) || (acc == ACC_W && !(pte & PTE_W)))
			return walk_undo(c, w, page_fault_cause(acc));
		uint64_t need = PTE_A | (acc == ACC_W ? PTE_D : 0);
		if ((pte & need) != need) {
			struct cpu_page wp;
			if (ops->page_get(c->cfg.mem_opaque, c->cfg.hart_id, pte_gpa & PG_MASK,
					  ACC_W, &wp) != 0 ||
			    wp.mmio || !(wp.perms & CPU_PERM_W))
				return walk_undo(c, w, access_fault_cause(acc));
			p = (uint64_t *)((uint8_t *)wp.host + (pte_gpa & (PG_SIZE - 1)));
			if (!pte_set_ad(c, pte_gpa, p, pte, pte | need))
				goto retry;
			pte |= need;
		}
		w->pte = pte;
		w->level = (uint8_t)level;
		return 0;
	}
	return walk_undo(c, w, page_fault_cause(acc));
}

/* Virtual -> guest-physical for an access from mmu index mmu; returns 0 or
 * the exception cause.  *rights gets what the mapping allows this mmu. */
static int mmu_translate(struct cpu *c, uint64_t va, unsigned acc, int mmu, uint64_t *gpa,
			 unsigned *rights, bool *super)
{
	*super = false;
	if (mmu == 2) {
		*gpa = va;
		*rights = CPU_PERM_R | CPU_PERM_W | CPU_PERM_X;
		return 0;
	}
	if ((uint64_t)((int64_t)(va << 25) >> 25) != va)
		return page_fault_cause(acc);
	uint64_t root = (c->satp & ((1ull << 44) - 1)) << PG_SHIFT;
	uint64_t vpn = (va >> PG_SHIFT) & ((1ull << 27) - 1);
	struct walk_entry *w = &c->wc[(vpn ^ (root >> PG_SHIFT)) & (WC_SIZE - 1)];
	unsigned r;
	if (w->root == (root | 1) && w->vpn == vpn &&
	    ((r = pte_rights(c, w->pte, mmu)) & acc)) {
		c->st.walk_cache_hits++;
	} else {
		struct walk_entry nw;
		int cause = walk(c, root, va, acc, mmu, &nw);
		if (cause)
			return cause;
		wc_kill(c, w);
		*w = nw;
		w->root = root | 1;
		w->vpn = vpn; /* walk() reported the PT derivations */
		r = pte_rights(c, w->pte, mmu);
	}
	uint64_t off_mask = (1ull << (PG_SHIFT + 9 * w->level)) - 1;
	*gpa = ((PTE_PPN(w->pte) << PG_SHIFT) & ~off_mask) | (va & off_mask);
	*rights = r;
	*super = w->level > 0;
	return 0;
}

/* --------------------------------------------------------- TLB fill */

/* Translates va for acc through the TLB, filling it on a miss.  Returns 0
 * or the exception cause.
 *
 * The TLB derivation is reported BEFORE page_get (and undone when no entry
 * results): a memory layer that can take pages away (node/vm_dsm.c) checks
 * the page's presence inside page_get, so the subscription is visible to a
 * revoker before that check; either the revoker finds this hart or the
 * check sees the page gone (docs/trace.md, "Revocation"). */
static int tlb_fill(struct cpu *c, uint64_t va, unsigned acc, int mmu, struct access *out)
{
	const struct cpu_mem_ops *ops = c->cfg.mem;
	uint64_t gpa;
	unsigned rights;
	bool super;
	c->st.tlb_misses++;
	int cause = mmu_translate(c, va, acc, mmu, &gpa, &rights, &super);
	if (cause)
		return cause;
	uint64_t vpage = va & PG_MASK, page = gpa & PG_MASK;
	struct cpu_page pg = {0};
	cpu_obs(c, true, CPU_DERIV_TLB, page);
	if (ops->page_get(c->cfg.mem_opaque, c->cfg.hart_id, page, acc, &pg) != 0)
		cause = access_fault_cause(acc);
	else if (pg.mmio)
		cause = acc == ACC_X ? EXC_INSN_ACCESS : 0;
	else if (!(pg.perms & acc))
		cause = access_fault_cause(acc);
	if (cause || pg.mmio) {
		cpu_obs(c, false, CPU_DERIV_TLB, page); /* no entry: undo */
		out->gpa = gpa;
		out->host = NULL;
		return cause;
	}
	out->gpa = gpa;
	struct tlb_entry *e = tlb_slot(c, mmu, va);
	tlb_kill(c, e);
	e->addend = (uintptr_t)pg.host - (uintptr_t)vpage;
	*tlb_gpa(c, e) = page;
	unsigned ok = rights & pg.perms;
	uint64_t tag = vpage;
	e->tag_r = (ok & CPU_PERM_R) ? tag : TLB_INVALID;
	e->tag_x = (ok & CPU_PERM_X) ? tag : TLB_INVALID;
	e->tag_w = ((ok & CPU_PERM_W) && !pageset_has(&c->code_pages, page) &&
		    !pageset_has(&c->trap_pages, page))
			   ? tag
			   : TLB_INVALID;
	if (!tlb_valid(e))
		cpu_obs(c, false, CPU_DERIV_TLB, page); /* nothing usable: undo */
	c->tlb_super[mmu] |= super;
	out->host = (uint8_t *)pg.host + (va & (PG_SIZE - 1));
	return 0;
}

int data_access(struct cpu *c, uint64_t va, unsigned acc, struct access *out)
{
	struct tlb_entry *e = tlb_slot(c, c->dmmu, va);
	uint64_t tag = acc == ACC_R ? e->tag_r : e->tag_w;
	if (tag == (va & PG_MASK)) {
		out->host = (uint8_t *)(uintptr_t)(va + e->addend);
		out->gpa = *tlb_gpa(c, e) | (va & (PG_SIZE - 1));
		return 0;
	}
	int cause = tlb_fill(c, va, acc, c->dmmu, out);
	if (cause) {
		cpu_raise(c, (uint64_t)cause, va);
		return 1;
	}
	return 0;
}

int mem_fetch_page(struct cpu *c, uint64_t va, uint8_t **host, uint64_t *gpa)
{
	struct tlb_entry *e = tlb_slot(c, c->xmmu, va);
	if (e->tag_x != (va & PG_MASK)) {
		struct access a;
		int cause = tlb_fill(c, va, ACC_X, c->xmmu, &a);
		/* the fill may have moved the window (a trace note served
		 * during the walk's A/D update flushed the TLB) */
		e = tlb_slot(c, c->xmmu, va);
		if (!cause && e->tag_x != (va & PG_MASK))
			cause = EXC_INSN_ACCESS; /* mapped but not executable by the host side */
		if (cause) {
			cpu_raise(c, (uint64_t)cause, va);
			return 1;
		}
	}
	*host = (uint8_t *)(uintptr_t)((va & PG_MASK) + e->addend);
	*gpa = *tlb_gpa(c, e);
	return 0;
}

/* ------------------------------------------------- load/store slow paths */

uint64_t host_read(const uint8_t *p, unsigned size)
{
	switch (size) {
	case 1: return __atomic_load_n(p, __ATOMIC_RELAXED);
	case 2: if (!((uintptr_t)p & 1)) return __atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED); break;
	case 4: if (!((uintptr_t)p & 3)) return __atomic_load_n((const uint32_t *)p, __ATOMIC_RELAXED); break;
	case 8: if (!((uintptr_t)p & 7)) return __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED); break;
	}
	uint64_t v = 0;
	memcpy(&v, p, size); /* misaligned: no atomicity required */
	return v;
}

void host_write(uint8_t *p, unsigned size, uint64_t v)
{
	switch (size) {
	case 1: __atomic_store_n(p, (uint8_t)v, __ATOMIC_RELAXED); return;
	case 2: if (!((uintptr_t)p & 1)) { __atomic_store_n((uint16_t *)p, (uint16_t)v, __ATOMIC_RELAXED); return; } break;
	case 4: if (!((uintptr_t)p & 3)) { __atomic_store_n((uint32_t *)p, (uint32_t)v, __ATOMIC_RELAXED); return; } break;
	case 8: if (!((uintptr_t)p & 7)) { __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELAXED); return; } break;
	}
	memcpy(p, &v, size);
}

int mem_load_slow(struct cpu *c, uint64_t va, unsigned size, uint64_t *val)
{
	if (((va & (PG_SIZE - 1)) + size) > PG_SIZE) { /* crosses a page */
		uint64_t v = 0, b;
		for (unsigned k = 0; k < size; k++) {
			if (mem_load_slow(c, va + k, 1, &b))
				return 1;
			v |= b << (8 * k);
		}
		*val = v;
		return 0;
	}
	struct access a;
	if (data_access(c, va, ACC_R, &a))
		return 1;
	if (a.host) {
		*val = host_read(a.host, size);
		return 0;
	}
	c->st.mmio++;
	if (c->cfg.mem->mmio_read(c->cfg.mem_opaque, c->cfg.hart_id, a.gpa, size, val) != 0) {
		cpu_raise(c, EXC_LOAD_ACCESS, va);
		return 1;
	}
	return 0;
}

/* The store proper once translated: trap hooks, the write, code check. */
void store_commit(struct cpu *c, const struct access *a, unsigned size, uint64_t val,
			 bool atomic_done)
{
	uint64_t page = a->gpa & PG_MASK;
	const struct cpu_mem_ops *ops = c->cfg.mem;
	bool trapped = pageset_has(&c->trap_pages, page);
	if (trapped && ops->write_pre)
		ops->write_pre(c->cfg.mem_opaque, c->cfg.hart_id, a->gpa, size, val);
	if (!atomic_done)
		host_write(a->host, size, val);
	if (trapped) {
		c->st.trapped_writes++;
		if (ops->write_post)
			ops->write_post(c->cfg.mem_opaque, c->cfg.hart_id, a->gpa, size, val);
	}
	if (pageset_has(&c->code_pages, page)) {
		c->st.smc_invalidations++;
		tb_invalidate_page(c, page);
	}
}

int mem_store_slow(struct cpu *c, uint64_t va, unsigned size, uint64_t val)
{
	if (((va & (PG_SIZE - 1)) + size) > PG_SIZE) {
		/* Check both pages first so a fault on the second leaves no
		 * partial store behind. */
		struct access a;
		if (data_access(c, va, ACC_W, &a) || data_access(c, va + size - 1, ACC_W, &a))
			return 1;
		for (unsigned k = 0; k < size; k++)
			if (mem_store_slow(c, va + k, 1, val >> (8 * k)))
				return 1;
		return 0;
	}
	struct access a;
	if (data_access(c, va, ACC_W, &a))
		return 1;
	if (a.host == NULL) {
		c->st.mmio++;
		if (c->cfg.mem->mmio_write(c->cfg.mem_opaque, c->cfg.hart_id, a.gpa, size, val)) {
			cpu_raise(c, EXC_STORE_ACCESS, va);
			return 1;
		}
		/* A device write may raise an interrupt for this hart or ask it
		 * to stop: end the block so that takes effect right after it. */
		c->smc_exit = true;
		__atomic_fetch_or(&c->exit_req, EXIT_REQ_SMC, __ATOMIC_RELAXED);
		return 0;
	}
	store_commit(c, &a, size, val, false);
	return 0;
}
