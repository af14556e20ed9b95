#!/usr/bin/python3
"""bench/smpp_bench.py: SMS submission speed through the engine (issue 5).

  /usr/bin/python3 bench/smpp_bench.py [BUILD_DIR] [--scale 0.2] [--rate-seconds 20] [--no-tls]
                                       [--pin] [--rounds 1]

For SMSC latency 0 and 5 ms, with and without receipts flowing back, it
measures submits per second through one SMPP bind of tocsind (window 100,
no rate limit; a district-wide SMS-only warning with a one-part GSM text)
against bench/smpp_blaster (pre-encoded submit_sm written as fast as the
same window allows: the bare baseline) on the same bench/smsc_sim, in the
same run. The same with receipts over TLS (smsc_sim --tls-cert, the lane
and the blaster verifying a certificate made here with the openssl CLI).
Then the rate accuracy of three binds at configured rates.

Both rates are taken at the SMSC (smsc_sim's submit_seconds: first
submit_sm read to last submit_sm_resp sent, microsecond clock), the same
way for both clients. The engine's own figure (coverage first_send_ms to
elapsed_ms) is kept as "engine_seconds" but is not comparable: elapsed_ms is
stamped when the coverage is published (every 200 ms), and the blaster's
"seconds" is its own first-submit to last-response on its own clock.
The simulator answers as it reads (smsc_sim --resp-chunk 50, half the window;
--resp-chunk 0 for the old behaviour): its responses to one read of 100
submit_sm leave in two writes, not one after the whole read, so that a client
refills its window while the SMSC is still answering. Answering once per read
made both runs a strict ping-pong of 100-PDU batches (client batch, then SMSC
batch, never both at once): the engine's rate was 1 / (its CPU per SMS + the
SMSC's), the bare client's 1 / (the SMSC's + almost nothing). See RESULTS.md
(SMS, 2026-11-30). The same simulator serves both clients.
During the engine's run the status is polled every 0.25 s (the rate is taken
at the SMSC, so the poll only ends the run): faster polling made tocsind's HTTP
thread and this script compete for the engine's CPU, which the bare run,
waiting in subprocess.run, does not have.
Per run the JSON also gives what the SMSC saw: submit_sm per read
("submits_per_read"), its writes ("smsc_sends"), the time it waited for the
client within the span ("smsc_idle_seconds") and its CPU per submit
("smsc_cpu_us", schedstat); for the engine also the time from the POST to
its first submit_sm and the rate from the POST to the last response, the
resolution included ("post_to_last_seconds"; stricter than the ratio's rate,
which starts at the first submit while the engine is still resolving).
With --rounds N each row is N rounds of a bare run then an engine run (a
new simulator each, one warning per engine run) and gives the median of the
rounds' ratios and their range: at latency 0 one round's ratio swings by
~0.1 with the machine (a bare run gave 700,000-1,150,000 submits/s on the
same day), and the first warning after the load meets a colder Redis.
Every process is started here and stopped by pid. --pin runs both clients
(tocsind, smpp_blaster) on CPU 0 and smsc_sim on CPU 1 with taskset: on 2
cores the scheduler otherwise sometimes runs a client and the simulator on
one CPU for part of a run, and the ratio swings with it. With --pin the
engine's Redis (busy while the warning is resolved, during the first part of
the engine's run) is on CPU 0 with tocsind: unpinned it sometimes ran on the
SMSC's CPU, slowing the simulator in the engine's run only (a real SMSC never
shares a CPU with the engine's Redis).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import Redis, Tocsind, wait_port, pinning  # noqa: E402
from bureau import Bureau, load_pb  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("build", nargs="?", default="build")
ap.add_argument("--scale", default="0.2")
ap.add_argument("--rate-seconds", type=float, default=20)
ap.add_argument("--no-tls", action="store_true", help="skip the TLS rows")
ap.add_argument("--pin", action="store_true",
                help="clients (tocsind, smpp_blaster) on CPU 0, smsc_sim on CPU 1 (taskset)")
ap.add_argument("--resp-chunk", type=int, default=50,
                help="smsc_sim --resp-chunk: answers sent after every N submit_sm read (0: once per read)")
ap.add_argument("--rounds", type=int, default=1,
                help="rounds per row, each a bare run then an engine run; the row gives the median"
                     " of the rounds' ratios and their range")
ap.add_argument("--keep", action="store_true",
                help="keep the work directory (logs, configs); it is kept anyway when a run fails")
args = ap.parse_args()
BUILD = os.path.abspath(args.build)
SENDER, RECEIVER = pinning(args.pin)  # --pin: see harness.pinning
WORK = tempfile.mkdtemp(prefix="tocsin-smpp-bench-")
pb = load_pb(os.path.join(HERE, ".."))
TEXT = (("en-US", "Typhoon warning", "Stay indoors."),)


def make_certs():
    """A CA and a certificate for localhost / 127.0.0.1 it signed, in WORK."""
    ext = os.path.join(WORK, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for cmd in (["req", "-x509"] + ec + ["-days", "2", "-keyout", "ca.key", "-out", "ca.pem",
                                         "-subj", "/CN=bench SMSC CA"],
                ["req"] + ec + ["-keyout", "smsc.key", "-out", "smsc.csr", "-subj", "/CN=localhost"],
                ["x509", "-req", "-in", "smsc.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", "smsc.pem"]):
        subprocess.run(["openssl"] + cmd, cwd=WORK, check=True, capture_output=True)
    return {k: os.path.join(WORK, v) for k, v in
            (("ca", "ca.pem"), ("cert", "smsc.pem"), ("key", "smsc.key"))}


class Smsc:
    def __init__(self, latency, mix, tls=None):
        tag = "%d-%s%s" % (latency, mix, "-tls" if tls else "")
        self.port_file = os.path.join(WORK, "smsc-%s.port" % tag)
        self.stats_file = os.path.join(WORK, "smsc-%s.json" % tag)
        for f in (self.port_file, self.stats_file):
            if os.path.exists(f):
                os.unlink(f)
        tls_args = ["--tls-cert", tls["cert"], "--tls-key", tls["key"]] if tls else []
        self.proc = subprocess.Popen(
            RECEIVER + [os.path.join(BUILD, "bench", "smsc_sim"), "--port", "0", "--port-file",
             self.port_file, "--latency-ms", str(latency), "--mix", mix,
             "--receipt-delay-ms", "0", "--stats", self.stats_file,
             "--resp-chunk", str(args.resp_chunk)] + tls_args,
            stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while not (os.path.exists(self.port_file) and open(self.port_file).read().strip()):
            if time.time() > deadline:
                raise RuntimeError("smsc_sim did not start")
            time.sleep(0.05)
        self.port = int(open(self.port_file).read())

    def stop(self):
        try:
            with open("/proc/%d/schedstat" % self.proc.pid) as f:
                cpu_ns = int(f.read().split()[0])
        except OSError:
            cpu_ns = 0
        self.proc.terminate()
        self.proc.wait(10)
        if not os.path.exists(self.stats_file):
            raise RuntimeError("smsc_sim wrote no stats (exit status %s)" % self.proc.returncode)
        with open(self.stats_file) as f:
            self.stats = json.load(f)
        self.stats["cpu_ns"] = cpu_ns
        return self.stats


def smsc_view(st):
    """What the SMSC saw of a client's run (see the module's doc)."""
    n = max(1, st["submit_sm"])
    return {"submits_per_read": round(st["submit_sm"] / max(1, st["submit_reads"]), 1),
            "smsc_sends": st["sends"], "smsc_idle_seconds": st["submit_idle_seconds"],
            "smsc_cpu_us": round(st["cpu_ns"] / 1e3 / n, 3)}


def blaster(port, count, wait_receipts, tls=None):
    out = subprocess.run(SENDER + [os.path.join(BUILD, "bench", "smpp_blaster"), "--port", str(port),
                          "--binds", "1", "--window", "100", "--count", str(count),
                          "--wait-receipts-ms", "3000" if wait_receipts else "0"]
                         + (["--tls-ca", tls["ca"]] if tls else []),
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def engine(redis, bureau, keyring, smsc, lanes, ident, phones, tls=None):
    opts = {("dispatch", "channels"): "sms", ("server", "threads"): "1"}
    for name, rate in lanes:
        sec = "lane " + name
        opts.update({(sec, "channel"): "sms", (sec, "adapter"): "smpp",
                     (sec, "host"): "127.0.0.1", (sec, "port"): str(smsc.port),
                     (sec, "system_id"): "bench", (sec, "window"): "100",
                     (sec, "rate"): str(rate), (sec, "burst"): str(max(1, rate / 20))})
        if tls:
            opts.update({(sec, "tls"): "on", (sec, "ca_file"): tls["ca"],
                         (sec, "server_name"): "localhost"})
    d = Tocsind(os.path.join(BUILD, "engine", "tocsind"), WORK, redis.address, keyring, opts,
                name=ident).start()
    time.sleep(0.5)  # binds
    return d


def status(d, ident):
    with urllib.request.urlopen(d.url + "/v1/warnings/" + ident, timeout=10) as r:
        return json.load(r).get("coverage")


def submit(d, bureau, w):
    req = urllib.request.Request(d.url + "/v1/warnings", data=bureau.sign(w),
                                 headers={"Content-Type": "application/x-protobuf"})
    urllib.request.urlopen(req, timeout=10).read()


engine_runs = 0


def bare_rate(latency, mix, phones, tls=None):
    """The bare blaster's run on a fresh simulator, its rate taken at the SMSC."""
    smsc = Smsc(latency, mix, tls)
    try:
        base = blaster(smsc.port, phones, mix != "none=100", tls)
    finally:
        st = smsc.stop()
    base["blaster_seconds"] = base["seconds"]
    base["seconds"] = st["submit_seconds"]
    base["submits_per_s"] = st["submit_sm"] / st["submit_seconds"]
    base.update(smsc_view(st))
    return base


