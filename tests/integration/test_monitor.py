#!/usr/bin/python3
"""test_monitor.py - sipc-epmd's monitoring port, end to end.

Starts its own sipc-epmd with --metrics on loopback, real `sipc recv`
receivers (some with hostile handles) and a headless Debian chromium driven
through the DevTools protocol over a pipe (--remote-debugging-pipe: no
port, no websocket library).  Checks:

  - the status page at / lists every handle as exact text, its receivers
    and the sessions; a receiver started after the page loaded appears
    without a reload, one that stops disappears; no hostile handle ran
    script (document.title, a marker, no dialog, no injected element);
    a screenshot goes to $SIPC_BUILD/monitor-status.png;
  - /v1/varz, /v1/handles, /v1/sessions: valid JSON, paging, the bounded
    limit, the handle filter, 400s; the same data as brokerctl --json;
  - brokerctl --json (list, show, watch, stats) and sipc bench --json parse
    with hostile handles;
  - README's "Watching a broker" URL answers as README says;
  - protected mode: a metrics port beyond loopback is refused without TLS
    or a password, taken with --insecure, and speaks HTTPS with TLS.

Every process is started here and killed by its pid; the browser's profile
lives in a temporary directory that is removed.  Bounded: each wait has a
deadline, and tests/run.sh bounds the whole.
"""
import base64
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

BUILD = os.environ.get("SIPC_BUILD") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
SRC = os.environ.get("SIPC_SRC") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")
BIN = os.path.join(BUILD, "bin")
CHROMIUM = os.environ.get("SIPC_CHROMIUM", "/usr/bin/chromium")

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=\"window.__pwned=1;document.title='pwned'\">",
    "</td></tr></table><script>window.__pwned=2</script>",
    "quote\"back\\slash'apos",
    "h\u00e9llo \u2713 \u65e5\u672c \U0001F600 \u2028sep",
]
PLAIN = ["alpha", "orders.eu"]
LATE = "late-joiner"

procs = []          # every process started here, killed by pid at the end
failures = []


def check(cond, what):
    if cond:
        print("ok   " + what)
    else:
        print("FAIL " + what)
        failures.append(what)


def start(args, **kw):
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, **kw)
    procs.append(p)
    return p


