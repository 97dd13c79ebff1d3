/*
 * Glue between trace/ and the engine: one trace table per node, one
 * sub-monitor per hart (claim 22).  Shared by the single-node VM (`spanvm
 * run`, vm_run.c through vm_trace_*) and the multi-node glue (vm_dsm.c
 * through vt_*): it wraps the hart's memory interface and observer, so it
 * knows nothing of what lies beneath (flat RAM or the DSM).
 *
 * - The engine's observer (derived/dropped on the vCPU thread) feeds the
 *   hart's sub-monitor.  A TLB entry for a write-traced page gets a write
 *   trap at once (cpu_set_write_trap from the vCPU thread acts at once).
 * - Stores to write-trapped pages reach write_pre/write_post (the "fault"
 *   of claim 13): tr_sub_write_begin/_end run the pre- or post-write
 *   protocol around the engine's store.  When no write trace is left on
 *   the page the hart stops trapping it (except the HTIF tohost page).
 * - page_get for writing (the walker's A/D update, a TLB fill for a store)
 *   turns the trap on first when the page is write-traced, so A/D updates
 *   to a traced page-table page are trace events too.
 * - kick (the "IPI"): cpu_run_on(..., wait=false) posts tr_sub_serve to the
 *   hart's next block boundary and wakes it from wfi.  When the hart is not
 *   running cpu_run_on runs it at once on the caller's thread; serve_mu
 *   keeps two such callers apart.
 * - Revocation (vm_dsm.c: vt_revoke = tr_revoke) and the node-wide
 *   subscription callback (vt_create_cfg: tr_cfg.on_page) make this table
 *   the multi-node glue's one record of who derived what; a kick hook lets
 *   it wake harts blocked in dsm_fault.  A hart that is not running is
 *   served on the kicker's thread with tr_sub_serve_now.
 * Threads: everything per hart runs on that hart's thread except kick.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/vm_dsm_int.h"
#include "node/vm_int.h"
#include "trace/trace.h"
#include "util/util.h"

struct vt_hart {
	struct vm_trace *vt;
	int id;
	struct cpu *cpu;
	struct tr_sub *sub;
	const struct cpu_mem_ops *base; /* the memory interface wrapped */
	void *base_opaque;
	pthread_mutex_t serve_mu;
	/* Pages this glue turned the write trap on for (vCPU thread only): a
	 * mirror of the engine's set, so that refilling a TLB entry of a traced
	 * page (every sfence.vma) does not rescan the TLB each time. */
	uint64_t *trapped;
	size_t trap_cap, trap_len;
};

struct vm_trace {
	struct tr_table *t;
	uint64_t pinned_trap;      /* page that must stay trapped (HTIF tohost), or ~0 */
	void (*kick_hook)(void *); /* after each kick (vm_dsm.c: wake harts in dsm_fault) */
	void *kick_arg;
	struct vt_hart hart[VM_MAX_HARTS];
};

/* ---- vCPU ops for trace/ ------------------------------------------------ */

static void serve_cb(struct cpu *cpu, void *arg)
{
	struct vt_hart *h = arg;
	if (pthread_mutex_trylock(&h->serve_mu) != 0)
		return; /* another thread serves this (stopped) hart right now */
	/* A stopped hart is served on the kicker's thread, which may be the
	 * very thread waiting for the acknowledgement (a revoker): it must
	 * act at once rather than wait at a boundary that never comes. */
	if (cpu_work_inline(cpu))
		tr_sub_serve_now(h->sub);
	else
		tr_sub_serve(h->sub);
	pthread_mutex_unlock(&h->serve_mu);
}

static void op_kick(void *vcpu)
{
	struct vt_hart *h = vcpu;
	if (cpu_run_on(h->cpu, serve_cb, h, false) < 0)
		cpu_run_on(h->cpu, serve_cb, h, true); /* no memory for a posted item: wait */
	if (h->vt->kick_hook)
		h->vt->kick_hook(h->vt->kick_arg);
}

