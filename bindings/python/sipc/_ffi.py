"""The C side of the sipc package: cffi in ABI mode over libsipc.so.

ABI mode (ffi.dlopen) needs no compiler and no Python headers to install:
the package is pure Python, and libsipc.so.2 is found at import time.
The declarations below copy the parts of sipc.h the package uses.  Every
options struct carries its size first, so a library that knows more fields
gives the ones declared here their defaults (sipc.h, "Structs that grow").

Which library: $SIPC_LIBRARY (a path, e.g. build/lib/libsipc.so.2 of a
source tree), else "libsipc.so.2" through the dynamic linker (the
installed library, or $LD_LIBRARY_PATH).

cffi releases the GIL around every call into the library, so a call that
waits (recv with a timeout, request) lets other Python threads run.
"""
import os

import cffi

CDEF = r"""
const char *sipc_version(int *number);
const char *sipc_strerror(int err);
const char *sipc_errmsg(void);

struct sipc_security {
	const char *tls_ca;
	const char *tls_cert;
	const char *tls_key;
	const char *tls_server_name;
	int tls_verify_peer;
	int tls12;
	const char *password;
	const char *salt;
};

typedef struct sipc_epm sipc_epm;
struct sipc_epm_opts {
	size_t size;
	int connect_timeout_ms;
	int heartbeat_ms;
	struct sipc_security security;
};
void sipc_epm_opts_init_size(struct sipc_epm_opts *opts, size_t size);
int sipc_epm_connect(const char *addr, const struct sipc_epm_opts *opts,
    sipc_epm **out);
int sipc_epm_local(sipc_epm **out);
int sipc_epm_is_local(const sipc_epm *epm);
int sipc_epm_connected(const sipc_epm *epm);
void sipc_epm_close(sipc_epm *epm);

typedef struct sipc_receiver sipc_receiver;
struct sipc_message {
	size_t size;
	const char *handle;
	const void *data;
	size_t len;
	uint64_t sender_id;
	uint64_t seq;
};
struct sipc_request;
struct sipc_receiver_opts {
	size_t size;
	const char *listen_address;
	const char *register_address;
	const char *allowed_ports;
	size_t max_message;
	struct sipc_security security;
	void *on_message;
	void *on_connect;
	void *on_disconnect;
	void *on_gap;
	void *arg;
	void *on_request;
	size_t queue_max;
	size_t queue_max_bytes;
	int pull_requests;
};
void sipc_receiver_opts_init_size(struct sipc_receiver_opts *opts,
    size_t size);
int sipc_receiver_new(const char *handle, sipc_epm *epm,
    const struct sipc_receiver_opts *opts, sipc_receiver **out);
void sipc_receiver_close(sipc_receiver *rx);
int sipc_receiver_endpoint(const sipc_receiver *rx, char *buf, size_t size);
struct sipc_receiver_stats {
	size_t size;
	uint64_t messages;
	uint64_t bytes;
	uint64_t gaps;
	uint64_t duplicates;
	uint64_t senders;
	uint64_t requests;
};
int sipc_receiver_stats_size(sipc_receiver *rx,
    struct sipc_receiver_stats *st, size_t size);
int sipc_receiver_recv(sipc_receiver *rx, struct sipc_message **msg,
    int timeout_ms);
void sipc_message_free(struct sipc_message *msg);
int sipc_receiver_recv_into(sipc_receiver *rx, void *buf, size_t size,
    size_t *lens, size_t max, int timeout_ms);
int sipc_receiver_fd(const sipc_receiver *rx);
int sipc_receiver_recv_request(sipc_receiver *rx, struct sipc_request **req,
    int timeout_ms);
int sipc_receiver_request_fd(const sipc_receiver *rx);

typedef struct sipc_sender sipc_sender;
struct sipc_sender_opts {
	size_t size;
	size_t max_message;
	size_t hwm_bytes;
	int policy;
	int send_timeout_ms;
	int linger_ms;
	int heartbeat_ms;
	int compress;
	struct sipc_security security;
	void *after_send;
	void *on_send_failed;
	void *arg;
};
void sipc_sender_opts_init_size(struct sipc_sender_opts *opts, size_t size);
int sipc_sender_new(const char *handle, sipc_epm *epm,
    const struct sipc_sender_opts *opts, sipc_sender **out);
int sipc_send(sipc_sender *tx, const char *data, size_t len);
int sipc_sender_wait_receivers(sipc_sender *tx, size_t n, int timeout_ms);
int sipc_sender_flush(sipc_sender *tx, int timeout_ms);
size_t sipc_sender_receivers(sipc_sender *tx);
int sipc_sender_close(sipc_sender *tx);

typedef struct sipc_requester sipc_requester;
struct sipc_reply {
	size_t size;
	int error;
	const void *data;
	size_t len;
	const char *responder;
};
struct sipc_requester_opts {
	size_t size;
	size_t max_reply;
	int heartbeat_ms;
	int compress;
	struct sipc_security security;
};
void sipc_requester_opts_init_size(struct sipc_requester_opts *opts,
    size_t size);
int sipc_requester_new(const char *handle, sipc_epm *epm,
    const struct sipc_requester_opts *opts, sipc_requester **out);
int sipc_request(sipc_requester *rq, const char *data, size_t len,
    int timeout_ms, int flags, struct sipc_reply **reply);
void sipc_reply_free(struct sipc_reply *reply);
int sipc_request_cancel(sipc_requester *rq, uint64_t id);
void sipc_requester_close(sipc_requester *rq);
const struct sipc_message *sipc_request_message(
    const struct sipc_request *req);
int sipc_request_reply(struct sipc_request *req, const char *data,
    size_t len);
int sipc_request_fail(struct sipc_request *req, const char *text);
void sipc_request_free(struct sipc_request *req);
int sipc_request_start(sipc_requester *rq, const char *data, size_t len,
    int timeout_ms, int flags, uint64_t *id);
int sipc_requester_collect(sipc_requester *rq, uint64_t *id,
    struct sipc_reply **reply, int timeout_ms);
int sipc_requester_fd(sipc_requester *rq);
"""

# Data parameters are declared "const char *" (sipc.h: "const void *",
# the same in the ABI) so that bytes pass without a conversion.
ffi = cffi.FFI()
ffi.cdef(CDEF)


def _open():
    path = os.environ.get("SIPC_LIBRARY") or "libsipc.so.2"
    try:
        return ffi.dlopen(path)
    except OSError as e:
        raise ImportError(
            "sipc: cannot load %s (%s); install libsipc2, or set "
            "SIPC_LIBRARY to the path of libsipc.so.2" % (path, e)) from e


lib = _open()
