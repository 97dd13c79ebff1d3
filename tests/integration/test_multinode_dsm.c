/*
 * Runs a bare-metal multi-hart guest on three nodes in one process: each
 * node has its own tcp;ofi_rxm endpoint on 127.0.0.1, registered guest RAM,
 * DSM and the harts placed on it (hart k on node k % 3), wired by
 * node/vm_dsm.c exactly as a spanvm-node would be.  Node 0 loads the image
 * through the DSM.  Console output goes to stdout; the exit status is the
 * guest's exit code (124 on timeout).  With --faults every link drops,
 * duplicates, reorders and delays messages.  DSM statistics go to stderr
 * (or --stats-file F as JSON).  --place N0,N1,... puts hart k on node Nk
 * instead.  --expect-trace fails the run (exit 3) unless the harts of one
 * node notified each other through write traces (vm_trace.c bound in
 * vm_dsm.c) and never notified a non-subscriber; --no-trace runs without
 * them (a negative control for guests that need them).
 *
 *   test_multinode_dsm GUEST.elf HARTS [--faults] [--timeout S] [--stats-file F]
 *     [--audit-dir D]  (D/dsm-audit-node-N.txt: the final DSM state, dsm_audit_write)
 *                      [--place LIST] [--expect-trace] [--no-trace]
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "dsm/dsm.h"
#include "node/vm_dsm_int.h"
#include "node/vm_int.h"
#include "transport/tp.h"
#include "util/util.h"

#define NN 3
#define RAM_SIZE (64ull << 20)

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int exit_code = -1;

static void on_putc(void *arg, char ch)
{
	pthread_mutex_lock(&mu);
	fputc(ch, stdout);
	if (ch == '\n')
		fflush(stdout);
	pthread_mutex_unlock(&mu);
}

static void on_exit_cb(void *arg, int code)
{
	pthread_mutex_lock(&mu);
	if (exit_code < 0)
		exit_code = code;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n)) && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	*len = buf ? (size_t)n : 0;
	fclose(f);
	return buf;
}

struct node {
	struct tp *tp;
	uint8_t *ram;
	struct vmd *vmd;
	unsigned harts[VM_MAX_HARTS], nharts;
};

static struct node N[NN];
static int place[VM_MAX_HARTS]; /* node of each hart; -1 = k % NN */
static bool no_trace;

/* "0,0,1": hart k on node list[k]; harts beyond the list go to k % NN. */
static int parse_place(const char *list, unsigned nharts)
{
	unsigned k = 0;
	for (const char *p = list; *p; k++) {
		char *end;
		long n = strtol(p, &end, 10);
		if (end == p || n < 0 || n >= NN || k >= nharts || (*end && *end != ',')) {
			fprintf(stderr, "test_multinode_dsm: --place '%s': item %u must be a node "
					"0..%d, one per hart (%u harts)\n", list, k, NN - 1, nharts);
			return -1;
		}
		place[k] = (int)n;
		p = *end ? end + 1 : end;
	}
	return 0;
}

/* The trace totals of node i: notifications sent, and to non-subscribers. */
static int trace_totals(int i, json_int_t *sent, json_int_t *nonsub)
{
	json_t *root = json_object(), *tot, *kinds, *k;
	const char *name;
	int rc = -1;
	*sent = *nonsub = 0;
	vmd_trace_stats(N[i].vmd, root);
	tot = json_object_get(json_object_get(root, "trace"), "totals");
	kinds = json_object_get(tot, "kinds");
	if (tot && kinds) {
		json_object_foreach(kinds, name, k)
			*sent += json_integer_value(json_object_get(k, "notify_sent"));
		*nonsub = json_integer_value(json_object_get(tot, "notify_nonsub"));
		rc = 0;
	}
	json_decref(root);
	return rc;
}

