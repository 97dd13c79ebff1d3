/*
 * Stress: several fake vCPUs deriving, dropping and storing at random over
 * a few pages, plus a host writer, until thousands of trace events have
 * happened.  Must finish (no deadlock), never observe a stale structure at
 * an instruction boundary, never interrupt a non-subscriber, and leave an
 * empty table.  Runs under TSan in `make check` (label sanitize).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>

#include "test_trace_fake.h"

enum { NV = 6, TARGET_EVENTS = 4000 };

static atomic_int host_stop;
static struct tr_table *host_table;

static void *host_writer(void *arg)
{
	unsigned seed = 99;
	while (!atomic_load(&host_stop)) {
		host_store(host_table, (unsigned)rand_r(&seed) % NPAGES);
		usleep(50);
	}
	return NULL;
}

static uint64_t total_events(struct fv *f, struct tr_table *t)
{
	uint64_t n = 0;
	struct tr_stats st;
	for (int i = 0; i < NV; i++) {
		tr_sub_stats(f[i].sub, &st);
		for (int k = 0; k < TR_KIND_COUNT; k++)
			n += st.kind[k].events;
	}
	tr_table_stats(t, &st, NULL);
	for (int k = 0; k < TR_KIND_COUNT; k++)
		n += st.kind[k].events;
	return n;
}

static void stress(enum tr_proto code, enum tr_proto pt)
{
	struct tr_cfg cfg;
	tr_cfg_default(&cfg);
	cfg.max_vcpus = MAXV;
	cfg.proto[TR_KIND_CODE] = code;
	cfg.proto[TR_KIND_PT] = pt;
	struct tr_table *t;
	assert_int_equal(tr_table_create(&cfg, &t), 0);
	fake_reset();
	struct fv f[NV];
	for (int i = 0; i < NV; i++)
		fv_start(&f[i], t, (unsigned)i, true);
	host_table = t;
	atomic_store(&host_stop, 0);
	pthread_t hw;
	pthread_create(&hw, NULL, host_writer, NULL);

	uint64_t ev = 0;
	for (int waited = 0; (ev = total_events(f, t)) < TARGET_EVENTS && waited < 60000; waited += 10)
		usleep(10000);
	atomic_store(&host_stop, 1);
	pthread_join(hw, NULL);
	fv_stop_all(f, NV);

	uint64_t nonsub = 0, rederive = 0, traps = 0;
	for (int i = 0; i < NV; i++) {
		struct tr_stats st;
		tr_sub_stats(f[i].sub, &st);
		nonsub += st.notify_nonsub;
		traps += st.trap_sync;
		for (int k = 0; k < TR_KIND_COUNT; k++)
			rederive += st.kind[k].rederive;
	}
	fprintf(stderr, "stress %s/%s: %llu events, %llu rederivations, %llu trap switches, stale %lu\n",
		code == TR_PROTO_PRE ? "pre" : "post", pt == TR_PROTO_PRE ? "pre" : "post",
		(unsigned long long)ev, (unsigned long long)rederive, (unsigned long long)traps,
		atomic_load(&stale_seen));
	assert_true(ev >= TARGET_EVENTS);
	assert_true(rederive > 0);
	assert_int_equal(nonsub, 0);
	assert_int_equal(atomic_load(&stale_seen), 0);
	for (int i = 0; i < NV; i++)
		fv_destroy(&f[i]);
	uint64_t pages = 1;
	tr_table_stats(t, NULL, &pages);
	assert_int_equal(pages, 0);
	tr_table_destroy(t);
}

static void stress_post(void **state) { stress(TR_PROTO_POST, TR_PROTO_POST); }
static void stress_pre(void **state) { stress(TR_PROTO_PRE, TR_PROTO_PRE); }
static void stress_mixed(void **state) { stress(TR_PROTO_PRE, TR_PROTO_POST); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stress_post),
		cmocka_unit_test(stress_pre),
		cmocka_unit_test(stress_mixed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
