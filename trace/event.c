/*
 * Trace events: writes to traced pages and other page events (claims 9-12).
 *
 * begin (stripe mutex held): snapshot the subscribers of the event's kinds,
 * queue a note for each and kick it (the "IPI" of claim 13; the "fault" is
 * the engine's write-trap slow path that called us).  Pre-write: wait,
 * unlocked and serving, until every subscriber acknowledged at a boundary,
 * then re-check under the mutex for subscribers that arrived meanwhile
 * (they are notified and waited for too).  Then mark the page "being
 * written" (writers++), which holds off new derivations, and unlock.
 * The caller writes.  end: writers--, the event is marked written and its
 * recipients are woken; post-write: the writer idles until every
 * subscriber has invalidated and acknowledged.
 *
 * Notes are queued before the write even for post-write so that a
 * subscriber which learns of the write through a third party and executes
 * fence.i/sfence.vma finds the notification already waiting; it then waits
 * for the write to finish before acting (that wait is a memory copy long).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "trace/trace_int.h"
#include "util/util.h"

struct tr_event *tr_event_new(uint64_t page, unsigned kinds, enum tr_proto proto,
			      enum tr_ev_type type, struct tr_mbox *waiter)
{
	struct tr_event *ev = calloc(1, sizeof(*ev));
	if (!ev)
		return NULL;
	ev->page = page;
	ev->kinds = kinds;
	ev->proto = proto;
	ev->type = type;
	ev->waiter = waiter;
	atomic_init(&ev->refs, 1);
	return ev;
}

void tr_event_put(struct tr_event *ev)
{
	if (atomic_fetch_sub(&ev->refs, 1) == 1)
		free(ev);
}

struct tr_note *tr_note_new(struct tr_event *ev, unsigned kinds, bool self)
{
	struct tr_note *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->ev = ev;
	n->kinds = kinds;
	n->self = self;
	n->acked = self; /* the actor does not acknowledge itself */
	atomic_fetch_add(&ev->refs, 1);
	return n;
}

void tr_event_signal(struct tr_table *t, struct tr_event *ev)
{
	for (unsigned w = 0; w < TR_WORDS; w++)
		for (uint64_t m = ev->recip[w]; m; m &= m - 1) {
			struct tr_sub *r = atomic_load(&t->subs[w * 64 + __builtin_ctzll(m)]);
			if (r)
				tr_mbox_wake(&r->mb);
		}
}

/* What one begin/end did, for the statistics of the acting vCPU or host. */
struct acct {
	enum tr_ev_type type;
	unsigned ev_kinds;
	uint64_t sent[TR_KIND_COUNT];
	uint64_t self;
	unsigned recipients; /* vCPUs notified, the actor excluded */
};

static void acct_apply(struct tr_table *t, struct tr_sub *actor, const struct acct *a)
{
	struct tr_stats *st = actor ? &actor->st : &t->host;
	if (!actor)
		pthread_mutex_lock(&t->host_mu);
	if (a->type == TR_EV_REVOKE) { /* kept apart from the write statistics */
		TR_STAT_ADD(st->revocations, 1);
		TR_STAT_ADD(st->revoke_sent, a->recipients);
		TR_STAT_ADD(st->revoke_silent, a->recipients == 0);
		if (!actor)
			pthread_mutex_unlock(&t->host_mu);
		return;
	}
	for (int k = 0; k < TR_KIND_COUNT; k++) {
		if (a->ev_kinds & TR_KBIT(k))
			TR_STAT_ADD(st->kind[k].events, 1);
		if (a->sent[k])
			TR_STAT_ADD(st->kind[k].notify_sent, a->sent[k]);
	}
	if (a->self)
		TR_STAT_ADD(st->self_notify, a->self);
	if (!actor)
		pthread_mutex_unlock(&t->host_mu);
}

static enum tr_proto proto_of(const struct tr_table *t, unsigned kinds)
{
	for (int k = 0; k < TR_KIND_COUNT; k++)
		if ((kinds & TR_KBIT(k)) && t->cfg.proto[k] == TR_PROTO_PRE)
			return TR_PROTO_PRE;
	return TR_PROTO_POST;
}

/* Notifies subscribers of pe not yet in ev (stripe mutex held).  Returns
 * -ENOMEM, or 0 with *evp possibly created and kick[] extended. */
