/*
 * DSM audit of the final state (issue 6): a text dump of this node's page
 * states and, for the pages it is home of, its directory entries, merged
 * and checked on the host by deploy/netns/dsm-audit-check; and the pages
 * whose only valid copies were on failed nodes (for `spanvm status`).
 *
 * Read-only over the DSM's arrays.  Page states are read under d->lock
 * (like dsm_page_state); directory entries are written only by the home
 * worker, so a dump is exact only once that worker is idle or stopped:
 * the dump says whether anything was still in flight (busy=1) and the
 * checker refuses such a dump instead of reporting phantom violations.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsm/dsm_int.h"

static bool queue_busy(struct dsm_queue *q)
{
	pthread_mutex_lock(&q->mu);
	bool busy = q->head != NULL;
	pthread_mutex_unlock(&q->mu);
	return busy;
}

/* Something that can still change a page state or a directory entry:
 * names it in why (empty when idle). */
static void dsm_busy(struct dsm *d, char *why, size_t n)
{
	size_t at = 0;

	why[0] = 0;
#define WHY(...) \
	(at += (size_t)snprintf(why + (at < n ? at : n - 1), at < n ? n - at : 0, __VA_ARGS__))
	for (unsigned i = 0; i < d->nhome; i++) {
		struct dsm_home_worker *w = &d->home[i];
		if (queue_busy(&w->q))
			WHY("%shome-queue", at ? "," : "");
		pthread_mutex_lock(&w->ack_mu);
		if (w->ack_want)
			WHY("%shome-txn:%" PRIu64, at ? "," : "", w->ack_page);
		pthread_mutex_unlock(&w->ack_mu);
	}
	if (queue_busy(&d->agentq))
		WHY("%sagent-queue", at ? "," : "");
	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; i < DSM_PENDING_MAX; i++)
		if (d->pending[i].want)
			WHY("%sfault:%" PRIu64, at ? "," : "", d->pending[i].page);
	for (unsigned i = 0; i < DSM_CLAIM_MAX; i++)
		if (d->claim_used[i])
			WHY("%sinstall:%" PRIu64, at ? "," : "", d->claim_page[i]);
	pthread_mutex_unlock(&d->lock);
#undef WHY
}

static const char *state_name(uint8_t st)
{
	return st == DSM_MODIFIED ? "M" : st == DSM_SHARED ? "S" : "?";
}

static void write_header(struct dsm *d, FILE *f)
{
	char why[256];

	fprintf(f, "audit node=%d nodes=", d->cfg.node_id);
	for (unsigned i = 0; i < d->nnodes; i++)
		fprintf(f, "%s%d", i ? "," : "", d->nodes[i]);
	dsm_busy(d, why, sizeof(why));
	fprintf(f, " base=0x%" PRIx64 " pages=%" PRIu64 " busy=%d%s%s\n", d->cfg.ram_base,
		d->npages, why[0] ? 1 : 0, why[0] ? " why=" : "", why);
}

static void write_dir(FILE *f, uint64_t page, const struct dsm_dir *e)
{
	fprintf(f, "D %" PRIu64 " %d %u ", page, (int)e->owner - 1, e->excl);
	if (!e->copyset)
		fputc('-', f);
	for (int n = 0, first = 1; n < DSM_MAX_NODES; n++) {
		if (e->copyset & (1ull << n)) {
			fprintf(f, "%s%d", first ? "" : ",", n);
			first = 0;
		}
	}
	fprintf(f, " %" PRIu32 "\n", e->version);
}

int dsm_audit_write(struct dsm *d, FILE *f)
{
	if (!d || !f)
		return -EINVAL;
	write_header(d, f);
	for (uint64_t p = 0; p < d->npages; p++) {
		pthread_mutex_lock(&d->lock);
		uint8_t st = atomic_load(&d->state[p]);
		uint32_t v = atomic_load(&d->version[p]);
		pthread_mutex_unlock(&d->lock);
		if (st != DSM_INVALID)
			fprintf(f, "L %" PRIu64 " %s %" PRIu32 " %d\n", p, state_name(st), v,
				dsm_home_node(d, p));
		if (dsm_home_node(d, p) != d->cfg.node_id)
			continue;
		const struct dsm_dir *e = &d->dir[dsm_dir_slot(d, p)];
		if (e->owner || e->copyset)
			write_dir(f, p, e);
	}
	fprintf(f, "end\n");
	return ferror(f) ? -EIO : 0;
}

