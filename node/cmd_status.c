/*
 * spanvm status [--json] [--coord HOST:PORT --secret-file FILE] [--status-file F]
 * Asks the coordinator for the state of every node.  When the coordinator
 * is gone (it exits once the cluster stopped, e.g. after a node failure),
 * shows the final status it left in its status file instead: the failed
 * node and the guest pages whose only copy it held.  Exit: 0 answered,
 * 3 the coordinator is gone and its final status was shown, 1 no cluster /
 * unreachable / refused, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <unistd.h>

#include "node/cli.h"
#include "node/node.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: spanvm status [--json] [--coord HOST:PORT] [--secret-file FILE]\n"
		"                     [--status-file FILE]\n\n"
		"Shows the state of every node of the cluster launched from this host (found in\n"
		"the runtime dir: $SPANVM_RUN_DIR, $XDG_RUNTIME_DIR/spanvm or /tmp/spanvm-UID),\n"
		"or of the coordinator given with --coord.  Node states: joining, ready,\n"
		"running, failed, stopped.\n"
		"  --json   machine output: {\"vm\", \"phase\", \"epoch\", \"nodes\": [{\"id\", \"state\", ...}],\n"
		"           \"failed_nodes\", \"lost_pages\", \"lost_total\", \"final\", ...}\n"
		"  --status-file  the coordinator's status file (spanvm-coord --status-file),\n"
		"           shown when the coordinator cannot be reached (default: the runtime\n"
		"           dir's final-status.pb, when no --coord is given)\n"
		"Exit: 0 the coordinator answered, 3 it is gone and its final status is shown,\n"
		"1 no cluster / unreachable / refused, 2 usage.\n");
}

/* The coordinator did not answer (why): its final status, if it left one. */
static int show_final(const char *status_file, const char *coord, bool json, const char *why)
{
	char dir[512], path[600], err[CONFIG_ERR_LEN];
	CtlStatusReply *st;

	if (!status_file && !coord && node_runtime_dir(dir, sizeof(dir)) == 0) {
		snprintf(path, sizeof(path), "%s/%s", dir, NODE_STATUS_FILE);
		if (access(path, F_OK) == 0)
			status_file = path;
	}
	if (!status_file) {
		fprintf(stderr, "spanvm status: %s\n", why);
		return 1;
	}
	if (node_status_load(status_file, &st, err, sizeof(err))) {
		fprintf(stderr, "spanvm status: %s; %s\n", why, err);
		return 1;
	}
	fprintf(stderr, "spanvm status: coordinator not reachable (%s); showing %s status from %s\n",
		why, st->final ? "its final" : "its last saved", status_file);
	node_status_print(stdout, st, status_file, json);
	ctl_status_reply__free_unpacked(st, NULL);
	return 3;
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'}, {"coord", required_argument, NULL, 'c'},
		{"secret-file", required_argument, NULL, 's'}, {"help", no_argument, NULL, 'h'},
		{"status-file", required_argument, NULL, 'S'}, {NULL, 0, NULL, 0}};
	const char *coord = NULL, *secret = NULL, *status_file = NULL;
	char err[CONFIG_ERR_LEN];
	struct node_runtime rt;
	struct node_ctl *ctl;
	bool json = false;
	CtlMsg *reply;
	int opt;

	util_log_set_level(LOG_LEVEL_WARN);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 'c': coord = optarg; break;
		case 's': secret = optarg; break;
		case 'S': status_file = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "spanvm status: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (node_client_open(coord, secret, &ctl, &rt, err, sizeof(err))) {
		node_ctl_close(ctl);
		return show_final(status_file, coord, json, err);
	}
	if (node_status_fetch(ctl, &reply, err, sizeof(err))) {
		node_ctl_close(ctl);
		return show_final(status_file, coord, json, err);
	}
	node_status_print(stdout, reply->status_reply, rt.coord, json);
	ctl_msg__free_unpacked(reply, NULL);
	node_ctl_close(ctl);
	return 0;
}
