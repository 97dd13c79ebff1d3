/*
 * transport objects: fabric, domain, endpoint, address vector, completion
 * queue, memory registrations, buffer pools, peers.  Set-up and tear-down
 * live here; the message path is tp_msg.c, the CQ and waiting tp_progress.c.
 *
 * mr_mode is taken as fi_getinfo reports it: with FI_MR_LOCAL every local
 * buffer handed to libfabric is registered (slabs once, large sends on the
 * fly); with FI_MR_VIRT_ADDR remote addresses are virtual (base + offset);
 * with FI_MR_PROV_KEY the provider picks keys, otherwise we request them.
 */
#include "transport/tp_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/util.h"

#define TP_FI_VERSION FI_VERSION(1, 9)

int tp_errno(int fi_rc)
{
	if (fi_rc >= 0)
		return fi_rc;
	switch (-fi_rc) {
	case FI_ETRUNC:
		return -EMSGSIZE;
	case FI_ENOCQ:
	case FI_ENOEQ:
	case FI_EOPBADSTATE:
		return -EINVAL;
	case FI_EAVAIL:
	case FI_EOTHER:
		return -EIO;
	default:
		return -fi_rc < 256 ? fi_rc : -EIO;
	}
}

int tp_mr_reg_local(struct tp *tp, void *buf, size_t len, struct fid_mr **mr, void **desc)
{
	uint64_t access = FI_SEND | FI_RECV | FI_READ | FI_WRITE;
	uint64_t key = tp->mr_prov_key ? 0 : atomic_fetch_add(&tp->next_key, 1);
	int rc;

	*mr = NULL;
	*desc = NULL;
	if (!tp->mr_local)
		return 0;
	rc = fi_mr_reg(tp->domain, buf, len, access, 0, key, 0, mr, NULL);
	if (rc) {
		LOG_ERR(TP_SUBSYS, "fi_mr_reg of %zu local bytes: %s", len, fi_strerror(-rc));
		return tp_errno(rc);
	}
	*desc = fi_mr_desc(*mr);
	return 0;
}

int tp_pool_init(struct tp *tp, struct tp_pool *p, unsigned nslots, size_t slot_size,
		 enum tp_op_kind kind)
{
	void *desc;
	int rc;

	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	p->nslots = nslots;
	p->bufs = calloc(nslots, sizeof(*p->bufs));
	p->mem = aligned_alloc(4096, (nslots * slot_size + 4095) & ~(size_t)4095);
	if (!p->bufs || !p->mem || TP_FAULT(1))
		return -ENOMEM;
	rc = tp_mr_reg_local(tp, p->mem, nslots * slot_size, &p->mr, &desc);
	if (rc)
		return rc;
	for (unsigned i = 0; i < nslots; i++) {
		struct tp_buf *b = &p->bufs[i];
		b->op.kind = kind;
		b->data = p->mem + (size_t)i * slot_size;
		b->cap = slot_size;
		b->desc = desc;
		b->pooled = true;
		b->op.next = (struct tp_op *)p->free;
		p->free = b;
	}
	return 0;
}

void tp_pool_fini(struct tp_pool *p)
{
	if (p->mr)
		fi_close(&p->mr->fid);
	free(p->mem);
	free(p->bufs);
	pthread_mutex_destroy(&p->lock);
	memset(p, 0, sizeof(*p));
}

struct tp_buf *tp_pool_get(struct tp_pool *p)
{
	pthread_mutex_lock(&p->lock);
	struct tp_buf *b = p->free;
	if (b)
		p->free = (struct tp_buf *)b->op.next;
	pthread_mutex_unlock(&p->lock);
	if (b)
		b->op.next = NULL;
	return b;
}

void tp_pool_put(struct tp_pool *p, struct tp_buf *b)
{
	pthread_mutex_lock(&p->lock);
	b->op.next = (struct tp_op *)p->free;
	p->free = b;
	pthread_mutex_unlock(&p->lock);
}

static const char *choose_provider(const struct tp_cfg *cfg)
{
	const char *p = cfg->provider;

	if (!p || !*p)
		p = getenv("SPANVM_PROVIDER");
	if (!p || !*p)
		p = getenv("FI_PROVIDER");
	if (!p || !*p)
		p = "tcp;ofi_rxm";
	return p;
}

