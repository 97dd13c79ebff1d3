/*
 * difftest_gen: writes a random but valid RV64IMAC program (GNU assembler
 * source) for differential testing against QEMU.
 *
 *   difftest_gen --seed N [--len K] [--prefix P] [-o FILE]
 *
 * The program sets every free register to a random value, runs K random
 * instructions (ALU, M, loads/stores/AMOs into a 256-byte scratch buffer,
 * forward-only branches and jal, compressed forms, CSR ops on sscratch and
 * reads of mhartid), then calls dt_dump (dump.c), which prints all x
 * registers and the scratch buffer and exits.  Registers with fixed roles:
 * x0, sp, gp (address temporary for AMOs), tp (hart id, used by the
 * runtime), s1 and s11 (scratch base).  The stream depends only on the
 * seed and K; --prefix P keeps only the first P instructions (branches past
 * the cut go to the end), which is how the harness bisects a mismatch to
 * the first differing instruction.  Instruction i is preceded by the
 * global label dt_i<i> so its address can be found for disassembly.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRATCH 256

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static unsigned pick(unsigned n) { return (unsigned)(rnd() % n); }

/* free registers: not x0, sp(2), gp(3), tp(4), s1(9), s11(27) */
static const int free_regs[] = {1, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
				20, 21, 22, 23, 24, 25, 26, 28, 29, 30, 31};
#define NFREE (int)(sizeof(free_regs) / sizeof(free_regs[0]))
/* free registers reachable by 3-bit compressed fields (x8..x15 minus s1) */
static const int cregs[] = {8, 10, 11, 12, 13, 14, 15};

static int rreg(void) { return free_regs[pick(NFREE)]; }
static int rsrc(void) { return pick(8) == 0 ? 0 : rreg(); } /* x0 as a source now and then */
static int creg(void) { return cregs[pick(7)]; }

/* interesting immediates: edges more often than uniform */
static long imm12(void)
{
	static const long edge[] = {0, 1, -1, 2047, -2048, 31, 32, 63, -2, 0x7ff, 0x555, -0x556};
	return pick(3) == 0 ? edge[pick(12)] : (long)pick(4096) - 2048;
}

static uint64_t rand64(void)
{
	static const uint64_t edge[] = {0, 1, ~0ull, 0x8000000000000000ull, 0x7fffffffffffffffull,
					0x80000000ull, 0xffffffff80000000ull, 0x7fffffffull, 0xffffffffull};
	return pick(4) == 0 ? edge[pick(9)] : rnd();
}

struct gen {
	FILE *out;
	int len, prefix;
};

static void target(struct gen *g, int i, char *buf, size_t n)
{
	int t = i + 1 + (int)pick(8);
	if (t > g->len)
		t = g->len;
	if (t >= g->prefix)
		snprintf(buf, n, "dt_end");
	else
		snprintf(buf, n, "dt_i%d", t);
}

static void emit_alu(FILE *o)
{
	static const char *rr[] = {"add", "sub", "sll", "srl", "sra", "slt", "sltu", "xor", "or", "and",
				   "addw", "subw", "sllw", "srlw", "sraw", "mul", "mulh", "mulhsu", "mulhu",
				   "div", "divu", "rem", "remu", "mulw", "divw", "divuw", "remw", "remuw"};
	static const char *ri[] = {"addi", "slti", "sltiu", "xori", "ori", "andi", "addiw"};
	static const char *sh[] = {"slli", "srli", "srai"};
	static const char *shw[] = {"slliw", "srliw", "sraiw"};
	switch (pick(6)) {
	case 0:
	case 1:
		fprintf(o, "%s x%d, x%d, x%d", rr[pick(28)], rreg(), rsrc(), rsrc());
		break;
	case 2:
		fprintf(o, "%s x%d, x%d, %ld", ri[pick(7)], rreg(), rsrc(), imm12());
		break;
	case 3:
		fprintf(o, "%s x%d, x%d, %u", sh[pick(3)], rreg(), rsrc(), pick(64));
		break;
	case 4:
		fprintf(o, "%s x%d, x%d, %u", shw[pick(3)], rreg(), rsrc(), pick(32));
		break;
	default:
		fprintf(o, "%s x%d, 0x%x", pick(2) ? "lui" : "auipc", rreg(), pick(1 << 20));
	}
}

