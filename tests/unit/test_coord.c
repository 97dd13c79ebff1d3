/*
 * Coordinator state machine, driven directly: every message the core sends
 * goes through a real pack/unpack round trip into a per-connection queue,
 * and the tests play nodes and clients with the real HMAC handshake.
 * Time is passed in, so lease expiry is tested without sleeping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/coord.h"

#define QMAX 32
#define MS 1000000ull

struct fake {
	CtlMsg *q[COORD_MAX_CONNS][QMAX];
	int qlen[COORD_MAX_CONNS];
	bool closed[COORD_MAX_CONNS];
	struct coord *c;
	struct config *cfg;
	uint64_t now;
};

static const uint8_t secret[] = "0123456789abcdef0123456789abcdef";
static const uint8_t wrong[] = "0123456789abcdef0123456789abcdeX";

static int fake_send(void *arg, int conn, const CtlMsg *m)
{
	struct fake *f = arg;
	size_t len = ctl_msg__get_packed_size(m);
	uint8_t *buf = malloc(len + 1);

	assert_false(f->closed[conn]);
	ctl_msg__pack(m, buf);
	assert_true(f->qlen[conn] < QMAX);
	f->q[conn][f->qlen[conn]++] = ctl_msg__unpack(NULL, len, buf);
	free(buf);
	return 0;
}

static void fake_close(void *arg, int conn)
{
	struct fake *f = arg;
	f->closed[conn] = true;
}

/* Pops the oldest message sent on conn (caller frees), or NULL. */
static CtlMsg *pop(struct fake *f, int conn)
{
	CtlMsg *m;
	if (!f->qlen[conn])
		return NULL;
	m = f->q[conn][0];
	memmove(&f->q[conn][0], &f->q[conn][1], sizeof(m) * (size_t)--f->qlen[conn]);
	return m;
}

static void expect_body(struct fake *f, int conn, CtlMsg__BodyCase want)
{
	CtlMsg *m = pop(f, conn);
	assert_non_null(m);
	if (m->body_case != want) {
		print_error("conn %d: got body %d (%s), want %d\n", conn, m->body_case,
			    m->body_case == CTL_MSG__BODY_ERROR ? m->error->message : "", want);
		fail();
	}
	ctl_msg__free_unpacked(m, NULL);
}

/* Expects an error on conn containing text, and conn closed. */
static void expect_error(struct fake *f, int conn, CtlErrorCode code, const char *text)
{
	CtlMsg *m = pop(f, conn);
	assert_non_null(m);
	assert_int_equal(m->body_case, CTL_MSG__BODY_ERROR);
	assert_int_equal(m->error->code, code);
	if (!strstr(m->error->message, text)) {
		print_error("error '%s' lacks '%s'\n", m->error->message, text);
		fail();
	}
	ctl_msg__free_unpacked(m, NULL);
	assert_true(f->closed[conn]);
}

static const char cfg_json[] =
	"{\"version\": 1, \"vm\": {\"name\": \"t\", \"memory_mib\": 16, \"vcpus\": 3},"
	" \"cluster\": {\"heartbeat_ms\": 100, \"lease_ms\": 1000, \"join_timeout_ms\": 8000,"
	"  \"on_node_failure\": \"%s\"},"
	" \"nodes\": [{\"id\": 1, \"vcpus\": [0]}, {\"id\": 2, \"vcpus\": [1]},"
	"  {\"id\": 3, \"vcpus\": [2]}]}";

static struct fake *setup(const char *policy)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct coord_io io = {f, fake_send, fake_close};
	char json[1024], err[CONFIG_ERR_LEN];

	snprintf(json, sizeof(json), cfg_json, policy);
	assert_int_equal(config_load_string(json, "t", &f->cfg, err, sizeof(err)), 0);
	struct coord_cfg cc = {f->cfg, secret, sizeof(secret) - 1};
	f->now = 1000 * MS;
	assert_int_equal(coord_create(&cc, &io, f->now, &f->c), 0);
	return f;
}

static void teardown_fake(struct fake *f)
{
	coord_destroy(f->c);
	for (int i = 0; i < COORD_MAX_CONNS; i++)
		while (f->qlen[i])
			ctl_msg__free_unpacked(pop(f, i), NULL);
	config_free(f->cfg);
	free(f);
}

