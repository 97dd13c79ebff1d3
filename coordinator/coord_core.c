/*
 * Coordinator state machine (no I/O; see coord.h).
 *
 * Why a restarted node replaces its stale twin only during JOIN: before the
 * membership table is out nobody depends on the old incarnation's fabric
 * address, so the newest join wins (the host may have rebooted and left a
 * half-open connection).  Once the table is out, peers hold the old
 * address and memory key; a second join of the same id is then a
 * duplicate (or a rejoin we do not support yet) and is refused.
 *
 * Why a node that closes its connection after the table is out is failed at
 * once rather than after the lease: a closed TCP connection means the
 * process is gone (the kernel closes it on exit or SIGKILL); the lease
 * covers the case the kernel cannot see (hung process, dead host, cut
 * network).
 */
#include "coordinator/coord_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *coord_state_name(CtlNodeState s)
{
	switch (s) {
	case ST_JOINING: return "joining";
	case ST_READY: return "ready";
	case ST_RUNNING: return "running";
	case ST_FAILED: return "failed";
	case ST_STOPPED: return "stopped";
	default: return "invalid";
	}
}

const char *coord_phase_name(CtlPhase p)
{
	switch (p) {
	case PH_JOIN: return "join";
	case PH_BARRIER: return "barrier";
	case PH_RUNNING: return "running";
	case PH_STOPPING: return "stopping";
	case PH_STOPPED: return "stopped";
	default: return "invalid";
	}
}

int coord_create(const struct coord_cfg *cfg, const struct coord_io *io, uint64_t now_ns,
		 struct coord **out)
{
	struct coord *c;

	*out = NULL;
	if (!cfg || !cfg->cfg || !io || !io->send || !io->close || !cfg->secret ||
	    cfg->secret_len < CONFIG_SECRET_MIN || cfg->secret_len > CONFIG_SECRET_MAX)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cfg = cfg->cfg;
	c->io = *io;
	memcpy(c->secret, cfg->secret, cfg->secret_len);
	c->secret_len = cfg->secret_len;
	c->nnodes = c->cfg->nnodes;
	for (uint32_t i = 0; i < c->nnodes; i++) {
		c->nodes[i].cfgn = &c->cfg->nodes[i];
		c->nodes[i].state = ST_JOINING;
		c->nodes[i].conn = -1;
	}
	c->phase = PH_JOIN;
	c->start_ns = c->phase_ns = c->now_ns = now_ns;
	*out = c;
	return 0;
}

void coord_destroy(struct coord *c)
{
	if (!c)
		return;
	for (int i = 0; i < COORD_MAX_CONNS; i++)
		if (c->conns[i].used)
			c->io.close(c->io.arg, i);
	memset(c->secret, 0, sizeof(c->secret));
	free(c);
}

bool coord_done(const struct coord *c, int *exit_code)
{
	if (exit_code)
		*exit_code = c->exit_code;
	return c->phase == PH_STOPPED;
}

bool coord_guest_exit(const struct coord *c, int *code)
{
	if (code)
		*code = c->guest_exit;
	return c->guest_exited;
}

CtlPhase coord_phase(const struct coord *c)
{
	return c->phase;
}

uint64_t coord_epoch(const struct coord *c)
{
	return c->epoch;
}

struct cnode *coord_node(struct coord *c, uint32_t id)
{
	for (uint32_t i = 0; i < c->nnodes; i++)
		if (c->nodes[i].cfgn->id == id)
			return &c->nodes[i];
	return NULL;
}

CtlNodeState coord_node_state(const struct coord *c, uint32_t node_id)
{
	struct cnode *n = coord_node((struct coord *)c, node_id);
	return n ? n->state : ST_INVALID;
}

/* ---- sending ------------------------------------------------------------- */

void coord_send(struct coord *c, int conn, CtlMsg *m)
{
	if (conn < 0 || !c->conns[conn].used)
		return;
	if (c->io.send(c->io.arg, conn, m)) {
		LOG_WARN("coord", "send on connection %d failed; closing it", conn);
		coord_drop_conn(c, conn, "send failed");
	}
}

__attribute__((format(printf, 4, 5))) void coord_reject(struct coord *c, int conn,
							CtlErrorCode code, const char *fmt, ...)
{
	CtlError e = CTL_ERROR__INIT;
	CtlMsg m = CTL_MSG__INIT;
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e.code = code;
	e.message = msg;
	m.body_case = CTL_MSG__BODY_ERROR;
	m.error = &e;
	LOG_WARN("coord", "rejecting connection %d (%s, pid %u): %s", conn, c->conns[conn].host,
		 c->conns[conn].pid, msg);
	coord_send(c, conn, &m);
	coord_drop_conn(c, conn, msg);
}

