/* dt_dump: end of every generated program.  Saves x1..x31 and sscratch
 * into dt_regs without disturbing any of them before it is saved (mscratch
 * and the hart's trap stack serve as temporaries and are restored), then
 * jumps to dt_print (dump.c). */
	.text
	.globl dt_dump
dt_dump:
	csrrw	x31, mscratch, x31	/* x31 = trap stack top, mscratch = x31 */
	sd	x30, -8(x31)
	la	x30, dt_regs
	.irp n, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29
	sd	x\n, (\n*8)(x30)
	.endr
	ld	x5, -8(x31)
	sd	x5, (30*8)(x30)
	csrr	x5, mscratch
	sd	x5, (31*8)(x30)
	csrw	mscratch, x31
	csrr	x5, sscratch
	sd	x5, (32*8)(x30)
	j	dt_print

	.bss
	.balign 8
	.globl dt_regs
dt_regs:
	.zero 33*8
