/*
 * The Linux machine without a kernel: boot layout and its errors, the
 * device tree read back with libfdt, the PLIC's claim/complete, the UART's
 * THR-empty interrupt, and SBI calls made on a real (not running) hart.
 * The "kernel" is a synthetic 64-byte RISC-V Image header plus padding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <libfdt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/virt_int.h"

static char dir[] = "/tmp/spanvm-test-linux-XXXXXX";
static char image_path[256], initrd_path[256], elf_path[256];

static void write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	fclose(f);
}

/* A fake Image: header with text_offset 2 MiB and image_size = file + 1 MiB
 * of "bss"; the first word is `j .` so nothing runs away if it ran. */
static void make_image(const char *path, size_t len, uint64_t text_offset)
{
	uint8_t *b = calloc(1, len);
	uint64_t image_size = len + (1 << 20);
	assert_non_null(b);
	b[0] = 0x6f; /* jal x0, 0 */
	memcpy(b + 8, &text_offset, 8);
	memcpy(b + 16, &image_size, 8);
	memcpy(b + 48, "RISCV\0\0\0", 8);
	memcpy(b + 56, "RSC\x05", 4);
	write_file(path, b, len);
	free(b);
}

static int setup(void **state)
{
	(void)state;
	/* The VMs below read stdin into their UART: keep test input out. */
	if (freopen("/dev/null", "r", stdin) == NULL || mkdtemp(dir) == NULL)
		return -1;
	snprintf(image_path, sizeof(image_path), "%s/Image", dir);
	snprintf(initrd_path, sizeof(initrd_path), "%s/initrd", dir);
	snprintf(elf_path, sizeof(elf_path), "%s/not-an-image", dir);
	make_image(image_path, 64 << 10, 0x200000);
	static uint8_t rd[10000];
	memset(rd, 0xab, sizeof(rd));
	write_file(initrd_path, rd, sizeof(rd));
	write_file(elf_path, "\x7f" "ELFjunkjunkjunkjunk", 20);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(image_path);
	unlink(initrd_path);
	unlink(elf_path);
	rmdir(dir);
	return 0;
}

static void layout_places_initrd_and_dtb_at_the_top(void **state)
{
	(void)state;
	struct boot_cfg bc = {.kernel_path = image_path, .initrd_path = initrd_path,
			      .cmdline = "console=ttyS0", .harts = 2, .mem_bytes = 64 << 20};
	struct boot_plan p;
	char err[256] = "";
	assert_int_equal(boot_prepare(&bc, &p, err, sizeof(err)), 0);
	assert_int_equal(p.kernel_addr, 0x80200000ull);
	assert_int_equal(p.kernel_end, 0x80200000ull + (64 << 10) + (1 << 20));
	assert_true(p.dtb_addr + VIRT_DTB_MAX <= VM_RAM_BASE + (64 << 20));
	assert_int_equal(p.dtb_addr % 8, 0);
	assert_int_equal(p.initrd_addr % 4096, 0);
	assert_true(p.initrd_addr + p.initrd_len <= p.dtb_addr);
	assert_true(p.initrd_addr >= p.kernel_end);
	assert_int_equal(fdt_check_header(p.dtb), 0);
	boot_plan_free(&p);
}

static void expect_error(const struct boot_cfg *bc, int want, const char *needle)
{
	struct boot_plan p;
	char err[512] = "";
	assert_int_equal(boot_prepare(bc, &p, err, sizeof(err)), want);
	if (strstr(err, needle) == NULL)
		fail_msg("error '%s' does not mention '%s'", err, needle);
}

