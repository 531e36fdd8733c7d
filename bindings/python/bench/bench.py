"""bench.py - sipc from Python against pyzmq, in the same run: the Python
rows of `make bench`.

    python3 bench.py --build DIR [--rounds N] [--count N] [--seconds S]
                     [--out FILE] [--quick]

Cases, each with both peers in Python processes of their own on this
machine (sipc: the local registry, Unix sockets; pyzmq: ipc://):

  1->1 64 B     one sender, one receiver, messages/s counted by the
                receiver from its first message to its last; the sender
                calls send() once per message (Sender.send, socket.send),
                the receiver iterates (`for data in rx`, socket.recv()).
  request RTT   one request at a time (Requester.request against a
                Responder serving in Python; REQ/REP), median microseconds
                and requests/s.

Rounds alternate sipc and pyzmq so that drift hits both alike; each
figure is the median of its rounds, each ratio the median of the
per-round ratios (target: sipc at least 1.5x pyzmq).  Every child is
bounded in time and reaped by pid.  Prints a table and writes JSON
(--out).  Exit 0 when everything ran, 1 otherwise.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
MSG = b"x" * 64
TARGET = 1.5


# ---- Children: one role each, one JSON line on stdout -----------------------

def sipc_recv(handle, count):
    import sipc
    with sipc.Receiver(handle) as rx:
        print("ready", flush=True)
        it = iter(rx)
        next(it)
        t0 = time.perf_counter()
        n = 1
        for _ in it:
            n += 1
            if n == count:
                break
        t1 = time.perf_counter()
    return {"n": n - 1, "secs": t1 - t0}


def sipc_send(handle, count):
    import sipc
    with sipc.Sender(handle, linger=10.0) as tx:
        tx.wait_receivers(1, 10.0)
        send = tx.send
        m = MSG
        for _ in range(count):
            send(m)
        tx.flush(30.0)
    return {}


def sipc_serve(handle, count):
    import sipc
    with sipc.Responder(handle) as rs:
        print("ready", flush=True)
        rs.serve(lambda d: d, timeout=30.0)
    return {}


def sipc_ask(handle, seconds):
    import sipc
    with sipc.Requester(handle) as rq:
        t_end = time.monotonic() + 10.0
        while True:                       # the responder may be starting
            try:
                rq.request(MSG, timeout=1.0)
                break
            except sipc.NoResponderError:
                if time.monotonic() > t_end:
                    raise
                time.sleep(0.01)
        return _ask_loop(lambda: rq.request(MSG, timeout=5.0), seconds)


def _ask_loop(ask, seconds):
    lat = []
    pc = time.perf_counter
    t_end = pc() + seconds
    t0 = pc()
    while True:
        a = pc()
        ask()
        b = pc()
        lat.append(b - a)
        if b > t_end:
            break
    return {"n": len(lat), "secs": pc() - t0,
            "median_us": statistics.median(lat) * 1e6}


def zmq_recv(addr, count):
    import zmq
    ctx = zmq.Context()
    s = ctx.socket(zmq.PULL)
    s.bind(addr)
    print("ready", flush=True)
    recv = s.recv
    recv()
    t0 = time.perf_counter()
    for _ in range(count - 1):
        recv()
    t1 = time.perf_counter()
    s.close(0)
    ctx.term()
    return {"n": count - 1, "secs": t1 - t0}


def zmq_send(addr, count):
    import zmq
    ctx = zmq.Context()
    s = ctx.socket(zmq.PUSH)
    s.setsockopt(zmq.LINGER, 10000)
    s.connect(addr)
    send = s.send
    m = MSG
    for _ in range(count):
        send(m)
    s.close()
    ctx.term()
    return {}


def zmq_serve(addr, count):
    import zmq
    ctx = zmq.Context()
    s = ctx.socket(zmq.REP)
    s.setsockopt(zmq.RCVTIMEO, 30000)
    s.bind(addr)
    print("ready", flush=True)
    try:
        while True:
            s.send(s.recv())
    except zmq.Again:
        pass
    s.close(0)
    ctx.term()
    return {}


def zmq_ask(addr, seconds):
    import zmq
    ctx = zmq.Context()
    s = ctx.socket(zmq.REQ)
    s.connect(addr)

    def ask():
        s.send(MSG)
        s.recv()
    ask()
    r = _ask_loop(ask, seconds)
    s.close(0)
    ctx.term()
    return r


ROLES = {f.__name__: f for f in (sipc_recv, sipc_send, sipc_serve, sipc_ask,
                                 zmq_recv, zmq_send, zmq_serve, zmq_ask)}


# ---- The driver -------------------------------------------------------------

class Kids:
    """Children of one measurement, killed and reaped by pid."""

    def __init__(self, env):
        self.env = env
        self.kids = []

    def start(self, role, where, n, cpu=None):
        pin = None
        if cpu is not None:
            def pin():
                os.sched_setaffinity(0, {cpu})
        p = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--role", role,
             "--where", where, "--n", str(n)],
            stdout=subprocess.PIPE, env=self.env, text=True,
            preexec_fn=pin)
        self.kids.append(p)
        return p

    def ready(self, p, timeout=10.0):
        line = p.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError("child did not start")

    def result(self, p, timeout=60.0):
        out, _ = p.communicate(timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError("child exited %d" % p.returncode)
        return json.loads(out.strip().splitlines()[-1])

    def reap(self):
        for p in self.kids:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.kids = []


def measure_tput(kids, impl, count, tmp, rnd):
    if impl == "sipc":
        where = "tput%d" % rnd
    else:
        where = "ipc://%s/zmq-tput%d" % (tmp, rnd)
    rx = kids.start(impl + "_recv", where, count)
    kids.ready(rx)
    tx = kids.start(impl + "_send", where, count)
    r = kids.result(rx)
    kids.result(tx)
    return r["n"] / r["secs"]


def measure_rtt(kids, impl, seconds, tmp, rnd):
    if impl == "sipc":
        where = "rtt%d" % rnd
    else:
        where = "ipc://%s/zmq-rtt%d" % (tmp, rnd)
    # As the C round trips of make bench: every process on one CPU.
    cpu = max(os.sched_getaffinity(0))
    rs = kids.start(impl + "_serve", where, 0, cpu)
    kids.ready(rs)
    rq = kids.start(impl + "_ask", where, int(seconds * 1000), cpu)
    r = kids.result(rq)
    rs.kill()
    return r["median_us"], r["n"] / r["secs"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(PKG, "..", "..",
                                                    "build"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--count", type=int, default=300000)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--out")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.count, a.seconds = 1, 50000, 0.5
    build = os.path.abspath(a.build)
    try:
        import zmq              # noqa: F401
    except ImportError:
        print("bench.py: pyzmq is missing (python3-zmq); skipped")
        return 0
    ok = True
    tput = {"sipc": [], "pyzmq": []}
    rtt = {"sipc": [], "pyzmq": []}
    rps = {"sipc": [], "pyzmq": []}
    tr, rr = [], []
    with tempfile.TemporaryDirectory(prefix="sipc-pybench-") as tmp:
        os.chmod(tmp, 0o700)
        env = dict(os.environ)
        env["SIPC_LIBRARY"] = os.path.join(build, "lib", "libsipc.so.2")
        env["XDG_RUNTIME_DIR"] = tmp
        env.pop("SIPC_BROKER", None)
        env["PYTHONPATH"] = PKG + (":" + env["PYTHONPATH"]
                                   if env.get("PYTHONPATH") else "")
        kids = Kids(env)
        for rnd in range(a.rounds):
            try:
                t = {}
                for impl, key in (("sipc", "sipc"), ("zmq", "pyzmq")):
                    t[key] = measure_tput(kids, impl, a.count, tmp, rnd)
                    tput[key].append(t[key])
                tr.append(t["sipc"] / t["pyzmq"])
                r = {}
                for impl, key in (("sipc", "sipc"), ("zmq", "pyzmq")):
                    us, persec = measure_rtt(kids, impl, a.seconds, tmp,
                                             rnd)
                    r[key] = us
                    rtt[key].append(us)
                    rps[key].append(persec)
                rr.append(r["pyzmq"] / r["sipc"])
            except Exception as e:           # reported, not hidden
                print("bench.py: round %d: %s" % (rnd + 1, e))
                ok = False
            finally:
                kids.reap()
    if not tr or not rr:
        return 1
    med = statistics.median
    print()
    print("Python (bindings/python, %d rounds; local registry vs "
          "pyzmq ipc://)" % a.rounds)
    print("%-26s %14s %14s %18s %7s" % ("case", "sipc", "pyzmq",
                                        "ratio (min-max)", "target"))
    print("%-26s %12.0f/s %12.0f/s %6.2fx (%.2f-%.2f) %6s" % (
        "1->1 64 B msgs/s", med(tput["sipc"]), med(tput["pyzmq"]),
        med(tr), min(tr), max(tr),
        ("%.1fx " % TARGET) + ("met" if med(tr) >= TARGET else "MISSED")))
    print("%-26s %11.1f us %11.1f us %6.2fx (%.2f-%.2f) %6s" % (
        "request RTT (median)", med(rtt["sipc"]), med(rtt["pyzmq"]),
        med(rr), min(rr), max(rr),
        ("%.1fx " % TARGET) + ("met" if med(rr) >= TARGET else "MISSED")))
    print("%-26s %12.0f/s %12.0f/s" % ("requests/s (one at a time)",
                                       med(rps["sipc"]), med(rps["pyzmq"])))
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"rounds": a.rounds, "count": a.count,
                       "tput_64": {"sipc": tput["sipc"],
                                   "pyzmq": tput["pyzmq"],
                                   "ratio_median": med(tr)},
                       "request_rtt_us": {"sipc": rtt["sipc"],
                                          "pyzmq": rtt["pyzmq"],
                                          "ratio_median": med(rr)},
                       "target": TARGET}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--role":
        p = argparse.ArgumentParser()
        p.add_argument("--role")
        p.add_argument("--where")
        p.add_argument("--n", type=int)
        r = p.parse_args()
        fn = ROLES[r.role]
        arg = r.n / 1000.0 if r.role.endswith("_ask") else r.n
        print(json.dumps(fn(r.where, arg)), flush=True)
        sys.exit(0)
    sys.exit(main())