static void msg_in(struct fake *f, int conn, CtlMsg *m)
{
	coord_on_msg(f->c, conn, m, f->now);
}

/* Plays the handshake on conn; leaves the answer (joined/error) queued. */
static void handshake(struct fake *f, int conn, CtlRole role, uint32_t id, const uint8_t *key,
		      uint64_t mem)
{
	uint8_t nonce_n[CONFIG_NONCE_LEN], proof[CONFIG_PROOF_LEN], addr[16] = {2, 0, 1, 2};
	CtlHello h = CTL_HELLO__INIT;
	CtlAuth a = CTL_AUTH__INIT;
	CtlMsg m = CTL_MSG__INIT, *ch;

	config_random(nonce_n, sizeof(nonce_n));
	assert_int_equal(coord_on_connect(f->c, conn, f->now), 0);
	f->closed[conn] = false;
	h.version = 1;
	h.role = role;
	h.node_id = id;
	h.nonce.data = nonce_n;
	h.nonce.len = sizeof(nonce_n);
	h.host = "test";
	h.pid = 1000 + (uint32_t)conn;
	m.body_case = CTL_MSG__BODY_HELLO;
	m.hello = &h;
	msg_in(f, conn, &m);
	ch = pop(f, conn);
	assert_non_null(ch);
	assert_int_equal(ch->body_case, CTL_MSG__BODY_CHALLENGE);
	assert_int_equal(ch->challenge->nonce.len, CONFIG_NONCE_LEN);
	config_auth_proof(key, 32, "node", id, ch->challenge->nonce.data, nonce_n, proof);
	ctl_msg__free_unpacked(ch, NULL);
	a.proof.data = proof;
	a.proof.len = sizeof(proof);
	addr[4] = (uint8_t)id;
	a.fabric_addr.data = addr;
	a.fabric_addr.len = sizeof(addr);
	a.mr_key = 100 + id;
	a.mem_bytes = mem;
	m.body_case = CTL_MSG__BODY_AUTH;
	m.auth = &a;
	msg_in(f, conn, &m);
}

static void join(struct fake *f, int conn, uint32_t id)
{
	handshake(f, conn, CTL_ROLE__CTL_ROLE_NODE, id, secret, 16ull << 20);
	expect_body(f, conn, CTL_MSG__BODY_JOINED);
}

static void send_simple(struct fake *f, int conn, CtlMsg__BodyCase body)
{
	CtlReady r = CTL_READY__INIT;
	CtlHeartbeat hb = CTL_HEARTBEAT__INIT;
	CtlStopAck sa = CTL_STOP_ACK__INIT;
	CtlStopRequest sr = CTL_STOP_REQUEST__INIT;
	CtlStatusRequest st = CTL_STATUS_REQUEST__INIT;
	CtlStopWait sw = CTL_STOP_WAIT__INIT;
	CtlHaltAck ha = CTL_HALT_ACK__INIT;
	CtlMsg m = CTL_MSG__INIT;

	m.body_case = body;
	r.ok = true;
	r.peers_checked = 2;
	m.ready = &r; /* the oneof shares storage: set the one that matters */
	if (body == CTL_MSG__BODY_HEARTBEAT)
		m.heartbeat = &hb;
	if (body == CTL_MSG__BODY_STOP_ACK)
		m.stop_ack = &sa;
	if (body == CTL_MSG__BODY_STOP_REQUEST)
		m.stop_request = &sr;
	if (body == CTL_MSG__BODY_STATUS_REQUEST)
		m.status_request = &st;
	if (body == CTL_MSG__BODY_STOP_WAIT)
		m.stop_wait = &sw;
	if (body == CTL_MSG__BODY_HALT_ACK)
		m.halt_ack = &ha;
	msg_in(f, conn, &m);
}

/* The stop's first phase: each node in ids[0..n) gets a Halt, nobody a
 * Stop until all have acknowledged it; then they do. */
