/*
 * transport: the data plane between nodes, over libfabric RDM endpoints.
 * The only code in spanvm that includes <rdma/...>.
 *
 * One struct tp per node: an endpoint, an address vector, one completion
 * queue, a pool of posted receive buffers and registered send buffers,
 * a table of peers (node id -> fabric address, remote memory key/base) and
 * a table of handlers by message type.  Every message carries the envelope
 * of proto/data.proto (type, epoch, src, seq, reply_to, payload) inside a
 * proto frame; the receiver validates frame and envelope and drops, with a
 * counter and a rate-limited log line, anything corrupted, oversized, from
 * an unknown node, from an older epoch or of a type without a handler.
 *
 * Typical use (node/):
 *     tp_create(&cfg, &tp);  tp_local_addr(tp, ...);  tp_mr_register(tp, ram, ...)
 *     -> send addr/key/base to the coordinator, receive the membership table
 *     tp_peer_add(tp, id, addr, len, key, base) for each peer;  tp_epoch_set()
 *     tp_handler_set(tp, type, fn, arg) ...;  tp_start(tp)
 *     tp_send / tp_request / tp_rma_read / tp_rma_write from any thread
 *     tp_destroy(tp)
 *
 * Threads:
 * - The progress thread (started by tp_start) owns the completion queue and
 *   runs every handler, one at a time.  Handlers must not block for long and
 *   must not call tp_request, tp_rma_read or tp_rma_write (those wait for the
 *   progress thread: -EDEADLK); tp_send and tp_reply are fine.
 * - With cfg.inline_progress there is no thread: the owner calls
 *   tp_progress() (tests; deterministic), and tp_request / tp_rma_* drive
 *   progress themselves while they wait.
 * - tp_send, tp_request, tp_reply, tp_rma_*, tp_fault_set, tp_stats,
 *   tp_epoch_set are callable from any thread.  While it waits, a caller of
 *   tp_request / tp_rma_* may poll the completion queue itself (it takes the
 *   progress lock with trylock) to save a thread wake-up; messages that are
 *   not its own completions are still handed to the progress thread.
 * - tp_create, tp_mr_register, tp_peer_add, tp_peer_remove, tp_handler_set
 *   are set-up calls: make them before tp_start or from one thread.
 *   (tp_peer_add/remove are also safe later; they take the peer lock.)
 *
 * Locking (order: progress lock -> peer lock -> pool/pending/defer locks):
 * the progress lock says who may read the CQ (and serialises handlers);
 * the peer lock guards the peer table, fault state and send backlogs; the
 * others guard free lists and queues.  No tp lock is held while a handler
 * runs except the progress lock.  Details: docs/transport.md.
 *
 * Errors: 0 or -errno.  -EINVAL bad argument, -ENOENT unknown peer/node,
 * -EMSGSIZE message above cfg.max_msg, -ETIMEDOUT, -ECONNREFUSED peer cut or
 * removed, -ENODEV provider not available (message names the provider),
 * -EPROTO malformed input.  libfabric -FI_E* codes are mapped to -errno.
 */
#ifndef SPANVM_TP_H
#define SPANVM_TP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tp;

#define TP_ADDR_MAX 256             /* bytes of a fabric address blob */
#define TP_MAX_MSG_DEFAULT (64 * 1024) /* payload bytes */

struct tp_cfg {
	int node_id;           /* 0..65535, this node's id (envelope src) */
	const char *provider;  /* NULL: env SPANVM_PROVIDER, else FI_PROVIDER, else "tcp;ofi_rxm" */
	const char *bind_addr; /* IPv4/hostname to bind, NULL = provider default */
	const char *bind_port; /* NULL or "0" = ephemeral */
	bool inline_progress;  /* true: no progress thread, caller runs tp_progress() */
	size_t max_msg;        /* max payload per message, 0 = TP_MAX_MSG_DEFAULT */
	unsigned rx_depth;     /* posted receive buffers, 0 = 64 */
	uint64_t spin_ns;      /* busy-poll budget: 0 = env SPANVM_TP_SPIN_NS, else
				* 2 ms for a waiting caller, 200 us for the progress
				* thread after traffic; non-zero sets both */
	uint64_t grace_ns;     /* the progress thread's grace after a hand-off
				* (tp_handed_off), 0 = 100 us */
};

/* A received message; valid only during the handler call. */
struct tp_msg {
	uint32_t type;
	int src;           /* sender node id (validated: a known peer) */
	uint64_t epoch;
	uint64_t seq;      /* sender's sequence number (same on retransmissions) */
	uint64_t reply_to; /* 0 unless this is a reply */
	const void *payload;
	size_t len;
};

/* Handlers run on the progress thread (or inside tp_progress). */
typedef void (*tp_handler_fn)(void *arg, const struct tp_msg *msg);

