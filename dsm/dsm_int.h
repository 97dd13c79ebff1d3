/* dsm internals shared by dsm.c, dsm_home.c, dsm_agent.c (see dsm.h). */
#ifndef SPANVM_DSM_INT_H
#define SPANVM_DSM_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "dsm/dsm.h"
#include "proto/dsm.pb-c.h"
#include "transport/tp.h"
#include "util/util.h"

#define DSM_SUBSYS "dsm"
#define DSM_PENDING_MAX 256 /* distinct pages with an outstanding local fault */
#define DSM_CLAIM_MAX 64    /* grant installs in flight on this node (agent + vCPUs) */
#define DSM_SPIN_NS 500000ull /* default: poll the CQ this long before sleeping */
/* Home workers per node (env SPANVM_DSM_HOME_WORKERS, 1..MAX): a Linux
 * guest has many hot pages per home, and one worker running every
 * transaction of the node in turn made each fault queue behind the round
 * trips of the others (3-node boot: ~4 ms mean fault wait). */
#define DSM_HOME_WORKERS 4
#define DSM_HOME_WORKERS_MAX 8
/* First wait of a home INV/GRANT for its ACK and of a body RMA read; each
 * retry doubles it up to msg_timeout_ns.  Why short: with tcp;ofi_rxm an
 * operation sometimes sits in the provider until the endpoint's next post
 * (measured: RMA reads stuck 0.2-1 s that completed within 50 us of the
 * re-post), and the whole home waits meanwhile (docs/dsm.md "Retries"). */
#define DSM_RETRY_FIRST_NS 10000000ull /* env SPANVM_DSM_RETRY_FIRST_NS */

/* Directory entry at the home: 32 bytes. */
struct dsm_dir {
	uint64_t copyset;          /* nodes holding a valid copy (bit = node id) */
	_Atomic uint64_t subs;     /* nodes with trace subscribers on the page */
	uint32_t version;          /* bumped by every grant */
	uint8_t owner;             /* node id + 1 of the supplier (last writer); 0 = none
				    * (the mapping starts zero-filled: a zero page) */
	uint8_t excl;              /* owner holds it Modified */
	uint8_t pad[2];
	/* hot-page counters (dsm_hot_pages): written by the home worker,
	 * read by any thread, both with relaxed __atomic builtins */
	uint32_t requests;         /* transactions started for the page */
	uint32_t moves;            /* write grants that moved ownership to another node */
};

/* A queued unit of work for a worker thread. */
/* JOB_INV_USERS: an INV whose state change the handler made (fast path)
 * but whose local users must still be revoked before the ACK. */
enum dsm_job_kind { JOB_REQ, JOB_INV, JOB_INV_USERS, JOB_GRANT, JOB_SUB_OUT, JOB_SUB_IN };
struct dsm_job {
	struct dsm_job *next;
	enum dsm_job_kind kind;
	int src;                   /* requesting / sending node */
	uint64_t page;
	uint32_t want;             /* REQ: DSM_R/DSM_W; GRANT: state */
	uint32_t version;
	int supplier;              /* GRANT */
	bool flag;                 /* INV: downgrade; SUB: on */
	bool trace;                /* INV */
	struct tp_msg reply_to;    /* remote INV/GRANT/SUB: what to tp_reply to */
	bool remote;
};

struct dsm_queue {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct dsm_job *head, *tail;
	bool stop;
};

/*
 * Adaptive polling: a waiter polls the CQ itself (tp_poll_wait) only while
 * polling pays.  Measured on this 2-core box: on a quiet machine polling
 * turns a fault into ~RTT + RMA and saves the progress thread's epoll
 * wake-up (0.3-0.6 ms when the box is busy); under load (10-25 runnable
 * threads) a spinning thread keeps the one it waits for off the CPUs, and
 * guest runs got 20-150 % slower with a fixed 100-500 us budget.  So each
 * kind of wait has a budget: a poll that saw its answer doubles it (up to
 * spin_ns), one that did not (budget used up, or descheduled) halves it,
 * below 20 us it is 0 (sleep at once) and every 16th wait probes with
 * 50 us so polling resumes when the machine quiets down.  Races between
 * threads updating a budget only blur it.
 */
struct dsm_spin {
	_Atomic uint64_t budget_ns;
	_Atomic unsigned skipped;
};

struct dsm_pending {
	uint64_t page;             /* valid when want != 0 */
	unsigned want;
	unsigned waiters;
	uint64_t sent_ns;
	/* A grant with a body to pull, handed over by the GRANT handler for
	 * one of the waiters to install on its own thread (no agent hop). */
	struct dsm_job *grant;
	/* A grant giving `want` was installed and no waiter has seen it yet:
	 * a revocation of the page holds off (bounded, hold_ns) until one
	 * has, so the faulting access runs before the page leaves again. */
	bool granted;
	/* The page was granted and revoked again before any waiter saw it
	 * (the hold expired): resend the request now, not after retx_ns. */
	bool lost;
};

