/*
 * Harts of the virt machine and the SBI HSM extension.
 *
 * At reset every hart is set up as a firmware would leave it for an S-mode
 * kernel (exceptions and S interrupts delegated, counters readable from S
 * and U, CLINT timer raising STIP); hart 0 enters the kernel at once with
 * a0 = 0, a1 = DTB, the others are STOPPED.  A stopped hart's thread sleeps
 * on vm->done_cond; hart_start records the entry point and wakes it, and
 * the hart's own thread sets its registers (a0 = hartid, a1 = opaque,
 * S-mode, satp = 0, SIE = 0) before running it.  hart_stop makes the
 * hart's cpu_run return, after which its thread goes back to sleep.
 * HSM state and the start arguments are under vm->lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "node/virt_int.h"

enum { SBI_OK = 0, SBI_ERR_NOT_SUPPORTED = -2, SBI_ERR_INVALID_PARAM = -3,
       SBI_ERR_INVALID_ADDRESS = -5, SBI_ERR_ALREADY_AVAILABLE = -6 };

enum {
	CSR_SSTATUS = 0x100, CSR_SCOUNTEREN = 0x106, CSR_SATP = 0x180, CSR_MSTATUS = 0x300,
	CSR_MEDELEG = 0x302, CSR_MIDELEG = 0x303, CSR_MCOUNTEREN = 0x306,
};
/* Every exception but ecall from S/M (9, 11): as OpenSBI, plus the
 * illegal-instruction and access faults it would only forward anyway. */
#define MEDELEG_ALL 0xb1ffull
#define MIDELEG_S ((1ull << CPU_IRQ_SSI) | (1ull << CPU_IRQ_STI) | (1ull << CPU_IRQ_SEI))
#define SSTATUS_SIE 2ull

/* Registers of a hart entering S-mode at pc. */
static void enter_s(struct cpu *c, unsigned hartid, uint64_t pc, uint64_t a1)
{
	uint64_t s = 0;
	cpu_set_csr(c, CSR_SATP, 0);
	cpu_get_csr(c, CSR_SSTATUS, &s);
	cpu_set_csr(c, CSR_SSTATUS, s & ~SSTATUS_SIE);
	cpu_set_reg(c, 10, hartid);
	cpu_set_reg(c, 11, a1);
	cpu_set_pc(c, pc);
	cpu_set_priv(c, CPU_PRIV_S);
}

void virt_hart_reset(struct vm *vm, struct vm_hart *h)
{
	struct cpu *c = h->cpu;
	cpu_set_csr(c, CSR_MEDELEG, MEDELEG_ALL);
	cpu_set_csr(c, CSR_MIDELEG, MIDELEG_S);
	cpu_set_csr(c, CSR_MCOUNTEREN, 7);
	cpu_set_csr(c, CSR_SCOUNTEREN, 7); /* else the vDSO's rdtime traps (Linux 6.1) */
	if (h->id == 0) {
		enter_s(c, 0, vm->virt->plan.kernel_addr, vm->virt->plan.dtb_addr);
		vm->virt->harts[0].hsm = HSM_STARTED;
	} else {
		vm->virt->harts[h->id].hsm = HSM_STOPPED;
	}
	if ((unsigned)h->id == vm->cfg.harts - 1 && !vm->virt->mn)
		dev_console_input_start(vm); /* every hart exists now (multi-node: vm_dsm_linux.c) */
}

void virt_hart_main(struct vm_hart *h)
{
	struct vm *vm = h->vm;
	struct virt_hart *vh = &vm->virt->harts[h->id];
	pthread_mutex_lock(&vm->lock);
	while (!vm->done) {
		if (vh->hsm == HSM_STOPPED || vh->hsm == HSM_STOP_PENDING) {
			vh->hsm = HSM_STOPPED;
			pthread_cond_wait(&vm->done_cond, &vm->lock);
			continue;
		}
		if (vh->hsm == HSM_START_PENDING) {
			/* a restarted hart may hold translations from before its stop */
			cpu_flush_all(h->cpu);
			enter_s(h->cpu, (unsigned)h->id, vh->start_addr, vh->opaque);
			vh->hsm = HSM_STARTED;
			LOG_DBG("sbi", "hart %d started at 0x%llx", h->id,
				(unsigned long long)vh->start_addr);
		}
		pthread_mutex_unlock(&vm->lock);
		cpu_run(h->cpu, 0);
		pthread_mutex_lock(&vm->lock);
	}
	pthread_mutex_unlock(&vm->lock);
}

