/*
 * The Linux-capable machine behind `spanvm run IMAGE` (and `spanvm dtb`):
 * QEMU-virt's memory map with the monitor playing the SBI, so a stock
 * S-mode kernel boots with no firmware image.
 *
 *   0x00100000  test finisher (sifive,test0: 0x5555 pass, 0x3333 fail, 0x7777 reset)
 *   0x02000000  CLINT (vm_clint.c; an S-mode kernel never touches it)
 *   0x0c000000  PLIC  (dev_plic.c: sifive,plic-1.0.0, 2 contexts per hart: M, S)
 *   0x10000000  UART  (dev_uart.c: ns16550a, PLIC source 10; input from stdin)
 *   0x80000000  RAM: Image at 0x80200000, initrd and DTB at the top
 *
 * Pieces: vm_boot.c (Image header, layout, load), vm_fdt.c (device tree
 * with libfdt), sbi_call.c (the SBI extensions), sbi_hart.c (HSM: the hart
 * threads' life cycle), dev_bus.c (cpu_mem_ops of this machine), dev_*.c.
 *
 * Threads: each hart's vCPU thread runs the SBI calls and MMIO accesses of
 * its hart; the CLINT timer thread raises the S timer line; an input thread
 * (dev_console.c) feeds stdin to the UART.
 * Locking: all device and HSM state (UART, PLIC, per-hart HSM state, the
 * console buffer) is under vm->lock, like the CLINT's.  cpu_set_irq() may be
 * called with it held (the cpu lock nests inside vm->lock).  vm->lock is
 * never held while waiting for another hart (remote fences).
 */
#ifndef SPANVM_NODE_VIRT_INT_H
#define SPANVM_NODE_VIRT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/vm_int.h"

#define VIRT_PLIC_BASE 0xc000000ull
#define VIRT_PLIC_SIZE 0x4000000ull
#define VIRT_UART_BASE 0x10000000ull
#define VIRT_UART_SIZE 0x100ull
#define VIRT_UART_IRQ 10
#define VIRT_UART_CLOCK 3686400u
#define VIRT_PLIC_NDEV 31
#define VIRT_KERNEL_ADDR 0x80200000ull
#define VIRT_TIMEBASE 10000000u
#define VIRT_DTB_MAX (64u << 10)
#define VIRT_ISA "rv64imac_zicsr_zifencei"
#define VIRT_EXIT_RESET 3 /* guest asked for a reboot: the VM ends with this code */

/* ---- boot (vm_boot.c) ---- */
struct boot_cfg {
	const char *kernel_path;
	const uint8_t *kernel_buf; /* optional: the kernel already read (lent) */
	size_t kernel_len;
	const char *initrd_path; /* NULL: none */
	const char *cmdline;     /* NULL: none */
	unsigned harts;
	uint64_t mem_bytes;
};

/* Everything prepared before any vCPU exists: files read, checked, placed. */
struct boot_plan {
	uint8_t *kernel;            /* NULL when only a DTB is wanted */
	size_t kernel_len;
	uint64_t kernel_addr, kernel_end; /* end includes bss (header image_size) */
	uint8_t *initrd;
	size_t initrd_len;
	uint64_t initrd_addr;       /* 0 when none */
	void *dtb;
	size_t dtb_len;
	uint64_t dtb_addr;
};

/* True when buf looks like a RISC-V Linux Image (magic at 0x38 or 0x30). */
bool boot_is_image(const uint8_t *buf, size_t len);
/* Reads the kernel (optional: may be NULL in cfg for `spanvm dtb`) and the
 * initrd, checks them, places kernel/initrd/DTB in RAM and builds the DTB.
 * Errors (-EINVAL, -ENOENT, -ENOSPC, ...) name the file and what is wrong. */
int boot_prepare(const struct boot_cfg *cfg, struct boot_plan *out, char *err, size_t el);
/* Copies the plan into guest RAM (ram = guest-physical VM_RAM_BASE). */
void boot_load(const struct boot_plan *p, uint8_t *ram);
void boot_plan_free(struct boot_plan *p);

/* ---- device tree (vm_fdt.c) ---- */
struct fdt_cfg {
	unsigned harts;
	uint64_t mem_bytes;
	const char *bootargs;                   /* NULL: none */
	uint64_t initrd_start, initrd_end;      /* both 0: no initrd */
};
/* Builds the DTB into a malloc'd buffer (packed); 0 or -ENOSPC/-ENOMEM. */
int fdt_build(const struct fdt_cfg *cfg, void **out, size_t *len, char *err, size_t el);

