#!/usr/bin/python3
"""bench/harness/run.py: how fast does tocsin warn a whole district, and where does it break?

  /usr/bin/python3 bench/harness/run.py --build build [--scale 1] [--scenario NAME ...]
      [--smoke] [--province] [--scaling] [--out DIR] [--no-baselines] [--keep]

For each scenario (bench/harness/scenarios/*.ini, one small INI file each):
generate a district (bench/gen_district --scale S), load it into a private
redis-server (`tocsin load`), start smsc_sim, push_sim and tocsind with the
REAL adapters (smpp -> smsc_sim, push -> push_sim for apns/fcm/webhook,
terminal gateway <- terminal_swarm processes with the terminals.csv
secrets), submit the scenario's warnings signed by an independent signer
(tests/integration/bureau.py), watch GET /v1/status, and collect
/metrics, /proc and Redis INFO. Then the baselines, in the same run:
h2load to push_sim, bench/smpp_blaster to smsc_sim, a Mosquitto fan-out,
redis-benchmark LRANGE of a building list, openssl speed ed25519.

Writes OUT/harness.json, OUT/harness.md and OUT/harness-*.svg (default OUT =
bench/results); a full run (every scenario, not --smoke) also replaces the
"## Harness (issue 9)" section at the end of bench/RESULTS.md.

--smoke: a tiny district (scale 0.02), the scenarios marked `smoke = yes`,
small baselines; asserts the report's fields and >= 90% reached; < 60 s.
--province: also the province scenario (scale 14.5, ~10 M persons).
--scaling: the no-limit scenario at scales 0.145 and 1.45 (and 14.5 with
--province, taken from the province run): time to 90% and memory per person.

Every process is started here and stopped by pid (SIGTERM, then SIGKILL);
on any failure the error is printed and everything is stopped. Exit 77 when
a required Debian tool is missing.
"""
import argparse
import configparser
import glob
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
sys.path.insert(0, HERE)
from harness import Redis, Tocsind, free_port, wait_port  # noqa: E402
from bureau import Bureau, load_pb  # noqa: E402
import plots  # noqa: E402
import expect  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
CHANNELS = ("sms", "app", "terminal")
# The figure for one node. The gateway holds its sockets as io_uring direct
# descriptors (not bound by the 20,000-descriptor limit); the swarm runs as processes of
# SWARM_CHUNK terminals, each from its own 8 loopback source addresses (28k ports each).
TERMINALS_CAP = 100000
SWARM_CHUNK = 9000         # terminals per swarm process
REQUIRED_TOOLS = ("redis-server", "redis-cli", "redis-benchmark", "h2load", "openssl", "protoc",
                  "mosquitto")


class HarnessError(Exception):
    pass


def log(msg):
    print("[harness %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# --- processes -------------------------------------------------------------

class Signals:
    """SIGINT/SIGTERM raise HarnessError, except inside `with SIGNALS.deferred():` (between a fork
    and the pid being recorded), where the signal is remembered and raised on leaving, so no
    child can escape the list of processes to stop. While stopping everything, further
    signals are only remembered (a second Ctrl-C does not cut the cleanup short)."""

    def __init__(self):
        self.depth, self.pending, self.stopping = 0, None, False

    def handler(self, sig, _frame):
        if self.depth or self.stopping:
            self.pending = sig
            return
        raise HarnessError("interrupted by signal %d" % sig)

    def deferred(self):
        sigs = self

        class _Ctx:
            def __enter__(self):
                sigs.depth += 1

            def __exit__(self, *exc):
                sigs.depth -= 1
                if not sigs.depth and sigs.pending and not sigs.stopping and exc[0] is None:
                    sig, sigs.pending = sigs.pending, None
                    raise HarnessError("interrupted by signal %d" % sig)
        return _Ctx()


SIGNALS = Signals()


class Procs:
    """Every child process the harness starts, stopped by pid in reverse order."""

    def __init__(self):
        self.items = []

    def start(self, name, argv, logpath, **kw):
        f = open(logpath, "ab")
        with SIGNALS.deferred():
            p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, **kw)
            self.items.append((name, p, f))
        return p

    def start_helper(self, name, obj):
        """Start a tests/integration/harness.py object (Redis, Tocsind): its start() forks and
        then waits for the port, so the process is recorded even when the wait fails."""
        with SIGNALS.deferred():
            try:
                obj.start()
            finally:
                if getattr(obj, "proc", None) is not None:
                    self.items.append((name, obj.proc, getattr(obj, "logf", None)))
        return obj

    def stop(self, p, timeout=20):
        for i, (name, q, f) in enumerate(self.items):
            if q is p:
                _stop_pid(q, timeout)
                if f:
                    f.close()
                del self.items[i]
                return q.returncode

    def stop_all(self):
        SIGNALS.stopping = True
        while self.items:
            name, p, f = self.items.pop()
            _stop_pid(p, 10)
            if f:
                f.close()


def _stop_pid(p, timeout):
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGTERM)
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(5)
        except ProcessLookupError:
            pass


PROCS = Procs()


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def vm_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


BAD_UTF8 = []


