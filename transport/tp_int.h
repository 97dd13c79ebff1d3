/*
 * transport internals shared by tp.c (objects), tp_msg.c (messages, faults),
 * tp_progress.c (completion queue, waiting) and tp_rma.c.  See tp.h for the
 * thread and locking model; this file says which field belongs to whom.
 */
#ifndef SPANVM_TP_INT_H
#define SPANVM_TP_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include "proto/proto.h"
#include "transport/tp.h"
#include "util/util.h"

/* transport/tp_dl.c: libfabric's real functions, loaded on first use (see
 * there why); every other transport file calls them by their usual names. */
int tp_fi_getinfo(uint32_t version, const char *node, const char *service, uint64_t flags,
		  const struct fi_info *hints, struct fi_info **info);
int tp_fi_fabric(struct fi_fabric_attr *attr, struct fid_fabric **fabric, void *context);
void tp_fi_freeinfo(struct fi_info *info);
struct fi_info *tp_fi_dupinfo(const struct fi_info *info);
const char *tp_fi_strerror(int errnum);
#ifndef TP_DL_NO_REDIRECT
#define fi_getinfo tp_fi_getinfo
#define fi_fabric tp_fi_fabric
#define fi_freeinfo tp_fi_freeinfo
#define fi_dupinfo tp_fi_dupinfo
#define fi_strerror tp_fi_strerror
#endif

#define TP_SUBSYS "tp"
/* util fault site: the k-th set-up step of tp_create fails (unwinding tests). */
#define TP_FAULT_CREATE 200
#define TP_FAULT(rc) (util_fault_hit(TP_FAULT_CREATE) ? (rc) : 0)
#define TP_MAX_TYPE 65536u
#define TP_ENV_OVERHEAD 64u /* envelope fields around the payload, upper bound */
#define TP_TX_SLOT_PAYLOAD 4096u
#define TP_TX_SLOTS 128u
#define TP_BOUNCE_SIZE (64u * 1024)
#define TP_BOUNCE_SLOTS 16u
#define TP_PREEMPTED_NS (100ull * 1000) /* a spin-loop gap this long = descheduled */
/* The progress thread's nap while callers poll the CQ: a poller that got
 * its answer leaves without waking it, so this bounds how long the CQ may
 * go unwatched after that; also the default grace after a hand-off. */
#define TP_NAP_NS (100ull * 1000)
#define TP_BACKLOG_MAX 4096 /* queued sends per peer before -ENOBUFS */
#define TP_REORDER_HOLD_NS (20ull * 1000 * 1000) /* a held message leaves after 20 ms */

/* Every libfabric operation context starts with this (FI_CONTEXT2 room). */
enum tp_op_kind { TP_OP_RX = 1, TP_OP_TX, TP_OP_RMA };

struct tp_op {
	struct fi_context2 fictx; /* must be first: libfabric's context area */
	enum tp_op_kind kind;
	struct tp_op *next;       /* free list / deferred queue / held queue link */
	/* Released by tp_op_posting right before the fi_* call, acquired
	 * when the completion is handled.  The provider orders the two
	 * through its own queues, but libfabric is not built for
	 * ThreadSanitizer: without this edge, a completion handled on
	 * another thread than the poster looked like a race on the op. */
	_Atomic unsigned posted;  /* only its release/acquire matters */
};

static inline void tp_op_posting(struct tp_op *op)
{
	atomic_store_explicit(&op->posted, 1, memory_order_release); /* a plain store on x86 */
}

/* A message buffer (receive slot, send slot or large send). */
struct tp_buf {
	struct tp_op op;
	char *data;
	size_t cap;               /* bytes available at data */
	size_t len;               /* bytes used (tx: frame length; rx: received) */
	void *desc;               /* fi_mr_desc when FI_MR_LOCAL, else NULL */
	struct fid_mr *own_mr;    /* large send registered on the fly */
	bool pooled;              /* slot of a slab (else malloc'd) */
	int dst;                  /* tx: destination node (for held messages) */
	uint64_t release_ns;      /* tx held by a fault hook: when to send */
	void *env;                /* rx: unpacked Envelope while deferred */
	struct tp_buf *big_next;  /* large sends: link in tp->big_list */
};

