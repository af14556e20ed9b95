#!/usr/bin/env bash
# tests/integration/test_load.sh: `tocsin load` against a private redis-server.
#
#   test_load.sh TOCSIN_BINARY GEN_DISTRICT_BINARY
#
# Checks: a good load matches the generator's counts; each kind of bad input
# is rejected with FILE:LINE and leaves the current version untouched (no
# key of the rejected load visible); reloading the same files says
# "unchanged"; a changed file replaces the version and the old keys go away.
set -euo pipefail

TOCSIN=$(realpath "$1")
GEN=$(realpath "$2")
WORK=$(mktemp -d /tmp/test_load.XXXXXX)
SOCK=$WORK/redis.sock
REDIS_PID=

cleanup() {
	if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
	rm -rf "$WORK"
}
trap cleanup EXIT

redis-server --port 0 --unixsocket "$SOCK" --save '' --appendonly no \
	--enable-debug-command local --daemonize no >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
R() { redis-cli -s "$SOCK" "$@"; }

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok - $*"; }
load() { "$TOCSIN" load --redis "unix:$SOCK" "$@"; }

# Snapshot of what a reader can see: the pointer and all keys with values.
snapshot() {
	R GET tocsin:pop:current
	R DBSIZE
	R DEBUG DIGEST
}

# --- good load ---------------------------------------------------------
"$GEN" --seed 7 --scale 0.02 --out "$WORK/good" >"$WORK/gen.out"
load --dir "$WORK/good" >"$WORK/load.out" 2>"$WORK/load.err" || fail "good load: $(cat "$WORK/load.err")"
want=$(grep '^counts:' "$WORK/gen.out")
got=$(grep '^counts:' "$WORK/load.out")
[ "$want" = "$got" ] || fail "counts differ: gen '$want' load '$got'"
[ "$(R GET tocsin:pop:current)" = 1 ] || fail "current is not 1"
hh=$(sed -n 2p "$WORK/good/households.csv")
bld=$(echo "$hh" | cut -d, -f2)
[ "$(R LLEN "tocsin:pop:v1:hh:$bld")" -ge 1 ] || fail "building list empty"
[ "$(R HGET tocsin:pop:v1:meta households)" = "$(grep -o 'households=[0-9]*' <<<"$want" | cut -d= -f2)" ] || fail "meta households"
pass "good load: $got"

# --- idempotent reload -------------------------------------------------
before=$(snapshot)
load --dir "$WORK/good" >"$WORK/load.out" 2>/dev/null || fail "reload failed"
grep -q unchanged "$WORK/load.out" || fail "reload did not say unchanged"
[ "$before" = "$(snapshot)" ] || fail "reload changed keys"
pass "reload of the same files is unchanged"

# --- bad inputs --------------------------------------------------------
# bad_case NAME FILE EXPECTED_LINE EXPECTED_TEXT SED_EXPR
bad_case() {
	local name=$1 file=$2 line=$3 text=$4 expr=$5 dir=$WORK/bad_$1
	cp -r "$WORK/good" "$dir"
	sed -i "$expr" "$dir/$file"
	if load --dir "$dir" >"$WORK/bad.out" 2>"$WORK/bad.err"; then
		fail "$name: load succeeded"
	fi
	grep -q "^$file:$line: .*$text" "$WORK/bad.err" ||
		fail "$name: no '$file:$line: ...$text' in: $(cat "$WORK/bad.err")"
	[ "$before" = "$(snapshot)" ] || fail "$name: keys changed"
	pass "$name rejected: $(grep "^$file:$line" "$WORK/bad.err" | head -1)"
}
bad_case malformed_row households.csv 5 "expected 6 fields" '5s/,zh-CN,/,zh-CN,,/;5s/,[a-z][a-z]-[A-Z][A-Z],/,xx-XX,,/'
bad_case bad_quoting segments.csv 3 "bad quoting" '3s/,"\([^"]*\)",/,"\1"x,/'
bad_case bad_number households.csv 7 "persons: 'x3' is not a number" '7s/^\([^,]*,[^,]*\),[0-9]*,/\1,x3,/'
bad_case unknown_parent segments.csv 4 "unknown parent '350102999'" '4s/,350102,/,350102999,/'
bad_case unknown_building households.csv 9 "unknown building" '9s/^\([^,]*\),[^,]*,/\1,350102001001B9999,/'
bad_case duplicate_id households.csv 11 "duplicate id" "11s/^[^,]*,/$(sed -n 10p "$WORK/good/households.csv" | cut -d, -f1),/"
bad_case bad_phone households.csv 13 "phones: '+86abc' is not an E.164 number" '13s/^\([^,]*,[^,]*,[^,]*,[^,]*\),[^,]*,/\1,+86abc,/'
bad_case bad_kind segments.csv 2 "kind: 'county'" '2s/,district,/,county,/'
bad_case wrong_hierarchy segments.csv 5 "a building's parent must be a community" "5s/^.*\$/350102001X,building,350102001,\"x\",1/"
bad_case id_prefix segments.csv 3 "does not start with its parent" '3s/^350102001,/360102001,/'
bad_case bad_terminal terminals.csv 3 "kind: 'siren'" '3s/,speaker,/,siren,/'

# error cap: many bad rows -> at most 20 reported
cp -r "$WORK/good" "$WORK/many"
sed -i '2,60s/,zh-CN,/,zh CN,/' "$WORK/many/households.csv"
if load --dir "$WORK/many" >/dev/null 2>"$WORK/many.err"; then fail "many: load succeeded"; fi
n=$(grep -c '^households.csv:[0-9]*:' "$WORK/many.err" || true)
[ "$n" -le 20 ] && [ "$n" -ge 1 ] || fail "error cap: $n errors reported"
grep -q 'too many errors' "$WORK/many.err" || fail "no 'too many errors'"
pass "error cap: $n errors reported"

# --- changed file replaces the version ---------------------------------
cp -r "$WORK/good" "$WORK/changed"
sed -i '2s/^\([^,]*,[^,]*\),[0-9]*,/\1,9,/' "$WORK/changed/households.csv"
load --dir "$WORK/changed" >"$WORK/load.out" 2>/dev/null || fail "changed load failed"
[ "$(R GET tocsin:pop:current)" = 2 ] || fail "current is not 2"
[ "$(R --scan --pattern 'tocsin:pop:v1:*' | wc -l)" = 0 ] || fail "version 1 keys remain"
first=$(R LINDEX "tocsin:pop:v2:hh:$bld" 0 | awk -F'\t' 'NR == 1 { print $2 }') # reads all: no SIGPIPE
[ "$first" = 9 ] || fail "changed household has persons '$first'"
[ -z "$(R GET tocsin:pop:loading)" ] || fail "loading marker left"
[ -z "$(R GET tocsin:pop:lock)" ] || fail "lock left"
pass "changed file replaced version 1 by 2; no v1 keys left"

# household index: hix bucket -> building id length
hid=$(sed -n 2p "$WORK/changed/households.csv" | cut -d, -f1)
nb=$(R HGET tocsin:pop:v2:meta hix_buckets)
bucket=$(/usr/bin/python3 -c "
import sys
h=2166136261
for b in sys.argv[1].encode(): h=((h^b)*16777619)&0xffffffff
print(h % int(sys.argv[2]))" "$hid" "$nb")
[ "$(R HGET "tocsin:pop:v2:hix:$bucket" "$hid")" = "${#bld}" ] || fail "hix lookup"
pass "household index resolves $hid to its building"

echo "all load tests passed"
