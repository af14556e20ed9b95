#!/usr/bin/python3
"""tests/integration/test_ingest.py: signed ingest end to end, by an independent client.

The warning is built with Debian's python3-protobuf (module generated from
proto/warning.proto by protoc at test time) and signed with
python3-cryptography: no tocsin code encodes or signs it. It is submitted
with curl over HTTP/1.1, with nghttp over h2c, and with curl and nghttp over
TLS (ALPN h2), to a real tocsind journalling into a real redis-server.
Every rejection the admission rules define has a case here, and each checks
that nothing of the rejected warning remains.

usage: /usr/bin/python3 test_ingest.py SOURCE_DIR BUILD_DIR
"""
import base64
import http.client
import json
import os
import re
import signal
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Redis, Tocsind, free_port  # noqa: E402

SRC, BUILD = sys.argv[1], sys.argv[2]
del sys.argv[1:3]
TOCSIND = os.path.join(BUILD, "engine", "tocsind")
TOCSIN = os.path.join(BUILD, "engine", "tocsin")
WORK = tempfile.mkdtemp(prefix="tocsin-ingest-")

subprocess.run(["protoc", "--python_out=" + WORK, "-I", os.path.join(SRC, "proto"),
                "warning.proto"], check=True)
sys.path.insert(0, WORK)
import warning_pb2 as pb  # noqa: E402

SENDER = "met.fuzhou.gov.cn"
KEYS = {}

# A tiny population holding every target the tests use (admission answers
# 422 for targets that are neither segments nor households).
POPULATION = {
    "segments.csv": """id,kind,parent,name,population
350102,district,,鼓楼区,12
350102001,street,350102,鼓东街道,6
350102002,street,350102,鼓西街道,6
350102001001,community,350102001,东一社区,6
350102002001,community,350102002,西一社区,6
350102001001B0001,building,350102001001,1号楼,6
350102002001B0001,building,350102002001,1号楼,6
""",
    "households.csv": """id,building,persons,lang,phones,apps
350102001001B0001H001,350102001001B0001,2,zh-CN,+8613800000001,
350102001001B0001H002,350102001001B0001,3,zh-CN,+8613800000002;+8613800000003,fcm:tok-a
350102002001B0001H001,350102002001B0001,4,en-US,+8613800000004,apns:tok-b
""",
    "terminals.csv": "id,segment,kind,covers_persons,secret\n",
}


def load_population(redis):
    d = os.path.join(WORK, "population")
    os.makedirs(d, exist_ok=True)
    for name, text in POPULATION.items():
        with open(os.path.join(d, name), "w", encoding="utf-8") as f:
            f.write(text)
    subprocess.run([TOCSIN, "load", "--redis", redis.address, "--dir", d], check=True,
                   capture_output=True)


def new_key(name):
    k = ed25519.Ed25519PrivateKey.generate()
    KEYS[name] = k
    der = k.public_key().public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def keyring_text(extra=""):
    return """
[py-ed]
sender = {s}
algorithm = ed25519
public_key = {a}
segments = 350102
statuses = Actual, Exercise, Test

[py-revoked]
sender = {s}
algorithm = ed25519
public_key = {b}
revoked = true
segments = 350102
statuses = Actual

[py-expired]
sender = {s}
algorithm = ed25519
public_key = {c}
not_before = 2020-01-01T00:00:00+08:00
not_after = 2021-01-01T00:00:00+08:00
segments = 350102
statuses = Actual

[py-narrow]
sender = {s}
algorithm = ed25519
public_key = {d}
segments = 350102001
statuses = Exercise
""".format(s=SENDER, a=new_key("py-ed"), b=new_key("py-revoked"), c=new_key("py-expired"),
           d=new_key("py-narrow")) + extra


_counter = [0]


