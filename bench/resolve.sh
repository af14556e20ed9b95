#!/usr/bin/env bash
# bench/resolve.sh: recipient resolution throughput (engine/resolve.c).
#
#   bench/resolve.sh BUILD_DIR [SCALE...]     # e.g. build 1 1.45 14.5
#
# For each scale: generate the district (gen_district), load it into a
# private redis-server (unix socket), then time `tocsin plan --json` over
# all 10 streets: addresses per second and time to first batch. Baseline
# in the same run: bench/resolve_baseline issuing the resolver's command
# mix (HMGET per target, LRANGE kids + LRANGE terms per community,
# LRANGE ha + LRANGE hh + LRANGE terms per building (app tokens apart
# since population layout 4), EXISTS meta; no HMGET per terminal since
# population layout 2) with the same window of 256
# outstanding commands and nothing else to do; the ratio (baseline time /
# plan time) says how close the engine gets to what Redis itself serves. Peak RSS of tocsin plan via
# /usr/bin/time -v, divided by the persons targeted. Prints a markdown row
# per scale; append them to bench/RESULTS.md by hand or with >>.
set -euo pipefail
BUILD=$(realpath "${1:?usage: resolve.sh BUILD_DIR [SCALE...]}")
shift
SCALES=("${@:-1}")
TOCSIN=$BUILD/engine/tocsin
GEN=$BUILD/bench/gen_district
WORK=$(mktemp -d /tmp/bench_resolve.XXXXXX)
SOCK=$WORK/redis.sock
REDIS_PID=
cleanup() {
	if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
	rm -rf "$WORK"
}
trap cleanup EXIT
redis-server --port 0 --unixsocket "$SOCK" --save '' --appendonly no --daemonize no \
	>"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
R() { redis-cli -s "$SOCK" "$@"; }

streets="350102001, 350102002, 350102003, 350102004, 350102005, 350102006, 350102007, 350102008, 350102009, 350102010"
{
	printf '[alert]\nidentifier = bench\nsender = met.fuzhou.gov.cn\nstatus = Actual\n'
	printf 'msg_type = Alert\ntargets = %s\n' "$streets"
	for lang in zh-CN en-US; do
		printf '\n[info %s]\ncategory = Met\nevent = x\nurgency = Immediate\n' "$lang"
		printf 'severity = Extreme\ncertainty = Observed\nexpires = +6h\nheadline = x\n'
	done
} >"$WORK/w.ini"

# The resolver's command mix for the whole district, as RESP for --pipe.
command_mix() {
	local v=$1 p="tocsin:pop:v$1:"
	python3 - "$WORK/gen" "$p" <<'PY'
import csv, sys
d, p = sys.argv[1], sys.argv[2]
def cmd(*a):
    out = ["*%d\r\n" % len(a)]
    for x in a:
        b = x.encode()
        out.append("$%d\r\n" % len(b)); out.append(b.decode() + "\r\n")
    return "".join(out)
w = sys.stdout.write
w(cmd("GET", "tocsin:pop:current")); w(cmd("HGET", p + "meta", "hix_buckets"))
for r in csv.DictReader(open(d + "/segments.csv", encoding="utf-8-sig")):
    k = r["kind"]
    if k == "street":
        w(cmd("HMGET", p + "seg:" + r["id"], "kind", "parent")); w(cmd("LRANGE", p + "kids:" + r["id"], "0", "-1"))
    elif k == "community":
        w(cmd("LRANGE", p + "kids:" + r["id"], "0", "-1")); w(cmd("LRANGE", p + "terms:" + r["id"], "0", "-1"))
    elif k == "building":
        w(cmd("LRANGE", p + "ha:" + r["id"], "0", "-1")); w(cmd("LRANGE", p + "hh:" + r["id"], "0", "-1"))
        w(cmd("LRANGE", p + "terms:" + r["id"], "0", "-1"))
w(cmd("EXISTS", p + "meta"))
PY
}

BASE=$BUILD/bench/resolve_baseline
echo "| scale | persons | addresses | plan total ms | first batch ms | addresses/s | baseline ms (same mix, raw) | ratio baseline/plan | plan peak RSS MB | bytes/person |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for scale in "${SCALES[@]}"; do
	rm -rf "$WORK/gen"
	"$GEN" --scale "$scale" --out "$WORK/gen" >/dev/null
	R FLUSHALL >/dev/null
	"$TOCSIN" load --redis "unix:$SOCK" --dir "$WORK/gen" >/dev/null 2>&1
	v=$(R GET tocsin:pop:current)
	"$TOCSIN" plan --redis "unix:$SOCK" --json "$WORK/w.ini" >/dev/null # warm
	/usr/bin/time -v "$TOCSIN" plan --redis "unix:$SOCK" --json "$WORK/w.ini" \
		>"$WORK/plan.json" 2>"$WORK/time.txt"
	rss_kb=$(awk -F: '/Maximum resident/ {gsub(/ /,"",$2); print $2}' "$WORK/time.txt")
	command_mix "$v" >"$WORK/mix.resp"
	"$BASE" "$SOCK" "$WORK/mix.resp" 256 >/dev/null # warm
	pipe_ms=$("$BASE" "$SOCK" "$WORK/mix.resp" 256 | awk '{ printf "%.1f", $3 * 1000 }')
	python3 - "$WORK/plan.json" "$scale" "$pipe_ms" "$rss_kb" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); scale, pipe_ms, rss_kb = sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
t = j["totals"]; addrs = t["sms"] + sum(t["apps"].values()) + t["terminals"]
print("| %s | %d | %d | %.1f | %.2f | %.0f | %.0f | %.2f | %.1f | %.0f |" % (
    scale, t["persons"], addrs, j["total_ms"], j["first_batch_ms"], addrs / (j["total_ms"] / 1000),
    pipe_ms, pipe_ms / max(j["total_ms"], 1e-3), rss_kb / 1024, rss_kb * 1024 / t["persons"]))
PY
done
echo "(goal: ratio >= 0.7 and first batch < 10 ms for the default district, scale 1)"
