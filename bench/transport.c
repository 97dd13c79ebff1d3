/*
 * bench_transport: 64 B message round trip (tp_request -> handler ->
 * tp_reply) and 4 KiB RMA read latency (tp_rma_read) between two tp
 * endpoints in two processes on loopback.  The process forks: the child
 * is the server (replies, owns the region read by RMA), the parent the
 * client; fabric addresses and region keys cross over a pipe pair before
 * any traffic, as the coordinator's membership table would carry them.
 *
 * Prints one JSON object per measurement on stdout:
 *   {"bench":"msg_rtt","size":64,"iters":N,"mean_us":..,"p50_us":..,"p99_us":..,...}
 * bench/transport.sh puts these next to fi_pingpong's figures.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "transport/tp.h"
#include "util/util.h"

#define MSG_ECHO 64 /* a node/ range type, only used here */
#define REGION (1u << 20)

struct opts {
	const char *provider;
	int iters, warmup;
	size_t msg_size, rma_size;
	uint64_t spin_ns;
};

struct blob {
	char addr[TP_ADDR_MAX];
	size_t alen;
	uint64_t key, base;
};

static void echo_handler(void *arg, const struct tp_msg *m)
{
	tp_reply(arg, m, MSG_ECHO, m->payload, m->len);
}

static int full_io(int fd, void *buf, size_t len, bool wr)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = wr ? write(fd, (char *)buf + done, len - done)
			       : read(fd, (char *)buf + done, len - done);
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

/* Opens one endpoint with a registered region, exchanges with the other side. */
static int open_side(const struct opts *o, int id, int rfd, int wfd, struct tp **out, char **region)
{
	struct tp_cfg cfg = {.node_id = id, .provider = o->provider, .bind_addr = "127.0.0.1",
			     .spin_ns = o->spin_ns};
	struct blob me = {.alen = TP_ADDR_MAX}, peer;
	struct tp *tp;
	int rc = tp_create(&cfg, &tp);

	if (rc) {
		fprintf(stderr, "bench_transport: tp_create(provider %s): %s\n",
			o->provider ? o->provider : "(default)", strerror(-rc));
		return rc;
	}
	*region = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (*region == MAP_FAILED)
		return -ENOMEM;
	for (size_t i = 0; i < REGION; i++)
		(*region)[i] = (char)(i * 13 + id);
	if ((rc = tp_local_addr(tp, me.addr, &me.alen)) ||
	    (rc = tp_mr_register(tp, *region, REGION, &me.key, &me.base)))
		return rc;
	if (full_io(wfd, &me, sizeof(me), true) || full_io(rfd, &peer, sizeof(peer), false))
		return -EPIPE;
	rc = tp_peer_add(tp, 3 - id, peer.addr, peer.alen, peer.key, peer.base);
	if (!rc)
		rc = tp_handler_set(tp, MSG_ECHO, echo_handler, tp);
	if (!rc)
		rc = tp_start(tp);
	*out = tp;
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *name, size_t size, uint64_t *ns, int n, const struct opts *o,
		   struct tp *tp)
{
	double sum = 0;

	for (int i = 0; i < n; i++)
		sum += (double)ns[i];
	qsort(ns, (size_t)n, sizeof(*ns), cmp_u64);
	printf("{\"bench\":\"%s\",\"size\":%zu,\"iters\":%d,\"mean_us\":%.2f,\"p50_us\":%.2f,"
	       "\"p99_us\":%.2f,\"min_us\":%.2f,\"provider\":\"%s\",\"spin_ns\":%llu}\n",
	       name, size, n, sum / n / 1000.0, (double)ns[n / 2] / 1000.0,
	       (double)ns[(int)(n * 0.99)] / 1000.0, (double)ns[0] / 1000.0,
	       tp_provider_name(tp), (unsigned long long)o->spin_ns);
	fflush(stdout);
}

