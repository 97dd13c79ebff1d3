/*
 * util: the bottom layer, depended on by everything and depending on nothing.
 *
 * - Logging: LOG_ERR/WARN/INFO/DBG(subsys, fmt, ...).  Lines go to stderr as
 *   "spanvm[node N/thread] LEVEL subsys: message".  The level is checked
 *   before formatting, so a disabled LOG_DBG costs one load and a branch.
 *   Global state (documented): the log level, the process-wide node id and
 *   the JSON/plain switch, set once at start-up by main(); each thread's
 *   name is thread-local.
 * - Time: monotonic nanoseconds.
 * - Fault points: numbered sites that a test can make fail (k-th hit), to
 *   prove that every error path unwinds cleanly (SQLite style).
 *
 * Thread safety: logging is safe from any thread (one fprintf per line).
 */
#ifndef SPANVM_UTIL_H
#define SPANVM_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum log_level { LOG_LEVEL_ERR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DBG };

extern int util_log_level; /* written once by main() before threads start */

void util_log_set_level(int level);
/* Parses "err|warn|info|debug"; returns 0 or -EINVAL. */
int util_log_parse_level(const char *name, int *level_out);
void util_log_set_node(int node_id);
void util_log_set_thread(const char *name);
void util_log(int level, const char *subsys, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define LOG_AT(lvl, subsys, ...)                                               \
	do {                                                                   \
		if ((lvl) <= util_log_level)                                   \
			util_log((lvl), (subsys), __VA_ARGS__);                \
	} while (0)
#define LOG_ERR(subsys, ...) LOG_AT(LOG_LEVEL_ERR, subsys, __VA_ARGS__)
#define LOG_WARN(subsys, ...) LOG_AT(LOG_LEVEL_WARN, subsys, __VA_ARGS__)
#define LOG_INFO(subsys, ...) LOG_AT(LOG_LEVEL_INFO, subsys, __VA_ARGS__)
#define LOG_DBG(subsys, ...) LOG_AT(LOG_LEVEL_DBG, subsys, __VA_ARGS__)

/* Monotonic clock in nanoseconds. */
uint64_t util_now_ns(void);
/* *ts = clock clk now + ns: the absolute deadline of a timed wait
 * (pthread_cond_timedwait in the condvar's clock, pthread_timedjoin_np in
 * CLOCK_REALTIME). */
void util_deadline_in(clockid_t clk, uint64_t ns, struct timespec *ts);

/* More runnable threads on this host than CPUs (util/cpus.c): callers then
 * sleep instead of busy-polling.  Any thread; cheap (cached for 5 ms). */
bool util_cpus_oversubscribed(void);

/*
 * Fault points.  util_fault_hit(site) returns true when the armed site has
 * been reached for the k-th time; code then takes its error path.  Arming is
 * for tests only; unarmed sites cost one relaxed load.
 */
void util_fault_arm(int site, unsigned k);
void util_fault_disarm(void);
bool util_fault_hit(int site);

#define UTIL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define UTIL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define UTIL_MAX(a, b) ((a) > (b) ? (a) : (b))

/*
 * Config: the VM/cluster description (JSON, Jansson), see docs/coordinator.md
 * for the schema.  Versioned ("version": 1); unknown keys are rejected; every
 * error names the JSON path of the bad key and why, e.g.
 *   "vm.json: nodes[1].vcpus[0]: vCPU 2 is already placed on node 1".
 * A loaded config is plain immutable data (a value, not an object: its
 * fields are read directly), owned by whoever loaded it; safe to read from
 * any thread once loaded.
 */
#define CONFIG_MAX_NODES 64
#define CONFIG_MAX_VCPUS 256
#define CONFIG_ERR_LEN 512

struct config_node {
	uint32_t id;          /* 0..CONFIG_MAX_NODES-1, unique */
	char bind_addr[64];   /* fabric endpoint bind address */
	uint16_t bind_port;   /* 0 = any */
	uint32_t nvcpus;
	uint32_t vcpus[CONFIG_MAX_VCPUS]; /* guest hart ids run on this node */
};

struct config {
	int version;
	/* vm */
	char name[64];
	uint64_t mem_bytes;
	uint32_t nvcpus;
	char *image, *kernel, *initrd, *cmdline; /* NULL when absent; config_load_file makes
						  * relative paths relative to the file's dir */
	/* cluster */
	char provider[64];            /* "" = absent: $SPANVM_PROVIDER, $FI_PROVIDER or tcp;ofi_rxm */
	char coord_host[64];
	uint16_t coord_port;          /* 0 = ephemeral (the launcher discovers it) */
	char *secret_file;            /* NULL: the launcher generates one */
	uint32_t heartbeat_ms, lease_ms, join_timeout_ms;
	bool stop_on_failure;         /* "on_node_failure": "stop" | "continue" */
	/* cluster.dsm: how guest pages get their home node (dsm_policy_parse) */
	char home_policy[16];         /* "interleave" (default) | "block" */
	uint64_t home_block_pages;    /* "block": pages per run; 0 = RAM / nodes */
	/* nodes, in file order */
	uint32_t nnodes;
	struct config_node nodes[CONFIG_MAX_NODES];
};

/* 0, or -EINVAL/-ENOENT/... with a message "ORIGIN: PATH: why" in err. */
int config_load_file(const char *path, struct config **out, char *err, size_t errlen);
int config_load_string(const char *json, const char *origin, struct config **out,
		       char *err, size_t errlen);
void config_free(struct config *cfg);
/* The node with this id, or NULL. */
const struct config_node *config_node_find(const struct config *cfg, uint32_t id);

/*
 * Cluster secret (pre-shared key for the control-plane handshake).
 * The file holds at least CONFIG_SECRET_MIN bytes (trailing newline
 * ignored) and must not be readable by group or others.
 */
#define CONFIG_SECRET_MIN 16
#define CONFIG_SECRET_MAX 256
int config_secret_load(const char *path, uint8_t *buf, size_t *len, char *err, size_t errlen);
/* Creates PATH (must not exist) with 64 random hex characters, mode 0600. */
int config_secret_generate(const char *path, char *err, size_t errlen);
/*
 * HMAC-SHA256 proof for the join handshake:
 *   HMAC(secret, "spanvm-v1|" role "|" node_id(le32) nonce_a nonce_b)
 * role is "coord" or "node"; see proto/control.proto.
 */
#define CONFIG_NONCE_LEN 32
#define CONFIG_PROOF_LEN 32
void config_auth_proof(const uint8_t *secret, size_t secret_len, const char *role,
		       uint32_t node_id, const uint8_t *nonce_a, const uint8_t *nonce_b,
		       uint8_t out[CONFIG_PROOF_LEN]);
/* Constant-time comparison; true when equal. */
bool config_proof_equal(const uint8_t *a, const uint8_t *b);
void config_random(void *buf, size_t len);

#endif
