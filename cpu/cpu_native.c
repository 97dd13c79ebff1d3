/*
 * x86-64 code for the common prefix of a block ("native prefix").
 *
 * For each translated block we emit host code for its leading run of
 * simple instructions (integer ALU, MUL, LUI/AUIPC, aligned RAM loads and
 * stores through the TLB fast path, and a branch/JAL/fall-through
 * terminator).  The generated function is
 *     uint32_t fn(struct cpu *c [rdi], uint64_t base_pc [rsi])
 * and returns (k << 2) to say "continue with threaded instruction k" (the
 * first instruction it does not cover, or a load/store whose TLB check
 * failed: the threaded handler then takes the slow path), or 1/2 after
 * setting c->pc when the block ended through chain slot 0/1, or 3 after an
 * indirect jump (c->pc set, no chain).  It never
 * traps, never calls out and touches only x[], c->pc, the data TLB and
 * guest RAM, so everything else (traps, MMIO, write traps, SMC, instret)
 * stays in the threaded executor unchanged.  Guest registers live in
 * memory (c->x); rax/rcx/rdx are scratch.  The data TLB window (c->dtlb)
 * is read at every access: a flush moves it (cpu_int.h).
 *
 * Code memory: one RWX mapping per hart, bump-allocated; invalidated
 * blocks leak their code until the buffer fills, then the run loop flushes
 * every block and resets it (native_reset).  vCPU thread only.
 */
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#include "cpu/cpu_int.h"

#define CODE_BUF (16u << 20)
#define MAX_BLOCK_CODE 16384

struct emit {
	uint8_t *p;
	uint32_t stubs[TB_MAX_INSNS + 1]; /* rel32 fixups to the k-th stub */
	uint8_t *fix[TB_MAX_INSNS + 1];
	unsigned nfix;
};

static void b(struct emit *e, uint8_t v) { *e->p++ = v; }
static void d32(struct emit *e, uint32_t v) { memcpy(e->p, &v, 4); e->p += 4; }
static void d64(struct emit *e, uint64_t v) { memcpy(e->p, &v, 8); e->p += 8; }

#define XOFF(r) ((uint32_t)(offsetof(struct cpu, x) + 8u * (r)))

/* op reg, [rdi + disp32]; reg: 0 rax, 1 rcx, 2 rdx */
static void rm_rdi(struct emit *e, bool w, uint8_t opc, int reg, uint32_t disp)
{
	if (w)
		b(e, 0x48);
	b(e, opc);
	b(e, (uint8_t)(0x80 | (reg << 3) | 7));
	d32(e, disp);
}

static void ld_x(struct emit *e, int reg, int r) { rm_rdi(e, true, 0x8b, reg, XOFF(r)); }
static void st_x(struct emit *e, int reg, int r) { rm_rdi(e, true, 0x89, reg, XOFF(r)); }

static void mov_rax_imm(struct emit *e, int64_t v)
{
	if (v == (int32_t)v) {
		b(e, 0x48); b(e, 0xc7); b(e, 0xc0); d32(e, (uint32_t)v);
	} else {
		b(e, 0x48); b(e, 0xb8); d64(e, (uint64_t)v);
	}
}

/* rax op= imm (sign-extended 32): 0 add, 1 or, 4 and, 6 xor, 7 cmp */
static void alu_rax_imm(struct emit *e, int ext, int32_t imm)
{
	b(e, 0x48); b(e, 0x81); b(e, (uint8_t)(0xc0 | (ext << 3))); d32(e, (uint32_t)imm);
}

static void lea_rax_base(struct emit *e, int32_t off)
{
	b(e, 0x48); b(e, 0x8d); b(e, 0x86); d32(e, (uint32_t)off); /* lea rax,[rsi+off] */
}

/* Ends the block through chain slot `slot` (code slot + 1): sets c->pc and,
 * when the slot is chained to a block with native code and nobody asked the
 * hart to stop, jumps straight into it (tracking cur_tb/cur_base/instret as
 * the executor would); otherwise returns the code. */
