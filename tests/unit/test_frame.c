/* proto/ framing: round trips and rejection of every kind of bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/data.pb-c.h"
#include "proto/proto.h"

static void encode_decode_round_trip(void **state)
{
	char buf[256], payload[100];
	struct proto_hdr hdr;
	const void *p;
	size_t n;

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (char)(i * 7 + 1);
	assert_int_equal(proto_frame_encode(buf, sizeof(buf), 300, payload, sizeof(payload), 0, &n), 0);
	assert_int_equal(n, PROTO_HDR_SIZE + sizeof(payload));
	/* Header bytes are big-endian on the wire. */
	assert_int_equal((unsigned char)buf[0], 0x53);
	assert_int_equal((unsigned char)buf[11], sizeof(payload));
	assert_int_equal(proto_frame_decode(buf, n, 0, &hdr, &p), 0);
	assert_int_equal(hdr.magic, PROTO_MAGIC);
	assert_int_equal(hdr.version, PROTO_VERSION);
	assert_int_equal(hdr.type, 300);
	assert_int_equal(hdr.length, sizeof(payload));
	assert_ptr_equal(p, buf + PROTO_HDR_SIZE);
	assert_memory_equal(p, payload, sizeof(payload));
	/* Empty payload is a valid frame. */
	assert_int_equal(proto_frame_encode(buf, sizeof(buf), 1, NULL, 0, 0, &n), 0);
	assert_int_equal(proto_frame_decode(buf, n, 0, &hdr, &p), 0);
	assert_int_equal(hdr.length, 0);
}

static void truncated_frames_need_more(void **state)
{
	char buf[64];
	struct proto_hdr hdr;
	const void *p;
	size_t n;

	assert_int_equal(proto_frame_encode(buf, sizeof(buf), 2, "abcdefgh", 8, 0, &n), 0);
	for (size_t len = 0; len < n; len++)
		assert_int_equal(proto_frame_decode(buf, len, 0, &hdr, &p), -EAGAIN);
	assert_int_equal(proto_frame_decode(buf, n, 0, &hdr, &p), 0);
}

static void oversized_frames_rejected(void **state)
{
	char buf[64];
	struct proto_hdr hdr;
	const void *p;
	size_t n;

	/* Encoder refuses a payload over the limit... */
	assert_int_equal(proto_frame_encode(buf, sizeof(buf), 2, "abcdefgh", 8, 4, &n), -EMSGSIZE);
	assert_int_equal(proto_frame_encode(buf, 10, 2, "abcdefgh", 8, 0, &n), -ENOBUFS);
	/* ...and the decoder refuses a header claiming more than the limit,
	 * before the body has even arrived. */
	proto_hdr_write(buf, 2, 0xfffffff0u);
	assert_int_equal(proto_frame_decode(buf, PROTO_HDR_SIZE, 0, &hdr, &p), -EMSGSIZE);
	proto_hdr_write(buf, 2, 9);
	assert_int_equal(proto_frame_decode(buf, sizeof(buf), 8, &hdr, &p), -EMSGSIZE);
	assert_int_equal(proto_frame_decode(buf, sizeof(buf), 9, &hdr, &p), 0);
}

static void wrong_magic_version_type_rejected(void **state)
{
	char buf[32];
	struct proto_hdr hdr;
	const void *p;
	size_t n;

	assert_int_equal(proto_frame_encode(buf, sizeof(buf), 2, "xy", 2, 0, &n), 0);
	buf[0] ^= 1; /* magic */
	assert_int_equal(proto_frame_decode(buf, n, 0, &hdr, &p), -EPROTO);
	buf[0] ^= 1;
	buf[5] = PROTO_VERSION + 1; /* version */
	assert_int_equal(proto_frame_decode(buf, n, 0, &hdr, &p), -EPROTO);
	buf[5] = PROTO_VERSION;
	buf[6] = buf[7] = 0; /* type 0 is never valid */
	assert_int_equal(proto_frame_decode(buf, n, 0, &hdr, &p), -EPROTO);
	assert_int_equal(proto_frame_encode(buf, sizeof(buf), 0, "xy", 2, 0, &n), -EINVAL);
}