static void bad_input_is_named(void **state)
{
	(void)state;
	struct boot_cfg bc = {.kernel_path = elf_path, .harts = 1, .mem_bytes = 64 << 20};
	expect_error(&bc, -EINVAL, "not a RISC-V Linux Image");
	bc.kernel_path = image_path;
	bc.initrd_path = "/nonexistent/initrd";
	expect_error(&bc, -ENOENT, "initrd /nonexistent/initrd: cannot open");
	bc.initrd_path = initrd_path;
	bc.mem_bytes = 3 << 20; /* kernel ends at 3.06 MiB */
	expect_error(&bc, -ENOSPC, "does not fit");
	bc.mem_bytes = 2 << 20;
	expect_error(&bc, -ENOSPC, "cannot hold a kernel");

	/* an initrd that fits only without the kernel in the way */
	static uint8_t big[3 << 20];
	char big_path[300];
	snprintf(big_path, sizeof(big_path), "%s/big", dir);
	write_file(big_path, big, sizeof(big));
	bc.initrd_path = big_path;
	bc.mem_bytes = 5 << 20;
	expect_error(&bc, -ENOSPC, "and the device tree do not fit");
	unlink(big_path);

	char bad[300];
	snprintf(bad, sizeof(bad), "%s/badoff", dir);
	make_image(bad, 4096, 0x400000);
	bc.kernel_path = bad;
	bc.initrd_path = NULL;
	bc.mem_bytes = 64 << 20;
	expect_error(&bc, -EINVAL, "text_offset");
	unlink(bad);
}

static const void *prop(const void *fdt, const char *path, const char *name, int *len)
{
	int off = fdt_path_offset(fdt, path);
	if (off < 0)
		fail_msg("no node %s", path);
	const void *v = fdt_getprop(fdt, off, name, len);
	if (v == NULL)
		fail_msg("no %s in %s", name, path);
	return v;
}

static void dtb_describes_the_machine(void **state)
{
	(void)state;
	struct fdt_cfg fc = {.harts = 3, .mem_bytes = 256 << 20, .bootargs = "console=ttyS0 quiet",
			     .initrd_start = 0x8f000000, .initrd_end = 0x8f001000};
	void *f;
	size_t len;
	char err[256];
	int l;
	assert_int_equal(fdt_build(&fc, &f, &len, err, sizeof(err)), 0);
	assert_int_equal(fdt_check_header(f), 0);
	assert_int_equal(fdt_totalsize(f), len);
	assert_string_equal(prop(f, "/chosen", "bootargs", &l), "console=ttyS0 quiet");
	assert_int_equal(fdt64_ld(prop(f, "/chosen", "linux,initrd-start", &l)), 0x8f000000);
	assert_int_equal(fdt64_ld(prop(f, "/chosen", "linux,initrd-end", &l)), 0x8f001000);
	const fdt64_t *reg = prop(f, "/memory@80000000", "reg", &l);
	assert_int_equal(fdt64_ld(&reg[1]), 256ull << 20);
	assert_int_equal(fdt32_ld(prop(f, "/cpus", "timebase-frequency", &l)), VIRT_TIMEBASE);
	assert_true(fdt_path_offset(f, "/cpus/cpu@2/interrupt-controller") >= 0);
	assert_true(fdt_path_offset(f, "/cpus/cpu@3") < 0);
	assert_string_equal(prop(f, "/cpus/cpu@1", "mmu-type", &l), "riscv,sv39");
	/* PLIC: per hart <&intc 11 &intc 9>, so context 2h+1 is hart h's S-mode */
	const fdt32_t *ie = prop(f, "/soc/plic@c000000", "interrupts-extended", &l);
	assert_int_equal(l, 3 * 16);
	assert_int_equal(fdt32_ld(&ie[4 * 2]), 3); /* hart 2's intc phandle */
	assert_int_equal(fdt32_ld(&ie[4 * 2 + 3]), 9);
	assert_int_equal(fdt32_ld(prop(f, "/soc/serial@10000000", "interrupts", &l)), 10);
	free(f);

	fc.harts = 0;
	assert_int_equal(fdt_build(&fc, &f, &len, err, sizeof(err)), -EINVAL);
}

/* ---- a whole VM (not running) for devices and SBI ---- */

