/*
 * coordinator internals shared by coord_core.c (connections, handshake)
 * and coord_cluster.c (membership, barrier, leases, stop, status).
 * Single-threaded: see coord.h.
 */
#ifndef SPANVM_COORD_INT_H
#define SPANVM_COORD_INT_H

#include "coordinator/coord.h"

#define COORD_ADDR_MAX 256
#define COORD_LOST_MAX 4096 /* lost / uncertain pages kept for status */

/* Short names for the generated enum values. */
#define ST_INVALID CTL_NODE_STATE__CTL_STATE_INVALID
#define ST_JOINING CTL_NODE_STATE__CTL_STATE_JOINING
#define ST_READY CTL_NODE_STATE__CTL_STATE_READY
#define ST_RUNNING CTL_NODE_STATE__CTL_STATE_RUNNING
#define ST_FAILED CTL_NODE_STATE__CTL_STATE_FAILED
#define ST_STOPPED CTL_NODE_STATE__CTL_STATE_STOPPED
#define PH_JOIN CTL_PHASE__CTL_PHASE_JOIN
#define PH_BARRIER CTL_PHASE__CTL_PHASE_BARRIER
#define PH_RUNNING CTL_PHASE__CTL_PHASE_RUNNING
#define PH_STOPPING CTL_PHASE__CTL_PHASE_STOPPING
#define PH_STOPPED CTL_PHASE__CTL_PHASE_STOPPED
#define CTL_ROLE_NODE CTL_ROLE__CTL_ROLE_NODE
#define CTL_ROLE_CLIENT CTL_ROLE__CTL_ROLE_CLIENT
#define CTL_ERR_PROTOCOL CTL_ERROR_CODE__CTL_ERR_PROTOCOL
#define CTL_ERR_VERSION CTL_ERROR_CODE__CTL_ERR_VERSION
#define CTL_ERR_AUTH CTL_ERROR_CODE__CTL_ERR_AUTH
#define CTL_ERR_UNKNOWN_NODE CTL_ERROR_CODE__CTL_ERR_UNKNOWN_NODE
#define CTL_ERR_DUPLICATE CTL_ERROR_CODE__CTL_ERR_DUPLICATE
#define CTL_ERR_REPLACED CTL_ERROR_CODE__CTL_ERR_REPLACED
#define CTL_ERR_MISMATCH CTL_ERROR_CODE__CTL_ERR_MISMATCH
#define CTL_ERR_BUSY CTL_ERROR_CODE__CTL_ERR_BUSY

enum conn_stage { STAGE_HELLO = 0, STAGE_AUTH, STAGE_READY };

struct conn {
	bool used;
	enum conn_stage stage;
	CtlRole role;
	uint32_t node_id;
	uint8_t nonce_n[CONFIG_NONCE_LEN], nonce_c[CONFIG_NONCE_LEN];
	uint64_t opened_ns;
	bool wants_stop_reply; /* a client waiting for the orderly stop */
	char host[64];
	uint32_t pid;
};

/* One configured node. */
struct cnode {
	const struct config_node *cfgn;
	CtlNodeState state;
	int conn; /* -1: not connected */
	uint8_t addr[COORD_ADDR_MAX];
	size_t addrlen;
	uint64_t mr_key, mr_base;
	char host[64];
	uint32_t pid;
	uint64_t last_hb_ns;
	uint32_t peers_checked;
	char reason[200];
	uint64_t stop_sent_ns; /* 0: not asked to stop yet */
	bool halt_sent, halted; /* the stop's first phase (CtlHalt / CtlHaltAck) */
	/* partition rules (coord_cluster.c check_leases): seen_ns[j] = when
	 * node index j last reached this node over the data plane (from j's
	 * heartbeat reports); about_ns[j] = when j last reported on this node
	 * at all; report_ns = this node's last report (0: none) */
	uint64_t seen_ns[CONFIG_MAX_NODES];
	uint64_t about_ns[CONFIG_MAX_NODES];
	uint64_t report_ns;
	bool cut_noted; /* "cut off from the coordinator" logged */
	/* clock exchange at join (coord_clock.c) */
	uint32_t clk_seq, clk_samples;
	int64_t clk_offset_ns;
	uint64_t clk_rtt_ns; /* of the best sample; 0: none yet */
	bool clk_done;
};

struct coord {
	const struct config *cfg;
	struct coord_io io;
	uint8_t secret[CONFIG_SECRET_MAX];
	size_t secret_len;
	struct conn conns[COORD_MAX_CONNS];
	struct cnode nodes[CONFIG_MAX_NODES];
	uint32_t nnodes;
	CtlPhase phase;
	uint64_t epoch;
	uint64_t start_ns, phase_ns;
	uint64_t now_ns; /* time of the event being handled */
	int exit_code;
	char stop_reason[200];
	bool halting;     /* the stop's first phase: waiting for HaltAcks */
	uint64_t halt_ns; /* when the Halts went out */
	bool guest_exited; /* a node reported the guest's exit (CtlGuestExit) */
	int32_t guest_exit;
	/* after a failure: what the survivors' StopAcks reported (status) */
	uint64_t lost[COORD_LOST_MAX], uncertain[COORD_LOST_MAX];
	size_t nlost, nuncertain;
	uint64_t lost_total;
	uint32_t lost_reports;
};

struct cnode *coord_node(struct coord *c, uint32_t id);
void coord_send(struct coord *c, int conn, CtlMsg *m);
void coord_reject(struct coord *c, int conn, CtlErrorCode code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void coord_drop_conn(struct coord *c, int conn, const char *why);

/* coord_clock.c: the clock-offset exchange with a node that just joined
 * (probe on join, one more per reply, CtlClockSet after the last). */
void coord_clock_begin(struct coord *c, struct cnode *n, uint64_t now_ns);
void coord_clock_reply(struct coord *c, struct cnode *n, const CtlClockReply *r, uint64_t now_ns);

/* coord_cluster.c */
void coord_maybe_membership(struct coord *c, uint64_t now_ns);
void coord_node_msg(struct coord *c, int conn, const CtlMsg *m, uint64_t now_ns);
void coord_client_msg(struct coord *c, int conn, const CtlMsg *m, uint64_t now_ns);
/* n lost its connection (n->conn is already -1). */
void coord_node_lost(struct coord *c, struct cnode *n, const char *why);
void coord_begin_stop(struct coord *c, const char *reason, int exit_code);

#endif
