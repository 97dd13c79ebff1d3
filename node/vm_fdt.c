/*
 * The device tree of the virt machine, built with libfdt's sequential-write
 * API from the VM config.  Shape and compatibles follow QEMU's virt machine
 * so a kernel that boots there finds the same nodes here:
 *   /chosen (bootargs, stdout-path, linux,initrd-start/end)
 *   /memory@80000000
 *   /cpus (timebase-frequency) with cpu@N and its riscv,cpu-intc child
 *   /soc: clint@2000000, plic@c000000 (contexts: M then S per hart),
 *         serial@10000000 (ns16550a on PLIC source 10), test@100000
 * Phandles: hart N's interrupt controller is N + 1, the PLIC follows.
 */
#include <errno.h>
#include <libfdt.h>
#include <stdio.h>
#include <stdlib.h>

#include "node/virt_int.h"

#define FDT_BUF (64u << 10)

/* Property helpers that stop at the first libfdt error (kept in *rc). */
static void p_u32(void *f, int *rc, const char *name, uint32_t v)
{
	if (*rc == 0)
		*rc = fdt_property_u32(f, name, v);
}

static void p_str(void *f, int *rc, const char *name, const char *v)
{
	if (*rc == 0)
		*rc = fdt_property_string(f, name, v);
}

static void p_raw(void *f, int *rc, const char *name, const void *v, int len)
{
	if (*rc == 0)
		*rc = fdt_property(f, name, v, len);
}

/* reg = <addr size> with 2 cells each. */
static void p_reg(void *f, int *rc, uint64_t addr, uint64_t size)
{
	fdt64_t r[2] = {cpu_to_fdt64(addr), cpu_to_fdt64(size)};
	p_raw(f, rc, "reg", r, sizeof(r));
}

static void begin(void *f, int *rc, const char *name)
{
	if (*rc == 0)
		*rc = fdt_begin_node(f, name);
}

static void end(void *f, int *rc)
{
	if (*rc == 0)
		*rc = fdt_end_node(f);
}

static void cpus_node(void *f, int *rc, unsigned harts)
{
	char name[32];
	begin(f, rc, "cpus");
	p_u32(f, rc, "#address-cells", 1);
	p_u32(f, rc, "#size-cells", 0);
	p_u32(f, rc, "timebase-frequency", VIRT_TIMEBASE);
	for (unsigned k = 0; k < harts; k++) {
		snprintf(name, sizeof(name), "cpu@%u", k);
		begin(f, rc, name);
		p_str(f, rc, "device_type", "cpu");
		p_u32(f, rc, "reg", k);
		p_str(f, rc, "status", "okay");
		p_str(f, rc, "compatible", "riscv");
		p_str(f, rc, "riscv,isa", VIRT_ISA);
		p_str(f, rc, "mmu-type", "riscv,sv39");
		begin(f, rc, "interrupt-controller");
		p_u32(f, rc, "#address-cells", 0);
		p_u32(f, rc, "#interrupt-cells", 1);
		p_raw(f, rc, "interrupt-controller", NULL, 0);
		p_str(f, rc, "compatible", "riscv,cpu-intc");
		p_u32(f, rc, "phandle", k + 1);
		end(f, rc);
		end(f, rc);
	}
	end(f, rc);
}

/* interrupts-extended = <&intcN a &intcN b> for every hart. */
static void irqs_ext(void *f, int *rc, unsigned harts, uint32_t a, uint32_t b)
{
	fdt32_t *v = calloc(4 * (size_t)harts, sizeof(*v));
	if (v == NULL) {
		*rc = -FDT_ERR_NOSPACE;
		return;
	}
	for (unsigned k = 0; k < harts; k++) {
		v[4 * k] = cpu_to_fdt32(k + 1);
		v[4 * k + 1] = cpu_to_fdt32(a);
		v[4 * k + 2] = cpu_to_fdt32(k + 1);
		v[4 * k + 3] = cpu_to_fdt32(b);
	}
	p_raw(f, rc, "interrupts-extended", v, (int)(16 * harts));
	free(v);
}

