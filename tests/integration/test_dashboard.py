#!/usr/bin/python3
"""tests/integration/test_dashboard.py: operator access, the event stream,
the operator CLI and the dashboard in a real browser.

A real redis-server holds a generated district; tocsind runs `sim` lanes
(with delays, so coverage grows) and an [operators] tokens file. Clients
are independent of tocsin's code: urllib, curl (HTTP/1.1 and HTTP/2 prior
knowledge), a raw socket that never reads, the `tocsin` CLI, and headless
Chromium driven over the DevTools protocol (cdp.py). The screenshot is
saved as BUILD/tests/integration/dashboard.png.

usage: /usr/bin/python3 test_dashboard.py SOURCE_DIR BUILD_DIR
"""
import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from cryptography.hazmat.primitives import serialization

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Redis, Tocsind  # noqa: E402
from bureau import Bureau, SENDER, load_pb  # noqa: E402

SRC, BUILD = sys.argv[1], sys.argv[2]
del sys.argv[1:3]
TOCSIND = os.path.join(BUILD, "engine", "tocsind")
TOCSIN = os.path.join(BUILD, "engine", "tocsin")
GEN = os.path.join(BUILD, "bench", "gen_district")
WORK = tempfile.mkdtemp(prefix="tocsin-dashboard-")
pb = load_pb(SRC)
TOKEN = "op-token-0123456789abcdef"
OTHER = "op-token-fedcba9876543210"


def lanes(log, sms_rate="300"):
    o = {}
    def lane(name, channel, platform=None, **kw):
        o[("lane " + name, "channel")] = channel
        o[("lane " + name, "adapter")] = "sim"
        o[("lane " + name, "log")] = log
        if platform:
            o[("lane " + name, "platform")] = platform
        for k, v in kw.items():
            o[("lane " + name, k)] = v
    lane("sms-1", "sms", rate=sms_rate, window="20", deliver_ms="300")
    lane("fcm-1", "app", platform="fcm", rate="400", window="20")
    lane("term-1", "terminal", direct="yes")
    return o


def http(url, token=None, data=None, headers=None, method=None):
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=data, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


