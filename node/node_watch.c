/*
 * Peer liveness for a running node (see node_watch.h).  One ping per peer
 * per period, with the period as timeout, so a cut peer costs one period of
 * waiting and never stalls the others for longer.
 */
#include "node/node_watch.h"
#include "transport/tp.h"
#include "util/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#define MS 1000000ull

struct watched {
	uint32_t id;
	int removed;	  /* __atomic */
	uint64_t last_ok; /* ns, __atomic */
};

struct node_watch {
	struct tp *tp;
	uint32_t period_ms;
	uint32_t n;
	struct watched peers[CONFIG_MAX_NODES];
	pthread_t thr;
	pthread_mutex_t mu; /* only for the stop wake-up */
	pthread_cond_t cv;
	bool stop;
};

static bool wait_period(struct node_watch *w)
{
	struct timespec ts;
	bool stop;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)((w->period_ms % 1000) * MS);
	ts.tv_sec += w->period_ms / 1000 + ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	pthread_mutex_lock(&w->mu);
	if (!w->stop)
		pthread_cond_timedwait(&w->cv, &w->mu, &ts);
	stop = w->stop;
	pthread_mutex_unlock(&w->mu);
	return stop;
}

static void *watch_thread(void *arg)
{
	struct node_watch *w = arg;

	util_log_set_thread("watch");
	do {
		for (uint32_t i = 0; i < w->n; i++) {
			struct watched *p = &w->peers[i];
			if (__atomic_load_n(&p->removed, __ATOMIC_RELAXED))
				continue;
			if (tp_ping(w->tp, (int)p->id, w->period_ms * MS, NULL) == 0)
				__atomic_store_n(&p->last_ok, util_now_ns(), __ATOMIC_RELAXED);
		}
	} while (!wait_period(w));
	return NULL;
}

int node_watch_start(struct tp *tp, const uint32_t *peers, uint32_t npeers, uint32_t period_ms,
		     struct node_watch **out)
{
	struct node_watch *w;
	uint64_t now = util_now_ns();
	int rc;

	if (npeers > CONFIG_MAX_NODES || !period_ms)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->tp = tp;
	w->period_ms = period_ms;
	w->n = npeers;
	for (uint32_t i = 0; i < npeers; i++) {
		w->peers[i].id = peers[i];
		w->peers[i].last_ok = now;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if ((rc = pthread_create(&w->thr, NULL, watch_thread, w))) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		free(w);
		return -rc;
	}
	*out = w;
	return 0;
}

void node_watch_stop(struct node_watch *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thr, NULL);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

void node_watch_remove(struct node_watch *w, uint32_t peer)
{
	for (uint32_t i = 0; w && i < w->n; i++)
		if (w->peers[i].id == peer)
			__atomic_store_n(&w->peers[i].removed, 1, __ATOMIC_RELAXED);
}

static uint32_t age_ms(const struct watched *p, uint64_t now)
{
	uint64_t t = __atomic_load_n(&p->last_ok, __ATOMIC_RELAXED);
	uint64_t a = now > t ? (now - t) / MS : 0;
	return a >= NODE_WATCH_NEVER ? NODE_WATCH_NEVER - 1 : (uint32_t)a;
}

size_t node_watch_report(struct node_watch *w, CtlPeerSeen *out, CtlPeerSeen **ptrs, size_t max)
{
	uint64_t now = util_now_ns();
	size_t k = 0;

	for (uint32_t i = 0; w && i < w->n && k < max; i++) {
		if (__atomic_load_n(&w->peers[i].removed, __ATOMIC_RELAXED))
			continue;
		ctl_peer_seen__init(&out[k]);
		out[k].node_id = w->peers[i].id;
		out[k].age_ms = age_ms(&w->peers[i], now);
		ptrs[k] = &out[k];
		k++;
	}
	return k;
}

uint32_t node_watch_oldest(struct node_watch *w, uint32_t *peer)
{
	uint64_t now = util_now_ns();
	uint32_t worst = 0;

	for (uint32_t i = 0; w && i < w->n; i++) {
		if (__atomic_load_n(&w->peers[i].removed, __ATOMIC_RELAXED))
			continue;
		uint32_t a = age_ms(&w->peers[i], now);
		if (a >= worst) {
			worst = a;
			*peer = w->peers[i].id;
		}
	}
	return worst;
}