/*
 * One home worker: runs the transactions of the home pages whose directory
 * slot maps to it (slot % nhome), one at a time, so each page still has
 * exactly one transaction in flight (the protocol dsm/model/ checks) while
 * transactions on different pages overlap.  Its outstanding INVs/GRANT are
 * acknowledged by plain messages matched by page, version and sender;
 * ack_mu orders the ACK handler's update with the wait.
 */
struct dsm_home_worker {
	struct dsm *d;
	pthread_t thr;
	struct dsm_queue q;
	struct dsm_spin spin_ack, spin_req;
	/* Held while a transaction of this worker's pages runs: by the worker
	 * from taking a job off its queue to the transaction's end, or by a
	 * REQ handler doing a read that waits for nobody (dsm_home_read_here). */
	pthread_mutex_t txn_mu;
	pthread_mutex_t ack_mu;
	pthread_cond_t ack_cv;
	uint64_t ack_page;
	uint32_t ack_version;
	bool ack_want;
	_Atomic uint64_t ack_wait; /* nodes whose ACK is still missing (also
				    * read without ack_mu by tp_poll_wait) */
};

/* Subscriber updates waiting for the agent's flush (dsm_sub.c). */
struct dsm_sub_update {
	uint64_t page;
	size_t seq; /* order of the calls: the last one of a page wins */
	bool on;
};

struct dsm_sub_outbox {
	pthread_mutex_t mu;
	struct dsm_sub_update *v;
	size_t n, cap;
	uint64_t first_ns;  /* when the oldest update in v came */
	bool woken;         /* a JOB_SUB_OUT went to the agent for these */
	uint8_t *told;      /* per page, bit: the home was last told "on" (agent only) */
	size_t told_len;
};

struct dsm {
	struct dsm_cfg cfg;
	int nodes[DSM_MAX_NODES];
	unsigned nnodes;
	uint8_t *ram;
	uint64_t npages;

	/* per page, this node: written under lock by the workers, read lock-free */
	_Atomic uint8_t *state;
	_Atomic uint32_t *version;
	size_t local_map_len;

	/* home directory: slot = home-local index of a page */
	struct dsm_dir *dir;
	size_t dir_map_len;

	/* dsm_read/dsm_write hold it shared around check + copy; revocations
	 * take it exclusively after changing the state (host-side users). */
	pthread_rwlock_t host_users;
	pthread_mutex_t lock;      /* pending table, fault condvar */
	pthread_cond_t fault_cv;
	struct dsm_pending pending[DSM_PENDING_MAX];
	/* pages whose grant is being installed (under d->lock): one install
	 * per page at a time, so a duplicate grant pulled on another thread
	 * can never overwrite a page that was already handed to its users */
	uint64_t claim_page[DSM_CLAIM_MAX];
	bool claim_used[DSM_CLAIM_MAX];

	uint64_t retry_first_ns;   /* first retry wait (DSM_RETRY_FIRST_NS, env) */
	uint64_t spin_ns;          /* max. tp_poll_wait budget of a waiter (cfg / env) */
	/* adaptive polling (dsm_spin_*) of faulting threads */
	struct dsm_spin spin_fault;
	_Atomic unsigned kicks;    /* dsm_wake calls: end a faulting thread's polling */

	struct dsm_home_worker home[DSM_HOME_WORKERS_MAX];
	unsigned nhome;            /* home workers running (DSM_HOME_WORKERS, env) */
	struct dsm_queue agentq;
	struct dsm_sub_outbox subs_out;
	/* INV jobs queued or running at the agent: the handler's fast path
	 * only runs while none is, so every INV of a page is acknowledged
	 * after the revocations before it (written by handlers, which run one
	 * at a time, and the agent) */
	_Atomic unsigned inv_jobs;
	pthread_t agent_thr;
	bool started;
	_Atomic bool stopping;

	struct dsm_stats st;       /* relaxed atomic increments (DSM_INC) */
};

#define DSM_INC(d, f) __atomic_fetch_add(&(d)->st.f, 1, __ATOMIC_RELAXED)
#define DSM_ADD(d, f, v) __atomic_fetch_add(&(d)->st.f, (v), __ATOMIC_RELAXED)

/* dsm_sub.c: subscriber updates, batched (any thread / the agent) */
int dsm_sub_queue(struct dsm *d, uint64_t page, bool on);
void dsm_sub_flush(struct dsm *d);
/* When the outbox's updates are due (0: none waiting). */
uint64_t dsm_sub_due(struct dsm *d);
/* The home's subscriber-node set: node's bit for page (home only). */
void dsm_sub_set(struct dsm *d, uint64_t page, int node, bool on);
void dsm_sub_outbox_destroy(struct dsm *d);

/* dsm.c */
/* The next retry wait: doubled, at most msg_timeout_ns. */
uint64_t dsm_retry_next(const struct dsm *d, uint64_t wait_ns);
uint64_t dsm_spin_budget(struct dsm_spin *s);
/* After a wait that polled with budget (0: did not poll): answered in it? */
void dsm_spin_note(const struct dsm *d, struct dsm_spin *s, uint64_t budget, bool answered);
/* Polls for done(arg) with s's budget and learns from the outcome. */
void dsm_spin_poll(struct dsm *d, struct dsm_spin *s, bool (*done)(void *), void *arg);
/* The same in two halves, for a caller that sends its request in between:
 * begin holds the CQ (tp_poll_hold) from before the send; 0 = no polling. */
