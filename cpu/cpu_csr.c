/*
 * Privileged architecture: CSRs (machine and supervisor, counters with
 * mcounteren/scounteren gating), trap entry with medeleg/mideleg delegation,
 * interrupt priority and enabling, mret/sret/wfi, sfence.vma and fence.i.
 *
 * mip is shared: device threads set hardware bits with atomic ops
 * (cpu_set_irq); everything else here runs on the vCPU thread.
 */
#include <errno.h>

#include "util/util.h"
#include "cpu/cpu_int.h"

#define MIP_SSIP (1ull << 1)
#define MIP_MSIP (1ull << 3)
#define MIP_STIP (1ull << 5)
#define MIP_MTIP (1ull << 7)
#define MIP_SEIP (1ull << 9)
#define MIP_MEIP (1ull << 11)
#define S_INTS (MIP_SSIP | MIP_STIP | MIP_SEIP)
#define ALL_INTS (S_INTS | MIP_MSIP | MIP_MTIP | MIP_MEIP)

#define SSTATUS_MASK (MS_SIE | MS_SPIE | MS_SPP | MS_SUM | MS_MXR | (3ull << 32))
#define MSTATUS_WMASK (MS_SIE | MS_MIE | MS_SPIE | MS_MPIE | MS_SPP | MS_MPP | MS_MPRV | \
		       MS_SUM | MS_MXR | MS_TVM | MS_TW | MS_TSR)
#define MEDELEG_MASK 0xb3ffull /* every cause but ecall-from-M and reserved ones */
#define MISA_VAL ((2ull << 62) | (1u << 0) | (1u << 2) | (1u << 8) | (1u << 12) | \
		  (1u << 18) | (1u << 20))

uint64_t cpu_time(const struct cpu *c)
{
	return util_now_ns() / 100 + (uint64_t)c->time_offset; /* 10 MHz */
}

static int mmu_for(const struct cpu *c, int priv)
{
	if (priv == CPU_PRIV_M || (c->satp >> 60) == 0)
		return 2;
	return priv;
}

void cpu_update_mmu(struct cpu *c)
{
	int dp = c->priv;
	if (c->priv == CPU_PRIV_M && (c->mstatus & MS_MPRV))
		dp = (int)((c->mstatus & MS_MPP) >> MS_MPP_SHIFT);
	c->xmmu = mmu_for(c, c->priv);
	c->dmmu = mmu_for(c, dp);
	c->dtlb = &c->tlb[c->dmmu][c->tlb_win[c->dmmu]];
}

static void set_priv(struct cpu *c, int priv)
{
	c->priv = priv;
	cpu_update_mmu(c);
}

