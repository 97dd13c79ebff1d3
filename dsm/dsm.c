/*
 * dsm: object life, per-node page state, the requester side of faults
 * (coalescing, retransmission, waiting that keeps serving the caller's
 * own revocations), host-side copies and statistics.
 *
 * Why the requester does not use tp_request for its fault: the answer (a
 * grant) may take arbitrarily long — the home may be busy invalidating
 * copies on nodes whose vCPUs are themselves waiting — and a vCPU must keep
 * acknowledging revocations of other pages while it waits.  So the request
 * is a fire-and-forget message, retransmitted every retx_ns until the page
 * arrives; the home recognises duplicates by the directory state.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "dsm/dsm_int.h"

int dsm_policy_parse(const char *s, enum dsm_home_policy *out)
{
	if (!s || !out)
		return -EINVAL;
	if (!strcmp(s, "interleave"))
		*out = DSM_HOME_INTERLEAVE;
	else if (!strcmp(s, "block"))
		*out = DSM_HOME_BLOCK;
	else
		return -EINVAL;
	return 0;
}

int dsm_home_node(const struct dsm *d, uint64_t page)
{
	if (d->cfg.policy == DSM_HOME_BLOCK)
		return d->nodes[(page / d->cfg.block_pages) % d->nnodes];
	return d->nodes[page % d->nnodes];
}

uint64_t dsm_dir_slot(const struct dsm *d, uint64_t page)
{
	if (d->cfg.policy == DSM_HOME_BLOCK) {
		uint64_t run = d->cfg.block_pages;
		return page / (run * d->nnodes) * run + page % run;
	}
	return page / d->nnodes;
}

bool dsm_is_member(const struct dsm *d, int node)
{
	for (unsigned i = 0; i < d->nnodes; i++)
		if (d->nodes[i] == node)
			return true;
	return false;
}

static void *map_sparse(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

static int check_cfg(const struct dsm_cfg *c)
{
	if (!c->tp || !c->nodes || c->nnodes == 0 || c->nnodes > DSM_MAX_NODES || !c->ram ||
	    c->ram_size == 0 || c->ram_size % DSM_PAGE_SIZE || c->ram_base % DSM_PAGE_SIZE) {
		LOG_ERR(DSM_SUBSYS, "bad configuration (tp, nodes 1..%d, RAM page-aligned needed)",
			DSM_MAX_NODES);
		return -EINVAL;
	}
	bool self = false;
	for (unsigned i = 0; i < c->nnodes; i++) {
		if (c->nodes[i] < 0 || c->nodes[i] >= DSM_MAX_NODES) {
			LOG_ERR(DSM_SUBSYS, "node id %d outside 0..%d", c->nodes[i],
				DSM_MAX_NODES - 1);
			return -EINVAL;
		}
		self |= c->nodes[i] == c->node_id;
	}
	if (!self) {
		LOG_ERR(DSM_SUBSYS, "node %d is not among the %u members", c->node_id, c->nnodes);
		return -EINVAL;
	}
	return 0;
}

int dsm_create(const struct dsm_cfg *cfg, struct dsm **out)
{
	struct dsm *d;
	int rc;

	if (!cfg || !out)
		return -EINVAL;
	if ((rc = check_cfg(cfg)))
		return rc;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->cfg = *cfg;
	d->nnodes = cfg->nnodes;
	memcpy(d->nodes, cfg->nodes, cfg->nnodes * sizeof(int));
	qsort(d->nodes, d->nnodes, sizeof(int), cmp_int);
	for (unsigned i = 1; i < d->nnodes; i++)
		if (d->nodes[i] == d->nodes[i - 1]) {
			LOG_ERR(DSM_SUBSYS, "node id %d listed twice", d->nodes[i]);
			free(d);
			return -EINVAL;
		}
	d->ram = cfg->ram;
	d->npages = cfg->ram_size / DSM_PAGE_SIZE;
	if (!d->cfg.msg_timeout_ns)
		d->cfg.msg_timeout_ns = 200000000ull;
	if (!d->cfg.retx_ns)
		d->cfg.retx_ns = 20000000ull;
	if (!d->cfg.hold_ns)
		d->cfg.hold_ns = 1000000ull;
	d->spin_ns = d->cfg.spin_ns;
	if (!d->spin_ns && getenv("SPANVM_DSM_SPIN_NS"))
		d->spin_ns = strtoull(getenv("SPANVM_DSM_SPIN_NS"), NULL, 10);
	if (!d->spin_ns)
		d->spin_ns = DSM_SPIN_NS;
	/* env only: for measuring (docs/dsm.md "Retries") */
	d->retry_first_ns = DSM_RETRY_FIRST_NS;
	if (getenv("SPANVM_DSM_RETRY_FIRST_NS"))
		d->retry_first_ns = strtoull(getenv("SPANVM_DSM_RETRY_FIRST_NS"), NULL, 10);
	d->retry_first_ns = UTIL_MAX(UTIL_MIN(d->retry_first_ns, d->cfg.msg_timeout_ns), 100000ull);
	d->spin_fault.budget_ns = d->spin_ns >= 20000 ? d->spin_ns : 0;
	d->nhome = DSM_HOME_WORKERS;
	if (getenv("SPANVM_DSM_HOME_WORKERS"))
		d->nhome = (unsigned)strtoul(getenv("SPANVM_DSM_HOME_WORKERS"), NULL, 10);
	d->nhome = UTIL_MAX(UTIL_MIN(d->nhome, DSM_HOME_WORKERS_MAX), 1u);
	if (d->cfg.policy == DSM_HOME_BLOCK && !d->cfg.block_pages)
		d->cfg.block_pages = (d->npages + d->nnodes - 1) / d->nnodes;
	if (d->cfg.policy == DSM_HOME_INTERLEAVE)
		d->cfg.block_pages = 1;

	/* 5 bytes per page of local state, 32 per home page: all sparse. */
	d->local_map_len = d->npages * (sizeof(uint8_t) + sizeof(uint32_t));
	uint64_t slots = (d->npages / (d->cfg.block_pages * d->nnodes) + 1) * d->cfg.block_pages;
	d->dir_map_len = slots * sizeof(struct dsm_dir);
	uint8_t *lm = map_sparse(d->local_map_len);
	d->dir = map_sparse(d->dir_map_len);
	if (!lm || !d->dir) {
		LOG_ERR(DSM_SUBSYS, "cannot map page state for %llu pages",
			(unsigned long long)d->npages);
		if (lm)
			munmap(lm, d->local_map_len);
		if (d->dir)
			munmap(d->dir, d->dir_map_len);
		free(d);
		return -ENOMEM;
	}
	d->version = (_Atomic uint32_t *)lm;
	d->state = (_Atomic uint8_t *)(lm + d->npages * sizeof(uint32_t));
	pthread_rwlock_init(&d->host_users, NULL);
	pthread_mutex_init(&d->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->fault_cv, &ca);
	for (unsigned i = 0; i < d->nhome; i++) {
		struct dsm_home_worker *w = &d->home[i];
		w->d = d;
		pthread_cond_init(&w->ack_cv, &ca);
		pthread_mutex_init(&w->ack_mu, NULL);
		pthread_mutex_init(&w->txn_mu, NULL);
		dsm_queue_init(&w->q);
		w->spin_ack.budget_ns = w->spin_req.budget_ns = d->spin_fault.budget_ns;
	}
	pthread_condattr_destroy(&ca);
	dsm_queue_init(&d->agentq);
	pthread_mutex_init(&d->subs_out.mu, NULL);
	*out = d;
	return 0;
}