uint64_t dsm_spin_begin(struct dsm *d, struct dsm_spin *s);
void dsm_spin_end(struct dsm *d, struct dsm_spin *s, uint64_t budget, bool (*done)(void *),
		  void *arg);
int dsm_home_node(const struct dsm *d, uint64_t page);
uint64_t dsm_dir_slot(const struct dsm *d, uint64_t page);
bool dsm_is_member(const struct dsm *d, int node);
/* GRANT handler: hands a body-carrying grant to a thread waiting for the
 * page (true) or returns false (nobody waits: the agent installs it). */
bool dsm_grant_handoff(struct dsm *d, struct dsm_job *j);
/* d->lock held: a grant of `state` for page was just installed. */
void dsm_pending_granted_locked(struct dsm *d, uint64_t page, uint8_t state);
/* d->lock held: a grant for page was handed to a waiter not yet taking it. */
bool dsm_grant_waiting_locked(struct dsm *d, uint64_t page);
/* d->lock held: a grant for page was not installed because an
 * invalidation came first: a waiter asks again now, not after retx_ns. */
void dsm_pending_overtaken_locked(struct dsm *d, uint64_t page);
/* d->lock held: before page is revoked, wait (at most hold_ns) until a
 * waiter saw the grant it is waiting for; marks the grant lost if none did. */
void dsm_hold_locked(struct dsm *d, uint64_t page, bool downgrade);
/* d->lock held: would dsm_hold_locked wait, or is a grant of the page
 * handed to a waiter that has not taken it yet? */
bool dsm_revoke_must_wait_locked(struct dsm *d, uint64_t page, bool downgrade);

/* queues (dsm_agent.c) */
void dsm_queue_init(struct dsm_queue *q);
void dsm_queue_destroy(struct dsm_queue *q);
void dsm_queue_push(struct dsm_queue *q, struct dsm_job *j);
/* NULL once stopped. */
struct dsm_job *dsm_queue_pop(struct dsm_queue *q);
/* The same, giving up at deadline_ns (CLOCK_MONOTONIC, util_now_ns): NULL
 * then, or on stop (*stopped set). */
struct dsm_job *dsm_queue_pop_until(struct dsm_queue *q, uint64_t deadline_ns, bool *stopped);
/* Blocks until a job is queued (true) or the queue is stopped (false). */
bool dsm_queue_wait(struct dsm_queue *q);
/* The first job, or NULL (empty or stopped); never blocks. */
struct dsm_job *dsm_queue_trypop(struct dsm_queue *q);
void dsm_queue_stop(struct dsm_queue *q);
/* Lock-free peek (a poller's predicate); the answer may be stale. */
bool dsm_queue_nonempty(struct dsm_queue *q);

/* dsm_agent.c: the node side */
void *dsm_agent_main(void *arg);
void dsm_agent_set_handlers(struct dsm *d, bool on);
/* Executes an invalidation / grant for this node (agent or home worker). */
void dsm_agent_revoke(struct dsm *d, uint64_t page, uint32_t version, bool downgrade,
		      bool trace);
/* 0: installed or a duplicate of an installed grant (acknowledge it);
 * -EINPROGRESS: the same page is being installed by another thread, which
 * will acknowledge (drop this copy); other errors: not installed.
 * may_wait = false (a handler): never blocks, and returns -EAGAIN instead
 * of pulling a body. */
int dsm_agent_install(struct dsm *d, uint64_t page, uint32_t version, uint32_t state,
		      int supplier, bool may_wait);
/* Sends ACK{page, version} to node dst (the home that asked). */
void dsm_agent_send_ack(struct dsm *d, int dst, uint64_t page, uint32_t version);
/* The same for an installed grant of `state`: only a Modified grant is
 * acknowledged (the home waits for no read grant, dsm_home.c). */
void dsm_agent_ack_grant(struct dsm *d, int dst, uint64_t page, uint32_t version,
			 uint32_t state);
/* Sends a REQ to the page's home (or queues it locally). */
int dsm_agent_send_req(struct dsm *d, uint64_t page, unsigned want);

/* dsm_home.c: the home side */
void *dsm_home_main(void *arg); /* arg: struct dsm_home_worker */
struct dsm_home_worker *dsm_home_worker_of(struct dsm *d, uint64_t page);
/* ACK handler: page/version from node src acknowledged. */
void dsm_home_ack(struct dsm *d, int src, uint64_t page, uint32_t version);
/* Queues a request at this node's home worker (dedupes queued duplicates). */
void dsm_home_enqueue(struct dsm *d, struct dsm_job *j);
/* REQ handler: runs a remote read request that waits for nobody right
 * here (true), or leaves it to the worker (false). Never blocks. */
bool dsm_home_read_here(struct dsm *d, const struct dsm_job *j);

/* Packing helpers: n = packed size or -EMSGSIZE. */
#define DSM_MSG_MAX 64

#endif
