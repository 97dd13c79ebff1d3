/*
 * trace/ unit tests: the table, the sub-monitors and both protocols with
 * fake vCPU threads (test_trace_fake.h).  One test (at least) per claim;
 * tests/claims.md maps claims to these names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>

#include "test_trace_fake.h"

static struct tr_table *mk_table(enum tr_proto code, enum tr_proto pt, bool broadcast)
{
	struct tr_cfg cfg;
	tr_cfg_default(&cfg);
	cfg.max_vcpus = MAXV;
	cfg.proto[TR_KIND_CODE] = code;
	cfg.proto[TR_KIND_PT] = pt;
	cfg.broadcast = broadcast;
	struct tr_table *t = NULL;
	assert_int_equal(tr_table_create(&cfg, &t), 0);
	fake_reset();
	return t;
}

static void start_n(struct fv *f, int n, struct tr_table *t, bool autorun)
{
	for (int i = 0; i < n; i++)
		fv_start(&f[i], t, (unsigned)i, autorun);
}

static void finish(struct fv *f, int n, struct tr_table *t)
{
	fv_stop_all(f, n);
	for (int i = 0; i < n; i++)
		fv_destroy(&f[i]);
	uint64_t pages = 99;
	tr_table_stats(t, NULL, &pages);
	assert_int_equal(pages, 0); /* every entry went with its last subscriber */
	tr_table_destroy(t);
}

static struct tr_stats stats_of(struct fv *f)
{
	struct tr_stats st;
	tr_sub_stats(f->sub, &st);
	return st;
}

/* ---- configuration and table (no threads) ---------------------------- */

static void cfg_rejects_bad_options(void **state)
{
	struct tr_cfg cfg;
	char err[128];
	tr_cfg_default(&cfg);
	assert_int_equal(cfg.proto[TR_KIND_CODE], TR_PROTO_POST);
	assert_int_equal(cfg.proto[TR_KIND_TLB], TR_PROTO_PRE);
	assert_int_equal(tr_cfg_set(&cfg, "code=pre", err, sizeof(err)), 0);
	assert_int_equal(cfg.proto[TR_KIND_CODE], TR_PROTO_PRE);
	assert_int_equal(tr_cfg_set(&cfg, "code=maybe", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "maybe"));
	assert_int_equal(tr_cfg_set(&cfg, "dsm=pre", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "dsm"));
	assert_int_equal(tr_cfg_set(&cfg, "broadcast", err, sizeof(err)), -EINVAL);
	assert_int_equal(tr_cfg_set(&cfg, "broadcast=1", err, sizeof(err)), 0);
	assert_true(cfg.broadcast);
	struct tr_table *t = NULL;
	cfg.max_vcpus = TR_MAX_VCPUS + 1;
	assert_int_equal(tr_table_create(&cfg, &t), -EINVAL);
}

/* Claim 22: one sub-monitor per vCPU, refcounting its own structures so a
 * trace is established on the first and dropped on the last. */
