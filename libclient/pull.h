/*
 * pull.h - pull mode (internal to libsipc): queues that the I/O thread
 * fills and the program empties from its own thread, each with an
 * eventfd that is readable exactly while the queue holds something.
 *
 *   messages of a receiver without on_message    (sipc_receiver_recv)
 *   requests of a responder without on_request   (sipc_receiver_recv_request)
 *   answers of requests started by sipc_request_start (sipc_requester_collect)
 *
 * Only the receiver's message queue is bounded here: at its bound the
 * receiver stops reading senders (receiver_conn.c asks rx_pull_full()),
 * and a taker that brings it down to half wakes the I/O thread to read
 * again.  Requests are bounded per connection by the responder
 * (SIPC_RESPONDER_INFLIGHT_MAX), answers by the requests the program
 * started.
 */
#ifndef SIPC_PULL_H
#define SIPC_PULL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct event;
struct sipc_receiver;

struct pull_item {
	struct pull_item	*next;
	size_t			 bytes;		/* counted against max_bytes */
};

struct pullq {
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct pull_item	*head;		/* under mu, as is all below */
	struct pull_item	**tail;
	size_t			 count;
	size_t			 bytes;
	size_t			 max_count;	/* 0: no bound */
	size_t			 max_bytes;
	int			 efd;		/* readable iff count > 0 */
	int			 efd_on;	/* asked for: kept up to date */
	int			 waiters;
	int			 closing;
	int			 want_room;	/* the producer waits for half */
	struct event		*room;		/* activated when it has it */
};

/* 0, or SIPC_ESYS / SIPC_ENOMEM with sipc_errmsg set. */
int	pullq_init(struct pullq *q, size_t max_count, size_t max_bytes);
/* Appends it (any thread); 1 when the queue is now at its bound (the
 * producer should stop, and is told through q->room when it has room
 * again), else 0. */
int	pullq_push(struct pullq *q, struct pull_item *it);
/* Takes the first item into *out, waiting up to timeout_ms (0: not at
 * all, negative: forever).  0, SIPC_ETIMEDOUT (nothing came) or
 * SIPC_ECLOSED (the queue's owner is closing). */
int	pullq_take(struct pullq *q, int timeout_ms, struct pull_item **out);
/* As pullq_take(), for every item that fit(it, arg) accepts, at most
 * max, into out[]: how many (>= 1), or SIPC_ETIMEDOUT, SIPC_ECLOSED, or
 * SIPC_ETOOBIG when fit refuses the first (it stays). */
int	pullq_take_many(struct pullq *q, int timeout_ms,
	    struct pull_item **out, size_t max,
	    int (*fit)(const struct pull_item *, void *), void *arg);
/* The descriptor, kept up to date from now on: until a program asks for
 * it, a queue waited on with pullq_take() spends no system call on it. */
int	pullq_fd(struct pullq *q);
/* Wakes the threads waiting in pullq_take() (they return SIPC_ECLOSED)
 * and waits until they have left.  Any thread but the I/O thread may be
 * waiting; the caller is none of them. */
void	pullq_close(struct pullq *q);
/* Frees what is queued with free_item, and the queue's resources. */
void	pullq_fini(struct pullq *q, void (*free_item)(struct pull_item *));

/* receiver.c and receiver_conn.c, on the receiver's struct */
int	rx_pull_open(struct sipc_receiver *rx);
/* Any thread, before the receiver goes: see pullq_close(). */
void	rx_pull_close(struct sipc_receiver *rx);
/* On the I/O thread, as the receiver is freed: what waits is dropped
 * (requests answered with NO_REPLY while their connections still
 * stand). */
void	rx_pull_free(struct sipc_receiver *rx);
/* On the I/O thread: queues a copy of a message; 1 when the queue is now
 * at its bound (stop reading: rx_pull_full() said so), else 0.  Out of
 * memory, the message is dropped and counted in stats as a gap. */
int	rx_pull_message(struct sipc_receiver *rx, uint64_t sender_id,
	    uint64_t seq, const void *data, size_t len);
/* On the I/O thread: 1 when the message queue is at its bound (and then
 * the receiver is told to resume its connections once half is taken),
 * 0 when it has room or there is none. */
int	rx_pull_full(struct sipc_receiver *rx);

#endif
