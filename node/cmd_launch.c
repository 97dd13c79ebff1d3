/*
 * spanvm launch CONFIG [--detach]: the embedded default — the coordinator
 * and every node of CONFIG as child processes on this host.
 *
 * Children get their own process group, so Ctrl-C reaches only us and we
 * turn it into an orderly stop instead of every process dying at once.  In
 * the foreground they also get PR_SET_PDEATHSIG, so a launcher killed hard
 * does not leave them behind; with --detach they outlive us by design and
 * the runtime dir tells `spanvm status` / `spanvm stop` where they are.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "node/cli.h"
#include "node/node.h"
#include "node/vm_dsm_int.h"

static volatile int got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

struct launch {
	struct config *cfg;
	struct node_runtime rt;
	bool detach;
	const char *log_level;
	const char *stats_file; /* --stats-file: DSM statistics of every node (node_vm.c) */
	char bindir[PATH_MAX];
	int pids[CONFIG_MAX_NODES + 1]; /* [0] coordinator */
	int npids;
	bool exited[CONFIG_MAX_NODES + 1];
	int status[CONFIG_MAX_NODES + 1];
	bool guest_exited; /* the coordinator reported the guest's exit */
	int guest_exit;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: spanvm launch CONFIG [--detach] [--log-level err|warn|info|debug]\n"
		"                            [--stats-file F]\n\n"
		"Starts the coordinator and every node of CONFIG on this host, shows progress\n"
		"(nodes joined, peer checks passed) on stderr and prints the membership.\n"
		"Without --detach it stays until the cluster stops (Ctrl-C: orderly stop);\n"
		"with --detach it returns once the cluster runs; then use 'spanvm status' and\n"
		"'spanvm stop'.  Runtime dir: $SPANVM_RUN_DIR, $XDG_RUNTIME_DIR/spanvm or\n"
		"/tmp/spanvm-UID.  A cluster secret is generated there unless the config names\n"
		"cluster.secret_file.\n"
		"When the config names a guest (vm.kernel / vm.image, a bare-metal ELF), the\n"
		"nodes run its harts over the DSM and the launcher exits with the guest's exit\n"
		"code; --stats-file F writes every node's DSM statistics as JSON.\n"
		"Exit status: 0 ok, 1 failure, 2 usage, else the guest's exit code.\n");
}

