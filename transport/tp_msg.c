/*
 * Messages: envelope packing, send with per-peer fault hooks, receive
 * validation and dispatch, request/reply matching, the built-in PING.
 *
 * A received buffer is parsed once, by whichever thread read it from the
 * CQ.  Replies complete their waiting tp_request right there (any thread);
 * everything else runs its handler on the progress thread, so a caller
 * that polls the CQ while it waits queues such messages for it.
 */
#include "transport/tp_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/data.pb-c.h"
#include "util/util.h"

static void warn_limited(struct tp *tp, const char *what, uint32_t node)
{
	uint64_t now = util_now_ns(), last = atomic_load(&tp->last_warn_ns);

	/* Counters carry the numbers; the log only says it is happening. */
	if (now - last < 1000000000ull || !atomic_compare_exchange_strong(&tp->last_warn_ns, &last, now))
		return;
	LOG_WARN(TP_SUBSYS, "node %d: %s (peer %u); further ones only counted in tp_stats",
		 tp->cfg.node_id, what, node);
}

static uint64_t rng_next(uint64_t *x)
{
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * 0x2545f4914f6cdd1dull;
}

/* ---- buffers ---- */

static struct tp_buf *tx_alloc(struct tp *tp, size_t frame_len)
{
	struct tp_buf *b = NULL;

	if (frame_len <= tp->tx_pool.bufs[0].cap)
		b = tp_pool_get(&tp->tx_pool);
	if (b)
		return b;
	/* Large message or pool exhausted: a one-off buffer. */
	b = calloc(1, sizeof(*b) + frame_len);
	if (!b)
		return NULL;
	b->op.kind = TP_OP_TX;
	b->data = (char *)(b + 1);
	b->cap = frame_len;
	if (tp_mr_reg_local(tp, b->data, frame_len, &b->own_mr, &b->desc)) {
		free(b);
		return NULL;
	}
	pthread_mutex_lock(&tp->big_lock);
	b->big_next = tp->big_list;
	tp->big_list = b;
	pthread_mutex_unlock(&tp->big_lock);
	return b;
}

void tp_tx_free(struct tp *tp, struct tp_buf *b)
{
	if (b->pooled) {
		tp_pool_put(&tp->tx_pool, b);
		return;
	}
	pthread_mutex_lock(&tp->big_lock);
	for (struct tp_buf **pp = &tp->big_list; *pp; pp = &(*pp)->big_next) {
		if (*pp == b) {
			*pp = b->big_next;
			break;
		}
	}
	pthread_mutex_unlock(&tp->big_lock);
	if (b->own_mr)
		fi_close(&b->own_mr->fid);
	free(b);
}

void tp_tx_complete(struct tp *tp, struct tp_buf *b, int err)
{
	if (err) {
		TP_STAT_INC(tp, tx_errors);
		warn_limited(tp, "a send to a peer failed", (uint32_t)b->dst);
	}
	tp_tx_free(tp, b);
}

static int tx_build(struct tp *tp, int dst, uint32_t type, uint64_t seq, uint64_t reply_to,
		    const void *payload, size_t len, struct tp_buf **out)
{
	Envelope env = ENVELOPE__INIT;
	struct tp_buf *b;
	size_t plen;

	if (type == 0 || type >= TP_MAX_TYPE || (len && !payload) || dst < 0)
		return -EINVAL;
	if (len > tp->cfg.max_msg)
		return -EMSGSIZE;
	env.type = type;
	env.epoch = atomic_load(&tp->epoch);
	env.src = (uint32_t)tp->cfg.node_id;
	env.seq = seq;
	env.reply_to = reply_to;
	env.payload.data = (uint8_t *)payload;
	env.payload.len = len;
	plen = envelope__get_packed_size(&env);
	b = tx_alloc(tp, PROTO_HDR_SIZE + plen);
	if (!b)
		return -ENOMEM;
	proto_hdr_write(b->data, PROTO_FT_DATA, (uint32_t)plen);
	envelope__pack(&env, (uint8_t *)b->data + PROTO_HDR_SIZE);
	b->len = PROTO_HDR_SIZE + plen;
	b->dst = dst;
	*out = b;
	return 0;
}

