/* Trap entries and mode switching.
 * rt_m_trap_entry / rt_s_trap_entry: swap sp with m/sscratch (the hart's
 * trap stack), save x1..x31 into a frame (x2 slot = interrupted sp), call
 * rt_m_trap / rt_s_trap(frame), restore (the C side may edit the frame) and
 * return.  rt_priv_call(mode, fn, arg0, arg1) saves the callee-saved state of
 * an M-mode caller, drops to `mode` at fn; fn's return executes an ecall
 * with a7 = RT_MAGIC_RETURN, which the M handler turns into a jump to
 * rt_priv_landing, which restores the caller and returns a0. */
#include "rt_asm.h"

.macro SAVE_REGS scratch
	csrrw	sp, \scratch, sp
	addi	sp, sp, -RT_FRAME_SIZE
	.irp n, 1,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	sd	x\n, (\n*8)(sp)
	.endr
	csrr	t0, \scratch
	sd	t0, 16(sp)
	addi	t0, sp, RT_FRAME_SIZE
	csrw	\scratch, t0
	mv	a0, sp
.endm

.macro RESTORE_REGS
	.irp n, 1,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	ld	x\n, (\n*8)(sp)
	.endr
	ld	sp, 16(sp)
.endm

	.text
	.balign 4
	.globl rt_m_trap_entry
rt_m_trap_entry:
	SAVE_REGS mscratch
	call	rt_m_trap
	RESTORE_REGS
	mret

	.balign 4
	.globl rt_s_trap_entry
rt_s_trap_entry:
	SAVE_REGS sscratch
	call	rt_s_trap
	RESTORE_REGS
	sret

	.globl rt_priv_call
rt_priv_call:
	csrr	t0, mhartid
	slli	t0, t0, 7
	la	t1, rt_priv_ctx
	add	t0, t0, t1
	sd	ra, 0(t0)
	sd	sp, 8(t0)
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11
	sd	s\n, (16+\n*8)(t0)
	.endr
	li	t1, 3 << 11
	csrc	mstatus, t1
	slli	t2, a0, 11
	csrs	mstatus, t2
	csrw	mepc, a1
	mv	a0, a2
	mv	a1, a3
	la	ra, rt_priv_exit_stub
	mret

	.globl rt_priv_exit_stub
rt_priv_exit_stub:
	li	a7, RT_MAGIC_RETURN
	ecall
1:	j	1b

	.balign 4
	.globl rt_priv_landing
rt_priv_landing:
	csrr	t0, mhartid
	slli	t0, t0, 7
	la	t1, rt_priv_ctx
	add	t0, t0, t1
	ld	ra, 0(t0)
	ld	sp, 8(t0)
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11
	ld	s\n, (16+\n*8)(t0)
	.endr
	ret

	.bss
	.balign 16
	.globl rt_priv_ctx
rt_priv_ctx:
	.zero 128 * RT_MAX_HARTS
