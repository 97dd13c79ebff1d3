/* Page-table change on one hart seen by another after the architected
 * sequence: hart 0 rewrites the leaf PTE of a VA (alternating between two
 * pages), fence rw,rw, raises a flag; hart 1 (which used the old
 * translation in the previous round) executes sfence.vma and reads the VA
 * in S-mode: it must see the new page every time. */
#include "mp.h"

#define ROUNDS 200
#define VA 0x10000000ul
static u64 *root, *pages[2], *pte;
static volatile u64 seq, seen, ready;

static u64 s_read(u64 va) { return *(volatile u64 *)va; }

static void set_pte(int which)
{
	*pte = (((u64)pages[which] >> 12) << 10) | PTE_V | PTE_R | PTE_W | PTE_A | PTE_D;
}

int secondary_main(unsigned h)
{
	if (h != 1)
		for (;;)
			asm volatile("wfi");
	mp_arrive();
	mp_wait_eq(&ready, 1, "ready");
	csr_write(satp, satp_of(root, 0));
	asm volatile("sfence.vma" ::: "memory");
	for (u64 r = 1; r <= ROUNDS; r++) {
		mp_wait_eq(&seq, r, "seq");
		asm volatile("fence rw, rw\n sfence.vma" ::: "memory");
		u64 v = rt_run(PRV_S, s_read, VA, 0);
		v = rt_run(PRV_S, s_read, VA, 0); /* twice: the second hits the TLB */
		__atomic_store_n(&seen, v, __ATOMIC_RELEASE);
		mp_wait_eq(&seq, r + 1 <= ROUNDS ? r + 1 : r, "next");
	}
	for (;;)
		asm volatile("wfi");
}

int main(void)
{
	mp_arrive();
	root = pt_alloc();
	pt_map(root, 0x80000000ul, 0x80000000ul, 2, PTE_V | PTE_RWX | PTE_A | PTE_D);
	pages[0] = rt_page_alloc();
	pages[1] = rt_page_alloc();
	pages[0][0] = 0x1000;
	pages[1][0] = 0x2000;
	pt_map(root, VA, (u64)pages[0], 0, PTE_V | PTE_R | PTE_A);
	pte = pt_pte(root, VA);
	__atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
	for (u64 r = 1; r <= ROUNDS; r++) {
		set_pte(r & 1);
		pages[r & 1][0] = (r & 1 ? 0x2000 : 0x1000) + r;
		asm volatile("fence rw, rw" ::: "memory");
		__atomic_store_n(&seq, r, __ATOMIC_RELEASE);
		u64 want = (r & 1 ? 0x2000 : 0x1000) + r;
		mp_wait_eq(&seen, want, "seen (a stale TLB entry would show the other page)");
	}
	CHECK_EQ(seen, (ROUNDS & 1 ? 0x2000ul : 0x1000ul) + ROUNDS);
	rt_printf("mp_pt: %d rounds, %d checks passed\n", ROUNDS, rt_check_no);
	return 0;
}