/*
 * Posts b once to addr.  0: posted (b now belongs to the completion);
 * -EAGAIN: provider queue full or connection not up yet, b kept by the
 * caller; other -errno: b freed.
 */
static int tx_post_once(struct tp *tp, struct tp_buf *b, fi_addr_t addr)
{
	size_t len = b->len;
	tp_op_posting(&b->op);
	ssize_t rc = fi_send(tp->ep, b->data, len, b->desc, addr, &b->op.fictx);

	if (rc == -FI_EAGAIN)
		return -EAGAIN;
	if (rc) {
		TP_STAT_INC(tp, tx_errors);
		tp_tx_free(tp, b);
		return tp_errno((int)rc);
	}
	TP_STAT_INC(tp, tx_msgs);
	TP_STAT_ADD(tp, tx_bytes, len);
	return 0;
}

static struct tp_buf *tx_clone(struct tp *tp, const struct tp_buf *b)
{
	struct tp_buf *c = tx_alloc(tp, b->len);
	if (c) {
		memcpy(c->data, b->data, b->len);
		c->len = b->len;
		c->dst = b->dst;
	}
	return c;
}

static void held_append(struct tp_peer *p, struct tp_buf *b)
{
	p->held_count++;
	b->op.next = NULL;
	if (p->held_tail)
		p->held_tail->op.next = &b->op;
	else
		p->held_head = b;
	p->held_tail = b;
}

/*
 * Applies the peer's fault hooks (peer lock held).  Returns the number of
 * buffers to post now in out[] (0..3); others were dropped or queued.
 */
static int faults_apply(struct tp *tp, struct tp_peer *p, struct tp_buf *b, struct tp_buf **out)
{
	const struct tp_fault *f = &p->fault;
	int n = 0;

	if (f->cut || (f->drop_pct && rng_next(&p->rng) % 100 < f->drop_pct)) {
		if (f->cut)
			TP_STAT_INC(tp, fault_cut);
		else
			TP_STAT_INC(tp, fault_dropped);
		tp_tx_free(tp, b);
		return 0;
	}
	out[n++] = b;
	if (f->dup_pct && rng_next(&p->rng) % 100 < f->dup_pct) {
		struct tp_buf *c = tx_clone(tp, b);
		if (c) {
			out[n++] = c;
			TP_STAT_INC(tp, fault_duplicated);
		}
	}
	if (f->delay_ns) {
		uint64_t rel = util_now_ns() + f->delay_ns;
		for (int i = 0; i < n; i++) {
			out[i]->release_ns = rel;
			held_append(p, out[i]);
			TP_STAT_INC(tp, fault_delayed);
		}
		return -1; /* queued: caller wakes the progress thread */
	}
	if (f->reorder) {
		if (!p->reorder_held) {
			p->reorder_held = out[--n];
			p->reorder_held->release_ns = util_now_ns() + TP_REORDER_HOLD_NS;
			TP_STAT_INC(tp, fault_reordered);
			return n ? n : -1;
		}
		out[n++] = p->reorder_held; /* the held one now goes after the newer */
		p->reorder_held = NULL;
	}
	return n;
}

/* Queues bufs behind the peer's backlog (peer lock held); the progress
 * thread posts them in order once the provider takes more. */
static void backlog(struct tp *tp, struct tp_peer *p, struct tp_buf **bufs, int n)
{
	TP_STAT_ADD(tp, tx_backlogged, (uint64_t)n);
	for (int i = 0; i < n; i++) {
		bufs[i]->release_ns = 0;
		held_append(p, bufs[i]);
	}
}

