/*
 * sipc.h - events between processes: the whole public API of libsipc.
 *
 * A receiver registers under a string handle; a sender with the same handle
 * delivers each message to every live receiver of that handle (fan-out).
 * An end point manager (EPM) tells senders where receivers are: the local
 * registry (one user, one machine, Unix sockets; the default) or the
 * sipc-epmd broker (system-wide or across hosts, TCP).  Messages travel on
 * direct connections from each sender to each receiver, never through the
 * broker.
 *
 * Threads.  Each EPM runs one I/O thread (a libevent loop).  Every callback
 * of a sender or receiver runs on the I/O thread of its EPM, one at a time;
 * a slow callback delays every object of that EPM.  Every function here may
 * be called from any thread, except where it says otherwise.
 *
 * Errors.  Functions that can fail return 0 or a negative SIPC_E* code.
 * sipc_strerror() names a code; sipc_errmsg() gives the detail of the last
 * failure in the calling thread ("connect 10.0.0.1:4455: Connection
 * refused").
 *
 * Memory.  Strings and buffers passed in are copied unless a function says
 * otherwise; the caller keeps ownership.  Pointers handed to callbacks are
 * valid only during the callback.  Objects are freed by their *_close().
 *
 * Delivery guarantees (see README): messages from one sender reach each
 * receiver in order and at most once; a message goes to the receivers the
 * sender is connected to when sipc_send() is called; every loss is reported
 * to the sender (on_send_failed), and to the receiver (on_gap) once a later
 * message or connection of that sender reaches it: the two counts agree.
 * A receiver cannot see what a sender lost for it and never sent to it
 * again, nor what was lost before it first heard of that sender (see
 * PROTOCOL.md 6.3).
 */
#ifndef SIPC_H
#define SIPC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SIPC_VERSION_MAJOR	0
#define SIPC_VERSION_MINOR	2
#define SIPC_VERSION_PATCH	0
/* 0xMMmmpp: compare with what sipc_version() says at run time. */
#define SIPC_VERSION_NUMBER	((SIPC_VERSION_MAJOR << 16) | \
				 (SIPC_VERSION_MINOR << 8) | SIPC_VERSION_PATCH)

/*
 * Structs that grow.  Every options and statistics struct starts with
 * its size in bytes, which the *_init() and *_stats() macros below fill
 * in from the header the program was compiled with: a library that knows
 * more fields gives the ones the program does not know their defaults,
 * and fills only the bytes the program has.  struct sipc_message, which
 * the library hands to callbacks, carries the library's size the same
 * way.  Add fields only at the end; never reuse one.
 */

/*
 * The version of the library running (not of this header): "0.2.0"; when
 * number is not NULL, *number gets SIPC_VERSION_NUMBER of that library.
 * The string is static.
 */
const char	*sipc_version(int *number);

/* ---- Errors -------------------------------------------------------------- */

#define SIPC_OK		  0
#define SIPC_EINVAL	(-1)	/* an argument is invalid */
#define SIPC_ENOMEM	(-2)	/* out of memory */
#define SIPC_ESYS	(-3)	/* a system call failed (see sipc_errmsg) */
#define SIPC_ETIMEDOUT	(-4)	/* the time limit passed */
#define SIPC_ECLOSED	(-5)	/* the object is closing */
#define SIPC_EADDR	(-6)	/* an address cannot be parsed or resolved */
#define SIPC_ECONNECT	(-7)	/* cannot connect (refused, unreachable) */
#define SIPC_EPROTO	(-8)	/* the peer broke the protocol */
#define SIPC_EVERSION	(-9)	/* no protocol version in common */
#define SIPC_EBROKER	(-10)	/* the broker refused the request */
#define SIPC_ETOOBIG	(-11)	/* message larger than the maximum */
#define SIPC_ENOPORT	(-12)	/* no allowed port is free */
#define SIPC_EPERM	(-13)	/* registry directory unsafe or not ours */
#define SIPC_ENOTCONN	(-14)	/* no broker session (yet) */
#define SIPC_EPEERGONE	(-15)	/* a receiver or responder went away */
#define SIPC_EDROPPED	(-16)	/* dropped at the high-water mark */
#define SIPC_ESLOW	(-17)	/* receiver cut off for being too slow */
#define SIPC_ENOTFOUND	(-18)	/* no such thing */
#define SIPC_EAUTH	(-19)	/* authentication failed (TLS, password) */
#define SIPC_ETLS	(-20)	/* TLS failed otherwise (peer not TLS...) */
#define SIPC_ENORESPONDER (-21)	/* no responder of the handle */
#define SIPC_ENOREPLY	(-22)	/* the responder dropped the request */
#define SIPC_EREMOTE	(-23)	/* the responder answered with an error */

/* Name of an error code err: "cannot connect", ...; "unknown error" for a
 * value that is none.  The string is static: never free it. */
const char	*sipc_strerror(int err);
/* Detail of the last failure in this thread; "" when none.  The string
 * belongs to the thread and stays valid until its next sipc call. */
const char	*sipc_errmsg(void);

/* ---- Security ------------------------------------------------------------ */

/*
 * How a connection is protected: plain text (every field 0/NULL, the
 * default), TLS with certificates, or password mode.  In password mode a
 * key derived from password and salt with PBKDF2-HMAC-SHA256 (200,000
 * iterations) is a TLS 1.3 pre-shared key: both sides prove they know the
 * password, and every frame is encrypted and authenticated.  Only TLS 1.3
 * is used unless tls12 is set (certificates only).
 *
 * Used for broker sessions (sipc_epm_opts) and data connections (receiver
 * and sender options; the receiver is the TLS server).  Files are read and
 * the key derived during the call that takes the options; the strings are
 * not kept.
 */
