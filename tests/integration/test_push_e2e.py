#!/usr/bin/python3
"""tests/integration/test_push_e2e.py: app pushes end to end, through tocsind.

A generated district in a private redis-server; tocsind with three real
push lanes (apns-1, fcm-1, webhook-1: `adapter = push`) to one
bench/push_sim that misbehaves the ways providers do at once:
  - 3 % of the tokens are dead (by hash: 410 / 404 UNREGISTERED);
  - 1 % of the answers are 503 and 1 % 429, with Retry-After 1; 4 % are 500;
  - every connection is closed (FIN, no GOAWAY) after 150 requests, with
    streams in flight;
  - after its first error a connection is cut to 1 concurrent stream.
A red warning goes to the whole district. Expectations come from the CSV
files and from the sim's hash (FNV-1a, recomputed here), not from tocsind:
  - every app token reached the sink; every live one was accepted there,
    and none twice; the dead ones are failed in the ledger and listed in
    {prefix}dead:tokens;
  - the ledger's accepted and failed counts equal the sink's;
  - the sink's own invariant: requests = answers + unanswered (lost);
  - the lanes paused on 503 and 429 (tocsin_lane_throttled_total), the 500s
    were retried (tocsin_lane_retries_total);
  - no connection carried a second stream after acknowledging the limit 1.

usage: /usr/bin/python3 test_push_e2e.py SOURCE_DIR BUILD_DIR
"""
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Redis, Tocsind  # noqa: E402
from bureau import Bureau, load_pb  # noqa: E402

SRC, BUILD = sys.argv[1], sys.argv[2]
WORK = tempfile.mkdtemp(prefix="tocsin-push-e2e-")
DEAD_PCT = 3
failures = []


def check(cond, what):
    print("%s %s" % ("ok  " if cond else "FAIL", what), flush=True)
    if not cond:
        failures.append(what)


def fnv1a(s):
    h = 2166136261
    for b in s.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def token_of(address):
    return address.split(":", 1)[1]


