/*
 * liveness.h - heartbeats and reconnection, the same for every connection
 * of sipc: broker sessions (both ends) and data connections (both ends).
 *
 * A side sends PING when it has sent nothing for one interval and counts
 * the peer dead when it has received nothing for SIPC_HEARTBEAT_MISSES
 * intervals (PROTOCOL.md 3.1, 6.1).  With jitter, the first PING of a
 * connection is due at a random point of the second half of its first
 * interval (earlier than required, never later); an idle connection then
 * keeps that phase, so that connections opened together (a broker
 * restart, a fleet starting) do not ping together, then or later, and
 * none pings more often than once an interval.  A connection that broke is retried after a capped,
 * doubling delay with jitter of +-25%.
 *
 * Pure bookkeeping over times the caller passes (mono_ms()): no timers, no
 * I/O.  The caller arms its own timer for live_next().
 */
#ifndef SIPC_COMMON_LIVENESS_H
#define SIPC_COMMON_LIVENESS_H

#include <stdint.h>

struct liveness {
	int64_t		interval;	/* ms, > 0 */
	int64_t		last_rx;	/* a frame arrived */
	int64_t		next_ping;	/* a PING is due then, unless a frame
					   goes out before */
};

/* A connection whose handshake ended at now, with a heartbeat of
 * interval_ms; jitter: its first PING early, by up to half an interval. */
void	live_start(struct liveness *l, int64_t interval_ms, int64_t now,
	    int jitter);
/* A frame arrived / went out at now. */
void	live_rx(struct liveness *l, int64_t now);
void	live_tx(struct liveness *l, int64_t now);
/* 1 when nothing arrived for SIPC_HEARTBEAT_MISSES intervals. */
int	live_dead(const struct liveness *l, int64_t now);
/* 1 when a PING is due. */
int	live_ping_due(const struct liveness *l, int64_t now);
/* When the next of the two is due (a time, not a delay). */
int64_t	live_next(const struct liveness *l);

struct backoff {
	int		min_ms;
	int		max_ms;
	int		cur_ms;
};

void	backoff_init(struct backoff *b, int min_ms, int max_ms);
/* After a success: the next failure waits min_ms again. */
void	backoff_reset(struct backoff *b);
/* Skips to the longest delay (a peer that refused outright). */
void	backoff_max(struct backoff *b);
/* The delay before the next attempt, in ms: the current step +-25%; the
 * step then doubles, up to max_ms. */
int	backoff_next(struct backoff *b);

#endif
