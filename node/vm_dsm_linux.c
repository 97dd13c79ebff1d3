/*
 * A Linux VM whose harts are spread over several nodes: one node's part
 * (see virt_int.h, "vml").  The single-node machine (sbi_*.c, dev_*.c,
 * vm_clint.c) runs unchanged on a struct vm that covers every hart of the
 * VM but has a cpu only for this node's harts; what it would do to a hart
 * with no cpu here becomes a request to that hart's node:
 *
 *   IPI          set SSIP there                      reply at once
 *   FENCE        cpu_flush_all / cpu_flush_tlb there reply when it ran
 *   HSM_START    hart_start there (its HSM state)    reply: SBI error
 *   HSM_STATUS   its HSM state                       reply: SBI error, state
 *   MMIO_READ    UART/PLIC access on the console     reply: the value
 *   MMIO_WRITE   node (non-console nodes forward)    reply: done
 *   LOADED       the console node wrote Image, initrd, DTB: start      reply: done
 *   IRQ          a PLIC context output level for a hart elsewhere (no reply)
 *
 * Wire (struct vml_wire, little-endian host layout pinned by a static
 * assertion): magic, op, request id, hart, size, three arguments.  The
 * requester retransmits every VML_RETX_NS until the reply arrives; the
 * receiver remembers the last VML_DEDUP requests per sender, so a
 * retransmission is answered with the first reply (an MMIO read of the
 * UART or a PLIC claim happens once; a hart is started once), and a fence
 * still in progress is not posted twice.  IRQ messages carry a generation:
 * a late one never overrides a newer level.
 *
 * Threads: vCPU threads call the vml_remote_* functions and wait for the
 * reply (fences and HSM calls keep serving work posted to their hart, as
 * the local fence does; MMIO waits do not, since the console node answers
 * without waiting for anybody); the transport progress thread runs the
 * handlers, which never wait: a fence is posted to the target hart with
 * cpu_run_on and replied to by that hart's thread.
 * Locks: rpc_mu (pending calls), dd_mu (dedupe ring), irq_mu (levels);
 * none nests in another; vm->lock is taken by the device code (the PLIC
 * sends IRQ messages with it held: tp_send only queues).
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dsm/dsm.h"
#include "node/virt_int.h"
#include "transport/tp.h"
#include "util/util.h"

enum { VML_MSG_REQ = 128, VML_MSG_REPLY = 129, VML_MSG_IRQ = 130 }; /* node range 128..191 */
enum { OP_IPI = 1, OP_FENCE_I, OP_SFENCE, OP_HSM_START, OP_HSM_STATUS, OP_MMIO_READ,
       OP_MMIO_WRITE, OP_LOADED, OP_MAX };
enum { SBI_ERR_FAILED = -1 };

#define VML_MAGIC 0x314c4d56u      /* "VML1" */
#define VML_RETX_NS 20000000ull    /* requester retransmission */
#define VML_TIMEOUT_NS 10000000000ull /* a node that does not answer for 10 s is gone */
#define VML_PENDING 64             /* calls in flight per node (one per hart at most) */
#define VML_DEDUP 256              /* requests remembered per node */

struct vml_wire {
	uint32_t magic, op;
	uint64_t id;       /* requester's id (IRQ: generation) */
	uint32_t hart, size;
	uint64_t a0, a1, a2; /* request arguments / reply: a0 = error, a1 = value */
};
_Static_assert(sizeof(struct vml_wire) == 48, "vml wire layout");

struct pending {
	bool used, done;
	uint64_t id, a0, a1;
};

struct dedup {
	int src;
	bool done;
	uint64_t id, a0, a1;
};

struct vml_st {                    /* relaxed atomics */
	uint64_t req_sent, req_retx, req_recv, req_dup, replies, irq_sent, irq_recv, bad;
	uint64_t op_sent[OP_MAX];
};

