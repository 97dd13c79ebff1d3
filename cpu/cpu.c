/*
 * The hart object: creation, the run loop (interrupts, wfi sleep, posted
 * work, stop requests between bursts of translated code), the cross-thread
 * entry points, and the page sets used by the TLB and translation cache.
 *
 * Cross-thread protocol: a requester changes state (mip bits, the work
 * queue, stop_req), then sets exit_req and broadcasts c->cond under c->lock.
 * The vCPU thread sees exit_req at its next block boundary, or wakes from
 * its wfi sleep, which checks its condition under the same lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "cpu/cpu_int.h"

/* ------------------------------------------------------------ pagesets */

static uint32_t ps_hash(uint64_t page, uint32_t cap)
{
	return (uint32_t)(((page >> PG_SHIFT) * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

static int ps_grow(struct pageset *s)
{
	uint32_t ncap = s->cap ? s->cap * 2 : 64;
	if (s->live * 4 < s->cap)
		ncap = s->cap; /* mostly tombstones: rehash in place size */
	uint64_t *ns = calloc(ncap, sizeof(uint64_t));
	if (ns == NULL)
		return -ENOMEM;
	for (uint32_t k = 0; k < s->cap; k++) {
		uint64_t v = s->slots[k];
		if (v & 1) {
			uint32_t h = ps_hash(v, ncap);
			while (ns[h])
				h = (h + 1) & (ncap - 1);
			ns[h] = v;
		}
	}
	free(s->slots);
	s->slots = ns;
	s->cap = ncap;
	s->used = s->live;
	return 0;
}

int pageset_add(struct pageset *s, uint64_t page)
{
	if (pageset_has(s, page))
		return 0;
	if ((s->used + 1) * 2 > s->cap && ps_grow(s) < 0)
		return -ENOMEM;
	uint32_t h = ps_hash(page, s->cap);
	while (s->slots[h] & 1)
		h = (h + 1) & (s->cap - 1);
	if (s->slots[h] == 0)
		s->used++;
	s->slots[h] = page | 1;
	s->live++;
	return 0;
}

bool pageset_has(const struct pageset *s, uint64_t page)
{
	if (s->live == 0)
		return false;
	uint32_t h = ps_hash(page, s->cap);
	for (;;) {
		uint64_t v = s->slots[h];
		if (v == 0)
			return false;
		if (v == (page | 1))
			return true;
		h = (h + 1) & (s->cap - 1);
	}
}

void pageset_del(struct pageset *s, uint64_t page)
{
	if (s->live == 0)
		return;
	uint32_t h = ps_hash(page, s->cap);
	for (;;) {
		uint64_t v = s->slots[h];
		if (v == 0)
			return;
		if (v == (page | 1)) {
			s->slots[h] = 2;
			s->live--;
			return;
		}
		h = (h + 1) & (s->cap - 1);
	}
}

void pageset_free(struct pageset *s)
{
	free(s->slots);
	memset(s, 0, sizeof(*s));
}

/* ------------------------------------------------------- create/destroy */

int cpu_create(const struct cpu_cfg *cfg, struct cpu **out)
{
	if (cfg == NULL || cfg->mem == NULL || cfg->mem->page_get == NULL ||
	    cfg->mem->mmio_read == NULL || cfg->mem->mmio_write == NULL)
		return -EINVAL;
	if ((cfg->obs.derived == NULL) != (cfg->obs.dropped == NULL))
		return -EINVAL;
	struct cpu *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->cfg = *cfg;
	c->pc = cfg->reset_pc;
	c->time_offset = cfg->time_offset;
	c->priv = CPU_PRIV_M;
	c->instret_limit = UINT64_MAX;
	c->jc_gen = 1;
	for (int m = 0; m < TLB_MMU_COUNT; m++)
		for (int k = 0; k < TLB_ALLOC; k++)
			c->tlb[m][k].tag_r = c->tlb[m][k].tag_w = c->tlb[m][k].tag_x = TLB_INVALID;
	cpu_update_mmu(c);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->work_tail = &c->work_head;
	(void)cpu_exec_labels();
#if defined(__x86_64__)
	const char *nn = getenv("SPANVM_NO_NATIVE");
	if (!cfg->no_native && !(nn && *nn && *nn != '0') && native_init(c) < 0)
		LOG_WARN("cpu", "hart %d: no executable memory: threaded code only", cfg->hart_id);
#endif
	*out = c;
	return 0;
}

void cpu_destroy(struct cpu *c)
{
	if (c == NULL)
		return;
	tb_flush_all(c);
	tb_reap(c);
	pageset_free(&c->code_pages);
	pageset_free(&c->trap_pages);
	native_fini(c);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

/* ----------------------------------------------------- cross-thread */

static void poke(struct cpu *c)
{
	__atomic_fetch_or(&c->exit_req, EXIT_REQ_EXT, __ATOMIC_RELEASE);
	pthread_mutex_lock(&c->lock);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

void cpu_kick(struct cpu *c)
{
	poke(c);
}

void cpu_request_stop(struct cpu *c)
{
	__atomic_store_n(&c->stop_req, 1, __ATOMIC_RELEASE);
	poke(c);
}

void cpu_set_irq(struct cpu *c, unsigned irq, bool level)
{
	if (level)
		__atomic_fetch_or(&c->mip, 1ull << irq, __ATOMIC_ACQ_REL);
	else
		__atomic_fetch_and(&c->mip, ~(1ull << irq), __ATOMIC_ACQ_REL);
	poke(c);
}

/* The hart is not running: runs fn on this thread, lock held on entry and
 * exit.  One such thread at a time (nesting on the same thread is fine),
 * and cpu_run waits until it is done: otherwise a hart whose thread enters
 * cpu_run just now would run guest code while fn changes its TLB or
 * translation cache (seen as a rare Linux hang: a remote fence to a hart
 * being started by SBI HSM). */
static void run_inline(struct cpu *c, void (*fn)(struct cpu *, void *), void *arg)
{
	bool nested = c->inline_busy && pthread_equal(c->inline_owner, pthread_self());
	if (!nested) {
		c->inline_busy = true;
		c->inline_owner = pthread_self();
	}
	pthread_mutex_unlock(&c->lock);
	fn(c, arg);
	pthread_mutex_lock(&c->lock);
	if (!nested) {
		c->inline_busy = false;
		pthread_cond_broadcast(&c->cond);
	}
}

int cpu_run_on(struct cpu *c, void (*fn)(struct cpu *, void *), void *arg, bool wait)
{
	struct work local, *w = &local;
	pthread_mutex_lock(&c->lock);
	while (!c->running && c->inline_busy && !pthread_equal(c->inline_owner, pthread_self()))
		pthread_cond_wait(&c->cond, &c->lock);
	if (c->running && pthread_equal(c->owner, pthread_self())) {
		pthread_mutex_unlock(&c->lock);
		fn(c, arg);
		return 0;
	}
	if (!c->running) {
		run_inline(c, fn, arg);
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	if (!wait) {
		w = malloc(sizeof(*w));
		if (w == NULL) {
			pthread_mutex_unlock(&c->lock);
			return -ENOMEM;
		}
	}
	w->fn = fn;
	w->arg = arg;
	w->wait = wait;
	w->done = false;
	w->next = NULL;
	*c->work_tail = w;
	c->work_tail = &w->next;
	__atomic_fetch_or(&c->exit_req, EXIT_REQ_EXT, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&c->cond);
	while (wait && !w->done)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* Runs the posted work on the vCPU thread (lock not held while fn runs). */
static void run_work(struct cpu *c)
{
	pthread_mutex_lock(&c->lock);
	while (c->work_head) {
		struct work *w = c->work_head;
		c->work_head = w->next;
		if (c->work_head == NULL)
			c->work_tail = &c->work_head;
		pthread_mutex_unlock(&c->lock);
		w->fn(c, w->arg);
		pthread_mutex_lock(&c->lock);
		if (w->wait) {
			w->done = true;
			pthread_cond_broadcast(&c->cond);
		} else {
			free(w);
		}
	}
	pthread_mutex_unlock(&c->lock);
}

void cpu_poll_work(struct cpu *c)
{
	run_work(c);
}

bool cpu_work_inline(struct cpu *c)
{
	pthread_mutex_lock(&c->lock);
	bool r = !c->running;
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* ------------------------------------------------------------ run loop */

static void wfi_sleep(struct cpu *c)
{
	pthread_mutex_lock(&c->lock);
	while (!(__atomic_load_n(&c->mip, __ATOMIC_ACQUIRE) & c->mie) &&
	       !(__atomic_load_n(&c->exit_req, __ATOMIC_ACQUIRE) & EXIT_REQ_EXT))
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	if (__atomic_load_n(&c->mip, __ATOMIC_ACQUIRE) & c->mie)
		c->wfi = false;
}

int cpu_run(struct cpu *c, uint64_t max_insns)
{
	int ret;
	pthread_mutex_lock(&c->lock);
	while (c->inline_busy) /* another thread is doing work on this hart */
		pthread_cond_wait(&c->cond, &c->lock);
	c->owner = pthread_self();
	c->running = true;
	pthread_mutex_unlock(&c->lock);
	c->instret_limit = max_insns ? c->instret + max_insns : UINT64_MAX;
	if (max_insns)
		__atomic_fetch_or(&c->exit_req, EXIT_REQ_BUDGET, __ATOMIC_RELAXED);
	for (;;) {
		if (__atomic_fetch_and(&c->exit_req, EXIT_REQ_BUDGET, __ATOMIC_ACQ_REL) &
		    EXIT_REQ_EXT) {
			run_work(c);
			if (__atomic_exchange_n(&c->stop_req, 0, __ATOMIC_ACQ_REL)) {
				ret = CPU_EXIT_STOPPED;
				break;
			}
		}
		if (c->instret >= c->instret_limit) {
			ret = CPU_EXIT_BUDGET;
			break;
		}
		cpu_check_irq(c);
		if (c->wfi) {
			wfi_sleep(c);
			continue;
		}
		if (c->tb_count > TB_MAX_BLOCKS || native_full(c)) {
			tb_flush_all(c);
			tb_reap(c);
			native_reset(c); /* no block refers to native code now */
		}
		tb_reap(c);
		c->smc_exit = false;
		c->in_exec = true;
		cpu_exec_blocks(c);
		c->in_exec = false;
		tb_reap(c);
	}
	pthread_mutex_lock(&c->lock);
	c->running = false;
	c->inline_busy = true; /* drain the queue before others may work inline */
	c->inline_owner = pthread_self();
	pthread_mutex_unlock(&c->lock);
	run_work(c); /* whoever waits must not wait forever */
	pthread_mutex_lock(&c->lock);
	c->inline_busy = false;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	c->instret_limit = UINT64_MAX;
	__atomic_fetch_and(&c->exit_req, ~EXIT_REQ_BUDGET, __ATOMIC_RELAXED);
	return ret;
}

/* ------------------------------------------------- invalidation API */

struct inval_req {
	uint64_t page;
	unsigned kinds;
	bool on;
	int ret;
};

static void do_invalidate(struct cpu *c, void *arg)
{
	struct inval_req *r = arg;
	if (r->kinds & CPU_KIND_BIT(CPU_DERIV_CODE))
		tb_invalidate_page(c, r->page);
	if (r->kinds & CPU_KIND_BIT(CPU_DERIV_TLB))
		tlb_flush_gpa(c, r->page);
	if (r->kinds & CPU_KIND_BIT(CPU_DERIV_PT)) {
		/* TLB entries came from those walks: drop the translated ones */
		walk_cache_drop_pt(c, r->page);
		tlb_flush_mmu(c, 0);
		tlb_flush_mmu(c, 1);
	}
}

void cpu_invalidate_gpa(struct cpu *c, uint64_t gpa_page, unsigned kinds)
{
	struct inval_req r = {.page = gpa_page & PG_MASK, .kinds = kinds};
	cpu_run_on(c, do_invalidate, &r, true);
}

static void do_flush_all(struct cpu *c, void *arg)
{
	(void)arg;
	tb_flush_all(c);
	tlb_flush_all(c);
	walk_cache_flush(c, true, 0);
}

void cpu_flush_all(struct cpu *c)
{
	cpu_run_on(c, do_flush_all, NULL, true);
}

static void do_flush_tlb(struct cpu *c, void *arg)
{
	(void)arg;
	tlb_flush_mmu(c, 0);
	tlb_flush_mmu(c, 1);
	if (!c->cfg.retain_walks)
		walk_cache_flush(c, true, 0);
}

void cpu_flush_tlb(struct cpu *c)
{
	cpu_run_on(c, do_flush_tlb, NULL, true);
}

static void do_write_trap(struct cpu *c, void *arg)
{
	struct inval_req *r = arg;
	if (r->on) {
		r->ret = pageset_add(&c->trap_pages, r->page);
		tlb_drop_write(c, r->page);
	} else {
		pageset_del(&c->trap_pages, r->page);
	}
}

int cpu_set_write_trap(struct cpu *c, uint64_t gpa_page, bool on)
{
	struct inval_req r = {.page = gpa_page & PG_MASK, .on = on};
	cpu_run_on(c, do_write_trap, &r, true);
	return r.ret;
}

/* ------------------------------------------------------------ accessors */

int cpu_hart_id(const struct cpu *c)
{
	return c->cfg.hart_id;
}

uint64_t cpu_get_reg(const struct cpu *c, unsigned r)
{
	return r < 32 && r != 0 ? c->x[r] : 0;
}

void cpu_set_reg(struct cpu *c, unsigned r, uint64_t v)
{
	if (r != 0 && r < 32)
		c->x[r] = v;
}

uint64_t cpu_get_pc(const struct cpu *c)
{
	return c->pc;
}

void cpu_set_pc(struct cpu *c, uint64_t pc)
{
	c->pc = pc;
}

int cpu_get_priv(const struct cpu *c)
{
	return c->priv;
}

void cpu_set_priv(struct cpu *c, int priv)
{
	c->priv = priv;
	cpu_update_mmu(c);
}

void cpu_set_time_offset(struct cpu *c, int64_t offset)
{
	c->time_offset = offset;
}

void cpu_get_stats(const struct cpu *c, struct cpu_stats *out)
{
	*out = c->st;
	out->instret = c->instret;
}
