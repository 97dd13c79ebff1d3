/*
 * Model of the dsm/ coherence protocol (docs/dsm.md) for spin.
 *
 * 3 nodes, 2 pages; page p's home is node p (node 2 is home of nothing).
 * Every node runs a requester (a vCPU doing OPS reads/writes on random
 * pages), an agent (executes invalidations/downgrades and installs grants
 * that need no body, acting only on versions newer than its own), a puller
 * (installs a grant whose body it pulls from the supplier's RAM: the read
 * starts when the agent hands the grant over and ends in a later step, so
 * anything may happen in between, an invalidation of the page included),
 * and, for nodes 0 and 1, a home worker that runs one transaction at a
 * time.  Invalidations and write grants are resent until acknowledged;
 * read grants are not acknowledged: the home adds the reader to the
 * copyset and goes on, and a read request says whether the requester holds
 * a copy (a copyset member without one is granted again).  The network
 * loses up to MAXLOSS and duplicates up to MAXDUP messages of any kind; a
 * lost request or acknowledgement is retransmitted when nothing else can
 * move (spin's `timeout`, i.e. a retransmission timer that fired).
 *
 * Checked:
 * - single writer: per page at most one node Modified, and then nobody
 *   else holds a copy (assert after every state change);
 * - no acknowledged write lost / no stale read: a node reading a page it
 *   holds sees the value of the last completed write, and a grant installs
 *   exactly that value (the body pulled from the supplier: a pull during
 *   which the supplier's RAM changed yields TORN, which must never be
 *   installed);
 * - no deadlock: every process ends in a valid end state (spin -a default),
 *   and no requester needs more than RETX_MAX retransmissions (livelock).
 */
#define N 3
#define P 2
#ifndef OPS
#define OPS 2
#endif
#ifndef NREQ
#define NREQ 3       /* nodes running a requester (2: nodes 0 and 2 only) */
#endif
#ifndef MAXLOSS
#define MAXLOSS 1
#endif
#ifndef MAXDUP
#define MAXDUP 1
#endif
/* Retransmissions per access: the losses and duplicates above need only a
 * few, so a requester still waiting after RETX_MAX is stuck for good (a
 * request the home keeps skipping, say): it stops, and spin reports the
 * invalid end state.  Without the bound such a livelock is a cycle that a
 * safety check does not see.  Only retransmissions while no home waits in
 * `call` (which resends by itself) count: otherwise the requester's timer
 * would count the home's lost messages too. */
#ifndef RETX_MAX
#define RETX_MAX 4
#endif

#define I 0
#define S 1
#define M 2
#define R_ 1
#define W_ 2
#define NONE 255
#define TORN 254
#define IDX(n, p) ((n) * P + (p))

mtype = { INV, GRANT };

byte state[N * P];
byte ver[N * P];
byte mem[N * P];     /* the node's RAM copy of the page: a value */
byte latest[P];      /* value of the last completed write */
/* home directory */
byte copyset[P];
byte owner[P];       /* node + 1, 0 = none (zero page) */
bool excl[P];
byte dver[P];

byte losses, dups;
byte calls;          /* homes waiting in call() */
/* requester n waits for page wpage[n] with waiting[n] (R_/W_); the faulting
 * access is re-executed as soon as the grant is installed (modelled as one
 * step with the installation), which is the progress assumption: a vCPU
 * retries its access before a later revocation of the page is processed. */
byte waiting[N], wpage[N];
bool done[N];
/* the grant node n is pulling a body for (one at a time per node: a second
 * one is dropped, as when dsm_agent_install finds the page claimed) */
bool pulling[N];
byte pl_p[N], pl_v[N], pl_st[N], pl_sup[N], pl_body[N];

chan homeq[2] = [4] of { byte, byte, bool };  /* src, want, has_copy (page = home) */
chan agentq[N] = [3] of { mtype, byte, byte, byte, byte }; /* kind, page, ver, arg, supplier */
chan ackq[2] = [3] of { byte, byte, byte };  /* page, ver, responder (tp matches replies
					       * to their request by sequence number) */

