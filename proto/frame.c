/*
 * Frame encode/decode and blocking fd I/O.  The decoder is the first code
 * to touch bytes from the network, so it checks everything before trusting
 * anything: header length first, then magic, version, type, then the
 * length against the caller's limit, and only then the buffer size.
 */
#include "proto/proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/util.h"

/* The wire header, pinned: any change here is a protocol version change. */
struct proto_wire_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t length;
};
_Static_assert(sizeof(struct proto_wire_hdr) == PROTO_HDR_SIZE, "frame header is 12 bytes");
_Static_assert(offsetof(struct proto_wire_hdr, version) == 4, "version at offset 4");
_Static_assert(offsetof(struct proto_wire_hdr, type) == 6, "type at offset 6");
_Static_assert(offsetof(struct proto_wire_hdr, length) == 8, "length at offset 8");
_Static_assert(PROTO_MAX_FRAME_DEFAULT <= UINT32_MAX, "length fits u32");

static size_t limit_of(size_t max_payload)
{
	return max_payload ? max_payload : PROTO_MAX_FRAME_DEFAULT;
}

void proto_hdr_write(void *buf, uint16_t type, uint32_t length)
{
	struct proto_wire_hdr w = {
		.magic = htonl(PROTO_MAGIC),
		.version = htons(PROTO_VERSION),
		.type = htons(type),
		.length = htonl(length),
	};
	memcpy(buf, &w, sizeof(w)); /* buf may be unaligned */
}

int proto_frame_encode(void *buf, size_t cap, uint16_t type, const void *payload, size_t len,
		       size_t max_payload, size_t *out_len)
{
	if (!buf || type == PROTO_FT_INVALID || (len && !payload))
		return -EINVAL;
	if (len > limit_of(max_payload) || len > UINT32_MAX)
		return -EMSGSIZE;
	if (cap < PROTO_HDR_SIZE + len)
		return -ENOBUFS;
	proto_hdr_write(buf, type, (uint32_t)len);
	if (len)
		memcpy((char *)buf + PROTO_HDR_SIZE, payload, len);
	if (out_len)
		*out_len = PROTO_HDR_SIZE + len;
	return 0;
}

int proto_hdr_decode(const void *buf, size_t len, size_t max_payload, struct proto_hdr *hdr)
{
	struct proto_wire_hdr w;

	if (!buf || !hdr)
		return -EINVAL;
	if (len < PROTO_HDR_SIZE)
		return -EAGAIN;
	memcpy(&w, buf, sizeof(w));
	hdr->magic = ntohl(w.magic);
	hdr->version = ntohs(w.version);
	hdr->type = ntohs(w.type);
	hdr->length = ntohl(w.length);
	if (hdr->magic != PROTO_MAGIC || hdr->version != PROTO_VERSION ||
	    hdr->type == PROTO_FT_INVALID)
		return -EPROTO;
	if (hdr->length > limit_of(max_payload))
		return -EMSGSIZE;
	return 0;
}

int proto_frame_decode(const void *buf, size_t len, size_t max_payload, struct proto_hdr *hdr,
		       const void **payload)
{
	int rc = proto_hdr_decode(buf, len, max_payload, hdr);

	if (rc)
		return rc;
	if (len - PROTO_HDR_SIZE < hdr->length)
		return -EAGAIN;
	if (payload)
		*payload = (const char *)buf + PROTO_HDR_SIZE;
	return 0;
}

static int remaining_ms(uint64_t deadline_ns)
{
	uint64_t now = util_now_ns();

	if (now >= deadline_ns)
		return 0;
	uint64_t ms = (deadline_ns - now + 999999) / 1000000;
	return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

/* Waits for fd to be ready for events; -ETIMEDOUT past the deadline. */
static int wait_fd(int fd, short events, int timeout_ms, uint64_t deadline_ns)
{
	struct pollfd p = {.fd = fd, .events = events};
	int ms = timeout_ms < 0 ? -1 : remaining_ms(deadline_ns);

	for (;;) {
		int n = poll(&p, 1, ms);
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int io_all(int fd, void *buf, size_t len, bool wr, int timeout_ms)
{
	uint64_t deadline = timeout_ms < 0 ? 0 : util_now_ns() + (uint64_t)timeout_ms * 1000000;
	size_t done = 0;

	while (done < len) {
		int rc = wait_fd(fd, wr ? POLLOUT : POLLIN, timeout_ms, deadline);
		if (rc)
			return rc;
		ssize_t n;
		if (wr) {
			n = send(fd, (char *)buf + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0 && errno == ENOTSOCK)
				n = write(fd, (char *)buf + done, len - done);
		} else {
			n = read(fd, (char *)buf + done, len - done);
		}
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			continue;
		return errno == EPIPE ? -ECONNRESET : -errno;
	}
	return 0;
}

int proto_frame_write_fd(int fd, uint16_t type, const void *payload, size_t len, int timeout_ms)
{
	char hdr[PROTO_HDR_SIZE];
	int rc;

	if (type == PROTO_FT_INVALID || (len && !payload))
		return -EINVAL;
	if (len > UINT32_MAX)
		return -EMSGSIZE;
	/* One buffer for small frames so header and body leave in one segment. */
	if (len <= 4096) {
		char buf[PROTO_HDR_SIZE + 4096];
		proto_hdr_write(buf, type, (uint32_t)len);
		if (len)
			memcpy(buf + PROTO_HDR_SIZE, payload, len);
		return io_all(fd, buf, PROTO_HDR_SIZE + len, true, timeout_ms);
	}
	proto_hdr_write(hdr, type, (uint32_t)len);
	rc = io_all(fd, hdr, sizeof(hdr), true, timeout_ms);
	if (rc)
		return rc;
	return io_all(fd, (void *)payload, len, true, timeout_ms);
}

int proto_frame_read_fd(int fd, size_t max_payload, int timeout_ms, struct proto_hdr *hdr,
			void **payload)
{
	char raw[PROTO_HDR_SIZE];
	void *body = NULL;
	int rc;

	if (!hdr || !payload)
		return -EINVAL;
	*payload = NULL;
	/* Note: the timeout applies to header and body separately (at most 2x). */
	rc = io_all(fd, raw, sizeof(raw), false, timeout_ms);
	if (rc)
		return rc;
	rc = proto_hdr_decode(raw, sizeof(raw), max_payload, hdr);
	if (rc)
		return rc;
	if (hdr->length) {
		body = malloc(hdr->length);
		if (!body)
			return -ENOMEM;
		rc = io_all(fd, body, hdr->length, false, timeout_ms);
		if (rc) {
			free(body);
			return rc;
		}
	}
	*payload = body;
	return 0;
}