static void home_stop(struct dsm *d, unsigned running)
{
	for (unsigned i = 0; i < d->nhome; i++)
		dsm_queue_stop(&d->home[i].q);
	for (unsigned i = 0; i < running; i++)
		pthread_join(d->home[i].thr, NULL);
}

int dsm_start(struct dsm *d)
{
	unsigned i;
	int rc = 0;

	if (!d || d->started)
		return -EINVAL;
	dsm_agent_set_handlers(d, true);
	for (i = 0; i < d->nhome && !rc; i++)
		if ((rc = pthread_create(&d->home[i].thr, NULL, dsm_home_main, &d->home[i])))
			break;
	if (!rc && (rc = pthread_create(&d->agent_thr, NULL, dsm_agent_main, d)) == 0) {
		d->started = true;
		return 0;
	}
	home_stop(d, i);
	dsm_agent_set_handlers(d, false);
	return -rc;
}

void dsm_stop(struct dsm *d)
{
	if (!d)
		return;
	atomic_store(&d->stopping, true);
	for (unsigned i = 0; i < d->nhome; i++) { /* a home worker waiting for acks */
		pthread_mutex_lock(&d->home[i].ack_mu);
		pthread_cond_broadcast(&d->home[i].ack_cv);
		pthread_mutex_unlock(&d->home[i].ack_mu);
	}
	if (d->started) {
		dsm_agent_set_handlers(d, false);
		/* a handler already running on another thread still uses d:
		 * dsm_destroy must not free it under that handler */
		tp_handlers_quiesce(d->cfg.tp);
	}
	dsm_queue_stop(&d->agentq);
	home_stop(d, d->started ? d->nhome : 0);
	if (d->started) {
		pthread_join(d->agent_thr, NULL);
		d->started = false;
	}
	dsm_wake(d);
}

