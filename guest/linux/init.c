/*
 * /init of the spanvm test initramfs: no libc, soft-float (rv64imac, lp64).
 *
 * It finds how many harts are online (sched_getaffinity), starts one thread
 * per extra hart (raw clone, joined through CLONE_CHILD_CLEARTID + futex)
 * and pins every worker -- the main thread included -- to its own hart.
 * The workload has private and shared parts:
 *   - private: each worker walks its own slice of a hash chain and keeps a
 *     private digest and a private table;
 *   - shared: every step adds to one shared counter (amoadd), and every 16th
 *     step bumps a bucket of a shared histogram under a spinlock (LR/SC via
 *     amoswap), so cache lines and pages really move between harts.
 * After the join, the main thread recomputes everything on one hart and
 * compares.  Output (the test and bench/linux.sh read it):
 *   "init: start, N harts"                     first line
 *   "init: hart H worker W digest D"           one per worker
 *   "init: workload ok ..." or "init: workload FAILED ..."
 *   "init: power off"
 * Then reboot(POWER_OFF), which the kernel turns into SBI SRST shutdown.
 * On failure it asks for a restart instead, which spanvm reports as a
 * non-zero exit (3).  The argument "spanvm_corrupt" (a bare word on the
 * kernel command line) spoils the shared sum before the check;
 * "spanvm_short" runs 1/20 of the steps (multi-node boots, where every
 * step's shared counter update may move its page between nodes).
 */
#include <stddef.h>
#include <stdint.h>

#define MAX_WORKERS 16
#define STEPS 40000        /* per worker (spanvm_short: STEPS / 20) */
static uint64_t steps = STEPS;
#define BUCKETS 64
#define STACK_BYTES 16384

enum {
	SYS_write = 64, SYS_exit = 93, SYS_futex = 98, SYS_sched_setaffinity = 122,
	SYS_sched_getaffinity = 123, SYS_sched_yield = 124, SYS_reboot = 142,
	SYS_getcpu = 168, SYS_clone = 220,
};
#define CLONE_VM 0x100
#define CLONE_FS 0x200
#define CLONE_FILES 0x400
#define CLONE_SIGHAND 0x800
#define CLONE_THREAD 0x10000
#define CLONE_SYSVSEM 0x40000
#define CLONE_CHILD_CLEARTID 0x200000
#define FUTEX_WAIT 0

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long a0 __asm__("a0") = a, a1 __asm__("a1") = b, a2 __asm__("a2") = c;
	register long a3 __asm__("a3") = d, a4 __asm__("a4") = e, a5 __asm__("a5") = f;
	register long a7 __asm__("a7") = n;
	__asm__ volatile("ecall"
			 : "+r"(a0)
			 : "r"(a1), "r"(a2), "r"(a3), "r"(a4), "r"(a5), "r"(a7)
			 : "memory");
	return a0;
}
#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)

/* clone with the CLONE_BACKWARDS order (flags, stack, ptid, tls, ctid);
 * the child calls fn(arg) on its new stack and exits the thread. */
long spawn(unsigned long flags, void *stack_top, volatile int *ctid, void (*fn)(void *),
	   void *arg);
__asm__(".text\n.globl spawn\nspawn:\n"
	"  addi a1, a1, -16\n  sd a3, 0(a1)\n  sd a4, 8(a1)\n"
	"  mv a4, a2\n  li a2, 0\n  li a3, 0\n  li a7, 220\n  ecall\n"
	"  bnez a0, 1f\n"
	"  ld t0, 0(sp)\n  ld a0, 8(sp)\n  jalr t0\n"
	"  li a0, 0\n  li a7, 93\n  ecall\n"
	"1: ret\n");

/* The compiler may emit calls to these even with -ffreestanding. */
void *memset(void *d, int c, size_t n)
{
	unsigned char *p = d;
	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

/* ---------------------------------------------------------- output */

struct line {
	char buf[160];
	unsigned len;
};

static void put_s(struct line *l, const char *s)
{
	while (*s && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = *s++;
}

static void put_u(struct line *l, uint64_t v, unsigned base)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = tmp[--n];
}

static void emit(struct line *l)
{
	l->buf[l->len++] = '\n';
	sys3(SYS_write, 1, l->buf, l->len); /* one write per line: lines never mix */
}

/* ---------------------------------------------------------- workload */

struct worker {
	int id;
	int cpu;                 /* hart it ran on (getcpu) */
	volatile int tid;        /* cleared by the kernel at thread exit */
	uint64_t digest;         /* private result */
	uint32_t table[BUCKETS]; /* private table */
};

static struct worker workers[MAX_WORKERS];
static unsigned char stacks[MAX_WORKERS][STACK_BYTES] __attribute__((aligned(16)));
static int nworkers;

/* shared data */
static volatile uint64_t shared_sum;
static volatile int hist_lock;
static volatile uint64_t hist[BUCKETS];
static volatile int go; /* workers start together */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x7fb5d329728ea185ull;
	x ^= x >> 27;
	x *= 0x81dadef4bc2dd44dull;
	return x ^ (x >> 33);
}

static void lock(volatile int *l)
{
	while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
		while (*l)
			;
}