static int open_info(struct tp *tp)
{
	/* fi_allocinfo() is an inline calling fi_dupinfo directly, past tp_dl.c */
	struct fi_info *hints = fi_dupinfo(NULL);
	const char *node = tp->cfg.bind_addr, *svc = tp->cfg.bind_port;
	int rc;

	if (!hints || TP_FAULT(1)) {
		fi_freeinfo(hints);
		return -ENOMEM;
	}
	hints->caps = FI_MSG | FI_RMA | FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE;
	hints->ep_attr->type = FI_EP_RDM;
	hints->mode = FI_CONTEXT | FI_CONTEXT2;
	hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
				      FI_MR_PROV_KEY;
	hints->domain_attr->threading = FI_THREAD_SAFE;
	hints->fabric_attr->prov_name = strdup(tp->provider);
	if (svc && strcmp(svc, "0") == 0 && !node)
		svc = NULL;
	rc = fi_getinfo(TP_FI_VERSION, node, svc, (node || svc) ? FI_SOURCE : 0, hints, &tp->info);
	fi_freeinfo(hints);
	if (rc == -FI_ENODATA || (!rc && !tp->info)) {
		LOG_ERR(TP_SUBSYS,
			"provider '%s' is not available with RDM + MSG + RMA%s%s%s (see `fi_info -l`; "
			"set it in the config 'provider' or SPANVM_PROVIDER)",
			tp->provider, node ? " on address '" : "", node ? node : "", node ? "'" : "");
		return -ENODEV;
	}
	if (rc) {
		LOG_ERR(TP_SUBSYS, "fi_getinfo(provider '%s', addr '%s', port '%s'): %s",
			tp->provider, node ? node : "-", svc ? svc : "-", fi_strerror(-rc));
		return rc == -FI_ENODATA ? -ENODEV : (tp_errno(rc) ? tp_errno(rc) : -EIO);
	}
	uint64_t mm = tp->info->domain_attr->mr_mode;
	tp->mr_local = mm & FI_MR_LOCAL;
	tp->mr_virt = mm & FI_MR_VIRT_ADDR;
	tp->mr_prov_key = mm & FI_MR_PROV_KEY;
	snprintf(tp->provider, sizeof(tp->provider), "%s", tp->info->fabric_attr->prov_name);
	return 0;
}

static int open_cq(struct tp *tp)
{
	struct fi_cq_attr attr = {
		.format = FI_CQ_FORMAT_MSG,
		.size = 4096,
		.wait_obj = FI_WAIT_FD,
	};
	int rc = fi_cq_open(tp->domain, &attr, &tp->cq, NULL);

	tp->cq_fd = -1;
	if (rc) {
		/* No fd to sleep on: the progress thread falls back to short naps. */
		attr.wait_obj = FI_WAIT_NONE;
		rc = fi_cq_open(tp->domain, &attr, &tp->cq, NULL);
		if (rc)
			return rc;
		LOG_INFO(TP_SUBSYS, "provider %s: CQ without wait fd, progress thread naps",
			 tp->provider);
		return 0;
	}
	if (fi_control(&tp->cq->fid, FI_GETWAIT, &tp->cq_fd))
		tp->cq_fd = -1;
	return 0;
}

