/*
 * dsm home side: the directory of the pages this node is home of and the
 * home worker that runs their transactions one at a time.
 *
 * A transaction (one request for one page) is: decide from the directory
 * and the request whether it is already satisfied (a duplicate or stale
 * request: skipped, which is what makes fire-and-forget requests
 * idempotent), invalidate or downgrade the other copies and wait for each
 * acknowledgement, then grant the requester.
 *
 * A write grant is waited for (acknowledged after the requester installed
 * the page, body included) before the directory names the new owner: no
 * other transaction on the page can overlap it, so the old owner's RAM
 * cannot change while the requester pulls the body, and the new owner
 * holds the page Modified before anyone learns it is the owner.
 *
 * A read grant is not waited for: the directory adds the requester to the
 * copyset when the grant leaves, and the next transaction may start at
 * once.  That is safe because every later change of the supplier's RAM
 * comes from a write transaction, which first invalidates every copyset
 * member, the reader included, and waits for its acknowledgement; the
 * invalidation's newer version makes the reader discard a body pulled
 * meanwhile (dsm_agent.c install_end).  What the home gives up is knowing
 * that a copyset member holds a copy: its grant may have been lost or
 * overtaken.  So a read request says whether the requester holds a copy
 * (has_copy), and one that does not is granted again even from a copyset
 * member; a write grant names the owner as supplier and the requester
 * keeps its own copy when it holds one.
 *
 * Every message the home waits for carries the new version, so
 * retransmitted and duplicated messages are recognised at the receiver.
 *
 * Each page's directory entry is touched only by its home worker
 * (dsm_home_worker_of), except the atomic subs set, which the SUB handler
 * updates on the progress thread, and the relaxed hot-page counters.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "dsm/dsm_int.h"

struct dsm_home_worker *dsm_home_worker_of(struct dsm *d, uint64_t page)
{
	return &d->home[dsm_dir_slot(d, page) % d->nhome];
}

void dsm_home_enqueue(struct dsm *d, struct dsm_job *j)
{
	struct dsm_queue *q = &dsm_home_worker_of(d, j->page)->q;

	pthread_mutex_lock(&q->mu);
	for (struct dsm_job *o = q->head; o; o = o->next) {
		if (o->kind == JOB_REQ && o->src == j->src && o->page == j->page &&
		    o->want >= j->want) {
			o->flag = j->flag; /* has_copy: the newer word counts */
			pthread_mutex_unlock(&q->mu);
			DSM_INC(d, home_dup_req);
			free(j);
			return;
		}
	}
	pthread_mutex_unlock(&q->mu);
	dsm_queue_push(q, j);
}

void dsm_home_ack(struct dsm *d, int src, uint64_t page, uint32_t version)
{
	struct dsm_home_worker *w = dsm_home_worker_of(d, page);
	uint64_t bit = 1ull << src;

	pthread_mutex_lock(&w->ack_mu);
	if (w->ack_want && w->ack_page == page && w->ack_version == version &&
	    (atomic_load(&w->ack_wait) & bit)) {
		if (atomic_fetch_and(&w->ack_wait, ~bit) == bit)
			pthread_cond_broadcast(&w->ack_cv);
	} /* else: the ack of a retransmission we no longer wait for */
	pthread_mutex_unlock(&w->ack_mu);
}

/* One packed INV/GRANT, per destination node. */
struct home_msg {
	uint8_t buf[DSM_MSG_MAX];
	size_t len;
};

static bool acks_arrived(void *arg)
{
	struct dsm_home_worker *w = arg;
	return atomic_load(&w->ack_wait) == 0 || atomic_load(&w->d->stopping);
}

static int send_all(struct dsm *d, struct dsm_home_worker *w, uint64_t to, uint32_t type,
		    const struct home_msg *msgs, uint64_t *failed)
{
	int rc = 0;

	for (int n = 0; n < DSM_MAX_NODES; n++) {
		if (!(to >> n & 1))
			continue;
		int r = tp_send(d->cfg.tp, n, type, msgs[n].buf, msgs[n].len);
		if (r) {
			atomic_fetch_and(&w->ack_wait, ~(1ull << n));
			*failed |= 1ull << n;
			if (!rc)
				rc = r;
		}
	}
	return rc;
}

