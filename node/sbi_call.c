/*
 * The SBI, played by the monitor (SBI spec 1.0): an S-mode ecall lands
 * here through cpu_cfg.sbi_call on the calling hart's vCPU thread.
 * a7 = extension, a6 = function, a0..a5 = arguments; a0 = error, a1 = value.
 *   BASE, TIME (set_timer -> the hart's CLINT mtimecmp, raising STIP),
 *   IPI (SSIP), RFENCE (fence.i / sfence.vma on the target harts, waited
 *   for), HSM (sbi_hart.c), SRST (shutdown = exit 0, failure = 1, reboot =
 *   VIRT_EXIT_RESET), and the legacy console, timer, clear_ipi, shutdown.
 * Remote fences post work to the target harts with cpu_run_on and wait;
 * while waiting the caller runs work posted to itself (cpu_poll_work), so
 * two harts fencing each other at once cannot deadlock.  In a multi-node
 * run a hart of another node has no cpu here: IPIs, fences and HSM calls
 * for it go through vm_dsm_linux.c as messages to its node.
 */
#include <errno.h>
#include <time.h>

#include "util/util.h"
#include "node/virt_int.h"

enum {
	EXT_LEGACY_SET_TIMER = 0x00, EXT_LEGACY_PUTCHAR = 0x01, EXT_LEGACY_GETCHAR = 0x02,
	EXT_LEGACY_CLEAR_IPI = 0x03, EXT_LEGACY_SHUTDOWN = 0x08,
	EXT_BASE = 0x10, EXT_TIME = 0x54494D45, EXT_IPI = 0x735049, EXT_RFENCE = 0x52464E43,
	EXT_HSM = 0x48534D, EXT_SRST = 0x53525354,
};
enum {
	SBI_OK = 0, SBI_ERR_FAILED = -1, SBI_ERR_NOT_SUPPORTED = -2, SBI_ERR_INVALID_PARAM = -3,
	SBI_ERR_INVALID_ADDRESS = -5, SBI_ERR_ALREADY_AVAILABLE = -6,
};
#define SBI_SPEC_VERSION 0x01000000 /* 1.0 */
#define SBI_IMPL_ID 0x5350           /* "SP": not a registered implementation */
#define SBI_IMPL_VERSION 1

struct sbiret {
	long error;
	unsigned long value;
};

/* ------------------------------------------------------------ harts */

/* Calls fn(vm, hart, arg) for every hart selected by (mask, base);
 * SBI_ERR_INVALID_PARAM if the mask names a hart that does not exist. */
static long for_harts(struct vm *vm, unsigned long mask, unsigned long base,
		      void (*fn)(struct vm *, unsigned, void *), void *arg)
{
	unsigned n = vm->cfg.harts;
	if (base == (unsigned long)-1) {
		for (unsigned k = 0; k < n; k++)
			fn(vm, k, arg);
		return SBI_OK;
	}
	if (mask && (base >= n || (base + 64 > n && (mask >> (n - base)) != 0)))
		return SBI_ERR_INVALID_PARAM;
	for (unsigned b = 0; b < 64 && (mask >> b); b++)
		if ((mask >> b) & 1)
			fn(vm, (unsigned)base + b, arg);
	return SBI_OK;
}

static void send_ipi(struct vm *vm, unsigned hart, void *arg)
{
	if (vm->harts[hart].cpu)
		cpu_set_irq(vm->harts[hart].cpu, CPU_IRQ_SSI, true);
	else /* a hart of another node */
		vml_remote_ipi(vm->virt->mn, arg, hart);
}

/* A remote fence in flight: targets count down, the caller waits. */
struct fence {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned left;
	bool tlb_only;
	struct cpu *self;
	uint64_t remote[VM_MAX_HARTS / 64]; /* targets on other nodes, done after the local ones */
};

