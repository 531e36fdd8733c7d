/*
 * limits.h - every limit of the sipc wire protocol and its programs, in one
 * place, each with the reason it has the value it has.
 *
 * Two kinds of numbers live here: protocol limits (fixed; a peer that exceeds
 * them is broken or hostile and gets an ERROR) and defaults for limits an
 * operator may change (SIPC_DEF_*), each with the hard bounds (SIPC_MIN_* /
 * SIPC_MAX_*) its configured value must stay within.  Nothing here allocates;
 * the numbers only bound what others allocate.
 */
#ifndef SIPC_PROTO_LIMITS_H
#define SIPC_PROTO_LIMITS_H

/* ---- Protocol constants -------------------------------------------------- */

/* Size of the fixed frame header, in bytes.  16 keeps every header field
 * naturally aligned and leaves a reserved field for a later version. */
#define SIPC_HEADER_SIZE		16

/* Protocol versions this code speaks.  A HELLO whose [min, max] range does
 * not include one of them is answered with ERROR VERSION. */
#define SIPC_PROTO_VERSION_MIN		1
#define SIPC_PROTO_VERSION_MAX		1

/* A handle is 1..255 bytes of UTF-8.  255 is the original's practical limit
 * (a registry key name) and keeps the length in one byte for humans. */
#define SIPC_HANDLE_MAX			255

/* Host names: Linux's HOST_NAME_MAX is 64.  Bounding it keeps a registration
 * record at most SIPC_RECORD_MAX bytes on the wire. */
#define SIPC_HOST_MAX			64

/* Client/server software names in HELLO ("sipc/0.1"): for logs only. */
#define SIPC_SOFTWARE_MAX		64

/* Unix socket paths: sun_path is 108 bytes including the NUL. */
#define SIPC_UNIX_PATH_MAX		107

/* Text of an ERROR frame: one log line's worth. */
#define SIPC_ERROR_TEXT_MAX		512

/* Name of one STATS counter. */
#define SIPC_STAT_NAME_MAX		64

/* At most this many counters in one STATS answer. */
#define SIPC_STATS_MAX			256

/* Largest encoded registration record (see PROTOCOL.md): id 8, instance 8,
 * endpoint 1 + max(16 + 2, 2 + 107), host 2 + 64, pid 4, time 8. */
#define SIPC_RECORD_MAX			(8 + 8 + 1 + 2 + SIPC_UNIX_PATH_MAX + \
					 2 + SIPC_HOST_MAX + 4 + 8)

/* ---- Broker limits ------------------------------------------------------- */

/* Largest frame payload before HELLO has succeeded.  A HELLO is far smaller;
 * an unauthenticated peer must not make the broker buffer more than this. */
#define SIPC_HELLO_FRAME_MAX		4096

/* Largest broker frame payload after HELLO, in bytes.  1 MiB holds a full
 * snapshot of SIPC_MAX_RECEIVERS_PER_HANDLE records with room to spare. */
#define SIPC_DEF_BROKER_FRAME		(1024 * 1024)
#define SIPC_MIN_BROKER_FRAME		(SIPC_MAX_RECEIVERS_PER_HANDLE * \
					 SIPC_RECORD_MAX + 4096)
#define SIPC_MAX_BROKER_FRAME		(64 * 1024 * 1024)

/* Receivers on one handle.  A WATCH or LOOKUP answer holds all of them in one
 * frame, so this times SIPC_RECORD_MAX must fit SIPC_MIN_BROKER_FRAME. */
#define SIPC_MAX_RECEIVERS_PER_HANDLE	2048

/* Concurrent sessions.  Each costs a descriptor and about 1 KiB. */
#define SIPC_DEF_SESSIONS		4096
#define SIPC_MAX_SESSIONS		1000000

/* Sessions from one peer address: one host must not take every slot. */
#define SIPC_DEF_SESSIONS_PER_PEER	1024

/* Registrations one session may hold.  A process rarely has more than a few
 * receivers; the default leaves room for test rigs and gateways. */
