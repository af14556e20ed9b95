#!/usr/bin/python3
"""tests/integration/test_swarm_login.py: terminal_swarm's login deadline.

  test_swarm_login.py TERMINAL_SWARM_BINARY

A listener that completes TCP handshakes (the kernel does, from its backlog)
but never sends a Challenge stands for a gateway that dropped the
connection on its side. Each of 3 terminals with --login-ms 300 must give up,
count a login timeout and reconnect; with the deadline off (--login-ms 0)
none is counted. Exit 0 = pass.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time


def run(swarm, work, port, login_ms):
    csv = os.path.join(work, "t.csv")
    with open(csv, "w") as f:
        f.write("id,segment,kind,covers_persons,secret\n")
        for i in range(3):
            f.write("t-%d,35010101,speaker,10,s-%d\n" % (i, i))
    stats = os.path.join(work, "stats-%d.json" % login_ms)
    p = subprocess.Popen([swarm, "--csv", csv, "--target", "127.0.0.1:%d" % port, "--count", "3",
                          "--login-ms", str(login_ms), "--reconnect-ms", "100", "--stats", stats],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=10)
    with open(stats) as f:
        return rc, json.loads(f.read().strip().splitlines()[-1])


def main():
    swarm = sys.argv[1]
    work = tempfile.mkdtemp(prefix="test_swarm_login.")
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)  # never accepted, never answered
    port = ls.getsockname()[1]
    ok = True
    rc, st = run(swarm, work, port, 300)
    good = rc == 0 and st["login_timeouts"] >= 3 and st["reconnects"] >= 3 and st["online"] == 0
    print("%s - --login-ms 300: login_timeouts %d, reconnects %d, online %d"
          % ("ok" if good else "FAIL", st["login_timeouts"], st["reconnects"], st["online"]))
    ok &= good
    rc, st = run(swarm, work, port, 0)
    good = rc == 0 and st["login_timeouts"] == 0
    print("%s - --login-ms 0: no deadline, login_timeouts %d" % ("ok" if good else "FAIL",
                                                                st["login_timeouts"]))
    ok &= good
    ls.close()
    subprocess.run(["rm", "-rf", work])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
