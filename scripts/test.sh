#!/usr/bin/env bash
# Sets up the machine, builds everything warnings-clean and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --build-tests -Xswiftc -warnings-as-errors
swift test --skip-build
