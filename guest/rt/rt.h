/*
 * Bare-metal runtime for spanvm's guest programs (RV64IMAC, M-mode start).
 *
 * What it gives a test: per-hart stacks and trap stacks, main() on hart 0
 * and secondary_main(hartid) on the others (weak default: park), a console
 * over HTIF (one global spinlock, so lines from several harts do not
 * interleave mid-character), exit through tohost, CHECK macros that print
 * the failing check and exit with its number, M- and S-mode trap handlers
 * with per-hart trap records, rt_run() to execute a function in U/S/M mode
 * and come back, Sv39 page-table helpers and CLINT access.
 *
 * Threads: every hart owns its entry in the per-hart arrays (rt_mtrap[h],
 * rt_strap[h], policies, hooks).  The console lock is the only shared lock.
 */
#ifndef GUEST_RT_H
#define GUEST_RT_H

#include <stdarg.h>
#include <stdint.h>
#include <stddef.h>
#include "rt_asm.h"

typedef uint64_t u64;
typedef int64_t i64;
typedef uint32_t u32;
typedef int32_t i32;

#define STR_(x) #x
#define STR(x) STR_(x)
#define csr_read(csr) ({ u64 v_; asm volatile("csrr %0, " STR(csr) : "=r"(v_) :: "memory"); v_; })
#define csr_write(csr, v) asm volatile("csrw " STR(csr) ", %0" :: "rK"((u64)(v)) : "memory")
#define csr_set(csr, v) asm volatile("csrs " STR(csr) ", %0" :: "rK"((u64)(v)) : "memory")
#define csr_clear(csr, v) asm volatile("csrc " STR(csr) ", %0" :: "rK"((u64)(v)) : "memory")
#define csr_swap(csr, v) ({ u64 o_; asm volatile("csrrw %0, " STR(csr) ", %1" : "=r"(o_) : "rK"((u64)(v)) : "memory"); o_; })

/* mstatus bits */
#define MSTATUS_SIE (1ul << 1)
#define MSTATUS_MIE (1ul << 3)
#define MSTATUS_SPIE (1ul << 5)
#define MSTATUS_MPIE (1ul << 7)
#define MSTATUS_SPP (1ul << 8)
#define MSTATUS_MPP (3ul << 11)
#define MSTATUS_MPRV (1ul << 17)
#define MSTATUS_SUM (1ul << 18)
#define MSTATUS_MXR (1ul << 19)
#define MSTATUS_TVM (1ul << 20)
#define MSTATUS_TW (1ul << 21)
#define MSTATUS_TSR (1ul << 22)

#define PRV_U 0
#define PRV_S 1
#define PRV_M 3

/* exception causes */
#define CAUSE_MISALIGNED_FETCH 0
#define CAUSE_FETCH_ACCESS 1
#define CAUSE_ILLEGAL 2
#define CAUSE_BREAKPOINT 3
#define CAUSE_MISALIGNED_LOAD 4
#define CAUSE_LOAD_ACCESS 5
#define CAUSE_MISALIGNED_STORE 6
#define CAUSE_STORE_ACCESS 7
#define CAUSE_ECALL_U 8
#define CAUSE_ECALL_S 9
#define CAUSE_ECALL_M 11
#define CAUSE_FETCH_PAGE 12
#define CAUSE_LOAD_PAGE 13
#define CAUSE_STORE_PAGE 15
#define CAUSE_INTR (1ul << 63)
#define IRQ_SSOFT 1
#define IRQ_MSOFT 3
#define IRQ_STIMER 5
#define IRQ_MTIMER 7

/* ---- console and exit ---- */
void rt_putchar(int c);
void rt_puts(const char *s); /* no newline added */
void rt_printf(const char *fmt, ...);
void rt_vprintf(const char *fmt, va_list ap);
__attribute__((noreturn)) void rt_exit(int code);
unsigned rt_hartid(void);

int main(void);
int secondary_main(unsigned hartid); /* weak: parks */

