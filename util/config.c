/*
 * VM/cluster config loader.  The file is untrusted input: every check names
 * the JSON path of the offending key and says what was expected, and the
 * first error wins (one clear message beats a cascade).  Each object is
 * walked against a table of the keys it may hold, so a typo ("lease_sm") is
 * an error rather than a silently ignored setting.
 */
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct cctx {
	const char *origin;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4))) static int cerr(struct cctx *c, const char *path,
						      const char *fmt, ...)
{
	char why[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "%s: %s: %s", c->origin, path, why);
	return -EINVAL;
}

/* Rejects keys of OBJ not in the NULL-terminated ALLOWED list. */
static int check_keys(struct cctx *c, const char *path, json_t *obj, const char *const *allowed)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		bool ok = false;
		for (size_t i = 0; allowed[i]; i++)
			ok |= !strcmp(key, allowed[i]);
		if (!ok) {
			char full[160];
			snprintf(full, sizeof(full), "%s%s%s", path, *path ? "." : "", key);
			return cerr(c, full, "unknown key (allowed here: see docs/coordinator.md)");
		}
	}
	return 0;
}

static void join_path(char *out, size_t n, const char *path, const char *key)
{
	snprintf(out, n, "%s%s%s", path, *path ? "." : "", key);
}

/* Integer member KEY in [lo, hi]; absent -> *out = def unless required. */
static int get_int(struct cctx *c, json_t *obj, const char *path, const char *key,
		   bool required, long long lo, long long hi, long long def, long long *out)
{
	char full[160];
	json_t *v = json_object_get(obj, key);

	join_path(full, sizeof(full), path, key);
	if (!v) {
		if (required)
			return cerr(c, full, "missing (an integer between %lld and %lld)", lo, hi);
		*out = def;
		return 0;
	}
	if (!json_is_integer(v))
		return cerr(c, full, "must be an integer between %lld and %lld", lo, hi);
	*out = json_integer_value(v);
	if (*out < lo || *out > hi)
		return cerr(c, full, "%lld is out of range (%lld..%lld)", *out, lo, hi);
	return 0;
}

/* String member KEY copied into buf (bufsz incl. NUL); absent -> def or error. */
static int get_str(struct cctx *c, json_t *obj, const char *path, const char *key,
		   bool required, const char *def, char *buf, size_t bufsz)
{
	char full[160];
	json_t *v = json_object_get(obj, key);

	join_path(full, sizeof(full), path, key);
	if (!v) {
		if (required)
			return cerr(c, full, "missing (a string)");
		snprintf(buf, bufsz, "%s", def);
		return 0;
	}
	if (!json_is_string(v))
		return cerr(c, full, "must be a string");
	size_t len = json_string_length(v);
	if (len == 0 || len >= bufsz)
		return cerr(c, full, "must be 1..%zu characters long (got %zu)", bufsz - 1, len);
	if (strlen(json_string_value(v)) != len)
		return cerr(c, full, "must not contain NUL characters");
	memcpy(buf, json_string_value(v), len + 1);
	return 0;
}

/* Optional free-length string (paths, command lines); NULL when absent. */
static int get_opt_dup(struct cctx *c, json_t *obj, const char *path, const char *key, char **out)
{
	char full[160];
	json_t *v = json_object_get(obj, key);

	join_path(full, sizeof(full), path, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 4096)
		return cerr(c, full, "must be a non-empty string of at most 4096 characters");
	*out = strdup(json_string_value(v));
	return *out ? 0 : -ENOMEM;
}

