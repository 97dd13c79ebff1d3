/*
 * transport/: two tp instances in one process, real libfabric endpoints on
 * 127.0.0.1 (tcp;ofi_rxm unless SPANVM_PROVIDER says otherwise).  Send and
 * receive, request/reply, RMA read and write, timeouts, rejection of bad
 * envelopes, a bad provider name.  Fault hooks: tests/unit/test_tp_fault.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "proto/data.pb-c.h"
#include "test_tp_common.h"

static struct pair P;

static int setup(void **state)
{
	return pair_open(&P, false);
}

static int teardown(void **state)
{
	pair_close(&P);
	return 0;
}

static void send_and_receive(void **state)
{
	struct rx_log *log = &P.log[1];

	rx_log_reset(log);
	assert_int_equal(tp_handler_set(P.tp[1], 100, rx_log_handler, log), 0);
	for (uint32_t i = 0; i < 50; i++) {
		uint32_t v[16] = {i};
		assert_int_equal(tp_send(P.tp[0], 2, 100, v, sizeof(v)), 0);
	}
	assert_true(rx_log_wait(log, 50, 5000));
	assert_int_equal(log->src, 1);
	assert_int_equal(log->last_len, 64);
	/* Each value arrived exactly once. */
	for (uint32_t i = 0; i < 50; i++)
		assert_int_equal(log->seen[i], 1);
	assert_int_equal(tp_handler_set(P.tp[1], 100, NULL, NULL), 0);
}

/* B answers type 101 with the payload reversed. */
static void reverse_handler(void *arg, const struct tp_msg *m)
{
	char out[256];
	size_t n = m->len < sizeof(out) ? m->len : sizeof(out);
	for (size_t i = 0; i < n; i++)
		out[i] = ((const char *)m->payload)[n - 1 - i];
	tp_reply(arg, m, 102, out, n);
}

static void request_reply(void **state)
{
	char reply[64];
	size_t len = sizeof(reply);
	uint32_t rtype = 0;
	uint64_t rtt = 0;

	assert_int_equal(tp_handler_set(P.tp[1], 101, reverse_handler, P.tp[1]), 0);
	assert_int_equal(tp_request_ex(P.tp[0], 2, 101, "abcdef", 6, &rtype, reply, &len,
				       1000000000ull, 0), 0);
	assert_int_equal(len, 6);
	assert_int_equal(rtype, 102);
	assert_memory_equal(reply, "fedcba", 6);
	/* A reply larger than the caller's buffer: -EMSGSIZE, size needed. */
	len = 3;
	assert_int_equal(tp_request(P.tp[0], 2, 101, "abcdef", 6, reply, &len, 1000000000ull, 0),
			 -EMSGSIZE);
	assert_int_equal(len, 6);
	/* Many in a row (sequence numbers keep replies apart). */
	for (int i = 0; i < 200; i++) {
		char req[8];
		snprintf(req, sizeof(req), "r%05d", i);
		len = sizeof(reply);
		assert_int_equal(tp_request(P.tp[0], 2, 101, req, 6, reply, &len, 1000000000ull, 0), 0);
		assert_int_equal(reply[5], 'r');
		assert_int_equal(reply[0], req[5]);
	}
	assert_int_equal(tp_ping(P.tp[1], 1, 1000000000ull, &rtt), 0);
	assert_true(rtt > 0);
	tp_handler_set(P.tp[1], 101, NULL, NULL);
}

static void request_timeout_retransmits(void **state)
{
	struct tp_stats a0, a1, b0, b1;
	char reply[8];
	size_t len = sizeof(reply);

	tp_stats(P.tp[0], &a0);
	tp_stats(P.tp[1], &b0);
	/* Type 103 has no handler on B: the request is dropped there. */
	assert_int_equal(tp_request(P.tp[0], 2, 103, "x", 1, reply, &len, 30000000ull, 2),
			 -ETIMEDOUT);
	tp_stats(P.tp[0], &a1);
	assert_int_equal(a1.req_retransmits - a0.req_retransmits, 2);
	assert_int_equal(a1.req_timeouts - a0.req_timeouts, 1);
	/* B saw all three transmissions and had no handler for them. */
	assert_true(wait_stat(P.tp[1], offsetof(struct tp_stats, rx_no_handler),
			      b0.rx_no_handler + 3, 2000));
	tp_stats(P.tp[1], &b1);
	assert_int_equal(b1.rx_no_handler - b0.rx_no_handler, 3);
}

