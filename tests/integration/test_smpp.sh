#!/bin/sh
# tests/integration/test_smpp.sh: the SMS adapter against node's `smpp`
# package as an independent SMSC. Installs the package into the build tree
# on first use; exits 77 (skip) when node or the npm registry is missing.
#   test_smpp.sh SMPP_ITEST TEST_SMPP_JS NPM_DIR WORKDIR
set -u
itest=$1 script=$2 npmdir=$3 work=$4
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "SKIP: node and npm are needed for the independent SMSC"; exit 77
fi
if [ ! -f "$npmdir/node_modules/smpp/package.json" ]; then
	mkdir -p "$npmdir"
	if ! (cd "$npmdir" && timeout 180 npm install --no-audit --no-fund --loglevel=error smpp@0.5.1); then
		echo "SKIP: npm install smpp@0.5.1 failed (no network to registry.npmjs.org?)"; exit 77
	fi
fi
mkdir -p "$work"
# node resolves require('smpp') from the script's directory upwards: point it at the build tree.
NODE_PATH="$npmdir/node_modules" exec "$itest" npm "$script" "$work"
