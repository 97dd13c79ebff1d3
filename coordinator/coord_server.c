/*
 * Coordinator server: one thread, one poll() loop, non-blocking sockets.
 * Each connection has a receive buffer (frames are cut out with
 * proto_frame_decode; a bad or oversized frame closes the connection) and
 * a send buffer (flushed when the socket is writable), so a slow or
 * malicious peer can never block the loop.  The connection id handed to the
 * state machine is the fd.
 */
#include "coordinator/coord_int.h"
#include "proto/proto.h"

#include <arpa/inet.h>
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

#define RX_MAX_FRAME (64 * 1024)
#define TX_MAX (4u << 20) /* a peer that does not read gets dropped */

struct sconn {
	bool open;    /* fd is ours */
	bool closing; /* core forgot it; close once tx is flushed */
	uint8_t *rx, *tx;
	size_t rxlen, rxcap, txlen, txcap;
};

struct server {
	struct sconn conns[COORD_MAX_CONNS];
	struct coord *coord;
	int lfd;
};

static void sconn_free(struct server *s, int fd)
{
	struct sconn *k = &s->conns[fd];
	if (!k->open)
		return;
	close(fd);
	free(k->rx);
	free(k->tx);
	memset(k, 0, sizeof(*k));
}

static int flush_tx(struct sconn *k, int fd)
{
	while (k->txlen) {
		ssize_t n = send(fd, k->tx, k->txlen, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
		memmove(k->tx, k->tx + n, k->txlen - (size_t)n);
		k->txlen -= (size_t)n;
	}
	return 0;
}

static int io_send(void *arg, int conn, const CtlMsg *msg)
{
	struct server *s = arg;
	struct sconn *k = &s->conns[conn];
	void *frame;
	size_t len;
	int rc;

	if (!k->open || k->closing)
		return -EPIPE;
	rc = proto_msg_pack(CTL_FRAME__CTL_FRAME_MSG, &msg->base, &frame, &len);
	if (rc)
		return rc;
	if (k->txlen + len > TX_MAX) {
		free(frame);
		return -ENOBUFS;
	}
	if (k->txlen + len > k->txcap) {
		size_t cap = UTIL_MAX(k->txcap * 2, k->txlen + len);
		uint8_t *p = realloc(k->tx, cap);
		if (!p) {
			free(frame);
			return -ENOMEM;
		}
		k->tx = p;
		k->txcap = cap;
	}
	memcpy(k->tx + k->txlen, frame, len);
	k->txlen += len;
	free(frame);
	return flush_tx(k, conn);
}

static void io_close(void *arg, int conn)
{
	struct server *s = arg;
	if (conn >= 0 && conn < COORD_MAX_CONNS && s->conns[conn].open)
		s->conns[conn].closing = true;
}

/* Cuts whole frames out of the rx buffer; -errno closes the connection. */
static int consume_frames(struct server *s, int fd)
{
	struct sconn *k = &s->conns[fd];
	size_t off = 0;
	int rc = 0;

	while (!k->closing) {
		struct proto_hdr h;
		const void *payload;
		rc = proto_frame_decode(k->rx + off, k->rxlen - off, RX_MAX_FRAME, &h, &payload);
		if (rc == -EAGAIN) {
			rc = 0;
			break;
		}
		if (rc) {
			LOG_WARN("coord", "connection %d: bad frame (%s); closing", fd, strerror(-rc));
			break;
		}
		if (h.type != CTL_FRAME__CTL_FRAME_MSG) {
			LOG_WARN("coord", "connection %d: frame type %u is not control; closing", fd,
				 h.type);
			rc = -EPROTO;
			break;
		}
		CtlMsg *m = ctl_msg__unpack(NULL, h.length, payload);
		off += PROTO_HDR_SIZE + h.length;
		if (!m) {
			LOG_WARN("coord", "connection %d: undecodable control message; closing", fd);
			rc = -EPROTO;
			break;
		}
		coord_on_msg(s->coord, fd, m, util_now_ns());
		ctl_msg__free_unpacked(m, NULL);
	}
	memmove(k->rx, k->rx + off, k->rxlen - off);
	k->rxlen -= off;
	return rc;
}

static void on_readable(struct server *s, int fd)
{
	struct sconn *k = &s->conns[fd];
	ssize_t n;

	if (k->rxcap - k->rxlen < 4096) {
		size_t cap = k->rxcap ? k->rxcap * 2 : 8192;
		uint8_t *p;
		if (cap > RX_MAX_FRAME + PROTO_HDR_SIZE + 8192)
			cap = RX_MAX_FRAME + PROTO_HDR_SIZE + 8192;
		p = realloc(k->rx, cap);
		if (!p)
			goto drop;
		k->rx = p;
		k->rxcap = cap;
	}
	n = recv(fd, k->rx + k->rxlen, k->rxcap - k->rxlen, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		goto drop;
	k->rxlen += (size_t)n;
	if (consume_frames(s, fd) == 0)
		return;
drop:
	if (!k->closing)
		coord_on_close(s->coord, fd, util_now_ns());
	sconn_free(s, fd);
}

static void on_accept(struct server *s)
{
	int one = 1, fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (fd >= COORD_MAX_CONNS || coord_on_connect(s->coord, fd, util_now_ns())) {
		LOG_WARN("coord", "too many connections; refusing one");
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->conns[fd].open = true;
}

static int listen_on(const char *host, uint16_t port, int *fd_out, char *bound, size_t blen,
		     char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE}, *ai;
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	char pstr[8];
	int fd, one = 1, rc;

	snprintf(pstr, sizeof(pstr), "%u", port);
	rc = getaddrinfo(host, pstr, &hints, &ai);
	if (rc) {
		snprintf(err, errlen, "cannot resolve coordinator host '%s': %s", host,
			 gai_strerror(rc));
		return -EINVAL;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 64) ||
	    getsockname(fd, (struct sockaddr *)&sa, &salen)) {
		rc = -errno;
		snprintf(err, errlen, "cannot listen on %s:%u: %s", host, port, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return rc;
	}
	freeaddrinfo(ai);
	inet_ntop(AF_INET, &sa.sin_addr, bound, (socklen_t)blen - 8);
	snprintf(bound + strlen(bound), 8, ":%u", ntohs(sa.sin_port));
	*fd_out = fd;
	return 0;
}

static int write_addr_file(const char *path, const char *addr, char *err, size_t errlen)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f || fprintf(f, "%s\n", addr) < 0 || fclose(f) || rename(tmp, path)) {
		snprintf(err, errlen, "cannot write address file %s: %s", path, strerror(errno));
		return -EIO;
	}
	return 0;
}

