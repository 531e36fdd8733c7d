/*
 * evframe.c - the framer over an evbuffer (see evframe.h).
 */
#include <stdio.h>

#include "evframe.h"

int
evframe_next(struct framer *f, struct evbuffer *in, struct frame *fr,
    struct frame_err *err)
{
	size_t avail = evbuffer_get_length(in), want = SIPC_HEADER_SIZE;
	const uint8_t *p;
	int rc;

	/* The header first, then as much as it says: only whole frames are
	 * made contiguous, and only once they are checked. */
	for (;;) {
		if (avail < want)
			return 0;
		if ((p = evbuffer_pullup(in, (ev_ssize_t)want)) == NULL) {
			err->code = WIRE_ERR_INTERNAL;
			snprintf(err->why, sizeof(err->why), "out of memory");
			return -1;
		}
		if ((rc = frame_next(f, p, want, fr, &want, err)) != 0)
			return rc;
	}
}