void dsm_destroy(struct dsm *d)
{
	if (!d)
		return;
	dsm_stop(d);
	for (unsigned i = 0; i < d->nhome; i++) {
		dsm_queue_destroy(&d->home[i].q);
		pthread_cond_destroy(&d->home[i].ack_cv);
		pthread_mutex_destroy(&d->home[i].ack_mu);
		pthread_mutex_destroy(&d->home[i].txn_mu);
	}
	dsm_queue_destroy(&d->agentq);
	dsm_sub_outbox_destroy(d);
	munmap((void *)d->version, d->local_map_len);
	munmap(d->dir, d->dir_map_len);
	pthread_cond_destroy(&d->fault_cv);
	pthread_mutex_destroy(&d->lock);
	pthread_rwlock_destroy(&d->host_users);
	free(d);
}

static int page_of(const struct dsm *d, uint64_t gpa, uint64_t *page)
{
	if (gpa < d->cfg.ram_base || gpa - d->cfg.ram_base >= d->cfg.ram_size)
		return -EFAULT;
	*page = (gpa - d->cfg.ram_base) >> DSM_PAGE_SHIFT;
	return 0;
}

int dsm_home_of(const struct dsm *d, uint64_t gpa)
{
	uint64_t page;
	return page_of(d, gpa, &page) ? -EFAULT : dsm_home_node(d, page);
}

static bool state_allows(uint8_t st, unsigned access)
{
	return (access & DSM_W) ? st == DSM_MODIFIED : st != DSM_INVALID;
}

int dsm_page_try(struct dsm *d, uint64_t gpa, unsigned access, void **host)
{
	uint64_t page;

	if (page_of(d, gpa, &page))
		return -EFAULT;
	if (!state_allows(atomic_load_explicit(&d->state[page], memory_order_acquire), access))
		return -EAGAIN;
	if (host)
		*host = d->ram + (gpa - d->cfg.ram_base);
	return 0;
}

