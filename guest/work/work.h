/* CPU-bound benchmark workloads.  Each checks its own result (exit code
 * nonzero on a wrong answer) and prints "instret N" (minstret at the end:
 * exact under QEMU -icount shift=0, which bench/cpu.sh uses to count the
 * guest instructions once). */
#ifndef GUEST_WORK_H
#define GUEST_WORK_H
#include "rt.h"

static inline u64 xorshift(u64 *s)
{
	u64 x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static inline int work_done(const char *name, u64 result)
{
	u64 n = csr_read(minstret);
	rt_printf("%s: result 0x%lx\ninstret %lu\n", name, result, n);
	return 0;
}
#endif
