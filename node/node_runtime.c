/*
 * What the `spanvm` commands share: the runtime directory of a launched
 * cluster, pid liveness, the client connection and status output.
 */
#include "node/node.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int node_runtime_dir(char *buf, size_t n)
{
	const char *env = getenv("SPANVM_RUN_DIR"), *xdg = getenv("XDG_RUNTIME_DIR");
	int len;

	if (env && *env)
		len = snprintf(buf, n, "%s", env);
	else if (xdg && *xdg)
		len = snprintf(buf, n, "%s/spanvm", xdg);
	else
		len = snprintf(buf, n, "/tmp/spanvm-%u", (unsigned)getuid());
	return len < 0 || (size_t)len >= n ? -ENAMETOOLONG : 0;
}

static void copy_str(json_t *o, const char *key, char *dst, size_t n)
{
	const char *v = json_string_value(json_object_get(o, key));
	snprintf(dst, n, "%s", v ? v : "");
}

int node_runtime_load(const char *dir, struct node_runtime *rt, char *err, size_t errlen)
{
	char path[600];
	json_error_t jerr;
	json_t *root, *nodes, *v;
	const char *key;

	memset(rt, 0, sizeof(*rt));
	snprintf(rt->dir, sizeof(rt->dir), "%s", dir);
	snprintf(path, sizeof(path), "%s/cluster.json", dir);
	if (access(path, F_OK))
		return -ENOENT;
	root = json_load_file(path, 0, &jerr);
	if (!json_is_object(root)) {
		snprintf(err, errlen, "%s: unreadable (%s); remove it if no cluster runs", path,
			 jerr.text);
		json_decref(root);
		return -EINVAL;
	}
	copy_str(root, "vm", rt->vm, sizeof(rt->vm));
	copy_str(root, "coordinator", rt->coord, sizeof(rt->coord));
	copy_str(root, "secret_file", rt->secret_file, sizeof(rt->secret_file));
	copy_str(root, "config", rt->config, sizeof(rt->config));
	json_t *pids = json_object_get(root, "pids");
	rt->coord_pid = (int)json_integer_value(json_object_get(pids, "coordinator"));
	nodes = json_object_get(pids, "nodes");
	json_object_foreach(nodes, key, v) {
		if (rt->nnodes >= CONFIG_MAX_NODES)
			break;
		rt->node_ids[rt->nnodes] = (uint32_t)strtoul(key, NULL, 10);
		rt->node_pids[rt->nnodes++] = (int)json_integer_value(v);
	}
	json_decref(root);
	return 0;
}

int node_runtime_save(const struct node_runtime *rt, char *err, size_t errlen)
{
	char path[600], tmp[610], id[16];
	json_t *nodes = json_object(), *root;
	int rc;

	for (uint32_t i = 0; i < rt->nnodes; i++) {
		snprintf(id, sizeof(id), "%u", rt->node_ids[i]);
		json_object_set_new(nodes, id, json_integer(rt->node_pids[i]));
	}
	root = json_pack("{s:s, s:s, s:s, s:s, s:{s:i, s:o}}", "vm", rt->vm, "coordinator",
			 rt->coord, "secret_file", rt->secret_file, "config", rt->config, "pids",
			 "coordinator", rt->coord_pid, "nodes", nodes);
	snprintf(path, sizeof(path), "%s/cluster.json", rt->dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	rc = root ? json_dump_file(root, tmp, JSON_INDENT(2)) : -1;
	json_decref(root);
	if (rc || rename(tmp, path)) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		return -EIO;
	}
	return 0;
}

