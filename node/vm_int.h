/*
 * The single-node VM behind `spanvm run`: flat guest RAM at 0x80000000,
 * an ELF loader, HTIF (tohost/fromhost console and exit, as QEMU's spike
 * machine), the SiFive test finisher at 0x100000 (as QEMU's virt machine),
 * a CLINT at 0x2000000, and one host thread per hart.
 *
 * Threads: the caller of vm_run() (main) waits for the end; one vCPU thread
 * per hart runs cpu_run(); one timer thread raises MTIP when mtime passes a
 * hart's mtimecmp.  Device state (CLINT registers, HTIF latch, console
 * buffer, exit status) is guarded by vm->lock, never held across cpu_run().
 */
#ifndef SPANVM_NODE_VM_INT_H
#define SPANVM_NODE_VM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu/cpu.h"

#define VM_RAM_BASE 0x80000000ull
#define VM_CLINT_BASE 0x2000000ull
#define VM_CLINT_SIZE 0x10000ull
#define VM_FINISHER_BASE 0x100000ull
#define VM_MAX_HARTS 64

/* ---- ELF loader (vm_elf.c) ---- */
struct elf_info {
	uint64_t entry;
	uint64_t tohost, fromhost; /* 0 when the symbol is absent */
	uint64_t lo, hi;           /* loaded physical range */
};

/* Validates the ELF image buf[0..len) and copies its PT_LOAD segments into
 * ram (guest-physical ram_base .. ram_base+ram_size, zero-filled beyond
 * p_filesz).  On error returns -EINVAL (or -ERANGE for a segment outside
 * RAM) and writes a message naming the file offset into err. */
int elf_load(const uint8_t *buf, size_t len, uint8_t *ram, uint64_t ram_base, uint64_t ram_size,
	     struct elf_info *out, char *err, size_t errlen);

/* ---- the VM (vm_run.c) ---- */
struct vm_cfg {
	const char *elf_path;      /* an ELF, or a RISC-V Linux Image (virt_int.h) */
	const char *initrd_path;   /* Image only; NULL = none */
	const char *cmdline;       /* Image only; NULL = default */
	unsigned harts;
	uint64_t mem_bytes;
	double timeout_s;          /* 0 = none */
	bool single_step;          /* one instruction per block (debugging) */
	bool no_trace;             /* no write traces (vm_trace.c): harts see each other's
				    * code and page-table writes only through fence.i/sfence.vma */
	bool retain_walks;         /* keep cached walks across sfence.vma (needs traces) */
	const char *trace_opts;    /* "code=pre,pt=post,..." (tr_cfg_set), NULL = defaults */
};

struct vm;
struct vm_hart;

/* Reads a whole regular file into a malloc'd buffer (the one file reader of
 * node/: guest ELFs, Linux Images, initrds).  On error, err says why without
 * the path; callers name the file. */
int vm_read_file(const char *path, uint8_t **buf, size_t *len, char *err, size_t el);
int vm_create(const struct vm_cfg *cfg, struct vm **out, char *err, size_t errlen);
/* Runs until the guest exits (HTIF or finisher) or the timeout.  *exit_code
 * gets the guest's code, or 124 on timeout. */
int vm_run(struct vm *vm, int *exit_code);
/* Statistics as one JSON object (malloc'd string). */
char *vm_stats_json(struct vm *vm);
void vm_destroy(struct vm *vm);

/* ---- internals shared by vm_*.c ---- */
struct vm_hart {
	struct vm *vm;
	struct cpu *cpu;
	int id;
	uint64_t mtimecmp; /* under vm->lock */
	uint32_t msip;     /* under vm->lock */
	bool armed;        /* mtimecmp written since reset (QEMU: no MTIP before) */
	unsigned timer_irq; /* CPU_IRQ_MTI, or CPU_IRQ_STI when the monitor plays SBI */
};

#include <pthread.h>

struct vm {
	struct vm_cfg cfg;
	uint8_t *ram;              /* mmap'd, MAP_NORESERVE */
	uint64_t ram_size;
	struct elf_info elf;
	struct virt *virt;         /* Linux machine (virt_int.h); NULL for ELF guests */
	struct vm_trace *trace;    /* write traces (vm_trace.c); NULL with --no-trace */
	uint64_t start_ns;         /* mtime 0 */
	struct vm_hart harts[VM_MAX_HARTS];
	pthread_t threads[VM_MAX_HARTS];

	pthread_mutex_t lock;
	pthread_cond_t done_cond;  /* signalled by vm_finish */
	bool done;                 /* under lock */
	int exit_code;             /* under lock */
	uint64_t htif_lo;          /* latched low half of a split tohost write */
	char con_buf[4096];        /* console bytes not yet written; under lock */
	size_t con_len;

	pthread_t timer_thread;
	pthread_cond_t timer_cond; /* mtimecmp changed or stopping */
	bool timer_stop, timer_running;
	uint64_t run_ns;           /* wall time of vm_run */
};

extern const struct cpu_mem_ops vm_mem_ops;
void vm_console_flush(struct vm *vm); /* lock held */

/* CLINT (vm_clint.c) */
uint64_t vm_mtime(const struct vm *vm);
int vm_clint_read(struct vm *vm, uint64_t off, unsigned size, uint64_t *val);
int vm_clint_write(struct vm *vm, uint64_t off, unsigned size, uint64_t val);
int vm_timer_start(struct vm *vm);
void vm_timer_stop(struct vm *vm);

/* Write traces (vm_trace.c): create after loading, hart_cfg before each
 * cpu_create (observer, write hooks, retain_walks), bind after it; destroy
 * after the cpus; stats adds a "trace" member to a json_t object. */
struct vm_trace;
int vm_trace_create(struct vm *vm, char *err, size_t errlen);
void vm_trace_hart_cfg(struct vm *vm, unsigned k, struct cpu_cfg *cc);
int vm_trace_bind(struct vm *vm, unsigned k, struct cpu *cpu, char *err, size_t errlen);
void vm_trace_stats(struct vm *vm, void *json_root);
void vm_trace_destroy(struct vm *vm);

/* The same glue for any node (vm_dsm.c): vt_create (opts as --trace, NULL
 * = defaults), vt_set_pinned_trap (a page the harts must keep trapping,
 * e.g. HTIF tohost; 0 = none), vt_hart_cfg before cpu_create of hart k (a
 * guest hart id < VM_MAX_HARTS: wraps cc->mem, cc->mem_opaque and sets
 * cc->obs; a caller with its own observer chains to the one set here),
 * vt_bind after it, vt_destroy after the cpus.  NULL-safe stats/destroy. */
int vt_create(const char *opts, struct vm_trace **out, char *err, size_t errlen);
void vt_set_pinned_trap(struct vm_trace *vt, uint64_t gpa);
void vt_hart_cfg(struct vm_trace *vt, unsigned k, struct cpu_cfg *cc);
int vt_bind(struct vm_trace *vt, unsigned k, struct cpu *cpu, char *err, size_t errlen);
void vt_stats(struct vm_trace *vt, void *json_root);
void vt_destroy(struct vm_trace *vt);

/* Ends the VM with a guest exit code (first call wins). */
void vm_finish(struct vm *vm, int code);

#endif
