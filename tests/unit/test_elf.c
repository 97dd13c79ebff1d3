/*
 * node/vm_elf.c: the ELF loader accepts a well-formed image (segments
 * copied, bss zeroed, tohost/fromhost found) and rejects malformed ones with
 * a message naming the file offset: every truncation of a valid image, bad
 * magic/class/machine/type, program headers past the end, segments outside
 * RAM, p_filesz > p_memsz, broken symbol tables.
 */
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/vm_int.h"

#define RAM_BASE 0x80000000ull
#define RAM_SIZE (1u << 20)

struct image {
	uint8_t buf[4096];
	size_t len;
};

/* ehdr | phdr | text (16 bytes) | strtab | symtab (3) | shdrs (3) */
static void build(struct image *im)
{
	memset(im, 0, sizeof(*im));
	Elf64_Ehdr *eh = (Elf64_Ehdr *)im->buf;
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = 243;
	eh->e_version = EV_CURRENT;
	eh->e_entry = RAM_BASE + 4;
	eh->e_phoff = sizeof(Elf64_Ehdr);
	eh->e_ehsize = sizeof(Elf64_Ehdr);
	eh->e_phentsize = sizeof(Elf64_Phdr);
	eh->e_phnum = 1;
	size_t off = sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr);
	Elf64_Phdr *ph = (Elf64_Phdr *)(im->buf + eh->e_phoff);
	ph->p_type = PT_LOAD;
	ph->p_offset = off;
	ph->p_paddr = ph->p_vaddr = RAM_BASE;
	ph->p_filesz = 16;
	ph->p_memsz = 64;
	memset(im->buf + off, 0xab, 16);
	off += 16;
	const char strs[] = "\0tohost\0fromhost\0";
	size_t str_off = off;
	memcpy(im->buf + off, strs, sizeof(strs));
	off += sizeof(strs);
	off = (off + 7) & ~7ul;
	size_t sym_off = off;
	Elf64_Sym *sym = (Elf64_Sym *)(im->buf + off);
	sym[1].st_name = 1;
	sym[1].st_value = RAM_BASE + 0x1000;
	sym[2].st_name = 8;
	sym[2].st_value = RAM_BASE + 0x1040;
	off += 3 * sizeof(Elf64_Sym);
	eh->e_shoff = off;
	eh->e_shentsize = sizeof(Elf64_Shdr);
	eh->e_shnum = 3;
	Elf64_Shdr *sh = (Elf64_Shdr *)(im->buf + off);
	sh[1].sh_type = SHT_STRTAB;
	sh[1].sh_offset = str_off;
	sh[1].sh_size = sizeof(strs);
	sh[2].sh_type = SHT_SYMTAB;
	sh[2].sh_offset = sym_off;
	sh[2].sh_size = 3 * sizeof(Elf64_Sym);
	sh[2].sh_entsize = sizeof(Elf64_Sym);
	sh[2].sh_link = 1;
	off += 3 * sizeof(Elf64_Shdr);
	im->len = off;
}

static int load(const struct image *im, size_t len, uint8_t *ram, struct elf_info *info,
		char *err)
{
	return elf_load(im->buf, len, ram, RAM_BASE, RAM_SIZE, info, err, 256);
}

static void test_valid(void **state)
{
	struct image im;
	build(&im);
	uint8_t *ram = malloc(RAM_SIZE);
	memset(ram, 0xff, RAM_SIZE);
	struct elf_info info;
	char err[256] = "";
	assert_int_equal(load(&im, im.len, ram, &info, err), 0);
	assert_int_equal(info.entry, RAM_BASE + 4);
	assert_int_equal(info.tohost, RAM_BASE + 0x1000);
	assert_int_equal(info.fromhost, RAM_BASE + 0x1040);
	assert_int_equal(ram[0], 0xab);
	assert_int_equal(ram[15], 0xab);
	assert_int_equal(ram[16], 0);     /* bss zero-filled */
	assert_int_equal(ram[63], 0);
	assert_int_equal(ram[64], 0xff);  /* beyond p_memsz untouched */
	free(ram);
}

/* Every strict prefix of the image fails cleanly (the section headers are
 * last, so even the longest prefix is malformed). */
static void test_truncated(void **state)
{
	struct image im;
	build(&im);
	uint8_t *ram = malloc(RAM_SIZE);
	struct elf_info info;
	char err[256];
	for (size_t len = 0; len < im.len; len++) {
		err[0] = 0;
		int rc = load(&im, len, ram, &info, err);
		if (rc == 0)
			fail_msg("prefix of %zu bytes accepted", len);
		assert_non_null(strstr(err, "offset 0x"));
	}
	free(ram);
}

static void test_malformed(void **state)
{
	uint8_t *ram = malloc(RAM_SIZE);
	struct elf_info info;
	char err[256];
	struct image im;
	Elf64_Ehdr *eh = (Elf64_Ehdr *)im.buf;
	Elf64_Phdr *ph = (Elf64_Phdr *)(im.buf + sizeof(Elf64_Ehdr));
	struct {
		const char *what, *expect;
		int rc;
	} cases[] = {
		{"magic", "bad magic", -EINVAL},     {"class", "64-bit", -EINVAL},
		{"machine", "RISC-V", -EINVAL},      {"type", "ET_EXEC", -EINVAL},
		{"phoff", "program headers", -EINVAL}, {"outside", "outside guest RAM", -ERANGE},
		{"filesz", "p_filesz > p_memsz", -EINVAL}, {"segdata", "past the", -EINVAL},
		{"symlink", "symbol table", -EINVAL},  {"huge", "outside guest RAM", -ERANGE},
	};
	for (unsigned k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		build(&im);
		const char *w = cases[k].what;
		Elf64_Shdr *sh = (Elf64_Shdr *)(im.buf + eh->e_shoff);
		if (!strcmp(w, "magic"))
			im.buf[1] = 'X';
		else if (!strcmp(w, "class"))
			im.buf[EI_CLASS] = ELFCLASS32;
		else if (!strcmp(w, "machine"))
			eh->e_machine = 62;
		else if (!strcmp(w, "type"))
			eh->e_type = ET_DYN;
		else if (!strcmp(w, "phoff"))
			eh->e_phoff = im.len - 8;
		else if (!strcmp(w, "outside"))
			ph->p_paddr = 0x1000;
		else if (!strcmp(w, "filesz"))
			ph->p_filesz = ph->p_memsz + 1;
		else if (!strcmp(w, "segdata"))
			ph->p_offset = im.len - 4;
		else if (!strcmp(w, "symlink"))
			sh[2].sh_link = 7;
		else if (!strcmp(w, "huge"))
			ph->p_memsz = ~0ull - 5;
		err[0] = 0;
		int rc = load(&im, im.len, ram, &info, err);
		if (rc != cases[k].rc || !strstr(err, cases[k].expect))
			fail_msg("%s: rc %d, message '%s'", w, rc, err);
	}
	free(ram);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