static void fence_do(struct cpu *c, void *arg)
{
	struct fence *f = arg;
	if (f->tlb_only)
		cpu_flush_tlb(c);
	else
		cpu_flush_all(c);
	pthread_mutex_lock(&f->lock);
	f->left--;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

static void fence_post(struct vm *vm, unsigned hart, void *arg)
{
	struct fence *f = arg;
	struct cpu *c = vm->harts[hart].cpu;
	if (c == NULL) {
		f->remote[hart / 64] |= 1ull << (hart % 64);
		return;
	}
	pthread_mutex_lock(&f->lock);
	f->left++;
	pthread_mutex_unlock(&f->lock);
	if (c == f->self || cpu_run_on(c, fence_do, f, false) < 0)
		fence_do(c, f); /* own hart (or no memory to post): at once */
}

static long remote_fence(struct vm *vm, struct cpu *self, unsigned long mask, unsigned long base,
			 bool tlb_only)
{
	struct fence f = {.tlb_only = tlb_only, .self = self};
	pthread_mutex_init(&f.lock, NULL);
	pthread_cond_init(&f.cond, NULL);
	long rc = for_harts(vm, mask, base, fence_post, &f);
	pthread_mutex_lock(&f.lock);
	while (f.left) {
		/* Short timed waits: work posted to *us* meanwhile does not
		 * signal f.cond, and must run for the other side to finish. */
		pthread_mutex_unlock(&f.lock);
		cpu_poll_work(self);
		pthread_mutex_lock(&f.lock);
		if (f.left) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&f.cond, &f.lock, &ts);
		}
	}
	pthread_mutex_unlock(&f.lock);
	pthread_mutex_destroy(&f.lock);
	pthread_cond_destroy(&f.cond);
	/* Other nodes' harts: one request each, answered once the flush ran
	 * there; the wait keeps serving work posted to us. */
	for (unsigned k = 0; k < VM_MAX_HARTS; k++)
		if ((f.remote[k / 64] >> (k % 64)) & 1) {
			long e = vml_remote_fence(vm->virt->mn, self, k, tlb_only);
			if (e && rc == SBI_OK)
				rc = e;
		}
	__atomic_fetch_add(&vm->virt->st.rfences, 1, __ATOMIC_RELAXED);
	return rc;
}

/* ------------------------------------------------------- extensions */

static void set_timer(struct vm_hart *h, uint64_t when)
{
	__atomic_fetch_add(&h->vm->virt->st.timer_sets, 1, __ATOMIC_RELAXED);
	vm_clint_write(h->vm, 0x4000 + 8ull * (unsigned)h->id, 8, when);
}

static void system_reset(struct vm *vm, unsigned long type, unsigned long reason)
{
	int code = type == 0 ? (reason == 1 ? 1 : 0) : VIRT_EXIT_RESET;
	LOG_INFO("sbi", "system reset: type %lu reason %lu: the VM ends with %d", type, reason,
		 code);
	vm->virt->exit_reason_code = code;
	virt_end(vm, code);
}

static bool ext_present(unsigned long eid)
{
	switch (eid) {
	case EXT_BASE: case EXT_TIME: case EXT_IPI: case EXT_RFENCE: case EXT_HSM: case EXT_SRST:
	case EXT_LEGACY_SET_TIMER: case EXT_LEGACY_PUTCHAR: case EXT_LEGACY_GETCHAR:
	case EXT_LEGACY_CLEAR_IPI: case EXT_LEGACY_SHUTDOWN:
		return true;
	}
	return false;
}

static struct sbiret base_call(unsigned long fid, unsigned long a0)
{
	switch (fid) {
	case 0: return (struct sbiret){SBI_OK, SBI_SPEC_VERSION};
	case 1: return (struct sbiret){SBI_OK, SBI_IMPL_ID};
	case 2: return (struct sbiret){SBI_OK, SBI_IMPL_VERSION};
	case 3: return (struct sbiret){SBI_OK, ext_present(a0)};
	case 4: case 5: case 6: return (struct sbiret){SBI_OK, 0}; /* mvendorid/marchid/mimpid */
	}
	return (struct sbiret){SBI_ERR_NOT_SUPPORTED, 0};
}