static void halt_phase(struct fake *f, const int *ids, int n)
{
	for (int i = 0; i < n; i++)
		expect_body(f, 10 + ids[i], CTL_MSG__BODY_HALT);
	for (int i = 0; i < n; i++) {
		for (int k = 0; k < n; k++)
			assert_int_equal(f->qlen[10 + ids[k]], 0); /* no Stop before all halted */
		send_simple(f, 10 + ids[i], CTL_MSG__BODY_HALT_ACK);
	}
}

static const int all3[] = {1, 2, 3};

/* Nodes 1..3 on conns 11..13, through membership and barrier. */
static void bring_up(struct fake *f)
{
	for (int i = 1; i <= 3; i++)
		join(f, 10 + i, (uint32_t)i);
	assert_int_equal(coord_phase(f->c), CTL_PHASE__CTL_PHASE_BARRIER);
	for (int i = 1; i <= 3; i++) {
		CtlMsg *m = pop(f, 10 + i);
		assert_non_null(m);
		assert_int_equal(m->body_case, CTL_MSG__BODY_MEMBERSHIP);
		assert_int_equal(m->membership->epoch, 1);
		assert_int_equal(m->membership->n_members, 3);
		assert_int_equal(m->membership->members[2]->node_id, 3);
		assert_int_equal(m->membership->members[2]->mr_key, 103);
		assert_int_equal(m->membership->members[2]->fabric_addr.data[4], 3);
		assert_int_equal(m->membership->members[1]->vcpus[0], 1);
		ctl_msg__free_unpacked(m, NULL);
	}
	for (int i = 1; i <= 3; i++) {
		assert_int_equal(coord_phase(f->c), CTL_PHASE__CTL_PHASE_BARRIER);
		send_simple(f, 10 + i, CTL_MSG__BODY_READY);
		if (i < 3) /* the last one completes the barrier */
			assert_int_equal(coord_node_state(f->c, (uint32_t)i),
					 CTL_NODE_STATE__CTL_STATE_READY);
	}
	assert_int_equal(coord_phase(f->c), CTL_PHASE__CTL_PHASE_RUNNING);
	for (int i = 1; i <= 3; i++) {
		expect_body(f, 10 + i, CTL_MSG__BODY_START);
		assert_int_equal(coord_node_state(f->c, (uint32_t)i),
				 CTL_NODE_STATE__CTL_STATE_RUNNING);
	}
}

static void join_barrier_start(void **state)
{
	struct fake *f = setup("stop");
	join(f, 11, 1);
	join(f, 12, 2);
	assert_int_equal(coord_phase(f->c), CTL_PHASE__CTL_PHASE_JOIN);
	assert_int_equal(f->qlen[11], 0); /* no table before everyone is in */
	join(f, 13, 3);
	teardown_fake(f);
	f = setup("stop");
	bring_up(f);
	teardown_fake(f);
}

static void wrong_secret_is_rejected(void **state)
{
	struct fake *f = setup("stop");
	handshake(f, 11, CTL_ROLE__CTL_ROLE_NODE, 1, wrong, 16ull << 20);
	expect_error(f, 11, CTL_ERROR_CODE__CTL_ERR_AUTH, "wrong cluster secret");
	assert_int_equal(coord_node_state(f->c, 1), CTL_NODE_STATE__CTL_STATE_JOINING);
	/* A client with the wrong secret gets the same answer. */
	handshake(f, 12, CTL_ROLE__CTL_ROLE_CLIENT, 0, wrong, 0);
	expect_error(f, 12, CTL_ERROR_CODE__CTL_ERR_AUTH, "wrong cluster secret");
	teardown_fake(f);
}

static void unknown_id_and_bad_memory_are_rejected(void **state)
{
	struct fake *f = setup("stop");
	handshake(f, 11, CTL_ROLE__CTL_ROLE_NODE, 9, secret, 16ull << 20);
	expect_error(f, 11, CTL_ERROR_CODE__CTL_ERR_UNKNOWN_NODE,
		     "node id 9 is not in the cluster config (configured: 1, 2, 3)");
	handshake(f, 12, CTL_ROLE__CTL_ROLE_NODE, 2, secret, 32ull << 20);
	expect_error(f, 12, CTL_ERROR_CODE__CTL_ERR_MISMATCH, "guest RAM");
	teardown_fake(f);
}

