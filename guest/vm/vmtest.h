/* Shared set-up for the Sv39 tests.  The root maps RAM twice with 1 GiB
 * pages: identity at 0x80000000 (S code and data, U = 0) and at
 * U_ALIAS (same RAM, U = 1) so U-mode code can run.  U snippets end with
 * an explicit ecall (they cannot return to rt's exit stub, which is on a
 * supervisor page).  Traps go to M (no medeleg) and end rt_run. */
#ifndef GUEST_VMTEST_H
#define GUEST_VMTEST_H
#include "rt.h"

#define U_ALIAS 0xc0000000ul
#define TO_U(p) ((void *)((u64)(p) - 0x80000000ul + U_ALIAS))
#define ID_FLAGS (PTE_V | PTE_RWX | PTE_A | PTE_D)

static inline u64 *vm_root(void)
{
	u64 *root = pt_alloc();
	pt_map(root, 0x80000000ul, 0x80000000ul, 2, ID_FLAGS);
	pt_map(root, U_ALIAS, 0x80000000ul, 2, ID_FLAGS | PTE_U);
	return root;
}

/* S-mode accessors */
static u64 s_load(u64 va) { return *(volatile u64 *)va; }
static u64 s_store(u64 va, u64 v) { *(volatile u64 *)va = v; return 0; }

/* U-mode accessors (run at TO_U(...)): a0 = address, a1 = value */
void u_load(void);
void u_store(void);
asm(".text\n .balign 4\n u_load: ld a0, 0(a0)\n li a7, " STR(RT_MAGIC_RETURN) "\n ecall\n"
    " .balign 4\n u_store: sd a1, 0(a0)\n li a0, 0\n li a7, " STR(RT_MAGIC_RETURN) "\n ecall\n");

/* run and report: value, or RT_TRAPPED with the trap in rt_mtrap[0] */
static inline u64 vm_try(int mode, void *fn, u64 a0, u64 a1)
{
	rt_trap_clear();
	return rt_run(mode, fn, a0, a1);
}

#define CHECK_FAULT(expr, cause_, tval_) do { CHECK_EQ((expr), RT_TRAPPED); \
	CHECK_EQ(rt_mtrap[0].cause, (cause_)); CHECK_EQ(rt_mtrap[0].tval, (u64)(tval_)); } while (0)

#endif
