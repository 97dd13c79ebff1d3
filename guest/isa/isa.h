/* Helpers for the ISA tests: run one instruction on given operands and
 * compare with a value the compiler computed on the host (constant-folded
 * C arithmetic, or a literal where C has no defined meaning). */
#ifndef GUEST_ISA_H
#define GUEST_ISA_H
#include "rt.h"

#define RR(op, a, b) ({ u64 r_; asm volatile(op " %0, %1, %2" : "=r"(r_) : "r"((u64)(a)), "r"((u64)(b))); r_; })
#define RI(op, a, imm) ({ u64 r_; asm volatile(op " %0, %1, %2" : "=r"(r_) : "r"((u64)(a)), "i"(imm)); r_; })
#define R1(op, a) ({ u64 r_; asm volatile(op " %0, %1" : "=r"(r_) : "r"((u64)(a))); r_; })
#define TRR(op, a, b, want) CHECK_EQ(RR(op, a, b), (u64)(want))
#define TRI(op, a, imm, want) CHECK_EQ(RI(op, a, imm), (u64)(want))
#define SX32(v) ((u64)(i64)(i32)(u32)(v))

#endif