static int open_fabric(struct tp *tp)
{
	struct fi_av_attr av_attr = {.type = FI_AV_TABLE};
	int rc;

	rc = TP_FAULT(-FI_ENOMEM);
	if (!rc)
		rc = fi_fabric(tp->info->fabric_attr, &tp->fabric, NULL);
	if (!rc)
		rc = TP_FAULT(-FI_ENOMEM);
	if (!rc)
		rc = fi_domain(tp->fabric, tp->info, &tp->domain, NULL);
	if (!rc)
		rc = TP_FAULT(-FI_ENOMEM);
	if (!rc)
		rc = open_cq(tp);
	if (!rc)
		rc = TP_FAULT(-FI_ENOMEM);
	if (!rc)
		rc = fi_av_open(tp->domain, &av_attr, &tp->av, NULL);
	if (!rc)
		rc = TP_FAULT(-FI_ENOMEM);
	if (!rc)
		rc = fi_endpoint(tp->domain, tp->info, &tp->ep, NULL);
	if (!rc)
		rc = fi_ep_bind(tp->ep, &tp->av->fid, 0);
	if (!rc)
		rc = fi_ep_bind(tp->ep, &tp->cq->fid, FI_TRANSMIT | FI_RECV);
	if (!rc)
		rc = TP_FAULT(-FI_ENOMEM);
	if (!rc)
		rc = fi_enable(tp->ep);
	if (rc) {
		LOG_ERR(TP_SUBSYS, "opening provider %s endpoint (addr %s port %s): %s",
			tp->provider, tp->cfg.bind_addr ? tp->cfg.bind_addr : "-",
			tp->cfg.bind_port ? tp->cfg.bind_port : "-", fi_strerror(-rc));
		return tp_errno(rc) ? tp_errno(rc) : -EIO;
	}
	return 0;
}

static int open_buffers(struct tp *tp)
{
	void *desc;
	int rc;

	tp->rx = calloc(tp->cfg.rx_depth, sizeof(*tp->rx));
	tp->rx_mem = aligned_alloc(4096, (tp->cfg.rx_depth * tp->max_frame + 4095) & ~(size_t)4095);
	tp->handlers = calloc(TP_MAX_TYPE, sizeof(*tp->handlers));
	if (!tp->rx || !tp->rx_mem || !tp->handlers || TP_FAULT(1))
		return -ENOMEM;
	rc = tp_mr_reg_local(tp, tp->rx_mem, tp->cfg.rx_depth * tp->max_frame, &tp->rx_mr, &desc);
	if (rc)
		return rc;
	rc = tp_pool_init(tp, &tp->tx_pool, TP_TX_SLOTS,
			  PROTO_HDR_SIZE + TP_ENV_OVERHEAD + TP_TX_SLOT_PAYLOAD, TP_OP_TX);
	if (!rc)
		rc = tp_pool_init(tp, &tp->bounce_pool, TP_BOUNCE_SLOTS, TP_BOUNCE_SIZE, TP_OP_RMA);
	if (rc)
		return rc;
	for (unsigned i = 0; i < tp->cfg.rx_depth; i++) {
		struct tp_buf *b = &tp->rx[i];
		b->op.kind = TP_OP_RX;
		b->data = tp->rx_mem + (size_t)i * tp->max_frame;
		b->cap = tp->max_frame;
		b->desc = desc;
		b->pooled = true;
		rc = (i == 0 || i == tp->cfg.rx_depth - 1) ? TP_FAULT(-ENOMEM) : 0;
		if (!rc)
			rc = tp_rx_post(tp, b);
		if (rc)
			return rc;
	}
	return 0;
}

static int init_sync(struct tp *tp)
{
	pthread_mutex_init(&tp->peer_lock, NULL);
	pthread_mutex_init(&tp->pending_lock, NULL);
	pthread_mutex_init(&tp->prog_lock, NULL);
	pthread_mutex_init(&tp->defer_lock, NULL);
	pthread_mutex_init(&tp->wait_lock, NULL);
	pthread_mutex_init(&tp->big_lock, NULL);
	pthread_cond_init(&tp->wait_cv, NULL);
	tp->epfd = tp->evfd = -1;
	if (TP_FAULT(1))
		return -ENOMEM;
	tp->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (tp->evfd < 0)
		return -errno;
	tp->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (tp->epfd < 0)
		return -errno;
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
	if (epoll_ctl(tp->epfd, EPOLL_CTL_ADD, tp->evfd, &ev))
		return -errno;
	return 0;
}

static int check_cfg(const struct tp_cfg *cfg)
{
	if (cfg->node_id < 0 || cfg->node_id >= 65536) {
		LOG_ERR(TP_SUBSYS, "node id %d out of range 0..65535", cfg->node_id);
		return -EINVAL;
	}
	if (cfg->max_msg > PROTO_MAX_FRAME_DEFAULT * 16) {
		LOG_ERR(TP_SUBSYS, "max_msg %zu above the 16 MiB limit", cfg->max_msg);
		return -EINVAL;
	}
	if (cfg->rx_depth > 4096) {
		LOG_ERR(TP_SUBSYS, "rx_depth %u above 4096", cfg->rx_depth);
		return -EINVAL;
	}
	return 0;
}

