/*
 * Config loader: a valid file loads with the documented defaults, and each
 * kind of bad input is rejected with a message naming the JSON path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

static const char good[] =
	"{\"version\": 1,"
	" \"vm\": {\"name\": \"t\", \"memory_mib\": 64, \"vcpus\": 3},"
	" \"cluster\": {\"lease_ms\": 1200, \"coordinator\": {\"port\": 7411}},"
	" \"nodes\": [{\"id\": 1, \"vcpus\": [0, 2]}, {\"id\": 4, \"bind\": \"127.0.0.2\","
	" \"vcpus\": [1]}]}";

static void good_config_loads_with_defaults(void **state)
{
	struct config *cfg;
	char err[CONFIG_ERR_LEN] = "";

	assert_int_equal(config_load_string(good, "good", &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg->name, "t");
	assert_int_equal(cfg->mem_bytes, 64ull << 20);
	assert_int_equal(cfg->nvcpus, 3);
	assert_string_equal(cfg->provider, ""); /* transport picks: env, then tcp;ofi_rxm */
	assert_string_equal(cfg->coord_host, "127.0.0.1");
	assert_int_equal(cfg->coord_port, 7411);
	assert_int_equal(cfg->lease_ms, 1200);
	assert_int_equal(cfg->heartbeat_ms, 500);
	assert_true(cfg->stop_on_failure);
	assert_null(cfg->secret_file);
	assert_int_equal(cfg->nnodes, 2);
	const struct config_node *n = config_node_find(cfg, 4);
	assert_non_null(n);
	assert_string_equal(n->bind_addr, "127.0.0.2");
	assert_int_equal(n->nvcpus, 1);
	assert_int_equal(n->vcpus[0], 1);
	assert_null(config_node_find(cfg, 2));
	assert_string_equal(cfg->home_policy, "interleave"); /* cluster.dsm absent */
	assert_int_equal(cfg->home_block_pages, 0);
	config_free(cfg);
}

#define DSM_CFG(d)                                                                           \
	"{\"version\": 1, \"vm\": {\"name\": \"t\", \"memory_mib\": 64, \"vcpus\": 1},"          \
	" \"cluster\": {\"dsm\": " d "}, \"nodes\": [{\"id\": 1, \"vcpus\": [0]}]}"