int dsm_page_state(struct dsm *d, uint64_t gpa, enum dsm_state *st, uint32_t *version)
{
	uint64_t page;

	if (page_of(d, gpa, &page))
		return -EFAULT;
	pthread_mutex_lock(&d->lock);
	if (st)
		*st = atomic_load(&d->state[page]);
	if (version)
		*version = atomic_load(&d->version[page]);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

void dsm_wake(struct dsm *d)
{
	atomic_fetch_add(&d->kicks, 1);
	pthread_mutex_lock(&d->lock);
	pthread_cond_broadcast(&d->fault_cv);
	pthread_mutex_unlock(&d->lock);
}

/* Pending-fault table, d->lock held.  Returns the entry for page or a
 * free one (want == 0), NULL when full. */
static struct dsm_pending *pending_find(struct dsm *d, uint64_t page)
{
	struct dsm_pending *free_e = NULL;
	for (unsigned i = 0; i < DSM_PENDING_MAX; i++) {
		struct dsm_pending *e = &d->pending[i];
		if (e->want && e->page == page)
			return e;
		if (!e->want && !free_e)
			free_e = e;
	}
	return free_e;
}

static void wait_a_little(struct dsm *d)
{
	struct timespec ts;
	tp_watch_cq(d->cfg.tp); /* the answer must not wait for a grace's end */
	util_deadline_in(CLOCK_MONOTONIC, 1000000, &ts);
	pthread_cond_timedwait(&d->fault_cv, &d->lock, &ts);
}

bool dsm_grant_handoff(struct dsm *d, struct dsm_job *j)
{
	bool done = false;

	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; i < DSM_PENDING_MAX && !done; i++) {
		struct dsm_pending *e = &d->pending[i];
		if (e->want && e->page == j->page && !e->grant) {
			__atomic_store_n(&e->grant, j, __ATOMIC_RELEASE);
			done = true;
		}
	}
	if (done)
		pthread_cond_broadcast(&d->fault_cv);
	pthread_mutex_unlock(&d->lock);
	return done;
}

static struct dsm_pending *pending_of(struct dsm *d, uint64_t page)
{
	for (unsigned i = 0; i < DSM_PENDING_MAX; i++)
		if (d->pending[i].want && d->pending[i].page == page)
			return &d->pending[i];
	return NULL;
}

void dsm_pending_granted_locked(struct dsm *d, uint64_t page, uint8_t state)
{
	struct dsm_pending *e = pending_of(d, page);

	if (e && state_allows(state, e->want)) {
		e->granted = true;
		e->lost = false;
	}
}

bool dsm_grant_waiting_locked(struct dsm *d, uint64_t page)
{
	struct dsm_pending *e = pending_of(d, page);
	return e && e->grant;
}

void dsm_pending_overtaken_locked(struct dsm *d, uint64_t page)
{
	struct dsm_pending *e = pending_of(d, page);

	if (e && !e->grant && !state_allows(atomic_load(&d->state[page]), e->want)) {
		e->granted = false;
		e->lost = true;
		pthread_cond_broadcast(&d->fault_cv);
	}
}

/*
 * Why a hold: the waiter of a fresh grant needs a thread wake-up (tens of
 * µs, ms on a loaded box) before its access runs, while the home may start
 * the next transaction on the page — another node's fault, queued
 * meanwhile — right after the grant's ACK.  Revoking at once made the
 * waiter find the page gone and sleep until its retransmission timer
 * (measured: ping-pong at one transfer per retx_ns).  Bounded, so a
 * descheduled waiter delays others by at most hold_ns; runs on the agent or
 * home worker only (never the progress thread), which may wait for local
 * vCPUs anyway.
 */
/* nobody waits, or a reader keeps what it waits for: no hold */
static bool hold_needed(const struct dsm_pending *e, bool downgrade)
{
	return e && e->granted && !(downgrade && !(e->want & DSM_W));
}

bool dsm_revoke_must_wait_locked(struct dsm *d, uint64_t page, bool downgrade)
{
	const struct dsm_pending *e = pending_of(d, page); /* one scan for both */
	return e && (e->grant || hold_needed(e, downgrade));
}