/* Applies fault hooks, then posts, or queues when the provider is busy. */
static int tx_submit(struct tp *tp, struct tp_buf *b, bool faults)
{
	struct tp_buf *out[3] = {b};
	struct tp_peer *p;
	fi_addr_t addr;
	int n = 1, rc = 0;

	pthread_mutex_lock(&tp->peer_lock);
	p = tp_peer_get_locked(tp, b->dst);
	if (!p || p->held_count >= TP_BACKLOG_MAX) {
		pthread_mutex_unlock(&tp->peer_lock);
		tp_tx_free(tp, b);
		if (p)
			TP_STAT_INC(tp, tx_errors);
		return p ? -ENOBUFS : -ENOENT;
	}
	if (faults)
		n = faults_apply(tp, p, b, out);
	if (n > 0 && p->held_head) { /* keep order behind earlier queued sends */
		backlog(tp, p, out, n);
		n = -1;
	}
	addr = p->fi_addr;
	pthread_mutex_unlock(&tp->peer_lock);
	if (n < 0) {
		tp_wake_progress(tp);
		return 0;
	}
	for (int i = 0; i < n; i++) {
		int r = tx_post_once(tp, out[i], addr);
		if (r == -EAGAIN) {
			pthread_mutex_lock(&tp->peer_lock);
			p = tp_peer_get_locked(tp, b->dst);
			if (p)
				backlog(tp, p, out + i, n - i);
			pthread_mutex_unlock(&tp->peer_lock);
			if (!p)
				for (int j = i; j < n; j++)
					tp_tx_free(tp, out[j]);
			tp_wake_progress(tp);
			return p ? 0 : -ENOENT;
		}
		if (r && !rc)
			rc = r;
	}
	return rc;
}

/* Pops the due messages of one peer (peer lock held) into a list. */
static struct tp_buf *peer_due(struct tp_peer *p, uint64_t now, uint64_t *next)
{
	struct tp_buf *due = NULL, **tail = &due;

	while (p->held_head && (p->held_head->release_ns <= now || !p->fault.delay_ns)) {
		struct tp_buf *b = p->held_head;
		p->held_head = (struct tp_buf *)b->op.next;
		if (!p->held_head)
			p->held_tail = NULL;
		p->held_count--;
		*tail = b;
		tail = (struct tp_buf **)&b->op.next;
	}
	if (p->held_head && p->held_head->release_ns < *next)
		*next = p->held_head->release_ns;
	struct tp_buf *r = p->reorder_held;
	if (r && (r->release_ns <= now || !p->fault.reorder)) {
		p->reorder_held = NULL;
		*tail = r;
		tail = (struct tp_buf **)&r->op.next;
	} else if (r && r->release_ns < *next) {
		*next = r->release_ns;
	}
	*tail = NULL;
	return due;
}

/* Puts unsent messages back at the head of the backlog, in order. */
static void peer_requeue(struct tp *tp, int id, struct tp_buf *list)
{
	struct tp_buf *last = list;
	int n = 1;

	while (last->op.next) {
		last = (struct tp_buf *)last->op.next;
		n++;
	}
	pthread_mutex_lock(&tp->peer_lock);
	struct tp_peer *p = tp_peer_get_locked(tp, id);
	if (p) {
		last->op.next = (struct tp_op *)p->held_head; /* op is the first member */
		if (!p->held_head)
			p->held_tail = last;
		p->held_head = list;
		p->held_count += n;
	}
	pthread_mutex_unlock(&tp->peer_lock);
	if (!p)
		for (struct tp_buf *b = list, *nx; b; b = nx) {
			nx = (struct tp_buf *)b->op.next;
			tp_tx_free(tp, b);
		}
}

/* Sends queued messages that are due (fault delay passed, or backlog);
 * *next = earliest later release.  Returns the number posted. */
int tp_faults_flush(struct tp *tp, uint64_t now, uint64_t *next)
{
	int posted = 0;

	pthread_mutex_lock(&tp->peer_lock);
	int cap = tp->npeers_cap;
	pthread_mutex_unlock(&tp->peer_lock);
	for (int id = 0; id < cap; id++) {
		struct tp_buf *due;
		fi_addr_t addr = 0;

		pthread_mutex_lock(&tp->peer_lock);
		struct tp_peer *p = tp_peer_get_locked(tp, id);
		due = p ? peer_due(p, now, next) : NULL;
		if (p)
			addr = p->fi_addr;
		pthread_mutex_unlock(&tp->peer_lock);
		while (due) {
			struct tp_buf *nx = (struct tp_buf *)due->op.next;
			if (tx_post_once(tp, due, addr) == -EAGAIN) {
				peer_requeue(tp, id, due);
				*next = now; /* retry soon */
				break;
			}
			posted++;
			due = nx;
		}
	}
	return posted;
}

