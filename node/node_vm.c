/*
 * The guest side of one spanvm-node (after the coordinator's Start): the
 * harts the config places on this node, run over the DSM (node/vm_dsm.c).
 * Node 0 loads the guest image (vm.kernel, else vm.image: a bare-metal
 * RISC-V ELF) through the DSM; every node parses it for the entry point and
 * the HTIF words.  Console bytes go to this process's stdout, which under
 * `spanvm launch` is the launcher's.  A guest exit on any node is handed
 * to the agent (node_vm_exit_fd), which reports it to the coordinator
 * (CtlGuestExit); the coordinator stops the cluster in order and tells
 * `spanvm launch` the code.  At stop each node writes its DSM statistics to
 * the runtime dir (dsm-node-N.json).
 *
 * Threads: created and stopped by the agent's main thread; callbacks run on
 * vCPU threads (stdout writes are single write() calls per line).  The exit
 * code is written before the byte on exit_pipe, and the agent reads it only
 * after that byte arrived (the pipe orders the accesses).
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/node.h"
#include "node/vm_dsm_int.h"
#include "node/vm_int.h"
#include "node/virt_int.h"
#include "transport/tp.h"

struct node_vm {
	struct vmd *vmd;
	struct vml *machine;         /* vm.kernel: the Linux machine (vm_dsm_linux.c) */
	int node_id;
	pthread_mutex_t mu;        /* console line; stopping vs vmd_start */
	char line[256];
	size_t len;
	int exited;
	int exit_code;             /* written before the byte on exit_pipe */
	int exit_pipe[2];          /* vCPU thread -> agent: the guest exited */
	/* boot thread: load (node 0) or wait for the load, then start harts;
	 * off the agent's thread so heartbeats keep flowing meanwhile */
	pthread_t boot;
	bool boot_running, stopping;
	uint8_t *img;
	size_t img_len;
	bool loader;
	uint64_t ram_len;
	uint32_t loader_id;
	char path[256];
};

static void vm_putc(void *arg, char ch)
{
	struct node_vm *vm = arg;
	pthread_mutex_lock(&vm->mu);
	vm->line[vm->len++] = ch;
	if (ch == '\n' || vm->len == sizeof(vm->line)) {
		if (write(STDOUT_FILENO, vm->line, vm->len) < 0)
			LOG_DBG("node", "console output lost: %s", strerror(errno));
		vm->len = 0;
	}
	pthread_mutex_unlock(&vm->mu);
}

static void vm_exit(void *arg, int code)
{
	struct node_vm *vm = arg;
	char one = 1;

	if (__atomic_exchange_n(&vm->exited, 1, __ATOMIC_ACQ_REL))
		return;
	vm_putc(vm, '\n');
	LOG_INFO("node", "guest exited with code %d on node %d", code, vm->node_id);
	vm->exit_code = code;
	if (write(vm->exit_pipe[1], &one, 1) != 1)
		LOG_ERR("node", "cannot hand the guest exit to the agent: %s", strerror(errno));
}

struct dsm *node_vm_dsm(struct node_vm *vm)
{
	return vm && vm->vmd ? vmd_dsm(vm->vmd) : NULL;
}

int node_vm_exit_fd(const struct node_vm *vm)
{
	return vm ? vm->exit_pipe[0] : -1;
}

int node_vm_exit_code(struct node_vm *vm, int *code)
{
	char drain;

	if (!vm || read(vm->exit_pipe[0], &drain, 1) != 1)
		return -EAGAIN;
	*code = vm->exit_code;
	return 0;
}

/*
 * Start barrier: harts elsewhere must not fetch the image before node 0
 * wrote it.  Node 0 writes a marker into the last page of guest RAM (the
 * pre-start check page, free after start) once the image is in; the others
 * read it through the DSM until it appears.
 */
#define LOADED_MAGIC "spanvm: guest image loaded"