struct vml {
	struct vml_cfg cfg;
	int node_of[VM_MAX_HARTS];     /* cfg.hart_node, copied */
	struct vm *vm;
	bool console;                  /* this node has the UART and the PLIC */
	pthread_mutex_t rpc_mu;
	pthread_cond_t rpc_cv;         /* a reply arrived, or stopping */
	struct pending pend[VML_PENDING];
	uint64_t next_id;              /* under rpc_mu */
	bool stopping;                 /* under rpc_mu */
	pthread_mutex_t dd_mu;
	struct dedup dd[VML_DEDUP];
	unsigned dd_next;
	pthread_mutex_t irq_mu;
	uint64_t irq_gen;              /* console node: last generation sent */
	uint64_t irq_seen[VM_MAX_HARTS][2]; /* receiver: last generation applied (MEI, SEI) */
	bool timer_on, handlers_on;
	bool loaded;                   /* under rpc_mu: the console node's LOADED came */
	struct vml_st st;
};

static void st_add(uint64_t *c)
{
	__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------ requester */

static int pend_alloc(struct vml *m, uint64_t *id)
{
	pthread_mutex_lock(&m->rpc_mu);
	for (unsigned i = 0; i < VML_PENDING; i++)
		if (!m->pend[i].used) {
			m->pend[i] = (struct pending){.used = true, .id = ++m->next_id};
			*id = m->pend[i].id;
			pthread_mutex_unlock(&m->rpc_mu);
			return (int)i;
		}
	pthread_mutex_unlock(&m->rpc_mu);
	return -EBUSY;
}

/*
 * One request to node dst, retransmitted until its reply; a0 and a1 get the
 * reply.  With self, the wait serves work posted to that hart (fences).
 * -ETIMEDOUT (node gone), -ECANCELED (VM stopping), -EBUSY.
 */
static int call(struct vml *m, struct cpu *self, int dst, struct vml_wire *w, uint64_t *a0,
		uint64_t *a1)
{
	uint64_t id, start = util_now_ns(), next_tx = 0;
	int slot = pend_alloc(m, &id), rc = -ETIMEDOUT;
	if (slot < 0)
		return slot;
	w->magic = VML_MAGIC;
	w->id = id;
	st_add(&m->st.op_sent[w->op < OP_MAX ? w->op : 0]);
	for (;;) {
		uint64_t now = util_now_ns();
		if (now - start > VML_TIMEOUT_NS)
			break;
		if (now >= next_tx) {
			st_add(next_tx ? &m->st.req_retx : &m->st.req_sent);
			tp_send(m->cfg.tp, dst, VML_MSG_REQ, w, sizeof(*w));
			next_tx = now + VML_RETX_NS;
		}
		struct timespec ts;
		pthread_mutex_lock(&m->rpc_mu);
		struct pending *p = &m->pend[slot];
		if (!p->done && !m->stopping) {
			util_deadline_in(CLOCK_REALTIME, self ? 200000 : next_tx - now, &ts);
			pthread_cond_timedwait(&m->rpc_cv, &m->rpc_mu, &ts);
		}
		bool done = p->done, stop = m->stopping;
		if (done) {
			*a0 = p->a0;
			*a1 = p->a1;
		}
		pthread_mutex_unlock(&m->rpc_mu);
		if (done || stop) {
			rc = done ? 0 : -ECANCELED;
			break;
		}
		if (self)
			cpu_poll_work(self); /* the target may be fencing us meanwhile */
	}
	pthread_mutex_lock(&m->rpc_mu);
	m->pend[slot].used = false;
	pthread_mutex_unlock(&m->rpc_mu);
	if (rc == -ETIMEDOUT)
		LOG_WARN("linux", "node %d did not answer request %u for hart %u", dst, w->op,
			 w->hart);
	return rc;
}

static int hart_node(const struct vml *m, unsigned hart)
{
	return m->node_of[hart];
}

void vml_remote_ipi(struct vml *m, struct cpu *self, unsigned hart)
{
	struct vml_wire w = {.op = OP_IPI, .hart = hart};
	uint64_t a0, a1;
	call(m, self, hart_node(m, hart), &w, &a0, &a1);
}

long vml_remote_fence(struct vml *m, struct cpu *self, unsigned hart, bool tlb_only)
{
	struct vml_wire w = {.op = tlb_only ? OP_SFENCE : OP_FENCE_I, .hart = hart};
	uint64_t a0, a1;
	return call(m, self, hart_node(m, hart), &w, &a0, &a1) ? SBI_ERR_FAILED : (long)a0;
}

long vml_remote_hsm(struct vml *m, struct cpu *self, unsigned long fid, unsigned hart,
		    uint64_t addr, uint64_t opaque, unsigned long *value)
{
	struct vml_wire w = {.op = fid == 0 ? OP_HSM_START : OP_HSM_STATUS, .hart = hart,
			     .a0 = addr, .a1 = opaque};
	uint64_t a0, a1;
	if (call(m, self, hart_node(m, hart), &w, &a0, &a1))
		return SBI_ERR_FAILED;
	*value = (unsigned long)a1;
	return (long)a0;
}

void vml_remote_irq(struct vml *m, unsigned hart, unsigned irq, bool level)
{
	struct vml_wire w = {.magic = VML_MAGIC, .op = 0, .hart = hart, .a0 = irq, .a1 = level};
	pthread_mutex_lock(&m->irq_mu);
	w.id = ++m->irq_gen;
	pthread_mutex_unlock(&m->irq_mu);
	st_add(&m->st.irq_sent);
	tp_send(m->cfg.tp, hart_node(m, hart), VML_MSG_IRQ, &w, sizeof(w));
}

void vml_guest_exit(struct vml *m, int code)
{
	struct vm *vm = m->vm;
	pthread_mutex_lock(&vm->lock);
	bool first = !vm->done;
	if (first) {
		vm->done = true;
		vm->exit_code = code;
		pthread_cond_broadcast(&vm->done_cond);
	}
	pthread_mutex_unlock(&vm->lock);
	for (unsigned k = 0; k < vm->cfg.harts; k++)
		if (vm->harts[k].cpu)
			cpu_request_stop(vm->harts[k].cpu);
	if (first && m->cfg.on_exit)
		m->cfg.on_exit(m->cfg.cb_arg, code);
}

/* ------------------------------------------------------------- receiver */

static void reply(struct vml *m, int dst, uint64_t id, uint64_t a0, uint64_t a1)
{
	struct vml_wire w = {.magic = VML_MAGIC, .op = 0, .id = id, .a0 = a0, .a1 = a1};
	tp_send(m->cfg.tp, dst, VML_MSG_REPLY, &w, sizeof(w));
}

/* Finds (src, id) in the dedupe ring or records it as new (*fresh). */
static struct dedup *dedup_get(struct vml *m, int src, uint64_t id, bool *fresh)
{
	for (unsigned i = 0; i < VML_DEDUP; i++)
		if (m->dd[i].id == id && m->dd[i].src == src) {
			*fresh = false;
			return &m->dd[i];
		}
	struct dedup *d = &m->dd[m->dd_next++ % VML_DEDUP];
	*d = (struct dedup){.src = src, .id = id};
	*fresh = true;
	return d;
}

static void dedup_done(struct vml *m, int src, uint64_t id, uint64_t a0, uint64_t a1)
{
	pthread_mutex_lock(&m->dd_mu);
	for (unsigned i = 0; i < VML_DEDUP; i++)
		if (m->dd[i].id == id && m->dd[i].src == src) {
			m->dd[i].done = true;
			m->dd[i].a0 = a0;
			m->dd[i].a1 = a1;
		}
	pthread_mutex_unlock(&m->dd_mu);
	reply(m, src, id, a0, a1);
}

struct fence_req {
	struct vml *m;
	int src;
	uint64_t id;
	bool tlb_only;
};

/* On the target hart's thread (or inline when it does not run). */
static void fence_on_hart(struct cpu *c, void *arg)
{
	struct fence_req *f = arg;
	if (f->tlb_only)
		cpu_flush_tlb(c);
	else
		cpu_flush_all(c);
	dedup_done(f->m, f->src, f->id, 0, 0);
	free(f);
}

/* Runs one request; false when the reply comes later (fence). */
static bool run_req(struct vml *m, int src, const struct vml_wire *w, uint64_t *a0, uint64_t *a1)
{
	struct vm *vm = m->vm;
	struct cpu *c = w->hart < vm->cfg.harts ? vm->harts[w->hart].cpu : NULL;
	unsigned long v = 0;
	*a0 = *a1 = 0;
	switch (w->op) {
	case OP_IPI:
		cpu_set_irq(c, CPU_IRQ_SSI, true);
		return true;
	case OP_FENCE_I:
	case OP_SFENCE: {
		struct fence_req *f = malloc(sizeof(*f));
		if (!f) {
			*a0 = (uint64_t)(long)SBI_ERR_FAILED;
			return true;
		}
		*f = (struct fence_req){m, src, w->id, w->op == OP_SFENCE};
		if (cpu_run_on(c, fence_on_hart, f, false)) {
			free(f);
			*a0 = (uint64_t)(long)SBI_ERR_FAILED;
			return true;
		}
		cpu_kick(c);
		return false;
	}
	case OP_HSM_START:
		*a0 = (uint64_t)virt_hsm_start(vm, w->hart, w->a0, w->a1);
		return true;
	case OP_HSM_STATUS:
		*a0 = (uint64_t)virt_hsm_status(vm, w->hart, &v);
		*a1 = v;
		return true;
	case OP_MMIO_READ:
		*a0 = (uint64_t)dev_bus_read(vm, w->a0, w->size, a1);
		return true;
	case OP_MMIO_WRITE:
		*a0 = (uint64_t)dev_bus_write(vm, w->a0, w->size, w->a1);
		return true;
	case OP_LOADED:
		pthread_mutex_lock(&m->rpc_mu);
		m->loaded = true;
		pthread_cond_broadcast(&m->rpc_cv);
		pthread_mutex_unlock(&m->rpc_mu);
		return true;
	}
	return true;
}

/* A request is well-formed when its hart is ours (hart ops) or we are the
 * console node and it names a forwarded device (MMIO). */
static bool req_valid(const struct vml *m, const struct vml_wire *w)
{
	const struct vm *vm = m->vm;
	if (w->op == OP_MMIO_READ || w->op == OP_MMIO_WRITE)
		return m->console && (w->size == 1 || w->size == 2 || w->size == 4 || w->size == 8) &&
		       ((w->a0 >= VIRT_PLIC_BASE && w->a0 - VIRT_PLIC_BASE < VIRT_PLIC_SIZE) ||
			(w->a0 >= VIRT_UART_BASE && w->a0 - VIRT_UART_BASE < VIRT_UART_SIZE));
	if (w->op == OP_LOADED)
		return true;
	return w->op >= OP_IPI && w->op < OP_MAX && w->hart < vm->cfg.harts &&
	       vm->harts[w->hart].cpu != NULL;
}

static bool wire_ok(struct vml *m, const struct tp_msg *msg, struct vml_wire *w)
{
	if (msg->len != sizeof(*w)) {
		st_add(&m->st.bad);
		return false;
	}
	memcpy(w, msg->payload, sizeof(*w));
	if (w->magic != VML_MAGIC) {
		st_add(&m->st.bad);
		return false;
	}
	return true;
}

static void on_req(void *arg, const struct tp_msg *msg)
{
	struct vml *m = arg;
	struct vml_wire w;
	uint64_t a0, a1;
	bool fresh;
	if (!wire_ok(m, msg, &w))
		return;
	if (!req_valid(m, &w)) {
		st_add(&m->st.bad);
		LOG_WARN("linux", "node %d: request %u (hart %u, 0x%llx) is not for this node",
			 msg->src, w.op, w.hart, (unsigned long long)w.a0);
		reply(m, msg->src, w.id, (uint64_t)(long)SBI_ERR_FAILED, 0);
		return;
	}
	pthread_mutex_lock(&m->dd_mu);
	struct dedup *d = dedup_get(m, msg->src, w.id, &fresh);
	struct dedup seen = *d;
	pthread_mutex_unlock(&m->dd_mu);
	if (!fresh) {
		st_add(&m->st.req_dup);
		if (seen.done) /* our reply was lost: the same answer again */
			reply(m, msg->src, w.id, seen.a0, seen.a1);
		return;
	}
	st_add(&m->st.req_recv);
	if (run_req(m, msg->src, &w, &a0, &a1))
		dedup_done(m, msg->src, w.id, a0, a1);
}

static void on_reply(void *arg, const struct tp_msg *msg)
{
	struct vml *m = arg;
	struct vml_wire w;
	if (!wire_ok(m, msg, &w))
		return;
	st_add(&m->st.replies);
	pthread_mutex_lock(&m->rpc_mu);
	for (unsigned i = 0; i < VML_PENDING; i++)
		if (m->pend[i].used && m->pend[i].id == w.id && !m->pend[i].done) {
			m->pend[i].done = true;
			m->pend[i].a0 = w.a0;
			m->pend[i].a1 = w.a1;
			pthread_cond_broadcast(&m->rpc_cv);
		}
	pthread_mutex_unlock(&m->rpc_mu);
}

static void on_irq(void *arg, const struct tp_msg *msg)
{
	struct vml *m = arg;
	struct vml_wire w;
	if (!wire_ok(m, msg, &w))
		return;
	struct cpu *c = w.hart < m->vm->cfg.harts ? m->vm->harts[w.hart].cpu : NULL;
	if (!c || msg->src != m->cfg.console_node || (w.a0 != CPU_IRQ_SEI && w.a0 != CPU_IRQ_MEI)) {
		st_add(&m->st.bad);
		return;
	}
	st_add(&m->st.irq_recv);
	unsigned k = w.a0 == CPU_IRQ_SEI;
	pthread_mutex_lock(&m->irq_mu);
	bool newer = w.id > m->irq_seen[w.hart][k];
	if (newer) {
		m->irq_seen[w.hart][k] = w.id;
		cpu_set_irq(c, (unsigned)w.a0, w.a1 != 0);
	}
	pthread_mutex_unlock(&m->irq_mu);
}

/* -------------------------------------------------------------- machine */

static void set_handlers(struct vml *m, bool on)
{
	tp_handler_set(m->cfg.tp, VML_MSG_REQ, on ? on_req : NULL, m);
	tp_handler_set(m->cfg.tp, VML_MSG_REPLY, on ? on_reply : NULL, m);
	tp_handler_set(m->cfg.tp, VML_MSG_IRQ, on ? on_irq : NULL, m);
	m->handlers_on = on;
}

static struct vm *vm_new(const struct vml_cfg *cfg)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return NULL;
	vm->cfg = (struct vm_cfg){.elf_path = cfg->kernel, .initrd_path = cfg->initrd,
				  .cmdline = cfg->cmdline, .harts = cfg->harts,
				  .mem_bytes = cfg->ram_size};
	vm->ram = cfg->ram;
	vm->ram_size = cfg->ram_size;
	vm->start_ns = cfg->zero_ns;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->done_cond, NULL);
	for (unsigned k = 0; k < cfg->harts; k++) {
		vm->harts[k].vm = vm;
		vm->harts[k].id = (int)k;
		vm->harts[k].timer_irq = CPU_IRQ_STI;
	}
	return vm;
}

