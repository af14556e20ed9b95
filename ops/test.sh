#!/bin/sh
# ops/test.sh: the test command. Installs what is missing (ops/setup.sh),
# builds everything with clang under AddressSanitizer + UndefinedBehavior-
# Sanitizer (fuzz targets included), and runs every test with ctest: unit,
# integration (real redis-server, real tocsind, curl / nghttp / Python
# clients) and each fuzz target for FUZZ_SECONDS (default 10).
#
# ctest runs last, so its closing line is the verdict.
set -eu
cd "$(dirname "$0")/.."
./ops/setup.sh
BUILD=${BUILD:-build-test}
cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
	-DTOCSIN_SANITIZE=ON -DTOCSIN_FUZZ=ON -DFUZZ_SECONDS="${FUZZ_SECONDS:-10}"
cmake --build "$BUILD" -j"$(nproc)"
cd "$BUILD"
exec ctest --output-on-failure
