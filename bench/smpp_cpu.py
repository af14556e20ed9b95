#!/usr/bin/python3
"""bench/smpp_cpu.py: tocsind's CPU per SMS at SMSC latency 0 (issue 5), A/B.

  /usr/bin/python3 bench/smpp_cpu.py BUILD_A [BUILD_B ...] [--runs 5] [--mix delivrd=100]
                                     [--scale 0.2] [--tocsind PATH]... [--tools BUILD]

The same district-wide SMS-only warning as bench/smpp_bench.py (one bind,
window 100, no rate limit, bench/smsc_sim at latency 0, receipts after
0 ms with --mix delivrd=100, none with --mix none=100; answers sent as it
reads, --resp-chunk 50 as in smpp_bench.py), sent through each
given tocsind in turn, --runs times, the order rotated every run so that
a drift of the shared machine falls on every build alike.

What it reports per run: tocsind's CPU time (the sum over its threads of
/proc/PID/task/TID/schedstat's run time) from just before the warning is
posted to the moment the status says nothing is queued or in flight, and
with receipts, every receipt counted; divided by the SMS the SMSC saw.
"dispatcher" is the busiest thread alone (the dispatcher: the others only
serve HTTP). CPU is far less noisy than wall clock on a shared machine;
the SMSC's submit rate is printed too, for reference. Medians at the end.
The builds (or --tocsind binaries) share one Redis and one district; each
BUILD is a build directory (engine/tocsind, bench/smsc_sim). With
TOCSIN_WRAP set (e.g. "perf record -F 4000 -g -o FILE"), tocsind runs under it.
Every process is started here and stopped by pid.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import Redis, Tocsind, wait_port  # noqa: E402,F401
from bureau import Bureau, load_pb  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("builds", nargs="*", help="build directories (engine/tocsind in each)")
ap.add_argument("--tocsind", action="append", default=[],
                help="a tocsind binary to compare as well")
ap.add_argument("--tools", help="build directory for smsc_sim, gen_district and tocsin "
                "(default: the first BUILD)")
ap.add_argument("--runs", type=int, default=5)
ap.add_argument("--mix", default="delivrd=100")
ap.add_argument("--scale", default="0.2")
ap.add_argument("--resp-chunk", type=int, default=50,
                help="smsc_sim --resp-chunk, as smpp_bench.py (0: answers once per read)")
ap.add_argument("--json", action="store_true", help="print every run as JSON at the end")
ap.add_argument("--warm", type=int, default=0,
                help="warnings sent through each tocsind before the measured one (steady state: "
                     "tables and delivery cells already there, no first-touch page faults)")
args = ap.parse_args()
BINS = [os.path.join(os.path.abspath(b), "engine", "tocsind") for b in args.builds] + \
    [os.path.abspath(t) for t in args.tocsind]
if not BINS:
    ap.error("give at least one build directory or --tocsind")
TOOLS = os.path.abspath(args.tools or (args.builds[0] if args.builds else os.path.join(HERE, "..", "build")))
WORK = tempfile.mkdtemp(prefix="tocsin-smpp-cpu-")
pb = load_pb(os.path.join(HERE, ".."))
TEXT = (("en-US", "Typhoon warning", "Stay indoors."),)


def thread_cpu_ns(pid):
    """{tid: ns on CPU} for every thread of pid."""
    out = {}
    base = "/proc/%d/task" % pid
    for tid in os.listdir(base):
        try:
            with open("%s/%s/schedstat" % (base, tid)) as f:
                out[tid] = int(f.read().split()[0])
        except OSError:
            pass
    return out


def smsc_start(tag):
    port_file = os.path.join(WORK, "smsc-%s.port" % tag)
    stats_file = os.path.join(WORK, "smsc-%s.json" % tag)
    proc = subprocess.Popen(
        [os.path.join(TOOLS, "bench", "smsc_sim"), "--port", "0", "--port-file", port_file,
         "--latency-ms", "0", "--mix", args.mix, "--receipt-delay-ms", "0", "--stats",
         stats_file, "--resp-chunk", str(args.resp_chunk)], stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not (os.path.exists(port_file) and open(port_file).read().strip()):
        if time.time() > deadline:
            raise RuntimeError("smsc_sim did not start")
        time.sleep(0.05)
    return proc, int(open(port_file).read()), stats_file


def coverage(d, ident):
    with urllib.request.urlopen(d.url + "/v1/warnings/" + ident, timeout=10) as r:
        return json.load(r).get("coverage")


def one_run(binary, redis, bureau, keyring, ident, phones):
    smsc, port, stats_file = smsc_start(ident)
    opts = {("dispatch", "channels"): "sms", ("server", "threads"): "1",
            ("lane sms-1", "channel"): "sms", ("lane sms-1", "adapter"): "smpp",
            ("lane sms-1", "host"): "127.0.0.1", ("lane sms-1", "port"): str(port),
            ("lane sms-1", "system_id"): "bench", ("lane sms-1", "window"): "100",
            ("lane sms-1", "rate"): "0", ("lane sms-1", "burst"): "1"}
    d = Tocsind(binary, WORK, redis.address, keyring, opts, name=ident).start()
    receipts = args.mix != "none=100"
    try:
        time.sleep(0.5)  # bind
        pid = d.proc.pid
        for w in range(args.warm + 1):
            wid = ident if w == args.warm else "%s-warm%d" % (ident, w)
            before = thread_cpu_ns(pid)
            req = urllib.request.Request(d.url + "/v1/warnings",
                                         data=bureau.sign(bureau.warning(ident=wid, targets=["350102"],
                                                                         infos=TEXT)),
                                         headers={"Content-Type": "application/x-protobuf"})
            urllib.request.urlopen(req, timeout=10).read()
            deadline, after = time.time() + 60, None
            while time.time() < deadline:
                cov = coverage(d, wid)
                if cov:
                    ds = cov["deliveries"]
                    if sum(ds.values()) >= phones and ds["queued"] == 0 and ds["sent"] == 0 and \
                            (not receipts or ds["accepted"] == 0):
                        after = thread_cpu_ns(pid)
                        break
                time.sleep(0.02)
            if after is None:
                break
            if w < args.warm:
                os.kill(smsc.pid, 10)  # SIGUSR1: the stats so far, to subtract
                time.sleep(0.2)
                with open(stats_file) as f:
                    warm_submits = json.load(f)["submit_sm"]
        if after is None:
            os.kill(smsc.pid, 10)
            time.sleep(0.3)
            print(open(stats_file).read(), file=sys.stderr)
            print(json.dumps(cov["deliveries"]), file=sys.stderr)
            with urllib.request.urlopen(d.url + "/v1/status", timeout=10) as r:
                print(json.dumps(json.load(r)["lanes"])[:3000], file=sys.stderr)
            print(open(d.log).read()[-3000:], file=sys.stderr)
            raise RuntimeError("%s did not finish" % ident)
    finally:
        d.stop()
        smsc.terminate()
        smsc.wait(10)
    with open(stats_file) as f:
        st = json.load(f)
    n = st["submit_sm"] - (warm_submits if args.warm else 0)
    per = {t: after[t] - before.get(t, 0) for t in after}
    # with --warm, submit_seconds spans every warning (and the pauses between): no rate
    return {"binary": binary, "sms": n, "cpu_us_per_sms": sum(per.values()) / 1e3 / n,
            "dispatcher_us_per_sms": max(per.values()) / 1e3 / n,
            "smsc_submits_per_s": 0 if args.warm else n / st["submit_seconds"],
            "delivered": ds.get("delivered")}


def main():
    district = os.path.join(WORK, "district")
    subprocess.run([os.path.join(TOOLS, "bench", "gen_district"), "--seed", "5", "--scale",
                    args.scale, "--out", district], check=True, capture_output=True)
    phones = set()
    with open(os.path.join(district, "households.csv"), encoding="utf-8") as f:
        next(f)
        for line in f:
            phones.update(p for p in line.split(",")[4].split(";") if p)
    redis = Redis(WORK).start()
    runs = []
    try:
        subprocess.run([os.path.join(TOOLS, "engine", "tocsin"), "load", "--redis",
                        redis.address, "--dir", district], check=True, capture_output=True)
        bureau = Bureau(pb, key_id="smpp-cpu")
        keyring = os.path.join(WORK, "keyring.ini")
        with open(keyring, "w") as f:
            f.write(bureau.keyring)
        for r in range(args.runs):
            order = BINS[r % len(BINS):] + BINS[:r % len(BINS)]
            for b in order:
                res = one_run(b, redis, bureau, keyring, "cpu-%d-%d" % (r, BINS.index(b)),
                              len(phones))
                runs.append(res)
                print("run %d %s: %d SMS, tocsind %.2f us/SMS (dispatcher %.2f), SMSC %.0f submits/s"
                      % (r, b, res["sms"], res["cpu_us_per_sms"], res["dispatcher_us_per_sms"],
                         res["smsc_submits_per_s"]), flush=True)
    finally:
        redis.stop()
    for b in BINS:
        mine = [x for x in runs if x["binary"] == b]
        tot = sorted(x["cpu_us_per_sms"] for x in mine)
        dis = sorted(x["dispatcher_us_per_sms"] for x in mine)
        rate = sorted(x["smsc_submits_per_s"] for x in mine)
        print("%s (%s, %d runs): tocsind median %.2f us/SMS (%.2f-%.2f), dispatcher %.2f (%.2f-%.2f),"
              " SMSC median %.0f submits/s"
              % (b, args.mix, len(mine), statistics.median(tot), tot[0], tot[-1],
                 statistics.median(dis), dis[0], dis[-1], statistics.median(rate)), flush=True)
    if args.json:
        print(json.dumps(runs))


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