int vml_create(const struct vml_cfg *cfg, struct vml **out, char *err, size_t el)
{
	if (!cfg->harts || cfg->harts > VM_MAX_HARTS || !cfg->kernel || !cfg->hart_node) {
		snprintf(err, el, "a Linux VM needs vm.kernel and 1..%d harts", VM_MAX_HARTS);
		return -EINVAL;
	}
	struct vml *m = calloc(1, sizeof(*m));
	struct virt *v = calloc(1, sizeof(*v));
	struct vm *vm = vm_new(cfg);
	if (!m || !v || !vm) {
		free(m), free(v), free(vm);
		return -ENOMEM;
	}
	m->cfg = *cfg;
	memcpy(m->node_of, cfg->hart_node, cfg->harts * sizeof(int));
	m->cfg.hart_node = m->node_of;
	m->vm = vm;
	m->console = cfg->node_id == cfg->console_node;
	struct boot_cfg bc = {.kernel_path = cfg->kernel, .initrd_path = cfg->initrd,
			      .cmdline = cfg->cmdline ? cfg->cmdline : "console=ttyS0",
			      .harts = cfg->harts, .mem_bytes = cfg->ram_size};
	int rc = boot_prepare(&bc, &v->plan, err, el); /* pure: the same plan on every node */
	if (rc < 0) {
		free(m), free(v), free(vm);
		return rc;
	}
	v->vm = vm;
	v->mn = m;
	dev_uart_reset(&v->uart);
	vm->virt = v;
	pthread_mutex_init(&m->rpc_mu, NULL);
	pthread_cond_init(&m->rpc_cv, NULL);
	pthread_mutex_init(&m->dd_mu, NULL);
	pthread_mutex_init(&m->irq_mu, NULL);
	set_handlers(m, true);
	*out = m;
	return 0;
}

