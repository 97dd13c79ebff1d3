/*
 * dsm: distributed shared memory for one VM whose vCPUs run on several
 * nodes.  Guest RAM is coherent at 4 KiB page granularity: single writer /
 * multiple readers, write-invalidate, Ivy's distributed manager with a home
 * node per page (see docs/dsm.md for the protocol and its model in
 * dsm/model/dsm.pml).
 *
 * Every node maps the whole guest RAM (sparse) and registers it with
 * transport/ at offset 0 = guest-physical ram_base.  Per node and page the
 * DSM keeps a state (Invalid / Shared / Modified) and the version of its
 * copy: 5 bytes per guest page, lazily touched.  The home of a page keeps
 * its directory entry (owner, copyset, subscriber-node set, version, and
 * two u32 hot-page counters): 32 bytes per page it is home of, also lazily
 * touched.
 *
 * Objects and threads (one struct dsm per node):
 * - vCPU threads (or any host thread) call dsm_page_try (lock-free) and, on
 *   a miss, dsm_fault, which blocks until the page was granted.  While it
 *   waits it calls the caller's idle callback at least every millisecond
 *   (and whenever dsm_wake is called): that is where a vCPU serves the
 *   invalidations posted to it, so a vCPU blocked on page A never holds up
 *   the revocation of page B (no distributed deadlock).
 * - The home worker threads (4 per node; a page always on the same one)
 *   serialise the directory transactions of the pages this node is home of,
 *   per page: a worker invalidates/downgrades copies (all INVs of a write at
 *   once) and grants, waiting for each acknowledgement (ACK messages
 *   matched per worker by page, version and sender).
 * - The agent worker thread executes what the homes ask of this node:
 *   revocations (through ops->revoke, which waits for local vCPUs), grant
 *   installation (pulling the body with tp_rma_read from the supplier) and
 *   subscriber-set updates.  It never waits for a home, so homes never wait
 *   in a cycle.
 * - transport's progress thread runs the message handlers: they validate,
 *   count and queue; they never block.
 *
 * Locking: d->lock guards the pending-fault table and the fault condvar;
 * each worker queue has its own mutex; a page's directory entry is touched
 * only by its home worker (plus the atomic subscriber bitmap and the relaxed
 * hot-page counters).  Page state and
 * version bytes are written by the agent worker (or a home worker for
 * local grants) under d->lock and read lock-free by vCPUs.  No DSM lock is
 * held while an ops callback runs or while waiting on the network.
 *
 * Contract with the local users (node/vm_dsm.c, tests): the DSM changes a
 * page's state FIRST and then calls ops->revoke; revoke returns only when
 * no local user can still access the page with more than the new
 * permissions through anything obtained before the state change.  Users
 * therefore re-check the state (dsm_page_try) at a point revoke waits for.
 *
 * Errors: 0 or -errno.  -EFAULT address outside guest RAM, -ECANCELED the
 * DSM is stopping, -EINVAL bad configuration (message logged).
 */
#ifndef SPANVM_DSM_H
#define SPANVM_DSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct dsm;
struct tp;

#define DSM_PAGE_SHIFT 12
#define DSM_PAGE_SIZE (1ull << DSM_PAGE_SHIFT)
#define DSM_MAX_NODES 64

/* Access / permissions (same values as cpu/cpu.h CPU_PERM_R/W). */
enum { DSM_R = 1, DSM_W = 2 };
/* Page states. */
enum dsm_state { DSM_INVALID = 0, DSM_SHARED = 1, DSM_MODIFIED = 2 };

enum dsm_home_policy {
	DSM_HOME_INTERLEAVE = 0, /* page p: nodes[p % nnodes] */
	DSM_HOME_BLOCK = 1,      /* contiguous runs of block_pages per node */
};

struct dsm_local_ops {
	/* Page gpa_page goes to `perms` (DSM_R: downgrade to Shared, 0: gone).
	 * trace: the home counted this node as holding trace subscribers.
	 * Must return once no local user may access the page with more than
	 * perms; returns how many local users (vCPUs) it had to interrupt.
	 * Runs on the agent worker (or home worker) thread, no DSM lock held. */
	int (*revoke)(void *arg, uint64_t gpa_page, unsigned perms, bool trace);
	/* Optional, the invalidation fast path: the same when it needs to wait
	 * for nobody (returns 0), else -EWOULDBLOCK without doing anything (the
	 * agent then calls revoke).  Runs on the thread that read the INV (the
	 * progress thread or a poller): must never block.  NULL: every
	 * revocation goes through the agent. */
	int (*revoke_try)(void *arg, uint64_t gpa_page, unsigned perms, bool trace);
};

