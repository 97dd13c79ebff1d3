/*
 * One spanvm-node's cluster life (see node.h): RAM, endpoint, join, peer
 * checks, ready, heartbeats, stop.
 *
 * Why the peer checks run on their own thread: each check may wait for
 * retries against a slow or dead peer; heartbeats must keep flowing
 * meanwhile, or the coordinator would declare this (healthy) node failed.
 * The thread only reads the membership it was given and writes its result
 * before it signals the pipe; the main thread reads the result only after
 * the pipe fired (the pipe write/read orders the accesses).
 */
#include "dsm/dsm.h"
#include "node/node.h"
#include "node/node_watch.h"
#include "node/vm_dsm_int.h"
#include "transport/tp.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MS 1000000ull
#define CHECK_DEADLINE_MS 10000 /* per peer, message round trip included */

struct peer_info {
	uint32_t id;
};

struct agent {
	const struct node_agent_cfg *acfg;
	const struct config *cfg;
	const struct config_node *me;
	uint8_t *ram;
	size_t ram_len;
	struct tp *tp;
	struct node_ctl *ctl;
	uint64_t epoch;
	uint32_t heartbeat_ms, lease_ms;
	/* check thread: inputs written before start, outputs before the pipe */
	pthread_t thr;
	bool thr_running;
	int pipe[2];
	int abort_checks; /* main -> check thread; __atomic accesses */
	uint32_t npeers;
	struct peer_info peers[CONFIG_MAX_NODES];
	uint32_t checked;
	bool check_ok;
	char check_msg[256];
	/* after Start: peer liveness (node_watch.h) */
	struct node_watch *watch;
	bool coord_silent_warned;
	/* after Start: this node's harts over the DSM (node_vm.c); NULL if no guest */
	struct node_vm *vm;
	uint64_t failed; /* ids the coordinator declared failed (bitmap) */
	/* lost pages, listed at the Halt while every survivor still answers */
	CtlStopAck lost;
	uint64_t lost_failed; /* the failed set they were listed for (0: none) */
};

static bool aborted(struct agent *a)
{
	return __atomic_load_n(&a->abort_checks, __ATOMIC_RELAXED);
}

static int check_one(struct agent *a, uint32_t peer, uint8_t *buf, uint8_t *want)
{
	uint64_t deadline = util_now_ns() + CHECK_DEADLINE_MS * MS, rtt = 0;
	int rc;

	/* The peer may not know us yet (its table can arrive a little later). */
	do {
		rc = tp_ping(a->tp, (int)peer, 300 * MS, &rtt);
	} while (rc == -ETIMEDOUT && !aborted(a) && util_now_ns() < deadline);
	if (rc) {
		snprintf(a->check_msg, sizeof(a->check_msg), "message round trip to node %u: %s",
			 peer, strerror(-rc));
		return rc;
	}
	/* The first round trip includes connection set-up; report a warm one. */
	if (tp_ping(a->tp, (int)peer, 1000 * MS, &rtt) == 0)
		LOG_DBG("node", "peer %u: warm round trip %llu ns", peer, (unsigned long long)rtt);
	/* retried like the round trip: a link cut during the barrier (soak,
	 * real networks) must delay the check, not fail the node */
	do {
		memset(buf, 0, NODE_CHECK_PAGE);
		rc = tp_rma_read(a->tp, (int)peer, a->ram_len - NODE_CHECK_PAGE, buf,
				 NODE_CHECK_PAGE, 2000 * MS);
	} while (rc == -ETIMEDOUT && !aborted(a) && util_now_ns() < deadline);
	if (rc) {
		snprintf(a->check_msg, sizeof(a->check_msg), "RMA read from node %u: %s", peer,
			 strerror(-rc));
		return rc;
	}
	node_check_page_fill(want, peer);
	if (memcmp(buf, want, NODE_CHECK_PAGE)) {
		snprintf(a->check_msg, sizeof(a->check_msg),
			 "RMA read from node %u returned the wrong page content", peer);
		return -EIO;
	}
	LOG_INFO("node", "peer %u ok: round trip %.1f us, 4 KiB RMA read verified", peer,
		 (double)rtt / 1000.0);
	return 0;
}

