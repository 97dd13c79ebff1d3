/*
 * cpu internals, shared by the engine's files (and the unit tests).
 * Everything here is owned by the vCPU thread unless a field says otherwise.
 */
#ifndef SPANVM_CPU_INT_H
#define SPANVM_CPU_INT_H

#include <pthread.h>
#include <stddef.h>

#include "cpu/cpu.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define PG_SHIFT 12
#define PG_SIZE 4096ull
#define PG_MASK (~(PG_SIZE - 1))

/* ---- decoded operations (X-macro: name list drives enum, names, labels) */
#define CPU_OPS(X)                                                                                 \
	X(ILLEGAL) X(LUI) X(AUIPC) X(JAL) X(JALR) X(BEQ) X(BNE) X(BLT) X(BGE) X(BLTU) X(BGEU)     \
	X(LB) X(LH) X(LW) X(LD) X(LBU) X(LHU) X(LWU) X(SB) X(SH) X(SW) X(SD)                      \
	X(ADDI) X(SLTI) X(SLTIU) X(XORI) X(ORI) X(ANDI) X(SLLI) X(SRLI) X(SRAI)                   \
	X(ADD) X(SUB) X(SLL) X(SLT) X(SLTU) X(XOR) X(SRL) X(SRA) X(OR) X(AND)                     \
	X(ADDIW) X(SLLIW) X(SRLIW) X(SRAIW) X(ADDW) X(SUBW) X(SLLW) X(SRLW) X(SRAW)               \
	X(MUL) X(MULH) X(MULHSU) X(MULHU) X(DIV) X(DIVU) X(REM) X(REMU)                           \
	X(MULW) X(DIVW) X(DIVUW) X(REMW) X(REMUW)                                                  \
	X(FENCE) X(FENCE_I) X(ECALL) X(EBREAK) X(MRET) X(SRET) X(WFI) X(SFENCE_VMA)               \
	X(CSRRW) X(CSRRS) X(CSRRC) X(CSRRWI) X(CSRRSI) X(CSRRCI)                                   \
	X(LR_W) X(SC_W) X(AMOSWAP_W) X(AMOADD_W) X(AMOXOR_W) X(AMOAND_W) X(AMOOR_W)               \
	X(AMOMIN_W) X(AMOMAX_W) X(AMOMINU_W) X(AMOMAXU_W)                                          \
	X(LR_D) X(SC_D) X(AMOSWAP_D) X(AMOADD_D) X(AMOXOR_D) X(AMOAND_D) X(AMOOR_D)               \
	X(AMOMIN_D) X(AMOMAX_D) X(AMOMINU_D) X(AMOMAXU_D)                                          \
	X(LI) X(MV) X(FALLTHRU)

enum cpu_op {
#define X(n) OP_##n,
	CPU_OPS(X)
#undef X
	OP_COUNT
};

/* One decoded instruction. rd == 0 is redirected to the sink register 32
 * so handlers write unconditionally and x0 stays zero. */
struct dinsn {
	uint16_t op;
	uint8_t rd, rs1, rs2;
	uint8_t len;     /* 2 or 4 */
	int64_t imm;     /* immediate; CSR number for CSR ops; aq/rl bits for AMOs */
	uint32_t raw;    /* the (expanded) 32-bit encoding, for tval */
};

int cpu_decode(uint32_t raw, struct dinsn *d); /* returns length, 0 = illegal */
uint32_t cpu_rvc_expand(uint16_t c);           /* 0 = illegal */

/* Threaded-code instruction. */
struct tinsn {
	const void *label; /* handler (computed goto target) */
	uint16_t op;
	uint8_t rd, rs1, rs2;
	uint8_t len;
	uint16_t off;      /* byte offset from the block's start PC */
	int64_t imm;
};

struct cpu;
typedef uint32_t (*native_fn)(struct cpu *c, uint64_t base);

