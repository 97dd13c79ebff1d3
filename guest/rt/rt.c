/* Runtime core: entry, HTIF console and exit, checks, trap dispatch, rt_run.
 * The HTIF protocol is QEMU spike's: a write to tohost with device 1, cmd 1
 * prints the low byte; the host clears tohost and writes a nonzero value to
 * fromhost, which we wait for and clear before the next request. */
#include "rt.h"

volatile u64 tohost __attribute__((section(".tohost"), aligned(64)));
volatile u64 fromhost __attribute__((section(".tohost"), aligned(64)));

int rt_check_no;
static volatile int console_lock;
struct rt_trap rt_mtrap[RT_MAX_HARTS], rt_strap[RT_MAX_HARTS];
rt_hook_t rt_m_hook[RT_MAX_HARTS], rt_s_hook[RT_MAX_HARTS];
u64 rt_s_recover[RT_MAX_HARTS];
static volatile int expect_skip[RT_MAX_HARTS];
static volatile int in_run[RT_MAX_HARTS];

extern char rt_priv_landing[], rt_s_trap_entry[], __strap_stacks_end[];
u64 rt_priv_call(int mode, void *fn, u64 a0, u64 a1);

/* tp holds the hart id from crt0 on (readable in every mode). */
unsigned rt_hartid(void)
{
	unsigned long h;
	asm volatile("mv %0, tp" : "=r"(h));
	return (unsigned)h;
}

void rt_spin_lock(volatile int *l)
{
	while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
		while (*l)
			;
}

void rt_spin_unlock(volatile int *l) { __atomic_store_n(l, 0, __ATOMIC_RELEASE); }

static void htif_putc_locked(int c)
{
	tohost = (1ul << 56) | (1ul << 48) | (uint8_t)c;
	while (fromhost == 0)
		;
	fromhost = 0;
}

void rt_putchar(int c)
{
	rt_spin_lock(&console_lock);
	htif_putc_locked(c);
	rt_spin_unlock(&console_lock);
}

void rt_puts(const char *s)
{
	rt_spin_lock(&console_lock);
	while (*s)
		htif_putc_locked(*s++);
	rt_spin_unlock(&console_lock);
}

__attribute__((noreturn)) void rt_exit(int code)
{
	for (;;)
		tohost = ((u64)(unsigned)code << 1) | 1;
}

__attribute__((weak)) int secondary_main(unsigned hartid)
{
	for (;;)
		asm volatile("wfi");
	return 0;
}

void rt_entry(unsigned hartid)
{
	if (hartid == 0)
		rt_exit(main());
	rt_exit(secondary_main(hartid));
}

__attribute__((noreturn)) void rt_fail(const char *what, const char *file, int line, u64 got, u64 want, int has_vals)
{
	int n = rt_check_no;
	if (has_vals)
		rt_printf("FAIL check %d (%s:%d): %s: got 0x%lx want 0x%lx\n", n, file, line, what, got, want);
	else
		rt_printf("FAIL check %d (%s:%d): %s\n", n, file, line, what);
	rt_exit((n & 0xff) ? (n & 0xff) : 255);
}

int rt_insn_len(u64 pc) { return (*(volatile uint16_t *)pc & 3) == 3 ? 4 : 2; }

void rt_expect_trap(void)
{
	expect_skip[rt_hartid()] = 1;
	asm volatile("" ::: "memory");
}

void rt_trap_clear(void)
{
	unsigned h = rt_hartid();
	rt_mtrap[h] = (struct rt_trap){0};
	rt_strap[h] = (struct rt_trap){0};
}

static void record(struct rt_trap *t, u64 cause, u64 tval, u64 epc, u64 mode)
{
	t->cause = cause;
	t->tval = tval;
	t->epc = epc;
	t->prev_mode = mode;
	t->count++;
}

static void return_to_landing(void)
{
	csr_write(mepc, (u64)rt_priv_landing);
	csr_set(mstatus, MSTATUS_MPP);
}

void rt_m_trap(struct rt_frame *f)
{
	unsigned h = rt_hartid();
	u64 cause = csr_read(mcause), epc = csr_read(mepc), tval = csr_read(mtval);
	u64 mpp = (csr_read(mstatus) >> 11) & 3;

	if ((cause == CAUSE_ECALL_U || cause == CAUSE_ECALL_S || cause == CAUSE_ECALL_M) &&
	    f->x[17] == RT_MAGIC_RETURN && in_run[h]) {
		return_to_landing();
		return;
	}
	if (rt_m_hook[h] && rt_m_hook[h](f, cause))
		return;
	if (cause & CAUSE_INTR) {
		rt_printf("unexpected interrupt %lu on hart %u at 0x%lx\n", cause & 0xff, h, epc);
		rt_exit(201);
	}
	record(&rt_mtrap[h], cause, tval, epc, mpp);
	if (expect_skip[h]) {
		expect_skip[h] = 0;
		csr_write(mepc, epc + rt_insn_len(epc));
		return;
	}
	if (in_run[h]) {
		f->x[10] = RT_TRAPPED;
		return_to_landing();
		return;
	}
	rt_printf("unexpected trap cause %lu epc 0x%lx tval 0x%lx hart %u\n", cause, epc, tval, h);
	rt_exit(200);
}

void rt_s_trap(struct rt_frame *f)
{
	unsigned h = rt_hartid();
	u64 cause = csr_read(scause), epc = csr_read(sepc), tval = csr_read(stval);
	u64 spp = (csr_read(sstatus) >> 8) & 1;

	if (cause == CAUSE_ECALL_U && f->x[17] == RT_MAGIC_RETURN) {
		/* end of an rt_run(PRV_U) while ecalls go to S: pass it up */
		register u64 a0 asm("a0") = f->x[10];
		register u64 a7 asm("a7") = RT_MAGIC_RETURN;
		asm volatile("ecall" :: "r"(a0), "r"(a7));
	}
	if (rt_s_hook[h] && rt_s_hook[h](f, cause))
		return;
	record(&rt_strap[h], cause, tval, epc, spp);
	if (cause & CAUSE_INTR) {
		rt_printf("unexpected S interrupt %lu\n", cause & 0xff);
		rt_exit(202);
	}
	if (rt_s_recover[h])
		csr_write(sepc, rt_s_recover[h]);
	else
		csr_write(sepc, epc + rt_insn_len(epc));
}

void rt_s_trap_install(void)
{
	unsigned h = rt_hartid();
	csr_write(stvec, (u64)rt_s_trap_entry);
	csr_write(sscratch, (u64)__strap_stacks_end - 4096ul * h);
}

u64 rt_run(int mode, void *fn, u64 a0, u64 a1)
{
	unsigned h = rt_hartid();
	in_run[h] = 1;
	u64 r = rt_priv_call(mode, fn, a0, a1);
	in_run[h] = 0;
	return r;
}