static void dsm_home_policy_is_read(void **state)
{
	struct config *cfg;
	char err[CONFIG_ERR_LEN] = "";

	assert_int_equal(config_load_string(DSM_CFG("{\"home_policy\": \"block\", "
						    "\"block_pages\": 512}"),
					    "d", &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg->home_policy, "block");
	assert_int_equal(cfg->home_block_pages, 512);
	config_free(cfg);
	assert_int_equal(config_load_string(DSM_CFG("{\"home_policy\": \"block\"}"), "d", &cfg,
					    err, sizeof(err)), 0);
	assert_string_equal(cfg->home_policy, "block");
	assert_int_equal(cfg->home_block_pages, 0); /* dsm/: RAM / nodes */
	config_free(cfg);
	assert_int_equal(config_load_string(DSM_CFG("{}"), "d", &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg->home_policy, "interleave");
	config_free(cfg);
}

struct bad_case {
	const char *json;
	const char *want; /* substring of the message: the JSON path + why */
};

#define VM "\"vm\": {\"name\": \"t\", \"memory_mib\": 64, \"vcpus\": 2}"
#define NODES "\"nodes\": [{\"id\": 1, \"vcpus\": [0, 1]}]"

static const struct bad_case bad_cases[] = {
	{"{\"vm\": {\"name\": \"t\", \"memory_mib\": 64, \"vcpus\": 1}, " NODES "}",
	 "version: missing"},
	{"{\"version\": 2, " VM ", " NODES "}", "version: version 2 is not supported"},
	{"{\"version\": 1, " VM ", " NODES ", \"colour\": 3}", "colour: unknown key"},
	{"{\"version\": 1, \"vm\": {\"name\": \"t\", \"vcpus\": 2}, " NODES "}",
	 "vm.memory_mib: missing"},
	{"{\"version\": 1, \"vm\": {\"name\": \"t\", \"memory_mib\": \"64M\", \"vcpus\": 2}, " NODES
	 "}",
	 "vm.memory_mib: must be an integer"},
	{"{\"version\": 1, \"vm\": {\"name\": \"t\", \"memory_mib\": 64, \"vcpus\": 0}, " NODES "}",
	 "vm.vcpus: 0 is out of range"},
	{"{\"version\": 1, \"vm\": {\"name\": \"a b\", \"memory_mib\": 64, \"vcpus\": 2}, " NODES "}",
	 "vm.name: 'a b' may only use"},
	{"{\"version\": 1, \"vm\": {\"name\": \"t\", \"memory_mib\": 64, \"vcpus\": 2, \"ram\": 1}, "
	 NODES "}",
	 "vm.ram: unknown key"},
	{"{\"version\": 1, " VM "}", "nodes: missing"},
	{"{\"version\": 1, " VM ", \"nodes\": []}", "nodes: must list 1..64 nodes"},
	{"{\"version\": 1, " VM ", \"nodes\": [{\"vcpus\": [0, 1]}]}", "nodes[0].id: missing"},
	{"{\"version\": 1, " VM ", \"nodes\": [{\"id\": 1, \"vcpus\": [0]}, {\"id\": 1, \"vcpus\": [1]}]}",
	 "nodes[1].id: node id 1 is used twice"},
	{"{\"version\": 1, " VM ", \"nodes\": [{\"id\": 1, \"vcpus\": [0]}, {\"id\": 2, \"vcpus\": [0]}]}",
	 "nodes[1].vcpus[0]: vCPU 0 is already placed on node 1"},
	{"{\"version\": 1, " VM ", \"nodes\": [{\"id\": 1, \"vcpus\": [0, 5]}]}",
	 "nodes[0].vcpus[1]: must be a vCPU number in 0..1"},
	{"{\"version\": 1, " VM ", \"nodes\": [{\"id\": 1, \"vcpus\": [1]}]}",
	 "nodes: vCPU 0 (vm.vcpus is 2) is not placed on any node"},
	{"{\"version\": 1, " VM ", \"nodes\": [{\"id\": 1, \"vcpus\": [0, 1], \"bnd\": \"x\"}]}",
	 "nodes[0].bnd: unknown key"},
	{"{\"version\": 1, " VM ", " NODES ", \"cluster\": {\"lease_sm\": 5}}",
	 "cluster.lease_sm: unknown key"},
	{"{\"version\": 1, " VM ", " NODES ", \"cluster\": {\"lease_ms\": 600, \"heartbeat_ms\": 500}}",
	 "cluster.lease_ms: 600 ms must be at least twice"},
	{"{\"version\": 1, " VM ", " NODES ", \"cluster\": {\"coordinator\": {\"port\": 70000}}}",
	 "cluster.coordinator.port: 70000 is out of range"},
	{"{\"version\": 1, " VM ", " NODES ", \"cluster\": {\"on_node_failure\": \"panic\"}}",
	 "cluster.on_node_failure: 'panic' is not one of"},
	{"{\"version\": 1, " VM ", " NODES ", \"cluster\": {\"provider\": 5}}",
	 "cluster.provider: must be a string"},
	{DSM_CFG("{\"home_policy\": \"striped\"}"),
	 "cluster.dsm.home_policy: 'striped' is not one of \"interleave\", \"block\""},
	{DSM_CFG("{\"home_policy\": 1}"), "cluster.dsm.home_policy: must be a string"},
	{DSM_CFG("{\"home_policy\": \"block\", \"block_pages\": 0}"),
	 "cluster.dsm.block_pages: 0 is out of range (1..16384)"},
	{DSM_CFG("{\"home_policy\": \"block\", \"block_pages\": 16385}"),
	 "cluster.dsm.block_pages: 16385 is out of range"},
	{DSM_CFG("{\"block_pages\": 8}"),
	 "cluster.dsm.block_pages: only meaningful with cluster.dsm.home_policy \"block\""},
	{DSM_CFG("{\"home_polcy\": \"block\"}"), "cluster.dsm.home_polcy: unknown key"},
	{DSM_CFG("\"block\""), "cluster.dsm: must be an object"},
	{"{\"version\": 1, " VM ", " NODES ", \"version\": 1}", "duplicate object key"},
	{"{\"version\": 1, " VM ",", "not valid JSON"},
	{"[1, 2]", "(top level): must be a JSON object"},
};

static void bad_configs_name_the_key(void **state)
{
	for (size_t i = 0; i < UTIL_ARRAY_LEN(bad_cases); i++) {
		struct config *cfg = (void *)1;
		char err[CONFIG_ERR_LEN] = "";
		int rc = config_load_string(bad_cases[i].json, "case.json", &cfg, err, sizeof(err));
		if (rc != -EINVAL || !strstr(err, bad_cases[i].want) ||
		    strncmp(err, "case.json", 9)) {
			print_error("case %zu: rc %d, message '%s', want '%s'\n", i, rc, err,
				    bad_cases[i].want);
			fail();
		}
		assert_null(cfg);
	}
}

static void missing_file_is_named(void **state)
{
	struct config *cfg;
	char err[CONFIG_ERR_LEN] = "";

	assert_int_equal(config_load_file("/nonexistent/vm.json", &cfg, err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/vm.json"));
}

static void example_configs_load(void **state)
{
	static const char *const files[] = {"deploy/examples/3node.json",
					    "deploy/examples/multihost.json"};
	for (size_t i = 0; i < UTIL_ARRAY_LEN(files); i++) {
		char path[512], err[CONFIG_ERR_LEN] = "";
		struct config *cfg;
		snprintf(path, sizeof(path), "%s/%s", SPANVM_SOURCE_DIR, files[i]);
		if (config_load_file(path, &cfg, err, sizeof(err))) {
			print_error("%s\n", err);
			fail();
		}
		assert_true(cfg->nnodes >= 2);
		config_free(cfg);
	}
}

static void relative_paths_follow_the_config_file(void **state)
{
	char dir[] = "/tmp/spanvm-test-cfg-XXXXXX", path[64], err[CONFIG_ERR_LEN];
	struct config *cfg;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vm.json", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"version\": 1, \"vm\": {\"name\": \"t\", \"memory_mib\": 1, \"vcpus\": 1,"
	      " \"image\": \"g.elf\", \"initrd\": \"/abs/i\"}, \"cluster\": {\"secret_file\": \"s\"},"
	      " \"nodes\": [{\"id\": 0, \"vcpus\": [0]}]}", f);
	fclose(f);
	assert_int_equal(config_load_file(path, &cfg, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/g.elf", dir);
	assert_string_equal(cfg->image, path);
	assert_string_equal(cfg->initrd, "/abs/i");
	snprintf(path, sizeof(path), "%s/s", dir);
	assert_string_equal(cfg->secret_file, path);
	assert_null(cfg->kernel);
	config_free(cfg);
	snprintf(path, sizeof(path), "%s/vm.json", dir);
	unlink(path);
	rmdir(dir);
}

static void secret_generate_load_and_proofs(void **state)
{
	char dir[] = "/tmp/spanvm-test-secret-XXXXXX", path[64], err[CONFIG_ERR_LEN];
	uint8_t s[CONFIG_SECRET_MAX + 1], n1[CONFIG_NONCE_LEN] = {1}, n2[CONFIG_NONCE_LEN] = {2};
	uint8_t p1[CONFIG_PROOF_LEN], p2[CONFIG_PROOF_LEN], p3[CONFIG_PROOF_LEN];
	size_t len = 0;
	struct stat st;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/secret", dir);
	assert_int_equal(config_secret_generate(path, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_not_equal(config_secret_generate(path, err, sizeof(err)), 0); /* exists */
	assert_int_equal(config_secret_load(path, s, &len, err, sizeof(err)), 0);
	assert_int_equal(len, 64);

	config_auth_proof(s, len, "node", 3, n1, n2, p1);
	config_auth_proof(s, len, "node", 3, n1, n2, p2);
	assert_true(config_proof_equal(p1, p2));
	config_auth_proof(s, len, "coord", 3, n1, n2, p3); /* role matters */
	assert_false(config_proof_equal(p1, p3));
	config_auth_proof(s, len, "node", 4, n1, n2, p3); /* node id matters */
	assert_false(config_proof_equal(p1, p3));
	s[0] ^= 1; /* a different secret */
	config_auth_proof(s, len, "node", 3, n1, n2, p3);
	assert_false(config_proof_equal(p1, p3));

	chmod(path, 0644);
	assert_int_equal(config_secret_load(path, s, &len, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "chmod 600"));
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(good_config_loads_with_defaults),
		cmocka_unit_test(bad_configs_name_the_key),
		cmocka_unit_test(dsm_home_policy_is_read),
		cmocka_unit_test(missing_file_is_named),
		cmocka_unit_test(example_configs_load),
		cmocka_unit_test(relative_paths_follow_the_config_file),
		cmocka_unit_test(secret_generate_load_and_proofs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
