/*
 * Translation cache: guest basic blocks -> threaded code, looked up by
 * guest-physical PC (a small jump cache keyed by virtual PC in front),
 * chained to their successors in the same page, invalidated per guest page.
 *
 * A block never spans two pages (an instruction straddling a page boundary
 * becomes a one-instruction block kept in a small straddle cache keyed by
 * both pages, and never chained), so every chain links two blocks of the
 * same page and dropping a page's blocks unchains everything that pointed
 * at them.  Dropped blocks go to a
 * graveyard freed at the next block boundary, because the invalidation can
 * come from a store inside the very block being run.  vCPU thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_int.h"

static inline uint32_t hash_gpa(uint64_t gpa)
{
	return (uint32_t)((gpa >> 1) ^ (gpa >> 14)) & (TB_HASH_SIZE - 1);
}

static inline uint32_t hash_page(uint64_t page)
{
	return (uint32_t)((page >> PG_SHIFT) ^ (page >> 25)) & (TB_HASH_SIZE - 1);
}

static bool is_terminator(int op)
{
	return (op >= OP_JAL && op <= OP_BGEU) || op == OP_ILLEGAL ||
	       (op >= OP_FENCE_I && op <= OP_CSRRCI);
}

static bool is_sys(int op)
{
	return op >= OP_FENCE_I && op <= OP_CSRRCI;
}

static uint16_t ld16(const uint8_t *p)
{
	return __atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED);
}

/* Fills t from d, with the small peephole rewrites. */
static void emit(struct tinsn *t, const struct dinsn *d, unsigned off)
{
	t->op = d->op;
	t->rd = d->rd ? d->rd : 32;
	t->rs1 = d->rs1;
	t->rs2 = d->rs2;
	t->len = d->len;
	t->off = (uint16_t)off;
	t->imm = d->imm;
	if (d->op == OP_ILLEGAL)
		t->imm = d->raw;
	else if (is_sys(d->op))
		t->imm = (int64_t)(((uint64_t)d->raw << 32) | (uint32_t)d->imm);
	else if (d->op == OP_ADDI && d->rs1 == 0)
		t->op = OP_LI;
	else if (d->op == OP_ADDI && d->imm == 0)
		t->op = OP_MV;
	else if ((d->op == OP_ADD || d->op == OP_OR) && d->rs1 == 0) {
		t->op = OP_MV;
		t->rs1 = d->rs2;
	} else if ((d->op == OP_ADD || d->op == OP_OR) && d->rs2 == 0)
		t->op = OP_MV;
	t->label = cpu_exec_labels()[t->op];
}

static void tb_insert(struct cpu *c, struct tb *tb)
{
	uint64_t page = tb->gpa & PG_MASK;
	uint32_t h = hash_gpa(tb->gpa), hp = hash_page(page);
	tb->hnext = c->tb_hash[h];
	c->tb_hash[h] = tb;
	tb->pnext = c->tb_page_hash[hp];
	c->tb_page_hash[hp] = tb;
	c->tb_count++;
	if (!pageset_has(&c->code_pages, page)) {
		pageset_add(&c->code_pages, page);
		tlb_drop_write(c, page); /* stores to it must see the code */
	}
	/* derived(CODE) was reported by translate(), before the read */
}

static unsigned straddle_idx(uint64_t gpa, uint64_t gpa2)
{
	return (unsigned)((gpa >> PG_SHIFT) ^ (gpa2 >> PG_SHIFT)) & (STRADDLE_SIZE - 1);
}

static void straddle_kill(struct cpu *c, unsigned k)
{
	struct tb *tb = c->straddle[k];
	if (tb == NULL)
		return;
	c->straddle[k] = NULL;
	tb->dead = 1;
	tb->gnext = c->graveyard;
	c->graveyard = tb;
	c->st.blocks_invalidated++;
	cpu_obs(c, false, CPU_DERIV_CODE, tb->gpa & PG_MASK);
	cpu_obs(c, false, CPU_DERIV_CODE, tb->gpa2);
}

static void code_page_add(struct cpu *c, uint64_t page)
{
	if (!pageset_has(&c->code_pages, page)) {
		pageset_add(&c->code_pages, page);
		tlb_drop_write(c, page); /* stores to it must see the code */
	}
}

