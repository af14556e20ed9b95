#!/usr/bin/python3
"""bench/dispatch_bench.py: dispatch overhead and rate-limit accuracy (issue 4).

  /usr/bin/python3 bench/dispatch_bench.py [BUILD_DIR] [--scale 1.0] [--rate-seconds 30]

1. Overhead: the default district (bench/gen_district, about 250,000
   households) is loaded into a private redis-server; tocsind runs with
   unlimited lanes on the `sim` adapter (instant acceptance and receipt: a
   null sink) and a district-wide warning is submitted. Prints deliveries
   per second from admission to the last receipt, and tocsind's CPU time per
   delivery (utime + stime from /proc). The baseline in the same run is
   `redis-benchmark` on the resolver's command (LRANGE of a building's
   household list), to show how far the dispatcher is from the store.
2. Rate accuracy: one SMS lane at RATE parts/s (default 500) on the whole
   district; the sim adapter logs every send; the achieved rate over
   --rate-seconds after a 2 s warm-up is printed as a ratio to the
   configured rate (goal: within 2 %).

Every process is started here and stopped by pid.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import Redis, Tocsind  # noqa: E402
from bureau import Bureau, load_pb  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("build", nargs="?", default="build")
ap.add_argument("--scale", default="1.0")
ap.add_argument("--rate", type=float, default=500)
ap.add_argument("--rate-seconds", type=float, default=30)
args = ap.parse_args()
BUILD = os.path.abspath(args.build)
SRC = os.path.abspath(os.path.join(HERE, ".."))
WORK = tempfile.mkdtemp(prefix="tocsin-dispatch-bench-")
pb = load_pb(SRC)
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def status(d, ident):
    with urllib.request.urlopen(d.url + "/v1/warnings/" + ident, timeout=10) as r:
        return json.load(r)


def submit(d, bureau, w):
    req = urllib.request.Request(d.url + "/v1/warnings", data=bureau.sign(w),
                                 headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 202


def setup():
    district = os.path.join(WORK, "district")
    subprocess.run([os.path.join(BUILD, "bench", "gen_district"), "--seed", "2026", "--scale",
                    args.scale, "--out", district], check=True, capture_output=True)
    redis = Redis(WORK).start()
    subprocess.run([os.path.join(BUILD, "engine", "tocsin"), "load", "--redis", redis.address,
                    "--dir", district], check=True, capture_output=True)
    return redis


def lanes(opts, extra):
    out = {}
    for name, ch, plat in (("sms-1", "sms", None), ("sms-2", "sms", None), ("sms-3", "sms", None),
                           ("apns-1", "app", "apns"), ("fcm-1", "app", "fcm"),
                           ("webhook-1", "app", "webhook"), ("term-1", "terminal", None)):
        sec = "lane " + name
        out[(sec, "channel")] = ch
        out[(sec, "adapter")] = "sim"
        out[(sec, "window")] = "100000"
        if plat:
            out[(sec, "platform")] = plat
        if ch == "terminal":
            out[(sec, "direct")] = "yes"
        for k, v in opts.get(name, {}).items():
            out[(sec, k)] = v
    out.update(extra)
    return out


d_redis_port = [0]


def overhead(redis, bureau, keyring):
    d_redis_port[0] = redis.port
    d = Tocsind(os.path.join(BUILD, "engine", "tocsind"), WORK, redis.address, keyring,
                lanes({}, {("server", "threads"): "1"}), name="overhead").start()
    try:
        cpu0 = cpu_seconds(d.proc.pid)
        w = bureau.warning(ident="bench-overhead", targets=["350102"])
        t0 = time.time()
        submit(d, bureau, w)
        while True:
            cov = status(d, "bench-overhead").get("coverage")
            if cov and cov["state"] == "done":
                break
            time.sleep(0.05)
        wall = time.time() - t0
        cpu = cpu_seconds(d.proc.pid) - cpu0
        n = sum(cov["deliveries"].values())
        return {"deliveries": n, "seconds": wall, "per_second": n / wall,
                "cpu_seconds": cpu, "cpu_us_per_delivery": cpu * 1e6 / n,
                "persons": cov["targeted"], "t90_ms": cov["t90_ms"],
                "households": int(subprocess.run(
                    ["redis-cli", "-p", str(d_redis_port[0]), "HGET", "tocsin:pop:v1:meta",
                     "households"], capture_output=True, text=True).stdout or 0),
                "first_send_ms": cov["first_send_ms"]}
    finally:
        d.stop()


def baseline(redis):
    key = subprocess.run(["redis-cli", "-p", str(redis.port), "--scan", "--pattern",
                          "tocsin:pop:v*:hh:*"],
                         capture_output=True, text=True, check=True).stdout.split()[0]
    out = subprocess.run(["redis-benchmark", "-p", str(redis.port), "-n", "20000", "-P", "64",
                          "-q", "LRANGE", key, "0", "-1"], capture_output=True, text=True,
                         check=True).stdout
    import re
    per_s = float(re.findall(r"([0-9.]+) requests per second", out)[-1])
    hh = len(subprocess.run(["redis-cli", "-p", str(redis.port), "LRANGE", key, "0", "-1"],
                            capture_output=True, text=True).stdout.splitlines())  # records
    return {"command": "LRANGE %s 0 -1" % key, "lranges_per_second": per_s,
            "households_per_lrange": hh, "households_per_second": per_s * hh}


def rate_accuracy(redis, bureau, keyring):
    log = os.path.join(WORK, "rate-sends.log")
    opts = {("lane sms-1", k): v for k, v in (("channel", "sms"), ("adapter", "sim"),
                                               ("rate", str(args.rate)), ("burst", str(max(1, args.rate / 20))),
                                               ("window", "1000"), ("log", log))}
    opts[("dispatch", "channels")] = "sms"
    d = Tocsind(os.path.join(BUILD, "engine", "tocsind"), WORK, redis.address, keyring, opts,
                name="rate").start()
    try:
        submit(d, bureau, bureau.warning(ident="bench-rate", targets=["350102"],
                                         infos=(("en-US", "Test", "short"),)))
        time.sleep(2 + args.rate_seconds + 1)
    finally:
        d.stop()
    with open(log) as f:
        ms = [int(line.split("\t")[0]) for line in f if line.strip()]
    start = ms[0] + 2000
    end = start + int(args.rate_seconds * 1000)
    n = sum(1 for m in ms if start <= m < end)
    achieved = n / args.rate_seconds
    return {"configured": args.rate, "achieved": achieved, "ratio": achieved / args.rate,
            "window_seconds": args.rate_seconds, "sends_in_window": n}


def main():
    redis = setup()
    bureau = Bureau(pb, key_id="bench")
    keyring = os.path.join(WORK, "keyring.ini")
    with open(keyring, "w") as f:
        f.write(bureau.keyring)
    try:
        o = overhead(redis, bureau, keyring)
        b = baseline(redis)
        r = rate_accuracy(redis, bureau, keyring)
    finally:
        redis.stop()
    print(json.dumps({"overhead": o, "baseline": b, "rate": r}, indent=1))
    print("dispatch: %d deliveries in %.2f s = %.0f/s; tocsind CPU %.1f us per delivery"
          % (o["deliveries"], o["seconds"], o["per_second"], o["cpu_us_per_delivery"]))
    hh_per_s = o["households"] / o["seconds"]
    print("baseline: redis-benchmark %s: %.0f households/s; dispatch %.0f households/s: "
          "ratio %.3f" % (b["command"], b["households_per_second"], hh_per_s,
                          hh_per_s / b["households_per_second"]))
    print("rate: configured %.0f/s, achieved %.1f/s over %.0f s: ratio %.4f (goal 0.98-1.02)"
          % (r["configured"], r["achieved"], r["window_seconds"], r["ratio"]))


if __name__ == "__main__":
    main()
