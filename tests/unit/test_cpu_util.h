/*
 * Test harness for the cpu/ unit tests: a flat guest RAM behind
 * cpu_mem_ops, a "stop port" MMIO register, and RISC-V instruction
 * encoders so tests build small guest programs in place.
 */
#ifndef SPANVM_TEST_CPU_UTIL_H
#define SPANVM_TEST_CPU_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"

#define T_RAM_BASE 0x80000000ull
#define T_RAM_SIZE (4ull << 20)
#define T_MMIO_STOP 0x10000000ull  /* any store: the hart stops */
#define T_MMIO_REG 0x10000008ull   /* read/write scratch register */

struct tmem {
	uint8_t *ram;
	struct cpu *cpu[8];
	uint64_t mmio_reg;
	int stops;
	uint64_t last_stop_val;
	/* write-trap hook log */
	int pre_calls, post_calls;
	uint64_t last_trap_gpa;
	/* observer log */
	int derived[3], dropped[3];
};

static inline int tmem_page_get(void *o, int hart, uint64_t gpa, unsigned acc, struct cpu_page *out)
{
	struct tmem *m = o;
	(void)hart;
	(void)acc;
	if (gpa >= T_RAM_BASE && gpa - T_RAM_BASE < T_RAM_SIZE) {
		out->host = m->ram + ((gpa - T_RAM_BASE) & ~4095ull);
		out->perms = CPU_PERM_R | CPU_PERM_W | CPU_PERM_X;
		out->mmio = false;
		return 0;
	}
	if ((gpa >> 12) == (T_MMIO_STOP >> 12)) {
		out->host = NULL;
		out->perms = CPU_PERM_R | CPU_PERM_W;
		out->mmio = true;
		return 0;
	}
	return -EFAULT;
}

static inline int tmem_mmio_read(void *o, int hart, uint64_t gpa, unsigned size, uint64_t *v)
{
	struct tmem *m = o;
	(void)hart;
	(void)size;
	*v = gpa == T_MMIO_REG ? __atomic_load_n(&m->mmio_reg, __ATOMIC_ACQUIRE) : 0;
	return 0;
}

static inline int tmem_mmio_write(void *o, int hart, uint64_t gpa, unsigned size, uint64_t v)
{
	struct tmem *m = o;
	(void)size;
	if (gpa == T_MMIO_STOP) {
		__atomic_fetch_add(&m->stops, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&m->last_stop_val, v, __ATOMIC_RELAXED);
		cpu_request_stop(m->cpu[hart]);
	} else if (gpa == T_MMIO_REG) {
		__atomic_store_n(&m->mmio_reg, v, __ATOMIC_RELEASE);
	}
	return 0;
}

static inline void tmem_pre(void *o, int hart, uint64_t gpa, unsigned size, uint64_t v)
{
	struct tmem *m = o;
	m->pre_calls++;
	m->last_trap_gpa = gpa;
}

static inline void tmem_post(void *o, int hart, uint64_t gpa, unsigned size, uint64_t v)
{
	struct tmem *m = o;
	m->post_calls++;
}

static const struct cpu_mem_ops tmem_ops = {
	.page_get = tmem_page_get,
	.mmio_read = tmem_mmio_read,
	.mmio_write = tmem_mmio_write,
	.write_pre = tmem_pre,
	.write_post = tmem_post,
};

static inline void tobs_derived(void *arg, int kind, uint64_t page)
{
	((struct tmem *)arg)->derived[kind]++;
}

static inline void tobs_dropped(void *arg, int kind, uint64_t page)
{
	((struct tmem *)arg)->dropped[kind]++;
}

static inline struct tmem *tmem_new(void)
{
	struct tmem *m = calloc(1, sizeof(*m));
	m->ram = aligned_alloc(4096, T_RAM_SIZE);
	memset(m->ram, 0, T_RAM_SIZE);
	return m;
}

static inline void tmem_free(struct tmem *m)
{
	for (int k = 0; k < 8; k++)
		cpu_destroy(m->cpu[k]);
	free(m->ram);
	free(m);
}

static inline struct cpu *tmem_cpu(struct tmem *m, int hart, bool observe)
{
	struct cpu_cfg cfg = {.hart_id = hart, .mem = &tmem_ops, .mem_opaque = m,
			      .reset_pc = T_RAM_BASE};
	if (observe) {
		cfg.obs.derived = tobs_derived;
		cfg.obs.dropped = tobs_dropped;
		cfg.obs.arg = m;
	}
	if (cpu_create(&cfg, &m->cpu[hart]) != 0)
		return NULL;
	return m->cpu[hart];
}

static inline void *gp(struct tmem *m, uint64_t gpa)
{
	return m->ram + (gpa - T_RAM_BASE);
}

