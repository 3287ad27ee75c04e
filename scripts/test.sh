#!/usr/bin/env bash
# Sets up the machine (packages, Python peers, the local model), builds everything warnings-clean
# and runs the whole test suite. The local model server is started for the tests and stopped after.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/python-env.sh >/dev/null   # pyzmq (independent MDP peers), mcp-server-time (a real MCP server)
scripts/local-llm.sh setup         # llama-cpp-python + Gemma 3 270M (compiles once, ~3-5 min)
started_model=0
if ! scripts/local-llm.sh status >/dev/null 2>&1; then
  scripts/local-llm.sh start
  started_model=1
fi
trap '[ "$started_model" = 1 ] && scripts/local-llm.sh stop >/dev/null' EXIT
swift build --build-tests -Xswiftc -warnings-as-errors
swift test --skip-build
