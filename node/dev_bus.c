/*
 * The virt machine's bus (cpu_mem_ops): flat RAM at 0x80000000 and the
 * MMIO devices of virt_int.h.  Device accesses take vm->lock (the CLINT
 * takes it itself).  Runs on vCPU threads.
 */
#include <errno.h>

#include "node/virt_int.h"

static bool in(uint64_t gpa, uint64_t base, uint64_t size)
{
	return gpa >= base && gpa - base < size;
}

bool dev_bus_is_mmio(const struct vm *vm, uint64_t gpa)
{
	(void)vm;
	return in(gpa, VM_CLINT_BASE, VM_CLINT_SIZE) || in(gpa, VIRT_PLIC_BASE, VIRT_PLIC_SIZE) ||
	       (gpa >> 12) == (VIRT_UART_BASE >> 12) || (gpa >> 12) == (VM_FINISHER_BASE >> 12);
}

static int bus_page_get(void *opaque, int hart, uint64_t gpa, unsigned access,
			struct cpu_page *out)
{
	struct vm *vm = opaque;
	(void)hart;
	(void)access;
	if (in(gpa, VM_RAM_BASE, vm->ram_size)) {
		out->host = vm->ram + ((gpa - VM_RAM_BASE) & ~4095ull);
		out->perms = CPU_PERM_R | CPU_PERM_W | CPU_PERM_X;
		out->mmio = false;
		return 0;
	}
	if (dev_bus_is_mmio(vm, gpa)) {
		out->host = NULL;
		out->perms = CPU_PERM_R | CPU_PERM_W;
		out->mmio = true;
		return 0;
	}
	return -EFAULT;
}

int dev_bus_read(struct vm *vm, uint64_t gpa, unsigned size, uint64_t *val)
{
	int rc = 0;
	*val = 0;
	if (in(gpa, VM_CLINT_BASE, VM_CLINT_SIZE))
		return vm_clint_read(vm, gpa - VM_CLINT_BASE, size, val);
	pthread_mutex_lock(&vm->lock);
	if (in(gpa, VIRT_PLIC_BASE, VIRT_PLIC_SIZE))
		rc = dev_plic_read(vm, gpa - VIRT_PLIC_BASE, size, val);
	else if (in(gpa, VIRT_UART_BASE, VIRT_UART_SIZE))
		rc = dev_uart_read(vm, gpa - VIRT_UART_BASE, size, val);
	pthread_mutex_unlock(&vm->lock);
	return rc;
}

int dev_bus_write(struct vm *vm, uint64_t gpa, unsigned size, uint64_t val)
{
	int rc = 0;
	if (in(gpa, VM_CLINT_BASE, VM_CLINT_SIZE))
		return vm_clint_write(vm, gpa - VM_CLINT_BASE, size, val);
	if (gpa == VM_FINISHER_BASE && size >= 4) {
		uint32_t v = (uint32_t)val;
		if ((v & 0xffff) == 0x5555)
			virt_end(vm, 0);
		else if ((v & 0xffff) == 0x3333)
			virt_end(vm, (int)(v >> 16));
		else if ((v & 0xffff) == 0x7777)
			virt_end(vm, VIRT_EXIT_RESET);
		return 0;
	}
	pthread_mutex_lock(&vm->lock);
	if (in(gpa, VIRT_PLIC_BASE, VIRT_PLIC_SIZE))
		rc = dev_plic_write(vm, gpa - VIRT_PLIC_BASE, size, val);
	else if (in(gpa, VIRT_UART_BASE, VIRT_UART_SIZE))
		rc = dev_uart_write(vm, gpa - VIRT_UART_BASE, size, val);
	pthread_mutex_unlock(&vm->lock);
	return rc;
}

static int bus_read(void *opaque, int hart, uint64_t gpa, unsigned size, uint64_t *val)
{
	(void)hart;
	return dev_bus_read(opaque, gpa, size, val);
}

static int bus_write(void *opaque, int hart, uint64_t gpa, unsigned size, uint64_t val)
{
	(void)hart;
	return dev_bus_write(opaque, gpa, size, val);
}

const struct cpu_mem_ops virt_mem_ops = {
	.page_get = bus_page_get,
	.mmio_read = bus_read,
	.mmio_write = bus_write,
};