static int load_barrier(struct node_vm *vm, uint64_t ram_len, bool loader)
{
	struct dsm *d = vmd_dsm(vm->vmd);
	uint64_t at = VM_RAM_BASE + ram_len - 4096;
	char buf[sizeof(LOADED_MAGIC)];

	if (loader)
		return dsm_write(d, at, LOADED_MAGIC, sizeof(LOADED_MAGIC));
	for (int i = 0; i < 600; i++) {
		int rc = dsm_read(d, at, buf, sizeof(buf));
		if (rc)
			return rc;
		if (!memcmp(buf, LOADED_MAGIC, sizeof(buf)))
			return 0;
		usleep(50000);
	}
	return -ETIMEDOUT;
}

/*
 * Test hook: SPANVM_DSM_FAULTS="drop=P,dup=P,reorder,delay_us=N,seed=S"
 * switches transport's send-side faults on for every peer of this node.
 */
static int faults_from_env(struct tp *tp, const uint32_t *peers, uint32_t npeers)
{
	const char *env = getenv("SPANVM_DSM_FAULTS");
	struct tp_fault f = {0};
	char buf[256], *save = NULL;

	if (!env || !*env)
		return 0;
	snprintf(buf, sizeof(buf), "%s", env);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		unsigned long v = 0;
		if (sscanf(t, "drop=%lu", &v) == 1 && v <= 100)
			f.drop_pct = (unsigned)v;
		else if (sscanf(t, "dup=%lu", &v) == 1 && v <= 100)
			f.dup_pct = (unsigned)v;
		else if (sscanf(t, "delay_us=%lu", &v) == 1)
			f.delay_ns = v * 1000;
		else if (sscanf(t, "seed=%lu", &v) == 1)
			f.seed = v;
		else if (!strcmp(t, "reorder"))
			f.reorder = true;
		else {
			LOG_ERR("node", "SPANVM_DSM_FAULTS: '%s' is not drop=P, dup=P, reorder, "
					"delay_us=N or seed=S", t);
			return -EINVAL;
		}
	}
	for (uint32_t i = 0; i < npeers; i++)
		tp_fault_set(tp, (int)peers[i], &f);
	LOG_WARN("node", "fault injection on: %s", env);
	return 0;
}

static void *boot_main(void *arg)
{
	struct node_vm *vm = arg;
	char err[256] = "";
	int rc;

	util_log_set_thread("boot");
	if (vm->machine)
		rc = vml_load(vm->machine, vmd_dsm(vm->vmd), err, sizeof(err));
	else
		rc = vmd_load_elf(vm->vmd, vm->img, vm->img_len, vm->loader, err, sizeof(err));
	free(vm->img);
	vm->img = NULL;
	/* Linux: vml_load waits for the console node's message instead */
	if (rc == 0 && !vm->machine && (rc = load_barrier(vm, vm->ram_len, vm->loader)))
		snprintf(err, sizeof(err), "waiting for node %u to load the image: %s",
			 vm->loader_id, strerror(-rc));
	pthread_mutex_lock(&vm->mu);
	bool stopping = vm->stopping;
	if (rc == 0 && !stopping && vm->machine && (rc = vml_start(vm->machine)))
		snprintf(err, sizeof(err), "cannot start the devices: %s", strerror(-rc));
	if (rc == 0 && !stopping && (rc = vmd_start(vm->vmd)))
		snprintf(err, sizeof(err), "cannot start the harts: %s", strerror(-rc));
	pthread_mutex_unlock(&vm->mu);
	if (rc && !stopping) {
		LOG_ERR("node", "guest %s: %s; leaving the cluster", vm->path, err);
		kill(getpid(), SIGTERM); /* the agent leaves in order */
	} else if (rc == 0 && !stopping) {
		LOG_INFO("node", "running the harts of %s over the DSM", vm->path);
		if (vm->machine) /* harts parked in HSM meanwhile; vmd_stop cancels it */
			vml_prefetch(vm->machine, vmd_dsm(vm->vmd));
	}
	return NULL;
}

