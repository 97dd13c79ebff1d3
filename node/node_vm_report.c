/*
 * `spanvm launch`, after the cluster stopped: the statistics the nodes left
 * in the runtime dir (dsm-node-N.json: DSM counters, revocations, the hot
 * pages of the pages it is home of; vm-node-N.json: the Linux machine's
 * node-to-node requests and the trace table) become one line per node on
 * stderr, the ten hottest guest pages of the whole VM (each page has one
 * home, so the nodes' lists merge by concatenation) with the kernel symbol
 * each belongs to when a System.map lies next to the kernel Image, and with
 * --stats-file one JSON object {"guest_exit", "nodes": [...], "hot_pages"}.
 * Runs on the launcher's main thread only.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/node.h"
#include "node/vm_dsm_int.h"
#include "node/virt_int.h"

#define HOT_SHOWN 10

struct hot {
	uint64_t gpa, requests, moves;
	int home;
};

static int by_requests(const void *a, const void *b)
{
	const struct hot *x = a, *y = b;
	if (x->requests != y->requests)
		return x->requests < y->requests ? 1 : -1;
	return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

static json_int_t num(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static void node_line(uint32_t id, json_t *js)
{
	json_t *lx = json_object_get(js, "linux"), *rv = json_object_get(js, "revocation");
	fprintf(stderr, "spanvm: node %u dsm: %lld read + %lld write faults, %lld grants "
			"(%lld bodies by RMA), %lld invalidations, %lld bad messages\n",
		id, (long long)num(js, "read_faults"), (long long)num(js, "write_faults"),
		(long long)num(js, "grants"), (long long)num(js, "bodies_rma"),
		(long long)num(js, "inv_recv"), (long long)num(js, "rx_bad"));
	if (rv)
		fprintf(stderr, "spanvm: node %u revocations: %lld (%lld interrupted no hart), "
				"%lld hart interrupts\n", id, (long long)num(rv, "calls"),
			(long long)num(rv, "silent"), (long long)num(rv, "interrupts"));
	if (lx)
		fprintf(stderr, "spanvm: node %u linux: %lld SBI calls; sent %lld IPIs, %lld "
				"fences, %lld HSM, %lld MMIO requests (%lld resent), %lld PLIC "
				"line messages\n", id, (long long)num(lx, "sbi_calls"),
			(long long)num(lx, "sent_ipi"), (long long)num(lx, "sent_fence"),
			(long long)num(lx, "sent_hsm"), (long long)num(lx, "sent_mmio"),
			(long long)num(lx, "req_retx"), (long long)num(lx, "irq_sent"));
}

/* The System.map next to the kernel Image, if any. */
static struct sysmap *kernel_map(const struct config *cfg)
{
	char path[600];
	struct sysmap *sm = NULL;
	if (!cfg->kernel)
		return NULL;
	const char *slash = strrchr(cfg->kernel, '/');
	snprintf(path, sizeof(path), "%.*sSystem.map", slash ? (int)(slash - cfg->kernel + 1) : 0,
		 cfg->kernel);
	return sysmap_load(path, &sm) == 0 ? sm : NULL;
}

static void hot_report(const struct config *cfg, struct hot *h, size_t n, json_t *arr)
{
	struct sysmap *sm = kernel_map(cfg);
	qsort(h, n, sizeof(*h), by_requests);
	if (n > HOT_SHOWN)
		n = HOT_SHOWN;
	if (n)
		fprintf(stderr, "spanvm: the %zu hottest guest pages (DSM transactions at the "
				"home; ownership moves between nodes):\n", n);
	for (size_t i = 0; i < n; i++) {
		uint64_t off = 0;
		const char *sym = sm ? sysmap_name(sm, h[i].gpa, &off) : NULL;
		char where[200];
		if (sym)
			snprintf(where, sizeof(where), "%s+0x%llx", sym, (unsigned long long)off);
		else
			snprintf(where, sizeof(where), "%s", sm ? "(outside the kernel image)" : "");
		fprintf(stderr, "spanvm:   0x%09llx  home %-3d %8llu txns %6llu moves  %s\n",
			(unsigned long long)h[i].gpa, h[i].home, (unsigned long long)h[i].requests,
			(unsigned long long)h[i].moves, where);
		json_t *o = json_pack("{s:I,s:i,s:I,s:I}", "gpa", (json_int_t)h[i].gpa, "home",
				      h[i].home, "requests", (json_int_t)h[i].requests, "moves",
				      (json_int_t)h[i].moves);
		if (sym)
			json_object_set_new(o, "symbol", json_string(where));
		json_array_append_new(arr, o);
	}
	sysmap_free(sm);
}

/* Collects one node's hot pages into *h (grown). */
static void add_hot(json_t *js, int home, struct hot **h, size_t *n)
{
	json_t *arr = json_object_get(js, "hot_pages"), *e;
	size_t k;
	json_array_foreach(arr, k, e) {
		struct hot *nh = realloc(*h, (*n + 1) * sizeof(**h));
		if (!nh)
			return;
		*h = nh;
		(*h)[(*n)++] = (struct hot){(uint64_t)num(e, "gpa"), (uint64_t)num(e, "requests"),
					    (uint64_t)num(e, "moves"), home};
	}
}

int node_vm_launch_result(const char *rundir, const struct config *cfg, const char *stats_file,
			  int rc, const int *guest_exit)
{
	char path[700];
	json_t *root = json_object(), *nodes = json_array(), *hot_arr = json_array();
	struct hot *hot = NULL;
	size_t nhot = 0;

	for (uint32_t i = 0; i < cfg->nnodes; i++) {
		uint32_t id = cfg->nodes[i].id;
		snprintf(path, sizeof(path), "%s/dsm-node-%u.json", rundir, id);
		json_t *js = json_load_file(path, JSON_DISABLE_EOF_CHECK, NULL);
		unlink(path);
		snprintf(path, sizeof(path), "%s/vm-node-%u.json", rundir, id);
		json_t *vm = json_load_file(path, 0, NULL);
		unlink(path);
		if (!js) {
			json_decref(vm);
			continue;
		}
		if (json_is_object(vm))
			json_object_update(js, vm);
		json_decref(vm);
		node_line(id, js);
		add_hot(js, (int)id, &hot, &nhot);
		json_array_append_new(nodes, js);
	}
	hot_report(cfg, hot, nhot, hot_arr);
	free(hot);
	json_object_set_new(root, "guest_exit", guest_exit ? json_integer(*guest_exit) : json_null());
	json_object_set_new(root, "nodes", nodes);
	json_object_set_new(root, "hot_pages", hot_arr);
	if (stats_file && json_dump_file(root, stats_file, JSON_COMPACT))
		fprintf(stderr, "spanvm: cannot write --stats-file %s: %s\n", stats_file,
			strerror(errno));
	json_decref(root);
	if (!guest_exit)
		return rc;
	fprintf(stderr, "spanvm: guest exited with code %d\n", *guest_exit);
	return *guest_exit;
}