static int notify_new(struct tr_table *t, struct tr_sub *actor, struct tr_mbox *mb,
		      struct tr_page *pe, unsigned kinds, struct tr_event **evp,
		      struct tr_sub **kick, int *nkick, struct acct *a)
{
	uint64_t want[TR_WORDS] = { 0 };
	for (int k = 0; k < TR_KIND_COUNT; k++)
		if (kinds & TR_KBIT(k))
			for (int w = 0; w < TR_WORDS; w++)
				want[w] |= pe->subs[k][w];
	for (int k = 0; k < TR_KIND_COUNT; k++)
		if ((kinds & TR_KBIT(k)) && pe->nsubs[k])
			a->ev_kinds |= TR_KBIT(k);
	if (t->cfg.broadcast) /* the baseline of bench/trace (c) */
		for (unsigned id = 0; id < t->cfg.max_vcpus; id++)
			if (atomic_load_explicit(&t->subs[id], memory_order_relaxed))
				tr_bit_set(want, id);
	for (unsigned w = 0; w < TR_WORDS; w++) {
		/* New recipients, or recipients with a kind they were not told
		 * about: a pre-write re-check finds vCPUs that derived while it
		 * waited, possibly ones it already notified for another kind. */
		uint64_t m = want[w] & ~(*evp ? (*evp)->recip[w] : 0);
		for (int k = 0; *evp && k < TR_KIND_COUNT; k++)
			if (kinds & TR_KBIT(k))
				m |= pe->subs[k][w] & ~(*evp)->rk[k][w];
		for (; m; m &= m - 1) {
			unsigned id = w * 64 + (unsigned)__builtin_ctzll(m);
			struct tr_sub *r = atomic_load(&t->subs[id]);
			if (!r)
				continue;
			enum tr_proto proto = a->type == TR_EV_REVOKE ? TR_PROTO_PRE
								       : proto_of(t, kinds);
			if (!*evp && !(*evp = tr_event_new(pe->page, kinds, proto, a->type, mb)))
				return -ENOMEM;
			unsigned sk = 0;
			for (int k = 0; k < TR_KIND_COUNT; k++)
				if ((kinds & TR_KBIT(k)) && tr_bit_test(pe->subs[k], id) &&
				    !tr_bit_test((*evp)->rk[k], id))
					sk |= TR_KBIT(k);
			bool self = r == actor;
			struct tr_note *n = tr_note_new(*evp, sk, self);
			if (!n)
				return -ENOMEM;
			if (!self)
				atomic_fetch_add(&(*evp)->needed, 1);
			if (!tr_sub_enqueue(r, n)) {
				tr_note_ack(n);
				tr_event_put(*evp);
				free(n);
				continue;
			}
			tr_bit_set((*evp)->recip, id);
			for (int k = 0; k < TR_KIND_COUNT; k++)
				if (sk & TR_KBIT(k))
					tr_bit_set((*evp)->rk[k], id);
			kick[(*nkick)++] = r;
			for (int k = 0; k < TR_KIND_COUNT; k++)
				if (sk & TR_KBIT(k))
					a->sent[k] += !self;
			a->self += self;
			a->recipients += !self;
		}
	}
	return 0;
}

static void kick_all(struct tr_sub **kick, int *from, int n, struct tr_sub *actor)
{
	for (int i = *from; i < n; i++)
		if (kick[i] != actor) /* the actor serves itself at its next boundary */
			tr_sub_kick(kick[i]);
	*from = n;
}

static int wr_begin(struct tr_table *t, struct tr_sub *actor, struct tr_mbox *mb,
		    uint64_t page, unsigned kinds, enum tr_ev_type type, struct tr_wr *w,
		    unsigned *notified)
{
	struct tr_stripe *st = tr_stripe_of(t, page);
	struct tr_sub *kick[TR_MAX_VCPUS];
	int nkick = 0, kicked = 0, rc = 0;
	struct acct a = { .type = type };
	struct tr_event *ev = NULL;
	struct tr_page *pe;

	pthread_mutex_lock(&st->mu);
	for (;;) {
		pe = tr_page_find(t, st, page, true);
		rc = pe ? notify_new(t, actor, mb, pe, kinds, &ev, kick, &nkick, &a) : -ENOMEM;
		if (rc || !ev || ev->proto != TR_PROTO_PRE ||
		    atomic_load(&ev->acks) >= atomic_load(&ev->needed))
			break;
		pthread_mutex_unlock(&st->mu);
		kick_all(kick, &kicked, nkick, actor);
		tr_wait_acks(actor, mb, ev);
		pthread_mutex_lock(&st->mu);
	}
	if (!rc)
		pe->writers++;
	else if (ev)
		atomic_store(&ev->written, 1); /* nothing will be written: release everyone */
	pthread_mutex_unlock(&st->mu);
	kick_all(kick, &kicked, nkick, actor);
	acct_apply(t, actor, &a);
	if (rc) {
		LOG_ERR("trace", "out of memory notifying subscribers of page 0x%llx",
			(unsigned long long)page);
		if (ev) {
			tr_event_signal(t, ev);
			tr_event_put(ev);
		}
		return rc;
	}
	w->ev = ev;
	w->page = page;
	w->self_note = a.self != 0;
	if (notified)
		*notified += a.recipients;
	return 0;
}

static bool wr_end(struct tr_table *t, struct tr_sub *actor, struct tr_mbox *mb, struct tr_wr *w)
{
	struct tr_stripe *st = tr_stripe_of(t, w->page);
	pthread_mutex_lock(&st->mu);
	struct tr_page *pe = tr_page_find(t, st, w->page, false);
	bool still = false;
	if (pe) { /* always: writers > 0 keeps it */
		pe->writers--;
		still = tr_page_wcount(t, pe) > 0;
		tr_page_maybe_free(t, st, pe);
	}
	if (w->ev)
		atomic_store_explicit(&w->ev->written, 1, memory_order_release);
	pthread_mutex_unlock(&st->mu);
	if (w->ev) {
		tr_event_signal(t, w->ev);
		if (w->ev->proto == TR_PROTO_POST) {
			tr_wait_acks(actor, mb, w->ev);
			/* the subscribers have dropped their structures by now */
			still = tr_page_write_traced(t, w->page);
		}
		tr_event_put(w->ev);
		w->ev = NULL;
	}
	if (w->self_note && actor)
		tr_sub_kick_self(actor);
	return still;
}

