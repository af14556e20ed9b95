"""tests/integration/harness.py: start and stop the real parts of a test.

Every process a test starts (redis-server, tocsind) is started here, with
private ports and a private directory, and stopped by pid. Run with Debian's
/usr/bin/python3 (it sees python3-protobuf and python3-cryptography).
"""
import atexit
import os
import signal
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before listening" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d not listening after %.0fs" % (port, timeout))


SANITIZER_FINDINGS = []


@atexit.register
def sanitizer_exit():
    """Exit 1 when tocsind reported a sanitizer finding (Tocsind.check_sanitizers), after
    every cleanup has run: a test that passed otherwise still fails."""
    if SANITIZER_FINDINGS:
        print("FAILED: %d sanitizer report(s) from tocsind:\n  %s"
              % (len(SANITIZER_FINDINGS), "\n  ".join(SANITIZER_FINDINGS)), file=sys.stderr, flush=True)
        os._exit(1)


def pinning(on):
    """The benches' --pin: (sender prefix, receiver prefix) for argv, taskset on CPU 0 and
    CPU 1, the same for the engine and its baseline; tocsind (started through Tocsind) gets
    the sender's through TOCSIN_WRAP. Both empty when off."""
    if not on:
        return [], []
    sender, receiver = ["taskset", "-c", "0"], ["taskset", "-c", "1"]
    os.environ["TOCSIN_WRAP"] = " ".join(sender + os.environ.get("TOCSIN_WRAP", "").split())
    return sender, receiver


class Redis:
    """A private redis-server with the durability tocsind expects (AOF, fsync always)."""

    def __init__(self, workdir, port=None):
        self.dir = workdir
        self.port = port or free_port()
        self.proc = None

    def start(self):
        self.logf = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", self.dir, "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--daemonize", "no"],
            stdout=self.logf, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc)
        return self

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port)] + list(args),
                              capture_output=True, text=True, check=True).stdout

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if self.proc:
            self.logf.close()
        self.proc = None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port


class Tocsind:
    """tocsind with a generated config; `extra` adds [section] key = value lines."""

    def __init__(self, binary, workdir, redis_addr, keyring, extra=None, name="tocsind"):
        self.binary = binary
        self.dir = workdir
        self.port = free_port()
        self.conf = os.path.join(workdir, name + ".ini")
        self.log = os.path.join(workdir, name + ".log")
        sections = {"server": {"listen": "127.0.0.1:%d" % self.port, "threads": "2"},
                    "redis": {"address": redis_addr},
                    "keyring": {"file": keyring}}
        for (sec, key), val in (extra or {}).items():
            sections.setdefault(sec, {})[key] = val
        with open(self.conf, "w") as f:
            for sec, kv in sections.items():
                f.write("[%s]\n" % sec)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
        self.proc = None

    def start(self):
        self.logf = open(self.log, "ab")
        self.log_from = self.logf.tell()
        # TOCSIN_WRAP (e.g. "valgrind --tool=callgrind") prefixes the command, for profiling
        wrap = os.environ.get("TOCSIN_WRAP", "").split()
        self.proc = subprocess.Popen(wrap + [self.binary, "--config", self.conf],
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc, 60.0 if wrap else 10.0)
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(20)
        rc = self.proc.returncode if self.proc else None
        if self.proc:
            self.logf.close()
            self.proc = None
            self.check_sanitizers()
        # After kill -9, the kernel tears the io_uring instance down asynchronously,
        # and its in-flight accept keeps the listening socket alive for a moment:
        # wait until the port refuses connections before anyone starts again.
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
            except OSError:
                break
            time.sleep(0.05)
        return rc

    def check_sanitizers(self):
        """A sanitizer build reports leaks, memory errors and undefined behaviour in the log
        (at exit, for leaks): any such report since start() fails the test process. Not by
        raising here (stop() is called from cleanup code that must go on: a Redis left
        running), but at exit, whatever the test's own verdict (sanitizer_exit)."""
        with open(self.log, "rb") as f:
            f.seek(self.log_from)
            text = f.read().decode("utf-8", "replace")
        for mark in ("ERROR: LeakSanitizer", "ERROR: AddressSanitizer", "runtime error:"):
            if mark in text:
                line = next(l for l in text.splitlines() if mark in l)
                finding = "tocsind: %s (see %s)" % (line.strip(), self.log)
                at = text.index(mark)
                report = text[text.rfind("\n", 0, at) + 1:][:4000]  # the log may be removed
                print("SANITIZER: %s\n%s" % (finding, report), file=sys.stderr, flush=True)
                SANITIZER_FINDINGS.append(finding)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port
