#!/usr/bin/python3
"""bench/terminal_fanout.py: fan-out of one ~1 KB alert to N connected terminals.

  /usr/bin/python3 bench/terminal_fanout.py [BUILD_DIR] [--conns 10000 50000 100000]
      [--rounds 3] [--lane KEY=VALUE ...] [--per-swarm 18000]

Three systems push one message of about 1 KB to N receivers, and the same
receiver program measures all three: bench/terminal_swarm, answering at once
(ack delay 0), in ceil(N / 18,000) processes (one epoll loop each): one
process holds at most the hard RLIMIT_NOFILE (20,000 here) sockets, so
each process takes an even share of the population (--first) from its own
8 loopback source addresses (process i: --src-base 1 + 8 i). Their
per-receiver times are on one clock (CLOCK_MONOTONIC is system-wide) and
are merged; their counters add up.

  tocsind  the real daemon with one terminal lane (adapters/terminal.c) and a
           population of N terminals in a private redis-server; the push is
           the POST of a signed warning naming the street all N are on, so
           its time includes admission (Ed25519 check, journal fsync),
           resolution of the N terminals and dispatch. Swarm in terminal
           mode: HMAC login, Alert, Ack RECEIVED (then PLAYED).
  bare     bench/fanout_blaster --port-file: accept N into io_uring direct
           descriptors over ceil(N / 20,000) rings in one process (so N
           past the descriptor limit), then one send of a 1024-byte frame
           per connection in a loop; the swarm (--mode raw) answers each with
           one byte. The physical floor on this machine.
  mosquitto  Eclipse Mosquitto (Debian), N MQTT 3.1.1 subscribers of
           "alert" at QoS 1 (swarm --mode mqtt); the push is one 1024-byte
           QoS 1 PUBLISH from a client here. Mosquitto holds its sockets
           as plain descriptors in one process: N above the hard
           RLIMIT_NOFILE (less 200) is skipped and said so.

t0 is CLOCK_MONOTONIC (Python's time.monotonic) just before the push; the
swarm writes, per receiver, the CLOCK_MONOTONIC time its message arrived and
its answer left (--times). Reported per system: first, p50, p99 and last
receipt, the last answer leaving the swarm, and for tocsind the time the
engine had counted every Ack RECEIVED (the lane's `accepted` counter in its
/v1/status, polled every 50 ms; the snapshot is rebuilt every 100 ms) and for bare the time the blaster read the
last one-byte answer. Ratios are against bare, and tocsind against
Mosquitto. The spread (last − first receipt) is the fan-out itself, without
tocsind's admission and resolution.

--pin runs every sender (tocsind, the bare loop, Mosquitto) with taskset on
CPU 0 and every swarm process on CPU 1, the same for all three. Without it,
on 2 cores the scheduler sometimes puts a sender and a receiver on one CPU
for part of a round, and the round measures that: the same binaries then
give 145 or 235 ms at 10,000. Pinned, the rounds agree within ~15 %; but the
swarm then has one CPU, so at 50,000 (three swarm processes) the receivers
set the pace for every system.

tocsind gets the lane keys listen, window and max_connections (N + 100);
the gateway sizes its io_uring file tables for max_connections (its lane key
`rings` defaults to enough), so nothing else is needed past the descriptor
limit; --lane KEY=VALUE adds or overrides lane keys. A system that fails at
some N (say, a gateway that cannot hold N yet) is reported as failed with the
reason, and the run goes on (the exit status is then 1). Every process is started here and stopped by
pid. Prints a Markdown section for bench/RESULTS.md (--results appends it
there).
"""
import argparse
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import Redis, Tocsind, free_port, wait_port, pinning  # noqa: E402
from bureau import Bureau, load_pb  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("build", nargs="?", default="build")
ap.add_argument("--conns", type=int, nargs="+", default=[10000, 50000, 100000])
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--play-ms", type=int, default=0,
                help="tocsind's terminals: delay from Ack RECEIVED to Ack PLAYED (0: both at once)")
ap.add_argument("--systems", nargs="+", default=["tocsind", "bare", "mosquitto"],
                choices=["tocsind", "bare", "mosquitto"], help="run only these (profiling)")
