/*
 * Cluster life of the coordinator: membership table, start barrier,
 * heartbeats and leases, failure notices, orderly stop, status.
 *
 * The stop is ordered: nodes are stopped one at a time in reverse config
 * order (the first node listed, which hosts the console and devices by
 * convention, goes last), each given one lease to acknowledge.  One at a
 * time keeps the order observable and lets a later VM layer drain a node's
 * pages to the ones still up.  Before it, every node halts its harts
 * (CtlHalt, all at once, at most one lease): a hart still running on a
 * node not yet stopped would fault on pages homed at one already gone.
 */
#include "coordinator/coord_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool node_live(const struct cnode *n)
{
	return n->state == ST_JOINING || n->state == ST_READY || n->state == ST_RUNNING;
}

static void broadcast(struct coord *c, CtlMsg *m, const struct cnode *except)
{
	for (uint32_t i = 0; i < c->nnodes; i++) {
		struct cnode *n = &c->nodes[i];
		if (n != except && n->conn >= 0 && node_live(n))
			coord_send(c, n->conn, m);
	}
}

static void set_phase(struct coord *c, CtlPhase p)
{
	LOG_INFO("coord", "phase %s -> %s", coord_phase_name(c->phase), coord_phase_name(p));
	c->phase = p;
	c->phase_ns = c->now_ns;
}

void coord_maybe_membership(struct coord *c, uint64_t now_ns)
{
	CtlMember members[CONFIG_MAX_NODES], *mp[CONFIG_MAX_NODES];
	CtlMembership mb = CTL_MEMBERSHIP__INIT;
	CtlMsg m = CTL_MSG__INIT;

	if (c->phase != PH_JOIN)
		return;
	for (uint32_t i = 0; i < c->nnodes; i++)
		if (c->nodes[i].conn < 0)
			return;
	for (uint32_t i = 0; i < c->nnodes; i++) {
		struct cnode *n = &c->nodes[i];
		ctl_member__init(&members[i]);
		members[i].node_id = n->cfgn->id;
		members[i].fabric_addr.data = n->addr;
		members[i].fabric_addr.len = n->addrlen;
		members[i].mr_key = n->mr_key;
		members[i].mr_base = n->mr_base;
		members[i].n_vcpus = n->cfgn->nvcpus;
		members[i].vcpus = (uint32_t *)n->cfgn->vcpus;
		members[i].host = n->host;
		members[i].pid = n->pid;
		mp[i] = &members[i];
	}
	c->epoch = 1;
	mb.epoch = c->epoch;
	mb.vm_name = (char *)c->cfg->name;
	mb.mem_bytes = c->cfg->mem_bytes;
	mb.provider = (char *)c->cfg->provider;
	mb.heartbeat_ms = c->cfg->heartbeat_ms;
	mb.lease_ms = c->cfg->lease_ms;
	mb.n_members = c->nnodes;
	mb.members = mp;
	m.body_case = CTL_MSG__BODY_MEMBERSHIP;
	m.membership = &mb;
	LOG_INFO("coord", "all %u nodes joined: membership epoch %llu sent", c->nnodes,
		 (unsigned long long)c->epoch);
	set_phase(c, PH_BARRIER);
	broadcast(c, &m, NULL);
}

static void maybe_start(struct coord *c)
{
	CtlStart st = CTL_START__INIT;
	CtlMsg m = CTL_MSG__INIT;

	if (c->phase != PH_BARRIER)
		return;
	for (uint32_t i = 0; i < c->nnodes; i++)
		if (c->nodes[i].state != ST_READY)
			return;
	for (uint32_t i = 0; i < c->nnodes; i++) {
		c->nodes[i].state = ST_RUNNING;
		for (uint32_t j = 0; j < c->nnodes; j++) /* the barrier checked every pair */
			c->nodes[i].seen_ns[j] = c->now_ns;
	}
	st.epoch = c->epoch;
	m.body_case = CTL_MSG__BODY_START;
	m.start = &st;
	set_phase(c, PH_RUNNING);
	broadcast(c, &m, NULL);
}