/*
 * Sends one INV/GRANT per node in `to` (msgs[node]) and waits until every
 * one is acknowledged, resending to the silent ones for as long as it
 * takes (a partition stalls, never corrupts).  The INVs of one write go
 * out together: their round trips overlap instead of adding up.
 * The first resend comes after DSM_RETRY_FIRST_NS, then the wait doubles up
 * to msg_timeout_ns: a resend is harmless (versions make it a duplicate)
 * and it is also what gets a message stuck in the provider moving.
 * Why not tp_request: a caller blocked in tp_request makes this node's
 * progress thread hand CQ polling to it, and RMA reads that peers make
 * from our RAM meanwhile (the requester pulling the body from us) were
 * served late; waiting on our own condvar keeps the progress thread on it.
 * Returns 0, or the first send error (that node is then not waited for:
 * unknown or removed peer) with *failed set to its bit.
 */
static int home_call(struct dsm_home_worker *w, uint64_t to, uint32_t type,
		     const struct home_msg *msgs, uint64_t page, uint32_t version,
		     uint64_t *failed)
{
	struct dsm *d = w->d;
	int rc = 0;

	*failed = 0;
	pthread_mutex_lock(&w->ack_mu);
	w->ack_page = page;
	w->ack_version = version;
	atomic_store(&w->ack_wait, to);
	w->ack_want = true;
	pthread_mutex_unlock(&w->ack_mu);
	uint64_t wait_ns = d->retry_first_ns, missing = to;
	for (;;) {
		int r = send_all(d, w, missing, type, msgs, failed);
		if (r && !rc)
			rc = r;
		struct timespec ts;
		util_deadline_in(CLOCK_MONOTONIC, wait_ns, &ts);
		/* Poll the CQ ourselves first: the ACKs are read (and their
		 * handler run) on this thread, and peers' RMA reads of our RAM
		 * are served meanwhile; sleep only once the budget is used up. */
		dsm_spin_poll(d, &w->spin_ack, acks_arrived, w);
		if (atomic_load(&w->ack_wait))
			tp_watch_cq(d->cfg.tp); /* sleeping: the ACKs need the progress thread */
		pthread_mutex_lock(&w->ack_mu);
		while (atomic_load(&w->ack_wait) && !atomic_load(&d->stopping) &&
		       pthread_cond_timedwait(&w->ack_cv, &w->ack_mu, &ts) == 0)
			;
		missing = atomic_load(&w->ack_wait);
		pthread_mutex_unlock(&w->ack_mu);
		if (!missing)
			break;
		if (atomic_load(&d->stopping)) {
			rc = -ECANCELED;
			*failed |= missing;
			break;
		}
		DSM_INC(d, msg_retries);
		wait_ns = dsm_retry_next(d, wait_ns);
	}
	pthread_mutex_lock(&w->ack_mu);
	w->ack_want = false;
	atomic_store(&w->ack_wait, 0);
	pthread_mutex_unlock(&w->ack_mu);
	return rc;
}

static void count_inv(struct dsm *d, bool downgrade, bool trace)
{
	if (downgrade)
		DSM_INC(d, downgrade_sent);
	else
		DSM_INC(d, inv_sent);
	if (trace)
		DSM_INC(d, inv_trace_sent);
	else
		DSM_INC(d, inv_silent_sent);
}

static void pack_inv(struct home_msg *hm, uint64_t page, uint32_t v, bool downgrade,
		     bool trace)
{
	DsmInv m = DSM_INV__INIT;

	m.page = page;
	m.version = v;
	m.downgrade = downgrade;
	m.trace = trace;
	hm->len = dsm_inv__pack(&m, hm->buf);
}

