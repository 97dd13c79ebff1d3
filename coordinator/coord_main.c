/*
 * spanvm-coord: the rendezvous service of one cluster.  Usually started by
 * `spanvm launch`; on real hosts it runs on one of them (or a separate
 * machine) and every spanvm-node points at it with --coord.
 * Exit codes: 0 orderly stop on request, 1 stop after a failure or error,
 * 2 usage.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/coord.h"

static volatile int stop_flag;

static void on_signal(int sig)
{
	stop_flag = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: spanvm-coord --config FILE [--secret-file FILE] [--listen HOST:PORT]\n"
		"                    [--addr-file FILE] [--status-file FILE]\n"
		"                    [--log-level err|warn|info|debug]\n\n"
		"Authenticates the nodes of the VM described in FILE, hands out the membership\n"
		"table, runs the start barrier, watches heartbeats and stops the cluster in order.\n"
		"  --listen      address to listen on (default: cluster.coordinator in the config;\n"
		"                port 0 picks a free port)\n"
		"  --addr-file   write the bound HOST:PORT here once listening\n"
		"  --status-file keep the status here (written at start and as the cluster\n"
		"                stops: failed nodes, lost pages); `spanvm status --status-file`\n"
		"                shows it once the coordinator is gone\n"
		"  --secret-file cluster secret (default: cluster.secret_file in the config)\n"
		"Exit status: 0 stopped on request, 1 failure, 2 usage.\n");
}

/* "HOST:PORT" -> host buffer + port; -1 on bad syntax. */
static int parse_hostport(const char *s, char *host, size_t hlen, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long p;

	if (!colon || colon == s || (size_t)(colon - s) >= hlen)
		return -1;
	p = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || p < 0 || p > 65535)
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	*port = (uint16_t)p;
	return 0;
}

struct args {
	const char *config_path, *secret_path, *listen, *addr_file, *status_file;
	int level;
};

/* -1 = go on; otherwise the exit status. */
static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"secret-file", required_argument, NULL, 's'},
		{"listen", required_argument, NULL, 'l'}, {"addr-file", required_argument, NULL, 'a'},
		{"status-file", required_argument, NULL, 'S'},
		{"log-level", required_argument, NULL, 'L'}, {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	int opt;

	a->level = LOG_LEVEL_INFO;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': a->config_path = optarg; break;
		case 's': a->secret_path = optarg; break;
		case 'l': a->listen = optarg; break;
		case 'a': a->addr_file = optarg; break;
		case 'S': a->status_file = optarg; break;
		case 'L':
			if (util_log_parse_level(optarg, &a->level)) {
				fprintf(stderr, "spanvm-coord: --log-level '%s' is not err|warn|info|debug\n",
					optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!a->config_path || optind != argc) {
		fprintf(stderr, "spanvm-coord: %s\n",
			a->config_path ? "unexpected argument" : "--config is required");
		usage(stderr);
		return 2;
	}
	return -1;
}

static int serve(const struct args *a, const struct config *cfg)
{
	const char *secret_path = a->secret_path ? a->secret_path : cfg->secret_file;
	uint8_t secret[CONFIG_SECRET_MAX + 1];
	char err[CONFIG_ERR_LEN], host[64];
	size_t secret_len;
	uint16_t port = cfg->coord_port;
	int rc;

	snprintf(host, sizeof(host), "%s", cfg->coord_host);
	if (a->listen && parse_hostport(a->listen, host, sizeof(host), &port)) {
		fprintf(stderr, "spanvm-coord: --listen '%s' is not HOST:PORT\n", a->listen);
		return 2;
	}
	if (!secret_path) {
		fprintf(stderr, "spanvm-coord: no cluster secret: give --secret-file or set "
				"cluster.secret_file in %s\n", a->config_path);
		return 1;
	}
	if (config_secret_load(secret_path, secret, &secret_len, err, sizeof(err))) {
		fprintf(stderr, "spanvm-coord: %s\n", err);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct coord_server_cfg scfg = {cfg, secret, secret_len, host, port, a->addr_file,
					a->status_file, &stop_flag};
	rc = coord_server_run(&scfg, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "spanvm-coord: %s\n", err);
		rc = 1;
	}
	return rc;
}

int main(int argc, char **argv)
{
	char err[CONFIG_ERR_LEN];
	struct args a = {0};
	struct config *cfg;
	int rc;

	util_log_set_thread("coord");
	if ((rc = parse_args(argc, argv, &a)) >= 0)
		return rc;
	util_log_set_level(a.level);
	if (config_load_file(a.config_path, &cfg, err, sizeof(err))) {
		fprintf(stderr, "spanvm-coord: %s\n", err);
		return 1;
	}
	rc = serve(&a, cfg);
	config_free(cfg);
	return rc;
}