def main():
    district = os.path.join(WORK, "district")
    subprocess.run([os.path.join(BUILD, "bench", "gen_district"), "--seed", "11", "--scale",
                    "0.005", "--out", district], check=True, capture_output=True)
    with open(os.path.join(district, "households.csv"), newline="", encoding="utf-8") as f:
        apps = {a for h in csv.DictReader(f) for a in h["apps"].split(";") if a}
    dead = {a for a in apps if fnv1a(token_of(a)) % 100 < DEAD_PCT}
    by_platform = {p: len([a for a in apps if a.startswith(p + ":")]) for p in ("apns", "fcm", "webhook")}
    print("app tokens: %d %s, dead by the sink's hash: %d" % (len(apps), by_platform, len(dead)))

    key = ec.generate_private_key(ec.SECP256R1())
    p8, pub = os.path.join(WORK, "apns.p8"), os.path.join(WORK, "apns.pub")
    with open(p8, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(pub, "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    bearer = os.path.join(WORK, "fcm.token")
    with open(bearer, "w") as f:
        f.write("ya29.e2e\n")

    redis = Redis(WORK).start()
    sim = d = None
    try:
        subprocess.run([os.path.join(BUILD, "engine", "tocsin"), "load", "--redis", redis.address,
                        "--dir", district], check=True, capture_output=True)
        port_file, stats = os.path.join(WORK, "sim.port"), os.path.join(WORK, "sim.json")
        sim = subprocess.Popen([os.path.join(BUILD, "bench", "push_sim"), "--port", "0",
                                "--port-file", port_file, "--stats", stats,
                                "--jwt-pubkey", pub, "--bearer", "ya29.e2e",
                                "--dead-pct", str(DEAD_PCT), "--mix", "503=1,429=1,500=4",
                                "--retry-after", "1", "--drop-after", "150",
                                "--lower-streams-on-error", "--latency-ms", "2"],
                               stderr=open(os.path.join(WORK, "sim.log"), "wb"))
        deadline = time.time() + 10
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            if time.time() > deadline or sim.poll() is not None:
                raise RuntimeError("push_sim did not start")
            time.sleep(0.05)
        url = "http://127.0.0.1:%d" % int(open(port_file).read())

        bureau = Bureau(load_pb(SRC))
        keyring = os.path.join(WORK, "keyring.ini")
        with open(keyring, "w") as f:
            f.write(bureau.keyring)
        opts = {("dispatch", "channels"): "app", ("dispatch", "retry_base_ms"): "100",
                ("server", "threads"): "1"}
        lanes = {"apns": {"topic": "org.example.tocsin", "team_id": "TEAM123456",
                          "key_id": "KEY1234567", "key_file": p8},
                 "fcm": {"project": "tocsin-e2e", "token_file": bearer},
                 "webhook": {"path": "/push"}}
        for platform, extra in lanes.items():
            sec = "lane %s-1" % platform
            for k, v in dict(channel="app", platform=platform, adapter="push", url=url,
                             connections="2", max_streams="50", window="200", **extra).items():
                opts[(sec, k)] = v
        d = Tocsind(os.path.join(BUILD, "engine", "tocsind"), WORK, redis.address, keyring,
                    opts).start()
        ident = "e2e-push-1"
        req = urllib.request.Request(d.url + "/v1/warnings", data=bureau.sign(
            bureau.warning(ident=ident, targets=["350102"])),
            headers={"Content-Type": "application/x-protobuf"})
        with urllib.request.urlopen(req, timeout=10) as r:
            check(r.status == 202, "warning admitted")
        t0, cov = time.time(), None
        while time.time() - t0 < 90:
            with urllib.request.urlopen(d.url + "/v1/warnings/" + ident, timeout=10) as r:
                cov = json.load(r).get("coverage")
            if cov and cov["deliveries"]["queued"] == 0 and cov["deliveries"]["sent"] == 0:
                break
            time.sleep(0.2)
        print("settled after %.1f s: %s" % (time.time() - t0, json.dumps(cov["deliveries"])))
        with urllib.request.urlopen(d.url + "/metrics", timeout=10) as r:
            metrics = r.read().decode()
        sim.send_signal(signal.SIGUSR1)
        time.sleep(0.3)
        j = json.load(open(stats))
        print("sink: %s" % json.dumps(j))

        dl = cov["deliveries"]
        live = len(apps) - len(dead)
        check(dl["queued"] == 0 and dl["sent"] == 0, "every app delivery settled")
        check(dl["accepted"] == live, "ledger accepted %d == live tokens %d" % (dl["accepted"], live))
        check(dl["failed"] == len(dead), "ledger failed %d == dead tokens %d" % (dl["failed"], len(dead)))
        check(j["unique_tokens"] == len(apps), "every app token reached the sink")
        check(j["accepted_tokens"] == live, "the sink accepted every live token")
        check(j["accepted_duplicates"] == 0, "the sink accepted no token twice")
        check(j["status"].get("200", 0) == dl["accepted"], "sink 200s == ledger accepted")
        answered = sum(j["status"].values())
        check(j["requests"] == answered + j["lost"], "sink requests == answers + unanswered")
        check(j["drops"] >= 1 and j["lost"] >= 1, "connections were dropped under streams in flight")
        check(all(j["status"].get(s, 0) > 0 for s in ("503", "429", "500")),
              "503s, 429s and 500s were answered")
        check(j["lowered"] >= 1 and j["max_concurrent_lowered"] <= 1,
              "at most 1 stream after a lowered limit was acknowledged")
        check(j["jwt_bad"] == 0 and j["bearer_bad"] == 0, "JWTs and bearer tokens valid")
        scard = int(redis.cli("SCARD", "tocsin:dead:tokens").strip() or 0)
        members = set(redis.cli("SMEMBERS", "tocsin:dead:tokens").split())
        check(scard == len(dead) and members == dead, "dead tokens recorded in Redis")

        def metric_sum(name):
            return sum(float(line.split()[-1]) for line in metrics.splitlines()
                       if line.startswith(name + "{lane=\"") and any(
                           '"%s-1"' % p in line for p in lanes))
        check(metric_sum("tocsin_lane_throttled_total") > 0, "lanes paused on 503 and 429")
        check(metric_sum("tocsin_lane_retries_total") > 0, "500s retried by the dispatcher")
    finally:
        if d:
            d.stop()
        if sim and sim.poll() is None:
            sim.terminate()
            sim.wait(10)
        redis.stop()
    if failures:
        print("FAILED (%d): %s; work dir %s" % (len(failures), failures, WORK))
        return 1
    subprocess.run(["rm", "-rf", WORK])
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
