#!/usr/bin/env bash
# tests/integration/test_resolve.sh: recipient resolution (engine/resolve.c)
# through `tocsin plan --json`, against a private redis-server.
#
#   test_resolve.sh TOCSIN_BINARY GEN_DISTRICT_BINARY
#
# Checks: overlapping targets (community + one of its buildings + one of
# its households) give exactly the community's counts; each household's
# language picks its info block (unknown -> the first); a phone shared by
# two households is sent once; an empty building resolves to zero without
# error; a household target; a whole street of the generated district
# equals the loader's aggregates for it; unknown targets and a missing
# population fail naming the ids; --body reads a signed warning; terminal
# lists resolve from their records, or from term: for a bare id (layout 1);
# household lists of layout 4 (app tokens apart, in ha:), layout 3 (joined
# records with their tokens) and layout 2 (one per element).
set -euo pipefail

TOCSIN=$(realpath "$1")
GEN=$(realpath "$2")
WORK=$(mktemp -d /tmp/test_resolve.XXXXXX)
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
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok - $*"; }

# --- a tiny population -------------------------------------------------
mkdir "$WORK/tiny"
cat >"$WORK/tiny/segments.csv" <<'CSV'
id,kind,parent,name,population
350102,district,,鼓楼区,10
350102001,street,350102,鼓东街道,10
350102001001,community,350102001,东一社区,6
350102001001B0001,building,350102001001,1号楼,6
350102001001B0002,building,350102001001,2号楼,0
350102001002,community,350102001,东二社区,4
350102001002B0001,building,350102001002,1号楼,4
CSV
cat >"$WORK/tiny/households.csv" <<'CSV'
id,building,persons,lang,phones,apps
350102001001B0001H001,350102001001B0001,2,zh-CN,+8613800000001,fcm:tok-a
350102001001B0001H002,350102001001B0001,3,en-US,+8613800000002;+8613800000003,apns:tok-b
350102001001B0001H003,350102001001B0001,1,xx-YY,,webhook:https://example.org/hook
350102001002B0001H001,350102001002B0001,4,en,+8613800000001,
CSV
cat >"$WORK/tiny/terminals.csv" <<'CSV'
id,segment,kind,covers_persons,secret
350102001001:spk1,350102001001,speaker,50,s3cret
350102001001B0001:dsp1,350102001001B0001,display,10,s3cret
CSV
"$TOCSIN" load --redis "unix:$SOCK" --dir "$WORK/tiny" >/dev/null 2>&1 || fail "tiny load"

# warning TARGETS... -> $WORK/w.ini (infos zh-CN, en-US)
warning() {
	{
		printf '[alert]\nidentifier = resolve-test\nsender = met.fuzhou.gov.cn\n'
		printf 'status = Actual\nmsg_type = Alert\ntargets = %s\n' "$*"
		for lang in zh-CN en-US; do
			printf '\n[info %s]\ncategory = Met\nevent = x\nurgency = Immediate\n' "$lang"
			printf 'severity = Extreme\ncertainty = Observed\nexpires = +6h\nheadline = x\n'
		done
	} >"$WORK/w.ini"
}
plan() { warning "$@"; "$TOCSIN" plan --redis "unix:$SOCK" --json "$WORK/w.ini"; }
# field JSON_PATH (python expression on j) < json
field() { python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }
totals='j["totals"]["households"],j["totals"]["persons"],j["totals"]["sms"],j["totals"]["apps"]["apns"],j["totals"]["apps"]["fcm"],j["totals"]["apps"]["webhook"],j["totals"]["terminals"]'

alone=$(plan 350102001001 | field "$totals")
[ "$alone" = "3 6 3 1 1 1 2" ] || fail "community alone: $alone"
pass "community alone: $alone"

over=$(plan 350102001001B0001 350102001001 350102001001B0001H002 350102001001 | field "$totals")
[ "$over" = "$alone" ] || fail "overlap: $over != $alone"
out=$(plan 350102001001B0001H002 350102001001B0001 350102001001)
[ "$(field "$totals" <<<"$out")" = "$alone" ] || fail "overlap (household first)"
[ "$(field 'j["duplicates"]' <<<"$out")" = 0 ] || fail "overlap sent an address twice"
pass "overlapping targets: $over, no address twice"

