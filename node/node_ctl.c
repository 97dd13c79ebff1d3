/*
 * Blocking client of the coordinator's control plane (see node.h and
 * proto/control.proto).  The node proves knowledge of the secret first
 * and then checks the coordinator's proof, so a wrong secret on either
 * side is reported, by name, on both.
 */
#include "node/node.h"
#include "proto/proto.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CTL_MAX_FRAME (256 * 1024)
#define CTL_FT CTL_FRAME__CTL_FRAME_MSG

struct node_ctl {
	int fd;
};

const char *node_state_name(CtlNodeState s)
{
	static const char *const names[] = {"invalid", "joining", "ready", "running", "failed",
					    "stopped"};
	return (unsigned)s < UTIL_ARRAY_LEN(names) ? names[s] : "invalid";
}

const char *node_phase_name(CtlPhase p)
{
	static const char *const names[] = {"invalid", "join", "barrier", "running", "stopping",
					    "stopped"};
	return (unsigned)p < UTIL_ARRAY_LEN(names) ? names[p] : "invalid";
}

int node_parse_hostport(const char *s, char *host, size_t hlen, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long p;

	if (!colon || colon == s || (size_t)(colon - s) >= hlen)
		return -EINVAL;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || errno || p <= 0 || p > 65535)
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	*port = (uint16_t)p;
	return 0;
}

/* Non-blocking connect bounded by timeout_ms. */
static int tcp_connect(const char *host, uint16_t port, int timeout_ms, int *fd_out, char *err,
		       size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
	char pstr[8];
	int fd, rc, one = 1, soerr = 0;
	socklen_t sl = sizeof(soerr);

	snprintf(pstr, sizeof(pstr), "%u", port);
	rc = getaddrinfo(host, pstr, &hints, &ai);
	if (rc) {
		snprintf(err, errlen, "cannot resolve coordinator host '%s': %s", host,
			 gai_strerror(rc));
		return -EINVAL;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(ai);
		return -errno;
	}
	rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (rc && errno == EINPROGRESS) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		rc = poll(&p, 1, timeout_ms);
		if (rc == 0)
			soerr = ETIMEDOUT;
		else if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl))
			soerr = errno;
		rc = soerr ? -1 : 0;
		errno = soerr;
	}
	if (rc) {
		rc = -errno;
		snprintf(err, errlen, "cannot connect to the coordinator at %s:%u: %s", host, port,
			 strerror(errno));
		close(fd);
		return rc;
	}
	/* The proto fd helpers poll themselves; blocking mode keeps writes whole. */
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*fd_out = fd;
	return 0;
}

int node_ctl_send(struct node_ctl *ctl, const CtlMsg *msg)
{
	return proto_msg_write_fd(ctl->fd, CTL_FT, &msg->base, 5000);
}

int node_ctl_recv(struct node_ctl *ctl, int timeout_ms, CtlMsg **out)
{
	return proto_msg_read_fd(ctl->fd, CTL_FT, &ctl_msg__descriptor, CTL_MAX_FRAME, timeout_ms,
				 (ProtobufCMessage **)out);
}

int node_ctl_fd(const struct node_ctl *ctl)
{
	return ctl->fd;
}

void node_ctl_close(struct node_ctl *ctl)
{
	if (!ctl)
		return;
	close(ctl->fd);
	free(ctl);
}

static int refusal(const CtlError *e, char *err, size_t errlen)
{
	snprintf(err, errlen, "coordinator refused: %s", e->message ? e->message : "(no reason)");
	switch (e->code) {
	case CTL_ERROR_CODE__CTL_ERR_AUTH: return -EACCES;
	case CTL_ERROR_CODE__CTL_ERR_UNKNOWN_NODE: return -ENOENT;
	case CTL_ERROR_CODE__CTL_ERR_DUPLICATE: return -EEXIST;
	default: return -EPROTO;
	}
}

/* Receives one message of kind want (or an error); err explains failures. */
static int expect(struct node_ctl *ctl, CtlMsg__BodyCase want, int timeout_ms, CtlMsg **out,
		  char *err, size_t errlen)
{
	CtlMsg *m;
	int rc = node_ctl_recv(ctl, timeout_ms, &m);

	*out = NULL;
	if (rc) {
		snprintf(err, errlen, "no answer from the coordinator: %s", strerror(-rc));
		return rc;
	}
	if (m->body_case == CTL_MSG__BODY_ERROR) {
		rc = refusal(m->error, err, errlen);
		ctl_msg__free_unpacked(m, NULL);
		return rc;
	}
	if (m->body_case != want) {
		snprintf(err, errlen, "coordinator sent message %d, expected %d", m->body_case, want);
		ctl_msg__free_unpacked(m, NULL);
		return -EPROTO;
	}
	*out = m;
	return 0;
}

