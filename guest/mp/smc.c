/* Cross-hart self-modifying code: hart 0 rewrites a function (new
 * constant each round), fence rw,rw, raises a flag; hart 1 waits for the
 * flag, executes fence.i, calls the function and reports what it
 * returned.  A stale translation on hart 1 returns an old constant.  Hart
 * 1 also runs the function before each rewrite so its translation is hot. */
#include "mp.h"

#define ROUNDS 2000
static u32 code[16] __attribute__((aligned(64)));
static volatile u64 seq, result, warm;

static u32 enc_lui(int rd, u32 imm20) { return (imm20 << 12) | ((u32)rd << 7) | 0x37; }
static u32 enc_addi(int rd, int rs1, int imm) { return ((u32)(imm & 0xfff) << 20) | ((u32)rs1 << 15) | ((u32)rd << 7) | 0x13; }
static u64 value(u64 r) { return (u64)(i64)(i32)(((r * 2654435761u) & 0xfffff) << 12) + (r & 0x7ff); }

static void write_code(u64 r)
{
	code[0] = enc_lui(10, (u32)(r * 2654435761u) & 0xfffff);
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
		mp_wait_eq(&seq, r, "seq");
		asm volatile("fence.i" ::: "memory");
		u64 v = ((u64(*)(void))code)();
		for (int k = 0; k < 3; k++) /* run it a few more times: hot */
			v ^= ((u64(*)(void))code)() ^ v;
		__atomic_store_n(&result, v, __ATOMIC_RELEASE);
		__atomic_store_n(&warm, r, __ATOMIC_RELEASE);
	}
	for (;;)
		asm volatile("wfi");
}

int main(void)
{
	mp_arrive();
	for (u64 r = 1; r <= ROUNDS; r++) {
		write_code(r);
		asm volatile("fence rw, rw" ::: "memory");
		__atomic_store_n(&seq, r, __ATOMIC_RELEASE);
		mp_wait_eq(&warm, r, "warm");
		if (result != value(r)) {
			rt_printf("round %lu: hart 1 ran stale code: got 0x%lx want 0x%lx\n", r, result, value(r));
			CHECK_EQ(result, value(r));
		}
	}
	CHECK_EQ(result, value(ROUNDS));
	rt_printf("mp_smc: %d rounds, %d checks passed\n", ROUNDS, rt_check_no);
	return 0;
}
