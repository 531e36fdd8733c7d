"""The sipc package against the tree's libsipc and its C tools: Python
sender to a C receiver and back, request/reply with timeouts and every
error the package maps, asyncio through the pull-mode descriptors, the
GIL released while the library waits, zero-copy messages, closing from
another thread, the README's example."""
import asyncio
import os
import re
import subprocess
import sys
import threading
import time

import pytest

import sipc
import sipc.aio
from conftest import TREE, bin_path


def c_recv(procs, handle, count, *extra):
    """`sipc recv` (C) started, with its output piped."""
    return procs.start(bin_path("sipc"), "recv", handle, "--count",
                       str(count), *extra, stdout=subprocess.PIPE)


def wait_registered(handle, epm=None, timeout=10.0):
    with sipc.Sender(handle, epm) as tx:
        tx.wait_receivers(1, timeout)


# ---- Messages across languages ---------------------------------------------

@pytest.mark.parametrize("mode", ["local", "broker"])
def test_python_sender_c_receiver(procs, request, mode):
    extra = []
    epm = None
    if mode == "broker":
        addr = request.getfixturevalue("broker")
        extra = ["--broker", addr, "--listen", "127.0.0.1"]
        epm = sipc.Epm(addr)
    rx = c_recv(procs, "py2c", 3, *extra)
    with sipc.Sender("py2c", epm) as tx:
        tx.wait_receivers(1, 10)
        tx.send(b"one")
        tx.send(bytearray(b"two"))
        tx.send(memoryview(b"xthree")[1:])
        tx.flush(5)
    out, _ = rx.communicate(timeout=10)
    assert rx.returncode == 0
    assert out == b"one\ntwo\nthree\n"
    if epm:
        epm.close()


@pytest.mark.parametrize("mode", ["local", "broker"])
def test_c_sender_python_receiver(request, mode):
    env = dict(os.environ)
    epm = None
    if mode == "broker":
        addr = request.getfixturevalue("broker")
        env["SIPC_BROKER"] = addr
        epm = sipc.Epm(addr)
    kw = {"listen_address": "127.0.0.1"} if epm else {}
    with sipc.Receiver("c2py", epm, **kw) as rx:
        subprocess.run([bin_path("sipc"), "send", "c2py",
                        "--wait-receivers", "1", "alpha", "beta", "gamma"],
                       env=env, check=True, timeout=20)
        got = [rx.recv_message(5) for _ in range(3)]
        assert [m.data for m in got] == [b"alpha", b"beta", b"gamma"]
        assert [m.seq for m in got] == [1, 2, 3]
        assert len({m.sender_id for m in got}) == 1
        assert got[0].handle == "c2py"
        with pytest.raises(sipc.TimeoutError):
            rx.recv(timeout=0)
    if epm:
        epm.close()


def test_iteration_and_zero_copy():
    with sipc.Receiver("it") as rx, sipc.Sender("it") as tx:
        tx.wait_receivers(1)
        n = tx.send_many(b"%d" % i for i in range(1000))
        assert n == 1000
        got = []
        for data in rx:
            got.append(int(data))
            if len(got) == 1000:
                break
        assert got == list(range(1000))
        big = os.urandom(1 << 20)
        tx.send(big)
        m = rx.recv_message(5, copy=False)
        assert isinstance(m.data, memoryview) and m.data.readonly
        view = m.data[10:20]
        del m                   # the slice keeps the buffer alive
        assert bytes(view) == big[10:20]
        assert rx.stats()["messages"] == 1001


def test_receiver_options_and_fd():
    with pytest.raises(sipc.InvalidArgumentError) as e:
        sipc.Receiver("bad", queue_max=0)
    assert e.value.code == -1 and "queue_max" in e.value.detail
    with pytest.raises(sipc.InvalidArgumentError):
        sipc.Receiver("a\nb")
    with pytest.raises(TypeError):
        with sipc.Sender("s") as tx:
            tx.send("text")
    with pytest.raises(TypeError):
        sipc.Sender("s", hwm=5)         # a misspelt option is no option
    with sipc.Receiver("fd") as rx, sipc.Sender("fd") as tx:
        tx.wait_receivers(1)
        import select
        assert select.select([rx], [], [], 0)[0] == []
        tx.send(b"x")
        assert select.select([rx], [], [], 5)[0] == [rx]
        assert rx.recv(0) == b"x"
        assert select.select([rx], [], [], 0)[0] == []
    with pytest.raises(sipc.ClosedError):
        rx.recv(0)