int tp_send_raw(struct tp *tp, int dst, const void *frame, size_t len)
{
	struct tp_buf *b;

	if (!tp || !frame || !len || len > tp->max_frame)
		return -EINVAL;
	b = tx_alloc(tp, len);
	if (!b)
		return -ENOMEM;
	memcpy(b->data, frame, len);
	b->len = len;
	b->dst = dst;
	return tx_submit(tp, b, false);
}

int tp_send(struct tp *tp, int dst, uint32_t type, const void *payload, size_t len)
{
	struct tp_buf *b;
	int rc;

	if (!tp)
		return -EINVAL;
	rc = tx_build(tp, dst, type, atomic_fetch_add(&tp->next_seq, 1), 0, payload, len, &b);
	return rc ? rc : tx_submit(tp, b, true);
}

int tp_reply(struct tp *tp, const struct tp_msg *req, uint32_t type, const void *payload,
	     size_t len)
{
	struct tp_buf *b;
	int rc;

	if (!tp || !req || !req->seq)
		return -EINVAL;
	rc = tx_build(tp, req->src, type, atomic_fetch_add(&tp->next_seq, 1), req->seq, payload,
		      len, &b);
	return rc ? rc : tx_submit(tp, b, true);
}

/* ---- receive ---- */

struct post_recv_arg {
	struct tp_buf *b;
};

static ssize_t post_recv(struct tp *tp, void *a)
{
	struct tp_buf *b = ((struct post_recv_arg *)a)->b;
	tp_op_posting(&b->op);
	return fi_recv(tp->ep, b->data, b->cap, b->desc, FI_ADDR_UNSPEC, &b->op.fictx);
}

int tp_rx_post(struct tp *tp, struct tp_buf *b)
{
	struct post_recv_arg a = {b};
	int rc = tp_post_retry(tp, post_recv, &a);
	if (rc)
		LOG_ERR(TP_SUBSYS, "node %d: re-posting a receive buffer: %d", tp->cfg.node_id, rc);
	return rc;
}

void tp_rx_release(struct tp_buf *b)
{
	if (b->env) {
		envelope__free_unpacked(b->env, NULL);
		b->env = NULL;
	}
}

static void rx_recycle(struct tp *tp, struct tp_buf *b)
{
	tp_rx_release(b);
	if (!atomic_load(&tp->stopping))
		tp_rx_post(tp, b);
}

/* Validates frame and envelope; NULL (counted, logged) if the message is bad. */
static Envelope *rx_parse(struct tp *tp, struct tp_buf *b)
{
	struct proto_hdr hdr;
	const void *payload;
	Envelope *env;
	int rc = proto_frame_decode(b->data, b->len, tp->max_frame - PROTO_HDR_SIZE, &hdr, &payload);

	if (rc || hdr.type != PROTO_FT_DATA || PROTO_HDR_SIZE + hdr.length != b->len) {
		TP_STAT_INC(tp, rx_bad_frame);
		warn_limited(tp, "dropped a message with a bad frame header", 0);
		return NULL;
	}
	env = envelope__unpack(NULL, hdr.length, payload);
	if (!env) {
		TP_STAT_INC(tp, rx_bad_frame);
		warn_limited(tp, "dropped a message whose envelope does not unpack", 0);
		return NULL;
	}
	if (!env->seq || !env->type || env->type >= TP_MAX_TYPE || env->src >= 65536 ||
	    env->payload.len > tp->cfg.max_msg ||
	    ((int)env->src != tp->cfg.node_id && !tp_peer_known(tp, (int)env->src))) {
		TP_STAT_INC(tp, rx_bad_envelope);
		warn_limited(tp, "dropped a message with a foreign or malformed envelope", env->src);
		envelope__free_unpacked(env, NULL);
		return NULL;
	}
	if (env->epoch < atomic_load(&tp->epoch)) {
		TP_STAT_INC(tp, rx_stale_epoch);
		envelope__free_unpacked(env, NULL);
		return NULL;
	}
	return env;
}

