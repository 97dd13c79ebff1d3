/* Address-space switching with frequent sfence.vma (bench/trace (a)).
 * NSPACES page tables map the same VAs to different data pages; an S-mode
 * loop switches satp, executes sfence.vma and reads every page, ITERS
 * times.  Every sfence.vma empties the TLB; with --retain-walks the cached
 * walks survive (no page-table page was written, so the traces removed
 * nothing) and every TLB refill is a walk-cache hit; without, every refill
 * walks the tables again.  The sum is checked, so both are exact. */
#include "rt.h"

#define NSPACES 8
#define NPG 32
/* pages 32 apart: the engine's walk cache (index (vpn ^ root) mod 1024)
 * then holds every (space, page) pair at once (roots are 4 pages apart) */
#define STRIDE (32ul * 4096)
#define NDATA 16
#ifndef ITERS
#define ITERS 10000
#endif
#define VA0 0x10000000ul

static u64 data[NDATA][512] __attribute__((aligned(4096)));
static u64 satps[NSPACES];

static unsigned page_of(int s, int i) { return (unsigned)(s * 7 + i) % NDATA; }

static u64 s_loop(u64 iters, u64 unused)
{
	u64 sum = 0;
	for (u64 it = 0; it < iters; it++)
		for (int s = 0; s < NSPACES; s++) {
			csr_write(satp, satps[s]);
			asm volatile("sfence.vma" ::: "memory");
			for (int i = 0; i < NPG; i++)
				sum += *(volatile u64 *)(VA0 + (u64)i * STRIDE);
		}
	return sum;
}

int main(void)
{
	u64 want = 0;
	for (int j = 0; j < NDATA; j++)
		data[j][0] = (u64)j * 1000 + 1;
	for (int s = 0; s < NSPACES; s++) {
		u64 *root = pt_alloc();
		pt_map(root, 0x80000000ul, 0x80000000ul, 2, PTE_V | PTE_RWX | PTE_A | PTE_D);
		for (int i = 0; i < NPG; i++) {
			pt_map(root, VA0 + (u64)i * STRIDE, (u64)data[page_of(s, i)], 0,
			       PTE_V | PTE_R | PTE_A);
			want += data[page_of(s, i)][0];
		}
		satps[s] = satp_of(root, 0);
	}
	u64 got = rt_run(PRV_S, s_loop, ITERS, 0);
	csr_write(satp, 0);
	CHECK_EQ(got, want * ITERS);
	rt_printf("trace_asid: %d spaces x %d pages x %d rounds, sum exact\n", NSPACES, NPG, ITERS);
	return 0;
}
