/*
 * transport/: tp_poll_wait and tp_handler_set_any.  A thread waiting for a
 * message polls the CQ itself; handlers registered "any thread" then run
 * on it, ordinary handlers still only on the progress thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <unistd.h>

#include "test_tp_common.h"

static struct pair P;

struct seen {
	_Atomic int count;
	_Atomic int on_poller;  /* runs on the thread that polled */
	pthread_t poller;
	_Atomic bool poller_set;
};

static struct seen any_seen, plain_seen;

static void count_handler(void *arg, const struct tp_msg *m)
{
	struct seen *s = arg;
	(void)m;
	if (atomic_load(&s->poller_set) && pthread_equal(pthread_self(), s->poller))
		atomic_fetch_add(&s->on_poller, 1);
	atomic_fetch_add(&s->count, 1);
}

static bool reached(void *arg)
{
	int *want = arg;
	return atomic_load(&any_seen.count) + atomic_load(&plain_seen.count) >= *want;
}

static int setup(void **state)
{
	return pair_open(&P, false);
}

static int teardown(void **state)
{
	pair_close(&P);
	return 0;
}

/* 20 messages of each kind, the receiver polling for them: every one is
 * handled; ordinary handlers never run on the poller; the any-thread ones
 * do (at least one: a poller that is descheduled stops polling and the
 * progress thread may take a message meanwhile). */
static void handlers_on_poller(void **state)
{
	enum { N = 20 };
	int want = 0;

	any_seen.poller = plain_seen.poller = pthread_self();
	atomic_store(&any_seen.poller_set, true);
	atomic_store(&plain_seen.poller_set, true);
	assert_int_equal(tp_handler_set_any(P.tp[1], 150, count_handler, &any_seen), 0);
	assert_int_equal(tp_handler_set(P.tp[1], 151, count_handler, &plain_seen), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(tp_send(P.tp[0], 2, 150, "a", 1), 0);
		assert_int_equal(tp_send(P.tp[0], 2, 151, "p", 1), 0);
		want += 2;
		uint64_t end = util_now_ns() + 5000000000ull;
		int rc;
		while ((rc = tp_poll_wait(P.tp[1], reached, &want, 2000000)) == -EAGAIN &&
		       util_now_ns() < end)
			;
		assert_int_equal(rc, 0);
	}
	assert_int_equal(atomic_load(&any_seen.count), N);
	assert_int_equal(atomic_load(&plain_seen.count), N);
	assert_int_equal(atomic_load(&plain_seen.on_poller), 0);
	assert_true(atomic_load(&any_seen.on_poller) >= 1);
	tp_handler_set(P.tp[1], 150, NULL, NULL);
	tp_handler_set(P.tp[1], 151, NULL, NULL);
}

static bool never(void *arg)
{
	(void)arg;
	return false;
}

static _Atomic int deadlk;

static void poll_in_handler(void *arg, const struct tp_msg *m)
{
	(void)m;
	atomic_store(&deadlk, tp_poll_wait(arg, never, NULL, 1000));
}

/* The budget ends a wait (-EAGAIN); bad arguments; not from a handler. */
static void budget_and_errors(void **state)
{
	assert_int_equal(tp_poll_wait(P.tp[1], never, NULL, 200000), -EAGAIN);
	assert_int_equal(tp_poll_wait(NULL, never, NULL, 1000), -EINVAL);
	assert_int_equal(tp_poll_wait(P.tp[1], NULL, NULL, 1000), -EINVAL);
	assert_int_equal(tp_handler_set_any(P.tp[1], 0, count_handler, NULL), -EINVAL);
	assert_int_equal(tp_handler_set(P.tp[1], 152, poll_in_handler, P.tp[1]), 0);
	assert_int_equal(tp_send(P.tp[0], 2, 152, "x", 1), 0);
	for (int i = 0; i < 5000 && atomic_load(&deadlk) == 0; i++)
		usleep(1000);
	assert_int_equal(atomic_load(&deadlk), -EDEADLK);
	tp_handler_set(P.tp[1], 152, NULL, NULL);
}

/* ---- the progress thread's grace after a hand-off (tp_watch_cq) ---- */

static struct pair G; /* grace of 10 s: only a cut ends it within a test */
static _Atomic int handoffs;

static void hand_off(void *arg, const struct tp_msg *m)
{
	(void)m;
	tp_handed_off(arg);
	atomic_fetch_add(&handoffs, 1);
}

/* A message to node 2 whose handler hands off; returns once the progress
 * thread is in the grace that follows (grace_naps reached want). */
static void start_grace(uint64_t want)
{
	int before = atomic_load(&handoffs);
	assert_int_equal(tp_send(G.tp[0], 2, 160, "h", 1), 0);
	for (int i = 0; i < 5000 && atomic_load(&handoffs) == before; i++)
		usleep(1000);
	assert_int_equal(atomic_load(&handoffs), before + 1);
	assert_true(wait_stat(G.tp[1], offsetof(struct tp_stats, grace_naps), want, 5000));
}

/* After a hand-off the progress thread stays off the CQ: a message sent
 * then is read only once a thread that is about to wait asks for the CQ
 * (tp_watch_cq), or once a poller leaves without its answer.  Each of
 * those ends the grace (grace_cut); with a 10 s grace, the message arriving
 * within 5 s shows that it did. */
static void grace_ends_when_a_waiter_needs_the_cq(void **state)
{
	(void)state;
	assert_int_equal(pair_open_grace(&G, false, 10000000000ull), 0);
	assert_int_equal(tp_handler_set(G.tp[1], 160, hand_off, G.tp[1]), 0);
	assert_int_equal(tp_handler_set(G.tp[1], 161, rx_log_handler, &G.log[1]), 0);

	start_grace(1);
	uint32_t v = 7;
	assert_int_equal(tp_send(G.tp[0], 2, 161, &v, sizeof(v)), 0);
	tp_watch_cq(G.tp[1]);
	assert_true(wait_stat(G.tp[1], offsetof(struct tp_stats, grace_cut), 1, 5000));
	assert_true(rx_log_wait(&G.log[1], 1, 5000));

	start_grace(2);
	assert_int_equal(tp_send(G.tp[0], 2, 161, &v, sizeof(v)), 0);
	assert_int_equal(tp_poll_wait(G.tp[1], never, NULL, 1000000), -EAGAIN);
	assert_true(wait_stat(G.tp[1], offsetof(struct tp_stats, grace_cut), 2, 5000));
	assert_true(rx_log_wait(&G.log[1], 2, 5000));

	/* No grace on: tp_watch_cq ends nothing. */
	struct tp_stats st;
	tp_stats(G.tp[1], &st);
	tp_watch_cq(G.tp[1]);
	tp_watch_cq(NULL);
	struct tp_stats st2;
	tp_stats(G.tp[1], &st2);
	assert_int_equal(st2.grace_cut, st.grace_cut);
	pair_close(&G);
}

int main(void)
{
	/* These tests are about what a poller does, so it must poll: by default
	 * nobody polls while the host is oversubscribed (util/cpus.c), as it is
	 * under ctest -j or a sanitizer. */
	setenv("SPANVM_SPIN", "always", 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(handlers_on_poller),
		cmocka_unit_test(budget_and_errors),
		cmocka_unit_test(grace_ends_when_a_waiter_needs_the_cq),
	};
	util_log_set_level(LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, setup, teardown);
}
