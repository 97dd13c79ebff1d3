/*
 * cpu: the RISC-V RV64IMAC engine (Zicsr, Zifencei, M/S/U privilege, Sv39).
 *
 * One `struct cpu` is one hart.  Guest basic blocks are translated into
 * pre-decoded threaded code (an array of {handler, rd, rs1, rs2, imm} run by
 * direct dispatch), cached per hart by guest *physical* PC and chained block
 * to block.  A soft TLB per hart (QEMU style: separate read/write/exec tags
 * and a host addend) maps guest virtual pages to host pointers; a shadow walk
 * cache keeps Sv39 leaf translations keyed by (root page table, VPN) across
 * satp switches.
 *
 * The engine knows nothing of nodes or networks: it reaches guest memory only
 * through `struct cpu_mem_ops` (page_get for RAM, mmio_read/mmio_write for
 * devices).  Translation and the page-table walker never read guest memory
 * behind page_get's back.
 *
 * Threads and ownership:
 * - cpu_run() is called by exactly one thread, the hart's vCPU thread; that
 *   thread owns the registers, CSRs, TLB, translation cache and walk cache.
 * - From any thread: cpu_set_irq(), cpu_kick(), cpu_request_stop(),
 *   cpu_run_on(), cpu_get_stats() (counters are approximate while running).
 * - cpu_invalidate_gpa(), cpu_flush_all(), cpu_set_write_trap(): from the
 *   vCPU thread itself (hooks, cpu_run_on callbacks) they act at once; from
 *   another thread while the hart runs they are posted with cpu_run_on() and
 *   waited for, so they act at the hart's next block boundary.
 * - Register/CSR accessors (cpu_get_reg ...) only from the vCPU thread or
 *   while cpu_run() is not running.
 * Locking: one mutex per cpu guards the posted-work queue and the wfi sleep;
 * it is never held while guest code runs or while a mem_ops hook is called.
 */
#ifndef SPANVM_CPU_H
#define SPANVM_CPU_H

#include <stdbool.h>
#include <stdint.h>

struct cpu;

enum { CPU_PERM_R = 1, CPU_PERM_W = 2, CPU_PERM_X = 4 };

/* Kinds of secondary structures derived from a guest-physical page. */
enum cpu_deriv_kind { CPU_DERIV_CODE = 0, CPU_DERIV_PT = 1, CPU_DERIV_TLB = 2 };
#define CPU_KIND_BIT(k) (1u << (k))
#define CPU_KINDS_ALL 7u

/* Privilege levels. */
enum { CPU_PRIV_U = 0, CPU_PRIV_S = 1, CPU_PRIV_M = 3 };

/* Interrupt bits in mip (cpu_set_irq). */
enum {
	CPU_IRQ_SSI = 1, CPU_IRQ_MSI = 3, CPU_IRQ_STI = 5,
	CPU_IRQ_MTI = 7, CPU_IRQ_SEI = 9, CPU_IRQ_MEI = 11,
};

struct cpu_page {
	void *host;     /* start of the 4 KiB page in host memory (RAM only) */
	unsigned perms; /* CPU_PERM_* granted; may be fewer than asked */
	bool mmio;      /* accesses go through mmio_read / mmio_write */
};

struct cpu_mem_ops {
	/* Host access to the 4 KiB guest-physical page containing gpa for
	 * `access` (CPU_PERM_*).  May block.  -EFAULT: nothing there (the
	 * guest gets an access fault). */
	int (*page_get)(void *opaque, int hart, uint64_t gpa, unsigned access,
			struct cpu_page *out);
	/* Device accesses; nonzero return = access fault for the guest. */
	int (*mmio_read)(void *opaque, int hart, uint64_t gpa, unsigned size, uint64_t *val);
	int (*mmio_write)(void *opaque, int hart, uint64_t gpa, unsigned size, uint64_t val);
	/* Optional: a store (or AMO/SC) to a write-trapped page.  pre runs
	 * before the store is performed, post after it; either may block. */
	void (*write_pre)(void *opaque, int hart, uint64_t gpa, unsigned size, uint64_t val);
	void (*write_post)(void *opaque, int hart, uint64_t gpa, unsigned size, uint64_t val);
};

/* Told whenever the hart derives a secondary structure from guest-physical
 * page `gpa_page` and when it drops it (one call per structure, so a page
 * can be derived several times; the observer counts).  Runs on the vCPU
 * thread; must not call back into the engine except the gpa functions. */
struct cpu_observer {
	void (*derived)(void *arg, int kind, uint64_t gpa_page);
	void (*dropped)(void *arg, int kind, uint64_t gpa_page);
	void *arg;
};

