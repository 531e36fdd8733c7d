"""sipc: events between processes, from Python.

A Receiver registers under a string handle; a Sender of the same handle
delivers each message to every live receiver of it.  A Requester sends a
request to one Responder of its handle and gets its reply.  Receivers are
found through an end point manager (Epm): the local registry of this user
(the default, no daemon) or a sipc-epmd broker.

Messages are bytes (any bytes-like object is taken when sending; with
copy=False a received message is a read-only memoryview over the
library's buffer, freed when the last view of it goes).

Times are in seconds (float); None waits forever.  Blocking calls release
the GIL (cffi does so around every call into libsipc) and wait in slices
of at most 0.2 s, so that Ctrl-C and close() from another thread are seen.
Every failure raises a subclass of sipc.Error that names the C error code
(sipc.TimeoutError for SIPC_ETIMEDOUT, ...).

asyncio: ``async for msg in receiver``, ``await receiver.recv_async()``,
``await requester.request_async(...)`` (or the same through sipc.aio
classes, whose request() and recv() are coroutines), all driven by the
descriptors the library makes readable while something waits
(loop.add_reader): no thread per object.
"""
import asyncio
import builtins
import collections
import sys
import threading
import time
import warnings

from ._ffi import ffi, lib

__all__ = [
    "Epm", "Sender", "Receiver", "Requester", "Responder", "Request",
    "Message", "Error", "version", "POLICY_BLOCK", "POLICY_DROP",
    "POLICY_DISCONNECT",
]

POLICY_BLOCK = 0
POLICY_DROP = 1
POLICY_DISCONNECT = 2
_REQUEST_IDEMPOTENT = 0x1
_SLICE_MS = 200          # longest single wait inside the library
_BATCH = 1024            # messages taken per call by iterators
_INTO = 256 * 1024       # bytes taken per call by iterators


def version():
    """The running libsipc's version: (string, number 0xMMmmpp)."""
    n = ffi.new("int *")
    s = ffi.string(lib.sipc_version(n)).decode()
    return s, n[0]


# ---- Errors ---------------------------------------------------------------

class Error(Exception):
    """A sipc call failed.

    Attributes: code (int, the negative SIPC_E* value), name (str,
    sipc_strerror's), detail (str, sipc_errmsg's: what failed and why).
    """
    code = None

    def __init__(self, code, detail=""):
        self.code = code
        self.name = ffi.string(lib.sipc_strerror(code)).decode()
        self.detail = detail
        super().__init__("%s%s" % (self.name, ": " + detail if detail
                                   else ""))


def _error_class(name, code, doc, *bases):
    cls = type(name, (Error,) + bases, {"__doc__": doc})
    cls.code = code
    return cls


InvalidArgumentError = _error_class(
    "InvalidArgumentError", -1, "SIPC_EINVAL: an argument is invalid.",
    ValueError)
OutOfMemoryError = _error_class(
    "OutOfMemoryError", -2, "SIPC_ENOMEM: out of memory.", MemoryError)
SystemCallError = _error_class(
    "SystemCallError", -3, "SIPC_ESYS: a system call failed.", OSError)
TimeoutError = _error_class(                        # noqa: A001
    "TimeoutError", -4, "SIPC_ETIMEDOUT: the time limit passed.",
    builtins.TimeoutError)
ClosedError = _error_class(
    "ClosedError", -5, "SIPC_ECLOSED: the object is closing or closed.")
AddressError = _error_class(
    "AddressError", -6, "SIPC_EADDR: an address cannot be parsed or "
    "resolved.")
ConnectError = _error_class(
    "ConnectError", -7, "SIPC_ECONNECT: cannot connect.", ConnectionError)
ProtocolError = _error_class(
    "ProtocolError", -8, "SIPC_EPROTO: the peer broke the protocol.")
VersionError = _error_class(
    "VersionError", -9, "SIPC_EVERSION: no protocol version in common.")
BrokerError = _error_class(
    "BrokerError", -10, "SIPC_EBROKER: the broker refused the request.")
TooBigError = _error_class(
    "TooBigError", -11, "SIPC_ETOOBIG: message larger than the maximum.")
NoPortError = _error_class(
    "NoPortError", -12, "SIPC_ENOPORT: no allowed port is free.")
PermissionError = _error_class(                     # noqa: A001
    "PermissionError", -13, "SIPC_EPERM: registry directory unsafe or "
    "not ours.", builtins.PermissionError)
NotConnectedError = _error_class(
    "NotConnectedError", -14, "SIPC_ENOTCONN: no broker session (yet).")
PeerGoneError = _error_class(
    "PeerGoneError", -15, "SIPC_EPEERGONE: a receiver or responder went "
    "away.")
DroppedError = _error_class(
    "DroppedError", -16, "SIPC_EDROPPED: dropped at the high-water mark.")
