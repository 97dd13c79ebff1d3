/*
 * One node's share of a multi-node VM over dsm/ (see vm_dsm_int.h).
 *
 * Memory: page_get asks the DSM for the page (Modified for stores, AMOs and
 * LR/SC, Shared for loads and fetches) and grants the engine exactly what
 * the local state allows, so a TLB entry never carries write permission for
 * a Shared page.  Revocation: the DSM changes the page state, then
 * vmd_revoke posts "drop everything derived from this page" to every local
 * hart with cpu_run_on and waits until each ran it: at its next block
 * boundary, or at once from the DSM's idle callback (cpu_poll_work) when
 * the hart is itself blocked in page_get.  A translated block, walk or TLB
 * entry from a page therefore never outlives the page's presence, which is
 * what keeps code (cross-node self-modifying code) and page tables
 * coherent, and LR/SC too: the engine's SC re-checks the reserved value
 * against memory that needs the page Modified.
 *
 * Only subscribers are interrupted: the engine's observer reports every
 * structure derived from / dropped for a page; per hart and page the glue
 * counts them, and a revocation interrupts the harts with a nonzero count
 * plus those whose last few page_gets named the page (derivation not yet
 * reported).  The node's first structure from a page / its last drop tell
 * the page's home (dsm_trace_sub), which flags its invalidations
 * accordingly.  (The trace layer's sub-monitors do the same bookkeeping for
 * writes within a node; merging the two is future work.)
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "node/vm_dsm_int.h"
#include "node/vm_int.h"
#include "node/virt_int.h"
#include "util/util.h"

#define VMD_RECENT 8 /* page_gets remembered per hart (a walk does <= 4 before deriving) */

struct vmd_hart {
	struct vmd *v;
	struct cpu *cpu;
	unsigned id;
	pthread_t thr;
	bool started;
	/* what this hart derived from each page; mu: vCPU thread vs revokers */
	pthread_mutex_t mu;
	struct vmd_pmap derived;
	/* pages of its latest page_gets, derivation possibly not yet reported;
	 * written by the vCPU thread, read by revokers (seq_cst) */
	_Atomic uint64_t recent[VMD_RECENT];
	unsigned recent_i;
	struct cpu_observer tobs;  /* the trace glue's observer (vm_trace.c), chained */
};

struct vmd {
	struct vmd_cfg cfg;
	struct dsm *dsm;
	struct vm_trace *trace;    /* write traces among the local harts (vm_trace.c) */
	struct elf_info elf;
	uint64_t start_ns;
	unsigned nharts;
	struct vmd_hart harts[VM_MAX_HARTS];
	pthread_mutex_t sub_mu;    /* node_derived, and the order of dsm_trace_sub calls */
	struct vmd_pmap node_derived;
	pthread_mutex_t htif_lock; /* HTIF latch */
	uint64_t htif_lo;
	uint64_t revocations;      /* atomic: harts interrupted by revocations */
	uint64_t revoke_calls, revoke_silent; /* atomic: revocations; those interrupting nobody */
};

struct revoke_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned remaining;
	uint64_t page;
};

