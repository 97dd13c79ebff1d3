/*
 * spanvm stop [--coord HOST:PORT --secret-file FILE] [--timeout SEC]
 * Orderly stop: the coordinator stops the nodes one by one and exits;
 * for a cluster launched from this host we then wait until none of its
 * processes is left.  Exit: 0 stopped, 1 failure, 2 usage.
 */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/cli.h"
#include "node/node.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: spanvm stop [--coord HOST:PORT] [--secret-file FILE] [--timeout SEC]\n\n"
		"Stops the cluster launched from this host (or the one at --coord) in order:\n"
		"every node is told to stop, one at a time, then the coordinator exits.\n"
		"  --timeout  seconds to wait for the whole stop (default 60)\n");
}

/* Waits until every recorded process is gone; kills stragglers.  0 = clean. */
static int reap(const struct node_runtime *rt, int timeout_ms)
{
	int left = 0;

	for (int waited = 0; waited <= timeout_ms; waited += 50) {
		left = node_pid_alive(rt->coord_pid);
		for (uint32_t i = 0; i < rt->nnodes; i++)
			left += node_pid_alive(rt->node_pids[i]);
		if (!left)
			return 0;
		usleep(50000);
	}
	fprintf(stderr, "spanvm stop: %d process(es) still running after the stop; killing them\n",
		left);
	if (node_pid_alive(rt->coord_pid))
		kill(rt->coord_pid, SIGKILL);
	for (uint32_t i = 0; i < rt->nnodes; i++)
		if (node_pid_alive(rt->node_pids[i]))
			kill(rt->node_pids[i], SIGKILL);
	return 1;
}

int cmd_stop(int argc, char **argv)
{
	static const struct option opts[] = {
		{"coord", required_argument, NULL, 'c'}, {"secret-file", required_argument, NULL, 's'},
		{"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	const char *coord = NULL, *secret = NULL;
	CtlStopRequest sr = CTL_STOP_REQUEST__INIT;
	CtlMsg m = CTL_MSG__INIT, *reply;
	char err[CONFIG_ERR_LEN], *end;
	struct node_runtime rt;
	struct node_ctl *ctl;
	long timeout_s = 60;
	int opt, rc;

	util_log_set_level(LOG_LEVEL_WARN);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': coord = optarg; break;
		case 's': secret = optarg; break;
		case 't':
			timeout_s = strtol(optarg, &end, 10);
			if (*end || timeout_s <= 0 || timeout_s > 3600) {
				fprintf(stderr, "spanvm stop: --timeout '%s' is not 1..3600 seconds\n",
					optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "spanvm stop: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (node_client_open(coord, secret, &ctl, &rt, err, sizeof(err))) {
		fprintf(stderr, "spanvm stop: %s\n", err);
		return 1;
	}
	sr.reason = "stop requested by 'spanvm stop'";
	m.body_case = CTL_MSG__BODY_STOP_REQUEST;
	m.stop_request = &sr;
	rc = node_ctl_call(ctl, &m, CTL_MSG__BODY_STOP_REPLY, (int)timeout_s * 1000, &reply, err,
			   sizeof(err));
	node_ctl_close(ctl);
	if (rc) {
		fprintf(stderr, "spanvm stop: %s\n", err);
		return 1;
	}
	fprintf(stderr, "spanvm stop: cluster stopped (%s)\n", reply->stop_reply->message);
	ctl_msg__free_unpacked(reply, NULL);
	if (!rt.dir[0] || coord)
		return 0; /* not launched from here: the remote hosts reap their own */
	rc = reap(&rt, 10000);
	node_runtime_clear(rt.dir);
	/* stopped on request: no failure to diagnose, no final status to keep */
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", rt.dir, NODE_STATUS_FILE);
	unlink(path);
	return rc;
}