static void op_invalidate(void *vcpu, unsigned kinds, uint64_t page)
{
	struct vt_hart *h = vcpu;
	cpu_invalidate_gpa(h->cpu, page, kinds);
}

/* Open-addressed set of page addresses (key 0 never occurs: page 0 is
 * stored as 1, which no page-aligned address equals). */
static size_t tset_slot(const struct vt_hart *h, uint64_t key)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (h->trap_cap - 1);
}

static uint64_t *tset_find(struct vt_hart *h, uint64_t page, bool *found)
{
	uint64_t key = page ? page : 1;
	for (size_t i = tset_slot(h, key);; i = (i + 1) & (h->trap_cap - 1)) {
		if (h->trapped[i] == key || !h->trapped[i]) {
			*found = h->trapped[i] == key;
			return &h->trapped[i];
		}
	}
}

static void tset_rebuild(struct vt_hart *h, size_t cap)
{
	uint64_t *old = h->trapped;
	size_t ocap = h->trap_cap;
	uint64_t *nt = calloc(cap, sizeof(*nt));
	if (!nt)
		return; /* keep the old one (maybe full: callers then skip the mirror) */
	h->trapped = nt;
	h->trap_cap = cap;
	h->trap_len = 0;
	for (size_t i = 0; i < ocap; i++)
		if (old[i] && old[i] != ~0ull) {
			bool f;
			*tset_find(h, old[i] == 1 ? 0 : old[i], &f) = old[i];
			h->trap_len++;
		}
	free(old);
}

static void op_set_trap(void *vcpu, uint64_t page, bool on)
{
	struct vt_hart *h = vcpu;
	bool found = false;
	uint64_t *slot = NULL;
	if (h->trapped) {
		if ((h->trap_len + 1) * 2 > h->trap_cap)
			tset_rebuild(h, h->trap_cap * 2);
		slot = tset_find(h, page, &found);
		if (on == found)
			return; /* the engine already has it so */
	}
	if (cpu_set_write_trap(h->cpu, page, on) < 0) {
		LOG_ERR("trace", "hart %d: cannot trap stores to page 0x%llx: out of memory", h->id,
			(unsigned long long)page);
		return;
	}
	if (!slot)
		return;
	if (on) {
		*slot = page ? page : 1;
		h->trap_len++;
	} else {
		*slot = ~0ull; /* tombstone; dropped at the next rebuild */
		tset_rebuild(h, h->trap_cap);
	}
}

static const struct tr_vcpu_ops vt_ops = { op_kick, op_invalidate, op_set_trap };

/* ---- engine observer ------------------------------------------------------ */

static void obs_derived(void *arg, int kind, uint64_t page)
{
	struct vt_hart *h = arg;
	bool wt = false;
	int rc = tr_sub_derived(h->sub, (enum tr_kind)kind, page, &wt);
	if (rc < 0) {
		LOG_ERR("trace", "hart %d: trace on page 0x%llx (%s): %s", h->id,
			(unsigned long long)page, tr_kind_name((enum tr_kind)kind), strerror(-rc));
		return;
	}
	if (kind == CPU_DERIV_TLB && wt)
		op_set_trap(h, page, true);
}

static void obs_dropped(void *arg, int kind, uint64_t page)
{
	struct vt_hart *h = arg;
	tr_sub_dropped(h->sub, (enum tr_kind)kind, page); /* -ENOENT: its derive had failed */
}

/* ---- memory hooks ------------------------------------------------------- */

/* opaque is the hart's vt_hart; NULL until its sub-monitor exists */
static struct vt_hart *hart_of(void *opaque)
{
	struct vt_hart *h = opaque;
	return h->sub ? h : NULL;
}

static int vt_page_get(void *opaque, int hart, uint64_t gpa, unsigned access,
		       struct cpu_page *out)
{
	struct vt_hart *h = opaque;
	int rc = h->base->page_get(h->base_opaque, hart, gpa, access, out);
	if (rc == 0 && (access & CPU_PERM_W) && !out->mmio && hart_of(h) &&
	    tr_page_write_traced(h->vt->t, gpa))
		op_set_trap(h, gpa & ~(TR_PAGE_SIZE - 1), true);
	return rc;
}

