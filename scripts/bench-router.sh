#!/usr/bin/env bash
# Router throughput and latency against the C yardstick broker (../shared/anchors/mdp_broker),
# side by side: the same mdp_load (16 synchronous clients, 256-byte bodies) and the same two C echo
# workers against each broker in one run. Prints req/s, p50, p99 and the ratio per durability.
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${CLIENTS:-16}; seconds=${SECONDS_PER_RUN:-5}; size=${SIZE:-256}
source scripts/bench-common.sh bench-router
measure() { # $1: endpoint -> prints the mdp_load line
    local endpoint=$1 w=()
    for _ in 1 2; do "$bin/mdp_worker" "$endpoint" echo >/dev/null 2>&1 & w+=($!); pids+=($!); done
    sleep 0.5
    "$bin/mdp_load" "$endpoint" echo "$clients" "$seconds" "$size"
    for p in "${w[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}

endpoint="tcp://127.0.0.1:$port"
"$bin/mdp_broker" "$endpoint" & broker=$!; pids+=($broker); sleep 0.3
c=$(measure "$endpoint"); kill -9 "$broker"
c_rps=$(echo "$c" | field req/s)
printf '%-26s %10s %10s %10s %7s\n' "broker" "req/s" "p50 us" "p99 us" "ratio"
printf '%-26s %10s %10s %10s %7s\n' "C mdp_broker (no log)" "$c_rps" "$(echo "$c" | field p50_us)" "$(echo "$c" | field p99_us)" "100%"
for durability in fsync buffered none; do
    port=$((port + 1)); endpoint="tcp://127.0.0.1:$port"
    rm -rf "$work/$durability"
    $sb router --data "$work/$durability" --bind "$endpoint" --durability "$durability" >/dev/null & router=$!; pids+=($router)
    sleep 0.5
    alive "$router" "switchboard router on $endpoint"
    s=$(measure "$endpoint"); kill -9 "$router"
    s_rps=$(echo "$s" | field req/s)
    printf '%-26s %10s %10s %10s %7s\n' "switchboard ($durability)" "$s_rps" "$(echo "$s" | field p50_us)" \
        "$(echo "$s" | field p99_us)" "$(awk -v a="$s_rps" -v b="$c_rps" 'BEGIN { printf "%.0f%%", 100 * a / b }')"
done
echo "$clients synchronous clients, 2 C echo workers, ${size}-byte bodies, ${seconds}s per run"
