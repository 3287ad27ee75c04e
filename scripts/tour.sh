#!/usr/bin/env bash
# A tour of the parts as separate processes: a router that commits every message to the event
# log before forwarding it, the built-in agents in a separate process running a three-step
# pipeline, an MDP/0.2 worker and client (independent Python peers), the tools of a real MCP
# server and the local model (when scripts/local-llm.sh has been set up) as services, the live
# event stream, the log's verification, and a replay of the pipeline run with the router stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
python=$(scripts/python-env.sh | tail -n 1)
swift build --product switchboard
sb=.build/debug/switchboard
peer=Tests/IntegrationTests/Python/mdp_peer.py
data=.switchboard/demo
rm -rf "$data"
pids=()
started_model=0
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
      [ "$started_model" = 1 ] && scripts/local-llm.sh stop >/dev/null' EXIT

echo "== switchboard router (log in $data)"
# Below Linux's ephemeral range, where a connection's own end may already hold the port.
port=$((20000 + RANDOM % 10000))
router=tcp://127.0.0.1:$port events=tcp://127.0.0.1:$((port + 1))
$sb router --data "$data" --bind "$router" --events "$events" --heartbeat 500 & pids+=($!)
sleep 1
"$python" -u "$peer" worker "$router" greeter --reply-prefix "hello, " --partials 1 --heartbeat-ms 500 >/dev/null & pids+=($!)
sleep 0.5

echo; echo "== an MDP/0.2 client asks the greeter service three times"
"$python" "$peer" client "$router" greeter world --repeat 3

echo; echo "== switchboard agent: echo, counter and pipeline in a separate process"
$sb agent --router "$router" --agents echo,counter,pipeline --heartbeat 500 & pids+=($!)
sleep 1
echo; echo "== switchboard run pipeline: echo -> counter -> echo through the router"
run_output=$($sb run pipeline --input '{"task":"demo"}' --router "$router")
echo "$run_output"
run_id=$(echo "$run_output" | awk 'NR == 1 { print $2 }')

echo; echo "== switchboard services: the tools of a real MCP server (mcp-server-time), and llm.local"
if scripts/local-llm.sh status 2>/dev/null | grep -q "set up in" && ! scripts/local-llm.sh status >/dev/null 2>&1; then
  scripts/local-llm.sh start && started_model=1
fi
$sb services --router "$router" --heartbeat 500 --mcp "time=$(dirname "$python")/mcp-server-time" & pids+=($!)
sleep 2
$sb run tool.time.convert_time --router "$router" --quiet \
  --input '{"source_timezone":"UTC","time":"12:00","target_timezone":"Asia/Tokyo"}'
if scripts/local-llm.sh status >/dev/null 2>&1; then
  $sb run llm.local --router "$router" --timeout 120 --input '{"messages":[{"role":"user",
    "content":"Name one city in Japan. Answer as JSON."}],"response_format":{"type":"json_schema",
    "schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}},"max_tokens":40}' \
    | grep -v '^[0-9]'
else
  echo "(llm.local is the local model: run scripts/local-llm.sh setup once, ~4 min, to ask it here)"
fi

echo; echo "== switchboard tail: every committed event so far, from position 1 (CloudEvents JSON, cut)"
count=$($sb log stat --data "$data" | awk '/^events:/ { print $2 }')
$sb tail --router "$router" --events "$events" --from 1 --limit "$count" | cut -c1-160

for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
wait "${pids[0]}" 2>/dev/null || true
echo; echo "== switchboard log stat / verify"
$sb log stat --data "$data"
$sb log verify --data "$data"

echo; echo "== with the router and agents stopped: the run's lock, and its replay from the log alone"
$sb lock show "$run_id" --data "$data"
$sb replay "$run_id" --data "$data"
