/*
 * One-sided RMA against a peer's registered region.
 *
 * The caller's buffer is used directly when it lies inside our own
 * registered region (the DSM case: page bodies land in guest RAM);
 * otherwise data goes through a registered bounce slot, in chunks of
 * TP_BOUNCE_SIZE.  The bounce also means a timed-out operation that
 * completes late never writes into memory the caller has moved on from.
 * A timed-out operation is "abandoned": the completion frees it later, or
 * tp_destroy does after the endpoint is closed.
 */
#include "transport/tp_int.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static void op_free(struct tp *tp, struct tp_rma_op *op)
{
	if (op->bounce)
		tp_pool_put(&tp->bounce_pool, op->bounce);
	free(op);
}

void tp_rma_complete(struct tp *tp, struct tp_rma_op *op, int err)
{
	int expect = TP_RMA_PENDING;

	op->rc = err ? tp_errno(-err) : 0;
	if (atomic_compare_exchange_strong(&op->state, &expect, TP_RMA_DONE)) {
		tp_wake_waiters(tp);
		return;
	}
	/* The waiter gave up: unlink from the abandoned list and free. */
	pthread_mutex_lock(&tp->big_lock);
	for (struct tp_rma_op **pp = &tp->abandoned; *pp; pp = (struct tp_rma_op **)&(*pp)->op.next) {
		if (*pp == op) {
			*pp = (struct tp_rma_op *)op->op.next;
			break;
		}
	}
	pthread_mutex_unlock(&tp->big_lock);
	op_free(tp, op);
}

void tp_rma_cleanup(struct tp *tp)
{
	pthread_mutex_lock(&tp->big_lock);
	struct tp_rma_op *list = tp->abandoned;
	tp->abandoned = NULL;
	pthread_mutex_unlock(&tp->big_lock);
	for (struct tp_rma_op *op = list, *n; op; op = n) {
		n = (struct tp_rma_op *)op->op.next;
		op_free(tp, op);
	}
}

struct rma_post {
	struct tp_rma_op *op;
	bool write;
	void *buf;
	size_t len;
	void *desc;
	fi_addr_t addr;
	uint64_t raddr, key;
};

static ssize_t post_rma(struct tp *tp, void *a)
{
	struct rma_post *r = a;

	tp_op_posting(&r->op->op);
	if (r->write) {
		/* Delivery complete: when tp_rma_write returns, the bytes are in
		 * the peer's memory, not merely out of ours. */
		struct iovec iov = {.iov_base = r->buf, .iov_len = r->len};
		struct fi_rma_iov rma = {.addr = r->raddr, .len = r->len, .key = r->key};
		struct fi_msg_rma msg = {.msg_iov = &iov, .desc = &r->desc, .iov_count = 1,
					 .addr = r->addr, .rma_iov = &rma, .rma_iov_count = 1,
					 .context = &r->op->op.fictx};
		return fi_writemsg(tp->ep, &msg, FI_COMPLETION | FI_DELIVERY_COMPLETE);
	}
	return fi_read(tp->ep, r->buf, r->len, r->desc, r->addr, r->raddr, r->key, &r->op->op.fictx);
}

static int peer_target(struct tp *tp, int peer, struct rma_post *r)
{
	struct tp_peer *p;
	int rc = 0;

	pthread_mutex_lock(&tp->peer_lock);
	p = tp_peer_get_locked(tp, peer);
	if (!p) {
		rc = -ENOENT;
	} else if (p->fault.cut) {
		TP_STAT_INC(tp, fault_cut);
		rc = -ECONNREFUSED;
	} else {
		r->addr = p->fi_addr;
		r->key = p->key;
		r->raddr = p->base; /* 0 unless the provider uses virtual addresses */
	}
	pthread_mutex_unlock(&tp->peer_lock);
	return rc;
}

static struct tp_buf *bounce_get(struct tp *tp, uint64_t deadline)
{
	for (;;) {
		struct tp_buf *b = tp_pool_get(&tp->bounce_pool);
		if (b || util_now_ns() >= deadline)
			return b;
		if (tp->cfg.inline_progress)
			tp_progress(tp);
		else
			sched_yield();
	}
}

/* One chunk: post, wait, copy out.  Returns 0 or -errno. */
static int rma_chunk(struct tp *tp, struct rma_post *r, char *local, bool direct,
		     uint64_t deadline)
{
	struct tp_rma_op *op = calloc(1, sizeof(*op));
	int rc, expect = TP_RMA_PENDING;

	if (!op)
		return -ENOMEM;
	op->op.kind = TP_OP_RMA;
	r->op = op;
	r->buf = local;
	if (!direct) {
		op->bounce = bounce_get(tp, deadline);
		if (!op->bounce) {
			free(op);
			return -ETIMEDOUT;
		}
		r->buf = op->bounce->data;
		r->desc = op->bounce->desc;
		if (r->write)
			memcpy(r->buf, local, r->len);
	}
	rc = tp_post_retry(tp, post_rma, r);
	if (rc) {
		op_free(tp, op);
		return rc;
	}
	rc = tp_wait_flag(tp, &op->state, TP_RMA_DONE, deadline);
	if (rc && atomic_compare_exchange_strong(&op->state, &expect, TP_RMA_ABANDONED)) {
		pthread_mutex_lock(&tp->big_lock);
		op->op.next = (struct tp_op *)tp->abandoned;
		tp->abandoned = op;
		pthread_mutex_unlock(&tp->big_lock);
		if (rc == -ETIMEDOUT)
			TP_STAT_INC(tp, rma_timeouts);
		return rc;
	}
	rc = op->rc; /* completed, possibly just as the wait timed out */
	if (!rc && !r->write && !direct)
		memcpy(local, r->buf, r->len);
	op_free(tp, op);
	return rc;
}

static int rma_do(struct tp *tp, int peer, uint64_t off, char *local, size_t len,
		  uint64_t timeout_ns, bool write)
{
	struct rma_post r = {.write = write};
	uint64_t deadline = util_now_ns() + timeout_ns;
	bool direct;
	int rc;

	if (!tp || (!local && len))
		return -EINVAL;
	if (tp_in_handler(tp))
		return -EDEADLK;
	if (!len)
		return 0;
	rc = peer_target(tp, peer, &r);
	if (rc)
		return rc;
	direct = tp->region_mr && local >= tp->region_base &&
		 len <= tp->region_len && (size_t)(local - tp->region_base) <= tp->region_len - len;
	for (size_t done = 0; done < len && !rc;) {
		size_t chunk = direct ? len : UTIL_MIN(len - done, (size_t)TP_BOUNCE_SIZE);
		r.len = chunk;
		r.desc = direct ? tp->region_desc : NULL;
		uint64_t raddr = r.raddr;
		r.raddr += off + done;
		rc = rma_chunk(tp, &r, local + done, direct, deadline);
		r.raddr = raddr;
		done += chunk;
	}
	if (rc) {
		TP_STAT_INC(tp, rma_errors);
		return rc;
	}
	if (write)
		TP_STAT_INC(tp, rma_writes);
	else
		TP_STAT_INC(tp, rma_reads);
	return 0;
}

int tp_rma_read(struct tp *tp, int peer, uint64_t remote_off, void *local, size_t len,
		uint64_t timeout_ns)
{
	return rma_do(tp, peer, remote_off, local, len, timeout_ns, false);
}

int tp_rma_write(struct tp *tp, int peer, uint64_t remote_off, const void *local, size_t len,
		 uint64_t timeout_ns)
{
	return rma_do(tp, peer, remote_off, (char *)local, len, timeout_ns, true);
}
