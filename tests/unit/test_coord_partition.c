/*
 * The coordinator's partition rules (docs/deploy.md), driven with virtual
 * time: heartbeats carry the peers' data-plane reports (CtlPeerSeen), and
 * the tests check who is (not) declared failed when the coordinator is cut
 * off from one node, from every node, or a node is cut from everybody or
 * only from its peers.  Lease 1000 ms, heartbeats every 100 ms.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/coord.h"

#define QMAX 64
#define MS 1000000ull
#define NEVER 0xffffffffu

struct fake {
	int qlen[COORD_MAX_CONNS];
	CtlMsg *q[COORD_MAX_CONNS][QMAX];
	bool closed[COORD_MAX_CONNS];
	struct coord *c;
	struct config *cfg;
	uint64_t now;
	uint64_t last_seen[4][4]; /* [reporter][peer]: virtual time it last reached peer */
	bool link_down[4][4];	  /* data-plane link cut (symmetric in these tests) */
};

static const uint8_t secret[] = "0123456789abcdef0123456789abcdef";

static int fake_send(void *arg, int conn, const CtlMsg *m)
{
	struct fake *f = arg;
	size_t len = ctl_msg__get_packed_size(m);
	uint8_t *buf = malloc(len);

	ctl_msg__pack(m, buf);
	if (f->qlen[conn] == QMAX) { /* keep the newest: drop the oldest */
		ctl_msg__free_unpacked(f->q[conn][0], NULL);
		memmove(&f->q[conn][0], &f->q[conn][1], sizeof(CtlMsg *) * (QMAX - 1));
		f->qlen[conn]--;
	}
	f->q[conn][f->qlen[conn]++] = ctl_msg__unpack(NULL, len, buf);
	free(buf);
	return 0;
}

static void fake_close(void *arg, int conn)
{
	((struct fake *)arg)->closed[conn] = true;
}

static void drain(struct fake *f, int conn)
{
	while (f->qlen[conn])
		ctl_msg__free_unpacked(f->q[conn][--f->qlen[conn]], NULL);
}

/* True if a message of this kind was sent on conn (queue drained). */
static bool sent(struct fake *f, int conn, CtlMsg__BodyCase body, uint32_t failed_id)
{
	bool found = false;
	for (int i = 0; i < f->qlen[conn]; i++) {
		CtlMsg *m = f->q[conn][i];
		if (m->body_case == body &&
		    (body != CTL_MSG__BODY_NODE_FAILED || m->node_failed->node_id == failed_id))
			found = true;
	}
	drain(f, conn);
	return found;
}

static struct fake *setup_fake(void)
{
	static const char json[] =
		"{\"version\": 1, \"vm\": {\"name\": \"p\", \"memory_mib\": 16, \"vcpus\": 3},"
		" \"cluster\": {\"heartbeat_ms\": 100, \"lease_ms\": 1000, \"join_timeout_ms\": 8000,"
		"  \"on_node_failure\": \"continue\"},"
		" \"nodes\": [{\"id\": 1, \"vcpus\": [0]}, {\"id\": 2, \"vcpus\": [1]},"
		"  {\"id\": 3, \"vcpus\": [2]}]}";
	struct fake *f = calloc(1, sizeof(*f));
	struct coord_io io = {f, fake_send, fake_close};
	char err[CONFIG_ERR_LEN];

	assert_int_equal(config_load_string(json, "p", &f->cfg, err, sizeof(err)), 0);
	struct coord_cfg cc = {f->cfg, secret, sizeof(secret) - 1};
	f->now = 1000 * MS;
	assert_int_equal(coord_create(&cc, &io, f->now, &f->c), 0);
	return f;
}

static void teardown_fake(struct fake *f)
{
	coord_destroy(f->c);
	for (int i = 0; i < COORD_MAX_CONNS; i++)
		drain(f, i);
	config_free(f->cfg);
	free(f);
}

static void join(struct fake *f, int conn, uint32_t id)
{
	uint8_t nonce_n[CONFIG_NONCE_LEN], proof[CONFIG_PROOF_LEN], addr[16] = {2, 0, 1, 2};
	CtlHello h = CTL_HELLO__INIT;
	CtlAuth a = CTL_AUTH__INIT;
	CtlMsg m = CTL_MSG__INIT;

	config_random(nonce_n, sizeof(nonce_n));
	assert_int_equal(coord_on_connect(f->c, conn, f->now), 0);
	h.version = 1;
	h.role = CTL_ROLE__CTL_ROLE_NODE;
	h.node_id = id;
	h.nonce.data = nonce_n;
	h.nonce.len = sizeof(nonce_n);
	h.host = "test";
	m.body_case = CTL_MSG__BODY_HELLO;
	m.hello = &h;
	coord_on_msg(f->c, conn, &m, f->now);
	assert_int_equal(f->qlen[conn], 1);
	assert_int_equal(f->q[conn][0]->body_case, CTL_MSG__BODY_CHALLENGE);
	config_auth_proof(secret, 32, "node", id, f->q[conn][0]->challenge->nonce.data, nonce_n,
			  proof);
	drain(f, conn);
	a.proof.data = proof;
	a.proof.len = sizeof(proof);
	addr[4] = (uint8_t)id;
	a.fabric_addr.data = addr;
	a.fabric_addr.len = sizeof(addr);
	a.mem_bytes = 16ull << 20;
	m.body_case = CTL_MSG__BODY_AUTH;
	m.auth = &a;
	coord_on_msg(f->c, conn, &m, f->now);
}