static int handshake(struct node_ctl *ctl, const struct node_ctl_cfg *cfg, char *err,
		     size_t errlen)
{
	uint8_t nonce_n[CONFIG_NONCE_LEN], nonce_c[CONFIG_NONCE_LEN], proof[CONFIG_PROOF_LEN];
	CtlHello h = CTL_HELLO__INIT;
	CtlAuth a = CTL_AUTH__INIT;
	CtlMsg m = CTL_MSG__INIT, *r;
	char host[64] = "?";
	int rc;

	gethostname(host, sizeof(host) - 1);
	config_random(nonce_n, sizeof(nonce_n));
	h.version = 1;
	h.role = cfg->role;
	h.node_id = cfg->node_id;
	h.nonce.data = nonce_n;
	h.nonce.len = sizeof(nonce_n);
	h.host = host;
	h.pid = (uint32_t)getpid();
	m.body_case = CTL_MSG__BODY_HELLO;
	m.hello = &h;
	if ((rc = node_ctl_send(ctl, &m)) ||
	    (rc = expect(ctl, CTL_MSG__BODY_CHALLENGE, cfg->timeout_ms, &r, err, errlen)))
		return rc;
	if (r->challenge->nonce.len != CONFIG_NONCE_LEN) {
		ctl_msg__free_unpacked(r, NULL);
		snprintf(err, errlen, "coordinator sent a malformed challenge");
		return -EPROTO;
	}
	memcpy(nonce_c, r->challenge->nonce.data, CONFIG_NONCE_LEN);
	ctl_msg__free_unpacked(r, NULL);

	config_auth_proof(cfg->secret, cfg->secret_len, "node", cfg->node_id, nonce_c, nonce_n, proof);
	a.proof.data = proof;
	a.proof.len = sizeof(proof);
	a.fabric_addr.data = (uint8_t *)cfg->fabric_addr;
	a.fabric_addr.len = cfg->fabric_addrlen;
	a.mr_key = cfg->mr_key;
	a.mr_base = cfg->mr_base;
	a.mem_bytes = cfg->mem_bytes;
	a.clock_sync = cfg->role == CTL_ROLE__CTL_ROLE_NODE; /* node_agent.c answers probes */
	m.body_case = CTL_MSG__BODY_AUTH;
	m.auth = &a;
	if ((rc = node_ctl_send(ctl, &m)) ||
	    (rc = expect(ctl, CTL_MSG__BODY_JOINED, cfg->timeout_ms, &r, err, errlen)))
		return rc;
	config_auth_proof(cfg->secret, cfg->secret_len, "coord", cfg->node_id, nonce_n, nonce_c,
			  proof);
	rc = r->joined->proof.len == CONFIG_PROOF_LEN &&
		     config_proof_equal(r->joined->proof.data, proof)
		     ? 0
		     : -EACCES;
	if (rc)
		snprintf(err, errlen, "the coordinator could not prove the cluster secret "
				      "(a different secret file on the coordinator?)");
	else
		LOG_INFO("ctl", "authenticated to the coordinator (%u of %u nodes joined)",
			 r->joined->joined, r->joined->expected);
	ctl_msg__free_unpacked(r, NULL);
	return rc;
}

int node_ctl_connect(const struct node_ctl_cfg *cfg, struct node_ctl **out, char *err,
		     size_t errlen)
{
	struct node_ctl *ctl;
	int rc;

	*out = NULL;
	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return -ENOMEM;
	rc = tcp_connect(cfg->host, cfg->port, cfg->timeout_ms, &ctl->fd, err, errlen);
	if (rc) {
		free(ctl);
		return rc;
	}
	rc = handshake(ctl, cfg, err, errlen);
	if (rc) {
		node_ctl_close(ctl);
		return rc;
	}
	*out = ctl;
	return 0;
}

int node_ctl_call(struct node_ctl *ctl, const CtlMsg *req, CtlMsg__BodyCase want,
		  int timeout_ms, CtlMsg **reply, char *err, size_t errlen)
{
	int rc = node_ctl_send(ctl, req);
	if (rc) {
		snprintf(err, errlen, "cannot send to the coordinator: %s", strerror(-rc));
		return rc;
	}
	return expect(ctl, want, timeout_ms, reply, err, errlen);
}

void node_check_page_fill(uint8_t *page, uint32_t node_id)
{
	int n = snprintf((char *)page, 64, "spanvm check page of node %u\n", node_id);
	for (size_t i = (size_t)n; i < NODE_CHECK_PAGE; i++)
		page[i] = (uint8_t)((i * 131u + node_id * 29u + 7u) ^ (i >> 5));
}