int tr_sub_write_begin(struct tr_sub *s, uint64_t gpa, size_t len)
{
	if (len == 0 || len > TR_PAGE_SIZE || s->nwr)
		return -EINVAL;
	uint64_t p0 = gpa & ~(TR_PAGE_SIZE - 1), p1 = (gpa + len - 1) & ~(TR_PAGE_SIZE - 1);
	int rc = wr_begin(s->t, s, &s->mb, p0, s->t->cfg.write_kinds, TR_EV_WRITE, &s->wr[0],
			  NULL);
	if (rc)
		return rc;
	s->nwr = 1;
	if (p1 != p0) {
		rc = wr_begin(s->t, s, &s->mb, p1, s->t->cfg.write_kinds, TR_EV_WRITE, &s->wr[1],
			      NULL);
		if (rc) {
			tr_sub_write_end(s, NULL);
			return rc;
		}
		s->nwr = 2;
	}
	return 0;
}

void tr_sub_write_end(struct tr_sub *s, bool *still_traced)
{
	bool still = false;
	for (int i = 0; i < s->nwr; i++)
		still |= wr_end(s->t, s, &s->mb, &s->wr[i]);
	s->nwr = 0;
	if (still_traced)
		*still_traced = still;
}

static int run_event(struct tr_table *t, struct tr_sub *actor, uint64_t gpa, size_t len,
		     unsigned kinds, enum tr_ev_type type, tr_write_fn fn, void *arg,
		     unsigned *notified)
{
	struct tr_mbox host_mb, *mb = actor ? &actor->mb : &host_mb;
	if (!actor)
		tr_mbox_init(&host_mb);
	int rc = 0;
	while (len) {
		uint64_t page = gpa & ~(TR_PAGE_SIZE - 1);
		size_t chunk = UTIL_MIN(len, (size_t)(page + TR_PAGE_SIZE - gpa));
		struct tr_wr w;
		rc = wr_begin(t, actor, mb, page, kinds, type, &w, notified);
		if (rc)
			break;
		if (fn)
			fn(arg, gpa, chunk);
		wr_end(t, actor, mb, &w);
		gpa += chunk;
		len -= chunk;
	}
	if (!actor) {
		/* the last acknowledger may still hold the mutex (see tr_note_ack) */
		pthread_mutex_lock(&host_mb.mu);
		pthread_mutex_unlock(&host_mb.mu);
		tr_mbox_fini(&host_mb);
	}
	return rc;
}

int tr_write(struct tr_table *t, struct tr_sub *actor, uint64_t gpa, size_t len,
	     tr_write_fn fn, void *arg)
{
	if (!t || !fn || (actor && actor->t != t))
		return -EINVAL;
	return run_event(t, actor, gpa, len, t->cfg.write_kinds, TR_EV_WRITE, fn, arg, NULL);
}

int tr_event(struct tr_table *t, struct tr_sub *actor, uint64_t gpa, unsigned kinds,
	     tr_write_fn fn, void *arg)
{
	if (!t || !kinds || (kinds & ~TR_KINDS_ALL) || (actor && actor->t != t))
		return -EINVAL;
	uint64_t page = gpa & ~(TR_PAGE_SIZE - 1);
	return run_event(t, actor, page, TR_PAGE_SIZE, kinds, TR_EV_WRITE, fn, arg, NULL);
}

int tr_revoke_try(struct tr_table *t, uint64_t gpa)
{
	if (!t)
		return -EINVAL;
	uint64_t page = gpa & ~(TR_PAGE_SIZE - 1);
	struct tr_stripe *st = tr_stripe_of(t, page);
	int rc = 0;

	pthread_mutex_lock(&st->mu);
	struct tr_page *pe = tr_page_find(t, st, page, false);
	for (int k = 0; pe && k < TR_KIND_COUNT && !rc; k++)
		if (pe->nsubs[k])
			rc = -EWOULDBLOCK;
	pthread_mutex_unlock(&st->mu);
	if (!rc) { /* counted as tr_revoke counts a revocation nobody heard */
		struct acct a = { .type = TR_EV_REVOKE };
		acct_apply(t, NULL, &a);
	}
	return rc;
}

int tr_revoke(struct tr_table *t, uint64_t gpa, unsigned *notified)
{
	if (!t)
		return -EINVAL;
	unsigned n = 0;
	uint64_t page = gpa & ~(TR_PAGE_SIZE - 1);
	int rc = run_event(t, NULL, page, TR_PAGE_SIZE, TR_KINDS_ALL, TR_EV_REVOKE, NULL, NULL, &n);
	if (notified)
		*notified = n;
	return rc;
}