/* Forks argv[0] (in bindir) with stderr to logname in detach mode. */
static int spawn(struct launch *l, char *const argv[], const char *logname)
{
	char path[PATH_MAX + 64], logpath[600];
	int pid;

	snprintf(path, sizeof(path), "%s/%s", l->bindir, argv[0]);
	snprintf(logpath, sizeof(logpath), "%s/%s", l->rt.dir, logname);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		setpgid(0, 0);
		if (!l->detach)
			prctl(PR_SET_PDEATHSIG, SIGTERM);
		int in = open("/dev/null", O_RDONLY);
		if (in >= 0)
			dup2(in, 0);
		if (l->detach) {
			int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
		}
		execv(path, argv);
		fprintf(stderr, "spanvm launch: cannot run %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	return pid;
}

/* Collects exits of our children; true if any exited since last time. */
static bool reap_children(struct launch *l)
{
	bool any = false;
	for (int i = 0; i < l->npids; i++) {
		int st;
		if (!l->exited[i] && waitpid(l->pids[i], &st, WNOHANG) == l->pids[i]) {
			l->exited[i] = true;
			l->status[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			any = true;
		}
	}
	return any;
}

static bool all_exited(struct launch *l)
{
	reap_children(l);
	for (int i = 0; i < l->npids; i++)
		if (!l->exited[i])
			return false;
	return true;
}

/* Waits up to ms for every child, then kills the rest.  0 if none was killed. */
static int wait_children(struct launch *l, int ms)
{
	int killed = 0;

	for (int t = 0; t < ms && !all_exited(l); t += 20)
		usleep(20000);
	for (int i = 0; i < l->npids; i++)
		if (!l->exited[i]) {
			fprintf(stderr, "spanvm launch: %s (pid %d) did not exit; killing it\n",
				i ? "a node" : "the coordinator", l->pids[i]);
			kill(l->pids[i], SIGKILL);
			killed++;
		}
	while (!all_exited(l))
		usleep(10000);
	return killed ? -1 : 0;
}

static int prepare_rundir(struct launch *l, const char *config_path, char *err, size_t errlen)
{
	struct node_runtime old;
	char dir[512], path[600];
	int rc;

	if ((rc = node_runtime_dir(dir, sizeof(dir))))
		return rc;
	if (mkdir(dir, 0700) && errno != EEXIST) {
		snprintf(err, errlen, "cannot create runtime dir %.300s: %s", dir, strerror(errno));
		return -errno;
	}
	rc = node_runtime_load(dir, &old, err, errlen);
	if (rc == 0 && node_pid_alive(old.coord_pid)) {
		snprintf(err, errlen,
			 "a cluster (VM '%s', coordinator pid %d) is already running from %.300s; "
			 "run 'spanvm stop' first or set SPANVM_RUN_DIR",
			 old.vm, old.coord_pid, dir);
		return -EBUSY;
	}
	node_runtime_clear(dir);
	snprintf(path, sizeof(path), "%s/%s", dir, NODE_STATUS_FILE); /* a previous VM's */
	unlink(path);
	snprintf(l->rt.dir, sizeof(l->rt.dir), "%s", dir);
	snprintf(l->rt.vm, sizeof(l->rt.vm), "%s", l->cfg->name);
	char *abs = realpath(config_path, NULL); /* children may run elsewhere */
	snprintf(l->rt.config, sizeof(l->rt.config), "%s", abs ? abs : config_path);
	free(abs);
	if (l->cfg->secret_file) {
		uint8_t s[CONFIG_SECRET_MAX + 1];
		size_t n;
		snprintf(l->rt.secret_file, sizeof(l->rt.secret_file), "%s", l->cfg->secret_file);
		return config_secret_load(l->cfg->secret_file, s, &n, err, errlen);
	}
	snprintf(path, sizeof(path), "%s/secret", dir);
	snprintf(l->rt.secret_file, sizeof(l->rt.secret_file), "%.500s", path);
	return config_secret_generate(path, err, errlen);
}

static int start_coordinator(struct launch *l, char *err, size_t errlen)
{
	char addrfile[600], listen[96];
	char statusfile[600];
	char *argv[] = {"spanvm-coord", "--config", l->rt.config, "--secret-file",
			l->rt.secret_file, "--addr-file", addrfile, "--listen", listen,
			"--status-file", statusfile, "--log-level", (char *)l->log_level, NULL};
	FILE *f;

	snprintf(addrfile, sizeof(addrfile), "%s/coord.addr", l->rt.dir);
	/* `spanvm status` shows it once the coordinator is gone */
	snprintf(statusfile, sizeof(statusfile), "%s/%s", l->rt.dir, NODE_STATUS_FILE);
	snprintf(listen, sizeof(listen), "%s:%u", l->cfg->coord_host, l->cfg->coord_port);
	l->pids[0] = spawn(l, argv, "coord.log");
	if (l->pids[0] < 0) {
		snprintf(err, errlen, "cannot start the coordinator: %s", strerror(-l->pids[0]));
		return -1;
	}
	l->npids = 1;
	l->rt.coord_pid = l->pids[0];
	for (int t = 0; t < 10000; t += 20) {
		if ((f = fopen(addrfile, "r"))) {
			bool ok = fgets(l->rt.coord, sizeof(l->rt.coord), f) != NULL;
			fclose(f);
			l->rt.coord[strcspn(l->rt.coord, "\n")] = 0;
			if (ok && l->rt.coord[0])
				return 0;
		}
		if (all_exited(l)) {
			snprintf(err, errlen, "the coordinator exited (status %d) before listening%s",
				 l->status[0], l->detach ? "; see coord.log in the runtime dir" : "");
			return -1;
		}
		usleep(20000);
	}
	snprintf(err, errlen, "the coordinator did not start listening within 10 s");
	return -1;
}

static int start_nodes(struct launch *l, char *err, size_t errlen)
{
	for (uint32_t i = 0; i < l->cfg->nnodes; i++) {
		char id[16], logname[32];
		char *argv[] = {"spanvm-node", "--config", l->rt.config, "--node-id", id, "--coord",
				l->rt.coord, "--secret-file", l->rt.secret_file, "--log-level",
				(char *)l->log_level, NULL};
		snprintf(id, sizeof(id), "%u", l->cfg->nodes[i].id);
		snprintf(logname, sizeof(logname), "node%u.log", l->cfg->nodes[i].id);
		int pid = spawn(l, argv, logname);
		if (pid < 0) {
			snprintf(err, errlen, "cannot start node %s: %s", id, strerror(-pid));
			return -1;
		}
		l->pids[l->npids++] = pid;
		l->rt.node_ids[l->rt.nnodes] = l->cfg->nodes[i].id;
		l->rt.node_pids[l->rt.nnodes++] = pid;
	}
	return node_runtime_save(&l->rt, err, errlen);
}

/* Progress lines for what changed since the last status. */
enum { SEEN_JOIN = 1, SEEN_CHECKS = 2, SEEN_FAIL = 4 };

static void report_progress(const CtlStatusReply *st, uint8_t *seen)
{
	uint32_t joined = 0;

	for (size_t i = 0; i < st->n_nodes; i++)
		joined += st->nodes[i]->connected || st->nodes[i]->state != CTL_NODE_STATE__CTL_STATE_JOINING;
	for (size_t i = 0; i < st->n_nodes && i < CONFIG_MAX_NODES; i++) {
		const CtlNodeStatus *n = st->nodes[i];
		bool in = n->connected || n->state != CTL_NODE_STATE__CTL_STATE_JOINING;
		if (in && !(seen[i] & SEEN_JOIN)) {
			seen[i] |= SEEN_JOIN;
			fprintf(stderr, "spanvm: node %u joined (pid %u; %u/%zu joined)\n", n->node_id,
				n->pid, joined, st->n_nodes);
		}
		if ((n->state == CTL_NODE_STATE__CTL_STATE_READY ||
		     n->state == CTL_NODE_STATE__CTL_STATE_RUNNING) && !(seen[i] & SEEN_CHECKS)) {
			seen[i] |= SEEN_CHECKS;
			fprintf(stderr, "spanvm: node %u passed %u/%zu peer checks (message round trip + "
					"RMA read)\n", n->node_id, n->peers_checked, st->n_nodes - 1);
		}
		if (n->state == CTL_NODE_STATE__CTL_STATE_FAILED && !(seen[i] & SEEN_FAIL)) {
			seen[i] |= SEEN_FAIL;
			fprintf(stderr, "spanvm: node %u FAILED: %s\n", n->node_id, n->reason);
		}
	}
}

/* First failure reason in a status, for the error message. */
static const char *failure_reason(const CtlStatusReply *st, char *buf, size_t n)
{
	for (size_t i = 0; i < st->n_nodes; i++)
		if (st->nodes[i]->state == CTL_NODE_STATE__CTL_STATE_FAILED) {
			snprintf(buf, n, "node %u failed: %s", st->nodes[i]->node_id,
				 st->nodes[i]->reason);
			return buf;
		}
	return "see the messages above";
}

static int child_exit_error(struct launch *l, char *err, size_t errlen)
{
	for (int i = 0; i < l->npids; i++)
		if (l->exited[i]) {
			if (i == 0)
				snprintf(err, errlen, "the coordinator exited (status %d) during start-up",
					 l->status[0]);
			else
				snprintf(err, errlen, "node %u (pid %d) exited with status %d during start-up",
					 l->rt.node_ids[i - 1], l->pids[i], l->status[i]);
			return -1;
		}
	return 0;
}

static void note_guest_exit(struct launch *l, bool exited, int code);

static int wait_running(struct launch *l, struct node_ctl **ctl, uint8_t *seen, char *err,
			size_t errlen)
{
	uint64_t deadline = util_now_ns() + (2ull * l->cfg->join_timeout_ms + 10000) * 1000000;
	struct node_runtime rt;
	CtlMsg *reply;
	char why[300];

	if (node_client_open(l->rt.coord, l->rt.secret_file, ctl, &rt, err, errlen))
		return -1;
	for (;;) {
		if (got_signal) {
			snprintf(err, errlen, "interrupted during start-up");
			return -1;
		}
		if (reap_children(l))
			return child_exit_error(l, err, errlen);
		if (node_status_fetch(*ctl, &reply, err, errlen))
			return -1;
		const CtlStatusReply *st = reply->status_reply;
		report_progress(st, seen);
		CtlPhase ph = st->phase;
		if (ph == CTL_PHASE__CTL_PHASE_RUNNING) {
			fprintf(stderr, "spanvm: all %zu nodes running\n", st->n_nodes);
			node_status_print(stdout, st, l->rt.coord, false);
			fflush(stdout);
		} else if (st->guest_exited) {
			/* a short guest can run and exit between two polls: the
			 * cluster did start, and the stop is the guest's */
			note_guest_exit(l, true, st->guest_exit);
			fprintf(stderr, "spanvm: all %zu nodes ran; the guest has already exited\n",
				st->n_nodes);
			ctl_msg__free_unpacked(reply, NULL);
			return 0;
		} else if (ph == CTL_PHASE__CTL_PHASE_STOPPING || ph == CTL_PHASE__CTL_PHASE_STOPPED) {
			snprintf(err, errlen, "the cluster did not start: %s",
				 failure_reason(st, why, sizeof(why)));
		}
		ctl_msg__free_unpacked(reply, NULL);
		if (ph == CTL_PHASE__CTL_PHASE_RUNNING)
			return 0;
		if (ph == CTL_PHASE__CTL_PHASE_STOPPING || ph == CTL_PHASE__CTL_PHASE_STOPPED)
			return -1;
		if (util_now_ns() > deadline) {
			snprintf(err, errlen, "the cluster did not start in time");
			return -1;
		}
		usleep(100000);
	}
}

/* Orderly stop through the coordinator (SIGTERM makes it stop in order). */
static int shut_down(struct launch *l)
{
	int budget = (int)(l->cfg->lease_ms * (l->cfg->nnodes + 1)) + 5000;
	if (l->npids && !l->exited[0])
		kill(l->pids[0], SIGTERM);
	return wait_children(l, budget);
}

static void note_guest_exit(struct launch *l, bool exited, int code)
{
	if (!exited || l->guest_exited)
		return;
	l->guest_exited = true;
	l->guest_exit = code;
	fprintf(stderr, "spanvm: the guest exited (code %d); the cluster stops in order\n", code);
}

/*
 * A second client connection that only waits for the coordinator's
 * StopReply (CtlStopWait), which carries the guest's exit code.  Separate
 * from the status connection so the reply cannot arrive in the middle of a
 * status call.  NULL (with a warning) if it cannot be opened: then only the
 * status polls can learn the code.
 */
static struct node_ctl *open_stop_wait(struct launch *l)
{
	CtlStopWait sw = CTL_STOP_WAIT__INIT;
	CtlMsg m = CTL_MSG__INIT;
	struct node_runtime rt;
	struct node_ctl *w = NULL;
	char err[CONFIG_ERR_LEN];

	m.body_case = CTL_MSG__BODY_STOP_WAIT;
	m.stop_wait = &sw;
	if (node_client_open(l->rt.coord, l->rt.secret_file, &w, &rt, err, sizeof(err)) ||
	    node_ctl_send(w, &m)) {
		fprintf(stderr, "spanvm launch: cannot wait for the stop report: %s\n", err);
		node_ctl_close(w);
		return NULL;
	}
	return w;
}

/* Reads the StopReply on *w if one arrives within timeout_ms; closes *w once
 * it came (or the connection failed). */
static void stop_wait_poll(struct launch *l, struct node_ctl **w, int timeout_ms)
{
	CtlMsg *m;

	if (!*w)
		return;
	struct pollfd p = {.fd = node_ctl_fd(*w), .events = POLLIN};
	if (poll(&p, 1, timeout_ms) <= 0)
		return;
	if (node_ctl_recv(*w, 1000, &m) == 0) {
		bool done = m->body_case == CTL_MSG__BODY_STOP_REPLY;
		if (done)
			note_guest_exit(l, m->stop_reply->guest_exited, m->stop_reply->guest_exit);
		ctl_msg__free_unpacked(m, NULL);
		if (!done)
			return;
	}
	node_ctl_close(*w);
	*w = NULL;
}

/* Stays until the cluster stops; Ctrl-C stops it.  Returns the exit status. */
static int foreground(struct launch *l, struct node_ctl *ctl, uint8_t *seen)
{
	char err[CONFIG_ERR_LEN];
	uint64_t next = 0;
	CtlMsg *reply;

	struct node_ctl *wait = open_stop_wait(l);

	fprintf(stderr, "spanvm: running in the foreground; Ctrl-C stops the cluster in order\n");
	while (!got_signal) {
		reap_children(l);
		if (l->exited[0])
			break;
		stop_wait_poll(l, &wait, 0);
		if (ctl && util_now_ns() >= next) {
			next = util_now_ns() + 500000000ull;
			if (node_status_fetch(ctl, &reply, err, sizeof(err)) == 0) {
				report_progress(reply->status_reply, seen);
				note_guest_exit(l, reply->status_reply->guest_exited,
						reply->status_reply->guest_exit);
				ctl_msg__free_unpacked(reply, NULL);
			} else {
				node_ctl_close(ctl); /* the coordinator is going away */
				ctl = NULL;
			}
		}
		usleep(100000);
	}
	if (got_signal)
		fprintf(stderr, "spanvm: stopping the cluster (signal %d)\n", got_signal);
	node_ctl_close(ctl);
	int rc = shut_down(l);
	stop_wait_poll(l, &wait, 1000); /* the coordinator sent it before it exited */
	node_ctl_close(wait);
	if (rc == 0 && l->status[0] == 0) {
		fprintf(stderr, "spanvm: cluster stopped\n");
		return 0;
	}
	fprintf(stderr, "spanvm: cluster ended with a failure (coordinator status %d)\n",
		l->status[0]);
	return 1;
}

static int find_bindir(struct launch *l)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return -errno;
	self[n] = 0;
	snprintf(l->bindir, sizeof(l->bindir), "%s", dirname(self));
	return 0;
}

static int launch(struct launch *l, const char *config_path)
{
	uint8_t seen[CONFIG_MAX_NODES] = {0};
	char err[CONFIG_ERR_LEN] = "";
	struct node_ctl *ctl = NULL;

	if (config_load_file(config_path, &l->cfg, err, sizeof(err)) || find_bindir(l) ||
	    prepare_rundir(l, config_path, err, sizeof(err))) {
		fprintf(stderr, "spanvm launch: %s\n", err[0] ? err : "cannot find own binary");
		return 1;
	}
	fprintf(stderr, "spanvm: launching VM '%s': %u nodes, %u vCPUs, %llu MiB (runtime dir %s)\n",
		l->cfg->name, l->cfg->nnodes, l->cfg->nvcpus,
		(unsigned long long)(l->cfg->mem_bytes >> 20), l->rt.dir);
	if (start_coordinator(l, err, sizeof(err)) || start_nodes(l, err, sizeof(err)) ||
	    wait_running(l, &ctl, seen, err, sizeof(err))) {
		fprintf(stderr, "spanvm launch: %s\n", err);
		node_ctl_close(ctl);
		shut_down(l);
		node_runtime_clear(l->rt.dir);
		return 1;
	}
	if (l->detach) {
		node_ctl_close(ctl);
		fprintf(stderr, "spanvm: detached (logs in %s); 'spanvm status', 'spanvm stop'\n",
			l->rt.dir);
		return 0;
	}
	int rc = foreground(l, ctl, seen);
	rc = node_vm_launch_result(l->rt.dir, l->cfg, l->stats_file, rc,
				   l->guest_exited ? &l->guest_exit : NULL); /* guest exit code */
	node_runtime_clear(l->rt.dir);
	return rc;
}

int cmd_launch(int argc, char **argv)
{
	static const struct option opts[] = {
		{"detach", no_argument, NULL, 'd'}, {"log-level", required_argument, NULL, 'L'},
		{"help", no_argument, NULL, 'h'}, {"stats-file", required_argument, NULL, 's'},
		{NULL, 0, NULL, 0}};
	struct launch *l = calloc(1, sizeof(*l));
	int opt, level, rc;

	if (!l)
		return 1;
	l->log_level = "warn";
	optind = 1;
	while ((opt = getopt_long(argc, argv, "hd", opts, NULL)) != -1) {
		switch (opt) {
		case 'd': l->detach = true; break;
		case 's': l->stats_file = optarg; break;
		case 'L':
			if (util_log_parse_level(optarg, &level)) {
				fprintf(stderr, "spanvm launch: --log-level '%s' is not err|warn|info|debug\n",
					optarg);
				free(l);
				return 2;
			}
			l->log_level = optarg;
			break;
		case 'h': usage(stdout); free(l); return 0;
		default: usage(stderr); free(l); return 2;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "spanvm launch: %s\n", optind == argc ? "CONFIG is required"
								      : "only one CONFIG, please");
		usage(stderr);
		free(l);
		return 2;
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	util_log_set_level(LOG_LEVEL_WARN);
	rc = launch(l, argv[optind]);
	config_free(l->cfg);
	free(l);
	return rc;
}