/* mtime 0 as this host's util_now_ns(): the coordinator's clock exchange
 * (coordinator/coord_clock.c) sets it before Start; 0 = this host's clock. */
static uint64_t node_vm_clock_zero_ns;

void node_vm_set_mtime_zero(uint64_t zero_ns)
{
	node_vm_clock_zero_ns = zero_ns;
}

/* vm.kernel: every node builds the same boot plan (the files must be
 * readable on every host); the first configured node is the console node
 * (UART, PLIC) and the loader. */
static int linux_create(struct node_vm *vm, const struct config *cfg,
			const struct config_node *me, struct tp *tp, uint8_t *ram, size_t ram_len)
{
	int hart_node[VM_MAX_HARTS];
	char err[512];
	for (unsigned k = 0; k < VM_MAX_HARTS; k++)
		hart_node[k] = -1;
	for (uint32_t i = 0; i < cfg->nnodes; i++)
		for (uint32_t j = 0; j < cfg->nodes[i].nvcpus; j++)
			if (cfg->nodes[i].vcpus[j] < VM_MAX_HARTS)
				hart_node[cfg->nodes[i].vcpus[j]] = (int)cfg->nodes[i].id;
	for (unsigned k = 0; k < cfg->nvcpus; k++)
		if (k >= VM_MAX_HARTS || hart_node[k] < 0) {
			LOG_ERR("node", "guest %s: hart %u is placed on no node (nodes[].vcpus)",
				cfg->kernel, k);
			return -EINVAL;
		}
	struct vml_cfg lc = {.tp = tp, .node_id = (int)me->id, .console_node = (int)cfg->nodes[0].id,
			     .hart_node = hart_node, .harts = cfg->nvcpus, .ram = ram,
			     .ram_size = ram_len, .kernel = cfg->kernel, .initrd = cfg->initrd,
			     .cmdline = cfg->cmdline, .zero_ns = node_vm_clock_zero_ns,
			     .on_exit = vm_exit, .cb_arg = vm};
	int rc = vml_create(&lc, &vm->machine, err, sizeof(err));
	if (rc)
		LOG_ERR("node", "guest %s: %s", cfg->kernel, err);
	return rc;
}

int node_vm_start(const struct config *cfg, const struct config_node *me, struct tp *tp,
		  uint8_t *ram, size_t ram_len, const uint32_t *peers, uint32_t npeers,
		  struct node_vm **out)
{
	const char *img_path = cfg->kernel ? cfg->kernel : cfg->image;
	int nodes[CONFIG_MAX_NODES];
	char err[256];
	int rc;

	*out = NULL;
	if (!img_path)
		return 0; /* cluster only: no guest configured */
	if ((rc = faults_from_env(tp, peers, npeers)))
		return rc;
	struct node_vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	pthread_mutex_init(&vm->mu, NULL);
	vm->exit_pipe[0] = vm->exit_pipe[1] = -1;
	if (pipe2(vm->exit_pipe, O_CLOEXEC | O_NONBLOCK)) {
		rc = -errno;
		node_vm_stop(vm);
		return rc;
	}
	vm->node_id = (int)me->id;
	vm->loader = me->id == cfg->nodes[0].id;
	vm->loader_id = cfg->nodes[0].id;
	vm->ram_len = ram_len;
	snprintf(vm->path, sizeof(vm->path), "%s", img_path);
	char why[200];
	if ((rc = vm_read_file(img_path, &vm->img, &vm->img_len, why, sizeof(why)))) {
		LOG_ERR("node", "cannot read the guest image %s: %s", img_path, why);
		node_vm_stop(vm);
		return rc;
	}
	/* vm.kernel may also name a bare-metal ELF (HTIF): Linux only for an Image */
	if (cfg->kernel && boot_is_image(vm->img, vm->img_len)) {
		free(vm->img); /* boot_prepare reads the files itself */
		vm->img = NULL;
		if ((rc = linux_create(vm, cfg, me, tp, ram, ram_len))) {
			node_vm_stop(vm);
			return rc;
		}
	}
	nodes[0] = (int)me->id;
	for (uint32_t i = 0; i < npeers; i++)
		nodes[i + 1] = (int)peers[i];
	struct vmd_cfg vc = {.tp = tp, .node_id = (int)me->id, .nodes = nodes,
			     .nnodes = npeers + 1, .ram = ram, .ram_size = ram_len,
			     .harts = me->vcpus, .nharts = me->nvcpus,
			     .block_pages = cfg->home_block_pages, .machine = vm->machine,
			     .on_putc = vm_putc,
			     .on_exit = vm_exit, .cb_arg = vm};
	if ((rc = dsm_policy_parse(cfg->home_policy, &vc.policy))) { /* config.c validated it */
		LOG_ERR("node", "cluster.dsm.home_policy '%s' is unknown to the DSM", cfg->home_policy);
		node_vm_stop(vm);
		return rc;
	}
	if ((rc = vmd_create(&vc, &vm->vmd, err, sizeof(err)))) {
		LOG_ERR("node", "guest %s: %s", img_path, err);
		node_vm_stop(vm);
		return rc;
	}
	if ((rc = pthread_create(&vm->boot, NULL, boot_main, vm))) {
		node_vm_stop(vm);
		return -rc;
	}
	vm->boot_running = true;
	*out = vm;
	return 0;
}

