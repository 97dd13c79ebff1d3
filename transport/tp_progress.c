/*
 * Progress: reading the completion queue, the progress thread, and how
 * callers wait.
 *
 * tcp;ofi_rxm moves data only while someone reads the CQ (manual data
 * progress), so somebody must poll it whenever anything is in flight.
 * Rules:
 * - Whoever holds prog_lock may read the CQ.  The progress thread holds it
 *   while it polls; a caller blocked in tp_request / tp_rma_* takes it with
 *   trylock and polls too (busy-polling for up to wait_spin_ns is what keeps the
 *   round trip close to fi_pingpong's), handing ordinary messages over to
 *   the progress thread through the deferred queue.
 * - While any caller polls (tp->pollers > 0) the progress thread does not
 *   spin: it sleeps on its eventfd, so on two cores the caller and the
 *   peer's progress thread get one each.
 * - Idle, the progress thread spins prog_spin_ns after traffic, then
 *   blocks in epoll on the CQ's wait fd (after fi_trywait) and its eventfd,
 *   bounded by the next fault-delay release.
 */
#include "transport/tp_int.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

static __thread struct tp *tls_handler_tp; /* set while a handler runs */
static __thread struct tp *tls_prog_holder; /* set while this thread holds prog_lock */
static __thread struct tp *tls_poll_any; /* set while this thread is in tp_poll_wait */

