#!/usr/bin/env bash
# The main job for now: write a small run into a fresh event log, then inspect and verify it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --product switchboard
sb=.build/debug/switchboard
data=.switchboard/demo
rm -rf "$data"

echo "== appending a run to $data"
$sb log append --data "$data" --type run.started --run demo-1 --stream demo-1 --payload '{"goal":"say hello"}'
$sb log append --data "$data" --type step.completed --run demo-1 --stream demo-1 --causation m-1 \
    --expected-version 1 --payload '{"step":"plan","output":"greet the user"}'
$sb log append --data "$data" --type run.completed --run demo-1 --stream demo-1 --payload '{"result":"hello"}'

echo; echo "== switchboard log stat"
$sb log stat --data "$data"
echo; echo "== switchboard log verify"
$sb log verify --data "$data"
echo; echo "== switchboard log dump --run demo-1"
$sb log dump --data "$data" --run demo-1
