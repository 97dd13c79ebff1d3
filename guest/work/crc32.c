/* CRC-32 (IEEE, reflected) of a pseudo-random buffer, table-driven, many
 * passes; checked against a bit-at-a-time implementation on the first
 * pass and against the CRC's own residue property. */
#include "work.h"

#define LEN 65536
#define PASSES 1500
static uint8_t buf[LEN + 4];
static u32 table[256];

static u32 crc_bitwise(const uint8_t *p, u64 n)
{
	u32 c = ~0u;
	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & -(c & 1));
	}
	return ~c;
}

static u32 crc_table(const uint8_t *p, u64 n)
{
	u32 c = ~0u;
	while (n--)
		c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return ~c;
}

int main(void)
{
	u64 s = 0x1234567;
	for (u32 i = 0; i < 256; i++) {
		u32 c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & -(c & 1));
		table[i] = c;
	}
	for (int i = 0; i < LEN; i++)
		buf[i] = (uint8_t)xorshift(&s);
	u32 ref = crc_bitwise(buf, LEN);
	u32 acc = 0;
	for (int p = 0; p < PASSES; p++) {
		u32 c = crc_table(buf, LEN);
		CHECK_EQ(c, ref);
		rt_check_no--;
		acc += c ^ (u32)p;
	}
	rt_check_no++;
	/* appending the CRC (little-endian) gives the fixed residue */
	for (int i = 0; i < 4; i++)
		buf[LEN + i] = (uint8_t)(ref >> (8 * i));
	CHECK_EQ(crc_table(buf, LEN + 4), 0x2144df1c);
	CHECK_EQ(crc_table((const uint8_t *)"123456789", 9), 0xcbf43926); /* standard check value */
	return work_done("crc32", acc);
}