/* Forget conn (closing it); a node on it loses its connection. */
void coord_drop_conn(struct coord *c, int conn, const char *why)
{
	struct conn *k = &c->conns[conn];

	if (!k->used)
		return;
	k->used = false;
	c->io.close(c->io.arg, conn);
	for (uint32_t i = 0; i < c->nnodes; i++)
		if (c->nodes[i].conn == conn) {
			c->nodes[i].conn = -1;
			coord_node_lost(c, &c->nodes[i], why);
		}
}

/* ---- connections and handshake -------------------------------------------- */

int coord_on_connect(struct coord *c, int conn, uint64_t now_ns)
{
	c->now_ns = now_ns;
	if (conn < 0 || conn >= COORD_MAX_CONNS || c->conns[conn].used)
		return -EBUSY;
	memset(&c->conns[conn], 0, sizeof(c->conns[conn]));
	c->conns[conn].used = true;
	c->conns[conn].opened_ns = now_ns;
	snprintf(c->conns[conn].host, sizeof(c->conns[conn].host), "?");
	return 0;
}

void coord_on_close(struct coord *c, int conn, uint64_t now_ns)
{
	c->now_ns = now_ns;
	if (conn < 0 || conn >= COORD_MAX_CONNS || !c->conns[conn].used)
		return;
	coord_drop_conn(c, conn, "connection closed");
}

static void on_hello(struct coord *c, int conn, const CtlHello *h, uint64_t now_ns)
{
	struct conn *k = &c->conns[conn];
	CtlChallenge ch = CTL_CHALLENGE__INIT;
	CtlMsg m = CTL_MSG__INIT;

	snprintf(k->host, sizeof(k->host), "%s", h->host ? h->host : "?");
	k->pid = h->pid;
	if (h->version != 1)
		return coord_reject(c, conn, CTL_ERR_VERSION,
				    "protocol version %u is not supported (coordinator speaks 1)",
				    h->version);
	if (h->nonce.len != CONFIG_NONCE_LEN)
		return coord_reject(c, conn, CTL_ERR_PROTOCOL, "hello nonce must be %d bytes",
				    CONFIG_NONCE_LEN);
	if (h->role != CTL_ROLE_NODE && h->role != CTL_ROLE_CLIENT)
		return coord_reject(c, conn, CTL_ERR_PROTOCOL, "unknown role %d", (int)h->role);
	k->role = h->role;
	k->node_id = h->node_id;
	memcpy(k->nonce_n, h->nonce.data, CONFIG_NONCE_LEN);
	config_random(k->nonce_c, CONFIG_NONCE_LEN);
	ch.nonce.data = k->nonce_c;
	ch.nonce.len = CONFIG_NONCE_LEN;
	m.body_case = CTL_MSG__BODY_CHALLENGE;
	m.challenge = &ch;
	k->stage = STAGE_AUTH;
	coord_send(c, conn, &m);
}

static void send_joined(struct coord *c, int conn)
{
	struct conn *k = &c->conns[conn];
	uint8_t proof[CONFIG_PROOF_LEN];
	CtlJoined j = CTL_JOINED__INIT;
	CtlMsg m = CTL_MSG__INIT;

	config_auth_proof(c->secret, c->secret_len, "coord", k->node_id, k->nonce_n, k->nonce_c,
			  proof);
	j.proof.data = proof;
	j.proof.len = sizeof(proof);
	j.expected = c->nnodes;
	for (uint32_t i = 0; i < c->nnodes; i++)
		j.joined += c->nodes[i].conn >= 0;
	m.body_case = CTL_MSG__BODY_JOINED;
	m.joined = &j;
	coord_send(c, conn, &m);
}

static void known_ids(const struct coord *c, char *buf, size_t n)
{
	size_t off = 0;
	buf[0] = 0;
	for (uint32_t i = 0; i < c->nnodes && off < n; i++)
		off += (size_t)snprintf(buf + off, n - off, "%s%u", i ? ", " : "",
					c->nodes[i].cfgn->id);
}

