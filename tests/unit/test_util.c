#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fault_fires_on_kth_hit_only),
		cmocka_unit_test(log_level_names_parse),
		cmocka_unit_test(clock_is_monotonic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