static void random_garbage_never_accepted_wrongly(void **state)
{
	unsigned char buf[96];
	struct proto_hdr hdr;
	const void *p;
	unsigned seed = 12345, accepted = 0;

	for (int iter = 0; iter < 200000; iter++) {
		size_t len = (size_t)(rand_r(&seed) % sizeof(buf));
		for (size_t i = 0; i < len; i++)
			buf[i] = (unsigned char)rand_r(&seed);
		/* Every 4th buffer gets a valid magic/version so the length and
		 * type checks are reached too. */
		if (iter % 4 == 0 && len >= PROTO_HDR_SIZE) {
			uint32_t m = htonl(PROTO_MAGIC), l = htonl((uint32_t)rand_r(&seed) % 80);
			uint16_t v = htons(PROTO_VERSION);
			memcpy(buf, &m, 4);
			memcpy(buf + 4, &v, 2);
			memcpy(buf + 8, &l, 4);
		}
		int rc = proto_frame_decode(buf, len, 64, &hdr, &p);
		if (rc == 0) {
			accepted++;
			assert_true(PROTO_HDR_SIZE + hdr.length <= len);
			assert_true(hdr.length <= 64);
			assert_int_equal(hdr.magic, PROTO_MAGIC);
		} else {
			assert_true(rc == -EAGAIN || rc == -EPROTO || rc == -EMSGSIZE);
		}
	}
	assert_true(accepted > 0); /* the valid-header quarter sometimes fits */
}

static void fd_round_trip_and_errors(void **state)
{
	int sv[2];
	struct proto_hdr hdr;
	void *payload;
	char big[10000];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	memset(big, 'q', sizeof(big));
	assert_int_equal(proto_frame_write_fd(sv[0], 257, big, sizeof(big), 1000), 0);
	assert_int_equal(proto_frame_read_fd(sv[1], 0, 1000, &hdr, &payload), 0);
	assert_int_equal(hdr.type, 257);
	assert_int_equal(hdr.length, sizeof(big));
	assert_memory_equal(payload, big, sizeof(big));
	free(payload);

	/* Nothing to read: the timeout fires. */
	assert_int_equal(proto_frame_read_fd(sv[1], 0, 20, &hdr, &payload), -ETIMEDOUT);
	assert_null(payload);

	/* A header announcing more than the reader allows. */
	assert_int_equal(proto_frame_write_fd(sv[0], 257, big, 100, 1000), 0);
	assert_int_equal(proto_frame_read_fd(sv[1], 50, 1000, &hdr, &payload), -EMSGSIZE);

	/* Peer closes in the middle of a frame. */
	char part[PROTO_HDR_SIZE + 3];
	proto_hdr_write(part, 257, 50);
	assert_int_equal(write(sv[0], part, sizeof(part)), (ssize_t)sizeof(part));
	close(sv[0]);
	int sv2 = sv[1];
	/* drain the 100 bytes left from the rejected frame first */
	char junk[100];
	assert_int_equal(read(sv2, junk, sizeof(junk)), 100);
	assert_int_equal(proto_frame_read_fd(sv2, 0, 1000, &hdr, &payload), -ECONNRESET);
	/* Writing to a closed peer is an error, not SIGPIPE. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	assert_int_equal(proto_frame_write_fd(sv[0], 257, "x", 1, 100), -ECONNRESET);
	close(sv[0]);
	close(sv2);
}

static void protobuf_messages_in_frames(void **state)
{
	Envelope env = ENVELOPE__INIT, *got;
	ProtobufCMessage *m;
	int sv[2];

	env.type = 7;
	env.epoch = 3;
	env.src = 2;
	env.seq = 99;
	env.payload.data = (uint8_t *)"hello";
	env.payload.len = 5;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(proto_msg_write_fd(sv[0], PROTO_FT_DATA, &env.base, 1000), 0);
	assert_int_equal(proto_msg_read_fd(sv[1], PROTO_FT_DATA, &envelope__descriptor, 0, 1000, &m), 0);
	got = (Envelope *)m;
	assert_int_equal(got->seq, 99);
	assert_int_equal(got->src, 2);
	assert_int_equal(got->payload.len, 5);
	assert_memory_equal(got->payload.data, "hello", 5);
	protobuf_c_message_free_unpacked(m, NULL);

	/* A frame of another type is refused. */
	assert_int_equal(proto_msg_write_fd(sv[0], 300, &env.base, 1000), 0);
	assert_int_equal(proto_msg_read_fd(sv[1], PROTO_FT_DATA, &envelope__descriptor, 0, 1000, &m),
			 -EPROTO);
	/* Bytes that are not a protobuf message are refused. */
	static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	assert_int_equal(proto_msg_unpack(&envelope__descriptor, junk, sizeof(junk), &m), -EPROTO);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(encode_decode_round_trip),
		cmocka_unit_test(truncated_frames_need_more),
		cmocka_unit_test(oversized_frames_rejected),
		cmocka_unit_test(wrong_magic_version_type_rejected),
		cmocka_unit_test(random_garbage_never_accepted_wrongly),
		cmocka_unit_test(fd_round_trip_and_errors),
		cmocka_unit_test(protobuf_messages_in_frames),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