/* ---- encoders ---- */
static inline uint32_t enc_r(uint32_t opc, uint32_t f3, uint32_t f7, int rd, int rs1, int rs2)
{
	return (f7 << 25) | ((uint32_t)rs2 << 20) | ((uint32_t)rs1 << 15) | (f3 << 12) |
	       ((uint32_t)rd << 7) | opc;
}
static inline uint32_t enc_i(uint32_t opc, uint32_t f3, int rd, int rs1, int32_t imm)
{
	return ((uint32_t)(imm & 0xfff) << 20) | ((uint32_t)rs1 << 15) | (f3 << 12) |
	       ((uint32_t)rd << 7) | opc;
}
static inline uint32_t enc_s(uint32_t f3, int rs1, int rs2, int32_t imm)
{
	return ((uint32_t)((imm >> 5) & 0x7f) << 25) | ((uint32_t)rs2 << 20) |
	       ((uint32_t)rs1 << 15) | (f3 << 12) | ((uint32_t)(imm & 0x1f) << 7) | 0x23;
}
static inline uint32_t enc_b(uint32_t f3, int rs1, int rs2, int32_t imm)
{
	uint32_t u = (uint32_t)imm;
	return (((u >> 12) & 1) << 31) | (((u >> 5) & 0x3f) << 25) | ((uint32_t)rs2 << 20) |
	       ((uint32_t)rs1 << 15) | (f3 << 12) | (((u >> 1) & 0xf) << 8) |
	       (((u >> 11) & 1) << 7) | 0x63;
}
static inline uint32_t enc_j(int rd, int32_t imm)
{
	uint32_t u = (uint32_t)imm;
	return (((u >> 20) & 1) << 31) | (((u >> 1) & 0x3ff) << 21) | (((u >> 11) & 1) << 20) |
	       (((u >> 12) & 0xff) << 12) | ((uint32_t)rd << 7) | 0x6f;
}
#define ADDI(rd, rs1, imm) enc_i(0x13, 0, rd, rs1, imm)
#define LUI(rd, imm20) (((uint32_t)(imm20) << 12) | ((uint32_t)(rd) << 7) | 0x37)
#define ADD(rd, a, b) enc_r(0x33, 0, 0, rd, a, b)
#define SUB(rd, a, b) enc_r(0x33, 0, 0x20, rd, a, b)
#define DIV(rd, a, b) enc_r(0x33, 4, 1, rd, a, b)
#define DIVU(rd, a, b) enc_r(0x33, 5, 1, rd, a, b)
#define REM(rd, a, b) enc_r(0x33, 6, 1, rd, a, b)
#define MULH(rd, a, b) enc_r(0x33, 1, 1, rd, a, b)
#define MULHSU(rd, a, b) enc_r(0x33, 2, 1, rd, a, b)
#define DIVW(rd, a, b) enc_r(0x3b, 4, 1, rd, a, b)
#define SRAW(rd, a, b) enc_r(0x3b, 5, 0x20, rd, a, b)
#define LD(rd, rs1, imm) enc_i(0x03, 3, rd, rs1, imm)
#define LW(rd, rs1, imm) enc_i(0x03, 2, rd, rs1, imm)
#define LBU(rd, rs1, imm) enc_i(0x03, 4, rd, rs1, imm)
#define SD(rs2, rs1, imm) enc_s(3, rs1, rs2, imm)
#define SW(rs2, rs1, imm) enc_s(2, rs1, rs2, imm)
#define SB(rs2, rs1, imm) enc_s(0, rs1, rs2, imm)
#define BNE(a, b, off) enc_b(1, a, b, off)
#define BLT(a, b, off) enc_b(4, a, b, off)
#define JAL(rd, off) enc_j(rd, off)
#define JALR(rd, rs1, imm) enc_i(0x67, 0, rd, rs1, imm)
#define CSRRW(rd, csr, rs1) enc_i(0x73, 1, rd, rs1, csr)
#define CSRRS(rd, csr, rs1) enc_i(0x73, 2, rd, rs1, csr)
#define CSRRC(rd, csr, rs1) enc_i(0x73, 3, rd, rs1, csr)
#define CSRRWI(rd, csr, uimm) enc_i(0x73, 5, rd, uimm, csr)
#define ECALL 0x00000073u
#define EBREAK 0x00100073u
#define MRET 0x30200073u
#define SRET 0x10200073u
#define WFI 0x10500073u
#define FENCE_I 0x0000100fu
#define SFENCE_VMA(a, b) enc_r(0x73, 0, 0x09, 0, a, b)
#define AMO(f5, w, rd, rs1, rs2) enc_r(0x2f, (w) ? 2 : 3, (uint32_t)(f5) << 2, rd, rs1, rs2)
#define AMOADD_D(rd, rs1, rs2) AMO(0x00, 0, rd, rs1, rs2)
#define AMOADD_W(rd, rs1, rs2) AMO(0x00, 1, rd, rs1, rs2)
#define AMOMAX_W(rd, rs1, rs2) AMO(0x14, 1, rd, rs1, rs2)
#define AMOMINU_D(rd, rs1, rs2) AMO(0x18, 0, rd, rs1, rs2)
#define LR_D(rd, rs1) AMO(0x02, 0, rd, rs1, 0)
#define SC_D(rd, rs1, rs2) AMO(0x03, 0, rd, rs1, rs2)
#define LR_W(rd, rs1) AMO(0x02, 1, rd, rs1, 0)
#define SC_W(rd, rs1, rs2) AMO(0x03, 1, rd, rs1, rs2)

/* Emits "li t6, T_MMIO_STOP; sd x0, 0(t6)": the hart stops there. */
static inline uint32_t *emit_stop(uint32_t *p)
{
	*p++ = LUI(31, T_MMIO_STOP >> 12);
	*p++ = SD(0, 31, 0);
	return p;
}

/* Runs the hart until it stops through the stop port (or the budget). */
static inline int run_until_stop(struct cpu *c, uint64_t budget)
{
	return cpu_run(c, budget);
}

#endif