static struct sbiret rfence_call(struct vm *vm, struct cpu *self, unsigned long fid,
				 const unsigned long *a)
{
	switch (fid) {
	case 0: return (struct sbiret){remote_fence(vm, self, a[0], a[1], false), 0};
	case 1: case 2: /* sfence.vma (+asid): we drop whole TLBs */
		return (struct sbiret){remote_fence(vm, self, a[0], a[1], true), 0};
	}
	return (struct sbiret){SBI_ERR_NOT_SUPPORTED, 0}; /* hfence: no H extension */
}

/* Legacy (0.1) calls return their result in a0 only. */
static bool legacy_call(struct vm_hart *h, unsigned long eid, const unsigned long *a, long *a0)
{
	struct vm *vm = h->vm;
	switch (eid) {
	case EXT_LEGACY_SET_TIMER: set_timer(h, a[0]); *a0 = 0; return true;
	case EXT_LEGACY_PUTCHAR:
		pthread_mutex_lock(&vm->lock);
		dev_console_put(vm, (char)a[0]);
		pthread_mutex_unlock(&vm->lock);
		*a0 = 0;
		return true;
	case EXT_LEGACY_GETCHAR:
		pthread_mutex_lock(&vm->lock);
		*a0 = dev_uart_getc(vm);
		pthread_mutex_unlock(&vm->lock);
		return true;
	case EXT_LEGACY_CLEAR_IPI: cpu_set_irq(h->cpu, CPU_IRQ_SSI, false); *a0 = 0; return true;
	case EXT_LEGACY_SHUTDOWN: system_reset(vm, 0, 0); *a0 = 0; return true;
	}
	return false;
}

void sbi_call(void *arg, struct cpu *cpu)
{
	struct vm_hart *h = arg;
	struct vm *vm = h->vm;
	unsigned long a[6], eid = cpu_get_reg(cpu, 17), fid = cpu_get_reg(cpu, 16);
	struct sbiret r = {SBI_ERR_NOT_SUPPORTED, 0};
	long legacy;
	for (unsigned k = 0; k < 6; k++)
		a[k] = cpu_get_reg(cpu, 10 + k);
	__atomic_fetch_add(&vm->virt->st.sbi_calls, 1, __ATOMIC_RELAXED);
	if (legacy_call(h, eid, a, &legacy)) {
		cpu_set_reg(cpu, 10, (uint64_t)legacy);
		return;
	}
	switch (eid) {
	case EXT_BASE: r = base_call(fid, a[0]); break;
	case EXT_TIME:
		if (fid == 0) {
			set_timer(h, a[0]);
			r.error = SBI_OK;
		}
		break;
	case EXT_IPI:
		if (fid == 0) {
			r.error = for_harts(vm, a[0], a[1], send_ipi, cpu);
			__atomic_fetch_add(&vm->virt->st.ipis, 1, __ATOMIC_RELAXED);
		}
		break;
	case EXT_RFENCE: r = rfence_call(vm, cpu, fid, a); break;
	case EXT_HSM: r.error = sbi_hsm_call(h, fid, a, &r.value); break;
	case EXT_SRST:
		if (fid == 0 && a[0] <= 2 && a[1] <= 1) {
			system_reset(vm, a[0], a[1]);
			r.error = SBI_OK;
		} else if (fid == 0) {
			r.error = SBI_ERR_INVALID_PARAM;
		}
		break;
	default:
		LOG_DBG("sbi", "hart %d: unknown extension 0x%lx function %lu", h->id, eid, fid);
		break;
	}
	cpu_set_reg(cpu, 10, (uint64_t)r.error);
	cpu_set_reg(cpu, 11, r.value);
}
