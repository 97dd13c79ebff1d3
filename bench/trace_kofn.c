/*
 * bench_trace_kofn: cost of one traced write (post-write protocol, host
 * writer) with k of N vCPU threads subscribed, targeted (only the k) vs the
 * broadcast-to-all baseline, measured in the same run.
 *
 * Each vCPU thread sleeps on a condition variable when idle (as a hart in
 * wfi does); a kick wakes it; it serves its notifications (drops its one
 * structure), then derives it again so it stays subscribed.  The writer
 * waits, untimed, until the k subscribers are back before the next write.
 *
 * Output: one JSON line per (mode, N, k) with mean, p50, p99 in ns and the
 * kicks received by non-subscribers; then a summary line with, for k = 1,
 * the growth of the p50 from N = 2 to the largest N, targeted and broadcast.
 * Usage: bench_trace_kofn [WRITES]   (default 2000)
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trace/trace.h"
#include "util/util.h"

#define PAGE 0x80000000ull

struct bv {
	struct tr_table *t;
	struct tr_sub *sub;
	unsigned id;
	bool subscriber;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int kick, stop;
	bool held;             /* vCPU thread only */
	atomic_ulong kicks;
};

static void b_kick(void *v)
{
	struct bv *b = v;
	atomic_fetch_add(&b->kicks, 1);
	pthread_mutex_lock(&b->mu);
	b->kick = 1;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

static void b_inval(void *v, unsigned kinds, uint64_t page)
{
	struct bv *b = v;
	if (b->held && (kinds & TR_KBIT(TR_KIND_CODE))) {
		b->held = false;
		tr_sub_dropped(b->sub, TR_KIND_CODE, page);
	}
}

static void b_trap(void *v, uint64_t page, bool on) { (void)v, (void)page, (void)on; }

static const struct tr_vcpu_ops bops = { b_kick, b_inval, b_trap };

static void *bv_main(void *arg)
{
	struct bv *b = arg;
	for (;;) {
		pthread_mutex_lock(&b->mu);
		while (!b->kick && !b->stop)
			pthread_cond_wait(&b->cv, &b->mu);
		int stop = b->stop;
		b->kick = 0;
		pthread_mutex_unlock(&b->mu);
		tr_sub_serve(b->sub);
		if (b->subscriber && !b->held && !stop) {
			tr_sub_derived(b->sub, TR_KIND_CODE, PAGE, NULL);
			b->held = true;
		}
		if (stop)
			return NULL;
	}
}

static void bump(void *arg, uint64_t gpa, size_t len) { ++*(volatile uint64_t *)arg; }

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t run(bool broadcast, unsigned n, unsigned k, unsigned writes, double *mean,
		    uint64_t *p99, unsigned long *nonsub_kicks)
{
	struct tr_cfg cfg;
	tr_cfg_default(&cfg);
	cfg.max_vcpus = n;
	cfg.broadcast = broadcast;
	struct tr_table *t;
	if (tr_table_create(&cfg, &t))
		abort();
	struct bv *v = calloc(n, sizeof(*v));
	for (unsigned i = 0; i < n; i++) {
		v[i].t = t;
		v[i].id = i;
		v[i].subscriber = i < k;
		pthread_mutex_init(&v[i].mu, NULL);
		pthread_cond_init(&v[i].cv, NULL);
		if (tr_sub_create(t, i, &bops, &v[i], &v[i].sub))
			abort();
		pthread_create(&v[i].th, NULL, bv_main, &v[i]);
		b_kick(&v[i]); /* first derive on its own thread */
	}
	uint64_t *lat = calloc(writes, sizeof(*lat)), word = 0, bm[TR_MAX_VCPUS / 64];
	double sum = 0;
	while (tr_page_subscribers(t, PAGE, TR_KBIT(TR_KIND_CODE), bm) != (int)k)
		sched_yield();
	for (unsigned i = 0; i < n; i++)
		atomic_store(&v[i].kicks, 0); /* the start-up kicks do not count */
	for (unsigned w = 0; w < writes; w++) {
		while (tr_page_subscribers(t, PAGE, TR_KBIT(TR_KIND_CODE), bm) != (int)k)
			sched_yield(); /* untimed: wait for the k to derive again */
		uint64_t t0 = util_now_ns();
		tr_write(t, NULL, PAGE, 8, bump, &word);
		lat[w] = util_now_ns() - t0;
		sum += (double)lat[w];
	}
	*nonsub_kicks = 0;
	for (unsigned i = k; i < n; i++)
		*nonsub_kicks += atomic_load(&v[i].kicks);
	for (unsigned i = 0; i < n; i++) {
		pthread_mutex_lock(&v[i].mu);
		v[i].stop = 1;
		pthread_cond_signal(&v[i].cv);
		pthread_mutex_unlock(&v[i].mu);
		pthread_join(v[i].th, NULL);
	}
	for (unsigned i = 0; i < n; i++)
		tr_sub_destroy(v[i].sub);
	tr_table_destroy(t);
	free(v);
	qsort(lat, writes, sizeof(*lat), cmp_u64);
	*mean = sum / writes;
	*p99 = lat[writes * 99 / 100];
	uint64_t p50 = lat[writes / 2];
	free(lat);
	return p50;
}

int main(int argc, char **argv)
{
	unsigned writes = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : 2000;
	if (writes < 10 || writes > 10000000) {
		fprintf(stderr, "bench_trace_kofn: WRITES '%s' must be 10..10000000\n", argv[1]);
		return 2;
	}
	static const unsigned ns[] = { 2, 4, 8, 16 }, ks[] = { 1, 2, 4 };
	uint64_t first[2] = { 0, 0 }, last[2] = { 0, 0 };
	for (size_t a = 0; a < UTIL_ARRAY_LEN(ns); a++)
		for (size_t b = 0; b < UTIL_ARRAY_LEN(ks); b++) {
			unsigned n = ns[a], k = ks[b];
			if (k > n)
				continue;
			for (int mode = 0; mode < 2; mode++) { /* same run, interleaved */
				double mean;
				uint64_t p99;
				unsigned long nk;
				uint64_t p50 = run(mode == 1, n, k, writes, &mean, &p99, &nk);
				printf("{\"bench\":\"trace_kofn\",\"mode\":\"%s\",\"n\":%u,\"k\":%u,"
				       "\"writes\":%u,\"mean_ns\":%.0f,\"p50_ns\":%llu,\"p99_ns\":%llu,"
				       "\"nonsub_kicks\":%lu}\n",
				       mode ? "broadcast" : "targeted", n, k, writes, mean,
				       (unsigned long long)p50, (unsigned long long)p99, nk);
				fflush(stdout);
				if (k == 1) {
					if (!first[mode])
						first[mode] = p50;
					last[mode] = p50;
				}
			}
		}
	printf("{\"bench\":\"trace_kofn_summary\",\"k\":1,\"n_from\":%u,\"n_to\":%u,"
	       "\"targeted_growth\":%.2f,\"broadcast_growth\":%.2f}\n",
	       ns[0], ns[UTIL_ARRAY_LEN(ns) - 1], (double)last[0] / (double)first[0],
	       (double)last[1] / (double)first[1]);
	return 0;
}