/* ---- devices ---- */
#define UART_RX_SIZE 256
struct uart {                 /* ns16550a; under vm->lock */
	uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	bool thr_ipending;    /* THR-empty interrupt pending (cleared by IIR read) */
	uint8_t rx[UART_RX_SIZE]; /* bytes from stdin not yet read by the guest */
	unsigned rx_head, rx_len;
};

struct plic {                 /* under vm->lock */
	uint32_t prio[VIRT_PLIC_NDEV + 1];
	uint32_t line;        /* device line levels, bit = source */
	uint32_t pending, claimed;
	uint32_t enable[2 * VM_MAX_HARTS];
	uint32_t threshold[2 * VM_MAX_HARTS];
	bool out[2 * VM_MAX_HARTS]; /* last level given to each context's line */
};

enum hsm_state { HSM_STARTED = 0, HSM_STOPPED = 1, HSM_START_PENDING = 2, HSM_STOP_PENDING = 3 };

struct virt_hart {            /* under vm->lock */
	enum hsm_state hsm;
	uint64_t start_addr, opaque;
};

struct virt_stats {           /* relaxed atomics, any vCPU thread */
	uint64_t sbi_calls, ipis, rfences, timer_sets, console_bytes;
};

struct virt {
	struct vm *vm;
	struct boot_plan plan;
	struct virt_hart harts[VM_MAX_HARTS];
	struct uart uart;
	struct plic plic;
	struct virt_stats st;
	pthread_t input_thread;  /* stdin -> UART (dev_console.c) */
	bool input_running;      /* set/cleared by the thread that creates/joins it */
	bool input_stop;         /* under vm->lock */
	int exit_reason_code;  /* set with vm_finish; informational */
	struct vml *mn;        /* multi-node run (vm_dsm_linux.c), else NULL; set before any hart */
};

extern const struct cpu_mem_ops virt_mem_ops;

/* Creates vm->virt from an Image already read into img (lent), the initrd
 * and the command line of vm->cfg, and loads everything into RAM. */
int virt_create(struct vm *vm, const uint8_t *img, size_t len, char *err, size_t el);
void virt_destroy(struct virt *v);
/* After cpu_create: delegation and counters as a firmware would leave them;
 * hart 0 enters the kernel, the others wait for HSM hart_start. */
void virt_hart_reset(struct vm *vm, struct vm_hart *h);
/* A hart thread's body (instead of a bare cpu_run): waits while stopped. */
void virt_hart_main(struct vm_hart *h);

/* dev_uart.c / dev_plic.c: offsets from the device base, vm->lock held. */
int dev_uart_read(struct vm *vm, uint64_t off, unsigned size, uint64_t *val);
int dev_uart_write(struct vm *vm, uint64_t off, unsigned size, uint64_t val);
void dev_uart_reset(struct uart *u);
int dev_plic_read(struct vm *vm, uint64_t off, unsigned size, uint64_t *val);
int dev_plic_write(struct vm *vm, uint64_t off, unsigned size, uint64_t val);
void dev_plic_set_line(struct vm *vm, unsigned src, bool level);
/* One console byte (UART THR or SBI putchar); vm->lock held. */
void dev_console_put(struct vm *vm, char ch);
/* Input bytes into the UART (dropped when its buffer is full); the next
 * input byte or -1 (SBI getchar).  vm->lock held. */
void dev_uart_rx(struct vm *vm, const uint8_t *buf, size_t n);
int dev_uart_getc(struct vm *vm);
/* dev_console.c: a thread feeding stdin to the UART until EOF or stop. */
void dev_console_input_start(struct vm *vm);
void dev_console_input_stop(struct vm *vm);

/* Ends the VM (SRST, finisher): vm_finish, and in a multi-node run the
 * whole cluster through the node's guest-exit path. */
void virt_end(struct vm *vm, int code);
/* HSM on a hart of THIS process (vm->harts[hart].cpu != NULL), for local
 * callers and for requests from other nodes; SBI error codes. */
long virt_hsm_start(struct vm *vm, unsigned hart, uint64_t addr, uint64_t opaque);
long virt_hsm_status(struct vm *vm, unsigned hart, unsigned long *value);

/* dev_bus.c: one MMIO access to this process's devices (vm->virt). */
int dev_bus_read(struct vm *vm, uint64_t gpa, unsigned size, uint64_t *val);
int dev_bus_write(struct vm *vm, uint64_t gpa, unsigned size, uint64_t val);
bool dev_bus_is_mmio(const struct vm *vm, uint64_t gpa);

