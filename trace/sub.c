/*
 * Sub-monitors (claim 22): one per vCPU.  Each counts the structures its
 * vCPU derived per (page, kind) in a private map, so the shared table sees
 * one establish on the first structure and one drop on the last.  The
 * sub-monitor also owns the vCPU's mailbox of notifications.
 *
 * Serving notifications.  A note is handled in two steps: acknowledge, and
 * act (invalidate / set a write trap).  At an instruction boundary
 * (tr_sub_serve) a pre-write note is acknowledged at once and acted on
 * after the write; a post-write note is acted on after the write and then
 * acknowledged.  While the vCPU waits inside the trace layer (as a writer
 * waiting for acknowledgements, as a deriver waiting for write traps) it
 * executes no guest instruction, so it may acknowledge everything at once
 * and act at its next boundary (it kicks itself).  Because every wait
 * acknowledges, a pre-write's acknowledgements always arrive, so its write
 * always completes; a post-write's write never waits; hence no cycle of
 * waits can form (docs/trace.md has the argument).
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "trace/trace_int.h"
#include "util/util.h"

/* ---- mailbox ---------------------------------------------------------- */

void tr_mbox_init(struct tr_mbox *mb)
{
	pthread_mutex_init(&mb->mu, NULL);
	pthread_cond_init(&mb->cv, NULL);
	mb->seq = 0;
	mb->head = NULL;
	mb->tail = &mb->head;
	mb->dead = false;
}

void tr_mbox_fini(struct tr_mbox *mb)
{
	pthread_cond_destroy(&mb->cv);
	pthread_mutex_destroy(&mb->mu);
}

void tr_mbox_wake(struct tr_mbox *mb)
{
	pthread_mutex_lock(&mb->mu);
	mb->seq++;
	pthread_cond_broadcast(&mb->cv);
	pthread_mutex_unlock(&mb->mu);
}

static uint64_t mbox_seq(struct tr_mbox *mb)
{
	pthread_mutex_lock(&mb->mu);
	uint64_t s = mb->seq;
	pthread_mutex_unlock(&mb->mu);
	return s;
}

/* Sleep until the mailbox's seq moves past `seen` (or it has notes). */
static uint64_t mbox_sleep(struct tr_mbox *mb, uint64_t seen)
{
	pthread_mutex_lock(&mb->mu);
	while (mb->seq == seen && !mb->head)
		pthread_cond_wait(&mb->cv, &mb->mu);
	seen = mb->seq;
	pthread_mutex_unlock(&mb->mu);
	return seen;
}

bool tr_sub_enqueue(struct tr_sub *s, struct tr_note *n)
{
	pthread_mutex_lock(&s->mb.mu);
	if (s->mb.dead) {
		pthread_mutex_unlock(&s->mb.mu);
		return false;
	}
	n->next = NULL;
	*s->mb.tail = n;
	s->mb.tail = &n->next;
	s->mb.seq++;
	atomic_fetch_add_explicit(&s->inbox_len, 1, memory_order_release);
	pthread_cond_broadcast(&s->mb.cv);
	pthread_mutex_unlock(&s->mb.mu);
	return true;
}

void tr_sub_kick(struct tr_sub *s)
{
	if (atomic_exchange(&s->kicked, 1))
		return; /* one kick outstanding is enough: serve takes everything */
	s->ops->kick(s->vcpu);
}

void tr_note_ack(struct tr_note *n)
{
	if (n->acked)
		return;
	n->acked = true;
	struct tr_event *ev = n->ev;
	/* Counted under the waiter's mutex: a host waiter's mailbox lives on
	 * its stack, and it locks the mutex once more before leaving, so no
	 * ack can still be touching it then. */
	pthread_mutex_lock(&ev->waiter->mu);
	atomic_fetch_add(&ev->acks, 1);
	ev->waiter->seq++;
	pthread_cond_broadcast(&ev->waiter->cv);
	pthread_mutex_unlock(&ev->waiter->mu);
}