langs=$(plan 350102001001 | field 'j["infos"]["zh-CN"]["households"],j["infos"]["en-US"]["households"]')
[ "$langs" = "2 1" ] || fail "languages: $langs"
langs=$(plan 350102001 | field 'j["infos"]["zh-CN"]["households"],j["infos"]["en-US"]["households"]')
[ "$langs" = "2 2" ] || fail "languages (en ~ en-US): $langs"
pass "language: en-US and en pick en-US, xx-YY falls back to zh-CN"

street=$(plan 350102001)
[ "$(field "$totals" <<<"$street")" = "4 10 3 1 1 1 2" ] || fail "street: $(field "$totals" <<<"$street")"
[ "$(field 'j["duplicates"]' <<<"$street")" = 1 ] || fail "shared phone not deduplicated"
[ "$(field '[s["segment"] for s in j["segments"]]' <<<"$street")" = "['350102001001', '350102001002']" ] ||
	fail "segments: $street"
pass "a phone shared by two households is sent once"

empty=$(plan 350102001001B0002 | field "$totals")
[ "$empty" = "0 0 0 0 0 0 0" ] || fail "empty building: $empty"
pass "empty building resolves to zero"

hh=$(plan 350102001002B0001H001 | field "$totals"',j["segments"][0]["segment"]')
[ "$hh" = "1 4 1 0 0 0 0 350102001002" ] || fail "household target: $hh"
pass "household target: $hh"

if out=$(plan 350102001 350102001009 350102001001B0001H009 2>"$WORK/err"); then fail "unknown targets resolved"; fi
grep -q 350102001009 "$WORK/err" && grep -q 350102001001B0001H009 "$WORK/err" || fail "unknown ids not named: $(cat "$WORK/err")"
[ "$(field 'sorted(j["ids"])' <<<"$out")" = "['350102001001B0001H009', '350102001009']" ] || fail "json ids: $out"
pass "unknown targets named: $(cat "$WORK/err")"

# --- a signed body -----------------------------------------------------
"$TOCSIN" keygen --alg ed25519 --id k1 --sender met.fuzhou.gov.cn --segments 350102 \
	--out "$WORK/k1" >/dev/null 2>&1
warning 350102001001
"$TOCSIN" sign --key "$WORK/k1.key" --key-id k1 --out "$WORK/w.bin" "$WORK/w.ini"
body=$("$TOCSIN" plan --redis "unix:$SOCK" --json --body "$WORK/w.bin" | field "$totals")
[ "$body" = "$alone" ] || fail "--body: $body"
pass "--body SIGNED.bin"

# --- household lists. Layout 4 (what the loader writes): a building's
# records joined by newlines in one element, their app tokens apart in ha:
# (only households that have any, in the same order); an ha record no
# household takes is counted as malformed. Layout 3 (app tokens in the
# records) and layout 2 (one record per element) are still read.
v=$(R GET tocsin:pop:current)
[ "$(R HGET "tocsin:pop:v$v:meta" layout)" = tocsin-pop-layout-4 ] || fail "layout: $(R HGET "tocsin:pop:v$v:meta" layout)"
H=tocsin:pop:v$v:hh:350102001001B0001
A=tocsin:pop:v$v:ha:350102001001B0001
[ "$(R LLEN "$H")" = 1 ] || fail "layout 4: $(R LLEN "$H") elements for 3 households"
mapfile -t recs < <(R LINDEX "$H" 0)
[ "${#recs[@]}" = 3 ] || fail "layout 4: ${#recs[@]} records in the element"
[ "$(printf '%s' "${recs[1]}" | tr -cd '\t' | wc -c)" = 3 ] || fail "layout 4 record: ${recs[1]}"
mapfile -t apps < <(R LINDEX "$A" 0)
[ "${apps[*]}" = "$(printf 'H001\tfcm:tok-a H002\tapns:tok-b H003\twebhook:https://example.org/hook')" ] ||
	fail "ha records: ${apps[*]}"