static void emit_mem(FILE *o)
{
	static const char *ld[] = {"lb", "lbu", "lh", "lhu", "lw", "lwu", "ld"};
	static const char *st[] = {"sb", "sh", "sw", "sd"};
	static const int ldw[] = {1, 1, 2, 2, 4, 4, 8}, stw[] = {1, 2, 4, 8};
	int misaligned = pick(10) == 0;
	if (pick(2)) {
		int k = (int)pick(7), w = ldw[k];
		int off = (int)pick(SCRATCH / w) * w;
		if (misaligned && w > 1)
			off = (int)pick(SCRATCH - 8) + 1;
		fprintf(o, "%s x%d, %d(s11)", ld[k], rreg(), off);
	} else {
		int k = (int)pick(4), w = stw[k];
		int off = (int)pick(SCRATCH / w) * w;
		if (misaligned && w > 1)
			off = (int)pick(SCRATCH - 8) + 1;
		fprintf(o, "%s x%d, %d(s11)", st[k], rsrc(), off);
	}
}

static void emit_amo(FILE *o)
{
	static const char *op[] = {"amoswap", "amoadd", "amoxor", "amoand", "amoor",
				   "amomin", "amomax", "amominu", "amomaxu"};
	int d = pick(2), w = d ? 8 : 4;
	int off = (int)pick(SCRATCH / w) * w;
	if (pick(6) == 0) /* an LR/SC pair that succeeds */
		fprintf(o, "addi gp, s11, %d; lr.%c x%d, (gp); sc.%c x%d, x%d, (gp)", off, d ? 'd' : 'w',
			rreg(), d ? 'd' : 'w', rreg(), rsrc());
	else
		fprintf(o, "addi gp, s11, %d; %s.%c x%d, x%d, (gp)", off, op[pick(9)], d ? 'd' : 'w',
			rreg(), rsrc());
}

static void emit_rvc(FILE *o)
{
	int r = rreg();
	long i6 = (long)pick(64) - 32;
	switch (pick(14)) {
	case 0: fprintf(o, "c.addi x%d, %ld", r, i6 ? i6 : 1); break;
	case 1: fprintf(o, "c.li x%d, %ld", r, i6); break;
	case 2: fprintf(o, "c.lui x%d, %ld", r, pick(2) ? (long)pick(31) + 1 : (long)0xfffe0 + pick(32)); break;
	case 3: fprintf(o, "c.slli x%d, %u", r, pick(63) + 1); break;
	case 4: fprintf(o, "c.mv x%d, x%d", r, rreg()); break;
	case 5: fprintf(o, "c.add x%d, x%d", r, rreg()); break;
	case 6: fprintf(o, "c.addiw x%d, %ld", r, i6); break;
	case 7: fprintf(o, "c.%s x%d, %u", pick(2) ? "srli" : "srai", creg(), pick(63) + 1); break;
	case 8: fprintf(o, "c.andi x%d, %ld", creg(), i6); break;
	case 9: {
		static const char *ops[] = {"sub", "xor", "or", "and", "subw", "addw"};
		fprintf(o, "c.%s x%d, x%d", ops[pick(6)], creg(), creg());
		break;
	}
	case 10: fprintf(o, "c.ld x%d, %u(s1)", creg(), pick(SCRATCH / 8) * 8); break;
	case 11: fprintf(o, "c.lw x%d, %u(s1)", creg(), pick(32) * 4); break;
	case 12: fprintf(o, "c.sd x%d, %u(s1)", creg(), pick(SCRATCH / 8) * 8); break;
	default: fprintf(o, "c.sw x%d, %u(s1)", creg(), pick(32) * 4); break;
	}
}

static void emit_csr(FILE *o)
{
	static const char *op[] = {"csrrw", "csrrs", "csrrc"};
	static const char *opi[] = {"csrrwi", "csrrsi", "csrrci"};
	switch (pick(3)) {
	case 0: fprintf(o, "%s x%d, sscratch, x%d", op[pick(3)], rreg(), rsrc()); break;
	case 1: fprintf(o, "%s x%d, sscratch, %u", opi[pick(3)], rreg(), pick(32)); break;
	default: fprintf(o, "csrr x%d, mhartid", rreg());
	}
}