static struct vm *make_vm(unsigned harts)
{
	struct vm_cfg cfg = {.elf_path = image_path, .initrd_path = initrd_path,
			     .harts = harts, .mem_bytes = 64 << 20};
	struct vm *vm;
	char err[512];
	int rc = vm_create(&cfg, &vm, err, sizeof(err));
	if (rc < 0)
		fail_msg("vm_create: %s", err);
	assert_non_null(vm->virt);
	return vm;
}

static uint64_t mip(struct vm *vm, unsigned hart)
{
	uint64_t v;
	assert_int_equal(cpu_get_csr(vm->harts[hart].cpu, 0x344, &v), 0);
	return v;
}

static uint64_t plic_rd(struct vm *vm, uint64_t off)
{
	uint64_t v;
	pthread_mutex_lock(&vm->lock);
	assert_int_equal(dev_plic_read(vm, off, 4, &v), 0);
	pthread_mutex_unlock(&vm->lock);
	return v;
}

static void plic_wr(struct vm *vm, uint64_t off, uint64_t v)
{
	pthread_mutex_lock(&vm->lock);
	assert_int_equal(dev_plic_write(vm, off, 4, v), 0);
	pthread_mutex_unlock(&vm->lock);
}

static void uart_wr(struct vm *vm, uint64_t off, uint8_t v)
{
	pthread_mutex_lock(&vm->lock);
	dev_uart_write(vm, off, 1, v);
	pthread_mutex_unlock(&vm->lock);
}

static uint8_t uart_rd(struct vm *vm, uint64_t off)
{
	uint64_t v;
	pthread_mutex_lock(&vm->lock);
	dev_uart_read(vm, off, 1, &v);
	pthread_mutex_unlock(&vm->lock);
	return (uint8_t)v;
}

static void uart_thre_irq_through_plic(void **state)
{
	(void)state;
	struct vm *vm = make_vm(2);
	const uint64_t SEIP = 1u << 9, ctx1_s = 3; /* hart 1, S-mode */
	plic_wr(vm, 4 * VIRT_UART_IRQ, 1);                       /* priority */
	plic_wr(vm, 0x2000 + 0x80 * ctx1_s, 1u << VIRT_UART_IRQ); /* enable */
	assert_int_equal(mip(vm, 1) & SEIP, 0);
	uart_wr(vm, 1, 0x02); /* IER.THRI on: THR is empty, so it is pending */
	assert_int_equal(uart_rd(vm, 5) & 0x60, 0x60);
	assert_true(mip(vm, 1) & SEIP);
	assert_int_equal(mip(vm, 0) & SEIP, 0); /* hart 0 did not enable it */
	/* claim: source 10, line still high but claimed -> SEIP drops */
	assert_int_equal(plic_rd(vm, 0x200000 + 0x1000 * ctx1_s + 4), VIRT_UART_IRQ);
	assert_int_equal(mip(vm, 1) & SEIP, 0);
	assert_int_equal(plic_rd(vm, 0x200000 + 0x1000 * ctx1_s + 4), 0); /* nothing else */
	/* the driver reads IIR (THRI, which clears it), then completes */
	assert_int_equal(uart_rd(vm, 2) & 0x0f, 0x02);
	assert_int_equal(uart_rd(vm, 2) & 0x0f, 0x01);
	plic_wr(vm, 0x200000 + 0x1000 * ctx1_s + 4, VIRT_UART_IRQ);
	assert_int_equal(mip(vm, 1) & SEIP, 0);
	/* a transmitted byte makes THR empty again: pending once more */
	uart_wr(vm, 0, 'x');
	assert_true(mip(vm, 1) & SEIP);
	/* threshold at the priority masks it */
	plic_wr(vm, 0x200000 + 0x1000 * ctx1_s, 1);
	assert_int_equal(mip(vm, 1) & SEIP, 0);
	vm_destroy(vm);
}