static void duplicate_after_membership_is_rejected(void **state)
{
	struct fake *f = setup("stop");
	bring_up(f);
	handshake(f, 20, CTL_ROLE__CTL_ROLE_NODE, 2, secret, 16ull << 20);
	expect_error(f, 20, CTL_ERROR_CODE__CTL_ERR_DUPLICATE, "duplicate join refused");
	/* The original is untouched. */
	assert_false(f->closed[12]);
	assert_int_equal(coord_node_state(f->c, 2), CTL_NODE_STATE__CTL_STATE_RUNNING);
	teardown_fake(f);
}

static void restart_during_join_replaces_stale(void **state)
{
	struct fake *f = setup("stop");
	join(f, 11, 1);
	join(f, 21, 1); /* node 1 restarted; its old connection is half-open */
	expect_error(f, 11, CTL_ERROR_CODE__CTL_ERR_REPLACED, "replaced by a newer join");
	assert_int_equal(coord_phase(f->c), CTL_PHASE__CTL_PHASE_JOIN);
	join(f, 12, 2);
	join(f, 13, 3);
	expect_body(f, 21, CTL_MSG__BODY_MEMBERSHIP); /* the new incarnation gets the table */
	assert_int_equal(f->qlen[11], 0);
	teardown_fake(f);
}

static void node_leaving_during_join_is_waited_for(void **state)
{
	struct fake *f = setup("stop");
	join(f, 11, 1);
	coord_on_close(f->c, 11, f->now);
	join(f, 12, 2);
	join(f, 13, 3);
	assert_int_equal(coord_phase(f->c), CTL_PHASE__CTL_PHASE_JOIN);
	join(f, 14, 1);
	assert_int_equal(coord_phase(f->c), CTL_PHASE__CTL_PHASE_BARRIER);
	teardown_fake(f);
}

static void lease_expiry_fails_node_and_tells_others(void **state)
{
	struct fake *f = setup("continue");
	uint64_t next;

	bring_up(f);
	for (int step = 0; step < 11; step++) { /* 1.1 s; node 3 stays silent */
		f->now += 100 * MS;
		send_simple(f, 11, CTL_MSG__BODY_HEARTBEAT);
		send_simple(f, 12, CTL_MSG__BODY_HEARTBEAT);
		expect_body(f, 11, CTL_MSG__BODY_HEARTBEAT_ACK);
		expect_body(f, 12, CTL_MSG__BODY_HEARTBEAT_ACK);
		coord_tick(f->c, f->now, &next);
		assert_true(next > f->now);
		if (step < 9) /* within the lease (1000 ms) */
			assert_int_equal(coord_node_state(f->c, 3), CTL_NODE_STATE__CTL_STATE_RUNNING);
	}
	assert_int_equal(coord_node_state(f->c, 3), CTL_NODE_STATE__CTL_STATE_FAILED);
	assert_true(f->closed[13]);
	for (int conn = 11; conn <= 12; conn++) {
		CtlMsg *m = pop(f, conn);
		assert_non_null(m);
		assert_int_equal(m->body_case, CTL_MSG__BODY_NODE_FAILED);
		assert_int_equal(m->node_failed->node_id, 3);
		assert_int_equal(m->node_failed->epoch, 2);
		assert_non_null(strstr(m->node_failed->reason, "no heartbeat"));
		ctl_msg__free_unpacked(m, NULL);
	}
	assert_int_equal(coord_epoch(f->c), 2);
	assert_int_equal(coord_phase(f->c), CTL_PHASE__CTL_PHASE_RUNNING); /* "continue" */
	teardown_fake(f);
}