static void exit_slot(struct emit *e, struct tb *tb, int slot, int32_t off)
{
	lea_rax_base(e, off);
	rm_rdi(e, true, 0x89, 0, (uint32_t)offsetof(struct cpu, pc));
	rm_rdi(e, false, 0x8b, 1, (uint32_t)offsetof(struct cpu, exit_req)); /* mov ecx,[exit_req] */
	b(e, 0x85); b(e, 0xc9);                                 /* test ecx, ecx */
	b(e, 0x75); uint8_t *j1 = e->p++;                       /* jnz ret */
	b(e, 0x48); b(e, 0xba); d64(e, (uint64_t)(uintptr_t)&tb->chain[slot]); /* mov rdx, &chain */
	b(e, 0x48); b(e, 0x8b); b(e, 0x12);                     /* mov rdx, [rdx] */
	b(e, 0x48); b(e, 0x85); b(e, 0xd2);                     /* test rdx, rdx */
	b(e, 0x74); uint8_t *j2 = e->p++;                       /* jz ret */
	b(e, 0x48); b(e, 0x8b); b(e, 0x8a); d32(e, (uint32_t)offsetof(struct tb, native));
	b(e, 0x48); b(e, 0x85); b(e, 0xc9);                     /* test rcx, rcx */
	b(e, 0x74); uint8_t *j3 = e->p++;                       /* jz ret */
	rm_rdi(e, true, 0x89, 2, (uint32_t)offsetof(struct cpu, cur_tb));   /* cur_tb = rdx */
	rm_rdi(e, true, 0x89, 0, (uint32_t)offsetof(struct cpu, cur_base)); /* cur_base = rax */
	b(e, 0x8b); b(e, 0x92); d32(e, (uint32_t)offsetof(struct tb, n));    /* mov edx, [rdx+n] */
	rm_rdi(e, true, 0x01, 2, (uint32_t)offsetof(struct cpu, instret));  /* add [instret], rdx */
	b(e, 0x48); b(e, 0x89); b(e, 0xc6);                     /* mov rsi, rax */
	b(e, 0xff); b(e, 0xe1);                                 /* jmp rcx */
	uint8_t *ret = e->p;
	*j1 = (uint8_t)(ret - j1 - 1);
	*j2 = (uint8_t)(ret - j2 - 1);
	*j3 = (uint8_t)(ret - j3 - 1);
	b(e, 0xb8); d32(e, (uint32_t)(slot + 1)); b(e, 0xc3);
}

static void movsxd_rax_eax(struct emit *e) { b(e, 0x48); b(e, 0x63); b(e, 0xc0); }

/* shift rax (w = 64-bit) by imm: ext 4 shl, 5 shr, 7 sar */
static void shift_imm(struct emit *e, bool w, int ext, int sh)
{
	if (w)
		b(e, 0x48);
	b(e, 0xc1); b(e, (uint8_t)(0xc0 | (ext << 3))); b(e, (uint8_t)sh);
}

static void shift_cl(struct emit *e, bool w, int ext)
{
	if (w)
		b(e, 0x48);
	b(e, 0xd3); b(e, (uint8_t)(0xc0 | (ext << 3)));
}

static void setcc_rax(struct emit *e, uint8_t cc)
{
	b(e, 0x0f); b(e, cc); b(e, 0xc0);       /* setcc al */
	b(e, 0x0f); b(e, 0xb6); b(e, 0xc0);     /* movzx eax, al */
}