ap.add_argument("--perf", metavar="FILE",
                help="perf record -g tocsind and the swarm from the push until the last receipt; "
                "sample times on CLOCK_MONOTONIC, t0 logged, so `perf script` lines up with the push")
ap.add_argument("--timeline", action="store_true",
                help="log receipts per 20 ms after the push, per run")
ap.add_argument("--bare-plain", action="store_true",
                help="the bare loop on plain descriptors (epoll + send(), N within the limit)")
ap.add_argument("--per-swarm", type=int, default=18000,
                help="terminals per swarm process (at most the hard RLIMIT_NOFILE less 1,000)")
ap.add_argument("--lane", action="append", default=[], metavar="KEY=VALUE",
                help="an extra key of tocsind's terminal lane (repeatable)")
ap.add_argument("--pin", action="store_true",
                help="senders (tocsind, the bare loop, mosquitto) on CPU 0, the swarm on CPU 1")
ap.add_argument("--results", action="store_true", help="append the section to bench/RESULTS.md")
args = ap.parse_args()
SENDER, RECEIVER = pinning(args.pin)  # --pin: see harness.pinning
BUILD = os.path.abspath(args.build)
SRC = os.path.abspath(os.path.join(HERE, ".."))
SWARM = os.path.join(BUILD, "bench", "terminal_swarm")
BLASTER = os.path.join(BUILD, "bench", "fanout_blaster")
WORK = tempfile.mkdtemp(prefix="tocsin-fanout-")
FRAME = 1024
PROCS = []
HARD_NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
# terminals per swarm process: what one process's descriptor table holds, with room to spare
PER_SWARM = max(1, min(args.per_swarm, HARD_NOFILE - 1000))


def log(msg):
    print("# " + msg, file=sys.stderr, flush=True)


def start(argv, name):
    f = open(os.path.join(WORK, name + ".log"), "ab")
    p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT)
    PROCS.append(p)
    return p


def stop(p, sig=signal.SIGTERM):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in PROCS:
        PROCS.remove(p)


class Swarm:
    """One terminal_swarm process; its counters and --times on demand."""

    def __init__(self, n, target, mode, name, extra=(), first=0, src_base=1):
        self.n = n
        self.mode = mode
        self.stats = os.path.join(WORK, name + ".json")
        self.times = os.path.join(WORK, name + ".times")
        argv = RECEIVER + [SWARM, "--count", str(n), "--target", target, "--mode", mode, "--src-ips", "8",
                "--src-base", str(src_base), "--first", str(first),
                "--connect-rate", "20000", "--play-ms", str(args.play_ms), "--stats", self.stats,
                "--times", self.times] + list(extra)
        self.p = start(argv, name)
        # SIGUSR1 kills it until it has blocked the signal: wait for that
        deadline = time.time() + 10
        while time.time() < deadline and self.p.poll() is None:
            with open("/proc/%d/status" % self.p.pid) as f:
                blk = next(l for l in f if l.startswith("SigBlk:")).split()[1]
            if int(blk, 16) & (1 << (signal.SIGUSR1 - 1)):
                break
            time.sleep(0.01)

    def read(self, times=False):
        """Counters (SIGUSR1, cheap), or counters and per-receiver times (SIGUSR2)."""
        files = (self.stats, self.times) if times else (self.stats,)
        for f in files:
            if os.path.exists(f):
                os.unlink(f)
        self.p.send_signal(signal.SIGUSR2 if times else signal.SIGUSR1)
        deadline = time.time() + 10
        while time.time() < deadline:
            if all(os.path.exists(f) for f in files):
                with open(self.stats) as f:
                    st = json.load(f)
                if not times:
                    return st, None
                with open(self.times) as f:
                    t = [tuple(int(x) for x in line.split()) for line in f if line.strip()]
                return st, t
            time.sleep(0.01)
        raise RuntimeError("swarm did not answer a signal")

    def stop(self):
        stop(self.p)


def add_counters(a, b):
    """The sum of two swarms' --stats (numbers add, objects add key by key)."""
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict):
            out[k] = add_counters(a.get(k, {}), v)
        elif k == "first":  # the rows covered start at the smallest
            out[k] = min(a.get(k, v), v)
        elif isinstance(v, (int, float)):
            out[k] = a.get(k, 0) + v
    return out


