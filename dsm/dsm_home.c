/*
 * dsm home side: the directory of the pages this node is home of and the
 * home worker that runs their transactions one at a time.
 *
 * A transaction (one request for one page) is: decide from the directory
 * whether it is already satisfied (a duplicate or stale request: skipped,
 * which is what makes fire-and-forget requests idempotent), invalidate or
 * downgrade the other copies and wait for each acknowledgement, grant the
 * requester and wait for its acknowledgement (sent after it installed the
 * page, body included), then update the directory.  Because the home holds
 * the page until the grant is acknowledged, no other transaction on the
 * page can overlap it: the supplier's RAM cannot change while the requester
 * pulls the body, and an invalidation can never overtake the grant it
 * follows.  Every message the home waits for carries the new version, so
 * retransmitted and duplicated messages are recognised at the receiver.
 *
 * Only the home worker thread touches dir[] (except the atomic subs set,
 * which the SUB handler updates on the progress thread).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "dsm/dsm_int.h"

void dsm_home_enqueue(struct dsm *d, struct dsm_job *j)
{
	struct dsm_queue *q = &d->homeq;

	pthread_mutex_lock(&q->mu);
	for (struct dsm_job *o = q->head; o; o = o->next) {
		if (o->kind == JOB_REQ && o->src == j->src && o->page == j->page &&
		    o->want >= j->want) {
			pthread_mutex_unlock(&q->mu);
			DSM_INC(d, home_dup_req);
			free(j);
			return;
		}
	}
	pthread_mutex_unlock(&q->mu);
	dsm_queue_push(q, j);
}

/*
 * Sends an INV/GRANT and waits for its acknowledgement, resending on
 * timeout for as long as it takes (a partition stalls, never corrupts).
 * The first resend comes after DSM_RETRY_FIRST_NS, then the wait doubles up
 * to msg_timeout_ns: a resend is harmless (versions make it a duplicate)
 * and it is also what gets a message stuck in the provider moving.
 * Why not tp_request: a caller blocked in tp_request makes this node's
 * progress thread hand CQ polling to it, and RMA reads that peers make
 * from our RAM meanwhile (the requester pulling the body from us) were
 * served late; waiting on our own condvar keeps the progress thread on it.
 */
static bool ack_arrived(void *arg)
{
	struct dsm *d = arg;
	return atomic_load(&d->ack_got) || atomic_load(&d->stopping);
}

static int home_call(struct dsm *d, int dst, uint32_t type, const void *buf, size_t len,
		     uint64_t page, uint32_t version)
{
	int rc = 0;

	pthread_mutex_lock(&d->ack_mu);
	d->ack_page = page;
	d->ack_version = version;
	d->ack_from = dst;
	d->ack_got = false;
	d->ack_want = true;
	pthread_mutex_unlock(&d->ack_mu);
	uint64_t wait_ns = d->retry_first_ns;
	for (;;) {
		if ((rc = tp_send(d->cfg.tp, dst, type, buf, len)))
			break; /* unknown or removed peer */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t ns = (uint64_t)ts.tv_nsec + wait_ns;
		ts.tv_sec += (time_t)(ns / 1000000000ull);
		ts.tv_nsec = (long)(ns % 1000000000ull);
		/* Poll the CQ ourselves first: the ACK is read (and its handler
		 * run) on this thread, and peers' RMA reads of our RAM are served
		 * meanwhile; sleep only once the budget is used up. */
		dsm_spin_poll(d, &d->spin_ack, ack_arrived, d);
		pthread_mutex_lock(&d->ack_mu);
		while (!d->ack_got && !atomic_load(&d->stopping) &&
		       pthread_cond_timedwait(&d->ack_cv, &d->ack_mu, &ts) == 0)
			;
		bool got = d->ack_got;
		pthread_mutex_unlock(&d->ack_mu);
		if (got)
			break;
		if (atomic_load(&d->stopping)) {
			rc = -ECANCELED;
			break;
		}
		DSM_INC(d, msg_retries);
		wait_ns = dsm_retry_next(d, wait_ns);
	}
	pthread_mutex_lock(&d->ack_mu);
	d->ack_want = false;
	pthread_mutex_unlock(&d->ack_mu);
	return rc;
}

static int send_inv(struct dsm *d, int node, uint64_t page, uint32_t v, bool downgrade,
		    bool trace)
{
	DsmInv m = DSM_INV__INIT;
	uint8_t buf[DSM_MSG_MAX];

	if (downgrade)
		DSM_INC(d, downgrade_sent);
	else
		DSM_INC(d, inv_sent);
	if (trace)
		DSM_INC(d, inv_trace_sent);
	else
		DSM_INC(d, inv_silent_sent);
	if (node == d->cfg.node_id) {
		dsm_agent_revoke(d, page, v, downgrade, trace);
		return 0;
	}
	m.page = page;
	m.version = v;
	m.downgrade = downgrade;
	m.trace = trace;
	size_t n = dsm_inv__pack(&m, buf);
	return home_call(d, node, DSM_MSG_TYPE__DSM_MSG_INV, buf, n, page, v);
}