void dsm_hold_locked(struct dsm *d, uint64_t page, bool downgrade)
{
	struct dsm_pending *e = pending_of(d, page);

	if (!hold_needed(e, downgrade))
		return;
	DSM_INC(d, hold_waits);
	struct timespec ts;
	util_deadline_in(CLOCK_MONOTONIC, d->cfg.hold_ns, &ts);
	while (e->want && e->page == page && e->granted && !atomic_load(&d->stopping))
		if (pthread_cond_timedwait(&d->fault_cv, &d->lock, &ts))
			break;
	if (e->want && e->page == page && e->granted) {
		DSM_INC(d, hold_expired);
		e->granted = false;
		e->lost = true;
	}
}

/* d->lock held: installs a grant the handler handed to e, on this
 * (waiting) thread, and acknowledges it.  Returns with d->lock held. */
static void take_grant(struct dsm *d, struct dsm_pending *e)
{
	struct dsm_job *j = e->grant;

	__atomic_store_n(&e->grant, NULL, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&d->lock);
	if (dsm_agent_install(d, j->page, j->version, j->want, j->supplier, true) == 0)
		dsm_agent_ack_grant(d, j->src, j->page, j->version, j->want);
	free(j);
	pthread_mutex_lock(&d->lock);
}

/* d->lock held: join or start the request for page; true = we must send. */
static bool pending_join(struct dsm *d, uint64_t page, unsigned access, struct dsm_pending **out)
{
	struct dsm_pending *e;

	while (!(e = pending_find(d, page)))
		wait_a_little(d); /* table full: extremely rare, wait for a slot */
	*out = e;
	e->waiters++;
	if (e->want && (e->want & DSM_W || !(access & DSM_W))) {
		DSM_INC(d, coalesced);
		return false;
	}
	e->page = page;
	e->want = (access & DSM_W) ? DSM_W : DSM_R;
	e->sent_ns = util_now_ns();
	if (access & DSM_W)
		DSM_INC(d, write_faults);
	else
		DSM_INC(d, read_faults);
	return true;
}

uint64_t dsm_retry_next(const struct dsm *d, uint64_t wait_ns)
{
	return UTIL_MIN(2 * wait_ns, d->cfg.msg_timeout_ns);
}

uint64_t dsm_spin_budget(struct dsm_spin *s)
{
	if (util_cpus_oversubscribed())
		return 0;
	uint64_t b = atomic_load_explicit(&s->budget_ns, memory_order_relaxed);
	if (b)
		return b;
	return atomic_fetch_add_explicit(&s->skipped, 1, memory_order_relaxed) % 16 == 15
		       ? 50000
		       : 0;
}

void dsm_spin_note(const struct dsm *d, struct dsm_spin *s, uint64_t budget, bool answered)
{
	if (!budget)
		return;
	uint64_t b = UTIL_MAX(atomic_load_explicit(&s->budget_ns, memory_order_relaxed), budget);
	if (answered)
		b = UTIL_MIN(2 * b, d->spin_ns);
	else
		b = b / 2 < 20000 ? 0 : b / 2;
	atomic_store_explicit(&s->budget_ns, b, memory_order_relaxed);
}

uint64_t dsm_spin_begin(struct dsm *d, struct dsm_spin *s)
{
	uint64_t budget = dsm_spin_budget(s);
	if (budget)
		tp_poll_hold(d->cfg.tp);
	return budget;
}

void dsm_spin_end(struct dsm *d, struct dsm_spin *s, uint64_t budget, bool (*done)(void *),
		  void *arg)
{
	if (!budget)
		return;
	bool answered = tp_poll_wait(d->cfg.tp, done, arg, budget) == 0;
	dsm_spin_note(d, s, budget, answered);
	tp_poll_release(d->cfg.tp, answered);
}

void dsm_spin_poll(struct dsm *d, struct dsm_spin *s, bool (*done)(void *), void *arg)
{
	dsm_spin_end(d, s, dsm_spin_begin(d, s), done, arg);
}