/* An RMA in flight; freed by whoever sees it last (waiter or completion). */
struct tp_rma_op {
	struct tp_op op;
	_Atomic int state;        /* TP_RMA_PENDING -> DONE, or ABANDONED by waiter */
	int rc;                   /* written by the completer before DONE */
	struct tp_buf *bounce;    /* bounce slot or NULL */
};
enum { TP_RMA_PENDING = 0, TP_RMA_DONE, TP_RMA_ABANDONED };

/* A registered slab of equal slots with a free list (tx slots, bounce). */
struct tp_pool {
	pthread_mutex_t lock;     /* guards free */
	struct tp_buf *bufs;      /* array of nslots */
	char *mem;
	struct fid_mr *mr;
	struct tp_buf *free;
	unsigned nslots;
};

struct tp_peer {
	int id;
	fi_addr_t fi_addr;
	uint64_t key, base;
	/* Fault state; peer lock. */
	struct tp_fault fault;
	uint64_t rng;
	struct tp_buf *held_head, *held_tail; /* delayed or backlogged sends, in order */
	int held_count;
	struct tp_buf *reorder_held;          /* one message held back */
};

/* A tp_request waiting for its reply; lives on the waiter's stack. */
struct tp_pending {
	struct tp_pending *next;
	uint64_t seq;
	int dst;
	_Atomic int done;         /* set by the completer under pending_lock */
	int rc;
	uint32_t reply_type;
	void *reply;
	size_t reply_cap, reply_len;
};

struct tp_handler {
	_Atomic(tp_handler_fn) fn;
	_Atomic(void *) arg;
	_Atomic bool any_thread;  /* may also run on a tp_poll_wait caller */
};

struct tp {
	struct tp_cfg cfg;        /* immutable after create */
	char provider[64];
	uint64_t wait_spin_ns;    /* caller busy-poll budget per wait */
	uint64_t prog_spin_ns;    /* progress thread spin after traffic */
	uint64_t grace_ns;        /* off the CQ after a hand-off (tp_watch_cq) */

	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_av *av;
	struct fid_cq *cq;
	struct fid_ep *ep;
	int cq_fd;                /* FI_WAIT_FD descriptor or -1 */
	bool mr_local, mr_virt, mr_prov_key;
	_Atomic uint64_t next_key; /* requested MR keys when not FI_MR_PROV_KEY */

	/* Registered guest region (set-up time). */
	struct fid_mr *region_mr;
	char *region_base;
	size_t region_len;
	void *region_desc;

	size_t max_frame;         /* header + envelope overhead + max_msg */
	struct tp_buf *rx;        /* rx_depth slots */
	char *rx_mem;
	struct fid_mr *rx_mr;
	struct tp_pool tx_pool, bounce_pool;

	pthread_mutex_t peer_lock;
	struct tp_peer **peers;   /* indexed by node id; peer_lock */
	int npeers_cap;

	struct tp_handler *handlers; /* TP_MAX_TYPE entries */
	_Atomic uint64_t epoch, next_seq;

	pthread_mutex_t pending_lock;
	struct tp_pending *pending;

	/* Progress: whoever holds prog_lock may read the CQ. */
	pthread_mutex_t prog_lock;
	pthread_mutex_t defer_lock;
	struct tp_op *defer_head, *defer_tail; /* rx bufs for the progress thread */
	int evfd;                 /* wakes the progress thread */
	int epfd;
	_Atomic int pollers;      /* callers polling the CQ while they wait */
	_Atomic bool handed_off;  /* a handler woke another thread: skip the spin */
	/* Until then the progress thread naps off the CQ after a hand-off
	 * (0: no grace).  Set by the progress thread; tp_watch_cq and any
	 * eventfd wake-up end it. */
	_Atomic uint64_t grace_until;
	uint64_t dispatched;      /* handlers run; written by the dispatching thread only */
	pthread_mutex_t wait_lock;
	pthread_cond_t wait_cv;   /* sleeping waiters; broadcast on completion */
	_Atomic int sleepers;
	_Atomic bool stopping;
	pthread_t thread;
	_Atomic bool thread_started;