unsigned node_vm_halt(struct node_vm *vm, unsigned wait_ms)
{
	if (!vm)
		return 0;
	pthread_mutex_lock(&vm->mu);
	vm->stopping = true; /* the boot thread starts no harts from now on */
	pthread_mutex_unlock(&vm->mu);
	return vmd_halt(vm->vmd, util_now_ns() + (uint64_t)wait_ms * 1000000);
}

void node_vm_stop(struct node_vm *vm)
{
	char dir[512], path[600];

	if (!vm)
		return;
	pthread_mutex_lock(&vm->mu);
	vm->stopping = true; /* the boot thread starts no harts from now on */
	pthread_mutex_unlock(&vm->mu);
	if (vm->vmd)
		vmd_stop(vm->vmd); /* also cancels the boot thread's DSM waits */
	if (vm->boot_running)
		pthread_join(vm->boot, NULL);
	vmd_stop(vm->vmd); /* harts the boot thread may have started meanwhile */
	free(vm->img);
	if (vm->vmd && node_runtime_dir(dir, sizeof(dir)) == 0) {
		snprintf(path, sizeof(path), "%s/dsm-node-%d.json", dir, vm->node_id);
		FILE *f = fopen(path, "w");
		if (f) {
			vmd_stats_write_json(vm->vmd, f); /* DSM + revocation counters */
			fputc('\n', f);
			fclose(f);
		}
		/* the Linux machine's and the trace table's counters, for the
		 * launcher's report (node_vm_report.c) */
		snprintf(path, sizeof(path), "%s/vm-node-%d.json", dir, vm->node_id);
		json_t *o = json_object();
		if (vm->machine)
			vml_stats(vm->machine, o);
		vmd_trace_stats(vm->vmd, o);
		if (json_dump_file(o, path, JSON_COMPACT))
			LOG_DBG("node", "cannot write %s", path);
		json_decref(o);
		/* the final page states for deploy/netns/dsm-audit-check: harts
		 * and DSM workers are stopped, the arrays still mapped */
		snprintf(path, sizeof(path), "%s/dsm-audit-node-%d.txt", dir, vm->node_id);
		if ((f = fopen(path, "w"))) {
			dsm_audit_write(vmd_dsm(vm->vmd), f);
			fclose(f);
		}
	}
	vmd_destroy(vm->vmd);
	vml_destroy(vm->machine); /* after the cpus */
	if (vm->exit_pipe[0] >= 0) {
		close(vm->exit_pipe[0]);
		close(vm->exit_pipe[1]);
	}
	pthread_mutex_destroy(&vm->mu);
	free(vm);
}
