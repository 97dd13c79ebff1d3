/*
 * One node's share of a multi-node VM over dsm/ (see vm_dsm_int.h).
 *
 * Memory: page_get asks the DSM for the page (Modified for stores, AMOs and
 * LR/SC, Shared for loads and fetches) and grants the engine exactly what
 * the local state allows, so a TLB entry never carries write permission for
 * a Shared page.
 *
 * Revocation is a trace event on the node's trace table (vm_trace.c,
 * tr_revoke): the DSM changes the page state, then every hart subscribed to
 * the page (a TLB entry, translated block or cached walk from it: the
 * engine reports each derivation BEFORE the page_get that checks the state)
 * acknowledges at an instruction boundary, or from the DSM's idle callback
 * when it is blocked in page_get for another page, and drops everything it
 * derived from the page before it runs again.  Harts without a
 * subscription are not interrupted.  The table is also the node's one
 * subscription record: its first subscriber of a page / its last drop tell
 * the page's home (dsm_trace_sub), which flags its invalidations.  With
 * no_trace the table keeps subscriptions only (no write traces among the
 * local harts), so revocation works the same.  Why no stale use can follow
 * an acknowledged revocation: docs/trace.md, "Revocation".
 */
#include <errno.h>
#include <jansson.h>
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

struct vmd_hart {
	struct vmd *v;
	struct cpu *cpu;
	unsigned id;
	pthread_t thr;
	bool started;
};

struct vmd {
	struct vmd_cfg cfg;
	struct dsm *dsm;
	struct vm_trace *trace;    /* the node's trace table (vm_trace.c); never NULL once created */
	struct elf_info elf;
	uint64_t start_ns;
	unsigned nharts;
	struct vmd_hart harts[VM_MAX_HARTS];
	pthread_mutex_t htif_lock; /* HTIF latch */
	uint64_t htif_lo;
	uint64_t revocations;      /* atomic: harts interrupted by revocations */
	uint64_t revoke_calls, revoke_silent; /* atomic: revocations; those interrupting nobody */
	uint64_t revoke_failed;    /* atomic: tr_revoke out of memory (fell back to flushing) */
};

static void flush_hart(struct cpu *cpu, void *arg)
{
	cpu_invalidate_gpa(cpu, *(uint64_t *)arg, CPU_KINDS_ALL);
}

static int vmd_revoke(void *arg, uint64_t gpa_page, unsigned perms, bool trace)
{
	struct vmd *v = arg;
	unsigned n = 0;
	(void)perms; /* a downgrade drops write mappings and the rest alike */
	(void)trace; /* the local table knows the subscribers better than the home */
	int rc = vt_revoke(v->trace, gpa_page, &n);
	__atomic_fetch_add(&v->revoke_calls, 1, __ATOMIC_RELAXED);
	if (rc < 0) {
		/* out of memory for the event: every hart drops the page at its
		 * next boundary (slow, but never stale) */
		LOG_ERR("node", "revoking page 0x%llx: %s; flushing it on every hart",
			(unsigned long long)gpa_page, strerror(-rc));
		__atomic_fetch_add(&v->revoke_failed, 1, __ATOMIC_RELAXED);
		for (unsigned i = 0; i < v->nharts; i++)
			cpu_run_on(v->harts[i].cpu, flush_hart, &gpa_page, true);
		n = v->nharts;
	}
	if (!n)
		__atomic_fetch_add(&v->revoke_silent, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&v->revocations, n, __ATOMIC_RELAXED);
	return (int)n;
}

/* The INV fast path (no hart derived anything from the page): on the
 * thread that read the invalidation, nothing waited for. */
static int vmd_revoke_try(void *arg, uint64_t gpa_page, unsigned perms, bool trace)
{
	struct vmd *v = arg;
	(void)perms;
	(void)trace;
	int rc = vt_revoke_try(v->trace, gpa_page);
	if (rc)
		return rc;
	__atomic_fetch_add(&v->revoke_calls, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&v->revoke_silent, 1, __ATOMIC_RELAXED);
	return 0;
}

static const struct dsm_local_ops vmd_ops = {.revoke = vmd_revoke, .revoke_try = vmd_revoke_try};

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
		 * never between a successful check and the access.  The
		 * engine reported its derivation from the page before calling
		 * us: a revoker that changed the state after this check finds
		 * this hart subscribed (docs/trace.md, "Revocation"). */
		cpu_poll_work(h->cpu);
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

