/*
 * Subscriber-node updates (SUB), delayed and merged.  A node tells each
 * page's home when its first local trace on the page is established or its
 * last one dropped (dsm_trace_sub); the home's subscriber-node set decides
 * the INV's trace flag (docs/dsm.md "Cross-node traces").  In a 3-node
 * Linux boot that was 30-75 k one-page messages per node (each also a job
 * and a wake-up for the agent), more than all the faults together: a guest
 * that flushes its TLB drops and re-derives the same pages over and over.
 *
 * So an update waits in an outbox for DSM_SUB_DELAY_NS; then the agent
 * sends, per page, only a final value that differs from what the home was
 * last told (`told`, one bit per page, mapped sparsely), one message per
 * home with up to DSM_SUB_BATCH pages.  An off/on pair within the delay
 * sends nothing.  The set is a statistic and the INV flag a hint (every
 * revocation is a trace event on the node that receives it), so a late or
 * lost SUB costs accuracy only; fire-and-forget as before.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "dsm/dsm_int.h"
#include "proto/dsm.pb-c.h"

#define DSM_SUB_BATCH 2048            /* pages per message: ~10 KiB packed at most */
#define DSM_SUB_DELAY_NS 1000000ull   /* how long an update waits for its undo */

int dsm_sub_queue(struct dsm *d, uint64_t page, bool on)
{
	struct dsm_sub_outbox *o = &d->subs_out;
	struct dsm_job *j = NULL;
	int rc = 0;

	pthread_mutex_lock(&o->mu);
	if (o->n == o->cap) {
		size_t cap = o->cap ? 2 * o->cap : 256;
		struct dsm_sub_update *v = realloc(o->v, cap * sizeof(*v));
		if (!v) {
			rc = -ENOMEM;
			goto out;
		}
		o->v = v;
		o->cap = cap;
	}
	if (!o->n)
		o->first_ns = util_now_ns();
	o->v[o->n].page = page;
	o->v[o->n].seq = o->n;
	o->v[o->n].on = on;
	o->n++;
	/* the agent may sleep with no due time: wake it once per outbox */
	if (!o->woken && (j = calloc(1, sizeof(*j)))) {
		j->kind = JOB_SUB_OUT;
		j->src = d->cfg.node_id;
		o->woken = true;
	}
out:
	pthread_mutex_unlock(&o->mu);
	if (j)
		dsm_queue_push(&d->agentq, j);
	return rc;
}

uint64_t dsm_sub_due(struct dsm *d)
{
	struct dsm_sub_outbox *o = &d->subs_out;

	pthread_mutex_lock(&o->mu);
	uint64_t due = o->n ? o->first_ns + DSM_SUB_DELAY_NS : 0;
	pthread_mutex_unlock(&o->mu);
	return due;
}

static int by_page_then_seq(const void *a, const void *b)
{
	const struct dsm_sub_update *x = a, *y = b;
	if (x->page != y->page)
		return x->page < y->page ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Idempotent: setting or clearing a bit twice is harmless. */
void dsm_sub_set(struct dsm *d, uint64_t page, int node, bool on)
{
	struct dsm_dir *e = &d->dir[dsm_dir_slot(d, page)];
	uint64_t bit = 1ull << node;

	if (on)
		atomic_fetch_or(&e->subs, bit);
	else
		atomic_fetch_and(&e->subs, ~bit);
	DSM_INC(d, sub_updates);
}

/* One message to home with the pages in on[] and off[]. */
static void send_batch(struct dsm *d, int home, uint64_t *on, size_t non, uint64_t *off,
		       size_t noff)
{
	DsmSub m = DSM_SUB__INIT;
	uint8_t *buf;
	size_t len;

	m.n_pages_on = non;
	m.pages_on = on;
	m.n_pages_off = noff;
	m.pages_off = off;
	len = dsm_sub__get_packed_size(&m);
	if (!(buf = malloc(len)))
		return; /* a statistic's accuracy: see the top of the file */
	dsm_sub__pack(&m, buf);
	if (tp_send(d->cfg.tp, home, DSM_MSG_TYPE__DSM_MSG_SUB, buf, len) == 0)
		DSM_INC(d, sub_msgs);
	free(buf);
}

/* The pages of home in v[0..n) (sorted, one per page, all changes), in
 * batches. */
static void send_home(struct dsm *d, int home, const struct dsm_sub_update *v, size_t n,
		      uint64_t *on, uint64_t *off)
{
	size_t non = 0, noff = 0;

	for (size_t i = 0; i < n; i++) {
		if (dsm_home_node(d, v[i].page) != home)
			continue;
		if (home == d->cfg.node_id) {
			dsm_sub_set(d, v[i].page, home, v[i].on);
			continue;
		}
		if (v[i].on)
			on[non++] = v[i].page;
		else
			off[noff++] = v[i].page;
		if (non + noff == DSM_SUB_BATCH) {
			send_batch(d, home, on, non, off, noff);
			non = noff = 0;
		}
	}
	if (non + noff)
		send_batch(d, home, on, non, off, noff);
}

/* Keeps in v the last update of each page that changes what its home was
 * told, and records it as told.  Returns how many. */
static size_t changes_only(struct dsm_sub_outbox *o, struct dsm_sub_update *v, size_t n)
{
	size_t kept = 0;

	qsort(v, n, sizeof(*v), by_page_then_seq);
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && v[i + 1].page == v[i].page)
			continue; /* not the last one of its page */
		uint8_t *byte = &o->told[v[i].page / 8], bit = (uint8_t)(1u << (v[i].page % 8));
		if (!!(*byte & bit) == v[i].on)
			continue; /* undone within the delay, or already told */
		*byte ^= bit;
		v[kept++] = v[i];
	}
	return kept;
}

void dsm_sub_flush(struct dsm *d)
{
	struct dsm_sub_outbox *o = &d->subs_out;
	struct dsm_sub_update *v;
	size_t n;

	pthread_mutex_lock(&o->mu);
	v = o->v;
	n = o->n;
	o->v = NULL;
	o->n = o->cap = 0;
	o->woken = false;
	pthread_mutex_unlock(&o->mu);
	if (!o->told) {
		o->told_len = (d->npages + 7) / 8;
		o->told = mmap(NULL, o->told_len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (o->told == MAP_FAILED)
			o->told = NULL;
	}
	if (!n || !o->told) {
		free(v);
		return;
	}
	n = changes_only(o, v, n);
	DSM_ADD(d, sub_sent, n);
	uint64_t *on = malloc(DSM_SUB_BATCH * sizeof(*on)), *off = malloc(DSM_SUB_BATCH * sizeof(*off));
	if (on && off)
		for (unsigned k = 0; k < d->nnodes && n; k++)
			send_home(d, d->nodes[k], v, n, on, off);
	free(on);
	free(off);
	free(v);
}

void dsm_sub_outbox_destroy(struct dsm *d)
{
	free(d->subs_out.v);
	d->subs_out.v = NULL;
	if (d->subs_out.told)
		munmap(d->subs_out.told, d->subs_out.told_len);
	d->subs_out.told = NULL;
	pthread_mutex_destroy(&d->subs_out.mu);
}
