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

int dsm_audit_lost(struct dsm *d, uint64_t failed, uint64_t *gpas, size_t max, size_t *n)
{
	size_t cnt = 0;

	if (!d || !n || (max && !gpas))
		return -EINVAL;
	for (uint64_t p = 0; p < d->npages; p++) {
		if (dsm_home_node(d, p) != d->cfg.node_id)
			continue;
		const struct dsm_dir *e = &d->dir[dsm_dir_slot(d, p)];
		/* owner 0: never written, a zero page nobody can lose */
		if (!e->owner || (e->copyset & ~failed))
			continue;
		if (!e->copyset && !(failed & (1ull << (e->owner - 1))))
			continue;
		if (cnt < max)
			gpas[cnt] = d->cfg.ram_base + (p << DSM_PAGE_SHIFT);
		cnt++;
	}
	*n = cnt;
	return 0;
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