static struct tr_note *take_inbox(struct tr_sub *s)
{
	pthread_mutex_lock(&s->mb.mu);
	struct tr_note *l = s->mb.head;
	s->mb.head = NULL;
	s->mb.tail = &s->mb.head;
	atomic_store_explicit(&s->inbox_len, 0, memory_order_relaxed);
	pthread_mutex_unlock(&s->mb.mu);
	return l;
}

/* Moves the inbox to the end of the taken list and counts receipts.  Early
 * (the vCPU waits inside the trace layer): acknowledge everything, and
 * switch write traps right away, because the instruction in progress may
 * still store through the mapping (e.g. the other half of a misaligned
 * store, after a walk for this half); invalidations wait for the boundary
 * since that instruction is allowed to complete with what it has. */
static bool pull_inbox(struct tr_sub *s, bool early)
{
	struct tr_note *l = take_inbox(s), *nx;
	struct tr_note **tail = &s->taken;
	bool any = false;
	while (*tail)
		tail = &(*tail)->next;
	for (; l; l = nx) {
		nx = l->next;
		l->next = NULL;
		if (early && l->ev->type == TR_EV_TRAP) {
			s->ops->set_write_trap(s->vcpu, l->ev->page, true);
			tr_note_ack(l);
			tr_event_put(l->ev);
			free(l);
			continue;
		}
		/* A revocation is acknowledged at a boundary only: here the
		 * instruction in progress may still use the page (a store
		 * after its write_pre wait, an AMO), and once acknowledged
		 * the page may be gone. */
		if (early && l->ev->type != TR_EV_REVOKE)
			tr_note_ack(l);
		*tail = l;
		tail = &l->next;
		any = true;
		if (l->ev->type == TR_EV_REVOKE) {
			TR_STAT_ADD(s->st.revoke_recv, 1);
			if (!l->kinds) {
				TR_STAT_ADD(s->st.revoke_nonsub, 1);
				TR_STAT_ADD(s->st.notify_nonsub, 1);
			}
			continue;
		}
		if (l->self || l->ev->type != TR_EV_WRITE)
			continue;
		if (!l->kinds)
			TR_STAT_ADD(s->st.notify_nonsub, 1);
		for (int k = 0; k < TR_KIND_COUNT; k++)
			if (l->kinds & TR_KBIT(k))
				TR_STAT_ADD(s->st.kind[k].notify_recv, 1);
	}
	return any;
}

void tr_sub_kick_self(struct tr_sub *s)
{
	/* Not coalesced: another thread may have set `kicked` and not yet
	 * called ops->kick, and our next boundary must not miss what we
	 * acknowledged already. */
	atomic_store(&s->kicked, 1);
	s->ops->kick(s->vcpu);
}

void tr_take_early(struct tr_sub *s)
{
	/* What was taken is acted on at the next boundary: make sure there is one. */
	if (atomic_load_explicit(&s->inbox_len, memory_order_acquire) && pull_inbox(s, true))
		tr_sub_kick_self(s);
}

void tr_wait_acks(struct tr_sub *self, struct tr_mbox *mb, struct tr_event *ev)
{
	uint64_t t0 = util_now_ns();
	uint64_t seen = mbox_seq(mb);
	for (;;) {
		if (atomic_load(&ev->acks) >= atomic_load(&ev->needed))
			break;
		if (self)
			tr_take_early(self);
		seen = mbox_sleep(mb, seen);
	}
	if (self)
		TR_STAT_ADD(self->st.writer_wait_ns, util_now_ns() - t0);
}

/* ---- serving at an instruction boundary ------------------------------ */

/* What a note makes the vCPU drop: a revocation drops everything derived
 * from the page (a structure derived after the subscriber snapshot is no
 * better than one derived before), a write what the recipient was told. */
