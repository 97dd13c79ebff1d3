/*
 * The single-node VM: creation (RAM, ELF, harts), the vCPU threads, the
 * wait for the guest's exit or the timeout, and statistics.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"
#include "node/vm_int.h"
#include "node/virt_int.h"

int vm_read_file(const char *path, uint8_t **buf, size_t *len, char *err, size_t el)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, el, "cannot open: %s", strerror(errno));
		return -errno;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, el, "not a regular file");
		close(fd);
		return -EINVAL;
	}
	size_t n = (size_t)st.st_size, off = 0;
	uint8_t *b = malloc(n ? n : 1);
	if (b == NULL) {
		close(fd);
		snprintf(err, el, "out of memory reading %zu bytes", n);
		return -ENOMEM;
	}
	while (off < n) {
		ssize_t r = read(fd, b + off, n - off);
		if (r <= 0) {
			snprintf(err, el, "read failed at offset 0x%zx", off);
			free(b);
			close(fd);
			return -EIO;
		}
		off += (size_t)r;
	}
	close(fd);
	*buf = b;
	*len = n;
	return 0;
}

static int load_guest(struct vm *vm, char *err, size_t el)
{
	uint8_t *img = NULL;
	size_t len = 0;
	char why[256];
	int rc = vm_read_file(vm->cfg.elf_path, &img, &len, why, sizeof(why));
	if (rc == 0 && boot_is_image(img, len)) {
		rc = virt_create(vm, img, len, err, el); /* names its files itself */
		free(img);
		return rc;
	}
	if (rc == 0 && (vm->cfg.initrd_path || vm->cfg.cmdline)) {
		snprintf(why, sizeof(why), "--initrd/--append need a RISC-V Linux Image; this is not one");
		rc = -EINVAL;
	}
	if (rc == 0)
		rc = elf_load(img, len, vm->ram, VM_RAM_BASE, vm->ram_size, &vm->elf, why,
			      sizeof(why));
	free(img);
	if (rc < 0)
		snprintf(err, el, "%s: %s", vm->cfg.elf_path, why);
	return rc;
}

static int create_harts(struct vm *vm, char *err, size_t el)
{
	for (unsigned k = 0; k < vm->cfg.harts; k++) {
		struct vm_hart *h = &vm->harts[k];
		struct cpu_cfg cc = {
			.hart_id = (int)k,
			.mem = vm->virt ? &virt_mem_ops : &vm_mem_ops,
			.mem_opaque = vm,
			.sbi_call = vm->virt ? sbi_call : NULL,
			.sbi_arg = h,
			.reset_pc = vm->elf.entry,
			.single_step = vm->cfg.single_step,
			.time_offset = -(int64_t)(vm->start_ns / 100),
		};
		h->vm = vm;
		h->id = (int)k;
		h->timer_irq = vm->virt ? CPU_IRQ_STI : CPU_IRQ_MTI;
		vm_trace_hart_cfg(vm, k, &cc);
		int rc = cpu_create(&cc, &h->cpu);
		if (rc < 0) {
			snprintf(err, el, "hart %u: cannot create: %s", k, strerror(-rc));
			return rc;
		}
		rc = vm_trace_bind(vm, k, h->cpu, err, el);
		if (rc < 0)
			return rc;
		cpu_set_reg(h->cpu, 10, k); /* a0 = hartid, as QEMU -bios none */
		if (vm->virt)
			virt_hart_reset(vm, h);
		if (vm->elf.tohost && cpu_set_write_trap(h->cpu, vm->elf.tohost & ~4095ull, true)) {
			snprintf(err, el, "hart %u: out of memory", k);
			return -ENOMEM;
		}
	}
	return 0;
}

int vm_create(const struct vm_cfg *cfg, struct vm **out, char *err, size_t el)
{
	if (cfg->harts == 0 || cfg->harts > VM_MAX_HARTS) {
		snprintf(err, el, "--harts %u: must be 1..%d", cfg->harts, VM_MAX_HARTS);
		return -EINVAL;
	}
	if (cfg->mem_bytes < (1u << 20) || cfg->mem_bytes > (64ull << 30)) {
		snprintf(err, el, "--mem: must be 1..65536 MiB");
		return -EINVAL;
	}
	struct vm *vm = calloc(1, sizeof(*vm));
	if (vm == NULL)
		return -ENOMEM;
	vm->cfg = *cfg;
	vm->ram_size = cfg->mem_bytes;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->done_cond, NULL);
	vm->ram = mmap(NULL, vm->ram_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->ram == MAP_FAILED) {
		vm->ram = NULL;
		snprintf(err, el, "cannot map %llu bytes of guest RAM",
			 (unsigned long long)vm->ram_size);
		vm_destroy(vm);
		return -ENOMEM;
	}
	vm->start_ns = util_now_ns();
	int rc = load_guest(vm, err, el);
	if (rc == 0)
		rc = vm_trace_create(vm, err, el);
	if (rc == 0)
		rc = create_harts(vm, err, el);
	if (rc < 0) {
		vm_destroy(vm);
		return rc;
	}
	*out = vm;
	return 0;
}

