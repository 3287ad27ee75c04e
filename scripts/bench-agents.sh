#!/usr/bin/env bash
# Agents end to end: the three-step pipeline (echo -> counter -> echo) started by `switchboard run
# --count`, through `switchboard router` (durable log) to `switchboard agent` in a separate
# process. Prints runs/s, steps/s (3 asks per run) and per-step time per durability, with the C
# yardstick broker (../shared/anchors: mdp_broker with 2, then 8 mdp_workers, mdp_load, no log) measured in
# the same run for scale. Then the replay benchmark (RuntimeBenchmarks: a 100,000-event run).
# RUNS, CONCURRENCY (runs in flight) and CAPACITY (the host's per-type capacity) default to
# 10000, 256 and 256; the pipeline agent holds one place of its capacity per run under way. A last
# case runs 1,024 in flight with capacity 1,024. Each case runs ROUNDS times (default 3), each
# round against a fresh router, log and host, and prints every round and the median: the machine's
# speed moves from minute to minute.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-10000}; concurrency=${CONCURRENCY:-256}; capacity=${CAPACITY:-256}; rounds=${ROUNDS:-3}
source scripts/bench-common.sh bench-agents
c_endpoint="tcp://127.0.0.1:$port"
"$bin/mdp_broker" "$c_endpoint" & pids+=($!); sleep 0.3
for _ in 1 2; do "$bin/mdp_worker" "$c_endpoint" echo >/dev/null 2>&1 & pids+=($!); done
# Loads the C broker with $1 synchronous clients for 5 s; prints the rate and sets c_last to it.
measure_c() {
    local s; s=$(cpu_snapshot)
    c_last=$("$bin/mdp_load" "$c_endpoint" echo "$1" 5 256 | field req/s)
    echo "C yardstick: mdp_broker (no log), $2 C echo workers, $1 synchronous clients: $c_last req/s"
    echo "  $(cpu_share "$s")"
}
sleep 0.5
measure_c 16 2; c_rps=$c_last
# The same broker with as many requests in flight as the pipeline has runs: each C worker takes
# one request at a time, so more of them (as processes) keep the broker busy.
for _ in 1 2 3 4 5 6; do "$bin/mdp_worker" "$c_endpoint" echo >/dev/null 2>&1 & pids+=($!); done
sleep 0.5
clients=$((concurrency < 1000 ? concurrency : 1000))   # one ZeroMQ context opens 1023 sockets at most
measure_c "$clients" 8; c_wide=$c_last

# Each case: durability, runs in flight, host capacity. The last is the wide case: 1,024 runs in
# flight (the router's most per worker), for the rate when latency does not bound it. The cases
# take turns round by round, so a slow stretch of the machine falls on all of them.
cases=("fsync $concurrency $capacity" "none $concurrency $capacity" "fsync 1024 1024")
declare -A rates
for round in $(seq "$rounds"); do
    for case in "${cases[@]}"; do
        read -r durability inflight places <<<"$case"
        port=$((port + 1)); endpoint="tcp://127.0.0.1:$port"
        $sb router --data "$work/$durability-$inflight-$round" --bind "$endpoint" --durability "$durability" >/dev/null & pids+=($!)
        router=$!
        sleep 0.5
        alive "$router" "switchboard router on $endpoint"
        $sb agent --router "$endpoint" --agents echo,counter,pipeline --capacity "$places" >/dev/null & agent=$!; pids+=($agent)
        s=$(cpu_snapshot)
        line=$($sb run pipeline --router "$endpoint" --input '{"task":"bench"}' --count "$runs" --concurrency "$inflight")
        share=$(cpu_share "$s")
        rate=$(echo "$line" | sed -E 's/.*: ([0-9]+) runs\/s.*/\1/')
        rates[$case]="${rates[$case]:-} $rate"
        echo "round $round, pipeline ($durability, $inflight in flight, host capacity $places): $line"
        echo "  = $((3 * rate)) steps/s; $share"
        kill -9 "$agent" "$router" 2>/dev/null || true
        wait "$agent" "$router" 2>/dev/null || true   # reaped here, so bash does not report them killed
        rm -rf "$work/$durability-$inflight-$round"
    done
done
# The wide yardstick again: how far the machine's speed moved while the rounds ran.
measure_c "$clients" 8
for case in "${cases[@]}"; do
    read -r durability inflight places <<<"$case"
    echo "${rates[$case]}" | tr ' ' '\n' | grep . | sort -n | awk -v d="$durability" -v c="$c_rps" -v w="$c_wide" -v n="$clients" \
        -v f="$inflight" -v p="$places" '{ v[NR] = $1 } END {
        r = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "pipeline (%s, %d in flight, host capacity %d): median of %d rounds %.0f runs/s (%d to %d)\n", d, f, p, NR, r, v[1], v[NR]
        printf "  = %.0f steps/s (3 asks per run; %.0f to %.0f), %.1f us per step\n", 3 * r, 3 * v[1], 3 * v[NR], 1e6 / (3 * r)
        printf "  = %.0f requests/s through the router (4 per run): %.0f%% of the C yardstick, %.0f%% of it with %d in flight\n",
            4 * r, 400 * r / c, 400 * r / w, n }'
done
echo "$runs runs a round, $rounds rounds a case, router and agents in separate processes"

swift package --package-path benchmarks --allow-writing-to-package-directory benchmark --target RuntimeBenchmarks