static void revoke_on_hart(struct cpu *cpu, void *arg)
{
	struct revoke_wait *w = arg;
	cpu_invalidate_gpa(cpu, w->page, CPU_KINDS_ALL);
	pthread_mutex_lock(&w->mu);
	if (--w->remaining == 0)
		pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static int vmd_revoke(void *arg, uint64_t gpa_page, unsigned perms, bool trace)
{
	struct vmd *v = arg;
	struct revoke_wait w = {.page = gpa_page};
	bool need[VM_MAX_HARTS];
	unsigned posted = 0;

	/* Only subscribers: harts that derived something from the page, or
	 * whose recent page_get may not have reported its derivation yet.  The
	 * state changed before this; the fence pairs with the one in page_get
	 * (Dekker): either the hart sees the new state or we see its page. */
	atomic_thread_fence(memory_order_seq_cst);
	for (unsigned i = 0; i < v->nharts; i++) {
		struct vmd_hart *h = &v->harts[i];
		need[i] = false;
		for (unsigned k = 0; k < VMD_RECENT && !need[i]; k++)
			need[i] = atomic_load(&h->recent[k]) == gpa_page;
		if (!need[i]) {
			pthread_mutex_lock(&h->mu);
			need[i] = vmd_pmap_get(&h->derived, gpa_page) > 0;
			pthread_mutex_unlock(&h->mu);
		}
		w.remaining += need[i];
	}
	__atomic_fetch_add(&v->revoke_calls, 1, __ATOMIC_RELAXED);
	if (!w.remaining) {
		/* no local subscriber: the copy just goes, nobody is interrupted */
		__atomic_fetch_add(&v->revoke_silent, 1, __ATOMIC_RELAXED);
		return 0;
	}
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	for (unsigned i = 0; i < v->nharts; i++) {
		if (!need[i])
			continue;
		if (cpu_run_on(v->harts[i].cpu, revoke_on_hart, &w, false) == 0) {
			cpu_kick(v->harts[i].cpu);
			posted++;
		} else {
			/* out of memory: do it synchronously */
			cpu_run_on(v->harts[i].cpu, revoke_on_hart, &w, true);
		}
	}
	dsm_wake(v->dsm); /* harts waiting in page_get serve it from idle */
	pthread_mutex_lock(&w.mu);
	while (w.remaining)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	unsigned n = 0;
	for (unsigned i = 0; i < v->nharts; i++)
		n += need[i];
	__atomic_fetch_add(&v->revocations, n, __ATOMIC_RELAXED);
	(void)posted;
	return (int)n;
}

static const struct dsm_local_ops vmd_ops = {.revoke = vmd_revoke};

static void hart_idle(void *arg)
{
	cpu_poll_work(((struct vmd_hart *)arg)->cpu);
}

static int ram_page_get(struct vmd_hart *h, uint64_t gpa, unsigned access, struct cpu_page *out)
{
	struct dsm *d = h->v->dsm;
	struct dsm_waiter w = {hart_idle, h};
	unsigned want = (access & CPU_PERM_W) ? DSM_W : DSM_R;
	void *host;

	for (;;) {
		/* Posted revocations are acknowledged here, before the check,
		 * never between a successful check and the access. */
		cpu_poll_work(h->cpu);
		atomic_store(&h->recent[h->recent_i++ % VMD_RECENT], gpa & ~4095ull);
		atomic_thread_fence(memory_order_seq_cst);
		if (dsm_page_try(d, gpa & ~4095ull, DSM_W, &host) == 0) {
			out->perms = CPU_PERM_R | CPU_PERM_W | CPU_PERM_X;
			break;
		}
		if (want == DSM_R && dsm_page_try(d, gpa & ~4095ull, DSM_R, &host) == 0) {
			out->perms = CPU_PERM_R | CPU_PERM_X;
			break;
		}
		if (dsm_fault(d, gpa, want, &w))
			return -EFAULT;
	}
	out->host = host;
	out->mmio = false;
	return 0;
}

static int vmd_page_get(void *opaque, int hart, uint64_t gpa, unsigned access,
			struct cpu_page *out)
{
	struct vmd_hart *h = opaque;
	if (gpa >= VM_RAM_BASE && gpa - VM_RAM_BASE < h->v->cfg.ram_size)
		return ram_page_get(h, gpa, access, out);
	if ((gpa >= VM_CLINT_BASE && gpa < VM_CLINT_BASE + VM_CLINT_SIZE) ||
	    (h->v->cfg.machine && vml_is_mmio(h->v->cfg.machine, gpa))) {
		out->host = NULL;
		out->perms = CPU_PERM_R | CPU_PERM_W;
		out->mmio = true;
		return 0;
	}
	return -EFAULT;
}

static int vmd_mmio_read(void *opaque, int hart, uint64_t gpa, unsigned size, uint64_t *val)
{
	struct vmd_hart *h = opaque;
	uint64_t off = gpa - VM_CLINT_BASE;
	if (h->v->cfg.machine) /* CLINT, PLIC, UART, finisher (vm_dsm_linux.c) */
		return vml_mmio_read(h->v->cfg.machine, h->id, gpa, size, val);
	*val = 0;
	if (off >= 0xbff8 && off < 0xc000) {
		uint64_t t = util_now_ns() / 100; /* one host clock for all local nodes */
		*val = t >> (8 * (off - 0xbff8));
	}
	return 0;
}

static int vmd_mmio_write(void *opaque, int hart, uint64_t gpa, unsigned size, uint64_t val)
{
	struct vmd_hart *h = opaque;
	uint64_t off = gpa - VM_CLINT_BASE;
	if (h->v->cfg.machine)
		return vml_mmio_write(h->v->cfg.machine, h->id, gpa, size, val);
	if (off < 4 * VM_MAX_HARTS) { /* msip: local harts only (docs/dsm.md) */
		for (unsigned i = 0; i < h->v->nharts; i++)
			if (h->v->harts[i].id == off / 4)
				cpu_set_irq(h->v->harts[i].cpu, CPU_IRQ_MSI, val & 1);
	}
	return 0;
}

static void htif_command(struct vmd *v, uint64_t cmd)
{
	unsigned dev = (unsigned)(cmd >> 56), c = (unsigned)(cmd >> 48) & 0xff;
	uint64_t payload = cmd & 0xffffffffffffull;
	uint8_t *ram = v->cfg.ram;

	if (dev == 0 && c == 0 && (payload & 1)) {
		if (v->cfg.on_exit)
			v->cfg.on_exit(v->cfg.cb_arg, (int)((payload >> 1) & 0xff));
		return;
	}
	if (dev == 1 && c == 1 && v->cfg.on_putc)
		v->cfg.on_putc(v->cfg.cb_arg, (char)payload);
	/* The store to tohost just happened on this hart, so the page is still
	 * Modified here (a revocation waits for this hart's next boundary). */
	if (v->elf.fromhost)
		__atomic_store_n((uint64_t *)(ram + (v->elf.fromhost - VM_RAM_BASE)),
				 (cmd >> 48 << 48) | (dev == 1 ? 0x100 | (payload & 0xff) : 0),
				 __ATOMIC_RELEASE);
	__atomic_store_n((uint64_t *)(ram + (v->elf.tohost - VM_RAM_BASE)), 0, __ATOMIC_RELEASE);
}

static void vmd_write_post(void *opaque, int hart, uint64_t gpa, unsigned size, uint64_t val)
{
	struct vmd *v = ((struct vmd_hart *)opaque)->v;
	uint64_t th = v->elf.tohost, cmd = 0;
	if (!th || gpa + size <= th || gpa >= th + 8)
		return;
	pthread_mutex_lock(&v->htif_lock);
	if (gpa == th && size == 8) {
		cmd = val;
	} else if (gpa == th && size == 4) {
		v->htif_lo = (uint32_t)val;
	} else if (gpa == th + 4 && size == 4) {
		cmd = v->htif_lo | (val << 32);
		v->htif_lo = 0;
	}
	if (cmd)
		htif_command(v, cmd);
	pthread_mutex_unlock(&v->htif_lock);
}

/* The node's first structure from a page makes it a subscriber at the
 * page's home; its last drop ends that (cross-node trace sets). */
static void node_sub(struct vmd *v, uint64_t page, int delta)
{
	uint32_t n;
	if (page < VM_RAM_BASE || page - VM_RAM_BASE >= v->cfg.ram_size)
		return;
	pthread_mutex_lock(&v->sub_mu);
	if (vmd_pmap_add(&v->node_derived, page, delta, &n) == 0 &&
	    ((delta > 0 && n == 1) || (delta < 0 && n == 0)))
		dsm_trace_sub(v->dsm, page, delta > 0);
	pthread_mutex_unlock(&v->sub_mu);
}

static void obs_change(struct vmd_hart *h, uint64_t page, int delta)
{
	uint32_t n;
	pthread_mutex_lock(&h->mu);
	int rc = vmd_pmap_add(&h->derived, page, delta, &n);
	pthread_mutex_unlock(&h->mu);
	if (rc == 0)
		node_sub(h->v, page, delta);
	else
		LOG_WARN("node", "hart %u: out of memory tracking derived pages", h->id);
}

static void obs_derived(void *arg, int kind, uint64_t page)
{
	struct vmd_hart *h = arg;
	if (h->tobs.derived)
		h->tobs.derived(h->tobs.arg, kind, page);
	obs_change(h, page, +1);
	/* now counted: no longer an unreported page_get (the count is visible
	 * to revokers under h->mu before the ring slot clears) */
	for (unsigned k = 0; k < VMD_RECENT; k++)
		if (atomic_load_explicit(&h->recent[k], memory_order_relaxed) == page)
			atomic_store(&h->recent[k], UINT64_MAX);
}

static void obs_dropped(void *arg, int kind, uint64_t page)
{
	struct vmd_hart *h = arg;
	if (h->tobs.dropped)
		h->tobs.dropped(h->tobs.arg, kind, page);
	obs_change(h, page, -1);
}

static const struct cpu_mem_ops vmd_mem_ops = {
	.page_get = vmd_page_get,
	.mmio_read = vmd_mmio_read,
	.mmio_write = vmd_mmio_write,
	.write_post = vmd_write_post,
};

int vmd_create(const struct vmd_cfg *cfg, struct vmd **out, char *err, size_t errlen)
{
	struct vmd *v;
	int rc;

	if (!cfg || !out || cfg->nharts > VM_MAX_HARTS) {
		snprintf(err, errlen, "bad VM node configuration (harts 0..%d)", VM_MAX_HARTS);
		return -EINVAL;
	}
	for (unsigned i = 0; i < cfg->nharts; i++)
		if (cfg->harts[i] >= VM_MAX_HARTS) {
			snprintf(err, errlen, "hart id %u: must be 0..%d", cfg->harts[i],
				 VM_MAX_HARTS - 1);
			return -EINVAL;
		}
	if (!(v = calloc(1, sizeof(*v))))
		return -ENOMEM;
	v->cfg = *cfg;
	v->nharts = cfg->nharts;
	pthread_mutex_init(&v->htif_lock, NULL);
	pthread_mutex_init(&v->sub_mu, NULL);
	for (unsigned i = 0; i < VM_MAX_HARTS; i++) {
		pthread_mutex_init(&v->harts[i].mu, NULL);
		for (unsigned k = 0; k < VMD_RECENT; k++)
			atomic_store(&v->harts[i].recent[k], UINT64_MAX);
	}
	struct dsm_cfg dc = {.tp = cfg->tp, .node_id = cfg->node_id, .nodes = cfg->nodes,
			     .nnodes = cfg->nnodes, .ram = cfg->ram, .ram_base = VM_RAM_BASE,
			     .ram_size = cfg->ram_size, .policy = cfg->policy,
			     .block_pages = cfg->block_pages, .ops = &vmd_ops,
			     .ops_arg = v, .msg_timeout_ns = cfg->msg_timeout_ns,
			     .retx_ns = cfg->retx_ns};
	if ((rc = dsm_create(&dc, &v->dsm))) {
		snprintf(err, errlen, "cannot create the DSM: %s", strerror(-rc));
		free(v);
		return rc;
	}
	if (!cfg->no_trace && (rc = vt_create(NULL, &v->trace, err, errlen))) {
		vmd_destroy(v);
		return rc;
	}
	for (unsigned i = 0; i < v->nharts; i++) {
		struct vmd_hart *h = &v->harts[i];
		struct cpu_cfg cc = {.hart_id = (int)cfg->harts[i], .mem = &vmd_mem_ops,
				     .mem_opaque = h, .reset_pc = VM_RAM_BASE,
				     .obs = {obs_derived, obs_dropped, h}};
		h->v = v;
		h->id = cfg->harts[i];
		if (cfg->machine)
			vml_hart_cfg(cfg->machine, h->id, &cc); /* SBI hook, mtime offset */
		if (v->trace) {
			/* the trace glue wraps the memory interface and takes the
			 * observer slot; ours chains to it */
			vt_hart_cfg(v->trace, h->id, &cc);
			h->tobs = cc.obs;
			cc.obs = (struct cpu_observer){obs_derived, obs_dropped, h};
		}
		if ((rc = cpu_create(&cc, &h->cpu))) {
			snprintf(err, errlen, "hart %u: cannot create: %s", h->id, strerror(-rc));
			vmd_destroy(v);
			return rc;
		}
		if (v->trace && (rc = vt_bind(v->trace, h->id, h->cpu, err, errlen))) {
			vmd_destroy(v);
			return rc;
		}
		cpu_set_reg(h->cpu, 10, h->id); /* a0 = hartid */
		if (cfg->machine)
			vml_hart_bind(cfg->machine, h->id, h->cpu); /* boot hart or HSM-stopped */
	}
	/* Serving pages starts now: peers may need ours before we run. */
	if ((rc = dsm_start(v->dsm))) {
		snprintf(err, errlen, "cannot start the DSM: %s", strerror(-rc));
		vmd_destroy(v);
		return rc;
	}
	*out = v;
	return 0;
}

int vmd_load_elf(struct vmd *v, const uint8_t *img, size_t len, bool write_ram, char *err,
		 size_t errlen)
{
	/* Parse into a sparse scratch copy; node 0 then writes what was loaded
	 * through the DSM, page by page (the pages become node 0's, Modified). */
	uint8_t *scratch = calloc(1, v->cfg.ram_size);
	int rc;

	if (!scratch)
		return -ENOMEM;
	rc = elf_load(img, len, scratch, VM_RAM_BASE, v->cfg.ram_size, &v->elf, err, errlen);
	if (rc == 0 && write_ram && v->elf.hi > v->elf.lo) {
		uint64_t lo = v->elf.lo & ~4095ull, hi = (v->elf.hi + 4095) & ~4095ull;
		rc = dsm_write(v->dsm, lo, scratch + (lo - VM_RAM_BASE), hi - lo);
		if (rc)
			snprintf(err, errlen, "writing the image through the DSM: %s", strerror(-rc));
	}
	free(scratch);
	if (v->trace)
		vt_set_pinned_trap(v->trace, v->elf.tohost);
	for (unsigned i = 0; rc == 0 && i < v->nharts; i++) {
		cpu_set_pc(v->harts[i].cpu, v->elf.entry);
		if (v->elf.tohost)
			rc = cpu_set_write_trap(v->harts[i].cpu, v->elf.tohost & ~4095ull, true);
	}
	return rc;
}

static void *hart_main(void *arg)
{
	struct vmd_hart *h = arg;
	char name[16];
	snprintf(name, sizeof(name), "hart%u", h->id);
	util_log_set_thread(name);
	if (h->v->cfg.machine)
		vml_hart_main(h->v->cfg.machine, h->id); /* HSM: waits while stopped */
	else
		cpu_run(h->cpu, 0);
	return NULL;
}

int vmd_start(struct vmd *v)
{
	for (unsigned i = 0; i < v->nharts; i++) {
		int rc = pthread_create(&v->harts[i].thr, NULL, hart_main, &v->harts[i]);
		if (rc)
			return -rc;
		v->harts[i].started = true;
	}
	return 0;
}

void vmd_stop(struct vmd *v)
{
	if (!v)
		return;
	vml_stop(v->cfg.machine); /* before the stop requests: parked harts leave too */
	for (unsigned i = 0; i < v->nharts; i++)
		if (v->harts[i].cpu)
			cpu_request_stop(v->harts[i].cpu);
	dsm_wake(v->dsm);
	/* A hart blocked in page_get for a page nobody grants any more (peers
	 * stopping) leaves when the DSM stops: dsm_fault returns -ECANCELED. */
	for (unsigned i = 0; i < v->nharts; i++) {
		if (!v->harts[i].started)
			continue;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 2;
		if (pthread_timedjoin_np(v->harts[i].thr, NULL, &ts)) {
			dsm_stop(v->dsm);
			pthread_join(v->harts[i].thr, NULL);
		}
		v->harts[i].started = false;
	}
	dsm_stop(v->dsm);
}

void vmd_destroy(struct vmd *v)
{
	if (!v)
		return;
	vmd_stop(v);
	for (unsigned i = 0; i < v->nharts; i++)
		cpu_destroy(v->harts[i].cpu);
	vt_destroy(v->trace); /* after the cpus: their teardown drops traces */
	dsm_destroy(v->dsm);
	for (unsigned i = 0; i < VM_MAX_HARTS; i++) {
		vmd_pmap_clear(&v->harts[i].derived);
		pthread_mutex_destroy(&v->harts[i].mu);
	}
	vmd_pmap_clear(&v->node_derived);
	pthread_mutex_destroy(&v->sub_mu);
	pthread_mutex_destroy(&v->htif_lock);
	free(v);
}

void vmd_trace_stats(struct vmd *v, void *json_root)
{
	vt_stats(v->trace, json_root);
}

struct dsm *vmd_dsm(struct vmd *v)
{
	return v->dsm;
}

uint64_t vmd_revocations(struct vmd *v)
{
	return __atomic_load_n(&v->revocations, __ATOMIC_RELAXED);
}

void vmd_revoke_stats(struct vmd *v, uint64_t *calls, uint64_t *silent)
{
	*calls = __atomic_load_n(&v->revoke_calls, __ATOMIC_RELAXED);
	*silent = __atomic_load_n(&v->revoke_silent, __ATOMIC_RELAXED);
}
