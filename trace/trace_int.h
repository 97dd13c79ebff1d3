/*
 * trace internals shared by table.c (page entries, queries), sub.c
 * (sub-monitors, mailboxes, serving) and event.c (writes and events).
 *
 * Lock order: stripe->mu, then a mailbox mu.  A mailbox mu is never held
 * while taking another mailbox mu or a stripe mu (acks are sent after the
 * own mailbox lock is released).
 */
#ifndef SPANVM_TRACE_INT_H
#define SPANVM_TRACE_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "trace/trace.h"

#define TR_WORDS (TR_MAX_VCPUS / 64)
#define TR_STRIPES 1024
#define TR_BUCKETS_PER_STRIPE 64
#define TR_HINTS 4096

/* Per-page trace state.  Every field is guarded by its stripe's mutex. */
struct tr_page {
	uint64_t page;                          /* page-aligned gpa */
	struct tr_page *next;                   /* bucket chain */
	uint64_t subs[TR_KIND_COUNT][TR_WORDS]; /* subscribed vCPUs per kind */
	uint16_t nsubs[TR_KIND_COUNT];
	uint16_t writers;                       /* writes between begin and end */
	struct tr_event *trap_ev;               /* write-trap switch in progress */
};

struct tr_stripe {
	pthread_mutex_t mu;
	struct tr_page *bucket[TR_BUCKETS_PER_STRIPE];
} __attribute__((aligned(64)));

/* WRITE: a write or page event (tr_write, tr_event); TRAP: a write-trap
 * switch; REVOKE: tr_revoke (acknowledged at a boundary only). */
enum tr_ev_type { TR_EV_WRITE = 0, TR_EV_TRAP = 1, TR_EV_REVOKE = 2 };

/*
 * One trace event (or one write-trap switch).  Allocated by the acting
 * thread; each note holds a reference, the actor holds one.
 */
struct tr_event {
	uint64_t page;
	unsigned kinds;
	enum tr_proto proto;
	enum tr_ev_type type;
	atomic_int written;          /* the write is complete (set by the actor) */
	atomic_uint acks;            /* acknowledgements received */
	atomic_uint needed;          /* acknowledgements required (stripe mu while growing) */
	atomic_int refs;
	struct tr_mbox *waiter;      /* the actor's mailbox, woken by acks */
	uint64_t recip[TR_WORDS];    /* recipients (stripe mu; frozen once written) */
	uint64_t rk[TR_KIND_COUNT][TR_WORDS]; /* (recipient, kind) pairs notified */
};

struct tr_note {
	struct tr_note *next;
	struct tr_event *ev;
	unsigned kinds;   /* kinds this recipient is subscribed to on the page */
	bool acked;
	bool self;        /* the recipient is the actor itself (claim 8) */
};

/* A vCPU's (or a host writer's) mailbox.  seq counts wake-ups so that
 * waiters never miss one (read seq, check condition, sleep while seq same). */
struct tr_mbox {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t seq;
	struct tr_note *head, **tail;
	bool dead;
};

struct tr_lmap_ent {
	uint64_t key;   /* page | (kind + 1); 0 = empty */
	uint32_t count;
	uint32_t pad;
};

/* Owner-thread statistics stored with relaxed atomics so readers are safe. */
#define TR_STAT_ADD(field, v) __atomic_store_n(&(field), (field) + (v), __ATOMIC_RELAXED)
#define TR_STAT_LOAD(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

struct tr_wr {
	struct tr_event *ev;
	uint64_t page;
	bool self_note;
};

struct tr_sub {
	struct tr_table *t;
	unsigned id;
	const struct tr_vcpu_ops *ops;
	void *vcpu;
	struct tr_mbox mb;
	atomic_int kicked;          /* a kick is outstanding (coalesces kicks) */
	atomic_int inbox_len;       /* notes waiting in mb (cheap pending check) */
	struct tr_note *taken;      /* owner: notes taken, not yet fully handled */
	struct tr_lmap_ent *map;    /* owner: (page, kind) -> structures derived */
	size_t map_cap, map_len;
	struct tr_wr wr[2];         /* owner: the write between begin and end */
	int nwr;
	struct tr_stats st;         /* owner writes (TR_STAT_ADD), anyone reads */
};

struct tr_table {
	struct tr_cfg cfg;
	struct tr_stripe *stripes;
	atomic_uint *hint;                    /* write-traced pages per hash slot */
	_Atomic(struct tr_sub *) subs[TR_MAX_VCPUS];
	pthread_mutex_t host_mu;              /* guards host stats */
	struct tr_stats host;
	atomic_ullong npages;
};

/* table.c */
struct tr_stripe *tr_stripe_of(struct tr_table *t, uint64_t page);
unsigned tr_hint_of(uint64_t page);
struct tr_page *tr_page_find(struct tr_table *t, struct tr_stripe *st, uint64_t page, bool create);
void tr_page_maybe_free(struct tr_table *t, struct tr_stripe *st, struct tr_page *pe);
unsigned tr_page_wcount(const struct tr_table *t, const struct tr_page *pe);
void tr_page_sub_add(struct tr_table *t, struct tr_page *pe, unsigned id, enum tr_kind k);
void tr_page_sub_del(struct tr_table *t, struct tr_page *pe, unsigned id, enum tr_kind k);

static inline void tr_bit_set(uint64_t *bm, unsigned id) { bm[id / 64] |= 1ull << (id % 64); }
static inline void tr_bit_clr(uint64_t *bm, unsigned id) { bm[id / 64] &= ~(1ull << (id % 64)); }
static inline bool tr_bit_test(const uint64_t *bm, unsigned id)
{
	return (bm[id / 64] >> (id % 64)) & 1;
}

/* sub.c */
void tr_mbox_init(struct tr_mbox *mb);
void tr_mbox_fini(struct tr_mbox *mb);
void tr_mbox_wake(struct tr_mbox *mb);
/* Queue a note for sub s (stripe mu held).  Returns false when s is dead
 * (the note is then acknowledged by the caller after unlocking). */
bool tr_sub_enqueue(struct tr_sub *s, struct tr_note *n);
void tr_sub_kick(struct tr_sub *s);
void tr_sub_kick_self(struct tr_sub *s);
void tr_note_ack(struct tr_note *n);
/* Waits until ev has `needed` acks (after_written: and is written),
 * acknowledging the waiter's own notifications meanwhile (self may be NULL
 * for host threads, then mb is a private mailbox). */
void tr_wait_acks(struct tr_sub *self, struct tr_mbox *mb, struct tr_event *ev);
/* While waiting on something else: take the own inbox and acknowledge it
 * (handled at the next tr_sub_serve). */
void tr_take_early(struct tr_sub *s);

/* event.c */
struct tr_event *tr_event_new(uint64_t page, unsigned kinds, enum tr_proto proto,
			      enum tr_ev_type type, struct tr_mbox *waiter);
void tr_event_put(struct tr_event *ev);
struct tr_note *tr_note_new(struct tr_event *ev, unsigned kinds, bool self);
/* Signals (wakes) every recipient of a written event. */
void tr_event_signal(struct tr_table *t, struct tr_event *ev);

#endif