class Dashboard(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = WORK
        district = os.path.join(WORK, "district")
        subprocess.run([GEN, "--seed", "7", "--scale", "0.03", "--out", district], check=True,
                       capture_output=True)
        cls.redis = Redis(WORK).start()
        subprocess.run([TOCSIN, "load", "--redis", cls.redis.address, "--dir", district],
                       check=True, capture_output=True)
        cls.bureau = Bureau(pb)
        cls.keyring = os.path.join(WORK, "keyring.ini")
        with open(cls.keyring, "w") as f:
            f.write(cls.bureau.keyring)
        cls.key = os.path.join(WORK, "bureau.key")
        with open(cls.key, "wb") as f:
            f.write(cls.bureau.key.private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
        cls.tokens = os.path.join(WORK, "operators.txt")
        with open(cls.tokens, "w") as f:
            f.write("# duty officers\nduty-1 %s\nduty-2 %s\n" % (TOKEN, OTHER))
        cls.log = os.path.join(WORK, "sends.log")
        opts = lanes(cls.log)
        opts.update({("operators", "tokens_file"): cls.tokens, ("events", "interval_ms"): "300",
                     ("server", "threads"): "2"})
        cls.d = Tocsind(TOCSIND, WORK, cls.redis.address, cls.keyring, opts).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop(signal.SIGTERM)
        cls.redis.stop()

    def submit(self, w, token=None):
        return http(self.d.url + "/v1/warnings", token=token, data=self.bureau.sign(w),
                    headers={"Content-Type": "application/x-protobuf"})

    def warning(self, ident):
        s, _, body = http(self.d.url + "/v1/warnings/" + ident, token=TOKEN)
        self.assertEqual(s, 200, body)
        return json.loads(body)

    def wait_state(self, ident, states, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            cov = self.warning(ident).get("coverage")
            if cov and cov["state"] in states:
                return cov
            time.sleep(0.1)
        self.fail("%s not in %s" % (ident, states))

    # --- access ---

    def test_operator_token_required(self):
        for path in ("/v1/status", "/metrics", "/v1/warnings/nope", "/", "/dashboard.js"):
            s, h, body = http(self.d.url + path)
            self.assertEqual(s, 401, path)
            self.assertEqual(json.loads(body)["error"], "unauthorized")
            s, _, _ = http(self.d.url + path, token="wrong-token-wrong-token")
            self.assertEqual(s, 401, path)
        self.assertEqual(http(self.d.url + "/v1/status", token=TOKEN)[0], 200)
        self.assertEqual(http(self.d.url + "/metrics", token=OTHER)[0], 200)
        s, h, body = http(self.d.url + "/", token=TOKEN)
        self.assertEqual(s, 200)
        self.assertTrue(h["Content-Type"].startswith("text/html"))
        self.assertIn(b"/v1/events", http(self.d.url + "/dashboard.js", token=TOKEN)[2])
        self.assertEqual(http(self.d.url + "/healthz")[0], 200)  # liveness stays open

    def test_token_query_sets_cookie(self):
        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(self.d.url + "/?token=" + TOKEN, timeout=10)
            self.fail("expected 303")
        except urllib.error.HTTPError as e:
            self.assertEqual(e.code, 303)
            self.assertEqual(e.headers["Location"], "/")
            cookie = e.headers["Set-Cookie"]
        self.assertIn("HttpOnly", cookie)
        self.assertIn("SameSite=Strict", cookie)
        pair = cookie.split(";")[0]
        s, _, _ = http(self.d.url + "/v1/status", headers={"Cookie": "a=b; " + pair})
        self.assertEqual(s, 200)
        self.assertEqual(http(self.d.url + "/?token=bad-token-bad-token")[0], 401)

    def test_post_with_operator_token_is_403(self):
        s, _, body = self.submit(self.bureau.warning(targets=["350102001"]), token=TOKEN)
        self.assertEqual(s, 403)
        self.assertEqual(json.loads(body)["error"], "operator_credential")
        s, _, body = self.submit(self.bureau.warning(targets=["350102001"]))
        self.assertEqual(s, 202, body)

    # --- the event stream ---

    def sse(self, *flags):
        r = subprocess.run(["curl", "-sS", "-N", "-i", "--max-time", "2.5", *flags,
                            "-H", "Authorization: Bearer " + TOKEN, self.d.url + "/v1/events"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 28, r.stderr)  # ended by --max-time: still streaming
        head, _, body = r.stdout.replace("\r\n", "\n").partition("\n\n")
        self.assertRegex(head.lower(), r"content-type: text/event-stream")
        events = [b for b in body.split("\n\n") if "event: status" in b]
        self.assertGreaterEqual(len(events), 2, r.stdout[:800])
        data = [l[6:] for l in events[0].splitlines() if l.startswith("data: ")]
        self.assertIn("lanes", json.loads(data[0]))
        return head

    def test_sse_http1(self):
        head = self.sse("--http1.1")
        self.assertTrue(head.startswith("HTTP/1.1 200"))

    def test_sse_http2(self):
        head = self.sse("--http2-prior-knowledge")
        self.assertTrue(head.startswith("HTTP/2 200"), head)

    def test_sse_needs_token(self):
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3",
                            self.d.url + "/v1/events"], capture_output=True, text=True)
        self.assertEqual(r.stdout, "401")

    # --- the operator CLI ---

    def test_cli_cancel_and_receipts(self):
        w = self.bureau.warning(targets=["350102"])
        self.assertEqual(self.submit(w)[0], 202)
        time.sleep(0.5)
        r = subprocess.run([TOCSIN, "cancel", w.identifier, "--url", self.d.url, "--key", self.key,
                            "--key-id", "bureau-1", "--sender", SENDER],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        cov = self.wait_state(w.identifier, ["cancelled"], timeout=5)
        out = os.path.join(WORK, "receipts.csv")
        r = subprocess.run([TOCSIN, "receipts", w.identifier, "--url", self.d.url, "--token", TOKEN,
                            "--out", out], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        cov = self.warning(w.identifier)["coverage"]
        with open(out, newline="") as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(len(rows), len(cov["segments"]))
        for row, seg in zip(rows, cov["segments"]):
            self.assertEqual(row["segment"], seg["id"])
            for k in ("census", "targeted", "reached", "accepted", "failed"):
                self.assertEqual(int(row[k]), seg[k], k)
        r = subprocess.run([TOCSIN, "receipts", w.identifier, "--url", self.d.url],
                           capture_output=True, text=True, timeout=30, env={})
        self.assertEqual(r.returncode, 1)  # no operator token: 401

    def test_cli_update(self):
        w = self.bureau.warning(targets=["350102"])
        self.assertEqual(self.submit(w)[0], 202)
        ini = os.path.join(WORK, "update.ini")
        with open(ini, "w") as f:
            f.write("[alert]\nidentifier = %s-u1\nsender = %s\nstatus = Actual\ntargets = 350102007\n"
                    "[info zh-CN]\ncategory = Met\nevent = 台风\nurgency = Immediate\n"
                    "severity = Severe\ncertainty = Observed\nexpires = +1h\n"
                    "headline = 更新\n" % (w.identifier, SENDER))
        r = subprocess.run([TOCSIN, "update", w.identifier, ini, "--url", self.d.url, "--key",
                            self.key, "--key-id", "bureau-1"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.wait_state(w.identifier, ["superseded"], timeout=5)

    def test_status_watch_ends_with_summary(self):
        w = self.bureau.warning(targets=["350102001"])
        self.assertEqual(self.submit(w)[0], 202)
        r = subprocess.run([TOCSIN, "status", w.identifier, "--watch", "--url", self.d.url,
                            "--token", TOKEN], capture_output=True, text=True, timeout=90)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("summary: %s done" % w.identifier, r.stdout)
        self.assertIn("overall", r.stdout)

    # --- the browser ---

    def test_browser_dashboard(self):
        if not shutil.which("chromium"):
            raise unittest.SkipTest("chromium is not installed (ops/setup.sh installs it)")
        w = self.bureau.warning(targets=["350102"], expires_in=600)
        self.assertEqual(self.submit(w)[0], 202)
        ident = w.identifier
        browser = Chromium(WORK).start()
        try:
            browser.navigate(self.d.url + "/?token=" + TOKEN)
            probe = ("(function(){var e=document.getElementById('reached-%s');"
                     "var t=document.getElementById('targeted-%s');"
                     "return e&&t?JSON.stringify({reached:+e.dataset.value,targeted:+t.dataset.value,"
                     "events:window.tocsinEvents||0,rows:document.querySelectorAll("
                     "'#communities tbody tr').length,conn:document.getElementById('conn')"
                     ".dataset.state}):null;})()" % (ident, ident))
            seen = None
            deadline = time.time() + 30
            while time.time() < deadline and not seen:
                seen = browser.evaluate(probe)
                time.sleep(0.2)
            self.assertTrue(seen, "the warning never appeared on the page")
            matched = 0
            for _ in range(5):  # while coverage grows: page between two API reads
                before = self.api_reached(ident)
                time.sleep(0.8)  # > one SSE interval
                page = json.loads(browser.evaluate(probe))
                after = self.api_reached(ident)
                self.assertEqual(page["targeted"], after[1])
                self.assertTrue(before[0] <= page["reached"] <= after[0], (before, page, after))
                matched += 1
            png = browser.screenshot(os.path.abspath(
                os.path.join(BUILD, "tests", "integration", "dashboard.png")))
            self.assertGreater(os.path.getsize(png), 10000)
            print("\nscreenshot (warning in progress): %s" % png)
            self.wait_state(ident, ["done"], timeout=90)
            time.sleep(1.0)
            page = json.loads(browser.evaluate(probe)) if browser.evaluate(probe) else None
            final = self.warning(ident)["coverage"]
            if page:  # finished warnings may leave the status view
                self.assertEqual(page["reached"], final["reached"])
            self.assertEqual(browser.evaluate("document.getElementById('conn').dataset.state"), "open")
            self.assertGreater(browser.evaluate(
                "document.querySelectorAll('#communities tbody tr').length"), 0)
            self.assertGreater(browser.evaluate("window.tocsinEvents"), 2)
            # readiness from /v1/status, terminals' fault reports included (none on sim lanes)
            s, _, body = http(self.d.url + "/v1/status", token=TOKEN)
            r = json.loads(body)["readiness"]
            self.assertEqual(browser.evaluate("document.getElementById('r-faulty').dataset.value"),
                             str(r["terminals_faulty"]))
            self.assertEqual(browser.evaluate("document.getElementById('r-muted').dataset.value"),
                             str(r["terminals_muted"]))
            self.assertEqual(browser.evaluate("document.querySelectorAll('#r-faults li').length"),
                             len(r["faults_latest"]))
            browser.evaluate("document.getElementById('lang').click()")
            self.assertEqual(browser.evaluate("document.documentElement.lang"), "en")
        finally:
            browser.stop()

    def api_reached(self, ident):
        s, _, body = http(self.d.url + "/v1/status", token=TOKEN)
        for w in json.loads(body)["warnings"]:
            if w["id"] == ident:
                return w["reached"], w["targeted"]
        return 0, 0


class SlowClient(unittest.TestCase):
    """A subscriber that never reads is dropped once its unsent bytes pass max_pending."""

    def test_slow_sse_client_is_dropped(self):
        d = tempfile.mkdtemp(prefix="slow-", dir=WORK)
        redis = Redis(d).start()
        keyring = os.path.join(d, "keyring.ini")
        with open(keyring, "w") as f:
            f.write(Bureau(pb).keyring)
        opts = lanes(os.path.join(d, "sends.log"))
        opts.update({("events", "interval_ms"): "10", ("events", "max_pending"): "4096",
                     ("server", "threads"): "1"})
        t = Tocsind(TOCSIND, d, redis.address, keyring, opts).start()
        socks = []
        try:
            for _ in range(2):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
                s.connect(("127.0.0.1", t.port))
                s.sendall(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
                socks.append(s)
            deadline = time.time() + 60
            dropped = 0
            while time.time() < deadline and dropped < 2:
                m = http(t.url + "/metrics")[2].decode()
                dropped = int([l for l in m.splitlines()
                               if l.startswith("tocsin_events_dropped_total")][0].split()[-1])
                time.sleep(0.2)
            self.assertEqual(dropped, 2)
            m = http(t.url + "/metrics")[2].decode()
            self.assertIn("tocsin_events_subscribers 0", m)
            self.assertEqual(http(t.url + "/healthz")[0], 200)  # the server is fine
        finally:
            for s in socks:
                s.close()
            t.stop()
            redis.stop()


class ClientCertificates(unittest.TestCase):
    """[operators] client_ca: a verified TLS client certificate opens the operator views."""

    def openssl(self, *args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True)

    def test_client_certificate_grants_operator_view(self):
        d = tempfile.mkdtemp(prefix="mtls-", dir=WORK)
        p = lambda n: os.path.join(d, n)  # noqa: E731
        self.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-nodes", "-keyout", p("ca.key"), "-out", p("ca.crt"), "-days", "2",
                     "-subj", "/CN=tocsin operators CA")
        self.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-nodes", "-keyout", p("srv.key"), "-out", p("srv.crt"), "-days", "2",
                     "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost")
        for who, ca in (("op", "ca"), ("rogue", None)):
            self.openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                         "-keyout", p(who + ".key"), "-out", p(who + ".csr"),
                         "-subj", "/CN=duty officer " + who)
            if ca:
                self.openssl("x509", "-req", "-in", p(who + ".csr"), "-CA", p("ca.crt"),
                             "-CAkey", p("ca.key"), "-CAcreateserial", "-out", p(who + ".crt"),
                             "-days", "2")
            else:
                self.openssl("x509", "-req", "-in", p(who + ".csr"), "-signkey", p(who + ".key"),
                             "-out", p(who + ".crt"), "-days", "2")
        redis = Redis(d).start()
        keyring = os.path.join(d, "keyring.ini")
        with open(keyring, "w") as f:
            f.write(Bureau(pb).keyring)
        opts = lanes(os.path.join(d, "sends.log"))
        opts.update({("server", "tls_cert"): p("srv.crt"), ("server", "tls_key"): p("srv.key"),
                     ("operators", "client_ca"): p("ca.crt"), ("server", "threads"): "1"})
        t = Tocsind(TOCSIND, d, redis.address, keyring, opts).start()
        try:
            url = "https://localhost:%d/metrics" % t.port

            def get(*cert):
                r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                    "--cacert", p("srv.crt")] + list(cert) + [url],
                                   capture_output=True, text=True)
                return r.stdout
            self.assertEqual(get("--cert", p("op.crt"), "--key", p("op.key")), "200")
            self.assertEqual(get(), "401")  # no certificate, no token
            # A certificate the operators' CA did not sign: refused.
            self.assertIn(get("--cert", p("rogue.crt"), "--key", p("rogue.key")), ("401", "000"))
        finally:
            t.stop()
            redis.stop()


from cdp import Chromium  # noqa: E402

if __name__ == "__main__":
    ok = unittest.main(verbosity=2, exit=False).result.wasSuccessful()
    if ok:  # kept when something failed: the logs are there
        shutil.rmtree(WORK, ignore_errors=True)
    sys.exit(0 if ok else 1)