static void orderly_stop_goes_one_by_one_in_reverse(void **state)
{
	struct fake *f = setup("stop");
	int code = -1;

	bring_up(f);
	handshake(f, 30, CTL_ROLE__CTL_ROLE_CLIENT, 0, secret, 0);
	expect_body(f, 30, CTL_MSG__BODY_JOINED);
	send_simple(f, 30, CTL_MSG__BODY_STOP_REQUEST);
	assert_int_equal(coord_phase(f->c), CTL_PHASE__CTL_PHASE_STOPPING);
	halt_phase(f, all3, 3);
	for (int id = 3; id >= 1; id--) {
		for (int other = 1; other < id; other++)
			assert_int_equal(f->qlen[10 + other], 0); /* not yet asked */
		expect_body(f, 10 + id, CTL_MSG__BODY_STOP);
		assert_int_equal(f->qlen[30], 0);
		send_simple(f, 10 + id, CTL_MSG__BODY_STOP_ACK);
		assert_int_equal(coord_node_state(f->c, (uint32_t)id),
				 CTL_NODE_STATE__CTL_STATE_STOPPED);
	}
	expect_body(f, 30, CTL_MSG__BODY_STOP_REPLY);
	assert_true(coord_done(f->c, &code));
	assert_int_equal(code, 0);
	teardown_fake(f);
}

/*
 * A node that keeps heartbeating but never acknowledges its Halt holds the
 * ordered stop back for one lease, no longer.
 */
static void silent_halt_delays_the_stop_one_lease(void **state)
{
	struct fake *f = setup("stop");
	int code = -1;

	bring_up(f);
	coord_stop(f->c, "test", f->now);
	for (int id = 1; id <= 3; id++)
		expect_body(f, 10 + id, CTL_MSG__BODY_HALT);
	send_simple(f, 11, CTL_MSG__BODY_HALT_ACK);
	send_simple(f, 12, CTL_MSG__BODY_HALT_ACK);
	for (int step = 0; step < 2; step++) {
		f->now += 500 * MS; /* 1000 ms: not past the lease yet */
		for (int id = 1; id <= 3; id++) {
			send_simple(f, 10 + id, CTL_MSG__BODY_HEARTBEAT);
			expect_body(f, 10 + id, CTL_MSG__BODY_HEARTBEAT_ACK);
		}
		coord_tick(f->c, f->now, NULL);
		assert_int_equal(f->qlen[13], 0);
	}
	f->now += 100 * MS;
	send_simple(f, 13, CTL_MSG__BODY_HEARTBEAT);
	expect_body(f, 13, CTL_MSG__BODY_HEARTBEAT_ACK);
	coord_tick(f->c, f->now, NULL);
	expect_body(f, 13, CTL_MSG__BODY_STOP);
	assert_false(f->closed[13]); /* late, not failed */
	for (int id = 3; id >= 1; id--) {
		if (id < 3)
			expect_body(f, 10 + id, CTL_MSG__BODY_STOP);
		send_simple(f, 10 + id, CTL_MSG__BODY_STOP_ACK);
	}
	assert_true(coord_done(f->c, &code));
	assert_int_equal(code, 0);
	teardown_fake(f);
}

static void guest_exit_from_node(struct fake *f, int conn, int32_t code)
{
	CtlGuestExit ge = CTL_GUEST_EXIT__INIT;
	CtlMsg m = CTL_MSG__INIT;

	ge.code = code;
	m.body_case = CTL_MSG__BODY_GUEST_EXIT;
	m.guest_exit = &ge;
	msg_in(f, conn, &m);
}

/* Status on client conn: phase, and the guest exit it reports (-1 = none). */
static CtlPhase status_guest_exit(struct fake *f, int conn, int *code)
{
	send_simple(f, conn, CTL_MSG__BODY_STATUS_REQUEST);
	CtlMsg *m = pop(f, conn);
	assert_non_null(m);
	assert_int_equal(m->body_case, CTL_MSG__BODY_STATUS_REPLY);
	CtlPhase ph = m->status_reply->phase;
	*code = m->status_reply->guest_exited ? m->status_reply->guest_exit : -1;
	ctl_msg__free_unpacked(m, NULL);
	return ph;
}

/*
 * A guest exit on node 2: the cluster stops in order (3, 2, 1), status
 * reports the code while stopping, the waiting client's StopReply carries
 * it, a second report does not change it, and the coordinator exits 0.
 */
