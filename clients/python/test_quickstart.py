"""Keeps examples/quickstart.py honest.

The unit tests need nothing but Python. The end-to-end test runs the
README's Quickstart for real: `ordergate sim` on a free loopback port, the
sidecar with a copy of examples/sim.toml (pointed at that port and at a
temporary state directory), then the example. It needs a built binary
(`cargo build` or `cargo test` first; CI runs `cargo test` before these
tests) and is skipped without one. OG_BIN names a binary explicitly.
"""

import contextlib
import importlib.util
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXAMPLE = os.path.join(HERE, "examples", "quickstart.py")
SIM_TOML = os.path.join(REPO, "examples", "sim.toml")

# The simulator's demo account (crates/ordergate-sim/src/binance/mod.rs):
# public, test-only values.
DEMO_KEY = "ordergateSimDemoKey0000000000000000000000000000000000000000000000"
DEMO_SECRET = "ordergateSimDemoSecret00000000000000000000000000000000000000000"


def load_example():
    spec = importlib.util.spec_from_file_location("quickstart", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def find_binary():
    if os.environ.get("OG_BIN"):
        return os.environ["OG_BIN"]
    found = [p for p in (os.path.join(REPO, "target", d, "ordergate") for d in ("debug", "release"))
             if os.access(p, os.X_OK)]
    return max(found, key=os.path.getmtime) if found else None


class ExampleUnits(unittest.TestCase):
    def setUp(self):
        self.q = load_example()

    def test_imports_cleanly_with_the_documented_defaults(self):
        args = self.q.parse_args([])
        self.assertEqual(args.strategy, "quickstart")
        self.assertEqual(args.symbol, "BTCUSDT")
        self.assertEqual(args.socket, os.path.join(REPO, "state", "ordergate.sock"))
        with open(SIM_TOML) as f:
            toml = f.read()
        # The example's defaults are what examples/sim.toml configures.
        self.assertIn('name = "quickstart"', toml)
        self.assertIn('symbol = "BTCUSDT"', toml)
        self.assertIn('socket = "../state/ordergate.sock"', toml)

    def test_decimals_are_exact(self):
        m, f = self.q.to_mantissa, self.q.fmt
        self.assertEqual(m("30000.5", 2), 3000050)
        self.assertEqual(m("0.00001", 5), 1)
        self.assertEqual(m("-1.2", 3), -1200)
        self.assertEqual(m("7", 0), 7)
        self.assertRaises(ValueError, m, "0.001", 2)
        self.assertRaises(ValueError, m, "1e5", 2)
        self.assertRaises(ValueError, m, ".", 2)
        self.assertEqual(f(3000050, 2), "30000.50")
        self.assertEqual(f(1, 5), "0.00001")
        self.assertEqual(f(-5, 1), "-0.5")
        self.assertEqual(f(50000000, 7), "5.0000000")

    def test_sizes_reach_twice_the_min_notional(self):
        inst = self.q.og.Message("InstrumentInfo", instrument_id=1, venue=1, category=1,
                                 price_scale=2, qty_scale=5, tick=1, lot=1, min_qty=1,
                                 min_notional=50000000, symbol="BTCUSDT")
        qty = self.q.size_for(3000000, inst)  # at 30000.00
        self.assertEqual(qty, 34)  # 0.00034 BTC = 10.20 USDT >= 2 x 5 USDT
        self.assertGreaterEqual(3000000 * qty, 2 * inst.min_notional)
        self.assertLess(3000000 * (qty - 1), 2 * inst.min_notional)
        inst.lot, inst.min_qty = 10, 100
        self.assertEqual(self.q.size_for(3000000, inst), 100)  # min_qty wins
        self.assertEqual(self.q.size_for(300000, inst), 340)  # on the lot

    def test_missing_socket_is_a_clear_error(self):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = self.q.main(["--socket", "/nonexistent/ordergate.sock"])
        self.assertEqual(rc, 1)
        self.assertIn("no sidecar socket at /nonexistent/ordergate.sock", err.getvalue())
        self.assertIn("start the sidecar first", err.getvalue())


class Stopping:
    """Processes started by a test, output to a log file each, stopped
    (SIGTERM, then SIGKILL) at the end."""

    def __init__(self):
        self.procs = []

    def start(self, argv, log, **kw):
        with open(log, "wb") as out:
            p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **kw)
        self.procs.append(p)
        return p

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def read(path):
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")


def wait_for(what, ready, proc, log, timeout=60):
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError("%s: the process exited:\n%s" % (what, read(log)))
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %d s:\n%s" % (what, timeout, read(log)))
        time.sleep(0.05)


@unittest.skipIf(find_binary() is None, "no ordergate binary: run `cargo build` first (or set OG_BIN)")
class QuickstartEndToEnd(unittest.TestCase):
    def test_quickstart_against_sim_and_sidecar(self):
        binary = find_binary()
        procs = Stopping()
        tmp = tempfile.mkdtemp(prefix="og-qs-")
        try:
            sim_log = os.path.join(tmp, "sim.log")
            sim = procs.start([binary, "sim", "--listen", "127.0.0.1:0"], sim_log)
            addr_re = re.compile(r"binance-spot on (127\.0\.0\.1:\d+)")
            wait_for("simulator address", lambda: addr_re.search(read(sim_log)), sim, sim_log)
            addr = addr_re.search(read(sim_log)).group(1)
            # The Quickstart's own config, with the simulator's port and a
            # state directory of this test's (relative paths are taken from
            # the config's directory: tmp/examples/../state).
            os.mkdir(os.path.join(tmp, "examples"))
            with open(SIM_TOML) as f:
                toml = f.read()
            toml, n = re.subn(r"^((?:ws|rest)_url = \"(?:ws|http)://)127\.0\.0\.1:9443",
                              lambda m: m.group(1) + addr, toml, flags=re.M)
            self.assertEqual(n, 2, "examples/sim.toml: ws_url and rest_url at 127.0.0.1:9443")
            config = os.path.join(tmp, "examples", "sim.toml")
            with open(config, "w") as f:
                f.write(toml)
            env = dict(os.environ, OG_SIM_API_KEY=DEMO_KEY, OG_SIM_API_SECRET=DEMO_SECRET)
            sidecar_log = os.path.join(tmp, "sidecar.log")
            sidecar = procs.start([binary, "run", "--config", config], sidecar_log, env=env)
            socket = os.path.join(tmp, "state", "ordergate.sock")
            wait_for("sidecar socket", lambda: os.path.exists(socket), sidecar, sidecar_log)
            out = subprocess.run([sys.executable, EXAMPLE, "--socket", socket],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
            text = out.stdout.decode()
            self.assertEqual(out.returncode, 0, text + "\nsidecar log:\n" + read(sidecar_log))
            for line in ("venue binance-spot: UP", "Accepted  order", "Canceled  order",
                         "Fill      order"):
                self.assertIn(line, text)
            # Exact decimals at the instrument's scales: price 2, qty 5.
            self.assertRegex(text, r"Fill      order \d+: \d+\.\d{5} BTCUSDT at \d+\.\d{2} ")
            self.assertTrue(re.search(r"^(Filled|Expired) +order", text, re.M), text)
        finally:
            procs.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
