/*
 * One node's share of a multi-node VM whose guest RAM is kept coherent by
 * dsm/ (node/vm_dsm.c): the harts placed on this node, their memory
 * interface backed by the DSM, the revocation of a page on the local harts,
 * HTIF (console and exit) and a node-local CLINT (mtime; msip only for
 * local harts).
 *
 * Threads: one vCPU thread per local hart (cpu_run); the DSM's agent and
 * home workers call vmd_revoke, which runs tr_revoke on the node's trace
 * table (vm_trace.c) and waits for the subscribed harts only; the caller
 * owns create/load/start/stop.  Locking: the trace layer's (stripe ->
 * mailbox); none is held while guest code runs or while the engine is
 * called.  The trace table calls dsm_trace_sub under a stripe mutex (the
 * DSM never calls back into trace/ with a lock held).
 *
 * How a revocation reaches a hart that is blocked in page_get (waiting for
 * a different page): the kick wakes the DSM's waiters (dsm_wake) and the
 * hart's idle callback serves its trace mailbox.  A hart acknowledges a
 * revocation only at an instruction boundary or BEFORE it re-checks the
 * page state in page_get, never between a successful check and the access
 * (not inside a trace wait either), and the engine subscribes before that
 * check, so an acknowledged revocation is never followed by a stale use
 * (docs/trace.md, "Revocation").
 */
#ifndef SPANVM_NODE_VM_DSM_INT_H
#define SPANVM_NODE_VM_DSM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dsm/dsm.h"

struct tp;
struct vmd;
struct vml;

struct vmd_cfg {
	struct tp *tp;               /* peers added; started before vmd_start */
	int node_id;
	const int *nodes;            /* all members */
	unsigned nnodes;
	uint8_t *ram;                /* registered with tp at offset 0 */
	uint64_t ram_size;           /* guest RAM at VM_RAM_BASE */
	const unsigned *harts;       /* guest hart ids placed on this node */
	unsigned nharts;
	enum dsm_home_policy policy;
	uint64_t block_pages;        /* DSM_HOME_BLOCK: pages per run (0 = RAM / nodes) */
	uint64_t msg_timeout_ns, retx_ns; /* dsm_cfg's; 0 = defaults */
	bool no_trace;               /* no write traces among local harts (vm_trace.c):
				      * then a hart sees another local hart's code and
				      * page-table stores only after fence.i/sfence.vma */
	struct vml *machine;         /* a Linux guest (virt_int.h: SBI, devices, HSM across
				      * nodes); NULL for bare-metal ELF guests (HTIF) */
	/* HTIF console byte and guest exit; called on vCPU threads */
	void (*on_putc)(void *arg, char ch);
	void (*on_exit)(void *arg, int code);
	void *cb_arg;
};

/* Creates the DSM (and starts serving pages) and the local harts. */
int vmd_create(const struct vmd_cfg *cfg, struct vmd **out, char *err, size_t errlen);
/* Every node parses the ELF (entry, tohost); with write_ram (node 0) its
 * segments are written into guest RAM through the DSM. */
int vmd_load_elf(struct vmd *v, const uint8_t *img, size_t len, bool write_ram, char *err,
		 size_t errlen);
/* One thread per local hart. */
int vmd_start(struct vmd *v);
/* The stop's first phase (CtlHalt): stops the harts and joins them until
 * deadline_ns (util_now_ns clock); the DSM goes on serving pages.  Returns
 * the harts still running (vmd_stop ends them).  Agent thread. */
unsigned vmd_halt(struct vmd *v, uint64_t deadline_ns);
/* Stops the harts (join) and the DSM. */
void vmd_stop(struct vmd *v);
void vmd_destroy(struct vmd *v);
struct dsm *vmd_dsm(struct vmd *v);
/* Local harts interrupted by revocations so far. */
uint64_t vmd_revocations(struct vmd *v);
/* Revocations so far, and those that interrupted no hart (no subscriber). */
void vmd_revoke_stats(struct vmd *v, uint64_t *calls, uint64_t *silent);
/* Adds member "revocation" {calls, silent, interrupts, nosub_interrupts,
 * failed} to a json_t object.  nosub_interrupts: harts interrupted by a
 * revocation while not subscribed to the page (0 unless the trace table
 * broadcasts). */
void vmd_revoke_json(struct vmd *v, void *json_obj);
/* The DSM statistics object (dsm_stats_write_json) with "revocation"
 * added, on one line.  0 or -errno. */
int vmd_stats_write_json(struct vmd *v, FILE *f);
/* Adds the local trace statistics as member "trace" of a json_t object
 * (subscriptions and revocations only with no_trace). */
void vmd_trace_stats(struct vmd *v, void *json_root);

/* node/vm_trace.c, for vm_dsm.c: the table with a node-wide subscription
 * callback (tr_cfg.on_page) and options as --trace ("writes=0": no write
 * traces); a hook run after every kick; revocation (tr_revoke); harts
 * interrupted by revocations without a subscription. */
struct vm_trace;
int vt_create_cfg(const char *opts, void (*on_page)(void *, uint64_t, bool), void *arg,
		  struct vm_trace **out, char *err, size_t errlen);
void vt_set_kick_hook(struct vm_trace *vt, void (*fn)(void *), void *arg);
int vt_revoke(struct vm_trace *vt, uint64_t page, unsigned *notified);
int vt_revoke_try(struct vm_trace *vt, uint64_t page); /* tr_revoke_try */
uint64_t vt_revoke_nonsub(struct vm_trace *vt);

/* node/node_vm.c: the guest side of a spanvm-node (after Start). *out is
 * NULL (and 0 returned) when the config names no guest. */
struct config;
struct config_node;
struct node_vm;
int node_vm_start(const struct config *cfg, const struct config_node *me, struct tp *tp,
		  uint8_t *ram, size_t ram_len, const uint32_t *peers, uint32_t npeers,
		  struct node_vm **out);
void node_vm_stop(struct node_vm *vm);
/* The stop's first phase: starts no more harts and halts the running ones
 * (vmd_halt), waiting at most wait_ms; the DSM keeps serving pages until
 * node_vm_stop.  Returns the harts still running. */
unsigned node_vm_halt(struct node_vm *vm, unsigned wait_ms);
/* Linux guests: the host monotonic time (util_now_ns) at which the VM's
 * mtime is 0, agreed through the coordinator; call before node_vm_start. */
void node_vm_set_mtime_zero(uint64_t zero_ns);
/* Its DSM (NULL without a guest): audits, lost pages after a failure. */
struct dsm *node_vm_dsm(struct node_vm *vm);
/* Readable once the guest exited on one of this node's harts (-1 for a NULL
 * vm); then node_vm_exit_code gives the code (0, or -EAGAIN before). */
int node_vm_exit_fd(const struct node_vm *vm);
int node_vm_exit_code(struct node_vm *vm, int *code);
/* spanvm launch, after the cluster stopped: the guest's exit code (as the
 * coordinator reported it; rc when guest_exit is NULL: no guest exited), a
 * DSM summary per node on stderr, and with stats_file the nodes' DSM
 * statistics as one JSON object. */
int node_vm_launch_result(const char *rundir, const struct config *cfg, const char *stats_file,
			  int rc, const int *guest_exit);

#endif