/*
 * Busy-poll budgets.  A waiting caller has nothing else to do, so it spins
 * longer (2 ms: sleeping and being woken costs far more on a loaded
 * machine); the progress thread spins only briefly after traffic so an idle
 * node leaves the CPUs to vCPUs.  cfg.spin_ns or SPANVM_TP_SPIN_NS set both.
 */
static void spin_defaults(struct tp *tp, const struct tp_cfg *cfg)
{
	const char *e = getenv("SPANVM_TP_SPIN_NS");
	uint64_t v = cfg->spin_ns;

	if (!v && e && *e) {
		char *end;
		v = strtoull(e, &end, 10);
		if (*end || !v) {
			LOG_WARN(TP_SUBSYS, "SPANVM_TP_SPIN_NS='%s' is not a positive number; ignored",
				 e);
			v = 0;
		}
	}
	tp->wait_spin_ns = v ? v : 2000000;
	tp->prog_spin_ns = v ? v : 200000;
	tp->grace_ns = cfg->grace_ns ? cfg->grace_ns : TP_NAP_NS;
}

int tp_create(const struct tp_cfg *cfg, struct tp **out)
{
	struct tp *tp;
	int rc;

	if (!cfg || !out)
		return -EINVAL;
	*out = NULL;
	rc = check_cfg(cfg);
	if (rc)
		return rc;
	tp = TP_FAULT(1) ? NULL : calloc(1, sizeof(*tp));
	if (!tp)
		return -ENOMEM;
	tp->cfg = *cfg;
	tp->cfg.provider = NULL; /* not kept: caller's string */
	tp->cfg.bind_addr = NULL;
	tp->cfg.bind_port = NULL;
	if (!tp->cfg.max_msg)
		tp->cfg.max_msg = TP_MAX_MSG_DEFAULT;
	if (!tp->cfg.rx_depth)
		tp->cfg.rx_depth = 64;
	spin_defaults(tp, cfg);
	tp->max_frame = PROTO_HDR_SIZE + TP_ENV_OVERHEAD + tp->cfg.max_msg;
	tp->next_key = 1;
	tp->next_seq = 1;
	snprintf(tp->provider, sizeof(tp->provider), "%s", choose_provider(cfg));
	rc = init_sync(tp);
	if (!rc) {
		/* bind address/port are only needed while opening */
		tp->cfg.bind_addr = cfg->bind_addr;
		tp->cfg.bind_port = cfg->bind_port;
		rc = open_info(tp);
	}
	if (!rc)
		rc = open_fabric(tp);
	tp->cfg.bind_addr = tp->cfg.bind_port = NULL;
	if (!rc)
		rc = open_buffers(tp);
	if (!rc && tp->cq_fd >= 0) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 1};
		if (epoll_ctl(tp->epfd, EPOLL_CTL_ADD, tp->cq_fd, &ev))
			rc = -errno;
	}
	if (rc) {
		tp_destroy(tp);
		return rc;
	}
	tp_builtin_handlers(tp);
	LOG_INFO(TP_SUBSYS, "node %d: provider %s, mr_mode%s%s%s, max_msg %zu", cfg->node_id,
		 tp->provider, tp->mr_local ? " LOCAL" : "", tp->mr_virt ? " VIRT_ADDR" : "",
		 tp->mr_prov_key ? " PROV_KEY" : "", tp->cfg.max_msg);
	*out = tp;
	return 0;
}

static void close_fid(struct fid *f, const char *what)
{
	int rc = fi_close(f);
	if (rc)
		LOG_WARN(TP_SUBSYS, "closing %s: %s", what, fi_strerror(-rc));
}

