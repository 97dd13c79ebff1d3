/*
 * spanvm-node: one host's part of a spanning VM.  Joins the coordinator,
 * registers guest RAM with the fabric, checks every peer, then stays up
 * until the coordinator stops the cluster (or is lost).
 * Exit codes: 0 orderly stop, 1 failure (message on stderr), 2 usage.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/node.h"

static volatile int stop_flag;

static void on_signal(int sig)
{
	stop_flag = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: spanvm-node --config FILE --node-id N [--coord HOST:PORT] [--bind ADDR]\n"
		"                   [--secret-file FILE] [--log-level err|warn|info|debug]\n\n"
		"Runs node N of the VM described in FILE.\n"
		"  --coord        coordinator address (default: cluster.coordinator in the config)\n"
		"  --bind         fabric bind address of this node (default: nodes[].bind)\n"
		"  --secret-file  cluster secret (default: cluster.secret_file in the config)\n"
		"Exit status: 0 stopped by the coordinator, 1 failure, 2 usage.\n");
}

static int parse_id(const char *s, uint32_t *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == 0 || *end || v < 0 || v >= CONFIG_MAX_NODES)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

struct args {
	const char *config_path, *coord, *secret_path, *bind;
	uint32_t id;
	bool have_id;
	int level;
};

/* -1 = go on; otherwise the exit status. */
static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"node-id", required_argument, NULL, 'n'},
		{"coord", required_argument, NULL, 'C'}, {"secret-file", required_argument, NULL, 's'},
		{"log-level", required_argument, NULL, 'L'}, {"help", no_argument, NULL, 'h'},
		{"bind", required_argument, NULL, 'b'}, {NULL, 0, NULL, 0}};
	int opt;

	a->level = LOG_LEVEL_INFO;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': a->config_path = optarg; break;
		case 'C': a->coord = optarg; break;
		case 'b':
			if (!*optarg || strlen(optarg) >= sizeof(((struct config_node *)0)->bind_addr)) {
				fprintf(stderr, "spanvm-node: --bind '%s' is not an address\n", optarg);
				return 2;
			}
			a->bind = optarg;
			break;
		case 's': a->secret_path = optarg; break;
		case 'n':
			if (parse_id(optarg, &a->id)) {
				fprintf(stderr, "spanvm-node: --node-id '%s' is not a number in 0..%d\n",
					optarg, CONFIG_MAX_NODES - 1);
				return 2;
			}
			a->have_id = true;
			break;
		case 'L':
			if (util_log_parse_level(optarg, &a->level)) {
				fprintf(stderr, "spanvm-node: --log-level '%s' is not err|warn|info|debug\n",
					optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!a->config_path || !a->have_id || optind != argc) {
		fprintf(stderr, "spanvm-node: %s\n",
			optind != argc	   ? "unexpected argument"
			: !a->config_path ? "--config is required"
					   : "--node-id is required");
		usage(stderr);
		return 2;
	}
	return -1;
}

/* Everything the node needs besides the config: coordinator and secret. */
static int resolve(const struct args *a, const struct config *cfg, char *host, size_t hlen,
		   uint16_t *port, uint8_t *secret, size_t *secret_len)
{
	const char *secret_path = a->secret_path ? a->secret_path : cfg->secret_file;
	char err[CONFIG_ERR_LEN];

	if (!config_node_find(cfg, a->id)) {
		fprintf(stderr, "spanvm-node: node id %u is not listed in %s (nodes[].id)\n", a->id,
			a->config_path);
		return 1;
	}
	snprintf(host, hlen, "%s", cfg->coord_host);
	*port = cfg->coord_port;
	if (a->coord && node_parse_hostport(a->coord, host, hlen, port)) {
		fprintf(stderr, "spanvm-node: --coord '%s' is not HOST:PORT\n", a->coord);
		return 2;
	}
	if (!*port) {
		fprintf(stderr, "spanvm-node: %s: cluster.coordinator.port is 0 (chosen at launch); "
				"give --coord HOST:PORT\n", a->config_path);
		return 1;
	}
	if (!secret_path) {
		fprintf(stderr, "spanvm-node: no cluster secret: give --secret-file or set "
				"cluster.secret_file in %s\n", a->config_path);
		return 1;
	}
	if (config_secret_load(secret_path, secret, secret_len, err, sizeof(err))) {
		fprintf(stderr, "spanvm-node: %s\n", err);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	uint8_t secret[CONFIG_SECRET_MAX + 1];
	char err[CONFIG_ERR_LEN], host[64];
	struct args a = {0};
	struct config *cfg;
	size_t secret_len;
	uint16_t port;
	int rc;

	if ((rc = parse_args(argc, argv, &a)) >= 0)
		return rc;
	util_log_set_level(a.level);
	util_log_set_node((int)a.id);
	if (config_load_file(a.config_path, &cfg, err, sizeof(err))) {
		fprintf(stderr, "spanvm-node: %s\n", err);
		return 1;
	}
	/* --bind: one config for every host, the address from the host's env file */
	for (uint32_t i = 0; a.bind && i < cfg->nnodes; i++)
		if (cfg->nodes[i].id == a.id)
			snprintf(cfg->nodes[i].bind_addr, sizeof(cfg->nodes[i].bind_addr), "%s", a.bind);
	rc = resolve(&a, cfg, host, sizeof(host), &port, secret, &secret_len);
	if (rc == 0) {
		signal(SIGPIPE, SIG_IGN);
		struct sigaction sa = {.sa_handler = on_signal};
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		struct node_agent_cfg acfg = {cfg, a.id, host, port, secret, secret_len, &stop_flag};
		rc = node_agent_run(&acfg);
	}
	config_free(cfg);
	return rc;
}
