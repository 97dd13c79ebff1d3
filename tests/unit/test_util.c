#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "util/util.h"

static void fault_fires_on_kth_hit_only(void **state)
{
	util_fault_arm(7, 3);
	assert_false(util_fault_hit(7));
	assert_false(util_fault_hit(8)); /* other sites never fire */
	assert_false(util_fault_hit(7));
	assert_true(util_fault_hit(7));
	assert_false(util_fault_hit(7));
	util_fault_disarm();
	assert_false(util_fault_hit(7));
}

static void log_level_names_parse(void **state)
{
	int lvl = -1;
	assert_int_equal(util_log_parse_level("debug", &lvl), 0);
	assert_int_equal(lvl, LOG_LEVEL_DBG);
	assert_int_equal(util_log_parse_level("loud", &lvl), -EINVAL);
}

static void clock_is_monotonic(void **state)
{
	uint64_t a = util_now_ns(), b = util_now_ns();
	assert_true(b >= a);
	assert_true(a > 0);
}

static _Atomic bool spin_stop;

static void *spinner(void *arg)
{
	while (!atomic_load(&spin_stop))
		;
	return arg;
}

/* More runnable threads than CPUs must read as oversubscribed (the
 * opposite is not asserted: ctest may run other tests beside this one). */
static void busy_threads_oversubscribe_the_host(void **state)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = (unsigned)(ncpu > 0 ? ncpu : 1) + 2;
	pthread_t th[66];
	bool seen = false;

	if (n > 66)
		n = 66;
	unsetenv("SPANVM_SPIN");
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(pthread_create(&th[i], NULL, spinner, NULL), 0);
	for (int i = 0; i < 200 && !seen; i++) {
		usleep(6000); /* past the 5 ms cache */
		seen = util_cpus_oversubscribed();
	}
	atomic_store(&spin_stop, true);
	for (unsigned i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	assert_true(seen);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fault_fires_on_kth_hit_only),
		cmocka_unit_test(log_level_names_parse),
		cmocka_unit_test(clock_is_monotonic),
		cmocka_unit_test(busy_threads_oversubscribe_the_host),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