class Swarms:
    """N receivers in ceil(N / PER_SWARM) swarm processes sharing one population:
    process i has the i-th even share of the terminals (--first) and source
    addresses 127.0.0.(1+8i).. (--src-base); counters are summed, times
    concatenated in --first order."""

    def __init__(self, n, target, mode, name, extra=()):
        self.n = n
        self.mode = mode
        k = -(-n // PER_SWARM)
        self.parts = []
        try:
            for i in range(k):
                first = i * n // k
                self.parts.append(Swarm((i + 1) * n // k - first, target, mode,
                                        "%s-p%d" % (name, i), extra, first=first,
                                        src_base=1 + 8 * i))
        except BaseException:
            self.stop()
            raise

    @property
    def pids(self):
        return [s.p.pid for s in self.parts]

    def read(self, times=False):
        st, t = {}, [] if times else None
        for s in self.parts:  # in --first order: the times concatenate
            if s.p.poll() is not None:
                raise RuntimeError("a swarm process exited with %s (log %s)"
                                   % (s.p.returncode, s.stats.replace(".json", ".log")))
            one, tt = s.read(times)
            st = add_counters(st, one)
            if times:
                t.extend(tt)
        return st, t

    def wait_online(self, timeout=None):
        deadline = time.time() + (timeout or max(120, self.n / 500))
        while time.time() < deadline:
            st, _ = self.read()
            if st["online"] >= self.n:
                return
            time.sleep(0.2)
        raise RuntimeError("only %d of %d receivers online" % (st["online"], self.n))

    def wait_received(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            st, _ = self.read()
            if st["alerts_unique" if self.mode == "terminal" else "alerts"] >= self.n:
                break
            time.sleep(0.1)
        st, t = self.read(times=True)
        got = sum(1 for r, a in t if r)
        if got < self.n or len(t) != self.n:
            raise RuntimeError("only %d of %d receivers got the message" % (got, self.n))
        return t

    def stop(self):
        for s in self.parts:
            s.stop()


def thread_ns(pids):
    """CPU time so far, in ns, of every thread of the processes pids (schedstat)."""
    total = 0
    for pid in pids:
        try:
            for t in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                    total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread or process that has just gone
    return total


def idle_ticks():
    """Idle and iowait time of all CPUs so far, in clock ticks (/proc/stat)."""
    with open("/proc/stat") as f:
        v = f.readline().split()
    return int(v[4]) + int(v[5])


class CpuTimeline:
    """Samples, every 20 ms on a thread of this script, the CPU time of named groups of
    processes and the machine's idle time, so that the CPU each spent between two
    instants of the push (t0 and the last receipt, known only afterwards) can be read
    off by interpolation. A sample reads a dozen /proc files: well under 1 % of a CPU."""

    def __init__(self, groups):
        self.groups = groups  # name -> list of pids
        self.samples = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def sample(self):
        row = {k: thread_ns(p) / 1e6 for k, p in self.groups.items()}
        row["idle"] = idle_ticks() * 1000.0 / os.sysconf("SC_CLK_TCK")
        self.samples.append((time.monotonic(), row))

    def run(self):
        while not self.stopped.is_set():
            self.sample()
            self.stopped.wait(0.02)

    def stop(self):
        self.stopped.set()
        self.thread.join()
        self.sample()

    def at(self, t, key):
        s = self.samples
        for (ta, a), (tb, b) in zip(s, s[1:]):
            if ta <= t <= tb:
                return a[key] + (b[key] - a[key]) * ((t - ta) / (tb - ta) if tb > ta else 0)
        return s[0][1][key] if t < s[0][0] else s[-1][1][key]

    def spent(self, t0, t1):
        """{group: CPU ms between t0 and t1} and the machine's idle CPU ms ("idle")."""
        return {k: self.at(t1, k) - self.at(t0, k) for k in list(self.groups) + ["idle"]}


def pct(sorted_ms, q):
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def summary(t0, times, cpu=None):
    recv = sorted((r / 1e6 - t0) * 1000 for r, a in times if r)
    ack = sorted((a / 1e6 - t0) * 1000 for r, a in times if a)
    if args.timeline:
        buckets = {}
        for ms in recv:
            buckets[int(ms // 20)] = buckets.get(int(ms // 20), 0) + 1
        log("  receipts per 20 ms from t0: " + " ".join(
            "%d:%d" % (b * 20, buckets[b]) for b in sorted(buckets)))
    out = {"first_ms": recv[0], "p50_ms": pct(recv, 0.5), "p99_ms": pct(recv, 0.99),
           "last_ms": recv[-1], "last_answer_ms": ack[-1], "spread_ms": recv[-1] - recv[0],
           "received": len(recv)}
    if cpu:  # CPU ms each spent from t0 to the last receipt
        for k, v in cpu.spent(t0, t0 + recv[-1] / 1000).items():
            out["cpu_%s_ms" % k] = v
    return out


# --- tocsind -------------------------------------------------------------------------

def population(n, d):
    os.makedirs(d)
    comms = min(999, max(1, n // 100))  # community ids have three digits
    with open(os.path.join(d, "segments.csv"), "w") as f:
        f.write("id,kind,parent,name,population\n3501,district,,D,%d\n350102,street,3501,S,%d\n"
                % (comms, comms))
        for c in range(comms):
            f.write("350102%03d,community,350102,C,1\n350102%03dB1,building,350102%03d,B,1\n"
                    % (c, c, c))
    with open(os.path.join(d, "households.csv"), "w") as f:
        f.write("id,building,persons,lang,phones,apps\n")
        for c in range(comms):
            f.write("350102%03dB1H1,350102%03dB1,1,zh-CN,,\n" % (c, c))
    with open(os.path.join(d, "terminals.csv"), "w") as f:
        f.write("id,segment,kind,covers_persons,secret\n")
        for i in range(n):
            f.write("t%06d,350102%03d,speaker,1,%s\n" % (i, i % comms, secrets.token_hex(16)))


def lane_counters(d):
    with urllib.request.urlopen(d.url + "/v1/status", timeout=10) as r:
        st = json.load(r)
    lane = next(l for l in st["lanes"] if l["name"] == "terminals")
    return lane["counters"], lane["adapter"]


def run_tocsind(n, bureau, pb, rnd):
    d = os.path.join(WORK, "tocsind-%d-%d" % (n, rnd))
    population(n, os.path.join(d, "pop"))
    redis = Redis(d).start()
    subprocess.run([os.path.join(BUILD, "engine", "tocsin"), "load", "--redis", redis.address,
                    "--dir", os.path.join(d, "pop")], check=True, capture_output=True)
    keyring = os.path.join(d, "keyring.ini")
    with open(keyring, "w") as f:
        f.write(bureau.keyring)
    port = free_port()
    lane = "lane terminals"
    opts = {("dispatch", "channels"): "terminal", ("log", "level"): "warn",
            (lane, "channel"): "terminal", (lane, "adapter"): "terminal",
            (lane, "listen"): "127.0.0.1:%d" % port, (lane, "window"): str(n + 100),
            (lane, "max_connections"): str(n + 100)}
    for kv in args.lane:
        k, _, v = kv.partition("=")
        opts[(lane, k.strip())] = v.strip()
    tocsind = Tocsind(os.path.join(BUILD, "engine", "tocsind"), d, redis.address, keyring, opts)
    tocsind.start()
    swarm = None
    try:
        swarm = Swarms(n, "127.0.0.1:%d" % port, "terminal", "swarm-tocsind-%d-%d" % (n, rnd),
                       ["--csv", os.path.join(d, "pop", "terminals.csv")])
        swarm.wait_online()
        time.sleep(1)
        # headline and instruction sized so that the Alert frame is about 1 KB
        w = bureau.warning(targets=["350102"], infos=(("zh-CN", "H" * 40, "I" * 880),))
        body = bureau.sign(w)
        req = urllib.request.Request(tocsind.url + "/v1/warnings", data=body,
                                     headers={"Content-Type": "application/x-protobuf"})
        perf = None
        if args.perf:
            perf = subprocess.Popen(["perf", "record", "-g", "-k", "CLOCK_MONOTONIC", "-o", args.perf, "-p",
                                     ",".join(str(p) for p in [tocsind.proc.pid] + swarm.pids)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        cpu = CpuTimeline({"sender": [tocsind.proc.pid], "redis": [redis.proc.pid],
                           "swarm": swarm.pids})
        t0 = time.monotonic()
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 202
        admitted = (time.monotonic() - t0) * 1000
        engine_acks = None
        deadline = time.time() + max(120, n / 500)
        # Polled twice a second only: a poll costs tocsind's HTTP thread and this script
        # CPU that the bare run's sender does not pay; the time of the last Ack RECEIVED
        # comes from the gateway itself (CLOCK_MONOTONIC, as t0), not from the poll.
        while time.time() < deadline:
            time.sleep(0.5)
            c, a = lane_counters(tocsind)
            if c["accepted"] >= n:  # every Ack RECEIVED reported by the gateway
                engine_acks = (a["last_received_ack_monotonic_seconds"] - t0) * 1000
                break
        times = swarm.wait_received()
        cpu.stop()
        if perf:
            stop(perf, signal.SIGINT)
        s = summary(t0, times, cpu)
        if perf:
            log("  perf: t0 = %.6f s CLOCK_MONOTONIC (%s)" % (t0, args.perf))
        s["admitted_ms"] = admitted
        s["engine_all_acks_ms"] = engine_acks
        return s
    finally:
        try:
            if swarm:
                swarm.stop()
        finally:
            try:  # a tocsind that does not stop within 20 s raises here: say so, kill it
                rc = tocsind.stop()
                if rc not in (0, None):
                    log("  tocsind exited with status %s (log %s)" % (rc, tocsind.log))
            except subprocess.TimeoutExpired:
                log("  tocsind did not stop within 20 s of SIGTERM: killed (log %s)" % tocsind.log)
                tocsind.stop(signal.SIGKILL)
                raise
            finally:
                redis.stop()


# --- bare send loop ------------------------------------------------------------------

def run_bare(n, rnd):
    pf = os.path.join(WORK, "blaster-%d-%d.port" % (n, rnd))
    out = os.path.join(WORK, "blaster-%d-%d.json" % (n, rnd))
    with open(out, "w") as f:
        blaster = subprocess.Popen(SENDER + [BLASTER, "--conns", str(n), "--frame", str(FRAME),
                                    "--port-file", pf] + (["--plain"] if args.bare_plain else []),
                                   stdout=f)
    PROCS.append(blaster)
    swarm = None
    try:
        deadline = time.time() + 10
        while not (os.path.exists(pf) and open(pf).read().strip()):
            if time.time() > deadline:
                raise RuntimeError("blaster did not start")
            time.sleep(0.01)
        port = int(open(pf).read())
        swarm = Swarms(n, "127.0.0.1:%d" % port, "raw", "swarm-bare-%d-%d" % (n, rnd),
                       ["--frame", str(FRAME)])
        cpu = CpuTimeline({"sender": [blaster.pid], "swarm": swarm.pids})
        perf = None
        if args.perf:  # the blaster sends 1 s after the last connection is in
            swarm.wait_online()
            perf = subprocess.Popen(["perf", "record", "-g", "-k", "CLOCK_MONOTONIC", "-o", args.perf + ".bare", "-p",
                                     ",".join(str(p) for p in [blaster.pid] + swarm.pids)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        blaster.wait(max(180, n / 500))
        PROCS.remove(blaster)
        with open(out) as f:
            lines = f.read().strip().splitlines()
        if blaster.returncode != 0 or not lines:
            raise RuntimeError("fanout_blaster exited with %s" % blaster.returncode)
        res = json.loads(lines[-1])
        t0 = res["t0_us"] / 1e6
        times = swarm.wait_received()
        cpu.stop()
        if perf:
            stop(perf, signal.SIGINT)
        s = summary(t0, times, cpu)
        if perf:
            log("  perf: t0 = %.6f s CLOCK_MONOTONIC (%s.bare)" % (t0, args.perf))
        s["sender_last_answer_ms"] = (res["last_answer_us"] - res["t0_us"]) / 1000
        return s
    finally:
        if swarm:
            swarm.stop()
        if blaster in PROCS:
            stop(blaster)


# --- mosquitto -------------------------------------------------------------------------

def mqtt_str(s):
    s = s.encode()
    return len(s).to_bytes(2, "big") + s


def mqtt_pkt(kind, body):
    n, out = len(body), bytearray([kind])
    while True:
        dig, n = n % 128, n // 128
        out.append(dig | (0x80 if n else 0))
        if not n:
            break
    return bytes(out) + body


def run_mosquitto(n, rnd):
    port = free_port()
    conf = os.path.join(WORK, "mosquitto-%d-%d.conf" % (n, rnd))
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\nmax_connections -1\n"
                "persistence false\nmax_queued_messages 1000\n" % port)
    broker = start(SENDER + ["/usr/sbin/mosquitto", "-c", conf], "mosquitto-%d-%d" % (n, rnd))
    swarm = None
    try:
        wait_port(port, broker)
        swarm = Swarms(n, "127.0.0.1:%d" % port, "mqtt", "swarm-mqtt-%d-%d" % (n, rnd))
        swarm.wait_online()
        time.sleep(1)
        pub = socket.create_connection(("127.0.0.1", port))
        pub.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pub.sendall(mqtt_pkt(0x10, mqtt_str("MQTT") + bytes([4, 2, 0, 0]) + mqtt_str("pub")))
        pub.recv(4)  # CONNACK
        payload = b"x" * (FRAME - 2 - len("alert") - 2 - 3)  # the PUBLISH packet is 1024 bytes
        t0 = time.monotonic()
        pub.sendall(mqtt_pkt(0x32, mqtt_str("alert") + (1).to_bytes(2, "big") + payload))
        puback = pub.recv(4)
        broker_ack = (time.monotonic() - t0) * 1000
        assert puback[0] == 0x40, puback
        times = swarm.wait_received()
        pub.close()
        s = summary(t0, times)
        s["publisher_puback_ms"] = broker_ack
        return s
    finally:
        if swarm:
            swarm.stop()
        stop(broker)


# --- report --------------------------------------------------------------------------------

def median(xs):
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def fmt(v):
    return "—" if v is None else "%.0f" % v


SYSTEMS = ("tocsind", "bare", "mosquitto")


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pb = load_pb(SRC)
    bureau = Bureau(pb)
    results = {}
    for n in args.conns:
        rounds = {k: [] for k in SYSTEMS}
        notes = {}  # system -> why it has no figures at this N
        if "mosquitto" in args.systems and n + 200 > hard:
            notes["mosquitto"] = ("skipped: one process holds at most %d descriptors "
                                  "(hard RLIMIT_NOFILE %d, less 200 for the rest)" % (hard - 200, hard))
            log("%d connections: mosquitto %s" % (n, notes["mosquitto"]))
        for rnd in range(args.rounds):
            for k, run in (("tocsind", lambda: run_tocsind(n, bureau, pb, rnd)),
                           ("bare", lambda: run_bare(n, rnd)),
                           ("mosquitto", lambda: run_mosquitto(n, rnd))):
                if k not in args.systems or k in notes:
                    continue
                log("%d connections, round %d: %s" % (n, rnd + 1, k))
                try:
                    rounds[k].append(run())
                except Exception as e:  # noqa: BLE001 - reported, and the others still run
                    notes[k] = "failed in round %d: %s" % (rnd + 1, e)
                    FAILED.append(k)
                    log("  %s %s" % (k, notes[k]))
                    rounds[k] = []
                    continue
                log("  %s: %s" % (k, json.dumps({a: round(b, 1) if isinstance(b, float) else b
                                                 for a, b in rounds[k][-1].items()})))
        results[n] = {k: {m: median([r.get(m) for r in v]) for m in v[0]}
                      for k, v in rounds.items() if v}
        results[n]["rounds"] = rounds
        results[n]["notes"] = notes
    md = report(results)
    print(md)
    if args.results:
        with open(os.path.join(HERE, "RESULTS.md")) as f:
            text = f.read()
        anchor = "## Dispatch (issue 4)"
        text = text.replace(anchor, md + "\n" + anchor, 1) if anchor in text else text + "\n" + md
        with open(os.path.join(HERE, "RESULTS.md"), "w") as f:
            f.write(text)
    failed = ["%s at %d" % (k, n) for n, r in results.items() for k, why in r["notes"].items()
              if why.startswith("failed")]
    if failed:
        log("failed: " + ", ".join(failed))
        sys.exit(1)


def report(results):
    cmd = "/usr/bin/python3 bench/terminal_fanout.py %s --conns %s --rounds %d --play-ms %d%s%s" % (
        args.build, " ".join(str(n) for n in args.conns), args.rounds, args.play_ms,
        (" --per-swarm %d" % args.per_swarm if args.per_swarm != 18000 else "") +
        (" --bare-plain" if args.bare_plain else "") + (" --pin" if args.pin else ""),
        "".join(" --lane " + kv for kv in args.lane))
    out = ["### Fan-out of one ~1 KB alert (`%s`)" % cmd, "",
           "%s, %s, %d cores; medians of %d rounds; times in ms from the push (t0) on "
           "CLOCK_MONOTONIC; the same receiver for all three (`terminal_swarm`, ceil(N / %d) "
           "epoll processes, their times merged); terminals answer Ack RECEIVED at once and "
           "Ack PLAYED %d ms later. %s"
           % (time.strftime("%Y-%m-%d"), os.uname().release, os.cpu_count(), args.rounds,
              PER_SWARM, args.play_ms,
              "The bare send loop is epoll + send() on plain descriptors." if args.bare_plain else
              "The bare send loop holds its connections as io_uring direct descriptors over "
              "ceil(N / %d) rings in one process." % HARD_NOFILE), "",
           "| N | system | first | p50 | p99 | last receipt | last answer sent | sender saw all answers | spread (last − first) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for n, r in results.items():
        for k in SYSTEMS:
            if k in r["notes"]:
                out.append("| %d | %s | %s |||||||" % (n, k, r["notes"][k]))
            if k not in r:
                continue
            s = r[k]
            seen = s.get("engine_all_acks_ms") if k == "tocsind" else \
                s.get("sender_last_answer_ms") if k == "bare" else None
            out.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                n, k, fmt(s["first_ms"]), fmt(s["p50_ms"]), fmt(s["p99_ms"]), fmt(s["last_ms"]),
                fmt(s["last_answer_ms"]), fmt(seen), fmt(s["spread_ms"])))
    out.append("")
    for n, r in results.items():
        parts = []
        t, b, m = r.get("tocsind"), r.get("bare"), r.get("mosquitto")
        if t and b:
            # tocsind and bare of one round ran back to back, under the same load
            per_round = sorted(tr["last_ms"] / br["last_ms"]
                               for tr, br in zip(r["rounds"]["tocsind"], r["rounds"]["bare"]))
            parts.append("last receipt tocsind / bare = **%.2f** (per round %s, median **%.2f**); "
                         "spread tocsind / bare = %.2f"
                         % (t["last_ms"] / b["last_ms"], ", ".join("%.2f" % x for x in per_round),
                            per_round[len(per_round) // 2],
                            t["spread_ms"] / max(b["spread_ms"], 0.001)))
        if m and b:
            parts.append("mosquitto / bare = %.2f" % (m["last_ms"] / b["last_ms"]))
        if t and m:
            parts.append("tocsind / mosquitto = %.2f" % (t["last_ms"] / m["last_ms"]))
        if t:
            parts.append("tocsind's push includes admission (202 after %.0f ms) and resolution"
                         % t["admitted_ms"])
        if parts:
            out.append("- N = %d: %s." % (n, "; ".join(parts)))
        cpu = ["%s: %s" % (k, ", ".join("%s %s" % (g, fmt(r[k].get("cpu_%s_ms" % g)))
                                       for g in ("sender", "redis", "swarm", "idle")
                                       if r[k].get("cpu_%s_ms" % g) is not None))
               for k in ("tocsind", "bare") if k in r]
        if cpu:
            out.append("- N = %d, CPU ms from t0 to the last receipt (medians; sender = tocsind "
                       "or the blaster, idle = both cores' idle time): %s." % (n, "; ".join(cpu)))
    return "\n".join(out) + "\n"


FAILED = []  # systems that failed a round: the work directory (logs) is kept for them

if __name__ == "__main__":
    try:
        main()
    except BaseException:
        FAILED.append("the script")
        raise
    finally:
        for p in list(PROCS):
            stop(p, signal.SIGKILL)
        if FAILED:
            print("# kept %s (%s failed)" % (WORK, ", ".join(FAILED)), flush=True)
        else:
            shutil.rmtree(WORK, ignore_errors=True)
