/*
 * Linux boot protocol (Documentation/riscv/boot-image-header.rst): the
 * Image is recognised by its 64-byte header, loaded at 0x80200000 (RAM base
 * + text_offset 2 MiB), and the boot hart enters it in S-mode with a0 =
 * hartid, a1 = DTB address, satp = 0.
 *
 * Layout, decided before any vCPU exists so that every misfit is a clear
 * error: the DTB sits in the last 64 KiB-aligned slot below the top of RAM,
 * the initrd right below it (page aligned), and both must stay above the
 * kernel's end including its bss (header image_size).  Linux reserves all
 * three regions itself (memblock) from the DTB.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/virt_int.h"

#define HDR_LEN 64
#define HDR_TEXT_OFFSET 8
#define HDR_IMAGE_SIZE 16
#define HDR_FLAGS 24
#define HDR_MAGIC 48  /* "RISCV\0\0\0", deprecated but still written */
#define HDR_MAGIC2 56 /* "RSC\x05" */

static uint64_t le64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

bool boot_is_image(const uint8_t *buf, size_t len)
{
	return len >= HDR_LEN &&
	       (memcmp(buf + HDR_MAGIC2, "RSC\x05", 4) == 0 ||
		memcmp(buf + HDR_MAGIC, "RISCV\0\0\0", 8) == 0);
}

static int slurp(const char *what, const char *path, uint8_t **buf, size_t *len, char *err,
		 size_t el)
{
	char why[200];
	int rc = vm_read_file(path, buf, len, why, sizeof(why));
	if (rc < 0)
		snprintf(err, el, "%s %s: %s", what, path, why);
	return rc;
}

/* Checks the Image header; sets kernel_addr/kernel_end. */
static int check_image(const struct boot_cfg *cfg, struct boot_plan *p, char *err, size_t el)
{
	const uint8_t *h = p->kernel;
	if (!boot_is_image(h, p->kernel_len)) {
		snprintf(err, el, "kernel %s: not a RISC-V Linux Image (no \"RSC\\x05\" magic at "
			 "offset 0x38 of a 64-byte header)", cfg->kernel_path);
		return -EINVAL;
	}
	uint64_t text_offset = le64(h + HDR_TEXT_OFFSET), image_size = le64(h + HDR_IMAGE_SIZE);
	if (le64(h + HDR_FLAGS) & 1) {
		snprintf(err, el, "kernel %s: header flags say big-endian; spanvm is little-endian",
			 cfg->kernel_path);
		return -EINVAL;
	}
	if (text_offset != VIRT_KERNEL_ADDR - VM_RAM_BASE) {
		snprintf(err, el, "kernel %s: header text_offset 0x%llx, expected 0x%llx (RV64)",
			 cfg->kernel_path, (unsigned long long)text_offset,
			 (unsigned long long)(VIRT_KERNEL_ADDR - VM_RAM_BASE));
		return -EINVAL;
	}
	if (image_size == 0)
		image_size = p->kernel_len; /* old headers: unknown, use the file */
	if (image_size < p->kernel_len || image_size > (1ull << 32)) {
		snprintf(err, el, "kernel %s: header image_size 0x%llx does not cover the "
			 "0x%zx-byte file", cfg->kernel_path, (unsigned long long)image_size,
			 p->kernel_len);
		return -EINVAL;
	}
	p->kernel_addr = VIRT_KERNEL_ADDR;
	p->kernel_end = VIRT_KERNEL_ADDR + image_size;
	return 0;
}

