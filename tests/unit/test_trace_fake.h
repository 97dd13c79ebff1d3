/*
 * Fake vCPUs for the trace tests: each is a thread with an "engine" that
 * derives structures from pages of a small fake guest memory and stores to
 * them, the way cpu/ does, but simple enough to check exactly.
 *
 * - Memory: NPAGES pages; word 0 of a page is its version, bumped by every
 *   store.  completed[p] is the highest version whose write protocol
 *   finished (end returned); a structure of a write kind derived from page
 *   p that is still live at an instruction boundary with a version below
 *   completed[p] is stale: fake_check() counts those.
 * - Each loop iteration is one instruction boundary: a pending kick runs
 *   tr_sub_serve() first (the trace layer's only entry for invalidations).
 * - Commands posted by the test (fv_do) run on the vCPU thread between
 *   boundaries; in "auto" mode the thread runs a random workload instead.
 */
#ifndef TEST_TRACE_FAKE_H
#define TEST_TRACE_FAKE_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "trace/trace.h"

#define NPAGES 16
#define MEM_BASE 0x80000000ull
#define PAGE(i) (MEM_BASE + (uint64_t)(i) * TR_PAGE_SIZE)
#define PIDX(gpa) ((unsigned)(((gpa) - MEM_BASE) >> TR_PAGE_SHIFT))
#define MAXS 96
#define MAXV 16

static _Atomic uint64_t fmem[NPAGES][8];
static _Atomic uint64_t completed[NPAGES];
static atomic_ulong stale_seen;
static _Atomic long last_writer[NPAGES]; /* debug: id*2 + direct, -1 host */   /* stale structures observed at a boundary */

struct fstruct {
	unsigned page;
	enum tr_kind kind;
	uint64_t ver;
	bool live;
};

struct fv;
typedef void (*fv_fn)(struct fv *f, void *arg);

struct fv {
	unsigned id;
	struct tr_table *t;
	struct tr_sub *sub;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_int kick, stop;
	fv_fn cmd;
	void *cmd_arg;
	int cmd_done;
	atomic_int autorun;          /* run the random workload */
	atomic_int parked;           /* not in the workload: only serving */
	unsigned seed;
	struct fstruct s[MAXS];
	atomic_int trap[NPAGES];
	atomic_ulong kicks;          /* ops->kick calls received */
	atomic_ulong invalidations;  /* ops->invalidate calls */
	atomic_ulong serves;
	atomic_int in_serve;         /* inside tr_sub_serve (suspended or acting) */
	atomic_int boundary_delay_us;/* slow down reaching the boundary (claim 12) */
	unsigned long steps;
	pthread_t serve_thread;      /* thread that last ran invalidate (claim 13) */
};

