/*
 * transport/ fault hooks, per peer on the send side: drop, duplicate,
 * reorder, delay, cut, switched at run time; plus inline progress mode.
 * Every fault is checked twice: by what the receiver really got and by the
 * sender's counter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>

#include "test_tp_common.h"

static struct pair P;

static int setup(void **state)
{
	if (pair_open(&P, false))
		return -1;
	tp_handler_set(P.tp[1], 100, rx_log_handler, &P.log[1]);
	return 0;
}

static int teardown(void **state)
{
	pair_close(&P);
	return 0;
}

static void send_val(uint32_t v)
{
	assert_int_equal(tp_send(P.tp[0], 2, 100, &v, sizeof(v)), 0);
}

static void no_faults(void)
{
	struct tp_fault none = {0};
	assert_int_equal(tp_fault_set(P.tp[0], 2, &none), 0);
}

/* Sends a marker after faults are off and waits for it: everything sent
 * before it has arrived or never will (one connection, in order). */
static int count_after_marker(void)
{
	struct rx_log *l = &P.log[1];
	uint64_t deadline = util_now_ns() + 30000000000ull; /* loaded CI machines */
	int seen = 0;

	no_faults();
	send_val(255);
	while (!seen && util_now_ns() < deadline) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
		pthread_mutex_lock(&l->mu);
		seen = l->seen[255];
		pthread_mutex_unlock(&l->mu);
	}
	assert_int_equal(seen, 1);
	return rx_log_count(l) - 1;
}

static void drop_all(void **state)
{
	struct tp_fault f = {.drop_pct = 100};
	struct tp_stats s0, s1;

	rx_log_reset(&P.log[1]);
	tp_stats(P.tp[0], &s0);
	assert_int_equal(tp_fault_set(P.tp[0], 2, &f), 0);
	for (uint32_t i = 0; i < 20; i++)
		send_val(i);
	assert_int_equal(count_after_marker(), 0);
	tp_stats(P.tp[0], &s1);
	assert_int_equal(s1.fault_dropped - s0.fault_dropped, 20);
}

static int dropped_with_seed(uint64_t seed, int seen_out[100])
{
	struct tp_fault f = {.drop_pct = 50, .seed = seed};
	struct tp_stats s0, s1;

	rx_log_reset(&P.log[1]);
	tp_stats(P.tp[0], &s0);
	assert_int_equal(tp_fault_set(P.tp[0], 2, &f), 0);
	for (uint32_t i = 0; i < 100; i++)
		send_val(i);
	int got = count_after_marker();
	tp_stats(P.tp[0], &s1);
	int dropped = (int)(s1.fault_dropped - s0.fault_dropped);
	assert_int_equal(got + dropped, 100);
	memcpy(seen_out, P.log[1].seen, 100 * sizeof(int));
	return dropped;
}

static void drop_half_seeded(void **state)
{
	int a[100], b[100];
	int d1 = dropped_with_seed(42, a);
	assert_true(d1 > 20 && d1 < 80);
	/* Same seed, same decisions. */
	int d2 = dropped_with_seed(42, b);
	assert_int_equal(d1, d2);
	assert_memory_equal(a, b, sizeof(a));
}

static void duplicate_all(void **state)
{
	struct tp_fault f = {.dup_pct = 100};
	struct tp_stats s0, s1;

	rx_log_reset(&P.log[1]);
	tp_stats(P.tp[0], &s0);
	assert_int_equal(tp_fault_set(P.tp[0], 2, &f), 0);
	for (uint32_t i = 0; i < 10; i++)
		send_val(i);
	assert_int_equal(count_after_marker(), 20);
	for (int i = 0; i < 10; i++)
		assert_int_equal(P.log[1].seen[i], 2);
	tp_stats(P.tp[0], &s1);
	assert_int_equal(s1.fault_duplicated - s0.fault_duplicated, 10);
}

static void reorder_pairs(void **state)
{
	struct tp_fault f = {.reorder = true};
	struct tp_stats s0, s1;

	rx_log_reset(&P.log[1]);
	tp_stats(P.tp[0], &s0);
	assert_int_equal(tp_fault_set(P.tp[0], 2, &f), 0);
	send_val(1);
	send_val(2);
	send_val(3);
	send_val(4);
	assert_true(rx_log_wait(&P.log[1], 4, 2000));
	assert_int_equal(count_after_marker(), 4);
	pthread_mutex_lock(&P.log[1].mu);
	uint32_t o[4] = {P.log[1].order[0], P.log[1].order[1], P.log[1].order[2], P.log[1].order[3]};
	pthread_mutex_unlock(&P.log[1].mu);
	assert_int_equal(o[0], 2);
	assert_int_equal(o[1], 1);
	assert_int_equal(o[2], 4);
	assert_int_equal(o[3], 3);
	tp_stats(P.tp[0], &s1);
	assert_int_equal(s1.fault_reordered - s0.fault_reordered, 2);
}

