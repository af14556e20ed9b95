#!/usr/bin/python3
"""bench/push_bench.py: app pushes per second through the engine (issue 6).

  /usr/bin/python3 bench/push_bench.py [BUILD_DIR] [--scale 0.5] [--rounds 5]
                                       [--transports h2c,tls]

A district-wide warning goes to every FCM token of a generated district
through one push lane of tocsind (2 HTTP/2 connections, 100 streams each)
to bench/push_sim, over h2c and over TLS. The baseline in the same run is
h2load posting the same FCM payload (the body push_sim saved from the engine's
first request of the round: the warning's text, a token of the district) to
the same push_sim with the same connections and streams. Prints pushes per second and the ratio (goal:
at least 0.8 of h2load) per round, and per transport the median of the
rounds' ratios: one round is under a second of work on each side, and h2load
alone moves by +-30 % between rounds on a 2-core machine. Engine and baseline
alternate within a round (the engine first: the baseline posts its body). Every process is started here and stopped by pid.

Each round also prints CPU time per request: tocsind's (the run time of all
its threads, /proc/PID/task/*/schedstat, from just before the warning is
posted to the status poll, every 0.25 s, that saw the last answer, divided by the pushes), redis-server's over the
same span (resolution reads the district from it), h2load's (its rusage) and
push_sim's in either run (utime + stime). On a shared machine tocsind's
figure moves far less than the wall clock, so it is the one to compare
builds by; the sum per run shows where the two cores went. push_sim's own
figures come from its --stats rusage from its first request on (user, system,
context switches and page faults per request, engine run / h2load run: the
sink must cost the same for both clients, or the ratio measures the sink).
Also per round: how long tocsind took to resolve the district (its log), a
ceiling on the engine's rate, since the last push cannot leave before it.
"""
import argparse
import csv
import json
import os
import shutil
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import Redis, Tocsind, pinning  # noqa: E402
from bureau import Bureau, load_pb  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("build", nargs="?", default="build")
ap.add_argument("--scale", default="0.5")
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--transports", default="h2c,tls", help="which of h2c and tls to run")
ap.add_argument("--pin", action="store_true",
                help="clients (tocsind, h2load) on CPU 0, push_sim on CPU 1 (taskset)")
ap.add_argument("--keep", action="store_true",
                help="keep the work directory (logs, configs); it is kept anyway when a run fails")
args = ap.parse_args()
BUILD = os.path.abspath(args.build)
SENDER, RECEIVER = pinning(args.pin)  # --pin: see harness.pinning
WORK = tempfile.mkdtemp(prefix="tocsin-push-bench-")
pb = load_pb(os.path.join(HERE, ".."))
CONNS, STREAMS = 2, 100


def start_sim(tls, run, save_body=None):
    port_file = os.path.join(WORK, "push-%s-%s.port" % ("tls" if tls else "h2c", run))
    stats = os.path.join(WORK, "push-%s-%s.json" % ("tls" if tls else "h2c", run))
    cmd = RECEIVER + [os.path.join(BUILD, "bench", "push_sim"), "--port", "0", "--port-file", port_file,
           "--bearer", "bench-token", "--max-streams", "1000", "--stats", stats]
    if tls:
        cmd += ["--cert", os.path.join(WORK, "tls.crt"), "--key", os.path.join(WORK, "tls.key")]
    if save_body:
        cmd += ["--save-body", save_body]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not (os.path.exists(port_file) and open(port_file).read().strip()):
        if time.time() > deadline:
            raise RuntimeError("push_sim did not start")
        time.sleep(0.05)
    return proc, int(open(port_file).read()), stats


sink_detail = {}  # the --stats JSON of each push_sim run


def sink_seconds(proc, stats):
    """The sink's own clock: first to last request it answered (and its CPU time, ns)."""
    cpu = proc_cpu_ns(proc.pid)
    proc.terminate()  # writes --stats at SIGTERM
    proc.wait(10)
    with open(stats) as f:
        j = json.load(f)
    sink_detail[stats] = j
    c = j.get("cpu", {})
    if "user_us_since_first" in c:  # the sink's own rusage from its first request on (us, exact)
        cpu = (c["user_us_since_first"] + c["sys_us_since_first"]) * 1000.0
    return j["request_seconds"], j["requests"], cpu


