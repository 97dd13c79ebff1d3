/* Sv39 permissions: R/W/X/U bits, W-without-R reserved, SUM (S access to
 * U pages; S never executes U pages), MXR (loads from execute-only pages),
 * U access to supervisor pages; every fault with its cause (12/13/15) and
 * stval = the faulting VA. */
#include "vmtest.h"

#define VA_R 0x10000000ul
#define VA_RW 0x10001000ul
#define VA_X 0x10002000ul
#define VA_W 0x10003000ul
#define VA_U 0x10004000ul
#define VA_RX 0x10005000ul
#define VA_URX 0x10006000ul
#define AD (PTE_V | PTE_A | PTE_D)

/* code templates copied into the test pages */
extern char s_ret42[], s_ret42_end[], u_ret42[], u_ret42_end[];
asm(".text\n .balign 4\n s_ret42: li a0, 42\n ret\n s_ret42_end:\n"
    " .balign 4\n u_ret42: li a0, 42\n li a7, " STR(RT_MAGIC_RETURN) "\n ecall\n u_ret42_end:\n");

static u64 *map_page(u64 *root, u64 va, u64 flags, u64 fill)
{
	u64 *p = rt_page_alloc();
	p[0] = fill;
	pt_map(root, va, (u64)p, 0, flags);
	return p;
}

static void put_code(u64 *page, const char *from, const char *to)
{
	rt_memcpy(page, from, (size_t)(to - from));
	rt_fence_i();
}

int main(void)
{
	u64 *root = vm_root();
	map_page(root, VA_R, AD | PTE_R, 0x1);
	u64 *rw = map_page(root, VA_RW, AD | PTE_R | PTE_W, 0x2);
	u64 *x = map_page(root, VA_X, AD | PTE_X, 0);
	map_page(root, VA_W, AD | PTE_W, 0x4);
	u64 *up = map_page(root, VA_U, AD | PTE_R | PTE_W | PTE_U, 0x5);
	u64 *rx = map_page(root, VA_RX, AD | PTE_R | PTE_X, 0);
	u64 *urx = map_page(root, VA_URX, AD | PTE_R | PTE_X | PTE_U, 0);
	put_code(x, s_ret42, s_ret42_end);
	put_code(rx, s_ret42, s_ret42_end);
	put_code(urx, u_ret42, u_ret42_end);
	u64 x0 = x[0];
	csr_write(satp, satp_of(root, 0));
	sfence_all();

	/* S-mode, no SUM, no MXR */
	CHECK_EQ(vm_try(PRV_S, s_load, VA_R, 0), 1);
	CHECK_FAULT(vm_try(PRV_S, s_store, VA_R + 8, 1), CAUSE_STORE_PAGE, VA_R + 8);
	CHECK_EQ(vm_try(PRV_S, s_store, VA_RW + 8, 7), 0);
	CHECK_EQ(rw[1], 7);
	CHECK_FAULT(vm_try(PRV_S, s_load, VA_X, 0), CAUSE_LOAD_PAGE, VA_X);
	CHECK_FAULT(vm_try(PRV_S, s_store, VA_X, 0), CAUSE_STORE_PAGE, VA_X);
	CHECK_EQ(vm_try(PRV_S, (void *)VA_X, 0, 0), 42);
	CHECK_EQ(vm_try(PRV_S, (void *)VA_RX, 0, 0), 42);
	CHECK_FAULT(vm_try(PRV_S, (void *)VA_RW, 0, 0), CAUSE_FETCH_PAGE, VA_RW);
	CHECK_FAULT(vm_try(PRV_S, (void *)VA_R + 0x10, 0, 0), CAUSE_FETCH_PAGE, VA_R + 0x10);
	CHECK_FAULT(vm_try(PRV_S, s_store, VA_RX, 0), CAUSE_STORE_PAGE, VA_RX);
	/* W without R is reserved: any access page-faults */
	CHECK_FAULT(vm_try(PRV_S, s_load, VA_W, 0), CAUSE_LOAD_PAGE, VA_W);
	CHECK_FAULT(vm_try(PRV_S, s_store, VA_W, 0), CAUSE_STORE_PAGE, VA_W);
	/* U page from S: needs SUM for loads/stores */
	CHECK_FAULT(vm_try(PRV_S, s_load, VA_U, 0), CAUSE_LOAD_PAGE, VA_U);
	CHECK_FAULT(vm_try(PRV_S, s_store, VA_U, 0), CAUSE_STORE_PAGE, VA_U);
	csr_set(mstatus, MSTATUS_SUM);
	CHECK_EQ(vm_try(PRV_S, s_load, VA_U, 0), 5);
	CHECK_EQ(vm_try(PRV_S, s_store, VA_U + 8, 6), 0);
	CHECK_EQ(up[1], 6);
	/* ...but S never executes from a U page, SUM or not */
	CHECK_FAULT(vm_try(PRV_S, (void *)VA_URX, 0, 0), CAUSE_FETCH_PAGE, VA_URX);
	csr_clear(mstatus, MSTATUS_SUM);
	/* MXR: loads from execute-only pages succeed */
	csr_set(mstatus, MSTATUS_MXR);
	CHECK_EQ(vm_try(PRV_S, s_load, VA_X, 0), x0);
	CHECK_FAULT(vm_try(PRV_S, s_store, VA_X, 0), CAUSE_STORE_PAGE, VA_X);
	csr_clear(mstatus, MSTATUS_MXR);
	CHECK_FAULT(vm_try(PRV_S, s_load, VA_X + 8, 0), CAUSE_LOAD_PAGE, VA_X + 8);

	/* U-mode: only U pages */
	CHECK_EQ(vm_try(PRV_U, TO_U(u_load), VA_U, 0), 5);
	CHECK_EQ(vm_try(PRV_U, TO_U(u_store), VA_U + 16, 9), 0);
	CHECK_EQ(up[2], 9);
	CHECK_FAULT(vm_try(PRV_U, TO_U(u_load), VA_RW, 0), CAUSE_LOAD_PAGE, VA_RW);
	CHECK_FAULT(vm_try(PRV_U, TO_U(u_store), VA_RW, 0), CAUSE_STORE_PAGE, VA_RW);
	csr_set(mstatus, MSTATUS_SUM); /* SUM does not open S pages to U */
	CHECK_FAULT(vm_try(PRV_U, TO_U(u_load), VA_RW + 8, 0), CAUSE_LOAD_PAGE, VA_RW + 8);
	csr_clear(mstatus, MSTATUS_SUM);
	CHECK_EQ(vm_try(PRV_U, (void *)VA_URX, 0, 0), 42);
	CHECK_FAULT(vm_try(PRV_U, (void *)VA_RX, 0, 0), CAUSE_FETCH_PAGE, VA_RX);
	CHECK_FAULT(vm_try(PRV_U, (void *)VA_RX, 0, 0), CAUSE_FETCH_PAGE, VA_RX);
	/* U code on the U alias, fetching from the S identity map: fault */
	CHECK_FAULT(vm_try(PRV_U, (void *)u_load, VA_U, 0), CAUSE_FETCH_PAGE, (u64)u_load);
	csr_write(satp, 0);
	rt_printf("vm_perm: %d checks passed\n", rt_check_no);
	return 0;
}
