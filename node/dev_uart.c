/*
 * ns16550a UART, output only, with QEMU's register semantics (hw/char/
 * serial.c) where Linux's 8250 driver looks: a byte written to THR is
 * transmitted at once, so LSR always shows THRE|TEMT; the THR-empty
 * interrupt is pending after each transmit and when IER.THRI is switched
 * on, and a read of IIR that reports it clears it.  Input (dev_uart_rx)
 * waits in a 256-byte buffer: LSR.DR while it is not empty, the
 * received-data interrupt when IER.RDI is on.  The line goes to PLIC
 * source 10.
 * Registers at byte offsets 0..7 (reg-shift 0), under vm->lock.
 */
#include <errno.h>

#include "node/virt_int.h"

enum {
	R_RBR_THR = 0, R_IER = 1, R_IIR_FCR = 2, R_LCR = 3, R_MCR = 4, R_LSR = 5, R_MSR = 6,
	R_SCR = 7,
};
#define LCR_DLAB 0x80
#define IER_RDI 0x01
#define IER_THRI 0x02
#define IIR_NO_INT 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define LSR_DR 0x01
#define IIR_FIFO 0xc0
#define FCR_ENABLE 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_LOOP 0x10
#define MSR_IDLE 0xb0 /* DCD, DSR, CTS as QEMU reports them */

void dev_uart_reset(struct uart *u)
{
	*u = (struct uart){.lsr = LSR_THRE | LSR_TEMT, .msr = MSR_IDLE};
}

void dev_console_put(struct vm *vm, char ch)
{
	vm->con_buf[vm->con_len++] = ch;
	if (ch == '\n' || vm->con_len == sizeof(vm->con_buf))
		vm_console_flush(vm);
	if (vm->virt)
		__atomic_fetch_add(&vm->virt->st.console_bytes, 1, __ATOMIC_RELAXED);
}

static uint8_t iir(const struct uart *u)
{
	uint8_t fifo = (u->fcr & FCR_ENABLE) ? IIR_FIFO : 0;
	if ((u->ier & IER_RDI) && u->rx_len)
		return IIR_RDI | fifo;
	if ((u->ier & IER_THRI) && u->thr_ipending)
		return IIR_THRI | fifo;
	return IIR_NO_INT | fifo;
}

static void update_irq(struct vm *vm)
{
	dev_plic_set_line(vm, VIRT_UART_IRQ, !(iir(&vm->virt->uart) & IIR_NO_INT));
}

void dev_uart_rx(struct vm *vm, const uint8_t *buf, size_t n)
{
	struct uart *u = &vm->virt->uart;
	for (size_t k = 0; k < n && u->rx_len < UART_RX_SIZE; k++, u->rx_len++)
		u->rx[(u->rx_head + u->rx_len) % UART_RX_SIZE] = buf[k];
	update_irq(vm);
}

int dev_uart_getc(struct vm *vm)
{
	struct uart *u = &vm->virt->uart;
	if (u->rx_len == 0)
		return -1;
	int ch = u->rx[u->rx_head];
	u->rx_head = (u->rx_head + 1) % UART_RX_SIZE;
	u->rx_len--;
	update_irq(vm);
	return ch;
}

/* Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD. */
static uint8_t loop_msr(uint8_t mcr)
{
	return (uint8_t)(((mcr & 0x0c) << 4) | ((mcr & 0x01) << 5) | ((mcr & 0x02) << 3));
}

int dev_uart_read(struct vm *vm, uint64_t off, unsigned size, uint64_t *val)
{
	struct uart *u = &vm->virt->uart;
	uint8_t v = 0;
	(void)size;
	switch (off) {
	case R_RBR_THR:
		if (u->lcr & LCR_DLAB)
			v = u->dll;
		else if (u->rx_len)
			v = (uint8_t)dev_uart_getc(vm);
		break;
	case R_IER: v = (u->lcr & LCR_DLAB) ? u->dlm : u->ier; break;
	case R_IIR_FCR:
		v = iir(u);
		if ((v & 0x0f) == IIR_THRI) {
			u->thr_ipending = false;
			update_irq(vm);
		}
		break;
	case R_LCR: v = u->lcr; break;
	case R_MCR: v = u->mcr; break;
	case R_LSR: v = u->lsr | (u->rx_len ? LSR_DR : 0); break;
	case R_MSR: v = (u->mcr & MCR_LOOP) ? loop_msr(u->mcr) : u->msr; break;
	case R_SCR: v = u->scr; break;
	default: break;
	}
	*val = v;
	return 0;
}

int dev_uart_write(struct vm *vm, uint64_t off, unsigned size, uint64_t val)
{
	struct uart *u = &vm->virt->uart;
	uint8_t v = (uint8_t)val;
	(void)size;
	switch (off) {
	case R_RBR_THR:
		if (u->lcr & LCR_DLAB) {
			u->dll = v;
			break;
		}
		if (!(u->mcr & MCR_LOOP))
			dev_console_put(vm, (char)v);
		u->thr_ipending = true; /* sent at once: THR empty again */
		update_irq(vm);
		break;
	case R_IER:
		if (u->lcr & LCR_DLAB) {
			u->dlm = v;
			break;
		}
		if ((v & IER_THRI) && !(u->ier & IER_THRI))
			u->thr_ipending = true; /* THR is always empty */
		u->ier = v & 0x0f;
		update_irq(vm);
		break;
	case R_IIR_FCR:
		u->fcr = v & 0xc9;
		if (v & 0x02) /* clear the receive FIFO */
			u->rx_len = 0;
		update_irq(vm);
		break;
	case R_LCR: u->lcr = v; break;
	case R_MCR: u->mcr = v & 0x1f; break;
	case R_SCR: u->scr = v; break;
	default: break; /* LSR, MSR: read-only */
	}
	return 0;
}