long virt_hsm_start(struct vm *vm, unsigned hartid, uint64_t addr, uint64_t opaque)
{
	long rc = SBI_OK;
	if (hartid >= vm->cfg.harts || vm->harts[hartid].cpu == NULL)
		return SBI_ERR_INVALID_PARAM;
	if (addr < VM_RAM_BASE || addr - VM_RAM_BASE >= vm->ram_size)
		return SBI_ERR_INVALID_ADDRESS;
	pthread_mutex_lock(&vm->lock);
	struct virt_hart *t = &vm->virt->harts[hartid];
	if (t->hsm != HSM_STOPPED) {
		rc = SBI_ERR_ALREADY_AVAILABLE;
	} else {
		t->hsm = HSM_START_PENDING;
		t->start_addr = addr;
		t->opaque = opaque;
		pthread_cond_broadcast(&vm->done_cond);
	}
	pthread_mutex_unlock(&vm->lock);
	return rc;
}

long virt_hsm_status(struct vm *vm, unsigned hartid, unsigned long *value)
{
	if (hartid >= vm->cfg.harts || vm->harts[hartid].cpu == NULL)
		return SBI_ERR_INVALID_PARAM;
	pthread_mutex_lock(&vm->lock);
	*value = vm->virt->harts[hartid].hsm;
	pthread_mutex_unlock(&vm->lock);
	return SBI_OK;
}

void virt_end(struct vm *vm, int code)
{
	if (vm->virt && vm->virt->mn)
		vml_guest_exit(vm->virt->mn, code); /* the coordinator stops every node */
	else
		vm_finish(vm, code);
}

/* start and status of a hart of another node go there (vm_dsm_linux.c) */
static bool remote(struct vm *vm, unsigned long hartid)
{
	return hartid < vm->cfg.harts && vm->harts[hartid].cpu == NULL && vm->virt->mn;
}

long sbi_hsm_call(struct vm_hart *h, unsigned long fid, const unsigned long *a,
		  unsigned long *value)
{
	struct vm *vm = h->vm;
	switch (fid) {
	case 0:
		if (remote(vm, a[0]))
			return vml_remote_hsm(vm->virt->mn, h->cpu, fid, (unsigned)a[0], a[1], a[2],
					      value);
		return virt_hsm_start(vm, (unsigned)(a[0] < vm->cfg.harts ? a[0] : vm->cfg.harts),
				      a[1], a[2]);
	case 1: /* hart_stop: the thread parks once cpu_run returns */
		pthread_mutex_lock(&vm->lock);
		vm->virt->harts[h->id].hsm = HSM_STOP_PENDING;
		pthread_mutex_unlock(&vm->lock);
		cpu_request_stop(h->cpu);
		return SBI_OK;
	case 2:
		if (remote(vm, a[0]))
			return vml_remote_hsm(vm->virt->mn, h->cpu, fid, (unsigned)a[0], 0, 0, value);
		return virt_hsm_status(vm, (unsigned)(a[0] < vm->cfg.harts ? a[0] : vm->cfg.harts),
				       value);
	}
	return SBI_ERR_NOT_SUPPORTED; /* hart_suspend: Linux copes (no cpuidle) */
}

int virt_create(struct vm *vm, const uint8_t *img, size_t len, char *err, size_t el)
{
	struct virt *v = calloc(1, sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	struct boot_cfg bc = {
		.kernel_path = vm->cfg.elf_path,
		.kernel_buf = img,
		.kernel_len = len,
		.initrd_path = vm->cfg.initrd_path,
		.cmdline = vm->cfg.cmdline ? vm->cfg.cmdline : "console=ttyS0",
		.harts = vm->cfg.harts,
		.mem_bytes = vm->ram_size,
	};
	int rc = boot_prepare(&bc, &v->plan, err, el);
	if (rc < 0) {
		free(v);
		return rc;
	}
	v->vm = vm;
	dev_uart_reset(&v->uart);
	boot_load(&v->plan, vm->ram);
	vm->virt = v;
	LOG_INFO("boot", "kernel 0x%llx-0x%llx, initrd 0x%llx (%zu bytes), dtb 0x%llx (%zu bytes)",
		 (unsigned long long)v->plan.kernel_addr, (unsigned long long)v->plan.kernel_end,
		 (unsigned long long)v->plan.initrd_addr, v->plan.initrd_len,
		 (unsigned long long)v->plan.dtb_addr, v->plan.dtb_len);
	return 0;
}

void virt_destroy(struct virt *v)
{
	if (v == NULL)
		return;
	dev_console_input_stop(v->vm);
	boot_plan_free(&v->plan);
	free(v);
}