static void soc_node(void *f, int *rc, unsigned harts)
{
	uint32_t plic_ph = harts + 1;
	static const char clint_compat[] = "sifive,clint0\0riscv,clint0";
	static const char plic_compat[] = "sifive,plic-1.0.0\0riscv,plic0";
	static const char test_compat[] = "sifive,test1\0sifive,test0";

	begin(f, rc, "soc");
	p_u32(f, rc, "#address-cells", 2);
	p_u32(f, rc, "#size-cells", 2);
	p_str(f, rc, "compatible", "simple-bus");
	p_raw(f, rc, "ranges", NULL, 0);

	begin(f, rc, "test@100000");
	p_raw(f, rc, "compatible", test_compat, sizeof(test_compat));
	p_reg(f, rc, VM_FINISHER_BASE, 0x1000);
	end(f, rc);

	begin(f, rc, "clint@2000000");
	p_raw(f, rc, "compatible", clint_compat, sizeof(clint_compat));
	p_reg(f, rc, VM_CLINT_BASE, VM_CLINT_SIZE);
	irqs_ext(f, rc, harts, CPU_IRQ_MSI, CPU_IRQ_MTI);
	end(f, rc);

	begin(f, rc, "plic@c000000");
	p_raw(f, rc, "compatible", plic_compat, sizeof(plic_compat));
	p_reg(f, rc, VIRT_PLIC_BASE, VIRT_PLIC_SIZE);
	p_u32(f, rc, "#address-cells", 0);
	p_u32(f, rc, "#interrupt-cells", 1);
	p_raw(f, rc, "interrupt-controller", NULL, 0);
	p_u32(f, rc, "riscv,ndev", VIRT_PLIC_NDEV);
	irqs_ext(f, rc, harts, CPU_IRQ_MEI, CPU_IRQ_SEI);
	p_u32(f, rc, "phandle", plic_ph);
	end(f, rc);

	begin(f, rc, "serial@10000000");
	p_str(f, rc, "compatible", "ns16550a");
	p_reg(f, rc, VIRT_UART_BASE, VIRT_UART_SIZE);
	p_u32(f, rc, "clock-frequency", VIRT_UART_CLOCK);
	p_u32(f, rc, "interrupt-parent", plic_ph);
	p_u32(f, rc, "interrupts", VIRT_UART_IRQ);
	end(f, rc);

	end(f, rc);
}

static void chosen_node(void *f, int *rc, const struct fdt_cfg *cfg)
{
	begin(f, rc, "chosen");
	if (cfg->bootargs)
		p_str(f, rc, "bootargs", cfg->bootargs);
	p_str(f, rc, "stdout-path", "/soc/serial@10000000");
	if (cfg->initrd_end > cfg->initrd_start) {
		fdt64_t s = cpu_to_fdt64(cfg->initrd_start), e = cpu_to_fdt64(cfg->initrd_end);
		p_raw(f, rc, "linux,initrd-start", &s, sizeof(s));
		p_raw(f, rc, "linux,initrd-end", &e, sizeof(e));
	}
	end(f, rc);
}

int fdt_build(const struct fdt_cfg *cfg, void **out, size_t *len, char *err, size_t el)
{
	static const char compat[] = "spanvm,virt\0riscv-virtio";
	void *f = malloc(FDT_BUF);
	int rc;
	if (cfg->harts == 0 || cfg->harts > VM_MAX_HARTS) {
		snprintf(err, el, "device tree: %u harts, must be 1..%d", cfg->harts, VM_MAX_HARTS);
		free(f);
		return -EINVAL;
	}
	if (f == NULL)
		return -ENOMEM;
	rc = fdt_create(f, FDT_BUF);
	if (rc == 0)
		rc = fdt_finish_reservemap(f);
	begin(f, &rc, "");
	p_u32(f, &rc, "#address-cells", 2);
	p_u32(f, &rc, "#size-cells", 2);
	p_raw(f, &rc, "compatible", compat, sizeof(compat));
	p_str(f, &rc, "model", "spanvm virt");
	chosen_node(f, &rc, cfg);
	begin(f, &rc, "memory@80000000");
	p_str(f, &rc, "device_type", "memory");
	p_reg(f, &rc, VM_RAM_BASE, cfg->mem_bytes);
	end(f, &rc);
	cpus_node(f, &rc, cfg->harts);
	soc_node(f, &rc, cfg->harts);
	end(f, &rc);
	if (rc == 0)
		rc = fdt_finish(f);
	if (rc == 0)
		rc = fdt_pack(f);
	if (rc != 0) {
		snprintf(err, el, "device tree: %s (bootargs too long?)", fdt_strerror(rc));
		free(f);
		return rc == -FDT_ERR_NOSPACE ? -ENOSPC : -EINVAL;
	}
	*len = fdt_totalsize(f);
	*out = f;
	return 0;
}