void vml_hart_cfg(struct vml *m, unsigned hart, struct cpu_cfg *cc)
{
	cc->sbi_call = sbi_call;
	cc->sbi_arg = &m->vm->harts[hart];
	cc->time_offset = -(int64_t)(m->cfg.zero_ns / 100);
}

void vml_hart_bind(struct vml *m, unsigned hart, struct cpu *cpu)
{
	m->vm->harts[hart].cpu = cpu;
	virt_hart_reset(m->vm, &m->vm->harts[hart]);
}

/* Console node: tells every other node with harts that the boot files are
 * in guest RAM (a message, not a flag in RAM: no DSM round trips). */
static int announce_loaded(struct vml *m)
{
	bool told[VM_MAX_HARTS] = {false};
	for (unsigned k = 0; k < m->cfg.harts; k++) {
		int n = m->node_of[k];
		bool dup = n == m->cfg.node_id;
		for (unsigned j = 0; j < k && !dup; j++)
			dup = told[j] && m->node_of[j] == n;
		if (dup)
			continue;
		told[k] = true;
		struct vml_wire w = {.op = OP_LOADED};
		uint64_t a0, a1;
		int rc = call(m, NULL, n, &w, &a0, &a1);
		if (rc)
			return rc;
	}
	return 0;
}