static void uart_input_reaches_rbr_and_getchar(void **state)
{
	(void)state;
	struct vm *vm = make_vm(1);
	const uint64_t SEIP = 1u << 9, ctx0_s = 1;
	plic_wr(vm, 4 * VIRT_UART_IRQ, 1);
	plic_wr(vm, 0x2000 + 0x80 * ctx0_s, 1u << VIRT_UART_IRQ);
	uart_wr(vm, 1, 0x01); /* IER.RDI */
	assert_int_equal(uart_rd(vm, 5) & 0x01, 0); /* LSR.DR: nothing yet */
	assert_int_equal(mip(vm, 0) & SEIP, 0);
	pthread_mutex_lock(&vm->lock);
	dev_uart_rx(vm, (const uint8_t *)"ab", 2);
	pthread_mutex_unlock(&vm->lock);
	assert_true(mip(vm, 0) & SEIP);
	assert_int_equal(uart_rd(vm, 5) & 0x01, 0x01);
	assert_int_equal(uart_rd(vm, 2) & 0x0f, 0x04); /* IIR: received data */
	assert_int_equal(uart_rd(vm, 0), 'a');
	pthread_mutex_lock(&vm->lock);
	assert_int_equal(dev_uart_getc(vm), 'b'); /* what SBI getchar uses */
	assert_int_equal(dev_uart_getc(vm), -1);
	pthread_mutex_unlock(&vm->lock);
	assert_int_equal(uart_rd(vm, 5) & 0x01, 0);
	assert_int_equal(uart_rd(vm, 2) & 0x0f, 0x01); /* no interrupt */
	vm_destroy(vm);
}

struct sbiret {
	long error, value;
};

static struct sbiret call(struct vm *vm, unsigned hart, unsigned long eid, unsigned long fid,
			  unsigned long a0, unsigned long a1, unsigned long a2)
{
	struct cpu *c = vm->harts[hart].cpu;
	cpu_set_reg(c, 17, eid);
	cpu_set_reg(c, 16, fid);
	cpu_set_reg(c, 10, a0);
	cpu_set_reg(c, 11, a1);
	cpu_set_reg(c, 12, a2);
	sbi_call(&vm->harts[hart], c);
	return (struct sbiret){(long)cpu_get_reg(c, 10), (long)cpu_get_reg(c, 11)};
}

static void sbi_base_ipi_hsm_timer(void **state)
{
	(void)state;
	struct vm *vm = make_vm(3);
	struct sbiret r;
	/* hart 0 is in the kernel: S-mode at 0x80200000, a1 = DTB */
	assert_int_equal(cpu_get_priv(vm->harts[0].cpu), CPU_PRIV_S);
	assert_int_equal(cpu_get_pc(vm->harts[0].cpu), 0x80200000ull);
	assert_int_equal(cpu_get_reg(vm->harts[0].cpu, 11), vm->virt->plan.dtb_addr);

	r = call(vm, 0, 0x10, 0, 0, 0, 0);
	assert_int_equal(r.error, 0);
	assert_true(r.value >= 0x00000002); /* >= 0.2 */
	r = call(vm, 0, 0x10, 3, 0x48534D, 0, 0); /* probe HSM */
	assert_int_equal(r.value, 1);
	r = call(vm, 0, 0x10, 3, 0x12345678, 0, 0);
	assert_int_equal(r.error, 0);
	assert_int_equal(r.value, 0);
	r = call(vm, 0, 0x12345678, 0, 0, 0, 0);
	assert_int_equal(r.error, -2);

	/* IPI to hart 2 only (mask 0b10 from base 1) */
	r = call(vm, 0, 0x735049, 0, 2, 1, 0);
	assert_int_equal(r.error, 0);
	assert_true(mip(vm, 2) & 2);
	assert_int_equal(mip(vm, 1) & 2, 0);
	r = call(vm, 0, 0x735049, 0, 1, 3, 0); /* hart 3 does not exist */
	assert_int_equal(r.error, -3);

	/* HSM: hart 1 stopped, start it, a second start is refused */
	r = call(vm, 0, 0x48534D, 2, 1, 0, 0);
	assert_int_equal(r.value, HSM_STOPPED);
	r = call(vm, 0, 0x48534D, 0, 1, 0x80400000, 77);
	assert_int_equal(r.error, 0);
	r = call(vm, 0, 0x48534D, 2, 1, 0, 0);
	assert_int_equal(r.value, HSM_START_PENDING);
	r = call(vm, 0, 0x48534D, 0, 1, 0x80400000, 77);
	assert_int_equal(r.error, -6);
	r = call(vm, 0, 0x48534D, 0, 2, 0x1000, 0); /* not RAM */
	assert_int_equal(r.error, -5);

	/* set_timer programs the hart's comparator; the line is STIP */
	r = call(vm, 1, 0x54494D45, 0, 12345, 0, 0);
	assert_int_equal(r.error, 0);
	assert_int_equal(vm->harts[1].mtimecmp, 12345);
	assert_int_equal(vm->harts[1].timer_irq, CPU_IRQ_STI);

	/* remote sfence.vma on all harts completes (harts not running) */
	r = call(vm, 0, 0x52464E43, 1, 0, (unsigned long)-1, 0);
	assert_int_equal(r.error, 0);
	vm_destroy(vm);
}

