/* protobuf-c messages in frames. */
#include "proto/proto.h"

#include <errno.h>
#include <stdlib.h>

int proto_msg_pack(uint16_t type, const ProtobufCMessage *msg, void **frame, size_t *frame_len)
{
	size_t len;
	char *buf;

	if (!msg || !frame || !frame_len || type == PROTO_FT_INVALID)
		return -EINVAL;
	len = protobuf_c_message_get_packed_size(msg);
	if (len > UINT32_MAX)
		return -EMSGSIZE;
	buf = malloc(PROTO_HDR_SIZE + len + 1); /* +1: never malloc(0) semantics */
	if (!buf)
		return -ENOMEM;
	protobuf_c_message_pack(msg, (uint8_t *)buf + PROTO_HDR_SIZE);
	proto_hdr_write(buf, type, (uint32_t)len);
	*frame = buf;
	*frame_len = PROTO_HDR_SIZE + len;
	return 0;
}

int proto_msg_unpack(const ProtobufCMessageDescriptor *desc, const void *payload, size_t len,
		     ProtobufCMessage **out)
{
	ProtobufCMessage *m;

	if (!desc || !out || (len && !payload))
		return -EINVAL;
	m = protobuf_c_message_unpack(desc, NULL, len, payload);
	if (!m)
		return -EPROTO;
	*out = m;
	return 0;
}

int proto_msg_write_fd(int fd, uint16_t type, const ProtobufCMessage *msg, int timeout_ms)
{
	void *frame;
	size_t len;
	int rc = proto_msg_pack(type, msg, &frame, &len);

	if (rc)
		return rc;
	rc = proto_frame_write_fd(fd, type, (char *)frame + PROTO_HDR_SIZE, len - PROTO_HDR_SIZE,
				  timeout_ms);
	free(frame);
	return rc;
}

int proto_msg_read_fd(int fd, uint16_t want_type, const ProtobufCMessageDescriptor *desc,
		      size_t max_payload, int timeout_ms, ProtobufCMessage **out)
{
	struct proto_hdr hdr;
	void *payload;
	int rc = proto_frame_read_fd(fd, max_payload, timeout_ms, &hdr, &payload);

	if (rc)
		return rc;
	if (hdr.type != want_type)
		rc = -EPROTO;
	else
		rc = proto_msg_unpack(desc, payload, hdr.length, out);
	free(payload);
	return rc;
}