static void *check_thread(void *arg)
{
	struct agent *a = arg;
	uint8_t *buf = malloc(NODE_CHECK_PAGE), *want = malloc(NODE_CHECK_PAGE);
	char one = 1;

	util_log_set_thread("check");
	a->check_ok = buf && want;
	if (!a->check_ok)
		snprintf(a->check_msg, sizeof(a->check_msg), "out of memory");
	for (uint32_t i = 0; a->check_ok && i < a->npeers && !aborted(a); i++) {
		if (check_one(a, a->peers[i].id, buf, want))
			a->check_ok = false;
		else
			a->checked++;
	}
	if (aborted(a) && a->check_ok) {
		a->check_ok = false;
		snprintf(a->check_msg, sizeof(a->check_msg), "checks aborted");
	}
	free(buf);
	free(want);
	if (write(a->pipe[1], &one, 1) != 1)
		LOG_ERR("node", "check thread cannot signal its result");
	return NULL;
}

static int on_membership(struct agent *a, const CtlMembership *mb)
{
	int rc;

	if (mb->mem_bytes != a->cfg->mem_bytes) {
		LOG_ERR("node", "membership says %llu bytes of RAM, our config %llu",
			(unsigned long long)mb->mem_bytes, (unsigned long long)a->cfg->mem_bytes);
		return -EPROTO;
	}
	a->heartbeat_ms = mb->heartbeat_ms ? mb->heartbeat_ms : a->heartbeat_ms;
	a->lease_ms = mb->lease_ms ? mb->lease_ms : a->lease_ms;
	a->npeers = 0;
	for (size_t i = 0; i < mb->n_members; i++) {
		const CtlMember *m = mb->members[i];
		if (m->node_id == a->me->id)
			continue;
		rc = tp_peer_add(a->tp, (int)m->node_id, m->fabric_addr.data, m->fabric_addr.len,
				 m->mr_key, m->mr_base);
		if (rc) {
			LOG_ERR("node", "cannot add peer %u: %s", m->node_id, strerror(-rc));
			return rc;
		}
		if (a->npeers < CONFIG_MAX_NODES)
			a->peers[a->npeers++].id = m->node_id;
	}
	a->epoch = mb->epoch;
	tp_epoch_set(a->tp, a->epoch);
	LOG_INFO("node", "membership epoch %llu: %zu nodes; checking %u peers",
		 (unsigned long long)a->epoch, mb->n_members, a->npeers);
	rc = pthread_create(&a->thr, NULL, check_thread, a);
	if (rc)
		return -rc;
	a->thr_running = true;
	return 0;
}

static int send_ready(struct agent *a)
{
	CtlReady r = CTL_READY__INIT;
	CtlMsg m = CTL_MSG__INIT;
	char drain;

	if (read(a->pipe[0], &drain, 1) != 1)
		return -EIO;
	pthread_join(a->thr, NULL);
	a->thr_running = false;
	r.ok = a->check_ok;
	r.peers_checked = a->checked;
	r.message = a->check_msg;
	r.epoch = a->epoch;
	m.body_case = CTL_MSG__BODY_READY;
	m.ready = &r;
	if (a->check_ok)
		LOG_INFO("node", "all %u peer checks passed; ready", a->checked);
	else
		LOG_ERR("node", "peer checks failed: %s", a->check_msg);
	return node_ctl_send(a->ctl, &m);
}

/*
 * The guest exited on one of our harts: the coordinator decides what
 * happens (it stops the cluster in order); we keep serving pages and
 * heartbeats until our Stop arrives.
 */
static int send_guest_exit(struct agent *a)
{
	CtlGuestExit ge = CTL_GUEST_EXIT__INIT;
	CtlMsg m = CTL_MSG__INIT;
	int code;

	if (node_vm_exit_code(a->vm, &code))
		return 0; /* spurious wake-up */
	ge.code = code;
	m.body_case = CTL_MSG__BODY_GUEST_EXIT;
	m.guest_exit = &ge;
	LOG_INFO("node", "reporting the guest's exit (code %d) to the coordinator", code);
	return node_ctl_send(a->ctl, &m);
}