static int open_nodes(unsigned nharts, bool faults)
{
	char addr[NN][TP_ADDR_MAX], err[256];
	size_t alen[NN];
	uint64_t key[NN], base[NN];
	int ids[NN] = {0, 1, 2};

	for (int i = 0; i < NN; i++) {
		struct tp_cfg c = {.node_id = i, .bind_addr = "127.0.0.1"};
		if (tp_create(&c, &N[i].tp))
			return -1;
		N[i].ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		alen[i] = sizeof(addr[i]);
		if (N[i].ram == MAP_FAILED || tp_local_addr(N[i].tp, addr[i], &alen[i]) ||
		    tp_mr_register(N[i].tp, N[i].ram, RAM_SIZE, &key[i], &base[i]))
			return -1;
	}
	for (unsigned k = 0; k < nharts; k++) {
		int n = place[k] >= 0 ? place[k] : (int)(k % NN);
		N[n].harts[N[n].nharts++] = k;
	}
	struct tp_fault f = {.drop_pct = 5, .dup_pct = 5, .reorder = true, .delay_ns = 50000,
			     .seed = 7};
	for (int i = 0; i < NN; i++) {
		for (int j = 0; j < NN; j++) {
			if (j == i)
				continue;
			if (tp_peer_add(N[i].tp, j, addr[j], alen[j], key[j], base[j]))
				return -1;
			if (faults && tp_fault_set(N[i].tp, j, &f))
				return -1;
		}
		struct vmd_cfg vc = {.tp = N[i].tp, .node_id = i, .nodes = ids, .nnodes = NN,
				     .ram = N[i].ram, .ram_size = RAM_SIZE, .harts = N[i].harts,
				     .nharts = N[i].nharts, .no_trace = no_trace, .on_putc = on_putc,
				     .on_exit = on_exit_cb,
				     /* loopback: a lost message is known lost after 10 ms */
				     .msg_timeout_ns = 10000000, .retx_ns = 5000000};
		if (vmd_create(&vc, &N[i].vmd, err, sizeof(err))) {
			fprintf(stderr, "node %d: %s\n", i, err);
			return -1;
		}
		if (tp_start(N[i].tp))
			return -1;
	}
	return 0;
}

static void write_stats(FILE *f, bool faults)
{
	fprintf(f, "{\"nodes\":[");
	for (int i = 0; i < NN; i++) {
		struct tp_stats ts;
		tp_stats(N[i].tp, &ts);
		uint64_t calls, silent;
		vmd_revoke_stats(N[i].vmd, &calls, &silent);
		fprintf(f, "%s{\"node\":%d,\"harts\":%u,\"revocations\":%llu,"
			   "\"revocations_silent\":%llu,\"revocation_interrupts\":%llu,"
			   "\"tp\":{\"tx_msgs\":%llu,\"fault_dropped\":%llu,\"fault_duplicated\":%llu,"
			   "\"rx_stale_epoch\":%llu,\"rx_bad_frame\":%llu},\"dsm\":",
			i ? "," : "", i, N[i].nharts, (unsigned long long)calls,
			(unsigned long long)silent, (unsigned long long)vmd_revocations(N[i].vmd), (unsigned long long)ts.tx_msgs,
			(unsigned long long)ts.fault_dropped, (unsigned long long)ts.fault_duplicated,
			(unsigned long long)ts.rx_stale_epoch, (unsigned long long)ts.rx_bad_frame);
		dsm_stats_write_json(vmd_dsm(N[i].vmd), f);
		json_t *root = json_object();
		vmd_trace_stats(N[i].vmd, root);
		json_t *tr = json_object_get(root, "trace");
		if (tr) {
			fprintf(f, ",\"trace\":");
			json_dumpf(tr, f, JSON_COMPACT);
		}
		json_decref(root);
		fprintf(f, "}");
	}
	fprintf(f, "],\"faults\":%s}\n", faults ? "true" : "false");
}