/* Places DTB and initrd at the top of RAM, above the kernel's end. */
static int place(const struct boot_cfg *cfg, struct boot_plan *p, char *err, size_t el)
{
	uint64_t ram_end = VM_RAM_BASE + cfg->mem_bytes;
	uint64_t low = p->kernel ? p->kernel_end : VIRT_KERNEL_ADDR;
	p->dtb_addr = (ram_end - VIRT_DTB_MAX) & ~(uint64_t)(VIRT_DTB_MAX - 1);
	if (p->kernel && p->kernel_end > ram_end) {
		snprintf(err, el, "kernel %s (0x%llx bytes with bss, at 0x%llx) does not fit in "
			 "%llu MiB of RAM", cfg->kernel_path,
			 (unsigned long long)(p->kernel_end - p->kernel_addr),
			 (unsigned long long)p->kernel_addr,
			 (unsigned long long)(cfg->mem_bytes >> 20));
		return -ENOSPC;
	}
	if (p->dtb_addr < low) {
		snprintf(err, el, "the device tree does not fit in %llu MiB of RAM above the "
			 "kernel (which ends at 0x%llx): give more memory",
			 (unsigned long long)(cfg->mem_bytes >> 20), (unsigned long long)low);
		return -ENOSPC;
	}
	if (p->initrd) {
		uint64_t a = (p->dtb_addr - p->initrd_len) & ~4095ull;
		if (p->initrd_len > p->dtb_addr - VM_RAM_BASE || a < low) {
			snprintf(err, el, "initrd %s (%zu bytes) and the device tree do not fit in "
				 "%llu MiB of RAM above the kernel (which ends at 0x%llx): "
				 "need at least %llu MiB", cfg->initrd_path, p->initrd_len,
				 (unsigned long long)(cfg->mem_bytes >> 20),
				 (unsigned long long)low,
				 (unsigned long long)((low - VM_RAM_BASE + p->initrd_len +
						       2 * VIRT_DTB_MAX + 4095 + (1 << 20) - 1) >> 20));
			return -ENOSPC;
		}
		p->initrd_addr = a;
	}
	return 0;
}

int boot_prepare(const struct boot_cfg *cfg, struct boot_plan *p, char *err, size_t el)
{
	memset(p, 0, sizeof(*p));
	int rc = 0;
	if (cfg->mem_bytes < (VIRT_KERNEL_ADDR - VM_RAM_BASE) + 2 * VIRT_DTB_MAX) {
		snprintf(err, el, "%llu MiB of RAM cannot hold a kernel at 0x%llx",
			 (unsigned long long)(cfg->mem_bytes >> 20),
			 (unsigned long long)VIRT_KERNEL_ADDR);
		return -ENOSPC;
	}
	if (cfg->kernel_buf) {
		p->kernel = malloc(cfg->kernel_len ? cfg->kernel_len : 1);
		if (p->kernel == NULL)
			return -ENOMEM;
		memcpy(p->kernel, cfg->kernel_buf, cfg->kernel_len);
		p->kernel_len = cfg->kernel_len;
		rc = check_image(cfg, p, err, el);
	} else if (cfg->kernel_path) {
		rc = slurp("kernel", cfg->kernel_path, &p->kernel, &p->kernel_len, err, el);
		if (rc == 0)
			rc = check_image(cfg, p, err, el);
	}
	if (rc == 0 && cfg->initrd_path) {
		rc = slurp("initrd", cfg->initrd_path, &p->initrd, &p->initrd_len, err, el);
		if (rc == 0 && p->initrd_len == 0) {
			snprintf(err, el, "initrd %s: empty file", cfg->initrd_path);
			rc = -EINVAL;
		}
	}
	if (rc == 0)
		rc = place(cfg, p, err, el);
	if (rc == 0) {
		struct fdt_cfg fc = {
			.harts = cfg->harts,
			.mem_bytes = cfg->mem_bytes,
			.bootargs = cfg->cmdline,
			.initrd_start = p->initrd ? p->initrd_addr : 0,
			.initrd_end = p->initrd ? p->initrd_addr + p->initrd_len : 0,
		};
		rc = fdt_build(&fc, &p->dtb, &p->dtb_len, err, el);
		if (rc == 0 && p->dtb_len > VIRT_DTB_MAX) {
			snprintf(err, el, "device tree is %zu bytes, more than the %u reserved",
				 p->dtb_len, VIRT_DTB_MAX);
			rc = -ENOSPC;
		}
	}
	if (rc < 0)
		boot_plan_free(p);
	return rc;
}

void boot_load(const struct boot_plan *p, uint8_t *ram)
{
	if (p->kernel)
		memcpy(ram + (p->kernel_addr - VM_RAM_BASE), p->kernel, p->kernel_len);
	if (p->initrd)
		memcpy(ram + (p->initrd_addr - VM_RAM_BASE), p->initrd, p->initrd_len);
	memcpy(ram + (p->dtb_addr - VM_RAM_BASE), p->dtb, p->dtb_len);
}

void boot_plan_free(struct boot_plan *p)
{
	free(p->kernel);
	free(p->initrd);
	free(p->dtb);
	memset(p, 0, sizeof(*p));
}