static void claim22_submonitor_refcounts_own_structures(void **state)
{
	struct tr_table *t = mk_table(TR_PROTO_POST, TR_PROTO_POST, false);
	struct tr_sub *a, *b, *dup;
	assert_int_equal(tr_sub_create(t, 3, &fops, NULL, &a), 0);
	assert_int_equal(tr_sub_create(t, 3, &fops, NULL, &dup), -EEXIST);
	assert_int_equal(tr_sub_create(t, MAXV, &fops, NULL, &dup), -EINVAL);
	assert_int_equal(tr_sub_create(t, 5, &fops, NULL, &b), 0);
	uint64_t bm[TR_MAX_VCPUS / 64];

	for (int i = 0; i < 3; i++) /* three blocks from one page */
		assert_int_equal(tr_sub_derived(a, TR_KIND_CODE, PAGE(1) + 64 * i, NULL), 0);
	struct tr_stats st;
	tr_sub_stats(a, &st);
	assert_int_equal(st.kind[TR_KIND_CODE].held, 1);
	assert_int_equal(st.kind[TR_KIND_CODE].established, 1);
	assert_int_equal(tr_page_subscribers(t, PAGE(1), TR_KBIT(TR_KIND_CODE), bm), 1);
	assert_true(bm[0] & (1u << 3));
	assert_int_equal(tr_sub_dropped(a, TR_KIND_CODE, PAGE(1)), 0);
	assert_int_equal(tr_sub_dropped(a, TR_KIND_CODE, PAGE(1)), 0);
	assert_true(tr_page_write_traced(t, PAGE(1))); /* one block left */
	assert_int_equal(tr_sub_dropped(a, TR_KIND_CODE, PAGE(1)), 0);
	assert_false(tr_page_write_traced(t, PAGE(1)));
	assert_int_equal(tr_page_kinds(t, PAGE(1)), 0);
	assert_int_equal(tr_sub_dropped(a, TR_KIND_CODE, PAGE(1)), -ENOENT);

	/* Many pages: the private map grows, the table follows exactly. */
	for (unsigned i = 0; i < 3000; i++)
		assert_int_equal(tr_sub_derived(b, (enum tr_kind)(i % 3), 0x100000000ull + i * 4096ull, NULL), 0);
	uint64_t pages;
	tr_table_stats(t, NULL, &pages);
	assert_int_equal(pages, 3000);
	for (unsigned i = 0; i < 3000; i += 2)
		assert_int_equal(tr_sub_dropped(b, (enum tr_kind)(i % 3), 0x100000000ull + i * 4096ull), 0);
	for (unsigned i = 0; i < 3000; i++)
		assert_int_equal(tr_page_kinds(t, 0x100000000ull + i * 4096ull),
				 i % 2 ? TR_KBIT(i % 3) : 0u);
	tr_sub_destroy(b); /* drops the rest */
	tr_sub_destroy(a);
	tr_table_stats(t, NULL, &pages);
	assert_int_equal(pages, 0);
	tr_table_destroy(t);
}

/* Claims 2, 4, 16: the subscriber set of a page is exactly the set of vCPUs
 * holding a structure derived from it, per kind. */
static void claim2_subscribers_are_the_derivers(void **state)
{
	struct tr_table *t = mk_table(TR_PROTO_POST, TR_PROTO_POST, false);
	struct fv f[4];
	start_n(f, 4, t, false);
	uint64_t bm[TR_MAX_VCPUS / 64];
	fv_derive_on(&f[1], 2, TR_KIND_CODE);
	fv_derive_on(&f[3], 2, TR_KIND_PT);
	fv_derive_on(&f[0], 2, TR_KIND_TLB);
	assert_int_equal(tr_page_subscribers(t, PAGE(2), TR_KBIT(TR_KIND_CODE), bm), 1);
	assert_int_equal(bm[0], 1u << 1);
	assert_int_equal(tr_page_subscribers(t, PAGE(2), TR_KINDS_ALL, bm), 3);
	assert_int_equal(bm[0], (1u << 0) | (1u << 1) | (1u << 3));
	assert_int_equal(tr_page_kinds(t, PAGE(3)), 0);
	fv_drop_on(&f[1], 2, TR_KIND_CODE);
	assert_int_equal(tr_page_subscribers(t, PAGE(2), TR_KBIT(TR_KIND_CODE) | TR_KBIT(TR_KIND_PT), bm), 1);
	assert_int_equal(bm[0], 1u << 3);
	finish(f, 4, t);
}

/* Claims 1, 14, 15: a trace event notifies each subscriber. */
static void claim1_event_notifies_each_subscriber(void **state)
{
	struct tr_table *t = mk_table(TR_PROTO_POST, TR_PROTO_POST, false);
	struct fv f[3];
	start_n(f, 3, t, false);
	fv_derive_on(&f[0], 4, TR_KIND_CODE);
	fv_derive_on(&f[1], 4, TR_KIND_PT);
	host_store(t, 4);
	assert_int_equal(atomic_load(&f[0].invalidations), 1);
	assert_int_equal(atomic_load(&f[1].invalidations), 1);
	assert_int_equal(stats_of(&f[0]).kind[TR_KIND_CODE].notify_recv, 1);
	assert_int_equal(stats_of(&f[1]).kind[TR_KIND_PT].notify_recv, 1);
	assert_int_equal(atomic_load(&f[2].kicks), 0);
	assert_int_equal(tr_page_kinds(t, PAGE(4)), 0); /* both dropped their structures */
	finish(f, 3, t);
}