static bool emit_alu(struct emit *e, const struct tinsn *t)
{
	int32_t imm = (int32_t)t->imm;
	switch (t->op) {
	case OP_LUI: case OP_LI: mov_rax_imm(e, t->imm); break;
	case OP_MV: ld_x(e, 0, t->rs1); break;
	case OP_AUIPC: lea_rax_base(e, (int32_t)(t->off + t->imm)); break;
	case OP_ADDI: ld_x(e, 0, t->rs1); alu_rax_imm(e, 0, imm); break;
	case OP_ORI: ld_x(e, 0, t->rs1); alu_rax_imm(e, 1, imm); break;
	case OP_ANDI: ld_x(e, 0, t->rs1); alu_rax_imm(e, 4, imm); break;
	case OP_XORI: ld_x(e, 0, t->rs1); alu_rax_imm(e, 6, imm); break;
	case OP_SLTI: ld_x(e, 0, t->rs1); alu_rax_imm(e, 7, imm); setcc_rax(e, 0x9c); break;
	case OP_SLTIU: ld_x(e, 0, t->rs1); alu_rax_imm(e, 7, imm); setcc_rax(e, 0x92); break;
	case OP_SLLI: ld_x(e, 0, t->rs1); shift_imm(e, true, 4, imm); break;
	case OP_SRLI: ld_x(e, 0, t->rs1); shift_imm(e, true, 5, imm); break;
	case OP_SRAI: ld_x(e, 0, t->rs1); shift_imm(e, true, 7, imm); break;
	case OP_ADD: ld_x(e, 0, t->rs1); rm_rdi(e, true, 0x03, 0, XOFF(t->rs2)); break;
	case OP_SUB: ld_x(e, 0, t->rs1); rm_rdi(e, true, 0x2b, 0, XOFF(t->rs2)); break;
	case OP_AND: ld_x(e, 0, t->rs1); rm_rdi(e, true, 0x23, 0, XOFF(t->rs2)); break;
	case OP_OR: ld_x(e, 0, t->rs1); rm_rdi(e, true, 0x0b, 0, XOFF(t->rs2)); break;
	case OP_XOR: ld_x(e, 0, t->rs1); rm_rdi(e, true, 0x33, 0, XOFF(t->rs2)); break;
	case OP_MUL: ld_x(e, 0, t->rs1); b(e, 0x48); b(e, 0x0f); b(e, 0xaf); b(e, 0x87);
		d32(e, XOFF(t->rs2)); break;
	case OP_SLT: ld_x(e, 0, t->rs1); rm_rdi(e, true, 0x3b, 0, XOFF(t->rs2)); setcc_rax(e, 0x9c); break;
	case OP_SLTU: ld_x(e, 0, t->rs1); rm_rdi(e, true, 0x3b, 0, XOFF(t->rs2)); setcc_rax(e, 0x92); break;
	case OP_SLL: case OP_SRL: case OP_SRA:
		ld_x(e, 1, t->rs2); ld_x(e, 0, t->rs1);
		shift_cl(e, true, t->op == OP_SLL ? 4 : t->op == OP_SRL ? 5 : 7); break;
	case OP_ADDIW: ld_x(e, 0, t->rs1); alu_rax_imm(e, 0, imm); movsxd_rax_eax(e); break;
	case OP_SLLIW: ld_x(e, 0, t->rs1); shift_imm(e, false, 4, imm); movsxd_rax_eax(e); break;
	case OP_SRLIW: ld_x(e, 0, t->rs1); shift_imm(e, false, 5, imm); movsxd_rax_eax(e); break;
	case OP_SRAIW: ld_x(e, 0, t->rs1); shift_imm(e, false, 7, imm); movsxd_rax_eax(e); break;
	case OP_ADDW: ld_x(e, 0, t->rs1); rm_rdi(e, false, 0x03, 0, XOFF(t->rs2)); movsxd_rax_eax(e); break;
	case OP_SUBW: ld_x(e, 0, t->rs1); rm_rdi(e, false, 0x2b, 0, XOFF(t->rs2)); movsxd_rax_eax(e); break;
	case OP_MULW: ld_x(e, 0, t->rs1); b(e, 0x0f); b(e, 0xaf); b(e, 0x87); d32(e, XOFF(t->rs2));
		movsxd_rax_eax(e); break;
	case OP_SLLW: case OP_SRLW: case OP_SRAW:
		ld_x(e, 1, t->rs2); ld_x(e, 0, t->rs1);
		shift_cl(e, false, t->op == OP_SLLW ? 4 : t->op == OP_SRLW ? 5 : 7);
		movsxd_rax_eax(e); break;
	default: return false;
	}
	st_x(e, 0, t->rd);
	return true;
}