struct sipc_security {
	/* PEM file of CAs that signed the peer's certificate.  A client
	 * with tls_ca checks the server's certificate against the host it
	 * connects to (or tls_server_name).  A receiver with tls_ca and
	 * tls_verify_peer requires client certificates. */
	const char	*tls_ca;
	/* PEM certificate chain and private key presented to the peer: a
	 * receiver (TLS server) needs them for TLS; a client may send them
	 * as its client certificate. */
	const char	*tls_cert;
	const char	*tls_key;
	/* Client: the name the server's certificate must carry; NULL: the
	 * host or IP address connected to. */
	const char	*tls_server_name;
	int		 tls_verify_peer;
	int		 tls12;
	/* Password mode: the password (NUL-terminated) and salt, as hex
	 * "010203" or as "{0x01,0x02,0x03}"; salt NULL: "sipc". */
	const char	*password;
	const char	*salt;
};

/* ---- End point managers -------------------------------------------------- */

typedef struct sipc_epm sipc_epm;

struct sipc_epm_opts {
	size_t	size;		/* set by sipc_epm_opts_init() */
	/* How long sipc_epm_connect() waits for the broker session, in
	 * milliseconds.  0: do not wait; connect in the background.  The
	 * EPM reconnects by itself whenever the session breaks.
	 * Default 5000. */
	int	connect_timeout_ms;
	/* Heartbeat interval wished for the broker session, in
	 * milliseconds; 0: the broker's (default 5000).  A broker never
	 * grants a longer interval than its own. */
	int			heartbeat_ms;
	/* TLS or password mode for the broker session. */
	struct sipc_security	security;
};

/* Fills *opts with the defaults: connect_timeout_ms 5000, heartbeat_ms 0
 * (the broker's), plain text; and size, from this header (the *_size
 * function takes the size in bytes; call the macro). */
#define sipc_epm_opts_init(opts) \
	sipc_epm_opts_init_size((opts), sizeof(struct sipc_epm_opts))
void	sipc_epm_opts_init_size(struct sipc_epm_opts *opts, size_t size);

/*
 * Connects to the sipc-epmd broker at addr ("HOST", "HOST:PORT",
 * "[IPV6]:PORT"; port 4455 when absent) and starts this EPM's I/O thread.
 * addr NULL or "": $SIPC_BROKER, and when that is unset too, the local
 * registry (see sipc_epm_local).  opts NULL: defaults.
 *
 * addr may list several brokers of one cluster (sipc-epmd --etcd),
 * separated by commas ("a:4455,b:4455"); a name that resolves to several
 * addresses counts as all of them (16 in all at most).  The session goes
 * to one; when it breaks the next is tried at once: registrations and
 * watches move with it, data connections are not touched, and senders
 * reconcile their receivers with the new broker's snapshot.
 *
 * With connect_timeout_ms > 0 this waits until the session is up (HELLO
 * answered) and fails when it is not; with 0 it returns at once.  Either
 * way, once created the EPM reconnects on its own, with capped exponential
 * backoff, and re-registers and re-watches everything.
 *
 * Authentication failures (wrong password, untrusted certificate) return
 * at once, without waiting out the timeout.  A session still down when
 * the timeout passes fails with the reason of its last attempt
 * (SIPC_ECONNECT for a refused connection...), else SIPC_ETIMEDOUT.
 *
 * On success *out is a new EPM, owned by the caller: close it with
 * sipc_epm_close().  The strings in opts are read during the call only.
 * Errors: SIPC_EINVAL (out NULL, a negative time, certificates and a
 * password both given, a malformed salt, opts not initialized or setting
 * a field this library does not know), SIPC_EADDR, SIPC_ECONNECT,
 * SIPC_ETIMEDOUT, SIPC_EVERSION, SIPC_EPROTO, SIPC_EBROKER (the broker
 * refused the session), SIPC_EAUTH (also: a certificate, key or CA file
 * that cannot be used), SIPC_ETLS, SIPC_ENOMEM, SIPC_ESYS; for the local
 * registry those of sipc_epm_local().
 */
int	sipc_epm_connect(const char *addr, const struct sipc_epm_opts *opts,
	    sipc_epm **out);

/*
 * An EPM for the local registry, with its own I/O thread: receivers listen
 * on Unix sockets in $XDG_RUNTIME_DIR/sipc/ (else /tmp/sipc-UID/), senders
 * find them there.  The directory is created 0700 and refused when it is
 * not a directory owned by this user without group or other access.
 * On success *out is a new EPM, owned by the caller: close it with
 * sipc_epm_close().
 * Errors: SIPC_EINVAL (out NULL), SIPC_EPERM, SIPC_ESYS, SIPC_ENOMEM.
 */
int	sipc_epm_local(sipc_epm **out);

/* 1 when epm is a local registry (also for NULL when $SIPC_BROKER is
 * unset), 0 when it is a broker connection. */
int	sipc_epm_is_local(const sipc_epm *epm);

/* 1 while the broker session is up; always 1 for a local registry; 0 for
 * NULL. */
int	sipc_epm_connected(const sipc_epm *epm);

/*
 * Releases the caller's reference: epm must not be used by the caller
 * after this.  The EPM, its thread and its broker session end when the
 * senders and receivers using it are closed too: whichever of those calls,
 * made from a thread other than the EPM's I/O thread, comes last stops the
 * thread before it returns (made from a callback on that thread, a
 * short-lived thread stops it once the callback has returned).  NULL is
 * ignored.
 */
void	sipc_epm_close(sipc_epm *epm);

/* ---- Receivers ----------------------------------------------------------- */

typedef struct sipc_receiver sipc_receiver;

/*
 * A message arrived: *msg and everything it points to (data, len bytes,
 * len may be 0; the handle) are the library's, valid only during the
 * call: copy what you keep.  From a sender on the same host, data points
 * into the sender's shared-memory ring (zero copy, read-only): while the
 * callback runs, the message's room in the ring stays taken and counts
 * toward this receiver's high-water mark at the sender, as an
 * unacknowledged message does on a socket.  sender_id identifies the sending sipc_sender
 * (random, 64 bits); seq is the message's number in that sender's stream
 * (the same at every receiver).  size is the struct's size in the running
 * library: a field added later is there when size covers it.  Runs on the
 * EPM's I/O thread.
 */
struct sipc_message {
	size_t		 size;		/* of this struct, in the library */
	const char	*handle;	/* the receiver's, NUL-terminated */
	const void	*data;		/* the message; len may be 0 */
	size_t		 len;		/* bytes */
	uint64_t	 sender_id;
	uint64_t	 seq;
};
typedef void	(*sipc_message_fn)(sipc_receiver *rx,
		    const struct sipc_message *msg, void *arg);