static uint64_t mip_load(const struct cpu *c)
{
	return __atomic_load_n(&c->mip, __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------------- traps */

static void trap_enter(struct cpu *c, uint64_t cause, uint64_t tval, bool irq)
{
	uint64_t code = cause & 63;
	uint64_t deleg = irq ? c->mideleg : c->medeleg;
	uint64_t mcause = irq ? (cause | (1ull << 63)) : cause;
	c->resv_valid = false;
	if (c->priv <= CPU_PRIV_S && ((deleg >> code) & 1)) {
		c->scause = mcause;
		c->sepc = c->pc;
		c->stval = tval;
		uint64_t s = c->mstatus & ~(MS_SPP | MS_SPIE | MS_SIE);
		if (c->mstatus & MS_SIE)
			s |= MS_SPIE;
		if (c->priv == CPU_PRIV_S)
			s |= MS_SPP;
		c->mstatus = s;
		c->pc = (c->stvec & ~3ull) + ((irq && (c->stvec & 1)) ? 4 * code : 0);
		set_priv(c, CPU_PRIV_S);
		return;
	}
	c->mcause = mcause;
	c->mepc = c->pc;
	c->mtval = tval;
	uint64_t s = c->mstatus & ~(MS_MPP | MS_MPIE | MS_MIE);
	if (c->mstatus & MS_MIE)
		s |= MS_MPIE;
	s |= (uint64_t)c->priv << MS_MPP_SHIFT;
	c->mstatus = s;
	c->pc = (c->mtvec & ~3ull) + ((irq && (c->mtvec & 1)) ? 4 * code : 0);
	set_priv(c, CPU_PRIV_M);
}

void cpu_raise(struct cpu *c, uint64_t cause, uint64_t tval)
{
	c->st.exceptions++;
	/* a trap loop retires nothing: let traps use up a budget too */
	if (c->instret_limit != UINT64_MAX)
		c->instret_limit--;
	trap_enter(c, cause, tval, false);
}

/* Highest-priority interrupt among bits: MEI MSI MTI SEI SSI STI. */
static int irq_pick(uint64_t bits)
{
	static const int order[] = {11, 3, 7, 9, 1, 5};
	for (unsigned k = 0; k < UTIL_ARRAY_LEN(order); k++)
		if (bits & (1ull << order[k]))
			return order[k];
	return -1;
}

bool cpu_check_irq(struct cpu *c)
{
	uint64_t pend = mip_load(c) & c->mie;
	if (!pend)
		return false;
	uint64_t m = pend & ~c->mideleg, s = pend & c->mideleg;
	bool m_on = c->priv < CPU_PRIV_M || (c->mstatus & MS_MIE);
	bool s_on = c->priv < CPU_PRIV_S || (c->priv == CPU_PRIV_S && (c->mstatus & MS_SIE));
	int irq = -1;
	if (m && m_on)
		irq = irq_pick(m);
	else if (s && s_on)
		irq = irq_pick(s);
	if (irq < 0)
		return false;
	c->wfi = false;
	c->st.interrupts++;
	trap_enter(c, (uint64_t)irq, 0, true);
	return true;
}

int cpu_do_mret(struct cpu *c)
{
	int mpp = (int)((c->mstatus & MS_MPP) >> MS_MPP_SHIFT);
	uint64_t s = c->mstatus & ~(MS_MIE | MS_MPP);
	if (c->mstatus & MS_MPIE)
		s |= MS_MIE;
	s |= MS_MPIE;
	if (mpp != CPU_PRIV_M)
		s &= ~MS_MPRV;
	c->mstatus = s;
	c->pc = c->mepc;
	set_priv(c, mpp);
	return 1;
}

int cpu_do_sret(struct cpu *c)
{
	int spp = (c->mstatus & MS_SPP) ? CPU_PRIV_S : CPU_PRIV_U;
	uint64_t s = c->mstatus & ~(MS_SIE | MS_SPP | MS_MPRV);
	if (c->mstatus & MS_SPIE)
		s |= MS_SIE;
	s |= MS_SPIE;
	c->mstatus = s;
	c->pc = c->sepc;
	set_priv(c, spp);
	return 1;
}

/* -------------------------------------------------------------- CSRs */

static bool counter_ok(const struct cpu *c, unsigned csr)
{
	unsigned bit = csr & 31;
	if (c->priv == CPU_PRIV_M)
		return true;
	if (!((c->mcounteren >> bit) & 1))
		return false;
	return c->priv == CPU_PRIV_S || ((c->scounteren >> bit) & 1);
}

/* Reads a CSR (no privilege check); -EINVAL if it does not exist. */
static int csr_read(struct cpu *c, unsigned csr, uint64_t *v)
{
	switch (csr) {
	case 0xc00: case 0xb00: *v = c->instret + (uint64_t)c->cycle_delta; return 0;
	case 0xc01: *v = cpu_time(c); return 0;
	case 0xc02: case 0xb02: *v = c->instret; return 0;
	case 0x100: *v = c->mstatus & SSTATUS_MASK; return 0;
	case 0x104: *v = c->mie & c->mideleg; return 0;
	case 0x105: *v = c->stvec; return 0;
	case 0x106: *v = c->scounteren; return 0;
	case 0x10a: *v = c->senvcfg; return 0;
	case 0x140: *v = c->sscratch; return 0;
	case 0x141: *v = c->sepc; return 0;
	case 0x142: *v = c->scause; return 0;
	case 0x143: *v = c->stval; return 0;
	case 0x144: *v = mip_load(c) & c->mideleg; return 0;
	case 0x180: *v = c->satp; return 0;
	case 0x300: *v = c->mstatus | (2ull << 32) | (2ull << 34); return 0;
	case 0x301: *v = MISA_VAL; return 0;
	case 0x302: *v = c->medeleg; return 0;
	case 0x303: *v = c->mideleg; return 0;
	case 0x304: *v = c->mie; return 0;
	case 0x305: *v = c->mtvec; return 0;
	case 0x306: *v = c->mcounteren; return 0;
	case 0x30a: *v = c->menvcfg; return 0;
	case 0x320: *v = 0; return 0; /* mcountinhibit */
	case 0x340: *v = c->mscratch; return 0;
	case 0x341: *v = c->mepc; return 0;
	case 0x342: *v = c->mcause; return 0;
	case 0x343: *v = c->mtval; return 0;
	case 0x344: *v = mip_load(c); return 0;
	case 0x7a0: case 0x7a1: case 0x7a2: case 0x7a3: *v = 0; return 0; /* trigger module */
	case 0xf11: case 0xf12: case 0xf13: case 0xf15: *v = 0; return 0;
	case 0xf14: *v = (uint64_t)c->cfg.hart_id; return 0;
	}
	if ((csr >= 0xc03 && csr <= 0xc1f) || (csr >= 0xb03 && csr <= 0xb1f) ||
	    (csr >= 0x323 && csr <= 0x33f)) {
		*v = 0; /* hpm counters and events: hardwired zero */
		return 0;
	}
	return -EINVAL;
}

static void set_mie_like(uint64_t *reg, uint64_t mask, uint64_t v)
{
	*reg = (*reg & ~mask) | (v & mask);
}

static void mstatus_write(struct cpu *c, uint64_t v, uint64_t mask)
{
	uint64_t old = c->mstatus;
	uint64_t nv = (old & ~mask) | (v & mask);
	if (((nv & MS_MPP) >> MS_MPP_SHIFT) == 2) /* reserved MPP: keep the old one */
		nv = (nv & ~MS_MPP) | (old & MS_MPP);
	c->mstatus = nv;
	if ((old ^ nv) & (MS_SUM | MS_MXR)) {
		tlb_flush_mmu(c, 0);
		tlb_flush_mmu(c, 1);
	}
	cpu_update_mmu(c);
}

static void satp_write(struct cpu *c, uint64_t v)
{
	uint64_t mode = v >> 60;
	if (mode != 0 && mode != 8)
		return; /* unsupported mode: satp unchanged (Linux probes Sv57/Sv48) */
	c->satp = v & ((0xfull << 60) | (0xffffull << 44) | ((1ull << 44) - 1));
	tlb_flush_mmu(c, 0);
	tlb_flush_mmu(c, 1);
	cpu_update_mmu(c);
}

static void mip_write(struct cpu *c, uint64_t mask, uint64_t v)
{
	uint64_t old = mip_load(c), nv;
	do {
		nv = (old & ~mask) | (v & mask);
	} while (!__atomic_compare_exchange_n(&c->mip, &old, nv, true, __ATOMIC_ACQ_REL,
					      __ATOMIC_ACQUIRE));
}

static int csr_write(struct cpu *c, unsigned csr, uint64_t v)
{
	switch (csr) {
	case 0xb00: c->cycle_delta = (int64_t)(v - c->instret); return 0;
	case 0xb02: c->cycle_delta += (int64_t)(c->instret - v); c->instret = v; return 0;
	case 0x100: mstatus_write(c, v, SSTATUS_MASK & ~(3ull << 32)); return 0;
	case 0x104: set_mie_like(&c->mie, c->mideleg & S_INTS, v); return 0;
	case 0x105: c->stvec = (v & 3) >= 2 ? (v & ~3ull) : v; return 0;
	case 0x106: c->scounteren = v & 0xffffffffu; return 0;
	case 0x10a: c->senvcfg = 0; return 0;
	case 0x140: c->sscratch = v; return 0;
	case 0x141: c->sepc = v & ~1ull; return 0;
	case 0x142: c->scause = v; return 0;
	case 0x143: c->stval = v; return 0;
	case 0x144: mip_write(c, c->mideleg & MIP_SSIP, v); return 0;
	case 0x180: satp_write(c, v); return 0;
	case 0x300: mstatus_write(c, v, MSTATUS_WMASK); return 0;
	case 0x301: return 0; /* misa: writes ignored */
	case 0x302: c->medeleg = v & MEDELEG_MASK; return 0;
	case 0x303: c->mideleg = v & S_INTS; return 0;
	case 0x304: c->mie = v & ALL_INTS; return 0;
	case 0x305: c->mtvec = (v & 3) >= 2 ? (v & ~3ull) : v; return 0;
	case 0x306: c->mcounteren = v & 0xffffffffu; return 0;
	case 0x30a: c->menvcfg = 0; return 0;
	case 0x320: return 0;
	case 0x340: c->mscratch = v; return 0;
	case 0x341: c->mepc = v & ~1ull; return 0;
	case 0x342: c->mcause = v; return 0;
	case 0x343: c->mtval = v; return 0;
	case 0x344: mip_write(c, S_INTS, v); return 0;
	case 0x7a0: case 0x7a1: case 0x7a2: case 0x7a3: return 0;
	}
	if ((csr >= 0xb03 && csr <= 0xb1f) || (csr >= 0x323 && csr <= 0x33f))
		return 0;
	return -EINVAL;
}

/* Privilege and existence checks of a CSR instruction. */
static bool csr_allowed(struct cpu *c, unsigned csr, bool write)
{
	if ((unsigned)c->priv < ((csr >> 8) & 3))
		return false;
	if (write && (csr >> 10) == 3)
		return false;
	if (csr == 0x180 && c->priv == CPU_PRIV_S && (c->mstatus & MS_TVM))
		return false;
	if (csr >= 0xc00 && csr <= 0xc1f && !counter_ok(c, csr))
		return false;
	return true;
}

int cpu_csr_op(struct cpu *c, const struct tinsn *i)
{
	unsigned csr = (unsigned)i->imm & 0xfff;
	bool imm_form = i->op >= OP_CSRRWI;
	uint64_t src = imm_form ? i->rs1 : c->x[i->rs1];
	int kind = (i->op - (imm_form ? OP_CSRRWI : OP_CSRRW)); /* 0 rw, 1 rs, 2 rc */
	bool write = kind == 0 || i->rs1 != 0;
	bool read = kind != 0 || i->rd != 32;
	uint64_t old = 0, nv;

	if (!csr_allowed(c, csr, write) || csr_read(c, csr, &old) < 0)
		goto illegal;
	(void)read;
	if (write) {
		nv = kind == 0 ? src : kind == 1 ? (old | src) : (old & ~src);
		if (csr_write(c, csr, nv) < 0)
			goto illegal;
		/* minstret/mcycle written: the +1 for this instruction must
		 * not apply on top of the written value */
		if (csr == 0xb02)
			c->instret--;
		else if (csr == 0xb00)
			c->cycle_delta--;
	}
	c->x[i->rd] = old;
	return 0;
illegal:
	cpu_raise(c, EXC_ILLEGAL, (uint64_t)c->cur_raw);
	return -1;
}

int cpu_get_csr(struct cpu *c, unsigned csr, uint64_t *val)
{
	return csr_read(c, csr, val);
}

int cpu_set_csr(struct cpu *c, unsigned csr, uint64_t val)
{
	return csr_write(c, csr, val);
}

/* ------------------------------------------------ system instructions */

static int sys_sfence(struct cpu *c, const struct tinsn *i)
{
	if (c->priv == CPU_PRIV_U || (c->priv == CPU_PRIV_S && (c->mstatus & MS_TVM)))
		return -1;
	/* No ASID tags: an ASID-only fence flushes all, which is O(1). */
	if (i->rs1 == 0) {
		tlb_flush_mmu(c, 0);
		tlb_flush_mmu(c, 1);
	} else {
		tlb_flush_va(c, c->x[i->rs1]);
	}
	if (!c->cfg.retain_walks)
		walk_cache_flush(c, i->rs1 == 0, c->x[i->rs1]);
	return 0;
}

static int sys_wfi(struct cpu *c)
{
	if (c->priv == CPU_PRIV_U || (c->priv < CPU_PRIV_M && (c->mstatus & MS_TW)))
		return -1;
	if (mip_load(c) & c->mie)
		return 0; /* wakes at once */
	if (c->instret_limit != UINT64_MAX)
		return 0; /* bounded run (tests, fuzzing): wfi as a nop, as allowed */
	c->wfi = true;
	return 2;
}

/* Returns 0 (retired, next PC), 1 (retired, PC set), 2 (wfi: retired, go
 * to sleep) or -1 (trap raised).  c->pc is the instruction's PC. */
int cpu_sys_op(struct cpu *c, const struct tinsn *i)
{
	int r;
	c->cur_raw = (uint32_t)(i->imm >> 32);
	switch (i->op) {
	case OP_ECALL:
		if (c->priv == CPU_PRIV_S && c->cfg.sbi_call) {
			c->cfg.sbi_call(c->cfg.sbi_arg, c);
			return 0;
		}
		cpu_raise(c, (uint64_t)(EXC_ECALL_U + c->priv), 0);
		return -1;
	case OP_EBREAK:
		cpu_raise(c, EXC_BREAKPOINT, c->pc);
		return -1;
	case OP_MRET:
		if (c->priv != CPU_PRIV_M)
			goto illegal;
		return cpu_do_mret(c);
	case OP_SRET:
		if (c->priv == CPU_PRIV_U || (c->priv == CPU_PRIV_S && (c->mstatus & MS_TSR)))
			goto illegal;
		return cpu_do_sret(c);
	case OP_WFI:
		r = sys_wfi(c);
		if (r < 0)
			goto illegal;
		return r;
	case OP_SFENCE_VMA:
		if (sys_sfence(c, i) < 0)
			goto illegal;
		return 0;
	case OP_FENCE_I:
		tb_flush_all(c);
		return 0;
	default:
		return cpu_csr_op(c, i) < 0 ? -1 : 0;
	}
illegal:
	cpu_raise(c, EXC_ILLEGAL, c->cur_raw);
	return -1;
}