/* Claims 3, 17: with k of N vCPUs subscribed only those k are interrupted;
 * the broadcast baseline interrupts all N and the counter shows it. */
static void run_k_of_n(bool broadcast, unsigned long *nonsub_kicks, uint64_t *nonsub_ctr)
{
	struct tr_table *t = mk_table(TR_PROTO_POST, TR_PROTO_POST, broadcast);
	enum { N = 8, K = 2, W = 40 };
	struct fv f[N];
	start_n(f, N, t, false);
	for (int w = 0; w < W; w++) {
		for (int i = 0; i < K; i++)
			fv_derive_on(&f[i], 5, TR_KIND_CODE);
		host_store(t, 5);
	}
	*nonsub_kicks = 0;
	*nonsub_ctr = 0;
	for (int i = 0; i < N; i++) {
		struct tr_stats st = stats_of(&f[i]);
		if (i < K) {
			assert_int_equal(st.kind[TR_KIND_CODE].notify_recv, W);
			assert_int_equal(st.kind[TR_KIND_CODE].rederive, W);
		} else {
			*nonsub_kicks += atomic_load(&f[i].kicks);
		}
		*nonsub_ctr += st.notify_nonsub;
	}
	assert_int_equal(atomic_load(&stale_seen), 0);
	finish(f, N, t);
}

static void claim3_only_subscribers_are_notified(void **state)
{
	unsigned long kicks;
	uint64_t ctr;
	run_k_of_n(false, &kicks, &ctr);
	assert_int_equal(kicks, 0);
	assert_int_equal(ctr, 0);
	run_k_of_n(true, &kicks, &ctr); /* the counter and the kicks do see it */
	assert_true(kicks > 0);
	assert_true(ctr > 0);
}

/* Claims 4, 5: on notification the secondary structure is dropped and
 * rederived from the new contents. */
static void check_rederive(struct fv *f, void *arg)
{
	unsigned p = *(unsigned *)arg;
	assert_false(fv_has(f, p, TR_KIND_CODE));
	int i = fv_derive(f, p, TR_KIND_CODE);
	assert_int_equal(f->s[i].ver, atomic_load(&fmem[p][0]));
}

static void claim5_rederive_after_notification(void **state)
{
	struct tr_table *t = mk_table(TR_PROTO_POST, TR_PROTO_POST, false);
	struct fv f[2];
	start_n(f, 2, t, false);
	unsigned p = 6;
	fv_derive_on(&f[0], p, TR_KIND_CODE);
	for (int i = 0; i < 5; i++) {
		host_store(t, p);
		fv_post(&f[0], check_rederive, &p, true);
	}
	assert_int_equal(stats_of(&f[0]).kind[TR_KIND_CODE].rederive, 5);
	assert_int_equal(atomic_load(&stale_seen), 0);
	finish(f, 2, t);
}

/* Claim 6: translated code written by another vCPU.  f1 had a writable
 * mapping of the page before f0 translated from it; its store must still
 * trap and f0 must drop the translation before the store completes. */
static void cmd_assert_no_code(struct fv *f, void *arg)
{
	assert_false(fv_has(f, *(unsigned *)arg, TR_KIND_CODE));
}

static void claim6_cross_vcpu_smc(void **state)
{
	struct tr_table *t = mk_table(TR_PROTO_POST, TR_PROTO_POST, false);
	struct fv f[2];
	start_n(f, 2, t, false);
	unsigned p = 7;
	fv_store_on(&f[1], p); /* TLB fill, writable: nothing traced yet */
	assert_false(atomic_load(&f[1].trap[p]));
	for (int round = 0; round < 20; round++) {
		fv_derive_on(&f[0], p, TR_KIND_CODE);
		assert_true(atomic_load(&f[1].trap[p])); /* switched before the derive returned */
		fv_store_on(&f[1], p);
		fv_post(&f[0], cmd_assert_no_code, &p, true);
	}
	assert_int_equal(stats_of(&f[0]).kind[TR_KIND_CODE].rederive, 20);
	assert_int_equal(atomic_load(&stale_seen), 0);
	finish(f, 2, t);
}

