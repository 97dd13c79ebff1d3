#include "util/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int util_log_level = LOG_LEVEL_WARN;
static int log_node_id = -1;
static __thread char log_thread[16] = "main";

static const char *const level_names[] = {"ERR", "WARN", "INFO", "DBG"};

void util_log_set_level(int level)
{
	if (level < LOG_LEVEL_ERR)
		level = LOG_LEVEL_ERR;
	if (level > LOG_LEVEL_DBG)
		level = LOG_LEVEL_DBG;
	util_log_level = level;
}

int util_log_parse_level(const char *name, int *level_out)
{
	static const char *const names[] = {"err", "warn", "info", "debug"};
	for (size_t i = 0; i < UTIL_ARRAY_LEN(names); i++) {
		if (strcmp(name, names[i]) == 0) {
			*level_out = (int)i;
			return 0;
		}
	}
	return -EINVAL;
}

void util_log_set_node(int node_id)
{
	log_node_id = node_id;
}

void util_log_set_thread(const char *name)
{
	char comm[16];

	snprintf(log_thread, sizeof(log_thread), "%s", name);
	/* the same name in top -H, perf and gdb (the kernel keeps 15 bytes);
	 * not the main thread's: that is the process name pidof/pkill see */
	if (gettid() == getpid())
		return;
	snprintf(comm, sizeof(comm), "%s", name);
	pthread_setname_np(pthread_self(), comm);
}

void util_log(int level, const char *subsys, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (level < 0 || level > LOG_LEVEL_DBG)
		level = LOG_LEVEL_ERR;
	if (log_node_id >= 0)
		fprintf(stderr, "spanvm[node %d/%s] %s %s: %s\n", log_node_id,
			log_thread, level_names[level], subsys, msg);
	else
		fprintf(stderr, "spanvm[%s] %s %s: %s\n", log_thread,
			level_names[level], subsys, msg);
}

void util_deadline_in(clockid_t clk, uint64_t ns, struct timespec *ts)
{
	clock_gettime(clk, ts);
	uint64_t t = (uint64_t)ts->tv_nsec + ns;
	ts->tv_sec += (time_t)(t / 1000000000ull);
	ts->tv_nsec = (long)(t % 1000000000ull);
}

uint64_t util_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
