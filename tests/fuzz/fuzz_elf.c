/*
 * libFuzzer target: arbitrary bytes as an ELF image for the loader.  It
 * must accept or reject them with a message, never read out of bounds.
 * run: build/bin/fuzz_elf -max_total_time=60
 */
#include <stdint.h>
#include <stdlib.h>

#include "node/vm_int.h"

#define RAM_SIZE (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	if (ram == NULL)
		ram = malloc(RAM_SIZE);
	struct elf_info info;
	char err[256];
	elf_load(data, size, ram, VM_RAM_BASE, RAM_SIZE, &info, err, sizeof(err));
	return 0;
}