/* A sender connected (on_connect) or went away (on_disconnect).  peer is
 * "ADDR:PORT" or "local".  Runs on the I/O thread. */
typedef void	(*sipc_peer_fn)(sipc_receiver *rx, uint64_t sender_id,
		    const char *peer, void *arg);
/* Messages first_seq .. first_seq + count - 1 of a sender will never
 * arrive: the sender lost them for this receiver (dropped or skipped them
 * at the high-water mark, or they were unacknowledged when a connection
 * died) and reported them to its on_send_failed.  Called when the next
 * message or connection of that sender shows the gap.  Runs on the I/O
 * thread. */
typedef void	(*sipc_gap_fn)(sipc_receiver *rx, uint64_t sender_id,
		    uint64_t first_seq, uint64_t count, void *arg);
/*
 * A request arrived (request/reply, see "Requests" below): req is the
 * caller's to answer, now or later, from any thread, with
 * sipc_request_reply() or sipc_request_fail(), or to drop with
 * sipc_request_free(); exactly one of the three frees it.  Its message
 * (sipc_request_message(), handle included) stays valid until then, also
 * after the receiver closed.  A connection with 16,384 requests
 * unanswered is not read until half of them are (the requester waits in
 * its socket).  Requesters' connections are not senders: they do not
 * call on_connect or on_disconnect and are not counted in senders.
 * Runs on the I/O thread.
 */
struct sipc_request;
typedef void	(*sipc_request_fn)(sipc_receiver *rx,
		    struct sipc_request *req, void *arg);

struct sipc_receiver_opts {
	size_t		 size;		/* set by sipc_receiver_opts_init() */
	/* Broker mode: the IP address to listen on.  NULL: the local
	 * address of the EPM's broker session (on a loopback broker,
	 * loopback).  "0.0.0.0" or "::" listen on every interface. */
	const char	*listen_address;
	/* Broker mode: the address registered for senders to connect to
	 * (the original's ipAddressToRegister).  NULL: the listen address
	 * when it names one interface, else the local address of the
	 * broker session. */
	const char	*register_address;
	/* Broker mode: ports to try, in order: "5000", "5000-5010",
	 * "5000,5005,6000-6010".  NULL: any free port. */
	const char	*allowed_ports;
	/* Largest message accepted, in bytes: 1 byte to 1 GiB, default
	 * 64 MiB.  A larger one closes the sender's connection. */
	size_t		 max_message;
	/* TLS (tls_cert, tls_key) or password mode for senders'
	 * connections: a receiver with security refuses plain-text
	 * senders, and senders without the password. */
	struct sipc_security security;
	sipc_message_fn	 on_message;
	sipc_peer_fn	 on_connect;
	sipc_peer_fn	 on_disconnect;
	sipc_gap_fn	 on_gap;
	void		*arg;		/* passed to every callback */
	/* Set: the receiver is also a responder of its handle and answers
	 * requests (granting REPLY to requesters); NULL: requesters pass
	 * it by.  New in 0.2. */
	sipc_request_fn	 on_request;
	/* Pull mode (new in 0.2; see sipc_receiver_recv()).  With
	 * on_message NULL, messages wait in a queue of at most queue_max
	 * messages and queue_max_bytes bytes of payload (a single larger
	 * message is still taken).  At either bound the receiver stops
	 * reading its senders until the program has taken half of them:
	 * their connections fill, and each sender meets its high-water
	 * mark and applies its policy (BLOCK, DROP, DISCONNECT) as with a
	 * slow on_message.  Default 4096 messages and 8 MiB; at most
	 * 1,048,576 messages and 1 GiB. */
	size_t		 queue_max;
	size_t		 queue_max_bytes;
	/* Set with on_request NULL: the receiver is a responder whose
	 * requests wait for sipc_receiver_recv_request(). */
	int		 pull_requests;
};

/* Fills *opts with the defaults: max_message 64 MiB, queue_max 4096,
 * queue_max_bytes 8 MiB, every other field 0 or NULL (plain text, no
 * callbacks: pull mode); and size, as sipc_epm_opts_init() does. */
#define sipc_receiver_opts_init(opts) \
	sipc_receiver_opts_init_size((opts), \
	    sizeof(struct sipc_receiver_opts))
void	sipc_receiver_opts_init_size(struct sipc_receiver_opts *opts,
	    size_t size);

/*
 * Creates a receiver of handle (1 to 255 bytes of UTF-8 without control
 * characters) on epm (NULL: the process's default, made from $SIPC_BROKER
 * on first use; see sipc_epm_connect), starts listening and registers it.
 * opts NULL: defaults; its strings are read during the call only.  Returns
 * once the registration is accepted (broker mode: answered by the broker)
 * so that senders can find it.  In broker mode it waits for the session
 * (when an address has to be learnt from it) and for the answer each at
 * most 5000 ms, or the EPM's connect timeout when that is longer.
 *
 * On success *out is the new receiver, owned by the caller: free it with
 * sipc_receiver_close().  Its callbacks run on the EPM's I/O thread and
 * may start before this returns.
 *
 * Errors: SIPC_EINVAL (handle, out NULL, max_message, allowed_ports,
 * certificates and a password both given, a malformed salt, a registry
 * directory too long for socket paths, opts not initialized or setting a
 * field this library does not know), SIPC_EADDR (listen_address,
 * register_address, $SIPC_BROKER), SIPC_ENOPORT, SIPC_ENOTCONN (broker
 * mode: no session to learn the address from; give listen_address and
 * register_address), SIPC_EBROKER (the broker refused; sipc_errmsg says
 * why), SIPC_EAUTH (security options unusable: files, keys),
 * SIPC_ETIMEDOUT, SIPC_EPERM, SIPC_ESYS, SIPC_ENOMEM.
 */
int	sipc_receiver_new(const char *handle, sipc_epm *epm,
	    const struct sipc_receiver_opts *opts, sipc_receiver **out);

