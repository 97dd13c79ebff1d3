/*
 * Decoder: RV64IMA + Zicsr + Zifencei + privileged instructions, and the C
 * extension by expansion to the equivalent 32-bit encoding (so one decoder
 * serves both and tval of an illegal compressed instruction is its parcel).
 * Pure functions, any thread.
 */
#include "cpu/cpu_int.h"

static const char *const op_names[] = {
#define X(n) #n,
	CPU_OPS(X)
#undef X
};

static inline uint32_t bits(uint32_t v, int hi, int lo)
{
	return (v >> lo) & ((1u << (hi - lo + 1)) - 1);
}

static inline int64_t sext(uint64_t v, int width)
{
	return (int64_t)(v << (64 - width)) >> (64 - width);
}

/* ---- 32-bit encoders used by the RVC expansion ---- */
static uint32_t enc_i(uint32_t opc, uint32_t f3, uint32_t rd, uint32_t rs1, int32_t imm)
{
	return ((uint32_t)(imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opc;
}

static uint32_t enc_r(uint32_t opc, uint32_t f3, uint32_t f7, uint32_t rd, uint32_t rs1,
		      uint32_t rs2)
{
	return (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opc;
}

static uint32_t enc_s(uint32_t opc, uint32_t f3, uint32_t rs1, uint32_t rs2, int32_t imm)
{
	return ((uint32_t)((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) |
	       ((uint32_t)(imm & 0x1f) << 7) | opc;
}

static uint32_t enc_b(uint32_t f3, uint32_t rs1, uint32_t rs2, int32_t imm)
{
	uint32_t u = (uint32_t)imm;
	return (bits(u, 12, 12) << 31) | (bits(u, 10, 5) << 25) | (rs2 << 20) | (rs1 << 15) |
	       (f3 << 12) | (bits(u, 4, 1) << 8) | (bits(u, 11, 11) << 7) | 0x63;
}

static uint32_t enc_j(uint32_t rd, int32_t imm)
{
	uint32_t u = (uint32_t)imm;
	return (bits(u, 20, 20) << 31) | (bits(u, 10, 1) << 21) | (bits(u, 11, 11) << 20) |
	       (bits(u, 19, 12) << 12) | (rd << 7) | 0x6f;
}

static uint32_t rvc_q0(uint16_t c)
{
	uint32_t rd = bits(c, 4, 2) + 8, rs1 = bits(c, 9, 7) + 8;
	uint32_t uimm_w = (bits(c, 12, 10) << 3) | (bits(c, 6, 6) << 2) | (bits(c, 5, 5) << 6);
	uint32_t uimm_d = (bits(c, 12, 10) << 3) | (bits(c, 6, 5) << 6);

	switch (bits(c, 15, 13)) {
	case 0: { /* c.addi4spn */
		uint32_t imm = (bits(c, 12, 11) << 4) | (bits(c, 10, 7) << 6) |
			       (bits(c, 6, 6) << 2) | (bits(c, 5, 5) << 3);
		return imm ? enc_i(0x13, 0, rd, 2, (int32_t)imm) : 0;
	}
	case 2: return enc_i(0x03, 2, rd, rs1, (int32_t)uimm_w); /* c.lw */
	case 3: return enc_i(0x03, 3, rd, rs1, (int32_t)uimm_d); /* c.ld */
	case 6: return enc_s(0x23, 2, rs1, rd, (int32_t)uimm_w); /* c.sw */
	case 7: return enc_s(0x23, 3, rs1, rd, (int32_t)uimm_d); /* c.sd */
	default: return 0; /* c.fld/c.flw/c.fsd, reserved: no F/D */
	}
}

static uint32_t rvc_q1_arith(uint16_t c)
{
	uint32_t rd = bits(c, 9, 7) + 8, rs2 = bits(c, 4, 2) + 8;
	int32_t imm6 = (int32_t)sext((bits(c, 12, 12) << 5) | bits(c, 6, 2), 6);
	uint32_t sh = (bits(c, 12, 12) << 5) | bits(c, 6, 2);

	switch (bits(c, 11, 10)) {
	case 0: return enc_i(0x13, 5, rd, rd, (int32_t)sh);          /* c.srli */
	case 1: return enc_i(0x13, 5, rd, rd, (int32_t)(sh | 0x400)); /* c.srai */
	case 2: return enc_i(0x13, 7, rd, rd, imm6);                  /* c.andi */
	}
	switch ((bits(c, 12, 12) << 2) | bits(c, 6, 5)) {
	case 0: return enc_r(0x33, 0, 0x20, rd, rd, rs2); /* c.sub */
	case 1: return enc_r(0x33, 4, 0, rd, rd, rs2);    /* c.xor */
	case 2: return enc_r(0x33, 6, 0, rd, rd, rs2);    /* c.or */
	case 3: return enc_r(0x33, 7, 0, rd, rd, rs2);    /* c.and */
	case 4: return enc_r(0x3b, 0, 0x20, rd, rd, rs2); /* c.subw */
	case 5: return enc_r(0x3b, 0, 0, rd, rd, rs2);    /* c.addw */
	default: return 0;
	}
}

static uint32_t rvc_q1(uint16_t c)
{
	uint32_t rd = bits(c, 11, 7);
	int32_t imm6 = (int32_t)sext((bits(c, 12, 12) << 5) | bits(c, 6, 2), 6);

	switch (bits(c, 15, 13)) {
	case 0: return enc_i(0x13, 0, rd, rd, imm6); /* c.addi / c.nop */
	case 1: return rd ? enc_i(0x1b, 0, rd, rd, imm6) : 0; /* c.addiw */
	case 2: return enc_i(0x13, 0, rd, 0, imm6); /* c.li */
	case 3:
		if (rd == 2) { /* c.addi16sp */
			int32_t imm = (int32_t)sext((bits(c, 12, 12) << 9) | (bits(c, 4, 3) << 7) |
						    (bits(c, 5, 5) << 6) | (bits(c, 2, 2) << 5) |
						    (bits(c, 6, 6) << 4), 10);
			return imm ? enc_i(0x13, 0, 2, 2, imm) : 0;
		}
		if (imm6 == 0)
			return 0;
		return ((uint32_t)imm6 << 12 & 0xfffff000u) | (rd << 7) | 0x37; /* c.lui */
	case 4: return rvc_q1_arith(c);
	case 5: case 6: case 7: {
		if (bits(c, 15, 13) == 5) { /* c.j */
			int32_t imm = (int32_t)sext((bits(c, 12, 12) << 11) | (bits(c, 8, 8) << 10) |
						    (bits(c, 10, 9) << 8) | (bits(c, 6, 6) << 7) |
						    (bits(c, 7, 7) << 6) | (bits(c, 2, 2) << 5) |
						    (bits(c, 11, 11) << 4) | (bits(c, 5, 3) << 1), 12);
			return enc_j(0, imm);
		}
		int32_t imm = (int32_t)sext((bits(c, 12, 12) << 8) | (bits(c, 6, 5) << 6) |
					    (bits(c, 2, 2) << 5) | (bits(c, 11, 10) << 3) |
					    (bits(c, 4, 3) << 1), 9);
		return enc_b(bits(c, 15, 13) == 6 ? 0 : 1, bits(c, 9, 7) + 8, 0, imm);
	}
	}
	return 0;
}

static uint32_t rvc_q2(uint16_t c)
{
	uint32_t rd = bits(c, 11, 7), rs2 = bits(c, 6, 2);
	uint32_t sh = (bits(c, 12, 12) << 5) | bits(c, 6, 2);

	switch (bits(c, 15, 13)) {
	case 0: return enc_i(0x13, 1, rd, rd, (int32_t)sh); /* c.slli (rd=0: hint) */
	case 2: /* c.lwsp */
		return rd ? enc_i(0x03, 2, rd, 2, (int32_t)((bits(c, 12, 12) << 5) |
			     (bits(c, 6, 4) << 2) | (bits(c, 3, 2) << 6))) : 0;
	case 3: /* c.ldsp */
		return rd ? enc_i(0x03, 3, rd, 2, (int32_t)((bits(c, 12, 12) << 5) |
			     (bits(c, 6, 5) << 3) | (bits(c, 4, 2) << 6))) : 0;
	case 4:
		if (!bits(c, 12, 12)) {
			if (rs2 == 0) /* c.jr */
				return rd ? enc_i(0x67, 0, 0, rd, 0) : 0;
			return enc_r(0x33, 0, 0, rd, 0, rs2); /* c.mv */
		}
		if (rs2 == 0) {
			if (rd == 0)
				return 0x00100073; /* c.ebreak */
			return enc_i(0x67, 0, 1, rd, 0); /* c.jalr */
		}
		return enc_r(0x33, 0, 0, rd, rd, rs2); /* c.add */
	case 6: /* c.swsp */
		return enc_s(0x23, 2, 2, rs2, (int32_t)((bits(c, 12, 9) << 2) | (bits(c, 8, 7) << 6)));
	case 7: /* c.sdsp */
		return enc_s(0x23, 3, 2, rs2, (int32_t)((bits(c, 12, 10) << 3) | (bits(c, 9, 7) << 6)));
	default: return 0; /* c.fldsp, c.fsdsp: no D */
	}
}

uint32_t cpu_rvc_expand(uint16_t c)
{
	switch (c & 3) {
	case 0: return rvc_q0(c);
	case 1: return rvc_q1(c);
	case 2: return rvc_q2(c);
	default: return 0;
	}
}

/* ---- 32-bit decode ---- */
static int dec_op_imm(uint32_t r, struct dinsn *d, bool w)
{
	uint32_t f3 = bits(r, 14, 12), f6 = bits(r, 31, 26), f7 = bits(r, 31, 25);
	if (!w) {
		static const uint16_t ops[8] = {OP_ADDI, OP_SLLI, OP_SLTI, OP_SLTIU,
						OP_XORI, OP_SRLI, OP_ORI, OP_ANDI};
		d->op = ops[f3];
		if (f3 == 1) {
			if (f6 != 0)
				return -1;
			d->imm = bits(r, 25, 20);
		} else if (f3 == 5) {
			if (f6 != 0 && f6 != 0x10)
				return -1;
			d->op = f6 ? OP_SRAI : OP_SRLI;
			d->imm = bits(r, 25, 20);
		}
		return 0;
	}
	switch (f3) {
	case 0: d->op = OP_ADDIW; return 0;
	case 1: if (f7) return -1; d->op = OP_SLLIW; d->imm = bits(r, 24, 20); return 0;
	case 5:
		if (f7 != 0 && f7 != 0x20)
			return -1;
		d->op = f7 ? OP_SRAIW : OP_SRLIW;
		d->imm = bits(r, 24, 20);
		return 0;
	}
	return -1;
}

static int dec_op(uint32_t r, struct dinsn *d, bool w)
{
	uint32_t f3 = bits(r, 14, 12), f7 = bits(r, 31, 25);
	if (f7 == 1) {
		static const uint16_t m[8] = {OP_MUL, OP_MULH, OP_MULHSU, OP_MULHU,
					      OP_DIV, OP_DIVU, OP_REM, OP_REMU};
		static const uint16_t mw[8] = {OP_MULW, 0, 0, 0, OP_DIVW, OP_DIVUW, OP_REMW, OP_REMUW};
		d->op = w ? mw[f3] : m[f3];
		return d->op ? 0 : -1;
	}
	if (!w) {
		static const uint16_t ops[8] = {OP_ADD, OP_SLL, OP_SLT, OP_SLTU,
						OP_XOR, OP_SRL, OP_OR, OP_AND};
		if (f7 == 0) {
			d->op = ops[f3];
			return 0;
		}
		if (f7 == 0x20 && (f3 == 0 || f3 == 5)) {
			d->op = f3 == 0 ? OP_SUB : OP_SRA;
			return 0;
		}
		return -1;
	}
	if (f7 == 0) {
		static const uint16_t ops[8] = {OP_ADDW, OP_SLLW, 0, 0, 0, OP_SRLW, 0, 0};
		d->op = ops[f3];
	} else if (f7 == 0x20) {
		d->op = f3 == 0 ? OP_SUBW : f3 == 5 ? OP_SRAW : 0;
	} else {
		return -1;
	}
	return d->op ? 0 : -1;
}

static int dec_amo(uint32_t r, struct dinsn *d)
{
	uint32_t f3 = bits(r, 14, 12), f5 = bits(r, 31, 27);
	static const uint16_t w[32] = {
		[0x02] = OP_LR_W, [0x03] = OP_SC_W, [0x01] = OP_AMOSWAP_W, [0x00] = OP_AMOADD_W,
		[0x04] = OP_AMOXOR_W, [0x0c] = OP_AMOAND_W, [0x08] = OP_AMOOR_W,
		[0x10] = OP_AMOMIN_W, [0x14] = OP_AMOMAX_W, [0x18] = OP_AMOMINU_W,
		[0x1c] = OP_AMOMAXU_W};
	if (f3 != 2 && f3 != 3)
		return -1;
	if (f5 != 0 && w[f5] == 0)
		return -1;
	if (f5 == 0x02 && bits(r, 24, 20) != 0)
		return -1;
	d->op = w[f5] + (f3 == 3 ? (OP_LR_D - OP_LR_W) : 0);
	d->imm = bits(r, 26, 25); /* aq/rl */
	return 0;
}

static int dec_system(uint32_t r, struct dinsn *d)
{
	uint32_t f3 = bits(r, 14, 12);
	if (f3 == 0) {
		if (bits(r, 11, 7) != 0)
			return -1;
		if (bits(r, 31, 25) == 0x09) { /* sfence.vma */
			d->op = OP_SFENCE_VMA;
			return 0;
		}
		if (d->rs1 != 0)
			return -1;
		switch (bits(r, 31, 20)) {
		case 0x000: d->op = OP_ECALL; return 0;
		case 0x001: d->op = OP_EBREAK; return 0;
		case 0x302: d->op = OP_MRET; return 0;
		case 0x102: d->op = OP_SRET; return 0;
		case 0x105: d->op = OP_WFI; return 0;
		}
		return -1;
	}
	static const uint16_t csr[8] = {0, OP_CSRRW, OP_CSRRS, OP_CSRRC,
					0, OP_CSRRWI, OP_CSRRSI, OP_CSRRCI};
	d->op = csr[f3];
	d->imm = bits(r, 31, 20);
	return d->op ? 0 : -1;
}

static int dec_load_store(uint32_t r, struct dinsn *d, bool store)
{
	static const uint16_t ld[8] = {OP_LB, OP_LH, OP_LW, OP_LD, OP_LBU, OP_LHU, OP_LWU, 0};
	static const uint16_t st[8] = {OP_SB, OP_SH, OP_SW, OP_SD, 0, 0, 0, 0};
	d->op = (store ? st : ld)[bits(r, 14, 12)];
	return d->op ? 0 : -1;
}

static int dec32(uint32_t r, struct dinsn *d)
{
	d->rd = bits(r, 11, 7);
	d->rs1 = bits(r, 19, 15);
	d->rs2 = bits(r, 24, 20);
	d->imm = sext(r >> 20, 12);
	switch (bits(r, 6, 0)) {
	case 0x37: d->op = OP_LUI; d->imm = (int32_t)(r & 0xfffff000u); return 0;
	case 0x17: d->op = OP_AUIPC; d->imm = (int32_t)(r & 0xfffff000u); return 0;
	case 0x6f:
		d->op = OP_JAL;
		d->imm = sext((bits(r, 31, 31) << 20) | (bits(r, 19, 12) << 12) |
			      (bits(r, 20, 20) << 11) | (bits(r, 30, 21) << 1), 21);
		return 0;
	case 0x67: d->op = OP_JALR; return bits(r, 14, 12) ? -1 : 0;
	case 0x63: {
		static const uint16_t br[8] = {OP_BEQ, OP_BNE, 0, 0, OP_BLT, OP_BGE, OP_BLTU, OP_BGEU};
		d->op = br[bits(r, 14, 12)];
		d->imm = sext((bits(r, 31, 31) << 12) | (bits(r, 7, 7) << 11) |
			      (bits(r, 30, 25) << 5) | (bits(r, 11, 8) << 1), 13);
		return d->op ? 0 : -1;
	}
	case 0x03: return dec_load_store(r, d, false);
	case 0x23:
		d->imm = sext((bits(r, 31, 25) << 5) | bits(r, 11, 7), 12);
		return dec_load_store(r, d, true);
	case 0x13: return dec_op_imm(r, d, false);
	case 0x1b: return dec_op_imm(r, d, true);
	case 0x33: return dec_op(r, d, false);
	case 0x3b: return dec_op(r, d, true);
	case 0x0f:
		switch (bits(r, 14, 12)) {
		case 0: d->op = OP_FENCE; d->imm = bits(r, 27, 20); return 0;
		case 1: d->op = OP_FENCE_I; return 0;
		}
		return -1;
	case 0x2f: return dec_amo(r, d);
	case 0x73: return dec_system(r, d);
	}
	return -1;
}

int cpu_decode(uint32_t raw, struct dinsn *d)
{
	uint32_t r = raw;
	int len = 4;

	if ((raw & 3) != 3) {
		len = 2;
		r = cpu_rvc_expand((uint16_t)raw);
		d->raw = raw & 0xffff;
		if (r == 0)
			goto illegal;
	} else {
		d->raw = raw;
		if ((raw & 0x1c) == 0x1c) /* 48-bit and longer encodings */
			goto illegal;
	}
	if (dec32(r, d) < 0)
		goto illegal;
	d->len = (uint8_t)len;
	return len;
illegal:
	d->op = OP_ILLEGAL;
	d->rd = d->rs1 = d->rs2 = 0;
	d->imm = 0;
	d->len = (raw & 3) == 3 ? 4 : 2;
	return 0;
}

int cpu_decode_name(uint32_t raw, const char **name)
{
	struct dinsn d;
	int len = cpu_decode(raw, &d);
	*name = op_names[d.op];
	return len;
}
