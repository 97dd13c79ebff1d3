/* Sv39 mappings: 4 KiB, 2 MiB and 1 GiB leaves translate to the right
 * bytes (checked against physical writes from M), unmapped and
 * misaligned-superpage faults, invalid VAs (bits 63:39 not a sign
 * extension), satp switching between address spaces with different ASIDs,
 * PTE changes made visible by sfence.vma. */
#include "vmtest.h"

#define VA4K 0x10000000ul
#define VA2M 0x20000000ul
#define VA1G 0x40000000ul
#define PA2M 0x80600000ul /* free 2 MiB-aligned RAM above the image */

int main(void)
{
	u64 *root = vm_root();
	u64 *page = rt_page_alloc();
	page[0] = 0x1111;
	page[511] = 0x2222;
	pt_map(root, VA4K, (u64)page, 0, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D);
	pt_map(root, VA2M, PA2M, 1, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D);
	pt_map(root, VA1G, 0x80000000ul, 2, PTE_V | PTE_R | PTE_A);
	*(volatile u64 *)(PA2M + 0x1ff000) = 0x3333;
	*(volatile u64 *)(PA2M + 8) = 0x4444;
	csr_write(satp, satp_of(root, 0));
	sfence_all();

	CHECK_EQ(vm_try(PRV_S, s_load, VA4K, 0), 0x1111);
	CHECK_EQ(vm_try(PRV_S, s_load, VA4K + 4088, 0), 0x2222);
	CHECK_EQ(vm_try(PRV_S, s_load, VA2M + 0x1ff000, 0), 0x3333);
	CHECK_EQ(vm_try(PRV_S, s_load, VA2M + 8, 0), 0x4444);
	/* the 1 GiB alias sees the same bytes as the physical page */
	CHECK_EQ(vm_try(PRV_S, s_load, VA1G + ((u64)page - 0x80000000ul), 0), 0x1111);
	/* stores through the mapping land in the physical page */
	CHECK_EQ(vm_try(PRV_S, s_store, VA4K + 16, 0xabcd), 0);
	CHECK_EQ(page[2], 0xabcd);
	CHECK_EQ(vm_try(PRV_S, s_store, VA2M + 0x100008, 0x5555), 0);
	CHECK_EQ(*(volatile u64 *)(PA2M + 0x100008), 0x5555);
	/* unmapped: load page fault with stval = VA (taken in M here) */
	CHECK_FAULT(vm_try(PRV_S, s_load, VA4K + 4096, 0), CAUSE_LOAD_PAGE, VA4K + 4096);
	CHECK_FAULT(vm_try(PRV_S, s_store, 0x30000010ul, 1), CAUSE_STORE_PAGE, 0x30000010ul);
	/* read-only 1 GiB alias: store faults */
	CHECK_FAULT(vm_try(PRV_S, s_store, VA1G + 64, 1), CAUSE_STORE_PAGE, VA1G + 64);
	/* VA not sign-extended from bit 38: page fault */
	CHECK_FAULT(vm_try(PRV_S, s_load, 0x0000008000000000ul, 0), CAUSE_LOAD_PAGE, 0x0000008000000000ul);
	/* misaligned superpage (2 MiB leaf, PPN[0] != 0): page fault */
	pt_map(root, 0x140000000ul, 0x80601000ul, 1, PTE_V | PTE_R | PTE_A);
	sfence_all();
	CHECK_FAULT(vm_try(PRV_S, s_load, 0x140000000ul, 0), CAUSE_LOAD_PAGE, 0x140000000ul);

	/* second address space, other ASID: same VA, other page */
	u64 *root2 = vm_root();
	u64 *page2 = rt_page_alloc();
	page2[0] = 0x9999;
	pt_map(root2, VA4K, (u64)page2, 0, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D);
	for (int i = 0; i < 20; i++) {
		csr_write(satp, satp_of(root2, 2));
		sfence_all();
		CHECK_EQ(vm_try(PRV_S, s_load, VA4K, 0), 0x9999);
		csr_write(satp, satp_of(root, 1));
		sfence_all();
		CHECK_EQ(vm_try(PRV_S, s_load, VA4K, 0), 0x1111);
		rt_check_no -= 2;
	}
	rt_check_no += 2;
	/* satp reads back what was written (MODE, ASID (if kept), PPN) */
	CHECK_EQ(csr_read(satp) & ~(0xfffful << 44), SATP_SV39 | ((u64)root >> 12));

	/* change a PTE, sfence.vma that VA: new mapping seen */
	u64 *pte = pt_pte(root, VA4K);
	CHECK(pte != NULL);
	for (int i = 0; i < 50; i++) {
		u64 *target = (i & 1) ? page2 : page;
		*pte = (((u64)target >> 12) << 10) | PTE_V | PTE_R | PTE_W | PTE_A | PTE_D;
		asm volatile("sfence.vma %0, zero" :: "r"(VA4K) : "memory");
		CHECK_EQ(vm_try(PRV_S, s_load, VA4K, 0), (i & 1) ? 0x9999 : 0x1111);
		rt_check_no--;
	}
	rt_check_no++;
	/* invalidate the PTE: fault after sfence.vma */
	*pte = 0;
	sfence_all();
	CHECK_FAULT(vm_try(PRV_S, s_load, VA4K + 8, 0), CAUSE_LOAD_PAGE, VA4K + 8);
	/* satp MODE = Bare again: no translation in S */
	csr_write(satp, 0);
	sfence_all();
	CHECK_EQ(vm_try(PRV_S, s_load, (u64)page, 0), 0x1111);
	/* a reserved MODE (1) leaves satp unchanged (Sv48/57 would be legal on QEMU) */
	csr_write(satp, satp_of(root, 0));
	csr_write(satp, (1ul << 60) | 0x1234);
	CHECK_EQ(csr_read(satp) >> 60, 8);
	csr_write(satp, 0);
	rt_printf("vm_map: %d checks passed\n", rt_check_no);
	return 0;
}