void node_runtime_clear(const char *dir)
{
	static const char *const files[] = {"cluster.json", "coord.addr", "secret"};
	char path[600];

	for (size_t i = 0; i < UTIL_ARRAY_LEN(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
}

bool node_pid_alive(int pid)
{
	char path[64], buf[512];
	FILE *f;
	size_t n;

	if (pid <= 0 || kill(pid, 0))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* "pid (comm) S ...": comm is at most 15 bytes, the state follows ')'. */
	char *rp = strrchr(buf, ')');
	if (!rp || rp[1] != ' ' || rp[2] == 'Z' || rp[2] == 'X')
		return false;
	return strstr(buf, "(spanvm") != NULL;
}

int node_client_open(const char *coord, const char *secret_file, struct node_ctl **out,
		     struct node_runtime *rt, char *err, size_t errlen)
{
	uint8_t secret[CONFIG_SECRET_MAX + 1];
	size_t secret_len;
	char dir[512], host[64];
	uint16_t port;
	int rc;

	*out = NULL;
	memset(rt, 0, sizeof(*rt));
	if ((rc = node_runtime_dir(dir, sizeof(dir))))
		return rc;
	rc = node_runtime_load(dir, rt, err, errlen);
	if (rc && rc != -ENOENT)
		return rc;
	if (rc == -ENOENT && (!coord || !secret_file)) {
		snprintf(err, errlen,
			 "no cluster launched from this host (nothing in %s); start one with "
			 "'spanvm launch CONFIG --detach' or give --coord HOST:PORT --secret-file FILE",
			 dir);
		return -ENOENT;
	}
	if (coord)
		snprintf(rt->coord, sizeof(rt->coord), "%s", coord);
	if (secret_file)
		snprintf(rt->secret_file, sizeof(rt->secret_file), "%s", secret_file);
	if (node_parse_hostport(rt->coord, host, sizeof(host), &port)) {
		snprintf(err, errlen, "coordinator address '%s' is not HOST:PORT", rt->coord);
		return -EINVAL;
	}
	if ((rc = config_secret_load(rt->secret_file, secret, &secret_len, err, errlen)))
		return rc;
	struct node_ctl_cfg cfg = {.host = host, .port = port, .role = CTL_ROLE__CTL_ROLE_CLIENT,
				   .secret = secret, .secret_len = secret_len, .timeout_ms = 3000};
	rc = node_ctl_connect(&cfg, out, err, errlen);
	memset(secret, 0, sizeof(secret));
	return rc;
}

int node_status_fetch(struct node_ctl *ctl, CtlMsg **reply, char *err, size_t errlen)
{
	CtlStatusRequest sr = CTL_STATUS_REQUEST__INIT;
	CtlMsg m = CTL_MSG__INIT;

	m.body_case = CTL_MSG__BODY_STATUS_REQUEST;
	m.status_request = &sr;
	return node_ctl_call(ctl, &m, CTL_MSG__BODY_STATUS_REPLY, 3000, reply, err, errlen);
}

int node_status_load(const char *path, CtlStatusReply **out, char *err, size_t errlen)
{
	uint8_t buf[65536];
	FILE *f = fopen(path, "r");
	size_t n;

	*out = NULL;
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "cannot read the status file %s: %s", path, strerror(e));
		return -e;
	}
	n = fread(buf, 1, sizeof(buf), f);
	bool too_big = n == sizeof(buf) && fgetc(f) != EOF;
	fclose(f);
	if (!too_big)
		*out = ctl_status_reply__unpack(NULL, n, buf);
	if (!*out || !(*out)->vm_name[0]) {
		if (*out)
			ctl_status_reply__free_unpacked(*out, NULL);
		*out = NULL;
		snprintf(err, errlen, "%s is not a spanvm status file", path);
		return -EINVAL;
	}
	return 0;
}

static json_t *hex_array(const uint64_t *v, size_t n)
{
	json_t *a = json_array();
	char buf[24];

	for (size_t i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)v[i]);
		json_array_append_new(a, json_string(buf));
	}
	return a;
}

static json_t *failed_array(const CtlStatusReply *st)
{
	json_t *a = json_array();
	for (size_t i = 0; i < st->n_nodes; i++)
		if (st->nodes[i]->state == CTL_NODE_STATE__CTL_STATE_FAILED)
			json_array_append_new(a, json_integer(st->nodes[i]->node_id));
	return a;
}

static json_t *vcpu_array(const uint32_t *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer(v[i]));
	return a;
}