static void declare_failed(struct coord *c, struct cnode *n, const char *why)
{
	CtlNodeFailed nf = CTL_NODE_FAILED__INIT;
	CtlMsg m = CTL_MSG__INIT;
	char reason[240];

	n->state = ST_FAILED;
	snprintf(n->reason, sizeof(n->reason), "%s", why);
	c->epoch++;
	LOG_ERR("coord", "node %u failed: %s (epoch now %llu)", n->cfgn->id, why,
		(unsigned long long)c->epoch);
	if (n->conn >= 0) {
		int conn = n->conn;
		n->conn = -1;
		coord_drop_conn(c, conn, why);
	}
	nf.node_id = n->cfgn->id;
	nf.epoch = c->epoch;
	nf.reason = n->reason;
	m.body_case = CTL_MSG__BODY_NODE_FAILED;
	m.node_failed = &nf;
	broadcast(c, &m, n);
	/* Without every node the start barrier can never complete. */
	if (c->cfg->stop_on_failure || c->phase == PH_BARRIER) {
		snprintf(reason, sizeof(reason), "node %u failed: %s", n->cfgn->id, why);
		coord_begin_stop(c, reason, 1);
	}
}

static void advance_stop(struct coord *c);

void coord_node_lost(struct coord *c, struct cnode *n, const char *why)
{
	switch (c->phase) {
	case PH_JOIN:
		LOG_WARN("coord", "node %u left during the join phase (%s); waiting for it again",
			 n->cfgn->id, why);
		n->state = ST_JOINING;
		break;
	case PH_BARRIER:
	case PH_RUNNING:
		if (node_live(n))
			declare_failed(c, n, why);
		break;
	case PH_STOPPING:
		if (n->stop_sent_ns && node_live(n)) {
			n->state = ST_STOPPED;
			snprintf(n->reason, sizeof(n->reason), "%s", c->stop_reason);
		} else if (node_live(n)) {
			n->state = ST_FAILED;
			snprintf(n->reason, sizeof(n->reason), "%s during stop", why);
		}
		advance_stop(c);
		break;
	default:
		break;
	}
}

static void send_stop_replies(struct coord *c)
{
	CtlStopReply r = CTL_STOP_REPLY__INIT;
	CtlMsg m = CTL_MSG__INIT;

	r.ok = true;
	r.message = c->stop_reason;
	r.guest_exited = c->guest_exited;
	r.guest_exit = c->guest_exit;
	m.body_case = CTL_MSG__BODY_STOP_REPLY;
	m.stop_reply = &r;
	for (int i = 0; i < COORD_MAX_CONNS; i++)
		if (c->conns[i].used && c->conns[i].wants_stop_reply) {
			c->conns[i].wants_stop_reply = false;
			coord_send(c, i, &m);
		}
}

/* The stop's first phase: every live node halts its harts, so none of
 * them faults on a page homed at a node the second phase already stopped. */
static void begin_halt(struct coord *c)
{
	CtlHalt h = CTL_HALT__INIT;
	CtlMsg m = CTL_MSG__INIT;

	h.reason = c->stop_reason;
	m.body_case = CTL_MSG__BODY_HALT;
	m.halt = &h;
	for (uint32_t i = 0; i < c->nnodes; i++) {
		struct cnode *n = &c->nodes[i];
		if (n->conn < 0 || !node_live(n))
			continue;
		n->halt_sent = true;
		c->halting = true;
		coord_send(c, n->conn, &m);
	}
	c->halt_ns = c->now_ns;
}

/* Asked to halt, still connected and live, no HaltAck yet. */
static bool halt_pending(const struct cnode *n)
{
	return n->conn >= 0 && node_live(n) && n->halt_sent && !n->halted;
}

static bool halt_done(const struct coord *c)
{
	for (uint32_t i = 0; i < c->nnodes; i++)
		if (halt_pending(&c->nodes[i]))
			return false;
	return true;
}

/* Past a lease without every HaltAck: go on with the ordered stop (its
 * settle and the DSM stop end what still runs). */
