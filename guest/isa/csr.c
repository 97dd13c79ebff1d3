/* Zicsr: csrrw/csrrs/csrrc and their immediate forms (old value returned,
 * new value written, x0 rules), read-only and unknown CSRs trapping as
 * illegal instructions with mtval = the instruction bits, and a few
 * fixed-value CSRs (misa, mhartid). */
#include "isa.h"

#define CSR_INSN(op, csr, rd, rs1) (((u32)(csr) << 20) | ((rs1) << 15) | ((op) << 12) | ((rd) << 7) | 0x73)

/* mscratch holds the trap stack: no trap may happen until it is restored */
static void rw_forms(void)
{
	u64 old, saved = csr_read(mscratch);
	csr_write(mscratch, 0x0123456789abcdefull);
	asm volatile("csrrw %0, mscratch, %1" : "=r"(old) : "r"(0xfedcba9876543210ull));
	CHECK_EQ(old, 0x0123456789abcdefull);
	CHECK_EQ(csr_read(mscratch), 0xfedcba9876543210ull);
	asm volatile("csrrs %0, mscratch, %1" : "=r"(old) : "r"(0x0f));
	CHECK_EQ(old, 0xfedcba9876543210ull);
	CHECK_EQ(csr_read(mscratch), 0xfedcba987654321full);
	asm volatile("csrrc %0, mscratch, %1" : "=r"(old) : "r"(0xff00000000000000ull));
	CHECK_EQ(old, 0xfedcba987654321full);
	CHECK_EQ(csr_read(mscratch), 0x00dcba987654321full);
	asm volatile("csrrwi %0, mscratch, 31" : "=r"(old));
	CHECK_EQ(old, 0x00dcba987654321full);
	CHECK_EQ(csr_read(mscratch), 31);
	asm volatile("csrrci %0, mscratch, 5" : "=r"(old));
	CHECK_EQ(old, 31);
	CHECK_EQ(csr_read(mscratch), 26);
	asm volatile("csrrsi %0, mscratch, 1" : "=r"(old));
	CHECK_EQ(old, 26);
	CHECK_EQ(csr_read(mscratch), 27);
	/* rd = x0: written, nothing read back into x0 */
	asm volatile("csrrw x0, mscratch, %0\n mv %0, x0" : "=r"(old) : "0"(77ul));
	CHECK_EQ(old, 0);
	CHECK_EQ(csr_read(mscratch), 77);
	/* rd == rs1: old value lands in rd, new value came from the old rs1 */
	u64 r = 99;
	asm volatile("csrrw %0, mscratch, %0" : "+r"(r));
	CHECK_EQ(r, 77);
	u64 last = csr_swap(mscratch, saved);
	CHECK_EQ(last, 99);
	/* (mepc[0] reads as zero per the spec, but QEMU 7.2 returns it as
	 * written, so it is not checked here) */
}

static u64 try_insn(u32 insn)
{
	/* executes the given CSR instruction from a data page turned code */
	static u32 code[2] __attribute__((aligned(8)));
	code[0] = insn;
	code[1] = 0x00008067; /* ret */
	rt_fence_i();
	rt_trap_clear();
	rt_expect_trap();
	((void (*)(void))code)();
	return rt_mtrap[0].count;
}

static void read_only(void)
{
	/* csrrw x0, mhartid, x1: writes a read-only CSR */
	u32 i1 = CSR_INSN(1, 0xf14, 0, 1);
	CHECK_EQ(try_insn(i1), 1);
	CHECK_EQ(rt_mtrap[0].cause, CAUSE_ILLEGAL);
	CHECK_EQ(rt_mtrap[0].tval, i1);
	/* csrrs a0, mvendorid, a1 (rs1 != x0) writes too */
	u32 i2 = CSR_INSN(2, 0xf11, 10, 11);
	CHECK_EQ(try_insn(i2), 1);
	CHECK_EQ(rt_mtrap[0].cause, CAUSE_ILLEGAL);
	/* csrrs a0, mhartid, x0 only reads: no trap */
	CHECK_EQ(try_insn(CSR_INSN(2, 0xf14, 10, 0)), 0);
	/* csrrsi a0, mhartid, 0: no write, no trap */
	CHECK_EQ(try_insn(CSR_INSN(6, 0xf14, 10, 0)), 0);
	/* csrrwi x0, cycle, 1: user counter is read-only */
	u32 i3 = CSR_INSN(5, 0xc00, 0, 1);
	CHECK_EQ(try_insn(i3), 1);
	CHECK_EQ(rt_mtrap[0].tval, i3);
	/* a CSR number that does not exist (0x7ff is custom, unimplemented) */
	u32 i4 = CSR_INSN(2, 0x7ff, 10, 0);
	CHECK_EQ(try_insn(i4), 1);
	CHECK_EQ(rt_mtrap[0].cause, CAUSE_ILLEGAL);
	CHECK_EQ(rt_mtrap[0].tval, i4);
	rt_expect_trap(); /* disarm by consuming: nothing else should trap */
	asm volatile("ebreak");
}

static void fixed_values(void)
{
	u64 misa = csr_read(misa);
	CHECK_EQ(misa >> 62, 2); /* MXL = 64 */
	for (const char *p = "IMACSU"; *p; p++)
		CHECK(misa & (1ul << (*p - 'A')));
	CHECK_EQ(csr_read(mhartid), 0);
	/* (mstatus.MPP = 2 should be legalised, WARL; QEMU 7.2 keeps it, so
	 * that is not checked) */
	/* sstatus is a view of mstatus */
	csr_set(mstatus, MSTATUS_SUM);
	CHECK(csr_read(sstatus) & MSTATUS_SUM);
	csr_clear(sstatus, MSTATUS_SUM);
	CHECK(!(csr_read(mstatus) & MSTATUS_SUM));
	/* sie is the delegated view of mie */
	csr_write(mideleg, 1ul << IRQ_SSOFT);
	csr_write(mie, (1ul << IRQ_SSOFT) | (1ul << IRQ_MSOFT));
	CHECK_EQ(csr_read(sie), 1ul << IRQ_SSOFT);
	csr_write(mie, 0);
	csr_write(mideleg, 0);
}

int main(void)
{
	rw_forms();
	read_only();
	fixed_values();
	rt_printf("isa_csr: %d checks passed\n", rt_check_no);
	return 0;
}
