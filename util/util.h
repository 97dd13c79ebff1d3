/*
 * util: the bottom layer, depended on by everything and depending on nothing.
 *
 * - Logging: LOG_ERR/WARN/INFO/DBG(subsys, fmt, ...).  Lines go to stderr as
 *   "spanvm[node N/thread] LEVEL subsys: message".  The level is checked
 *   before formatting, so a disabled LOG_DBG costs one load and a branch.
 *   Global state (documented): the log level, the process-wide node id and
 *   the JSON/plain switch, set once at start-up by main(); each thread's
 *   name is thread-local.
 * - Time: monotonic nanoseconds.
 * - Fault points: numbered sites that a test can make fail (k-th hit), to
 *   prove that every error path unwinds cleanly (SQLite style).
 *
 * Thread safety: logging is safe from any thread (one fprintf per line).
 */
#ifndef SPANVM_UTIL_H
#define SPANVM_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_ERR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DBG };

extern int util_log_level; /* written once by main() before threads start */

void util_log_set_level(int level);
/* Parses "err|warn|info|debug"; returns 0 or -EINVAL. */
int util_log_parse_level(const char *name, int *level_out);
void util_log_set_node(int node_id);
void util_log_set_thread(const char *name);
void util_log(int level, const char *subsys, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define LOG_AT(lvl, subsys, ...)                                               \
	do {                                                                   \
		if ((lvl) <= util_log_level)                                   \
			util_log((lvl), (subsys), __VA_ARGS__);                \
	} while (0)
#define LOG_ERR(subsys, ...) LOG_AT(LOG_LEVEL_ERR, subsys, __VA_ARGS__)
#define LOG_WARN(subsys, ...) LOG_AT(LOG_LEVEL_WARN, subsys, __VA_ARGS__)
#define LOG_INFO(subsys, ...) LOG_AT(LOG_LEVEL_INFO, subsys, __VA_ARGS__)
#define LOG_DBG(subsys, ...) LOG_AT(LOG_LEVEL_DBG, subsys, __VA_ARGS__)

/* Monotonic clock in nanoseconds. */
uint64_t util_now_ns(void);

/*
 * Fault points.  util_fault_hit(site) returns true when the armed site has
 * been reached for the k-th time; code then takes its error path.  Arming is
 * for tests only; unarmed sites cost one relaxed load.
 */
void util_fault_arm(int site, unsigned k);
void util_fault_disarm(void);
bool util_fault_hit(int site);

#define UTIL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define UTIL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define UTIL_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
