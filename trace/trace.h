/*
 * trace: write traces on one node (claims 1-13, 21-22).
 *
 * Every structure a vCPU derives from a guest-physical page (a translated
 * block: CODE, a cached page-table walk that read a page-table page: PT, a
 * TLB entry that maps the page: TLB) subscribes that vCPU to a trace on
 * (page, kind).  A trace event on the page (a store or AMO through the
 * write-trap slow path, the walker's A/D update, a device or loader write,
 * the DSM agent taking the page away: tr_revoke) notifies exactly the vCPUs
 * subscribed to the kinds the event concerns; they drop what they derived
 * and rederive on demand.  Nobody else is interrupted.
 *
 * Objects
 * - struct tr_table: one per node.  Trace entries per page, in a hash table
 *   of striped mutexes.  Per page: one subscriber bitmap per kind
 *   (TR_MAX_VCPUS bits), subscriber counts, an in-progress writer count.
 * - struct tr_sub: the sub-monitor of one vCPU (claim 22).  It counts its
 *   own derived structures per (page, kind), establishes the table trace on
 *   the first and drops it on the last, owns the vCPU's mailbox of
 *   notifications and its statistics.
 *
 * Threads and ownership
 * - A tr_sub belongs to its vCPU thread: tr_sub_derived/_dropped/_serve/
 *   _write_begin/_write_end are called only there.  tr_sub_stats may be
 *   called from any thread (relaxed counters).
 * - tr_write / tr_event with actor NULL: any host thread (loader, device).
 * - tr_revoke: any host thread (the DSM agent taking a page away);
 *   tr_revoke_try: any thread, waits for nothing but a stripe mutex.
 * - The vCPU ops (struct tr_vcpu_ops): kick() from any thread; invalidate()
 *   only from tr_sub_serve(), i.e. on the vCPU's own thread at an
 *   instruction boundary; set_write_trap() on the vCPU's own thread from
 *   tr_sub_serve() or from inside a trace call it made (a derive or write
 *   that waits), because the instruction in progress may still store.
 *
 * Locking (see docs/trace.md): stripe mutex -> mailbox mutex, never the
 * other way.  No trace lock is held while an op or a write callback runs,
 * except that tr_write's callback runs with the page marked "being written"
 * (establishing a trace on that page waits for it).  Every wait inside the
 * trace layer keeps serving the waiting vCPU's own notifications, which is
 * what makes two writers hitting each other's traced pages deadlock-free.
 *
 * Memory: a page entry is 128 bytes (3 bitmaps of 256 bits + counts), shared
 * by all kinds and vCPUs tracing the page; a sub-monitor holds 16 bytes per
 * (page, kind) it derived from in an open-addressed map.
 */
#ifndef SPANVM_TRACE_H
#define SPANVM_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TR_MAX_VCPUS 256
#define TR_PAGE_SHIFT 12
#define TR_PAGE_SIZE (1ull << TR_PAGE_SHIFT)

enum tr_kind { TR_KIND_CODE = 0, TR_KIND_PT = 1, TR_KIND_TLB = 2, TR_KIND_COUNT = 3 };
#define TR_KBIT(k) (1u << (k))
#define TR_KINDS_ALL 7u

/* Pre-write (claim 10): subscribers acknowledge at an instruction boundary
 * and stay suspended, then the write is done.  Post-write (claims 11-12):
 * the write is done, the writer idles until every subscriber acknowledged. */
enum tr_proto { TR_PROTO_POST = 0, TR_PROTO_PRE = 1 };

struct tr_cfg {
	unsigned max_vcpus;                 /* 1..TR_MAX_VCPUS */
	enum tr_proto proto[TR_KIND_COUNT]; /* per kind; an event uses PRE if any kind it hits does */
	unsigned write_kinds;               /* kinds a write to the page concerns (CODE|PT);
					     * 0: no write traces, subscriptions only (revocation) */
	bool broadcast;                     /* baseline: notify every vCPU, not only subscribers */
	/* Optional: page gained its first subscriber of any kind (traced) or
	 * lost its last (!traced): the node-wide subscription (node/vm_dsm.c
	 * tells the page's DSM home).  Called in order per page, under the
	 * page's stripe mutex: must not block nor call into trace/. */
	void (*on_page)(void *arg, uint64_t page, bool traced);
	void *on_page_arg;
};