struct tb {
	native_fn native;      /* host code for a prefix, or NULL (cpu_native.c) */
	uint64_t gpa;          /* guest-physical PC of the first instruction */
	struct tb *hnext;      /* hash chain */
	struct tb *pnext;      /* blocks of the same page */
	struct tb *chain[2];   /* [0] taken/jump target, [1] fall-through; same page only */
	uint32_t n;            /* instructions, the terminator included */
	uint16_t bytes;
	uint8_t once;          /* straddles two pages: kept in the straddle cache, never chained */
	uint64_t gpa2;         /* straddling: gpa of the second page */
	uint8_t dead;          /* invalidated, waiting to be freed at a block boundary */
	struct tb *gnext;      /* graveyard list */
	struct tinsn insns[];
};

#define TB_HASH_SIZE 8192
#define TB_MAX_INSNS 64
#define TB_MAX_BLOCKS 65536
#define JC_SIZE 1024
#define STRADDLE_SIZE 64

/* Soft TLB: mmu index 0 = U translated, 1 = S translated, 2 = bare.
 *
 * Each index is a window of TLB_SIZE direct-mapped entries that slides over
 * an array of TLB_SIZE + TLB_SLIDE: the fast paths index c->dtlb (the
 * window's start) with (va >> 12) & (TLB_SIZE-1) and compare the plain
 * virtual page with the tag, exactly as before.  A full flush (sfence.vma,
 * satp/SUM/MXR writes, PT invalidations) moves the window one entry on:
 * O(1), and no entry filled in an earlier window can match, because the
 * slot it now occupies is looked up only for virtual pages with other
 * index bits than its tag has.  After TLB_SLIDE moves the array is scanned
 * once and the window starts over.  Retired entries still count as derived
 * for the observer until their slot is refilled, their page is invalidated
 * or that scan: TLB trace subscriptions over-approximate by at most the
 * array, which costs spare notifications, never a stale use. */
#define TLB_SIZE 512
#define TLB_SLIDE 512
#define TLB_ALLOC (TLB_SIZE + TLB_SLIDE)
#define TLB_MMU_COUNT 3
#define TLB_INVALID (~0ull)
struct tlb_entry {
	uint64_t tag_r, tag_w, tag_x; /* virtual page or TLB_INVALID */
	uintptr_t addend;             /* host = va + addend */
};

#define WC_SIZE 1024
struct walk_entry {
	uint64_t root;     /* root PT page gpa | 1 when valid */
	uint64_t vpn;
	uint64_t pte;      /* leaf PTE as read (A set) */
	uint64_t pt[3];    /* PT pages read by the walk (gpa) */
	uint8_t level;     /* 0 = 4 KiB, 1 = 2 MiB, 2 = 1 GiB */
	uint8_t npt;
};

/* Set of guest-physical pages (open addressing, tombstones). */
struct pageset {
	uint64_t *slots; /* page | 1 when used; 2 = tombstone; 0 = empty */
	uint32_t cap, used, live;
};
int pageset_add(struct pageset *s, uint64_t page);
bool pageset_has(const struct pageset *s, uint64_t page);
void pageset_del(struct pageset *s, uint64_t page);
void pageset_free(struct pageset *s);

struct work {
	void (*fn)(struct cpu *, void *);
	void *arg;
	bool wait, done;
	struct work *next;
};

struct cpu {
	/* hot state first */
	uint64_t x[33];         /* x[32] is the sink for rd == x0 */
	uint64_t pc;
	uint64_t instret;
	uint64_t instret_limit;
	uint32_t exit_req;      /* any thread (atomic): EXIT_REQ_* bits */
	int priv;
	int xmmu, dmmu;         /* TLB index for fetches and data accesses */
	struct tlb_entry *dtlb; /* the window of c->tlb[dmmu] (read by the fast paths) */
	struct tb *cur_tb;      /* block native code is in (it chains natively) */
	uint64_t cur_base;      /* and its start PC */
	struct tlb_entry tlb[TLB_MMU_COUNT][TLB_ALLOC];
	uint64_t tlb_gpa[TLB_MMU_COUNT][TLB_ALLOC]; /* guest-physical page of each entry
						      * (kept apart: the fast path never reads it) */
	unsigned tlb_win[TLB_MMU_COUNT];  /* start of each index's window (0..TLB_SLIDE) */
	bool tlb_super[TLB_MMU_COUNT];    /* live entries may come from superpages */

