#!/bin/sh
# ops/demo.sh: the demo. Installs what is missing, builds, then runs a
# district-wide red typhoon warning through tocsin end to end on a private
# redis-server that this script starts (and stops, by pid, when it ends):
#
#   1. generate the default Gulou-shaped district (250,000 households) and
#      import it with `tocsin load`;
#   2. make a bureau signing key and a keyring entry (`tocsin keygen`);
#   3. start tocsind and submit the signed warning over HTTP/2
#      (`tocsin submit --http2`), then show what tocsind journalled;
#   4. preview who the warning reaches (`tocsin plan`), when available.
#
# Everything lives in a temporary directory (DEMO_DIR to choose it).
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
./ops/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
BIN=$ROOT/build

DIR=${DEMO_DIR:-$(mktemp -d /tmp/tocsin-demo.XXXXXX)}
mkdir -p "$DIR"
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

step() { printf '\n== %s\n' "$*"; }

step "private redis-server (AOF, fsync always) on $DIR/redis.sock"
redis-server --port 0 --unixsocket "$DIR/redis.sock" --dir "$DIR" --save '' \
	--appendonly yes --appendfsync always --daemonize no >"$DIR/redis.log" 2>&1 &
PIDS="$!"
i=0
until redis-cli -s "$DIR/redis.sock" ping >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 100 ] || { echo "redis-server did not start"; exit 1; }
	sleep 0.1
done

step "generate and load the default district"
"$BIN/bench/gen_district" --seed 2026 --out "$DIR/district"
"$BIN/engine/tocsin" load --redis "unix:$DIR/redis.sock" --dir "$DIR/district"

step "bureau key (Ed25519) and keyring"
"$BIN/engine/tocsin" keygen --alg ed25519 --id gulou-met-demo --sender met.fuzhou.gov.cn \
	--segments 350102 --statuses Actual,Exercise,Test --out "$DIR/met" >/dev/null
cp "$DIR/met.keyring.ini" "$DIR/keyring.ini"

PORT=${DEMO_PORT:-18080}
cat >"$DIR/tocsind.ini" <<INI
[server]
listen = 127.0.0.1:$PORT
[redis]
address = unix:$DIR/redis.sock
[keyring]
file = $DIR/keyring.ini
INI
step "start tocsind on 127.0.0.1:$PORT"
"$BIN/engine/tocsind" --config "$DIR/tocsind.ini" 2>"$DIR/tocsind.log" &
PIDS="$! $PIDS"
i=0
until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$DIR/tocsind.log"; exit 1; }
	sleep 0.1
done

cat >"$DIR/typhoon.ini" <<'INI'
[alert]
identifier = gulou-typhoon-demo-001
sender = met.fuzhou.gov.cn
status = Actual
msg_type = Alert
colour = red
national_id = 35010241600000_20261129080000_1
targets = 350102001 350102002 350102003 350102004 350102005 350102006 350102007 350102008 350102009 350102010
[info zh-CN]
category = Met
event = 台风
urgency = Immediate
severity = Extreme
certainty = Observed
expires = +6h
sender_name = 福州市鼓楼区气象台
headline = 鼓楼区台风红色预警
instruction = 请立即停止户外活动，留在室内，远离门窗。
[info en-US]
category = Met
event = Typhoon
urgency = Immediate
severity = Extreme
certainty = Observed
expires = +6h
sender_name = Gulou District Meteorological Observatory
headline = Typhoon red warning for Gulou District
instruction = Stay indoors and away from windows.
INI

step "submit the signed district-wide red typhoon warning (HTTP/2)"
"$BIN/engine/tocsin" submit --http2 --url "http://127.0.0.1:$PORT" --key "$DIR/met.key" \
	--key-id gulou-met-demo "$DIR/typhoon.ini"

step "submitting the same identifier with other content is refused"
"$BIN/engine/tocsin" submit --url "http://127.0.0.1:$PORT" --key "$DIR/met.key" \
	--key-id gulou-met-demo "$DIR/typhoon.ini" --expires +5h || true

step "status of the warning"
"$BIN/engine/tocsin" status gulou-typhoon-demo-001 --url "http://127.0.0.1:$PORT"

if "$BIN/engine/tocsin" plan --help >/dev/null 2>&1; then
	step "who it reaches (tocsin plan)"
	"$BIN/engine/tocsin" plan --redis "unix:$DIR/redis.sock" "$DIR/typhoon.ini" | tail -20
fi

step "done: files in $DIR"
