/*
 * ELF64 loader for RISC-V guest images.  Every field that points into the
 * file is checked against the file size before use; errors name the file
 * offset of the bad field.  Pure function of its inputs (any thread).
 */
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "node/vm_int.h"

#ifndef EM_RISCV
#define EM_RISCV 243
#endif

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

/* off + n <= len without overflow */
static bool in_file(uint64_t off, uint64_t n, size_t len)
{
	return off <= len && n <= len - off;
}

static int check_header(const uint8_t *buf, size_t len, Elf64_Ehdr *eh, char *err, size_t el)
{
	if (len < EI_NIDENT || memcmp(buf, ELFMAG, SELFMAG) != 0)
		return fail(err, el, -EINVAL, "offset 0x0: not an ELF file (bad magic)");
	if (buf[EI_CLASS] != ELFCLASS64)
		return fail(err, el, -EINVAL, "offset 0x%x: not a 64-bit ELF (class %u)", EI_CLASS,
			    buf[EI_CLASS]);
	if (buf[EI_DATA] != ELFDATA2LSB)
		return fail(err, el, -EINVAL, "offset 0x%x: not little-endian", EI_DATA);
	if (len < sizeof(*eh))
		return fail(err, el, -EINVAL, "offset 0x%zx: truncated ELF header (file has %zu bytes)",
			    len, len);
	memcpy(eh, buf, sizeof(*eh));
	if (eh->e_machine != EM_RISCV)
		return fail(err, el, -EINVAL, "offset 0x%zx: e_machine %u is not RISC-V",
			    offsetof(Elf64_Ehdr, e_machine), eh->e_machine);
	if (eh->e_type != ET_EXEC)
		return fail(err, el, -EINVAL, "offset 0x%zx: e_type %u is not ET_EXEC",
			    offsetof(Elf64_Ehdr, e_type), eh->e_type);
	if (eh->e_phnum == 0)
		return fail(err, el, -EINVAL, "offset 0x%zx: no program headers",
			    offsetof(Elf64_Ehdr, e_phnum));
	if (eh->e_phentsize != sizeof(Elf64_Phdr))
		return fail(err, el, -EINVAL, "offset 0x%zx: e_phentsize %u (expected %zu)",
			    offsetof(Elf64_Ehdr, e_phentsize), eh->e_phentsize, sizeof(Elf64_Phdr));
	if (!in_file(eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr), len))
		return fail(err, el, -EINVAL,
			    "offset 0x%zx: program headers (e_phoff 0x%llx, %u entries) run past "
			    "the end of the file (%zu bytes)",
			    offsetof(Elf64_Ehdr, e_phoff), (unsigned long long)eh->e_phoff,
			    eh->e_phnum, len);
	return 0;
}

static int load_segments(const uint8_t *buf, size_t len, const Elf64_Ehdr *eh, uint8_t *ram,
			 uint64_t base, uint64_t size, struct elf_info *out, char *err, size_t el)
{
	out->lo = UINT64_MAX;
	out->hi = 0;
	for (unsigned k = 0; k < eh->e_phnum; k++) {
		uint64_t at = eh->e_phoff + (uint64_t)k * sizeof(Elf64_Phdr);
		Elf64_Phdr ph;
		memcpy(&ph, buf + at, sizeof(ph));
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		if (ph.p_filesz > ph.p_memsz)
			return fail(err, el, -EINVAL,
				    "offset 0x%llx: program header %u has p_filesz > p_memsz",
				    (unsigned long long)at, k);
		if (!in_file(ph.p_offset, ph.p_filesz, len))
			return fail(err, el, -EINVAL,
				    "offset 0x%llx: segment %u data (0x%llx + 0x%llx) runs past the "
				    "end of the file (%zu bytes)",
				    (unsigned long long)at, k, (unsigned long long)ph.p_offset,
				    (unsigned long long)ph.p_filesz, len);
		if (ph.p_paddr < base || ph.p_paddr - base > size || ph.p_memsz > size - (ph.p_paddr - base))
			return fail(err, el, -ERANGE,
				    "offset 0x%llx: segment %u at 0x%llx..0x%llx is outside guest RAM "
				    "0x%llx..0x%llx",
				    (unsigned long long)at, k, (unsigned long long)ph.p_paddr,
				    (unsigned long long)(ph.p_paddr + ph.p_memsz),
				    (unsigned long long)base, (unsigned long long)(base + size));
		uint8_t *dst = ram + (ph.p_paddr - base);
		memcpy(dst, buf + ph.p_offset, ph.p_filesz);
		memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
		out->lo = ph.p_paddr < out->lo ? ph.p_paddr : out->lo;
		out->hi = ph.p_paddr + ph.p_memsz > out->hi ? ph.p_paddr + ph.p_memsz : out->hi;
	}
	if (out->hi == 0)
		return fail(err, el, -EINVAL, "offset 0x%llx: no loadable segment",
			    (unsigned long long)eh->e_phoff);
	return 0;
}