/* Invalidates (or downgrades) page at every node in `nodes` at once. */
static int send_invs(struct dsm_home_worker *w, uint64_t nodes, uint64_t page, uint32_t v,
		     bool downgrade, uint64_t subs, uint64_t *failed)
{
	struct dsm *d = w->d;
	struct home_msg msgs[DSM_MAX_NODES];
	uint64_t remote = 0;

	*failed = 0;
	for (int n = 0; n < DSM_MAX_NODES; n++) {
		if (!(nodes >> n & 1))
			continue;
		count_inv(d, downgrade, subs >> n & 1);
		if (n == d->cfg.node_id) {
			dsm_agent_revoke(d, page, v, downgrade, subs >> n & 1);
			continue;
		}
		pack_inv(&msgs[n], page, v, downgrade, subs >> n & 1);
		remote |= 1ull << n;
	}
	return remote ? home_call(w, remote, DSM_MSG_TYPE__DSM_MSG_INV, msgs, page, v, failed) : 0;
}

/* A write grant waits for its acknowledgement; a read grant does not. */
static int send_grant(struct dsm_home_worker *w, int node, uint64_t page, uint32_t v,
		      uint32_t state, int supplier)
{
	struct dsm *d = w->d;
	DsmGrant m = DSM_GRANT__INIT;
	struct home_msg msgs[DSM_MAX_NODES];
	uint64_t failed;

	DSM_INC(d, grant_sent);
	if (node == d->cfg.node_id)
		return dsm_agent_install(d, page, v, state, supplier, true);
	m.page = page;
	m.version = v;
	m.state = state;
	m.supplier = supplier;
	msgs[node].len = dsm_grant__pack(&m, msgs[node].buf);
	if (state == DSM_SHARED)
		return tp_send(d->cfg.tp, node, DSM_MSG_TYPE__DSM_MSG_GRANT, msgs[node].buf,
			       msgs[node].len);
	return home_call(w, 1ull << node, DSM_MSG_TYPE__DSM_MSG_GRANT, msgs, page, v, &failed);
}

/* -ECANCELED is this node's orderly stop (dsm_stop), not a failure. */
static void txn_failed(uint64_t page, const char *what, int node, int rc)
{
	if (rc == -ECANCELED)
		LOG_DBG(DSM_SUBSYS, "page %llu: %s node %d cancelled by the stop",
			(unsigned long long)page, what, node);
	else
		LOG_ERR(DSM_SUBSYS, "page %llu: %s node %d failed: %s", (unsigned long long)page,
			what, node, strerror(-rc));
}

static void txn_read(struct dsm_home_worker *w, struct dsm_dir *e, uint64_t page, int src,
		     uint32_t v)
{
	int owner = e->owner ? e->owner - 1 : -1;
	uint64_t subs = atomic_load(&e->subs), failed;
	int rc;

	if (owner >= 0 && e->excl && owner != src) {
		rc = send_invs(w, 1ull << owner, page, v, true, subs, &failed);
		if (rc) {
			txn_failed(page, "downgrade at", owner, rc);
			return;
		}
	}
	/* The directory first: the grant is not waited for, and the reader
	 * must be in the copyset before it can hold the copy (a later write
	 * invalidates it even if the grant is still on its way). */
	e->excl = 0;
	e->version = v;
	e->copyset |= 1ull << src;
	if (owner < 0) /* a zero page: every node's RAM holds its zeros */
		e->owner = (uint8_t)(src + 1);
	rc = send_grant(w, src, page, v, DSM_SHARED, owner);
	if (rc) /* the requester retransmits; has_copy brings it a new grant */
		txn_failed(page, "grant to", src, rc);
}