struct fault_poll {
	struct dsm *d;
	struct dsm_pending *e;
	uint64_t page;
	unsigned access, kicks;
};

/* tp_poll_wait's predicate, no lock held: a grant to take, or the page. */
static bool fault_answered(void *arg)
{
	struct fault_poll *f = arg;
	return __atomic_load_n(&f->e->grant, __ATOMIC_ACQUIRE) ||
	       state_allows(atomic_load(&f->d->state[f->page]), f->access) ||
	       atomic_load(&f->d->stopping) || atomic_load(&f->d->kicks) != f->kicks;
}

int dsm_fault(struct dsm *d, uint64_t gpa, unsigned access, const struct dsm_waiter *w)
{
	struct dsm_pending *e;
	uint64_t page, t0 = util_now_ns();
	int rc = 0;

	if (!d || page_of(d, gpa, &page))
		return -EFAULT;
	if (state_allows(atomic_load(&d->state[page]), access))
		return 0;
	pthread_mutex_lock(&d->lock);
	bool send = pending_join(d, page, access, &e);
	for (;;) {
		unsigned want = e->want;
		if (send) {
			struct fault_poll fp = {d, e, page, access, atomic_load(&d->kicks)};
			pthread_mutex_unlock(&d->lock);
			/* Read the answer ourselves: the GRANT handler runs on this
			 * thread (no progress-thread and condvar hop).  Hold the CQ
			 * from before the send: on loopback the GRANT can arrive
			 * while tp_send is still in the kernel. */
			uint64_t budget = dsm_spin_begin(d, &d->spin_fault);
			dsm_agent_send_req(d, page, want);
			dsm_spin_end(d, &d->spin_fault, budget, fault_answered, &fp);
			pthread_mutex_lock(&d->lock);
			send = false;
		}
		if (e->grant)
			take_grant(d, e);
		if (state_allows(atomic_load(&d->state[page]), access))
			break;
		if (atomic_load(&d->stopping)) {
			rc = -ECANCELED;
			break;
		}
		if (w && w->idle) {
			pthread_mutex_unlock(&d->lock);
			w->idle(w->arg);
			pthread_mutex_lock(&d->lock);
			if (e->grant)
				take_grant(d, e);
			if (state_allows(atomic_load(&d->state[page]), access))
				break;
		}
		if (!e->grant && !e->lost)
			wait_a_little(d);
		uint64_t now = util_now_ns();
		if (e->lost) {
			/* granted and taken away before we saw it: ask again now */
			e->lost = false;
			e->sent_ns = now;
			if (access & DSM_W)
				e->want = DSM_W;
			DSM_INC(d, req_lost);
			send = true;
		} else if (now - e->sent_ns >= d->cfg.retx_ns) {
			/* lost request (or a lost grant the hold did not see) */
			e->sent_ns = now;
			if (access & DSM_W)
				e->want = DSM_W;
			DSM_INC(d, req_retx);
			send = true;
		}
	}
	if (e->granted && rc == 0) {
		/* seen: a revocation holding for us may go on */
		e->granted = false;
		pthread_cond_broadcast(&d->fault_cv);
	}
	if (--e->waiters == 0) {
		e->want = 0;
		e->granted = false;
		e->lost = false;
		if (e->grant) /* stopping, or a grant beyond what we needed */
			dsm_queue_push(&d->agentq, e->grant);
		__atomic_store_n(&e->grant, NULL, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&d->lock);
	DSM_ADD(d, fault_wait_ns, util_now_ns() - t0);
	return rc;
}

static int host_copy(struct dsm *d, uint64_t gpa, void *buf, size_t len, bool write)
{
	while (len) {
		size_t n = UTIL_MIN(len, DSM_PAGE_SIZE - (gpa & (DSM_PAGE_SIZE - 1)));
		void *host;
		int rc;

		pthread_rwlock_rdlock(&d->host_users);
		rc = dsm_page_try(d, gpa, write ? DSM_W : DSM_R, &host);
		if (rc == 0) {
			if (write)
				memcpy(host, buf, n);
			else
				memcpy(buf, host, n);
		}
		pthread_rwlock_unlock(&d->host_users);
		if (rc == -EAGAIN) {
			if ((rc = dsm_fault(d, gpa, write ? DSM_W : DSM_R, NULL)))
				return rc;
			continue;
		}
		if (rc)
			return rc;
		gpa += n;
		buf = (uint8_t *)buf + n;
		len -= n;
	}
	return 0;
}

int dsm_write(struct dsm *d, uint64_t gpa, const void *buf, size_t len)
{
	return d ? host_copy(d, gpa, (void *)buf, len, true) : -EINVAL;
}

int dsm_read(struct dsm *d, uint64_t gpa, void *buf, size_t len)
{
	return d ? host_copy(d, gpa, buf, len, false) : -EINVAL;
}

int dsm_trace_sub(struct dsm *d, uint64_t gpa, bool on)
{
	uint64_t page;

	if (!d || page_of(d, gpa, &page))
		return -EFAULT;
	return dsm_sub_queue(d, page, on);
}

#define DSM_HOT_JSON 10 /* hot pages in the stats JSON */

#define DSM_STAT_FIELDS(X)                                                              \
	X(read_faults) X(write_faults) X(coalesced) X(req_sent) X(req_retx)             \
	X(fault_wait_ns) X(grants) X(grants_dup) X(bodies_rma) X(bodies_zero)           \
	X(body_bytes) X(inv_recv) X(downgrade_recv) X(inv_stale) X(revoke_interrupts)   \
	X(trace_notified) X(unflagged_interrupts) X(sub_sent) X(home_txns) X(home_skipped)  \
	X(home_dup_req) X(inv_sent) X(inv_trace_sent) X(inv_silent_sent)                \
	X(downgrade_sent) X(grant_sent) X(msg_retries) X(sub_updates) X(rx_bad)          \
	X(hold_waits) X(hold_expired) X(req_lost) X(body_retries) X(inv_fast)           \
	X(home_regrants) X(grants_overtaken) X(home_fast)  \
	X(inv_waited_install) X(sub_msgs)

void dsm_stats(struct dsm *d, struct dsm_stats *out)
{
	memset(out, 0, sizeof(*out));
#define X(f) out->f = __atomic_load_n(&d->st.f, __ATOMIC_RELAXED);
	DSM_STAT_FIELDS(X)
#undef X
}

int dsm_stats_write_json(struct dsm *d, FILE *f)
{
	struct dsm_stats s;
	const char *sep = "";

	dsm_stats(d, &s);
	fprintf(f, "{\"node\":%d,\"pages\":%llu,\"bytes_per_page_local\":5,"
		   "\"bytes_per_home_page\":%zu,", d->cfg.node_id,
		(unsigned long long)d->npages, sizeof(struct dsm_dir));
#define X(fl)                                                                    \
	fprintf(f, "%s\"" #fl "\":%llu", sep, (unsigned long long)s.fl);            \
	sep = ",";
	DSM_STAT_FIELDS(X)
#undef X
	struct dsm_hot_page hot[DSM_HOT_JSON];
	unsigned nhot = 0;
	dsm_hot_pages(d, DSM_HOT_JSON, hot, &nhot);
	fprintf(f, ",\"hot_pages\":[");
	for (unsigned i = 0; i < nhot; i++)
		fprintf(f, "%s{\"gpa\":%llu,\"requests\":%llu,\"moves\":%llu}", i ? "," : "",
			(unsigned long long)hot[i].gpa, (unsigned long long)hot[i].requests,
			(unsigned long long)hot[i].moves);
	return fprintf(f, "]}") < 0 ? -EIO : 0;
}
