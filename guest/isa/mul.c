/* M extension: mul/mulh/mulhsu/mulhu/div/divu/rem/remu and the W forms,
 * including division by zero and signed overflow (the spec's fixed
 * results: quotient all ones / -2^(L-1), remainder = dividend / 0). */
#include "isa.h"

#define MIN64 0x8000000000000000ull
#define M1 0xffffffffffffffffull
typedef __int128 i128;
typedef unsigned __int128 u128;

#define MULH(a, b) ((u64)(((i128)(i64)(a) * (i128)(i64)(b)) >> 64))
#define MULHU(a, b) ((u64)(((u128)(u64)(a) * (u128)(u64)(b)) >> 64))
#define MULHSU(a, b) ((u64)(((i128)(i64)(a) * (i128)(u128)(u64)(b)) >> 64))

static const u64 vals[] = {0, 1, 2, 3, M1, MIN64, 0x7fffffffffffffffull, 0x123456789abcdef1ull,
			   0xfedcba9876543210ull, 0x80000000ull, 0xffffffff80000000ull, 0x7fffffff};
#define NV (sizeof(vals) / sizeof(vals[0]))

static void mul_sweep(void)
{
	/* operands via memory so the compiler cannot fold them; expected values
	 * computed with 128-bit C arithmetic (which gcc itself lowers to
	 * mul/mulhu; the special-value tables below do not depend on it) */
	for (unsigned i = 0; i < NV; i++)
		for (unsigned j = 0; j < NV; j++) {
			u64 a = vals[i], b = vals[j];
			CHECK_EQ(RR("mul", a, b), a * b);
			CHECK_EQ(RR("mulw", a, b), SX32((u32)a * (u32)b));
		}
}

int main(void)
{
	mul_sweep();
	/* literal operands: expected values folded at compile time */
	TRR("mul", 0x123456789abcdef1ull, 0xfedcba9876543210ull, 0x123456789abcdef1ull * 0xfedcba9876543210ull);
	TRR("mul", M1, M1, 1);
	TRR("mul", MIN64, M1, MIN64);
	TRR("mul", 0x7fffffff, 0x7fffffff, 0x3fffffff00000001ull);
	TRR("mulw", 0x123456789abcdef1ull, 0xfedcba9876543210ull, SX32(0x9abcdef1u * 0x76543210u));
	TRR("mulh", M1, M1, 0);
	TRR("mulh", MIN64, MIN64, 0x4000000000000000ull);
	TRR("mulh", MIN64, 1, M1);
	TRR("mulh", 0x123456789abcdef1ull, 0xfedcba9876543210ull, MULH(0x123456789abcdef1ull, 0xfedcba9876543210ull));
	TRR("mulhu", M1, M1, 0xfffffffffffffffeull);
	TRR("mulhu", MIN64, 2, 1);
	TRR("mulhu", 0x123456789abcdef1ull, 0xfedcba9876543210ull, MULHU(0x123456789abcdef1ull, 0xfedcba9876543210ull));
	TRR("mulhsu", M1, M1, M1);
	TRR("mulhsu", MIN64, M1, MULHSU(MIN64, M1));
	TRR("mulhsu", 2, M1, 1);
	TRR("mulhsu", 0x123456789abcdef1ull, 0xfedcba9876543210ull, MULHSU(0x123456789abcdef1ull, 0xfedcba9876543210ull));
	TRR("div", 20, 6, 3);
	TRR("div", -20, 6, -3);
	TRR("div", 20, -6, -3);
	TRR("div", -20, -6, 3);
	TRR("div", MIN64, M1, MIN64);       /* overflow */
	TRR("div", 5, 0, M1);               /* by zero */
	TRR("divu", 20, 6, 3);
	TRR("divu", M1, 2, 0x7fffffffffffffffull);
	TRR("divu", 5, 0, M1);
	TRR("rem", 20, 6, 2);
	TRR("rem", -20, 6, -2);
	TRR("rem", 20, -6, 2);
	TRR("rem", MIN64, M1, 0);           /* overflow */
	TRR("rem", -5, 0, -5);              /* by zero */
	TRR("remu", 20, 6, 2);
	TRR("remu", M1, 10, 5);
	TRR("remu", 5, 0, 5);
	TRR("divw", 0xffffffff00000014ull, 6, 3); /* upper bits ignored */
	TRR("divw", -20, 6, -3);
	TRR("divw", 0x80000000ull, M1, 0xffffffff80000000ull);
	TRR("divw", 5, 0, M1);
	TRR("divuw", 0xffffffff, 2, 0x7fffffff);
	TRR("divuw", 0x80000000ull, 1, 0xffffffff80000000ull); /* result sign-extended */
	TRR("divuw", 5, 0x100000000ull, M1);                    /* low 32 bits of divisor = 0 */
	TRR("remw", -20, 6, -2);
	TRR("remw", 0x80000000ull, M1, 0);
	TRR("remw", 0x80000005ull, 0, 0xffffffff80000005ull);
	TRR("remuw", 0xffffffff, 10, 5);
	TRR("remuw", 0x80000005ull, 0, 0xffffffff80000005ull);
	TRR("mulw", 0x10000, 0x10000, 0);
	TRR("mulw", 0x7fffffff, 2, 0xfffffffffffffffeull);
	rt_printf("isa_mul: %d checks passed\n", rt_check_no);
	return 0;
}