/* Claim 7: a shadow walk (PT kind) from root page A and leaf table B
 * survives writes elsewhere and is dropped exactly when A or B is written. */
static void claim7_shadow_walks_follow_pt_pages(void **state)
{
	struct tr_table *t = mk_table(TR_PROTO_POST, TR_PROTO_POST, false);
	struct fv f[2];
	start_n(f, 2, t, false);
	fv_derive_on(&f[0], 8, TR_KIND_PT);
	fv_derive_on(&f[0], 9, TR_KIND_PT);
	host_store(t, 10); /* unrelated: retained */
	fv_store_on(&f[1], 11);
	assert_int_equal(atomic_load(&f[0].invalidations), 0);
	assert_int_equal(tr_page_kinds(t, PAGE(8)) | tr_page_kinds(t, PAGE(9)), TR_KBIT(TR_KIND_PT));
	fv_store_on(&f[1], 9); /* A/D update or PTE store into the leaf table */
	assert_int_equal(atomic_load(&f[0].invalidations), 1);
	assert_int_equal(tr_page_kinds(t, PAGE(9)) & TR_KBIT(TR_KIND_PT), 0);
	assert_int_equal(tr_page_kinds(t, PAGE(8)), TR_KBIT(TR_KIND_PT));
	fv_drop_on(&f[0], 8, TR_KIND_PT);
	finish(f, 2, t);
}

/* Claims 8, 18: the acting vCPU is a subscriber of the page it writes. */
static void cmd_self_smc(struct fv *f, void *arg)
{
	unsigned p = *(unsigned *)arg;
	fv_derive(f, p, TR_KIND_CODE);
	fv_store(f, p); /* trapped (the page is write-traced): must not wait for itself */
}

static void claim8_actor_is_subscriber(void **state)
{
	struct tr_table *t = mk_table(TR_PROTO_POST, TR_PROTO_POST, false);
	struct fv f[2];
	start_n(f, 2, t, false);
	unsigned p = 12;
	fv_derive_on(&f[1], p, TR_KIND_CODE); /* another subscriber too */
	fv_post(&f[0], cmd_self_smc, &p, true);
	fv_post(&f[0], cmd_assert_no_code, &p, true); /* gone by its next boundary */
	fv_post(&f[1], cmd_assert_no_code, &p, true);
	struct tr_stats st = stats_of(&f[0]);
	assert_int_equal(st.self_notify, 1);
	assert_int_equal(st.kind[TR_KIND_CODE].events, 1);
	assert_int_equal(st.kind[TR_KIND_CODE].notify_sent, 1); /* to f1; not to itself */
	assert_int_equal(st.kind[TR_KIND_CODE].rederive, 1);
	assert_int_equal(atomic_load(&stale_seen), 0);
	finish(f, 2, t);
	/* pre-write as well: an actor never waits for its own acknowledgement */
	struct tr_table *t2 = mk_table(TR_PROTO_PRE, TR_PROTO_PRE, false);
	struct fv g[1];
	start_n(g, 1, t2, false);
	fv_post(&g[0], cmd_self_smc, &p, true);
	fv_post(&g[0], cmd_assert_no_code, &p, true);
	finish(g, 1, t2);
}

/* Claims 9, 19: any write to a traced page is an event (vCPU slow path,
 * host writes, writes spanning pages); writes elsewhere are not. */
