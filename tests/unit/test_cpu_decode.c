/*
 * cpu/: the decoder.  Compressed instructions are checked against their
 * 32-bit equivalents as GNU as (riscv64-unknown-elf) encodes both forms;
 * reserved and illegal encodings must decode as illegal; every 16-bit
 * parcel decodes without a crash and with the right length.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "cpu/cpu_int.h"

/* {compressed, 32-bit equivalent}, both assembled by GNU as. */
static const uint32_t rvc_pairs[][2] = {
	{0x0808, 0x01010513}, {0x424c, 0x00462583}, {0x6714, 0x00873683},
	{0xc24c, 0x00b62223}, {0xff74, 0x0ed73c23}, {0x0001, 0x00000013},
	{0x1575, 0xffd50513}, {0x2595, 0x0055859b}, {0x5601, 0xfe000613},
	{0x7139, 0xfc010113}, {0x66fd, 0x0001f6b7}, {0x830d, 0x00375713},
	{0x97fd, 0x43f7d793}, {0x987d, 0xfff47413}, {0x8c89, 0x40a484b3},
	{0x8cad, 0x00b4c4b3}, {0x8cd1, 0x00c4e4b3}, {0x8cf5, 0x00d4f4b3},
	{0x9d0d, 0x40b5053b}, {0x9d31, 0x00c5053b}, {0x02b6, 0x00d29293},
	{0x5372, 0x03c12303}, {0x73fe, 0x1f813383}, {0x8082, 0x00008067},
	{0x8572, 0x01c00533}, {0x9002, 0x00100073}, {0x9e82, 0x000e80e7},
	{0x957a, 0x01e50533}, {0xdffe, 0x0ff12e23}, {0xe24a, 0x11213023},
	{0xa101, 0x4000006f}, {0xb001, 0x801ff06f}, {0xd101, 0xf00500e3},
	{0xecfd, 0x0e049f63},
};

static void test_rvc_expand(void **state)
{
	for (unsigned k = 0; k < sizeof(rvc_pairs) / sizeof(rvc_pairs[0]); k++) {
		uint32_t got = cpu_rvc_expand((uint16_t)rvc_pairs[k][0]);
		if (got != rvc_pairs[k][1])
			fail_msg("c 0x%04x: expanded 0x%08x, want 0x%08x", rvc_pairs[k][0], got,
				 rvc_pairs[k][1]);
		/* and both forms decode to the same operation and operands */
		struct dinsn a, b;
		assert_int_equal(cpu_decode(rvc_pairs[k][0], &a), 2);
		assert_int_equal(cpu_decode(rvc_pairs[k][1], &b), 4);
		assert_int_equal(a.op, b.op);
		assert_int_equal(a.rd, b.rd);
		assert_int_equal(a.rs1, b.rs1);
		assert_int_equal(a.rs2, b.rs2);
		assert_int_equal(a.imm, b.imm);
	}
}

static void test_illegal(void **state)
{
	static const uint32_t bad16[] = {
		0x0000, /* all zero (c.addi4spn with 0) */
		0x6181, /* c.lui with imm 0 */
		0x8002, /* c.jr x0 */
		0x2000, /* c.fld: no D */
		0x2001, /* c.addiw x0 */
		0x9c41, /* reserved: q1 arith, bit 12 set, funct 10 */
	};
	static const uint32_t bad32[] = {
		0xffffffff, 0x0000007f, 0x00004073, /* csr funct3 4 */
		0x0000201b, /* op-imm-32 funct3 2 */
		0x02005033 | (1u << 30), /* bad funct7 */
		0x1010202f, /* lr.w with rs2 != 0 */
		0x00200073, /* uret (N extension) */
		0x0000300f, /* fence funct3 3 */
		0x00007003, /* load funct3 7 */
		0x00006023, /* store funct3 6 */
		0x00002063, /* branch funct3 2 */
		0x00001067, /* jalr funct3 1 */
		0x0200f0b3 ^ 0x02000000 ^ 0x40000000, /* and with funct7 0x20 */
	};
	const char *name;
	for (unsigned k = 0; k < sizeof(bad16) / sizeof(bad16[0]); k++) {
		if (cpu_decode_name(bad16[k], &name) != 0)
			fail_msg("0x%04x decoded as %s", bad16[k], name);
	}
	for (unsigned k = 0; k < sizeof(bad32) / sizeof(bad32[0]); k++) {
		if (cpu_decode_name(bad32[k], &name) != 0)
			fail_msg("0x%08x decoded as %s", bad32[k], name);
		assert_string_equal(name, "ILLEGAL");
	}
}

static void test_names(void **state)
{
	const char *name;
	assert_int_equal(cpu_decode_name(0x02b50533, &name), 4); /* mul a0,a0,a1 */
	assert_string_equal(name, "MUL");
	assert_int_equal(cpu_decode_name(0x0eb5352f, &name), 4); /* amoswap.d.aqrl? */
	assert_string_equal(name, "AMOSWAP_D");
	assert_int_equal(cpu_decode_name(0x12000073, &name), 4);
	assert_string_equal(name, "SFENCE_VMA");
	assert_int_equal(cpu_decode_name(0x10500073, &name), 4);
	assert_string_equal(name, "WFI");
	assert_int_equal(cpu_decode_name(0x0000100f, &name), 4);
	assert_string_equal(name, "FENCE_I");
	assert_int_equal(cpu_decode_name(0xc0102573, &name), 4); /* rdtime a0 */
	assert_string_equal(name, "CSRRS");
}

/* Every 16-bit parcel: no crash, length 2 (or 0 when illegal). */
static void test_all_parcels(void **state)
{
	unsigned legal = 0;
	for (uint32_t v = 0; v < 0x10000; v++) {
		if ((v & 3) == 3)
			continue;
		struct dinsn d;
		int len = cpu_decode(v, &d);
		assert_true(len == 0 || len == 2);
		assert_int_equal(d.len, 2);
		legal += len == 2;
	}
	/* most of the compressed space is legal on RV64C without F/D */
	assert_true(legal > 30000 && legal < 49152);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rvc_expand),
		cmocka_unit_test(test_illegal),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_all_parcels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
