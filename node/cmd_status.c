/*
 * spanvm status [--json] [--coord HOST:PORT --secret-file FILE]
 * Asks the coordinator for the state of every node.  Exit: 0 answered,
 * 1 no cluster / unreachable / refused, 2 usage.
 */
#include <getopt.h>
#include <string.h>

#include "node/cli.h"
#include "node/node.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: spanvm status [--json] [--coord HOST:PORT] [--secret-file FILE]\n\n"
		"Shows the state of every node of the cluster launched from this host (found in\n"
		"the runtime dir: $SPANVM_RUN_DIR, $XDG_RUNTIME_DIR/spanvm or /tmp/spanvm-UID),\n"
		"or of the coordinator given with --coord.  Node states: joining, ready,\n"
		"running, failed, stopped.\n"
		"  --json   machine output: {\"vm\", \"phase\", \"epoch\", \"nodes\": [{\"id\", \"state\", ...}]}\n");
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'}, {"coord", required_argument, NULL, 'c'},
		{"secret-file", required_argument, NULL, 's'}, {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	const char *coord = NULL, *secret = NULL;
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
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "spanvm status: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (node_client_open(coord, secret, &ctl, &rt, err, sizeof(err))) {
		fprintf(stderr, "spanvm status: %s\n", err);
		return 1;
	}
	if (node_status_fetch(ctl, &reply, err, sizeof(err))) {
		fprintf(stderr, "spanvm status: %s\n", err);
		node_ctl_close(ctl);
		return 1;
	}
	node_status_print(stdout, reply->status_reply, rt.coord, json);
	ctl_msg__free_unpacked(reply, NULL);
	node_ctl_close(ctl);
	return 0;
}
