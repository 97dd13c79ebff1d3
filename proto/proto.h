/*
 * proto: wire formats.  The *.proto files in this folder are compiled by
 * protoc-c at build time ("proto/data.pb-c.h", "proto/control.pb-c.h");
 * this header adds the framing that carries them.
 *
 * A frame is a fixed 12-byte header followed by `length` payload bytes:
 *
 *     offset 0  u32 magic    PROTO_MAGIC
 *     offset 4  u16 version  PROTO_VERSION
 *     offset 6  u16 type     frame type (ranges below)
 *     offset 8  u32 length   payload bytes that follow
 *
 * All header fields are big-endian (network order) on the wire; struct
 * proto_hdr holds them in host order after decoding.  The same frame is
 * used on the control plane (TCP to the coordinator, a byte stream, hence
 * the length) and on the data plane (one frame per libfabric message, with
 * a packed Envelope from data.proto as payload).
 *
 * Frame types (u16):
 *     0            invalid
 *     1            PROTO_FT_DATA: payload is a packed Envelope (data.proto)
 *     2..255       reserved for transport/
 *     256..1023    control plane (coordinator <-> node), owned by
 *                  control.proto / coordinator/
 *     1024..65535  reserved
 *
 * Every decoder treats its input as untrusted: bad magic or version gives
 * -EPROTO, a length above the caller's maximum gives -EMSGSIZE, a buffer
 * that ends early gives -EAGAIN (need more bytes).  Nothing here crashes,
 * reads out of bounds or allocates unbounded memory on garbage.
 *
 * Threads and locking: every function is reentrant and keeps no state; the
 * fd helpers block only the calling thread and only up to their timeout.
 */
#ifndef SPANVM_PROTO_H
#define SPANVM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#define PROTO_MAGIC 0x53564d46u /* "SVMF" */
#define PROTO_VERSION 1
#define PROTO_HDR_SIZE 12u
#define PROTO_MAX_FRAME_DEFAULT (1u << 20) /* payload bytes, default limit */

enum proto_frame_type {
	PROTO_FT_INVALID = 0,
	PROTO_FT_DATA = 1,
	PROTO_FT_CONTROL_FIRST = 256,
	PROTO_FT_CONTROL_LAST = 1023,
};

/* A decoded header, host byte order. */
struct proto_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t length;
};

/*
 * Writes header + payload into buf (cap bytes).  *out_len = bytes written.
 * -EMSGSIZE if len > max_payload (0 = PROTO_MAX_FRAME_DEFAULT),
 * -ENOBUFS if cap is too small, -EINVAL for type 0 or NULL payload with len.
 */
int proto_frame_encode(void *buf, size_t cap, uint16_t type, const void *payload, size_t len,
		       size_t max_payload, size_t *out_len);

/* Writes only the 12-byte header (payload placed by the caller after it). */
void proto_hdr_write(void *buf, uint16_t type, uint32_t length);

/*
 * Parses the frame at the start of buf (len bytes available).  On success
 * fills *hdr, points *payload into buf and returns 0; the whole frame is
 * PROTO_HDR_SIZE + hdr->length bytes.  Errors: -EPROTO (magic, version or
 * type 0), -EMSGSIZE (length > max_payload; 0 = default limit), -EAGAIN
 * (fewer than a whole frame's bytes in buf).
 */
int proto_frame_decode(const void *buf, size_t len, size_t max_payload, struct proto_hdr *hdr,
		       const void **payload);

/* Header-only check (needs PROTO_HDR_SIZE bytes); same errors as decode. */
int proto_hdr_decode(const void *buf, size_t len, size_t max_payload, struct proto_hdr *hdr);

/*
 * Blocking fd helpers for stream sockets (control plane).  timeout_ms < 0
 * waits forever; the timeout covers the whole frame.  Errors: -ETIMEDOUT,
 * -ECONNRESET (peer closed, also mid-frame), -EPROTO/-EMSGSIZE as decode,
 * other -errno from poll/read/write.  proto_frame_read_fd allocates
 * *payload (malloc, freed by the caller; NULL when length is 0).
 * SIGPIPE is avoided with MSG_NOSIGNAL when fd is a socket.
 */
int proto_frame_write_fd(int fd, uint16_t type, const void *payload, size_t len, int timeout_ms);
int proto_frame_read_fd(int fd, size_t max_payload, int timeout_ms, struct proto_hdr *hdr,
			void **payload);

/*
 * protobuf-c helpers.  proto_msg_pack: packs msg into a new frame of the
 * given type (*frame malloc'd, *frame_len = header + payload).
 * proto_msg_unpack: unpacks payload with desc; -EPROTO if it is not a valid
 * message; free *out with protobuf_c_message_free_unpacked(*out, NULL).
 * proto_msg_write_fd: pack + write one frame.
 */
int proto_msg_pack(uint16_t type, const ProtobufCMessage *msg, void **frame, size_t *frame_len);
int proto_msg_unpack(const ProtobufCMessageDescriptor *desc, const void *payload, size_t len,
		     ProtobufCMessage **out);
int proto_msg_write_fd(int fd, uint16_t type, const ProtobufCMessage *msg, int timeout_ms);

/*
 * Reads one frame and unpacks it with desc if its type equals want_type.
 * -EPROTO if the type differs or the payload does not unpack.
 */
int proto_msg_read_fd(int fd, uint16_t want_type, const ProtobufCMessageDescriptor *desc,
		      size_t max_payload, int timeout_ms, ProtobufCMessage **out);

#endif
