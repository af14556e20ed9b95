#!/usr/bin/env bash
# bench/terminal_scale.sh: the terminal gateway at 100,000 connections on
# this machine, against a bare epoll fan-out baseline (not run in CI).
#
#   bench/terminal_scale.sh [BUILD_DIR] [CONNECTIONS]
#
# Runs tests/integration/test_terminal with CONNECTIONS swarm terminals
# (private redis-server, `tocsin load`, adapter_terminal on one io_uring
# loop, bench/terminal_swarm over 8 loopback source addresses): it prints
# the gateway's RSS per idle authenticated connection and the time for one
# Alert to reach every terminal and come back PLAYED/FAILED (swarm play
# delay 50 ms). Then bench/fanout_blaster does the same fan-out with no
# protocol (same connection count, a frame of the Alert's size). Appends
# both, with the command, to bench/RESULTS.md under "## Terminals (issue 7)".
# Needs root (RLIMIT_NOFILE above the default hard limit).
set -euo pipefail
BUILD=$(realpath "${1:-build}")
N=${2:-100000}
# Each process holds N sockets: without CAP_SYS_RESOURCE (containers) the
# hard RLIMIT_NOFILE cannot be raised, so N is capped below it, and said so.
HARD=$(ulimit -Hn)
if [ "$HARD" != unlimited ] && [ "$N" -gt $((HARD - 1000)) ]; then
	echo "RLIMIT_NOFILE hard limit is $HARD and cannot be raised here: using $((HARD - 1000)) connections instead of $N" >&2
	CAPPED="(asked for $N; capped by the hard RLIMIT_NOFILE $HARD, no CAP_SYS_RESOURCE)"
	N=$((HARD - 1000))
fi
ARGS="${1:-build} ${2:-100000}"
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(mktemp /tmp/terminal_scale.XXXXXX)
trap 'rm -f "$OUT"' EXIT

echo "gateway: test_terminal with $N swarm connections..." >&2
/usr/bin/time -v "$BUILD/tests/integration/test_terminal" "$BUILD/engine/tocsin" \
	"$BUILD/bench/terminal_swarm" "$N" >"$OUT" 2>"$OUT.time" || { cat "$OUT"; exit 1; }
gw_line=$(grep '^# scale: [0-9]* idle' "$OUT" | sed 's/^# scale: //')
fan_line=$(grep '^# scale: alert fan-out' "$OUT" | sed 's/^# scale: //')
echo "baseline: fanout_blaster --conns $N..." >&2
base=$("$BUILD/bench/fanout_blaster" --conns "$N" --frame 130)
rm -f "$OUT.time"

{
	if ! grep -q '^## Terminals (issue 7)' "$HERE/RESULTS.md"; then
		printf '\n## Terminals (issue 7)\n'
	fi
	printf '\n%s, %s, %s cores. `bench/terminal_scale.sh %s`%s\n\n' "$(date -u +%F)" \
		"$(uname -r)" "$(nproc)" "$ARGS" ""
	[ -n "${CAPPED:-}" ] && printf -- '- %s connections %s\n' "$N" "$CAPPED"
	printf -- '- gateway: %s\n' "$gw_line"
	printf -- '- gateway: %s\n' "$fan_line"
	printf -- '- baseline (bare epoll, no protocol/auth, 130-byte frame): %s\n' "$base"
} >>"$HERE/RESULTS.md"
tail -6 "$HERE/RESULTS.md"