static int parse_vm(struct cctx *c, json_t *vm, struct config *cfg)
{
	static const char *const keys[] = {"name", "memory_mib", "vcpus", "image", "kernel",
					   "initrd", "cmdline", NULL};
	long long v;
	int rc;

	if (!json_is_object(vm))
		return cerr(c, "vm", vm ? "must be an object" : "missing (an object)");
	if ((rc = check_keys(c, "vm", vm, keys)))
		return rc;
	if ((rc = get_str(c, vm, "vm", "name", true, "", cfg->name, sizeof(cfg->name))))
		return rc;
	for (const char *p = cfg->name; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.'))
			return cerr(c, "vm.name", "'%s' may only use letters, digits, '-', '_', '.'",
				    cfg->name);
	if ((rc = get_int(c, vm, "vm", "memory_mib", true, 1, 1 << 20, 0, &v)))
		return rc;
	cfg->mem_bytes = (uint64_t)v << 20;
	if ((rc = get_int(c, vm, "vm", "vcpus", true, 1, CONFIG_MAX_VCPUS, 0, &v)))
		return rc;
	cfg->nvcpus = (uint32_t)v;
	if ((rc = get_opt_dup(c, vm, "vm", "image", &cfg->image)) ||
	    (rc = get_opt_dup(c, vm, "vm", "kernel", &cfg->kernel)) ||
	    (rc = get_opt_dup(c, vm, "vm", "initrd", &cfg->initrd)) ||
	    (rc = get_opt_dup(c, vm, "vm", "cmdline", &cfg->cmdline)))
		return rc;
	if (cfg->image && cfg->kernel)
		return cerr(c, "vm.kernel", "give either vm.image (bare-metal) or vm.kernel, not both");
	return 0;
}

static int parse_coord(struct cctx *c, json_t *co, struct config *cfg)
{
	static const char *const keys[] = {"host", "port", NULL};
	long long v;
	int rc;

	if (!co) {
		snprintf(cfg->coord_host, sizeof(cfg->coord_host), "127.0.0.1");
		return 0;
	}
	if (!json_is_object(co))
		return cerr(c, "cluster.coordinator", "must be an object {\"host\", \"port\"}");
	if ((rc = check_keys(c, "cluster.coordinator", co, keys)) ||
	    (rc = get_str(c, co, "cluster.coordinator", "host", false, "127.0.0.1", cfg->coord_host,
			  sizeof(cfg->coord_host))) ||
	    (rc = get_int(c, co, "cluster.coordinator", "port", false, 0, 65535, 0, &v)))
		return rc;
	cfg->coord_port = (uint16_t)v;
	return 0;
}

/*
 * cluster.dsm {"home_policy", "block_pages"}: where each guest page's home
 * (directory entry) lives.  Validated here with the names dsm/ knows
 * (dsm_policy_parse), since util/ may not depend on dsm/.
 */
static int parse_dsm(struct cctx *c, json_t *d, struct config *cfg)
{
	static const char *const keys[] = {"home_policy", "block_pages", NULL};
	long long v;
	int rc;

	snprintf(cfg->home_policy, sizeof(cfg->home_policy), "interleave");
	if (!d)
		return 0;
	if (!json_is_object(d))
		return cerr(c, "cluster.dsm", "must be an object {\"home_policy\", \"block_pages\"}");
	if ((rc = check_keys(c, "cluster.dsm", d, keys)) ||
	    (rc = get_str(c, d, "cluster.dsm", "home_policy", false, "interleave",
			  cfg->home_policy, sizeof(cfg->home_policy))))
		return rc;
	if (strcmp(cfg->home_policy, "interleave") && strcmp(cfg->home_policy, "block"))
		return cerr(c, "cluster.dsm.home_policy", "'%s' is not one of \"interleave\", \"block\"",
			    cfg->home_policy);
	if (!json_object_get(d, "block_pages"))
		return 0;
	if (strcmp(cfg->home_policy, "block"))
		return cerr(c, "cluster.dsm.block_pages",
			    "only meaningful with cluster.dsm.home_policy \"block\"");
	if ((rc = get_int(c, d, "cluster.dsm", "block_pages", false, 1,
			  (long long)(cfg->mem_bytes >> 12), 0, &v)))
		return rc;
	cfg->home_block_pages = (uint64_t)v;
	return 0;
}

static int parse_cluster(struct cctx *c, json_t *cl, struct config *cfg)
{
	static const char *const keys[] = {"provider", "coordinator", "secret_file",
					   "heartbeat_ms", "lease_ms", "join_timeout_ms",
					   "on_node_failure", "dsm", NULL};
	char policy[16];
	long long v;
	int rc;

	if (cl && !json_is_object(cl))
		return cerr(c, "cluster", "must be an object");
	if (!cl)
		cl = json_object(); /* all defaults */
	else
		json_incref(cl);
	if ((rc = check_keys(c, "cluster", cl, keys)) ||
	    (rc = get_str(c, cl, "cluster", "provider", false, "", cfg->provider,
			  sizeof(cfg->provider))) ||
	    (rc = parse_coord(c, json_object_get(cl, "coordinator"), cfg)) ||
	    (rc = get_opt_dup(c, cl, "cluster", "secret_file", &cfg->secret_file)))
		goto out;
	if ((rc = get_int(c, cl, "cluster", "heartbeat_ms", false, 10, 60000, 500, &v)))
		goto out;
	cfg->heartbeat_ms = (uint32_t)v;
	if ((rc = get_int(c, cl, "cluster", "lease_ms", false, 50, 600000, 3000, &v)))
		goto out;
	cfg->lease_ms = (uint32_t)v;
	if (cfg->lease_ms < 2 * cfg->heartbeat_ms) {
		rc = cerr(c, "cluster.lease_ms", "%u ms must be at least twice cluster.heartbeat_ms (%u ms)",
			  cfg->lease_ms, cfg->heartbeat_ms);
		goto out;
	}
	if ((rc = get_int(c, cl, "cluster", "join_timeout_ms", false, 100, 3600000, 30000, &v)))
		goto out;
	cfg->join_timeout_ms = (uint32_t)v;
	if ((rc = get_str(c, cl, "cluster", "on_node_failure", false, "stop", policy,
			  sizeof(policy))))
		goto out;
	if (strcmp(policy, "stop") && strcmp(policy, "continue")) {
		rc = cerr(c, "cluster.on_node_failure", "'%s' is not one of \"stop\", \"continue\"",
			  policy);
		goto out;
	}
	cfg->stop_on_failure = !strcmp(policy, "stop");
	rc = parse_dsm(c, json_object_get(cl, "dsm"), cfg);
out:
	json_decref(cl);
	return rc;
}

/* owner[h] = index+1 of the node that runs vCPU h, 0 = none yet. */
static int parse_node_vcpus(struct cctx *c, json_t *arr, const char *path, struct config *cfg,
			    struct config_node *n, uint32_t *owner)
{
	char full[160];
	size_t i;
	json_t *h;

	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return cerr(c, path, "must be an array of vCPU numbers");
	json_array_foreach(arr, i, h) {
		snprintf(full, sizeof(full), "%s[%zu]", path, i);
		if (!json_is_integer(h) || json_integer_value(h) < 0 ||
		    json_integer_value(h) >= cfg->nvcpus)
			return cerr(c, full, "must be a vCPU number in 0..%u (vm.vcpus is %u)",
				    cfg->nvcpus - 1, cfg->nvcpus);
		uint32_t hart = (uint32_t)json_integer_value(h);
		if (owner[hart])
			return cerr(c, full, "vCPU %u is already placed on node %u", hart,
				    cfg->nodes[owner[hart] - 1].id);
		owner[hart] = (uint32_t)(n - cfg->nodes) + 1;
		n->vcpus[n->nvcpus++] = hart;
	}
	return 0;
}

static int parse_node(struct cctx *c, json_t *obj, size_t idx, struct config *cfg,
		      uint32_t *owner)
{
	static const char *const keys[] = {"id", "bind", "port", "vcpus", NULL};
	struct config_node *n = &cfg->nodes[idx];
	char path[32], vpath[48];
	long long v;
	int rc;

	snprintf(path, sizeof(path), "nodes[%zu]", idx);
	if (!json_is_object(obj))
		return cerr(c, path, "must be an object {\"id\", \"bind\", \"vcpus\"}");
	if ((rc = check_keys(c, path, obj, keys)) ||
	    (rc = get_int(c, obj, path, "id", true, 0, CONFIG_MAX_NODES - 1, 0, &v)))
		return rc;
	n->id = (uint32_t)v;
	for (size_t j = 0; j < idx; j++)
		if (cfg->nodes[j].id == n->id) {
			snprintf(vpath, sizeof(vpath), "%s.id", path);
			return cerr(c, vpath, "node id %u is used twice (also nodes[%zu])", n->id, j);
		}
	if ((rc = get_str(c, obj, path, "bind", false, "127.0.0.1", n->bind_addr,
			  sizeof(n->bind_addr))) ||
	    (rc = get_int(c, obj, path, "port", false, 0, 65535, 0, &v)))
		return rc;
	n->bind_port = (uint16_t)v;
	snprintf(vpath, sizeof(vpath), "%s.vcpus", path);
	return parse_node_vcpus(c, json_object_get(obj, "vcpus"), vpath, cfg, n, owner);
}

static int parse_nodes(struct cctx *c, json_t *arr, struct config *cfg)
{
	uint32_t owner[CONFIG_MAX_VCPUS] = {0};
	size_t i;
	json_t *obj;
	int rc;

	if (!json_is_array(arr))
		return cerr(c, "nodes", arr ? "must be an array of node objects"
					    : "missing (an array of node objects)");
	if (json_array_size(arr) == 0 || json_array_size(arr) > CONFIG_MAX_NODES)
		return cerr(c, "nodes", "must list 1..%d nodes (got %zu)", CONFIG_MAX_NODES,
			    json_array_size(arr));
	json_array_foreach(arr, i, obj) {
		if ((rc = parse_node(c, obj, i, cfg, owner)))
			return rc;
		cfg->nnodes = (uint32_t)i + 1;
	}
	for (uint32_t h = 0; h < cfg->nvcpus; h++)
		if (!owner[h])
			return cerr(c, "nodes", "vCPU %u (vm.vcpus is %u) is not placed on any node", h,
				    cfg->nvcpus);
	return 0;
}

static int parse_root(struct cctx *c, json_t *root, struct config *cfg)
{
	static const char *const keys[] = {"version", "vm", "cluster", "nodes", NULL};
	long long v;
	int rc;

	if (!json_is_object(root))
		return cerr(c, "(top level)", "must be a JSON object");
	if ((rc = check_keys(c, "", root, keys)))
		return rc;
	if ((rc = get_int(c, root, "", "version", true, 1, 1000, 0, &v)))
		return rc;
	if (v != 1)
		return cerr(c, "version", "version %lld is not supported (this build reads 1)", v);
	cfg->version = 1;
	if ((rc = parse_vm(c, json_object_get(root, "vm"), cfg)) ||
	    (rc = parse_cluster(c, json_object_get(root, "cluster"), cfg)) ||
	    (rc = parse_nodes(c, json_object_get(root, "nodes"), cfg)))
		return rc;
	return 0;
}

static int finish(struct cctx *c, json_t *root, json_error_t *jerr, struct config **out)
{
	struct config *cfg;
	int rc;

	*out = NULL;
	if (!root) {
		if (c->err && c->errlen)
			snprintf(c->err, c->errlen, "%s:%d:%d: not valid JSON: %s", c->origin,
				 jerr->line, jerr->column, jerr->text);
		return -EINVAL;
	}
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		json_decref(root);
		return -ENOMEM;
	}
	rc = parse_root(c, root, cfg);
	json_decref(root);
	if (rc) {
		config_free(cfg);
		return rc;
	}
	*out = cfg;
	return 0;
}