static void claim9_writes_are_trace_events(void **state)
{
	struct tr_table *t = mk_table(TR_PROTO_POST, TR_PROTO_POST, false);
	struct fv f[2];
	start_n(f, 2, t, false);
	fv_derive_on(&f[0], 13, TR_KIND_CODE);
	fv_derive_on(&f[0], 14, TR_KIND_CODE);
	fv_store_on(&f[1], 2); /* untraced */
	host_store(t, 3);
	assert_int_equal(atomic_load(&f[0].invalidations), 0);
	struct tr_stats host;
	tr_table_stats(t, &host, NULL);
	assert_int_equal(host.kind[TR_KIND_CODE].events, 0);
	/* a 16-byte host write straddling pages 13 and 14 hits both traces */
	struct store_ctx c = { 13, 0 };
	assert_int_equal(tr_write(t, NULL, PAGE(14) - 8, 16, store_bump, &c), 0);
	assert_int_equal(atomic_load(&f[0].invalidations), 2);
	tr_table_stats(t, &host, NULL);
	assert_int_equal(host.kind[TR_KIND_CODE].events, 2);
	/* a vCPU store through the trap slow path */
	fv_derive_on(&f[0], 13, TR_KIND_CODE);
	fv_store_on(&f[1], 13);
	assert_int_equal(atomic_load(&f[0].invalidations), 3);
	assert_int_equal(stats_of(&f[1]).kind[TR_KIND_CODE].events, 1);
	/* TLB traces are not write traces */
	fv_derive_on(&f[0], 15, TR_KIND_TLB);
	host_store(t, 15);
	assert_int_equal(atomic_load(&f[0].invalidations), 3);
	finish(f, 2, t);
}

/* A subscriber held in guest code until the write callback releases it (or
 * 2 s pass): tells whether the write came before its boundary. */
static atomic_int hold_release, write_ran_while_held, subs_suspended_at_write;
static atomic_ulong inval_at_write;

static atomic_int in_hold;
static void cmd_hold(struct fv *f, void *arg)
{
	int ms = (int)(intptr_t)arg;
	atomic_store(&in_hold, 1);
	for (int i = 0; i < ms && !atomic_load(&hold_release); i++)
		usleep(1000);
}

struct wobs {
	struct fv *f;
	int n;
};
static void write_observe(void *arg, uint64_t gpa, size_t len)
{
	struct wobs *w = arg;
	int susp = 1;
	unsigned long inv = 0;
	for (int i = 0; i < w->n; i++) {
		susp &= atomic_load(&w->f[i].in_serve);
		inv += atomic_load(&w->f[i].invalidations);
	}
	atomic_store(&subs_suspended_at_write, susp);
	atomic_store(&inval_at_write, inv);
	atomic_store(&write_ran_while_held, !atomic_load(&hold_release));
	atomic_store(&hold_release, 1);
	atomic_fetch_add(&fmem[PIDX(gpa)][0], 1);
}

/* Claims 10, 20: pre-write. */
static void claim10_prewrite_suspends_subscribers_first(void **state)
{
	struct tr_table *t = mk_table(TR_PROTO_PRE, TR_PROTO_PRE, false);
	struct fv f[3];
	start_n(f, 3, t, false);
	unsigned p = 1;
	fv_derive_on(&f[0], p, TR_KIND_CODE);
	fv_derive_on(&f[1], p, TR_KIND_PT);
	atomic_store(&hold_release, 0);
	atomic_store(&in_hold, 0);
	fv_post(&f[0], cmd_hold, (void *)(intptr_t)100, false); /* f0 in guest code for 0.1 s */
	while (!atomic_load(&in_hold))
		sched_yield();
	struct wobs w = { f, 2 };
	assert_int_equal(tr_write(t, NULL, PAGE(p), 8, write_observe, &w), 0);
	assert_true(atomic_load(&subs_suspended_at_write)); /* both acked and suspended */
	assert_int_equal(atomic_load(&inval_at_write), 0);  /* nothing dropped before the write */
	fv_wait_idle(&f[0]);
	fv_post(&f[0], cmd_assert_no_code, &p, true); /* resumed, rederives later */
	fv_post(&f[1], cmd_assert_no_code, &p, true);
	assert_int_equal(atomic_load(&f[1].invalidations), 1);
	assert_int_equal(atomic_load(&f[2].kicks), 0);
	assert_true(stats_of(&f[1]).suspended_ns > 0);
	finish(f, 3, t);
}

/* Claims 11, 12: post-write. The write runs while the subscriber is still
 * in guest code; the writer then idles until the subscriber acknowledged. */
static atomic_int writer_returned;
static atomic_ulong inval_at_return;
static struct tr_table *wt_table;
static void *writer_thread(void *arg)
{
	struct wobs *w = arg;
	assert_int_equal(tr_write(wt_table, NULL, PAGE(2), 8, write_observe, w), 0);
	atomic_store(&inval_at_return, atomic_load(&w->f[0].invalidations));
	atomic_store(&writer_returned, 1);
	return NULL;
}