/* Node id's heartbeat with its peer report (ages from last_seen). */
static void heartbeat(struct fake *f, uint32_t id, bool with_peers)
{
	CtlPeerSeen seen[3], *sp[3];
	CtlHeartbeat hb = CTL_HEARTBEAT__INIT;
	CtlMsg m = CTL_MSG__INIT;
	size_t n = 0;

	for (uint32_t p = 1; with_peers && p <= 3; p++) {
		if (p == id)
			continue;
		ctl_peer_seen__init(&seen[n]);
		seen[n].node_id = p;
		seen[n].age_ms = (uint32_t)((f->now - f->last_seen[id][p]) / MS);
		sp[n] = &seen[n];
		n++;
	}
	hb.n_peers = n;
	hb.peers = sp;
	m.body_case = CTL_MSG__BODY_HEARTBEAT;
	m.heartbeat = &hb;
	coord_on_msg(f->c, 10 + (int)id, &m, f->now);
}

static void bring_up(struct fake *f)
{
	CtlReady r = CTL_READY__INIT;
	CtlMsg m = CTL_MSG__INIT;

	for (uint32_t i = 1; i <= 3; i++)
		join(f, 10 + (int)i, i);
	r.ok = true;
	r.peers_checked = 2;
	m.body_case = CTL_MSG__BODY_READY;
	m.ready = &r;
	for (int i = 1; i <= 3; i++)
		coord_on_msg(f->c, 10 + i, &m, f->now);
	assert_int_equal(coord_phase(f->c), CTL_PHASE__CTL_PHASE_RUNNING);
	for (int i = 1; i <= 3; i++) {
		drain(f, 10 + i);
		for (int j = 1; j <= 3; j++)
			f->last_seen[i][j] = f->now;
	}
}

/*
 * Runs ms of virtual time in 100 ms steps.  coord_cut[i]: node i's
 * heartbeats do not reach the coordinator.  Peers ping each other every
 * step over links that are not down.
 */
static void run(struct fake *f, unsigned ms, const bool coord_cut[4])
{
	for (unsigned t = 0; t < ms; t += 100) {
		f->now += 100 * MS;
		for (uint32_t i = 1; i <= 3; i++)
			for (uint32_t j = 1; j <= 3; j++)
				if (i != j && !f->link_down[i][j])
					f->last_seen[i][j] = f->now;
		for (uint32_t i = 1; i <= 3; i++)
			if (!coord_cut[i] && !f->closed[10 + i])
				heartbeat(f, i, true);
		coord_tick(f->c, f->now, NULL);
	}
}

static CtlNodeState state(struct fake *f, uint32_t id)
{
	return coord_node_state(f->c, id);
}

static void coordinator_cut_from_one_node_fails_nobody(void **st)
{
	struct fake *f = setup_fake();
	bool cut[4] = {false, false, true, false};

	bring_up(f);
	run(f, 3000, cut); /* three leases */
	for (uint32_t i = 1; i <= 3; i++)
		assert_int_equal(state(f, i), CTL_NODE_STATE__CTL_STATE_RUNNING);
	assert_false(f->closed[12]);
	bool healed[4] = {false};
	run(f, 500, healed);
	assert_int_equal(state(f, 2), CTL_NODE_STATE__CTL_STATE_RUNNING);
	assert_false(sent(f, 11, CTL_MSG__BODY_NODE_FAILED, 2));
	teardown_fake(f);
}

static void coordinator_cut_from_every_node_fails_nobody(void **st)
{
	struct fake *f = setup_fake();
	bool cut[4] = {false, true, true, true}, healed[4] = {false};

	bring_up(f);
	run(f, 5000, cut);
	run(f, 500, healed);
	for (uint32_t i = 1; i <= 3; i++) {
		assert_int_equal(state(f, i), CTL_NODE_STATE__CTL_STATE_RUNNING);
		assert_false(f->closed[10 + i]);
	}
	assert_int_equal(coord_phase(f->c), CTL_PHASE__CTL_PHASE_RUNNING);
	teardown_fake(f);
}