struct cpu_cfg {
	int hart_id;
	const struct cpu_mem_ops *mem;
	void *mem_opaque;
	struct cpu_observer obs;   /* all NULL = unset (costs one branch) */
	bool retain_walks;         /* sfence.vma keeps the walk cache (traces keep it coherent) */
	bool single_step;          /* one instruction per block (tests, differential runs) */
	bool no_native;            /* threaded code only, no x86-64 prefixes (also env
				    * SPANVM_NO_NATIVE=1) */
	uint64_t reset_pc;         /* PC at creation; the hart starts in M-mode */
	int64_t time_offset;       /* added to the 10 MHz host-monotonic time */
	/* Optional: the monitor plays the SBI (no M-mode firmware).  An ecall
	 * from S-mode calls sbi_call(sbi_arg, cpu) on the vCPU thread, which
	 * reads and writes a0-a7 with cpu_get_reg/cpu_set_reg; the ecall then
	 * retires and the hart goes on after it.  NULL: it traps to M. */
	void (*sbi_call)(void *arg, struct cpu *cpu);
	void *sbi_arg;
};

struct cpu_stats {
	uint64_t instret;
	uint64_t blocks_translated;
	uint64_t blocks_invalidated;
	uint64_t tb_lookups;       /* unchained block transitions */
	uint64_t tlb_misses;
	uint64_t walks;            /* full page-table walks */
	uint64_t walk_cache_hits;
	uint64_t exceptions;
	uint64_t interrupts;
	uint64_t mmio;
	uint64_t trapped_writes;
	uint64_t smc_invalidations;
};

int cpu_create(const struct cpu_cfg *cfg, struct cpu **out);
void cpu_destroy(struct cpu *cpu);

enum cpu_exit { CPU_EXIT_STOPPED = 0, CPU_EXIT_BUDGET = 1 };

/* Runs guest code until cpu_request_stop() (returns CPU_EXIT_STOPPED) or,
 * when max_insns > 0, until about max_insns more instructions retired or
 * traps taken (checked at block boundaries; CPU_EXIT_BUDGET).  wfi sleeps
 * inside. */
int cpu_run(struct cpu *cpu, uint64_t max_insns);
void cpu_request_stop(struct cpu *cpu);
/* Wakes the hart from wfi and makes it look at interrupts and posted work. */
void cpu_kick(struct cpu *cpu);
/* Sets or clears a hardware interrupt line in mip (CPU_IRQ_*). */
void cpu_set_irq(struct cpu *cpu, unsigned irq, bool level);
/* Runs fn(cpu, arg) on the vCPU thread at the next block boundary (at once
 * when called from that thread or when the hart is not running).  With
 * wait, returns after fn ran.  Returns 0 or -ENOMEM. */
int cpu_run_on(struct cpu *cpu, void (*fn)(struct cpu *, void *), void *arg, bool wait);

/* From inside a cpu_run_on callback: true when it runs on another thread
 * because the hart is not running (no instruction is in progress and none
 * starts before the callback returns), false on the hart's own thread. */
bool cpu_work_inline(struct cpu *cpu);

/* From a hook running on this hart's vCPU thread (sbi_call): runs the work
 * other threads posted to this hart, so a hook that waits for other harts'
 * cpu_run_on work cannot deadlock with one of them waiting for it. */
void cpu_poll_work(struct cpu *cpu);

/* Drops every secondary structure of the given kinds (CPU_KIND_BIT mask)
 * derived from guest-physical page gpa_page. */
void cpu_invalidate_gpa(struct cpu *cpu, uint64_t gpa_page, unsigned kinds);
/* Drops all TLB entries, translated blocks and cached walks. */
void cpu_flush_all(struct cpu *cpu);
/* Drops all TLB entries (and cached walks unless retain_walks): what
 * sfence.vma x0, x0 does, for remote fences. */
void cpu_flush_tlb(struct cpu *cpu);
/* Stores to page gpa_page take the slow path (write_pre/write_post) while
 * on; reads keep their fast mapping.  Returns 0 or -ENOMEM. */
int cpu_set_write_trap(struct cpu *cpu, uint64_t gpa_page, bool on);

/* State accessors (vCPU thread, or hart not running). */
int cpu_hart_id(const struct cpu *cpu);
uint64_t cpu_get_reg(const struct cpu *cpu, unsigned r);
void cpu_set_reg(struct cpu *cpu, unsigned r, uint64_t v);
uint64_t cpu_get_pc(const struct cpu *cpu);
void cpu_set_pc(struct cpu *cpu, uint64_t pc);
int cpu_get_priv(const struct cpu *cpu);
void cpu_set_priv(struct cpu *cpu, int priv);
/* CSR access as M-mode would see it, without side-effect checks of the
 * instruction (for tests, SBI and boot).  -EINVAL: no such CSR. */
int cpu_get_csr(struct cpu *cpu, unsigned csr, uint64_t *val);
int cpu_set_csr(struct cpu *cpu, unsigned csr, uint64_t val);
void cpu_set_time_offset(struct cpu *cpu, int64_t offset);
void cpu_get_stats(const struct cpu *cpu, struct cpu_stats *out);

/* Decoder, exposed for tests and fuzzing: decodes one instruction
 * (16- or 32-bit parcel in the low bits of raw).  Returns its length in
 * bytes (2 or 4) and the mnemonic, or 0 with name "illegal". */
int cpu_decode_name(uint32_t raw, const char **name);

#endif