/*
 * After a failure, the StopAck names the pages this node is home of whose
 * only valid copies were on failed nodes, and the page of a transaction
 * still waiting for one (for `spanvm status`; docs/deploy.md "Lost pages").
 * The directory entries involved cannot change any more: every
 * transaction on them needs a failed node's answer.
 */
#define LOST_MAX 4096 /* keeps the StopAck well under the 64 KiB frame cap */
#define UNCERTAIN_MAX 16 /* at most one per home worker */

/* asked: the survivors still run their DSM (the Halt, not the Stop: nodes
 * stop one by one), so ask them what they hold (dsm_audit_lost_asked). */
static void lost_pages(struct dsm *d, uint64_t failed, bool asked, CtlStopAck *ack)
{
	size_t n = 0, un = 0;

	if (!d)
		return;
	ack->lost_pages = calloc(LOST_MAX, sizeof(uint64_t));
	ack->uncertain_pages = calloc(UNCERTAIN_MAX, sizeof(uint64_t));
	if (!ack->lost_pages || !ack->uncertain_pages ||
	    (asked ? dsm_audit_lost_asked(d, failed, 200000000ull, ack->lost_pages, LOST_MAX, &n)
		   : dsm_audit_lost(d, failed, ack->lost_pages, LOST_MAX, &n))) {
		LOG_ERR("node", "cannot list the pages lost with the failed nodes");
		return;
	}
	ack->lost_total = n;
	ack->n_lost_pages = n < LOST_MAX ? n : LOST_MAX;
	if (dsm_audit_inflight(d, failed, ack->uncertain_pages, UNCERTAIN_MAX, &un) == 0)
		ack->n_uncertain_pages = un < UNCERTAIN_MAX ? un : UNCERTAIN_MAX;
	if (n || un)
		LOG_ERR("node",
			"%zu guest pages homed here had their only copy on a failed node"
			" (%zu more in flight with it)",
			n, un);
}