static void check_halt_timeout(struct coord *c, uint64_t now_ns)
{
	char ids[120] = "";
	size_t off = 0;

	if (c->phase != PH_STOPPING || !c->halting ||
	    now_ns - c->halt_ns <= (uint64_t)c->cfg->lease_ms * 1000000)
		return;
	for (uint32_t i = 0; i < c->nnodes && off < sizeof(ids); i++) {
		if (halt_pending(&c->nodes[i]))
			off += (size_t)snprintf(ids + off, sizeof(ids) - off, "%s%u", off ? "," : "",
						c->nodes[i].cfgn->id);
	}
	LOG_WARN("coord", "node(s) %s did not halt within %u ms; stopping anyway", ids,
		 c->cfg->lease_ms);
	c->halting = false;
	advance_stop(c);
}

static void on_halt_ack(struct coord *c, struct cnode *n, const CtlHaltAck *a)
{
	n->halted = true;
	if (a->harts_left)
		LOG_WARN("coord", "node %u: %u hart(s) did not halt", n->cfgn->id, a->harts_left);
	advance_stop(c);
}

/* Stops the next live node (reverse config order) once every node halted;
 * STOPPED when none is left. */
static void advance_stop(struct coord *c)
{
	CtlStop st = CTL_STOP__INIT;
	CtlMsg m = CTL_MSG__INIT;

	if (c->phase != PH_STOPPING)
		return;
	if (c->halting && !halt_done(c))
		return;
	c->halting = false;
	for (uint32_t i = c->nnodes; i-- > 0;) {
		struct cnode *n = &c->nodes[i];
		if (!node_live(n))
			continue;
		if (n->conn < 0) { /* never joined (or left during join) */
			n->state = ST_STOPPED;
			snprintf(n->reason, sizeof(n->reason), "never joined");
			continue;
		}
		if (n->stop_sent_ns)
			return; /* waiting for its ack */
		n->stop_sent_ns = c->now_ns ? c->now_ns : 1;
		st.reason = c->stop_reason;
		m.body_case = CTL_MSG__BODY_STOP;
		m.stop = &st;
		LOG_INFO("coord", "stopping node %u", n->cfgn->id);
		coord_send(c, n->conn, &m);
		return;
	}
	set_phase(c, PH_STOPPED);
	send_stop_replies(c);
}

void coord_begin_stop(struct coord *c, const char *reason, int exit_code)
{
	if (exit_code > c->exit_code)
		c->exit_code = exit_code;
	if (c->phase == PH_STOPPING || c->phase == PH_STOPPED)
		return;
	snprintf(c->stop_reason, sizeof(c->stop_reason), "%s", reason);
	LOG_INFO("coord", "orderly stop: %s", reason);
	set_phase(c, PH_STOPPING);
	begin_halt(c);
	advance_stop(c);
}

void coord_stop(struct coord *c, const char *reason, uint64_t now_ns)
{
	c->now_ns = now_ns;
	coord_begin_stop(c, reason, 0);
}

static void on_ready(struct coord *c, struct cnode *n, const CtlReady *r)
{
	char why[240];

	if (c->phase != PH_BARRIER || n->state != ST_JOINING) {
		LOG_WARN("coord", "node %u: ready in phase %s ignored", n->cfgn->id,
			 coord_phase_name(c->phase));
		return;
	}
	n->peers_checked = r->peers_checked;
	if (!r->ok) {
		snprintf(why, sizeof(why), "peer checks failed: %s", r->message ? r->message : "?");
		declare_failed(c, n, why);
		return;
	}
	n->state = ST_READY;
	LOG_INFO("coord", "node %u ready (%u peer checks passed)", n->cfgn->id, r->peers_checked);
	maybe_start(c);
}

/*
 * The guest ended (HTIF exit on one of n's harts): the VM is done, so the
 * cluster stops in order as if a client had asked.  The first report wins;
 * the guest can only run after Start, so earlier reports are ignored.
 */