static void sbi_srst_ends_the_vm(void **state)
{
	(void)state;
	static const struct {
		unsigned long type, reason;
		int code;
	} cases[] = {{0, 0, 0}, {0, 1, 1}, {1, 0, VIRT_EXIT_RESET}};
	for (unsigned k = 0; k < 3; k++) {
		struct vm *vm = make_vm(1);
		struct sbiret r = call(vm, 0, 0x53525354, 0, cases[k].type, cases[k].reason, 0);
		assert_int_equal(r.error, 0);
		assert_true(vm->done);
		assert_int_equal(vm->exit_code, cases[k].code);
		vm_destroy(vm);
	}
	struct vm *vm = make_vm(1);
	struct sbiret r = call(vm, 0, 0x53525354, 0, 7, 0, 0);
	assert_int_equal(r.error, -3);
	assert_false(vm->done);
	vm_destroy(vm);
}

/* Regression: work done inline on a stopped hart (cpu_run_on from another
 * thread, as SBI remote fences do) must finish before that hart's thread
 * can enter cpu_run; otherwise both touch the hart's TLB and code cache. */
struct inline_probe {
	struct cpu *c;
	volatile int in;
	uint64_t before, after;
};

static uint64_t instret(struct cpu *c)
{
	uint64_t v = 0;
	cpu_get_csr(c, 0xb02, &v);
	return v;
}

static void slow_work(struct cpu *c, void *arg)
{
	struct inline_probe *p = arg;
	p->before = instret(c);
	__atomic_store_n(&p->in, 1, __ATOMIC_RELEASE);
	usleep(100 * 1000);
	p->after = instret(c);
}

static void *runner(void *arg)
{
	struct inline_probe *p = arg;
	while (!__atomic_load_n(&p->in, __ATOMIC_ACQUIRE))
		usleep(1000);
	cpu_run(p->c, 1000); /* hart 0 spins on `j .` */
	return NULL;
}

static void inline_work_holds_off_cpu_run(void **state)
{
	(void)state;
	struct vm *vm = make_vm(1);
	struct inline_probe p = {.c = vm->harts[0].cpu};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, runner, &p), 0);
	assert_int_equal(cpu_run_on(p.c, slow_work, &p, true), 0);
	pthread_join(t, NULL);
	assert_int_equal(p.after, p.before); /* nothing ran during the work */
	assert_true(instret(p.c) >= p.before + 1000);
	vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(layout_places_initrd_and_dtb_at_the_top),
		cmocka_unit_test(bad_input_is_named),
		cmocka_unit_test(dtb_describes_the_machine),
		cmocka_unit_test(uart_thre_irq_through_plic),
		cmocka_unit_test(uart_input_reaches_rbr_and_getchar),
		cmocka_unit_test(sbi_base_ipi_hsm_timer),
		cmocka_unit_test(sbi_srst_ends_the_vm),
		cmocka_unit_test(inline_work_holds_off_cpu_run),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