/* Other nodes: waits for the console node's LOADED (up to 10 minutes: a
 * loaded host; the coordinator stops us if the console node dies). */
static int wait_loaded(struct vml *m)
{
	uint64_t t0 = util_now_ns();
	pthread_mutex_lock(&m->rpc_mu);
	while (!m->loaded && !m->stopping && util_now_ns() - t0 < 600000000000ull) {
		struct timespec ts;
		util_deadline_in(CLOCK_REALTIME, 100000000ull, &ts);
		pthread_cond_timedwait(&m->rpc_cv, &m->rpc_mu, &ts);
	}
	int rc = m->loaded ? 0 : m->stopping ? -ECANCELED : -ETIMEDOUT;
	pthread_mutex_unlock(&m->rpc_mu);
	return rc;
}

/*
 * Other nodes, once loaded and their harts parked in HSM STOPPED: read the
 * kernel's text through the DSM while the boot hart runs, so a hart that
 * HSM starts here later finds its code already Shared on this node (a hart
 * started meanwhile just faults what is not there yet).  Linux gives a starting hart one second to
 * come online; without the prefetch every code page it touches first is a
 * DSM round trip (three messages and an RMA read), which on a loaded host
 * took longer than that.  Text only (up to _etext from the System.map next
 * to the Image): data pages the boot hart writes would only bounce.
 */