/* Defaults: CODE post, PT post, TLB pre; write_kinds = CODE|PT; no broadcast. */
void tr_cfg_default(struct tr_cfg *cfg);
/* Sets one option from text ("code=pre", "pt=post", "tlb=pre",
 * "broadcast=1", "writes=0" for no write traces).  Returns 0, or -EINVAL
 * with a message in err (size n). */
int tr_cfg_set(struct tr_cfg *cfg, const char *opt, char *err, size_t n);
const char *tr_kind_name(enum tr_kind k);

/* How the trace layer reaches a vCPU (bound to the engine by node/vm_trace.c). */
struct tr_vcpu_ops {
	/* Make the vCPU call tr_sub_serve() at its next instruction boundary
	 * (and wake it from wfi).  Any thread; must not block on the vCPU. */
	void (*kick)(void *vcpu);
	/* Drop every structure of these kinds (TR_KBIT mask) derived from
	 * page gpa_page.  vCPU thread, from tr_sub_serve() only. */
	void (*invalidate)(void *vcpu, unsigned kinds, uint64_t gpa_page);
	/* Make stores to gpa_page take the write-trap slow path (on) or not.
	 * vCPU thread: from tr_sub_serve() or from a trace call it is in. */
	void (*set_write_trap)(void *vcpu, uint64_t gpa_page, bool on);
};

struct tr_table;
struct tr_sub;

int tr_table_create(const struct tr_cfg *cfg, struct tr_table **out);
/* All subs must be destroyed first. */
void tr_table_destroy(struct tr_table *t);

/* Registers vCPU `id` (0..max_vcpus-1).  -EINVAL bad id, -EEXIST taken. */
int tr_sub_create(struct tr_table *t, unsigned id, const struct tr_vcpu_ops *ops,
		  void *vcpu, struct tr_sub **out);
/* Drops every trace the sub still holds and acknowledges anything pending.
 * The vCPU must no longer run. */
void tr_sub_destroy(struct tr_sub *s);
unsigned tr_sub_id(const struct tr_sub *s);

/*
 * The vCPU derived one structure of `kind` from page gpa (any address in
 * the page).  Call it BEFORE reading the page's contents for the
 * derivation: when it returns, the trace is established, i.e. every vCPU
 * that had a writable mapping of the page now traps stores to it (CODE and
 * PT), so no store can slip between the read and the trace.  For TLB,
 * *write_traced (may be NULL) says whether the new entry must trap stores.
 * Returns 0, -EINVAL (kind) or -ENOMEM.
 */
int tr_sub_derived(struct tr_sub *s, enum tr_kind kind, uint64_t gpa, bool *write_traced);
/* The vCPU dropped one structure of `kind` derived from page gpa. */
int tr_sub_dropped(struct tr_sub *s, enum tr_kind kind, uint64_t gpa);
/* Instruction boundary: handle every pending notification (acknowledge,
 * stay suspended while a pre-write is in progress, invalidate, set write
 * traps).  Returns when the vCPU may execute guest code again. */
void tr_sub_serve(struct tr_sub *s);
/* The same for a vCPU that is not running (its thread stopped, or another
 * thread works on its behalf): everything is acted on and acknowledged at
 * once, without waiting for writes in progress (nothing of it runs until
 * they are done: rederiving waits for them). */
void tr_sub_serve_now(struct tr_sub *s);
/* Cheap: is there anything for tr_sub_serve to do? */
bool tr_sub_pending(const struct tr_sub *s);

/*
 * A trapped store/AMO of len bytes at gpa by this vCPU (the engine's write
 * slow path, or the walker's A/D update).  begin runs the protocol up to the
 * point where the store may be performed; the caller performs it; end
 * finishes (post-write: waits for the acknowledgements).  At most two pages
 * (a misaligned store).  *still_traced (may be NULL) is false when no trace
 * of write kinds is left on the page: the caller may stop trapping it.
 */
int tr_sub_write_begin(struct tr_sub *s, uint64_t gpa, size_t len);
void tr_sub_write_end(struct tr_sub *s, bool *still_traced);

/* A write by anybody (actor NULL: a host thread such as the loader or a
 * device; else the acting vCPU's sub).  fn(arg) performs the write of
 * [gpa, gpa+len) while the protocol says it may.  Any length. */
typedef void (*tr_write_fn)(void *arg, uint64_t gpa, size_t len);
int tr_write(struct tr_table *t, struct tr_sub *actor, uint64_t gpa, size_t len,
	     tr_write_fn fn, void *arg);

