#!/usr/bin/python3
"""tests/integration/test_terminal_status.py: broadcast readiness in tocsind's
/v1/status and /metrics, with the real terminal gateway and bench/terminal_swarm.

A generated district (bench/gen_district: 2-6 speakers per community, a
display in ~30% of buildings, so coverage overlaps) is loaded into a private
redis-server; tocsind runs one terminal lane; a swarm connects a third of
the terminals. The expected readiness is computed here from the CSV files
(a speaker on a community covers its persons; a display its building's; a
person counts once) and compared, segment by segment, with what tocsind
shows in /v1/status (lanes[].adapter.segments, readiness) and in /metrics
(tocsin_adapter_segments_covered{...}). Then half of those terminals
disconnect and the figures must follow.

Status reports: three more terminals log in with `--status 0:amplifier,mains`
(Status{volume 0, faults} after Welcome); the readiness object counts them as
faulty and muted and lists their faults, /metrics has the same (and passes
promtool), and the reports stand after the terminals go offline.

usage: /usr/bin/python3 test_terminal_status.py SOURCE_DIR BUILD_DIR
"""
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Redis, Tocsind, free_port  # noqa: E402
from bureau import Bureau, load_pb  # noqa: E402

SRC, BUILD = sys.argv[1], sys.argv[2]
del sys.argv[1:3]
TOCSIND = os.path.join(BUILD, "engine", "tocsind")
TOCSIN = os.path.join(BUILD, "engine", "tocsin")
GEN = os.path.join(BUILD, "bench", "gen_district")
SWARM = os.path.join(BUILD, "bench", "terminal_swarm")
WORK = tempfile.mkdtemp(prefix="tocsin-terminal-status-")
DISTRICT = os.path.join(WORK, "district")