struct dsm_cfg {
	struct tp *tp;              /* started or not; dsm_start sets the handlers */
	int node_id;
	const int *nodes;           /* every member's id (this node included) */
	unsigned nnodes;            /* 1..DSM_MAX_NODES; ids 0..DSM_MAX_NODES-1 */
	void *ram;                  /* guest RAM as registered with tp (offset 0) */
	uint64_t ram_base;          /* guest-physical address of ram[0] */
	uint64_t ram_size;          /* bytes, multiple of DSM_PAGE_SIZE */
	enum dsm_home_policy policy;
	uint64_t block_pages;       /* DSM_HOME_BLOCK: pages per run (0 = ram/nnodes) */
	const struct dsm_local_ops *ops; /* NULL: nothing local to revoke */
	void *ops_arg;
	uint64_t msg_timeout_ns;    /* longest wait per try of a home INV/GRANT or a body RMA
				     * read (the first tries wait less, doubling up to it:
				     * docs/dsm.md "Retries"); 0 = 200 ms */
	uint64_t retx_ns;           /* requester retransmission interval; 0 = 20 ms */
	uint64_t hold_ns;           /* max. hold of a fresh grant nobody saw yet; 0 = 1 ms */
	uint64_t spin_ns;           /* max. budget of a waiter polling the CQ itself (adaptive,
				     * see docs/dsm.md); 0 = env SPANVM_DSM_SPIN_NS or 500 us;
				     * 1 = never poll */
};

/* Parses "interleave" | "block".  0 or -EINVAL. */
int dsm_policy_parse(const char *s, enum dsm_home_policy *out);

int dsm_create(const struct dsm_cfg *cfg, struct dsm **out);
/* Installs the message handlers and starts the worker threads (home
 * workers and the agent). */
int dsm_start(struct dsm *d);
/* Stops the workers and fails waiting faults with -ECANCELED; removes the
 * handlers.  Call before tp_destroy. */
void dsm_stop(struct dsm *d);
void dsm_destroy(struct dsm *d);

/* Home node of the page containing gpa (-EFAULT outside RAM). */
int dsm_home_of(const struct dsm *d, uint64_t gpa);

/* Lock-free: the page holding gpa is present here with `access`; *host
 * (may be NULL) gets the host address of gpa.  0, -EAGAIN or -EFAULT. */
int dsm_page_try(struct dsm *d, uint64_t gpa, unsigned access, void **host);

/* Waits to be told something (a kick) or 1 ms; see dsm_fault. */
struct dsm_waiter {
	void (*idle)(void *arg); /* NULL: nothing to serve */
	void *arg;
};

/*
 * Obtains the page holding gpa with `access` (DSM_R or DSM_W): asks its
 * home (once per page for all local faulting threads) and waits until it
 * was granted.  On return the page WAS present; it may have been revoked
 * again already, so callers loop on dsm_page_try.  0, -EFAULT, -ECANCELED.
 */
int dsm_fault(struct dsm *d, uint64_t gpa, unsigned access, const struct dsm_waiter *w);
/* Wakes every thread waiting in dsm_fault so it runs its idle callback. */
void dsm_wake(struct dsm *d);

/*
 * Host-side copies through the coherence protocol (loader, devices, tests):
 * each page is acquired (Modified for writes) and copied under ops-free
 * re-checks.  Any thread that is not a vCPU.  0, -EFAULT or -ECANCELED.
 */
int dsm_write(struct dsm *d, uint64_t gpa, const void *buf, size_t len);
int dsm_read(struct dsm *d, uint64_t gpa, void *buf, size_t len);

/* Cross-node traces: the first local trace on the page was established
 * (on) or the last one dropped (off).  Queued to the page's home; returns
 * at once.  Any thread. */
int dsm_trace_sub(struct dsm *d, uint64_t gpa, bool on);

/* Local state of a page (tests, diagnostics). */
int dsm_page_state(struct dsm *d, uint64_t gpa, enum dsm_state *st, uint32_t *version);

/*
 * Hot pages (diagnostics, `--stats-file`): the home counts per page the
 * transactions it started (requests served; retransmitted or stale
 * requests it skipped are not counted) and the write grants that moved
 * ownership to another node (8 of the 32 directory bytes per home page).
 * Fills out[0..*count) with this node's home pages that had requests, the
 * n with the most requests first (ties: lower gpa first).  Any thread;
 * the counters are read without stopping the home, so a concurrent
 * transaction may or may not be included.  Untouched (never resident)
 * parts of the sparse directory are skipped, not read.  0 or -EINVAL.
 */
struct dsm_hot_page {
	uint64_t gpa;      /* guest-physical address of the page */
	uint64_t requests; /* transactions the home ran for it */
	uint64_t moves;    /* ownership moves between nodes */
};
int dsm_hot_pages(struct dsm *d, unsigned n, struct dsm_hot_page *out, unsigned *count);

/* DSM messages dropped, process-wide, because they reached a node after
 * its dsm_stop or before its dsm_start (logged at DBG: harmless, the
 * requester retransmits). */
uint64_t dsm_late_dropped(void);
/* Installs those quiet handlers on tp before this node's DSM exists: a
 * node that got the cluster's Start first may already ask for pages. */
void dsm_handlers_not_started(struct tp *tp);