	/* CSRs */
	uint64_t mstatus, medeleg, mideleg, mie, mtvec, mscratch, mepc, mcause, mtval;
	uint64_t stvec, sscratch, sepc, scause, stval, satp;
	uint64_t mcounteren, scounteren, menvcfg, senvcfg;
	uint64_t mip;           /* any thread (atomic ops) */
	int64_t cycle_delta;    /* mcycle = instret + cycle_delta */
	int64_t time_offset;

	/* LR/SC reservation */
	uint64_t resv_addr, resv_val;
	bool resv_valid;

	bool wfi;
	uint32_t cur_raw;       /* encoding of the system instruction being run (tval) */
	uint32_t jc_gen;        /* bumping it empties the jump cache */
	unsigned stop_req;      /* any thread (atomic) */

	/* translation cache */
	struct tb *tb_hash[TB_HASH_SIZE];      /* by gpa of the first instruction */
	struct tb *tb_page_hash[TB_HASH_SIZE]; /* by gpa page (pnext chains) */
	struct {
		uint64_t vpc;
		uint32_t gen; /* jc_gen << 2 | mmu */
		struct tb *tb;
	} jc[JC_SIZE];
	struct tb *straddle[STRADDLE_SIZE]; /* blocks of an instruction across two pages */
	struct pageset code_pages;  /* pages with translated code */
	struct pageset trap_pages;  /* write-trapped pages (cpu_set_write_trap) */
	struct tb *graveyard;
	uint32_t tb_count;
	bool in_exec;               /* inside exec_blocks (a tb may be running) */
	bool smc_exit;              /* the running block was invalidated: end it */

	struct walk_entry wc[WC_SIZE];
	uint8_t *code_buf;          /* native code (cpu_native.c) */
	size_t code_used;

	struct cpu_cfg cfg;
	struct cpu_stats st;

	/* cross-thread */
	pthread_mutex_t lock;
	pthread_cond_t cond;        /* wfi sleep and work completion */
	struct work *work_head, **work_tail;
	pthread_t owner;
	bool running;               /* under lock */
	/* under lock: a thread other than a running owner is doing cpu_run_on
	 * work on this (stopped) hart; cpu_run and other such threads wait */
	bool inline_busy;
	pthread_t inline_owner;
};

/* The entry of va in the current window of mmu index m. */
static inline struct tlb_entry *tlb_slot(struct cpu *c, int m, uint64_t va)
{
	return &c->tlb[m][c->tlb_win[m] + ((va >> PG_SHIFT) & (TLB_SIZE - 1))];
}

static inline uint64_t *tlb_gpa(struct cpu *c, const struct tlb_entry *e)
{
	return &c->tlb_gpa[0][0] + (e - &c->tlb[0][0]);
}

/* exit_req bits: chained blocks run on while exit_req == 0 */
#define EXIT_REQ_EXT 1u    /* another thread: look at irqs, work, stop */
#define EXIT_REQ_BUDGET 2u /* cpu_run has an instruction budget: check it */
#define EXIT_REQ_SMC 4u    /* the running block may have been invalidated */

/* mstatus bits */
#define MS_SIE (1ull << 1)
#define MS_MIE (1ull << 3)
#define MS_SPIE (1ull << 5)
#define MS_MPIE (1ull << 7)
#define MS_SPP (1ull << 8)
#define MS_MPP_SHIFT 11
#define MS_MPP (3ull << 11)
#define MS_MPRV (1ull << 17)
#define MS_SUM (1ull << 18)
#define MS_MXR (1ull << 19)
#define MS_TVM (1ull << 20)
#define MS_TW (1ull << 21)
#define MS_TSR (1ull << 22)

/* exception causes */
enum {
	EXC_INSN_MISALIGNED = 0, EXC_INSN_ACCESS = 1, EXC_ILLEGAL = 2, EXC_BREAKPOINT = 3,
	EXC_LOAD_MISALIGNED = 4, EXC_LOAD_ACCESS = 5, EXC_STORE_MISALIGNED = 6,
	EXC_STORE_ACCESS = 7, EXC_ECALL_U = 8, EXC_ECALL_S = 9, EXC_ECALL_M = 11,
	EXC_INSN_PAGE = 12, EXC_LOAD_PAGE = 13, EXC_STORE_PAGE = 15,
};