static void fill(char *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (char)(i * 31 + seed);
}

static void rma_read_and_write(void **state)
{
	char *buf = malloc(300 * 1024);
	assert_non_null(buf);

	/* 4 KiB read into ordinary memory (bounce path). */
	fill(P.region[1] + 8192, 4096, 5);
	assert_int_equal(tp_rma_read(P.tp[0], 2, 8192, buf, 4096, 1000000000ull), 0);
	assert_memory_equal(buf, P.region[1] + 8192, 4096);
	/* Into our own registered region (direct path). */
	assert_int_equal(tp_rma_read(P.tp[0], 2, 8192, P.region[0] + 4096, 4096, 1000000000ull), 0);
	assert_memory_equal(P.region[0] + 4096, P.region[1] + 8192, 4096);
	/* Larger than one bounce slot: chunked. */
	fill(P.region[1] + 65536, 300 * 1024, 9);
	assert_int_equal(tp_rma_read(P.tp[0], 2, 65536, buf, 300 * 1024, 2000000000ull), 0);
	assert_memory_equal(buf, P.region[1] + 65536, 300 * 1024);
	/* Write from A's memory into B's region; odd offset and length. */
	fill(buf, 5000, 77);
	assert_int_equal(tp_rma_write(P.tp[0], 2, 12345, buf, 5000, 1000000000ull), 0);
	assert_memory_equal(P.region[1] + 12345, buf, 5000);
	/* Visible at the target when the call returns, every time. */
	for (unsigned i = 0; i < 200; i++) {
		fill(buf, 512, i);
		assert_int_equal(tp_rma_write(P.tp[0], 2, 4096 + i * 8, buf, 512, 1000000000ull), 0);
		assert_memory_equal(P.region[1] + 4096 + i * 8, buf, 512);
	}
	/* And the other direction. */
	fill(P.region[0] + 100, 64, 3);
	assert_int_equal(tp_rma_read(P.tp[1], 1, 100, buf, 64, 1000000000ull), 0);
	assert_memory_equal(buf, P.region[0] + 100, 64);
	struct tp_stats st;
	tp_stats(P.tp[0], &st);
	assert_true(st.rma_reads >= 3 && st.rma_writes >= 1);
	free(buf);
}

static void bad_arguments(void **state)
{
	char big[1024];
	size_t len = 0;

	assert_int_equal(tp_send(P.tp[0], 9, 100, "x", 1), -ENOENT);
	assert_int_equal(tp_send(P.tp[0], 2, 0, "x", 1), -EINVAL);
	assert_int_equal(tp_send(P.tp[0], 2, 70000, "x", 1), -EINVAL);
	assert_int_equal(tp_rma_read(P.tp[0], 9, 0, big, 8, 1000000), -ENOENT);
	assert_int_equal(tp_request(P.tp[0], 9, 100, "x", 1, NULL, &len, 1000000, 0), -ENOENT);
	assert_int_equal(tp_handler_set(P.tp[0], 0, rx_log_handler, NULL), -EINVAL);
	assert_int_equal(tp_mr_register(P.tp[0], big, sizeof(big), &(uint64_t){0}, &(uint64_t){0}),
			 -EEXIST);
}

static void oversized_message_rejected(void **state)
{
	size_t n = 70 * 1024; /* above the default 64 KiB */
	char *big = calloc(1, n);
	assert_int_equal(tp_send(P.tp[0], 2, 100, big, n), -EMSGSIZE);
	free(big);
}