static void guest_exit_stops_cluster_with_code(void **state)
{
	struct fake *f = setup("stop");
	int code = -1;

	bring_up(f);
	handshake(f, 30, CTL_ROLE__CTL_ROLE_CLIENT, 0, secret, 0);
	expect_body(f, 30, CTL_MSG__BODY_JOINED);
	send_simple(f, 30, CTL_MSG__BODY_STOP_WAIT);
	assert_int_equal(status_guest_exit(f, 30, &code), CTL_PHASE__CTL_PHASE_RUNNING);
	assert_int_equal(code, -1);
	assert_false(coord_guest_exit(f->c, &code));
	guest_exit_from_node(f, 12, 42);
	assert_int_equal(coord_phase(f->c), CTL_PHASE__CTL_PHASE_STOPPING);
	assert_true(coord_guest_exit(f->c, &code));
	assert_int_equal(code, 42);
	assert_int_equal(status_guest_exit(f, 30, &code), CTL_PHASE__CTL_PHASE_STOPPING);
	assert_int_equal(code, 42);
	guest_exit_from_node(f, 11, 7); /* a late second report: the first wins */
	halt_phase(f, all3, 3);
	for (int id = 3; id >= 1; id--) {
		expect_body(f, 10 + id, CTL_MSG__BODY_STOP);
		assert_int_equal(f->qlen[30], 0);
		send_simple(f, 10 + id, CTL_MSG__BODY_STOP_ACK);
	}
	CtlMsg *m = pop(f, 30);
	assert_non_null(m);
	assert_int_equal(m->body_case, CTL_MSG__BODY_STOP_REPLY);
	assert_true(m->stop_reply->guest_exited);
	assert_int_equal(m->stop_reply->guest_exit, 42);
	assert_non_null(strstr(m->stop_reply->message, "guest exited with code 42 on node 2"));
	ctl_msg__free_unpacked(m, NULL);
	assert_true(coord_done(f->c, &code));
	assert_int_equal(code, 0);
	assert_true(coord_guest_exit(f->c, &code));
	assert_int_equal(code, 42);
	teardown_fake(f);
}

/* Before Start no guest runs: a guest exit then changes nothing. */
static void guest_exit_before_start_is_ignored(void **state)
{
	struct fake *f = setup("stop");
	int code = -1;

	join(f, 11, 1);
	guest_exit_from_node(f, 11, 3);
	assert_int_equal(coord_phase(f->c), CTL_PHASE__CTL_PHASE_JOIN);
	assert_false(coord_guest_exit(f->c, &code));
	assert_false(f->closed[11]);
	teardown_fake(f);
}

static void killed_node_fails_and_stops_cluster(void **state)
{
	struct fake *f = setup("stop");
	int code = -1;

	bring_up(f);
	coord_on_close(f->c, 12, f->now); /* SIGKILL: the kernel closes the socket */
	assert_int_equal(coord_node_state(f->c, 2), CTL_NODE_STATE__CTL_STATE_FAILED);
	expect_body(f, 11, CTL_MSG__BODY_NODE_FAILED);
	expect_body(f, 13, CTL_MSG__BODY_NODE_FAILED);
	halt_phase(f, (const int[]){1, 3}, 2);
	expect_body(f, 13, CTL_MSG__BODY_STOP); /* policy "stop": node 3 first */
	assert_int_equal(f->qlen[11], 0);
	f->now += 1100 * MS; /* node 3 never acks: one lease, then the next */
	send_simple(f, 11, CTL_MSG__BODY_HEARTBEAT); /* node 1 is alive */
	expect_body(f, 11, CTL_MSG__BODY_HEARTBEAT_ACK);
	coord_tick(f->c, f->now, NULL);
	assert_true(f->closed[13]);
	expect_body(f, 11, CTL_MSG__BODY_STOP);
	send_simple(f, 11, CTL_MSG__BODY_STOP_ACK);
	assert_true(coord_done(f->c, &code));
	assert_int_equal(code, 1);
	assert_int_equal(coord_node_state(f->c, 2), CTL_NODE_STATE__CTL_STATE_FAILED);
	teardown_fake(f);
}

