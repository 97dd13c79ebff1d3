/*
 * Per-node clock offsets, measured at join (DESIGN "Time"): a node's mtime
 * is its host monotonic clock minus the VM's mtime 0 expressed in that
 * clock, so every node must know where the coordinator's reference instant
 * (the coordinator's start) lies on its own clock.
 *
 * NTP-style: CLOCK_SAMPLES probes, one after the other.  Probe k carries
 * t1 (coordinator clock at send); the node answers with t2/t3 (its clock at
 * receive/send); at t4 the coordinator computes
 *     rtt    = (t4 - t1) - (t3 - t2)
 *     offset = ((t2 - t1) + (t3 - t4)) / 2      (node clock - ours)
 * and keeps the sample with the smallest rtt (the least queueing, so the
 * least asymmetry).  After the last reply: CtlClockSet {offset, rtt,
 * zero_ns = start + offset}.  The error is at most rtt/2 of the best
 * sample (microseconds on a LAN, well under one 100 ns tick rarely).
 * Single-threaded like the rest of the coordinator; replies that do not
 * match the outstanding probe (late, duplicated) are ignored.
 */
#include "coordinator/coord_int.h"
#include "util/util.h"

#define CLOCK_SAMPLES 8

static void send_probe(struct coord *c, struct cnode *n, uint64_t now_ns)
{
	CtlClockProbe p = CTL_CLOCK_PROBE__INIT;
	CtlMsg m = CTL_MSG__INIT;
	p.seq = ++n->clk_seq;
	p.t1_ns = now_ns;
	m.body_case = CTL_MSG__BODY_CLOCK_PROBE;
	m.clock_probe = &p;
	coord_send(c, n->conn, &m);
}

void coord_clock_begin(struct coord *c, struct cnode *n, uint64_t now_ns)
{
	n->clk_samples = 0;
	n->clk_rtt_ns = 0;
	n->clk_done = false;
	send_probe(c, n, now_ns);
}

static void send_set(struct coord *c, struct cnode *n)
{
	CtlClockSet s = CTL_CLOCK_SET__INIT;
	CtlMsg m = CTL_MSG__INIT;
	s.offset_ns = n->clk_offset_ns;
	s.rtt_ns = n->clk_rtt_ns;
	s.zero_ns = (uint64_t)((int64_t)c->start_ns + n->clk_offset_ns);
	m.body_case = CTL_MSG__BODY_CLOCK_SET;
	m.clock_set = &s;
	coord_send(c, n->conn, &m);
	n->clk_done = true;
	LOG_INFO("coord", "node %u clock: offset %+lld ns (best round trip %llu ns of %u)",
		 n->cfgn->id, (long long)n->clk_offset_ns, (unsigned long long)n->clk_rtt_ns,
		 n->clk_samples);
}

void coord_clock_reply(struct coord *c, struct cnode *n, const CtlClockReply *r, uint64_t now_ns)
{
	if (n->clk_done || r->seq != n->clk_seq || r->t1_ns > now_ns || r->t3_ns < r->t2_ns)
		return; /* stale, duplicated or nonsense: the next probe decides */
	uint64_t rtt = (now_ns - r->t1_ns) - (r->t3_ns - r->t2_ns);
	int64_t off = ((int64_t)(r->t2_ns - r->t1_ns) + (int64_t)(r->t3_ns - now_ns)) / 2;
	if (!n->clk_rtt_ns || rtt < n->clk_rtt_ns) {
		n->clk_rtt_ns = rtt ? rtt : 1;
		n->clk_offset_ns = off;
	}
	if (++n->clk_samples < CLOCK_SAMPLES)
		send_probe(c, n, now_ns);
	else
		send_set(c, n);
}