/*
 * Calls visit for every page homed here with its directory entry, read
 * under the page's worker's txn_mu (every transaction writes the entry
 * under it), one worker at a time.  A worker still in a transaction after
 * 50 ms (waiting for a failed node, typically) is read without it: its
 * entries cannot change before that node answers.  Stops at visit's
 * first non-zero return and returns it.
 */
static int scan_homed(struct dsm *d, int (*visit)(void *arg, uint64_t page, const struct dsm_dir *e),
		      void *arg)
{
	int rc = 0;

	for (unsigned k = 0; k < d->nhome && !rc; k++) {
		struct dsm_home_worker *w = &d->home[k];
		struct timespec ts;
		util_deadline_in(CLOCK_REALTIME, 50000000ull, &ts);
		bool locked = pthread_mutex_timedlock(&w->txn_mu, &ts) == 0;
		for (uint64_t p = 0; p < d->npages && !rc; p++)
			if (dsm_home_node(d, p) == d->cfg.node_id && dsm_home_worker_of(d, p) == w)
				rc = visit(arg, p, &d->dir[dsm_dir_slot(d, p)]);
		if (locked)
			pthread_mutex_unlock(&w->txn_mu);
	}
	return rc;
}

struct lost_list {
	const struct dsm *d;
	uint64_t failed, *gpas;
	size_t max, cnt;
};

static void lost_add(struct lost_list *l, uint64_t page)
{
	if (l->cnt < l->max)
		l->gpas[l->cnt] = l->d->cfg.ram_base + (page << DSM_PAGE_SHIFT);
	l->cnt++;
}

static int visit_lost(void *arg, uint64_t page, const struct dsm_dir *e)
{
	struct lost_list *l = arg;

	/* owner 0: never written, a zero page nobody can lose */
	if (!e->owner || (e->copyset & ~l->failed))
		return 0;
	if (!e->copyset && !(l->failed & (1ull << (e->owner - 1))))
		return 0;
	lost_add(l, page);
	return 0;
}

int dsm_audit_lost(struct dsm *d, uint64_t failed, uint64_t *gpas, size_t max, size_t *n)
{
	struct lost_list l = {d, failed, gpas, max, 0};

	if (!d || !n || (max && !gpas))
		return -EINVAL;
	scan_homed(d, visit_lost, &l);
	*n = l.cnt;
	return 0;
}

/* ---- lost pages, with the survivors asked ---- */

#define HELD_BATCH 2048 /* pages per question: replies stay ~20 KiB */

/* Pages homed here whose owner failed while the copyset names a survivor:
 * read grants are not acknowledged, so such a member may hold nothing. */
struct suspects {
	uint64_t *page, *members; /* surviving copyset members of each */
	bool *held;
	size_t n, cap;
	uint64_t failed;
};

static int suspects_add(struct suspects *s, uint64_t page, uint64_t members)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		uint64_t *p = realloc(s->page, cap * sizeof(*p));
		if (p)
			s->page = p;
		uint64_t *m = p ? realloc(s->members, cap * sizeof(*m)) : NULL;
		if (m)
			s->members = m;
		bool *h = m ? realloc(s->held, cap * sizeof(*h)) : NULL;
		if (!h)
			return -ENOMEM;
		s->held = h;
		s->cap = cap;
	}
	s->page[s->n] = page;
	s->members[s->n] = members;
	s->held[s->n] = false;
	s->n++;
	return 0;
}

static int visit_suspect(void *arg, uint64_t page, const struct dsm_dir *e)
{
	struct suspects *s = arg;

	if (e->owner && (s->failed >> (e->owner - 1) & 1) && (e->copyset & ~s->failed))
		return suspects_add(s, page, e->copyset & ~s->failed);
	return 0;
}

/* Asks node which of qpages[0..nq) it holds; marks them in s.  A node
 * that does not answer confirms nothing. */
