/*
 * PLIC (sifive,plic-1.0.0) with QEMU virt's layout: priorities at 4*src,
 * pending bits at 0x1000, enables at 0x2000 + 0x80*ctx, threshold and
 * claim/complete at 0x200000 + 0x1000*ctx.  Context 2h is hart h's M-mode
 * (MEIP), 2h+1 its S-mode (SEIP), matching interrupts-extended in the DTB.
 * Sources are level-triggered: a source is pending while its line is high
 * and it is not claimed; complete re-arms it.  Under vm->lock.
 * In a multi-node run the PLIC lives on the console node; a context of a
 * hart elsewhere drives that hart's line with messages (vml_remote_irq).
 */
#include <errno.h>

#include "node/virt_int.h"

#define PRIO_MASK 7u
#define SRC_MASK (((1ull << (VIRT_PLIC_NDEV + 1)) - 1) & ~1ull)

static unsigned nctx(const struct vm *vm)
{
	return 2 * vm->cfg.harts;
}

/* Best pending enabled source above the context's threshold, or 0. */
static unsigned best(const struct plic *p, unsigned ctx)
{
	uint32_t cand = p->pending & p->enable[ctx];
	unsigned src = 0, prio = p->threshold[ctx];
	for (unsigned s = 1; cand >> s; s++)
		if (((cand >> s) & 1) && p->prio[s] > prio) {
			prio = p->prio[s];
			src = s;
		}
	return src;
}

static void update(struct vm *vm)
{
	struct plic *p = &vm->virt->plic;
	p->pending = p->line & ~p->claimed & (uint32_t)SRC_MASK;
	for (unsigned ctx = 0; ctx < nctx(vm); ctx++) {
		bool on = best(p, ctx) != 0;
		if (on != p->out[ctx]) {
			p->out[ctx] = on;
			unsigned irq = (ctx & 1) ? CPU_IRQ_SEI : CPU_IRQ_MEI;
			if (vm->harts[ctx / 2].cpu)
				cpu_set_irq(vm->harts[ctx / 2].cpu, irq, on);
			else /* hart of another node: a "set level" message */
				vml_remote_irq(vm->virt->mn, ctx / 2, irq, on);
		}
	}
}

void dev_plic_set_line(struct vm *vm, unsigned src, bool level)
{
	struct plic *p = &vm->virt->plic;
	uint32_t old = p->line;
	if (level)
		p->line |= 1u << src;
	else
		p->line &= ~(1u << src);
	if (old != p->line)
		update(vm);
}

int dev_plic_read(struct vm *vm, uint64_t off, unsigned size, uint64_t *val)
{
	struct plic *p = &vm->virt->plic;
	uint64_t v = 0;
	if (size != 4)
		return -EINVAL;
	if (off < 0x1000) {
		if (off / 4 >= 1 && off / 4 <= VIRT_PLIC_NDEV)
			v = p->prio[off / 4];
	} else if (off == 0x1000) {
		v = p->pending;
	} else if (off >= 0x2000 && off < 0x200000) {
		unsigned ctx = (unsigned)((off - 0x2000) / 0x80);
		if (ctx < nctx(vm) && (off & 0x7f) == 0)
			v = p->enable[ctx];
	} else if (off >= 0x200000) {
		unsigned ctx = (unsigned)((off - 0x200000) / 0x1000);
		if (ctx < nctx(vm) && (off & 0xfff) == 0) {
			v = p->threshold[ctx];
		} else if (ctx < nctx(vm) && (off & 0xfff) == 4) {
			unsigned s = best(p, ctx);
			if (s) {
				p->claimed |= 1u << s;
				update(vm);
			}
			v = s;
		}
	}
	*val = v;
	return 0;
}

int dev_plic_write(struct vm *vm, uint64_t off, unsigned size, uint64_t val)
{
	struct plic *p = &vm->virt->plic;
	if (size != 4)
		return -EINVAL;
	if (off < 0x1000) {
		if (off / 4 >= 1 && off / 4 <= VIRT_PLIC_NDEV)
			p->prio[off / 4] = (uint32_t)val & PRIO_MASK;
	} else if (off >= 0x2000 && off < 0x200000) {
		unsigned ctx = (unsigned)((off - 0x2000) / 0x80);
		if (ctx < nctx(vm) && (off & 0x7f) == 0)
			p->enable[ctx] = (uint32_t)val & (uint32_t)SRC_MASK;
	} else if (off >= 0x200000) {
		unsigned ctx = (unsigned)((off - 0x200000) / 0x1000);
		if (ctx < nctx(vm) && (off & 0xfff) == 0)
			p->threshold[ctx] = (uint32_t)val & PRIO_MASK;
		else if (ctx < nctx(vm) && (off & 0xfff) == 4 && val >= 1 && val <= VIRT_PLIC_NDEV)
			p->claimed &= ~(1u << val);
	} else {
		return 0; /* pending bits are read-only */
	}
	update(vm);
	return 0;
}