int main(int argc, char **argv)
{
	const char *stats_file = NULL, *audit_dir = NULL;
	bool faults = false, expect_trace = false;
	double timeout_s = 120;
	char err[256];

	if (argc < 3) {
		fprintf(stderr, "usage: test_multinode_dsm GUEST.elf HARTS [--faults] "
				"[--timeout S] [--stats-file F] [--place LIST] [--expect-trace] [--no-trace] "
				"[--audit-dir D]\n");
		return 2;
	}
	unsigned nharts = (unsigned)atoi(argv[2]);
	const char *place_list = NULL;
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--faults"))
			faults = true;
		else if (!strcmp(argv[i], "--expect-trace"))
			expect_trace = true;
		else if (!strcmp(argv[i], "--no-trace"))
			no_trace = true;
		else if (!strcmp(argv[i], "--place") && i + 1 < argc)
			place_list = argv[++i];
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout_s = atof(argv[++i]);
		else if (!strcmp(argv[i], "--stats-file") && i + 1 < argc)
			stats_file = argv[++i];
		else if (!strcmp(argv[i], "--audit-dir") && i + 1 < argc)
			audit_dir = argv[++i];
		else {
			fprintf(stderr, "test_multinode_dsm: unknown argument '%s'\n", argv[i]);
			return 2;
		}
	}
	if (nharts < 1 || nharts > VM_MAX_HARTS) {
		fprintf(stderr, "test_multinode_dsm: HARTS must be 1..%d\n", VM_MAX_HARTS);
		return 2;
	}
	for (unsigned k = 0; k < VM_MAX_HARTS; k++)
		place[k] = -1;
	if (place_list && parse_place(place_list, nharts))
		return 2;
	util_log_set_level(getenv("SPANVM_LOG_DEBUG") ? LOG_LEVEL_DBG : LOG_LEVEL_WARN);
	size_t len;
	uint8_t *img = read_file(argv[1], &len);
	if (!img) {
		/* guests need riscv64-unknown-elf-gcc; without it they are not built */
		fprintf(stderr, "skip: cannot read %s (guest not built?)\n", argv[1]);
		return 77;
	}
	if (open_nodes(nharts, faults)) {
		fprintf(stderr, "test_multinode_dsm: cannot set up the three nodes\n");
		return 1;
	}
	for (int i = 0; i < NN; i++)
		if (vmd_load_elf(N[i].vmd, img, len, i == 0, err, sizeof(err))) {
			fprintf(stderr, "node %d: %s: %s\n", i, argv[1], err);
			return 1;
		}
	free(img);
	for (int i = 0; i < NN; i++)
		if (vmd_start(N[i].vmd)) {
			fprintf(stderr, "node %d: cannot start harts\n", i);
			return 1;
		}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)timeout_s;
	pthread_mutex_lock(&mu);
	while (exit_code < 0)
		if (pthread_cond_timedwait(&cv, &mu, &ts) == ETIMEDOUT) {
			exit_code = 124;
			fprintf(stderr, "test_multinode_dsm: timeout after %.0f s\n", timeout_s);
		}
	int code = exit_code;
	pthread_mutex_unlock(&mu);
	fflush(stdout);
	/* As spanvm-node's stop (CtlHalt, then CtlStop one node at a time):
	 * every node halts its harts first while all DSMs still serve pages,
	 * so each hart must end within the bound, whatever page it waits for. */
	for (int i = 0; i < NN; i++) {
		unsigned left = vmd_halt(N[i].vmd, util_now_ns() + 5000000000ull);
		if (left) {
			fprintf(stderr, "test_multinode_dsm: node %d: %u hart(s) did not halt\n", i,
				left);
			code = code ? code : 1;
		}
	}
	for (int i = 0; i < NN && audit_dir; i++) /* transactions in flight end first */
		dsm_audit_settle(vmd_dsm(N[i].vmd), 2000);
	for (int i = 0; i < NN; i++)
		vmd_stop(N[i].vmd);
	for (int i = 0; i < NN && audit_dir; i++) { /* every node stopped: the final state */
		char path[600];
		snprintf(path, sizeof(path), "%s/dsm-audit-node-%d.txt", audit_dir, i);
		FILE *af = fopen(path, "w");
		if (!af || dsm_audit_write(vmd_dsm(N[i].vmd), af) || fclose(af)) {
			fprintf(stderr, "test_multinode_dsm: cannot write %s\n", path);
			code = code ? code : 1;
		}
	}
	FILE *sf = stats_file ? fopen(stats_file, "w") : stderr;
	if (sf) {
		write_stats(sf, faults);
		if (stats_file)
			fclose(sf);
	}
	if (expect_trace && code == 0) {
		/* the binding must be live: some node's harts notified each other */
		json_int_t sent = 0, nonsub = 0, s, ns;
		for (int i = 0; i < NN; i++)
			if (trace_totals(i, &s, &ns) == 0) {
				sent += s;
				nonsub += ns;
			}
		fprintf(stderr, "test_multinode_dsm: trace notifications %lld, to non-subscribers %lld\n",
			(long long)sent, (long long)nonsub);
		if (sent == 0 || nonsub != 0)
			code = 3;
	}
	for (int i = 0; i < NN; i++) {
		vmd_destroy(N[i].vmd);
		tp_destroy(N[i].tp);
		munmap(N[i].ram, RAM_SIZE);
	}
	return code;
}