def http_get(url, timeout=10):
    """The body as text. Invalid UTF-8 is replaced (and remembered for the report):
    tocsind once sent a lane's pause_reason with stray bytes in /v1/status."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        raw = r.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if len(BAD_UTF8) < 3:
            BAD_UTF8.append("%s: %s near %r" % (url.split("/", 3)[-1], e.reason, raw[max(0, e.start - 60):e.end + 20]))
        return raw.decode("utf-8", errors="replace")


def redis_info(port):
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO"], capture_output=True, text=True,
                         check=True).stdout
    info = {}
    for line in out.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.strip().split(":", 1)
            info[k] = v
    return {"cpu_s": float(info.get("used_cpu_sys", 0)) + float(info.get("used_cpu_user", 0)),
            "used_memory": int(info.get("used_memory", 0)),
            "used_memory_peak": int(info.get("used_memory_peak", 0)),
            "used_memory_rss": int(info.get("used_memory_rss", 0))}


# --- scenarios -------------------------------------------------------------

def load_scenario(path):
    cp = configparser.ConfigParser(inline_comment_prefixes=(";",), interpolation=None)
    cp.read(path, encoding="utf-8")
    name = re.sub(r"^\d+-", "", os.path.splitext(os.path.basename(path))[0])
    sc = {"name": name, "file": os.path.relpath(path, SRC),
          "scenario": dict(cp["scenario"]) if cp.has_section("scenario") else {},
          "smsc": dict(cp["smsc"]) if cp.has_section("smsc") else {},
          "push": dict(cp["push"]) if cp.has_section("push") else {},
          "terminals": dict(cp["terminals"]) if cp.has_section("terminals") else {},
          "warnings": []}
    for sec in cp.sections():
        if sec.startswith("warning "):
            w = dict(cp[sec])
            w["name"] = sec[8:].strip()
            sc["warnings"].append(w)
    sc["warnings"].sort(key=lambda w: float(w.get("at", 0)))
    return sc


def all_scenarios():
    return [load_scenario(p) for p in sorted(glob.glob(os.path.join(HERE, "scenarios", "*.ini")))]


# --- districts -------------------------------------------------------------

class Districts:
    def __init__(self, build, work):
        self.build, self.work, self.dirs = build, work, {}

    def get(self, scale):
        key = "%g" % scale
        if key not in self.dirs:
            d = os.path.join(self.work, "district-" + key)
            t0 = time.time()
            out = subprocess.run([os.path.join(self.build, "bench", "gen_district"), "--seed", "2026",
                                  "--scale", key, "--out", d], capture_output=True, text=True)
            if out.returncode:
                raise HarnessError("gen_district --scale %s failed: %s" % (key, out.stderr.strip()))
            log("district scale %s generated in %.1f s: %s" % (key, time.time() - t0,
                                                              out.stdout.strip().splitlines()[-1]))
            self.dirs[key] = d
        return self.dirs[key]


def split_terminals(district, outdir, cap):
    """terminals.csv in chunks of SWARM_CHUNK rows (the first `cap` terminals)."""
    with open(os.path.join(district, "terminals.csv"), encoding="utf-8") as f:
        header = f.readline()
        rows = f.readlines()
    total = len(rows)
    rows = rows[:cap]
    files = []
    for i in range(0, len(rows), SWARM_CHUNK):
        p = os.path.join(outdir, "terminals-%d.csv" % (i // SWARM_CHUNK))
        with open(p, "w", encoding="utf-8") as f:
            f.write(header)
            f.writelines(rows[i:i + SWARM_CHUNK])
        files.append((p, len(rows[i:i + SWARM_CHUNK])))
    return total, len(rows), files


# --- one scenario run --------------------------------------------------------

class Run:
    def __init__(self, args, sc, scale, district, pb, work):
        self.a, self.sc, self.scale, self.district, self.pb = args, sc, scale, district, pb
        self.work = os.path.join(work, "%s-%g" % (sc["name"], scale))
        os.makedirs(self.work, exist_ok=True)
        self.bin = lambda *p: os.path.join(args.build, *p)

    def _sim_stats(self, path):
        try:
            with open(path) as f:
                return json.loads(f.read().strip().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            return None

    def start_smsc(self, throttle=0, throttle_after=0):
        s = self.sc["smsc"]
        pf = os.path.join(self.work, "smsc.port")
        if os.path.exists(pf):
            os.unlink(pf)
        n = getattr(self, "n_smsc", 0)
        self.n_smsc = n + 1
        argv = [self.bin("bench", "smsc_sim"), "--port", str(getattr(self, "smsc_port", 0)),
                "--port-file", pf, "--latency-ms", s.get("latency_ms", "0"),
                "--receipt-delay-ms", s.get("receipt_delay_ms", "0"),
                "--stats", os.path.join(self.work, "smsc-%d.json" % n)]
        if s.get("mix"):
            argv += ["--mix", s["mix"]]
        if throttle:
            argv += ["--throttle-rate", str(throttle), "--throttle-after", str(throttle_after)]
        p = PROCS.start("smsc_sim", argv, os.path.join(self.work, "smsc.log"))
        for _ in range(100):
            if os.path.exists(pf) and open(pf).read().strip():
                break
            if p.poll() is not None:
                raise HarnessError("smsc_sim exited with %s (see %s/smsc.log)" % (p.returncode, self.work))
            time.sleep(0.05)
        self.smsc_port = int(open(pf).read())
        self.smsc = p

    def start_push(self):
        s = self.sc["push"]
        pf = os.path.join(self.work, "push.port")
        argv = [self.bin("bench", "push_sim"), "--port", "0", "--port-file", pf,
                "--latency-ms", s.get("latency_ms", "0"), "--stats", os.path.join(self.work, "push.json")]
        if s.get("goaway_after"):
            argv += ["--goaway-after", s["goaway_after"]]
        if s.get("rate"):
            argv += ["--rate", s["rate"]]
        self.push = PROCS.start("push_sim", argv, os.path.join(self.work, "push.log"))
        for _ in range(100):
            if os.path.exists(pf) and open(pf).read().strip():
                break
            if self.push.poll() is not None:
                raise HarnessError("push_sim exited with %s" % self.push.returncode)
            time.sleep(0.05)
        self.push_port = int(open(pf).read())

    def lanes(self):
        s, p = self.sc["smsc"], self.sc["push"]
        out = {}
        for i in range(int(s.get("binds", "2"))):
            sec = "lane sms-%d" % (i + 1)
            out.update({(sec, "channel"): "sms", (sec, "adapter"): "smpp", (sec, "host"): "127.0.0.1",
                        (sec, "port"): str(self.smsc_port), (sec, "system_id"): "tocsin",
                        (sec, "source_addr"): "12379", (sec, "window"): s.get("window", "100"),
                        (sec, "throttle_ms"): s.get("throttle_ms", "1000")})
            rate = float(s.get("rate", "0"))
            if rate:
                out[(sec, "rate")] = "%g" % rate
                out[(sec, "burst")] = "%g" % max(1, rate / 20)
        key = os.path.join(self.work, "apns.p8")
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-out", key], check=True, capture_output=True)
        tok = os.path.join(self.work, "fcm.token")
        with open(tok, "w") as f:
            f.write("harness-bearer-token\n")
        url = "http://127.0.0.1:%d" % self.push_port
        for plat in ("apns", "fcm", "webhook"):
            sec = "lane %s-1" % plat
            out.update({(sec, "channel"): "app", (sec, "platform"): plat, (sec, "adapter"): "push",
                        (sec, "url"): url, (sec, "connections"): p.get("connections", "2"),
                        (sec, "max_streams"): p.get("max_streams", "100"),
                        (sec, "window"): str(int(p.get("connections", "2")) * int(p.get("max_streams", "100")))})
            if plat == "apns":
                out.update({(sec, "topic"): "cn.gov.fuzhou.tocsin", (sec, "team_id"): "TEAM123456",
                            (sec, "key_id"): "KEY1234567", (sec, "key_file"): key})
            elif plat == "fcm":
                out.update({(sec, "project"): "tocsin-bench", (sec, "token_file"): tok})
            else:
                out[(sec, "path")] = "/hook"
        self.term_port = free_port()
        sec = "lane term-1"
        out.update({(sec, "channel"): "terminal", (sec, "adapter"): "terminal",
                    (sec, "listen"): "127.0.0.1:%d" % self.term_port,
                    (sec, "window"): str(self.n_terms_total + 100),
                    (sec, "max_connections"): str(TERMINALS_CAP + 1000)})
        out[("server", "threads")] = "1"
        return out

    def start_swarm(self):
        t = self.sc["terminals"]
        cap = min(TERMINALS_CAP, int(t.get("count", TERMINALS_CAP)))
        self.swarms, self.swarm_stats = [], []
        for i, (csv, n) in enumerate(self.term_files):
            churn = int(n * float(t.get("churn_pct", "0")) / 100)
            st = os.path.join(self.work, "swarm-%d.json" % i)
            argv = [self.bin("bench", "terminal_swarm"), "--csv", csv, "--target",
                    "127.0.0.1:%d" % self.term_port, "--count", str(n),
                    "--play-ms", t.get("play_ms", "100"), "--fail-pct", t.get("fail_pct", "0"),
                    "--churn", str(churn), "--reconnect-ms", t.get("reconnect_ms", "1000"),
                    "--src-base", str(1 + 8 * i), "--src-ips", "8", "--stats", st]
            self.swarms.append(PROCS.start("terminal_swarm", argv, os.path.join(self.work, "swarm-%d.log" % i)))
            self.swarm_stats.append(st)
        return cap

    def status(self):
        for attempt in range(5):
            try:
                return json.loads(http_get(self.d.url + "/v1/status"))
            except (urllib.error.URLError, OSError):
                if attempt == 4 or self.d.proc.poll() is not None:
                    raise HarnessError("GET /v1/status failed (tocsind %s; log %s)" % (
                        "exited with %s" % self.d.proc.returncode if self.d.proc.poll() is not None
                        else "running", self.d.log))
                time.sleep(0.2)

    def submit(self, bureau, w, idents):
        pb = self.pb
        colour = {"red": pb.RED, "orange": pb.ORANGE, "yellow": pb.YELLOW, "blue": pb.BLUE}
        sev = {"extreme": pb.EXTREME, "severe": pb.SEVERE, "moderate": pb.MODERATE, "minor": pb.MINOR}
        urg = {"immediate": pb.IMMEDIATE, "expected": pb.EXPECTED, "future": pb.FUTURE}
        ident = "%s-%s-%d" % (self.sc["name"], w["name"], int(time.time() * 1000))
        if w.get("msg_type") == "cancel":
            ref = idents[w["references"]]
            msg = bureau.warning(ident=ident, msg_type=pb.CANCEL, references=[ref], targets=[])
        else:
            targets = [x.strip() for x in w.get("targets", "350102").split(",")]
            msg = bureau.warning(ident=ident, targets=targets, colour=colour[w.get("colour", "red")],
                                 severity=sev[w.get("severity", "extreme")],
                                 urgency=urg[w.get("urgency", "immediate")],
                                 infos=(("zh-CN", "鼓楼区台风%s色预警" % {"red": "红", "orange": "橙"}.get(
                                     w.get("colour", "red"), "黄"), "请留在室内，远离门窗。"),
                                        ("en-US", "Typhoon warning", "Stay indoors.")))
        t0 = time.time()
        req = urllib.request.Request(self.d.url + "/v1/warnings", data=bureau.sign(msg),
                                     headers={"Content-Type": "application/x-protobuf"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                if r.status != 202:
                    raise HarnessError("submit %s: HTTP %d" % (ident, r.status))
        except urllib.error.HTTPError as e:
            raise HarnessError("submit %s: HTTP %d %s" % (ident, e.code, e.read()[:300]))
        idents[w["name"]] = ident
        return ident, (time.time() - t0) * 1000

    def sample(self, start, samples):
        st = self.status()
        samples.append({"t": time.time() - start,
                        "lanes": {l["name"]: dict(l["counters"], channel=l["channel"], queued=l["queued"],
                                                  inflight=l["inflight"], paused=l["paused"])
                                  for l in st["lanes"]},
                        "warnings": {w["id"]: {"reached": w["reached"], "targeted": w["targeted"],
                                               "state": w["state"], "elapsed_ms": w["elapsed_ms"]}
                                     for w in st["warnings"]},
                        "terminals_online": st["readiness"]["terminals_online"]})
        return st

    def observe_after_cancel(self, start, submits, samples, max_s):
        """With expect_quiet_after_cancel_s = N: keep sampling the lanes until the last Cancel's
        submit + N + 3 s, so the report shows whether sending stopped (the main loop ends as soon
        as the cancelled warning is final, which says nothing about the lanes)."""
        grace = self.sc["scenario"].get("expect_quiet_after_cancel_s")
        cancels = [s["at_s"] for s in submits.values() if s["msg_type"] == "cancel"]
        if grace is None or not cancels:
            return
        until = min(max(cancels) + float(grace) + 3, max_s + 10)
        if time.time() - start < until:
            log("  watching the lanes until t=%.1fs (cancel + %s s + 3 s)" % (until, grace))
        while time.time() - start < until:
            self.sample(start, samples)
            time.sleep(0.25)

    def settled_coverage(self, submits, final_status):
        """GET /v1/warnings/{id} coverage of every alert, once it agrees with the live status.

        The dispatcher writes the coverage JSON to Redis on its 1 s tick, on the same connection
        as the delivery states, so right after a burst (a Cancel retracting 400k deliveries) the
        stored coverage can lag the in-memory status by a tick or more: read it until its state
        and reached/accepted/failed match what /v1/status showed (15 s at most)."""
        live = {w["id"]: w for w in final_status["warnings"]}
        out = {}
        for name, s in submits.items():
            if s["msg_type"] != "alert":
                continue
            deadline = time.time() + 15
            while True:
                cov = json.loads(http_get(self.d.url + "/v1/warnings/" + s["id"]))["coverage"]
                w = live.get(s["id"])
                agree = cov and w and cov["state"] == w["state"] and all(
                    cov[k] >= w[k] for k in ("reached", "accepted", "failed"))
                if agree or time.time() > deadline:
                    break
                time.sleep(0.2)
            if not agree:
                log("  warning: the stored coverage of %s still disagrees with /v1/status after 15 s "
                    "(stored %s, live %s)" % (name, cov and cov.get("state"), w and w.get("state")))
            out[name] = cov
        return out

    def execute(self):
        sc, a = self.sc, self.a
        title = sc["scenario"].get("title", sc["name"])
        log("scenario %s (scale %g): %s" % (sc["name"], self.scale, title))
        redis = PROCS.start_helper("redis-server", Redis(self.work))
        t0 = time.time()
        out = subprocess.run([self.bin("engine", "tocsin"), "load", "--redis", redis.address, "--dir",
                              self.district], capture_output=True, text=True)
        if out.returncode:
            raise HarnessError("tocsin load failed: %s" % out.stderr.strip()[-500:])
        load_s = time.time() - t0
        meta = dict(zip(*[iter(redis.cli("HGETALL", "tocsin:pop:v%s:meta" % redis.cli("GET", "tocsin:pop:current").strip()).split())] * 2))
        log("  loaded in %.1f s: %s households, %s persons, %s phones, %s apps, %s terminals"
            % (load_s, meta.get("households"), meta.get("persons"), meta.get("phones"), meta.get("apps"),
               meta.get("terminals")))
        self.n_terms_total, n_swarm, self.term_files = split_terminals(self.district, self.work, TERMINALS_CAP)
        phones = int(meta.get("phones", 0))
        throttle_share = float(sc["smsc"].get("throttle_after_share", "0"))
        if throttle_share:   # an SMSC that starts throttling once this share of the phones was submitted
            self.start_smsc(throttle=int(sc["smsc"]["throttle_rate"]), throttle_after=int(throttle_share * phones))
        else:
            self.start_smsc()
        self.start_push()
        bureau = Bureau(self.pb, key_id="harness")
        keyring = os.path.join(self.work, "keyring.ini")
        with open(keyring, "w") as f:
            f.write(bureau.keyring)
        self.d = PROCS.start_helper("tocsind", Tocsind(self.bin("engine", "tocsind"), self.work, redis.address,
                                                       keyring, self.lanes()))
        deadline = time.time() + 30
        while True:
            try:
                self.status()
                break
            except (urllib.error.URLError, OSError, ValueError):
                if time.time() > deadline:
                    raise HarnessError("GET /v1/status never answered 200 (see %s)" % self.d.log)
                time.sleep(0.1)
        self.start_swarm()
        churn = float(sc["terminals"].get("churn_pct", "0"))
        want = int(n_swarm * (0.95 if not churn else (1 - churn / 100) * 0.9))
        deadline = time.time() + max(30, n_swarm / 500)
        while True:
            online = self.status()["readiness"]["terminals_online"]
            if online >= want:
                break
            for p in self.swarms:
                if p.poll() is not None:
                    raise HarnessError("terminal_swarm exited with %s" % p.returncode)
            if time.time() > deadline:
                raise HarnessError("only %d of %d terminals online after the wait" % (online, n_swarm))
            time.sleep(0.2)
        log("  %d terminals online (%d in the district, %d in the swarm over %d process(es))"
            % (online, self.n_terms_total, n_swarm, len(self.swarms)))

        pid = self.d.proc.pid
        cpu0 = cpu_seconds(pid)
        r0 = redis_info(redis.port)
        idents, submits, samples = {}, {}, []
        pending = list(sc["warnings"])
        throttled_at = None
        start = time.time()
        max_s = float(sc["scenario"].get("max_seconds", "120")) * (0.3 if a.smoke else 1)
        last_change, last_key, last_print = start, None, 0
        while True:
            now = time.time() - start
            while pending and float(pending[0].get("at", 0)) <= now:
                w = pending.pop(0)
                ident, ms = self.submit(bureau, w, idents)
                submits[w["name"]] = {"id": ident, "at_s": now, "submit_ms": ms,
                                      "msg_type": w.get("msg_type", "alert")}
                log("  t=%.1fs submitted %s (%s) in %.0f ms" % (now, w["name"], ident, ms))
            st = self.sample(start, samples)
            now = time.time() - start
            if throttle_share and throttled_at is None:
                thr = sum(l["counters"]["throttled"] for l in st["lanes"] if l["channel"] == "sms")
                if thr:
                    sent = sum(l["counters"]["sent"] for l in st["lanes"] if l["channel"] == "sms")
                    log("  t=%.1fs the SMSC throttles (%d SMS sent, %d throttled)" % (now, sent, thr))
                    throttled_at = now
            key = json.dumps([samples[-1]["lanes"], [(w["reached"], w["state"]) for w in st["warnings"]]],
                             sort_keys=True)
            if key != last_key:
                last_key, last_change = key, time.time()
            alerts = [w for w in st["warnings"] if w["id"] in {s["id"] for s in submits.values()
                                                               if s["msg_type"] == "alert"}]
            if now - last_print >= (2 if not a.smoke else 1):
                last_print = now
                lanes_by_ch = {c: sum(l["counters"]["sent"] for l in st["lanes"] if l["channel"] == c)
                               for c in CHANNELS}
                log("  t=%5.1fs %s | sent sms %d app %d terminal %d" % (
                    now, "  ".join("%s %s %.1f%%" % (n, w["state"], 100.0 * w["reached"] / max(1, w["targeted"]))
                                   for n, s in submits.items() for w in alerts if w["id"] == s["id"]),
                    lanes_by_ch["sms"], lanes_by_ch["app"], lanes_by_ch["terminal"]))
            final = {"done", "expired", "cancelled", "superseded"}
            if not pending and alerts and all(w["state"] in final for w in alerts):
                break
            busy = any(l["queued"] for l in st["lanes"]) or any(w["state"] == "resolving" for w in alerts)
            if not pending and alerts and not busy and time.time() - last_change > 3:
                break
            if now > max_s:
                log("  stopping at max_seconds = %.0f" % max_s)
                break
            for name, p in (("tocsind", self.d.proc), ("redis-server", redis.proc)):
                if p.poll() is not None:
                    raise HarnessError("%s exited with %s during the scenario" % (name, p.returncode))
            time.sleep(0.5 if not a.smoke else 0.25)
        self.observe_after_cancel(start, submits, samples, max_s)
        wall = time.time() - start
        metrics = http_get(self.d.url + "/metrics")
        final_status = self.status()
        coverage = self.settled_coverage(submits, final_status)
        cpu = cpu_seconds(pid) - cpu0
        hwm_kb, rss_kb = vm_kb(pid, "VmHWM"), vm_kb(pid, "VmRSS")
        r1 = redis_info(redis.port)
        for p in self.swarms:
            PROCS.stop(p)
        PROCS.stop(self.smsc)
        PROCS.stop(self.push)
        PROCS.stop(self.d.proc)
        PROCS.stop(redis.proc)
        sims = {"smsc": [self._sim_stats(os.path.join(self.work, "smsc-%d.json" % i)) for i in range(self.n_smsc)],
                "push": self._sim_stats(os.path.join(self.work, "push.json")),
                "swarm": [self._sim_stats(p) for p in self.swarm_stats]}
        return analyse(self, sc, meta, submits, samples, coverage, final_status, metrics, wall, {
            "engine_cpu_s": cpu, "engine_vmhwm_bytes": hwm_kb * 1024, "engine_vmrss_bytes": rss_kb * 1024,
            "redis_cpu_s": r1["cpu_s"] - r0["cpu_s"], "redis_used_memory_before": r0["used_memory"],
            "redis_used_memory_peak": r1["used_memory_peak"], "redis_used_memory_rss": r1["used_memory_rss"],
            "load_seconds": load_s}, sims, n_swarm, throttled_at)


# --- analysis --------------------------------------------------------------

def parse_hist(metrics, name):
    """{lane: [(le, cumulative)], ...} from Prometheus text."""
    h = {}
    for m in re.finditer(r'^%s_bucket\{lane="([^"]+)",le="([^"]+)"\} (\d+)$' % name, metrics, re.M):
        h.setdefault(m.group(1), []).append((float("inf") if m.group(2) == "+Inf" else float(m.group(2)),
                                             int(m.group(3))))
    return h


def percentile(buckets, q):
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    want = q * total
    lo, prev = 0.0, 0
    for le, cum in buckets:
        if cum >= want:
            if le == float("inf"):
                return lo
            frac = (want - prev) / max(1, cum - prev)
            return lo + (le - lo) * frac
        lo, prev = le, cum
    return lo


def crossing(points, share):
    """First time (s) at which reached/targeted >= share, interpolated; points are (t_s, share)."""
    prev = None
    for t, s in points:
        if s >= share:
            if prev is None or s == prev[1]:
                return t
            return prev[0] + (t - prev[0]) * (share - prev[1]) / (s - prev[1])
        prev = (t, s)
    return None


def analyse(run, sc, meta, submits, samples, coverage, final_status, metrics, wall, res, sims,
            n_swarm, throttled_at):
    lanes = {l["name"]: l for l in final_status["lanes"]}
    warnings = {}
    for name, s in submits.items():
        if s["msg_type"] != "alert":
            continue
        cov = coverage[name]
        w = next((x for x in final_status["warnings"] if x["id"] == s["id"]), None)
        targeted = cov["targeted"] or 1
        pts = [(p[0] / 1000.0, p[4] / targeted) for p in (w or {}).get("series", [])]
        pts += [(x["warnings"][s["id"]]["elapsed_ms"] / 1000.0, x["warnings"][s["id"]]["reached"] / targeted)
                for x in samples if s["id"] in x["warnings"]]
        pts.sort()
        ch_series = {c: [(p[0] / 1000.0, p[1 + i] / max(1, cov["channels"][c]["targeted"]))
                         for p in (w or {}).get("series", [])] for i, c in enumerate(CHANNELS)}
        warnings[name] = {
            "id": s["id"], "submitted_at_s": round(s["at_s"], 3), "submit_ms": round(s["submit_ms"], 1),
            "state": cov["state"], "persons_targeted": cov["targeted"], "persons_reached": cov["reached"],
            "persons_accepted_only": cov["accepted"], "persons_failed": cov["failed"],
            "reached_share": round(cov["reached"] / targeted, 4),
            "first_delivery_ms": cov["first_send_ms"],
            "first_reached_s": crossing(pts, 1e-9),
            "t50_s": crossing(pts, 0.5), "t90_s": crossing(pts, 0.9), "t99_s": crossing(pts, 0.99),
            "engine_t90_ms": cov["t90_ms"], "deliveries": cov["deliveries"],
            "channels": {c: dict(cov["channels"][c]) for c in CHANNELS},
            "series": [[round(t, 3), round(v, 5)] for t, v in pts],
            "channel_series": {c: [[round(t, 3), round(v, 5)] for t, v in ch_series[c]] for c in CHANNELS},
        }
    # deliveries per second per lane and channel, from the sampled counters ("sent" = first sends + retries)
    per_lane, rate_series = {}, {}
    for lname, l in lanes.items():
        xs = [(x["t"], x["lanes"][lname]["sent"], x["lanes"][lname]["accepted"] + x["lanes"][lname]["delivered"])
              for x in samples if lname in x["lanes"]]
        sent = l["counters"]["sent"]
        first = next((t for t, v, _ in xs if v > 0), None)
        last = next((t for t, v, _ in reversed(xs) if v < sent), None)
        last_t = next((xs[i + 1][0] for i in range(len(xs) - 1) if xs[i + 1][1] >= sent and xs[i][1] < sent), None)
        span = (last_t - first) if (first is not None and last_t is not None and last_t > first) else None
        per_lane[lname] = {"channel": l["channel"], "sent": sent, "accepted": l["counters"]["accepted"],
                           "delivered": l["counters"]["delivered"], "failed": l["counters"]["failed"],
                           "throttled": l["counters"]["throttled"], "retries": l["counters"]["retries"],
                           "sending_seconds": span, "sent_per_s": (sent / span) if span else None}
        rate_series[lname] = [((xs[i][0] + xs[i + 1][0]) / 2, (xs[i + 1][1] - xs[i][1]) / max(1e-3, xs[i + 1][0] - xs[i][0]))
                              for i in range(len(xs) - 1)]
        del last
    per_channel = {}
    first_send = parse_hist(metrics, "tocsin_lane_first_send_seconds")
    receipt = parse_hist(metrics, "tocsin_lane_receipt_seconds")
    for c in CHANNELS:
        ls = [n for n, v in per_lane.items() if v["channel"] == c]
        sent = sum(per_lane[n]["sent"] for n in ls)
        # from the last sample with nothing sent (or the first submit) to the first with everything
        # sent: an upper bound of the sending time at the ~0.5 s poll resolution
        zeros = [x["t"] for x in samples if sum(x["lanes"][n]["sent"] for n in ls if n in x["lanes"]) == 0]
        lasts = [x["t"] for x in samples if sum(x["lanes"][n]["sent"] for n in ls if n in x["lanes"]) >= sent]
        t_from = zeros[-1] if zeros else min([s["at_s"] for s in submits.values()] or [0])
        span = (lasts[0] - t_from) if sent and lasts and lasts[0] > t_from else None

        def agg(h):
            b = None
            for n in ls:
                if n in h:
                    b = h[n] if b is None else [(le, cb + c2) for (le, cb), (_, c2) in zip(b, h[n])]
            return b or []
        fs, rc = agg(first_send), agg(receipt)
        per_channel[c] = {
            "lanes": ls, "sent": sent, "sending_seconds": span, "deliveries_per_s": (sent / span) if span else None,
            "first_send_p50_s": percentile(fs, 0.5), "first_send_p99_s": percentile(fs, 0.99),
            "receipt_p50_s": percentile(rc, 0.5), "receipt_p99_s": percentile(rc, 0.99),
            "receipts": rc[-1][1] if rc else 0,
            "first_send_hist": [[le if le != float("inf") else "+Inf", n] for le, n in fs],
            "receipt_hist": [[le if le != float("inf") else "+Inf", n] for le, n in rc]}
    persons = int(meta.get("persons", 0))
    # the SMS and app lanes' `sent` summed (a Cancel sends its own stops on the terminal lane), per sample (expect_quiet_after_cancel_s), and when the lanes went idle for good
    sent_series = [[round(x["t"], 2), sum(v["sent"] for v in x["lanes"].values() if v["channel"] in ("sms", "app"))]
                   for x in samples]
    idle_at = None
    for x in samples:
        idle = all(v["queued"] == 0 and v["inflight"] == 0 for v in x["lanes"].values())
        if not idle:
            idle_at = None
        elif idle_at is None:
            idle_at = x["t"]
    return {"scenario": sc["name"], "title": sc["scenario"].get("title", sc["name"]), "file": sc["file"],
            "scale": run.scale, "district": {k: int(meta[k]) for k in ("households", "persons", "phones", "apps",
                                                                        "terminals", "buildings") if k in meta},
            "terminals_in_swarm": n_swarm, "terminals_capped": n_swarm < int(meta.get("terminals", 0)),
            "wall_seconds": round(wall, 2), "warnings": warnings, "lanes": per_lane, "channels": per_channel,
            "resources": dict(res, engine_bytes_per_person=res["engine_vmhwm_bytes"] / max(1, persons)),
            "simulators": sims, "smsc_throttled_at_s": throttled_at,
            "submits": {n: {"at_s": round(s["at_s"], 3), "msg_type": s["msg_type"], "id": s["id"]}
                        for n, s in submits.items()},
            "sent_series": sent_series, "lanes_idle_at_s": None if idle_at is None else round(idle_at, 2),
            "rate_series": {k: [[round(t, 2), round(v, 1)] for t, v in s] for k, s in rate_series.items()}}


# --- baselines ---------------------------------------------------------------

def baselines(args, district, work, smoke, terminals):
    b = {}
    bw = os.path.join(work, "baselines")
    os.makedirs(bw, exist_ok=True)
    binp = lambda *p: os.path.join(args.build, *p)  # noqa: E731

    log("baseline: openssl speed ed25519")
    out = subprocess.run(["openssl", "speed", "-seconds", "1" if smoke else "3", "ed25519"],
                         capture_output=True, text=True).stdout
    m = re.search(r"Ed25519\)\s+([0-9.]+)s\s+([0-9.]+)s\s+([0-9.]+)\s+([0-9.]+)", out)
    b["ed25519"] = {"sign_per_s": float(m.group(3)), "verify_per_s": float(m.group(4))} if m else {"raw": out[-300:]}

    log("baseline: smpp_blaster -> smsc_sim")
    pf = os.path.join(bw, "smsc.port")
    sim = PROCS.start("smsc_sim", [binp("bench", "smsc_sim"), "--port", "0", "--port-file", pf],
                      os.path.join(bw, "smsc.log"))
    for _ in range(100):
        if os.path.exists(pf) and open(pf).read().strip():
            break
        time.sleep(0.05)
    out = subprocess.run([binp("bench", "smpp_blaster"), "--port", open(pf).read().strip(), "--binds", "4",
                          "--window", "200", "--count", "20000" if smoke else "400000"],
                         capture_output=True, text=True, timeout=300)
    PROCS.stop(sim)
    if out.returncode:
        raise HarnessError("smpp_blaster failed: %s" % out.stderr.strip())
    b["smpp_blaster"] = json.loads(out.stdout)

    log("baseline: h2load -> push_sim")
    pf = os.path.join(bw, "push.port")
    sim = PROCS.start("push_sim", [binp("bench", "push_sim"), "--port", "0", "--port-file", pf],
                      os.path.join(bw, "push.log"))
    for _ in range(100):
        if os.path.exists(pf) and open(pf).read().strip():
            break
        time.sleep(0.05)
    body = os.path.join(bw, "body.json")
    with open(body, "w") as f:
        f.write('{"aps":{"alert":{"title":"鼓楼区台风红色预警","body":"请留在室内。"},"sound":"default"},'
                '"warning_id":"bench"}')
    n = 10000 if smoke else 200000
    out = subprocess.run(["h2load", "-n", str(n), "-c", "4", "-m", "100", "-d", body, "-H",
                          "content-type: application/json", "-H", "apns-topic: cn.gov.fuzhou.tocsin",
                          "http://127.0.0.1:%s/3/device/%s" % (open(pf).read().strip(), "ab" * 32)],
                         capture_output=True, text=True, timeout=300)
    PROCS.stop(sim)
    m = re.search(r"finished in ([0-9.]+)(m?s), ([0-9.]+) req/s", out.stdout)
    ok = re.search(r"status codes: (\d+) 2xx", out.stdout)
    b["h2load_push"] = {"requests": n, "connections": 4, "streams": 100,
                        "req_per_s": float(m.group(3)) if m else None,
                        "ok_2xx": int(ok.group(1)) if ok else None}

    log("baseline: redis-benchmark LRANGE of a building list")
    redis = PROCS.start_helper("redis-server", Redis(bw))
    subprocess.run([binp("engine", "tocsin"), "load", "--redis", redis.address, "--dir", district],
                   check=True, capture_output=True)
    key = redis.cli("--scan", "--pattern", "tocsin:pop:v*:hh:*").split()[0]
    hh = len(redis.cli("LRANGE", key, "0", "-1").splitlines())  # records (joined in few elements)
    out = subprocess.run(["redis-benchmark", "-p", str(redis.port), "-n", "20000" if smoke else "200000",
                          "-P", "64", "-q", "LRANGE", key, "0", "-1"], capture_output=True, text=True).stdout
    per_s = float(re.findall(r"([0-9.]+) requests per second", out)[-1])
    PROCS.stop(redis.proc)
    b["redis_lrange"] = {"command": "LRANGE <building> 0 -1, -P 64", "lranges_per_s": per_s,
                         "households_per_lrange": hh, "households_per_s": per_s * hh}

    log("baseline: mosquitto fan-out to %d subscribers" % terminals)
    b["mosquitto_fanout"] = mosquitto_fanout(bw, terminals, 1 if smoke else 3)
    return b


def _mqtt_str(s):
    s = s.encode()
    return len(s).to_bytes(2, "big") + s


def _mqtt_pkt(kind, body):
    n, out = len(body), bytearray([kind])
    while True:
        d, n = n % 128, n // 128
        out.append(d | (0x80 if n else 0))
        if not n:
            break
    return bytes(out) + body


def mosquitto_fanout(work, n, rounds):
    """mosquitto broker + n MQTT 3.1.1 subscribers (raw sockets, one Python process, selectors);
    one 130-byte QoS 0 publish on `alert`: time until every subscriber has it."""
    import selectors
    port = free_port()
    conf = os.path.join(work, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\nmax_connections -1\npersistence false\n"
                "max_queued_messages 1000\n" % port)
    broker = PROCS.start("mosquitto", ["mosquitto", "-c", conf], os.path.join(work, "mosquitto.log"))
    wait_port(port, broker)
    sel = selectors.DefaultSelector()
    socks = []
    try:
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(_mqtt_pkt(0x10, _mqtt_str("MQTT") + bytes([4, 2, 0, 60]) + _mqtt_str("t%d" % i)) +
                      _mqtt_pkt(0x82, (1).to_bytes(2, "big") + _mqtt_str("alert") + b"\x00"))
            s.setblocking(False)
            socks.append(s)
            sel.register(s, selectors.EVENT_READ, i)
        buf = [b""] * n
        got = [0] * n           # 0 = connecting, 1 = subscribed, 2 = has the message

        def pump(target, deadline):
            done = sum(1 for g in got if g >= target)
            while done < n and time.time() < deadline:
                for key, _ in sel.select(0.5):
                    i = key.data
                    try:
                        data = key.fileobj.recv(65536)
                    except BlockingIOError:
                        continue
                    buf[i] += data
                    while len(buf[i]) >= 2:
                        ln, mul, j = 0, 1, 1
                        while j < len(buf[i]) and buf[i][j] & 0x80:
                            ln += (buf[i][j] & 0x7f) * mul
                            mul *= 128
                            j += 1
                        if j >= len(buf[i]):
                            break
                        ln += buf[i][j] * mul
                        if len(buf[i]) < j + 1 + ln:
                            break
                        kind = buf[i][0] >> 4
                        buf[i] = buf[i][j + 1 + ln:]
                        if kind == 9 and got[i] < 1:       # SUBACK
                            got[i] = 1
                        elif kind == 3 and got[i] < 2:     # PUBLISH
                            got[i] = 2
                    done = sum(1 for g in got if g >= target)
            return done
        if pump(1, time.time() + 60) < n:
            raise HarnessError("mosquitto: not every subscriber got its SUBACK")
        pubs = socket.create_connection(("127.0.0.1", port))
        pubs.sendall(_mqtt_pkt(0x10, _mqtt_str("MQTT") + bytes([4, 2, 0, 60]) + _mqtt_str("pub")))
        pubs.recv(4)
        times = []
        for r in range(rounds):
            got[:] = [1] * n
            t0 = time.time()
            pubs.sendall(_mqtt_pkt(0x30, _mqtt_str("alert") + b"x" * 130))
            done = pump(2, time.time() + 60)
            times.append((time.time() - t0) * 1000)
            if done < n:
                raise HarnessError("mosquitto fan-out: %d of %d subscribers got the message" % (done, n))
        pubs.close()
        times.sort()
        return {"subscribers": n, "payload": 130, "rounds": rounds, "fanout_ms_median": round(times[len(times) // 2], 1),
                "fanout_ms_all": [round(t, 1) for t in times],
                "how": "mosquitto 2 broker + raw MQTT 3.1.1 subscribers in one Python process (selectors)"}
    finally:
        for s in socks:
            s.close()
        PROCS.stop(broker)


# --- report -------------------------------------------------------------------

def fmt(v, unit="", nd=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return ("{:,.%df}" % nd).format(v) + unit
    return "{:,}".format(v) + unit


def write_plots(report, outdir, prefix):
    imgs = {}
    for r in report["scenarios"]:
        name = "%s%s-%g" % (prefix, r["scenario"], r["scale"])
        series = []
        for wn, w in r["warnings"].items():
            t0 = w["submitted_at_s"]     # on the run clock, so overlapping warnings line up
            for c in CHANNELS:
                pts = w["channel_series"][c]
                if any(v for _, v in pts):
                    series.append(("%s %s" % (wn, c), [(t0 + t, 100 * v) for t, v in pts]))
            series.append(("%s total" % wn, [(t0 + t, 100 * v) for t, v in w["series"]]))
        p = os.path.join(outdir, name + "-coverage.svg")
        plots.line_chart(p, "%s: persons reached per channel (%% of that channel's targeted)" % r["scenario"],
                         "seconds since the first submit",
                         "% reached", series, hline=(90, "90% target"), ymax=100)
        rs = [(ln, [(t, v) for t, v in pts]) for ln, pts in r["rate_series"].items() if any(v for _, v in pts)]
        p2 = os.path.join(outdir, name + "-rate.svg")
        plots.line_chart(p2, "%s: sends per second per lane" % r["scenario"], "seconds since first submit",
                         "sends/s", rs)
        labels, groups = None, []
        for c in CHANNELS:
            h = r["channels"][c]["receipt_hist"]
            if not h or not h[-1][1]:
                continue
            labels = ["≤%gs" % le if le != "+Inf" else ">300s" for le, _ in h]
            cnt = [h[0][1]] + [h[i][1] - h[i - 1][1] for i in range(1, len(h))]
            tot = max(1, h[-1][1])
            groups.append((c + " send→receipt", [100.0 * x / tot for x in cnt]))
        p3 = os.path.join(outdir, name + "-latency.svg")
        plots.bar_chart(p3, "%s: send→confirmation latency (%% per bucket)" % r["scenario"], "bucket (upper bound)",
                        "% of receipts", labels or [], groups)
        imgs[name] = [os.path.basename(p), os.path.basename(p2), os.path.basename(p3)]
    if report.get("scaling"):
        pts = report["scaling"]
        p = os.path.join(outdir, prefix + "scaling.svg")
        plots.line_chart(p, "scaling: time to 90% and engine bytes per person", "persons (millions)",
                         "seconds / bytes÷100",
                         [("time to 90% (s)", [(x["persons"] / 1e6, x["t90_s"] or 0) for x in pts]),
                          ("engine peak RSS per person (B/100)", [(x["persons"] / 1e6, x["engine_bytes_per_person"] / 100)
                                                                   for x in pts])])
        imgs["scaling"] = [os.path.basename(p)]
    return imgs


def markdown(report, imgs, imgdir_rel):
    b = report.get("baselines", {})
    L = []
    L.append("Command: `%s`. Machine: %s, %d cores, %s; CMake build type `%s`. "
             "Every process (redis-server, tocsind, smsc_sim, push_sim, terminal_swarm, mosquitto) on the same cores. %s"
             % (report["command"], report["machine"]["kernel"], report["machine"]["cores"], report["machine"]["date"],
                report["build_type"], report["notes"]))
    L.append("")
    L.append("Adapters are the real ones: `smpp` lanes bound to `bench/smsc_sim`, `push` lanes (apns, fcm, webhook, "
             "h2c) to `bench/push_sim`, the `terminal` gateway with `bench/terminal_swarm` connecting with the "
             "terminals.csv secrets. *Reached* is the engine's ledger: confirmed SMS receipts (DELIVRD) and terminals "
             "that played; push providers only *accept* (apps confirm through POST /v1/receipts, which nothing "
             "simulates here), so the app channel shows 0 reached and its persons count as accepted.")
    L.append("")
    L.append("### Expectations")
    L.append("")
    L.append("Each scenario file's `expect_*` keys, checked by `bench/harness/expect.py` (a failed one makes "
             "run.py exit 1, naming scenario and key).")
    L.append("")
    L.append("| scenario | scale | result | key | value | measured |")
    L.append("|---|---|---|---|---|---|")
    for r in report["scenarios"]:
        rows = r.get("expectations") or [{"key": "–", "value": "", "ok": None, "detail": "no expect_* key"}]
        for e in rows:
            L.append("| %s | %g | %s | `%s` | %s | %s |" % (
                r["scenario"], r["scale"], {True: "**pass**", False: "**FAIL**", None: "–"}[e["ok"]], e["key"],
                e["value"], e["detail"].replace("|", "/")))
    L.append("")
    L.append("### Per scenario")
    L.append("")
    L.append("| scenario | scale | persons | warning | state | first send ms | t50 s | t90 s | t99 s | reached | "
             "engine CPU s | engine peak RSS MB | B/person | Redis CPU s | Redis peak MB | wall s |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in report["scenarios"]:
        res = r["resources"]
        for wn, w in r["warnings"].items():
            L.append("| %s | %g | %s | %s | %s | %s | %s | %s | %s | %.1f%% | %.1f | %.0f | %.0f | %.1f | %.0f | %.0f |" % (
                r["scenario"], r["scale"], fmt(r["district"].get("persons")), wn, w["state"],
                fmt(w["first_delivery_ms"]), fmt(w["t50_s"]), fmt(w["t90_s"]), fmt(w["t99_s"]),
                100 * w["reached_share"], res["engine_cpu_s"], res["engine_vmhwm_bytes"] / 2**20,
                res["engine_bytes_per_person"], res["redis_cpu_s"], res["redis_used_memory_peak"] / 2**20,
                r["wall_seconds"]))
    L.append("")
    L.append("Times are from the warning's admission (the dispatcher taking it). t50/t90/t99 interpolate the "
             "status series (1 s samples by the engine, ~0.5 s polls by the harness); – = not reached.")
    L.append("")
    L.append("### Per channel: deliveries per second and latency")
    L.append("")
    L.append("| scenario | channel | sends | sends/s | ÷ baseline | first send p50 / p99 s | send→confirmation p50 / p99 s | confirmations |")
    L.append("|---|---|---|---|---|---|---|---|")
    base = {"sms": (b.get("smpp_blaster") or {}).get("submits_per_s"), "app": (b.get("h2load_push") or {}).get("req_per_s")}
    for r in report["scenarios"]:
        for c in CHANNELS:
            x = r["channels"][c]
            ratio = (x["deliveries_per_s"] / base[c]) if base.get(c) and x["deliveries_per_s"] else None
            L.append("| %s | %s | %s | %s | %s | %s / %s | %s / %s | %s |" % (
                r["scenario"], c, fmt(x["sent"]), fmt(x["deliveries_per_s"], nd=0), fmt(ratio, nd=3),
                fmt(x["first_send_p50_s"], nd=2), fmt(x["first_send_p99_s"], nd=2),
                fmt(x["receipt_p50_s"], nd=3), fmt(x["receipt_p99_s"], nd=3), fmt(x["receipts"])))
    L.append("")
    L.append("Sends/s = the lanes' `sent` counters over the time the channel was sending (first to last send); "
             "latencies from tocsind's /metrics histograms `tocsin_lane_first_send_seconds` (dispatcher taking the "
             "warning → a delivery's first send) and `tocsin_lane_receipt_seconds` (send → confirmation: SMS "
             "receipt, push 2xx, terminal Ack), interpolated inside their buckets. Admission → confirmation ≈ the sum "
             "of the two. ÷ baseline: SMS against `smpp_blaster` (4 binds, same smsc_sim, no engine), app against "
             "h2load to push_sim; the realistic scenarios are *meant* to be far below it (rate-limited lanes, 20 ms "
             "provider latency).")
    L.append("")
    if b:
        L.append("### Baselines (same run)")
        L.append("")
        L.append("| baseline | figure |")
        L.append("|---|---|")
        if "ed25519" in b:
            L.append("| `openssl speed ed25519` | %s verify/s, %s sign/s (one core) |" % (
                fmt(b["ed25519"].get("verify_per_s"), nd=0), fmt(b["ed25519"].get("sign_per_s"), nd=0)))
        if "smpp_blaster" in b:
            x = b["smpp_blaster"]
            L.append("| `bench/smpp_blaster` → smsc_sim (%d binds, window %d) | %s submit_sm/s (%s answered) |" % (
                x["binds"], x["window"], fmt(x["submits_per_s"], nd=0), fmt(x["submitted"])))
        if "h2load_push" in b:
            x = b["h2load_push"]
            L.append("| `h2load -c %d -m %d` → push_sim (APNs path) | %s req/s (%s 2xx) |" % (
                x["connections"], x["streams"], fmt(x["req_per_s"], nd=0), fmt(x["ok_2xx"])))
        if "redis_lrange" in b:
            x = b["redis_lrange"]
            L.append("| `redis-benchmark -P 64 LRANGE <building> 0 -1` | %s LRANGE/s × %d households = %s households/s |" % (
                fmt(x["lranges_per_s"], nd=0), x["households_per_lrange"], fmt(x["households_per_s"], nd=0)))
        if "mosquitto_fanout" in b:
            x = b["mosquitto_fanout"]
            L.append("| Mosquitto fan-out, %d subscribers, 130-byte QoS 0 | %s ms (median of %d) |" % (
                x["subscribers"], fmt(x["fanout_ms_median"]), x["rounds"]))
        L.append("")
        comp = report.get("comparisons", [])
        if comp:
            L.append("Comparisons:")
            L.append("")
            for c in comp:
                L.append("- " + c)
            L.append("")
    if report.get("scaling"):
        L.append("### Scaling (no-limit scenario)")
        L.append("")
        L.append("| scale | persons | households | t90 s | reached | engine CPU s | engine peak RSS MB | engine B/person | Redis peak MB | Redis B/person |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for x in report["scaling"]:
            L.append("| %g | %s | %s | %s | %.1f%% | %.1f | %.0f | %.0f | %.0f | %.0f |" % (
                x["scale"], fmt(x["persons"]), fmt(x["households"]), fmt(x["t90_s"]), 100 * x["reached_share"],
                x["engine_cpu_s"], x["engine_vmhwm_bytes"] / 2**20, x["engine_bytes_per_person"],
                x["redis_peak_bytes"] / 2**20, x["redis_peak_bytes"] / max(1, x["persons"])))
        L.append("")
    L.append("### Plots")
    L.append("")
    for name, files in imgs.items():
        L.append("%s: " % name + " ".join("![%s](%s/%s)" % (f, imgdir_rel, f) for f in files))
        L.append("")
    L.append("### Caveats")
    L.append("")
    for c in report["caveats"]:
        L.append("- " + c)
    return "\n".join(L) + "\n"


def comparisons(report):
    b, out = report.get("baselines") or {}, []
    by = {r["scenario"]: r for r in report["scenarios"] if r["scale"] == report["scale"]}
    u = by.get("unlimited")
    if u and "smpp_blaster" in b and u["channels"]["sms"]["deliveries_per_s"]:
        out.append("SMS, engine-bound: %s sends/s through tocsind + smpp adapter vs %s submit_sm/s bare "
                   "(smpp_blaster): %.2f of the SMSC's capacity." % (
                       fmt(u["channels"]["sms"]["deliveries_per_s"], nd=0), fmt(b["smpp_blaster"]["submits_per_s"], nd=0),
                       u["channels"]["sms"]["deliveries_per_s"] / b["smpp_blaster"]["submits_per_s"]))
    if u and "h2load_push" in b and u["channels"]["app"]["deliveries_per_s"] and b["h2load_push"]["req_per_s"]:
        out.append("Push, engine-bound: %s sends/s vs h2load %s req/s to the same push_sim: %.2f." % (
            fmt(u["channels"]["app"]["deliveries_per_s"], nd=0), fmt(b["h2load_push"]["req_per_s"], nd=0),
            u["channels"]["app"]["deliveries_per_s"] / b["h2load_push"]["req_per_s"]))
    if u and "mosquitto_fanout" in b:
        tc = u["channels"]["terminal"]
        out.append("Terminals, engine-bound: %s alerts in %s s (sends/s %s) vs Mosquitto fan-out of one message to %d "
                   "subscribers in %s ms (tocsin's is per-terminal, authenticated, acknowledged twice)." % (
                       fmt(tc["sent"]), fmt(tc["sending_seconds"], nd=2), fmt(tc["deliveries_per_s"], nd=0),
                       b["mosquitto_fanout"]["subscribers"], fmt(b["mosquitto_fanout"]["fanout_ms_median"])))
    if u and "redis_lrange" in b:
        w = next(iter(u["warnings"].values()))
        hh = u["district"]["households"]
        t = w["t90_s"]
        if t:
            out.append("Whole district to 90%% in %.2f s = %s households/s vs %s households/s from bare LRANGE: %.3f." % (
                t, fmt(hh / t, nd=0), fmt(b["redis_lrange"]["households_per_s"], nd=0),
                hh / t / b["redis_lrange"]["households_per_s"]))
    if "ed25519" in b and report["scenarios"]:
        ms = [w["submit_ms"] for r in report["scenarios"] for w in r["warnings"].values()]
        v = b["ed25519"].get("verify_per_s")
        if v:
            out.append("Admission: POST /v1/warnings answered 202 in %.1f ms median (one Ed25519 verify = %.3f ms; "
                       "the rest is the fsynced journal write)." % (sorted(ms)[len(ms) // 2], 1000 / v))
    return out


# --- main ----------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--scale", type=float, default=None)
    ap.add_argument("--scenario", action="append", default=[])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--province", action="store_true")
    ap.add_argument("--scaling", action="store_true")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    missing = [t for t in REQUIRED_TOOLS if not shutil.which(t)]
    if missing:
        print("run.py: missing Debian tools: %s (apt-get install redis-server redis-tools nghttp2-client "
              "openssl protobuf-compiler mosquitto)" % ", ".join(missing), file=sys.stderr)
        return 77
    for b in (("engine", "tocsind"), ("engine", "tocsin"), ("bench", "gen_district"), ("bench", "smsc_sim"),
              ("bench", "push_sim"), ("bench", "terminal_swarm"), ("bench", "smpp_blaster")):
        if not os.access(os.path.join(a.build, *b), os.X_OK):
            print("run.py: %s not built (cd %s && make)" % (os.path.join(*b), a.build), file=sys.stderr)
            return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))   # inherited by tocsind and the swarm
    scale = a.scale if a.scale is not None else (0.02 if a.smoke else 1.0)
    scs = all_scenarios()
    if a.scenario:
        scs = [s for s in scs if s["name"] in a.scenario or any(x in s["file"] for x in a.scenario)]
        if not scs:
            print("run.py: no scenario matches %s" % a.scenario, file=sys.stderr)
            return 2
    elif a.smoke:
        scs = [s for s in scs if s["scenario"].get("smoke") == "yes"]
    if not a.province:
        scs = [s for s in scs if s["scenario"].get("province") != "yes" or a.scenario]
    for sc in all_scenarios():
        bad = expect.validate(sc)
        if bad:
            print("run.py: %s: unknown expectation key(s): %s (see bench/harness/expect.py)"
                  % (sc["file"], ", ".join(bad)), file=sys.stderr)
            return 2
    out = a.out or (tempfile.mkdtemp(prefix="tocsin-harness-out-") if a.smoke else os.path.join(SRC, "bench", "results"))
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="tocsin-harness-")
    prev = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    signal.signal(signal.SIGINT, SIGNALS.handler)
    signal.signal(signal.SIGTERM, SIGNALS.handler)
    t_start = time.time()
    load0 = os.getloadavg()
    caveats = []
    try:
        pb = load_pb(SRC)
        districts = Districts(a.build, work)
        results = []
        for sc in scs:
            s = float(sc["scenario"].get("scale", scale)) if not a.smoke else scale
            r = Run(a, sc, s, districts.get(s), pb, work).execute()
            r["expectations"] = expect.check(sc, r)
            results.append(r)
            for e in r["expectations"]:
                log("  %s %s = %s: %s" % ("PASS" if e["ok"] else "FAIL", e["key"], e["value"], e["detail"]))
            for wn, w in r["warnings"].items():
                log("  => %s/%s: %s, reached %.1f%%, t90 %s s, first send %s ms, engine CPU %.1f s, peak RSS %.0f MB"
                    % (r["scenario"], wn, w["state"], 100 * w["reached_share"], fmt(w["t90_s"], nd=2),
                       w["first_delivery_ms"], r["resources"]["engine_cpu_s"], r["resources"]["engine_vmhwm_bytes"] / 2**20))
        scaling = []
        if a.scaling:
            un = next(s for s in all_scenarios() if s["name"] == "unlimited")
            points = [0.145, 1.45] + ([14.5] if a.province else [])
            for s in points:
                r = next((x for x in results if x["scale"] == s and x["scenario"] in ("unlimited", "province")), None)
                if r is None:
                    r = Run(a, un, s, districts.get(s), pb, work).execute()
                w = next(iter(r["warnings"].values()))
                scaling.append({"scale": s, "persons": r["district"]["persons"], "households": r["district"]["households"],
                                "t90_s": w["t90_s"], "reached_share": w["reached_share"],
                                "engine_cpu_s": r["resources"]["engine_cpu_s"],
                                "engine_vmhwm_bytes": r["resources"]["engine_vmhwm_bytes"],
                                "engine_bytes_per_person": r["resources"]["engine_bytes_per_person"],
                                "redis_peak_bytes": r["resources"]["redis_used_memory_peak"], "scenario": r["scenario"]})
                log("  scaling %g: %d persons, t90 %s s, %.0f engine B/person" % (
                    s, r["district"]["persons"], fmt(w["t90_s"], nd=2), r["resources"]["engine_bytes_per_person"]))
        # as many subscribers as the main-scale scenarios had terminals, so the comparison is like for like
        terminals = max([r["terminals_in_swarm"] for r in results if r["scale"] == scale] or
                        [r["terminals_in_swarm"] for r in results] or [100])
        bl = {} if a.no_baselines else baselines(a, districts.get(scale), work, a.smoke, terminals)
    except HarnessError as e:
        print("run.py: error: %s" % e, file=sys.stderr)
        PROCS.stop_all()
        log("stopped every process; work directory kept at %s" % work)
        return 1
    except (OSError, ValueError, KeyError, subprocess.SubprocessError, urllib.error.URLError) as e:
        print("run.py: error: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        PROCS.stop_all()
        log("stopped every process; work directory kept at %s" % work)
        return 1
    except BaseException:
        PROCS.stop_all()
        log("stopped every process; work directory kept at %s" % work)
        raise
    finally:
        PROCS.stop_all()
        for s, h in prev.items():
            signal.signal(s, h)
    if any(r["terminals_capped"] for r in results):
        caveats.append("Terminals capped at %d connected (of the district's terminals), the figure one node must "
                       "hold; the swarm runs as several processes of ≤ %d. The other terminals stay offline: their "
                       "alerts are held until expiry, and their communities count only through SMS/app."
                       % (TERMINALS_CAP, SWARM_CHUNK))
    caveats.append("The app channel never counts as reached (no simulated app confirmations), so 'reached' is SMS "
                   "receipts + terminals; in the Gulou district the speakers cover every community, hence t90 is "
                   "dominated by the terminal fan-out and SMS mostly adds the last percent.")
    caveats.append("smsc-throttles: smsc_sim switches its throttle on in place (--throttle-after, binds stay up). "
                   "Restarting the SMSC instead (every bind dropped at once) is not a scenario: failover moves each "
                   "dropped lane's queue to a sibling still up, and each bind that comes back takes its share of "
                   "its siblings' queues again (engine/dispatch_sched.c sched_lane_up, rebalance).")
    caveats.append("Scenarios stop when every alert is final, or when nothing is queued and no counter moved for 3 s "
                   "(SMS with receipt mix 'none' and offline terminals would keep a warning 'sending' until expiry), "
                   "or at max_seconds.")
    for b in BAD_UTF8:
        caveats.append("tocsind answered invalid UTF-8 (replaced by U+FFFD here): /%s" % b)
    caveats.append("2 cores shared by tocsind, Redis (appendfsync always), the simulators and the swarm; figures "
                   "vary ±15% between runs on this VM.")
    load1 = os.getloadavg()
    caveats.append("Other work may share the machine: the 1-minute load average was %.2f when the run started and "
                   "%.2f when it ended (the harness itself adds about 1-2). Treat CPU-bound figures (unlimited, "
                   "scaling, province) as noisy when it is high." % (load0[0], load1[0]))
    bt = "?"
    try:
        for line in open(os.path.join(a.build, "CMakeCache.txt")):
            if line.startswith("CMAKE_BUILD_TYPE:"):
                bt = line.split("=", 1)[1].strip() or "(none)"
    except OSError:
        pass
    report = {"command": "/usr/bin/python3 bench/harness/run.py " + " ".join(sys.argv[1:]),
              "machine": {"kernel": os.uname().release, "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d")},
              "build_type": bt, "scale": scale, "seconds": round(time.time() - t_start, 1),
              "notes": "Run took %.0f s." % (time.time() - t_start),
              "scenarios": results, "scaling": scaling, "baselines": bl, "caveats": caveats}
    report["comparisons"] = comparisons(report)
    imgs = write_plots(report, out, "harness-")
    with open(os.path.join(out, "harness.json"), "w") as f:
        json.dump(report, f, indent=1, ensure_ascii=False)
    md = markdown(report, imgs, "results" if not a.out else ".")
    with open(os.path.join(out, "harness.md"), "w") as f:
        f.write(md)
    log("report: %s/harness.md, %s/harness.json, %d plots" % (out, out, sum(len(v) for v in imgs.values())))
    full = not a.smoke and not a.scenario and not a.out
    if full:
        update_results_md(md)
        log("bench/RESULTS.md: section '## Harness (issue 9)' rewritten")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    failed = [(r, e) for r in results for e in r["expectations"] if not e["ok"]]
    for r, e in failed:
        print("run.py: expectation failed: scenario %s (scale %g): %s = %s: %s"
              % (r["scenario"], r["scale"], e["key"], e["value"], e["detail"]), file=sys.stderr)
    rc = 1 if failed else 0
    if a.smoke:
        rc = smoke_check(report) or rc
        if not a.out and not a.keep and rc == 0:
            shutil.rmtree(out, ignore_errors=True)
    elif not failed:
        log("every expectation held (%d checks over %d scenario runs)"
            % (sum(len(r["expectations"]) for r in results), len(results)))
    return rc


def update_results_md(md):
    path = os.path.join(SRC, "bench", "RESULTS.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    head = "## Harness (issue 9)"
    i = text.find(head)
    if i >= 0:
        j = text.find("\n## ", i + len(head))
        rest = text[j:] if j >= 0 else ""
        text = text[:i].rstrip("\n") + "\n\n" + head + "\n\n" + md + rest
    else:
        text = text.rstrip("\n") + "\n\n" + head + "\n\n" + md
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def smoke_check(report):
    """The report has its fields and every alert (not cancelled) reached >= 90%."""
    problems = []
    for k in ("scenarios", "baselines", "caveats", "machine"):
        if k not in report:
            problems.append("report lacks %s" % k)
    for r in report["scenarios"]:
        for k in ("warnings", "channels", "resources", "lanes"):
            if not r.get(k):
                problems.append("%s: no %s" % (r["scenario"], k))
        for k in ("engine_cpu_s", "engine_vmhwm_bytes", "redis_cpu_s", "redis_used_memory_peak"):
            if k not in r["resources"]:
                problems.append("%s: resources lack %s" % (r["scenario"], k))
        for c in CHANNELS:
            for k in ("deliveries_per_s", "first_send_p50_s", "first_send_p99_s", "receipt_p50_s", "receipt_p99_s"):
                if k not in r["channels"][c]:
                    problems.append("%s/%s lacks %s" % (r["scenario"], c, k))
            if not r["channels"][c]["sent"]:
                problems.append("%s: nothing sent on %s" % (r["scenario"], c))
        for wn, w in r["warnings"].items():
            for k in ("first_delivery_ms", "t50_s", "t90_s", "t99_s"):
                if k not in w:
                    problems.append("%s/%s lacks %s" % (r["scenario"], wn, k))
            if w["reached_share"] < 0.9 or w["t90_s"] is None:
                problems.append("%s/%s reached only %.1f%%" % (r["scenario"], wn, 100 * w["reached_share"]))
    b = report["baselines"]
    for k, f in (("ed25519", "verify_per_s"), ("smpp_blaster", "submits_per_s"), ("h2load_push", "req_per_s"),
                 ("redis_lrange", "households_per_s"), ("mosquitto_fanout", "fanout_ms_median")):
        if not (b.get(k) or {}).get(f):
            problems.append("baseline %s lacks %s" % (k, f))
    if problems:
        print("smoke: FAIL\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("smoke: OK (%d scenarios, every warning >= 90%% reached)" % len(report["scenarios"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