static void txn_write(struct dsm_home_worker *w, struct dsm_dir *e, uint64_t page, int src,
		      uint32_t v)
{
	int owner = e->owner ? e->owner - 1 : -1;
	uint64_t subs = atomic_load(&e->subs), bit = 1ull << src, failed = 0;
	int rc;

	rc = send_invs(w, e->copyset & ~bit, page, v, false, subs, &failed);
	for (int n = 0; rc && n < DSM_MAX_NODES; n++)
		if (failed >> n & 1)
			txn_failed(page, "invalidation at", n, rc);
	e->copyset &= bit;
	e->excl = 0;
	e->version = v;
	/* The owner's RAM holds the latest data.  A requester holding a valid
	 * copy keeps its own instead (dsm_agent_install): only it knows
	 * whether its read grant arrived. */
	rc = send_grant(w, src, page, v, DSM_MODIFIED, owner);
	if (rc) {
		txn_failed(page, "grant to", src, rc);
		if (rc == -ENOENT && src != w->d->cfg.node_id) {
			/* The requester was removed (failed).  It may have
			 * installed the page and stored to it, its ACK lost in
			 * the partition before: the old owner's copy may be
			 * stale.  So the page stays with the requester and is
			 * reported lost with it (dsm_audit_lost), rather than
			 * handed out from the old owner as if it were current
			 * (writes lost silently; netns.partition_lease caught
			 * it). */
			e->copyset = bit;
			e->owner = (uint8_t)(src + 1);
			e->excl = 1;
			return;
		}
		/* Otherwise (a local install that failed, a send refused for
		 * a live peer) the requester holds nothing new and asks
		 * again; the old owner's RAM still holds the latest data. */
		e->copyset &= ~bit;
		return;
	}
	if (owner >= 0 && owner != src)
		__atomic_store_n(&e->moves, e->moves + 1, __ATOMIC_RELAXED);
	e->copyset = bit;
	e->owner = (uint8_t)(src + 1);
	e->excl = 1;
}

/* A retransmission or a stale duplicate: a reader that says it holds a
 * copy, or a request of the exclusive owner (whose Modified grant was
 * acknowledged, so it holds the page). */
static bool already_satisfied(const struct dsm_dir *e, const struct dsm_job *j)
{
	bool excl_owner = e->excl && e->owner == j->src + 1;

	return excl_owner || (j->want == DSM_R && j->flag);
}

static void home_txn(struct dsm_home_worker *w, const struct dsm_job *j)
{
	struct dsm *d = w->d;
	struct dsm_dir *e = &d->dir[dsm_dir_slot(d, j->page)];

	if (already_satisfied(e, j)) {
		DSM_INC(d, home_skipped);
		return;
	}
	if (j->want == DSM_R && (e->copyset >> j->src & 1))
		DSM_INC(d, home_regrants); /* its grant was lost or overtaken */
	DSM_INC(d, home_txns);
	__atomic_store_n(&e->requests, e->requests + 1, __ATOMIC_RELAXED);
	if (j->want == DSM_W)
		txn_write(w, e, j->page, j->src, e->version + 1);
	else
		txn_read(w, e, j->page, j->src, e->version + 1);
}

static bool needs_downgrade(const struct dsm_dir *e, int src)
{
	return e->owner && e->excl && e->owner != src + 1;
}

/*
 * A read that needs no downgrade waits for nothing: the directory changes
 * and the grant leaves (not waited for).  So the handler that read the
 * request runs it, saving the hop to the worker (a condvar wake-up: tens
 * of µs, more on a busy host).  Only while the worker is idle and nothing
 * is queued for it, under txn_mu: the page's transactions stay one at a
 * time and a queued request is not overtaken.  Requests from this node
 * never come here: their grant is installed synchronously, with a pull.
 */
bool dsm_home_read_here(struct dsm *d, const struct dsm_job *j)
{
	struct dsm_home_worker *w = dsm_home_worker_of(d, j->page);
	const struct dsm_dir *e = &d->dir[dsm_dir_slot(d, j->page)];
	bool done = false;

	if (j->want != DSM_R || j->src == d->cfg.node_id || dsm_queue_nonempty(&w->q) ||
	    pthread_mutex_trylock(&w->txn_mu))
		return false;
	if (!dsm_queue_nonempty(&w->q) && !needs_downgrade(e, j->src)) {
		DSM_INC(d, home_fast);
		home_txn(w, j);
		done = true;
	}
	pthread_mutex_unlock(&w->txn_mu);
	return done;
}