/* One coordinator message.  1 = orderly stop, 0 = go on, <0 = failure. */
static int on_ctl(struct agent *a, CtlMsg *m)
{
	CtlStopAck ack = CTL_STOP_ACK__INIT;
	CtlMsg r = CTL_MSG__INIT;

	switch (m->body_case) {
	case CTL_MSG__BODY_HEARTBEAT_ACK:
		return 0;
	case CTL_MSG__BODY_CLOCK_PROBE: { /* coordinator/coord_clock.c */
		CtlClockReply cr = CTL_CLOCK_REPLY__INIT;
		cr.t2_ns = cr.t3_ns = util_now_ns(); /* answered at once: receive = send */
		cr.seq = m->clock_probe->seq;
		cr.t1_ns = m->clock_probe->t1_ns;
		r.body_case = CTL_MSG__BODY_CLOCK_REPLY;
		r.clock_reply = &cr;
		return node_ctl_send(a->ctl, &r) < 0 ? -EIO : 0;
	}
	case CTL_MSG__BODY_CLOCK_SET:
		LOG_INFO("node", "clock offset to the coordinator %+lld ns (round trip %llu ns)",
			 (long long)m->clock_set->offset_ns,
			 (unsigned long long)m->clock_set->rtt_ns);
		node_vm_set_mtime_zero(m->clock_set->zero_ns);
		return 0;
	case CTL_MSG__BODY_MEMBERSHIP:
		return a->thr_running ? -EPROTO : on_membership(a, m->membership);
	case CTL_MSG__BODY_START: {
		uint32_t ids[CONFIG_MAX_NODES];
		for (uint32_t i = 0; i < a->npeers; i++)
			ids[i] = a->peers[i].id;
		LOG_INFO("node", "cluster running (epoch %llu)", (unsigned long long)m->start->epoch);
		if (!a->watch && node_watch_start(a->tp, ids, a->npeers, a->heartbeat_ms, &a->watch))
			LOG_WARN("node", "cannot start the peer watch; coordinator loss will stop us");
		if (!a->vm && node_vm_start(a->cfg, a->me, a->tp, a->ram, a->ram_len, ids, a->npeers,
					    &a->vm))
			return -EIO; /* message logged */
		return 0;
	}
	case CTL_MSG__BODY_NODE_FAILED:
		if (m->node_failed->node_id == a->me->id) {
			LOG_ERR("node", "the coordinator declared this node failed (%s): leaving",
				m->node_failed->reason);
			return -EPROTO;
		}
		node_watch_remove(a->watch, m->node_failed->node_id);
		LOG_WARN("node", "coordinator: node %u failed (%s); epoch %llu",
			 m->node_failed->node_id, m->node_failed->reason,
			 (unsigned long long)m->node_failed->epoch);
		tp_peer_remove(a->tp, (int)m->node_failed->node_id);
		if (m->node_failed->node_id < 64)
			a->failed |= 1ull << m->node_failed->node_id;
		a->epoch = m->node_failed->epoch;
		tp_epoch_set(a->tp, a->epoch);
		return 0;
	case CTL_MSG__BODY_HALT: { /* the stop's first phase: harts only */
		CtlHaltAck ha = CTL_HALT_ACK__INIT;
		LOG_INFO("node", "halting the harts: %s", m->halt->reason);
		ha.harts_left = node_vm_halt(a->vm, a->lease_ms / 2);
		if (ha.harts_left)
			LOG_WARN("node", "%u hart(s) did not halt within %u ms", ha.harts_left,
				 a->lease_ms / 2);
		if (a->failed && !a->lost_failed) {
			lost_pages(node_vm_dsm(a->vm), a->failed, true, &a->lost);
			a->lost_failed = a->failed;
		}
		r.body_case = CTL_MSG__BODY_HALT_ACK;
		r.halt_ack = &ha;
		return node_ctl_send(a->ctl, &r) < 0 ? -EIO : 0;
	}
	case CTL_MSG__BODY_STOP:
		LOG_INFO("node", "stop: %s", m->stop->reason);
		if (a->failed && a->lost_failed == a->failed) {
			ack = a->lost; /* listed at the Halt */
			a->lost = (CtlStopAck)CTL_STOP_ACK__INIT;
		} else if (a->failed) {
			lost_pages(node_vm_dsm(a->vm), a->failed, false, &ack);
		} else if (node_vm_dsm(a->vm)) /* nodes stop one by one: let transactions
					      * with the others end first (audit dump) */
			dsm_audit_settle(node_vm_dsm(a->vm), 2000);
		r.body_case = CTL_MSG__BODY_STOP_ACK;
		r.stop_ack = &ack;
		node_ctl_send(a->ctl, &r);
		free(ack.lost_pages);
		free(ack.uncertain_pages);
		return 1;
	case CTL_MSG__BODY_ERROR:
		LOG_ERR("node", "coordinator: %s", m->error->message);
		return -EPROTO;
	default:
		LOG_WARN("node", "unexpected control message %d ignored", m->body_case);
		return 0;
	}
}

static int heartbeat(struct agent *a, uint64_t seq)
{
	CtlHeartbeat hb = CTL_HEARTBEAT__INIT;
	CtlPeerSeen seen[CONFIG_MAX_NODES], *sp[CONFIG_MAX_NODES];
	CtlMsg m = CTL_MSG__INIT;

	hb.seq = seq;
	hb.n_peers = node_watch_report(a->watch, seen, sp, CONFIG_MAX_NODES);
	hb.peers = sp;
	m.body_case = CTL_MSG__BODY_HEARTBEAT;
	m.heartbeat = &hb;
	return node_ctl_send(a->ctl, &m);
}

/*
 * The coordinator has been silent past the lease.  Before the VM runs
 * there is nothing to protect: leave.  While it runs, stay as long as the
 * data plane reached every peer within the lease: then the coordinator,
 * not this node, is cut off, and it declares no node failed that a peer
 * vouches for.  Leave once a peer is out of reach too, since the
 * coordinator may then have declared this node failed (docs/deploy.md).
 * true = leave.
 */