void tp_destroy(struct tp *tp)
{
	if (!tp)
		return;
	tp_progress_stop(tp);
	tp_pending_fail_all(tp, -1, -ESHUTDOWN);
	tp_deferred_drop(tp);
	/* Closing the endpoint ends every operation; their buffers go below. */
	if (tp->ep)
		close_fid(&tp->ep->fid, "endpoint");
	tp_rma_cleanup(tp);
	if (tp->av)
		close_fid(&tp->av->fid, "address vector");
	if (tp->cq)
		close_fid(&tp->cq->fid, "completion queue");
	if (tp->region_mr)
		close_fid(&tp->region_mr->fid, "memory region");
	if (tp->rx_mr)
		close_fid(&tp->rx_mr->fid, "rx memory region");
	for (struct tp_buf *b = tp->big_list, *n; b; b = n) {
		n = b->big_next;
		if (b->own_mr)
			fi_close(&b->own_mr->fid);
		free(b);
	}
	tp_pool_fini(&tp->tx_pool);
	tp_pool_fini(&tp->bounce_pool);
	if (tp->domain)
		close_fid(&tp->domain->fid, "domain");
	if (tp->fabric)
		close_fid(&tp->fabric->fid, "fabric");
	if (tp->info)
		fi_freeinfo(tp->info);
	for (int i = 0; i < tp->npeers_cap; i++) {
		struct tp_peer *p = tp->peers[i];
		if (!p)
			continue;
		free(p); /* held messages: pooled slots or entries of big_list */
	}
	free(tp->peers);
	free(tp->rx);
	free(tp->rx_mem);
	free(tp->handlers);
	if (tp->evfd >= 0)
		close(tp->evfd);
	if (tp->epfd >= 0)
		close(tp->epfd);
	free(tp);
}

int tp_node_id(const struct tp *tp)
{
	return tp->cfg.node_id;
}

const char *tp_provider_name(const struct tp *tp)
{
	return tp->provider;
}

int tp_local_addr(struct tp *tp, void *buf, size_t *len)
{
	if (!tp || !buf || !len)
		return -EINVAL;
	int rc = fi_getname(&tp->ep->fid, buf, len);
	if (rc == -FI_ETOOSMALL)
		return -ENOBUFS;
	return tp_errno(rc);
}

int tp_mr_register(struct tp *tp, void *base, size_t len, uint64_t *key, uint64_t *remote_base)
{
	uint64_t access = FI_REMOTE_READ | FI_REMOTE_WRITE | FI_READ | FI_WRITE | FI_SEND | FI_RECV;
	uint64_t req_key = 0x5350414eull; /* fixed: one region per domain */
	int rc;

	if (!tp || !base || !len || !key || !remote_base)
		return -EINVAL;
	if (tp->region_mr)
		return -EEXIST;
	rc = fi_mr_reg(tp->domain, base, len, access, 0, req_key, 0, &tp->region_mr, NULL);
	if (rc) {
		LOG_ERR(TP_SUBSYS, "registering %zu bytes at %p with %s: %s", len, base,
			tp->provider, fi_strerror(-rc));
		tp->region_mr = NULL;
		return tp_errno(rc);
	}
	tp->region_base = base;
	tp->region_len = len;
	tp->region_desc = fi_mr_desc(tp->region_mr);
	*key = fi_mr_key(tp->region_mr);
	*remote_base = tp->mr_virt ? (uint64_t)(uintptr_t)base : 0;
	return 0;
}

struct tp_peer *tp_peer_get_locked(struct tp *tp, int id)
{
	if (id < 0 || id >= tp->npeers_cap)
		return NULL;
	return tp->peers[id];
}

bool tp_peer_known(struct tp *tp, int id)
{
	pthread_mutex_lock(&tp->peer_lock);
	bool known = tp_peer_get_locked(tp, id) != NULL;
	pthread_mutex_unlock(&tp->peer_lock);
	return known;
}

