/* Sv39 A/D bits: the walker sets A on any access and D on a store (the
 * page-table entry in memory changes), a store to a page with A set and
 * D clear sets D, a load never sets D, a fetch sets A; and MPRV: M-mode
 * loads/stores translated with MPP's privilege (fetches are not). */
#include "vmtest.h"

#define VA 0x10000000ul

extern char s_ret7[], s_ret7_end[];
asm(".text\n .balign 4\n s_ret7: li a0, 7\n ret\n s_ret7_end:\n");

static void ad_bits(u64 *root)
{
	u64 *p = rt_page_alloc();
	p[0] = 0x77;
	pt_map(root, VA, (u64)p, 0, PTE_V | PTE_R | PTE_W);
	pt_map(root, VA + 0x1000, (u64)p, 0, PTE_V | PTE_R | PTE_W);
	pt_map(root, VA + 0x2000, (u64)p, 0, PTE_V | PTE_R | PTE_W | PTE_A);
	u64 *e0 = pt_pte(root, VA), *e1 = pt_pte(root, VA + 0x1000), *e2 = pt_pte(root, VA + 0x2000);
	csr_write(satp, satp_of(root, 0));
	sfence_all();
	CHECK_EQ(vm_try(PRV_S, s_load, VA, 0), 0x77);
	CHECK(*e0 & PTE_A); /* set by the walker (QEMU and spanvm do it in hardware) */
	CHECK(!(*e0 & PTE_D));
	CHECK_EQ(vm_try(PRV_S, s_store, VA + 8, 1), 0);
	CHECK(*e0 & PTE_D);
	CHECK_EQ(vm_try(PRV_S, s_store, VA + 0x1000 + 16, 2), 0);
	CHECK((*e1 & (PTE_A | PTE_D)) == (PTE_A | PTE_D));
	CHECK_EQ(p[2], 2);
	CHECK_EQ(vm_try(PRV_S, s_load, VA + 0x2000, 0), 0x77);
	CHECK(!(*e2 & PTE_D));
	CHECK_EQ(vm_try(PRV_S, s_store, VA + 0x2000, 3), 0);
	CHECK(*e2 & PTE_D);
	/* clear A/D again after sfence: the next access sets them again */
	for (int i = 0; i < 10; i++) {
		*e0 &= ~(PTE_A | PTE_D);
		asm volatile("sfence.vma %0, zero" :: "r"(VA) : "memory");
		CHECK_EQ(vm_try(PRV_S, s_load, VA + 8, 0), i ? (u64)i + 99 : 1);
		CHECK((*e0 & (PTE_A | PTE_D)) == PTE_A);
		CHECK_EQ(vm_try(PRV_S, s_store, VA + 8, (u64)i + 100), 0);
		CHECK((*e0 & (PTE_A | PTE_D)) == (PTE_A | PTE_D));
		rt_check_no -= 4;
	}
	rt_check_no += 4;
	/* fetch sets A (not D) */
	u64 *code = rt_page_alloc();
	rt_memcpy(code, s_ret7, (size_t)(s_ret7_end - s_ret7));
	rt_fence_i();
	pt_map(root, VA + 0x3000, (u64)code, 0, PTE_V | PTE_X);
	u64 *e3 = pt_pte(root, VA + 0x3000);
	sfence_all();
	CHECK_EQ(vm_try(PRV_S, (void *)(VA + 0x3000), 0, 0), 7);
	CHECK((*e3 & (PTE_A | PTE_D)) == PTE_A);
	csr_write(satp, 0);
}

static void mprv(u64 *root)
{
	u64 *p = rt_page_alloc(), *up = rt_page_alloc();
	p[0] = 0xaaaa;
	up[0] = 0xbbbb;
	pt_map(root, 0x11000000ul, (u64)p, 0, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D);
	pt_map(root, 0x11001000ul, (u64)up, 0, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D | PTE_U);
	csr_write(satp, satp_of(root, 0));
	sfence_all();
	/* MPRV=1, MPP=S: M's loads and stores go through the page table;
	 * its instruction fetches still do not */
	csr_clear(mstatus, MSTATUS_MPP);
	csr_set(mstatus, (u64)PRV_S << 11);
	u64 v1, v2;
	asm volatile("csrs mstatus, %2\n ld %0, 0(%3)\n sd %4, 8(%3)\n ld %1, 8(%3)\n csrc mstatus, %2"
		     : "=&r"(v1), "=&r"(v2) : "r"(MSTATUS_MPRV), "r"(0x11000000ul), "r"(0x1234ul) : "memory");
	CHECK_EQ(v1, 0xaaaa);
	CHECK_EQ(v2, 0x1234);
	CHECK_EQ(p[1], 0x1234);
	/* MPRV with MPP=S on a U page: SUM decides */
	rt_trap_clear();
	rt_expect_trap();
	asm volatile("csrs mstatus, %1\n ld %0, 0(%2)\n csrc mstatus, %1"
		     : "=&r"(v1) : "r"(MSTATUS_MPRV), "r"(0x11001000ul) : "memory");
	CHECK_EQ(rt_mtrap[0].count, 1);
	CHECK_EQ(rt_mtrap[0].cause, CAUSE_LOAD_PAGE);
	CHECK_EQ(rt_mtrap[0].tval, 0x11001000ul);
	/* the trap left MPRV set but made MPP = M (so nothing is translated
	 * any more); the skipped load resumed at the csrc that clears it */
	csr_clear(mstatus, MSTATUS_MPRV);
	/* MPP=U: U page readable */
	csr_clear(mstatus, MSTATUS_MPP);
	asm volatile("csrs mstatus, %1\n ld %0, 0(%2)\n csrc mstatus, %1"
		     : "=&r"(v1) : "r"(MSTATUS_MPRV), "r"(0x11001000ul) : "memory");
	CHECK_EQ(v1, 0xbbbb);
	/* MPP=M: no translation, physical address used */
	csr_set(mstatus, MSTATUS_MPP);
	asm volatile("csrs mstatus, %1\n ld %0, 0(%2)\n csrc mstatus, %1"
		     : "=&r"(v1) : "r"(MSTATUS_MPRV), "r"((u64)p) : "memory");
	CHECK_EQ(v1, 0xaaaa);
	csr_write(satp, 0);
}

int main(void)
{
	u64 *root = vm_root();
	ad_bits(root);
	mprv(root);
	rt_printf("vm_ad: %d checks passed\n", rt_check_no);
	return 0;
}