/* access kinds for the MMU */
enum { ACC_R = CPU_PERM_R, ACC_W = CPU_PERM_W, ACC_X = CPU_PERM_X };

static inline void cpu_obs(struct cpu *c, bool derived, int kind, uint64_t page)
{
	if (unlikely(c->cfg.obs.derived != NULL)) {
		if (derived)
			c->cfg.obs.derived(c->cfg.obs.arg, kind, page);
		else
			c->cfg.obs.dropped(c->cfg.obs.arg, kind, page);
	}
}

/* cpu_csr.c */
void cpu_raise(struct cpu *c, uint64_t cause, uint64_t tval); /* c->pc = faulting pc */
bool cpu_check_irq(struct cpu *c);                             /* takes one if deliverable */
void cpu_update_mmu(struct cpu *c);
int cpu_csr_op(struct cpu *c, const struct tinsn *i);          /* 0 ok, <0 trapped */
int cpu_do_mret(struct cpu *c);
int cpu_do_sret(struct cpu *c);
uint64_t cpu_time(const struct cpu *c);

/* cpu_mmu.c */
struct access {
	uint8_t *host; /* host address of va (NULL: MMIO) */
	uint64_t gpa;  /* guest-physical address of va */
};
/* Translates a data access through the TLB (filling it); 0, or 1 when the
 * trap was raised. */
int data_access(struct cpu *c, uint64_t va, unsigned acc, struct access *out);
/* Performs a translated RAM store (or accounts an atomic one already done):
 * write-trap hooks and self-modifying-code invalidation. */
void store_commit(struct cpu *c, const struct access *a, unsigned size, uint64_t val,
		  bool atomic_done);
uint64_t host_read(const uint8_t *p, unsigned size);
void host_write(uint8_t *p, unsigned size, uint64_t v);
void tlb_flush_all(struct cpu *c);
void tlb_flush_mmu(struct cpu *c, int mmu);
void tlb_flush_gpa(struct cpu *c, uint64_t gpa_page);
/* sfence.vma with rs1: the entries of mmu indexes 0 and 1 for va. */
void tlb_flush_va(struct cpu *c, uint64_t va);
void tlb_drop_write(struct cpu *c, uint64_t gpa_page);
void walk_cache_flush(struct cpu *c, bool all, uint64_t va);
void walk_cache_drop_pt(struct cpu *c, uint64_t gpa_page);
/* Slow-path memory access; returns 0, or 1 when the trap was raised
 * (c->pc must hold the instruction's PC).  store/amo may set c->smc_exit. */
int mem_load_slow(struct cpu *c, uint64_t va, unsigned size, uint64_t *val);
int mem_store_slow(struct cpu *c, uint64_t va, unsigned size, uint64_t val);
int mem_amo(struct cpu *c, const struct tinsn *i, uint64_t *result);
/* Instruction fetch translation: host pointer and gpa of va's page. */
int mem_fetch_page(struct cpu *c, uint64_t va, uint8_t **host, uint64_t *gpa);

/* cpu_tb.c */
struct tb *tb_find(struct cpu *c, uint64_t vpc); /* NULL = trap raised */
void tb_invalidate_page(struct cpu *c, uint64_t gpa_page);
void tb_flush_all(struct cpu *c);
void tb_reap(struct cpu *c);
void tb_jc_flush(struct cpu *c);

/* cpu_native.c */
int native_init(struct cpu *c);
void native_fini(struct cpu *c);
bool native_full(const struct cpu *c);
void native_reset(struct cpu *c);
void native_translate(struct cpu *c, struct tb *tb, unsigned total);
_Static_assert(sizeof(struct tlb_entry) == 32, "native code indexes the TLB by << 5");

/* cpu_exec.c */
void cpu_exec_blocks(struct cpu *c);
const void *const *cpu_exec_labels(void);

#endif
