/*
 * dsm/dsm_audit.c on three real dsm instances (tcp;ofi_rxm on 127.0.0.1,
 * homes interleaved: page p at node p % 3): after writes and reads from
 * different nodes, the dumps name the right states, owners, copysets and
 * versions, the host-side checker (argv[1]: deploy/netns/dsm-audit-check)
 * accepts them, and dsm_audit_lost lists exactly the pages whose only copy
 * was on the failed nodes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dsm/dsm.h"
#include "transport/tp.h"
#include "util/util.h"

#define NN 3
#define NPAGES 30
#define RAM (NPAGES * DSM_PAGE_SIZE)
#define BASE 0x80000000ull

static struct {
	struct tp *tp;
	struct dsm *dsm;
	uint8_t *ram;
} N[NN];
static const char *checker;
static char dir[] = "/tmp/spanvm-audit-unit-XXXXXX";

static int cluster_open(void **state)
{
	char addr[NN][TP_ADDR_MAX];
	size_t alen[NN];
	uint64_t key[NN], base[NN];
	int ids[NN] = {0, 1, 2};

	(void)state;
	for (int i = 0; i < NN; i++) {
		struct tp_cfg c = {.node_id = i, .bind_addr = "127.0.0.1"};
		if (tp_create(&c, &N[i].tp))
			return -1;
		N[i].ram = mmap(NULL, RAM, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		alen[i] = sizeof(addr[i]);
		if (N[i].ram == MAP_FAILED || tp_local_addr(N[i].tp, addr[i], &alen[i]) ||
		    tp_mr_register(N[i].tp, N[i].ram, RAM, &key[i], &base[i]))
			return -1;
	}
	for (int i = 0; i < NN; i++) {
		for (int j = 0; j < NN; j++)
			if (j != i && tp_peer_add(N[i].tp, j, addr[j], alen[j], key[j], base[j]))
				return -1;
		struct dsm_cfg dc = {.tp = N[i].tp, .node_id = i, .nodes = ids, .nnodes = NN,
				     .ram = N[i].ram, .ram_base = BASE, .ram_size = RAM};
		if (dsm_create(&dc, &N[i].dsm) || dsm_start(N[i].dsm) || tp_start(N[i].tp))
			return -1;
	}
	return mkdtemp(dir) ? 0 : -1;
}

static int cluster_close(void **state)
{
	char cmd[200];

	(void)state;
	for (int i = 0; i < NN; i++)
		dsm_stop(N[i].dsm);
	for (int i = 0; i < NN; i++) {
		dsm_destroy(N[i].dsm);
		tp_destroy(N[i].tp);
		munmap(N[i].ram, RAM);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static uint64_t gpa(int page)
{
	return BASE + (uint64_t)page * DSM_PAGE_SIZE;
}

static void put(int node, int page, uint64_t v)
{
	assert_int_equal(dsm_write(N[node].dsm, gpa(page) + 8, &v, sizeof(v)), 0);
}

static uint64_t get(int node, int page)
{
	uint64_t v = 0;
	assert_int_equal(dsm_read(N[node].dsm, gpa(page) + 8, &v, sizeof(v)), 0);
	return v;
}

/* The dump of node i as one string (the whole file). */
static char *dump(int i)
{
	char path[128], *buf = calloc(1, 65536);
	snprintf(path, sizeof(path), "%s/dsm-audit-node-%d.txt", dir, i);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(dsm_audit_write(N[i].dsm, f), 0);
	assert_int_equal(fclose(f), 0);
	f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, 65535, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

/* The one line of text starting with "KIND PAGE " (NULL if none). */
static const char *line(const char *text, char kind, int page, char *out, size_t n)
{
	char pfx[32];
	snprintf(pfx, sizeof(pfx), "\n%c %d ", kind, page);
	const char *p = strstr(text, pfx);
	if (!p)
		return NULL;
	p++;
	size_t l = strcspn(p, "\n");
	snprintf(out, n, "%.*s", (int)(l < n ? l : n - 1), p);
	return out;
}

static void final_state(void **state)
{
	char *d[NN], buf[128], cmd[400];
	uint32_t v1, v2;
	enum dsm_state st;

	(void)state;
	put(0, 1, 11);          /* page 1 (home 1): Modified on node 0 */
	put(0, 2, 22);          /* page 2 (home 2): written by 0, then read by 1 and 2 */
	assert_int_equal(get(1, 2), 22);
	assert_int_equal(get(2, 2), 22);
	put(2, 4, 44);          /* page 4 (home 1): Modified on node 2 */
	assert_int_equal(get(1, 5), 0); /* page 5 (home 2): a zero page read by node 1 */
	assert_int_equal(dsm_page_state(N[0].dsm, gpa(1), &st, &v1), 0);
	assert_int_equal(st, DSM_MODIFIED);
	assert_int_equal(dsm_page_state(N[2].dsm, gpa(2), &st, &v2), 0);
	assert_int_equal(st, DSM_SHARED);
	for (int i = 0; i < NN; i++) /* nothing in flight once the copies are done */
		assert_int_equal(dsm_audit_settle(N[i].dsm, 2000), 0);
	for (int i = 0; i < NN; i++)
		dsm_stop(N[i].dsm);
	for (int i = 0; i < NN; i++) {
		d[i] = dump(i);
		assert_non_null(strstr(d[i], " busy=0\n"));
		assert_non_null(strstr(d[i], "\nend\n"));
	}
	/* header: node, members, RAM base and size */
	assert_true(strncmp(d[1], "audit node=1 nodes=0,1,2 base=0x80000000 pages=30 ", 50) == 0);
	/* page 1: M on node 0 at the directory's version; owner 0, excl */
	snprintf(cmd, sizeof(cmd), "L 1 M %u 1", v1);
	assert_string_equal(line(d[0], 'L', 1, buf, sizeof(buf)), cmd);
	snprintf(cmd, sizeof(cmd), "D 1 0 1 0 %u", v1);
	assert_string_equal(line(d[1], 'D', 1, buf, sizeof(buf)), cmd);
	assert_null(line(d[1], 'L', 1, buf, sizeof(buf)));
	assert_null(line(d[2], 'L', 1, buf, sizeof(buf)));
	/* page 2: Shared everywhere, owner 0 no longer exclusive */
	for (int i = 0; i < NN; i++)
		assert_non_null(line(d[i], 'L', 2, buf, sizeof(buf)));
	assert_true(strncmp(line(d[2], 'D', 2, buf, sizeof(buf)), "D 2 0 0 0,1,2 ", 14) == 0);
	/* page 4 at node 2, page 5: a zero page only node 1 read */
	assert_true(strncmp(line(d[2], 'L', 4, buf, sizeof(buf)), "L 4 M ", 6) == 0);
	assert_true(strncmp(line(d[1], 'D', 4, buf, sizeof(buf)), "D 4 2 1 2 ", 10) == 0);
	assert_true(strncmp(line(d[1], 'L', 5, buf, sizeof(buf)), "L 5 S ", 6) == 0);
	/* (a zero page's first reader becomes its owner: the directory keeps the
	 * supplier of the next grant, not who wrote it) */
	assert_true(strncmp(line(d[2], 'D', 5, buf, sizeof(buf)), "D 5 1 0 1 ", 10) == 0);
	/* untouched pages appear nowhere */
	for (int i = 0; i < NN; i++) {
		assert_null(line(d[i], 'L', 7, buf, sizeof(buf)));
		assert_null(line(d[i], 'D', 7, buf, sizeof(buf)));
	}
	/* the host-side checker accepts real dumps */
	snprintf(cmd, sizeof(cmd), "sh %s --expect-nodes 3 %s/dsm-audit-node-*.txt >/dev/null", checker,
		 dir);
	assert_int_equal(system(cmd), 0);
	for (int i = 0; i < NN; i++)
		free(d[i]);
}

static void lost_pages(void **state)
{
	uint64_t pages[8], g;
	size_t n;

	(void)state;
	/* node 0 failed: page 1 (only copy on 0, home 1) is lost; page 4 is on 2 */
	assert_int_equal(dsm_audit_lost(N[1].dsm, 1ull << 0, pages, 8, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(pages[0], gpa(1));
	/* page 2 has copies on 1 and 2, page 5 on 1: nothing lost */
	assert_int_equal(dsm_audit_lost(N[2].dsm, 1ull << 0, pages, 8, &n), 0);
	assert_int_equal(n, 0);
	/* nodes 0 and 1 failed: page 2 still lives on node 2; page 5's only
	 * copy was on node 1 (listed although it held zeros: see dsm.h) */
	assert_int_equal(dsm_audit_lost(N[2].dsm, 3, pages, 8, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(pages[0], gpa(5));
	/* node 2 failed: page 4 (home 1) is lost; with max 0 only counted */
	assert_int_equal(dsm_audit_lost(N[1].dsm, 1ull << 2, NULL, 0, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(dsm_audit_inflight(N[1].dsm, 7, &g, 1, &n), 0);
	assert_int_equal(n, 0); /* nothing in flight */
	assert_int_equal(dsm_audit_inflight(N[1].dsm, 7, NULL, 1, &n), -EINVAL);
	assert_int_equal(dsm_audit_lost(NULL, 1, pages, 8, &n), -EINVAL);
	assert_int_equal(dsm_audit_write(NULL, stdout), -EINVAL);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(final_state),
					   cmocka_unit_test(lost_pages)};

	if (argc < 2) {
		fprintf(stderr, "usage: test_dsm_audit PATH/dsm-audit-check\n");
		return 2;
	}
	checker = argv[1];
	util_log_set_level(LOG_LEVEL_WARN);
	return cmocka_run_group_tests(tests, cluster_open, cluster_close);
}
