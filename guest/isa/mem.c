/* Loads and stores of every width: sign/zero extension, offsets, byte
 * order, store widths not clobbering neighbours, misaligned accesses
 * (performed, as the monitor promises and QEMU does). */
#include "isa.h"

static uint8_t buf[64] __attribute__((aligned(16)));

#define LD(op, p, off) ({ u64 r_; asm volatile(op " %0, " #off "(%1)" : "=r"(r_) : "r"(p) : "memory"); r_; })
#define ST(op, p, off, v) asm volatile(op " %0, " #off "(%1)" :: "r"((u64)(v)), "r"(p) : "memory")

static void fill(void)
{
	for (int i = 0; i < 64; i++)
		buf[i] = (uint8_t)(0x80 + i * 3);
}

static u64 bytes_le(int off, int n)
{
	u64 v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | buf[off + i];
	return v;
}

static void loads(void)
{
	fill();
	uint8_t *p = buf + 16;
	CHECK_EQ(LD("lb", p, 0), (u64)(i64)(int8_t)buf[16]);
	CHECK_EQ(LD("lbu", p, 0), buf[16]);
	CHECK_EQ(LD("lb", p, -1), (u64)(i64)(int8_t)buf[15]);
	CHECK_EQ(LD("lh", p, 2), (u64)(i64)(int16_t)bytes_le(18, 2));
	CHECK_EQ(LD("lhu", p, 2), bytes_le(18, 2));
	CHECK_EQ(LD("lw", p, 4), (u64)(i64)(i32)bytes_le(20, 4));
	CHECK_EQ(LD("lwu", p, 4), bytes_le(20, 4));
	CHECK_EQ(LD("ld", p, 8), bytes_le(24, 8));
	CHECK_EQ(LD("ld", p, -16), bytes_le(0, 8));
	buf[40] = 0x7f;
	CHECK_EQ(LD("lb", buf, 40), 0x7f);
	buf[41] = 0x01;
	CHECK_EQ(LD("lh", buf, 40), 0x017f);
}

static void stores(void)
{
	fill();
	uint8_t *p = buf + 32;
	ST("sb", p, 0, 0x1122334455667788ull);
	CHECK_EQ(buf[32], 0x88);
	CHECK_EQ(buf[33], (uint8_t)(0x80 + 33 * 3));
	ST("sh", p, 2, 0xaaaabbbbccccddeeull);
	CHECK_EQ(bytes_le(34, 2), 0xddee);
	CHECK_EQ(buf[36], (uint8_t)(0x80 + 36 * 3));
	ST("sw", p, 4, 0x0102030405060708ull);
	CHECK_EQ(bytes_le(36, 4), 0x05060708);
	CHECK_EQ(buf[40], (uint8_t)(0x80 + 40 * 3));
	ST("sd", p, 8, 0xfedcba9876543210ull);
	CHECK_EQ(bytes_le(40, 8), 0xfedcba9876543210ull);
	CHECK_EQ(buf[48], (uint8_t)(0x80 + 48 * 3));
	ST("sd", p, -8, 0); /* negative offset */
	CHECK_EQ(bytes_le(24, 8), 0);
	CHECK_EQ(buf[32], 0x88);
}

static void misaligned(void)
{
	fill();
	CHECK_EQ(LD("lh", buf, 1), (u64)(i64)(int16_t)bytes_le(1, 2));
	CHECK_EQ(LD("lhu", buf, 3), bytes_le(3, 2));
	CHECK_EQ(LD("lw", buf, 5), (u64)(i64)(i32)bytes_le(5, 4));
	CHECK_EQ(LD("lwu", buf, 7), bytes_le(7, 4));
	CHECK_EQ(LD("ld", buf, 9), bytes_le(9, 8));
	CHECK_EQ(LD("ld", buf, 15), bytes_le(15, 8));
	ST("sh", buf, 1, 0xbeef);
	CHECK_EQ(bytes_le(1, 2), 0xbeef);
	ST("sw", buf, 5, 0xcafef00d);
	CHECK_EQ(bytes_le(5, 4), 0xcafef00d);
	ST("sd", buf, 13, 0x0123456789abcdefull);
	CHECK_EQ(bytes_le(13, 8), 0x0123456789abcdefull);
	CHECK_EQ(buf[12], (uint8_t)(0x80 + 12 * 3));
	CHECK_EQ(buf[21], (uint8_t)(0x80 + 21 * 3));
}

int main(void)
{
	loads();
	stores();
	misaligned();
	/* a load into x0 still happens but leaves x0 zero */
	u64 r;
	asm volatile("ld x0, 0(%1)\n mv %0, x0" : "=r"(r) : "r"(buf));
	CHECK_EQ(r, 0);
	rt_printf("isa_mem: %d checks passed\n", rt_check_no);
	return 0;
}