static void on_guest_exit(struct coord *c, struct cnode *n, int32_t code)
{
	char why[120];

	if (c->phase != PH_RUNNING && c->phase != PH_STOPPING) {
		LOG_WARN("coord", "node %u: guest exit in phase %s ignored", n->cfgn->id,
			 coord_phase_name(c->phase));
		return;
	}
	if (c->guest_exited) {
		LOG_INFO("coord", "node %u: guest exit %d (already exited with %d)", n->cfgn->id,
			 (int)code, (int)c->guest_exit);
		return;
	}
	c->guest_exited = true;
	c->guest_exit = code;
	snprintf(why, sizeof(why), "guest exited with code %d on node %u", (int)code, n->cfgn->id);
	LOG_INFO("coord", "%s", why);
	coord_begin_stop(c, why, 0);
}

/* What reporter n's data plane saw of its peers (node_watch on the node). */
static void note_peer_reports(struct coord *c, struct cnode *n, const CtlHeartbeat *hb,
			      uint64_t now_ns)
{
	uint32_t me = (uint32_t)(n - c->nodes);

	if ((c->phase != PH_RUNNING && c->phase != PH_STOPPING) || !hb->n_peers)
		return;
	n->report_ns = now_ns;
	if (n->cut_noted) {
		LOG_INFO("coord", "node %u heard again", n->cfgn->id);
		n->cut_noted = false;
		n->reason[0] = 0;
	}
	for (size_t i = 0; i < hb->n_peers; i++) {
		struct cnode *q = coord_node(c, hb->peers[i]->node_id);
		uint64_t age = (uint64_t)hb->peers[i]->age_ms * 1000000;
		if (!q || q == n)
			continue;
		q->about_ns[me] = now_ns;
		if (hb->peers[i]->age_ms == 0xffffffffu || age > now_ns)
			continue; /* "never": says nothing good about q */
		if (now_ns - age > q->seen_ns[me])
			q->seen_ns[me] = now_ns - age;
		LOG_DBG("coord", "node %u: saw node %u %u ms ago", n->cfgn->id, q->cfgn->id,
			hb->peers[i]->age_ms);
	}
}

static void add_pages(uint64_t *dst, size_t *n, const uint64_t *src, size_t cnt)
{
	for (size_t i = 0; i < cnt && *n < COORD_LOST_MAX; i++)
		dst[(*n)++] = src[i];
}

/* A survivor's StopAck after a failure names the pages it is home of whose
 * only copies were on the failed nodes (docs/deploy.md "Lost pages"). */
static void note_lost_pages(struct coord *c, struct cnode *n, const CtlStopAck *a)
{
	bool any_failed = false;

	for (uint32_t i = 0; i < c->nnodes; i++)
		any_failed |= c->nodes[i].state == ST_FAILED;
	if (!any_failed)
		return;
	c->lost_reports++;
	c->lost_total += a->lost_total;
	add_pages(c->lost, &c->nlost, a->lost_pages, a->n_lost_pages);
	add_pages(c->uncertain, &c->nuncertain, a->uncertain_pages, a->n_uncertain_pages);
	if (a->lost_total || a->n_uncertain_pages)
		LOG_ERR("coord", "node %u: %llu guest pages had their only copy on a failed node, "
				 "%zu more were in flight with it", n->cfgn->id,
			(unsigned long long)a->lost_total, a->n_uncertain_pages);
}

