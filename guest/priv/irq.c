/* Interrupts: machine timer through CLINT mtimecmp, machine software
 * interrupt through msip, pending-but-disabled interrupts (mip without a
 * trap, taken as soon as MIE is set), wfi waking with MIE = 0, and a
 * supervisor software interrupt delegated with mideleg. */
#include "rt.h"

static volatile u64 irq_seen, irq_cause, irq_epc;

static int m_hook(struct rt_frame *f, u64 cause)
{
	if (!(cause & CAUSE_INTR))
		return 0;
	irq_cause = cause;
	irq_epc = csr_read(mepc);
	irq_seen++;
	if ((cause & 0xff) == IRQ_MTIMER)
		*clint_mtimecmp(0) = ~0ull;
	else if ((cause & 0xff) == IRQ_MSOFT)
		*clint_msip(0) = 0;
	else
		return 0;
	return 1;
}

static int s_hook(struct rt_frame *f, u64 cause)
{
	if (cause != (CAUSE_INTR | IRQ_SSOFT))
		return 0;
	irq_cause = cause;
	irq_seen++;
	csr_clear(sip, 1ul << IRQ_SSOFT);
	return 1;
}

static int wait_irq(u64 spins)
{
	while (!irq_seen && spins--)
		asm volatile("nop");
	return irq_seen != 0;
}

static void timer(void)
{
	irq_seen = 0;
	*clint_mtimecmp(0) = ~0ull;
	csr_write(mie, 1ul << IRQ_MTIMER);
	csr_set(mstatus, MSTATUS_MIE);
	u64 t0 = clint_mtime();
	*clint_mtimecmp(0) = t0 + 2000;
	CHECK(wait_irq(200000000));
	CHECK_EQ(irq_cause, CAUSE_INTR | IRQ_MTIMER);
	CHECK(clint_mtime() >= t0 + 2000);
	CHECK_EQ(irq_seen, 1);
	csr_clear(mstatus, MSTATUS_MIE);
	csr_write(mie, 0);
	/* mtime advances */
	u64 a = clint_mtime();
	for (volatile int i = 0; i < 100000; i++)
		;
	CHECK(clint_mtime() > a);
}

static void software(void)
{
	irq_seen = 0;
	csr_write(mie, 1ul << IRQ_MSOFT);
	/* pending while MIE = 0: visible in mip, not taken */
	*clint_msip(0) = 1;
	for (volatile int i = 0; i < 1000; i++)
		;
	CHECK(csr_read(mip) & (1ul << IRQ_MSOFT));
	CHECK_EQ(irq_seen, 0);
	csr_set(mstatus, MSTATUS_MIE);
	/* taken right after the csrs that enabled it */
	CHECK_EQ(irq_seen, 1);
	CHECK_EQ(irq_cause, CAUSE_INTR | IRQ_MSOFT);
	CHECK(!(csr_read(mip) & (1ul << IRQ_MSOFT)));
	csr_clear(mstatus, MSTATUS_MIE);
	csr_write(mie, 0);
}

static void wfi_wakeup(void)
{
	irq_seen = 0;
	csr_clear(mstatus, MSTATUS_MIE);
	csr_write(mie, 1ul << IRQ_MTIMER);
	u64 t0 = clint_mtime();
	*clint_mtimecmp(0) = t0 + 5000;
	/* wfi may return early (spurious wake-ups are legal): loop on mip */
	int n = 0;
	while (!(csr_read(mip) & (1ul << IRQ_MTIMER)) && n++ < 1000000)
		asm volatile("wfi");
	CHECK(csr_read(mip) & (1ul << IRQ_MTIMER));
	CHECK(clint_mtime() >= t0 + 5000);
	CHECK_EQ(irq_seen, 0); /* MIE = 0: woke up, no trap */
	*clint_mtimecmp(0) = ~0ull;
	CHECK(!(csr_read(mip) & (1ul << IRQ_MTIMER)));
	csr_write(mie, 0);
}

static void s_wait(void)
{
	csr_set(sie, 1ul << IRQ_SSOFT);
	csr_set(sstatus, MSTATUS_SIE);
	csr_set(sip, 1ul << IRQ_SSOFT); /* S may raise its own SSIP */
	for (int i = 0; i < 1000 && !irq_seen; i++)
		asm volatile("nop");
	csr_clear(sstatus, MSTATUS_SIE);
}

static void delegated_ssip(void)
{
	irq_seen = 0;
	rt_s_trap_install();
	csr_write(mideleg, 1ul << IRQ_SSOFT);
	rt_run(PRV_S, s_wait, 0, 0);
	CHECK_EQ(irq_seen, 1);
	CHECK_EQ(irq_cause, CAUSE_INTR | IRQ_SSOFT);
	/* not delegated and MIE = 0 in M: S-level interrupt is still taken in
	 * M once we are in S (M interrupts are always enabled below M) */
	irq_seen = 0;
	csr_write(mideleg, 0);
	csr_write(mie, 1ul << IRQ_MSOFT);
	*clint_msip(0) = 1;
	rt_run(PRV_S, s_wait, 0, 0);
	csr_write(mie, 0);
	csr_clear(mip, 1ul << IRQ_SSOFT);
	CHECK(irq_seen >= 1);
	CHECK_EQ(irq_cause, CAUSE_INTR | IRQ_MSOFT);
}

int main(void)
{
	rt_m_hook[0] = m_hook;
	rt_s_hook[0] = s_hook;
	timer();
	software();
	wfi_wakeup();
	delegated_ssip();
	rt_printf("priv_irq: %d checks passed\n", rt_check_no);
	return 0;
}