static void delay_holds_messages(void **state)
{
	struct tp_fault f = {.delay_ns = 40000000ull};
	struct tp_stats s0, s1;

	rx_log_reset(&P.log[1]);
	tp_stats(P.tp[0], &s0);
	assert_int_equal(tp_fault_set(P.tp[0], 2, &f), 0);
	uint64_t t0 = util_now_ns();
	send_val(7);
	assert_true(rx_log_wait(&P.log[1], 1, 2000));
	assert_true(P.log[1].last_ns - t0 >= 40000000ull);
	tp_stats(P.tp[0], &s1);
	assert_int_equal(s1.fault_delayed - s0.fault_delayed, 1);
	no_faults();
}

static void cut_partitions_peer(void **state)
{
	struct tp_fault f = {.cut = true};
	struct tp_stats s0, s1;
	char buf[64];

	tp_stats(P.tp[0], &s0);
	assert_int_equal(tp_fault_set(P.tp[0], 2, &f), 0);
	assert_int_equal(tp_ping(P.tp[0], 2, 20000000ull, NULL), -ETIMEDOUT);
	assert_int_equal(tp_rma_read(P.tp[0], 2, 0, buf, sizeof(buf), 1000000000ull), -ECONNREFUSED);
	tp_stats(P.tp[0], &s1);
	assert_true(s1.fault_cut - s0.fault_cut >= 4); /* 3 ping transmissions + the read */
	no_faults();
	assert_int_equal(tp_ping(P.tp[0], 2, 1000000000ull, NULL), 0);
	assert_int_equal(tp_rma_read(P.tp[0], 2, 0, buf, sizeof(buf), 1000000000ull), 0);
}

struct sender_arg {
	_Atomic bool stop;
	_Atomic int sent;
};

static void *sender(void *arg)
{
	struct sender_arg *s = arg;
	while (!atomic_load(&s->stop) && atomic_load(&s->sent) < 4000) {
		uint32_t v = 9;
		if (tp_send(P.tp[0], 2, 100, &v, sizeof(v)) == 0)
			atomic_fetch_add(&s->sent, 1);
		struct timespec ts = {0, 20000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/* Faults switch while another thread is sending. */
static void switch_at_run_time(void **state)
{
	struct sender_arg s = {.stop = false};
	struct tp_fault cut = {.cut = true}, none = {0};
	struct tp_stats s0, s1;
	pthread_t th;

	rx_log_reset(&P.log[1]);
	tp_stats(P.tp[0], &s0);
	assert_int_equal(pthread_create(&th, NULL, sender, &s), 0);
	/* Each phase lasts until the sender got some messages out, not a fixed
	 * time: on a loaded machine the sender may not run for milliseconds. */
	for (int i = 0; i < 10; i++) {
		tp_fault_set(P.tp[0], 2, i % 2 ? &none : &cut);
		int start = atomic_load(&s.sent);
		for (int spin = 0; spin < 10000 && atomic_load(&s.sent) < start + 5; spin++) {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
		}
	}
	atomic_store(&s.stop, true);
	pthread_join(th, NULL);
	int got = count_after_marker();
	tp_stats(P.tp[0], &s1);
	int cutn = (int)(s1.fault_cut - s0.fault_cut);
	assert_int_equal(got + cutn, atomic_load(&s.sent));
	assert_true(cutn > 0);
}

static void inline_progress_mode(void **state)
{
	struct pair q;

	assert_int_equal(pair_open(&q, true), 0);
	tp_handler_set(q.tp[1], 100, rx_log_handler, &q.log[1]);
	uint32_t v = 3;
	assert_int_equal(tp_send(q.tp[0], 2, 100, &v, sizeof(v)), 0);
	/* Nothing moves until someone calls tp_progress on both sides. */
	for (int i = 0; i < 100000 && rx_log_count(&q.log[1]) == 0; i++) {
		assert_true(tp_progress(q.tp[0]) >= 0);
		assert_true(tp_progress(q.tp[1]) >= 0);
	}
	assert_int_equal(rx_log_count(&q.log[1]), 1);
	assert_int_equal(q.log[1].seen[3], 1);
	pair_close(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(drop_all),
		cmocka_unit_test(drop_half_seeded),
		cmocka_unit_test(duplicate_all),
		cmocka_unit_test(reorder_pairs),
		cmocka_unit_test(delay_holds_messages),
		cmocka_unit_test(cut_partitions_peer),
		cmocka_unit_test(switch_at_run_time),
		cmocka_unit_test(inline_progress_mode),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
