/*
 * libFuzzer target: arbitrary bytes as guest code.  Decodes every parcel,
 * then runs them as a program (M-mode, traps vector back into the same
 * bytes) for a bounded number of instructions: decoder, translator,
 * executor, CSR and trap paths must never crash or hang the host.
 * Build: cmake -DSPANVM_FUZZ=ON -DCMAKE_C_COMPILER=clang; run:
 * build/bin/fuzz_decode -max_total_time=60
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cpu/cpu_int.h"
#include "../unit/test_cpu_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (size_t k = 0; k + 4 <= size; k += 2) {
		uint32_t raw;
		memcpy(&raw, data + k, 4);
		struct dinsn d;
		cpu_decode(raw, &d);
	}
	static struct tmem *m;
	if (m == NULL)
		m = tmem_new();
	memset(m->ram, 0, 65536);
	memcpy(m->ram, data, size < 65536 ? size : 65536);
	struct cpu *c = tmem_cpu(m, 0, false);
	if (c == NULL)
		return 0;
	cpu_set_csr(c, 0x305, T_RAM_BASE);
	cpu_run(c, 5000);
	cpu_destroy(c);
	m->cpu[0] = NULL;
	return 0;
}