static void reply_complete(struct tp *tp, const Envelope *env)
{
	bool found = false;

	pthread_mutex_lock(&tp->pending_lock);
	for (struct tp_pending *p = tp->pending; p; p = p->next) {
		if (p->seq != env->reply_to || p->dst != (int)env->src || atomic_load(&p->done))
			continue;
		p->reply_type = env->type;
		p->reply_len = env->payload.len;
		if (env->payload.len > p->reply_cap) {
			p->rc = -EMSGSIZE;
		} else {
			if (env->payload.len)
				memcpy(p->reply, env->payload.data, env->payload.len);
			p->rc = 0;
		}
		atomic_store(&p->done, 1);
		found = true;
		break;
	}
	pthread_mutex_unlock(&tp->pending_lock);
	if (found)
		tp_wake_waiters(tp);
	else
		TP_STAT_INC(tp, rx_stale_reply);
}

void tp_rx_complete(struct tp *tp, struct tp_buf *b, bool progress_thread)
{
	Envelope *env = rx_parse(tp, b);

	if (!env) {
		rx_recycle(tp, b);
		return;
	}
	TP_STAT_INC(tp, rx_msgs);
	TP_STAT_ADD(tp, rx_bytes, b->len);
	b->env = env;
	if (env->reply_to) {
		reply_complete(tp, env);
		rx_recycle(tp, b);
		return;
	}
	if (!progress_thread && tp_polling_any(tp) &&
	    atomic_load(&tp->handlers[env->type].any_thread) &&
	    atomic_load(&tp->handlers[env->type].fn)) {
		/* a thread waiting in tp_poll_wait: run it here, one hop less */
		tp_run_handler(tp, atomic_load(&tp->handlers[env->type].fn),
			       atomic_load(&tp->handlers[env->type].arg),
			       &(struct tp_msg){.type = env->type, .src = (int)env->src,
						.epoch = env->epoch, .seq = env->seq,
						.payload = env->payload.data,
						.len = env->payload.len});
		rx_recycle(tp, b);
		return;
	}
	if (!progress_thread) {
		pthread_mutex_lock(&tp->defer_lock);
		b->op.next = NULL;
		if (tp->defer_tail)
			tp->defer_tail->next = &b->op;
		else
			tp->defer_head = &b->op;
		tp->defer_tail = &b->op;
		pthread_mutex_unlock(&tp->defer_lock);
		tp_wake_progress(tp);
		return;
	}
	tp_rx_dispatch(tp, b);
}

void tp_rx_dispatch(struct tp *tp, struct tp_buf *b)
{
	Envelope *env = b->env;
	tp_handler_fn fn = atomic_load(&tp->handlers[env->type].fn);
	void *arg = atomic_load(&tp->handlers[env->type].arg);

	if (!fn) {
		char what[80];
		TP_STAT_INC(tp, rx_no_handler);
		snprintf(what, sizeof(what), "dropped a message of type %u, which has no handler",
			 env->type);
		warn_limited(tp, what, env->src);
	} else {
		struct tp_msg m = {
			.type = env->type,
			.src = (int)env->src,
			.epoch = env->epoch,
			.seq = env->seq,
			.reply_to = env->reply_to,
			.payload = env->payload.data,
			.len = env->payload.len,
		};
		tp_run_handler(tp, fn, arg, &m);
	}
	tp->dispatched++;
	rx_recycle(tp, b);
}

/* ---- request / reply ---- */

static void pending_add(struct tp *tp, struct tp_pending *p)
{
	pthread_mutex_lock(&tp->pending_lock);
	p->next = tp->pending;
	tp->pending = p;
	pthread_mutex_unlock(&tp->pending_lock);
}

