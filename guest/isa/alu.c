/* RV64I register/immediate ALU, shifts, W forms, lui/auipc, x0 writes. */
#include "isa.h"

#define A 0x8000000000000000ull
#define M1 0xffffffffffffffffull
#define B 0x00000000ffffffffull
#define C 0x7fffffff80000000ull
#define D 0x123456789abcdef0ull

static void reg_reg(void)
{
	TRR("add", 1, 2, 3);
	TRR("add", A, M1, A + M1);
	TRR("add", 0x7fffffffffffffffull, 1, A);
	TRR("sub", 0, 1, M1);
	TRR("sub", A, 1, 0x7fffffffffffffffull);
	TRR("sll", 1, 63, A);
	TRR("sll", 1, 64 + 3, 8); /* only rs2[5:0] counts */
	TRR("srl", A, 63, 1);
	TRR("sra", A, 63, M1);
	TRR("sra", D, 4, (u64)((i64)D >> 4));
	TRR("srl", M1, 0, M1);
	TRR("slt", M1, 0, 1);
	TRR("slt", 0, M1, 0);
	TRR("sltu", M1, 0, 0);
	TRR("sltu", 0, M1, 1);
	TRR("slt", A, 0x7fffffffffffffffull, 1);
	TRR("xor", D, M1, ~D);
	TRR("or", D, B, D | B);
	TRR("and", D, B, D & B);
	TRR("addw", 0x7fffffff, 1, 0xffffffff80000000ull);
	TRR("addw", 0x1ffffffffull, 1, 0);
	TRR("subw", 0, 1, M1);
	TRR("subw", 0x80000000ull, 1, 0x7fffffff);
	TRR("sllw", 1, 31, 0xffffffff80000000ull);
	TRR("sllw", 1, 32 + 1, 2); /* only rs2[4:0] counts */
	TRR("srlw", 0xffffffff80000000ull, 31, 1);
	TRR("srlw", 0xffffffff80000000ull, 0, 0xffffffff80000000ull);
	TRR("sraw", 0x80000000ull, 31, M1);
	TRR("sraw", 0xabcdef0012345678ull, 4, SX32((i32)0x12345678 >> 4));
	TRR("srlw", D, 8, SX32(((u32)D) >> 8));
}

static void reg_imm(void)
{
	TRI("addi", 0, -1, M1);
	TRI("addi", 0x7fffffffffffffffull, 1, A);
	TRI("addi", 5, 2047, 2052);
	TRI("addi", 5, -2048, 5 - 2048);
	TRI("slti", M1, 0, 1);
	TRI("slti", 0, -1, 0);
	TRI("sltiu", 0, -1, 1); /* immediate sign-extends, then unsigned compare */
	TRI("sltiu", M1, -1, 0);
	TRI("sltiu", 0x100000000ull, -1, 1);   /* imm sign-extends to 64 bits, not 32 */
	TRI("sltiu", A, -2048, 1);
	TRI("sltiu", 0xfffffffffffff800ull, -2048, 0);
	TRI("slti", 0x100000000ull, -1, 0);
	TRI("xori", D, -1, ~D);
	TRI("ori", D, 0x7ff, D | 0x7ff);
	TRI("andi", D, -16, D & ~15ull);
	TRI("slli", 1, 63, A);
	TRI("srli", A, 63, 1);
	TRI("srai", A, 63, M1);
	TRI("srai", C, 31, (u64)((i64)C >> 31));
	TRI("addiw", 0x7fffffff, 1, 0xffffffff80000000ull);
	TRI("addiw", 0xffffffff00000005ull, 0, 5); /* sext.w */
	TRI("addiw", 0, -1, M1);
	TRI("slliw", 1, 31, 0xffffffff80000000ull);
	TRI("srliw", 0xffffffff80000000ull, 31, 1);
	TRI("srliw", 0x80000000ull, 0, 0xffffffff80000000ull);
	TRI("sraiw", 0x80000000ull, 31, M1);
	TRI("sraiw", 0x40000000ull, 30, 1);
}

static void upper_and_x0(void)
{
	u64 r, pc1, pc2;
	asm volatile("lui %0, 0xfffff" : "=r"(r));
	CHECK_EQ(r, 0xfffffffffffff000ull);
	asm volatile("lui %0, 0x80000" : "=r"(r));
	CHECK_EQ(r, 0xffffffff80000000ull);
	asm volatile("lui %0, 0x7ffff" : "=r"(r));
	CHECK_EQ(r, 0x7ffff000ull);
	asm volatile("1: auipc %0, 0\n la %1, 1b" : "=r"(pc1), "=r"(pc2));
	CHECK_EQ(pc1, pc2);
	asm volatile("1: auipc %0, 1\n la %1, 1b" : "=r"(pc1), "=r"(pc2));
	CHECK_EQ(pc1, pc2 + 4096);
	asm volatile("1: auipc %0, 0xfffff\n la %1, 1b" : "=r"(pc1), "=r"(pc2));
	CHECK_EQ(pc1, pc2 - 4096);
	/* writes to x0 are discarded */
	asm volatile("li t0, 5\n addi x0, t0, 1\n add x0, t0, t0\n lui x0, 1\n mv %0, x0" : "=r"(r) :: "t0");
	CHECK_EQ(r, 0);
	asm volatile("addi %0, x0, 0" : "=r"(r));
	CHECK_EQ(r, 0);
	/* same register as source and destination */
	r = 7;
	asm volatile("add %0, %0, %0" : "+r"(r));
	CHECK_EQ(r, 14);
}

int main(void)
{
	reg_reg();
	reg_imm();
	upper_and_x0();
	rt_printf("isa_alu: %d checks passed\n", rt_check_no);
	return 0;
}