/* Send-side fault injection for one peer; all zero = no faults. */
struct tp_fault {
	unsigned drop_pct;  /* 0..100: probability a message is silently dropped */
	unsigned dup_pct;   /* 0..100: probability a message is sent twice */
	bool reorder;       /* hold one message back and send it after the next */
	uint64_t delay_ns;  /* delay every message by this much */
	bool cut;           /* drop everything (partition); RMA fails -ECONNREFUSED */
	uint64_t seed;      /* PRNG seed for drop/dup decisions (0 = fixed default) */
};

struct tp_stats {
	uint64_t tx_msgs, tx_bytes, rx_msgs, rx_bytes;
	uint64_t rx_bad_frame;    /* bad magic/version/length or envelope unpack */
	uint64_t rx_bad_envelope; /* zero seq, src unknown, type out of range */
	uint64_t rx_stale_epoch;  /* epoch below ours */
	uint64_t rx_no_handler;
	uint64_t rx_stale_reply;  /* reply to no pending request (late or duplicate) */
	uint64_t rx_errors;       /* CQ errors on receives (e.g. truncation) */
	uint64_t tx_errors;       /* CQ errors on sends */
	uint64_t tx_backlogged;   /* sends queued because the provider said EAGAIN */
	uint64_t req_retransmits, req_timeouts;
	uint64_t rma_reads, rma_writes, rma_errors, rma_timeouts;
	uint64_t fault_dropped, fault_duplicated, fault_reordered, fault_delayed, fault_cut;
	uint64_t grace_naps;      /* graces after a hand-off (tp_watch_cq) */
	uint64_t grace_cut;       /* of those, ended early by a thread asking for the CQ */
};

int tp_create(const struct tp_cfg *cfg, struct tp **out);
/* Orderly: stops the progress thread, fails waiting callers, closes fi objects. */
void tp_destroy(struct tp *tp);
int tp_node_id(const struct tp *tp);
/* Name of the provider actually opened (e.g. "tcp;ofi_rxm"); owned by tp. */
const char *tp_provider_name(const struct tp *tp);

/* Fabric address blob of the local endpoint.  *len in: capacity; out: size. */
int tp_local_addr(struct tp *tp, void *buf, size_t *len);

/*
 * Registers [base, base+len) for remote read and write (one region per tp;
 * a second call returns -EEXIST).  *key and *remote_base go into the
 * membership table; peers pass them to tp_peer_add.  remote_base is the
 * region's virtual address when the provider wants FI_MR_VIRT_ADDR and 0
 * otherwise; either way tp_rma_* take offsets into the region.
 */
int tp_mr_register(struct tp *tp, void *base, size_t len, uint64_t *key, uint64_t *remote_base);

/* Adds (or replaces) a peer.  key/base from the peer's tp_mr_register. */
int tp_peer_add(struct tp *tp, int node_id, const void *addr, size_t addrlen, uint64_t key,
		uint64_t base);
/* Forgets a peer (failed node): its pending requests fail with -ECONNREFUSED. */
int tp_peer_remove(struct tp *tp, int node_id);

/* Messages with an envelope epoch below this are dropped.  Starts at 0. */
void tp_epoch_set(struct tp *tp, uint64_t epoch);

/* type 1..65535; fn NULL removes.  Types 1..63 are transport's (PING is built in). */
int tp_handler_set(struct tp *tp, uint32_t type, tp_handler_fn fn, void *arg);
/* Same, but fn may also run on a thread waiting in tp_poll_wait, possibly
 * at the same time as handlers on the progress thread: it must be
 * thread-safe and must not block (no tp_request / tp_rma_*). */
int tp_handler_set_any(struct tp *tp, uint32_t type, tp_handler_fn fn, void *arg);

/* Copies payload and returns; delivery is best effort (faults, dead peer). */
int tp_send(struct tp *tp, int dst, uint32_t type, const void *payload, size_t len);

/*
 * Blocking RPC: sends, then waits up to timeout_ns for the reply whose
 * reply_to equals the request's seq; retransmits the same seq up to
 * `retries` more times.  *reply_len in: capacity of reply; out: reply size
 * (-EMSGSIZE if it did not fit, with *reply_len = the size needed).
 * Handlers must therefore tolerate a request seen twice (dedupe on src+seq
 * or make it idempotent).  Not callable from a handler (-EDEADLK).
 */
int tp_request(struct tp *tp, int dst, uint32_t type, const void *req, size_t len, void *reply,
	       size_t *reply_len, uint64_t timeout_ns, int retries);
/* Same, also returns the reply's message type. */
int tp_request_ex(struct tp *tp, int dst, uint32_t type, const void *req, size_t len,
		  uint32_t *reply_type, void *reply, size_t *reply_len, uint64_t timeout_ns,
		  int retries);

