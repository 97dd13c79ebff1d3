/*
 * Model of the dsm/ coherence protocol (docs/dsm.md) for spin.
 *
 * 3 nodes, 2 pages; page p's home is node p (node 2 is home of nothing).
 * Every node runs a requester (a vCPU doing OPS reads/writes on random
 * pages), an agent (executes invalidations/downgrades and installs grants,
 * acknowledging everything, acting only on versions newer than its own),
 * and, for nodes 0 and 1, a home worker that runs one transaction at a time
 * with retransmission until acknowledged (tp_request).  The network loses
 * up to MAXLOSS and duplicates up to MAXDUP messages of any kind; a lost
 * request or acknowledgement is retransmitted when nothing else can move
 * (spin's `timeout`, i.e. a retransmission timer that fired).
 *
 * Checked:
 * - single writer: per page at most one node Modified, and then nobody
 *   else holds a copy (assert after every state change);
 * - no acknowledged write lost / no stale read: a node reading a page it
 *   holds sees the value of the last completed write, and a grant installs
 *   exactly that value (the body pulled from the supplier);
 * - no deadlock: every process ends in a valid end state (spin -a default).
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

#define I 0
#define S 1
#define M 2
#define R_ 1
#define W_ 2
#define NONE 255
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
/* requester n waits for page wpage[n] with waiting[n] (R_/W_); the faulting
 * access is re-executed as soon as the grant is installed (modelled as one
 * step with the installation), which is the progress assumption: a vCPU
 * retries its access before a later revocation of the page is processed. */
byte waiting[N], wpage[N];
bool done[N];

chan homeq[2] = [4] of { byte, byte };                   /* src, want (page = home) */
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

inline net_send2(ch, a, b)
{
	if
	:: losses < MAXLOSS -> losses++
	:: dups < MAXDUP -> dups++; ch!a, b; ch!a, b
	:: ch!a, b
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

proctype agent(byte n)
{
	byte p, v, a, sup;
	mtype k;
end:
	do
	:: agentq[n]?k, p, v, a, sup ->
		atomic {
			if
			:: v > ver[IDX(n, p)] && k == INV ->
				ver[IDX(n, p)] = v;
				if
				:: a == 1 && state[IDX(n, p)] == M -> state[IDX(n, p)] = S
				:: a == 0 -> state[IDX(n, p)] = I
				:: else -> skip
				fi
			:: v > ver[IDX(n, p)] && k == GRANT ->
				if
				:: sup == NONE -> mem[IDX(n, p)] = 0
				:: sup != NONE && sup != n ->
					/* the supplier keeps the page read-only meanwhile */
					assert(state[IDX(sup, p)] != M);
					mem[IDX(n, p)] = mem[IDX(sup, p)]
				:: else -> skip
				fi;
				assert(mem[IDX(n, p)] == latest[p]);
				ver[IDX(n, p)] = v;
				state[IDX(n, p)] = a;
				if
				:: waiting[n] && wpage[n] == p && ALLOWS(n, p, waiting[n]) ->
					access(n, p, waiting[n]);
					waiting[n] = 0;
					done[n] = 1
				:: else -> skip
				fi
			:: else -> skip /* duplicate or stale: acknowledge only */
			fi;
			assert(SINGLE_WRITER(p))
		}
		net_send3(ackq[p], p, v, n)
	od
}

/* tp_request: send, wait for the matching ack, retransmit on timeout. */
inline call(dst, k, p, v, a, sup)
{
	net_send5(agentq[dst], k, p, v, a, sup);
	do
	:: ackq[p]?ap, av, an ->
		if
		:: ap == p && av == v && an == dst -> break
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
	:: homeq[p]?src, want ->
		if
		:: (want == R_ && (copyset[p] & (1 << src))) ||
		   (want == W_ && owner[p] == src + 1 && excl[p]) ->
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
				sup = (owner[p] != 0 -> owner[p] - 1 : NONE);
				call(src, GRANT, p, v, S, sup);
				dver[p] = v;
				copyset[p] = copyset[p] | (1 << src);
				if
				:: owner[p] == 0 -> owner[p] = src + 1
				:: else -> skip
				fi
			:: want == W_ ->
				has = (copyset[p] & (1 << src)) != 0;
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
				sup = (has -> src : (owner[p] != 0 -> owner[p] - 1 : NONE));
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
	byte op, p, want;
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
			:: else -> wpage[n] = p; waiting[n] = want; net_send2(homeq[p], n, want)
			fi
		}
		do
		:: done[n] -> break
		:: timeout -> net_send2(homeq[p], n, want) /* retransmission */
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
		run requester(0);
#if NREQ > 2
		run requester(1);
#endif
		run requester(2)
	}
}