static void pending_del(struct tp *tp, struct tp_pending *p)
{
	pthread_mutex_lock(&tp->pending_lock);
	for (struct tp_pending **pp = &tp->pending; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	pthread_mutex_unlock(&tp->pending_lock);
}

void tp_pending_fail_all(struct tp *tp, int dst, int rc)
{
	pthread_mutex_lock(&tp->pending_lock);
	for (struct tp_pending *p = tp->pending; p; p = p->next) {
		if ((dst < 0 || p->dst == dst) && !atomic_load(&p->done)) {
			p->rc = rc;
			atomic_store(&p->done, 1);
		}
	}
	pthread_mutex_unlock(&tp->pending_lock);
	tp_wake_waiters(tp);
}

int tp_request_ex(struct tp *tp, int dst, uint32_t type, const void *req, size_t len,
		  uint32_t *reply_type, void *reply, size_t *reply_len, uint64_t timeout_ns,
		  int retries)
{
	struct tp_pending pd = {0};
	int rc = 0;

	if (!tp || !reply_len || (*reply_len && !reply) || retries < 0)
		return -EINVAL;
	if (tp_in_handler(tp))
		return -EDEADLK;
	pd.seq = atomic_fetch_add(&tp->next_seq, 1);
	pd.dst = dst;
	pd.reply = reply;
	pd.reply_cap = *reply_len;
	pending_add(tp, &pd);
	for (int attempt = 0; attempt <= retries; attempt++) {
		struct tp_buf *b;
		if (attempt)
			TP_STAT_INC(tp, req_retransmits);
		rc = tx_build(tp, dst, type, pd.seq, 0, req, len, &b);
		if (!rc)
			rc = tx_submit(tp, b, true);
		if (rc)
			break;
		rc = tp_wait_flag(tp, &pd.done, 1, util_now_ns() + timeout_ns);
		if (rc != -ETIMEDOUT)
			break;
	}
	pending_del(tp, &pd);
	if (atomic_load(&pd.done)) { /* also when it raced with the timeout */
		rc = pd.rc;
		*reply_len = pd.reply_len;
		if (reply_type)
			*reply_type = pd.reply_type;
	} else if (rc == -ETIMEDOUT) {
		TP_STAT_INC(tp, req_timeouts);
	}
	return rc;
}

int tp_request(struct tp *tp, int dst, uint32_t type, const void *req, size_t len, void *reply,
	       size_t *reply_len, uint64_t timeout_ns, int retries)
{
	return tp_request_ex(tp, dst, type, req, len, NULL, reply, reply_len, timeout_ns, retries);
}

/* ---- PING ---- */

static void ping_handler(void *arg, const struct tp_msg *m)
{
	tp_reply(arg, m, MSG_TYPE__MSG_PONG, m->payload, m->len);
}

void tp_builtin_handlers(struct tp *tp)
{
	tp_handler_set(tp, MSG_TYPE__MSG_PING, ping_handler, tp);
}

int tp_ping(struct tp *tp, int peer, uint64_t timeout_ns, uint64_t *rtt_ns)
{
	Ping ping = PING__INIT, *pong;
	uint8_t req[32], rep[64];
	size_t rep_len = sizeof(rep);
	uint32_t rtype = 0;
	uint64_t t0 = util_now_ns();
	int rc;

	ping.nonce = atomic_fetch_add(&tp->next_seq, 1) ^ 0x5a5a5a5a5a5a5a5aull;
	ping.send_ns = t0;
	rc = tp_request_ex(tp, peer, MSG_TYPE__MSG_PING, req, ping__pack(&ping, req), &rtype, rep,
			   &rep_len, timeout_ns, 2);
	if (rc)
		return rc;
	pong = ping__unpack(NULL, rep_len, rep);
	if (rtype != MSG_TYPE__MSG_PONG || !pong || pong->nonce != ping.nonce) {
		if (pong)
			ping__free_unpacked(pong, NULL);
		LOG_WARN(TP_SUBSYS, "node %d: peer %d answered PING with a bad PONG", tp->cfg.node_id,
			 peer);
		return -EPROTO;
	}
	ping__free_unpacked(pong, NULL);
	if (rtt_ns)
		*rtt_ns = util_now_ns() - t0;
	return 0;
}