static void claim11_12_postwrite_writer_idles_for_acks(void **state)
{
	struct tr_table *t = mk_table(TR_PROTO_POST, TR_PROTO_POST, false);
	struct fv f[2];
	start_n(f, 2, t, false);
	fv_derive_on(&f[0], 2, TR_KIND_CODE);
	atomic_store(&hold_release, 0);
	atomic_store(&writer_returned, 0);
	atomic_store(&in_hold, 0);
	fv_post(&f[0], cmd_hold, (void *)(intptr_t)3000, false);
	while (!atomic_load(&in_hold)) /* f0 is in guest code, away from a boundary */
		sched_yield();
	struct wobs w = { f, 1 };
	wt_table = t;
	pthread_t th;
	pthread_create(&th, NULL, writer_thread, &w);
	/* claim 11: the write completes first (it is what releases f0) */
	while (!atomic_load(&hold_release))
		sched_yield();
	assert_true(atomic_load(&write_ran_while_held));
	assert_int_equal(atomic_load(&inval_at_write), 0);
	pthread_join(th, NULL);
	/* claim 12: returned only after f0 invalidated and acknowledged */
	assert_int_equal(atomic_load(&inval_at_return), 1);
	assert_true(atomic_load(&writer_returned));
	struct tr_stats host;
	tr_table_stats(t, &host, NULL);
	assert_int_equal(host.kind[TR_KIND_CODE].notify_sent, 1);
	finish(f, 2, t);
}

static void cmd_store_then_look(struct fv *f, void *arg)
{
	struct fv *other = arg;
	fv_store(f, 3);
	atomic_store(&inval_at_return, atomic_load(&other->invalidations));
}

/* Claim 12 from a vCPU writer: it resumes only after the subscriber
 * acknowledged (checked the moment its store returns); idle time counted. */
static void claim12_vcpu_writer_wait_is_counted(void **state)
{
	struct tr_table *t = mk_table(TR_PROTO_POST, TR_PROTO_POST, false);
	struct fv f[2];
	start_n(f, 2, t, false);
	fv_derive_on(&f[0], 3, TR_KIND_CODE);
	atomic_store(&f[0].boundary_delay_us, 2000);
	fv_post(&f[1], cmd_store_then_look, &f[0], true); /* trapped: f0 subscribes */
	assert_int_equal(atomic_load(&inval_at_return), 1);
	assert_true(stats_of(&f[1]).writer_wait_ns > 0);
	atomic_store(&f[0].boundary_delay_us, 0);
	finish(f, 2, t);
}

/* Claim 13: the acting vCPU takes a "fault" (its store to the traced page
 * enters the slow path because the trace switched its mapping to trap), and
 * the other vCPUs are interrupted ("IPI": kick) and act on their own thread. */
static void claim13_fault_on_actor_ipi_to_others(void **state)
{
	struct tr_table *t = mk_table(TR_PROTO_POST, TR_PROTO_POST, false);
	struct fv f[3];
	start_n(f, 3, t, false);
	unsigned p = 4;
	fv_store_on(&f[0], p); /* f0 has a writable mapping, no trap */
	assert_false(atomic_load(&f[0].trap[p]));
	fv_derive_on(&f[1], p, TR_KIND_CODE);
	assert_true(atomic_load(&f[0].trap[p])); /* the mapping now faults on store */
	assert_int_equal(stats_of(&f[1]).trap_sync, 1);
	fv_store_on(&f[0], p);
	assert_int_equal(stats_of(&f[0]).kind[TR_KIND_CODE].events, 1);
	assert_true(atomic_load(&f[1].kicks) >= 1);
	assert_true(pthread_equal(f[1].serve_thread, f[1].th));
	assert_int_equal(atomic_load(&f[2].kicks), 0);
	/* f1 dropped its translation, nothing traces the page: f0 stops trapping */
	assert_false(tr_page_write_traced(t, PAGE(p)));
	assert_false(atomic_load(&f[0].trap[p]));
	finish(f, 3, t);
}

/* Claim 21: the monitor (host side, e.g. a device or the loader) is an
 * actor too, and its statistics are exported with the vCPUs'. */