static int run_client(const struct opts *o, struct tp *tp, char *region)
{
	uint64_t *ns = calloc((size_t)o->iters, sizeof(*ns));
	char *req = calloc(1, o->msg_size), *rep = calloc(1, o->msg_size);
	int rc = 0;

	if (!ns || !req || !rep)
		return -ENOMEM;
	for (int i = -o->warmup; i < o->iters && !rc; i++) {
		size_t len = o->msg_size;
		uint64_t t0 = util_now_ns();
		rc = tp_request(tp, 2, MSG_ECHO, req, o->msg_size, rep, &len, 1000000000ull, 0);
		if (i >= 0)
			ns[i] = util_now_ns() - t0;
	}
	if (rc) {
		fprintf(stderr, "bench_transport: request: %s\n", strerror(-rc));
		return rc;
	}
	report("msg_rtt", o->msg_size, ns, o->iters, o, tp);
	/* RMA into our own registered region, as the DSM pulls a page. */
	for (int i = -o->warmup; i < o->iters && !rc; i++) {
		uint64_t off = ((uint64_t)(i + o->warmup) * o->rma_size) % (REGION - o->rma_size);
		uint64_t t0 = util_now_ns();
		rc = tp_rma_read(tp, 2, off, region + off, o->rma_size, 1000000000ull);
		if (i >= 0)
			ns[i] = util_now_ns() - t0;
	}
	if (rc) {
		fprintf(stderr, "bench_transport: rma read: %s\n", strerror(-rc));
		return rc;
	}
	report("rma_read", o->rma_size, ns, o->iters, o, tp);
	free(ns);
	free(req);
	free(rep);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_transport [--iters N] [--warmup N] [--msg-size B] [--rma-size B]\n"
		   "                       [--provider P] [--spin-ns NS (0: transport default)]\n"
		   "Forks a server; prints one JSON line per measurement (msg_rtt, rma_read).\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"iters", 1, 0, 'i'},	 {"warmup", 1, 0, 'w'},	  {"msg-size", 1, 0, 'm'},
		{"rma-size", 1, 0, 'r'}, {"provider", 1, 0, 'p'}, {"spin-ns", 1, 0, 's'},
		{"help", 0, 0, 'h'},	 {0, 0, 0, 0}};
	int c, li = 0;

	while ((c = getopt_long(argc, argv, "h", lo, &li)) != -1) {
		char *end = NULL;
		unsigned long long v = optarg ? strtoull(optarg, &end, 10) : 0;
		if (optarg && c != 'p' && (*end || !*optarg)) {
			fprintf(stderr, "bench_transport: --%s needs a number, got '%s'\n",
				lo[li].name, optarg);
			return 2;
		}
		switch (c) {
		case 'i': o->iters = (int)v; break;
		case 'w': o->warmup = (int)v; break;
		case 'm': o->msg_size = v; break;
		case 'r': o->rma_size = v; break;
		case 'p': o->provider = optarg; break;
		case 's': o->spin_ns = v; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return 2;
		}
	}
	if (o->iters < 1 || o->iters > 10000000 || o->rma_size < 1 || o->rma_size > REGION / 2 ||
	    o->msg_size > 65536) {
		fprintf(stderr, "bench_transport: iters 1..1e7, rma-size 1..%u, msg-size <= 65536\n",
			REGION / 2);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {.iters = 5000, .warmup = 500, .msg_size = 64, .rma_size = 4096,
			 .spin_ns = 0};
	int c2s[2], s2c[2], done[2], rc;
	struct tp *tp = NULL;
	char *region;

	if ((rc = parse(argc, argv, &o)))
		return rc;
	if (pipe(c2s) || pipe(s2c) || pipe(done))
		return 1;
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) { /* server: serve until the client closes `done` */
		char b;
		close(c2s[1]); /* only our own ends stay open, so EOF means gone */
		close(s2c[0]);
		close(done[1]);
		util_log_set_node(2);
		rc = open_side(&o, 2, c2s[0], s2c[1], &tp, &region);
		close(s2c[1]);
		if (!rc)
			(void)read(done[0], &b, 1);
		tp_destroy(tp);
		_exit(rc ? 1 : 0);
	}
	close(done[0]);
	close(c2s[0]);
	close(s2c[1]);
	util_log_set_node(1);
	rc = open_side(&o, 1, s2c[0], c2s[1], &tp, &region);
	close(c2s[1]); /* a server still waiting for our blob sees EOF */
	if (!rc)
		rc = run_client(&o, tp, region);
	close(done[1]);
	int status = 0;
	waitpid(pid, &status, 0);
	tp_destroy(tp);
	return rc || !WIFEXITED(status) || WEXITSTATUS(status) ? 1 : 0;
}
