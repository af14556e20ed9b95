#!/bin/sh
# tests/integration/test_bench_smoke.sh: the bench harness's smoke variant
# (issue 9): a tiny district, the scenarios marked `smoke = yes`, small
# baselines; the harness itself asserts the report's fields and that every
# warning reached >= 90% of its persons. Exit 77 (skip) only when a required
# Debian tool is missing (run.py checks and says which).
#
#   test_bench_smoke.sh SOURCE_DIR BUILD_DIR
set -eu
SRC=$1
BUILD=$2
exec /usr/bin/python3 "$SRC/bench/harness/run.py" --build "$BUILD" --smoke
