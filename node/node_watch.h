/*
 * node_watch: data-plane liveness of a running node's peers (internal to
 * node/).  A thread pings every peer once per period over the fabric and
 * remembers when each last answered.  The node reports these ages in its
 * heartbeats, so the coordinator can tell a dead or isolated node from a
 * coordinator that is merely cut off from it; the node itself uses them to
 * decide whether losing the coordinator means it must leave (docs/deploy.md,
 * "partition rules").
 *
 * Threads: node_watch_start/stop/remove and the readers run on the node's
 * main thread; the watch thread only calls tp_ping (thread-safe) and
 * stores times with __atomic stores.  The peer list is fixed at start;
 * removal is a flag (atomic), so no lock is needed.
 */
#ifndef SPANVM_NODE_WATCH_H
#define SPANVM_NODE_WATCH_H

#include <stdint.h>

#include "proto/control.pb-c.h"

struct tp;
struct node_watch;

#define NODE_WATCH_NEVER 0xffffffffu

/* Starts watching npeers peers; every peer counts as just seen. */
int node_watch_start(struct tp *tp, const uint32_t *peers, uint32_t npeers, uint32_t period_ms,
		     struct node_watch **out);
/* Stops and frees (NULL is fine). */
void node_watch_stop(struct node_watch *w);
/* A failed peer: no longer pinged, reported or counted. */
void node_watch_remove(struct node_watch *w, uint32_t peer);
/*
 * Fills out[i] (pointed to by ptrs[i]) for every watched peer, at most max;
 * returns the count.
 */
size_t node_watch_report(struct node_watch *w, CtlPeerSeen *out, CtlPeerSeen **ptrs, size_t max);
/* Age in ms of the stalest watched peer (0 if none), its id in *peer. */
uint32_t node_watch_oldest(struct node_watch *w, uint32_t *peer);

#endif