static void prefetch_kernel(struct vml *m, struct dsm *d)
{
	const struct boot_plan *p = &m->vm->virt->plan;
	char path[600];
	struct sysmap *sm = NULL;
	const char *slash = strrchr(m->cfg.kernel, '/');
	snprintf(path, sizeof(path), "%.*sSystem.map", slash ? (int)(slash - m->cfg.kernel + 1) : 0,
		 m->cfg.kernel);
	if (sysmap_load(path, &sm)) {
		LOG_INFO("boot", "no System.map next to %s: kernel text not prefetched",
			 m->cfg.kernel);
		return;
	}
	uint64_t end = sysmap_gpa(sm, "_etext");
	sysmap_free(sm);
	if (end <= p->kernel_addr || end > p->kernel_addr + p->kernel_len)
		return;
	uint8_t *buf = malloc(65536);
	uint64_t t0 = util_now_ns();
	if (!buf)
		return;
	for (uint64_t a = p->kernel_addr; a < end && !__atomic_load_n(&m->stopping, __ATOMIC_RELAXED);
	     a += 65536) {
		if (dsm_read(d, a, buf, end - a < 65536 ? end - a : 65536))
			break;
	}
	free(buf);
	LOG_INFO("boot", "kernel text 0x%llx-0x%llx prefetched (Shared) in %.1f ms",
		 (unsigned long long)p->kernel_addr, (unsigned long long)end,
		 (double)(util_now_ns() - t0) / 1e6);
}

