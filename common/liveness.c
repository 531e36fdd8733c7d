/*
 * liveness.c - heartbeats and reconnection delays (see liveness.h).
 */
#include "../proto/limits.h"
#include "clock.h"
#include "liveness.h"

void
live_start(struct liveness *l, int64_t interval_ms, int64_t now, int jitter)
{
	l->interval = interval_ms > 0 ? interval_ms : 1;
	l->last_rx = now;
	l->next_ping = now + l->interval;
	if (jitter)
		l->next_ping -= (int64_t)(random_u64() %
		    (uint64_t)(l->interval / 2 + 1));
}

void
live_rx(struct liveness *l, int64_t now)
{
	l->last_rx = now;
}

void
live_tx(struct liveness *l, int64_t now)
{
	l->next_ping = now + l->interval;
}

int
live_dead(const struct liveness *l, int64_t now)
{
	return now - l->last_rx >= (int64_t)SIPC_HEARTBEAT_MISSES * l->interval;
}

int
live_ping_due(const struct liveness *l, int64_t now)
{
	return now >= l->next_ping;
}

int64_t
live_next(const struct liveness *l)
{
	int64_t dead = l->last_rx + (int64_t)SIPC_HEARTBEAT_MISSES * l->interval;

	return dead < l->next_ping ? dead : l->next_ping;
}

void
backoff_init(struct backoff *b, int min_ms, int max_ms)
{
	b->min_ms = b->cur_ms = min_ms;
	b->max_ms = max_ms;
}

void
backoff_reset(struct backoff *b)
{
	b->cur_ms = b->min_ms;
}

void
backoff_max(struct backoff *b)
{
	b->cur_ms = b->max_ms;
}

int
backoff_next(struct backoff *b)
{
	int delay = b->cur_ms * 3 / 4 +
	    (int)(random_u64() % (uint64_t)(b->cur_ms / 2 + 1));

	b->cur_ms = b->cur_ms * 2 > b->max_ms ? b->max_ms : b->cur_ms * 2;
	return delay;
}
