/* Coherence stress guest (issue 6 item 5): NHARTS harts mix, every round,
 *  - AMO counter: AMO_PER_ROUND amoadd.d on one shared word;
 *  - lock-protected non-atomic updates: an LR/SC lock guards a plain
 *    read-modify-write of {a, b, sections} (a += h+1, b -= h+1);
 *  - message passing with fences: hart h sends one message per round to
 *    hart (h+1) % NHARTS through a single-producer ring (payload, fence w,w,
 *    tail; reader: tail, fence r,r, payload) and drains its own ring;
 *  - self-modifying code: the round's writer hart (r % NHARTS) rewrites a
 *    function to return value(r) and publishes r; the others fence.i, call
 *    it and record what it returned.
 * Every hart only RECORDS what it did and saw; hart 0 prints the records at
 * the end (lines "COH ...") and deploy/netns/coherence-check verifies them
 * on the host: exact counters, consistent protected data, every message
 * once and in order with an intact payload, no stale code. */
#include "../mp/mp.h"

#ifndef ROUNDS
#define ROUNDS 200
#endif
#define AMO_PER_ROUND 8
#define LOCK_PER_ROUND 4
#define RING 16 /* power of two */
#define WORDS 6

struct msg {
	u64 seq, sender, w[WORDS], sum;
};
struct ring {
	volatile u64 tail __attribute__((aligned(64))); /* written by the sender */
	volatile u64 head __attribute__((aligned(64))); /* written by the receiver */
	struct msg slot[RING];
};

static struct ring rings[NHARTS]; /* rings[h]: messages TO hart h */
static volatile u64 amo_counter __attribute__((aligned(64)));
static volatile u64 lock_word __attribute__((aligned(64)));
static struct {
	volatile u64 a, b, sections, owner;
} prot __attribute__((aligned(64)));
static u32 code[16] __attribute__((aligned(64)));
static volatile u64 smc_round __attribute__((aligned(64)));
static volatile u64 smc_acks __attribute__((aligned(64)));
static volatile u64 finished __attribute__((aligned(64)));

/* per-hart records, written only by their hart */
static u64 rec_amo[NHARTS], rec_lock[NHARTS], rec_lockbad[NHARTS], rec_sent[NHARTS];
static u64 rec_rx[NHARTS][ROUNDS]; /* seq | bad payload << 63 */
static u64 rec_nrx[NHARTS];
static u64 rec_smc[NHARTS][ROUNDS]; /* value seen in round r (writer: 0) */

static u64 word(u64 sender, u64 seq, int i) { return (sender << 48) ^ (seq * 0x9e3779b97f4a7c15ull) ^ (u64)i; }
static u32 enc_lui(int rd, u32 imm20) { return (imm20 << 12) | ((u32)rd << 7) | 0x37; }
static u32 enc_addi(int rd, int rs1, int imm) { return ((u32)(imm & 0xfff) << 20) | ((u32)rs1 << 15) | ((u32)rd << 7) | 0x13; }

static void lock_acquire(void)
{
	u64 tmp;
	asm volatile("1: lr.d.aq %0, (%1)\n bnez %0, 1b\n sc.d %0, %2, (%1)\n bnez %0, 1b"
		     : "=&r"(tmp) : "r"(&lock_word), "r"(1ul) : "memory");
}
static void lock_release(void) { asm volatile("amoswap.d.rl x0, x0, (%0)" :: "r"(&lock_word) : "memory"); }

static void do_amo(unsigned h)
{
	for (int i = 0; i < AMO_PER_ROUND; i++)
		__atomic_fetch_add(&amo_counter, 1, __ATOMIC_RELAXED);
	rec_amo[h] += AMO_PER_ROUND;
}

static void do_lock(unsigned h)
{
	for (int i = 0; i < LOCK_PER_ROUND; i++) {
		lock_acquire();
		prot.owner = h + 1;
		u64 a = prot.a, b = prot.b, n = prot.sections; /* plain accesses */
		prot.a = a + h + 1;
		prot.b = b - (h + 1);
		prot.sections = n + 1;
		if (prot.owner != h + 1 || prot.a + prot.b != 0)
			rec_lockbad[h]++;
		prot.owner = 0;
		lock_release();
		rec_lock[h]++;
	}
}

static void drain(unsigned h)
{
	struct ring *r = &rings[h];
	u64 tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
	asm volatile("fence r, r" ::: "memory");
	while (r->head != tail) {
		struct msg *m = &r->slot[r->head % RING];
		u64 sum = m->seq ^ m->sender, bad = 0;
		for (int i = 0; i < WORDS; i++) {
			sum += m->w[i];
			bad |= m->w[i] != word(m->sender, m->seq, i);
		}
		bad |= sum != m->sum || m->sender != (h + NHARTS - 1) % NHARTS;
		if (rec_nrx[h] < ROUNDS)
			rec_rx[h][rec_nrx[h]] = m->seq | (bad << 63);
		rec_nrx[h]++;
		asm volatile("fence rw, w" ::: "memory"); /* slot read before it is freed */
		__atomic_store_n(&r->head, r->head + 1, __ATOMIC_RELEASE);
	}
}