int config_load_string(const char *json, const char *origin, struct config **out, char *err,
		       size_t errlen)
{
	struct cctx c = {origin ? origin : "config", err, errlen};
	json_error_t jerr;

	return finish(&c, json_loads(json, JSON_REJECT_DUPLICATES, &jerr), &jerr, out);
}

/* Relative paths in a config file are relative to the file's directory. */
static int rebase(char **field, const char *cfg_path)
{
	const char *slash = strrchr(cfg_path, '/');
	char *p;

	if (!*field || (*field)[0] == '/' || !slash)
		return 0;
	if (asprintf(&p, "%.*s/%s", (int)(slash - cfg_path), cfg_path, *field) < 0)
		return -ENOMEM;
	free(*field);
	*field = p;
	return 0;
}

int config_load_file(const char *path, struct config **out, char *err, size_t errlen)
{
	struct cctx c = {path, err, errlen};
	json_error_t jerr;
	FILE *f = fopen(path, "r");

	*out = NULL;
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "%s: cannot open config: %s", path, strerror(e));
		return -e;
	}
	json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
	fclose(f);
	int rc = finish(&c, root, &jerr, out);
	if (rc == 0 && (rebase(&(*out)->image, path) || rebase(&(*out)->kernel, path) ||
			rebase(&(*out)->initrd, path) || rebase(&(*out)->secret_file, path))) {
		config_free(*out);
		*out = NULL;
		return -ENOMEM;
	}
	return rc;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	free(cfg->image);
	free(cfg->kernel);
	free(cfg->initrd);
	free(cfg->cmdline);
	free(cfg->secret_file);
	free(cfg);
}