struct dsm_stats {
	/* requester side */
	uint64_t read_faults, write_faults;   /* dsm_fault calls that had to ask */
	uint64_t coalesced;                   /* faults that joined a pending request */
	uint64_t req_sent, req_retx;
	uint64_t fault_wait_ns;               /* total time in dsm_fault */
	/* agent side */
	uint64_t grants, grants_dup;          /* installed / recognised as duplicates */
	uint64_t bodies_rma, bodies_zero, body_bytes;
	uint64_t inv_recv, downgrade_recv, inv_stale; /* stale: version already newer */
	uint64_t revoke_interrupts;           /* local users interrupted by revocations */
	uint64_t trace_notified;              /* revocations flagged as trace events */
	uint64_t unflagged_interrupts;            /* users interrupted by an unflagged revocation */
	uint64_t sub_sent;                    /* subscriber updates sent (after merging) */
	uint64_t sub_msgs;                    /* ... in this many messages (dsm_sub.c) */
	/* home side */
	uint64_t home_txns, home_skipped, home_dup_req;
	uint64_t inv_sent, inv_trace_sent, inv_silent_sent, downgrade_sent;
	uint64_t grant_sent, msg_retries;
	uint64_t sub_updates;
	/* bad input */
	uint64_t rx_bad;                      /* undecodable or out-of-range messages dropped */
	/* grant hold (write-write / read-write livelock) */
	uint64_t hold_waits;                  /* revocations that waited for a waiter to see a grant */
	uint64_t hold_expired;                /* ... in vain (hold_ns passed) */
	uint64_t req_lost;                    /* requests resent because their grant was revoked unseen */
	uint64_t body_retries;                /* body RMA reads re-posted after a timeout */
	uint64_t inv_fast;                    /* INVs done and acknowledged on the thread that
					       * read them (nothing local to wait for) */
	uint64_t home_regrants;               /* read grants sent again to a copyset member
					       * that said it holds no copy */
	uint64_t grants_overtaken;            /* grants discarded because an invalidation
					       * with a newer version came first */
	uint64_t home_fast;                   /* read requests the REQ handler ran itself
					       * (no downgrade to wait for) */
	uint64_t inv_waited_install;          /* INVs that let a grant's install finish first */
};
void dsm_stats(struct dsm *d, struct dsm_stats *out);
/* One JSON object, no trailing newline.  0 or -EIO. */
int dsm_stats_write_json(struct dsm *d, FILE *f);

/*
 * Audit of the final state (dsm/dsm_audit.c; issue 6, checked on the host
 * by deploy/netns/dsm-audit-check).  dsm_audit_write dumps, as text:
 *   audit node=ID nodes=A,B,C base=0xRAMBASE pages=N busy=0|1 [why=WHAT,..]
 *   L PAGE S|M VERSION HOME        every page not Invalid on this node
 *   D PAGE OWNER EXCL COPYSET VER  home pages with an owner or a copy
 *                                  (OWNER -1: none; COPYSET ids a,b or -)
 *   end
 * PAGE is the page index from ram_base.  busy=1: a request, transaction or
 * install was still in flight (why= names it), so the dump is not a final
 * state.  Call after the local users stopped (best after dsm_stop, before
 * dsm_destroy); any thread.  0, -EINVAL or -EIO.
 *
 * dsm_audit_lost: the pages this node is home of whose every valid copy
 * is on a node in `failed` (bitmap of node ids): their content is gone.
 * Up to max guest-physical addresses in gpas, *n = how many in all.
 * Pages homed on a failed node are not covered (their directory is gone);
 * a zero page read only by failed nodes is listed (its first reader is
 * recorded as its owner, like a writer).
 * Any thread; exact once the home worker can no longer change those
 * entries (every transaction on them needs the failed node's answer).
 */
int dsm_audit_write(struct dsm *d, FILE *f);
int dsm_audit_lost(struct dsm *d, uint64_t failed, uint64_t *gpas, size_t max, size_t *n);
/*
 * The same, and more exact while the other survivors still run their DSM
 * (before any of them stops): read grants are not acknowledged, so a
 * surviving copyset member may hold nothing (its grant lost or still on
 * its way when the owner failed).  For the pages whose owner failed, each
 * surviving member is asked (DSM_MSG_HELD, timeout_ns per question); a page
 * none of them holds is listed too.  A member that does not answer
 * confirms nothing.  Not from a handler.  0, -EINVAL or -ENOMEM.
 */
int dsm_audit_lost_asked(struct dsm *d, uint64_t failed, uint64_t timeout_ns, uint64_t *gpas,
			 size_t max, size_t *n);
/* The pages of this home's transactions in flight that wait for a node in
 * `failed` (they may be lost: the directory lags until they end), at most
 * one per home worker: the first max in gpas, all counted in *n.
 * 0 or -EINVAL. */
int dsm_audit_inflight(struct dsm *d, uint64_t failed, uint64_t *gpas, size_t max, size_t *n);
/* Waits until nothing is in flight here (as busy= in the dump) for 50 ms
 * in a row, up to timeout_ms: call on every node after the users went idle
 * and before any node stops its DSM, so the dumps are one final state.
 * 0, -ETIMEDOUT (still busy), -EINVAL. */
int dsm_audit_settle(struct dsm *d, unsigned timeout_ms);

#endif