def warning(ident=None, **kw):
    _counter[0] += 1
    now = int(time.time())
    w = pb.Warning(identifier=ident or "py-%d-%d" % (os.getpid(), _counter[0]),
                   sender=kw.pop("sender", SENDER), sent=kw.pop("sent", now),
                   status=kw.pop("status", pb.ACTUAL), msg_type=kw.pop("msg_type", pb.ALERT),
                   scope=pb.PUBLIC, colour=pb.RED,
                   targets=kw.pop("targets", ["350102001", "350102002001"]))
    info = w.info.add(language="zh-CN", category=[pb.MET], event="台风",
                      urgency=pb.IMMEDIATE, severity=pb.EXTREME, certainty=pb.OBSERVED,
                      headline=kw.pop("headline", "鼓楼区台风红色预警"),
                      expires=kw.pop("expires", now + 3600),
                      instruction="请留在室内，远离门窗。")
    info.area.add(area_desc="福州市鼓楼区")
    assert not kw, kw
    return w


def signed(w, key="py-ed", key_id=None, tamper=False):
    payload = w.SerializeToString() if isinstance(w, pb.Warning) else w
    sig = KEYS[key].sign(payload)
    if tamper:
        payload = payload[:-1] + bytes([payload[-1] ^ 1])
    return pb.SignedWarning(payload=payload, signature=sig,
                            key_id=key_id or key).SerializeToString()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write_body(body):
    path = os.path.join(WORK, "body-%d.bin" % time.monotonic_ns())
    with open(path, "wb") as f:
        f.write(body)
    return path


def parse_json(text):
    i = text.find('{"')
    if i < 0:
        return None
    return json.JSONDecoder().raw_decode(text[i:])[0]


def curl(url, body=None, ctype="application/x-protobuf", extra=()):
    cmd = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}"] + list(extra)
    if body is not None:
        cmd += ["-H", "Content-Type: " + ctype, "--data-binary", "@" + write_body(body)]
    out = subprocess.run(cmd + [url], capture_output=True, check=True).stdout.decode()
    text, _, code = out.rpartition("\n")
    return int(code), parse_json(text)


def nghttp(url, body, ctype="application/x-protobuf"):
    cmd = ["nghttp", "-v", "-H", "content-type: " + ctype, "-d", write_body(body), url]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout.decode()
    m = re.search(r":status: (\d+)", out)
    return int(m.group(1)), parse_json(out[m.end():])


