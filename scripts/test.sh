#!/usr/bin/env bash
# Sets up the machine, builds everything warnings-clean and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/python-env.sh >/dev/null   # pyzmq for the interop tests' independent MDP peers
swift build --build-tests -Xswiftc -warnings-as-errors
swift test --skip-build