static bool coordinator_silent(struct agent *a, uint64_t silent_ms)
{
	uint32_t peer = 0, age;

	if (!a->watch) {
		LOG_ERR("node", "coordinator silent for %llu ms (lease %u ms): leaving",
			(unsigned long long)silent_ms, a->lease_ms);
		return true;
	}
	age = node_watch_oldest(a->watch, &peer);
	if (age > a->lease_ms) {
		LOG_ERR("node", "coordinator silent for %llu ms and node %u unreachable for %u ms "
				"(lease %u ms): leaving", (unsigned long long)silent_ms, peer, age,
			a->lease_ms);
		return true;
	}
	if (!a->coord_silent_warned)
		LOG_WARN("node", "coordinator silent for %llu ms, but every peer answers: "
				 "the VM keeps running", (unsigned long long)silent_ms);
	a->coord_silent_warned = true;
	return false;
}

/* 0 = stopped in order, 1 = failure. */
static int control_loop(struct agent *a)
{
	uint64_t now = util_now_ns(), next_hb = now, last_contact = now, seq = 0;
	int rc;

	for (;;) {
		struct pollfd p[3] = {{.fd = node_ctl_fd(a->ctl), .events = POLLIN},
				      {.fd = a->pipe[0], .events = POLLIN},
				      {.fd = node_vm_exit_fd(a->vm), .events = POLLIN}};
		now = util_now_ns();
		if (a->acfg->stop_flag && *a->acfg->stop_flag) {
			LOG_WARN("node", "terminated by signal; leaving the cluster");
			return 1;
		}
		if (now >= next_hb) {
			if ((rc = heartbeat(a, ++seq))) {
				LOG_ERR("node", "coordinator connection lost: %s", strerror(-rc));
				return 1;
			}
			next_hb = now + a->heartbeat_ms * MS;
		}
		if (now - last_contact > a->lease_ms * MS &&
		    coordinator_silent(a, (now - last_contact) / MS))
			return 1;
		if (poll(p, 3, (int)((next_hb - now) / MS) + 1) < 0)
			continue; /* EINTR: the signal flag is checked above */
		if (p[1].revents && (rc = send_ready(a))) {
			LOG_ERR("node", "cannot report ready: %s", strerror(-rc));
			return 1;
		}
		if (p[2].revents && (rc = send_guest_exit(a))) {
			LOG_ERR("node", "cannot report the guest's exit: %s", strerror(-rc));
			return 1;
		}
		if (!p[0].revents)
			continue;
		CtlMsg *m;
		rc = node_ctl_recv(a->ctl, 1000, &m);
		if (rc) {
			LOG_ERR("node", "coordinator connection lost: %s",
				rc == -ECONNRESET ? "closed by the coordinator" : strerror(-rc));
			return 1;
		}
		last_contact = util_now_ns();
		if (a->coord_silent_warned)
			LOG_INFO("node", "coordinator heard again");
		a->coord_silent_warned = false;
		rc = on_ctl(a, m);
		ctl_msg__free_unpacked(m, NULL);
		if (rc)
			return rc > 0 ? 0 : 1;
	}
}

/*
 * On real hosts nodes may start before the coordinator: an unreachable
 * coordinator is retried for the join timeout; a refusal is final.
 */
static int join_with_retry(struct agent *a, const struct node_ctl_cfg *ccfg, char *err,
			   size_t errlen)
{
	uint64_t deadline = util_now_ns() + a->cfg->join_timeout_ms * MS;
	bool warned = false;
	int rc;

	for (;;) {
		rc = node_ctl_connect(ccfg, &a->ctl, err, errlen);
		if ((rc != -ECONNREFUSED && rc != -ETIMEDOUT && rc != -EHOSTUNREACH) ||
		    util_now_ns() > deadline || (a->acfg->stop_flag && *a->acfg->stop_flag))
			return rc;
		if (!warned)
			LOG_WARN("node", "%s; retrying for up to %u ms", err, a->cfg->join_timeout_ms);
		warned = true;
		usleep(200000);
	}
}

