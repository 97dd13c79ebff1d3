/*
 * The threaded-code executor: one function whose handlers are labels,
 * dispatched with GCC's computed goto (direct threading).  Each translated
 * instruction carries the address of its handler, so dispatch is one
 * indirect jump with no switch and no bounds check.
 *
 * Invariants the handlers rely on:
 * - x[0] is never written: the translator redirects rd == 0 to x[32].
 * - A block starts at virtual PC `base`; an instruction's PC is base + off.
 * - c->instret is advanced by tb->n on block entry; an instruction that traps
 *   or ends the block early gives back what did not retire.
 * - The data TLB window (c->dtlb) moves on every TLB flush, which a slow
 *   path may do (a trace notification served inside page_get), so loads and
 *   stores read c->dtlb each time, as the native code does.
 * - Chained successors are in the same virtual (hence physical) page as the
 *   block, so following a chain needs no TLB or permission check.
 * Runs on the vCPU thread only.
 */
#include "cpu/cpu_int.h"

static const void *const *exported_labels;

#define LD_RELAXED(type, p) __atomic_load_n((const type *)(p), __ATOMIC_RELAXED)
#define ST_RELAXED(type, p, v) __atomic_store_n((type *)(p), (type)(v), __ATOMIC_RELAXED)

static inline uint64_t mulh(int64_t a, int64_t b)
{
	return (uint64_t)(((__int128)a * b) >> 64);
}

static inline uint64_t mulhsu(int64_t a, uint64_t b)
{
	return (uint64_t)(((__int128)a * (__int128)b) >> 64);
}

static inline uint64_t mulhu(uint64_t a, uint64_t b)
{
	return (uint64_t)(((unsigned __int128)a * b) >> 64);
}

static inline uint64_t do_div(int64_t a, int64_t b)
{
	if (b == 0)
		return ~0ull;
	if (a == INT64_MIN && b == -1)
		return (uint64_t)a;
	return (uint64_t)(a / b);
}

static inline uint64_t do_rem(int64_t a, int64_t b)
{
	if (b == 0)
		return (uint64_t)a;
	if (a == INT64_MIN && b == -1)
		return 0;
	return (uint64_t)(a % b);
}

static inline uint64_t do_divw(int32_t a, int32_t b)
{
	if (b == 0)
		return ~0ull;
	if (a == INT32_MIN && b == -1)
		return (uint64_t)(int64_t)a;
	return (uint64_t)(int64_t)(a / b);
}

static inline uint64_t do_remw(int32_t a, int32_t b)
{
	if (b == 0)
		return (uint64_t)(int64_t)a;
	if (a == INT32_MIN && b == -1)
		return 0;
	return (uint64_t)(int64_t)(a % b);
}

int cpu_sys_op(struct cpu *c, const struct tinsn *i); /* cpu_csr.c */

#define SX32(v) ((uint64_t)(int64_t)(int32_t)(v))