/* Sends a reply to req (from a handler or later; req fields may be copied). */
int tp_reply(struct tp *tp, const struct tp_msg *req, uint32_t type, const void *payload,
	     size_t len);

/* Round trip of a built-in PING to peer; *rtt_ns out (may be NULL). */
int tp_ping(struct tp *tp, int peer, uint64_t timeout_ns, uint64_t *rtt_ns);

/*
 * One-sided RMA against the peer's registered region, blocking until
 * complete or timeout_ns.  remote_off + len must lie within the peer's
 * region (checked only by the provider/peer).  local may be any memory:
 * if it is inside our own registered region it is used directly, else a
 * registered bounce buffer is used when the provider wants FI_MR_LOCAL.
 * Not callable from a handler (-EDEADLK).
 */
int tp_rma_read(struct tp *tp, int peer, uint64_t remote_off, void *local, size_t len,
		uint64_t timeout_ns);
int tp_rma_write(struct tp *tp, int peer, uint64_t remote_off, const void *local, size_t len,
		 uint64_t timeout_ns);

/*
 * For a thread that waits for something a message will bring without
 * being a tp_request caller (a DSM fault waiting for its grant, a home
 * waiting for an acknowledgement): polls the CQ itself, as tp_request's
 * caller does, until done(arg) is true, budget_ns passed, or it noticed it
 * was descheduled (CPUs oversubscribed: spinning would keep the peer off
 * them).  Messages whose handler was set with tp_handler_set_any run on
 * this thread (that is the hop it saves); others go to the progress
 * thread, which naps while a caller polls and is woken when this returns.
 * done() is called often, without any tp lock held; it must be cheap.
 * 0 = done, -EAGAIN = stopped polling (wait some other way), -ESHUTDOWN,
 * -EDEADLK from a handler, -EINVAL.  Without a progress thread (inline
 * mode, or before tp_start) it only checks done() and returns -EAGAIN.
 */
int tp_poll_wait(struct tp *tp, bool (*done)(void *arg), void *arg, uint64_t budget_ns);

/*
 * For a caller about to send a request and then tp_poll_wait for its
 * answer: tp_poll_hold before the send keeps the progress thread off the
 * CQ already during the send (on loopback the answer can arrive before
 * tp_send returns, and the progress thread would read it and hand it over
 * instead of the caller reading it itself); tp_poll_release after the
 * wait gives the CQ back (answered: without waking the progress thread,
 * as tp_poll_wait does).  Any thread; calls must pair.
 */
void tp_poll_hold(struct tp *tp);
void tp_poll_release(struct tp *tp, bool answered);

/*
 * Called by a handler that handed work to another thread (queued a job,
 * woke a waiter): the progress thread then does not spin after this pass
 * but sleeps, so on an oversubscribed machine the woken thread gets the
 * CPU at once instead of after the spin (measured on 2 busy cores: every
 * such hand-off cost the full 200 us spin).  Harmless elsewhere.
 */
void tp_handed_off(struct tp *tp);

/*
 * After such a hand-off the progress thread leaves the CQ to this node's
 * own threads for a grace period (cfg.grace_ns, 100 us) instead of
 * sleeping on the CQ's wait fd: the woken thread usually polls the CQ
 * soon (a vCPU faulting again on the page just invalidated, a home worker
 * waiting for acknowledgements), and with the fd armed its first send's
 * completion would wake the progress thread, which on a busy host takes
 * the CPU from that very thread (measured: +7 to +20 us per read fault).
 * A thread about to sleep until the network brings it something, without
 * polling, calls tp_watch_cq first: it ends a grace in progress (one
 * eventfd write) so its answer is not left for the grace's end.  Cheap
 * when no grace is on (one atomic load).  Any thread.
 */
void tp_watch_cq(struct tp *tp);

/*
 * Returns once no handler that started before the call is still running
 * (every handler runs under the progress lock: this takes it once).  For
 * a layer that swapped its handlers and is about to free their arg.
 * -EDEADLK from a handler or while this thread holds the lock, -EINVAL.
 */
int tp_handlers_quiesce(struct tp *tp);

/* Switches the send-side fault hooks for one peer; any thread, any time. */
int tp_fault_set(struct tp *tp, int peer, const struct tp_fault *f);

/* Starts the progress thread (no-op with inline_progress). */
int tp_start(struct tp *tp);
/*
 * One progress pass (inline mode, or before tp_start): reads the CQ, runs
 * handlers, sends due fault-delayed/backlogged messages.  Returns the number
 * of items handled, -EBUSY once the progress thread runs or from a handler.
 */
int tp_progress(struct tp *tp);

void tp_stats(struct tp *tp, struct tp_stats *out);

#endif