/* Looks up tohost/fromhost in the symbol table, if there is one.  A
 * malformed section table is an error; a missing one is not. */
static int find_symbols(const uint8_t *buf, size_t len, const Elf64_Ehdr *eh,
			struct elf_info *out, char *err, size_t el)
{
	if (eh->e_shoff == 0 || eh->e_shnum == 0)
		return 0;
	if (eh->e_shentsize != sizeof(Elf64_Shdr) ||
	    !in_file(eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr), len))
		return fail(err, el, -EINVAL,
			    "offset 0x%zx: section headers (e_shoff 0x%llx, %u entries of %u bytes) "
			    "do not fit in the file (%zu bytes)",
			    offsetof(Elf64_Ehdr, e_shoff), (unsigned long long)eh->e_shoff,
			    eh->e_shnum, eh->e_shentsize, len);
	for (unsigned k = 0; k < eh->e_shnum; k++) {
		uint64_t at = eh->e_shoff + (uint64_t)k * sizeof(Elf64_Shdr);
		Elf64_Shdr sh, str;
		memcpy(&sh, buf + at, sizeof(sh));
		if (sh.sh_type != SHT_SYMTAB)
			continue;
		if (sh.sh_link >= eh->e_shnum || sh.sh_entsize != sizeof(Elf64_Sym) ||
		    !in_file(sh.sh_offset, sh.sh_size, len))
			return fail(err, el, -EINVAL, "offset 0x%llx: malformed symbol table header",
				    (unsigned long long)at);
		uint64_t sat = eh->e_shoff + (uint64_t)sh.sh_link * sizeof(Elf64_Shdr);
		memcpy(&str, buf + sat, sizeof(str));
		if (!in_file(str.sh_offset, str.sh_size, len))
			return fail(err, el, -EINVAL, "offset 0x%llx: string table runs past the end",
				    (unsigned long long)sat);
		const char *strs = (const char *)buf + str.sh_offset;
		for (uint64_t s = 0; s + sizeof(Elf64_Sym) <= sh.sh_size; s += sizeof(Elf64_Sym)) {
			Elf64_Sym sym;
			memcpy(&sym, buf + sh.sh_offset + s, sizeof(sym));
			if (sym.st_name >= str.sh_size)
				continue;
			const char *name = strs + sym.st_name;
			size_t max = str.sh_size - sym.st_name;
			if (strnlen(name, max) == max)
				continue; /* unterminated */
			if (strcmp(name, "tohost") == 0)
				out->tohost = sym.st_value;
			else if (strcmp(name, "fromhost") == 0)
				out->fromhost = sym.st_value;
		}
	}
	return 0;
}

int elf_load(const uint8_t *buf, size_t len, uint8_t *ram, uint64_t ram_base, uint64_t ram_size,
	     struct elf_info *out, char *err, size_t errlen)
{
	Elf64_Ehdr eh;
	int rc;
	memset(out, 0, sizeof(*out));
	if ((rc = check_header(buf, len, &eh, err, errlen)) < 0)
		return rc;
	if ((rc = find_symbols(buf, len, &eh, out, err, errlen)) < 0)
		return rc;
	if ((rc = load_segments(buf, len, &eh, ram, ram_base, ram_size, out, err, errlen)) < 0)
		return rc;
	out->entry = eh.e_entry;
	if (out->tohost && (out->tohost < ram_base || out->tohost - ram_base > ram_size - 16))
		return fail(err, errlen, -ERANGE, "symbol tohost at 0x%llx is outside guest RAM",
			    (unsigned long long)out->tohost);
	if (out->fromhost && (out->fromhost < ram_base || out->fromhost - ram_base > ram_size - 8))
		out->fromhost = 0;
	return 0;
}