static void claim21_monitor_writes_and_stats_json(void **state)
{
	struct tr_table *t = mk_table(TR_PROTO_POST, TR_PROTO_POST, false);
	struct fv f[2];
	start_n(f, 2, t, false);
	fv_derive_on(&f[1], 5, TR_KIND_CODE);
	host_store(t, 5);
	assert_int_equal(atomic_load(&f[1].invalidations), 1);
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	assert_int_equal(tr_stats_write_json(t, m), 0);
	fclose(m);
	assert_non_null(strstr(buf, "\"host\":{\"kinds\":{\"code\":{\"held\":0,\"established\":0,\"events\":1,\"notify_sent\":1"));
	assert_non_null(strstr(buf, "\"id\":1,\"kinds\":{\"code\":{\"held\":0,\"established\":1,\"events\":0,\"notify_sent\":0,\"notify_recv\":1,\"rederive\":1}"));
	assert_non_null(strstr(buf, "\"notify_nonsub\":0"));
	free(buf);
	finish(f, 2, t);
}

/* Deadlock freedom: two vCPUs writing each other's traced pages at once,
 * both protocols, many rounds. */
static atomic_int loop_ready;
static atomic_ulong loop_events[2];
static void cmd_store_loop(struct fv *f, void *arg)
{
	unsigned p = *(unsigned *)arg;
	atomic_fetch_add(&loop_ready, 1);
	while (atomic_load(&loop_ready) < 2) /* overlap the two loops */
		sched_yield();
	/* until both have written into the other's traced page many times */
	for (int i = 0; i < 5000000 && (atomic_load(&loop_events[0]) < 200 ||
					 atomic_load(&loop_events[1]) < 200); i++) {
		struct tr_stats st;
		tr_sub_stats(f->sub, &st);
		atomic_store(&loop_events[f->id], st.kind[TR_KIND_CODE].events);
		fv_boundary(f);
		if (!fv_has(f, p ^ 1, TR_KIND_CODE))
			fv_derive(f, p ^ 1, TR_KIND_CODE);
		fv_store(f, p);
	}
}

static void crossed_writers(enum tr_proto proto)
{
	struct tr_table *t = mk_table(proto, proto, false);
	struct fv f[2];
	start_n(f, 2, t, false);
	unsigned p0 = 0, p1 = 1;
	atomic_store(&loop_ready, 0);
	atomic_store(&loop_events[0], 0);
	atomic_store(&loop_events[1], 0);
	fv_post(&f[0], cmd_store_loop, &p0, false);
	fv_post(&f[1], cmd_store_loop, &p1, false);
	fv_wait_idle(&f[0]);
	fv_wait_idle(&f[1]);
	assert_true(stats_of(&f[0]).kind[TR_KIND_CODE].events >= 200);
	assert_true(stats_of(&f[1]).kind[TR_KIND_CODE].events >= 200);
	assert_int_equal(atomic_load(&stale_seen), 0);
	finish(f, 2, t);
}

static void deadlock_free_crossed_writers(void **state)
{
	crossed_writers(TR_PROTO_POST);
	crossed_writers(TR_PROTO_PRE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cfg_rejects_bad_options),
		cmocka_unit_test(claim22_submonitor_refcounts_own_structures),
		cmocka_unit_test(claim2_subscribers_are_the_derivers),
		cmocka_unit_test(claim1_event_notifies_each_subscriber),
		cmocka_unit_test(claim3_only_subscribers_are_notified),
		cmocka_unit_test(claim5_rederive_after_notification),
		cmocka_unit_test(claim6_cross_vcpu_smc),
		cmocka_unit_test(claim7_shadow_walks_follow_pt_pages),
		cmocka_unit_test(claim8_actor_is_subscriber),
		cmocka_unit_test(claim9_writes_are_trace_events),
		cmocka_unit_test(claim10_prewrite_suspends_subscribers_first),
		cmocka_unit_test(claim11_12_postwrite_writer_idles_for_acks),
		cmocka_unit_test(claim12_vcpu_writer_wait_is_counted),
		cmocka_unit_test(claim13_fault_on_actor_ipi_to_others),
		cmocka_unit_test(claim21_monitor_writes_and_stats_json),
		cmocka_unit_test(deadlock_free_crossed_writers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
