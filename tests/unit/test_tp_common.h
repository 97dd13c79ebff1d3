/* Shared fixture for the transport tests: two tp instances on 127.0.0.1. */
#ifndef TEST_TP_COMMON_H
#define TEST_TP_COMMON_H

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "transport/tp.h"
#include "transport/tp_int.h" /* tp_send_raw test hook */
#include "util/util.h"

#define REGION_SIZE (1u << 20)

struct rx_log {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int count;
	int seen[256];      /* how often value i (first u32 of payload) arrived */
	uint32_t order[256];
	int src;
	size_t last_len;
	uint64_t last_ns;
};

struct pair {
	struct tp *tp[2];   /* node ids 1 and 2 */
	char *region[2];
	struct rx_log log[2];
};

static inline void rx_log_reset(struct rx_log *l)
{
	pthread_mutex_lock(&l->mu);
	l->count = 0;
	memset(l->seen, 0, sizeof(l->seen));
	pthread_mutex_unlock(&l->mu);
}

static inline void rx_log_handler(void *arg, const struct tp_msg *m)
{
	struct rx_log *l = arg;
	uint32_t v = 0;

	if (m->len >= 4)
		memcpy(&v, m->payload, 4);
	pthread_mutex_lock(&l->mu);
	if (v < 256)
		l->seen[v]++;
	if (l->count < 256)
		l->order[l->count] = v;
	l->count++;
	l->src = m->src;
	l->last_len = m->len;
	l->last_ns = util_now_ns();
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

/* Waits until the log holds at least n messages; false after ms. */
static inline bool rx_log_wait(struct rx_log *l, int n, int ms)
{
	uint64_t deadline = util_now_ns() + (uint64_t)ms * 1000000;
	bool ok;

	pthread_mutex_lock(&l->mu);
	while (l->count < n && util_now_ns() < deadline) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 5000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&l->cv, &l->mu, &ts);
	}
	ok = l->count >= n;
	pthread_mutex_unlock(&l->mu);
	return ok;
}

static inline int rx_log_count(struct rx_log *l)
{
	pthread_mutex_lock(&l->mu);
	int n = l->count;
	pthread_mutex_unlock(&l->mu);
	return n;
}

/* Waits until the u64 counter at offset off of tp_stats reaches want. */
static inline bool wait_stat(struct tp *tp, size_t off, uint64_t want, int ms)
{
	uint64_t deadline = util_now_ns() + (uint64_t)ms * 1000000;
	for (;;) {
		struct tp_stats st;
		tp_stats(tp, &st);
		uint64_t v;
		memcpy(&v, (char *)&st + off, sizeof(v));
		if (v >= want)
			return true;
		if (util_now_ns() > deadline)
			return false;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
}

/* grace_ns: tp_cfg.grace_ns of both (0: the default). */
static inline int pair_open_grace(struct pair *p, bool inline_progress, uint64_t grace_ns)
{
	char addr[2][TP_ADDR_MAX];
	size_t alen[2];
	uint64_t key[2], base[2];

	memset(p, 0, sizeof(*p));
	for (int i = 0; i < 2; i++) {
		struct tp_cfg cfg = {.node_id = i + 1, .bind_addr = "127.0.0.1",
				     .inline_progress = inline_progress, .grace_ns = grace_ns};
		pthread_mutex_init(&p->log[i].mu, NULL);
		pthread_cond_init(&p->log[i].cv, NULL);
		if (tp_create(&cfg, &p->tp[i]))
			return -1;
		p->region[i] = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p->region[i] == MAP_FAILED)
			return -1;
		alen[i] = sizeof(addr[i]);
		if (tp_local_addr(p->tp[i], addr[i], &alen[i]) ||
		    tp_mr_register(p->tp[i], p->region[i], REGION_SIZE, &key[i], &base[i]))
			return -1;
	}
	for (int i = 0; i < 2; i++) {
		int j = 1 - i;
		if (tp_peer_add(p->tp[i], j + 1, addr[j], alen[j], key[j], base[j]))
			return -1;
		if (tp_start(p->tp[i]))
			return -1;
	}
	return 0;
}

static inline int pair_open(struct pair *p, bool inline_progress)
{
	return pair_open_grace(p, inline_progress, 0);
}

static inline void pair_close(struct pair *p)
{
	for (int i = 0; i < 2; i++) {
		tp_destroy(p->tp[i]);
		if (p->region[i] && p->region[i] != MAP_FAILED)
			munmap(p->region[i], REGION_SIZE);
		pthread_mutex_destroy(&p->log[i].mu);
		pthread_cond_destroy(&p->log[i].cv);
	}
}

#endif