static int setup(struct agent *a, char *err, size_t errlen)
{
	struct tp_cfg tcfg = {0};
	char port[8];
	uint8_t addr[TP_ADDR_MAX];
	size_t addrlen = sizeof(addr);
	uint64_t key = 0, base = 0;
	int rc;

	a->ram_len = a->cfg->mem_bytes;
	a->ram = mmap(NULL, a->ram_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (a->ram == MAP_FAILED) {
		a->ram = NULL;
		snprintf(err, errlen, "cannot map %zu bytes of guest RAM: %s", a->ram_len,
			 strerror(errno));
		return -ENOMEM;
	}
	node_check_page_fill(a->ram + a->ram_len - NODE_CHECK_PAGE, a->me->id);
	snprintf(port, sizeof(port), "%u", a->me->bind_port);
	tcfg.node_id = (int)a->me->id;
	tcfg.provider = a->cfg->provider[0] ? a->cfg->provider : NULL; /* NULL: env/default */
	tcfg.bind_addr = a->me->bind_addr;
	tcfg.bind_port = port;
	if ((rc = tp_create(&tcfg, &a->tp))) {
		snprintf(err, errlen, "cannot open the fabric endpoint (provider %s, bind %s): %s",
			 a->cfg->provider[0] ? a->cfg->provider : "default", a->me->bind_addr,
			 strerror(-rc));
		return rc;
	}
	dsm_handlers_not_started(a->tp); /* until node_vm_start's dsm_start */
	if ((rc = tp_mr_register(a->tp, a->ram, a->ram_len, &key, &base)) ||
	    (rc = tp_local_addr(a->tp, addr, &addrlen)) || (rc = tp_start(a->tp))) {
		snprintf(err, errlen, "fabric set-up failed: %s", strerror(-rc));
		return rc;
	}
	struct node_ctl_cfg ccfg = {
		.host = a->acfg->coord_host, .port = a->acfg->coord_port,
		.role = CTL_ROLE__CTL_ROLE_NODE, .node_id = a->me->id,
		.secret = a->acfg->secret, .secret_len = a->acfg->secret_len, .timeout_ms = 5000,
		.fabric_addr = addr, .fabric_addrlen = addrlen, .mr_key = key, .mr_base = base,
		.mem_bytes = a->ram_len};
	return join_with_retry(a, &ccfg, err, errlen);
}

int node_agent_run(const struct node_agent_cfg *acfg)
{
	struct agent *a = calloc(1, sizeof(*a));
	char err[CONFIG_ERR_LEN] = "";
	int rc = 1;

	if (!a)
		return 1;
	a->lost = (CtlStopAck)CTL_STOP_ACK__INIT;
	a->acfg = acfg;
	a->cfg = acfg->cfg;
	a->me = config_node_find(a->cfg, acfg->node_id);
	a->heartbeat_ms = a->cfg->heartbeat_ms;
	a->lease_ms = a->cfg->lease_ms;
	a->pipe[0] = a->pipe[1] = -1;
	if (!a->me) {
		LOG_ERR("node", "node id %u is not in the config", acfg->node_id);
		goto out;
	}
	if (pipe2(a->pipe, O_CLOEXEC)) {
		LOG_ERR("node", "pipe: %s", strerror(errno));
		goto out;
	}
	if (setup(a, err, sizeof(err))) {
		LOG_ERR("node", "node %u: %s", acfg->node_id, err);
		goto out;
	}
	LOG_INFO("node", "node %u joined; %zu MiB guest RAM registered", a->me->id, a->ram_len >> 20);
	rc = control_loop(a);
out:
	node_vm_stop(a->vm); /* before the endpoint goes: peers may still need our pages */
	node_watch_stop(a->watch);
	if (a->thr_running) {
		__atomic_store_n(&a->abort_checks, 1, __ATOMIC_RELAXED);
		pthread_join(a->thr, NULL);
	}
	node_ctl_close(a->ctl);
	if (a->tp)
		tp_destroy(a->tp);
	if (a->ram)
		munmap(a->ram, a->ram_len);
	if (a->pipe[0] >= 0) {
		close(a->pipe[0]);
		close(a->pipe[1]);
	}
	free(a->lost.lost_pages); /* listed at a Halt no Stop followed */
	free(a->lost.uncertain_pages);
	free(a);
	return rc;
}