static void note_act(struct tr_sub *s, struct tr_note *n)
{
	struct tr_event *ev = n->ev;
	if (ev->type == TR_EV_TRAP) {
		s->ops->set_write_trap(s->vcpu, ev->page, true);
		return;
	}
	unsigned kinds = ev->type == TR_EV_REVOKE ? ev->kinds : n->kinds;
	if (!kinds)
		return;
	s->ops->invalidate(s->vcpu, kinds, ev->page);
	for (int k = 0; k < TR_KIND_COUNT; k++)
		if (n->kinds & TR_KBIT(k))
			TR_STAT_ADD(s->st.kind[k].rederive, 1);
}

static void note_done(struct tr_sub *s, struct tr_note **pp)
{
	struct tr_note *n = *pp;
	tr_note_ack(n);
	*pp = n->next;
	tr_event_put(n->ev);
	free(n);
	(void)s;
}

/* Handles what can be handled now; returns true when nothing is left. */
static bool serve_pass(struct tr_sub *s)
{
	struct tr_note **pp = &s->taken;
	while (*pp) {
		struct tr_note *n = *pp;
		struct tr_event *ev = n->ev;
		if (ev->type != TR_EV_TRAP) {
			if (ev->proto == TR_PROTO_PRE)
				tr_note_ack(n); /* acknowledged at the boundary; now suspended */
			if (!atomic_load_explicit(&ev->written, memory_order_acquire)) {
				pp = &n->next;
				continue;
			}
		}
		note_act(s, n);
		note_done(s, pp);
	}
	return s->taken == NULL;
}

void tr_sub_serve(struct tr_sub *s)
{
	if (atomic_exchange(&s->kicked, 0))
		TR_STAT_ADD(s->st.kicks, 1);
	uint64_t seen = mbox_seq(&s->mb), t0 = 0;
	for (;;) {
		pull_inbox(s, false);
		if (serve_pass(s))
			break;
		/* A pre-write (or a post-write still writing) holds us. */
		if (!t0)
			t0 = util_now_ns();
		seen = mbox_sleep(&s->mb, seen);
	}
	if (t0)
		TR_STAT_ADD(s->st.suspended_ns, util_now_ns() - t0);
}

void tr_sub_serve_now(struct tr_sub *s)
{
	if (atomic_exchange(&s->kicked, 0))
		TR_STAT_ADD(s->st.kicks, 1);
	/* Not running: no instruction is in progress and none starts before
	 * we return, so acting before a write completes is safe (a rederive
	 * waits for the write, or is notified again by a pre-write re-check). */
	pull_inbox(s, false);
	while (s->taken) {
		note_act(s, s->taken);
		note_done(s, &s->taken);
	}
}

bool tr_sub_pending(const struct tr_sub *s)
{
	return atomic_load_explicit(&s->inbox_len, memory_order_acquire) || s->taken;
}

/* ---- the private (page, kind) map ------------------------------------ */

static uint64_t lkey(uint64_t page, enum tr_kind k) { return page | (uint64_t)(k + 1); }

static size_t lslot(const struct tr_sub *s, uint64_t key)
{
	uint64_t h = key * 0x9E3779B97F4A7C15ull;
	return (size_t)(h >> 20) & (s->map_cap - 1);
}

static struct tr_lmap_ent *lmap_find(struct tr_sub *s, uint64_t key)
{
	for (size_t i = lslot(s, key);; i = (i + 1) & (s->map_cap - 1)) {
		if (s->map[i].key == key)
			return &s->map[i];
		if (!s->map[i].key)
			return NULL;
	}
}

static int lmap_grow(struct tr_sub *s)
{
	size_t ocap = s->map_cap;
	struct tr_lmap_ent *old = s->map;
	struct tr_lmap_ent *nm = calloc(ocap * 2, sizeof(*nm));
	if (!nm)
		return -ENOMEM;
	s->map = nm;
	s->map_cap = ocap * 2;
	for (size_t i = 0; i < ocap; i++) {
		if (!old[i].key)
			continue;
		size_t j = lslot(s, old[i].key);
		while (nm[j].key)
			j = (j + 1) & (s->map_cap - 1);
		nm[j] = old[i];
	}
	free(old);
	return 0;
}

