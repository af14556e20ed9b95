#!/usr/bin/env bash
# bench/terminal_scale.sh: the terminal gateway at scale (not run in CI).
#
#   bench/terminal_scale.sh [BUILD_DIR] [CONNECTIONS] [ROUNDS]
#
# 1. Memory per idle authenticated connection, plaintext and TLS:
#    tests/integration/test_terminal with CONNECTIONS swarm terminals
#    (private redis-server, `tocsin load`, adapter_terminal on one io_uring
#    loop holding its sockets as direct descriptors in shards, one
#    bench/terminal_swarm process per 16,000 terminals), on a lane with the
#    production defaults, plaintext and then TLS (`test_terminal ... tls`).
#    It prints the live heap bytes per connection (mallinfo2 delta after
#    malloc_trim) and the RSS delta, both without the fixed cost of the
#    shards opened meanwhile (said apart); kernel socket memory is not
#    included.
# 2. Fan-out of one ~1 KB alert: bench/terminal_fanout.py at 10,000, 50,000 and
#    CONNECTIONS: tocsind vs the bare send loop (bench/fanout_blaster) vs
#    Eclipse Mosquitto (QoS 1), with the same receiver (terminal_swarm).
# Both go to bench/RESULTS.md under "## Terminals (issue 7)", with the command.
#
# CONNECTIONS defaults to 100,000, the issue's figure, and runs whatever
# the descriptor limit (RLIMIT_NOFILE, 20,000 hard here): terminal_fanout.py
# and test_terminal start several swarm processes, the bare loop holds its
# sockets as io_uring direct descriptors over several rings, the gateway
# likewise, and Mosquitto (plain descriptors, one process) is skipped above
# the limit and said so in the section.
set -euo pipefail
BUILD=$(realpath "${1:-build}")
N=${2:-100000}
ROUNDS=${3:-3}
ASKED=$N
HARD=$(ulimit -Hn)
ulimit -n "$HARD"
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(mktemp /tmp/terminal_scale.XXXXXX)
trap 'rm -f "$OUT"' EXIT

mem() { # mem plaintext|tls
	echo "memory: test_terminal with $N $1 connections..." >&2
	# connects per second per swarm process: a handshake storm on 2 cores must still converge
	# (TLS handshakes cost CPU on both sides)
	SWARM_RATE=$([ "$1" = tls ] && echo 1000 || echo 3000) \
	"$BUILD/tests/integration/test_terminal" "$BUILD/engine/tocsin" "$BUILD/bench/terminal_swarm" \
		"$N" "$([ "$1" = tls ] && echo tls || echo plain)" >"$OUT" 2>&1 || { tail -30 "$OUT"; exit 1; }
	heap=$(sed -n "s/^# scale: [0-9]* idle authenticated [A-Za-z]* connections: heap in use \([-0-9]*\) bytes.*/\1/p" "$OUT")
	rss=$(sed -n "s/^# scale: [0-9]* idle authenticated [A-Za-z]* connections, RSS delta [0-9]* bytes = \([0-9]*\) bytes.*/\1/p" "$OUT")
	sizes=$(sed -n "s/.*(\(gateway process;.*\))$/\1/p" "$OUT")
	shards=$(sed -n "s/.*(malloc'd, live; besides \(.*\))$/\1/p" "$OUT")
	printf -- '- %s, %s idle authenticated connections: **%s bytes of live heap** per connection (RSS delta %s bytes per connection; %s; besides %s)\n' \
		"$1" "$N" "$heap" "$rss" "$sizes" "$shards"
}

plain_line=$(mem plaintext)
tls_line=$(mem tls)
FANOUT_N="10000 50000"
[ "$ASKED" -ne 10000 ] && [ "$ASKED" -ne 50000 ] && FANOUT_N="$FANOUT_N $ASKED"
echo "fan-out: bench/terminal_fanout.py --conns $FANOUT_N --rounds $ROUNDS..." >&2
# shellcheck disable=SC2086 # FANOUT_N is a list of numbers
fanout=$(/usr/bin/python3 "$HERE/terminal_fanout.py" "$BUILD" --conns $FANOUT_N --rounds "$ROUNDS") ||
	echo "terminal_fanout.py: a system failed at some N (the section says which and why)" >&2

SECTION=$(mktemp /tmp/terminal_scale_md.XXXXXX)
{
	printf '\n### Scale run, %s, %s, %s cores: `bench/terminal_scale.sh %s %s %s`\n\n' "$(date -u +%F)" \
		"$(uname -r)" "$(nproc)" "${1:-build}" "$ASKED" "$ROUNDS"
	printf -- '- RLIMIT_NOFILE: %s per process (hard); the gateway and the bare loop hold their sockets as io_uring direct descriptors, the swarm runs as several processes.\n' "$HARD"
	printf '%s\n%s\n\n%s\n' "$plain_line" "$tls_line" "$fanout"
} >"$SECTION"
# at the end of the "## Terminals (issue 7)" section (before the next "## ")
/usr/bin/python3 - "$HERE/RESULTS.md" "$SECTION" <<'PY'
import re, sys
path, add = sys.argv[1], open(sys.argv[2]).read()
text = open(path).read()
head = "## Terminals (issue 7)"
if head not in text:
    text += "\n" + head + "\n"
start = text.index(head) + len(head)
m = re.search(r"^## ", text[start:], re.M)
at = start + m.start() if m else len(text)
text = text[:at].rstrip("\n") + "\n" + add + "\n" + text[at:]
open(path, "w").write(text)
PY
rm -f "$SECTION"
echo "appended to bench/RESULTS.md (## Terminals (issue 7))" >&2