static int send_grant(struct dsm *d, int node, uint64_t page, uint32_t v, uint32_t state,
		      int supplier)
{
	DsmGrant m = DSM_GRANT__INIT;
	uint8_t buf[DSM_MSG_MAX];

	DSM_INC(d, grant_sent);
	if (node == d->cfg.node_id)
		return dsm_agent_install(d, page, v, state, supplier, true);
	m.page = page;
	m.version = v;
	m.state = state;
	m.supplier = supplier;
	size_t n = dsm_grant__pack(&m, buf);
	return home_call(d, node, DSM_MSG_TYPE__DSM_MSG_GRANT, buf, n, page, v);
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

static void txn_read(struct dsm *d, struct dsm_dir *e, uint64_t page, int src, uint32_t v)
{
	int owner = e->owner ? e->owner - 1 : -1;
	uint64_t subs = atomic_load(&e->subs);
	int rc;

	if (owner >= 0 && e->excl && owner != src) {
		rc = send_inv(d, owner, page, v, true, subs >> owner & 1);
		if (rc) {
			txn_failed(page, "downgrade at", owner, rc);
			return;
		}
	}
	e->excl = 0;
	rc = send_grant(d, src, page, v, DSM_SHARED, owner);
	e->version = v;
	if (rc) {
		txn_failed(page, "grant to", src, rc);
		return;
	}
	e->copyset |= 1ull << src;
	if (owner < 0)
		e->owner = (uint8_t)(src + 1);
}

static void txn_write(struct dsm *d, struct dsm_dir *e, uint64_t page, int src, uint32_t v)
{
	int owner = e->owner ? e->owner - 1 : -1;
	uint64_t subs = atomic_load(&e->subs), bit = 1ull << src;
	bool has = e->copyset & bit;
	int rc;

	for (int n = 0; n < DSM_MAX_NODES; n++) {
		if (!(e->copyset >> n & 1) || n == src)
			continue;
		rc = send_inv(d, n, page, v, false, subs >> n & 1);
		if (rc)
			txn_failed(page, "invalidation at", n, rc);
		e->copyset &= ~(1ull << n);
	}
	e->excl = 0;
	e->version = v;
	rc = send_grant(d, src, page, v, DSM_MODIFIED, has ? src : owner);
	if (rc) {
		/* The old owner's RAM still holds the latest data: keep it as
		 * supplier so the page is not lost with the requester. */
		txn_failed(page, "grant to", src, rc);
		e->copyset &= ~bit;
		return;
	}
	if (owner >= 0 && owner != src)
		__atomic_store_n(&e->moves, e->moves + 1, __ATOMIC_RELAXED);
	e->copyset = bit;
	e->owner = (uint8_t)(src + 1);
	e->excl = 1;
}

static void home_txn(struct dsm *d, const struct dsm_job *j)
{
	struct dsm_dir *e = &d->dir[dsm_dir_slot(d, j->page)];
	uint64_t bit = 1ull << j->src;
	int owner = e->owner ? e->owner - 1 : -1;

	/* Already satisfied: a retransmission or a stale duplicate. */
	if ((j->want == DSM_R && (e->copyset & bit)) ||
	    (j->want == DSM_W && owner == j->src && e->excl)) {
		DSM_INC(d, home_skipped);
		return;
	}
	DSM_INC(d, home_txns);
	__atomic_store_n(&e->requests, e->requests + 1, __ATOMIC_RELAXED);
	if (j->want == DSM_W)
		txn_write(d, e, j->page, j->src, e->version + 1);
	else
		txn_read(d, e, j->page, j->src, e->version + 1);
}

static bool home_has_work(void *arg)
{
	struct dsm *d = arg;
	return dsm_queue_nonempty(&d->homeq) || atomic_load(&d->stopping);
}

void *dsm_home_main(void *arg)
{
	struct dsm *d = arg;
	struct dsm_job *j;

	util_log_set_thread("dsm-home");
	for (;;) {
		/* Right after a transaction the next request often follows (a
		 * ping-pong, a fault burst): poll the CQ for it ourselves, so its
		 * handler queues it on this thread, before sleeping on the queue. */
		if (!dsm_queue_nonempty(&d->homeq))
			dsm_spin_poll(d, &d->spin_req, home_has_work, d);
		if (!(j = dsm_queue_pop(&d->homeq)))
			break;
		if (j->kind == JOB_REQ)
			home_txn(d, j);
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