/* A trace event of the given kinds on one page that is not a plain write
 * (the DSM agent uses tr_revoke instead, which is acknowledged at
 * instruction boundaries only).
 * fn (may be NULL) runs when the protocol allows the page to change. */
int tr_event(struct tr_table *t, struct tr_sub *actor, uint64_t gpa, unsigned kinds,
	     tr_write_fn fn, void *arg);

/*
 * Revocation (issue 5): page gpa is leaving this node or losing write
 * permission (the DSM changed its state BEFORE calling this).  Every vCPU
 * subscribed to the page in any kind acknowledges at an instruction
 * boundary (never inside a trace wait, where an instruction may be half
 * done) and stays suspended until the event ends; it then drops everything
 * it derived from the page before it runs again.  Only subscribers are
 * interrupted.  Pre-write whatever the configured protocols.  Any host
 * thread (actor NULL).  *notified (may be NULL): vCPUs interrupted.
 * Returns 0, -EINVAL or -ENOMEM.
 */
int tr_revoke(struct tr_table *t, uint64_t gpa, unsigned *notified);
/*
 * The same when no vCPU subscribes to the page: then nothing has to be
 * acknowledged and it returns 0 at once (counted as a tr_revoke that
 * notified nobody); -EWOULDBLOCK when some vCPU subscribes (call tr_revoke,
 * which may wait).  Never waits beyond the page's stripe mutex, so the
 * DSM may call it on the thread that reads the invalidation.  Correct
 * because the DSM changed the page state first: a vCPU that subscribes
 * after this check finds the new state in its page_get.
 */
int tr_revoke_try(struct tr_table *t, uint64_t gpa);

/* Queries (any thread). */
bool tr_page_write_traced(struct tr_table *t, uint64_t gpa);
/* Subscribed vCPUs of page gpa for the kinds in mask, as a bitmap of
 * TR_MAX_VCPUS bits (words = TR_MAX_VCPUS/64).  Returns the number of
 * vCPUs set. */
int tr_page_subscribers(struct tr_table *t, uint64_t gpa, unsigned kinds,
			uint64_t bitmap[TR_MAX_VCPUS / 64]);
/* Which kinds have any subscriber on page gpa (mask; 0 = untraced). */
unsigned tr_page_kinds(struct tr_table *t, uint64_t gpa);

/* Statistics.  Plain counters; the owner thread writes, anyone reads. */
struct tr_kind_stats {
	uint64_t held;          /* traces (page, kind) held now */
	uint64_t established;   /* traces established (first structure on a page) */
	uint64_t events;        /* trace events this vCPU caused (as the acting vCPU) */
	uint64_t notify_sent;   /* notifications this vCPU's events sent */
	uint64_t notify_recv;   /* notifications this vCPU received */
	uint64_t rederive;      /* invalidations done because of a notification */
};
struct tr_stats {
	struct tr_kind_stats kind[TR_KIND_COUNT];
	uint64_t notify_nonsub;   /* notifications to a vCPU not subscribed: must stay 0 */
	uint64_t self_notify;     /* events where the acting vCPU was a subscriber (claim 8) */
	uint64_t trap_sync;       /* write-trap switches requested of other vCPUs */
	uint64_t suspended_ns;    /* time suspended waiting for another vCPU's write */
	uint64_t writer_wait_ns;  /* time the acting vCPU idled for acknowledgements */
	uint64_t kicks;           /* times this vCPU was interrupted by the trace layer */
	/* revocations (tr_revoke): as recipient, per vCPU; as revoker, host */
	uint64_t revoke_recv;     /* revocation notes received */
	uint64_t revoke_nonsub;   /* ... while not subscribed to the page (also in
				   * notify_nonsub): must stay 0 */
	uint64_t revocations;     /* host: tr_revoke calls */
	uint64_t revoke_sent;     /* host: vCPUs interrupted by them */
	uint64_t revoke_silent;   /* host: calls that interrupted nobody */
};
void tr_sub_stats(const struct tr_sub *s, struct tr_stats *out);
/* Host-side writers (actor NULL) and the number of live page entries. */
void tr_table_stats(struct tr_table *t, struct tr_stats *host, uint64_t *pages);
/* Writes {"config":..., "vcpus":[...], "host":..., "totals":...} as one
 * JSON object to f (no trailing newline).  Returns 0 or -EIO. */
int tr_stats_write_json(struct tr_table *t, FILE *f);

#endif