void cpu_exec_blocks(struct cpu *c)
{
	static const void *const labels[OP_COUNT] = {
#define X(n) [OP_##n] = &&L_##n,
		CPU_OPS(X)
#undef X
	};
	if (c == NULL) {
		exported_labels = labels;
		return;
	}

	uint64_t *const x = c->x;
	struct tb *tb, *prev = NULL;
	int prev_slot = 0;
	const struct tinsn *i;
	uint64_t base = 0;

#define DISPATCH goto *i->label
#define NEXT                                                                                       \
	do {                                                                                       \
		i++;                                                                               \
		DISPATCH;                                                                          \
	} while (0)
#define RD x[i->rd]
#define R1 x[i->rs1]
#define R2 x[i->rs2]
#define IPC (base + i->off)
#define CHAIN_OK() likely(__atomic_load_n(&c->exit_req, __ATOMIC_RELAXED) == 0)
	/* Ends the block towards base-relative target; follows the chain. */
#define END_BLOCK(slot, target)                                                                    \
	do {                                                                                       \
		c->pc = (target);                                                                  \
		struct tb *nt_ = tb->chain[slot];                                                  \
		if (likely(nt_ != NULL) && CHAIN_OK()) {                                       \
			tb = nt_;                                                                  \
			goto enter;                                                                \
		}                                                                                  \
		prev = tb;                                                                         \
		prev_slot = (slot);                                                                \
		goto lookup;                                                                       \
	} while (0)
	/* The current instruction retired; leave the block at the next PC. */
#define EXIT_AFTER()                                                                               \
	do {                                                                                       \
		c->instret -= tb->n - (uint32_t)(i - tb->insns) - 1;                               \
		c->pc = IPC + i->len;                                                              \
		prev = NULL;                                                                       \
		goto lookup;                                                                       \
	} while (0)
#define LOAD(type, ext, sz)                                                                        \
	do {                                                                                       \
		uint64_t va = R1 + (uint64_t)i->imm;                                               \
		struct tlb_entry *e = &c->dtlb[(va >> PG_SHIFT) & (TLB_SIZE - 1)];                 \
		if (likely((va & (PG_MASK | ((sz)-1))) == e->tag_r)) {                             \
			RD = (ext)LD_RELAXED(type, va + e->addend);                                \
		} else {                                                                           \
			uint64_t v_;                                                               \
			c->pc = IPC;                                                               \
			if (mem_load_slow(c, va, (sz), &v_))                                       \
				goto trap;                                                         \
			RD = (ext)(type)v_;                                                        \
		}                                                                                  \
		NEXT;                                                                              \
	} while (0)
#define STORE(type, sz)                                                                            \
	do {                                                                                       \
		uint64_t va = R1 + (uint64_t)i->imm;                                               \
		struct tlb_entry *e = &c->dtlb[(va >> PG_SHIFT) & (TLB_SIZE - 1)];                 \
		if (likely((va & (PG_MASK | ((sz)-1))) == e->tag_w)) {                             \
			ST_RELAXED(type, va + e->addend, R2);                                      \
		} else {                                                                           \
			c->pc = IPC;                                                               \
			if (mem_store_slow(c, va, (sz), R2))                                       \
				goto trap;                                                         \
			if (c->smc_exit)                                                           \
				EXIT_AFTER();                                                      \
		}                                                                                  \
		NEXT;                                                                              \
	} while (0)

lookup:
	if (!CHAIN_OK()) {
		uint32_t er = __atomic_load_n(&c->exit_req, __ATOMIC_RELAXED);
		if ((er & ~EXIT_REQ_BUDGET) || c->instret >= c->instret_limit)
			return;
	}
	tb = tb_find(c, c->pc);
	if (unlikely(tb == NULL)) { /* fetch fault: the trap is set up */
		prev = NULL;
		goto lookup;
	}
	if (prev != NULL && !tb->once && !prev->once &&
	    ((base ^ c->pc) & PG_MASK) == 0)
		prev->chain[prev_slot] = tb;
	prev = NULL;
enter:
	base = c->pc;
	c->instret += tb->n;
	i = tb->insns;
	if (tb->native) {
		c->cur_tb = tb;
		c->cur_base = base;
		uint32_t r = tb->native(c, base);
		tb = c->cur_tb; /* native code may have chained on */
		base = c->cur_base;
		i = tb->insns;
		if (likely(r & 3)) { /* the block ended: c->pc is set */
			int slot = (int)(r & 3) - 1;
			if (slot == 2) /* indirect jump */
				goto lookup;
			struct tb *nt = tb->chain[slot];
			if (likely(nt != NULL) && CHAIN_OK()) {
				tb = nt;
				goto enter;
			}
			prev = tb;
			prev_slot = slot;
			goto lookup;
		}
		i += r >> 2; /* go on with the threaded code */
	}
	DISPATCH;

trap:
	c->instret -= tb->n - (uint32_t)(i - tb->insns);
	prev = NULL;
	goto lookup;

L_ILLEGAL:
	c->pc = IPC;
	c->instret -= tb->n - (uint32_t)(i - tb->insns);
	cpu_raise(c, EXC_ILLEGAL, (uint64_t)i->imm);
	prev = NULL;
	goto lookup;
L_LUI: RD = (uint64_t)i->imm; NEXT;
L_AUIPC: RD = IPC + (uint64_t)i->imm; NEXT;
L_LI: RD = (uint64_t)i->imm; NEXT;
L_MV: RD = R1; NEXT;
L_JAL:
	RD = IPC + i->len;
	END_BLOCK(0, IPC + (uint64_t)i->imm);
L_JALR: {
	uint64_t t = (R1 + (uint64_t)i->imm) & ~1ull;
	RD = IPC + i->len;
	c->pc = t;
	goto lookup;
}
L_BEQ: if (R1 == R2) END_BLOCK(0, IPC + (uint64_t)i->imm); else END_BLOCK(1, IPC + i->len);
L_BNE: if (R1 != R2) END_BLOCK(0, IPC + (uint64_t)i->imm); else END_BLOCK(1, IPC + i->len);
L_BLT: if ((int64_t)R1 < (int64_t)R2) END_BLOCK(0, IPC + (uint64_t)i->imm); else END_BLOCK(1, IPC + i->len);
L_BGE: if ((int64_t)R1 >= (int64_t)R2) END_BLOCK(0, IPC + (uint64_t)i->imm); else END_BLOCK(1, IPC + i->len);
L_BLTU: if (R1 < R2) END_BLOCK(0, IPC + (uint64_t)i->imm); else END_BLOCK(1, IPC + i->len);
L_BGEU: if (R1 >= R2) END_BLOCK(0, IPC + (uint64_t)i->imm); else END_BLOCK(1, IPC + i->len);
L_FALLTHRU: END_BLOCK(1, IPC);

L_LB: LOAD(int8_t, int64_t, 1);
L_LH: LOAD(int16_t, int64_t, 2);
L_LW: LOAD(int32_t, int64_t, 4);
L_LD: LOAD(uint64_t, uint64_t, 8);
L_LBU: LOAD(uint8_t, uint64_t, 1);
L_LHU: LOAD(uint16_t, uint64_t, 2);
L_LWU: LOAD(uint32_t, uint64_t, 4);
L_SB: STORE(uint8_t, 1);
L_SH: STORE(uint16_t, 2);
L_SW: STORE(uint32_t, 4);
L_SD: STORE(uint64_t, 8);

L_ADDI: RD = R1 + (uint64_t)i->imm; NEXT;
L_SLTI: RD = (int64_t)R1 < i->imm; NEXT;
L_SLTIU: RD = R1 < (uint64_t)i->imm; NEXT;
L_XORI: RD = R1 ^ (uint64_t)i->imm; NEXT;
L_ORI: RD = R1 | (uint64_t)i->imm; NEXT;
L_ANDI: RD = R1 & (uint64_t)i->imm; NEXT;
L_SLLI: RD = R1 << i->imm; NEXT;
L_SRLI: RD = R1 >> i->imm; NEXT;
L_SRAI: RD = (uint64_t)((int64_t)R1 >> i->imm); NEXT;
L_ADD: RD = R1 + R2; NEXT;
L_SUB: RD = R1 - R2; NEXT;
L_SLL: RD = R1 << (R2 & 63); NEXT;
L_SLT: RD = (int64_t)R1 < (int64_t)R2; NEXT;
L_SLTU: RD = R1 < R2; NEXT;
L_XOR: RD = R1 ^ R2; NEXT;
L_SRL: RD = R1 >> (R2 & 63); NEXT;
L_SRA: RD = (uint64_t)((int64_t)R1 >> (R2 & 63)); NEXT;
L_OR: RD = R1 | R2; NEXT;
L_AND: RD = R1 & R2; NEXT;
L_ADDIW: RD = SX32(R1 + (uint64_t)i->imm); NEXT;
L_SLLIW: RD = SX32((uint32_t)R1 << i->imm); NEXT;
L_SRLIW: RD = SX32((uint32_t)R1 >> i->imm); NEXT;
L_SRAIW: RD = SX32((int32_t)R1 >> i->imm); NEXT;
L_ADDW: RD = SX32(R1 + R2); NEXT;
L_SUBW: RD = SX32(R1 - R2); NEXT;
L_SLLW: RD = SX32((uint32_t)R1 << (R2 & 31)); NEXT;
L_SRLW: RD = SX32((uint32_t)R1 >> (R2 & 31)); NEXT;
L_SRAW: RD = SX32((int32_t)R1 >> (R2 & 31)); NEXT;
L_MUL: RD = R1 * R2; NEXT;
L_MULH: RD = mulh((int64_t)R1, (int64_t)R2); NEXT;
L_MULHSU: RD = mulhsu((int64_t)R1, R2); NEXT;
L_MULHU: RD = mulhu(R1, R2); NEXT;
L_DIV: RD = do_div((int64_t)R1, (int64_t)R2); NEXT;
L_DIVU: RD = R2 ? R1 / R2 : ~0ull; NEXT;
L_REM: RD = do_rem((int64_t)R1, (int64_t)R2); NEXT;
L_REMU: RD = R2 ? R1 % R2 : R1; NEXT;
L_MULW: RD = SX32((uint32_t)R1 * (uint32_t)R2); NEXT;
L_DIVW: RD = do_divw((int32_t)R1, (int32_t)R2); NEXT;
L_DIVUW: RD = (uint32_t)R2 ? SX32((uint32_t)R1 / (uint32_t)R2) : ~0ull; NEXT;
L_REMW: RD = do_remw((int32_t)R1, (int32_t)R2); NEXT;
L_REMUW: RD = (uint32_t)R2 ? SX32((uint32_t)R1 % (uint32_t)R2) : SX32(R1); NEXT;

L_FENCE:
	/* x86 is TSO: only store->load ordering needs a real fence. */
	if ((i->imm & 0x10) && (i->imm & 0x02))
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	else
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
	NEXT;

L_LR_W: L_SC_W: L_AMOSWAP_W: L_AMOADD_W: L_AMOXOR_W: L_AMOAND_W: L_AMOOR_W:
L_AMOMIN_W: L_AMOMAX_W: L_AMOMINU_W: L_AMOMAXU_W:
L_LR_D: L_SC_D: L_AMOSWAP_D: L_AMOADD_D: L_AMOXOR_D: L_AMOAND_D: L_AMOOR_D:
L_AMOMIN_D: L_AMOMAX_D: L_AMOMINU_D: L_AMOMAXU_D: {
	uint64_t v;
	c->pc = IPC;
	if (mem_amo(c, i, &v))
		goto trap;
	RD = v;
	if (c->smc_exit)
		EXIT_AFTER();
	NEXT;
}

	/* Instructions with side effects on privilege, CSRs or the
	 * translation state: done out of line, and they end the block. */
L_FENCE_I: L_ECALL: L_EBREAK: L_MRET: L_SRET: L_WFI: L_SFENCE_VMA:
L_CSRRW: L_CSRRS: L_CSRRC: L_CSRRWI: L_CSRRSI: L_CSRRCI: {
	c->instret -= tb->n - (uint32_t)(i - tb->insns);
	c->pc = IPC;
	int r = cpu_sys_op(c, i);
	if (r >= 0) {
		c->instret++;
		if (r == 0 || r == 2)
			c->pc = IPC + i->len;
	}
	/* Back to the outer loop: what ran may have enabled an interrupt
	 * (mstatus, mie, mip, mret/sret), asked for sleep (wfi) or changed the
	 * translation regime; the outer loop looks at all of that. */
	return;
}
#undef DISPATCH
#undef NEXT
}

const void *const *cpu_exec_labels(void)
{
	if (exported_labels == NULL)
		cpu_exec_blocks(NULL);
	return exported_labels;
}
