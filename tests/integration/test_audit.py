#!/usr/bin/python3
"""tests/integration/test_audit.py: the audit log of a real tocsind.

Admission, rejection, cancel, update and keyring reload (SIGHUP) are
written; `tocsin audit verify` passes, the chain continues across a
restart, and fails naming the line after the file is tampered with.

usage: /usr/bin/python3 test_audit.py SOURCE_DIR BUILD_DIR
"""
import json
import os
import signal
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Redis, Tocsind  # noqa: E402
from bureau import Bureau, load_pb  # noqa: E402

SRC, BUILD = sys.argv[1], sys.argv[2]
del sys.argv[1:3]
TOCSIND = os.path.join(BUILD, "engine", "tocsind")
TOCSIN = os.path.join(BUILD, "engine", "tocsin")
WORK = tempfile.mkdtemp(prefix="tocsin-audit-")
pb = load_pb(SRC)


def post(url, body):
    req = urllib.request.Request(url + "/v1/warnings", data=body,
                                 headers={"Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def entries(path):
    with open(path) as f:
        return [json.loads(l) for l in f]


def verify(path):
    return subprocess.run([TOCSIN, "audit", "verify", path], capture_output=True, text=True)


class Audit(unittest.TestCase):
    def test_audit_chain(self):
        redis = Redis(WORK).start()
        subprocess.run(["redis-cli", "-p", str(redis.port), "HSET", "tocsin:seg:350102",
                        "census", "1"], capture_output=True)
        bureau = Bureau(pb)
        keyring = os.path.join(WORK, "keyring.ini")
        with open(keyring, "w") as f:
            f.write(bureau.keyring)
        log = os.path.join(WORK, "audit.log")
        opts = {("audit", "file"): log, ("dispatch", "enabled"): "false"}
        d = Tocsind(TOCSIND, WORK, redis.address, keyring, opts).start()
        try:
            w = bureau.warning(targets=[])
            w.msg_type = pb.CANCEL  # no population needed: a Cancel has no targets
            w.references.append("w-earlier")
            self.assertEqual(post(d.url, bureau.sign(w)), 202)
            u = bureau.warning(targets=[], msg_type=pb.CANCEL, references=["w-other"])
            self.assertEqual(post(d.url, bureau.sign(u)), 202)
            bad = bytearray(bureau.sign(bureau.warning(targets=[])))
            bad[-1] ^= 1
            self.assertIn(post(d.url, bytes(bad)), (400, 401, 403, 422))
            d.proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            d.stop()
            d.start()  # the chain continues across a restart
            self.assertEqual(post(d.url, bureau.sign(bureau.warning(
                targets=[], msg_type=pb.CANCEL, references=["w-third"]))), 202)
            d.proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
        finally:
            d.stop()
            redis.stop()
        got = entries(log)
        events = [e["event"] for e in got]
        self.assertEqual(events.count("cancel"), 3, events)
        self.assertIn("reject", events)
        self.assertEqual(events.count("keyring_reload"), 2)
        self.assertEqual([e["seq"] for e in got], list(range(1, len(got) + 1)))
        self.assertEqual(got[0]["detail"]["id"], w.identifier)
        r = verify(log)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("%d entries" % len(got), r.stdout)
        self.assertIn(got[-1]["hash"], r.stdout)
        with open(log) as f:
            lines = f.readlines()
        tampered = os.path.join(WORK, "tampered.log")
        with open(tampered, "w") as f:
            f.writelines(lines[:1] + [lines[1].replace(u.identifier, "w-forged")] + lines[2:])
        r = verify(tampered)
        self.assertEqual(r.returncode, 1)
        self.assertIn("tampered.log:2:", r.stdout)


if __name__ == "__main__":
    ok = unittest.main(verbosity=2, exit=False).result.wasSuccessful()
    if ok:  # kept when something failed: the logs are there
        shutil.rmtree(WORK, ignore_errors=True)
    sys.exit(0 if ok else 1)