static int mem_size(int op)
{
	switch (op) {
	case OP_LB: case OP_LBU: case OP_SB: return 1;
	case OP_LH: case OP_LHU: case OP_SH: return 2;
	case OP_LW: case OP_LWU: case OP_SW: return 4;
	case OP_LD: case OP_SD: return 8;
	default: return 0;
	}
}

/* rax = va; rcx = TLB entry; jne to the stub of instruction k unless the
 * tag at tag_off matches; then rax = host address. */
static void tlb_check(struct emit *e, const struct tinsn *t, int size, int tag_off, unsigned k)
{
	ld_x(e, 0, t->rs1);
	alu_rax_imm(e, 0, (int32_t)t->imm);
	b(e, 0x48); b(e, 0x89); b(e, 0xc1);                 /* mov rcx, rax */
	b(e, 0x48); b(e, 0xc1); b(e, 0xe9); b(e, PG_SHIFT); /* shr rcx, 12 */
	b(e, 0x81); b(e, 0xe1); d32(e, TLB_SIZE - 1);       /* and ecx, mask */
	b(e, 0x48); b(e, 0xc1); b(e, 0xe1); b(e, 5);        /* shl rcx, 5 (32-byte entries) */
	rm_rdi(e, true, 0x03, 1, (uint32_t)offsetof(struct cpu, dtlb)); /* add rcx, [dtlb] */
	b(e, 0x48); b(e, 0x89); b(e, 0xc2);                 /* mov rdx, rax */
	b(e, 0x48); b(e, 0x81); b(e, 0xe2); d32(e, (uint32_t)(PG_MASK | (uint64_t)(size - 1)));
	b(e, 0x48); b(e, 0x3b); b(e, 0x51); b(e, (uint8_t)tag_off); /* cmp rdx, [rcx+tag] */
	b(e, 0x0f); b(e, 0x85);                             /* jne stub_k */
	e->fix[e->nfix] = e->p;
	e->stubs[e->nfix++] = k;
	d32(e, 0);
	b(e, 0x48); b(e, 0x03); b(e, 0x41);                 /* add rax, [rcx+addend] */
	b(e, (uint8_t)offsetof(struct tlb_entry, addend));
}

static bool emit_mem(struct emit *e, const struct tinsn *t, unsigned k)
{
	int size = mem_size(t->op);
	if (size == 0)
		return false;
	bool store = t->op == OP_SB || t->op == OP_SH || t->op == OP_SW || t->op == OP_SD;
	tlb_check(e, t, size, store ? offsetof(struct tlb_entry, tag_w)
				    : offsetof(struct tlb_entry, tag_r), k);
	if (store) {
		ld_x(e, 2, t->rs2);
		switch (size) {
		case 1: b(e, 0x88); b(e, 0x10); break;             /* mov [rax], dl */
		case 2: b(e, 0x66); b(e, 0x89); b(e, 0x10); break; /* mov [rax], dx */
		case 4: b(e, 0x89); b(e, 0x10); break;             /* mov [rax], edx */
		default: b(e, 0x48); b(e, 0x89); b(e, 0x10); break;
		}
		return true;
	}
	switch (t->op) {
	case OP_LD: b(e, 0x48); b(e, 0x8b); b(e, 0x00); break;
	case OP_LW: b(e, 0x48); b(e, 0x63); b(e, 0x00); break;
	case OP_LWU: b(e, 0x8b); b(e, 0x00); break;
	case OP_LH: b(e, 0x48); b(e, 0x0f); b(e, 0xbf); b(e, 0x00); break;
	case OP_LHU: b(e, 0x0f); b(e, 0xb7); b(e, 0x00); break;
	case OP_LB: b(e, 0x48); b(e, 0x0f); b(e, 0xbe); b(e, 0x00); break;
	default: b(e, 0x0f); b(e, 0xb6); b(e, 0x00); break; /* LBU */
	}
	st_x(e, 0, t->rd);
	return true;
}