SlowError = _error_class(
    "SlowError", -17, "SIPC_ESLOW: receiver cut off for being too slow.")
NotFoundError = _error_class(
    "NotFoundError", -18, "SIPC_ENOTFOUND: no such thing.")
AuthError = _error_class(
    "AuthError", -19, "SIPC_EAUTH: authentication failed.")
TLSError = _error_class(
    "TLSError", -20, "SIPC_ETLS: TLS failed.")
NoResponderError = _error_class(
    "NoResponderError", -21, "SIPC_ENORESPONDER: no responder of the "
    "handle.")
NoReplyError = _error_class(
    "NoReplyError", -22, "SIPC_ENOREPLY: the responder dropped the "
    "request.")


class RemoteError(Error):
    """SIPC_EREMOTE: the responder answered with an error; .text (str) is
    what it said."""
    code = -23

    def __init__(self, code, detail="", text=""):
        super().__init__(code, text or detail)
        self.text = text


_ERRORS = {c.code: c for c in (
    InvalidArgumentError, OutOfMemoryError, SystemCallError, TimeoutError,
    ClosedError, AddressError, ConnectError, ProtocolError, VersionError,
    BrokerError, TooBigError, NoPortError, PermissionError,
    NotConnectedError, PeerGoneError, DroppedError, SlowError,
    NotFoundError, AuthError, TLSError, NoResponderError, NoReplyError,
    RemoteError)}
__all__ += [c.__name__ for c in _ERRORS.values()]


def error_class(code):
    """The Error subclass of a SIPC_E* code (Error for an unknown one)."""
    return _ERRORS.get(code, Error)


def _raise(rc, detail=None):
    if detail is None:
        detail = ffi.string(lib.sipc_errmsg()).decode("utf-8", "replace")
    cls = _ERRORS.get(rc)
    if cls is None:
        raise Error(rc, detail)
    raise cls(rc, detail)


def _ms(timeout):
    """Seconds (None: forever) to the library's milliseconds (-1)."""
    if timeout is None:
        return -1
    if timeout <= 0:
        return 0
    return max(1, int(timeout * 1000 + 0.5))


def _cbytes(data):
    """(argument, length) for a bytes-like object, without a copy."""
    if isinstance(data, bytes):
        return data, len(data)
    if isinstance(data, str):
        raise TypeError("sipc sends bytes, not str: encode it first")
    mv = memoryview(data)
    return ffi.from_buffer("char[]", mv), mv.nbytes


_SECURITY = ("tls_ca", "tls_cert", "tls_key", "tls_server_name",
             "password", "salt", "tls_verify_peer", "tls12", "_keep")


def _security(s, kw):
    bad = sorted(k for k in kw if k not in _SECURITY)
    if bad:
        raise TypeError("unexpected keyword argument(s): %s" %
                        ", ".join(bad))
    for k in ("tls_ca", "tls_cert", "tls_key", "tls_server_name",
              "password", "salt"):
        v = kw.get(k)
        if v is not None:
            b = ffi.new("char[]", v.encode() if isinstance(v, str) else v)
            kw["_keep"].append(b)
            setattr(s, k, b)
    if kw.get("tls_verify_peer"):
        s.tls_verify_peer = 1
    if kw.get("tls12"):
        s.tls12 = 1


# ---- Objects: closing safely under threads ----------------------------------

class _Object:
    """What every sipc object shares: close() that waits for calls in
    progress on other threads (each waits at most one slice), context
    manager, and close at garbage collection.

    A call marks itself in self._calls (list.append and list.pop are
    atomic under the GIL) before it reads self._ptr; close() clears
    self._ptr first and then waits until no call is marked, so that the
    library object is never freed under a call, without a lock on the
    hot path."""
    _ptr = ffi.NULL

    def __init__(self):
        self._calls = []
        self._closing = False

    def _enter(self):
        self._calls.append(None)
        ptr = self._ptr
        if ptr == ffi.NULL:
            self._calls.pop()
            raise ClosedError(-5, "%s closed" % type(self).__name__)
        return ptr

    def _leave(self):
        self._calls.pop()

    def _close_ptr(self, ptr):
        raise NotImplementedError

    def close(self):
        """Closes the object (idempotent): calls waiting on other threads
        raise sipc.ClosedError within 0.2 s, then the library object is
        freed."""
        if self._closing:
            return
        self._closing = True
        ptr, self._ptr = self._ptr, ffi.NULL
        while self._calls:
            time.sleep(0.001)
        if ptr != ffi.NULL:
            self._close_ptr(ptr)

    @property
    def closed(self):
        """True once close() was called."""
        return self._closing

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _epm_ptr(epm):
    if epm is None:
        return ffi.NULL
    if not isinstance(epm, Epm):
        raise TypeError("epm must be a sipc.Epm or None")
    if epm._ptr == ffi.NULL:
        raise ClosedError(-5, "Epm closed")
    return epm._ptr


