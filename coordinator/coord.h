/*
 * coordinator: rendezvous and supervision of one cluster (one VM).
 *
 * Two parts:
 * - The state machine (coord_core.c): authenticates joins, keeps the
 *   membership table (node id -> fabric address, memory key/base, vCPU
 *   placement, epoch), runs the start barrier, watches heartbeats against
 *   the lease, declares failures and tells the survivors, answers status
 *   queries and stops the cluster in order.  It does no I/O: the caller
 *   feeds it connection events and decoded messages with the current time,
 *   and it answers through struct coord_io.  Unit tests drive it directly.
 * - The server (coord_server.c): a single-threaded poll() loop on a TCP
 *   listener that frames/unframes CtlMsg (proto/control.proto) and calls
 *   the state machine; `spanvm-coord` is a thin main() around it.
 *
 * Threads and locking: none.  One thread owns a struct coord and calls
 * every function; the io callbacks run on that thread, inside the call
 * that triggered them.
 *
 * Phases: JOIN -> BARRIER -> RUNNING -> STOPPING -> STOPPED (the caller
 * exits when coord_done() says so).  Connection ids are chosen by the
 * caller (the server uses the fd), 0..COORD_MAX_CONNS-1.
 */
#ifndef SPANVM_COORD_H
#define SPANVM_COORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/control.pb-c.h"
#include "util/util.h"

#define COORD_MAX_CONNS 1024
#define COORD_HANDSHAKE_MS 5000 /* an unauthenticated connection gets this long */

struct coord;

struct coord_io {
	void *arg;
	/* Queue one message on conn; 0 or -errno (the core then closes it). */
	int (*send)(void *arg, int conn, const CtlMsg *msg);
	/* Close conn after its queued messages are flushed.  The core forgets
	 * the connection itself; coord_on_close is not expected afterwards. */
	void (*close)(void *arg, int conn);
};

struct coord_cfg {
	const struct config *cfg; /* borrowed; outlives the coord */
	const uint8_t *secret;    /* copied */
	size_t secret_len;
};

int coord_create(const struct coord_cfg *cfg, const struct coord_io *io, uint64_t now_ns,
		 struct coord **out);
void coord_destroy(struct coord *c);

/* A new connection; -EBUSY if conn is out of range or in use. */
int coord_on_connect(struct coord *c, int conn, uint64_t now_ns);
/* One decoded message from conn.  Protocol errors close conn. */
void coord_on_msg(struct coord *c, int conn, const CtlMsg *msg, uint64_t now_ns);
/* The peer closed conn (or it failed). */
void coord_on_close(struct coord *c, int conn, uint64_t now_ns);
/*
 * Time-driven work: handshake timeouts, lease expiry, join/barrier
 * timeouts, stop timeouts.  *next_ns = when it wants to run next.
 */
void coord_tick(struct coord *c, uint64_t now_ns, uint64_t *next_ns);
/* Begins an orderly stop (e.g. on SIGTERM); reason is logged and sent. */
void coord_stop(struct coord *c, const char *reason, uint64_t now_ns);

/* True once STOPPED; *exit_code 0 = stopped on request or after the
 * guest's exit, 1 = after failure. */
bool coord_done(const struct coord *c, int *exit_code);
/* True once a node reported the guest's exit; *code = its exit code. */
bool coord_guest_exit(const struct coord *c, int *code);
CtlPhase coord_phase(const struct coord *c);
uint64_t coord_epoch(const struct coord *c);
/* State of node id (CTL_STATE_INVALID if not configured). */
CtlNodeState coord_node_state(const struct coord *c, uint32_t node_id);
/*
 * The status reply (what `spanvm status` shows), packed: *buf is malloc'ed
 * (caller frees).  final marks the copy written as the coordinator exits.
 * 0 or -ENOMEM.
 */
int coord_status_pack(struct coord *c, bool final, uint64_t now_ns, uint8_t **buf, size_t *len);

/*
 * Server: listens on host:port (port 0 = ephemeral), writes "HOST:PORT\n"
 * of the bound socket to addr_file (if not NULL, atomically via rename),
 * runs the loop until the cluster stopped or *stop_flag is set (then an
 * orderly stop first).  Returns the exit code of coord_done, or -errno if
 * it could not listen (err says why).
 */
struct coord_server_cfg {
	const struct config *cfg;
	const uint8_t *secret;
	size_t secret_len;
	const char *host;
	uint16_t port;
	const char *addr_file;
	/* if not NULL: the final status (coord_status_pack) is written here,
	 * atomically, when the cluster stopped */
	const char *status_file;
	volatile int *stop_flag; /* set from a signal handler */
};
int coord_server_run(const struct coord_server_cfg *scfg, char *err, size_t errlen);

/* Names for logs and JSON ("joining", "running", ...). */
const char *coord_state_name(CtlNodeState s);
const char *coord_phase_name(CtlPhase p);

#endif
