/*
 * evframe.h - the framer (proto/frame.h) over a libevent input buffer, for
 * the connections that read into one: the broker's sessions and the
 * library's broker client.
 */
#ifndef SIPC_COMMON_EVFRAME_H
#define SIPC_COMMON_EVFRAME_H

#include <event2/buffer.h>

#include "../proto/frame.h"

/*
 * The frame at the front of in: 1 with *fr (its bytes made contiguous in
 * in and left there: drain fr->size once done with it), 0 while it is not
 * whole, -1 when the peer broke the protocol or memory ran out (*err).
 */
int	evframe_next(struct framer *f, struct evbuffer *in, struct frame *fr,
	    struct frame_err *err);

#endif
