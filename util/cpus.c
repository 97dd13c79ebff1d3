/*
 * Is this host's CPU oversubscribed right now?  Busy-polling (the
 * transport's progress thread, a faulting vCPU, a home worker waiting for
 * an ACK) pays only while every runnable thread has a CPU: on a 2-core box
 * with three local nodes, polling threads kept the threads they waited for
 * off the CPUs, and a 3-node Linux boot took 34-640 s with polling against
 * 10-20 s without (docs/architecture.md "Polling").  The kernel's count of
 * runnable tasks (4th field of /proc/loadavg) answers for the whole host,
 * other processes included; it is read at most every UTIL_CPUS_CHECK_NS,
 * and the answer is cached in process-wide atomics (documented global
 * state).  SPANVM_SPIN=always / never override it (for measuring).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

#define UTIL_CPUS_CHECK_NS 5000000ull

static _Atomic uint64_t checked_ns;
static _Atomic bool oversubscribed;
static _Atomic int override = -1; /* -1: not read yet, 0: auto, 1: always, 2: never */

static int read_override(void)
{
	const char *e = getenv("SPANVM_SPIN");
	int v = 0;

	if (e && !strcmp(e, "always"))
		v = 1;
	else if (e && !strcmp(e, "never"))
		v = 2;
	else if (e && *e && strcmp(e, "auto"))
		LOG_WARN("util", "SPANVM_SPIN='%s' is not auto, always or never; using auto", e);
	atomic_store(&override, v);
	return v;
}

static bool read_loadavg(void)
{
	static _Atomic long ncpu_cached;
	long ncpu = atomic_load(&ncpu_cached);
	char buf[128];
	unsigned running = 0, total = 0;
	FILE *f;

	if (!ncpu) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
		atomic_store(&ncpu_cached, ncpu);
	}
	if (!(f = fopen("/proc/loadavg", "r")))
		return false;
	bool ok = fgets(buf, sizeof(buf), f) &&
		  sscanf(buf, "%*s %*s %*s %u/%u", &running, &total) == 2;
	fclose(f);
	return ok && running > (unsigned)ncpu;
}

bool util_cpus_oversubscribed(void)
{
	int ov = atomic_load_explicit(&override, memory_order_relaxed);
	if (ov < 0)
		ov = read_override();
	if (ov)
		return ov == 2;
	uint64_t now = util_now_ns(), last = atomic_load_explicit(&checked_ns, memory_order_relaxed);
	if (now - last >= UTIL_CPUS_CHECK_NS &&
	    atomic_compare_exchange_strong(&checked_ns, &last, now))
		atomic_store_explicit(&oversubscribed, read_loadavg(), memory_order_relaxed);
	return atomic_load_explicit(&oversubscribed, memory_order_relaxed);
}