/*
 * Unregisters, stops listening, closes every sender's connection and frees
 * the receiver.  No callback of it runs after this returns (when called
 * from a callback on the I/O thread, the receiver is freed after that
 * callback returns).  When it was the last user of a closed EPM (or of the
 * default one), the EPM's I/O thread has stopped when this returns,
 * unless called on that thread.  NULL is ignored.
 */
void	sipc_receiver_close(sipc_receiver *rx);

/* Writes the registered endpoint ("127.0.0.1:40123", "[::1]:40123" or
 * "unix:/path"), NUL-terminated, into buf (size bytes).  Returns 0, or
 * SIPC_EINVAL when rx or buf is NULL or buf is too small. */
int	sipc_receiver_endpoint(const sipc_receiver *rx, char *buf,
	    size_t size);

struct sipc_receiver_stats {
	size_t		size;		/* set by sipc_receiver_stats() */
	uint64_t	messages;	/* delivered to on_message, or queued */
	uint64_t	bytes;		/* their payload bytes */
	uint64_t	gaps;		/* messages reported missing */
	uint64_t	duplicates;	/* resent messages not delivered again */
	uint64_t	senders;	/* senders connected now */
	uint64_t	requests;	/* requests handed to on_request (0.2) */
};

/* Fills *st with the counts so far (the macro passes the size in bytes
 * of the program's struct; the library fills that much at most and says
 * how much in st->size); 0, or SIPC_EINVAL when rx or st is NULL or size
 * is smaller than the size field. */
#define sipc_receiver_stats(rx, st) \
	sipc_receiver_stats_size((rx), (st), \
	    sizeof(struct sipc_receiver_stats))
int	sipc_receiver_stats_size(sipc_receiver *rx,
	    struct sipc_receiver_stats *st, size_t size);

/*
 * Pull mode: a program with its own thread or event loop takes messages
 * and requests itself, and no callback of its runs on the I/O thread.
 *
 * sipc_receiver_recv() takes the next message of a receiver created
 * without on_message, waiting up to timeout_ms milliseconds (0: not at
 * all, -1: forever).  On 0, *msg is the message (handle, data, len,
 * sender_id and seq as on_message gets them), owned by the caller until
 * sipc_message_free(); it stays valid after the receiver closed.
 * Messages of one sender come in order; gaps show in seq (and to on_gap,
 * which may still be set).  Messages still queued when the receiver
 * closes are dropped: senders counted them delivered.  Out of memory, a
 * message is dropped and counted in the gaps of sipc_receiver_stats().
 * Errors (*msg NULL): SIPC_ETIMEDOUT (none came), SIPC_ECLOSED (another
 * thread closed rx meanwhile: the call returns before rx is freed; a call
 * after sipc_receiver_close() is not allowed), SIPC_EINVAL (rx or msg
 * NULL, rx has on_message, or a wait asked on the I/O thread).  Any
 * thread; several may wait at once.
 */
int	sipc_receiver_recv(sipc_receiver *rx, struct sipc_message **msg,
	    int timeout_ms);
/* Frees a message of sipc_receiver_recv() (not one given to
 * on_message).  NULL is ignored. */
void	sipc_message_free(struct sipc_message *msg);
/*
 * Takes as many waiting messages as fit, at most max, copying their
 * payloads one after the other into buf (size bytes) and their lengths
 * into lens[0..n); waits up to timeout_ms for the first, as
 * sipc_receiver_recv() does.  For programs (and bindings) that handle
 * many small messages: one call and one lock for a batch.  Sender ids
 * and sequence numbers are not given (sipc_receiver_recv() gives them).
 * Returns n >= 1, or an error of sipc_receiver_recv(), or SIPC_ETOOBIG
 * when the first message waiting is larger than size (it stays queued:
 * take it with sipc_receiver_recv()); SIPC_EINVAL also for buf or lens
 * NULL or max 0.
 */
int	sipc_receiver_recv_into(sipc_receiver *rx, void *buf, size_t size,
	    size_t *lens, size_t max, int timeout_ms);
/*
 * A descriptor that is readable exactly while messages wait for
 * sipc_receiver_recv() (an eventfd): add it to poll, epoll (level or
 * edge triggered), libevent, or asyncio, and on readiness call
 * sipc_receiver_recv() with timeout 0 until it says SIPC_ETIMEDOUT.  It
 * is the receiver's: do not read, write or close it; it is closed by
 * sipc_receiver_close().  Returns it, or SIPC_EINVAL when rx is NULL or
 * has on_message.
 */
int	sipc_receiver_fd(const sipc_receiver *rx);
/*
 * As sipc_receiver_recv(), for requests of a receiver created with
 * pull_requests set and on_request NULL: on 0, *req is a request as
 * on_request would get it, to answer with sipc_request_reply(),
 * sipc_request_fail() or sipc_request_free() from any thread.  Requests
 * still queued when the receiver closes are dropped (the requesters hear
 * SIPC_ENOREPLY or SIPC_EPEERGONE).  A connection with 16,384 requests
 * unanswered (queued or taken) is not read until half are.  Errors as
 * sipc_receiver_recv().
 */
int	sipc_receiver_recv_request(sipc_receiver *rx,
	    struct sipc_request **req, int timeout_ms);
/* As sipc_receiver_fd(), readable while requests wait for
 * sipc_receiver_recv_request(); SIPC_EINVAL when rx is NULL or does not
 * queue requests. */
int	sipc_receiver_request_fd(const sipc_receiver *rx);

/* ---- Senders ------------------------------------------------------------- */

typedef struct sipc_sender sipc_sender;

/* What a sender does when a receiver's queue reaches its high-water mark. */
#define SIPC_POLICY_BLOCK	0	/* sipc_send waits (send_timeout_ms) */
#define SIPC_POLICY_DROP	1	/* skip that receiver, report the drop */
#define SIPC_POLICY_DISCONNECT	2	/* cut that receiver off, report */

/*
 * A message was handed to its receivers: endpoints[0..n) names them
 * ("127.0.0.1:40123", "unix:/path"); n may be 0 (no receivers is not an
 * error).  Runs on the I/O thread.
 */