static void stop_ack_lost(struct fake *f, int conn, uint64_t *lost, size_t n, uint64_t total,
			  uint64_t *unc, size_t nunc)
{
	CtlStopAck sa = CTL_STOP_ACK__INIT;
	CtlMsg m = CTL_MSG__INIT;

	sa.lost_pages = lost;
	sa.n_lost_pages = n;
	sa.lost_total = total;
	sa.uncertain_pages = unc;
	sa.n_uncertain_pages = nunc;
	m.body_case = CTL_MSG__BODY_STOP_ACK;
	m.stop_ack = &sa;
	msg_in(f, conn, &m);
}

static CtlStatusReply *final_status(struct fake *f)
{
	uint8_t *buf;
	size_t len;

	assert_int_equal(coord_status_pack(f->c, true, f->now, &buf, &len), 0);
	CtlStatusReply *st = ctl_status_reply__unpack(NULL, len, buf);
	free(buf);
	assert_non_null(st);
	return st;
}

/* After a failure the survivors' StopAcks name the lost pages; the final
 * status (what spanvm-coord --status-file keeps) carries them. */
static void failure_stop_collects_lost_pages(void **state)
{
	struct fake *f = setup("stop");
	uint64_t l2[] = {0x80001000, 0x80004000}, l1[] = {0x80009000}, u1[] = {0x8000a000};
	int code = -1;

	bring_up(f);
	coord_on_close(f->c, 13, f->now); /* node 3 dies */
	expect_body(f, 11, CTL_MSG__BODY_NODE_FAILED);
	expect_body(f, 12, CTL_MSG__BODY_NODE_FAILED);
	halt_phase(f, (const int[]){1, 2}, 2);
	expect_body(f, 12, CTL_MSG__BODY_STOP);
	stop_ack_lost(f, 12, l2, 2, 2, NULL, 0);
	expect_body(f, 11, CTL_MSG__BODY_STOP);
	stop_ack_lost(f, 11, l1, 1, 5, u1, 1); /* 5 lost, only 1 listed */
	assert_true(coord_done(f->c, &code));
	assert_int_equal(code, 1);
	CtlStatusReply *st = final_status(f);
	assert_true(st->final);
	assert_true(st->final_unix_ms > 0);
	assert_int_equal(st->phase, CTL_PHASE__CTL_PHASE_STOPPED);
	assert_int_equal(st->lost_reports, 2);
	assert_int_equal(st->lost_total, 7);
	assert_int_equal(st->n_lost_pages, 3);
	assert_int_equal(st->lost_pages[0], 0x80001000);
	assert_int_equal(st->lost_pages[1], 0x80004000);
	assert_int_equal(st->lost_pages[2], 0x80009000);
	assert_int_equal(st->n_uncertain_pages, 1);
	assert_int_equal(st->uncertain_pages[0], 0x8000a000);
	assert_int_equal(st->nodes[2]->state, CTL_NODE_STATE__CTL_STATE_FAILED);
	ctl_status_reply__free_unpacked(st, NULL);
	teardown_fake(f);
}

/* Without a failure a StopAck's page lists are ignored (nothing was lost). */
static void orderly_stop_reports_no_lost_pages(void **state)
{
	struct fake *f = setup("stop");
	uint64_t bogus[] = {0x80001000};

	bring_up(f);
	coord_stop(f->c, "test", f->now);
	halt_phase(f, all3, 3);
	for (int id = 3; id >= 1; id--) {
		expect_body(f, 10 + id, CTL_MSG__BODY_STOP);
		stop_ack_lost(f, 10 + id, bogus, 1, 1, NULL, 0);
	}
	CtlStatusReply *st = final_status(f);
	assert_int_equal(st->lost_reports, 0);
	assert_int_equal(st->n_lost_pages, 0);
	assert_int_equal(st->lost_total, 0);
	ctl_status_reply__free_unpacked(st, NULL);
	teardown_fake(f);
}