void coord_node_msg(struct coord *c, int conn, const CtlMsg *m, uint64_t now_ns)
{
	struct cnode *n = coord_node(c, c->conns[conn].node_id);
	CtlHeartbeatAck ack = CTL_HEARTBEAT_ACK__INIT;
	CtlMsg r = CTL_MSG__INIT;

	if (!n || n->conn != conn)
		return coord_reject(c, conn, CTL_ERR_PROTOCOL, "connection is not a member");
	switch (m->body_case) {
	case CTL_MSG__BODY_HEARTBEAT:
		n->last_hb_ns = now_ns;
		note_peer_reports(c, n, m->heartbeat, now_ns);
		ack.seq = m->heartbeat->seq;
		r.body_case = CTL_MSG__BODY_HEARTBEAT_ACK;
		r.heartbeat_ack = &ack;
		coord_send(c, conn, &r);
		return;
	case CTL_MSG__BODY_READY:
		n->last_hb_ns = now_ns;
		return on_ready(c, n, m->ready);
	case CTL_MSG__BODY_CLOCK_REPLY:
		return coord_clock_reply(c, n, m->clock_reply, now_ns);
	case CTL_MSG__BODY_GUEST_EXIT:
		n->last_hb_ns = now_ns;
		return on_guest_exit(c, n, m->guest_exit->code);
	case CTL_MSG__BODY_HALT_ACK:
		n->last_hb_ns = now_ns;
		return on_halt_ack(c, n, m->halt_ack);
	case CTL_MSG__BODY_STOP_ACK:
		note_lost_pages(c, n, m->stop_ack);
		n->conn = -1;
		if (node_live(n)) {
			n->state = ST_STOPPED;
			snprintf(n->reason, sizeof(n->reason), "%s",
				 c->stop_reason[0] ? c->stop_reason : "stopped");
		}
		coord_drop_conn(c, conn, "stopped");
		advance_stop(c);
		return;
	default:
		return coord_reject(c, conn, CTL_ERR_PROTOCOL, "unexpected message %d from node %u",
				    (int)m->body_case, n->cfgn->id);
	}
}

static void fill_node_status(struct coord *c, struct cnode *n, CtlNodeStatus *s, char *hex,
			     size_t hexlen)
{
	size_t off = 0;

	ctl_node_status__init(s);
	s->node_id = n->cfgn->id;
	s->state = n->state;
	s->connected = n->conn >= 0;
	s->pid = n->pid;
	s->host = n->host;
	s->n_vcpus = n->cfgn->nvcpus;
	s->vcpus = (uint32_t *)n->cfgn->vcpus;
	s->peers_checked = n->peers_checked;
	s->heartbeat_age_ms =
		n->last_hb_ns ? (int64_t)((c->now_ns - n->last_hb_ns) / 1000000) : -1;
	s->reason = n->reason;
	for (size_t i = 0; i < n->addrlen && off + 3 <= hexlen; i++)
		off += (size_t)snprintf(hex + off, hexlen - off, "%02x", n->addr[i]);
	hex[off] = 0;
	s->fabric_addr = hex;
}

/* Fills sr; the node entries live in the caller's arrays. */
static void fill_status(struct coord *c, CtlStatusReply *sr, CtlNodeStatus *ns, CtlNodeStatus **np,
			char (*hex)[2 * COORD_ADDR_MAX + 1])
{
	for (uint32_t i = 0; i < c->nnodes; i++) {
		fill_node_status(c, &c->nodes[i], &ns[i], hex[i], sizeof(hex[i]));
		np[i] = &ns[i];
	}
	sr->vm_name = (char *)c->cfg->name;
	sr->phase = c->phase;
	sr->epoch = c->epoch;
	sr->mem_bytes = c->cfg->mem_bytes;
	sr->vcpus = c->cfg->nvcpus;
	sr->provider = (char *)c->cfg->provider;
	sr->uptime_ms = (c->now_ns - c->start_ns) / 1000000;
	sr->lease_ms = c->cfg->lease_ms;
	sr->n_nodes = c->nnodes;
	sr->nodes = np;
	sr->guest_exited = c->guest_exited;
	sr->guest_exit = c->guest_exit;
	sr->n_lost_pages = c->nlost;
	sr->lost_pages = c->lost;
	sr->lost_total = c->lost_total;
	sr->n_uncertain_pages = c->nuncertain;
	sr->uncertain_pages = c->uncertain;
	sr->lost_reports = c->lost_reports;
}

static char status_hex[CONFIG_MAX_NODES][2 * COORD_ADDR_MAX + 1]; /* one thread */

static void send_status(struct coord *c, int conn)
{
	CtlNodeStatus ns[CONFIG_MAX_NODES], *np[CONFIG_MAX_NODES];
	CtlStatusReply sr = CTL_STATUS_REPLY__INIT;
	CtlMsg m = CTL_MSG__INIT;

	fill_status(c, &sr, ns, np, status_hex);
	m.body_case = CTL_MSG__BODY_STATUS_REPLY;
	m.status_reply = &sr;
	coord_send(c, conn, &m);
}