class Epm(_Object):
    """An end point manager: how receivers are found.

    Epm() or Epm(None): $SIPC_BROKER, else the local registry of this user
    ($XDG_RUNTIME_DIR/sipc, Unix sockets, no daemon).  Epm("HOST[:PORT]"):
    the sipc-epmd broker there (port 4455 by default), waiting up to
    connect_timeout seconds (float; 0: connect in the background).
    Epm.local(): the local registry regardless of $SIPC_BROKER.

    Objects made with epm=None use the process's default EPM instead.
    Closing an Epm releases only this reference: objects using it keep it
    until they close.
    Raises: AddressError, ConnectError, TimeoutError, AuthError, TLSError,
    BrokerError, VersionError, PermissionError, InvalidArgumentError.
    Security keywords (str): tls_ca, tls_cert, tls_key, tls_server_name,
    password, salt; tls_verify_peer, tls12 (bool).
    """

    def __init__(self, broker=None, connect_timeout=5.0, heartbeat=None,
                 **security):
        super().__init__()
        out = ffi.new("sipc_epm **")
        o = ffi.new("struct sipc_epm_opts *")
        lib.sipc_epm_opts_init_size(o, ffi.sizeof("struct sipc_epm_opts"))
        o.connect_timeout_ms = _ms(connect_timeout)
        if heartbeat is not None:
            o.heartbeat_ms = _ms(heartbeat)
        security["_keep"] = []
        _security(o.security, security)
        if broker is _LOCAL:
            rc = lib.sipc_epm_local(out)
        else:
            rc = lib.sipc_epm_connect(
                broker.encode() if broker else ffi.NULL, o, out)
        if rc:
            _raise(rc)
        self._ptr = out[0]

    @classmethod
    def local(cls):
        """The local registry (one user, one machine)."""
        return cls(_LOCAL)

    @property
    def is_local(self):
        """True for the local registry, False for a broker."""
        return bool(lib.sipc_epm_is_local(self._ptr))

    @property
    def connected(self):
        """True while the broker session is up (always for local)."""
        return bool(lib.sipc_epm_connected(self._ptr))

    def _close_ptr(self, ptr):
        lib.sipc_epm_close(ptr)


_LOCAL = object()


# ---- Senders ----------------------------------------------------------------