def h2load(port, tls, n, body):
    """body: a file with the FCM body the engine sent (the same payload, a real token)."""
    url = "%s://127.0.0.1:%d/v1/projects/bench/messages:send" % ("https" if tls else "http", port)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(SENDER + ["h2load", "-n", str(n), "-c", str(CONNS), "-m", str(STREAMS), "-d", body,
                          "-H", "content-type: application/json",
                          "-H", "authorization: Bearer bench-token", url],
                         capture_output=True, text=True).stdout
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    m = re.search(r"finished in ([0-9.]+)(m?s), ([0-9.]+) req/s", out)
    if not m:
        raise RuntimeError("h2load failed: " + out[-500:])
    ok = re.search(r"status codes: (\d+) 2xx", out)
    secs = float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
    return {"seconds": secs, "per_second": float(m.group(3)),
            "ok": int(ok.group(1)) if ok else 0, "cpu_us_per_req": cpu * 1e6 / n}


def cpu_ns(pid):
    """Run time so far of every thread of pid, in ns (schedstat's first field)."""
    total = 0
    task = "/proc/%d/task" % pid
    for t in os.listdir(task):
        try:
            with open(os.path.join(task, t, "schedstat")) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total


def proc_cpu_ns(pid):
    """utime + stime of a process, its ended threads included (clock ticks, so coarse), in ns."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1e9 / os.sysconf("SC_CLK_TCK")


def engine(redis, bureau, keyring, port, tls, ident, tokens):
    with open(os.path.join(WORK, "fcm.token"), "w") as f:
        f.write("bench-token\n")
    sec = "lane fcm-1"
    opts = {("dispatch", "channels"): "app", ("server", "threads"): "1",
            (sec, "channel"): "app", (sec, "platform"): "fcm", (sec, "adapter"): "push",
            (sec, "url"): "%s://%s:%d" % ("https" if tls else "http",
                                          "localhost" if tls else "127.0.0.1", port),
            (sec, "project"): "bench", (sec, "token_file"): os.path.join(WORK, "fcm.token"),
            (sec, "connections"): str(CONNS), (sec, "max_streams"): str(STREAMS),
            (sec, "window"): str(CONNS * STREAMS)}
    if tls:
        opts[(sec, "ca_file")] = os.path.join(WORK, "tls.crt")
    d = Tocsind(os.path.join(BUILD, "engine", "tocsind"), WORK, redis.address, keyring, opts,
                name=ident).start()
    try:
        time.sleep(0.5)
        cpu0, rcpu0 = cpu_ns(d.proc.pid), cpu_ns(redis.proc.pid)
        req = urllib.request.Request(d.url + "/v1/warnings", data=bureau.sign(
            bureau.warning(ident=ident, targets=["350102"])),
            headers={"Content-Type": "application/x-protobuf"})
        urllib.request.urlopen(req, timeout=10).read()
        while True:
            with urllib.request.urlopen(d.url + "/v1/warnings/" + ident, timeout=10) as r:
                cov = json.load(r).get("coverage")
            dl = cov["deliveries"] if cov else None
            # settled: every token answered (not merely nothing queued yet, before resolution)
            if dl and dl["queued"] == 0 and dl["sent"] == 0 and \
                    dl["accepted"] + dl["failed"] + dl["expired"] >= tokens:
                break
            # the rate is taken at the sink: the poll only ends the run. A poll costs
            # tocsind's HTTP thread (and Redis, which it reads) CPU that h2load's run
            # does not pay; every 50 ms that was several polls per round.
            time.sleep(0.25)
        cpu_us = (cpu_ns(d.proc.pid) - cpu0) / 1000.0 / tokens
        redis_us = (cpu_ns(redis.proc.pid) - rcpu0) / 1000.0 / tokens
        seconds = (cov["elapsed_ms"] - cov["first_send_ms"]) / 1000.0
        out = {"pushes": tokens, "seconds": seconds, "per_second": tokens / seconds,
               "accepted": cov["deliveries"]["accepted"], "cpu_us_per_push": cpu_us,
               "redis_cpu_us_per_push": redis_us}
    finally:
        d.stop()
    out["resolve_seconds"] = resolve_seconds(d.log, ident)
    return out


def resolve_seconds(log, ident):
    """How long resolution took (tocsind's "warning resolved ... total_us="), or None.
    The first pushes leave after the first batch and the last one cannot leave before
    resolution ends, so tokens / this is a ceiling on the engine's push rate."""
    with open(log, errors="replace") as f:
        for line in f:
            if "warning resolved" in line and "warning=%s " % ident in line:
                m = re.search(r"total_us=(\d+)", line)
                return int(m.group(1)) / 1e6 if m else None
    return None


def sink_per_req(run, key):
    """push_sim's rusage figure per request from its first request on (see --stats "cpu")."""
    c, n = run["sink_stats"].get("cpu", {}), max(run["sink_requests"], 1)
    v = c.get(key + "_since_first")
    return "?" if v is None else "%.2f" % (v / n) if key.endswith("_us") else "%.3f" % (v / n)


def main():
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", os.path.join(WORK, "tls.key"),
                    "-out", os.path.join(WORK, "tls.crt"), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    district = os.path.join(WORK, "district")
    subprocess.run([os.path.join(BUILD, "bench", "gen_district"), "--seed", "6", "--scale",
                    args.scale, "--out", district], check=True, capture_output=True)
    with open(os.path.join(district, "households.csv"), newline="", encoding="utf-8") as f:
        tokens = len({a for h in csv.DictReader(f) for a in h["apps"].split(";")
                      if a.startswith("fcm:")})
    redis = Redis(WORK).start()
    subprocess.run([os.path.join(BUILD, "engine", "tocsin"), "load", "--redis", redis.address,
                    "--dir", district], check=True, capture_output=True)
    bureau = Bureau(pb, key_id="push-bench")
    keyring = os.path.join(WORK, "keyring.ini")
    with open(keyring, "w") as f:
        f.write(bureau.keyring)
    results = []
    try:
        for tls in (False, True):
            name = "TLS" if tls else "h2c"
            if name.lower() not in args.transports.lower().split(","):
                continue
            ratios, cpus = [], []
            for rnd in range(args.rounds):
                body = os.path.join(WORK, "fcm-%s-%d.json" % (name.lower(), rnd))
                sim, port, stats = start_sim(tls, "engine-%d" % rnd, save_body=body)
                try:
                    eng = engine(redis, bureau, keyring, port, tls,
                                 "push-%s-%d" % (name.lower(), rnd), tokens)
                finally:
                    sink = sink_seconds(sim, stats)
                eng["sink_seconds"], eng["sink_requests"], eng["sink_cpu_ns"] = sink
                eng["sink_stats"] = sink_detail[stats]
                sim, port, stats = start_sim(tls, "h2load-%d" % rnd)
                try:
                    base = h2load(port, tls, tokens, body)
                finally:
                    sink = sink_seconds(sim, stats)
                base["sink_seconds"], base["sink_requests"], base["sink_cpu_ns"] = sink
                base["sink_stats"] = sink_detail[stats]
                results.append({"tls": tls, "round": rnd, "engine": eng, "h2load": base})
                e_rate = eng["sink_requests"] / eng["sink_seconds"]
                b_rate = base["sink_requests"] / base["sink_seconds"]
                ratios.append(e_rate / b_rate)
                cpus.append(eng["cpu_us_per_push"])
                print("%s round %d (sink clock): engine %.0f pushes/s (%d accepted), h2load %.0f "
                      "req/s: ratio %.2f; CPU us per request: tocsind %.2f (redis %.2f), h2load "
                      "%.2f, push_sim %.2f (engine run) / %.2f (h2load run)" % (
                          name, rnd + 1, e_rate, eng["accepted"], b_rate, e_rate / b_rate,
                          eng["cpu_us_per_push"], eng["redis_cpu_us_per_push"],
                          base["cpu_us_per_req"],
                          eng["sink_cpu_ns"] / 1000.0 / max(eng["sink_requests"], 1),
                          base["sink_cpu_ns"] / 1000.0 / max(base["sink_requests"], 1)),
                      flush=True)
                if eng["resolve_seconds"]:
                    print("  resolution %.0f ms: at most %.0f pushes/s" % (
                        eng["resolve_seconds"] * 1000, tokens / eng["resolve_seconds"]), flush=True)
                print("  push_sim per request, engine run / h2load run: " + "; ".join(
                    "%s %s / %s" % (k, sink_per_req(eng, k), sink_per_req(base, k))
                    for k in ("user_us", "sys_us", "vcsw", "ivcsw", "minflt")), flush=True)
            print("%s: median ratio %.2f of %d rounds (%s); tocsind CPU median %.2f us/push (%s)" % (
                name, statistics.median(ratios), len(ratios),
                ", ".join("%.2f" % r for r in ratios), statistics.median(cpus),
                ", ".join("%.2f" % c for c in cpus)), flush=True)
    finally:
        redis.stop()
    print(json.dumps({"fcm_tokens": tokens, "connections": CONNS, "streams": STREAMS,
                      "runs": results}))


if __name__ == "__main__":
    main()
    if args.keep:
        print("work directory kept: %s" % WORK, file=sys.stderr)
    else:
        shutil.rmtree(WORK, ignore_errors=True)