/* The status for `spanvm status` once we are gone (tmp + rename: a
 * reader never sees half a file). */
static int write_status_file(struct coord *c, const char *path, bool final, char *err,
			     size_t errlen)
{
	char tmp[4096];
	uint8_t *buf = NULL;
	size_t len = 0;
	FILE *f;
	int rc = coord_status_pack(c, final, util_now_ns(), &buf, &len);

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (rc == 0 && !(f = fopen(tmp, "w")))
		rc = -errno;
	else if (rc == 0) {
		bool ok = fwrite(buf, 1, len, f) == len;
		if (fclose(f) || !ok || rename(tmp, path))
			rc = -EIO;
	}
	free(buf);
	if (rc)
		snprintf(err, errlen, "cannot write status file %s: %s", path, strerror(-rc));
	return rc;
}

/* Polls once for up to timeout_ms; returns when something happened. */
static void poll_once(struct server *s, int timeout_ms, bool accept_new)
{
	static struct pollfd pfd[COORD_MAX_CONNS + 1];
	nfds_t n = 0;

	if (accept_new)
		pfd[n++] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
	for (int fd = 0; fd < COORD_MAX_CONNS; fd++) {
		struct sconn *k = &s->conns[fd];
		if (!k->open)
			continue;
		if (k->closing && !k->txlen) {
			sconn_free(s, fd);
			continue;
		}
		pfd[n++] = (struct pollfd){
			.fd = fd, .events = (short)((k->closing ? 0 : POLLIN) | (k->txlen ? POLLOUT : 0))};
	}
	if (poll(pfd, n, timeout_ms) <= 0)
		return;
	for (nfds_t i = 0; i < n; i++) {
		int fd = pfd[i].fd;
		if (!pfd[i].revents)
			continue;
		if (fd == s->lfd && accept_new) {
			on_accept(s);
			continue;
		}
		struct sconn *k = &s->conns[fd];
		if (!k->open)
			continue;
		if ((pfd[i].revents & POLLOUT) && flush_tx(k, fd)) {
			if (!k->closing)
				coord_on_close(s->coord, fd, util_now_ns());
			sconn_free(s, fd);
			continue;
		}
		if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
			if (k->closing)
				sconn_free(s, fd); /* peer went away; nothing more to say */
			else
				on_readable(s, fd);
		}
	}
}

