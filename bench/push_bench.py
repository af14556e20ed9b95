#!/usr/bin/python3
"""bench/push_bench.py: app pushes per second through the engine (issue 6).

  /usr/bin/python3 bench/push_bench.py [BUILD_DIR] [--scale 0.5] [--rounds 5]

A district-wide warning goes to every FCM token of a generated district
through one push lane of tocsind (2 HTTP/2 connections, 100 streams each)
to bench/push_sim, over h2c and over TLS. The baseline in the same run is
h2load posting the same FCM payload to the same push_sim with the same
connections and streams. Prints pushes per second and the ratio (goal:
at least 0.8 of h2load) per round, and per transport the median of the
rounds' ratios: one round is under a second of work on each side, and h2load
alone moves by +-30 % between rounds on a 2-core machine. Baseline and engine
alternate within a round. Every process is started here and stopped by pid.
"""
import argparse
import csv
import json
import os
import shutil
import re
import statistics
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
ap.add_argument("--scale", default="0.5")
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--keep", action="store_true",
                help="keep the work directory (logs, configs); it is kept anyway when a run fails")
args = ap.parse_args()
BUILD = os.path.abspath(args.build)
WORK = tempfile.mkdtemp(prefix="tocsin-push-bench-")
pb = load_pb(os.path.join(HERE, ".."))
CONNS, STREAMS = 2, 100


def start_sim(tls, run):
    port_file = os.path.join(WORK, "push-%s-%s.port" % ("tls" if tls else "h2c", run))
    stats = os.path.join(WORK, "push-%s-%s.json" % ("tls" if tls else "h2c", run))
    cmd = [os.path.join(BUILD, "bench", "push_sim"), "--port", "0", "--port-file", port_file,
           "--bearer", "bench-token", "--max-streams", "1000", "--stats", stats]
    if tls:
        cmd += ["--cert", os.path.join(WORK, "tls.crt"), "--key", os.path.join(WORK, "tls.key")]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not (os.path.exists(port_file) and open(port_file).read().strip()):
        if time.time() > deadline:
            raise RuntimeError("push_sim did not start")
        time.sleep(0.05)
    return proc, int(open(port_file).read()), stats


def sink_seconds(proc, stats):
    """The sink's own clock: first to last request it answered."""
    proc.terminate()  # writes --stats at SIGTERM
    proc.wait(10)
    with open(stats) as f:
        j = json.load(f)
    return j["request_seconds"], j["requests"]


def h2load(port, tls, n):
    body = os.path.join(WORK, "fcm.json")
    with open(body, "w") as f:
        json.dump({"message": {"token": "bench-token-1", "notification": {
            "title": "Typhoon warning", "body": "Stay indoors."},
            "android": {"priority": "HIGH", "ttl": "3600s", "collapse_key": "bench"}}}, f)
    url = "%s://127.0.0.1:%d/v1/projects/bench/messages:send" % ("https" if tls else "http", port)
    out = subprocess.run(["h2load", "-n", str(n), "-c", str(CONNS), "-m", str(STREAMS), "-d", body,
                          "-H", "content-type: application/json",
                          "-H", "authorization: Bearer bench-token", url],
                         capture_output=True, text=True).stdout
    m = re.search(r"finished in ([0-9.]+)(m?s), ([0-9.]+) req/s", out)
    if not m:
        raise RuntimeError("h2load failed: " + out[-500:])
    ok = re.search(r"status codes: (\d+) 2xx", out)
    secs = float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
    return {"seconds": secs, "per_second": float(m.group(3)),
            "ok": int(ok.group(1)) if ok else 0}


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
            time.sleep(0.05)
        seconds = (cov["elapsed_ms"] - cov["first_send_ms"]) / 1000.0
        return {"pushes": tokens, "seconds": seconds, "per_second": tokens / seconds,
                "accepted": cov["deliveries"]["accepted"]}
    finally:
        d.stop()


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
            ratios = []
            for rnd in range(args.rounds):
                sim, port, stats = start_sim(tls, "h2load-%d" % rnd)
                try:
                    base = h2load(port, tls, tokens)
                finally:
                    base["sink_seconds"], base["sink_requests"] = sink_seconds(sim, stats)
                sim, port, stats = start_sim(tls, "engine-%d" % rnd)
                try:
                    eng = engine(redis, bureau, keyring, port, tls,
                                 "push-%s-%d" % (name.lower(), rnd), tokens)
                finally:
                    eng["sink_seconds"], eng["sink_requests"] = sink_seconds(sim, stats)
                results.append({"tls": tls, "round": rnd, "engine": eng, "h2load": base})
                e_rate = eng["sink_requests"] / eng["sink_seconds"]
                b_rate = base["sink_requests"] / base["sink_seconds"]
                ratios.append(e_rate / b_rate)
                print("%s round %d (sink clock): engine %.0f pushes/s (%d accepted), h2load %.0f "
                      "req/s: ratio %.2f" % (name, rnd + 1, e_rate, eng["accepted"], b_rate,
                                             e_rate / b_rate), flush=True)
            print("%s: median ratio %.2f of %d rounds (%s)" % (
                name, statistics.median(ratios), len(ratios),
                ", ".join("%.2f" % r for r in ratios)), flush=True)
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