class Sender(_Object):
    """A sender of handle (str, 1 to 255 bytes of UTF-8).

    It follows the handle's receivers and keeps one connection to each.
    Keywords: max_message (bytes, default 64 MiB), hwm_bytes (bytes
    unacknowledged per receiver before the policy applies, default
    8 MiB), policy (POLICY_BLOCK, POLICY_DROP, POLICY_DISCONNECT or
    "block", "drop", "disconnect"), send_timeout (s, BLOCK's longest
    wait, default 10; None forever), linger (s close() waits for
    acknowledgements, default 5), heartbeat (s), compress (bool), and the
    security keywords of Epm.
    Raises: InvalidArgumentError, AuthError, AddressError,
    PermissionError, SystemCallError, OutOfMemoryError.
    """

    def __init__(self, handle, epm=None, *, max_message=None,
                 hwm_bytes=None, policy=None, send_timeout=10.0,
                 linger=5.0, heartbeat=None, compress=False, **security):
        super().__init__()
        o = ffi.new("struct sipc_sender_opts *")
        lib.sipc_sender_opts_init_size(
            o, ffi.sizeof("struct sipc_sender_opts"))
        if max_message is not None:
            o.max_message = max_message
        if hwm_bytes is not None:
            o.hwm_bytes = hwm_bytes
        if policy is not None:
            o.policy = {"block": 0, "drop": 1, "disconnect": 2}.get(
                policy, policy)
        o.send_timeout_ms = _ms(send_timeout)
        o.linger_ms = _ms(linger)
        if heartbeat is not None:
            o.heartbeat_ms = _ms(heartbeat)
        o.compress = 1 if compress else 0
        security["_keep"] = []
        _security(o.security, security)
        out = ffi.new("sipc_sender **")
        rc = lib.sipc_sender_new(handle.encode(), _epm_ptr(epm), o, out)
        if rc:
            _raise(rc)
        self._ptr = out[0]
        self._cell = [self._ptr]        # [None] once closed
        self.send = self._make_send()
        self.handle = handle

    def _make_send(self):
        """send(), as a closure over what it uses: the hot path of a
        sender.  It marks nothing: while it calls the library it holds a
        reference to the pointer, which close() waits to see gone (see
        _close_ptr), so that the sender is never freed under it."""
        cell = self._cell
        csend = lib.sipc_send

        def send(data):
            """Sends data (bytes-like, copied) to every receiver connected
            now, without waiting for them.  Returns None.
            Raises: TooBigError, TimeoutError (policy BLOCK: a receiver
            stayed at its high-water mark for send_timeout), ClosedError,
            InvalidArgumentError, OutOfMemoryError; TypeError for str."""
            if data.__class__ is bytes:
                d, n = data, len(data)
            else:
                d, n = _cbytes(data)
            ptr = cell[0]
            if ptr is None:
                raise ClosedError(-5, "Sender closed")
            rc = csend(ptr, d, n)
            if rc:
                del ptr         # a traceback must not keep it
                _raise(rc)
        return send

    def send_many(self, messages):
        """Sends each bytes-like object of the iterable messages in turn,
        as send() does; returns how many were sent."""
        ptr = self._enter()
        n = 0
        try:
            send = lib.sipc_send
            for data in messages:
                if isinstance(data, bytes):
                    rc = send(ptr, data, len(data))
                else:
                    d, ln = _cbytes(data)
                    rc = send(ptr, d, ln)
                if rc:
                    _raise(rc)
                n += 1
        finally:
            self._leave()
        return n

    def wait_receivers(self, n=1, timeout=5.0):
        """Waits until at least n receivers are connected (timeout in s;
        None forever).  Raises TimeoutError, ClosedError."""
        self._wait(lambda p, ms: lib.sipc_sender_wait_receivers(p, n, ms),
                   timeout)

    def flush(self, timeout=5.0):
        """Waits until every message sent so far is acknowledged by every
        receiver it went to, or reported lost.  Raises TimeoutError."""
        self._wait(lib.sipc_sender_flush, timeout)

    def _wait(self, fn, timeout):
        ptr = self._enter()
        try:
            rc = fn(ptr, _ms(timeout))
        finally:
            self._leave()
        if rc:
            _raise(rc)

    @property
    def receivers(self):
        """Receivers connected now (int)."""
        ptr = self._enter()
        try:
            return lib.sipc_sender_receivers(ptr)
        finally:
            self._leave()

    def close(self):
        """Waits up to linger s for acknowledgements, then closes every
        connection and frees the sender (idempotent); send() raises
        ClosedError after."""
        cell = getattr(self, "_cell", None)
        if cell:
            cell[0] = None
        super().close()

    def _close_ptr(self, ptr):
        # send() holds a reference to ptr while it is in the library
        # (CPython counts it); close() waits until only its own remain:
        # the caller's variable, this argument, getrefcount's.  Rather a
        # leak than a free under a call, should one never go.
        deadline = time.monotonic() + 5.0
        while sys.getrefcount(ptr) > 3:
            if time.monotonic() > deadline:
                warnings.warn("sipc.Sender.close: a send() still holds "
                              "the sender; not freed", ResourceWarning)
                return
            time.sleep(0.001)
        lib.sipc_sender_close(ptr)


# ---- Receivers --------------------------------------------------------------

class Message:
    """A message received: data (bytes, or a read-only memoryview when
    received with copy=False), sender_id (int, 64 bits, the sending
    Sender's), seq (int, its number in that sender's stream), handle
    (str)."""
    __slots__ = ("data", "sender_id", "seq", "handle")

    def __init__(self, data, sender_id, seq, handle):
        self.data = data
        self.sender_id = sender_id
        self.seq = seq
        self.handle = handle

    def __repr__(self):
        return "<sipc.Message %s seq=%d %d bytes>" % (
            self.handle, self.seq, len(self.data))


def _free_later(m):
    return lambda _d: lib.sipc_message_free(m)