static void straddle_insert(struct cpu *c, struct tb *tb)
{
	unsigned k = straddle_idx(tb->gpa, tb->gpa2);
	straddle_kill(c, k);
	c->straddle[k] = tb;
	code_page_add(c, tb->gpa & PG_MASK);
	code_page_add(c, tb->gpa2);
	/* derived(CODE) of both pages was reported by translate() */
}

/* The cached block of the instruction straddling from page offset 0xffe
 * at vpc, or NULL; *fault when fetching the second page trapped. */
static struct tb *straddle_find(struct cpu *c, uint64_t vpc, uint64_t gpa, bool *fault)
{
	uint8_t *h2;
	uint64_t g2;
	*fault = false;
	if (mem_fetch_page(c, (vpc & PG_MASK) + PG_SIZE, &h2, &g2)) {
		*fault = true;
		return NULL;
	}
	struct tb *tb = c->straddle[straddle_idx(gpa, g2)];
	if (tb && tb->gpa == gpa && tb->gpa2 == g2)
		return tb;
	return NULL;
}

/* Translates the block at vpc (host page `page`, physical gpa).  NULL when
 * fetching the second half of a straddling instruction faulted. */
static struct tb *translate(struct cpu *c, uint64_t vpc, const uint8_t *page, uint64_t gpa)
{
	struct tinsn buf[TB_MAX_INSNS + 1];
	unsigned n = 0, off = 0, max = c->cfg.single_step ? 1 : TB_MAX_INSNS;
	unsigned po0 = (unsigned)(vpc & (PG_SIZE - 1));
	bool once = false, term = false;
	uint64_t g2_seen = 0;

	/* Report the derivation BEFORE reading the code: the write trace then
	 * exists first, so a store by another hart either is seen by the read
	 * or notifies us (docs/trace.md).  Failures below undo it. */
	cpu_obs(c, true, CPU_DERIV_CODE, gpa & PG_MASK);
	while (po0 + off < PG_SIZE) {
		unsigned po = po0 + off;
		uint32_t raw = ld16(page + po);
		if ((raw & 3) == 3) {
			if (po + 2 >= PG_SIZE) {
				uint8_t *h2;
				uint64_t g2;
				if (n > 0)
					break;
				if (mem_fetch_page(c, (vpc & PG_MASK) + PG_SIZE, &h2, &g2)) {
					cpu_obs(c, false, CPU_DERIV_CODE, gpa & PG_MASK);
					return NULL;
				}
				cpu_obs(c, true, CPU_DERIV_CODE, g2);
				g2_seen = g2;
				raw |= (uint32_t)ld16(h2) << 16;
				once = true;
			} else {
				raw |= (uint32_t)ld16(page + po + 2) << 16;
			}
		}
		struct dinsn d;
		cpu_decode(raw, &d);
		emit(&buf[n++], &d, off);
		off += d.len;
		if (is_terminator(d.op)) {
			term = true;
			break;
		}
		if (n >= max || once)
			break;
	}
	unsigned total = n;
	if (!term) {
		struct tinsn *t = &buf[total++];
		memset(t, 0, sizeof(*t));
		t->op = OP_FALLTHRU;
		t->off = (uint16_t)off;
		t->label = cpu_exec_labels()[OP_FALLTHRU];
	}
	struct tb *tb = calloc(1, sizeof(*tb) + total * sizeof(struct tinsn));
	if (tb == NULL) {
		/* Out of host memory: the guest sees a fetch access fault
		 * rather than the host dying. */
		cpu_obs(c, false, CPU_DERIV_CODE, gpa & PG_MASK);
		if (once)
			cpu_obs(c, false, CPU_DERIV_CODE, g2_seen);
		cpu_raise(c, EXC_INSN_ACCESS, vpc);
		return NULL;
	}
	tb->gpa = gpa;
	tb->n = n;
	tb->bytes = (uint16_t)off;
	tb->once = once;
	memcpy(tb->insns, buf, total * sizeof(struct tinsn));
	c->st.blocks_translated++;
	if (once) {
		tb->gpa2 = g2_seen;
		straddle_insert(c, tb);
	} else {
		native_translate(c, tb, total);
		tb_insert(c, tb);
	}
	return tb;
}

