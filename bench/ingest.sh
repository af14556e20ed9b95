#!/usr/bin/env bash
# bench/ingest.sh: admitted signed warnings per second, against Ed25519
# verifies per second measured in the same run (issue 2).
#
#   bench/ingest.sh [BUILD_DIR]        # default: build
#
# Environment: N (requests per run, 20000), C (connections, 8), M (streams
# per connection, 32), THREADS (tocsind [server] threads, 1), FSYNC_MODES
# ("everysec always"), SPEED_SECONDS (5).
#
# Starts its own redis-server and tocsind on private ports in a temp dir,
# and stops them by pid on exit. For each appendfsync mode it measures:
#   replay:   h2load with one body; the first request admits, every later one
#             is an idempotent replay (envelope decode, Ed25519 verify,
#             payload decode, validation, one Redis Lua round trip; no write).
#   distinct: bench/ingest_load with N different signed bodies; every request
#             is a new admission (a journal write in Redis).
# Then `openssl speed ed25519` (one core), and prints rates, the ratio per
# configured core and the ratio per CPU-second tocsind actually used.
set -euo pipefail

BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-20000}
C=${C:-8}
M=${M:-32}
THREADS=${THREADS:-1}
FSYNC_MODES=${FSYNC_MODES:-"everysec always"}
SPEED_SECONDS=${SPEED_SECONDS:-5}
TOCSIN=$BUILD/engine/tocsin
TOCSIND=$BUILD/engine/tocsind
LOAD=$BUILD/bench/ingest_load

die() { echo "ingest.sh: $*" >&2; exit 1; }
for bin in "$TOCSIN" "$TOCSIND" "$LOAD"; do
	[ -x "$bin" ] || die "$bin not built (cd $BUILD && make)"
done
for tool in redis-server redis-cli h2load openssl; do
	command -v "$tool" >/dev/null || die "$tool not found in PATH"
done