static bool emit_term(struct emit *e, struct tb *tb, const struct tinsn *t)
{
	static const uint8_t jcc[] = {[OP_BEQ - OP_BEQ] = 0x74, [OP_BNE - OP_BEQ] = 0x75,
				      [OP_BLT - OP_BEQ] = 0x7c, [OP_BGE - OP_BEQ] = 0x7d,
				      [OP_BLTU - OP_BEQ] = 0x72, [OP_BGEU - OP_BEQ] = 0x73};
	int32_t here = t->off;
	if (t->op >= OP_BEQ && t->op <= OP_BGEU) {
		ld_x(e, 0, t->rs1);
		rm_rdi(e, true, 0x3b, 0, XOFF(t->rs2));
		b(e, jcc[t->op - OP_BEQ]);
		uint8_t *rel = e->p++; /* rel8: exit_slot is 92 bytes */
		exit_slot(e, tb, 1, here + t->len);
		*rel = (uint8_t)(e->p - rel - 1);
		exit_slot(e, tb, 0, here + (int32_t)t->imm);
		return true;
	}
	if (t->op == OP_JAL) {
		lea_rax_base(e, here + t->len);
		st_x(e, 0, t->rd);
		exit_slot(e, tb, 0, here + (int32_t)t->imm);
		return true;
	}
	if (t->op == OP_JALR) {
		/* target first: rd may be rs1 */
		ld_x(e, 0, t->rs1);
		alu_rax_imm(e, 0, (int32_t)t->imm);
		alu_rax_imm(e, 4, -2);
		rm_rdi(e, true, 0x89, 0, (uint32_t)offsetof(struct cpu, pc));
		lea_rax_base(e, here + t->len);
		st_x(e, 0, t->rd);
		b(e, 0xb8); d32(e, 3); b(e, 0xc3); /* indirect: look it up */
		return true;
	}
	if (t->op == OP_FALLTHRU) {
		exit_slot(e, tb, 1, here);
		return true;
	}
	return false;
}

int native_init(struct cpu *c)
{
	void *m = mmap(NULL, CODE_BUF, PROT_READ | PROT_WRITE | PROT_EXEC,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return -1;
	c->code_buf = m;
	c->code_used = 0;
	return 0;
}

void native_fini(struct cpu *c)
{
	if (c->code_buf)
		munmap(c->code_buf, CODE_BUF);
	c->code_buf = NULL;
}

bool native_full(const struct cpu *c)
{
	return c->code_buf && c->code_used + MAX_BLOCK_CODE > CODE_BUF;
}

void native_reset(struct cpu *c)
{
	c->code_used = 0;
}

/* Emits the native prefix of tb (tb->native stays NULL when the very first
 * instruction is not covered or the buffer is full). */
void native_translate(struct cpu *c, struct tb *tb, unsigned total)
{
	if (c->code_buf == NULL || native_full(c))
		return;
	struct emit e = {.p = c->code_buf + c->code_used};
	uint8_t *start = e.p;
	unsigned k = 0;
	for (; k < total; k++) {
		const struct tinsn *t = &tb->insns[k];
		if (emit_term(&e, tb, t))
			goto done;
		if (!emit_alu(&e, t) && !emit_mem(&e, t, k))
			break;
	}
	if (k == 0)
		return;
	b(&e, 0xb8); d32(&e, k << 2); b(&e, 0xc3); /* continue threaded at k */
done:
	for (unsigned f = 0; f < e.nfix; f++) {
		uint8_t *stub = e.p;
		b(&e, 0xb8); d32(&e, e.stubs[f] << 2); b(&e, 0xc3);
		int32_t rel = (int32_t)(stub - (e.fix[f] + 4));
		memcpy(e.fix[f], &rel, 4);
	}
	c->code_used += (size_t)(e.p - start);
	c->code_used = (c->code_used + 15) & ~(size_t)15;
	tb->native = (native_fn)(void *)start;
}