class _Pull(_Object):
    """Taking from a queue of the library: blocking (in slices), at once,
    or on asyncio through its descriptor."""

    def _take(self, ptr, ms):
        raise NotImplementedError

    def _take_wait(self, timeout):
        """One item, waiting up to timeout s (None forever)."""
        left = _ms(timeout)
        while True:
            step = _SLICE_MS if left < 0 or left > _SLICE_MS else left
            item = self._take_once(step)
            if item is not None:
                return item
            if left >= 0:
                left -= step
                if left <= 0:
                    raise TimeoutError(-4, "nothing within %s s" % timeout)

    def _take_once(self, ms):
        ptr = self._enter()
        try:
            return self._take(ptr, ms)
        finally:
            self._leave()

    async def _readable(self, fd):
        """Waits until fd is readable, or raises ClosedError when the
        object is closed meanwhile (from this loop or another thread)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def ready():
            if not fut.done():
                fut.set_result(None)
        waiting = self.__dict__.setdefault("_async_waits", set())
        entry = (loop, fut)
        waiting.add(entry)
        loop.add_reader(fd, ready)
        try:
            if self._ptr == ffi.NULL:
                raise ClosedError(-5, "%s closed" % type(self).__name__)
            await fut
        finally:
            loop.remove_reader(fd)
            waiting.discard(entry)

    def close(self):
        # Coroutines waiting for the descriptor hear of it first: the
        # descriptor goes with the object.
        for loop, fut in list(self.__dict__.get("_async_waits", ())):
            def wake(f=fut):
                if not f.done():
                    f.set_exception(ClosedError(-5, "closed"))
            try:
                loop.call_soon_threadsafe(wake)
            except RuntimeError:        # that loop is closed already
                pass
        super().close()

    async def _take_async(self, fd):
        while True:
            item = self._take_once(0)
            if item is not None:
                return item
            await self._readable(fd)


class Receiver(_Pull):
    """A receiver of handle (str), in pull mode: messages wait in a
    bounded queue (queue_max messages, queue_max_bytes bytes; defaults
    4096 and 8 MiB) until taken.  At the bound the receiver stops reading
    its senders, who then meet their high-water marks.

    Take them with recv() (blocking), recv_message(), `for data in rx`,
    `async for data in rx` or `await rx.recv_async()`; fileno() is a
    descriptor readable while messages wait.
    Keywords: max_message (bytes), listen_address, register_address,
    allowed_ports (str, broker mode), queue_max, queue_max_bytes, and the
    security keywords of Epm.
    Raises: InvalidArgumentError, AddressError, NoPortError,
    NotConnectedError, BrokerError, AuthError, TimeoutError,
    PermissionError, SystemCallError, OutOfMemoryError.
    """
    _requests = False

    def __init__(self, handle, epm=None, *, max_message=None,
                 listen_address=None, register_address=None,
                 allowed_ports=None, queue_max=None, queue_max_bytes=None,
                 **security):
        super().__init__()
        o = ffi.new("struct sipc_receiver_opts *")
        lib.sipc_receiver_opts_init_size(
            o, ffi.sizeof("struct sipc_receiver_opts"))
        keep = []
        for k, v in (("listen_address", listen_address),
                     ("register_address", register_address),
                     ("allowed_ports", allowed_ports)):
            if v is not None:
                b = ffi.new("char[]", v.encode())
                keep.append(b)
                setattr(o, k, b)
        if max_message is not None:
            o.max_message = max_message
        if queue_max is not None:
            o.queue_max = queue_max
        if queue_max_bytes is not None:
            o.queue_max_bytes = queue_max_bytes
        o.pull_requests = 1 if self._requests else 0
        security["_keep"] = keep
        _security(o.security, security)
        out = ffi.new("sipc_receiver **")
        rc = lib.sipc_receiver_new(handle.encode(), _epm_ptr(epm), o, out)
        if rc:
            _raise(rc)
        self._ptr = out[0]
        self.handle = handle
        self._buf = collections.deque()
        self._into = threading.local()     # buffers of _take_many

    @property
    def endpoint(self):
        """The registered endpoint (str): "127.0.0.1:40123",
        "unix:/path"."""
        buf = ffi.new("char[]", 256)
        ptr = self._enter()
        try:
            rc = lib.sipc_receiver_endpoint(ptr, buf, 256)
        finally:
            self._leave()
        if rc:
            _raise(rc)
        return ffi.string(buf).decode()

    def stats(self):
        """Counts so far (dict): messages, bytes, gaps, duplicates,
        senders, requests."""
        st = ffi.new("struct sipc_receiver_stats *")
        ptr = self._enter()
        try:
            lib.sipc_receiver_stats_size(
                ptr, st, ffi.sizeof("struct sipc_receiver_stats"))
        finally:
            self._leave()
        return {k: getattr(st, k) for k in (
            "messages", "bytes", "gaps", "duplicates", "senders",
            "requests")}

    def fileno(self):
        """A descriptor (int) readable exactly while messages wait; the
        receiver's: do not read or close it."""
        ptr = self._enter()
        try:
            fd = lib.sipc_receiver_fd(ptr)
        finally:
            self._leave()
        if fd < 0:
            _raise(fd)
        return fd

    # One message, copied into bytes: the common, fastest case.
    def _take(self, ptr, ms):
        mp = ffi.new("struct sipc_message **")
        rc = lib.sipc_receiver_recv(ptr, mp, ms)
        if rc:
            if rc == -4:
                return None
            _raise(rc)
        m = mp[0]
        data = ffi.buffer(m.data, m.len)[:]
        lib.sipc_message_free(m)
        return data

    def _take_many(self, ptr, ms, limit):
        """Up to limit messages as bytes, the first waiting ms: one call
        into the library copies a batch into one buffer, split here."""
        into = getattr(self._into, "b", None)
        if into is None:        # one per thread: the library writes it
            into = self._into.b = (ffi.new("char[]", _INTO),
                                   ffi.new("size_t[]", _BATCH))
        buf, lens = into
        n = lib.sipc_receiver_recv_into(ptr, buf, _INTO, lens,
                                        min(limit, _BATCH), ms)
        if n > 0:
            ln = ffi.unpack(lens, n)
            blob = ffi.buffer(buf, sum(ln))[:]
            if n == 1:
                return [blob]
            out = []
            off = 0
            for x in ln:
                out.append(blob[off:off + x])
                off += x
            return out
        if n == -11:            # larger than the buffer: on its own
            one = self._take(ptr, 0)
            return [one] if one is not None else []
        if n == -4:
            return []
        _raise(n)

    def _fill(self, timeout):
        """Queues in self._buf the messages waiting, waiting up to
        timeout s (None: forever) for the first.  Raises TimeoutError,
        ClosedError."""
        left = _ms(timeout)
        while True:
            step = _SLICE_MS if left < 0 or left > _SLICE_MS else left
            ptr = self._enter()
            try:
                got = self._take_many(ptr, step, _BATCH)
            finally:
                self._leave()
            if got:
                self._buf.extend(got)
                return
            if left >= 0:
                left -= step
                if left <= 0:
                    raise TimeoutError(-4, "nothing within %s s" % timeout)

    def recv(self, timeout=None):
        """The next message's data (bytes), waiting up to timeout s (None:
        forever; 0: not at all).
        Raises: TimeoutError (nothing came), ClosedError."""
        if not self._buf:
            self._fill(timeout)
        return self._buf.popleft()

    def recv_many(self, limit=_BATCH, timeout=None):
        """Up to limit messages (list of bytes) that wait now, waiting up
        to timeout s for the first.  Raises TimeoutError, ClosedError."""
        if not self._buf:
            self._fill(timeout)
        buf = self._buf
        return [buf.popleft() for _ in range(min(limit, len(buf)))]

    def recv_message(self, timeout=None, copy=True):
        """The next message as a Message (data, sender_id, seq, handle),
        waiting up to timeout s.  copy=False: data is a read-only
        memoryview over the library's buffer (no copy), valid as long as
        any view of it lives.  Raises TimeoutError, ClosedError."""
        if self._buf:
            raise InvalidArgumentError(
                -1, "recv_message() after a partly consumed iteration")
        mp = ffi.new("struct sipc_message **")
        left = _ms(timeout)
        while True:
            step = _SLICE_MS if left < 0 or left > _SLICE_MS else left
            ptr = self._enter()
            try:
                rc = lib.sipc_receiver_recv(ptr, mp, step)
            finally:
                self._leave()
            if rc == 0:
                break
            if rc != -4:
                _raise(rc)
            if left >= 0:
                left -= step
                if left <= 0:
                    raise TimeoutError(-4, "nothing within %s s" % timeout)
        m = mp[0]
        handle = ffi.string(m.handle).decode()
        if copy:
            data = ffi.buffer(m.data, m.len)[:]
            msg = Message(data, m.sender_id, m.seq, handle)
            lib.sipc_message_free(m)
            return msg
        # The buffer holds d, which frees m when it goes.
        d = ffi.gc(ffi.cast("char *", m.data), _free_later(m))
        view = memoryview(ffi.buffer(d, m.len)).toreadonly()
        return Message(view, m.sender_id, m.seq, handle)

    def __iter__(self):
        """Yields each message's data (bytes) as it comes, until the
        receiver is closed (from another thread)."""
        buf = self._buf
        pop = buf.popleft
        while True:
            while buf:
                yield pop()
            try:
                self._fill(None)
            except ClosedError:
                return

    async def recv_async(self):
        """The next message's data (bytes), on asyncio: waits through the
        running loop's add_reader on fileno(), in no thread."""
        if self._buf:
            return self._buf.popleft()
        fd = self.fileno()
        while True:
            ptr = self._enter()
            try:
                got = self._take_many(ptr, 0, _BATCH)
            finally:
                self._leave()
            if got:
                self._buf.extend(got[1:])
                return got[0]
            await self._readable(fd)

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await self.recv_async()
        except ClosedError:
            raise StopAsyncIteration

    def _close_ptr(self, ptr):
        lib.sipc_receiver_close(ptr)


