#!/bin/sh
# tests/integration/test_bench_smoke.sh: the bench harness's smoke variant
# (issue 9). First the scenario checks alone (bench/harness/test_expect.py:
# each expect_* check must pass and fail on made-up results), then the
# harness on a tiny district, the scenarios marked `smoke = yes`, small
# baselines: it checks those scenarios' expect_* keys, the report's fields
# and that every warning reached >= 90% of its persons. Exit 77 (skip) only
# when a required Debian tool is missing (run.py checks and says which).
#
#   test_bench_smoke.sh SOURCE_DIR BUILD_DIR
set -eu
SRC=$1
BUILD=$2
/usr/bin/python3 "$SRC/bench/harness/test_expect.py"
exec /usr/bin/python3 "$SRC/bench/harness/run.py" --build "$BUILD" --smoke