bool tp_polling_any(struct tp *tp)
{
	return tls_poll_any == tp;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

bool tp_in_handler(struct tp *tp)
{
	return tls_handler_tp == tp;
}

void tp_run_handler(struct tp *tp, tp_handler_fn fn, void *arg, const struct tp_msg *m)
{
	struct tp *saved = tls_handler_tp;
	tls_handler_tp = tp;
	fn(arg, m);
	tls_handler_tp = saved;
}

static void prog_lock(struct tp *tp)
{
	pthread_mutex_lock(&tp->prog_lock);
	tls_prog_holder = tp;
}

static bool prog_trylock(struct tp *tp)
{
	if (pthread_mutex_trylock(&tp->prog_lock))
		return false;
	tls_prog_holder = tp;
	return true;
}

static void prog_unlock(struct tp *tp)
{
	tls_prog_holder = NULL;
	pthread_mutex_unlock(&tp->prog_lock);
}

void tp_wake_waiters(struct tp *tp)
{
	if (atomic_load(&tp->sleepers) == 0)
		return;
	pthread_mutex_lock(&tp->wait_lock);
	pthread_cond_broadcast(&tp->wait_cv);
	pthread_mutex_unlock(&tp->wait_lock);
}

void tp_wake_progress(struct tp *tp)
{
	uint64_t one = 1;
	if (write(tp->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		LOG_DBG(TP_SUBSYS, "eventfd write: %d", errno);
}

static void handle_entry(struct tp *tp, void *ctx, size_t len, int err, bool progress_thread)
{
	struct tp_op *op = ctx;

	if (!op)
		return;
	(void)atomic_load_explicit(&op->posted, memory_order_acquire);
	switch (op->kind) {
	case TP_OP_RX: {
		struct tp_buf *b = (struct tp_buf *)op;
		if (err) {
			if (err != FI_ECANCELED)
				TP_STAT_INC(tp, rx_errors);
			if (!atomic_load(&tp->stopping))
				tp_rx_post(tp, b);
			return;
		}
		b->len = len;
		tp_rx_complete(tp, b, progress_thread);
		return;
	}
	case TP_OP_TX:
		tp_tx_complete(tp, (struct tp_buf *)op, err);
		return;
	case TP_OP_RMA:
		tp_rma_complete(tp, (struct tp_rma_op *)op, err);
		return;
	}
	LOG_ERR(TP_SUBSYS, "completion with unknown context kind %d", (int)op->kind);
}

static int dispatch_deferred(struct tp *tp)
{
	struct tp_op *list;
	int n = 0;

	pthread_mutex_lock(&tp->defer_lock);
	list = tp->defer_head;
	tp->defer_head = tp->defer_tail = NULL;
	pthread_mutex_unlock(&tp->defer_lock);
	for (struct tp_op *op = list, *next; op; op = next, n++) {
		next = op->next;
		tp_rx_dispatch(tp, (struct tp_buf *)op);
	}
	return n;
}

static bool defer_pending(struct tp *tp)
{
	pthread_mutex_lock(&tp->defer_lock);
	bool any = tp->defer_head != NULL;
	pthread_mutex_unlock(&tp->defer_lock);
	return any;
}

/* Shutdown: messages queued for handlers are dropped, their buffers freed. */
void tp_deferred_drop(struct tp *tp)
{
	pthread_mutex_lock(&tp->defer_lock);
	struct tp_op *list = tp->defer_head;
	tp->defer_head = tp->defer_tail = NULL;
	pthread_mutex_unlock(&tp->defer_lock);
	for (struct tp_op *op = list; op; op = op->next)
		tp_rx_release((struct tp_buf *)op);
}

/* prog_lock held.  Returns completions handled, or -errno. */
int tp_poll_cq(struct tp *tp, bool progress_thread)
{
	struct fi_cq_msg_entry e[16];
	int handled = progress_thread ? dispatch_deferred(tp) : 0;
	ssize_t n = fi_cq_read(tp->cq, e, UTIL_ARRAY_LEN(e));

	if (n > 0) {
		for (ssize_t i = 0; i < n; i++)
			handle_entry(tp, e[i].op_context, e[i].len, 0, progress_thread);
		return handled + (int)n;
	}
	if (n == -FI_EAVAIL) {
		struct fi_cq_err_entry err;
		memset(&err, 0, sizeof(err));
		if (fi_cq_readerr(tp->cq, &err, 0) == 1) {
			LOG_DBG(TP_SUBSYS, "CQ error: %s", fi_strerror(err.err));
			handle_entry(tp, err.op_context, 0, err.err ? err.err : FI_EIO,
				     progress_thread);
		}
		return handled + 1;
	}
	if (n == -FI_EAGAIN)
		return handled;
	LOG_ERR(TP_SUBSYS, "fi_cq_read: %s", fi_strerror((int)-n));
	return tp_errno((int)n);
}

int tp_progress(struct tp *tp)
{
	uint64_t next = UINT64_MAX;
	int n;

	if (!tp)
		return -EINVAL;
	if (tp->thread_started || tp_in_handler(tp))
		return -EBUSY;
	prog_lock(tp);
	n = tp_poll_cq(tp, true);
	prog_unlock(tp);
	if (n >= 0)
		n += tp_faults_flush(tp, util_now_ns(), &next);
	return n;
}

/* Progress without running handlers: for callers that wait or must retry. */
static void poll_as_caller(struct tp *tp)
{
	if (tls_prog_holder == tp) {
		tp_poll_cq(tp, false);
	} else if (prog_trylock(tp)) {
		tp_poll_cq(tp, false);
		prog_unlock(tp);
	} else {
		/* The holder (usually the progress thread, about to notice
		 * pollers > 0) may have been preempted on a busy machine: spinning
		 * on the lock would keep it off the CPU. */
		sched_yield();
	}
}

int tp_post_retry(struct tp *tp, ssize_t (*post)(struct tp *, void *), void *arg)
{
	uint64_t deadline = 0;

	for (;;) {
		ssize_t rc = post(tp, arg);
		if (rc != -FI_EAGAIN)
			return tp_errno((int)rc);
		/* Queue full: completions must be reaped before it drains. */
		uint64_t now = util_now_ns();
		if (!deadline)
			deadline = now + 5000000000ull;
		else if (now > deadline)
			return -ETIMEDOUT;
		if (tp->cfg.inline_progress && tls_prog_holder != tp && !tp_in_handler(tp))
			tp_progress(tp);
		else
			poll_as_caller(tp);
		if (atomic_load(&tp->stopping))
			return -ESHUTDOWN;
	}
}

int tp_handlers_quiesce(struct tp *tp)
{
	if (!tp)
		return -EINVAL;
	if (tp_in_handler(tp) || tls_prog_holder == tp)
		return -EDEADLK;
	prog_lock(tp);
	prog_unlock(tp);
	return 0;
}

void tp_handed_off(struct tp *tp)
{
	if (tp && !tp_polling_any(tp))
		atomic_store(&tp->handed_off, true);
}

/* Ends a grace in progress; true if there was one. */
static bool grace_end(struct tp *tp)
{
	if (!atomic_load_explicit(&tp->grace_until, memory_order_relaxed) ||
	    atomic_exchange(&tp->grace_until, 0) <= util_now_ns())
		return false;
	TP_STAT_INC(tp, grace_cut);
	return true;
}

void tp_watch_cq(struct tp *tp)
{
	if (tp && grace_end(tp))
		tp_wake_progress(tp);
}

void tp_poll_hold(struct tp *tp)
{
	atomic_fetch_add(&tp->pollers, 1);
}

void tp_poll_release(struct tp *tp, bool answered)
{
	if (atomic_fetch_sub(&tp->pollers, 1) == 1 && !answered)
		tp_wake_progress(tp);
}

int tp_poll_wait(struct tp *tp, bool (*done)(void *arg), void *arg, uint64_t budget_ns)
{
	if (!tp || !done)
		return -EINVAL;
	if (tp_in_handler(tp))
		return -EDEADLK;
	if (done(arg))
		return 0;
	if (tp->cfg.inline_progress || !tp->thread_started || tls_poll_any)
		return -EAGAIN;
	uint64_t prev = util_now_ns(), end = prev + budget_ns;
	int rc = -EAGAIN;

	tp_poll_hold(tp);
	tls_poll_any = tp;
	for (;;) {
		poll_as_caller(tp);
		if (done(arg)) {
			rc = 0;
			break;
		}
		if (atomic_load(&tp->stopping)) {
			rc = -ESHUTDOWN;
			break;
		}
		uint64_t now = util_now_ns();
		if (now >= end || now - prev > TP_PREEMPTED_NS || util_cpus_oversubscribed())
			break;
		prev = now;
	}
	tls_poll_any = NULL;
	/* The last poller leaving hands the CQ back to the progress thread.
	 * Answered: no wake-up (a write(2) and a thread competing for the
	 * CPU exactly when the caller has its answer to act on); the progress
	 * thread's nap while pollers are active is short (TP_NAP_NS) and it
	 * looks at pollers again then.  Not answered: the caller goes to
	 * sleep, so wake it now. */
	tp_poll_release(tp, rc == 0);
	return rc;
}

static void sleep_until(struct tp *tp, _Atomic int *flag, int want, uint64_t deadline)
{
	pthread_mutex_lock(&tp->wait_lock);
	atomic_fetch_add(&tp->sleepers, 1);
	while (atomic_load(flag) < want && !atomic_load(&tp->stopping)) {
		uint64_t now = util_now_ns();
		if (now >= deadline)
			break;
		/* CLOCK_REALTIME for the condvar; recomputed every 10 ms at most. */
		uint64_t wait = UTIL_MIN(deadline - now, 10000000ull);
		struct timespec ts;
		util_deadline_in(CLOCK_REALTIME, wait, &ts);
		pthread_cond_timedwait(&tp->wait_cv, &tp->wait_lock, &ts);
	}
	atomic_fetch_sub(&tp->sleepers, 1);
	pthread_mutex_unlock(&tp->wait_lock);
}

int tp_wait_flag(struct tp *tp, _Atomic int *flag, int want, uint64_t deadline)
{
	bool polling = !tp->cfg.inline_progress;
	uint64_t prev = util_now_ns(), spin_until = prev + tp->wait_spin_ns;
	int rc = 0;

	if (polling)
		tp_poll_hold(tp);
	for (;;) {
		if (atomic_load(flag) >= want)
			break;
		if (atomic_load(&tp->stopping)) {
			rc = -ESHUTDOWN;
			break;
		}
		uint64_t now = util_now_ns();
		if (now >= deadline) {
			rc = -ETIMEDOUT;
			break;
		}
		if (tp->cfg.inline_progress) {
			tp_progress(tp);
			continue;
		}
		/* Descheduled while spinning: the CPUs are oversubscribed and
		 * spinning would only keep the peer (or our progress thread)
		 * off them.  Sleep instead. */
		if (now - prev > TP_PREEMPTED_NS)
			spin_until = 0;
		prev = now;
		/* Without a progress thread (tp_start not called yet) nobody
		 * else would poll: keep polling until the deadline. */
		if (polling &&
		    ((now < spin_until && !util_cpus_oversubscribed()) || !tp->thread_started)) {
			poll_as_caller(tp);
			continue;
		}
		if (polling) {
			/* Going to sleep: the progress thread must watch the CQ. */
			polling = false;
			tp_poll_release(tp, false);
		}
		sleep_until(tp, flag, want, deadline);
	}
	/* No wake-up on the way out: the waiter usually posts its next request
	 * at once, and a progress thread woken for each one would make three
	 * threads fight over two cores (measured: +30-50% mean round trip).
	 * It looks again within TP_NAP_NS (idle_wait); messages a caller read while
	 * polling were already handed over with a wake-up. */
	if (polling)
		tp_poll_release(tp, true);
	return rc;
}

static void drain_eventfd(struct tp *tp)
{
	uint64_t v;
	while (read(tp->evfd, &v, sizeof(v)) > 0)
		;
}

/* Sleeps on the eventfd only (not the CQ) for at most nap_ns; an eventfd
 * wake-up is a thread asking for the CQ to be watched: the grace ends. */
static void nap(struct tp *tp, uint64_t nap_ns)
{
	struct pollfd p = {.fd = tp->evfd, .events = POLLIN};
	struct timespec ts = {(time_t)(nap_ns / 1000000000ull), (long)(nap_ns % 1000000000ull)};

	if (ppoll(&p, 1, &ts, NULL) > 0)
		grace_end(tp);
}

/*
 * Blocks until the CQ or the eventfd has something, or timeout_ms passes.
 * Returns true when the CQ's fd fired (traffic: worth spinning after).
 */
static bool idle_wait(struct tp *tp, int timeout_ms)
{
	struct epoll_event ev[2];
	uint64_t max_ns = (uint64_t)timeout_ms * 1000000ull;
	uint64_t now = util_now_ns(), grace = atomic_load(&tp->grace_until);
	bool cq = false;

	if (grace && now >= grace)
		atomic_store(&tp->grace_until, 0); /* over: only this thread sets it */
	if (atomic_load(&tp->pollers) > 0) {
		/* A caller polls the CQ.  It writes the eventfd when it hands over
		 * a message or goes to sleep; when it simply returns, the nap's
		 * end (TP_NAP_NS) puts this thread back on the CQ. */
		nap(tp, UTIL_MIN(max_ns, TP_NAP_NS));
	} else if (now < grace) {
		/* Grace after a hand-off (tp_watch_cq): the CQ's fd stays unarmed. */
		nap(tp, UTIL_MIN(max_ns, grace - now));
	} else if (tp->cq_fd >= 0) {
		struct fid *f = &tp->cq->fid;
		if (fi_trywait(tp->fabric, &f, 1) == FI_SUCCESS) {
			int n = epoll_wait(tp->epfd, ev, 2, timeout_ms);
			for (int i = 0; i < n; i++)
				cq |= ev[i].data.u32 == 1;
		} else {
			cq = true; /* something is pending already */
		}
	} else {
		struct timespec ts = {0, 50000};
		nanosleep(&ts, NULL);
		cq = true;
	}
	drain_eventfd(tp);
	return cq;
}

/*
 * Spinning after activity keeps a node that serves requests or RMA hot.
 * "Activity" is a handler run, a fault-queue send or the CQ fd firing
 * (RMA served for a peer leaves no completion here, but wakes the fd);
 * reaping our own send completions is not, so a node whose callers just
 * finished waiting does not spin against them for the two cores.
 */
static void *progress_main(void *arg)
{
	struct tp *tp = arg;
	uint64_t last_active = util_now_ns();

	uint64_t prev = last_active;

	util_log_set_thread("tp-progress");
	while (!atomic_load(&tp->stopping)) {
		uint64_t next = UINT64_MAX, now, before = tp->dispatched;
		int n = 0;

		if (atomic_load(&tp->pollers) == 0 || defer_pending(tp)) {
			prog_lock(tp);
			tp_poll_cq(tp, true);
			prog_unlock(tp);
		}
		now = util_now_ns();
		n = tp_faults_flush(tp, now, &next) + (int)(tp->dispatched - before);
		if (n > 0) {
			last_active = prev = now;
			/* a handler woke another thread: let it have the CPU */
			if (atomic_exchange(&tp->handed_off, false)) {
				last_active = 0;
				atomic_store(&tp->grace_until, now + tp->grace_ns);
				TP_STAT_INC(tp, grace_naps);
			}
			continue;
		}
		/* A gap since the last pass means we were descheduled: CPUs are
		 * oversubscribed, stop spinning (see tp_wait_flag). */
		bool preempted = now - prev > TP_PREEMPTED_NS;
		prev = now;
		if (preempted)
			last_active = 0;
		if (atomic_load(&tp->pollers) == 0 && now - last_active < tp->prog_spin_ns &&
		    !util_cpus_oversubscribed()) {
			cpu_relax();
			continue;
		}
		uint64_t to_ms = 100;
		if (next != UINT64_MAX)
			to_ms = next > now ? UTIL_MIN((next - now + 999999) / 1000000, 100) : 0;
		bool was_polled = atomic_load(&tp->pollers) > 0;
		if (idle_wait(tp, (int)to_ms))
			last_active = util_now_ns();
		else if (was_polled)
			/* Woken because a caller stopped polling: it goes back to
			 * its own work (a vCPU to guest code) and a spin here would
			 * take its CPU (wake-up preemption); watch the CQ asleep. */
			last_active = 0;
		prev = util_now_ns();
	}
	return NULL;
}

int tp_start(struct tp *tp)
{
	int rc;

	if (!tp)
		return -EINVAL;
	if (tp->cfg.inline_progress || tp->thread_started)
		return 0;
	rc = pthread_create(&tp->thread, NULL, progress_main, tp);
	if (rc)
		return -rc;
	tp->thread_started = true;
	return 0;
}

int tp_progress_start(struct tp *tp)
{
	return tp_start(tp);
}

void tp_progress_stop(struct tp *tp)
{
	atomic_store(&tp->stopping, true);
	if (tp->thread_started) {
		tp_wake_progress(tp);
		pthread_join(tp->thread, NULL);
		tp->thread_started = false;
	}
	tp_wake_waiters(tp);
}