void vm_finish(struct vm *vm, int code)
{
	pthread_mutex_lock(&vm->lock);
	if (!vm->done) {
		vm->done = true;
		vm->exit_code = code;
		pthread_cond_broadcast(&vm->done_cond);
	}
	pthread_mutex_unlock(&vm->lock);
	for (unsigned k = 0; k < vm->cfg.harts; k++)
		cpu_request_stop(vm->harts[k].cpu);
}

static void *hart_main(void *arg)
{
	struct vm_hart *h = arg;
	char name[16];
	snprintf(name, sizeof(name), "hart%d", h->id);
	util_log_set_thread(name);
	if (h->vm->virt)
		virt_hart_main(h); /* HSM: may wait for hart_start, may stop and restart */
	else
		cpu_run(h->cpu, 0);
	return NULL;
}

static void wait_done(struct vm *vm)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (vm->cfg.timeout_s > 0) {
		double t = (double)ts.tv_sec + ts.tv_nsec / 1e9 + vm->cfg.timeout_s;
		ts.tv_sec = (time_t)t;
		ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
	}
	pthread_mutex_lock(&vm->lock);
	while (!vm->done) {
		if (vm->cfg.timeout_s <= 0) {
			pthread_cond_wait(&vm->done_cond, &vm->lock);
		} else if (pthread_cond_timedwait(&vm->done_cond, &vm->lock, &ts) == ETIMEDOUT) {
			vm->done = true;
			vm->exit_code = 124;
		}
	}
	pthread_cond_broadcast(&vm->done_cond); /* harts waiting in HSM see done too */
	pthread_mutex_unlock(&vm->lock);
}

int vm_run(struct vm *vm, int *exit_code)
{
	unsigned started = 0;
	int rc = vm_timer_start(vm);
	uint64_t t0 = util_now_ns();
	for (; rc == 0 && started < vm->cfg.harts; started++) {
		int e = pthread_create(&vm->threads[started], NULL, hart_main, &vm->harts[started]);
		if (e != 0) {
			rc = -e;
			vm_finish(vm, 1);
			break;
		}
	}
	if (rc == 0)
		wait_done(vm);
	for (unsigned k = 0; k < vm->cfg.harts; k++)
		cpu_request_stop(vm->harts[k].cpu);
	for (unsigned k = 0; k < started; k++)
		pthread_join(vm->threads[k], NULL);
	vm->run_ns = util_now_ns() - t0;
	vm_timer_stop(vm);
	pthread_mutex_lock(&vm->lock);
	vm_console_flush(vm);
	*exit_code = vm->exit_code;
	pthread_mutex_unlock(&vm->lock);
	return rc;
}

char *vm_stats_json(struct vm *vm)
{
	json_t *root = json_object(), *harts = json_array();
	uint64_t total = 0;
	for (unsigned k = 0; k < vm->cfg.harts; k++) {
		struct cpu_stats s;
		cpu_get_stats(vm->harts[k].cpu, &s);
		total += s.instret;
		json_array_append_new(harts, json_pack(
			"{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			"hart", (int)k, "instret", (json_int_t)s.instret,
			"blocks_translated", (json_int_t)s.blocks_translated,
			"blocks_invalidated", (json_int_t)s.blocks_invalidated,
			"tb_lookups", (json_int_t)s.tb_lookups,
			"tlb_misses", (json_int_t)s.tlb_misses, "walks", (json_int_t)s.walks,
			"walk_cache_hits", (json_int_t)s.walk_cache_hits,
			"exceptions", (json_int_t)s.exceptions,
			"interrupts", (json_int_t)s.interrupts, "mmio", (json_int_t)s.mmio,
			"trapped_writes", (json_int_t)s.trapped_writes,
			"smc_invalidations", (json_int_t)s.smc_invalidations));
	}
	double secs = (double)vm->run_ns / 1e9;
	json_object_set_new(root, "harts", harts);
	json_object_set_new(root, "instret_total", json_integer((json_int_t)total));
	json_object_set_new(root, "seconds", json_real(secs));
	json_object_set_new(root, "mips", json_real(secs > 0 ? (double)total / secs / 1e6 : 0));
	json_object_set_new(root, "exit_code", json_integer(vm->exit_code));
	if (vm->virt) {
		const struct virt_stats *v = &vm->virt->st;
		json_object_set_new(root, "sbi", json_pack(
			"{s:I, s:I, s:I, s:I, s:I}", "calls", (json_int_t)v->sbi_calls,
			"ipis", (json_int_t)v->ipis, "rfences", (json_int_t)v->rfences,
			"timer_sets", (json_int_t)v->timer_sets,
			"console_bytes", (json_int_t)v->console_bytes));
	}
	vm_trace_stats(vm, root);
	char *s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return s;
}

void vm_destroy(struct vm *vm)
{
	if (vm == NULL)
		return;
	dev_console_input_stop(vm); /* before the cpus: it may still raise irqs */
	for (unsigned k = 0; k < VM_MAX_HARTS; k++)
		cpu_destroy(vm->harts[k].cpu);
	vm_trace_destroy(vm); /* after the cpus: their teardown drops traces */
	virt_destroy(vm->virt);
	if (vm->ram)
		munmap(vm->ram, vm->ram_size);
	pthread_mutex_destroy(&vm->lock);
	pthread_cond_destroy(&vm->done_cond);
	free(vm);
}