struct tb *tb_find(struct cpu *c, uint64_t vpc)
{
	uint32_t j = (uint32_t)(vpc >> 1) & (JC_SIZE - 1);
	uint32_t gen = (c->jc_gen << 2) | (uint32_t)c->xmmu;
	if (c->jc[j].vpc == vpc && c->jc[j].gen == gen && c->jc[j].tb)
		return c->jc[j].tb;
	c->st.tb_lookups++;
	uint8_t *page;
	uint64_t gpage;
	if (mem_fetch_page(c, vpc, &page, &gpage))
		return NULL;
	uint64_t gpa = gpage | (vpc & (PG_SIZE - 1));
	struct tb *tb;
	if ((vpc & (PG_SIZE - 1)) == PG_SIZE - 2 && (ld16(page + PG_SIZE - 2) & 3) == 3) {
		bool fault;
		tb = straddle_find(c, vpc, gpa, &fault);
		if (fault)
			return NULL;
		return tb ? tb : translate(c, vpc, page, gpa);
	}
	for (tb = c->tb_hash[hash_gpa(gpa)]; tb; tb = tb->hnext)
		if (tb->gpa == gpa)
			break;
	if (tb == NULL) {
		tb = translate(c, vpc, page, gpa);
		if (tb == NULL)
			return tb;
	}
	c->jc[j].vpc = vpc;
	c->jc[j].gen = gen;
	c->jc[j].tb = tb;
	return tb;
}

void tb_jc_flush(struct cpu *c)
{
	if (++c->jc_gen >= (1u << 29)) {
		memset(c->jc, 0, sizeof(c->jc));
		c->jc_gen = 1;
	}
}

static void unlink_hash(struct cpu *c, struct tb *tb)
{
	struct tb **pp = &c->tb_hash[hash_gpa(tb->gpa)];
	while (*pp != tb)
		pp = &(*pp)->hnext;
	*pp = tb->hnext;
}

static void tb_kill(struct cpu *c, struct tb *tb)
{
	tb->dead = 1;
	tb->gnext = c->graveyard;
	c->graveyard = tb;
	c->tb_count--;
	c->st.blocks_invalidated++;
	cpu_obs(c, false, CPU_DERIV_CODE, tb->gpa & PG_MASK);
}

void tb_invalidate_page(struct cpu *c, uint64_t gpa_page)
{
	if (!pageset_has(&c->code_pages, gpa_page))
		return;
	struct tb **pp = &c->tb_page_hash[hash_page(gpa_page)];
	while (*pp) {
		struct tb *tb = *pp;
		if ((tb->gpa & PG_MASK) == gpa_page) {
			*pp = tb->pnext;
			unlink_hash(c, tb);
			tb_kill(c, tb);
		} else {
			pp = &tb->pnext;
		}
	}
	for (unsigned k = 0; k < STRADDLE_SIZE; k++)
		if (c->straddle[k] && ((c->straddle[k]->gpa & PG_MASK) == gpa_page ||
				       c->straddle[k]->gpa2 == gpa_page))
			straddle_kill(c, k);
	pageset_del(&c->code_pages, gpa_page);
	tb_jc_flush(c);
	if (c->in_exec) {
		c->smc_exit = true;
		__atomic_fetch_or(&c->exit_req, EXIT_REQ_SMC, __ATOMIC_RELAXED);
	}
}

void tb_flush_all(struct cpu *c)
{
	for (int h = 0; h < TB_HASH_SIZE; h++) {
		struct tb *tb = c->tb_hash[h];
		while (tb) {
			struct tb *next = tb->hnext;
			tb_kill(c, tb);
			tb = next;
		}
		c->tb_hash[h] = NULL;
		c->tb_page_hash[h] = NULL;
	}
	for (unsigned k = 0; k < STRADDLE_SIZE; k++)
		straddle_kill(c, k);
	pageset_free(&c->code_pages);
	tb_jc_flush(c);
	if (c->in_exec) {
		c->smc_exit = true;
		__atomic_fetch_or(&c->exit_req, EXIT_REQ_SMC, __ATOMIC_RELAXED);
	}
}

void tb_reap(struct cpu *c)
{
	while (c->graveyard) {
		struct tb *tb = c->graveyard;
		c->graveyard = tb->gnext;
		free(tb);
	}
}