int coord_status_pack(struct coord *c, bool final, uint64_t now_ns, uint8_t **buf, size_t *len)
{
	CtlNodeStatus ns[CONFIG_MAX_NODES], *np[CONFIG_MAX_NODES];
	CtlStatusReply sr = CTL_STATUS_REPLY__INIT;
	struct timespec ts;

	c->now_ns = now_ns;
	fill_status(c, &sr, ns, np, status_hex);
	sr.final = final;
	clock_gettime(CLOCK_REALTIME, &ts);
	sr.final_unix_ms = final ? (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 : 0;
	*len = ctl_status_reply__get_packed_size(&sr);
	*buf = malloc(*len ? *len : 1);
	if (!*buf)
		return -ENOMEM;
	ctl_status_reply__pack(&sr, *buf);
	return 0;
}

void coord_client_msg(struct coord *c, int conn, const CtlMsg *m, uint64_t now_ns)
{
	switch (m->body_case) {
	case CTL_MSG__BODY_STATUS_REQUEST:
		return send_status(c, conn);
	case CTL_MSG__BODY_STOP_REQUEST: {
		const char *why = m->stop_request->reason;
		c->conns[conn].wants_stop_reply = true;
		coord_begin_stop(c, why && *why ? why : "stop requested", 0);
		if (c->phase == PH_STOPPED)
			send_stop_replies(c);
		return;
	}
	case CTL_MSG__BODY_STOP_WAIT: /* e.g. a foreground `spanvm launch` */
		c->conns[conn].wants_stop_reply = true;
		if (c->phase == PH_STOPPED)
			send_stop_replies(c);
		return;
	default:
		return coord_reject(c, conn, CTL_ERR_PROTOCOL, "unexpected message %d from a client",
				    (int)m->body_case);
	}
}

/*
 * Partition rules while the VM runs (docs/deploy.md).  Our own silence is
 * not enough to fail a node, since we may be the one cut off; the peers'
 * reports decide, when nodes make them:
 *  - heartbeats stopped, a peer reached it within the lease: alive, only
 *    cut off from us -> not failed (noted in its status reason);
 *  - heartbeats stopped and no other node was heard well after it went
 *    silent: we are the isolated one -> no one is failed;
 *  - heartbeats stopped, others still heard, no peer vouches -> failed;
 *  - heartbeats go on but every peer that reports says it lost the node
 *    for longer than the lease -> failed (the VM cannot run without it).
 * "Well after" (half a lease) keeps nodes that went silent together, as
 * when we are cut off, from condemning each other one by one.
 * Returns true and fills why when n is to be failed.
 */
static bool lease_expired(struct coord *c, struct cnode *n, uint64_t now_ns, char *why,
			  size_t len)
{
	uint64_t lease = (uint64_t)c->cfg->lease_ms * 1000000, best = 0;
	uint32_t reporters = 0, accusers = 0, voucher = 0;
	bool others_heard = false, silent = now_ns - n->last_hb_ns > lease;

	/* While stopping, nodes not yet told to stop still run the VM. */
	if (c->phase != PH_RUNNING && c->phase != PH_STOPPING) {
		snprintf(why, len, "no heartbeat for %llu ms (lease %u ms)",
			 (unsigned long long)((now_ns - n->last_hb_ns) / 1000000), c->cfg->lease_ms);
		return silent;
	}
	for (uint32_t j = 0; j < c->nnodes; j++) {
		struct cnode *q = &c->nodes[j];
		if (q == n || !node_live(q))
			continue;
		others_heard |= q->conn >= 0 && now_ns - q->last_hb_ns <= lease &&
				q->last_hb_ns > n->last_hb_ns + lease / 2;
		if (!n->about_ns[j] || now_ns - n->about_ns[j] > lease)
			continue; /* q says nothing (recent) about n */
		reporters++;
		accusers += n->about_ns[j] - n->seen_ns[j] > lease;
		if (n->seen_ns[j] >= best) {
			best = n->seen_ns[j];
			voucher = q->cfgn->id;
		}
	}
	if (silent && reporters && now_ns - best <= lease) {
		snprintf(n->reason, sizeof(n->reason),
			 "cut off from the coordinator for %llu ms; node %u reached it %llu ms ago",
			 (unsigned long long)((now_ns - n->last_hb_ns) / 1000000), voucher,
			 (unsigned long long)((now_ns - best) / 1000000));
		if (!n->cut_noted)
			LOG_WARN("coord", "node %u: %s: not failed", n->cfgn->id, n->reason);
		n->cut_noted = true;
		return false;
	}
	if (silent && !others_heard) {
		if (!n->cut_noted)
			LOG_WARN("coord", "node %u silent for %llu ms, but so is every other node: "
					  "this coordinator is cut off; no node is declared failed",
				 n->cfgn->id, (unsigned long long)((now_ns - n->last_hb_ns) / 1000000));
		n->cut_noted = true;
		return false;
	}
	if (silent) {
		snprintf(why, len, "no heartbeat for %llu ms (lease %u ms) and no peer reached it",
			 (unsigned long long)((now_ns - n->last_hb_ns) / 1000000), c->cfg->lease_ms);
		return true;
	}
	if (reporters && accusers == reporters) {
		snprintf(why, len, "unreachable from its peers for %llu ms (lease %u ms)",
			 (unsigned long long)((now_ns - best) / 1000000), c->cfg->lease_ms);
		return true;
	}
	return false;
}

static void check_leases(struct coord *c, uint64_t now_ns)
{
	uint64_t lease = (uint64_t)c->cfg->lease_ms * 1000000;
	char why[200];

	for (uint32_t i = 0; i < c->nnodes; i++) {
		struct cnode *n = &c->nodes[i];
		if (n->conn < 0 || !node_live(n))
			continue;
		if (n->stop_sent_ns && now_ns - n->stop_sent_ns > lease) {
			snprintf(why, sizeof(why), "did not acknowledge the stop within %u ms",
				 c->cfg->lease_ms);
			LOG_WARN("coord", "node %u %s", n->cfgn->id, why);
			coord_drop_conn(c, n->conn, why);
		} else if (!n->stop_sent_ns && lease_expired(c, n, now_ns, why, sizeof(why))) {
			coord_drop_conn(c, n->conn, why);
		}
	}
}

static void check_phase_timeout(struct coord *c, uint64_t now_ns)
{
	char why[200], ids[120] = "";
	size_t off = 0;

	if ((c->phase != PH_JOIN && c->phase != PH_BARRIER) ||
	    now_ns - c->phase_ns <= (uint64_t)c->cfg->join_timeout_ms * 1000000)
		return;
	for (uint32_t i = 0; i < c->nnodes && off < sizeof(ids); i++) {
		struct cnode *n = &c->nodes[i];
		bool late = c->phase == PH_JOIN ? n->conn < 0 : n->state != ST_READY;
		if (late)
			off += (size_t)snprintf(ids + off, sizeof(ids) - off, "%s%u", off ? "," : "",
						n->cfgn->id);
	}
	snprintf(why, sizeof(why), "node(s) %s did not %s within %u ms", ids,
		 c->phase == PH_JOIN ? "join" : "pass their peer checks", c->cfg->join_timeout_ms);
	LOG_ERR("coord", "%s", why);
	coord_begin_stop(c, why, 1);
}

void coord_tick(struct coord *c, uint64_t now_ns, uint64_t *next_ns)
{
	c->now_ns = now_ns;
	for (int i = 0; i < COORD_MAX_CONNS; i++)
		if (c->conns[i].used && c->conns[i].stage != STAGE_READY &&
		    now_ns - c->conns[i].opened_ns > (uint64_t)COORD_HANDSHAKE_MS * 1000000)
			coord_reject(c, i, CTL_ERR_PROTOCOL, "handshake not completed within %d ms",
				     COORD_HANDSHAKE_MS);
	check_leases(c, now_ns);
	check_phase_timeout(c, now_ns);
	check_halt_timeout(c, now_ns);
	if (next_ns)
		*next_ns = now_ns + UTIL_MIN(50ull, c->cfg->heartbeat_ms / 2) * 1000000;
}