/* The node's first subscriber of a page makes it a subscriber at the
 * page's home; its last drop ends that (cross-node trace sets).  Called by
 * the trace table under its stripe mutex, in order per page. */
static void node_sub(void *arg, uint64_t page, bool on)
{
	struct vmd *v = arg;
	if (page >= VM_RAM_BASE && page - VM_RAM_BASE < v->cfg.ram_size)
		dsm_trace_sub(v->dsm, page, on);
}

/* A kicked hart blocked in page_get serves from the DSM's idle callback:
 * wake it now rather than at its next millisecond tick. */
static void kick_wake(void *arg)
{
	dsm_wake(((struct vmd *)arg)->dsm);
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
	/* Always a table: revocation needs the subscriptions even when the
	 * local harts do not trace each other's writes (no_trace). */
	if ((rc = vt_create_cfg(cfg->no_trace ? "writes=0" : NULL, node_sub, v, &v->trace, err,
				errlen))) {
		vmd_destroy(v);
		return rc;
	}
	vt_set_kick_hook(v->trace, kick_wake, v);
	for (unsigned i = 0; i < v->nharts; i++) {
		struct vmd_hart *h = &v->harts[i];
		struct cpu_cfg cc = {.hart_id = (int)cfg->harts[i], .mem = &vmd_mem_ops,
				     .mem_opaque = h, .reset_pc = VM_RAM_BASE};
		h->v = v;
		h->id = cfg->harts[i];
		if (cfg->machine)
			vml_hart_cfg(cfg->machine, h->id, &cc); /* SBI hook, mtime offset */
		vt_hart_cfg(v->trace, h->id, &cc); /* wraps the memory interface, observes */
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

unsigned vmd_halt(struct vmd *v, uint64_t deadline_ns)
{
	unsigned left = 0;

	if (!v)
		return 0;
	vml_stop(v->cfg.machine); /* before the stop requests: parked harts leave too */
	for (unsigned i = 0; i < v->nharts; i++)
		if (v->harts[i].cpu)
			cpu_request_stop(v->harts[i].cpu);
	dsm_wake(v->dsm);
	for (unsigned i = 0; i < v->nharts; i++) {
		if (!v->harts[i].started)
			continue;
		struct timespec ts;
		uint64_t now = util_now_ns();
		util_deadline_in(CLOCK_REALTIME, deadline_ns > now ? deadline_ns - now : 0, &ts);
		if (pthread_timedjoin_np(v->harts[i].thr, NULL, &ts) == 0)
			v->harts[i].started = false;
		else
			left++;
	}
	return left;
}

void vmd_stop(struct vmd *v)
{
	if (!v)
		return;
	/* A hart blocked in page_get for a page nobody grants any more (peers
	 * stopping) leaves when the DSM stops: dsm_fault returns -ECANCELED. */
	if (vmd_halt(v, util_now_ns() + 2000000000ull)) {
		dsm_stop(v->dsm);
		for (unsigned i = 0; i < v->nharts; i++)
			if (v->harts[i].started) {
				pthread_join(v->harts[i].thr, NULL);
				v->harts[i].started = false;
			}
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

void vmd_revoke_json(struct vmd *v, void *json_obj)
{
	json_t *o = json_object();
	uint64_t calls, silent;
	vmd_revoke_stats(v, &calls, &silent);
	json_object_set_new(o, "calls", json_integer((json_int_t)calls));
	json_object_set_new(o, "silent", json_integer((json_int_t)silent));
	json_object_set_new(o, "interrupts", json_integer((json_int_t)vmd_revocations(v)));
	json_object_set_new(o, "nosub_interrupts",
			    json_integer((json_int_t)vt_revoke_nonsub(v->trace)));
	json_object_set_new(o, "failed", json_integer((json_int_t)__atomic_load_n(
						 &v->revoke_failed, __ATOMIC_RELAXED)));
	json_object_set_new((json_t *)json_obj, "revocation", o);
}

int vmd_stats_write_json(struct vmd *v, FILE *f)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (!m)
		return -ENOMEM;
	int rc = dsm_stats_write_json(v->dsm, m);
	fclose(m);
	json_t *o = rc == 0 ? json_loads(buf, 0, NULL) : NULL;
	free(buf);
	if (!o)
		return rc ? rc : -EIO;
	vmd_revoke_json(v, o);
	rc = json_dumpf(o, f, JSON_COMPACT) ? -EIO : 0;
	json_decref(o);
	return rc;
}