# ---- Requests and replies ---------------------------------------------------

class Request:
    """A request a Responder took: data (bytes), sender_id and seq (int).
    Answer it exactly once, from any thread: reply(data), fail(text) or
    drop().  A request never answered is dropped when it is garbage
    collected or its `with` block ends (the requester gets
    NoReplyError)."""
    __slots__ = ("data", "sender_id", "seq", "_req")

    def __init__(self, req):
        m = lib.sipc_request_message(req)
        self._req = [req]       # list.pop: taken once, atomically
        self.data = ffi.buffer(m.data, m.len)[:]
        self.sender_id = m.sender_id
        self.seq = m.seq

    def _own(self):
        try:
            return self._req.pop()
        except IndexError:
            raise InvalidArgumentError(-1, "request already answered") \
                from None

    def reply(self, data):
        """Answers with data (bytes-like).  Raises TooBigError (more than
        1 GiB: the requester gets an error instead), OutOfMemoryError,
        InvalidArgumentError (answered already)."""
        req = self._own()
        if isinstance(data, bytes):
            rc = lib.sipc_request_reply(req, data, len(data))
        else:
            d, n = _cbytes(data)
            rc = lib.sipc_request_reply(req, d, n)
        if rc:
            _raise(rc)

    def fail(self, text=""):
        """Answers with an error: the requester raises RemoteError with
        text (str, at most 512 bytes are sent)."""
        lib.sipc_request_fail(self._own(), text.encode())

    def drop(self):
        """Answers nothing: the requester raises NoReplyError at once."""
        lib.sipc_request_free(self._own())

    @property
    def answered(self):
        """True once reply(), fail() or drop() was called."""
        return not self._req

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._req:
            self.drop()

    def __del__(self):
        box = getattr(self, "_req", None)
        if box:
            try:
                lib.sipc_request_free(box.pop())
            except IndexError:
                pass


