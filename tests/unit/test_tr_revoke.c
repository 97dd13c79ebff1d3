/*
 * trace/: revocation (tr_revoke), the DSM agent taking a page away from a
 * node, with the fake vCPUs of test_trace_fake.h.
 *
 * - only the page's subscribers (any kind) are interrupted, and each drops
 *   everything it derived from the page; counters say so (nonsub 0, and
 *   not 0 with the broadcast baseline, so the counter can fail);
 * - the revoker returns only after each subscriber reached an instruction
 *   boundary: never while one is away in guest code, and never while one
 *   waits inside the trace layer (an instruction half done: a trapped store
 *   waiting for its pre-write acknowledgements);
 * - a vCPU that is not running is served on the revoker's own thread
 *   (tr_sub_serve_now), without deadlock;
 * - tr_revoke_try: done at once only when nobody subscribes;
 * - the node-wide subscription callback (tr_cfg.on_page) and writes=0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>

#include "test_trace_fake.h"

static struct tr_table *mk(bool broadcast, enum tr_proto code)
{
	struct tr_cfg cfg;
	tr_cfg_default(&cfg);
	cfg.max_vcpus = MAXV;
	cfg.broadcast = broadcast;
	cfg.proto[TR_KIND_CODE] = code;
	struct tr_table *t = NULL;
	assert_int_equal(tr_table_create(&cfg, &t), 0);
	fake_reset();
	return t;
}

/* A plain table (post-write CODE) with n fake vCPUs started, idle. */
static struct tr_table *mk_started(struct fv *f, int n)
{
	struct tr_table *t = mk(false, TR_PROTO_POST);
	for (int i = 0; i < n; i++)
		fv_start(&f[i], t, (unsigned)i, false);
	return t;
}

static void finish(struct fv *f, int n, struct tr_table *t)
{
	fv_stop_all(f, n);
	for (int i = 0; i < n; i++)
		fv_destroy(&f[i]);
	tr_table_destroy(t);
}

static struct tr_stats stats_of(struct fv *f)
{
	struct tr_stats st;
	tr_sub_stats(f->sub, &st);
	return st;
}

static void cmd_assert_gone(struct fv *f, void *arg)
{
	unsigned p = *(unsigned *)arg;
	for (int k = 0; k < TR_KIND_COUNT; k++)
		assert_false(fv_has(f, p, (enum tr_kind)k));
}

static void cmd_assert_has_code(struct fv *f, void *arg)
{
	assert_true(fv_has(f, *(unsigned *)arg, TR_KIND_CODE));
}

static void cmd_assert_has_pt(struct fv *f, void *arg)
{
	assert_true(fv_has(f, *(unsigned *)arg, TR_KIND_PT));
}

/* ---- a revoker thread ---------------------------------------------------- */

struct revoker {
	struct tr_table *t;
	unsigned page;
	unsigned notified;
	atomic_int done;
	pthread_t th;
};

static void *revoker_main(void *arg)
{
	struct revoker *r = arg;
	assert_int_equal(tr_revoke(r->t, PAGE(r->page), &r->notified), 0);
	atomic_store(&r->done, 1);
	return NULL;
}

static void revoker_start(struct revoker *r, struct tr_table *t, unsigned page)
{
	memset(r, 0, sizeof(*r));
	r->t = t;
	r->page = page;
	assert_int_equal(pthread_create(&r->th, NULL, revoker_main, r), 0);
}

static atomic_int hold_release, in_hold;
static void cmd_hold(struct fv *f, void *arg)
{
	int ms = (int)(intptr_t)arg;
	atomic_store(&in_hold, 1);
	for (int i = 0; i < ms && !atomic_load(&hold_release); i++)
		usleep(1000);
}

/* ---- tests ---------------------------------------------------------------- */