[ "$(R EXISTS "tocsin:pop:v$v:ha:350102001002B0001")" = 0 ] || fail "an ha list for a building without app tokens"
hh=$(plan 350102001001B0001H002 | field "$totals")
[ "$hh" = "1 3 2 1 0 0 0" ] || fail "household target with app tokens apart: $hh"
R RPUSH "$A" "$(printf 'H009\tfcm:stray')" >/dev/null
[ "$(plan 350102001001 | field "$totals"',j["malformed"]')" = "$alone 1" ] ||
	fail "stray ha record: $(plan 350102001001 | field "$totals"',j["malformed"]')"
R DEL "$A" >/dev/null
[ "$(plan 350102001001 | field 'j["totals"]["sms"],sum(j["totals"]["apps"].values())')" = "3 0" ] ||
	fail "no ha list: $(plan 350102001001 | field "$totals")"
pass "app tokens apart (layout 4): a household target, a stray record counted, none without the list"
# the same building as layout 3 wrote it: APPS as the records' fifth field
R HSET "tocsin:pop:v$v:meta" layout tocsin-pop-layout-3 >/dev/null
l3=("$(printf '%s\t%s' "${recs[0]}" fcm:tok-a)" "$(printf '%s\t%s' "${recs[1]}" apns:tok-b)"
	"$(printf '%s\t%s' "${recs[2]}" webhook:https://example.org/hook)")
R DEL "$H" >/dev/null
R RPUSH "$H" "$(printf '%s\n%s\n%s' "${l3[@]}")" >/dev/null
[ "$(plan 350102001001 | field "$totals")" = "$alone" ] || fail "layout 3 lists: $(plan 350102001001 | field "$totals")"
R DEL "$H" >/dev/null
R RPUSH "$H" "${l3[@]}" >/dev/null # as a layout-2 loader wrote it
[ "$(plan 350102001001 | field "$totals")" = "$alone" ] || fail "layout 2 lists: $(plan 350102001001 | field "$totals")"
R DEL "$H" >/dev/null
R RPUSH "$H" "${l3[0]}" "$(printf '%s\n%s' "${l3[1]}" "${l3[2]}")" >/dev/null # both at once
[ "$(plan 350102001001 | field "$totals")" = "$alone" ] || fail "mixed lists: $(plan 350102001001 | field "$totals")"
pass "household records with their app tokens: joined in one element (layout 3), one per element (layout 2), or both"

# --- terminal lists: layout-2 records, a layout-1 bare id, a malformed record
T=tocsin:pop:v$v:terms:350102001001
[ "$(R LRANGE "$T" 0 -1)" = "$(printf '350102001001:spk1\tspeaker\t50')" ] ||
	fail "terms record: $(R LRANGE "$T" 0 -1)"
tp='j["totals"]["terminals"],j["totals"]["terminal_persons"],j["malformed"]'
[ "$(plan 350102001001 | field "$tp")" = "2 60 0" ] || fail "terminals: $(plan 350102001001 | field "$tp")"
R DEL "$T" >/dev/null
R RPUSH "$T" 350102001001:spk1 "$(printf 'half\trecord')" >/dev/null # as a layout-1 loader wrote it
[ "$(plan 350102001001 | field "$tp")" = "2 60 1" ] || fail "layout 1: $(plan 350102001001 | field "$tp")"
pass "terminal records inline (layout 2), a bare id through term: (layout 1), a malformed one skipped"

# --- a whole street of the generated district ---------------------------
"$GEN" --out "$WORK/gen" >/dev/null
"$TOCSIN" load --redis "unix:$SOCK" --dir "$WORK/gen" >/dev/null 2>&1 || fail "district load"
v=$(R GET tocsin:pop:current)
for s in 350102003 350102010; do
	want=$(R HMGET "tocsin:pop:v$v:seg:$s" households persons phones apps terminals | paste -sd, -)
	got=$(plan "$s" | field 'j["totals"]["households"],j["totals"]["persons"],j["totals"]["sms"],sum(j["totals"]["apps"].values()),j["totals"]["terminals"]' | tr ' ' ',')
	[ "$want" = "$got" ] || fail "street $s: loader $want, plan $got"
	pass "street $s equals the loader's aggregates: $got"
done

# --- no population -------------------------------------------------------
R DEL tocsin:pop:current >/dev/null
if plan 350102001 >"$WORK/out" 2>"$WORK/err"; then fail "resolved without population"; fi
grep -q "no population" "$WORK/err" || fail "no population: $(cat "$WORK/err")"
pass "no population: $(cat "$WORK/err")"