def engine_rate(redis, bureau, keyring, latency, mix, phones, tls=None):
    smsc = Smsc(latency, mix, tls)
    global engine_runs
    engine_runs += 1  # a warning id per run: --rounds posts one warning per round
    ident = "smpp-bench-%d-%s%s-%d" % (latency, mix.split("=")[0], "-tls" if tls else "", engine_runs)
    d = engine(redis, bureau, keyring, smsc, [("sms-1", 0)], ident, phones, tls)
    try:
        posted = time.monotonic()  # CLOCK_MONOTONIC, as smsc_sim's *_mono_us
        submit(d, bureau, bureau.warning(ident=ident, targets=["350102"], infos=TEXT))
        while True:
            cov = status(d, ident)
            # every phone planned (before the first batch the counts are all 0) and none
            # queued or in flight
            ds = cov["deliveries"] if cov else None
            if ds and sum(ds.values()) >= phones and ds["queued"] == 0 and ds["sent"] == 0:
                break
            time.sleep(0.25)  # the rate is taken at the SMSC: the poll only ends the run
        # first_send_ms and elapsed_ms are on the engine's clock, same origin; elapsed_ms
        # is stamped at the coverage flush (every 200 ms): for reference only
        eng_seconds = cov["elapsed_ms"] / 1000.0 - cov["first_send_ms"] / 1000.0
    finally:
        d.stop()
        st = smsc.stop()
    # from the POST (resolution and all) to the last response: stricter than the rate above,
    # which starts at the first submit_sm, while the engine is still resolving
    post_s = st["last_submit_resp_mono_us"] / 1e6 - posted
    return dict({"submits": st["submit_sm"], "seconds": st["submit_seconds"],
                 "submits_per_s": st["submit_sm"] / st["submit_seconds"],
                 "engine_seconds": eng_seconds, "post_to_last_seconds": post_s,
                 "first_submit_after_post_s": st["first_submit_mono_us"] / 1e6 - posted},
                **smsc_view(st))