/* ---- checks: each CHECK is numbered at run time in program order ---- */
extern int rt_check_no;
__attribute__((noreturn)) void rt_fail(const char *what, const char *file, int line, u64 got, u64 want, int has_vals);
#define CHECK(c) do { rt_check_no++; if (!(c)) rt_fail(#c, __FILE__, __LINE__, 0, 0, 0); } while (0)
#define CHECK_EQ(a, b) do { u64 a_ = (u64)(a), b_ = (u64)(b); rt_check_no++; \
	if (a_ != b_) rt_fail(#a " == " #b, __FILE__, __LINE__, a_, b_, 1); } while (0)

/* ---- traps ---- */
struct rt_frame { u64 x[34]; };        /* x[i] = register xi at the trap */
struct rt_trap { u64 cause, tval, epc, prev_mode; volatile u64 count; };
extern struct rt_trap rt_mtrap[RT_MAX_HARTS]; /* traps taken into M */
extern struct rt_trap rt_strap[RT_MAX_HARTS]; /* traps taken into S */
/* Hooks return nonzero when they handled the trap. */
typedef int (*rt_hook_t)(struct rt_frame *f, u64 cause);
extern rt_hook_t rt_m_hook[RT_MAX_HARTS], rt_s_hook[RT_MAX_HARTS];
/* Arm: the next unexpected M-mode exception is recorded and skipped. */
void rt_expect_trap(void);
/* S handler: where to resume after an exception (0 = skip the instruction). */
extern u64 rt_s_recover[RT_MAX_HARTS];
void rt_s_trap_install(void); /* stvec + sscratch for this hart */
#define RT_TRAPPED 0xdeadbeefdead7badull
/* Run fn(a0, a1) in `mode` (PRV_U/S/M); returns its result, or RT_TRAPPED
 * if an exception reached M-mode meanwhile (recorded in rt_mtrap). */
u64 rt_run(int mode, void *fn, u64 a0, u64 a1);
/* Snapshot for tests: clear this hart's trap record. */
void rt_trap_clear(void);
int rt_insn_len(u64 pc);

/* ---- Sv39 ---- */
#define PTE_V 0x1ul
#define PTE_R 0x2ul
#define PTE_W 0x4ul
#define PTE_X 0x8ul
#define PTE_U 0x10ul
#define PTE_G 0x20ul
#define PTE_A 0x40ul
#define PTE_D 0x80ul
#define PTE_RWX (PTE_R | PTE_W | PTE_X)
#define SATP_SV39 (8ul << 60)
u64 *pt_alloc(void);                       /* zeroed 4 KiB page */
void *rt_page_alloc(void);                 /* zeroed 4 KiB page, same pool */
/* level 0 = 4 KiB, 1 = 2 MiB, 2 = 1 GiB; flags include V */
void pt_map(u64 *root, u64 va, u64 pa, int level, u64 flags);
u64 *pt_pte(u64 *root, u64 va);            /* leaf PTE of va, or NULL */
static inline u64 satp_of(u64 *root, u64 asid) { return SATP_SV39 | (asid << 44) | ((u64)root >> 12); }
static inline void sfence_all(void) { asm volatile("sfence.vma" ::: "memory"); }

/* ---- CLINT ---- */
#define CLINT_BASE 0x2000000ul
static inline volatile u32 *clint_msip(unsigned h) { return (volatile u32 *)(CLINT_BASE + 4 * h); }
static inline volatile u64 *clint_mtimecmp(unsigned h) { return (volatile u64 *)(CLINT_BASE + 0x4000 + 8 * h); }
static inline u64 clint_mtime(void) { return *(volatile u64 *)(CLINT_BASE + 0xbff8); }

/* ---- small helpers ---- */
void *rt_memset(void *d, int c, size_t n);
void *rt_memcpy(void *d, const void *s, size_t n);
static inline void rt_fence_i(void) { asm volatile("fence.i" ::: "memory"); }
void rt_spin_lock(volatile int *l);
void rt_spin_unlock(volatile int *l);

#endif
