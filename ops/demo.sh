#!/bin/sh
# ops/demo.sh: the demo. Installs what is missing, builds, then runs a
# district-wide red typhoon warning through tocsin end to end on a private
# redis-server that this script starts (and stops, by pid, when it ends):
#
#   1. generate the default Gulou-shaped district (250,000 households) and
#      import it with `tocsin load`;
#   2. make a bureau signing key and a keyring entry (`tocsin keygen`);
#   3. start the gateway simulators (an SMPP SMSC, an APNs/FCM/webhook push
#      service, one simulated broadcast terminal per terminal of the
#      district) and tocsind with real SMPP, HTTP/2 push and terminal lanes;
#   4. submit the signed warning over HTTP/2 (`tocsin submit --http2`) and
#      print coverage as it grows, until every channel has answered;
#   5. preview who the warning reaches (`tocsin plan`).
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

step "start the gateway simulators: SMSC (SMPP 3.4), push service (HTTP/2), 2,000+ terminals"
"$BIN/bench/smsc_sim" --port 0 --port-file "$DIR/smsc.port" --receipt-delay-ms 300 \
	--mix delivrd=96,undeliv=2,expired=1,none=1 --stats "$DIR/smsc.json" 2>"$DIR/smsc.log" &
PIDS="$! $PIDS"
openssl ecparam -name prime256v1 -genkey -noout -out "$DIR/apns.key.sec1" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$DIR/apns.key.sec1" -out "$DIR/apns.p8"
openssl ec -in "$DIR/apns.p8" -pubout -out "$DIR/apns.pub" 2>/dev/null
echo "demo-fcm-bearer-token" >"$DIR/fcm.token"
"$BIN/bench/push_sim" --port 0 --port-file "$DIR/push.port" --latency-ms 20 --dead-pct 2 \
	--jwt-pubkey "$DIR/apns.pub" --bearer demo-fcm-bearer-token --stats "$DIR/push.json" \
	2>"$DIR/push.log" &
PIDS="$! $PIDS"
i=0
until [ -s "$DIR/smsc.port" ] && [ -s "$DIR/push.port" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || { echo "simulators did not start"; exit 1; }
	sleep 0.1
done
SMSC=$(cat "$DIR/smsc.port")
PUSH=$(cat "$DIR/push.port")
TERM_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

PORT=${DEMO_PORT:-18080}
cat >"$DIR/tocsind.ini" <<INI
[server]
listen = 127.0.0.1:$PORT
[redis]
address = unix:$DIR/redis.sock
[keyring]
file = $DIR/keyring.ini
[dispatch]
channels = sms, app, terminal
; SMS: three binds of one SMSC account, each at the rate the SMSC allows
[lane sms-1]
channel = sms
adapter = smpp
host = 127.0.0.1
port = $SMSC
system_id = gulou
password = demo
source_addr = 12379
rate = 2500
burst = 250
window = 200
[lane sms-2]
channel = sms
adapter = smpp
host = 127.0.0.1
port = $SMSC
system_id = gulou
password = demo
source_addr = 12379
rate = 2500
burst = 250
window = 200
[lane apns-1]
channel = app
platform = apns
adapter = push
url = http://127.0.0.1:$PUSH
topic = cn.gov.fuzhou.gulou.warning
team_id = DEMOTEAM01
key_id = DEMOKEY001
key_file = $DIR/apns.p8
rate = 4000
window = 400
[lane fcm-1]
channel = app
platform = fcm
adapter = push
url = http://127.0.0.1:$PUSH
project = gulou-warning
token_file = $DIR/fcm.token
rate = 4000
window = 400
[lane webhook-1]
channel = app
platform = webhook
adapter = push
url = http://127.0.0.1:$PUSH
path = /hooks/warning
window = 100
[lane terminals]
channel = terminal
adapter = terminal
listen = 127.0.0.1:$TERM_PORT
window = 100000
INI
step "start tocsind on 127.0.0.1:$PORT (terminal gateway on $TERM_PORT)"
"$BIN/engine/tocsind" --config "$DIR/tocsind.ini" 2>"$DIR/tocsind.log" &
PIDS="$! $PIDS"
i=0
until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$DIR/tocsind.log"; exit 1; }
	sleep 0.1
done
"$BIN/bench/terminal_swarm" --csv "$DIR/district/terminals.csv" --target "127.0.0.1:$TERM_PORT" \
	--count 100000 --play-ms 200 --fail-pct 1 --stats "$DIR/swarm.json" 2>"$DIR/swarm.log" &
PIDS="$! $PIDS"
sleep 2

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

step "coverage as it grows (people reached = confirmed by handset or terminal)"
/usr/bin/python3 - "$PORT" <<'PY'
import json, sys, time, urllib.request
url = "http://127.0.0.1:%s/v1/warnings/gulou-typhoon-demo-001" % sys.argv[1]
deadline = time.time() + float(__import__("os").environ.get("DEMO_SECONDS", "240"))
while True:
    with urllib.request.urlopen(url) as r:
        cov = json.load(r).get("coverage") or {}
    if cov:
        t = cov["targeted"] or 1
        ch = cov["channels"]
        bar = "#" * int(40 * cov["reached"] / t)
        print("%6.1fs  reached %6.2f%%  accepted %5.2f%%  |%-40s| sms %6.2f%%  app %6.2f%%  terminal %6.2f%%"
              % (cov["elapsed_ms"] / 1000, 100 * cov["reached"] / t, 100 * cov["accepted"] / t, bar,
                 100 * ch["sms"]["reached"] / max(ch["sms"]["targeted"], 1),
                 100 * ch["app"]["reached"] / max(ch["app"]["targeted"], 1),
                 100 * ch["terminal"]["reached"] / max(ch["terminal"]["targeted"], 1)), flush=True)
        if cov["state"] != "sending" or time.time() > deadline:
            break
        if cov["deliveries"]["queued"] == 0 and cov["deliveries"]["sent"] == 0 and cov["accepted"] == 0:
            break
    time.sleep(1)
print()
print("state %s: %d of %d persons reached (%.2f%%; census %d), time to 90%%: %s ms, first delivery after %s ms"
      % (cov["state"], cov["reached"], cov["targeted"], 100 * cov["reached"] / max(cov["targeted"], 1),
         cov["census"], cov["t90_ms"], cov["first_send_ms"]))
print("failed %d persons (no confirmation from any channel); deliveries: %s"
      % (cov["failed"], json.dumps(cov["deliveries"])))
print("worst communities:", ", ".join("%s %.0f%%" % (s["id"], 100 * s["reached"] / max(s["targeted"], 1))
                                       for s in cov["segments"][:5]))
PY

step "who it reaches (tocsin plan, a preview that sends nothing)"
"$BIN/engine/tocsin" plan --redis "unix:$DIR/redis.sock" "$DIR/typhoon.ini" | tail -8

step "done: files in $DIR"