typedef void	(*sipc_after_send_fn)(sipc_sender *tx, uint64_t seq,
		    const char *const *endpoints, size_t n, void *arg);
/*
 * messages_lost messages will not reach the receiver at endpoint (0 for a
 * receiver that failed authentication before anything was queued).  error:
 * SIPC_EPEERGONE (it died, was unregistered or became unreachable),
 * SIPC_EDROPPED (high-water mark, policy drop), SIPC_ESLOW (policy
 * disconnect), SIPC_ETIMEDOUT (not acknowledged before close), SIPC_EPROTO,
 * SIPC_ETOOBIG (larger than the receiver accepts), SIPC_EAUTH (the
 * receiver failed or refused authentication), SIPC_ETLS, SIPC_ENOMEM.
 * While a receiver that is still registered counts as dead (cut off,
 * unreachable), every message sent is lost for it and reported with the
 * error that made it dead.  Messages skipped for a receiver (dead, policy
 * drop, too large) are reported in batches: the first at once, then at
 * most every 100 ms per receiver, and before sipc_sender_flush() returns.  Messages written to a receiver just
 * before it was cut off are reported once its next handshake tells which
 * it read, or when it leaves, or at sipc_sender_close().  The total equals
 * the gaps the receiver reports.  Runs on the I/O thread.
 */
typedef void	(*sipc_send_failed_fn)(sipc_sender *tx, int error,
		    const char *endpoint, uint64_t messages_lost, void *arg);

struct sipc_sender_opts {
	size_t			 size;	/* set by sipc_sender_opts_init() */
	/* Largest message sipc_send() takes, in bytes.  Default 64 MiB,
	 * at most 1 GiB. */
	size_t			 max_message;
	/* Per receiver: bytes queued or sent but not yet acknowledged
	 * before the policy applies; more than 0.  Default 8 MiB. */
	size_t			 hwm_bytes;
	int			 policy;	/* SIPC_POLICY_*, default BLOCK */
	/* Policy BLOCK: longest wait in sipc_send, in milliseconds;
	 * -1 waits forever.  Default 10000. */
	int			 send_timeout_ms;
	/* sipc_sender_close() waits this long for acknowledgements, in
	 * milliseconds; 0 does not wait, -1 waits forever.  Default 5000. */
	int			 linger_ms;
	/* Heartbeat on receiver connections, in milliseconds, 50 to
	 * 3600000; a receiver silent for 3 intervals is dead.  Default
	 * 5000. */
	int			 heartbeat_ms;
	/* Compress messages of 256 bytes or more with zlib (when that
	 * makes them smaller), before encryption.  A receiver that does not
	 * take compressed messages gets them uncompressed.  Default 0. */
	int			 compress;
	/* TLS (tls_ca to check receivers' certificates) or password mode:
	 * data goes only to receivers that pass the handshake. */
	struct sipc_security	 security;
	sipc_after_send_fn	 after_send;
	sipc_send_failed_fn	 on_send_failed;
	void			*arg;
	/* 1: every message is handed to the I/O thread, none written by
	 * the sending thread itself (see sipc_send).  Where waking an
	 * idle CPU is slow (virtual machines), direct writes can wake the
	 * receiving process on another CPU more often.  Default 0. */
	int			 handoff_only;
};

/* Fills *opts with the defaults given above; every other field 0 or NULL
 * (plain text, no compression, no callbacks); and size, as
 * sipc_epm_opts_init() does. */
#define sipc_sender_opts_init(opts) \
	sipc_sender_opts_init_size((opts), sizeof(struct sipc_sender_opts))
void	sipc_sender_opts_init_size(struct sipc_sender_opts *opts,
	    size_t size);

/*
 * Creates a sender of handle (1 to 255 bytes of UTF-8 without control
 * characters) on epm (NULL: the process's default, see
 * sipc_receiver_new).  opts NULL: defaults; its strings are read during
 * the call only.  It follows the handle's receivers (broker: WATCH, one
 * snapshot then JOIN and LEAVE; local: the registry directory, with
 * inotify) and keeps one connection to each.  With a broker session up it
 * returns once it knows the receivers registered now (at most 5000 ms;
 * not at all when called on the I/O thread), so that the first message
 * reaches them.
 *
 * On success *out is the new sender, owned by the caller: free it with
 * sipc_sender_close().  Its callbacks run on the EPM's I/O thread.
 *
 * Errors: SIPC_EINVAL (handle, out NULL, options out of range,
 * certificates and a password both given, a malformed salt, opts not
 * initialized or setting a field this library does not know), SIPC_EAUTH
 * (security options unusable: files, keys), SIPC_EADDR ($SIPC_BROKER, for
 * the default EPM), SIPC_EPERM, SIPC_ESYS, SIPC_ENOMEM.
 */
int	sipc_sender_new(const char *handle, sipc_epm *epm,
	    const struct sipc_sender_opts *opts, sipc_sender **out);

/*
 * Sends len bytes at data (copied: the caller keeps data; len may be 0)
 * to every receiver the sender is connected to now, without waiting for
 * them.  Order is kept per receiver.  Zero receivers is not an error.
 * Any thread may call it, callbacks of the same EPM too, where it never
 * waits.  Sends in a stream are handed to the I/O thread, which writes
 * many per system call; a send of up to 16 KiB after 5 us or more
 * without one, when nothing waits to be written, is written by the
 * calling thread itself (one system call on a socket, none into the
 * shared-memory ring unless a receiver sleeps), saving the I/O thread's
 * wake-up (see handoff_only).  Either way the sender's callbacks run on
 * the I/O thread.
 * Errors: SIPC_EINVAL (tx NULL, data NULL with len > 0), SIPC_ETOOBIG
 * (len > max_message), SIPC_ETIMEDOUT (policy BLOCK: a receiver stayed at
 * its high-water mark for send_timeout_ms, or at once on the I/O thread;
 * any policy: hwm_bytes of messages still wait for the I/O thread; the
 * message was not sent), SIPC_ECLOSED, SIPC_ENOMEM.
 */
int	sipc_send(sipc_sender *tx, const void *data, size_t len);

