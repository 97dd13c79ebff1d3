/*
 * Memory backend of the single-node VM: flat RAM, MMIO dispatch (CLINT,
 * test finisher) and HTIF.
 *
 * HTIF's tohost word stays in RAM (guests poll it and often share its page
 * with other data or code), and its page is write-trapped on every hart, so
 * only stores to that page reach vm_htif_post; QEMU's spike HTIF semantics:
 * a 64-bit store, or a 32-bit store to the high half after one to the low
 * half, delivers the command; device 0 cmd 0 with an odd payload exits
 * with payload >> 1; device 1 cmd 1 prints the low byte; then fromhost =
 * (device << 56 | cmd << 48 | response) and tohost = 0.
 * Runs on vCPU threads; device state under vm->lock.
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "util/util.h"
#include "node/vm_int.h"

static int vm_page_get(void *opaque, int hart, uint64_t gpa, unsigned access,
		       struct cpu_page *out)
{
	struct vm *vm = opaque;
	(void)hart;
	(void)access;
	if (gpa >= VM_RAM_BASE && gpa - VM_RAM_BASE < vm->ram_size) {
		out->host = vm->ram + ((gpa - VM_RAM_BASE) & ~4095ull);
		out->perms = CPU_PERM_R | CPU_PERM_W | CPU_PERM_X;
		out->mmio = false;
		return 0;
	}
	if ((gpa >= VM_CLINT_BASE && gpa < VM_CLINT_BASE + VM_CLINT_SIZE) ||
	    (gpa >> 12) == (VM_FINISHER_BASE >> 12)) {
		out->host = NULL;
		out->perms = CPU_PERM_R | CPU_PERM_W;
		out->mmio = true;
		return 0;
	}
	return -EFAULT;
}

static int vm_mmio_read(void *opaque, int hart, uint64_t gpa, unsigned size, uint64_t *val)
{
	struct vm *vm = opaque;
	(void)hart;
	if (gpa >= VM_CLINT_BASE && gpa < VM_CLINT_BASE + VM_CLINT_SIZE)
		return vm_clint_read(vm, gpa - VM_CLINT_BASE, size, val);
	*val = 0; /* finisher reads as 0 */
	return 0;
}

static int vm_mmio_write(void *opaque, int hart, uint64_t gpa, unsigned size, uint64_t val)
{
	struct vm *vm = opaque;
	(void)hart;
	if (gpa >= VM_CLINT_BASE && gpa < VM_CLINT_BASE + VM_CLINT_SIZE)
		return vm_clint_write(vm, gpa - VM_CLINT_BASE, size, val);
	if (gpa == VM_FINISHER_BASE && size >= 4) {
		uint32_t v = (uint32_t)val;
		if ((v & 0xffff) == 0x5555)
			vm_finish(vm, 0);
		else if ((v & 0xffff) == 0x3333)
			vm_finish(vm, (int)(v >> 16));
		return 0;
	}
	return 0;
}

void vm_console_flush(struct vm *vm)
{
	size_t off = 0;
	while (off < vm->con_len) {
		ssize_t n = write(STDOUT_FILENO, vm->con_buf + off, vm->con_len - off);
		if (n <= 0)
			break; /* stdout gone: drop the output, keep running */
		off += (size_t)n;
	}
	vm->con_len = 0;
}

static void console_put(struct vm *vm, char ch)
{
	vm->con_buf[vm->con_len++] = ch;
	if (ch == '\n' || vm->con_len == sizeof(vm->con_buf))
		vm_console_flush(vm);
}

static uint64_t *ram_word(struct vm *vm, uint64_t gpa)
{
	return (uint64_t *)(vm->ram + (gpa - VM_RAM_BASE));
}

/* Returns the guest's exit code, or -1 when the guest goes on. */
static int htif_command(struct vm *vm, uint64_t v)
{
	unsigned dev = (unsigned)(v >> 56), cmd = (unsigned)(v >> 48) & 0xff;
	uint64_t payload = v & 0xffffffffffffull, resp = 0;
	if (dev == 0 && cmd == 0 && (payload & 1))
		return (int)((payload >> 1) & 0xff);
	if (dev == 1 && cmd == 1) {
		console_put(vm, (char)payload);
		resp = 0x100 | (payload & 0xff);
	} else if (dev == 1 && cmd == 0) {
		/* console read: no input device yet; QEMU also leaves it pending */
		__atomic_store_n(ram_word(vm, vm->elf.tohost), 0, __ATOMIC_RELEASE);
		return -1;
	} else {
		LOG_DBG("htif", "unsupported command 0x%llx", (unsigned long long)v);
	}
	if (vm->elf.fromhost)
		__atomic_store_n(ram_word(vm, vm->elf.fromhost), (v >> 48 << 48) | resp,
				 __ATOMIC_RELEASE);
	__atomic_store_n(ram_word(vm, vm->elf.tohost), 0, __ATOMIC_RELEASE);
	return -1;
}

static void vm_htif_post(void *opaque, int hart, uint64_t gpa, unsigned size, uint64_t val)
{
	struct vm *vm = opaque;
	uint64_t th = vm->elf.tohost;
	int code = -1;
	(void)hart;
	if (th == 0 || gpa + size <= th || gpa >= th + 8)
		return;
	pthread_mutex_lock(&vm->lock);
	if (gpa == th && size == 8) {
		if (val)
			code = htif_command(vm, val);
	} else if (gpa == th && size == 4) {
		vm->htif_lo = (uint32_t)val; /* wait for the high half */
	} else if (gpa == th + 4 && size == 4) {
		uint64_t v = vm->htif_lo | (val << 32);
		vm->htif_lo = 0;
		if (v)
			code = htif_command(vm, v);
	}
	pthread_mutex_unlock(&vm->lock);
	if (code >= 0)
		vm_finish(vm, code);
}

const struct cpu_mem_ops vm_mem_ops = {
	.page_get = vm_page_get,
	.mmio_read = vm_mmio_read,
	.mmio_write = vm_mmio_write,
	.write_post = vm_htif_post,
};