	/* Large sends registered on the fly, for cleanup at destroy. */
	pthread_mutex_t big_lock;
	struct tp_buf *big_list;  /* large sends in flight, via big_next; big_lock */
	struct tp_rma_op *abandoned; /* timed-out RMA ops awaiting completion; big_lock */
	_Atomic uint64_t last_warn_ns; /* rate limit for per-message warnings */

	struct tp_stats st;       /* atomic increments (__atomic builtins) */
};

#define TP_STAT_INC(tp, field) __atomic_fetch_add(&(tp)->st.field, 1, __ATOMIC_RELAXED)
#define TP_STAT_ADD(tp, field, v) __atomic_fetch_add(&(tp)->st.field, (v), __ATOMIC_RELAXED)

/* tp.c */
int tp_errno(int fi_rc);
int tp_mr_reg_local(struct tp *tp, void *buf, size_t len, struct fid_mr **mr, void **desc);
struct tp_peer *tp_peer_get_locked(struct tp *tp, int id);
bool tp_peer_known(struct tp *tp, int id);

/* tp_pool (tp.c) */
int tp_pool_init(struct tp *tp, struct tp_pool *p, unsigned nslots, size_t slot_size,
		 enum tp_op_kind kind);
void tp_pool_fini(struct tp_pool *p);
struct tp_buf *tp_pool_get(struct tp_pool *p);
void tp_pool_put(struct tp_pool *p, struct tp_buf *b);

/* tp_msg.c */
int tp_rx_post(struct tp *tp, struct tp_buf *b);
void tp_rx_complete(struct tp *tp, struct tp_buf *b, bool progress_thread);
void tp_rx_dispatch(struct tp *tp, struct tp_buf *b);
/* True on a thread inside tp_poll_wait (it runs any-thread handlers). */
bool tp_polling_any(struct tp *tp);
void tp_tx_complete(struct tp *tp, struct tp_buf *b, int err);
void tp_tx_free(struct tp *tp, struct tp_buf *b);
int tp_faults_flush(struct tp *tp, uint64_t now, uint64_t *next_release);
void tp_pending_fail_all(struct tp *tp, int dst, int rc);
void tp_builtin_handlers(struct tp *tp);
/* Test hook: sends frame bytes as they are (no envelope, no fault hooks). */
int tp_send_raw(struct tp *tp, int dst, const void *frame, size_t len);
void tp_rx_release(struct tp_buf *b); /* frees the unpacked envelope */

/* tp_progress.c */
int tp_poll_cq(struct tp *tp, bool progress_thread);
int tp_wait_flag(struct tp *tp, _Atomic int *flag, int want_min, uint64_t deadline_ns);
void tp_wake_waiters(struct tp *tp);
void tp_wake_progress(struct tp *tp);
int tp_progress_start(struct tp *tp);
void tp_progress_stop(struct tp *tp);
void tp_deferred_drop(struct tp *tp);
bool tp_in_handler(struct tp *tp);
void tp_run_handler(struct tp *tp, tp_handler_fn fn, void *arg, const struct tp_msg *m);
/* Posts with retry on -FI_EAGAIN (progressing meanwhile); returns -errno. */
int tp_post_retry(struct tp *tp, ssize_t (*post)(struct tp *, void *), void *arg);

/* tp_rma.c */
void tp_rma_complete(struct tp *tp, struct tp_rma_op *op, int err);
void tp_rma_cleanup(struct tp *tp); /* after the endpoint is closed */

#endif