/*
 * Zero-copy sending: loans a buffer of len bytes (len may be 0) for the
 * next message; the caller writes the message into *buf and hands it back
 * with sipc_send_commit() (which sends it, as sipc_send() would, without
 * copying it first) or sipc_send_abort().  The buffer belongs to the
 * caller between the two calls, to the sender after them; one thread may
 * hold several loans.  A loaned message is never compressed.  Waits as
 * sipc_send() does for room under the high-water mark.
 * Errors: SIPC_EINVAL (tx or buf NULL), SIPC_ETOOBIG (len > max_message),
 * SIPC_ETIMEDOUT (as sipc_send()), SIPC_ECLOSED, SIPC_ENOMEM; *buf is NULL
 * then.
 */
int	sipc_send_loan(sipc_sender *tx, size_t len, void **buf);

/*
 * Sends the first len bytes of a buffer from sipc_send_loan() (len at most
 * what was loaned) and gives the buffer back: it must not be touched
 * after.  Errors: SIPC_EINVAL (NULL, or len larger than the loan: the loan
 * is given back unsent), SIPC_ECLOSED (the sender is closing: given back
 * unsent).
 */
int	sipc_send_commit(sipc_sender *tx, void *buf, size_t len);

/* Gives a loaned buffer back unsent.  buf NULL: nothing. */
void	sipc_send_abort(sipc_sender *tx, void *buf);

/*
 * Waits until at least n receivers are connected (their handshake done),
 * at most timeout_ms milliseconds (-1: forever).
 * Errors: SIPC_EINVAL (tx NULL, or fewer than n receivers and called on
 * the I/O thread, where it cannot wait), SIPC_ETIMEDOUT, SIPC_ECLOSED.
 */
int	sipc_sender_wait_receivers(sipc_sender *tx, size_t n, int timeout_ms);

/*
 * Waits until every message sent so far has been acknowledged by every
 * receiver it went to, or reported to on_send_failed, at most timeout_ms
 * milliseconds (-1: forever).  Errors: SIPC_EINVAL (tx NULL, or called
 * from a callback of the same EPM, where it cannot wait), SIPC_ETIMEDOUT.
 */
int	sipc_sender_flush(sipc_sender *tx, int timeout_ms);

/* Receivers connected now (their handshake done); 0 for NULL. */
size_t	sipc_sender_receivers(sipc_sender *tx);

struct sipc_sender_stats {
	size_t		size;		/* set by sipc_sender_stats() */
	uint64_t	sent;		/* messages taken by sipc_send */
	uint64_t	delivered;	/* (message, receiver) acknowledged */
	uint64_t	lost;		/* (message, receiver) reported lost */
	uint64_t	dropped;	/* of which dropped at the mark */
	size_t		queued_bytes;	/* largest per-receiver backlog */
	uint64_t	sent_direct;	/* of sent, written by the sending
					   thread itself (see sipc_send) */
};

/* Per receiver, for sipc_sender_receiver_stats(). */
struct sipc_receiver_info {
	size_t		size;		/* set by sipc_sender_receiver_stats() */
	char		endpoint[128];
	int		connected;	/* handshake done, link up */
	size_t		queued_bytes;	/* not yet acknowledged */
	uint64_t	sent;		/* messages acknowledged */
	uint64_t	dropped;	/* dropped at the mark */
	uint64_t	lost;		/* lost in all */
};

/*
 * Fills *st with the counts so far, read on the I/O thread (the call waits
 * for it; from a callback it reads them at once); sizes as for
 * sipc_receiver_stats().  0, or SIPC_EINVAL when tx or st is NULL or size
 * is smaller than the size field.
 */
#define sipc_sender_stats(tx, st) \
	sipc_sender_stats_size((tx), (st), sizeof(struct sipc_sender_stats))
int	sipc_sender_stats_size(sipc_sender *tx, struct sipc_sender_stats *st,
	    size_t size);
/* Fills up to max entries of info (the caller's array of entries of size
 * bytes each, passed by the macro; NULL when max is 0), as
 * sipc_sender_stats() does; returns how many receivers there are (which
 * may exceed max), or SIPC_EINVAL when tx is NULL, or info NULL or size
 * smaller than the size field with max > 0. */
#define sipc_sender_receiver_stats(tx, info, max) \
	sipc_sender_receiver_stats_size((tx), (info), (max), \
	    sizeof(struct sipc_receiver_info))
int	sipc_sender_receiver_stats_size(sipc_sender *tx,
	    struct sipc_receiver_info *info, size_t max, size_t size);

/*
 * Waits up to linger_ms for the queued messages to be acknowledged,
 * reports what was not to on_send_failed, closes every connection and
 * frees the sender: tx is invalid after the call.  Returns 0 when
 * everything was delivered, else SIPC_ETIMEDOUT.  NULL is ignored
 * (returns 0).  When called from a callback on the I/O thread it does not
 * wait, and the sender is freed after that callback returns.  As with
 * sipc_receiver_close(), closing the last user of a closed EPM from
 * another thread stops its I/O thread.
 */
int	sipc_sender_close(sipc_sender *tx);


/* ---- Requests ------------------------------------------------------------ */

/*
 * Request/reply.  A responder is a receiver with on_request set: it
 * registers under its handle as any receiver does.  A requester of a
 * handle sends each request to exactly one live responder of it, the one
 * with the fewest requests outstanding (ties: round-robin), or with
 * sipc_survey() to every responder.  Requests are never resent behind the
 * caller's back: at most once, unless the caller marks one
 * SIPC_REQUEST_IDEMPOTENT, which allows one retry on another responder
 * when the first one is gone before it answered.
 *
 * The requesters of one EPM and handle (and the same security options)
 * share one connection to each responder; each requester keeps its own
 * requests, and closing it touches no other's.
 */
typedef struct sipc_requester sipc_requester;

/* Answer to one request: error 0 and the reply, or the error of this
 * request (data/len: for SIPC_EREMOTE, the responder's error text, not
 * NUL-terminated; else empty). */
struct sipc_reply {
	size_t		 size;		/* of this struct, in the library */
	int		 error;		/* 0 or SIPC_E* */
	const void	*data;		/* the reply; len may be 0 */
	size_t		 len;		/* bytes */
	const char	*responder;	/* its endpoint; "" when none */
};