static void unlock(volatile int *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

/* Step k of worker w: the same function for the parallel run and the check. */
static uint64_t step(int w, uint64_t k)
{
	return mix(((uint64_t)w << 40) ^ k);
}

static void work(void *arg)
{
	struct worker *me = arg;
	unsigned long mask[2] = {0, 0};
	mask[me->cpu / 64] = 1ul << (me->cpu % 64);
	sys3(SYS_sched_setaffinity, 0, sizeof(mask), mask);
	unsigned cpu = ~0u;
	sys3(SYS_getcpu, &cpu, 0, 0);
	me->cpu = (int)cpu;
	while (!go)
		sys3(SYS_sched_yield, 0, 0, 0);
	uint64_t d = 0;
	for (uint64_t k = 0; k < steps; k++) {
		uint64_t v = step(me->id, k);
		d = mix(d ^ v);
		me->table[v % BUCKETS]++;
		__atomic_fetch_add(&shared_sum, v & 0xffff, __ATOMIC_RELAXED);
		if ((k & 15) == 0) {
			lock(&hist_lock);
			hist[(v >> 8) % BUCKETS] += 1 + (v & 3);
			unlock(&hist_lock);
		}
	}
	me->digest = d;
}

static int check(void)
{
	static uint64_t want_hist[BUCKETS];
	uint64_t want_sum = 0;
	int bad = 0;
	for (int w = 0; w < nworkers; w++) {
		uint32_t table[BUCKETS] = {0};
		uint64_t d = 0;
		for (uint64_t k = 0; k < steps; k++) {
			uint64_t v = step(w, k);
			d = mix(d ^ v);
			table[v % BUCKETS]++;
			want_sum += v & 0xffff;
			if ((k & 15) == 0)
				want_hist[(v >> 8) % BUCKETS] += 1 + (v & 3);
		}
		bad |= d != workers[w].digest;
		for (int b = 0; b < BUCKETS; b++)
			bad |= table[b] != workers[w].table[b];
	}
	for (int b = 0; b < BUCKETS; b++)
		bad |= want_hist[b] != hist[b];
	bad |= want_sum != shared_sum;
	return bad;
}

static int online_harts(void)
{
	unsigned long mask[4] = {0};
	long n = sys3(SYS_sched_getaffinity, 0, sizeof(mask), mask);
	int count = 0;
	for (long i = 0; i < n / 8 && i < 4; i++)
		for (unsigned long m = mask[i]; m; m &= m - 1)
			count++;
	return count;
}

static void power_off(int ok)
{
	struct line l = {.len = 0};
	put_s(&l, ok ? "init: power off" : "init: restart (failure)");
	emit(&l);
	/* LINUX_REBOOT_MAGIC1/2; CMD_POWER_OFF or CMD_RESTART */
	sys6(SYS_reboot, (long)0xfee1deadu, 672274793, ok ? 0x4321fedc : 0x01234567, 0, 0, 0);
	for (;;)
		sys3(SYS_sched_yield, 0, 0, 0);
}

static int streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

/* sp points at argc, argv[0..argc-1], NULL, envp...: the kernel passes
 * unknown command-line words to init as arguments.  "spanvm_corrupt" makes
 * the check fail on purpose (tests prove the check can fail). */
void start_c(long *sp)
{
	struct line l = {.len = 0};
	int corrupt = 0;
	for (long i = 1; i < sp[0]; i++) {
		corrupt |= streq((const char *)sp[1 + i], "spanvm_corrupt");
		if (streq((const char *)sp[1 + i], "spanvm_short"))
			steps = STEPS / 20;
	}
	int n = online_harts();
	nworkers = n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : n;
	put_s(&l, "init: start, ");
	put_u(&l, (uint64_t)n, 10);
	put_s(&l, " harts");
	emit(&l);

	unsigned long flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
			      CLONE_SYSVSEM | CLONE_CHILD_CLEARTID;
	for (int w = 0; w < nworkers; w++) {
		workers[w].id = w;
		workers[w].cpu = w;
	}
	for (int w = 1; w < nworkers; w++) {
		workers[w].tid = -1;
		long r = spawn(flags, stacks[w] + STACK_BYTES, &workers[w].tid, work, &workers[w]);
		if (r < 0) {
			l.len = 0;
			put_s(&l, "init: clone failed: -");
			put_u(&l, (uint64_t)-r, 10);
			emit(&l);
			power_off(0);
		}
	}
	go = 1;
	work(&workers[0]);
	for (int w = 1; w < nworkers; w++)
		while (workers[w].tid != 0)
			sys6(SYS_futex, (long)&workers[w].tid, FUTEX_WAIT, workers[w].tid, 0, 0, 0);

	for (int w = 0; w < nworkers; w++) {
		l.len = 0;
		put_s(&l, "init: hart ");
		put_u(&l, (uint64_t)workers[w].cpu, 10);
		put_s(&l, " worker ");
		put_u(&l, (uint64_t)w, 10);
		put_s(&l, " digest ");
		put_u(&l, workers[w].digest, 16);
		emit(&l);
	}
	if (corrupt)
		shared_sum++;
	int bad = check();
	l.len = 0;
	put_s(&l, bad ? "init: workload FAILED sum " : "init: workload ok sum ");
	put_u(&l, shared_sum, 16);
	put_s(&l, " workers ");
	put_u(&l, (uint64_t)nworkers, 10);
	emit(&l);
	power_off(!bad);
}

__asm__(".text\n.globl _start\n_start:\n"
	"  .option push\n  .option norelax\n  la gp, __global_pointer$\n  .option pop\n"
	"  mv a0, sp\n  andi sp, sp, -16\n  call start_c\n");
