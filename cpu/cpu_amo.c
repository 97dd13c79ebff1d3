/*
 * A extension: AMOs as host atomic operations on the host pointer, LR/SC
 * with a per-hart reservation.
 *
 * SC is a host compare-and-swap against the value LR loaded, so it fails
 * whenever another hart changed the word in between -- with one caveat
 * (ABA): if other harts wrote the word and then wrote the old value back,
 * SC succeeds although the spec would let it fail.  That is invisible to
 * lock-free algorithms that compare values (all LR/SC loops in Linux).  The
 * reservation is dropped by every SC and every trap.  Misaligned AMO/LR/SC
 * raise the misaligned exception (they are not emulated).
 * vCPU thread only.
 */
#include "cpu/cpu_int.h"

#define SX32(v) ((uint64_t)(int64_t)(int32_t)(v))

static uint64_t amo_alu(int op, uint64_t old, uint64_t src, bool dw)
{
	int64_t so = dw ? (int64_t)old : (int32_t)old;
	int64_t ss = dw ? (int64_t)src : (int32_t)src;
	uint64_t uo = dw ? old : (uint32_t)old, us = dw ? src : (uint32_t)src;
	switch (op) {
	case 0: return src;                     /* swap */
	case 1: return old + src;               /* add */
	case 2: return old ^ src;               /* xor */
	case 3: return old & src;               /* and */
	case 4: return old | src;               /* or */
	case 5: return so < ss ? old : src;     /* min */
	case 6: return so > ss ? old : src;     /* max */
	case 7: return uo < us ? old : src;     /* minu */
	default: return uo > us ? old : src;    /* maxu */
	}
}