def rate_accuracy(redis, bureau, keyring, rates):
    smsc = Smsc(0, "none=100")
    lanes = [("sms-%d" % (i + 1), r) for i, r in enumerate(rates)]
    d = engine(redis, bureau, keyring, smsc, lanes, "smpp-rate", 0)
    try:
        submit(d, bureau, bureau.warning(ident="smpp-rate", targets=["350102"], infos=TEXT))
        time.sleep(2)

        def sent():
            with urllib.request.urlopen(d.url + "/v1/status", timeout=10) as r:
                st = json.load(r)
            return {l["name"]: l["counters"]["sent"] for l in st["lanes"]}
        a = sent()
        time.sleep(args.rate_seconds)
        b = sent()
        return [{"lane": name, "configured": rate,
                 "achieved": (b[name] - a[name]) / args.rate_seconds,
                 "ratio": (b[name] - a[name]) / args.rate_seconds / rate} for name, rate in lanes]
    finally:
        d.stop()
        smsc.stop()


def main():
    district = os.path.join(WORK, "district")
    subprocess.run([os.path.join(BUILD, "bench", "gen_district"), "--seed", "5", "--scale",
                    args.scale, "--out", district], check=True, capture_output=True)
    phones = 0
    with open(os.path.join(district, "households.csv"), encoding="utf-8") as f:
        next(f)
        seen = set()
        for line in f:
            for p in line.split(",")[4].split(";"):
                if p:
                    seen.add(p)
        phones = len(seen)
    redis = Redis(WORK).start()
    if args.pin:  # the engine's Redis on the engine's CPU: see the module's doc
        subprocess.run(["taskset", "-a", "-p", "-c", "0", str(redis.proc.pid)], check=True,
                       capture_output=True)
    subprocess.run([os.path.join(BUILD, "engine", "tocsin"), "load", "--redis", redis.address,
                    "--dir", district], check=True, capture_output=True)
    bureau = Bureau(pb, key_id="smpp-bench")
    keyring = os.path.join(WORK, "keyring.ini")
    with open(keyring, "w") as f:
        f.write(bureau.keyring)
    rows = []
    tls = None if args.no_tls else make_certs()
    cases = [(lat, mix, label, None) for lat in (0, 5)
             for mix, label in (("none=100", "no receipts"), ("delivrd=100", "receipts"))]
    if tls:
        cases += [(lat, "delivrd=100", "receipts, TLS", tls) for lat in (0, 5)]
    try:
        for latency, mix, label, t in cases:
            rounds = []
            for _ in range(args.rounds):
                base = bare_rate(latency, mix, phones, t)
                eng = engine_rate(redis, bureau, keyring, latency, mix, phones, t)
                rounds.append((eng["submits_per_s"] / base["submits_per_s"], eng, base))
            ratios = sorted(x[0] for x in rounds)
            ratio, eng, base = sorted(rounds, key=lambda x: x[0])[(len(rounds) - 1) // 2]
            rows.append((latency, label, eng, base, [round(x, 3) for x in ratios]))
            spread = (" (median of %d rounds, %.2f-%.2f)" % (len(ratios), ratios[0], ratios[-1])
                      if len(ratios) > 1 else "")
            print("latency %d ms, %s: engine %.0f submits/s, bare blaster %.0f/s: ratio %.2f%s"
                  " (SMSC: %.1f / %.1f submit_sm per read, idle %.3f / %.3f s, %.2f / %.2f us CPU"
                  " per submit; engine: first submit %.3f s after the POST, POST to last"
                  " response %.0f/s)"
                  % (latency, label, eng["submits_per_s"], base["submits_per_s"], ratio, spread,
                     eng["submits_per_read"], base["submits_per_read"], eng["smsc_idle_seconds"],
                     base["smsc_idle_seconds"], eng["smsc_cpu_us"], base["smsc_cpu_us"],
                     eng["first_submit_after_post_s"], eng["submits"] / eng["post_to_last_seconds"]),
                  flush=True)
        acc = rate_accuracy(redis, bureau, keyring, [300, 200, 100])
        for a in acc:
            print("rate: %s configured %d/s achieved %.1f/s ratio %.3f"
                  % (a["lane"], a["configured"], a["achieved"], a["ratio"]), flush=True)
    finally:
        redis.stop()
    print(json.dumps({"phones": phones, "runs": [
        {"latency_ms": l, "receipts": lab, "engine": e, "baseline": b, "round_ratios": rr}
        for l, lab, e, b, rr in rows],
        "rate": acc}))


if __name__ == "__main__":
    main()
    if args.keep:
        print("work directory kept: %s" % WORK, file=sys.stderr)
    else:
        shutil.rmtree(WORK, ignore_errors=True)
