/* Cross-hart self-modifying code WITHOUT fence.i on the executing hart.
 * The architecture only promises the new code after fence.i; spanvm's
 * write traces promise more: hart 0's store to the code page is a trace
 * event, hart 1 (a CODE subscriber) drops its translation before the store
 * completes, so once hart 1 sees the flag it runs the new code.  This test
 * fails under `spanvm run --no-trace` (hart 1 keeps its stale block) and
 * so checks that the CODE traces, not fence.i, did the work. */
#include "../mp/mp.h"

#define ROUNDS 1000
static u32 code[16] __attribute__((aligned(64)));
static volatile u64 seq, result, done;

static u32 enc_lui(int rd, u32 imm20) { return (imm20 << 12) | ((u32)rd << 7) | 0x37; }
static u32 enc_addi(int rd, int rs1, int imm) { return ((u32)(imm & 0xfff) << 20) | ((u32)rs1 << 15) | ((u32)rd << 7) | 0x13; }
static u64 value(u64 r) { return (u64)(i64)(i32)(((r * 40503u) & 0xfffff) << 12) + (r & 0x7ff); }

static void write_code(u64 r)
{
	code[0] = enc_lui(10, (u32)(r * 40503u) & 0xfffff);
	code[1] = enc_addi(10, 10, (int)(r & 0x7ff));
	code[2] = 0x00008067; /* ret */
}

int secondary_main(unsigned h)
{
	if (h != 1)
		for (;;)
			asm volatile("wfi");
	mp_arrive();
	for (u64 r = 1; r <= ROUNDS; r++) {
		/* keep the old translation hot while hart 0 rewrites it */
		while (__atomic_load_n(&seq, __ATOMIC_ACQUIRE) != r)
			(void)((u64(*)(void))code)();
		u64 v = ((u64(*)(void))code)(); /* no fence.i */
		__atomic_store_n(&result, v, __ATOMIC_RELEASE);
		__atomic_store_n(&done, r, __ATOMIC_RELEASE);
	}
	for (;;)
		asm volatile("wfi");
}

int main(void)
{
	write_code(0);
	asm volatile("fence.i" ::: "memory");
	mp_arrive();
	for (u64 r = 1; r <= ROUNDS; r++) {
		write_code(r);
		asm volatile("fence rw, rw" ::: "memory");
		__atomic_store_n(&seq, r, __ATOMIC_RELEASE);
		mp_wait_eq(&done, r, "done");
		if (result != value(r)) {
			rt_printf("round %lu: hart 1 ran stale code: got 0x%lx want 0x%lx\n", r, result, value(r));
			CHECK_EQ(result, value(r));
		}
	}
	rt_printf("trace_smc_nofence: %d rounds, new code every time\n", ROUNDS);
	return 0;
}
