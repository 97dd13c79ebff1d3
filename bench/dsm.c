/*
 * bench_dsm: DSM fault latencies from a host harness through the same code
 * path a vCPU uses (dsm_page_try -> dsm_fault -> home transaction -> grant
 * -> RMA body), next to the transport's own message round trip and 4 KiB
 * RMA read measured on the same endpoints in the same run.
 *
 * Three nodes in one process, each with its own tcp;ofi_rxm endpoint on
 * 127.0.0.1, its own progress thread and registered RAM.  Measurements:
 *   msg_rtt      tp_request echo, 64 B, node 0 -> node 1
 *   rma_read     tp_rma_read 4 KiB, node 0 <- node 1
 *   read_fault   node 0 reads a page node 1 (its home) just wrote
 *   write_fault  node 0 writes a page it shares with one other node:
 *                "_2n": the sharer is the home (node 1);
 *                "_3n": home node 2, sharer node 1 (invalidation is remote)
 *   pingpong     nodes 0 and 1 take turns incrementing one counter
 *   lowshare     two workers on private pages with a shared counter touched
 *                every 256 iterations: both on node 0 vs one per node
 * Prints one JSON object per line.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "dsm/dsm.h"
#include "transport/tp.h"
#include "util/util.h"

#define NN 3
#define NPAGES 1024
#define RAM ((uint64_t)NPAGES * DSM_PAGE_SIZE)
#define BASE 0x80000000ull
#define MSG_ECHO 200 /* node/ range; bench only */

struct bnode {
	struct tp *tp;
	struct dsm *dsm;
	uint8_t *ram;
	pthread_rwlock_t users;
};

static struct bnode B[NN];

static int b_revoke(void *arg, uint64_t gpa, unsigned perms, bool trace)
{
	struct bnode *n = arg;
	pthread_rwlock_wrlock(&n->users);
	pthread_rwlock_unlock(&n->users);
	return 0;
}

/* The INV fast path: nothing to wait for unless a bench thread is inside
 * an access of its own (users held shared). */
static int b_revoke_try(void *arg, uint64_t gpa, unsigned perms, bool trace)
{
	struct bnode *n = arg;
	if (pthread_rwlock_trywrlock(&n->users))
		return -EWOULDBLOCK;
	pthread_rwlock_unlock(&n->users);
	return 0;
}

static const struct dsm_local_ops b_ops = {.revoke = b_revoke, .revoke_try = b_revoke_try};

static void echo(void *arg, const struct tp_msg *m)
{
	tp_reply(arg, m, MSG_ECHO, m->payload, m->len);
}

