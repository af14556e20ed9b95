#!/bin/sh
# ops/setup.sh: install every Debian package tocsin needs to build, test and demo.
#
# Idempotent: it asks dpkg what is missing and runs `apt-get update` at most
# once, only when something has to be installed. Needs root (or sudo).
set -eu

PACKAGES="
build-essential cmake pkg-config
liburing-dev libnghttp2-dev libssl-dev libhiredis-dev
libprotobuf-c-dev protobuf-c-compiler
libjansson-dev libinih-dev libhttp-parser-dev libcurl4-openssl-dev
redis-server redis-tools
libcmocka-dev clang libclang-rt-14-dev
curl nghttp2-client openssl prometheus chromium mosquitto mosquitto-clients
python3 python3-protobuf python3-cryptography protobuf-compiler
"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "setup: all packages present"
    exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