def test_error_classes_one_to_one():
    codes = set()
    for code in range(-1, -24, -1):
        cls = sipc.error_class(code)
        assert cls is not sipc.Error and issubclass(cls, sipc.Error)
        assert cls.code == code
        codes.add(cls)
    assert len(codes) == 23
    assert issubclass(sipc.TimeoutError, TimeoutError)
    assert issubclass(sipc.NoResponderError, sipc.Error)
    e = sipc.ConnectError(-7, "refused")
    assert e.name == "cannot connect" and str(e) == "cannot connect: refused"


def test_broker_refused():
    with pytest.raises(sipc.ConnectError):
        sipc.Epm("127.0.0.1:1", connect_timeout=1.0)
    with pytest.raises(sipc.AddressError):
        sipc.Epm("no such host name.invalid:x", connect_timeout=1.0)


# ---- Request/reply ---------------------------------------------------------

def test_request_reply_and_errors():
    with sipc.Responder("calc") as rs, sipc.Requester("calc") as rq:
        def handler(data):
            if data == b"fail":
                raise ValueError("cannot")
            return b"=" + data
        t = threading.Thread(target=rs.serve, args=(handler, 3))
        t.start()
        assert rq.request(b"1+1", timeout=5) == b"=1+1"
        with pytest.raises(sipc.RemoteError) as e:
            rq.request(b"fail", timeout=5)
        assert e.value.text == "cannot" and e.value.code == -23
        assert rq.request(memoryview(b"2"), timeout=5) == b"=2"
        t.join(10)
        # Taken and dropped: NoReplyError; never taken: TimeoutError.
        t = threading.Thread(
            target=lambda: rs.recv_request(5).drop())
        t.start()
        with pytest.raises(sipc.NoReplyError):
            rq.request(b"x", timeout=5)
        t.join(10)
        t0 = time.monotonic()
        with pytest.raises(sipc.TimeoutError):
            rq.request(b"x", timeout=0.3)
        assert 0.25 < time.monotonic() - t0 < 3
        # A request left in the queue is dropped when its responder goes.
    with sipc.Requester("nobody") as rq:
        with pytest.raises(sipc.NoResponderError):
            rq.request(b"x", timeout=2)


def test_python_requester_c_responder(procs):
    rp = procs.start(bin_path("sipc"), "reply", "echo")
    with sipc.Requester("echo") as rq:
        t0 = time.monotonic()
        while True:
            try:
                assert rq.request(b"ping", timeout=1) == b"ping"
                break
            except sipc.NoResponderError:
                assert time.monotonic() - t0 < 10
                time.sleep(0.05)
    rp.terminate()
    rp.wait(5)


def test_c_requester_python_responder():
    with sipc.Responder("pyrsp") as rs:
        t = threading.Thread(target=rs.serve,
                             args=(lambda d: d.upper(), 1))
        t.start()
        out = subprocess.run([bin_path("sipc"), "request", "pyrsp",
                              "hello", "--timeout", "5000"],
                             capture_output=True, timeout=20)
        t.join(10)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == b"HELLO"


def test_gil_released_while_waiting():
    """A request that waits 0.5 s inside the library: another thread runs
    Python meanwhile."""
    with sipc.Responder("slow") as rs, sipc.Requester("slow") as rq:
        done = threading.Event()

        def ask():
            with pytest.raises(sipc.TimeoutError):
                rq.request(b"x", timeout=0.5)
            done.set()
        t = threading.Thread(target=ask)
        t.start()
        time.sleep(0.05)
        n = 0
        while not done.is_set():
            n += 1
        t.join()
        assert n > 10000, n
        assert rs.stats()["requests"] >= 1


def test_close_wakes_a_waiting_thread():
    rx = sipc.Receiver("wake")
    res = []
    t = threading.Thread(target=lambda: res.append(list(rx)))
    t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    rx.close()
    t.join(5)
    assert not t.is_alive() and res == [[]]
    assert time.monotonic() - t0 < 1
    assert rx.closed


def test_close_while_sending():
    """close() from one thread while another sends as fast as it can:
    the sender raises ClosedError, nothing is freed under it."""
    with sipc.Receiver("busy") as rx:
        tx = sipc.Sender("busy", policy="drop", linger=0)
        tx.wait_receivers(1)
        res = []

        def flood():
            try:
                while True:
                    tx.send(b"x" * 64)
            except sipc.ClosedError:
                res.append("closed")
        t = threading.Thread(target=flood)
        t.start()
        time.sleep(0.2)
        t0 = time.monotonic()
        tx.close()
        t.join(5)
        assert res == ["closed"] and time.monotonic() - t0 < 2
        assert rx.stats()["messages"] > 0