class Responder(Receiver):
    """A responder of handle (str): a receiver whose requests wait in a
    queue until taken (per requester connection, at most 16,384
    unanswered before the responder stops reading it).

    Take them with recv_request() (blocking), `for req in responder`,
    `async for req in responder` or `await recv_request_async()`, and
    answer each (Request.reply/fail/drop), or let serve() call a function
    per request.  request_fileno() is readable while requests wait.
    Keywords as Receiver.
    """
    _requests = True

    def _take(self, ptr, ms):
        rp = ffi.new("struct sipc_request **")
        rc = lib.sipc_receiver_recv_request(ptr, rp, ms)
        if rc:
            if rc == -4:
                return None
            _raise(rc)
        return Request(rp[0])

    def request_fileno(self):
        """A descriptor (int) readable exactly while requests wait."""
        ptr = self._enter()
        try:
            fd = lib.sipc_receiver_request_fd(ptr)
        finally:
            self._leave()
        if fd < 0:
            _raise(fd)
        return fd

    def recv_request(self, timeout=None):
        """The next Request, waiting up to timeout s (None: forever).
        Raises TimeoutError, ClosedError."""
        return self._take_wait(timeout)

    async def recv_request_async(self):
        """The next Request, on asyncio (add_reader on
        request_fileno())."""
        return await self._take_async(self.request_fileno())

    def serve(self, handler, count=None, timeout=None):
        """Answers requests with handler(data: bytes) -> bytes-like, count
        of them (None: until closed or timeout s pass without one).  An
        exception in handler answers with fail(str(exception)).  Returns
        how many were answered."""
        n = 0
        rp = ffi.new("struct sipc_request **")
        recv = lib.sipc_receiver_recv_request
        reply = lib.sipc_request_reply
        message = lib.sipc_request_message
        buf = ffi.buffer
        total = _ms(timeout)
        while count is None or n < count:
            left = total
            while True:                 # in slices, as _take_wait()
                step = _SLICE_MS if left < 0 or left > _SLICE_MS else left
                try:
                    ptr = self._enter()
                except ClosedError:
                    return n
                try:
                    rc = recv(ptr, rp, step)
                finally:
                    self._leave()
                if rc == 0:
                    break
                if rc != -4:
                    if rc == ClosedError.code:
                        return n
                    _raise(rc)
                if left >= 0:
                    left -= step
                    if left <= 0:
                        return n
            req = rp[0]
            m = message(req)
            try:
                out = handler(buf(m.data, m.len)[:])
            except Exception as e:      # the requester hears of it
                lib.sipc_request_fail(req, str(e).encode())
            else:
                if out.__class__ is bytes:
                    rc = reply(req, out, len(out))
                else:
                    try:
                        d, ln = _cbytes(out)
                    except TypeError as e:   # answered all the same
                        lib.sipc_request_fail(req, str(e).encode())
                        raise
                    rc = reply(req, d, ln)
                if rc:
                    _raise(rc)
            n += 1
        return n

    def __iter__(self):
        while True:
            try:
                yield self.recv_request(None)
            except ClosedError:
                return

    async def __anext__(self):
        try:
            return await self.recv_request_async()
        except ClosedError:
            raise StopAsyncIteration


def _reply_value(r):
    """bytes of a sipc_reply, or the exception its error is."""
    err = r.error
    if err == 0:
        return ffi.buffer(r.data, r.len)[:], None
    text = ffi.buffer(r.data, r.len)[:].decode("utf-8", "replace")
    if err == RemoteError.code:
        return None, RemoteError(err, "", text)
    return None, _ERRORS.get(err, Error)(err, "request: %s" % (
        ffi.string(lib.sipc_strerror(err)).decode()))


