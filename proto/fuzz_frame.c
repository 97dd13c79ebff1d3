/* libFuzzer target: frame decoding and envelope unpacking of arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/data.pb-c.h"
#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_hdr hdr;
	const void *payload;

	if (proto_frame_decode(data, size, 4096, &hdr, &payload) == 0) {
		/* The payload must lie inside the input. */
		if ((const uint8_t *)payload + hdr.length > data + size)
			__builtin_trap();
		Envelope *env = envelope__unpack(NULL, hdr.length, payload);
		if (env)
			envelope__free_unpacked(env, NULL);
	}
	return 0;
}
