/*
 * The coordinator's TCP server on 127.0.0.1 (ephemeral port), run on a
 * thread: garbage, oversized and undecodable frames close the connection
 * without hurting the server; a client with the wrong secret is refused;
 * a good client gets status and stops the server in order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "coordinator/coord.h"
#include "proto/proto.h"

static const uint8_t secret[] = "server-test-secret-0123456789abc";

struct srv {
	struct config *cfg;
	char dir[64], addr_file[96];
	uint16_t port;
	pthread_t thr;
	int rc;
	char err[CONFIG_ERR_LEN];
};

static void *server_thread(void *arg)
{
	struct srv *s = arg;
	struct coord_server_cfg sc = {.cfg = s->cfg, .secret = secret,
				      .secret_len = sizeof(secret) - 1, .host = "127.0.0.1",
				      .port = 0, .addr_file = s->addr_file};
	s->rc = coord_server_run(&sc, s->err, sizeof(s->err));
	return NULL;
}

static struct srv *start_server(void)
{
	static const char json[] =
		"{\"version\": 1, \"vm\": {\"name\": \"s\", \"memory_mib\": 4, \"vcpus\": 1},"
		" \"nodes\": [{\"id\": 1, \"vcpus\": [0]}]}";
	struct srv *s = calloc(1, sizeof(*s));
	char err[CONFIG_ERR_LEN];
	FILE *f = NULL;

	assert_int_equal(config_load_string(json, "t", &s->cfg, err, sizeof(err)), 0);
	snprintf(s->dir, sizeof(s->dir), "/tmp/spanvm-coordsrv-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	snprintf(s->addr_file, sizeof(s->addr_file), "%s/addr", s->dir);
	assert_int_equal(pthread_create(&s->thr, NULL, server_thread, s), 0);
	for (int i = 0; i < 500 && !(f = fopen(s->addr_file, "r")); i++)
		usleep(10000);
	assert_non_null(f);
	unsigned a, b, c, d, port;
	assert_int_equal(fscanf(f, "%u.%u.%u.%u:%u", &a, &b, &c, &d, &port), 5);
	fclose(f);
	s->port = (uint16_t)port;
	return s;
}

static int dial(struct srv *s)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(s->port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* True if the server closes fd within 3 s (reads and discards anything). */
static bool closed_by_server(int fd)
{
	char buf[256];
	struct pollfd p = {.fd = fd, .events = POLLIN};
	for (int i = 0; i < 30; i++) {
		if (poll(&p, 1, 100) == 1 && recv(fd, buf, sizeof(buf), 0) <= 0)
			return true;
	}
	return false;
}

static CtlMsg *rpc(int fd, CtlMsg *m)
{
	CtlMsg *r = NULL;
	assert_int_equal(proto_msg_write_fd(fd, CTL_FRAME__CTL_FRAME_MSG, &m->base, 2000), 0);
	assert_int_equal(proto_msg_read_fd(fd, CTL_FRAME__CTL_FRAME_MSG, &ctl_msg__descriptor,
					   1 << 20, 2000, (ProtobufCMessage **)&r),
			 0);
	return r;
}

/* Client handshake with key; returns the final answer (joined or error). */
static CtlMsg *client_handshake(int fd, const uint8_t *key)
{
	uint8_t nn[CONFIG_NONCE_LEN] = {7}, proof[CONFIG_PROOF_LEN];
	CtlHello h = CTL_HELLO__INIT;
	CtlAuth a = CTL_AUTH__INIT;
	CtlMsg m = CTL_MSG__INIT, *r;

	h.version = 1;
	h.role = CTL_ROLE__CTL_ROLE_CLIENT;
	h.nonce.data = nn;
	h.nonce.len = sizeof(nn);
	m.body_case = CTL_MSG__BODY_HELLO;
	m.hello = &h;
	r = rpc(fd, &m);
	assert_int_equal(r->body_case, CTL_MSG__BODY_CHALLENGE);
	config_auth_proof(key, sizeof(secret) - 1, "node", 0, r->challenge->nonce.data, nn, proof);
	ctl_msg__free_unpacked(r, NULL);
	a.proof.data = proof;
	a.proof.len = sizeof(proof);
	m.body_case = CTL_MSG__BODY_AUTH;
	m.auth = &a;
	return rpc(fd, &m);
}

static void bad_frames_close_only_that_connection(void **state)
{
	struct srv *s = start_server();
	uint8_t hdr[PROTO_HDR_SIZE];
	int fd;

	fd = dial(s); /* garbage */
	assert_int_equal(write(fd, "GET / HTTP/1.0\r\n\r\n", 18), 18);
	assert_true(closed_by_server(fd));
	close(fd);

	fd = dial(s); /* a header announcing 100 MiB */
	proto_hdr_write(hdr, CTL_FRAME__CTL_FRAME_MSG, 100u << 20);
	assert_int_equal(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	assert_true(closed_by_server(fd));
	close(fd);

	fd = dial(s); /* right frame, payload that is no CtlMsg */
	assert_int_equal(proto_frame_write_fd(fd, CTL_FRAME__CTL_FRAME_MSG, "\xff\xff\xff\xff", 4,
					      1000),
			 0);
	assert_true(closed_by_server(fd));
	close(fd);

	fd = dial(s); /* a data-plane frame on the control port */
	assert_int_equal(proto_frame_write_fd(fd, PROTO_FT_DATA, "", 0, 1000), 0);
	assert_true(closed_by_server(fd));
	close(fd);

	fd = dial(s); /* the wrong secret */
	uint8_t wrong[sizeof(secret)];
	memcpy(wrong, secret, sizeof(secret));
	wrong[0] ^= 0x20;
	CtlMsg *r = client_handshake(fd, wrong);
	assert_int_equal(r->body_case, CTL_MSG__BODY_ERROR);
	assert_non_null(strstr(r->error->message, "wrong cluster secret"));
	ctl_msg__free_unpacked(r, NULL);
	assert_true(closed_by_server(fd));
	close(fd);

	fd = dial(s); /* still serving: status, then an orderly stop */
	r = client_handshake(fd, secret);
	assert_int_equal(r->body_case, CTL_MSG__BODY_JOINED);
	ctl_msg__free_unpacked(r, NULL);
	CtlStatusRequest sq = CTL_STATUS_REQUEST__INIT;
	CtlMsg m = CTL_MSG__INIT;
	m.body_case = CTL_MSG__BODY_STATUS_REQUEST;
	m.status_request = &sq;
	r = rpc(fd, &m);
	assert_int_equal(r->body_case, CTL_MSG__BODY_STATUS_REPLY);
	assert_int_equal(r->status_reply->n_nodes, 1);
	assert_int_equal(r->status_reply->nodes[0]->state, CTL_NODE_STATE__CTL_STATE_JOINING);
	ctl_msg__free_unpacked(r, NULL);
	CtlStopRequest sr = CTL_STOP_REQUEST__INIT;
	m.body_case = CTL_MSG__BODY_STOP_REQUEST;
	m.stop_request = &sr;
	r = rpc(fd, &m);
	assert_int_equal(r->body_case, CTL_MSG__BODY_STOP_REPLY);
	assert_true(r->stop_reply->ok);
	ctl_msg__free_unpacked(r, NULL);
	close(fd);

	pthread_join(s->thr, NULL);
	assert_int_equal(s->rc, 0);
	unlink(s->addr_file);
	rmdir(s->dir);
	config_free(s->cfg);
	free(s);
}

int main(void)
{
	util_log_set_level(LOG_LEVEL_ERR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bad_frames_close_only_that_connection),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