#define SIPC_DEF_REGS_PER_SESSION	100000
#define SIPC_MAX_REGS_PER_SESSION	10000000

/* Watches one session may hold (one per handle a process sends on). */
#define SIPC_DEF_WATCHES_PER_SESSION	4096
#define SIPC_MAX_WATCHES_PER_SESSION	1000000

/* Entries in one LIST answer at most.  The broker also stops a page early
 * when the next entry would not fit its frame limit, and says "more". */
#define SIPC_LIST_PAGE_MAX		1024

/* Backlog of the broker's listening sockets: connections the kernel
 * completes before sipc-epmd accepts them; as many as the sessions it
 * serves by default.  10,000 clients connecting at once on 2 cores:
 * backlog 128 overflowed 6,591 times (p99 to OK(REGISTER) 2.8 s, as SYNs
 * were retried after 1 s), 511 3,336 times (p99 1.3 s), 4096 never (p99
 * 0.58 s).  The kernel caps it at net.core.somaxconn (4096 on Debian
 * 12). */
#define SIPC_DEF_LISTEN_BACKLOG		4096
#define SIPC_MAX_LISTEN_BACKLOG		65535

/* A connection must complete HELLO within this many milliseconds. */
#define SIPC_DEF_HANDSHAKE_MS		5000
#define SIPC_MIN_HANDSHAKE_MS		100
#define SIPC_MAX_HANDSHAKE_MS		600000

/* A session holding no registration and no watch that sends no request for
 * this long is closed (0 disables).  Heartbeats alone do not keep it. */
#define SIPC_DEF_IDLE_MS		(10 * 60 * 1000)
#define SIPC_MAX_IDLE_MS		(24 * 3600 * 1000)

/* Heartbeat interval in milliseconds; a peer silent for
 * SIPC_HEARTBEAT_MISSES intervals is dead.  5 s notices a dead peer in 15 s
 * without waking idle processes often. */
#define SIPC_DEF_HEARTBEAT_MS		5000
#define SIPC_MIN_HEARTBEAT_MS		50
#define SIPC_MAX_HEARTBEAT_MS		3600000
#define SIPC_HEARTBEAT_MISSES		3

/* Bytes queued to one session that it has not read yet.  A watcher that
 * falls this far behind is closed rather than letting the broker grow. */
#define SIPC_SESSION_OUTPUT_MAX		(16 * 1024 * 1024)

/* ---- Data plane limits --------------------------------------------------- */

/* Largest message payload, in bytes: default and hard bound.  DATA frames
 * carry 8 bytes of sequence number on top.  1 GiB keeps every length well
 * inside a u32 and a size_t on 32-bit hosts. */
#define SIPC_DEF_MESSAGE_MAX		(64u * 1024 * 1024)
#define SIPC_MAX_MESSAGE_MAX		(1024u * 1024 * 1024)

/* Fixed part of a DATA payload: the u64 sequence number. */
#define SIPC_DATA_PREFIX		8

/* Requests a responder has taken from one connection and not answered.
 * At this many it stops reading that connection until half are answered:
 * a requester that outpaces its responder waits in its own socket buffer,
 * not in the responder's memory. */
#define SIPC_RESPONDER_INFLIGHT_MAX	16384

/* Sender ids a receiver remembers (with the last sequence number it
 * delivered from each) so that a sender reconnecting never causes a
 * duplicate.  Oldest forgotten first. */
#define SIPC_SENDER_MEMORY		4096

/* Pull mode (a receiver without on_message): messages waiting for
 * sipc_receiver_recv().  At either bound the receiver stops reading its
 * senders' connections until the program has taken half of them, so a
 * slow program reaches its senders' high-water marks instead of growing
 * without end.  Defaults, and hard bounds of the options. */
#define SIPC_DEF_QUEUE_MESSAGES		4096
#define SIPC_DEF_QUEUE_BYTES		(8u * 1024 * 1024)
#define SIPC_MAX_QUEUE_MESSAGES		(1024u * 1024)
#define SIPC_MAX_QUEUE_BYTES		(1024u * 1024 * 1024)

#endif
