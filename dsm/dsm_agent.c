/*
 * dsm node side: message handlers (progress thread: validate, count,
 * queue), the agent worker (revocations, grant installation with the body
 * pulled by RMA, subscriber-set updates) and the worker queues.
 *
 * Duplicates and stale messages: every invalidation and grant carries the
 * version of the home transaction it belongs to; this node remembers the
 * newest version it has seen per page and acknowledges, without acting,
 * anything not newer.  Acknowledging again is what the sender of a
 * retransmission needs, so all handlers are idempotent.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dsm/dsm_int.h"

/* ---- queues ---- */

void dsm_queue_init(struct dsm_queue *q)
{
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
}

void dsm_queue_destroy(struct dsm_queue *q)
{
	struct dsm_job *j = q->head;
	while (j) {
		struct dsm_job *n = j->next;
		free(j);
		j = n;
	}
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
}

void dsm_queue_push(struct dsm_queue *q, struct dsm_job *j)
{
	j->next = NULL;
	pthread_mutex_lock(&q->mu);
	if (q->stop) {
		pthread_mutex_unlock(&q->mu);
		free(j);
		return;
	}
	if (q->tail)
		q->tail->next = j;
	else
		__atomic_store_n(&q->head, j, __ATOMIC_RELEASE);
	q->tail = j;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

/* q->mu held, q->head not NULL. */
static struct dsm_job *unlink_head_locked(struct dsm_queue *q)
{
	struct dsm_job *j = q->head;

	__atomic_store_n(&q->head, j->next, __ATOMIC_RELAXED);
	if (!q->head)
		q->tail = NULL;
	return j;
}

struct dsm_job *dsm_queue_pop_until(struct dsm_queue *q, uint64_t deadline_ns, bool *stopped)
{
	struct dsm_job *j = NULL;
	pthread_mutex_lock(&q->mu);
	for (uint64_t now; !q->stop && !q->head && (now = util_now_ns()) < deadline_ns;) {
		if (deadline_ns == UINT64_MAX) {
			pthread_cond_wait(&q->cv, &q->mu);
			continue;
		}
		struct timespec ts;
		util_deadline_in(CLOCK_REALTIME, deadline_ns - now, &ts);
		pthread_cond_timedwait(&q->cv, &q->mu, &ts);
	}
	*stopped = q->stop;
	if (!q->stop && q->head)
		j = unlink_head_locked(q);
	pthread_mutex_unlock(&q->mu);
	return j;
}

struct dsm_job *dsm_queue_pop(struct dsm_queue *q)
{
	bool stopped;
	return dsm_queue_pop_until(q, UINT64_MAX, &stopped);
}

bool dsm_queue_wait(struct dsm_queue *q)
{
	pthread_mutex_lock(&q->mu);
	while (!q->stop && !q->head)
		pthread_cond_wait(&q->cv, &q->mu);
	bool ok = !q->stop;
	pthread_mutex_unlock(&q->mu);
	return ok;
}

struct dsm_job *dsm_queue_trypop(struct dsm_queue *q)
{
	struct dsm_job *j = NULL;
	pthread_mutex_lock(&q->mu);
	if (!q->stop && q->head)
		j = unlink_head_locked(q);
	pthread_mutex_unlock(&q->mu);
	return j;
}

bool dsm_queue_nonempty(struct dsm_queue *q)
{
	return __atomic_load_n(&q->head, __ATOMIC_ACQUIRE) != NULL;
}

void dsm_queue_stop(struct dsm_queue *q)
{
	pthread_mutex_lock(&q->mu);
	q->stop = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

/* ---- local actions ---- */

static bool newer(uint32_t v, uint32_t than)
{
	return (int32_t)(v - than) > 0;
}

/* d->lock held: a grant of page is being installed. */
static bool claimed_locked(const struct dsm *d, uint64_t page)
{
	for (int i = 0; i < DSM_CLAIM_MAX; i++)
		if (d->claim_used[i] && d->claim_page[i] == page)
			return true;
	return false;
}

/* d->lock held: a grant of page is being installed, or was handed to a
 * waiting thread that has not taken it yet. */
static bool install_pending_locked(struct dsm *d, uint64_t page)
{
	return claimed_locked(d, page) || dsm_grant_waiting_locked(d, page);
}

/*
 * d->lock held: an INV that finds a grant of the page being installed
 * (its body being pulled, or handed to the waiting thread that will pull
 * it) lets it finish first, at most hold_ns, so the
 * waiter gets to use the page (the hold follows) instead of pulling it
 * for nothing and asking again: read grants are not waited for by the
 * home, so the next write's INV often comes during the pull (a 3-node
 * Linux boot overtook 170-300 read grants per node without this wait).
 * Only a delay: the install's version check keeps it safe either way.
 */
static void let_install_end_locked(struct dsm *d, uint64_t page)
{
	struct timespec ts;

	if (!install_pending_locked(d, page))
		return;
	DSM_INC(d, inv_waited_install);
	util_deadline_in(CLOCK_MONOTONIC, d->cfg.hold_ns, &ts);
	while (install_pending_locked(d, page) && !atomic_load(&d->stopping))
		if (pthread_cond_timedwait(&d->fault_cv, &d->lock, &ts))
			break;
}

/*
 * The state part of a revocation.  1: the state changed, the local users
 * must be revoked next (*nst: the new state); 0: nothing more to do (a
 * stale INV, or nothing was accessible beyond the new state); -EWOULDBLOCK
 * (only when !may_wait): a fresh grant's waiter must be held for first,
 * nothing was done.
 */
static int revoke_state(struct dsm *d, uint64_t page, uint32_t version, bool downgrade,
			bool trace, bool may_wait, uint8_t *nst)
{
	uint8_t st;

	pthread_mutex_lock(&d->lock);
	if (newer(version, atomic_load(&d->version[page]))) {
		if (may_wait) {
			let_install_end_locked(d, page);
			dsm_hold_locked(d, page, downgrade); /* a fresh grant's waiter first */
		} else if (claimed_locked(d, page) ||
			   dsm_revoke_must_wait_locked(d, page, downgrade)) {
			pthread_mutex_unlock(&d->lock);
			return -EWOULDBLOCK;
		}
	}
	if (!newer(version, atomic_load(&d->version[page]))) {
		pthread_mutex_unlock(&d->lock);
		DSM_INC(d, inv_stale);
		return 0;
	}
	st = atomic_load(&d->state[page]);
	*nst = downgrade ? (st == DSM_MODIFIED ? DSM_SHARED : st) : DSM_INVALID;
	atomic_store(&d->version[page], version);
	atomic_store_explicit(&d->state[page], *nst, memory_order_release);
	pthread_mutex_unlock(&d->lock);
	if (downgrade)
		DSM_INC(d, downgrade_recv);
	else
		DSM_INC(d, inv_recv);
	if (trace)
		DSM_INC(d, trace_notified);
	return st != *nst;
}

static void count_interrupts(struct dsm *d, int n, bool trace)
{
	if (n > 0) {
		DSM_ADD(d, revoke_interrupts, (uint64_t)n);
		if (!trace)
			DSM_ADD(d, unflagged_interrupts, (uint64_t)n);
	}
}

/* After the state change: host copies in progress drain, then every local
 * user (vCPU) drops the page beyond the new state. */
static void revoke_users(struct dsm *d, uint64_t page, uint8_t nst, bool trace)
{
	/* Host-side copies hold this shared around check + copy. */
	pthread_rwlock_wrlock(&d->host_users);
	pthread_rwlock_unlock(&d->host_users);
	if (d->cfg.ops && d->cfg.ops->revoke) {
		uint64_t gpa = d->cfg.ram_base + (page << DSM_PAGE_SHIFT);
		count_interrupts(d, d->cfg.ops->revoke(d->cfg.ops_arg, gpa,
						       nst == DSM_SHARED ? DSM_R : 0, trace),
				 trace);
	}
}

/* Can local users be revoked without waiting (revoke_users_try)? */
static bool users_try_possible(const struct dsm *d)
{
	return !d->cfg.ops || !d->cfg.ops->revoke || d->cfg.ops->revoke_try;
}

/* The same without waiting (only where users_try_possible): 0 done,
 * -EWOULDBLOCK (a host copy in progress, or a local user to interrupt:
 * nothing done). */
static int revoke_users_try(struct dsm *d, uint64_t page, uint8_t nst, bool trace)
{
	if (pthread_rwlock_trywrlock(&d->host_users))
		return -EWOULDBLOCK;
	pthread_rwlock_unlock(&d->host_users);
	if (d->cfg.ops && d->cfg.ops->revoke) {
		uint64_t gpa = d->cfg.ram_base + (page << DSM_PAGE_SHIFT);
		int n = d->cfg.ops->revoke_try(d->cfg.ops_arg, gpa, nst == DSM_SHARED ? DSM_R : 0,
					       trace);
		if (n < 0)
			return -EWOULDBLOCK;
		count_interrupts(d, n, trace);
	}
	return 0;
}

void dsm_agent_revoke(struct dsm *d, uint64_t page, uint32_t version, bool downgrade,
		      bool trace)
{
	uint8_t nst = DSM_INVALID;

	if (revoke_state(d, page, version, downgrade, trace, true, &nst) == 1)
		revoke_users(d, page, nst, trace);
}

static int install_body(struct dsm *d, uint64_t page, int supplier);

/* d->lock held: slot claimed for page, -EINPROGRESS (page claimed by
 * another thread) or -EBUSY (table full). */
static int claim_locked(struct dsm *d, uint64_t page)
{
	int free_i = -EBUSY;
	for (int i = 0; i < DSM_CLAIM_MAX; i++) {
		if (d->claim_used[i] && d->claim_page[i] == page)
			return -EINPROGRESS;
		if (!d->claim_used[i] && free_i < 0)
			free_i = i;
	}
	if (free_i >= 0) {
		d->claim_used[free_i] = true;
		d->claim_page[free_i] = page;
	}
	return free_i;
}

/* Claims the install of (page, version, state): 0 = go, with *keep set
 * when our own copy is valid (pull nothing); 1 = not to install (a
 * duplicate, or overtaken by an invalidation: acknowledge if the grant
 * wants it); negative = see dsm_agent_install. */
static int install_claim(struct dsm *d, uint64_t page, uint32_t version, uint32_t state,
			 int supplier, bool may_wait, int *slot, bool *keep)
{
	int rc;

	pthread_mutex_lock(&d->lock);
	for (;;) {
		uint8_t st = atomic_load(&d->state[page]);
		if (!newer(version, atomic_load(&d->version[page]))) {
			dsm_pending_overtaken_locked(d, page);
			rc = 1;
			break;
		}
		/* Never lower a Modified copy without revoking its users: the
		 * home skips read requests of the exclusive owner, so such a
		 * grant can only be a stale one. */
		if (st == DSM_MODIFIED && state == DSM_SHARED) {
			rc = 1;
			break;
		}
		/* A copy still valid here is the latest data: every write since
		 * our grant invalidated us first (read grants are not
		 * acknowledged, so only we know we hold it). */
		*keep = st != DSM_INVALID;
		if (!*keep && supplier >= 0 && supplier != d->cfg.node_id && !may_wait) {
			rc = -EAGAIN; /* a body to pull, on a thread that must not */
			break;
		}
		rc = claim_locked(d, page);
		if (rc >= 0) {
			*slot = rc;
			rc = 0;
			break;
		}
		if (rc == -EINPROGRESS || !may_wait || atomic_load(&d->stopping))
			break;
		pthread_cond_wait(&d->fault_cv, &d->lock); /* table full: rare */
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

/* Ends a claimed install: sets the state (ok) and frees the slot. */
static void install_end(struct dsm *d, uint64_t page, int slot, bool ok, uint8_t state,
			uint32_t version)
{
	pthread_mutex_lock(&d->lock);
	/* newer again: an invalidation must never be undone by an older grant */
	if (ok && newer(version, atomic_load(&d->version[page]))) {
		atomic_store_explicit(&d->version[page], version, memory_order_relaxed);
		atomic_store_explicit(&d->state[page], state, memory_order_release);
		dsm_pending_granted_locked(d, page, state);
	} else if (ok) {
		/* A read grant is not waited for, so the next write may
		 * invalidate us while we pull: the body may be torn. */
		DSM_INC(d, grants_overtaken);
		dsm_pending_overtaken_locked(d, page);
	}
	d->claim_used[slot] = false;
	pthread_cond_broadcast(&d->fault_cv);
	pthread_mutex_unlock(&d->lock);
}

int dsm_agent_install(struct dsm *d, uint64_t page, uint32_t version, uint32_t state,
		      int supplier, bool may_wait)
{
	int slot = 0;
	bool keep = false;
	int rc = install_claim(d, page, version, state, supplier, may_wait, &slot, &keep);

	if (rc == 1 || rc == -EINPROGRESS) {
		DSM_INC(d, grants_dup);
		return rc == 1 ? 0 : rc;
	}
	if (rc)
		return rc;
	rc = install_body(d, page, keep ? d->cfg.node_id : supplier);
	if (rc == 0)
		DSM_INC(d, grants);
	install_end(d, page, slot, rc == 0, (uint8_t)state, version);
	return rc;
}

/*
 * Pulls the page from the supplier's RAM.  Through a buffer outside the
 * registered region, so tp uses a bounce slot: a read that timed out and
 * completes late (seen: tens of ms after tp gave up on it) lands in its
 * abandoned bounce slot, never in guest RAM that we may already have
 * written since.  A timed-out read is re-posted at once with a doubled
 * wait (DSM_RETRY_FIRST_NS up to msg_timeout_ns): the re-post is what gets
 * a stuck one moving.
 */
static int pull_body(struct dsm *d, uint64_t page, int supplier)
{
	uint64_t off = page << DSM_PAGE_SHIFT;
	uint64_t wait_ns = d->retry_first_ns;
	uint8_t *tmp = malloc(DSM_PAGE_SIZE);
	int rc;

	if (!tmp)
		return -ENOMEM;
	for (;;) {
		rc = tp_rma_read(d->cfg.tp, supplier, off, tmp, DSM_PAGE_SIZE, wait_ns);
		if (rc != -ETIMEDOUT)
			break;
		if (atomic_load(&d->stopping)) {
			rc = -ECANCELED;
			break;
		}
		DSM_INC(d, body_retries);
		wait_ns = dsm_retry_next(d, wait_ns);
	}
	if (rc == 0)
		memcpy(d->ram + off, tmp, DSM_PAGE_SIZE);
	free(tmp);
	return rc;
}

/* Fills the page's bytes for a grant (zero, own copy, or RMA read). */
static int install_body(struct dsm *d, uint64_t page, int supplier)
{
	uint64_t off = page << DSM_PAGE_SHIFT;
	int rc;

	/* The page is Invalid here (or Shared and kept), so nobody local reads
	 * the bytes being replaced. */
	if (supplier < 0) {
		memset(d->ram + off, 0, DSM_PAGE_SIZE);
		DSM_INC(d, bodies_zero);
	} else if (supplier != d->cfg.node_id) {
		if ((rc = pull_body(d, page, supplier))) {
			if (rc != -ECANCELED)
				LOG_ERR(DSM_SUBSYS, "page %llu: body from node %d: %s",
					(unsigned long long)page, supplier, strerror(-rc));
			return rc;
		}
		DSM_INC(d, bodies_rma);
		DSM_ADD(d, body_bytes, DSM_PAGE_SIZE);
	}
	return 0;
}

int dsm_agent_send_req(struct dsm *d, uint64_t page, unsigned want)
{
	int home = dsm_home_node(d, page);
	DsmReq m = DSM_REQ__INIT;
	uint8_t buf[DSM_MSG_MAX];
	bool has_copy = atomic_load(&d->state[page]) != DSM_INVALID;

	DSM_INC(d, req_sent);
	if (home == d->cfg.node_id) {
		struct dsm_job *j = calloc(1, sizeof(*j));
		if (!j)
			return -ENOMEM; /* the requester retransmits */
		j->kind = JOB_REQ;
		j->src = d->cfg.node_id;
		j->page = page;
		j->want = want;
		j->flag = has_copy;
		dsm_home_enqueue(d, j);
		return 0;
	}
	m.page = page;
	m.want = want;
	m.version = atomic_load(&d->version[page]);
	m.has_copy = has_copy;
	return tp_send(d->cfg.tp, home, DSM_MSG_TYPE__DSM_MSG_REQ, buf, dsm_req__pack(&m, buf));
}

void dsm_agent_ack_grant(struct dsm *d, int dst, uint64_t page, uint32_t version,
			 uint32_t state)
{
	if (state == DSM_MODIFIED)
		dsm_agent_send_ack(d, dst, page, version);
}

void dsm_agent_send_ack(struct dsm *d, int dst, uint64_t page, uint32_t version)
{
	DsmAck a = DSM_ACK__INIT;
	uint8_t buf[DSM_MSG_MAX];

	a.page = page;
	a.version = version;
	tp_send(d->cfg.tp, dst, DSM_MSG_TYPE__DSM_MSG_ACK, buf, dsm_ack__pack(&a, buf));
}

void *dsm_agent_main(void *arg)
{
	struct dsm *d = arg;
	struct dsm_job *j;

	util_log_set_thread("dsm-agent");
	for (;;) {
		/* subscriber updates leave once their delay is over (dsm_sub.c) */
		uint64_t due = dsm_sub_due(d);
		bool stopped;
		if (due && due <= util_now_ns()) {
			dsm_sub_flush(d);
			due = 0;
		}
		j = dsm_queue_pop_until(&d->agentq, due ? due : UINT64_MAX, &stopped);
		if (stopped)
			break;
		if (!j)
			continue; /* the updates are due */
		switch (j->kind) {
		case JOB_INV:
			dsm_agent_revoke(d, j->page, j->version, j->flag, j->trace);
			dsm_agent_send_ack(d, j->src, j->page, j->version);
			atomic_fetch_sub(&d->inv_jobs, 1);
			break;
		case JOB_INV_USERS: /* the handler changed the state already */
			revoke_users(d, j->page, (uint8_t)j->want, j->trace);
			dsm_agent_send_ack(d, j->src, j->page, j->version);
			atomic_fetch_sub(&d->inv_jobs, 1);
			break;
		case JOB_GRANT:
			if (dsm_agent_install(d, j->page, j->version, j->want, j->supplier, true) == 0)
				dsm_agent_ack_grant(d, j->src, j->page, j->version, j->want);
			break;
		case JOB_SUB_OUT: /* the outbox's first update: the loop above now has a due time */
			break;
		default:
			break;
		}
		free(j);
	}
	return NULL;
}

/* ---- handlers (progress thread) ---- */

static bool bad(struct dsm *d, const struct tp_msg *m, const char *why)
{
	DSM_INC(d, rx_bad);
	LOG_WARN(DSM_SUBSYS, "dropped message type %u from node %d: %s", m->type, m->src, why);
	return false;
}

static bool page_ok(struct dsm *d, const struct tp_msg *m, uint64_t page, bool must_be_home)
{
	if (!dsm_is_member(d, m->src))
		return bad(d, m, "sender is not a member of this VM");
	if (page >= d->npages)
		return bad(d, m, "page outside guest RAM");
	if (must_be_home && dsm_home_node(d, page) != d->cfg.node_id)
		return bad(d, m, "this node is not the page's home");
	return true;
}

/* Every page of a list is one this node is home of (page_ok). */
static bool pages_ok(struct dsm *d, const struct tp_msg *m, const uint64_t *pages, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!page_ok(d, m, pages[i], true))
			return false;
	return true;
}

static struct dsm_job *job_new(struct dsm *d, const struct tp_msg *m, enum dsm_job_kind k,
			       uint64_t page)
{
	struct dsm_job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL; /* the sender retransmits */
	j->kind = k;
	j->src = m->src;
	j->page = page;
	j->reply_to = *m;
	j->reply_to.payload = NULL;
	j->reply_to.len = 0;
	j->remote = true;
	return j;
}

static void on_req(void *arg, const struct tp_msg *m)
{
	struct dsm *d = arg;
	DsmReq *r = dsm_req__unpack(NULL, m->len, m->payload);
	struct dsm_job *j;

	if (!r) {
		bad(d, m, "undecodable request");
		return;
	}
	if (r->want != DSM_R && r->want != DSM_W)
		bad(d, m, "request for neither read nor write");
	else if (page_ok(d, m, r->page, true) && (j = job_new(d, m, JOB_REQ, r->page))) {
		j->want = r->want;
		j->flag = r->has_copy;
		if (dsm_home_read_here(d, j)) {
			/* granted from here: stay on the CQ (spin), the reader's
			 * RMA read of our RAM may follow */
			free(j);
		} else {
			dsm_home_enqueue(d, j);
			tp_handed_off(d->cfg.tp);
		}
	}
	dsm_req__free_unpacked(r, NULL);
}

/*
 * An INV is done right here, on the thread that read it, when that waits
 * for nothing: no fresh grant to hold for, no host copy in progress, no
 * local user (vCPU) deriving anything from the page, and no earlier INV
 * still at the agent (acknowledgements stay in order).  That saves the
 * hop to the agent on the invalidation's critical path, and this thread
 * stays on the CQ.  Otherwise the agent does what is left: all of it, or
 * (the state already changed here) the local users' revocation.  The job
 * is allocated before anything changes, so a failed allocation leaves the
 * INV undone, and the home's retransmission brings it back.
 */
static void inv_here_or_agent(struct dsm *d, struct dsm_job *j)
{
	uint8_t nst = DSM_INVALID;
	int rc = -EWOULDBLOCK;

	if (users_try_possible(d) && atomic_load(&d->inv_jobs) == 0)
		rc = revoke_state(d, j->page, j->version, j->flag, j->trace, false, &nst);
	if (rc == 0 || (rc == 1 && revoke_users_try(d, j->page, nst, j->trace) == 0)) {
		DSM_INC(d, inv_fast);
		dsm_agent_send_ack(d, j->src, j->page, j->version);
		free(j);
	} else {
		if (rc == 1) {
			j->kind = JOB_INV_USERS;
			j->want = nst;
		}
		atomic_fetch_add(&d->inv_jobs, 1);
		dsm_queue_push(&d->agentq, j);
	}
	/* Either way nothing more for the progress thread here: no spin after
	 * this pass (it would take a core from the threads acting on it). */
	tp_handed_off(d->cfg.tp);
}

static void on_inv(void *arg, const struct tp_msg *m)
{
	struct dsm *d = arg;
	DsmInv *r = dsm_inv__unpack(NULL, m->len, m->payload);
	struct dsm_job *j;

	if (!r) {
		bad(d, m, "undecodable invalidation");
		return;
	}
	if (page_ok(d, m, r->page, false)) {
		if (dsm_home_node(d, r->page) != m->src)
			bad(d, m, "invalidation not from the page's home");
		else if ((j = job_new(d, m, JOB_INV, r->page))) {
			j->version = r->version;
			j->flag = r->downgrade;
			j->trace = r->trace;
			inv_here_or_agent(d, j);
		}
	}
	dsm_inv__free_unpacked(r, NULL);
}

/*
 * A grant with no body to pull (zero page, or our own copy: upgrades and
 * repeated read grants) is installed right here, since nothing in it
 * blocks; per page the home orders grants and invalidations, and versions
 * make a stale job still queued for the agent harmless.  One with a body
 * goes to the thread waiting for the page, which pulls it itself
 * (tp_rma_read must not run here); to the agent only when nobody waits (a
 * stale or duplicate grant).
 */
static void grant_here_or_handoff(struct dsm *d, const struct tp_msg *m, const DsmGrant *r)
{
	/* Routing only, lock-free: a body to pull from a peer goes straight to
	 * the waiter (the usual read fault); install_claim decides under the
	 * lock for the rest, and the waiter's install decides again. */
	bool pull = r->supplier >= 0 && r->supplier != d->cfg.node_id &&
		    atomic_load(&d->state[r->page]) == DSM_INVALID;
	int rc = pull ? -EAGAIN
		      : dsm_agent_install(d, r->page, r->version, r->state, r->supplier, false);
	struct dsm_job *j;

	if (rc == 0) {
		dsm_agent_ack_grant(d, m->src, r->page, r->version, r->state);
	} else if (rc == -EAGAIN && (j = job_new(d, m, JOB_GRANT, r->page))) {
		j->version = r->version;
		j->want = r->state;
		j->supplier = r->supplier;
		if (!dsm_grant_handoff(d, j))
			dsm_queue_push(&d->agentq, j);
	}
	tp_handed_off(d->cfg.tp); /* the waiter wakes, or pulls */
}

static void on_grant(void *arg, const struct tp_msg *m)
{
	struct dsm *d = arg;
	DsmGrant *r = dsm_grant__unpack(NULL, m->len, m->payload);

	if (!r) {
		bad(d, m, "undecodable grant");
		return;
	}
	if (page_ok(d, m, r->page, false)) {
		if (dsm_home_node(d, r->page) != m->src)
			bad(d, m, "grant not from the page's home");
		else if (r->state != DSM_SHARED && r->state != DSM_MODIFIED)
			bad(d, m, "grant of an unknown state");
		else if (r->supplier != -1 && !dsm_is_member(d, r->supplier))
			bad(d, m, "grant names a supplier that is not a member");
		else
			grant_here_or_handoff(d, m, r);
	}
	dsm_grant__free_unpacked(r, NULL);
}

/* Acknowledgement of the home worker's outstanding INV/GRANT. */
static void on_ack(void *arg, const struct tp_msg *m)
{
	struct dsm *d = arg;
	DsmAck *r = dsm_ack__unpack(NULL, m->len, m->payload);

	if (!r) {
		bad(d, m, "undecodable acknowledgement");
		return;
	}
	if (page_ok(d, m, r->page, true))
		dsm_home_ack(d, m->src, r->page, r->version);
	dsm_ack__free_unpacked(r, NULL);
}

static void on_sub(void *arg, const struct tp_msg *m)
{
	struct dsm *d = arg;
	DsmSub *r = dsm_sub__unpack(NULL, m->len, m->payload);

	if (!r) {
		bad(d, m, "undecodable subscriber update");
		return;
	}
	/* a batch (dsm_sub.c): all of it or nothing */
	if (pages_ok(d, m, r->pages_on, r->n_pages_on) &&
	    pages_ok(d, m, r->pages_off, r->n_pages_off)) {
		for (size_t i = 0; i < r->n_pages_on; i++)
			dsm_sub_set(d, r->pages_on[i], m->src, true);
		for (size_t i = 0; i < r->n_pages_off; i++)
			dsm_sub_set(d, r->pages_off[i], m->src, false);
	}
	dsm_sub__free_unpacked(r, NULL);
}

/*
 * After dsm_stop: the peers' DSM messages still in flight (acks of our last
 * transaction, retransmitted requests, their homes' resends while they stop
 * too) are for a VM that is over here.  Before dsm_start: the first
 * requests of a node that got the cluster's Start before us (the loader
 * pulls pages homed here).  Dropping them is harmless — the requester
 * retransmits — so they are counted and logged at DBG instead of tp's "no
 * handler" WARN.  Process-wide counter: the handler has no struct dsm.
 */
static _Atomic uint64_t late_msgs;

/* A home asking, after a failure, which of its pages we hold (dsm_audit.c):
 * the reply names those not Invalid here.  Read-only, so a retransmitted
 * question is simply answered again. */
static void on_held(void *arg, const struct tp_msg *m)
{
	struct dsm *d = arg;
	DsmHeld *q = dsm_held__unpack(NULL, m->len, m->payload);
	DsmHeld a = DSM_HELD__INIT;

	if (!q) {
		bad(d, m, "undecodable holder question");
		return;
	}
	if (!dsm_is_member(d, m->src)) {
		bad(d, m, "sender is not a member of this VM");
	} else if ((a.pages = malloc((q->n_pages + 1) * sizeof(uint64_t)))) {
		for (size_t i = 0; i < q->n_pages; i++)
			if (q->pages[i] < d->npages && atomic_load(&d->state[q->pages[i]]) != DSM_INVALID)
				a.pages[a.n_pages++] = q->pages[i];
		size_t len = dsm_held__get_packed_size(&a);
		uint8_t *buf = malloc(len + 1);
		if (buf)
			tp_reply(d->cfg.tp, m, DSM_MSG_TYPE__DSM_MSG_HELD, buf, dsm_held__pack(&a, buf));
		free(buf);
		free(a.pages);
	}
	dsm_held__free_unpacked(q, NULL);
}

static void on_late(void *arg, const struct tp_msg *m)
{
	(void)arg;
	uint64_t n = atomic_fetch_add(&late_msgs, 1) + 1;
	LOG_DBG(DSM_SUBSYS, "DSM not running: dropped message type %u from node %d (%llu so far)",
		m->type, m->src, (unsigned long long)n);
}

static void set_late_handlers(struct tp *tp)
{
	for (uint32_t t = DSM_MSG_TYPE__DSM_MSG_REQ; t <= DSM_MSG_TYPE__DSM_MSG_HELD; t++)
		tp_handler_set(tp, t, on_late, NULL);
}

void dsm_handlers_not_started(struct tp *tp)
{
	if (tp)
		set_late_handlers(tp);
}

uint64_t dsm_late_dropped(void)
{
	return atomic_load(&late_msgs);
}

void dsm_agent_set_handlers(struct dsm *d, bool on)
{
	struct tp *tp = d->cfg.tp;

	if (!on) {
		set_late_handlers(tp);
		return;
	}
	/* Every handler is thread-safe and never blocks (queues, d->lock,
	 * ack_mu, atomics): a faulting vCPU or the home worker polling the CQ
	 * in tp_poll_wait may run them itself. */
	tp_handler_set_any(tp, DSM_MSG_TYPE__DSM_MSG_REQ, on_req, d);
	tp_handler_set_any(tp, DSM_MSG_TYPE__DSM_MSG_INV, on_inv, d);
	tp_handler_set_any(tp, DSM_MSG_TYPE__DSM_MSG_GRANT, on_grant, d);
	tp_handler_set_any(tp, DSM_MSG_TYPE__DSM_MSG_SUB, on_sub, d);
	tp_handler_set_any(tp, DSM_MSG_TYPE__DSM_MSG_ACK, on_ack, d);
	tp_handler_set_any(tp, DSM_MSG_TYPE__DSM_MSG_HELD, on_held, d);
}