#define NCOPY(p) ((state[IDX(0, p)] != I) + (state[IDX(1, p)] != I) + (state[IDX(2, p)] != I))
#define NMOD(p) ((state[IDX(0, p)] == M) + (state[IDX(1, p)] == M) + (state[IDX(2, p)] == M))
#define SINGLE_WRITER(p) (NMOD(p) == 0 || (NMOD(p) == 1 && NCOPY(p) == 1))

/* Lossy, duplicating send. */
inline net_send5(ch, a, b, c, d, e)
{
	if
	:: losses < MAXLOSS -> losses++
	:: dups < MAXDUP -> dups++; ch!a, b, c, d, e; ch!a, b, c, d, e
	:: ch!a, b, c, d, e
	fi
}

inline net_send3(ch, a, b, c)
{
	if
	:: losses < MAXLOSS -> losses++
	:: dups < MAXDUP -> dups++; ch!a, b, c; ch!a, b, c
	:: ch!a, b, c
	fi
}

/* The access a vCPU makes once it holds the page: a store completes under
 * Modified, a load sees the value of the last completed write. */
inline access(n, p, want)
{
	if
	:: want == W_ -> latest[p]++; mem[IDX(n, p)] = latest[p]
	:: else -> assert(mem[IDX(n, p)] == latest[p])
	fi
}

#define ALLOWS(n, p, want) ((want == W_ && state[IDX(n, p)] == M) || \
			    (want == R_ && state[IDX(n, p)] != I))

/* Installs grant (p, v, st) with body `body` at node n; a waiting access
 * runs at once (the progress assumption). */
inline install(n, p, v, st, body)
{
	assert(body == latest[p]);
	mem[IDX(n, p)] = body;
	ver[IDX(n, p)] = v;
	state[IDX(n, p)] = st;
	if
	:: waiting[n] && wpage[n] == p && ALLOWS(n, p, waiting[n]) ->
		access(n, p, waiting[n]);
		waiting[n] = 0;
		done[n] = 1
	:: else -> skip
	fi
}

proctype agent(byte n)
{
	byte p, v, a, sup;
	bool ack;
	mtype k;
end:
	do
	:: agentq[n]?k, p, v, a, sup ->
		atomic {
			ack = (k == INV || a == M);
			if
			:: v > ver[IDX(n, p)] && k == INV ->
				ver[IDX(n, p)] = v;
				if
				:: a == 1 && state[IDX(n, p)] == M -> state[IDX(n, p)] = S
				:: a == 0 -> state[IDX(n, p)] = I
				:: else -> skip
				fi
			:: v > ver[IDX(n, p)] && k == GRANT && a == S && state[IDX(n, p)] == M ->
				skip /* never lowers a Modified copy: a stale grant */
			:: v > ver[IDX(n, p)] && k == GRANT && (a == M || state[IDX(n, p)] != M) ->
				if
				:: state[IDX(n, p)] != I || sup == n ->
					/* our own copy: still the latest data */
					install(n, p, v, a, mem[IDX(n, p)])
				:: state[IDX(n, p)] == I && sup == NONE -> install(n, p, v, a, 0)
				:: state[IDX(n, p)] == I && sup != NONE && sup != n && !pulling[n] ->
					pulling[n] = 1;
					pl_p[n] = p; pl_v[n] = v; pl_st[n] = a; pl_sup[n] = sup;
					pl_body[n] = mem[IDX(sup, p)];
					ack = 0 /* the puller acknowledges */
				:: state[IDX(n, p)] == I && sup != NONE && sup != n && pulling[n] ->
					ack = 0 /* dropped: resent (write) or asked again (read) */
				fi
			:: else -> skip /* duplicate or stale: acknowledge only */
			fi;
			assert(SINGLE_WRITER(p))
		}
		if
		:: ack -> net_send3(ackq[p], p, v, n)
		:: else -> skip
		fi
	od
}

/* The end of a body read: torn if the supplier's RAM changed meanwhile;
 * installed only if no invalidation with a newer version came first. */
