/* Constants shared by the runtime's assembly and C. */
#ifndef GUEST_RT_ASM_H
#define GUEST_RT_ASM_H
#define RT_MAX_HARTS 4
#define RT_STACK_SHIFT 15 /* 32 KiB per hart, must match link.ld */
#define RT_FRAME_SIZE 272 /* 32 x-regs + pad */
#define RT_MAGIC_RETURN 0x5e7a11 /* a7 value of the ecall that ends rt_run */
#endif
