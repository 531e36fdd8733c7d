"""pytest set-up for the sipc package: the tree's build, never an
installed libsipc; a fresh local registry per test; brokers and commands
started by the tests, stopped by pid.

$SIPC_BUILD (make check sets it) names the build directory; else the
tree's build/.  The package is imported from bindings/python."""
import os
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
TREE = os.path.dirname(os.path.dirname(PKG))
BUILD = os.environ.get("SIPC_BUILD") or os.path.join(TREE, "build")
os.environ["SIPC_LIBRARY"] = os.path.join(BUILD, "lib", "libsipc.so.2")
os.environ.pop("SIPC_BROKER", None)
sys.path.insert(0, PKG)


def bin_path(name):
    return os.path.join(BUILD, "bin", name)


@pytest.fixture(autouse=True)
def registry(monkeypatch):
    """A local registry of this test's own."""
    with tempfile.TemporaryDirectory(prefix="sipc-py-") as d:
        os.chmod(d, 0o700)
        monkeypatch.setenv("XDG_RUNTIME_DIR", d)
        monkeypatch.delenv("SIPC_BROKER", raising=False)
        yield d


class Procs:
    """Processes a test starts: each stopped and reaped by pid."""

    def __init__(self):
        self.procs = []

    def start(self, *argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


@pytest.fixture
def procs():
    ps = Procs()
    yield ps
    ps.stop_all()


@pytest.fixture
def broker(procs, registry):
    """A sipc-epmd on 127.0.0.1 and a free port: its "127.0.0.1:PORT"."""
    pf = os.path.join(registry, "port")
    p = procs.start(bin_path("sipc-epmd"), "--listen", "127.0.0.1:0",
                    "--port-file", pf, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10:
        if os.path.exists(pf):
            with open(pf) as f:
                port = f.read().strip()
            if port:
                return "127.0.0.1:" + port
        if p.poll() is not None:
            break
        time.sleep(0.02)
    pytest.fail("sipc-epmd did not start")