static struct tr_lmap_ent *lmap_insert(struct tr_sub *s, uint64_t key)
{
	if ((s->map_len + 1) * 4 > s->map_cap * 3 && lmap_grow(s))
		return NULL;
	size_t i = lslot(s, key);
	while (s->map[i].key)
		i = (i + 1) & (s->map_cap - 1);
	s->map[i].key = key;
	s->map[i].count = 0;
	s->map_len++;
	return &s->map[i];
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void lmap_remove(struct tr_sub *s, struct tr_lmap_ent *e)
{
	size_t mask = s->map_cap - 1, i = (size_t)(e - s->map), j = i;
	for (;;) {
		j = (j + 1) & mask;
		if (!s->map[j].key)
			break;
		size_t h = lslot(s, s->map[j].key);
		if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j))) {
			s->map[i] = s->map[j];
			i = j;
		}
	}
	s->map[i].key = 0;
	s->map_len--;
}

/* ---- create / destroy ------------------------------------------------- */

int tr_sub_create(struct tr_table *t, unsigned id, const struct tr_vcpu_ops *ops,
		  void *vcpu, struct tr_sub **out)
{
	if (!t || !ops || !ops->kick || !ops->invalidate || !ops->set_write_trap || !out ||
	    id >= t->cfg.max_vcpus)
		return -EINVAL;
	struct tr_sub *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->map_cap = 64;
	s->map = calloc(s->map_cap, sizeof(*s->map));
	if (!s->map) {
		free(s);
		return -ENOMEM;
	}
	s->t = t;
	s->id = id;
	s->ops = ops;
	s->vcpu = vcpu;
	tr_mbox_init(&s->mb);
	struct tr_sub *expect = NULL;
	if (!atomic_compare_exchange_strong(&t->subs[id], &expect, s)) {
		tr_mbox_fini(&s->mb);
		free(s->map);
		free(s);
		return -EEXIST;
	}
	*out = s;
	return 0;
}

unsigned tr_sub_id(const struct tr_sub *s) { return s->id; }

void tr_sub_destroy(struct tr_sub *s)
{
	if (!s)
		return;
	struct tr_table *t = s->t;
	for (size_t i = 0; i < s->map_cap; i++) {
		uint64_t key = s->map[i].key;
		if (!key)
			continue;
		uint64_t page = key & ~(TR_PAGE_SIZE - 1);
		struct tr_stripe *st = tr_stripe_of(t, page);
		pthread_mutex_lock(&st->mu);
		struct tr_page *pe = tr_page_find(t, st, page, false);
		if (pe) {
			tr_page_sub_del(t, pe, s->id, (enum tr_kind)((key & 0xfff) - 1));
			tr_page_maybe_free(t, st, pe);
		}
		pthread_mutex_unlock(&st->mu);
	}
	pthread_mutex_lock(&s->mb.mu);
	s->mb.dead = true;
	pthread_mutex_unlock(&s->mb.mu);
	pull_inbox(s, false);
	for (struct tr_note *n = s->taken, *nx; n; n = nx) {
		nx = n->next;
		tr_note_ack(n);
		tr_event_put(n->ev);
		free(n);
	}
	atomic_store(&t->subs[s->id], NULL);
	tr_mbox_fini(&s->mb);
	free(s->map);
	free(s);
}

