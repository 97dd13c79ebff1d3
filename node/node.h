/*
 * node: the glue layer.  This header covers the cluster side of a node:
 *
 * - node_ctl_*: a blocking client of the coordinator's control plane
 *   (proto/control.proto): TCP connect, the mutual HMAC handshake, then
 *   framed CtlMsg send/receive.  Used by spanvm-node (role NODE) and by the
 *   `spanvm` launch/status/stop commands (role CLIENT).  One owner thread
 *   per connection; no locking inside.
 * - node_agent_run: the life of one spanvm-node: maps guest RAM (sparse,
 *   MAP_NORESERVE) and registers it with transport/, joins, checks every
 *   peer after the membership table arrives (message round trip + RMA read
 *   of the peer's check page), reports ready, heartbeats, and returns on
 *   stop or when the coordinator is lost.  Threads: the caller's thread
 *   owns the coordinator connection and the tp handle's set-up; one
 *   short-lived check thread runs the peer checks (it only calls tp_ping and
 *   tp_rma_read, which are thread-safe) and hands its result back through
 *   a pipe; transport runs its own progress thread.
 */
#ifndef SPANVM_NODE_H
#define SPANVM_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "proto/control.pb-c.h"
#include "util/util.h"

#define NODE_CHECK_PAGE 4096 /* the last page of guest RAM, filled per node */

struct node_ctl;

struct node_ctl_cfg {
	const char *host;
	uint16_t port;
	CtlRole role;
	uint32_t node_id;           /* role NODE */
	const uint8_t *secret;
	size_t secret_len;
	int timeout_ms;             /* connect + handshake */
	/* role NODE: what goes into the membership table */
	const void *fabric_addr;
	size_t fabric_addrlen;
	uint64_t mr_key, mr_base, mem_bytes;
};

/*
 * Connects and authenticates.  On rejection err holds the coordinator's
 * message (e.g. "authentication failed: wrong cluster secret ...") and the
 * return is -EACCES (auth), -ENOENT (unknown node), -EEXIST (duplicate),
 * -EPROTO (other refusals); -ECONNREFUSED/-ETIMEDOUT when unreachable.
 * *joined_out (may be NULL) receives the coordinator's CtlJoined counts.
 */
int node_ctl_connect(const struct node_ctl_cfg *cfg, struct node_ctl **out, char *err,
		     size_t errlen);
int node_ctl_fd(const struct node_ctl *ctl);
int node_ctl_send(struct node_ctl *ctl, const CtlMsg *msg);
/* *out freed by the caller with ctl_msg__free_unpacked(*out, NULL). */
int node_ctl_recv(struct node_ctl *ctl, int timeout_ms, CtlMsg **out);
void node_ctl_close(struct node_ctl *ctl);

/* One request, one reply (status); skips heartbeat noise.  Caller frees. */
int node_ctl_call(struct node_ctl *ctl, const CtlMsg *req, CtlMsg__BodyCase want,
		  int timeout_ms, CtlMsg **reply, char *err, size_t errlen);

/* "HOST:PORT" -> host, port.  0 or -EINVAL. */
int node_parse_hostport(const char *s, char *host, size_t hlen, uint16_t *port);

/* Fills the check page of node_id (what peers expect to read). */
void node_check_page_fill(uint8_t *page, uint32_t node_id);

struct node_agent_cfg {
	const struct config *cfg;
	uint32_t node_id;
	const char *coord_host;
	uint16_t coord_port;
	const uint8_t *secret;
	size_t secret_len;
	volatile int *stop_flag; /* set by a signal handler: leave now */
};

/* 0 after an orderly stop; 1 on failure (message already logged). */
int node_agent_run(const struct node_agent_cfg *acfg);

/*
 * Runtime directory of a cluster launched on this host (node_runtime.c):
 * $SPANVM_RUN_DIR, else $XDG_RUNTIME_DIR/spanvm, else /tmp/spanvm-$UID.
 * It holds cluster.json {"vm", "coordinator", "secret_file", "config",
 * "pids": {"coordinator", "nodes": {"ID": pid}}}, coord.addr, the
 * generated secret and (with --detach) the processes' logs.  Used by the
 * `spanvm` commands only, one at a time.
 */
struct node_runtime {
	char dir[512];
	char vm[64];
	char coord[128];       /* HOST:PORT */
	char secret_file[512];
	char config[512];
	int coord_pid;
	uint32_t nnodes;
	uint32_t node_ids[CONFIG_MAX_NODES];
	int node_pids[CONFIG_MAX_NODES];
};

int node_runtime_dir(char *buf, size_t n);
/* Reads dir/cluster.json into rt; -ENOENT if there is none. */
int node_runtime_load(const char *dir, struct node_runtime *rt, char *err, size_t errlen);
int node_runtime_save(const struct node_runtime *rt, char *err, size_t errlen);
/* Removes the files a launch left in rt->dir (not the directory's other files). */
void node_runtime_clear(const char *dir);
/* True when pid runs and is a spanvm process (not a zombie, not reused). */
bool node_pid_alive(int pid);

/*
 * Connects as a CLIENT.  coord/secret_file override the runtime dir (both
 * may be NULL: then the runtime dir must hold a cluster).
 */
int node_client_open(const char *coord, const char *secret_file, struct node_ctl **out,
		     struct node_runtime *rt_out, char *err, size_t errlen);
/* Status request; *reply freed by the caller (ctl_msg__free_unpacked). */
int node_status_fetch(struct node_ctl *ctl, CtlMsg **reply, char *err, size_t errlen);
/* Writes the status as JSON (nodes: [{"id", "state", ...}]) or as a table. */
void node_status_print(FILE *out, const CtlStatusReply *st, const char *coord, bool json);
/*
 * The coordinator's status file (spanvm-coord --status-file; `spanvm
 * launch` puts it in the runtime dir as NODE_STATUS_FILE): the last status,
 * final once the cluster stopped.  *out freed with
 * ctl_status_reply__free_unpacked.  0, -ENOENT, -EINVAL (not a status).
 */
#define NODE_STATUS_FILE "final-status.pb"
int node_status_load(const char *path, CtlStatusReply **out, char *err, size_t errlen);

/* Short names for state/phase enums in JSON and progress lines. */
const char *node_state_name(CtlNodeState s);
const char *node_phase_name(CtlPhase p);

#endif