static bool home_has_work(void *arg)
{
	struct dsm_home_worker *w = arg;
	return dsm_queue_nonempty(&w->q) || atomic_load(&w->d->stopping);
}

void *dsm_home_main(void *arg)
{
	struct dsm_home_worker *w = arg;
	struct dsm_job *j;

	util_log_set_thread("dsm-home");
	for (;;) {
		/* Right after a transaction the next request often follows (a
		 * ping-pong, a fault burst): poll the CQ for it ourselves, so its
		 * handler queues it on this thread, before sleeping on the queue. */
		if (!dsm_queue_nonempty(&w->q)) {
			dsm_spin_poll(w->d, &w->spin_req, home_has_work, w);
			/* sleeping: requests need the progress thread on the CQ */
			if (!dsm_queue_nonempty(&w->q))
				tp_watch_cq(w->d->cfg.tp);
		}
		if (!dsm_queue_wait(&w->q))
			break;
		/* txn_mu from before the pop: while a job is queued or running, a
		 * handler's dsm_home_read_here leaves the page alone */
		pthread_mutex_lock(&w->txn_mu);
		j = dsm_queue_trypop(&w->q);
		if (j && j->kind == JOB_REQ)
			home_txn(w, j);
		pthread_mutex_unlock(&w->txn_mu);
		free(j);
	}
	return NULL;
}

/* ---- hot pages ---- */

/* Inverse of dsm_dir_slot for this node: the page of a directory slot. */
static uint64_t slot_page(const struct dsm *d, uint64_t slot, unsigned idx)
{
	uint64_t run = d->cfg.block_pages;
	return (slot / run * d->nnodes + idx) * run + slot % run;
}

/* Inserts h into out[0..*cnt) (sorted: most requests first) keeping n. */
static void hot_insert(struct dsm_hot_page *out, unsigned n, unsigned *cnt,
		       const struct dsm_hot_page *h)
{
	unsigned i = *cnt;

	if (i == n && (out[n - 1].requests > h->requests ||
		       (out[n - 1].requests == h->requests && out[n - 1].gpa < h->gpa)))
		return;
	if (i == n)
		i--;
	else
		(*cnt)++;
	while (i > 0 && (out[i - 1].requests < h->requests ||
			 (out[i - 1].requests == h->requests && out[i - 1].gpa > h->gpa))) {
		out[i] = out[i - 1];
		i--;
	}
	out[i] = *h;
}

int dsm_hot_pages(struct dsm *d, unsigned n, struct dsm_hot_page *out, unsigned *count)
{
	long hp = sysconf(_SC_PAGESIZE);
	size_t chunk = hp > 0 ? (size_t)hp : 4096;
	uint64_t per = chunk / sizeof(struct dsm_dir), nslots;
	unsigned idx = 0;

	if (!d || !count || (n && !out))
		return -EINVAL;
	nslots = d->dir_map_len / sizeof(struct dsm_dir);
	*count = 0;
	while (idx < d->nnodes && d->nodes[idx] != d->cfg.node_id)
		idx++;
	/* Only host pages of the directory that were ever touched: reading the
	 * rest would be slow for a large sparse VM (and find only zeros). */
	for (uint64_t s0 = 0; s0 < nslots && n; s0 += per) {
		unsigned char res = 0;
		if (mincore((uint8_t *)d->dir + s0 * sizeof(struct dsm_dir), chunk, &res) == 0 &&
		    !(res & 1))
			continue;
		for (uint64_t s = s0; s < s0 + per && s < nslots; s++) {
			struct dsm_dir *e = &d->dir[s];
			struct dsm_hot_page h;
			h.requests = __atomic_load_n(&e->requests, __ATOMIC_RELAXED);
			if (!h.requests)
				continue;
			uint64_t page = slot_page(d, s, idx);
			if (page >= d->npages)
				continue;
			h.gpa = d->cfg.ram_base + (page << DSM_PAGE_SHIFT);
			h.moves = __atomic_load_n(&e->moves, __ATOMIC_RELAXED);
			hot_insert(out, n, count, &h);
		}
	}
	return 0;
}