static int grow_peers(struct tp *tp, int id)
{
	int cap = tp->npeers_cap ? tp->npeers_cap : 16;

	while (cap <= id)
		cap *= 2;
	if (cap == tp->npeers_cap)
		return 0;
	struct tp_peer **n = realloc(tp->peers, (size_t)cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	memset(n + tp->npeers_cap, 0, (size_t)(cap - tp->npeers_cap) * sizeof(*n));
	tp->peers = n;
	tp->npeers_cap = cap;
	return 0;
}

int tp_peer_add(struct tp *tp, int node_id, const void *addr, size_t addrlen, uint64_t key,
		uint64_t base)
{
	struct tp_peer *p;
	fi_addr_t fa;
	int rc;

	if (!tp || node_id < 0 || node_id >= 65536 || !addr || !addrlen || addrlen > TP_ADDR_MAX)
		return -EINVAL;
	rc = fi_av_insert(tp->av, addr, 1, &fa, 0, NULL);
	if (rc != 1) {
		LOG_ERR(TP_SUBSYS, "peer %d: fabric address (%zu bytes) rejected by %s: %s",
			node_id, addrlen, tp->provider, rc < 0 ? fi_strerror(-rc) : "not inserted");
		return rc < 0 ? tp_errno(rc) : -EINVAL;
	}
	pthread_mutex_lock(&tp->peer_lock);
	rc = grow_peers(tp, node_id);
	p = rc ? NULL : tp->peers[node_id];
	if (!rc && !p) {
		p = calloc(1, sizeof(*p));
		if (!p)
			rc = -ENOMEM;
		else
			p->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)node_id;
		tp->peers[node_id] = p;
	} else if (p) {
		fi_av_remove(tp->av, &p->fi_addr, 1, 0);
	}
	if (p) {
		p->id = node_id;
		p->fi_addr = fa;
		p->key = key;
		p->base = base;
	}
	pthread_mutex_unlock(&tp->peer_lock);
	return rc;
}

int tp_peer_remove(struct tp *tp, int node_id)
{
	struct tp_peer *p;

	if (!tp)
		return -EINVAL;
	pthread_mutex_lock(&tp->peer_lock);
	p = tp_peer_get_locked(tp, node_id);
	if (p) {
		/* Held fault-queue messages are dropped with the peer. */
		for (struct tp_buf *b = p->held_head, *n; b; b = n) {
			n = (struct tp_buf *)b->op.next;
			tp_tx_free(tp, b);
		}
		if (p->reorder_held)
			tp_tx_free(tp, p->reorder_held);
		fi_av_remove(tp->av, &p->fi_addr, 1, 0);
		tp->peers[node_id] = NULL;
		free(p);
	}
	pthread_mutex_unlock(&tp->peer_lock);
	if (!p)
		return -ENOENT;
	tp_pending_fail_all(tp, node_id, -ECONNREFUSED);
	return 0;
}

void tp_epoch_set(struct tp *tp, uint64_t epoch)
{
	atomic_store(&tp->epoch, epoch);
}

int tp_handler_set(struct tp *tp, uint32_t type, tp_handler_fn fn, void *arg)
{
	if (!tp || type == 0 || type >= TP_MAX_TYPE)
		return -EINVAL;
	atomic_store(&tp->handlers[type].fn, NULL);
	atomic_store(&tp->handlers[type].any_thread, false);
	atomic_store(&tp->handlers[type].arg, arg);
	atomic_store(&tp->handlers[type].fn, fn);
	return 0;
}

int tp_handler_set_any(struct tp *tp, uint32_t type, tp_handler_fn fn, void *arg)
{
	int rc = tp_handler_set(tp, type, NULL, arg);
	if (rc || !fn)
		return rc;
	atomic_store(&tp->handlers[type].any_thread, true);
	atomic_store(&tp->handlers[type].fn, fn);
	return 0;
}

int tp_fault_set(struct tp *tp, int peer, const struct tp_fault *f)
{
	struct tp_peer *p;

	if (!tp || !f || f->drop_pct > 100 || f->dup_pct > 100)
		return -EINVAL;
	pthread_mutex_lock(&tp->peer_lock);
	p = tp_peer_get_locked(tp, peer);
	if (p) {
		p->fault = *f;
		p->rng = f->seed ? f->seed : 0x9e3779b97f4a7c15ull ^ (uint64_t)peer;
	}
	pthread_mutex_unlock(&tp->peer_lock);
	if (p)
		tp_wake_progress(tp); /* release held messages if faults were switched off */
	return p ? 0 : -ENOENT;
}

void tp_stats(struct tp *tp, struct tp_stats *out)
{
	const uint64_t *src = (const uint64_t *)&tp->st;
	uint64_t *dst = (uint64_t *)out;

	_Static_assert(sizeof(struct tp_stats) % sizeof(uint64_t) == 0, "stats are u64 only");
	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}