const struct config_node *config_node_find(const struct config *cfg, uint32_t id)
{
	for (uint32_t i = 0; i < cfg->nnodes; i++)
		if (cfg->nodes[i].id == id)
			return &cfg->nodes[i];
	return NULL;
}

/* ---- cluster secret ------------------------------------------------------ */

static int sodium_ready(void)
{
	/* sodium_init is idempotent and thread-safe; <0 only if no entropy. */
	return sodium_init() < 0 ? -EIO : 0;
}

int config_secret_load(const char *path, uint8_t *buf, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd, e;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		snprintf(err, errlen, "secret file %s: %s", path, strerror(e));
		return -e;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, errlen, "secret file %s: not a regular file", path);
		return -EINVAL;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		close(fd);
		snprintf(err, errlen, "secret file %s: mode %04o lets others read it; chmod 600 it",
			 path, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	n = read(fd, buf, CONFIG_SECRET_MAX + 1);
	e = errno;
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "secret file %s: %s", path, strerror(e));
		return -e;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n < CONFIG_SECRET_MIN || n > CONFIG_SECRET_MAX) {
		snprintf(err, errlen, "secret file %s: holds %zd bytes, want %d..%d", path, n,
			 CONFIG_SECRET_MIN, CONFIG_SECRET_MAX);
		return -EINVAL;
	}
	*len = (size_t)n;
	return 0;
}

