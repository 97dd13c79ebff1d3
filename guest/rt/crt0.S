/* Guest start-up.  Every hart enters _start in M-mode (a0 = hartid on
 * spanvm; we read mhartid anyway).  Each hart gets its own stack and M/S
 * trap stacks; hart 0 clears .bss and raises rt_boot_flag, the others wait
 * for it, then all enter rt_entry(hartid).  PMP entry 0 is opened to all of
 * memory so S/U code may run (QEMU denies S/U when no PMP entry is set);
 * a trap while doing so (no PMP) is ignored. */
#include "rt_asm.h"

	.section .text.init
	.globl _start
_start:
	csrr	a0, mhartid
	li	t0, RT_MAX_HARTS
	bgeu	a0, t0, 9f
	la	sp, __stacks_end
	slli	t1, a0, RT_STACK_SHIFT
	sub	sp, sp, t1
	la	t1, __mtrap_stacks_end
	slli	t2, a0, 12
	sub	t1, t1, t2
	csrw	mscratch, t1
	la	t1, 1f
	csrw	mtvec, t1
	li	t1, -1
	csrw	pmpaddr0, t1
	li	t1, 0x1f
	csrw	pmpcfg0, t1
	.balign 4
1:	la	t1, rt_m_trap_entry
	csrw	mtvec, t1
	csrw	mie, zero
	mv	s0, a0
	mv	tp, a0
	bnez	a0, 4f
	la	t1, __bss_start
	la	t2, __bss_end
2:	bgeu	t1, t2, 3f
	sd	zero, 0(t1)
	addi	t1, t1, 8
	j	2b
3:	fence	rw, rw
	la	t1, rt_boot_flag
	li	t2, 1
	sw	t2, 0(t1)
	j	5f
4:	la	t1, rt_boot_flag
	lw	t2, 0(t1)
	beqz	t2, 4b
	fence	rw, rw
5:	mv	a0, s0
	call	rt_entry
9:	wfi
	j	9b

	.data
	.globl rt_boot_flag
	.balign 4
rt_boot_flag:
	.word 0