static void ask(struct dsm *d, int node, struct suspects *s, const size_t *idx, size_t nq,
		uint64_t timeout_ns)
{
	DsmHeld q = DSM_HELD__INIT;
	uint64_t *pages = malloc(nq * sizeof(*pages));
	size_t cap = nq * 11 + 16; /* packed varints: at most 10 bytes a page, plus tag and length */
	uint8_t *qbuf = malloc(cap), *rbuf = malloc(cap);
	size_t rlen = cap;

	if (pages && qbuf && rbuf) {
		for (size_t i = 0; i < nq; i++)
			pages[i] = s->page[idx[i]];
		q.n_pages = nq;
		q.pages = pages;
		size_t qlen = dsm_held__pack(&q, qbuf);
		int rc = tp_request(d->cfg.tp, node, DSM_MSG_TYPE__DSM_MSG_HELD, qbuf, qlen, rbuf,
				    &rlen, timeout_ns, 2);
		DsmHeld *a = rc ? NULL : dsm_held__unpack(NULL, rlen, rbuf);
		if (rc)
			LOG_WARN(DSM_SUBSYS, "node %d did not say which pages it holds (%s): "
					     "they count as lost", node, strerror(-rc));
		/* the reply keeps the question's order (on_held): one walk */
		for (size_t i = 0, k = 0; a && i < nq && k < a->n_pages; i++)
			if (pages[i] == a->pages[k]) {
				s->held[idx[i]] = true;
				k++;
			}
		if (a)
			dsm_held__free_unpacked(a, NULL);
	}
	free(pages);
	free(qbuf);
	free(rbuf);
}

static void confirm(struct dsm *d, struct suspects *s, uint64_t timeout_ns)
{
	size_t *idx = malloc(HELD_BATCH * sizeof(*idx));

	for (unsigned k = 0; idx && k < d->nnodes; k++) {
		int node = d->nodes[k];
		size_t nq = 0;
		for (size_t i = 0; i < s->n; i++) {
			if (s->held[i] || !(s->members[i] >> node & 1))
				continue;
			if (node == d->cfg.node_id) {
				s->held[i] = atomic_load(&d->state[s->page[i]]) != DSM_INVALID;
				continue;
			}
			idx[nq++] = i;
			if (nq == HELD_BATCH) {
				ask(d, node, s, idx, nq, timeout_ns);
				nq = 0;
			}
		}
		if (nq)
			ask(d, node, s, idx, nq, timeout_ns);
	}
	free(idx);
}

int dsm_audit_lost_asked(struct dsm *d, uint64_t failed, uint64_t timeout_ns, uint64_t *gpas,
			 size_t max, size_t *n)
{
	struct suspects s = {0};
	size_t cnt = 0;
	int rc;

	if ((rc = dsm_audit_lost(d, failed, gpas, max, &cnt)))
		return rc;
	s.failed = failed;
	rc = scan_homed(d, visit_suspect, &s);
	if (!rc) {
		confirm(d, &s, timeout_ns);
		for (size_t i = 0; i < s.n; i++) {
			if (s.held[i])
				continue;
			if (cnt < max)
				gpas[cnt] = d->cfg.ram_base + (s.page[i] << DSM_PAGE_SHIFT);
			cnt++;
		}
		*n = cnt;
	}
	free(s.page);
	free(s.members);
	free(s.held);
	return rc;
}

int dsm_audit_inflight(struct dsm *d, uint64_t failed, uint64_t *gpas, size_t max, size_t *n)
{
	size_t cnt = 0;

	if (!d || !n || (max && !gpas))
		return -EINVAL;
	for (unsigned i = 0; i < d->nhome; i++) {
		struct dsm_home_worker *w = &d->home[i];
		pthread_mutex_lock(&w->ack_mu);
		if (w->ack_want && (atomic_load(&w->ack_wait) & failed)) {
			if (cnt < max)
				gpas[cnt] = d->cfg.ram_base + (w->ack_page << DSM_PAGE_SHIFT);
			cnt++;
		}
		pthread_mutex_unlock(&w->ack_mu);
	}
	*n = cnt;
	return 0;
}

int dsm_audit_settle(struct dsm *d, unsigned timeout_ms)
{
	uint64_t deadline = util_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	unsigned quiet = 0;
	char why[256];

	if (!d)
		return -EINVAL;
	/* idle for a few polls in a row: a home between two messages of one
	 * transaction looks idle for an instant */
	while (quiet < 5) {
		dsm_busy(d, why, sizeof(why));
		quiet = why[0] ? 0 : quiet + 1;
		if (quiet < 5 && util_now_ns() > deadline) {
			LOG_WARN(DSM_SUBSYS, "still busy after %u ms (%s): the audit dump will say so",
				 timeout_ms, why);
			return -ETIMEDOUT;
		}
		usleep(10000);
	}
	return 0;
}