static void isolated_node_fails_after_the_lease(void **st)
{
	struct fake *f = setup_fake();
	bool cut[4] = {false, false, false, true};

	bring_up(f);
	for (uint32_t j = 1; j <= 2; j++)
		f->link_down[3][j] = f->link_down[j][3] = true;
	run(f, 900, cut); /* within the lease */
	assert_int_equal(state(f, 3), CTL_NODE_STATE__CTL_STATE_RUNNING);
	run(f, 400, cut);
	assert_int_equal(state(f, 3), CTL_NODE_STATE__CTL_STATE_FAILED);
	assert_true(f->closed[13]);
	assert_true(sent(f, 11, CTL_MSG__BODY_NODE_FAILED, 3));
	assert_true(sent(f, 12, CTL_MSG__BODY_NODE_FAILED, 3));
	assert_int_equal(state(f, 1), CTL_NODE_STATE__CTL_STATE_RUNNING);
	assert_int_equal(state(f, 2), CTL_NODE_STATE__CTL_STATE_RUNNING);
	teardown_fake(f);
}

static void node_cut_from_its_peers_fails_even_with_heartbeats(void **st)
{
	struct fake *f = setup_fake();
	bool none[4] = {false};

	bring_up(f);
	for (uint32_t j = 1; j <= 3; j++)
		if (j != 2)
			f->link_down[2][j] = f->link_down[j][2] = true;
	run(f, 900, none);
	assert_int_equal(state(f, 2), CTL_NODE_STATE__CTL_STATE_RUNNING);
	run(f, 400, none);
	assert_int_equal(state(f, 2), CTL_NODE_STATE__CTL_STATE_FAILED);
	assert_true(sent(f, 13, CTL_MSG__BODY_NODE_FAILED, 2));
	teardown_fake(f);
}

static void one_cut_link_fails_nobody(void **st)
{
	struct fake *f = setup_fake();
	bool none[4] = {false};

	bring_up(f);
	f->link_down[1][3] = f->link_down[3][1] = true; /* 1 and 3 still reach 2 */
	run(f, 3000, none);
	for (uint32_t i = 1; i <= 3; i++)
		assert_int_equal(state(f, i), CTL_NODE_STATE__CTL_STATE_RUNNING);
	teardown_fake(f);
}

/* Nodes that send no peer reports keep the plain lease rule. */
static void silent_node_without_reports_fails_as_before(void **st)
{
	struct fake *f = setup_fake();

	bring_up(f);
	for (int t = 0; t < 12; t++) {
		f->now += 100 * MS;
		heartbeat(f, 1, false);
		heartbeat(f, 2, false);
		coord_tick(f->c, f->now, NULL);
	}
	assert_int_equal(state(f, 3), CTL_NODE_STATE__CTL_STATE_FAILED);
	assert_int_equal(state(f, 1), CTL_NODE_STATE__CTL_STATE_RUNNING);
	teardown_fake(f);
}

/* A report of an unknown node or "never" must be ignored, not trusted. */
static void bogus_reports_are_ignored(void **st)
{
	struct fake *f = setup_fake();
	CtlPeerSeen s1 = CTL_PEER_SEEN__INIT, s2 = CTL_PEER_SEEN__INIT, *sp[2] = {&s1, &s2};
	CtlHeartbeat hb = CTL_HEARTBEAT__INIT;
	CtlMsg m = CTL_MSG__INIT;

	bring_up(f);
	s1.node_id = 63; /* not a member */
	s1.age_ms = 0;
	s2.node_id = 3;
	s2.age_ms = NEVER;
	hb.n_peers = 2;
	hb.peers = sp;
	m.body_case = CTL_MSG__BODY_HEARTBEAT;
	m.heartbeat = &hb;
	for (int t = 0; t < 15; t++) { /* node 3 silent; node 1 says "never" about it */
		f->now += 100 * MS;
		coord_on_msg(f->c, 11, &m, f->now);
		heartbeat(f, 2, false);
		coord_tick(f->c, f->now, NULL);
	}
	assert_int_equal(state(f, 3), CTL_NODE_STATE__CTL_STATE_FAILED);
	assert_int_equal(state(f, 1), CTL_NODE_STATE__CTL_STATE_RUNNING);
	/* node 1 never mentions node 2: that is no accusation */
	assert_int_equal(state(f, 2), CTL_NODE_STATE__CTL_STATE_RUNNING);
	teardown_fake(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(coordinator_cut_from_one_node_fails_nobody),
		cmocka_unit_test(coordinator_cut_from_every_node_fails_nobody),
		cmocka_unit_test(isolated_node_fails_after_the_lease),
		cmocka_unit_test(node_cut_from_its_peers_fails_even_with_heartbeats),
		cmocka_unit_test(one_cut_link_fails_nobody),
		cmocka_unit_test(silent_node_without_reports_fails_as_before),
		cmocka_unit_test(bogus_reports_are_ignored),
	};
	util_log_set_level(LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