class Ingest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.keyring = os.path.join(WORK, "keyring.ini")
        with open(cls.keyring, "w") as f:
            f.write(keyring_text())
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                        os.path.join(WORK, "tls.key"), "-out", os.path.join(WORK, "tls.crt"),
                        "-days", "2", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True)
        cls.redis = Redis(WORK).start()
        load_population(cls.redis)
        cls.d = Tocsind(TOCSIND, WORK, cls.redis.address, cls.keyring,
                        {("server", "tls_cert"): "tls.crt", ("server", "tls_key"): "tls.key"}
                        ).start()
        cls.base = cls.d.url
        cls.tls = "https://localhost:%d" % cls.d.port
        cls.cacert = os.path.join(WORK, "tls.crt")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.redis.stop()

    def post(self, body, via="http1", ctype="application/x-protobuf"):
        if via == "http1":
            return curl(self.base + "/v1/warnings", body, ctype, ["--http1.1"])
        if via == "h2c":
            return nghttp(self.base + "/v1/warnings", body, ctype)
        if via == "tls-curl":
            return curl(self.tls + "/v1/warnings", body, ctype,
                        ["--http2", "--cacert", self.cacert])
        if via == "tls-nghttp":
            return nghttp(self.tls + "/v1/warnings", body, ctype)
        raise ValueError(via)

    def status_of(self, ident):
        return curl(self.base + "/v1/warnings/" + ident)

    def assertRejected(self, body, status, error, field=None, ident=None,
                       vias=("http1", "h2c")):
        for via in vias:
            code, j = self.post(body, via)
            self.assertEqual(code, status, (via, j))
            self.assertEqual(j["error"], error, (via, j))
            if field is not None:
                self.assertEqual(j.get("field"), field, (via, j))
            self.assertTrue(j.get("reason"), j)
        if ident:  # nothing half-admitted
            self.assertEqual(self.status_of(ident)[0], 404)

    # --- admitted ---

    def test_admit_over_every_transport(self):
        for via in ("http1", "h2c", "tls-curl", "tls-nghttp"):
            w = warning()
            code, j = self.post(signed(w), via)
            self.assertEqual(code, 202, (via, j))
            self.assertEqual(j["id"], w.identifier)
            self.assertEqual(j["status_url"], "/v1/warnings/" + w.identifier)
            code, s = self.status_of(w.identifier)
            self.assertEqual(code, 200)
            self.assertEqual(s["state"], "admitted")
            self.assertEqual(s["warning"]["sender"], SENDER)
            self.assertEqual(s["warning"]["info"][0]["headline"], "鼓楼区台风红色预警")
            self.assertEqual(s["warning"]["targets"], ["350102001", "350102002001"])
            self.assertEqual(s["warning"]["colour"], "red")

    def test_same_bytes_same_answer(self):
        body = signed(warning())
        first = self.post(body, "http1")
        self.assertEqual(first[0], 202)
        for via in ("http1", "h2c", "tls-curl"):
            self.assertEqual(self.post(body, via), first)

    def test_same_id_other_bytes_conflicts(self):
        w = warning()
        self.assertEqual(self.post(signed(w))[0], 202)
        w.info[0].headline = "改过的标题"
        self.assertRejected(signed(w), 409, "conflict", "identifier")
        self.assertEqual(self.status_of(w.identifier)[1]["warning"]["info"][0]["headline"],
                         "鼓楼区台风红色预警")

    def test_redis_record_is_journalled(self):
        w = warning()
        self.assertEqual(self.post(signed(w))[0], 202)
        self.assertIn(w.identifier, self.redis.cli("ZRANGE", "tocsin:active", "0", "-1"))
        self.assertIn(w.identifier, self.redis.cli("XRANGE", "tocsin:journal", "-", "+"))

    # --- rejections ---

    def test_400_malformed_envelope(self):
        self.assertRejected(b"\xff\xff\xff garbage", 400, "malformed", "envelope")

    def test_400_missing_signature(self):
        body = pb.SignedWarning(payload=warning().SerializeToString(),
                                key_id="py-ed").SerializeToString()
        self.assertRejected(body, 400, "malformed", "envelope")

    def test_400_payload_not_a_warning(self):
        self.assertRejected(signed(b"\xff\xff\xff\xff not protobuf"), 400, "malformed", "payload")

    def test_400_expired_names_field(self):
        w = warning(expires=int(time.time()) - 10)
        self.assertRejected(signed(w), 400, "invalid_field", "info[0].expires", w.identifier)

    def test_400_missing_headline(self):
        w = warning(headline="")
        self.assertRejected(signed(w), 400, "invalid_field", "info[0].headline", w.identifier)

    def test_400_sent_outside_window(self):
        w = warning(sent=int(time.time()) - 7200)
        self.assertRejected(signed(w), 400, "invalid_field", "sent", w.identifier)

    def test_400_bad_identifier(self):
        w = warning(ident="has space")
        self.assertRejected(signed(w), 400, "invalid_field", "identifier")

    def test_400_update_without_references(self):
        w = warning(msg_type=pb.UPDATE)
        self.assertRejected(signed(w), 400, "invalid_field", "references", w.identifier)

    def test_401_unknown_key(self):
        w = warning()
        self.assertRejected(signed(w, key_id="nobody"), 401, "unknown_key", "key_id",
                            w.identifier)

    def test_401_bad_signature(self):
        w = warning()
        self.assertRejected(signed(w, tamper=True), 401, "bad_signature", "signature",
                            w.identifier)

    def test_401_signed_by_another_key(self):
        w = warning()
        body = pb.SignedWarning(payload=w.SerializeToString(),
                                signature=KEYS["py-revoked"].sign(w.SerializeToString()),
                                key_id="py-ed").SerializeToString()
        self.assertRejected(body, 401, "bad_signature", None, w.identifier)

    def test_403_revoked(self):
        w = warning()
        self.assertRejected(signed(w, "py-revoked"), 403, "key_revoked", None, w.identifier)

    def test_403_key_outside_validity(self):
        w = warning()
        self.assertRejected(signed(w, "py-expired"), 403, "key_not_current", None, w.identifier)

    def test_403_sender_mismatch(self):
        w = warning(sender="someone.else.gov.cn")
        self.assertRejected(signed(w), 403, "sender_mismatch", "sender", w.identifier)

    def test_403_target_out_of_scope(self):
        w = warning(status=pb.EXERCISE, targets=["350102001001", "350102002"])
        self.assertRejected(signed(w, "py-narrow"), 403, "out_of_scope", "targets",
                            w.identifier)
        w2 = warning(targets=["350103001"])
        self.assertRejected(signed(w2), 403, "out_of_scope", "targets", w2.identifier)

    def test_403_status_out_of_scope(self):
        w = warning(status=pb.ACTUAL, targets=["350102001001"])
        self.assertRejected(signed(w, "py-narrow"), 403, "out_of_scope", "status", w.identifier)

    def assertUnknownTargets(self, targets, unknown):
        w = warning(targets=targets)
        for via in ("http1", "h2c"):
            code, j = self.post(signed(w), via)
            self.assertEqual(code, 422, (via, j))
            self.assertEqual(j["error"], "unknown_targets", j)
            self.assertEqual(j["field"], "targets", j)
            self.assertEqual(sorted(j["ids"]), sorted(unknown), j)
            self.assertTrue(j["reason"], j)
        self.assertEqual(self.status_of(w.identifier)[0], 404)  # nothing journalled
        self.assertNotIn(w.identifier, self.redis.cli("XRANGE", "tocsin:journal", "-", "+"))

    def test_422_unknown_street(self):
        self.assertUnknownTargets(["350102001", "350102009", "350102002001"], ["350102009"])

    def test_422_unknown_household(self):
        self.assertUnknownTargets(["350102001001B0001H999", "350102002001B0001H001",
                                   "350102001001B0009H001"],
                                  ["350102001001B0001H999", "350102001001B0009H001"])

    def test_household_and_building_targets_admitted(self):
        w = warning(targets=["350102002001B0001H001", "350102001001B0001", "350102"])
        self.assertEqual(self.post(signed(w))[0], 202)

    def test_cancel_needs_no_targets(self):
        w = warning(msg_type=pb.CANCEL, targets=[])
        w.references.append("py-earlier")
        self.assertEqual(self.post(signed(w))[0], 202)

    def test_413_too_large(self):
        body = b"\x0a" + b"\xff" * 70000
        for via in ("http1", "h2c", "tls-curl"):
            code, j = self.post(body, via)
            self.assertEqual(code, 413, via)
            self.assertEqual(j["error"], "too_large")

    def test_415_wrong_content_type(self):
        w = warning()
        self.assertRejected(signed(w), 415, "unsupported_media_type", "content-type",
                            w.identifier, vias=())
        for via in ("http1", "h2c"):
            code, j = self.post(signed(w), via, ctype="application/json")
            self.assertEqual((code, j["error"]), (415, "unsupported_media_type"))

    def test_404_and_405(self):
        self.assertEqual(curl(self.base + "/nowhere")[0], 404)
        self.assertEqual(curl(self.base + "/v1/warnings")[0], 405)
        self.assertEqual(self.status_of("never-admitted")[0], 404)

    def test_keep_alive_pipelined_http1(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port)
        for _ in range(3):
            w = warning()
            conn.request("POST", "/v1/warnings", signed(w),
                         {"Content-Type": "application/x-protobuf"})
            r = conn.getresponse()
            self.assertEqual(r.status, 202)
            self.assertEqual(json.loads(r.read())["id"], w.identifier)
        conn.close()

    def test_healthz(self):
        code, j = curl(self.base + "/healthz")
        self.assertEqual((code, j["redis"]), (200, "up"))