static void print_json(FILE *out, const CtlStatusReply *st, const char *coord)
{
	json_t *nodes = json_array(), *root;

	for (size_t i = 0; i < st->n_nodes; i++) {
		const CtlNodeStatus *n = st->nodes[i];
		json_array_append_new(
			nodes, json_pack("{s:i, s:s, s:b, s:i, s:s, s:o, s:i, s:I, s:s, s:s}", "id",
					 (int)n->node_id, "state", node_state_name(n->state),
					 "connected", n->connected, "pid", (int)n->pid, "host",
					 n->host, "vcpus", vcpu_array(n->vcpus, n->n_vcpus),
					 "peers_checked", (int)n->peers_checked, "heartbeat_age_ms",
					 (json_int_t)n->heartbeat_age_ms, "reason", n->reason,
					 "fabric_addr", n->fabric_addr));
	}
	root = json_pack("{s:s, s:s, s:s, s:I, s:I, s:i, s:s, s:I, s:i, s:o}", "vm", st->vm_name,
			 "coordinator", coord, "phase", node_phase_name(st->phase), "epoch",
			 (json_int_t)st->epoch, "memory_mib", (json_int_t)(st->mem_bytes >> 20),
			 "vcpus", (int)st->vcpus, "provider",
			 st->provider[0] ? st->provider : "default", "uptime_ms",
			 (json_int_t)st->uptime_ms, "lease_ms", (int)st->lease_ms, "nodes", nodes);
	/* null while the guest runs (or none is configured) */
	json_object_set_new(root, "guest_exit",
			    st->guest_exited ? json_integer(st->guest_exit) : json_null());
	/* after a failure: who failed and which guest pages went with it */
	json_object_set_new(root, "failed_nodes", failed_array(st));
	json_object_set_new(root, "lost_pages", hex_array(st->lost_pages, st->n_lost_pages));
	json_object_set_new(root, "lost_total", json_integer((json_int_t)st->lost_total));
	json_object_set_new(root, "uncertain_pages",
			    hex_array(st->uncertain_pages, st->n_uncertain_pages));
	json_object_set_new(root, "lost_reports", json_integer(st->lost_reports));
	json_object_set_new(root, "final", json_boolean(st->final));
	json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', out);
	json_decref(root);
}

static void print_lost(FILE *out, const CtlStatusReply *st)
{
	if (!st->lost_reports)
		return;
	fprintf(out, "Guest pages whose only copy a failed node held: %llu",
		(unsigned long long)st->lost_total);
	for (size_t i = 0; i < st->n_lost_pages && i < 16; i++)
		fprintf(out, "%s0x%llx", i ? " " : ": ", (unsigned long long)st->lost_pages[i]);
	fprintf(out, "%s\n", st->n_lost_pages > 16 ? " ... (--json lists them)" : "");
	for (size_t i = 0; i < st->n_uncertain_pages; i++)
		fprintf(out, "In flight with a failed node (may be lost): 0x%llx\n",
			(unsigned long long)st->uncertain_pages[i]);
}

void node_status_print(FILE *out, const CtlStatusReply *st, const char *coord, bool json)
{
	if (json)
		return print_json(out, st, coord);
	fprintf(out, "VM %s: phase %s, epoch %llu, %llu MiB, %u vCPUs, provider %s, coordinator %s\n",
		st->vm_name, node_phase_name(st->phase), (unsigned long long)st->epoch,
		(unsigned long long)(st->mem_bytes >> 20), st->vcpus,
		st->provider[0] ? st->provider : "default", coord);
	if (st->final)
		fprintf(out, "The coordinator has exited; this is its final status.\n");
	if (st->guest_exited)
		fprintf(out, "The guest exited with code %d.\n", (int)st->guest_exit);
	print_lost(out, st);
	fprintf(out, "%-5s %-8s %-8s %-16s %-12s %-10s %s\n", "NODE", "STATE", "PID", "HOST",
		"VCPUS", "HEARTBEAT", "NOTE");
	for (size_t i = 0; i < st->n_nodes; i++) {
		const CtlNodeStatus *n = st->nodes[i];
		char vc[64] = "", hb[40] = "-";
		size_t off = 0;
		for (size_t j = 0; j < n->n_vcpus && off < sizeof(vc); j++)
			off += (size_t)snprintf(vc + off, sizeof(vc) - off, "%s%u", j ? "," : "",
						n->vcpus[j]);
		if (n->connected && n->heartbeat_age_ms >= 0)
			snprintf(hb, sizeof(hb), "%lldms ago", (long long)n->heartbeat_age_ms);
		fprintf(out, "%-5u %-8s %-8u %-16s %-12s %-10s %s\n", n->node_id,
			node_state_name(n->state), n->pid, n->host, vc[0] ? vc : "-", hb,
			n->reason[0] ? n->reason : (n->connected || n->state != 1 ? "" : "not joined yet"));
	}
}