/* Checks a node's join against the table; 0 or rejects (and returns -1). */
static int admit_node(struct coord *c, int conn, const CtlAuth *a, struct cnode **out)
{
	struct conn *k = &c->conns[conn];
	struct cnode *n = coord_node(c, k->node_id);
	char ids[200];

	if (!n) {
		known_ids(c, ids, sizeof(ids));
		coord_reject(c, conn, CTL_ERR_UNKNOWN_NODE,
			     "node id %u is not in the cluster config (configured: %s)", k->node_id,
			     ids);
		return -1;
	}
	if (a->mem_bytes != c->cfg->mem_bytes) {
		coord_reject(c, conn, CTL_ERR_MISMATCH,
			     "node %u registered %llu bytes of guest RAM, config says %llu "
			     "(different config files?)",
			     k->node_id, (unsigned long long)a->mem_bytes,
			     (unsigned long long)c->cfg->mem_bytes);
		return -1;
	}
	if (a->fabric_addr.len == 0 || a->fabric_addr.len > COORD_ADDR_MAX) {
		coord_reject(c, conn, CTL_ERR_PROTOCOL, "fabric address of %zu bytes (want 1..%d)",
			     a->fabric_addr.len, COORD_ADDR_MAX);
		return -1;
	}
	if (c->phase != PH_JOIN) {
		coord_reject(c, conn, CTL_ERR_DUPLICATE,
			     "node %u is already a member of the cluster (state %s, phase %s); "
			     "duplicate join refused",
			     k->node_id, coord_state_name(n->state), coord_phase_name(c->phase));
		return -1;
	}
	if (n->conn >= 0) {
		int old = n->conn;
		LOG_WARN("coord", "node %u joins again (pid %u, was pid %u): replacing the stale one",
			 k->node_id, k->pid, n->pid);
		n->conn = -1; /* not a loss: the new incarnation takes over */
		coord_reject(c, old, CTL_ERR_REPLACED,
			     "node %u was replaced by a newer join (pid %u from %s)", k->node_id,
			     k->pid, k->host);
	}
	*out = n;
	return 0;
}

static void on_auth(struct coord *c, int conn, const CtlAuth *a, uint64_t now_ns)
{
	struct conn *k = &c->conns[conn];
	uint8_t want[CONFIG_PROOF_LEN];
	struct cnode *n;

	config_auth_proof(c->secret, c->secret_len, "node", k->node_id, k->nonce_c, k->nonce_n,
			  want);
	if (a->proof.len != CONFIG_PROOF_LEN || !config_proof_equal(a->proof.data, want))
		return coord_reject(c, conn, CTL_ERR_AUTH,
				    "authentication failed: wrong cluster secret (%s %u from %s)",
				    k->role == CTL_ROLE_NODE ? "node" : "client", k->node_id,
				    k->host);
	if (k->role == CTL_ROLE_CLIENT) {
		k->stage = STAGE_READY;
		send_joined(c, conn);
		return;
	}
	if (admit_node(c, conn, a, &n))
		return;
	k->stage = STAGE_READY;
	n->conn = conn;
	n->state = ST_JOINING;
	n->addrlen = a->fabric_addr.len;
	memcpy(n->addr, a->fabric_addr.data, a->fabric_addr.len);
	n->mr_key = a->mr_key;
	n->mr_base = a->mr_base;
	n->pid = k->pid;
	memcpy(n->host, k->host, sizeof(n->host));
	n->last_hb_ns = now_ns;
	n->reason[0] = 0;
	send_joined(c, conn);
	LOG_INFO("coord", "node %u joined (pid %u, %s)", n->cfgn->id, n->pid, n->host);
	if (a->clock_sync) /* nodes that can: a per-node mtime offset before Start */
		coord_clock_begin(c, n, now_ns);
	coord_maybe_membership(c, now_ns);
}

void coord_on_msg(struct coord *c, int conn, const CtlMsg *m, uint64_t now_ns)
{
	struct conn *k;

	c->now_ns = now_ns;
	if (conn < 0 || conn >= COORD_MAX_CONNS || !c->conns[conn].used)
		return;
	k = &c->conns[conn];
	switch (k->stage) {
	case STAGE_HELLO:
		if (m->body_case != CTL_MSG__BODY_HELLO)
			return coord_reject(c, conn, CTL_ERR_PROTOCOL, "expected hello first");
		return on_hello(c, conn, m->hello, now_ns);
	case STAGE_AUTH:
		if (m->body_case != CTL_MSG__BODY_AUTH)
			return coord_reject(c, conn, CTL_ERR_PROTOCOL,
					    "expected the authentication proof");
		return on_auth(c, conn, m->auth, now_ns);
	default:
		if (k->role == CTL_ROLE_CLIENT)
			return coord_client_msg(c, conn, m, now_ns);
		return coord_node_msg(c, conn, m, now_ns);
	}
}
