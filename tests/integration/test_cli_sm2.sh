#!/bin/sh
# tests/integration/test_cli_sm2.sh: SM2-with-SM3 interop between tocsin and
# the openssl CLI, both directions, over keys made by `tocsin keygen`.
#
#   usage: tests/integration/test_cli_sm2.sh PATH/TO/tocsin
#
# Checks: keygen writes a 0600 PKCS#8 key and a keyring entry that loads;
# the entry's base64 public key parses in openssl; a signature by
# `openssl dgst -sm3 -sigopt distid:1234567812345678` verifies with
# `tocsin verify`; one by `tocsin sign-raw` verifies with openssl; a
# tampered message fails both ways; the same for ed25519 (openssl pkeyutl
# -rawin); `tocsin sign` writes an envelope. Exit 0 pass, 1 fail, 77 skip.
set -eu
TOCSIN=${1:?usage: $0 PATH/TO/tocsin}
command -v openssl >/dev/null || { echo "SKIP: no openssl"; exit 77; }
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
ID=1234567812345678
fail() { echo "FAIL: $*"; exit 1; }

"$TOCSIN" keygen --alg sm2-sm3 --id met-sm2 --sender met.fuzhou.gov.cn \
	--segments 350102,350103 --statuses Actual,Exercise --out "$DIR/sm2" >"$DIR/section.ini"
[ "$(stat -c %a "$DIR/sm2.key")" = 600 ] || fail "key mode is not 0600"
grep -q '^\[met-sm2\]' "$DIR/sm2.keyring.ini" || fail "no keyring section"
cmp -s "$DIR/section.ini" "$DIR/sm2.keyring.ini" || fail "stdout differs from keyring.ini"
! "$TOCSIN" keygen --alg sm2-sm3 --id x --sender s --segments 1 --out "$DIR/sm2" 2>/dev/null \
	|| fail "keygen overwrote an existing key"
PUB=$(sed -n 's/^public_key *= *//p' "$DIR/sm2.keyring.ini")

# Our base64 SPKI is what openssl derives from the private key.
echo "$PUB" | openssl base64 -d -A >"$DIR/pub.der"
openssl pkey -in "$DIR/sm2.key" -pubout -outform DER >"$DIR/pub2.der"
cmp -s "$DIR/pub.der" "$DIR/pub2.der" || fail "keyring public key != openssl's"
openssl pkey -in "$DIR/sm2.key" -pubout -out "$DIR/pub.pem"

printf 'warning payload bytes \001\002\n' >"$DIR/msg"
printf 'warning payload bytes \001\003\n' >"$DIR/bad"

# openssl signs, tocsin verifies.
openssl dgst -sm3 -sign "$DIR/sm2.key" -sigopt distid:$ID -out "$DIR/sig.ossl" "$DIR/msg"
"$TOCSIN" verify --alg sm2-sm3 --pub-b64 "$PUB" --sig "$DIR/sig.ossl" --msg "$DIR/msg" \
	|| fail "tocsin rejected openssl's SM2 signature"
! "$TOCSIN" verify --alg sm2-sm3 --pub-b64 "$PUB" --sig "$DIR/sig.ossl" --msg "$DIR/bad" \
	|| fail "tocsin accepted a tampered message"

# tocsin signs, openssl verifies.
"$TOCSIN" sign-raw --key "$DIR/sm2.key" --msg "$DIR/msg" --out "$DIR/sig.tocsin"
openssl dgst -sm3 -verify "$DIR/pub.pem" -sigopt distid:$ID -signature "$DIR/sig.tocsin" \
	"$DIR/msg" >/dev/null || fail "openssl rejected tocsin's SM2 signature"
! openssl dgst -sm3 -verify "$DIR/pub.pem" -sigopt distid:$ID -signature "$DIR/sig.tocsin" \
	"$DIR/bad" >/dev/null 2>&1 || fail "openssl accepted a tampered message"
# A different distinguishing id must not verify (we really use the default id).
! openssl dgst -sm3 -verify "$DIR/pub.pem" -sigopt distid:0000000000000000 \
	-signature "$DIR/sig.tocsin" "$DIR/msg" >/dev/null 2>&1 || fail "distid not bound"

# Ed25519 the same way (raw, pure Ed25519).
"$TOCSIN" keygen --alg ed25519 --id met-ed --sender met.fuzhou.gov.cn --segments 350102 \
	--out "$DIR/ed" >/dev/null
EPUB=$(sed -n 's/^public_key *= *//p' "$DIR/ed.keyring.ini")
openssl pkey -in "$DIR/ed.key" -pubout -out "$DIR/edpub.pem"
openssl pkeyutl -sign -rawin -inkey "$DIR/ed.key" -in "$DIR/msg" -out "$DIR/esig.ossl"
"$TOCSIN" verify --alg ed25519 --pub-b64 "$EPUB" --sig "$DIR/esig.ossl" --msg "$DIR/msg" \
	|| fail "tocsin rejected openssl's Ed25519 signature"
"$TOCSIN" sign-raw --key "$DIR/ed.key" --msg "$DIR/msg" --out "$DIR/esig.tocsin"
openssl pkeyutl -verify -rawin -pubin -inkey "$DIR/edpub.pem" -in "$DIR/msg" \
	-sigfile "$DIR/esig.tocsin" >/dev/null || fail "openssl rejected tocsin's Ed25519 signature"
! "$TOCSIN" verify --alg sm2-sm3 --pub-b64 "$EPUB" --sig "$DIR/esig.ossl" --msg "$DIR/msg" \
	2>/dev/null || fail "an ed25519 key was accepted as sm2-sm3"

# sign writes a SignedWarning from the example warning.
SRC=$(cd "$(dirname "$0")/../.." && pwd)
"$TOCSIN" sign --key "$DIR/sm2.key" --key-id met-sm2 --out "$DIR/env.bin" \
	--status Exercise "$SRC/ops/warning.example.ini" || fail "tocsin sign failed"
[ -s "$DIR/env.bin" ] || fail "empty envelope"
! "$TOCSIN" sign --key "$DIR/sm2.key" --key-id met-sm2 --out "$DIR/x.bin" \
	--status Sometimes "$SRC/ops/warning.example.ini" 2>"$DIR/err" || fail "bad --status accepted"
grep -q -- "--status: unknown value 'Sometimes'" "$DIR/err" || fail "bad --status message: $(cat "$DIR/err")"

echo "PASS: test_cli_sm2"