/* Atomic read-modify-write on host memory; returns the old value. */
static uint64_t amo_host(uint8_t *p, int op, uint64_t src, bool dw)
{
	if (dw) {
		uint64_t *q = (uint64_t *)p;
		switch (op) {
		case 0: return __atomic_exchange_n(q, src, __ATOMIC_SEQ_CST);
		case 1: return __atomic_fetch_add(q, src, __ATOMIC_SEQ_CST);
		case 2: return __atomic_fetch_xor(q, src, __ATOMIC_SEQ_CST);
		case 3: return __atomic_fetch_and(q, src, __ATOMIC_SEQ_CST);
		case 4: return __atomic_fetch_or(q, src, __ATOMIC_SEQ_CST);
		}
		uint64_t old = __atomic_load_n(q, __ATOMIC_RELAXED);
		while (!__atomic_compare_exchange_n(q, &old, amo_alu(op, old, src, true), true,
						    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
			;
		return old;
	}
	uint32_t *q = (uint32_t *)p, s = (uint32_t)src;
	switch (op) {
	case 0: return __atomic_exchange_n(q, s, __ATOMIC_SEQ_CST);
	case 1: return __atomic_fetch_add(q, s, __ATOMIC_SEQ_CST);
	case 2: return __atomic_fetch_xor(q, s, __ATOMIC_SEQ_CST);
	case 3: return __atomic_fetch_and(q, s, __ATOMIC_SEQ_CST);
	case 4: return __atomic_fetch_or(q, s, __ATOMIC_SEQ_CST);
	}
	uint32_t old = __atomic_load_n(q, __ATOMIC_RELAXED);
	while (!__atomic_compare_exchange_n(q, &old, (uint32_t)amo_alu(op, old, src, false), true,
					    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
		;
	return old;
}

static int amo_index(int op)
{
	int k = op >= OP_LR_D ? op - (OP_LR_D - OP_LR_W) : op;
	switch (k) {
	case OP_AMOSWAP_W: return 0;
	case OP_AMOADD_W: return 1;
	case OP_AMOXOR_W: return 2;
	case OP_AMOAND_W: return 3;
	case OP_AMOOR_W: return 4;
	case OP_AMOMIN_W: return 5;
	case OP_AMOMAX_W: return 6;
	case OP_AMOMINU_W: return 7;
	default: return 8;
	}
}

static int do_lr(struct cpu *c, uint64_t va, unsigned size, uint64_t *result)
{
	struct access a;
	uint64_t v;
	if (data_access(c, va, ACC_R, &a))
		return 1;
	if (a.host == NULL) {
		if (c->cfg.mem->mmio_read(c->cfg.mem_opaque, c->cfg.hart_id, a.gpa, size, &v)) {
			cpu_raise(c, EXC_LOAD_ACCESS, va);
			return 1;
		}
	} else {
		v = host_read(a.host, size);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	}
	c->resv_addr = va;
	c->resv_val = v;
	c->resv_valid = true;
	*result = size == 8 ? v : SX32(v);
	return 0;
}

/* The atomic write part of SC/AMO on RAM, inside the write-trap hooks. */
static uint64_t rmw_ram(struct cpu *c, const struct access *a, int op, bool sc, uint64_t src,
			unsigned size, bool *wrote)
{
	const struct cpu_mem_ops *ops = c->cfg.mem;
	uint64_t page = a->gpa & PG_MASK, res;
	bool trapped = pageset_has(&c->trap_pages, page);
	if (trapped && ops->write_pre)
		ops->write_pre(c->cfg.mem_opaque, c->cfg.hart_id, a->gpa, size, src);
	if (sc) {
		bool ok = false;
		if (c->resv_valid) {
			if (size == 8) {
				uint64_t exp = c->resv_val;
				ok = __atomic_compare_exchange_n((uint64_t *)a->host, &exp, src, false,
								 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
			} else {
				uint32_t exp = (uint32_t)c->resv_val;
				ok = __atomic_compare_exchange_n((uint32_t *)a->host, &exp,
								 (uint32_t)src, false,
								 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
			}
		}
		res = ok ? 0 : 1;
		*wrote = ok;
	} else {
		res = amo_host(a->host, amo_index(op), src, size == 8);
		*wrote = true;
	}
	if (trapped) {
		c->st.trapped_writes++;
		if (ops->write_post)
			ops->write_post(c->cfg.mem_opaque, c->cfg.hart_id, a->gpa, size, src);
	}
	if (*wrote && pageset_has(&c->code_pages, page)) {
		c->st.smc_invalidations++;
		tb_invalidate_page(c, page);
	}
	return res;
}

static int rmw_mmio(struct cpu *c, const struct access *a, uint64_t va, int op, uint64_t src,
		    unsigned size, uint64_t *old)
{
	const struct cpu_mem_ops *ops = c->cfg.mem;
	if (ops->mmio_read(c->cfg.mem_opaque, c->cfg.hart_id, a->gpa, size, old) ||
	    ops->mmio_write(c->cfg.mem_opaque, c->cfg.hart_id, a->gpa, size,
			    amo_alu(amo_index(op), *old, src, size == 8))) {
		cpu_raise(c, EXC_STORE_ACCESS, va);
		return 1;
	}
	return 0;
}

int mem_amo(struct cpu *c, const struct tinsn *i, uint64_t *result)
{
	int op = i->op;
	unsigned size = op >= OP_LR_D ? 8 : 4;
	uint64_t va = c->x[i->rs1];
	bool lr = op == OP_LR_W || op == OP_LR_D, sc = op == OP_SC_W || op == OP_SC_D;

	if (va & (size - 1)) {
		cpu_raise(c, lr ? EXC_LOAD_MISALIGNED : EXC_STORE_MISALIGNED, va);
		return 1;
	}
	if (lr)
		return do_lr(c, va, size, result);
	if (sc && (!c->resv_valid || c->resv_addr != va)) {
		/* No reservation: fails without writing.  The spec still lets
		 * it raise the store faults; we only check the access. */
		struct access a;
		if (data_access(c, va, ACC_W, &a))
			return 1;
		c->resv_valid = false;
		*result = 1;
		return 0;
	}
	struct access a;
	if (data_access(c, va, ACC_W, &a))
		return 1;
	uint64_t src = c->x[i->rs2], old;
	if (a.host == NULL) {
		if (sc) {
			c->resv_valid = false;
			*result = 1;
			return 0;
		}
		if (rmw_mmio(c, &a, va, op, src, size, &old))
			return 1;
	} else {
		bool wrote;
		old = rmw_ram(c, &a, op, sc, src, size, &wrote);
	}
	if (sc) {
		c->resv_valid = false;
		*result = old;
		return 0;
	}
	*result = size == 8 ? old : SX32(old);
	return 0;
}