static int open_all(void)
{
	char addr[NN][TP_ADDR_MAX];
	size_t alen[NN];
	uint64_t key[NN], base[NN];
	int ids[NN] = {0, 1, 2};

	for (int i = 0; i < NN; i++) {
		struct tp_cfg c = {.node_id = i, .bind_addr = "127.0.0.1"};
		pthread_rwlock_init(&B[i].users, NULL);
		if (tp_create(&c, &B[i].tp))
			return -1;
		B[i].ram = mmap(NULL, RAM, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		alen[i] = sizeof(addr[i]);
		if (B[i].ram == MAP_FAILED || tp_local_addr(B[i].tp, addr[i], &alen[i]) ||
		    tp_mr_register(B[i].tp, B[i].ram, RAM, &key[i], &base[i]))
			return -1;
		tp_handler_set(B[i].tp, MSG_ECHO, echo, B[i].tp);
	}
	for (int i = 0; i < NN; i++) {
		for (int j = 0; j < NN; j++)
			if (j != i && tp_peer_add(B[i].tp, j, addr[j], alen[j], key[j], base[j]))
				return -1;
		struct dsm_cfg dc = {.tp = B[i].tp, .node_id = i, .nodes = ids, .nnodes = NN,
				     .ram = B[i].ram, .ram_base = BASE, .ram_size = RAM,
				     .ops = &b_ops, .ops_arg = &B[i]};
		if (dsm_create(&dc, &B[i].dsm) || dsm_start(B[i].dsm) || tp_start(B[i].tp))
			return -1;
	}
	return 0;
}

static uint64_t gpa_of(int page, int off)
{
	return BASE + (uint64_t)page * DSM_PAGE_SIZE + (uint64_t)off;
}

/* Page with home h among pages >= from. */
static int page_homed(int h, int from)
{
	for (int p = from;; p++)
		if (dsm_home_of(B[0].dsm, gpa_of(p, 0)) == h)
			return p;
}

static void add(struct bnode *n, uint64_t gpa, uint64_t v)
{
	for (;;) {
		void *h;
		pthread_rwlock_rdlock(&n->users);
		if (dsm_page_try(n->dsm, gpa, DSM_W, &h) == 0) {
			__atomic_fetch_add((uint64_t *)h, v, __ATOMIC_RELAXED);
			pthread_rwlock_unlock(&n->users);
			return;
		}
		pthread_rwlock_unlock(&n->users);
		if (dsm_fault(n->dsm, gpa, DSM_W, NULL))
			abort();
	}
}

static uint64_t load(struct bnode *n, uint64_t gpa)
{
	uint64_t v = 0;
	if (dsm_read(n->dsm, gpa, &v, sizeof(v)))
		abort();
	return v;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *name, uint64_t *ns, int n)
{
	double sum = 0;
	qsort(ns, (size_t)n, sizeof(*ns), cmp_u64);
	for (int i = 0; i < n; i++)
		sum += (double)ns[i];
	printf("{\"bench\":\"%s\",\"iters\":%d,\"mean_us\":%.2f,\"p50_us\":%.2f,\"p99_us\":%.2f}\n",
	       name, n, sum / n / 1000.0, ns[n / 2] / 1000.0, ns[n * 99 / 100] / 1000.0);
	fflush(stdout);
}

static void bench_baseline(int iters, uint64_t *ns)
{
	char msg[64] = {0}, reply[64], *buf = malloc(DSM_PAGE_SIZE);
	for (int i = -iters / 10; i < iters; i++) {
		size_t rl = sizeof(reply);
		uint64_t t0 = util_now_ns();
		if (tp_request(B[0].tp, 1, MSG_ECHO, msg, sizeof(msg), reply, &rl, 1000000000ull, 3))
			abort();
		if (i >= 0)
			ns[i] = util_now_ns() - t0;
	}
	report("msg_rtt", ns, iters);
	for (int i = -iters / 10; i < iters; i++) {
		uint64_t t0 = util_now_ns();
		if (tp_rma_read(B[0].tp, 1, RAM - DSM_PAGE_SIZE, buf, DSM_PAGE_SIZE, 1000000000ull))
			abort();
		if (i >= 0)
			ns[i] = util_now_ns() - t0;
	}
	report("rma_read", ns, iters);
	free(buf);
}

static void bench_faults(int iters, uint64_t *ns)
{
	int p = page_homed(1, 8);
	uint64_t g = gpa_of(p, 0);

	/* read fault: node 1 (home) writes, node 0 reads */
	for (int i = -iters / 10; i < iters; i++) {
		add(&B[1], g, 1);
		uint64_t t0 = util_now_ns();
		(void)load(&B[0], g);
		if (i >= 0)
			ns[i] = util_now_ns() - t0;
	}
	report("read_fault", ns, iters);
	/* write fault, one sharer: both read, node 0 writes */
	for (int pass = 0; pass < 2; pass++) {
		int q = pass == 0 ? page_homed(1, 16) : page_homed(2, 16);
		uint64_t gq = gpa_of(q, 0);
		for (int i = -iters / 10; i < iters; i++) {
			add(&B[1], gq, 1);  /* node 1 owns it */
			(void)load(&B[0], gq); /* node 0 and node 1 share it */
			uint64_t t0 = util_now_ns();
			add(&B[0], gq, 1);
			if (i >= 0)
				ns[i] = util_now_ns() - t0;
		}
		report(pass == 0 ? "write_fault_2n" : "write_fault_3n", ns, iters);
	}
}

struct pp_arg {
	struct bnode *n;
	uint64_t gpa;
	int parity, turns;
};

static void *pp_thread(void *arg)
{
	struct pp_arg *a = arg;
	for (int t = 0; t < a->turns; t++) {
		while ((int)(load(a->n, a->gpa) & 1) != a->parity)
			;
		add(a->n, a->gpa, 1);
	}
	return NULL;
}

/* Protocol counters summed over the nodes (what a phase cost besides time). */
static void stats_sum(struct dsm_stats *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (int i = 0; i < NN; i++) {
		struct dsm_stats s;
		dsm_stats(B[i].dsm, &s);
		sum->req_sent += s.req_sent;
		sum->req_retx += s.req_retx;
		sum->home_txns += s.home_txns;
		sum->home_skipped += s.home_skipped;
		sum->home_dup_req += s.home_dup_req;
		sum->msg_retries += s.msg_retries;
		sum->body_retries += s.body_retries;
		sum->grants_dup += s.grants_dup;
		sum->hold_waits += s.hold_waits;
		sum->hold_expired += s.hold_expired;
		sum->req_lost += s.req_lost;
	}
}

static void bench_pingpong(int turns)
{
	struct dsm_stats s0, s1;
	stats_sum(&s0);
	uint64_t g = gpa_of(page_homed(0, 40), 0);
	add(&B[0], g, 0 - load(&B[0], g)); /* start at 0 */
	struct pp_arg a[2] = {{&B[0], g, 0, turns}, {&B[1], g, 1, turns}};
	pthread_t th[2];
	uint64_t t0 = util_now_ns();
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, pp_thread, &a[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	double s = (double)(util_now_ns() - t0) / 1e9;
	stats_sum(&s1);
	printf("{\"bench\":\"pingpong\",\"turns\":%d,\"seconds\":%.3f,\"transfers_per_s\":%.0f,"
	       "\"req_sent\":%llu,\"req_retx\":%llu,\"home_txns\":%llu,\"home_skipped\":%llu,"
	       "\"home_dup_req\":%llu,\"msg_retries\":%llu,\"body_retries\":%llu,"
	       "\"grants_dup\":%llu,"
	       "\"hold_waits\":%llu,\"hold_expired\":%llu,\"req_lost\":%llu,"
	       "\"ok\":%s}\n", 2 * turns, s, 2 * turns / s,
	       (unsigned long long)(s1.req_sent - s0.req_sent),
	       (unsigned long long)(s1.req_retx - s0.req_retx),
	       (unsigned long long)(s1.home_txns - s0.home_txns),
	       (unsigned long long)(s1.home_skipped - s0.home_skipped),
	       (unsigned long long)(s1.home_dup_req - s0.home_dup_req),
	       (unsigned long long)(s1.msg_retries - s0.msg_retries),
	       (unsigned long long)(s1.body_retries - s0.body_retries),
	       (unsigned long long)(s1.grants_dup - s0.grants_dup),
	       (unsigned long long)(s1.hold_waits - s0.hold_waits),
	       (unsigned long long)(s1.hold_expired - s0.hold_expired),
	       (unsigned long long)(s1.req_lost - s0.req_lost),
	       load(&B[2], g) == (uint64_t)(2 * turns) ? "true" : "false");
	fflush(stdout);
}

struct ls_arg {
	struct bnode *n;
	int first_page, iters;
	uint64_t shared;
};

static void *ls_thread(void *arg)
{
	struct ls_arg *a = arg;
	for (int i = 0; i < a->iters; i++) {
		add(a->n, gpa_of(a->first_page + (i & 15), (i * 8) & 4095), (uint64_t)i);
		if ((i & 255) == 0)
			add(a->n, a->shared, 1);
	}
	return NULL;
}

static double lowshare(struct bnode *n0, struct bnode *n1, int base_page, int iters)
{
	uint64_t shared = gpa_of(base_page + 100, 0);
	struct ls_arg a[2] = {{n0, base_page, iters, shared}, {n1, base_page + 16, iters, shared}};
	pthread_t th[2];
	uint64_t t0 = util_now_ns();
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, ls_thread, &a[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	return (double)(util_now_ns() - t0) / 1e9;
}

static void bench_lowshare(int iters)
{
	double one = lowshare(&B[0], &B[0], 200, iters);
	double two = lowshare(&B[0], &B[1], 400, iters);
	printf("{\"bench\":\"lowshare\",\"iters_per_worker\":%d,\"one_node_s\":%.4f,"
	       "\"two_nodes_s\":%.4f,\"two_vs_one\":%.3f}\n", iters, one, two, two / one);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	int iters = 2000;
	const char *only = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--iters") && i + 1 < argc) {
			iters = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			only = argv[++i];
			if (strcmp(only, "faults") && strcmp(only, "pingpong") &&
			    strcmp(only, "lowshare")) {
				fprintf(stderr, "bench_dsm: --only takes faults, pingpong or "
						"lowshare, not '%s'\n", only);
				return 2;
			}
		} else if (!strcmp(argv[i], "--help")) {
			printf("usage: bench_dsm [--iters N] [--only faults|pingpong|lowshare]\n"
			       "  (--only: that part and the baselines; for investigating)\n");
			return 0;
		} else {
			fprintf(stderr, "bench_dsm: unknown argument '%s' (try --help)\n", argv[i]);
			return 2;
		}
	}
	if (iters < 10 || iters > 1000000) {
		fprintf(stderr, "bench_dsm: --iters must be 10..1000000\n");
		return 2;
	}
	util_log_set_level(LOG_LEVEL_ERR);
	if (open_all()) {
		fprintf(stderr, "bench_dsm: cannot open the three nodes\n");
		return 1;
	}
	uint64_t *ns = calloc((size_t)iters, sizeof(*ns));
	bench_baseline(iters, ns);
	if (!only || !strcmp(only, "faults"))
		bench_faults(iters, ns);
	bench_baseline(iters, ns); /* again: noise shows as a difference */
	if (!only || !strcmp(only, "pingpong"))
		bench_pingpong(iters);
	if (!only || !strcmp(only, "lowshare"))
		bench_lowshare(iters * 50);
	for (int i = 0; i < NN; i++)
		dsm_stop(B[i].dsm);
	for (int i = 0; i < NN; i++) {
		dsm_destroy(B[i].dsm);
		tp_destroy(B[i].tp);
	}
	free(ns);
	return 0;
}