WORK=$(mktemp -d /tmp/tocsin-ingest.XXXXXX)
REDIS_PID=""
TOCSIND_PID=""
stop_pid() { # pid: TERM, wait up to 10 s, then KILL
	local pid=$1 i
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
	stop_pid "$TOCSIND_PID"
	stop_pid "$REDIS_PID"
	TOCSIND_PID="" REDIS_PID=""
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() { # port pid name
	local i
	for i in $(seq 100); do
		kill -0 "$2" 2>/dev/null || die "$3 exited before listening (log: see below)"
		(exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
		sleep 0.1
	done
	die "$3 not listening on port $1 after 10 s"
}
cpu_ticks() { # utime + stime of a pid, in clock ticks
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}
TICK=$(getconf CLK_TCK)

start_redis() { # fsync mode
	REDIS_PORT=$(free_port)
	mkdir -p "$WORK/redis-$1"
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis-$1" --save "" \
		--appendonly yes --appendfsync "$1" --daemonize no \
		>"$WORK/redis-$1.log" 2>&1 &
	REDIS_PID=$!
	wait_port "$REDIS_PORT" "$REDIS_PID" redis-server || { cat "$WORK/redis-$1.log"; exit 1; }
}

start_tocsind() {
	TOCSIND_PORT=$(free_port)
	cat >"$WORK/tocsind.ini" <<-EOF
	[server]
	listen = 127.0.0.1:$TOCSIND_PORT
	threads = $THREADS
	[redis]
	address = 127.0.0.1:$REDIS_PORT
	[keyring]
	file = $WORK/bench.keyring.ini
	[log]
	level = warn
	EOF
	"$TOCSIND" --config "$WORK/tocsind.ini" >"$WORK/tocsind.log" 2>&1 &
	TOCSIND_PID=$!
	if ! wait_port "$TOCSIND_PORT" "$TOCSIND_PID" tocsind; then
		cat "$WORK/tocsind.log" >&2
		exit 1
	fi
}

stop_servers() {
	stop_pid "$TOCSIND_PID"
	stop_pid "$REDIS_PID"
	TOCSIND_PID="" REDIS_PID=""
}

# A tiny population holding the example warning's targets, so that a check
# that targets exist (422) passes.
write_population() {
	mkdir -p "$WORK/pop"
	cat >"$WORK/pop/segments.csv" <<-EOF
	id,kind,parent,name,population
	350102,district,,Gulou,10
	350102001,street,350102,Gudong,5
	350102002,street,350102,Guxi,5
	350102002001,community,350102002,Community 1,5
	350102002001B0001,building,350102002001,Building 1,5
	EOF
	cat >"$WORK/pop/households.csv" <<-EOF
	id,building,persons,lang,phones,apps
	350102002001B0001H001,350102002001B0001,2,zh-CN,+8613800000001,
	EOF
	echo "id,segment,kind,covers_persons,secret" >"$WORK/pop/terminals.csv"
}

# run_h2load LABEL -> sets RATE, OK, CPU (tocsind CPU seconds), RCPU (redis)
run_h2load() {
	local t0 r0 out
	t0=$(cpu_ticks "$TOCSIND_PID"); r0=$(cpu_ticks "$REDIS_PID")
	out=$(h2load -n "$N" -c "$C" -m "$M" -H 'content-type: application/x-protobuf' \
		-d "$WORK/w.bin" "http://127.0.0.1:$TOCSIND_PORT/v1/warnings" 2>&1) ||
		{ echo "$out" >&2; die "h2load failed"; }
	CPU=$(( $(cpu_ticks "$TOCSIND_PID") - t0 )); RCPU=$(( $(cpu_ticks "$REDIS_PID") - r0 ))
	OK=$(echo "$out" | awk '/^status codes:/ { gsub(",", ""); print $3 }')
	local done
	done=$(echo "$out" | awk '/^requests:/ { print $8 }')
	echo "$out" | grep -E '^(finished in|requests:|status codes:)' | sed 's/^/    /'
	[ "$OK" = "$N" ] || die "h2load: only $OK of $N requests got 2xx (done=$done)"
	# h2load reports the time in s or ms.
	RATE=$(echo "$out" | awk '/^finished in/ { print $4 }')
}

run_distinct() { # prefix
	local t0 r0 out
	t0=$(cpu_ticks "$TOCSIND_PID"); r0=$(cpu_ticks "$REDIS_PID")
	out=$("$LOAD" --port "$TOCSIND_PORT" --key "$WORK/bench.key" --key-id bench-ed \
		--template "$WORK/w.bin" --prefix "$1" -n "$N" -c "$C" -m "$M" 2>"$WORK/load.err") ||
		{ cat "$WORK/load.err" >&2; echo "$out" >&2; die "ingest_load failed"; }
	CPU=$(( $(cpu_ticks "$TOCSIND_PID") - t0 )); RCPU=$(( $(cpu_ticks "$REDIS_PID") - r0 ))
	sed 's/^/    /' "$WORK/load.err"
	echo "    $out"
	RATE=$(echo "$out" | sed -n 's/.*rate=\([0-9.]*\).*/\1/p')
	OK=$(echo "$out" | sed -n 's/.* ok=\([0-9]*\).*/\1/p')
	[ "$OK" = "$N" ] || die "ingest_load: only $OK of $N admitted"
}

report() { # label
	local cpu_s rcpu_s
	cpu_s=$(awk -v t="$CPU" -v k="$TICK" 'BEGIN { printf "%.2f", t / k }')
	rcpu_s=$(awk -v t="$RCPU" -v k="$TICK" 'BEGIN { printf "%.2f", t / k }')
	awk -v label="$1" -v rate="$RATE" -v v="$VERIFY" -v th="$THREADS" -v n="$N" \
		-v cpu="$cpu_s" -v rcpu="$rcpu_s" 'BEGIN {
		per_cpu = cpu > 0 ? n / cpu : 0
		printf "  %-26s %9.0f admitted/s  ratio/core(threads=%d) %.3f  tocsind CPU %.2f s -> %.0f adm/CPU-s, ratio/CPU-s %.3f  (redis CPU %.2f s)\n",
			label, rate, th, rate / (v * th), cpu, per_cpu, per_cpu / v, rcpu
	}' | tee -a "$WORK/summary"
}

cd "$WORK"
echo "== tocsin ingest benchmark: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))"
echo "   N=$N requests, $C connections x $M streams (HTTP/2 cleartext), tocsind threads=$THREADS"

"$TOCSIN" keygen --alg ed25519 --id bench-ed --sender met.fuzhou.gov.cn --segments 350102 \
	--statuses Actual,Exercise,Test --out "$WORK/bench" >/dev/null ||
	die "tocsin keygen failed"
"$TOCSIN" sign --key "$WORK/bench.key" --key-id bench-ed --out "$WORK/w.bin" \
	"$SRC/ops/warning.example.ini" --identifier bench-1 || die "tocsin sign failed"
echo "   body: $(stat -c %s "$WORK/w.bin") bytes SignedWarning (ops/warning.example.ini, 2 infos, 2 targets)"
write_population

echo
echo "== openssl speed -seconds $SPEED_SECONDS ed25519 (one core, before the servers start)"
speed=$(openssl speed -seconds "$SPEED_SECONDS" ed25519 2>/dev/null) || die "openssl speed failed"
line=$(echo "$speed" | grep -E 'EdDSA \(Ed25519\)' | tail -1)
echo "    $line"
VERIFY=$(echo "$line" | awk '{ print $NF }')
[ -n "$VERIFY" ] || die "could not parse verify/s from openssl speed"
echo "    verify/s = $VERIFY"

: >"$WORK/summary"
for mode in $FSYNC_MODES; do
	echo
	echo "== redis appendonly yes, appendfsync $mode"
	start_redis "$mode"
	"$TOCSIN" load --redis "127.0.0.1:$REDIS_PORT" --dir "$WORK/pop" >"$WORK/load.log" 2>&1 ||
		{ cat "$WORK/load.log" >&2; die "tocsin load failed"; }
	start_tocsind
	echo "  replay admissions (h2load, one body: 1 new + $((N - 1)) idempotent replays):"
	run_h2load
	echo " appendfsync $mode:" >>"$WORK/summary"
	report "replay (h2load)"
	echo "  distinct admissions (ingest_load, $N different signed warnings):"
	run_distinct "bench-$mode"
	report "distinct (ingest_load)"
	stored=$(redis-cli -p "$REDIS_PORT" --scan --pattern '*bench-'"$mode"'-*' | wc -l)
	echo "    redis keys naming bench-$mode-*: $stored"
	stop_servers
done

echo
echo "== summary (goal: >= 0.8 of the verify rate per core used)"
echo "  verify/s (openssl speed, 1 core): $VERIFY"
cat "$WORK/summary"