def stop(p):
    """SIGTERM, then SIGKILL after 10 s; returns the exit status."""
    if p.poll() is None:
        os.kill(p.pid, signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
    return p.returncode


def stop_broker(p, tmp, name):
    """Stops a broker and checks it ended cleanly: under the sanitizers a
    leak or an error is a non-zero exit, and its log is shown."""
    rc = stop(p)
    check(rc == 0, "%s stopped cleanly (exit %s)" % (name, rc))
    if rc != 0:
        print(open(os.path.join(tmp, name + ".log")).read()[-4000:])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def high_fd(fd):
    n = fcntl.fcntl(fd, fcntl.F_DUPFD, 5)
    os.close(fd)
    if n > 9:
        raise RuntimeError("no free descriptor from 5 to 9")
    return n


def wait_for(what, fn, timeout=15.0, interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (OSError, ValueError, KeyError) as e:
            last = e
        time.sleep(interval)
    raise RuntimeError("timed out waiting for %s (last: %r)" % (what, last))


def get(url, ctx=None):
    with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
        return r.status, dict(r.headers), r.read()


def get_json(url):
    status, headers, body = get(url)
    return json.loads(body.decode("utf-8"))


def start_broker(tmp, extra, name="epmd"):
    port_file = os.path.join(tmp, name + ".port")
    log = open(os.path.join(tmp, name + ".log"), "w")
    p = start([os.path.join(BIN, "sipc-epmd"), "--listen", "127.0.0.1:0",
               "--port-file", port_file, "--log-level", "info"] + extra,
              stdout=log, stderr=subprocess.STDOUT)
    wait_for("the broker's port file", lambda: p.poll() is not None or (
        os.path.exists(port_file) and open(port_file).read().strip()))
    if p.poll() is not None:
        return p, None
    return p, int(open(port_file).read().split()[0].rsplit(":", 1)[-1])


def start_receiver(handle, broker):
    return start([os.path.join(BIN, "sipc"), "recv", handle, "--broker",
                  broker], stdout=subprocess.DEVNULL)


# ---- the browser, through the DevTools protocol over a pipe -----------------

class Browser:
    def __init__(self, tmp, shots):
        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp)
        # fd 3: commands to chromium, fd 4: its answers and events.  The
        # child's ends first move to 5-9 (sh takes single digits), so that
        # a shell can place them on 3 and 4 without one overwriting the
        # other.
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()
        to_r, from_w = high_fd(to_r), high_fd(from_w)
        args = [CHROMIUM, "--headless", "--remote-debugging-pipe",
                "--user-data-dir=" + self.profile, "--no-first-run",
                "--no-default-browser-check", "--disable-gpu",
                "--disable-extensions", "--disable-background-networking",
                "--disable-sync", "--disable-component-update",
                "--window-size=1280,900", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")
        # sh puts the pipe ends on fds 3 and 4, then becomes chromium
        # (exec: the same pid).
        sh = ["sh", "-c", 'exec 3<&%d 4>&%d %d<&- %d>&-; exec "$@"' %
              (to_r, from_w, to_r, from_w), "sh"]
        self.proc = start(sh + args, pass_fds=(to_r, from_w),
                          stdout=subprocess.DEVNULL,
                          stderr=open(os.path.join(tmp, "chromium.log"),
                                      "w"))
        os.close(to_r)
        os.close(from_w)
        self.buf = b""
        self.next_id = 0
        self.events = []
        self.session = None
        t = self.call("Target.createTarget", {"url": "about:blank"})
        a = self.call("Target.attachToTarget",
                      {"targetId": t["targetId"], "flatten": True})
        self.session = a["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")

    def _read_msg(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("chromium did not answer in time")
            r, _, _ = select.select([self.from_r], [], [], left)
            if r:
                chunk = os.read(self.from_r, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, timeout=20.0):
        self.next_id += 1
        m = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session:
            m["sessionId"] = self.session
        os.write(self.to_w, json.dumps(m).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            r = self._read_msg(deadline)
            if r.get("id") == self.next_id:
                if "error" in r:
                    raise RuntimeError("%s: %s" % (method, r["error"]))
                return r.get("result", {})
            self.events.append(r)
            if r.get("method") == "Page.javascriptDialogOpening":
                # Dismiss it so the page goes on; the test fails anyway.
                self.call("Page.handleJavaScriptDialog", {"accept": False})

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr,
                                           "returnByValue": True})
        if "exceptionDetails" in r:
            raise ValueError("page script failed: %r" % r["exceptionDetails"])
        return r["result"].get("value")

    def close(self):
        try:
            self.session = None
            self.call("Browser.close", timeout=5)
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        stop(self.proc)
        os.close(self.to_w)
        os.close(self.from_r)
        shutil.rmtree(self.profile, ignore_errors=True)


PAGE_HANDLES = ("JSON.stringify(Array.from(document.querySelectorAll("
                "'#handles td.handle')).map(function (e) "
                "{ return e.textContent; }))")


def page_handles(b):
    return json.loads(b.eval(PAGE_HANDLES))


def test_page(tmp, broker, metrics, receivers):
    if not os.access(CHROMIUM, os.X_OK):
        check(False, "chromium at %s (scripts/install-deps.sh installs it)"
              % CHROMIUM)
        return
    b = Browser(tmp, tmp)
    try:
        url = "http://%s/" % metrics
        b.call("Page.navigate", {"url": url})
        want = sorted(PLAIN + HOSTILE)
        got = wait_for("a row for every handle on the page",
                       lambda: len(page_handles(b)) == len(want) and
                       page_handles(b))
        check(sorted(got) == want,
              "the page lists every handle as exact text")
        text = b.eval("document.body.innerText")
        check("<script>alert(1)</script>" in text,
              "the hostile handle <script>alert(1)</script> shows as text")
        check(b.eval("document.title") == "sipc-epmd",
              "document.title untouched by hostile handles")
        check(b.eval("typeof window.__pwned") == "undefined",
              "no hostile handle ran script")
        check(b.eval("document.querySelectorAll('#handles script, "
                     "#handles img, #handles table').length") == 0,
              "no element came from a handle")
        nsess = get_json("http://%s/v1/sessions" % metrics)["total"]
        check(b.eval("document.querySelectorAll('#sessions tr').length")
              == nsess, "the page lists the %d sessions" % nsess)
        check(b.eval("document.getElementById('state').className") == "ok",
              "the page says it is up to date")
        # Live: a receiver that joins after the page loaded appears...
        before = int(b.eval("document.documentElement.dataset.updates"))
        late = start_receiver(LATE, broker)
        wait_for("the late receiver on the page",
                 lambda: LATE in page_handles(b))
        after = int(b.eval("document.documentElement.dataset.updates"))
        check(after > before, "the page updated itself (%d -> %d polls)"
              % (before, after))
        # ... and one that stops goes, without a reload.
        stop(receivers["alpha"])
        wait_for("alpha gone from the page",
                 lambda: "alpha" not in page_handles(b))
        check(True, "a receiver that stopped left the page")
        receivers["alpha"] = start_receiver("alpha", broker)
        wait_for("alpha back", lambda: "alpha" in page_handles(b))
        time.sleep(0.3)
        shot = b.call("Page.captureScreenshot", {"format": "png"})
        path = os.path.join(BUILD, "monitor-status.png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        check(os.path.getsize(path) > 1000, "screenshot in %s" % path)
        dialogs = [e for e in b.events
                   if e.get("method") == "Page.javascriptDialogOpening"]
        check(not dialogs, "no alert or other dialog opened")
        check(b.eval("document.title") == "sipc-epmd" and
              b.eval("typeof window.__pwned") == "undefined",
              "still no hostile script after the updates")
        stop(late)
    finally:
        b.close()


def test_json(broker, metrics):
    base = "http://%s" % metrics
    status, headers, body = get(base + "/v1/varz")
    check(headers.get("Content-Type", "").startswith("application/json"),
          "/v1/varz is application/json")
    v = json.loads(body)
    check(v["server"] == "sipc-epmd" and isinstance(v["uptime_s"], float)
          and v["counters"]["handles"] == len(PLAIN + HOSTILE),
          "/v1/varz: server, uptime, counters")
    h = get_json(base + "/v1/handles")
    names = [x["handle"] for x in h["handles"]]
    check(sorted(names) == sorted(PLAIN + HOSTILE) and
          h["total"] == len(names), "/v1/handles: every handle, exact")
    e = h["handles"][0]["endpoints"][0]
    check(all(k in e for k in ("id", "address", "port", "host", "pid",
                               "registered_at", "age_s", "session")),
          "/v1/handles: receivers' endpoint, host, pid, age, session")
    # Paging: pages of 2 give the same list; limit is bounded.
    paged, off = [], 0
    while True:
        p = get_json(base + "/v1/handles?limit=2&offset=%d" % off)
        paged += [x["handle"] for x in p["handles"]]
        off += p["count"]
        if not p["more"]:
            break
    check(paged == names, "/v1/handles in pages of 2: the same list")
    check(get_json(base + "/v1/handles?limit=999999")["limit"] == 1000,
          "a limit above 1000 is 1000")
    for hh in HOSTILE:
        f = get_json(base + "/v1/handles?handle=" +
                     urllib.parse.quote(hh, safe=""))
        if f["total"] != 1 or f["handles"][0]["handle"] != hh:
            check(False, "/v1/handles?handle=%r" % hh)
            break
    else:
        check(True, "/v1/handles?handle= finds each hostile handle")
    s = get_json(base + "/v1/sessions")
    check(all(k in s["sessions"][0] for k in (
        "id", "peer", "host", "pid", "age_s", "registrations", "watches",
        "security")), "/v1/sessions: peer, host, pid, age, counts, security")
    f = get_json(base + "/v1/sessions?handle=" +
                 urllib.parse.quote(HOSTILE[0], safe=""))
    check(f["total"] == 1 and f["sessions"][0]["registrations"] == 1,
          "/v1/sessions?handle= gives the session that registered it")
    for bad in ("limit=0", "offset=-1", "limit=x", "bogus=1",
                "handle=", "handle=%01"):
        try:
            get(base + "/v1/handles?" + bad)
            check(False, "?%s is a 400" % bad)
        except urllib.error.HTTPError as e:
            check(e.code == 400 and "error" in json.loads(e.read()),
                  "?%s is a 400 with a JSON reason" % bad)
    try:
        get(base + "/nothing")
        check(False, "/nothing is a 404")
    except urllib.error.HTTPError as e:
        check(e.code == 404, "/nothing is a 404")
    # DNS rebinding: a name that is not this server's is refused.
    for host, want in (("evil.example:80", 403), ("localhost", 200),
                       ("[::1]:1", 200), (metrics, 200)):
        req = urllib.request.Request(base + "/v1/varz",
                                     headers={"Host": host})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                code = r.status
        except urllib.error.HTTPError as e:
            code = e.code
        if code != want:
            check(False, "Host: %s gets %d, not %d" % (host, code, want))
            break
    else:
        check(True, "Host: evil.example is refused (DNS rebinding), "
              "addresses and localhost taken")
    status, headers, body = get(base + "/")
    csp = headers.get("Content-Security-Policy", "")
    check("default-src 'none'" in csp and "unsafe-inline" not in csp and
          b"http" not in body.split(b"<body>")[0],
          "the page: strict CSP, no external assets")

    # brokerctl --json: the same data, parsed by a JSON parser.
    def ctl(*args):
        out = subprocess.run([os.path.join(BIN, "brokerctl"), "--broker",
                              broker, "--json"] + list(args),
                             capture_output=True, timeout=20, check=True)
        return out.stdout.decode("utf-8")
    lst = json.loads(ctl("list"))
    check(sorted(x["handle"] for x in lst) == sorted(names) and
          [x["receivers"] for x in sorted(lst, key=lambda x: x["handle"])]
          == [x["receivers"] for x in sorted(h["handles"],
                                             key=lambda x: x["handle"])],
          "brokerctl --json list equals /v1/handles")
    for hh in HOSTILE:
        show = json.loads(ctl("show", hh))
        web = get_json(base + "/v1/handles?handle=" +
                       urllib.parse.quote(hh, safe=""))["handles"][0]
        same = [{k: r[k] for k in show[0]} for r in web["endpoints"]]
        if show != same:
            check(False, "brokerctl --json show %r equals /v1" % hh)
            break
    else:
        check(True, "brokerctl --json show equals /v1/handles, hostile "
              "handles included")
    st = json.loads(ctl("stats"))
    check(set(st) == set(v["counters"]) and
          st["handles"] == v["counters"]["handles"],
          "brokerctl --json stats has /v1/varz's counters")
    ping = json.loads(ctl("ping"))
    check(isinstance(ping["rtt_ms"], float) and ping["protocol"] >= 1,
          "brokerctl --json ping")
    w = subprocess.Popen([os.path.join(BIN, "brokerctl"), "--broker", broker,
                          "--json", "watch", HOSTILE[1]],
                         stdout=subprocess.PIPE)
    procs.append(w)
    line = w.stdout.readline()
    stop(w)
    ev = json.loads(line)
    check(ev["event"] == "present" and "host" in ev,
          "brokerctl --json watch of a hostile handle")
    out = subprocess.run([os.path.join(BIN, "sipc"), "bench", "latency",
                          "--count", "50", "--size", "16", "--handle",
                          "bench\"<x>\\", "--json"],
                         capture_output=True, timeout=60)
    try:
        r = json.loads(out.stdout)
        check(out.returncode == 0 and r["case"] == "latency" and
              isinstance(r["p50_us"], (int, float)) and r["lost"] == 0,
              "sipc bench --json parses")
    except ValueError:
        check(False, "sipc bench --json parses: %r" % out.stdout[:300])


def test_readme(metrics):
    """The example of README's "Watching a broker": its URLs answer."""
    text = open(os.path.join(SRC, "README.md"), encoding="utf-8").read()
    sec = text.split("## Watching a broker", 1)
    check(len(sec) == 2, "README has \"Watching a broker\"")
    if len(sec) < 2:
        return
    sec = sec[1].split("\n## ", 1)[0]
    urls = [w for w in sec.replace("'", " ").replace("`", " ").split()
            if w.startswith("http://127.0.0.1:9455/")]
    check(len(urls) >= 2, "README shows the status page and a /v1 URL")
    for u in urls:
        u = u.replace("127.0.0.1:9455", metrics)
        status, headers, body = get(u)
        if "/v1/" in u:
            json.loads(body)
        check(status == 200, "README's %s answers" % u.split(metrics)[1])


def test_protected(tmp):
    port = free_port()
    p, _ = start_broker(tmp, ["--metrics", "0.0.0.0:%d" % port], "open")
    try:
        rc = p.wait(10)
    except subprocess.TimeoutExpired:
        rc = None
    log = open(os.path.join(tmp, "open.log")).read()
    check(rc == 1 and "refusing to serve metrics" in log,
          "metrics on 0.0.0.0 without TLS or a password: refused")
    stop(p)
    p, bport = start_broker(tmp, ["--metrics", "0.0.0.0:%d" % port,
                                  "--insecure"], "insecure")
    check(bport is not None and p.poll() is None,
          "... and taken with --insecure")
    if bport:
        wait_for("the insecure metrics port", lambda: get_json(
            "http://127.0.0.1:%d/v1/varz" % port))
        check(True, "... serving plain HTTP")
        stop_broker(p, tmp, "insecure")
    certs = os.path.join(tmp, "certs")
    subprocess.run(["sh", os.path.join(SRC, "tests", "certs.sh"), certs],
                   check=True, timeout=60)
    port = free_port()
    p, bport = start_broker(tmp, [
        "--metrics", "0.0.0.0:%d" % port,
        "--tls-cert", os.path.join(certs, "server.pem"),
        "--tls-key", os.path.join(certs, "server.key")], "tls")
    check(bport is not None and p.poll() is None,
          "metrics on 0.0.0.0 with TLS: taken")
    if bport:
        ctx = ssl.create_default_context(cafile=os.path.join(certs,
                                                             "ca.pem"))
        v = wait_for("the HTTPS metrics port", lambda: json.loads(get(
            "https://127.0.0.1:%d/v1/varz" % port, ctx)[2]))
        check(v["security"] == "tls", "... over HTTPS with the broker's "
              "certificate")
        try:
            get("http://127.0.0.1:%d/v1/varz" % port)
            check(False, "... and no plain HTTP")
        except (urllib.error.URLError, OSError, ValueError):
            check(True, "... and no plain HTTP")
        stop_broker(p, tmp, "tls")


def main():
    tmp = tempfile.mkdtemp(prefix="sipc-monitor-")
    t0 = time.monotonic()
    try:
        mport = free_port()
        metrics = "127.0.0.1:%d" % mport
        epmd, port = start_broker(tmp, ["--metrics", metrics])
        if port is None:
            print(open(os.path.join(tmp, "epmd.log")).read())
            raise RuntimeError("sipc-epmd did not start")
        broker = "127.0.0.1:%d" % port
        receivers = {}
        for h in PLAIN + HOSTILE:
            receivers[h] = start_receiver(h, broker)
        wait_for("every receiver registered", lambda: get_json(
            "http://%s/v1/varz" % metrics)["counters"]["handles"] ==
            len(PLAIN + HOSTILE))
        test_json(broker, metrics)
        test_readme(metrics)
        test_page(tmp, broker, metrics, receivers)
        stop_broker(epmd, tmp, "epmd")
        test_protected(tmp)
    except Exception as e:          # a failed wait or a crash: say which
        check(False, "%s: %s" % (type(e).__name__, e))
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d checks failed, %.1f s" % (len(failures),
                                        time.monotonic() - t0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