static void emit_branch(struct gen *g, int i)
{
	static const char *br[] = {"beq", "bne", "blt", "bge", "bltu", "bgeu"};
	char t[32];
	target(g, i, t, sizeof(t));
	switch (pick(5)) {
	case 0: fprintf(g->out, "jal x%d, %s", rreg(), t); break;
	case 1: fprintf(g->out, "c.%s x%d, %s", pick(2) ? "beqz" : "bnez", creg(), t); break;
	default: fprintf(g->out, "%s x%d, x%d, %s", br[pick(6)], rsrc(), rsrc(), t);
	}
}

static void emit_one(struct gen *g, int i)
{
	unsigned c = pick(100);
	fprintf(g->out, "dt_i%d:\n\t", i);
	if (c < 40)
		emit_alu(g->out);
	else if (c < 58)
		emit_mem(g->out);
	else if (c < 64)
		emit_amo(g->out);
	else if (c < 82)
		emit_rvc(g->out);
	else if (c < 86)
		emit_csr(g->out);
	else
		emit_branch(g, i);
	fprintf(g->out, "\n");
}

static int usage(void)
{
	fprintf(stderr, "usage: difftest_gen --seed N [--len K] [--prefix P] [-o FILE]\n"
			"  writes a random RV64IMAC test program (assembler source)\n");
	return 2;
}

static int parse_num(const char *s, const char *what, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 0);
	if (errno || *end || v < lo || v > hi) {
		fprintf(stderr, "difftest_gen: %s '%s': expected an integer in %ld..%ld\n", what, s, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	long seed = -1, len = 200, prefix = -1;
	const char *path = NULL;
	for (int a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
			usage();
			return 0;
		}
		if (a + 1 >= argc)
			return usage();
		if (!strcmp(argv[a], "--seed")) {
			if (parse_num(argv[++a], "--seed", 0, 0x7fffffffl, &seed))
				return 2;
		} else if (!strcmp(argv[a], "--len")) {
			if (parse_num(argv[++a], "--len", 1, 100000, &len))
				return 2;
		} else if (!strcmp(argv[a], "--prefix")) {
			if (parse_num(argv[++a], "--prefix", 0, 100000, &prefix))
				return 2;
		} else if (!strcmp(argv[a], "-o")) {
			path = argv[++a];
		} else {
			fprintf(stderr, "difftest_gen: unknown option '%s'\n", argv[a]);
			return usage();
		}
	}
	if (seed < 0)
		return usage();
	if (prefix < 0 || prefix > len)
		prefix = len;
	FILE *o = path ? fopen(path, "w") : stdout;
	if (!o) {
		fprintf(stderr, "difftest_gen: cannot write %s: %s\n", path, strerror(errno));
		return 1;
	}
	rng_state = 0x9e3779b97f4a7c15ull ^ ((uint64_t)seed * 0xbf58476d1ce4e5b9ull);
	for (int k = 0; k < 4; k++)
		rnd();
	struct gen g = {.out = o, .len = (int)len, .prefix = (int)prefix};
	fprintf(o, "# difftest_gen --seed %ld --len %ld --prefix %ld\n", seed, len, prefix);
	fprintf(o, "\t.text\n\t.globl main\n\t.option rvc\nmain:\n\tla s11, dt_scratch\n\tmv s1, s11\n");
	for (int k = 0; k < SCRATCH / 8; k++)
		fprintf(o, "\tli t0, 0x%llx\n\tsd t0, %d(s11)\n", (unsigned long long)rand64(), k * 8);
	fprintf(o, "\tcsrw sscratch, zero\n");
	for (int k = 0; k < NFREE; k++)
		fprintf(o, "\tli x%d, 0x%llx\n", free_regs[k], (unsigned long long)rand64());
	for (int i = 0; i < g.len; i++) {
		/* generate every instruction so the stream does not depend on the cut */
		if (i < g.prefix) {
			emit_one(&g, i);
		} else {
			FILE *save = g.out;
			g.out = fopen("/dev/null", "w");
			if (g.out) {
				emit_one(&g, i);
				fclose(g.out);
			}
			g.out = save;
		}
	}
	fprintf(o, "dt_end:\n\tj dt_dump\n\n\t.bss\n\t.balign 64\n\t.globl dt_scratch\ndt_scratch:\n\t.zero %d\n",
		SCRATCH);
	if (path && fclose(o)) {
		fprintf(stderr, "difftest_gen: writing %s: %s\n", path, strerror(errno));
		return 1;
	}
	return 0;
}