void tr_sub_stats(const struct tr_sub *s, struct tr_stats *out)
{
	const struct tr_stats *st = &s->st;
	for (int k = 0; k < TR_KIND_COUNT; k++) {
		out->kind[k].held = TR_STAT_LOAD(st->kind[k].held);
		out->kind[k].established = TR_STAT_LOAD(st->kind[k].established);
		out->kind[k].events = TR_STAT_LOAD(st->kind[k].events);
		out->kind[k].notify_sent = TR_STAT_LOAD(st->kind[k].notify_sent);
		out->kind[k].notify_recv = TR_STAT_LOAD(st->kind[k].notify_recv);
		out->kind[k].rederive = TR_STAT_LOAD(st->kind[k].rederive);
	}
	out->notify_nonsub = TR_STAT_LOAD(st->notify_nonsub);
	out->self_notify = TR_STAT_LOAD(st->self_notify);
	out->trap_sync = TR_STAT_LOAD(st->trap_sync);
	out->suspended_ns = TR_STAT_LOAD(st->suspended_ns);
	out->writer_wait_ns = TR_STAT_LOAD(st->writer_wait_ns);
	out->kicks = TR_STAT_LOAD(st->kicks);
	out->revoke_recv = TR_STAT_LOAD(st->revoke_recv);
	out->revoke_nonsub = TR_STAT_LOAD(st->revoke_nonsub);
	out->revocations = out->revoke_sent = out->revoke_silent = 0;
}

/* ---- deriving and dropping ------------------------------------------- */

/* Called with st->mu held on the first write-kind subscriber of the page:
 * every other vCPU with a TLB entry for it must trap stores before the
 * deriver reads the page.  Returns the event to wait for (or NULL). */
static struct tr_event *start_trap_switch(struct tr_sub *s, struct tr_page *pe,
					  struct tr_sub **kick, int *nkick, bool *self_trap)
{
	struct tr_table *t = s->t;
	struct tr_event *ev = NULL;
	for (unsigned w = 0; w < TR_WORDS; w++) {
		for (uint64_t m = pe->subs[TR_KIND_TLB][w]; m; m &= m - 1) {
			unsigned id = w * 64 + (unsigned)__builtin_ctzll(m);
			struct tr_sub *r = atomic_load(&t->subs[id]);
			if (!r)
				continue;
			if (!ev && !(ev = tr_event_new(pe->page, TR_KBIT(TR_KIND_TLB),
						       TR_PROTO_PRE, TR_EV_TRAP, &s->mb)))
				return NULL; /* -ENOMEM: caller reports */
			bool self = r == s;
			if (self) {
				/* our own mappings: switched by the caller right after */
				*self_trap = true;
				continue;
			}
			struct tr_note *n = tr_note_new(ev, TR_KBIT(TR_KIND_TLB), self);
			if (!n) {
				LOG_ERR("trace", "out of memory: vCPU %u keeps a writable mapping of traced page 0x%llx",
					id, (unsigned long long)pe->page);
				continue;
			}
			if (!self)
				atomic_fetch_add(&ev->needed, 1);
			if (tr_sub_enqueue(r, n)) {
				tr_bit_set(ev->recip, id);
				kick[(*nkick)++] = r;
				if (!self)
					TR_STAT_ADD(s->st.trap_sync, 1);
			} else {
				tr_note_ack(n);
				tr_event_put(ev);
				free(n);
			}
		}
	}
	return ev;
}