# ---- asyncio ---------------------------------------------------------------

def test_asyncio_receive_and_request():
    async def main():
        with sipc.Receiver("ev") as rx, sipc.Sender("ev") as tx, \
                sipc.aio.Responder("ev.rpc") as rs, \
                sipc.aio.Requester("ev.rpc") as rq:
            tx.wait_receivers(1)
            serving = asyncio.ensure_future(
                rs.serve(lambda d: b"re:" + d, 100))
            loop = asyncio.get_running_loop()
            for i in range(100):
                loop.call_later(0.001 * i, tx.send, b"%d" % i)
            got = []
            async for data in rx:
                got.append(data)
                if len(got) == 100:
                    break
            replies = await asyncio.gather(
                *(rq.request(d, timeout=5) for d in got))
            assert replies == [b"re:%d" % i for i in range(100)]
            assert await serving == 100
            # Errors come through the future too; a cancelled request
            # is cancelled in the library.
            with pytest.raises(sipc.TimeoutError):
                await rq.request(b"late", timeout=0.2)
            task = asyncio.ensure_future(rq.request(b"c", timeout=5))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(rx.recv_async(), 0.1)
            return threading.active_count()
    before = threading.active_count()
    during = asyncio.run(main())
    # No thread per object: only the EPM's I/O thread.
    assert during <= before + 1


def test_asyncio_close_ends_iteration():
    """Closing a receiver that an `async for` waits on ends the loop."""
    async def main():
        rx = sipc.Receiver("aclose")
        got = []

        async def consume():
            async for data in rx:
                got.append(data)
        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.1)
        rx.close()
        await asyncio.wait_for(task, 2)
        return got
    assert asyncio.run(main()) == []


# ---- README ----------------------------------------------------------------

def test_readme_example():
    """The README's "From Python" example, as written there."""
    with open(os.path.join(TREE, "README.md")) as f:
        text = f.read()
    m = re.search(r"## From Python\n.*?```python\n(.*?)```", text, re.S)
    assert m, "README has no 'From Python' example"
    out = subprocess.run([sys.executable, "-c", m.group(1)],
                         capture_output=True, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(
                             os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr.decode()
    assert b"reply: b'HELLO'" in out.stdout


# ---- Installing -------------------------------------------------------------

def test_pip_install_offline(tmp_path):
    """pip installs the package with no network and no build isolation
    (the setuptools already installed), as the README says; the
    installed copy works."""
    import shutil
    src = tmp_path / "src"
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    shutil.copytree(pkg, src, ignore=shutil.ignore_patterns(
        "tests", "bench", "build", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-build-isolation",
         "--no-index", "--no-deps", "--target", str(target), str(src)],
        capture_output=True, timeout=120)
    if out.returncode != 0 and b"No module named pip" in out.stderr:
        pytest.skip("pip is not installed (python3-pip)")
    assert out.returncode == 0, out.stderr.decode()
    code = ("import sipc, sys\n"
            "assert sipc.__file__.startswith(sys.argv[1]), sipc.__file__\n"
            "with sipc.Receiver('pip') as rx, sipc.Sender('pip') as tx:\n"
            "    tx.wait_receivers(1)\n"
            "    tx.send(b'installed')\n"
            "    print(rx.recv(5).decode())\n")
    env = dict(os.environ, PYTHONPATH=str(target))
    out = subprocess.run([sys.executable, "-c", code, str(target)],
                         capture_output=True, timeout=60, env=env,
                         cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.strip() == b"installed"


def test_password_mode():
    """Security keywords reach the library: the same password talks, a
    wrong one never becomes a receiver."""
    with sipc.Receiver("pw", password="s3cret") as rx, \
            sipc.Sender("pw", password="s3cret") as tx:
        tx.wait_receivers(1, 10)
        tx.send(b"secret")
        assert rx.recv(5) == b"secret"
    with sipc.Receiver("pw2", password="right") as rx, \
            sipc.Sender("pw2", password="wrong", linger=0) as tx:
        with pytest.raises(sipc.TimeoutError):
            tx.wait_receivers(1, 1.0)
    with pytest.raises(sipc.InvalidArgumentError):
        sipc.Sender("pw3", password="x", salt="not hex")