def read_csv(name):
    with open(os.path.join(DISTRICT, name), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def expected_readiness(segments, households, online):
    """{segment id: (persons, covered)} for districts, streets and communities."""
    kind = {s["id"]: s["kind"] for s in segments}
    parent = {s["id"]: s["parent"] for s in segments}
    persons = {s["id"]: 0 for s in segments}
    for h in households:
        seg = h["building"]
        while seg:
            persons[seg] += int(h["persons"])
            seg = parent[seg]
    lit = {t["segment"] for t in online}
    covered = {}
    for c in (s for s in segments if s["kind"] == "community"):
        cid = c["id"]
        if cid in lit:
            covered[cid] = persons[cid]
        else:
            covered[cid] = sum(persons[b["id"]] for b in segments
                               if b["kind"] == "building" and b["parent"] == cid and b["id"] in lit)
    for k in ("street", "district"):
        for s in (s for s in segments if s["kind"] == k):
            covered[s["id"]] = sum(v for cid, v in list(covered.items())
                                   if parent.get(cid) == s["id"])
    return {sid: (persons[sid], covered[sid]) for sid in covered if kind[sid] != "building"}


class TerminalStatus(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        subprocess.run([GEN, "--seed", "11", "--scale", "0.02", "--out", DISTRICT], check=True,
                       capture_output=True)
        cls.segments = read_csv("segments.csv")
        cls.households = read_csv("households.csv")
        cls.terminals = read_csv("terminals.csv")
        cls.redis = Redis(WORK).start()
        subprocess.run([TOCSIN, "load", "--redis", cls.redis.address, "--dir", DISTRICT],
                       check=True, capture_output=True)
        bureau = Bureau(load_pb(SRC))
        keyring = os.path.join(WORK, "keyring.ini")
        with open(keyring, "w") as f:
            f.write(bureau.keyring)
        cls.term_port = free_port()
        lane = "lane terminals"
        opts = {("dispatch", "channels"): "terminal", ("server", "threads"): "1",
                (lane, "channel"): "terminal", (lane, "adapter"): "terminal",
                (lane, "listen"): "127.0.0.1:%d" % cls.term_port,
                (lane, "window"): str(len(cls.terminals) + 10)}
        cls.d = Tocsind(TOCSIND, WORK, cls.redis.address, keyring, opts).start()
        cls.swarms = []

    @classmethod
    def tearDownClass(cls):
        for p in cls.swarms:
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        cls.d.stop()
        cls.redis.stop()
        shutil.rmtree(WORK, ignore_errors=True)

    def swarm(self, name, rows, extra=()):
        path = os.path.join(WORK, name + ".csv")
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(self.terminals[0].keys()))
            w.writeheader()
            w.writerows(rows)
        p = subprocess.Popen([SWARM, "--csv", path, "--target", "127.0.0.1:%d" % self.term_port,
                              "--count", str(len(rows))] + list(extra),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.swarms.append(p)
        return p

    def get(self, path):
        for _ in range(50):  # 503 until the dispatcher's first snapshot
            try:
                with urllib.request.urlopen(self.d.url + path, timeout=10) as r:
                    return r.read().decode()
            except urllib.error.HTTPError as e:
                if e.code != 503:
                    raise
                time.sleep(0.1)
        self.fail("%s: still 503" % path)

    def lane(self):
        status = json.loads(self.get("/v1/status"))
        return status, next(l for l in status["lanes"] if l["name"] == "terminals")

    def wait_online(self, n, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            status, lane = self.lane()
            if lane["adapter"].get("terminals_online") == n and lane["adapter"].get("segments"):
                time.sleep(0.3)  # the status snapshot is rebuilt every tick
                return self.lane()
            time.sleep(0.1)
        self.fail("terminals online %s, wanted %d" % (lane["adapter"].get("terminals_online"), n))

    def check(self, online):
        status, lane = self.wait_online(len(online))
        want = expected_readiness(self.segments, self.households, online)
        got = {s["segment"]: s for s in lane["adapter"]["segments"]}
        self.assertEqual(set(got), set(want))
        for sid, (persons, covered) in want.items():
            self.assertEqual((got[sid]["persons"], got[sid]["covered"]), (persons, covered), sid)
            self.assertAlmostEqual(got[sid]["share"], covered / persons if persons else 0)
        district = next(s["id"] for s in self.segments if s["kind"] == "district")
        persons, covered = want[district]
        r = status["readiness"]
        self.assertEqual((r["persons_online"], r["population"]), (covered, persons))
        self.assertAlmostEqual(r["share"], covered / persons)
        self.assertEqual(r["terminals_online"], len(online))
        self.assertEqual(r["terminals_total"], len(self.terminals))
        self.assertEqual(len(r["offline_longest"]), 10)
        online_ids = {t["id"] for t in online}
        self.assertFalse(online_ids & {t["id"] for t in r["offline_longest"]})
        metrics = self.get("/metrics")
        for sid, (persons, covered) in want.items():
            m = re.search(r'^tocsin_adapter_segments_covered\{lane="terminals",segment="%s",'
                          r'kind="[a-z]+"\} (\d+)$' % re.escape(sid), metrics, re.M)
            self.assertIsNotNone(m, sid)
            self.assertEqual(int(m.group(1)), covered, sid)
        self.assertRegex(metrics, r'(?m)^tocsin_adapter_persons_online\{lane="terminals"\} %d$'
                         % covered)
        self.assertRegex(metrics, r'(?m)^tocsin_adapter_offline_longest_last_seen\{lane="terminals",'
                         r'id="[^"]+"\} \d+$')
        self.assertRegex(metrics, r'(?m)^tocsin_adapter_closed_bad_mac\{lane="terminals"\} \d+$')
        return covered, persons

    def test_readiness_follows_the_terminals(self):
        a = self.terminals[0::3]
        b = a[: len(a) // 2]
        rest = a[len(a) // 2:]
        pa = self.swarm("first", b)
        self.swarm("second", rest)
        covered1, persons = self.check(a)
        self.assertTrue(0 < covered1 < persons)
        pa.terminate()
        pa.wait(10)
        covered2, _ = self.check(rest)
        self.assertLess(covered2, covered1)
        r = subprocess.run(["promtool", "check", "metrics"], input=self.get("/metrics"),
                           capture_output=True, text=True)
        # Adapter gauges come grouped per family with HELP and TYPE: promtool is clean.
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr)[:2000])

    def test_status_reports_show_in_status_and_metrics(self):
        rows = self.terminals[1::3][:3]  # none of them in the other test's swarms
        ids = {t["id"] for t in rows}
        p = self.swarm("faulty", rows, ["--status", "0:amplifier,mains"])
        deadline = time.time() + 30
        while time.time() < deadline:
            r = json.loads(self.get("/v1/status"))["readiness"]
            if r["terminals_faulty"] >= 3:
                break
            time.sleep(0.1)
        self.assertEqual((r["terminals_faulty"], r["terminals_muted"]), (3, 3))
        listed = {f["id"]: f for f in r["faults_latest"]}
        self.assertEqual(set(listed) & ids, ids)
        for i in ids:
            self.assertEqual((listed[i]["faults"], listed[i]["volume"]), ("amplifier, mains", 0))
            self.assertGreater(listed[i]["at"], 0)
        metrics = self.get("/metrics")
        self.assertRegex(metrics, r'(?m)^tocsin_adapter_terminals_faulty\{lane="terminals"\} 3$')
        for i in ids:
            self.assertRegex(metrics, r'(?m)^tocsin_adapter_faults_latest_volume\{lane="terminals",'
                             r'id="%s",faults="amplifier, mains"\} 0$' % re.escape(i))
        r = subprocess.run(["promtool", "check", "metrics"], input=metrics, capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr)[:2000])
        # a report stands until the next one: gone offline, they still count
        p.terminate()
        p.wait(10)
        time.sleep(0.5)
        r = json.loads(self.get("/v1/status"))["readiness"]
        self.assertEqual(r["terminals_faulty"], 3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