class Faults(unittest.TestCase):
    """Each case runs its own redis-server and tocsind."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="fault-", dir=WORK)
        self.keyring = os.path.join(self.dir, "keyring.ini")
        with open(self.keyring, "w") as f:
            f.write(keyring_text())
        self.redis = Redis(self.dir).start()
        load_population(self.redis)
        self.d = None

    def tearDown(self):
        if self.redis.proc and self.redis.proc.poll() is None:
            os.kill(self.redis.proc.pid, signal.SIGCONT)
        if self.d:
            self.d.stop(signal.SIGKILL)
        self.redis.stop()

    def start(self, **extra):
        self.d = Tocsind(TOCSIND, self.dir, self.redis.address, self.keyring,
                         {tuple(k.split("__")): v for k, v in extra.items()}).start()
        return self.d

    def test_survives_kill_9(self):
        d = self.start()
        w = warning()
        self.assertEqual(curl(d.url + "/v1/warnings", signed(w))[0], 202)
        d.stop(signal.SIGKILL)
        self.redis.stop()  # the journal must be on disk, not just in Redis' memory
        self.redis.start()
        d.start()
        deadline = time.time() + 5
        while True:
            code, j = curl(d.url + "/v1/warnings/" + w.identifier)
            if code == 200 or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(code, 200, j)
        self.assertEqual(j["state"], "admitted")

    def test_503_when_journal_down_then_recovers(self):
        d = self.start()
        self.redis.stop()
        w = warning()
        code, j = curl(d.url + "/v1/warnings", signed(w))
        self.assertEqual((code, j["error"]), (503, "journal_unavailable"))
        self.assertEqual(curl(d.url + "/healthz")[0], 503)
        self.redis.start()
        deadline = time.time() + 10
        while curl(d.url + "/healthz")[0] != 200 and time.time() < deadline:
            time.sleep(0.1)
        code, j = curl(d.url + "/v1/warnings", signed(w))
        self.assertEqual(code, 202, j)

    def test_script_cache_flushed_still_admits(self):
        # a restarted Redis (or SCRIPT FLUSH) forgets the admission script: the
        # admission is sent again whole (EVAL), not refused
        d = self.start()
        self.assertEqual(curl(d.url + "/v1/warnings", signed(warning()))[0], 202)
        self.redis.cli("SCRIPT", "FLUSH")
        code, j = curl(d.url + "/v1/warnings", signed(warning()))
        self.assertEqual(code, 202, j)
        self.assertEqual(curl(d.url + "/v1/warnings", signed(warning()))[0], 202)

    def test_429_when_admission_queue_full(self):
        d = self.start(server__threads="1", admission__queue="1")
        os.kill(self.redis.proc.pid, signal.SIGSTOP)  # the journal stalls
        first = subprocess.Popen(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-H",
                                  "Content-Type: application/x-protobuf", "--data-binary",
                                  "@" + write_body(signed(warning())), d.url + "/v1/warnings"],
                                 stdout=subprocess.PIPE)
        time.sleep(0.5)
        code, j = curl(d.url + "/v1/warnings", signed(warning()))
        self.assertEqual((code, j["error"]), (429, "admission_queue_full"))
        os.kill(self.redis.proc.pid, signal.SIGCONT)
        out = first.communicate(timeout=10)[0].decode()
        self.assertTrue(out.endswith("202"), out)

    def test_sighup_reloads_keyring_keeping_connections(self):
        d = self.start()
        conn = http.client.HTTPConnection("127.0.0.1", d.port)
        conn.request("GET", "/healthz")
        self.assertEqual(conn.getresponse().read() and 200, 200)
        with open(self.keyring, "a") as f:
            f.write("\n[py-new]\nsender = %s\nalgorithm = ed25519\npublic_key = %s\n"
                    "segments = 350102\nstatuses = Actual\n" % (SENDER, new_key("py-new")))
        w = warning()
        self.assertEqual(curl(d.url + "/v1/warnings", signed(w, "py-new"))[0], 401)
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while b"keys=5" not in read(d.log) and time.time() < deadline:
            time.sleep(0.05)
        conn.request("POST", "/v1/warnings", signed(w, "py-new"),
                     {"Content-Type": "application/x-protobuf"})
        self.assertEqual(conn.getresponse().status, 202)  # same connection, new key
        # A broken keyring is refused and the old one stays.
        with open(self.keyring, "a") as f:
            f.write("\n[broken]\nalgorithm = rsa\n")
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        self.assertIn(b"keyring reload failed", read(d.log))
        self.assertEqual(curl(d.url + "/v1/warnings", signed(warning(), "py-new"))[0], 202)
        conn.close()

    def test_422_when_no_population_loaded(self):
        d = self.start()
        self.redis.cli("DEL", "tocsin:pop:current")
        w = warning()
        code, j = curl(d.url + "/v1/warnings", signed(w))
        self.assertEqual((code, j["error"]), (422, "unknown_targets"), j)
        self.assertEqual(j["reason"], "no population data loaded")
        self.assertEqual(sorted(j["ids"]), ["350102001", "350102002001"])
        self.assertEqual(curl(d.url + "/v1/warnings/" + w.identifier)[0], 404)

    def test_sigterm_stops_cleanly(self):
        d = self.start()
        self.assertEqual(curl(d.url + "/v1/warnings", signed(warning()))[0], 202)
        self.assertEqual(d.stop(signal.SIGTERM), 0)
        self.assertIn(b"tocsind stopped", read(d.log))

    def test_startup_errors_name_the_problem(self):
        bad = os.path.join(self.dir, "bad.ini")
        with open(bad, "w") as f:
            f.write("[server]\nlisten = 127.0.0.1:1\nthreds = 2\n")
        r = subprocess.run([TOCSIND, "--config", bad], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("bad.ini:3:", r.stderr)
        self.assertIn("threds", r.stderr)
        d = self.start()
        clash = os.path.join(self.dir, "clash.ini")
        with open(clash, "w") as f:
            f.write("[server]\nlisten = 127.0.0.1:%d\n[keyring]\nfile = %s\n"
                    "[redis]\naddress = %s\n" % (d.port, self.keyring, self.redis.address))
        r = subprocess.run([TOCSIND, "--config", clash], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot listen on 127.0.0.1:%d" % d.port, r.stderr)
        missing = os.path.join(self.dir, "missing.ini")
        with open(missing, "w") as f:
            f.write("[keyring]\nfile = /nonexistent/keys.ini\n")
        r = subprocess.run([TOCSIND, "--config", missing], capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("/nonexistent/keys.ini", r.stderr)


class Sm2(unittest.TestCase):
    """SM2 with SM3, signed by the openssl command line (an independent signer)."""

    def test_sm2_signed_by_openssl_cli(self):
        d = tempfile.mkdtemp(prefix="sm2-", dir=WORK)
        key, pub = os.path.join(d, "sm2.key"), os.path.join(d, "sm2.pub")
        subprocess.run(["openssl", "genpkey", "-algorithm", "SM2", "-out", key], check=True)
        subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER", "-out", pub],
                       check=True)
        keyring = os.path.join(d, "keyring.ini")
        with open(keyring, "w") as f:
            f.write("[sm2-1]\nsender = %s\nalgorithm = sm2-sm3\npublic_key = %s\n"
                    "segments = 350102\nstatuses = Actual\n"
                    % (SENDER, base64.b64encode(read(pub)).decode()))
        redis = Redis(d).start()
        load_population(redis)
        srv = Tocsind(TOCSIND, d, redis.address, keyring).start()
        try:
            w = warning()
            payload = os.path.join(d, "payload.bin")
            with open(payload, "wb") as f:
                f.write(w.SerializeToString())
            sig = subprocess.run(["openssl", "dgst", "-sm3", "-sign", key, "-sigopt",
                                  "distid:1234567812345678", payload],
                                 capture_output=True, check=True).stdout
            body = pb.SignedWarning(payload=w.SerializeToString(), signature=sig,
                                    key_id="sm2-1").SerializeToString()
            self.assertEqual(curl(srv.url + "/v1/warnings", body)[0], 202)
            bad = pb.SignedWarning(payload=w.SerializeToString() + b"\x00", signature=sig,
                                   key_id="sm2-1").SerializeToString()
            self.assertEqual(curl(srv.url + "/v1/warnings", bad)[0], 401)
        finally:
            srv.stop()
            redis.stop()


if __name__ == "__main__":
    ok = unittest.main(verbosity=2, exit=False).result.wasSuccessful()
    if ok:  # kept when something failed: the logs are there
        shutil.rmtree(WORK, ignore_errors=True)
    sys.exit(0 if ok else 1)