/* A survey's answers: one entry per responder asked, in no order;
 * answered of them have error other than SIPC_ETIMEDOUT. */
struct sipc_survey {
	size_t			 size;	/* of this struct, in the library */
	size_t			 asked;
	size_t			 answered;
	struct sipc_reply	*replies;	/* asked entries */
};

/* The answer to sipc_request_async(): r is valid during the call only.
 * Runs on the I/O thread, exactly once per request not cancelled. */
typedef void	(*sipc_reply_fn)(sipc_requester *rq, uint64_t id,
		    const struct sipc_reply *r, void *arg);
/* The end of sipc_survey_async(): s is valid during the call only.  Runs
 * on the I/O thread. */
typedef void	(*sipc_survey_fn)(sipc_requester *rq, uint64_t id,
		    const struct sipc_survey *s, void *arg);

#define SIPC_REQUEST_IDEMPOTENT	0x1	/* one retry on another responder */

struct sipc_requester_opts {
	size_t			 size;	/* set by sipc_requester_opts_init() */
	/* Largest reply taken, in bytes: 1 byte to 1 GiB, default 64 MiB.
	 * Responders are not told it: one that sends a larger reply is
	 * cut off (every request in flight on that connection, shared by
	 * the requesters of the pool, fails with SIPC_EPEERGONE). */
	size_t			 max_reply;
	/* Heartbeat on responder connections, in milliseconds, 50 to
	 * 3600000; a responder silent for 3 intervals is gone.  Default
	 * 5000. */
	int			 heartbeat_ms;
	/* Compress requests of 256 bytes or more with zlib (when that
	 * makes them smaller), and let responders compress their replies
	 * so.  Default 0. */
	int			 compress;
	/* TLS (tls_ca to check responders' certificates) or password
	 * mode, as for senders. */
	struct sipc_security	 security;
};

/* Fills *opts with the defaults given above, every other field 0 or
 * NULL, and size, as sipc_epm_opts_init() does. */
#define sipc_requester_opts_init(opts) \
	sipc_requester_opts_init_size((opts), \
	    sizeof(struct sipc_requester_opts))
void	sipc_requester_opts_init_size(struct sipc_requester_opts *opts,
	    size_t size);

/*
 * Creates a requester of handle on epm (NULL: the process's default, see
 * sipc_receiver_new()).  opts NULL: defaults; its strings are read during
 * the call only.  It follows the handle's responders as a sender follows
 * receivers, and connects to each (sharing connections, see above).  It
 * does not wait for them: the first request does.
 *
 * On success *out is the new requester, owned by the caller: free it with
 * sipc_requester_close().  Errors: SIPC_EINVAL (handle, out NULL, options
 * out of range, opts not initialized), SIPC_EAUTH (security options
 * unusable), SIPC_EADDR ($SIPC_BROKER, for the default EPM), SIPC_EPERM,
 * SIPC_ESYS, SIPC_ENOMEM.
 */
int	sipc_requester_new(const char *handle, sipc_epm *epm,
	    const struct sipc_requester_opts *opts, sipc_requester **out);

/*
 * Sends a request of len bytes at data (copied; len may be 0) to one
 * responder and waits for its answer, at most timeout_ms milliseconds
 * (> 0).  On 0, *reply is the answer, owned by the caller: free it with
 * sipc_reply_free().  On an error *reply is NULL, except for
 * SIPC_EREMOTE, where it holds the responder's error text.
 * Errors: SIPC_EINVAL (rq or reply NULL, data NULL with len > 0,
 * timeout_ms <= 0, called on the I/O thread), SIPC_ETOOBIG (larger than
 * the responder takes), SIPC_ENORESPONDER (none registered, or none of
 * those registered answers requests; found within one registry lookup
 * and the connection attempts it starts), SIPC_EAUTH or SIPC_ETLS (the
 * only responders refused our TLS or password), SIPC_EPEERGONE (the responder
 * died or its connection broke before it answered), SIPC_ENOREPLY (it
 * dropped the request), SIPC_EREMOTE, SIPC_ETIMEDOUT (a reply that comes
 * later is discarded and counted; also when the broker cannot be reached
 * to learn the responders), SIPC_ECLOSED, SIPC_ENOMEM.  The deadline runs
 * from when the EPM's I/O thread takes the request (at once, unless it is
 * busy).  Any thread may call it, except the EPM's I/O thread.
 */
int	sipc_request(sipc_requester *rq, const void *data, size_t len,
	    int timeout_ms, int flags, struct sipc_reply **reply);
/* Frees a reply of sipc_request(); NULL is ignored. */
void	sipc_reply_free(struct sipc_reply *reply);

/*
 * As sipc_request(), without waiting: cb gets the answer (r->error
 * carries what sipc_request() returns) on the I/O thread, exactly once,
 * unless the request is cancelled first.  *id (may be NULL) identifies it
 * for sipc_request_cancel().  Errors found before sending are returned
 * and cb is not called: SIPC_EINVAL (rq or cb NULL, data NULL with
 * len > 0, timeout_ms <= 0), SIPC_ETOOBIG (more than 1 GiB),
 * SIPC_ECLOSED, SIPC_ENOMEM.  Any thread may call it, callbacks of the
 * same EPM too.
 */
int	sipc_request_async(sipc_requester *rq, const void *data, size_t len,
	    int timeout_ms, int flags, sipc_reply_fn cb, void *arg,
	    uint64_t *id);

/*
 * Cancels request or survey id of rq: its callback does not run after
 * this returns (when the callback is running on the I/O thread, this
 * waits for it).  A request still queued for the I/O thread is not sent
 * at all.  A reply that comes later is discarded.  Returns 0, or
 * SIPC_ENOTFOUND when it already completed (its callback has run, or is
 * running: called from inside it) or never existed, SIPC_EINVAL when rq
 * is NULL.  Any thread.
 */
int	sipc_request_cancel(sipc_requester *rq, uint64_t id);

