"""asyncio flavours of sipc's objects, in the manner of zmq.asyncio: the
same classes, whose waiting methods are coroutines driven by the running
loop (add_reader on the library's descriptors; no thread per object).

Closing is not a coroutine: use `with`, or close().

    rq = sipc.aio.Requester("calc")
    reply = await rq.request(b"1+1", timeout=2.0)

    async for data in sipc.aio.Receiver("events"): ...
"""
import sipc


class Receiver(sipc.Receiver):
    """sipc.Receiver whose recv() is a coroutine (no timeout: wrap it in
    asyncio.wait_for)."""

    async def recv(self):
        """The next message's data (bytes).  Raises ClosedError."""
        return await self.recv_async()


class Responder(sipc.Responder):
    """sipc.Responder whose recv_request() and serve() are coroutines."""

    async def recv_request(self):
        """The next sipc.Request.  Raises ClosedError."""
        return await self.recv_request_async()

    async def serve(self, handler, count=None):
        """Answers requests with handler(data: bytes) -> bytes-like (a
        plain function or a coroutine function), count of them (None:
        until closed).  An exception answers with fail(str(exception)).
        Returns how many were answered."""
        n = 0
        while count is None or n < count:
            try:
                req = await self.recv_request_async()
            except sipc.ClosedError:
                break
            try:
                out = handler(req.data)
                if hasattr(out, "__await__"):
                    out = await out
            except Exception as e:
                req.fail(str(e))
            else:
                req.reply(out)
            n += 1
        return n


class Requester(sipc.Requester):
    """sipc.Requester whose request() is a coroutine."""

    async def request(self, data, timeout=5.0, idempotent=False):
        """The reply (bytes) to data, as sipc.Requester.request() gives
        it, raising the same errors; cancelling cancels the request."""
        return await self.request_async(data, timeout, idempotent)
