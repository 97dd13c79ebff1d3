/*
 * CLINT (QEMU spike/virt layout): msip[h] at +4h, mtimecmp[h] at
 * +0x4000 + 8h, mtime at +0xbff8.  mtime counts at 10 MHz from VM start,
 * the same clock the harts' `time` CSR reads.  MTIP is level-triggered:
 * set while mtime >= mtimecmp.  A timer thread sleeps until the earliest
 * mtimecmp that is not yet due and raises MTIP then.
 * Registers under vm->lock; cpu_set_irq may be called with it held (the
 * cpu lock nests inside vm->lock, never the other way round).
 */
#include <errno.h>
#include <time.h>

#include "util/util.h"
#include "node/vm_int.h"

uint64_t vm_mtime(const struct vm *vm)
{
	return (util_now_ns() - vm->start_ns) / 100;
}

static void update_mtip(struct vm *vm, struct vm_hart *h, uint64_t now)
{
	if (h->armed)
		cpu_set_irq(h->cpu, h->timer_irq, now >= h->mtimecmp);
}

int vm_clint_read(struct vm *vm, uint64_t off, unsigned size, uint64_t *val)
{
	uint64_t v;
	pthread_mutex_lock(&vm->lock);
	if (off < 0x4000 && (off & 3) == 0 && off / 4 < vm->cfg.harts) {
		v = vm->harts[off / 4].msip;
	} else if (off >= 0x4000 && off < 0x4000 + 8ull * vm->cfg.harts) {
		v = vm->harts[(off - 0x4000) / 8].mtimecmp >> (8 * (off & 7));
	} else if (off >= 0xbff8 && off < 0xc000) {
		v = vm_mtime(vm) >> (8 * (off & 7));
	} else {
		v = 0;
	}
	pthread_mutex_unlock(&vm->lock);
	*val = size == 8 ? v : v & ((1ull << (8 * size)) - 1);
	return 0;
}

int vm_clint_write(struct vm *vm, uint64_t off, unsigned size, uint64_t val)
{
	pthread_mutex_lock(&vm->lock);
	if (off < 0x4000 && (off & 3) == 0 && off / 4 < vm->cfg.harts) {
		struct vm_hart *h = &vm->harts[off / 4];
		h->msip = val & 1;
		cpu_set_irq(h->cpu, CPU_IRQ_MSI, h->msip);
	} else if (off >= 0x4000 && off < 0x4000 + 8ull * vm->cfg.harts) {
		struct vm_hart *h = &vm->harts[(off - 0x4000) / 8];
		unsigned shift = 8 * (off & 7);
		uint64_t mask = (size == 8 ? ~0ull : ((1ull << (8 * size)) - 1)) << shift;
		h->mtimecmp = (h->mtimecmp & ~mask) | ((val << shift) & mask);
		h->armed = true;
		update_mtip(vm, h, vm_mtime(vm));
		pthread_cond_signal(&vm->timer_cond);
	}
	/* mtime writes are ignored: it is the host clock */
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

static void *timer_main(void *arg)
{
	struct vm *vm = arg;
	util_log_set_thread("timer");
	pthread_mutex_lock(&vm->lock);
	while (!vm->timer_stop) {
		uint64_t now = vm_mtime(vm), next = UINT64_MAX;
		for (unsigned k = 0; k < vm->cfg.harts; k++) {
			struct vm_hart *h = &vm->harts[k];
			if (!h->armed)
				continue;
			if (now >= h->mtimecmp)
				update_mtip(vm, h, now);
			else if (h->mtimecmp < next)
				next = h->mtimecmp;
		}
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t wait_ns = next == UINT64_MAX ? 100000000ull : (next - now) * 100;
		if (wait_ns > 100000000ull)
			wait_ns = 100000000ull;
		uint64_t t = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + wait_ns;
		ts.tv_sec = (time_t)(t / 1000000000ull);
		ts.tv_nsec = (long)(t % 1000000000ull);
		pthread_cond_timedwait(&vm->timer_cond, &vm->lock, &ts);
	}
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

int vm_timer_start(struct vm *vm)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&vm->timer_cond, &ca);
	pthread_condattr_destroy(&ca);
	vm->timer_stop = false;
	int rc = pthread_create(&vm->timer_thread, NULL, timer_main, vm);
	if (rc != 0)
		return -rc;
	vm->timer_running = true;
	return 0;
}

void vm_timer_stop(struct vm *vm)
{
	if (!vm->timer_running)
		return;
	pthread_mutex_lock(&vm->lock);
	vm->timer_stop = true;
	pthread_cond_signal(&vm->timer_cond);
	pthread_mutex_unlock(&vm->lock);
	pthread_join(vm->timer_thread, NULL);
	vm->timer_running = false;
}