/*
 * Across nodes (vm_dsm_linux.c).  In a multi-node run every node has a struct
 * vm whose harts[] covers all harts but only its own have a cpu; an
 * operation on a hart whose cpu is NULL goes to that hart's node through
 * these (request/reply with retransmission; fences complete there first).
 * Called on vCPU threads without vm->lock, except vml_remote_irq, which
 * only queues a message and may be called with it held.
 */
struct vml;
void vml_remote_ipi(struct vml *m, struct cpu *self, unsigned hart);
long vml_remote_fence(struct vml *m, struct cpu *self, unsigned hart, bool tlb_only);
long vml_remote_hsm(struct vml *m, struct cpu *self, unsigned long fid, unsigned hart,
		    uint64_t addr, uint64_t opaque, unsigned long *value);
void vml_remote_irq(struct vml *m, unsigned hart, unsigned irq, bool level);
void vml_guest_exit(struct vml *m, int code);

/*
 * One node's part of a multi-node Linux VM (vm_dsm_linux.c), used by
 * vm_dsm.c: the node's struct vm (device and HSM state, CLINT timer for
 * its harts, and on the console node the UART and the PLIC), the SBI hook
 * of its harts, MMIO forwarding to the console node, and the node-to-node
 * requests of the functions above (message types 128..130).
 * Order: vml_create (boot_prepare: every node computes the same plan),
 * vml_hart_cfg before and vml_hart_bind after each local cpu_create,
 * vml_load (the console node writes Image, initrd and DTB through the
 * DSM and announces it; the others wait for that), vml_start, one thread
 * per local hart in vml_hart_main, vml_prefetch; vml_stop (harts leave),
 * vml_destroy after the cpus.
 */
struct dsm;
struct tp;
struct vml_cfg {
	struct tp *tp;
	int node_id;
	int console_node;            /* UART, PLIC, loader: the config's first node */
	const int *hart_node;        /* node id of each hart of the VM, [harts] */
	unsigned harts;              /* harts of the whole VM */
	uint8_t *ram;                /* this node's copy of guest RAM (DSM-managed) */
	uint64_t ram_size;
	const char *kernel, *initrd, *cmdline; /* initrd/cmdline may be NULL */
	uint64_t zero_ns;            /* util_now_ns() at mtime 0 (the same on every node) */
	void (*on_exit)(void *arg, int code); /* guest exit (SRST, finisher), any thread */
	void *cb_arg;
};
int vml_create(const struct vml_cfg *cfg, struct vml **out, char *err, size_t el);
void vml_hart_cfg(struct vml *m, unsigned hart, struct cpu_cfg *cc);
void vml_hart_bind(struct vml *m, unsigned hart, struct cpu *cpu);
int vml_load(struct vml *m, struct dsm *d, char *err, size_t el);
int vml_start(struct vml *m);
/* After the harts started (they wait in HSM): non-console nodes read the
 * kernel text through the DSM (Shared copies); any non-vCPU thread. */
void vml_prefetch(struct vml *m, struct dsm *d);
void vml_hart_main(struct vml *m, unsigned hart);
bool vml_is_mmio(const struct vml *m, uint64_t gpa);
int vml_mmio_read(struct vml *m, unsigned hart, uint64_t gpa, unsigned size, uint64_t *val);
int vml_mmio_write(struct vml *m, unsigned hart, uint64_t gpa, unsigned size, uint64_t val);
void vml_stop(struct vml *m);
void vml_destroy(struct vml *m);
/* SBI/console/forwarding counters as member "linux" of a json_t object. */
void vml_stats(struct vml *m, void *json_root);

/* vm_sysmap.c: a kernel's System.map, to name guest pages of the Image
 * (loaded at VIRT_KERNEL_ADDR).  load: 0, -errno, -EINVAL (not a kernel's
 * map: no _start/_end).  name: the symbol at or below gpa and the offset,
 * NULL outside the Image.  gpa: a symbol's guest-physical address or 0. */
struct sysmap;
int sysmap_load(const char *path, struct sysmap **out);
void sysmap_free(struct sysmap *m);
uint64_t sysmap_addr(const struct sysmap *m, const char *name);
const char *sysmap_name(const struct sysmap *m, uint64_t gpa, uint64_t *off);
uint64_t sysmap_gpa(const struct sysmap *m, const char *name);

/* sbi_call.c: the cpu_cfg.sbi_call hook; arg is the struct vm_hart. */
void sbi_call(void *arg, struct cpu *cpu);
/* sbi_hart.c: HSM functions (fid, a0..a5); returns the SBI error, *value
 * the result. */
long sbi_hsm_call(struct vm_hart *h, unsigned long fid, const unsigned long *a,
		  unsigned long *value);

#endif