static void send(unsigned h, u64 seq)
{
	unsigned to = (h + 1) % NHARTS;
	struct ring *r = &rings[to];
	u64 t0 = clint_mtime();

	while (r->tail - __atomic_load_n(&r->head, __ATOMIC_ACQUIRE) >= RING) {
		drain(h); /* our own ring must not fill while we wait */
		if (clint_mtime() - t0 > MP_WAIT_TICKS) {
			rt_printf("hart %u: ring to %u stays full\n", h, to);
			rt_exit(252);
		}
	}
	struct msg *m = &r->slot[r->tail % RING];
	m->seq = seq;
	m->sender = h;
	m->sum = seq ^ h;
	for (int i = 0; i < WORDS; i++) {
		m->w[i] = word(h, seq, i);
		m->sum += m->w[i];
	}
	asm volatile("fence w, w" ::: "memory");
	__atomic_store_n(&r->tail, r->tail + 1, __ATOMIC_RELEASE);
	rec_sent[h]++;
}

static void do_smc(unsigned h, u64 round)
{
	u64 want = (round - 1) * (NHARTS - 1);

	if (round % NHARTS == h) { /* writer: everyone acked the previous round */
		mp_wait_eq(&smc_acks, want, "smc acks");
		code[0] = enc_lui(10, (u32)(round * 2654435761u) & 0xfffff);
		code[1] = enc_addi(10, 10, (int)(round & 0x7ff));
		code[2] = 0x00008067; /* ret */
		asm volatile("fence rw, rw\n fence.i" ::: "memory");
		__atomic_store_n(&smc_round, round, __ATOMIC_RELEASE);
		rec_smc[h][round - 1] = 0;
		return;
	}
	u64 t0 = clint_mtime();
	while (__atomic_load_n(&smc_round, __ATOMIC_ACQUIRE) < round) {
		drain(h); /* keep messages flowing while waiting */
		if (clint_mtime() - t0 > MP_WAIT_TICKS) {
			rt_printf("hart %u: smc round %lu never published\n", h, round);
			rt_exit(253);
		}
	}
	asm volatile("fence.i" ::: "memory");
	rec_smc[h][round - 1] = ((u64(*)(void))code)();
	__atomic_fetch_add(&smc_acks, 1, __ATOMIC_RELEASE);
}

static void run(unsigned h)
{
	mp_arrive();
	for (u64 r = 1; r <= ROUNDS; r++) {
		do_amo(h);
		do_lock(h);
		send(h, r);
		drain(h);
		do_smc(h, r);
	}
	u64 t0 = clint_mtime();
	while (rec_nrx[h] < ROUNDS && clint_mtime() - t0 < MP_WAIT_TICKS)
		drain(h);
	asm volatile("fence rw, rw" ::: "memory");
	__atomic_fetch_add(&finished, 1, __ATOMIC_RELEASE);
}

int secondary_main(unsigned h)
{
	if (h < NHARTS)
		run(h);
	for (;;)
		asm volatile("wfi");
}

int main(void)
{
	run(0);
	mp_wait_eq(&finished, NHARTS, "finished");
	asm volatile("fence rw, rw" ::: "memory");
	rt_printf("COH begin harts=%d rounds=%d amo_per_round=%d lock_per_round=%d\n", NHARTS, ROUNDS,
		  AMO_PER_ROUND, LOCK_PER_ROUND);
	for (unsigned h = 0; h < NHARTS; h++) {
		rt_printf("COH hart %u amo=%lu lock=%lu lockbad=%lu sent=%lu rx=%lu\n", h, rec_amo[h],
			  rec_lock[h], rec_lockbad[h], rec_sent[h], rec_nrx[h]);
		for (u64 i = 0; i < rec_nrx[h] && i < ROUNDS; i++)
			rt_printf("COH rx %u %u %lu %lu\n", h, (h + NHARTS - 1) % NHARTS,
				  rec_rx[h][i] & ~(1ull << 63), rec_rx[h][i] >> 63);
		for (u64 r = 1; r <= ROUNDS; r++)
			if (r % NHARTS != h)
				rt_printf("COH smc %u %lu 0x%lx\n", h, r, rec_smc[h][r - 1]);
	}
	rt_printf("COH final amo=%lu a=%lu b=0x%lx sections=%lu\n", amo_counter, prot.a, prot.b,
		  prot.sections);
	rt_printf("COH end\n");
	return 0;
}