static int vt_mmio_read(void *opaque, int hart, uint64_t gpa, unsigned size, uint64_t *val)
{
	struct vt_hart *h = opaque;
	return h->base->mmio_read(h->base_opaque, hart, gpa, size, val);
}

static int vt_mmio_write(void *opaque, int hart, uint64_t gpa, unsigned size, uint64_t val)
{
	struct vt_hart *h = opaque;
	return h->base->mmio_write(h->base_opaque, hart, gpa, size, val);
}

static void vt_write_pre(void *opaque, int hart, uint64_t gpa, unsigned size, uint64_t val)
{
	struct vt_hart *h = opaque;
	if (hart_of(h)) {
		int rc = tr_sub_write_begin(h->sub, gpa, size);
		if (rc < 0)
			LOG_ERR("trace", "hart %d: store to 0x%llx: trace event failed: %s", h->id,
				(unsigned long long)gpa, strerror(-rc));
	}
	if (h->base->write_pre)
		h->base->write_pre(h->base_opaque, hart, gpa, size, val);
}

static void vt_write_post(void *opaque, int hart, uint64_t gpa, unsigned size, uint64_t val)
{
	struct vt_hart *h = opaque;
	if (hart_of(h)) {
		bool still = true;
		uint64_t page = gpa & ~(TR_PAGE_SIZE - 1);
		tr_sub_write_end(h->sub, &still);
		if (!still && page != h->vt->pinned_trap)
			op_set_trap(h, page, false);
	}
	if (h->base->write_post)
		h->base->write_post(h->base_opaque, hart, gpa, size, val);
}

static const struct cpu_mem_ops vt_mem_ops = { vt_page_get, vt_mmio_read, vt_mmio_write,
					       vt_write_pre, vt_write_post };

/* ---- lifecycle ---------------------------------------------------------- */