/* Frames that must be dropped by the receiver, each with its counter. */
static void bad_envelopes_dropped(void **state)
{
	struct tp_stats b0, b1;
	char frame[256];
	size_t n;
	Envelope env = ENVELOPE__INIT;
	uint8_t packed[128];

	tp_stats(P.tp[1], &b0);
	/* 1. garbage bytes */
	memset(frame, 0xab, 40);
	assert_int_equal(tp_send_raw(P.tp[0], 2, frame, 40), 0);
	/* 2. good frame header, payload not an envelope */
	assert_int_equal(proto_frame_encode(frame, sizeof(frame), PROTO_FT_DATA,
					    "\xff\xff\xff\xff\xff\xff", 6, 0, &n), 0);
	assert_int_equal(tp_send_raw(P.tp[0], 2, frame, n), 0);
	/* 3. header length disagrees with the message size */
	assert_int_equal(proto_frame_encode(frame, sizeof(frame), PROTO_FT_DATA, "", 0, 0, &n), 0);
	assert_int_equal(tp_send_raw(P.tp[0], 2, frame, n + 10), 0);
	/* 4. envelope from a node that is not a peer */
	env.type = 100;
	env.src = 77;
	env.seq = 5;
	size_t pl = envelope__pack(&env, packed);
	assert_int_equal(proto_frame_encode(frame, sizeof(frame), PROTO_FT_DATA, packed, pl, 0, &n), 0);
	assert_int_equal(tp_send_raw(P.tp[0], 2, frame, n), 0);
	/* 5. sequence number 0 */
	env.src = 1;
	env.seq = 0;
	pl = envelope__pack(&env, packed);
	assert_int_equal(proto_frame_encode(frame, sizeof(frame), PROTO_FT_DATA, packed, pl, 0, &n), 0);
	assert_int_equal(tp_send_raw(P.tp[0], 2, frame, n), 0);
	/* 6. stale epoch */
	tp_epoch_set(P.tp[1], 5);
	assert_int_equal(tp_send(P.tp[0], 2, 100, "old", 3), 0);

	assert_true(wait_stat(P.tp[1], offsetof(struct tp_stats, rx_stale_epoch),
			      b0.rx_stale_epoch + 1, 2000));
	assert_true(wait_stat(P.tp[1], offsetof(struct tp_stats, rx_bad_envelope),
			      b0.rx_bad_envelope + 2, 2000));
	assert_true(wait_stat(P.tp[1], offsetof(struct tp_stats, rx_bad_frame),
			      b0.rx_bad_frame + 3, 2000));
	tp_stats(P.tp[1], &b1);
	assert_int_equal(b1.rx_bad_frame - b0.rx_bad_frame, 3);
	assert_int_equal(b1.rx_bad_envelope - b0.rx_bad_envelope, 2);
	assert_int_equal(b1.rx_stale_epoch - b0.rx_stale_epoch, 1);
	/* B is fine afterwards: same epoch again and a ping goes through. */
	tp_epoch_set(P.tp[0], 5);
	assert_int_equal(tp_ping(P.tp[0], 2, 1000000000ull, NULL), 0);
	tp_epoch_set(P.tp[0], 0);
	tp_epoch_set(P.tp[1], 0);
}

/* Atomic: it reaches the test's thread through the reply, a socket, which
 * ThreadSanitizer cannot see as an ordering. */
static _Atomic int deadlk_rc = 1;
static void request_from_handler(void *arg, const struct tp_msg *m)
{
	char r[8];
	size_t len = sizeof(r);
	atomic_store(&deadlk_rc, tp_request(arg, m->src, MSG_TYPE__MSG_PING, "x", 1, r, &len,
					    1000, 0));
	tp_reply(arg, m, 105, NULL, 0);
}

static void request_inside_handler_refused(void **state)
{
	size_t len = 0;

	tp_handler_set(P.tp[1], 104, request_from_handler, P.tp[1]);
	assert_int_equal(tp_request(P.tp[0], 2, 104, "x", 1, NULL, &len, 1000000000ull, 0), 0);
	assert_int_equal(atomic_load(&deadlk_rc), -EDEADLK);
	tp_handler_set(P.tp[1], 104, NULL, NULL);
}

static void unknown_provider_is_a_clear_error(void **state)
{
	struct tp_cfg cfg = {.node_id = 3, .provider = "no-such-provider", .bind_addr = "127.0.0.1"};
	struct tp *tp = NULL;

	assert_int_equal(tp_create(&cfg, &tp), -ENODEV);
	assert_null(tp);
	cfg.provider = NULL;
	cfg.node_id = -1;
	assert_int_equal(tp_create(&cfg, &tp), -EINVAL);
}

static void removed_peer_is_gone(void **state)
{
	struct pair q;
	assert_int_equal(pair_open(&q, false), 0);
	assert_int_equal(tp_ping(q.tp[0], 2, 1000000000ull, NULL), 0);
	assert_int_equal(tp_peer_remove(q.tp[0], 2), 0);
	assert_int_equal(tp_send(q.tp[0], 2, 100, "x", 1), -ENOENT);
	assert_int_equal(tp_peer_remove(q.tp[0], 2), -ENOENT);
	pair_close(&q);
}