proctype puller(byte n)
{
	byte p, v;
	bool ack;
end:
	do
	:: pulling[n] ->
		atomic {
			p = pl_p[n];
			v = pl_v[n];
			if
			:: mem[IDX(pl_sup[n], p)] != pl_body[n] -> pl_body[n] = TORN
			:: else -> skip
			fi;
			if
			:: v > ver[IDX(n, p)] -> install(n, p, v, pl_st[n], pl_body[n])
			:: else -> skip /* overtaken: discarded */
			fi;
			ack = pl_st[n] == M;
			pulling[n] = 0;
			assert(SINGLE_WRITER(p))
		}
		if
		:: ack -> net_send3(ackq[p], p, v, n)
		:: else -> skip
		fi
	od
}

/* tp_request: send, wait for the matching ack, retransmit on timeout. */
inline call(dst, k, p, v, a, sup)
{
	calls++;
	net_send5(agentq[dst], k, p, v, a, sup);
	do
	:: ackq[p]?ap, av, an ->
		if
		:: ap == p && av == v && an == dst -> calls--; break
		:: else -> skip /* stale ack of a duplicate */
		fi
	:: timeout -> net_send5(agentq[dst], k, p, v, a, sup)
	od
}

proctype home(byte p)
{
	byte src, want, v, n, sup, ap, av, an;
	bool has;
end:
	do
	:: homeq[p]?src, want, has ->
		if
		:: (excl[p] && owner[p] == src + 1) || (want == R_ && has) ->
			skip /* already satisfied: duplicate or stale request */
		:: else ->
			v = dver[p] + 1;
			if
			:: want == R_ ->
				if
				:: owner[p] != 0 && excl[p] && owner[p] - 1 != src ->
					call(owner[p] - 1, INV, p, v, 1, 0)
				:: else -> skip
				fi;
				excl[p] = 0;
				dver[p] = v;
				copyset[p] = copyset[p] | (1 << src);
				sup = (owner[p] != 0 -> owner[p] - 1 : NONE);
				if
				:: owner[p] == 0 -> owner[p] = src + 1
				:: else -> skip
				fi;
				net_send5(agentq[src], GRANT, p, v, S, sup) /* not waited for */
			:: want == W_ ->
				n = 0;
				do
				:: n < N ->
					if
					:: n != src && (copyset[p] & (1 << n)) ->
						call(n, INV, p, v, 0, 0);
						copyset[p] = copyset[p] & ~(1 << n)
					:: else -> skip
					fi;
					n++
				:: else -> break
				od;
				excl[p] = 0;
				dver[p] = v;
				sup = (owner[p] != 0 -> owner[p] - 1 : NONE);
				call(src, GRANT, p, v, M, sup);
				copyset[p] = 1 << src;
				owner[p] = src + 1;
				excl[p] = 1
			fi
		fi
	od
}

proctype requester(byte n)
{
	byte op, p, want, retx;
	do
	:: op < OPS ->
		if
		:: p = 0
		:: p = 1
		fi;
		if
		:: want = R_
		:: want = W_
		fi;
		atomic {
			if
			:: ALLOWS(n, p, want) -> access(n, p, want); done[n] = 1
			:: else ->
				wpage[n] = p;
				waiting[n] = want;
				net_send3(homeq[p], n, want, state[IDX(n, p)] != I)
			fi
		}
		retx = 0;
		do
		:: done[n] -> break
		:: timeout && retx < RETX_MAX -> /* retransmission */
			if
			:: calls == 0 -> retx++
			:: else -> skip
			fi;
			net_send3(homeq[p], n, want, state[IDX(n, p)] != I)
		od;
		done[n] = 0;
		op++
	:: else -> break
	od
}

init
{
	atomic {
		run home(0);
		run home(1);
		run agent(0);
		run agent(1);
		run agent(2);
		run puller(0);
		run puller(1);
		run puller(2);
		run requester(0);
#if NREQ > 2
		run requester(1);
#endif
		run requester(2)
	}
}