int vml_load(struct vml *m, struct dsm *d, char *err, size_t el)
{
	const struct boot_plan *p = &m->vm->virt->plan;
	int rc = 0;
	if (!m->console) {
		if ((rc = wait_loaded(m))) {
			snprintf(err, el, "waiting for node %d to load the kernel: %s",
				 m->cfg.console_node, strerror(-rc));
			return rc;
		}
		return 0;
	}
	rc = dsm_write(d, p->kernel_addr, p->kernel, p->kernel_len);
	if (rc == 0 && p->initrd)
		rc = dsm_write(d, p->initrd_addr, p->initrd, p->initrd_len);
	if (rc == 0)
		rc = dsm_write(d, p->dtb_addr, p->dtb, p->dtb_len);
	if (rc) {
		snprintf(err, el, "writing the kernel, initrd and DTB through the DSM: %s",
			 strerror(-rc));
		return rc;
	}
	LOG_INFO("boot", "kernel 0x%llx-0x%llx, initrd 0x%llx (%zu bytes), dtb 0x%llx "
		 "(%zu bytes) written through the DSM",
		 (unsigned long long)p->kernel_addr, (unsigned long long)p->kernel_end,
		 (unsigned long long)p->initrd_addr, p->initrd_len,
		 (unsigned long long)p->dtb_addr, p->dtb_len);
	if ((rc = announce_loaded(m)))
		snprintf(err, el, "telling the other nodes the kernel is loaded: %s", strerror(-rc));
	return rc;
}

void vml_prefetch(struct vml *m, struct dsm *d)
{
	if (!m->console)
		prefetch_kernel(m, d);
}

int vml_start(struct vml *m)
{
	int rc = vm_timer_start(m->vm);
	if (rc)
		return rc;
	m->timer_on = true;
	if (m->console)
		dev_console_input_start(m->vm);
	return 0;
}

void vml_hart_main(struct vml *m, unsigned hart)
{
	virt_hart_main(&m->vm->harts[hart]);
}

bool vml_is_mmio(const struct vml *m, uint64_t gpa)
{
	return dev_bus_is_mmio(m->vm, gpa);
}

/* CLINT: mtime, and msip/mtimecmp of this node's harts only (an S-mode
 * kernel never touches it; a hart elsewhere reads as 0). */
static bool clint_local(const struct vml *m, uint64_t off)
{
	unsigned h = UINT32_MAX;
	if (off < 0x4000)
		h = (unsigned)(off / 4);
	else if (off < 0xbff8)
		h = (unsigned)((off - 0x4000) / 8);
	else
		return true;
	return h < m->vm->cfg.harts && m->vm->harts[h].cpu != NULL;
}

static bool forwarded(const struct vml *m, uint64_t gpa)
{
	return !m->console && ((gpa >= VIRT_PLIC_BASE && gpa - VIRT_PLIC_BASE < VIRT_PLIC_SIZE) ||
			       (gpa >> 12) == (VIRT_UART_BASE >> 12));
}

int vml_mmio_read(struct vml *m, unsigned hart, uint64_t gpa, unsigned size, uint64_t *val)
{
	*val = 0;
	if (gpa >= VM_CLINT_BASE && gpa - VM_CLINT_BASE < VM_CLINT_SIZE)
		return clint_local(m, gpa - VM_CLINT_BASE) ?
			       vm_clint_read(m->vm, gpa - VM_CLINT_BASE, size, val) : 0;
	if (forwarded(m, gpa)) {
		struct vml_wire w = {.op = OP_MMIO_READ, .hart = hart, .size = size, .a0 = gpa};
		uint64_t a0;
		int rc = call(m, NULL, m->cfg.console_node, &w, &a0, val);
		return rc ? rc : (int)(int64_t)a0;
	}
	return dev_bus_read(m->vm, gpa, size, val);
}