static void status_lists_every_node(void **state)
{
	struct fake *f = setup("stop");
	CtlMsg *m;

	join(f, 11, 1);
	handshake(f, 30, CTL_ROLE__CTL_ROLE_CLIENT, 0, secret, 0);
	expect_body(f, 30, CTL_MSG__BODY_JOINED);
	send_simple(f, 30, CTL_MSG__BODY_STATUS_REQUEST);
	m = pop(f, 30);
	assert_non_null(m);
	assert_int_equal(m->body_case, CTL_MSG__BODY_STATUS_REPLY);
	assert_string_equal(m->status_reply->vm_name, "t");
	assert_int_equal(m->status_reply->phase, CTL_PHASE__CTL_PHASE_JOIN);
	assert_int_equal(m->status_reply->n_nodes, 3);
	assert_true(m->status_reply->nodes[0]->connected);
	assert_int_equal(m->status_reply->nodes[0]->pid, 1011);
	assert_false(m->status_reply->nodes[1]->connected);
	assert_int_equal(m->status_reply->nodes[2]->state, CTL_NODE_STATE__CTL_STATE_JOINING);
	ctl_msg__free_unpacked(m, NULL);
	teardown_fake(f);
}

static void protocol_violations_close_the_connection(void **state)
{
	struct fake *f = setup("stop");
	uint64_t next;

	assert_int_equal(coord_on_connect(f->c, 11, f->now), 0);
	send_simple(f, 11, CTL_MSG__BODY_STATUS_REQUEST); /* before hello */
	expect_error(f, 11, CTL_ERROR_CODE__CTL_ERR_PROTOCOL, "expected hello first");
	assert_int_equal(coord_on_connect(f->c, 12, f->now), 0);
	assert_int_equal(coord_on_connect(f->c, 12, f->now), -EBUSY);
	f->now += (COORD_HANDSHAKE_MS + 1) * MS; /* silent peer */
	coord_tick(f->c, f->now, &next);
	expect_error(f, 12, CTL_ERROR_CODE__CTL_ERR_PROTOCOL, "handshake not completed");
	join(f, 13, 1);
	send_simple(f, 13, CTL_MSG__BODY_STATUS_REQUEST); /* a node is not a client */
	expect_error(f, 13, CTL_ERROR_CODE__CTL_ERR_PROTOCOL, "unexpected message");
	teardown_fake(f);
}

static void join_timeout_stops_with_failure(void **state)
{
	struct fake *f = setup("stop");
	int code = 0;

	join(f, 11, 1);
	for (int i = 0; i < 17; i++) { /* heartbeats keep node 1 alive, 8.5 s */
		f->now += 500 * MS;
		send_simple(f, 11, CTL_MSG__BODY_HEARTBEAT);
		expect_body(f, 11, CTL_MSG__BODY_HEARTBEAT_ACK);
		coord_tick(f->c, f->now, NULL);
	}
	assert_int_equal(coord_phase(f->c), CTL_PHASE__CTL_PHASE_STOPPING);
	halt_phase(f, all3, 1);
	expect_body(f, 11, CTL_MSG__BODY_STOP);
	send_simple(f, 11, CTL_MSG__BODY_STOP_ACK);
	assert_true(coord_done(f->c, &code));
	assert_int_equal(code, 1);
	assert_int_equal(coord_node_state(f->c, 3), CTL_NODE_STATE__CTL_STATE_STOPPED);
	teardown_fake(f);
}

int main(void)
{
	util_log_set_level(LOG_LEVEL_ERR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(join_barrier_start),
		cmocka_unit_test(wrong_secret_is_rejected),
		cmocka_unit_test(unknown_id_and_bad_memory_are_rejected),
		cmocka_unit_test(duplicate_after_membership_is_rejected),
		cmocka_unit_test(restart_during_join_replaces_stale),
		cmocka_unit_test(node_leaving_during_join_is_waited_for),
		cmocka_unit_test(lease_expiry_fails_node_and_tells_others),
		cmocka_unit_test(orderly_stop_goes_one_by_one_in_reverse),
		cmocka_unit_test(silent_halt_delays_the_stop_one_lease),
		cmocka_unit_test(guest_exit_stops_cluster_with_code),
		cmocka_unit_test(guest_exit_before_start_is_ignored),
		cmocka_unit_test(killed_node_fails_and_stops_cluster),
		cmocka_unit_test(status_lists_every_node),
		cmocka_unit_test(protocol_violations_close_the_connection),
		cmocka_unit_test(join_timeout_stops_with_failure),
		cmocka_unit_test(failure_stop_collects_lost_pages),
		cmocka_unit_test(orderly_stop_reports_no_lost_pages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