static int establish(struct tr_sub *s, enum tr_kind kind, uint64_t page, bool *wt)
{
	struct tr_table *t = s->t;
	struct tr_stripe *st = tr_stripe_of(t, page);
	static __thread struct tr_sub *kick[TR_MAX_VCPUS];
	int nkick = 0;
	struct tr_event *wait_ev = NULL;

	pthread_mutex_lock(&st->mu);
	struct tr_page *pe;
	/* A write in progress on the page: wait until it is done, so that what
	 * the caller reads next is the written contents (serving meanwhile). */
	while ((pe = tr_page_find(t, st, page, true)) && pe->writers) {
		pthread_mutex_unlock(&st->mu);
		tr_take_early(s);
		sched_yield();
		pthread_mutex_lock(&st->mu);
	}
	if (!pe) {
		pthread_mutex_unlock(&st->mu);
		return -ENOMEM;
	}
	bool wk = t->cfg.write_kinds & TR_KBIT(kind);
	bool first_w = wk && tr_page_wcount(t, pe) == 0;
	tr_page_sub_add(t, pe, s->id, kind);
	bool self_trap = false;
	if (first_w && pe->nsubs[TR_KIND_TLB]) {
		struct tr_event *ev = start_trap_switch(s, pe, kick, &nkick, &self_trap);
		if (ev)
			pe->trap_ev = ev; /* the actor's reference moves to the page */
	}
	if (wk && pe->trap_ev) {
		wait_ev = pe->trap_ev;
		atomic_fetch_add(&wait_ev->refs, 1);
	}
	if (wt)
		*wt = tr_page_wcount(t, pe) > 0;
	pthread_mutex_unlock(&st->mu);

	if (self_trap) /* on our own thread, before we read the page */
		s->ops->set_write_trap(s->vcpu, page, true);
	for (int i = 0; i < nkick; i++)
		tr_sub_kick(kick[i]);
	if (!wait_ev)
		return 0;
	if (wait_ev->waiter == &s->mb) {
		tr_wait_acks(s, &s->mb, wait_ev);
	} else {
		/* Another deriver started the switch and is woken by its acks;
		 * this rarer waiter polls (serving its own mailbox). */
		while (atomic_load(&wait_ev->acks) < atomic_load(&wait_ev->needed)) {
			tr_take_early(s);
			sched_yield();
		}
	}
	pthread_mutex_lock(&st->mu);
	pe = tr_page_find(t, st, page, false);
	if (pe && pe->trap_ev == wait_ev) {
		pe->trap_ev = NULL;
		tr_event_put(wait_ev);
	}
	pthread_mutex_unlock(&st->mu);
	tr_event_put(wait_ev);
	return 0;
}

int tr_sub_derived(struct tr_sub *s, enum tr_kind kind, uint64_t gpa, bool *write_traced)
{
	if ((unsigned)kind >= TR_KIND_COUNT)
		return -EINVAL;
	uint64_t page = gpa & ~(TR_PAGE_SIZE - 1);
	struct tr_lmap_ent *e = lmap_find(s, lkey(page, kind));
	if (e && e->count) {
		e->count++;
		if (write_traced)
			*write_traced = tr_page_write_traced(s->t, page);
		return 0;
	}
	int rc = establish(s, kind, page, write_traced);
	if (rc)
		return rc;
	e = lmap_insert(s, lkey(page, kind));
	if (!e) {
		tr_sub_dropped(s, kind, page); /* undo the table side */
		return -ENOMEM;
	}
	e->count = 1;
	TR_STAT_ADD(s->st.kind[kind].held, 1);
	TR_STAT_ADD(s->st.kind[kind].established, 1);
	return 0;
}

int tr_sub_dropped(struct tr_sub *s, enum tr_kind kind, uint64_t gpa)
{
	if ((unsigned)kind >= TR_KIND_COUNT)
		return -EINVAL;
	uint64_t page = gpa & ~(TR_PAGE_SIZE - 1);
	struct tr_lmap_ent *e = lmap_find(s, lkey(page, kind));
	if (e && e->count > 1) {
		e->count--;
		return 0;
	}
	if (e) {
		lmap_remove(s, e);
		TR_STAT_ADD(s->st.kind[kind].held, -1);
	}
	struct tr_table *t = s->t;
	struct tr_stripe *st = tr_stripe_of(t, page);
	pthread_mutex_lock(&st->mu);
	struct tr_page *pe = tr_page_find(t, st, page, false);
	if (pe) {
		tr_page_sub_del(t, pe, s->id, kind);
		tr_page_maybe_free(t, st, pe);
	}
	pthread_mutex_unlock(&st->mu);
	return e ? 0 : -ENOENT;
}
