/* Zifencei: code written as data is executed after fence.i, many times
 * with changing constants (a stale translation would return an old one),
 * including a patch of an instruction in the page that runs the loop. */
#include "isa.h"

static u32 jit[64] __attribute__((aligned(4096)));

static u32 enc_lui(int rd, u32 imm20) { return (imm20 << 12) | (rd << 7) | 0x37; }
static u32 enc_addi(int rd, int rs1, int imm) { return ((u32)(imm & 0xfff) << 20) | (rs1 << 15) | (rd << 7) | 0x13; }
#define RET 0x00008067u

/* patched in place: lives in .text next to the code that patches it */
__attribute__((noinline, aligned(16))) static u64 patched(void)
{
	u64 r;
	asm volatile(".option push\n .option norvc\n .globl patch_site\npatch_site: addi a0, x0, 1\n"
		     " mv %0, a0\n .option pop" : "=r"(r) :: "a0");
	return r;
}
extern u32 patch_site[];

int main(void)
{
	for (int i = 0; i < 500; i++) {
		u32 k = 0x12345 + (u32)i * 7919;
		jit[0] = enc_lui(10, k & 0xfffff);
		jit[1] = enc_addi(10, 10, i & 0x7ff);
		jit[2] = RET;
		rt_fence_i();
		u64 got = ((u64(*)(void))jit)();
		u64 want = (u64)(i64)(i32)((k & 0xfffff) << 12) + (u64)(i & 0x7ff);
		CHECK_EQ(got, want);
		rt_check_no--; /* count the loop as one check */
	}
	rt_check_no++;
	CHECK_EQ(patched(), 1);
	for (int i = 0; i < 300; i++) {
		int v = (i * 13) & 0x7ff;
		patch_site[0] = enc_addi(10, 0, v);
		rt_fence_i();
		CHECK_EQ(patched(), (u64)v);
		rt_check_no--;
	}
	rt_check_no++;
	rt_printf("isa_fencei: %d checks passed\n", rt_check_no);
	return 0;
}