static int run_loop(struct server *s, volatile int *stop_flag, const char *status_file)
{
	char err[4200];
	bool stop_sent = false;
	uint64_t next = 0, linger_until;
	int code = 1;

	while (!coord_done(s->coord, &code)) {
		uint64_t now = util_now_ns();
		if (stop_flag && *stop_flag && !stop_sent) {
			stop_sent = true;
			coord_stop(s->coord, "coordinator received a termination signal", now);
			continue;
		}
		if (now >= next)
			coord_tick(s->coord, now, &next);
		poll_once(s, (int)((next - UTIL_MIN(next, util_now_ns())) / 1000000) + 1, true);
	}
	if (status_file && write_status_file(s->coord, status_file, true, err, sizeof(err)))
		LOG_ERR("coord", "%s", err);
	/* Let the last replies (stop acks to clients) drain, briefly. */
	linger_until = util_now_ns() + 1000000000ull;
	for (;;) {
		bool pending = false;
		for (int fd = 0; fd < COORD_MAX_CONNS; fd++)
			pending |= s->conns[fd].open && s->conns[fd].txlen;
		if (!pending || util_now_ns() > linger_until)
			break;
		poll_once(s, 50, false);
	}
	return code;
}

int coord_server_run(const struct coord_server_cfg *scfg, char *err, size_t errlen)
{
	struct coord_cfg ccfg = {scfg->cfg, scfg->secret, scfg->secret_len};
	struct server *s = calloc(1, sizeof(*s));
	struct coord_io io = {s, io_send, io_close};
	char bound[80];
	int rc;

	if (!s)
		return -ENOMEM;
	rc = listen_on(scfg->host, scfg->port, &s->lfd, bound, sizeof(bound), err, errlen);
	if (rc)
		goto out_free;
	rc = coord_create(&ccfg, &io, util_now_ns(), &s->coord);
	if (rc) {
		snprintf(err, errlen, "coordinator set-up failed: %s", strerror(-rc));
		goto out_close;
	}
	if (scfg->addr_file && (rc = write_addr_file(scfg->addr_file, bound, err, errlen)))
		goto out_destroy;
	/* written now too: a bad path fails the start, not the end */
	if (scfg->status_file &&
	    (rc = write_status_file(s->coord, scfg->status_file, false, err, errlen)))
		goto out_destroy;
	LOG_INFO("coord", "listening on %s for %u nodes of VM '%s'", bound, scfg->cfg->nnodes,
		 scfg->cfg->name);
	rc = run_loop(s, scfg->stop_flag, scfg->status_file);
out_destroy:
	coord_destroy(s->coord);
	for (int fd = 0; fd < COORD_MAX_CONNS; fd++)
		sconn_free(s, fd);
out_close:
	close(s->lfd);
out_free:
	free(s);
	return rc;
}