int config_secret_generate(const char *path, char *err, size_t errlen)
{
	uint8_t raw[32];
	char hex[2 * sizeof(raw) + 2];
	int fd, e;

	if (sodium_ready()) {
		snprintf(err, errlen, "secret file %s: libsodium has no entropy source", path);
		return -EIO;
	}
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
	strcat(hex, "\n");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = errno;
		snprintf(err, errlen, "secret file %s: cannot create: %s", path, strerror(e));
		return -e;
	}
	if (write(fd, hex, strlen(hex)) != (ssize_t)strlen(hex)) {
		e = errno ? errno : EIO;
		close(fd);
		unlink(path);
		snprintf(err, errlen, "secret file %s: write failed: %s", path, strerror(e));
		return -e;
	}
	sodium_memzero(raw, sizeof(raw));
	return close(fd) ? -errno : 0;
}

void config_auth_proof(const uint8_t *secret, size_t secret_len, const char *role,
		       uint32_t node_id, const uint8_t *nonce_a, const uint8_t *nonce_b,
		       uint8_t out[CONFIG_PROOF_LEN])
{
	crypto_auth_hmacsha256_state st;
	uint8_t id_le[4] = {node_id & 0xff, (node_id >> 8) & 0xff, (node_id >> 16) & 0xff,
			    node_id >> 24};

	(void)sodium_ready();
	crypto_auth_hmacsha256_init(&st, secret, secret_len);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)"spanvm-v1|", 10);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)role, strlen(role));
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)"|", 1);
	crypto_auth_hmacsha256_update(&st, id_le, sizeof(id_le));
	crypto_auth_hmacsha256_update(&st, nonce_a, CONFIG_NONCE_LEN);
	crypto_auth_hmacsha256_update(&st, nonce_b, CONFIG_NONCE_LEN);
	crypto_auth_hmacsha256_final(&st, out);
}

bool config_proof_equal(const uint8_t *a, const uint8_t *b)
{
	return sodium_memcmp(a, b, CONFIG_PROOF_LEN) == 0;
}

void config_random(void *buf, size_t len)
{
	(void)sodium_ready();
	randombytes_buf(buf, len);
}
