#!/usr/bin/env bash
# The main job: set up a fresh machine (Debian packages, the Python venv with the MCP time server,
# the local model) and run `switchboard demo`: planner → critic → executor in one process, its
# events live, a human approval before the executor writes a note, and a replay of the run.
# Arguments go to `switchboard demo` (e.g. --yes, --goal "…"). SWITCHBOARD_DEMO_MODEL=scripted
# skips the local model and uses scripted answers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/python-env.sh >/dev/null
model=${SWITCHBOARD_DEMO_MODEL:-local}
started_model=0
trap '[ "$started_model" = 1 ] && scripts/local-llm.sh stop >/dev/null' EXIT
if [ "$model" = local ]; then
  scripts/local-llm.sh setup
  if ! scripts/local-llm.sh status >/dev/null 2>&1; then
    scripts/local-llm.sh start && started_model=1
  fi
fi
swift build --product switchboard
exec_status=0
.build/debug/switchboard demo --model "$model" "$@" || exec_status=$?
echo
echo "Look around: .build/debug/switchboard runs | show RUN | replay RUN --data .switchboard | approvals list"
exit "$exec_status"