static __attribute__((unused)) void fop_kick(void *v)
{
	struct fv *f = v;
	atomic_fetch_add(&f->kicks, 1);
	pthread_mutex_lock(&f->mu);
	atomic_store(&f->kick, 1);
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

static __attribute__((unused)) void fv_drop_idx(struct fv *f, int i)
{
	f->s[i].live = false;
	assert_int_equal(tr_sub_dropped(f->sub, f->s[i].kind, PAGE(f->s[i].page)), 0);
}

static __attribute__((unused)) void fop_invalidate(void *v, unsigned kinds, uint64_t page)
{
	struct fv *f = v;
	atomic_fetch_add(&f->invalidations, 1);
	f->serve_thread = pthread_self();
	for (int i = 0; i < MAXS; i++)
		if (f->s[i].live && f->s[i].page == PIDX(page) && (kinds & TR_KBIT(f->s[i].kind)))
			fv_drop_idx(f, i);
}

static __attribute__((unused)) void fop_trap(void *v, uint64_t page, bool on)
{
	struct fv *f = v;
	atomic_store(&f->trap[PIDX(page)], on);
}

static const struct tr_vcpu_ops fops = { fop_kick, fop_invalidate, fop_trap };

/* Derive one structure of kind from page p (as the engine would: trace
 * first, then read the page). */
static __attribute__((unused)) int fv_derive(struct fv *f, unsigned p, enum tr_kind kind)
{
	int i;
	for (i = 0; i < MAXS && f->s[i].live; i++)
		;
	if (i == MAXS)
		return -1;
	bool wt = false;
	assert_int_equal(tr_sub_derived(f->sub, kind, PAGE(p), &wt), 0);
	f->s[i] = (struct fstruct){ p, kind, atomic_load(&fmem[p][0]), true };
	if (kind == TR_KIND_TLB && wt)
		atomic_store(&f->trap[p], 1);
	return i;
}

static __attribute__((unused)) void fv_drop(struct fv *f, unsigned p, enum tr_kind kind)
{
	for (int i = 0; i < MAXS; i++)
		if (f->s[i].live && f->s[i].page == p && f->s[i].kind == kind) {
			fv_drop_idx(f, i);
			return;
		}
}

static __attribute__((unused)) bool fv_has(struct fv *f, unsigned p, enum tr_kind kind)
{
	for (int i = 0; i < MAXS; i++)
		if (f->s[i].live && f->s[i].page == p && f->s[i].kind == kind)
			return true;
	return false;
}

struct store_ctx {
	unsigned p;
	uint64_t ver;
};

static __attribute__((unused)) void store_bump(void *arg, uint64_t gpa, size_t len)
{
	struct store_ctx *c = arg;
	c->ver = atomic_fetch_add(&fmem[c->p][0], 1) + 1;
}

static __attribute__((unused)) void publish(unsigned p, uint64_t ver)
{
	uint64_t cur = atomic_load(&completed[p]);
	while (cur < ver && !atomic_compare_exchange_weak(&completed[p], &cur, ver))
		;
}

/* A guest store to page p: TLB fill if needed, then fast or trapped path. */
static __attribute__((unused)) void fv_store(struct fv *f, unsigned p)
{
	if (!fv_has(f, p, TR_KIND_TLB) && fv_derive(f, p, TR_KIND_TLB) < 0)
		return; /* no room for a TLB entry: no store (as a real TLB would evict) */
	struct store_ctx c = { p, 0 };
	if (atomic_load(&f->trap[p])) {
		bool still = true;
		assert_int_equal(tr_sub_write_begin(f->sub, PAGE(p) + 8, 8), 0);
		store_bump(&c, PAGE(p), 8);
		atomic_store(&last_writer[p], (long)f->id * 2);
		tr_sub_write_end(f->sub, &still);
		if (!still)
			atomic_store(&f->trap[p], 0);
	} else {
		store_bump(&c, PAGE(p), 8); /* fast path: an escape shows up as stale */
		atomic_store(&last_writer[p], (long)f->id * 2 + 1);
	}
	publish(p, c.ver);
}

/* Host-side (device) write through tr_write. */
static __attribute__((unused)) void host_store(struct tr_table *t, unsigned p)
{
	struct store_ctx c = { p, 0 };
	assert_int_equal(tr_write(t, NULL, PAGE(p) + 16, 8, store_bump, &c), 0);
	publish(p, c.ver);
}

static __attribute__((unused)) void fv_check(struct fv *f)
{
	for (int i = 0; i < MAXS; i++) {
		struct fstruct *s = &f->s[i];
		if (s->live && s->kind != TR_KIND_TLB && s->ver < atomic_load(&completed[s->page])) {
			if (getenv("TRACE_DEBUG"))
				fprintf(stderr, "stale: v%u page %u kind %d writer %ld ver %llu completed %llu mem %llu\n",
					f->id, s->page, s->kind, atomic_load(&last_writer[s->page]), (unsigned long long)s->ver,
					(unsigned long long)atomic_load(&completed[s->page]),
					(unsigned long long)atomic_load(&fmem[s->page][0]));
			atomic_fetch_add(&stale_seen, 1);
		}
	}
}

static __attribute__((unused)) void fv_boundary(struct fv *f)
{
	int d = atomic_load(&f->boundary_delay_us);
	if (d)
		usleep((useconds_t)d);
	if (atomic_exchange(&f->kick, 0)) {
		atomic_store(&f->in_serve, 1);
		tr_sub_serve(f->sub);
		atomic_store(&f->in_serve, 0);
		atomic_fetch_add(&f->serves, 1);
	}
	fv_check(f);
}

/* One random step of the auto workload. */
static __attribute__((unused)) void fv_auto_step(struct fv *f)
{
	unsigned r = (unsigned)rand_r(&f->seed);
	unsigned p = (r >> 8) % NPAGES;
	switch (r % 8) {
	case 0: case 1:
		fv_derive(f, p, (r >> 4) % 2 ? TR_KIND_CODE : TR_KIND_PT);
		break;
	case 2:
		fv_drop(f, p, TR_KIND_CODE);
		fv_drop(f, p, TR_KIND_PT);
		break;
	case 3:
		fv_drop(f, p, TR_KIND_TLB);
		break;
	default:
		fv_store(f, p);
	}
}

static void *fv_main(void *arg)
{
	struct fv *f = arg;
	while (!atomic_load(&f->stop)) {
		fv_boundary(f);
		if (atomic_load(&f->autorun)) {
			fv_auto_step(f);
			f->steps++;
			continue;
		}
		atomic_store(&f->parked, 1);
		pthread_mutex_lock(&f->mu);
		while (!f->cmd && !atomic_load(&f->kick) && !atomic_load(&f->stop))
			pthread_cond_wait(&f->cv, &f->mu);
		fv_fn fn = f->cmd;
		void *a = f->cmd_arg;
		pthread_mutex_unlock(&f->mu);
		if (fn) {
			fn(f, a);
			pthread_mutex_lock(&f->mu);
			f->cmd = NULL;
			f->cmd_done = 1;
			pthread_cond_broadcast(&f->cv);
			pthread_mutex_unlock(&f->mu);
		}
	}
	/* drain: acknowledge whatever is still addressed to us */
	fv_boundary(f);
	return NULL;
}

/* Post fn to run on the vCPU thread; wait for it when wait. */
static __attribute__((unused)) void fv_post(struct fv *f, fv_fn fn, void *arg, bool wait)
{
	pthread_mutex_lock(&f->mu);
	while (f->cmd)
		pthread_cond_wait(&f->cv, &f->mu);
	f->cmd = fn;
	f->cmd_arg = arg;
	f->cmd_done = 0;
	pthread_cond_broadcast(&f->cv);
	while (wait && !f->cmd_done)
		pthread_cond_wait(&f->cv, &f->mu);
	pthread_mutex_unlock(&f->mu);
}

static __attribute__((unused)) void fv_wait_idle(struct fv *f)
{
	pthread_mutex_lock(&f->mu);
	while (f->cmd)
		pthread_cond_wait(&f->cv, &f->mu);
	pthread_mutex_unlock(&f->mu);
}

struct dargs {
	unsigned p;
	enum tr_kind kind;
};
static __attribute__((unused)) void cmd_derive(struct fv *f, void *a)
{
	struct dargs *d = a;
	fv_derive(f, d->p, d->kind);
}
static __attribute__((unused)) void cmd_drop(struct fv *f, void *a)
{
	struct dargs *d = a;
	fv_drop(f, d->p, d->kind);
}
static __attribute__((unused)) void cmd_store(struct fv *f, void *a)
{
	fv_store(f, *(unsigned *)a);
}

static __attribute__((unused)) void fv_derive_on(struct fv *f, unsigned p, enum tr_kind kind)
{
	struct dargs d = { p, kind };
	fv_post(f, cmd_derive, &d, true);
}
static __attribute__((unused)) void fv_drop_on(struct fv *f, unsigned p, enum tr_kind kind)
{
	struct dargs d = { p, kind };
	fv_post(f, cmd_drop, &d, true);
}
static __attribute__((unused)) void fv_store_on(struct fv *f, unsigned p)
{
	fv_post(f, cmd_store, &p, true);
}

static __attribute__((unused)) void fv_start(struct fv *f, struct tr_table *t, unsigned id, bool autorun)
{
	memset(f, 0, sizeof(*f));
	f->id = id;
	f->t = t;
	atomic_store(&f->autorun, autorun);
	f->seed = 12345u + id * 7919u;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	assert_int_equal(tr_sub_create(t, id, &fops, f, &f->sub), 0);
	assert_int_equal(pthread_create(&f->th, NULL, fv_main, f), 0);
}

static __attribute__((unused)) void fv_stop(struct fv *f)
{
	pthread_mutex_lock(&f->mu);
	atomic_store(&f->stop, 1);
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->th, NULL);
}

/* Stop the workloads of n vCPUs, wait until none is inside one (so no
 * write is in flight), then stop the threads. */
static __attribute__((unused)) void fv_stop_all(struct fv *f, int n)
{
	for (int i = 0; i < n; i++)
		atomic_store(&f[i].autorun, 0);
	for (int i = 0; i < n; i++)
		while (!atomic_load(&f[i].parked))
			sched_yield();
	for (int i = 0; i < n; i++)
		fv_wait_idle(&f[i]);
	for (int i = 0; i < n; i++)
		fv_stop(&f[i]);
}

static __attribute__((unused)) void fv_destroy(struct fv *f)
{
	tr_sub_destroy(f->sub);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
}

static __attribute__((unused)) void fake_reset(void)
{
	for (int p = 0; p < NPAGES; p++) {
		atomic_store(&fmem[p][0], 0);
		atomic_store(&completed[p], 0);
	}
	atomic_store(&stale_seen, 0);
}

#endif