/*
 * Sends the request to every responder of the handle and gathers their
 * answers until all have answered or timeout_ms milliseconds (> 0)
 * passed.  Responders still connecting are waited for, half the deadline
 * at most, and asked too; then those ready are asked.  On 0, *out holds
 * one entry per responder asked, each with error 0 and its reply, or
 * SIPC_ETIMEDOUT (no answer in time), SIPC_EPEERGONE (it went away),
 * SIPC_ENOREPLY, SIPC_EREMOTE (with its text), SIPC_ETOOBIG (the request
 * is larger than it takes), SIPC_ENOMEM; answered counts the entries
 * that are neither SIPC_ETIMEDOUT nor SIPC_EPEERGONE.  Free it with
 * sipc_survey_free().  Errors: SIPC_EINVAL (rq or out NULL, data NULL
 * with len > 0, timeout_ms <= 0, on the I/O thread), SIPC_ETOOBIG (more
 * than 1 GiB), SIPC_ENORESPONDER (nobody ready to ask by half the
 * deadline), SIPC_ECLOSED, SIPC_ENOMEM.  Not on the I/O thread.
 */
int	sipc_survey(sipc_requester *rq, const void *data, size_t len,
	    int timeout_ms, struct sipc_survey **out);
void	sipc_survey_free(struct sipc_survey *s);
/* As sipc_survey(), without waiting: cb runs once at the end, on the I/O
 * thread (also with s->asked 0 when there was nobody to ask); *id (may be
 * NULL) is for sipc_request_cancel().  Errors as sipc_request_async().
 * Any thread, callbacks of the same EPM too. */
int	sipc_survey_async(sipc_requester *rq, const void *data, size_t len,
	    int timeout_ms, sipc_survey_fn cb, void *arg, uint64_t *id);

struct sipc_requester_stats {
	size_t		size;		/* set by sipc_requester_stats() */
	uint64_t	requests;	/* sent (a survey: one per responder) */
	uint64_t	replies;	/* answered, with a reply or an error */
	uint64_t	failed;		/* ended with an error of ours */
	uint64_t	late;		/* replies after the deadline or cancel */
	uint64_t	outstanding;	/* waiting for an answer now */
};
#define sipc_requester_stats(rq, st) \
	sipc_requester_stats_size((rq), (st), \
	    sizeof(struct sipc_requester_stats))
/* Fills *st as sipc_receiver_stats() does; counts cover every requester
 * sharing rq's connections, but outstanding is rq's own.  0, or
 * SIPC_EINVAL. */
int	sipc_requester_stats_size(sipc_requester *rq,
	    struct sipc_requester_stats *st, size_t size);

/*
 * Frees the requester.  Its requests still outstanding are cancelled
 * (those still queued for the I/O thread are not sent): none of its
 * callbacks runs after this returns; from another thread it waits for
 * one that is running, and called from one of its callbacks, the rest
 * of them are not run.  Replies that come later are discarded.  NULL is
 * ignored.  Do not call it while another thread waits in sipc_request()
 * or sipc_survey() on rq.
 */
void	sipc_requester_close(sipc_requester *rq);

/* The message of a request a responder got: valid until the request is
 * answered or freed.  sender_id names the requester's connection; seq is
 * its number on it. */
const struct sipc_message *sipc_request_message(
	    const struct sipc_request *req);

/*
 * Answers req with len bytes at data (copied; len may be 0) and frees req.
 * Any thread, at any time: when the requester's connection is gone, or
 * its receiver closed, the answer is discarded (and 0 returned: the
 * requester hears SIPC_EPEERGONE).  Errors: SIPC_EINVAL (req NULL, data
 * NULL with len > 0; req is not freed), SIPC_ETOOBIG (more than 1 GiB;
 * req is answered with an error instead and freed), SIPC_ENOMEM (req is
 * dropped as by sipc_request_free()).
 */
int	sipc_request_reply(struct sipc_request *req, const void *data,
	    size_t len);
/* Answers req with an error: the requester gets SIPC_EREMOTE and text
 * (NULL: none; at most 512 bytes are sent, cut at a character; text that
 * is not UTF-8 is sent as ""), from any thread.  Frees req.  0, or
 * SIPC_EINVAL when req is NULL. */
int	sipc_request_fail(struct sipc_request *req, const char *text);
/* Drops req unanswered: the requester gets SIPC_ENOREPLY at once.  Frees
 * req.  NULL is ignored. */
void	sipc_request_free(struct sipc_request *req);

/*
 * Pull mode for requesters: requests started without a callback, whose
 * answers the program collects from its own thread or event loop.
 *
 * sipc_request_start() is sipc_request_async() without a callback: the
 * answer waits for sipc_requester_collect().  *id (may be NULL)
 * identifies it, there and for sipc_request_cancel() (a cancelled
 * request is never collected).  Errors as sipc_request_async(), and
 * SIPC_ESYS when the descriptor cannot be made.  Any thread.
 */
int	sipc_request_start(sipc_requester *rq, const void *data, size_t len,
	    int timeout_ms, int flags, uint64_t *id);
/*
 * Takes the next answer of a request started by sipc_request_start(), in
 * the order they completed, waiting up to timeout_ms milliseconds (0:
 * not at all, -1: forever).  On 0, *id is the request's and *reply its
 * answer, owned by the caller (sipc_reply_free()): reply->error is 0 or
 * what sipc_request() would have returned.  Errors (*reply NULL):
 * SIPC_ETIMEDOUT (no request completed in time; not the request's
 * error), SIPC_ECLOSED (another thread closed rq meanwhile), SIPC_EINVAL
 * (rq or reply NULL, or a wait asked on the I/O thread).  Any thread.
 */
int	sipc_requester_collect(sipc_requester *rq, uint64_t *id,
	    struct sipc_reply **reply, int timeout_ms);
/* A descriptor readable exactly while answers wait for
 * sipc_requester_collect(), as sipc_receiver_fd() is for messages;
 * closed by sipc_requester_close().  Returns it, or SIPC_EINVAL (rq
 * NULL), SIPC_ESYS, SIPC_ENOMEM. */
int	sipc_requester_fd(sipc_requester *rq);

#ifdef __cplusplus
}
#endif

#endif