class Requester(_Object):
    """A requester of handle (str): each request goes to one responder of
    the handle (the least busy), never resent unless idempotent=True
    allows one retry elsewhere when the first responder went away.

    request() blocks (GIL released); request_async() is a coroutine on
    asyncio, driven by the descriptor the library makes readable while
    answers wait (no thread).  Keywords: max_reply (bytes), heartbeat (s),
    compress (bool), and the security keywords of Epm.
    Raises: InvalidArgumentError, AuthError, AddressError,
    PermissionError, SystemCallError, OutOfMemoryError.
    """

    def __init__(self, handle, epm=None, *, max_reply=None, heartbeat=None,
                 compress=False, **security):
        super().__init__()
        o = ffi.new("struct sipc_requester_opts *")
        lib.sipc_requester_opts_init_size(
            o, ffi.sizeof("struct sipc_requester_opts"))
        if max_reply is not None:
            o.max_reply = max_reply
        if heartbeat is not None:
            o.heartbeat_ms = _ms(heartbeat)
        o.compress = 1 if compress else 0
        security["_keep"] = []
        _security(o.security, security)
        out = ffi.new("sipc_requester **")
        rc = lib.sipc_requester_new(handle.encode(), _epm_ptr(epm), o, out)
        if rc:
            _raise(rc)
        self._ptr = out[0]
        self.handle = handle
        self._pending = {}
        self._reader = None
        self._tls = threading.local()

    def request(self, data, timeout=5.0, idempotent=False):
        """Sends data (bytes-like) to one responder and returns its reply
        (bytes), waiting at most timeout s (> 0).
        Raises: NoResponderError, TimeoutError, PeerGoneError,
        NoReplyError, RemoteError (.text: the responder's), TooBigError,
        AuthError, TLSError, ClosedError, InvalidArgumentError."""
        if data.__class__ is bytes:
            d, n = data, len(data)
        else:
            d, n = _cbytes(data)
        rp = getattr(self._tls, "rp", None)
        if rp is None:                   # one per thread
            rp = self._tls.rp = ffi.new("struct sipc_reply **")
        ptr = self._enter()
        try:
            rc = lib.sipc_request(ptr, d, n, _ms(timeout) or 1,
                                  _REQUEST_IDEMPOTENT if idempotent else 0,
                                  rp)
        finally:
            self._leave()
        r = rp[0]
        if r == ffi.NULL:
            _raise(rc)
        value, exc = _reply_value(r)
        lib.sipc_reply_free(r)
        if exc is not None:
            raise exc
        return value

    def fileno(self):
        """A descriptor (int) readable while answers of request_async()
        wait."""
        ptr = self._enter()
        try:
            fd = lib.sipc_requester_fd(ptr)
        finally:
            self._leave()
        if fd < 0:
            _raise(fd)
        return fd

    def _collect(self):
        """On the loop: hands every answer waiting to its future."""
        ptr = self._enter()
        idp = ffi.new("uint64_t *")
        rp = ffi.new("struct sipc_reply **")
        try:
            while lib.sipc_requester_collect(ptr, idp, rp, 0) == 0:
                r = rp[0]
                value, exc = _reply_value(r)
                lib.sipc_reply_free(r)
                fut = self._pending.pop(idp[0], None)
                if fut is None or fut.done():
                    continue
                if exc is not None:
                    fut.set_exception(exc)
                else:
                    fut.set_result(value)
        finally:
            self._leave()
        if not self._pending and self._reader is not None:
            self._reader[0].remove_reader(self._reader[1])
            self._reader = None

    async def request_async(self, data, timeout=5.0, idempotent=False):
        """As request(), as a coroutine on the running asyncio loop.
        Cancelling it cancels the request.  Raises as request()."""
        loop = asyncio.get_running_loop()
        if isinstance(data, bytes):
            d, n = data, len(data)
        else:
            d, n = _cbytes(data)
        idp = ffi.new("uint64_t *")
        ptr = self._enter()
        try:
            rc = lib.sipc_request_start(
                ptr, d, n, _ms(timeout) or 1,
                _REQUEST_IDEMPOTENT if idempotent else 0, idp)
        finally:
            self._leave()
        if rc:
            _raise(rc)
        fut = loop.create_future()
        rid = idp[0]
        self._pending[rid] = fut
        if self._reader is None:
            fd = self.fileno()
            loop.add_reader(fd, self._collect)
            self._reader = (loop, fd)
        try:
            return await fut
        except asyncio.CancelledError:
            if self._pending.pop(rid, None) is not None and \
                    self._ptr != ffi.NULL:
                lib.sipc_request_cancel(self._ptr, rid)
            raise

    def close(self):
        if self._reader is not None:
            try:
                self._reader[0].remove_reader(self._reader[1])
            except Exception:
                pass
            self._reader = None
        super().close()

    def _close_ptr(self, ptr):
        lib.sipc_requester_close(ptr)