static int parse_opts(struct tr_cfg *tc, const char *opts, char *err, size_t el)
{
	char buf[256], why[160];
	if (!opts || !*opts)
		return 0;
	if (strlen(opts) >= sizeof(buf)) {
		snprintf(err, el, "--trace: option list too long");
		return -EINVAL;
	}
	strcpy(buf, opts);
	for (char *save = NULL, *o = strtok_r(buf, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		if (tr_cfg_set(tc, o, why, sizeof(why)) < 0) {
			snprintf(err, el, "--trace: %s", why);
			return -EINVAL;
		}
	}
	return 0;
}

int vt_create(const char *opts, struct vm_trace **out, char *err, size_t el)
{
	return vt_create_cfg(opts, NULL, NULL, out, err, el);
}

int vt_create_cfg(const char *opts, void (*on_page)(void *, uint64_t, bool), void *arg,
		  struct vm_trace **out, char *err, size_t el)
{
	struct tr_cfg tc;
	tr_cfg_default(&tc);
	tc.max_vcpus = VM_MAX_HARTS;
	tc.on_page = on_page;
	tc.on_page_arg = arg;
	int rc = parse_opts(&tc, opts, err, el);
	if (rc < 0)
		return rc;
	struct vm_trace *vt = calloc(1, sizeof(*vt));
	if (!vt)
		return -ENOMEM;
	rc = tr_table_create(&tc, &vt->t);
	if (rc < 0) {
		free(vt);
		snprintf(err, el, "trace table: %s", strerror(-rc));
		return rc;
	}
	vt->pinned_trap = ~0ull;
	for (unsigned k = 0; k < VM_MAX_HARTS; k++)
		pthread_mutex_init(&vt->hart[k].serve_mu, NULL);
	*out = vt;
	return 0;
}

void vt_set_kick_hook(struct vm_trace *vt, void (*fn)(void *), void *arg)
{
	vt->kick_hook = fn;
	vt->kick_arg = arg;
}

int vt_revoke(struct vm_trace *vt, uint64_t page, unsigned *notified)
{
	return tr_revoke(vt->t, page, notified);
}

int vt_revoke_try(struct vm_trace *vt, uint64_t page)
{
	return tr_revoke_try(vt->t, page);
}

uint64_t vt_revoke_nonsub(struct vm_trace *vt)
{
	struct tr_stats st;
	uint64_t n = 0;
	for (unsigned k = 0; k < VM_MAX_HARTS; k++)
		if (vt->hart[k].sub) {
			tr_sub_stats(vt->hart[k].sub, &st);
			n += st.revoke_nonsub;
		}
	return n;
}

void vt_set_pinned_trap(struct vm_trace *vt, uint64_t gpa)
{
	vt->pinned_trap = gpa ? (gpa & ~(TR_PAGE_SIZE - 1)) : ~0ull;
}

void vt_hart_cfg(struct vm_trace *vt, unsigned k, struct cpu_cfg *cc)
{
	struct vt_hart *h = &vt->hart[k];
	h->vt = vt;
	h->id = (int)k;
	h->base = cc->mem;
	h->base_opaque = cc->mem_opaque;
	cc->mem = &vt_mem_ops;
	cc->mem_opaque = h;
	cc->obs = (struct cpu_observer){ obs_derived, obs_dropped, h };
}

int vt_bind(struct vm_trace *vt, unsigned k, struct cpu *cpu, char *err, size_t el)
{
	struct vt_hart *h = &vt->hart[k];
	h->cpu = cpu;
	h->trap_cap = 64;
	h->trapped = calloc(h->trap_cap, sizeof(uint64_t)); /* NULL: no mirror, still correct */
	int rc = tr_sub_create(vt->t, k, &vt_ops, h, &h->sub);
	if (rc < 0)
		snprintf(err, el, "hart %u: trace sub-monitor: %s", k, strerror(-rc));
	return rc;
}

void vt_stats(struct vm_trace *vt, void *json_root)
{
	if (!vt)
		return;
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (!m)
		return;
	int rc = tr_stats_write_json(vt->t, m);
	fclose(m);
	json_t *o = rc == 0 ? json_loads(buf, 0, NULL) : NULL;
	free(buf);
	if (o)
		json_object_set_new((json_t *)json_root, "trace", o);
}

void vt_destroy(struct vm_trace *vt)
{
	if (!vt)
		return;
	for (unsigned k = 0; k < VM_MAX_HARTS; k++) {
		tr_sub_destroy(vt->hart[k].sub);
		free(vt->hart[k].trapped);
		pthread_mutex_destroy(&vt->hart[k].serve_mu);
	}
	tr_table_destroy(vt->t);
	free(vt);
}

/* ---- the single-node VM (vm_run.c) ---------------------------------------- */

int vm_trace_create(struct vm *vm, char *err, size_t el)
{
	if (vm->cfg.no_trace)
		return 0;
	int rc = vt_create(vm->cfg.trace_opts, &vm->trace, err, el);
	if (rc == 0)
		vt_set_pinned_trap(vm->trace, vm->elf.tohost);
	return rc;
}

void vm_trace_hart_cfg(struct vm *vm, unsigned k, struct cpu_cfg *cc)
{
	if (!vm->trace) {
		cc->retain_walks = false; /* nothing would keep retained walks coherent */
		return;
	}
	vt_hart_cfg(vm->trace, k, cc);
	cc->retain_walks = vm->cfg.retain_walks;
}

int vm_trace_bind(struct vm *vm, unsigned k, struct cpu *cpu, char *err, size_t el)
{
	return vm->trace ? vt_bind(vm->trace, k, cpu, err, el) : 0;
}

void vm_trace_stats(struct vm *vm, void *json_root)
{
	vt_stats(vm->trace, json_root);
}

void vm_trace_destroy(struct vm *vm)
{
	vt_destroy(vm->trace);
	vm->trace = NULL;
}