int vml_mmio_write(struct vml *m, unsigned hart, uint64_t gpa, unsigned size, uint64_t val)
{
	if (gpa >= VM_CLINT_BASE && gpa - VM_CLINT_BASE < VM_CLINT_SIZE)
		return clint_local(m, gpa - VM_CLINT_BASE) ?
			       vm_clint_write(m->vm, gpa - VM_CLINT_BASE, size, val) : 0;
	if (forwarded(m, gpa)) {
		struct vml_wire w = {.op = OP_MMIO_WRITE, .hart = hart, .size = size, .a0 = gpa,
				     .a1 = val};
		uint64_t a0, a1;
		int rc = call(m, NULL, m->cfg.console_node, &w, &a0, &a1);
		return rc ? rc : (int)(int64_t)a0;
	}
	return dev_bus_write(m->vm, gpa, size, val); /* finisher: virt_end */
}

void vml_stop(struct vml *m)
{
	if (!m)
		return;
	struct vm *vm = m->vm;
	pthread_mutex_lock(&m->rpc_mu);
	bool again = m->stopping;
	__atomic_store_n(&m->stopping, true, __ATOMIC_RELAXED); /* waiting requesters give up */
	pthread_cond_broadcast(&m->rpc_cv);
	pthread_mutex_unlock(&m->rpc_mu);
	if (again)
		return; /* once: the cpus may be gone by a second call (vml_destroy) */
	pthread_mutex_lock(&vm->lock);
	vm->done = true; /* parked (HSM-stopped) harts leave too */
	pthread_cond_broadcast(&vm->done_cond);
	pthread_mutex_unlock(&vm->lock);
	for (unsigned k = 0; k < vm->cfg.harts; k++)
		if (vm->harts[k].cpu)
			cpu_request_stop(vm->harts[k].cpu);
	/* nothing may raise a line or post work once the cpus may go */
	if (m->handlers_on)
		set_handlers(m, false);
	dev_console_input_stop(vm);
	if (m->timer_on)
		vm_timer_stop(vm);
	m->timer_on = false;
}

void vml_destroy(struct vml *m)
{
	if (!m)
		return;
	vml_stop(m);
	pthread_mutex_lock(&m->vm->lock);
	vm_console_flush(m->vm);
	pthread_mutex_unlock(&m->vm->lock);
	virt_destroy(m->vm->virt);
	pthread_mutex_destroy(&m->vm->lock);
	pthread_cond_destroy(&m->vm->done_cond);
	free(m->vm);
	pthread_mutex_destroy(&m->rpc_mu);
	pthread_cond_destroy(&m->rpc_cv);
	pthread_mutex_destroy(&m->dd_mu);
	pthread_mutex_destroy(&m->irq_mu);
	free(m);
}

void vml_stats(struct vml *m, void *json_root)
{
	const struct virt_stats *v = &m->vm->virt->st;
	const struct vml_st *s = &m->st;
#define G(x) (json_int_t) __atomic_load_n(&(x), __ATOMIC_RELAXED)
	json_object_set_new(json_root, "linux", json_pack(
		"{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
		"sbi_calls", G(v->sbi_calls), "ipis", G(v->ipis), "rfences", G(v->rfences),
		"timer_sets", G(v->timer_sets), "console_bytes", G(v->console_bytes),
		"req_sent", G(s->req_sent), "req_retx", G(s->req_retx), "req_recv", G(s->req_recv),
		"req_dup", G(s->req_dup), "replies", G(s->replies), "irq_sent", G(s->irq_sent),
		"irq_recv", G(s->irq_recv), "bad_msgs", G(s->bad),
		"sent_ipi", G(s->op_sent[OP_IPI]),
		"sent_fence", (json_int_t)(G(s->op_sent[OP_FENCE_I]) + G(s->op_sent[OP_SFENCE])),
		"sent_hsm", (json_int_t)(G(s->op_sent[OP_HSM_START]) + G(s->op_sent[OP_HSM_STATUS])),
		"sent_mmio", (json_int_t)(G(s->op_sent[OP_MMIO_READ]) + G(s->op_sent[OP_MMIO_WRITE]))));
#undef G
}
