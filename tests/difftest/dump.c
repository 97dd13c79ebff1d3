/* dt_print: prints the register dump and the scratch buffer of a
 * difftest program in a fixed text form (compared line by line by
 * difftest.sh), then exits 0. */
#include "rt.h"

extern u64 dt_regs[33];
extern u64 dt_scratch[32];

int main(void);

__attribute__((noreturn)) void dt_print(void)
{
	for (int i = 1; i < 32; i++)
		rt_printf("x%d=%016lx\n", i, dt_regs[i]);
	rt_printf("sscratch=%016lx\n", dt_regs[32]);
	for (int i = 0; i < 32; i++)
		rt_printf("mem%d=%016lx\n", i * 8, dt_scratch[i]);
	rt_exit(0);
}