static void revoke_interrupts_only_subscribers(void **state)
{
	struct fv f[3];
	struct tr_table *t = mk_started(f, 3);
	unsigned p = 3, q = 4;
	fv_derive_on(&f[0], p, TR_KIND_TLB);
	fv_derive_on(&f[1], p, TR_KIND_CODE);
	fv_derive_on(&f[1], p, TR_KIND_PT);
	fv_derive_on(&f[2], q, TR_KIND_CODE);
	unsigned n = 99;
	assert_int_equal(tr_revoke(t, PAGE(p) + 123, &n), 0);
	assert_int_equal(n, 2);
	fv_post(&f[0], cmd_assert_gone, &p, true);
	fv_post(&f[1], cmd_assert_gone, &p, true);
	fv_post(&f[2], cmd_assert_has_code, &q, true);
	assert_int_equal(atomic_load(&f[2].kicks), 0); /* never interrupted */
	assert_int_equal(stats_of(&f[0]).revoke_recv, 1);
	assert_int_equal(stats_of(&f[1]).revoke_recv, 1);
	assert_int_equal(stats_of(&f[2]).revoke_recv, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(stats_of(&f[i]).revoke_nonsub, 0);
	assert_int_equal(tr_page_kinds(t, PAGE(p)), 0);
	/* a page nobody derived from: nobody interrupted */
	assert_int_equal(tr_revoke(t, PAGE(5), &n), 0);
	assert_int_equal(n, 0);
	struct tr_stats host;
	tr_table_stats(t, &host, NULL);
	assert_int_equal(host.revocations, 2);
	assert_int_equal(host.revoke_sent, 2);
	assert_int_equal(host.revoke_silent, 1);
	assert_int_equal(host.kind[TR_KIND_TLB].events, 0); /* kept apart from writes */
	fv_drop_on(&f[2], q, TR_KIND_CODE);
	finish(f, 3, t);
}

/* tr_revoke_try (the DSM's INV fast path): done at once, counted like a
 * silent tr_revoke, when nobody subscribes to the page in any kind;
 * -EWOULDBLOCK and nothing done (nobody kicked, nothing dropped) when
 * somebody does. */
static void revoke_try_only_without_subscribers(void **state)
{
	struct fv f[2];
	struct tr_table *t = mk_started(f, 2);
	unsigned p = 3, q = 4;
	fv_derive_on(&f[1], p, TR_KIND_PT);
	assert_int_equal(tr_revoke_try(t, PAGE(p) + 8), -EWOULDBLOCK);
	assert_int_equal(atomic_load(&f[1].kicks), 0);
	fv_post(&f[1], cmd_assert_has_pt, &p, true);
	assert_int_equal(tr_revoke_try(t, PAGE(q)), 0);
	fv_derive_on(&f[0], q, TR_KIND_TLB); /* a derivation ... */
	fv_drop_on(&f[0], q, TR_KIND_TLB);   /* ... dropped again: none left */
	assert_int_equal(tr_revoke_try(t, PAGE(q)), 0);
	assert_int_equal(tr_revoke_try(NULL, PAGE(q)), -EINVAL);
	struct tr_stats host;
	tr_table_stats(t, &host, NULL);
	assert_int_equal(host.revocations, 2);
	assert_int_equal(host.revoke_silent, 2);
	assert_int_equal(host.revoke_sent, 0);
	fv_drop_on(&f[1], p, TR_KIND_PT);
	finish(f, 2, t);
}

/* The broadcast baseline interrupts everybody: the counter sees it. */
static void revoke_broadcast_counts_nonsubscribers(void **state)
{
	struct tr_table *t = mk(true, TR_PROTO_POST);
	struct fv f[3];
	for (int i = 0; i < 3; i++)
		fv_start(&f[i], t, (unsigned)i, false);
	unsigned p = 2, n = 0;
	fv_derive_on(&f[0], p, TR_KIND_TLB);
	assert_int_equal(tr_revoke(t, PAGE(p), &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(stats_of(&f[0]).revoke_nonsub, 0);
	assert_int_equal(stats_of(&f[1]).revoke_nonsub, 1);
	assert_int_equal(stats_of(&f[2]).revoke_nonsub, 1);
	assert_int_equal(stats_of(&f[2]).notify_nonsub, 1);
	finish(f, 3, t);
}

/* A subscriber away in guest code holds the revoker until its boundary. */
static void revoke_waits_for_the_boundary(void **state)
{
	struct tr_table *t = mk(false, TR_PROTO_POST);
	struct fv f[1];
	fv_start(&f[0], t, 0, false);
	unsigned p = 6;
	fv_derive_on(&f[0], p, TR_KIND_TLB);
	atomic_store(&hold_release, 0);
	atomic_store(&in_hold, 0);
	fv_post(&f[0], cmd_hold, (void *)(intptr_t)5000, false);
	while (!atomic_load(&in_hold))
		sched_yield();
	struct revoker r;
	revoker_start(&r, t, p);
	usleep(50000);
	assert_int_equal(atomic_load(&r.done), 0);
	atomic_store(&hold_release, 1);
	pthread_join(r.th, NULL);
	assert_int_equal(r.notified, 1);
	fv_post(&f[0], cmd_assert_gone, &p, true);
	finish(f, 1, t);
}

/* f0 stores to a code page of f1 (pre-write) while f1 is away: f0 waits
 * inside the trace layer with its store not done.  A revocation of another
 * page f0 maps must not be acknowledged there (the store could still go to
 * the revoked page, e.g. the other half of a misaligned store). */
static void revoke_not_acknowledged_inside_a_trace_wait(void **state)
{
	struct tr_table *t = mk(false, TR_PROTO_PRE);
	struct fv f[2];
	for (int i = 0; i < 2; i++)
		fv_start(&f[i], t, (unsigned)i, false);
	unsigned w = 7, p = 8;
	fv_derive_on(&f[0], w, TR_KIND_TLB);
	fv_derive_on(&f[1], w, TR_KIND_CODE); /* f0 now traps stores to w */
	assert_true(atomic_load(&f[0].trap[w]));
	fv_derive_on(&f[0], p, TR_KIND_TLB);
	atomic_store(&hold_release, 0);
	atomic_store(&in_hold, 0);
	fv_post(&f[1], cmd_hold, (void *)(intptr_t)5000, false);
	while (!atomic_load(&in_hold))
		sched_yield();
	uint64_t before = atomic_load(&fmem[w][0]);
	fv_post(&f[0], cmd_store, &w, false); /* waits for f1's acknowledgement */
	usleep(20000);
	struct revoker r;
	revoker_start(&r, t, p);
	usleep(80000);
	assert_int_equal(atomic_load(&fmem[w][0]), before); /* f0 still waits */
	assert_int_equal(atomic_load(&r.done), 0);           /* so the revoker too */
	atomic_store(&hold_release, 1);
	pthread_join(r.th, NULL);
	assert_int_equal(r.notified, 1);
	fv_wait_idle(&f[0]);
	assert_int_equal(atomic_load(&fmem[w][0]), before + 1);
	fv_post(&f[0], cmd_assert_gone, &p, true);
	fv_drop_on(&f[1], w, TR_KIND_CODE);
	fv_drop_on(&f[0], w, TR_KIND_TLB);
	finish(f, 2, t);
}

/* A vCPU that does not run is served on the kicker's thread. */
static struct tr_sub *stopped_sub;
static int stopped_invals;
static void stopped_kick(void *v)
{
	tr_sub_serve_now(stopped_sub);
}
static void stopped_inval(void *v, unsigned kinds, uint64_t page)
{
	stopped_invals++;
	for (int k = 0; k < TR_KIND_COUNT; k++)
		if (kinds & TR_KBIT(k))
			tr_sub_dropped(stopped_sub, (enum tr_kind)k, page); /* -ENOENT: none */
}
static void stopped_trap(void *v, uint64_t page, bool on)
{
}
static const struct tr_vcpu_ops stopped_ops = { stopped_kick, stopped_inval, stopped_trap };

static void revoke_stopped_vcpu_served_inline(void **state)
{
	struct tr_table *t = mk(false, TR_PROTO_POST);
	assert_int_equal(tr_sub_create(t, 0, &stopped_ops, NULL, &stopped_sub), 0);
	stopped_invals = 0;
	assert_int_equal(tr_sub_derived(stopped_sub, TR_KIND_TLB, PAGE(1), NULL), 0);
	assert_int_equal(tr_sub_derived(stopped_sub, TR_KIND_CODE, PAGE(1), NULL), 0);
	unsigned n = 0;
	assert_int_equal(tr_revoke(t, PAGE(1), &n), 0); /* no deadlock */
	assert_int_equal(n, 1);
	assert_int_equal(stopped_invals, 1);
	assert_int_equal(tr_page_kinds(t, PAGE(1)), 0);
	/* a host write to a page it derived code from: acted on at once too */
	assert_int_equal(tr_sub_derived(stopped_sub, TR_KIND_CODE, PAGE(2), NULL), 0);
	struct store_ctx c = { 2, 0 };
	assert_int_equal(tr_write(t, NULL, PAGE(2), 8, store_bump, &c), 0);
	assert_int_equal(tr_page_kinds(t, PAGE(2)), 0);
	tr_sub_destroy(stopped_sub);
	tr_table_destroy(t);
}

/* The node-wide subscription: first subscriber of any kind on, last off. */
static uint64_t ev_page[16];
static int ev_on[16], nev;
static void on_page(void *arg, uint64_t page, bool traced)
{
	assert_ptr_equal(arg, &nev);
	ev_page[nev] = page;
	ev_on[nev++] = traced;
}

static void on_page_and_no_write_traces(void **state)
{
	struct tr_cfg cfg;
	char err[128];
	tr_cfg_default(&cfg);
	cfg.max_vcpus = MAXV;
	cfg.on_page = on_page;
	cfg.on_page_arg = &nev;
	assert_int_equal(tr_cfg_set(&cfg, "writes=0", err, sizeof(err)), 0);
	assert_int_equal(tr_cfg_set(&cfg, "writes=2", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "writes"));
	struct tr_table *t = NULL;
	assert_int_equal(tr_table_create(&cfg, &t), 0);
	nev = 0;
	struct tr_sub *a, *b;
	assert_int_equal(tr_sub_create(t, 0, &stopped_ops, NULL, &a), 0);
	assert_int_equal(tr_sub_create(t, 1, &stopped_ops, NULL, &b), 0);
	stopped_sub = a;
	bool wt = true;
	assert_int_equal(tr_sub_derived(a, TR_KIND_TLB, PAGE(3), &wt), 0);
	assert_false(wt);
	assert_int_equal(tr_sub_derived(b, TR_KIND_CODE, PAGE(3), NULL), 0);
	assert_false(tr_page_write_traced(t, PAGE(3))); /* writes=0: CODE is no write trace */
	assert_int_equal(tr_sub_derived(a, TR_KIND_TLB, PAGE(3), NULL), 0); /* 2nd structure */
	assert_int_equal(nev, 1);
	assert_int_equal(ev_page[0], PAGE(3));
	assert_int_equal(ev_on[0], 1);
	assert_int_equal(tr_sub_dropped(b, TR_KIND_CODE, PAGE(3)), 0);
	assert_int_equal(tr_sub_dropped(a, TR_KIND_TLB, PAGE(3)), 0);
	assert_int_equal(nev, 1);
	assert_int_equal(tr_sub_dropped(a, TR_KIND_TLB, PAGE(3)), 0);
	assert_int_equal(nev, 2);
	assert_int_equal(ev_on[1], 0);
	tr_sub_destroy(a);
	tr_sub_destroy(b);
	tr_table_destroy(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(revoke_interrupts_only_subscribers),
		cmocka_unit_test(revoke_try_only_without_subscribers),
		cmocka_unit_test(revoke_broadcast_counts_nonsubscribers),
		cmocka_unit_test(revoke_waits_for_the_boundary),
		cmocka_unit_test(revoke_not_acknowledged_inside_a_trace_wait),
		cmocka_unit_test(revoke_stopped_vcpu_served_inline),
		cmocka_unit_test(on_page_and_no_write_traces),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
