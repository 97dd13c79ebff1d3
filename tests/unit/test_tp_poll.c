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

int main(void)
{
	/* These tests are about what a poller does, so it must poll: by default
	 * nobody polls while the host is oversubscribed (util/cpus.c), as it is
	 * under ctest -j or a sanitizer. */
	setenv("SPANVM_SPIN", "always", 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(handlers_on_poller),
		cmocka_unit_test(budget_and_errors),
	};
	util_log_set_level(LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, setup, teardown);
}