/* SQLite style: fail the k-th set-up step for k = 1..N; each failure must
 * unwind cleanly (ASan's leak check in the sanitizer build sees the rest). */
static void create_unwinds_at_every_step(void **state)
{
	struct tp_cfg cfg = {.node_id = 4, .bind_addr = "127.0.0.1"};
	struct tp *tp = NULL;
	unsigned k;

	for (k = 1; k < 200; k++) {
		util_fault_arm(TP_FAULT_CREATE, k);
		int rc = tp_create(&cfg, &tp);
		util_fault_disarm();
		if (rc == 0)
			break;
		assert_true(rc < 0);
		assert_null(tp);
	}
	assert_non_null(tp);
	assert_true(k > 10); /* every step was failed once before success */
	assert_int_equal(tp_ping(tp, 4, 1000000, NULL), -ENOENT);
	tp_destroy(tp);
}

/* A peer's network input larger than our buffers, a read outside the peer's
 * region, an address blob that is not one: errors, never a crash or hang. */
static void hostile_sizes_and_addresses(void **state)
{
	struct tp_cfg cfg = {.node_id = 5, .bind_addr = "127.0.0.1", .max_msg = 1024};
	struct tp *small;
	char addr[TP_ADDR_MAX], aaddr[TP_ADDR_MAX], big[4096] = {0}, buf[64];
	size_t alen = sizeof(addr), aalen = sizeof(aaddr);
	struct tp_stats s0, s1;

	assert_int_equal(tp_create(&cfg, &small), 0);
	assert_int_equal(tp_start(small), 0);
	assert_int_equal(tp_local_addr(small, addr, &alen), 0);
	assert_int_equal(tp_peer_add(P.tp[0], 5, addr, alen, 0, 0), 0);
	assert_int_equal(tp_local_addr(P.tp[0], aaddr, &aalen), 0);
	assert_int_equal(tp_peer_add(small, 1, aaddr, aalen, 0, 0), 0);
	tp_stats(small, &s0);
	/* 4 KiB into 1 KiB receive buffers: truncated, counted, dropped (as a
	 * CQ error on tcp;ofi_rxm, as a short frame on providers that deliver
	 * the truncated part). */
	assert_int_equal(tp_send(P.tp[0], 5, 100, big, sizeof(big)), 0);
	uint64_t deadline = util_now_ns() + 3000000000ull;
	do {
		tp_stats(small, &s1);
	} while (s1.rx_errors + s1.rx_bad_frame == s0.rx_errors + s0.rx_bad_frame &&
		 util_now_ns() < deadline);
	assert_int_equal(s1.rx_errors + s1.rx_bad_frame, s0.rx_errors + s0.rx_bad_frame + 1);
	assert_int_equal(s1.rx_msgs, s0.rx_msgs);
	/* Still serving: a ping fits. */
	assert_int_equal(tp_ping(P.tp[0], 5, 1000000000ull, NULL), 0);
	tp_peer_remove(P.tp[0], 5);
	tp_destroy(small);

	/* Beyond the end of the peer's 1 MiB region. */
	int rc = tp_rma_read(P.tp[0], 2, REGION_SIZE - 8, buf, sizeof(buf), 1000000000ull);
	assert_true(rc < 0);
	assert_int_equal(tp_ping(P.tp[0], 2, 1000000000ull, NULL), 0);

	/* Address blobs of the wrong size are refused. */
	assert_int_equal(tp_peer_add(P.tp[0], 6, addr, 0, 0, 0), -EINVAL);
	assert_int_equal(tp_peer_add(P.tp[0], 6, addr, TP_ADDR_MAX + 1, 0, 0), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(send_and_receive),
		cmocka_unit_test(request_reply),
		cmocka_unit_test(request_timeout_retransmits),
		cmocka_unit_test(rma_read_and_write),
		cmocka_unit_test(bad_arguments),
		cmocka_unit_test(oversized_message_rejected),
		cmocka_unit_test(bad_envelopes_dropped),
		cmocka_unit_test(request_inside_handler_refused),
		cmocka_unit_test(unknown_provider_is_a_clear_error),
		cmocka_unit_test(removed_peer_is_gone),
		cmocka_unit_test(create_unwinds_at_every_step),
		cmocka_unit_test(hostile_sizes_and_addresses),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
