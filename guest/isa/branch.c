/* Branches (taken/not taken, signed/unsigned, backwards), jal/jalr (link
 * value, jalr clearing bit 0, rd == rs1). */
#include "isa.h"

#define BR(op, a, b) ({ u64 t_; asm volatile("li %0, 1\n " op " %1, %2, 1f\n li %0, 0\n1:" \
	: "=&r"(t_) : "r"((u64)(a)), "r"((u64)(b))); t_; })

static int jfunc(int x) { return x * 3; }

int main(void)
{
	CHECK_EQ(BR("beq", 5, 5), 1);
	CHECK_EQ(BR("beq", 5, 6), 0);
	CHECK_EQ(BR("bne", 5, 6), 1);
	CHECK_EQ(BR("bne", -1, -1), 0);
	CHECK_EQ(BR("blt", -1, 0), 1);
	CHECK_EQ(BR("blt", 0, -1), 0);
	CHECK_EQ(BR("blt", 3, 3), 0);
	CHECK_EQ(BR("bge", 3, 3), 1);
	CHECK_EQ(BR("bge", -1, 0), 0);
	CHECK_EQ(BR("bge", 0x8000000000000000ull, 0x7fffffffffffffffull), 0);
	CHECK_EQ(BR("bltu", 0, -1), 1);
	CHECK_EQ(BR("bltu", -1, 0), 0);
	CHECK_EQ(BR("bltu", 4, 4), 0);
	CHECK_EQ(BR("bgeu", -1, 0), 1);
	CHECK_EQ(BR("bgeu", 0, -1), 0);
	CHECK_EQ(BR("bgeu", 9, 9), 1);

	/* backward branch loop: sum 1..100 */
	u64 s = 0, i = 100;
	asm volatile("1: add %0, %0, %1\n addi %1, %1, -1\n bnez %1, 1b" : "+r"(s), "+r"(i));
	CHECK_EQ(s, 5050);

	/* jal link = address of next instruction */
	u64 link, after;
	asm volatile(".option push\n .option norvc\n jal %0, 1f\n1: la %1, 1b\n .option pop"
		     : "=r"(link), "=r"(after));
	CHECK_EQ(link, after);
	/* jal skips the instruction after it */
	u64 v = 0;
	asm volatile("jal x0, 1f\n li %0, 9\n1:" : "+r"(v));
	CHECK_EQ(v, 0);
	/* jalr: target = (rs1 + imm) & ~1, link written after reading rs1 */
	u64 t, r;
	asm volatile(".option push\n .option norvc\n la %0, 2f\n addi %0, %0, -7\n jalr %1, 8(%0)\n"
		     " li %1, 0\n2: .option pop" : "=&r"(t), "=&r"(r));
	CHECK(r != 0);
	asm volatile(".option push\n .option norvc\n la %0, 2f\n jalr %0, 0(%0)\n"
		     "1: j 3f\n2: la %1, 1b\n3: .option pop" : "=&r"(t), "=&r"(r));
	CHECK_EQ(t, r); /* rd == rs1: jumped through old value, linked new */
	/* indirect call through a function pointer */
	int (*volatile fp)(int) = jfunc;
	CHECK_EQ(fp(14), 42);
	rt_printf("isa_branch: %d checks passed\n", rt_check_no);
	return 0;
}
