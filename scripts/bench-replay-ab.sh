#!/usr/bin/env bash
# Compares the replay speed of two builds side by side: ReplayRounds of build A and of build B
# (benchmarks/Sources/ReplayRounds, `swift build -c release --package-path benchmarks --product
# ReplayRounds`, copied away between builds) run in turn, ROUNDS rounds of 5 replays each, over one
# recorded fixture. Prints each round's p50 and the medians: on a shared machine whose speed moves
# from minute to minute, rounds taken in turn compare code; rows of different minutes do not.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 REPLAY_ROUNDS_A REPLAY_ROUNDS_B [ROUNDS]" >&2; exit 2; }
a=$1 b=$2 rounds=${3:-10}
"$a" 1 >/dev/null   # records the fixture when there is none, and replays once to warm the cache
rows=()
for _ in $(seq "$rounds"); do
    ra=$("$a" 5); rb=$("$b" 5)
    rows+=("$(echo "$ra" | awk '{print $3, $11}') $(echo "$rb" | awk '{print $3, $11}')")
done
printf '%s\n' "${rows[@]}" | awk '
    { aw[NR] = $1; ac[NR] = $2; bw[NR] = $3; bc[NR] = $4; if ($3 < $1) wins++; printf "A %s ms  B %s ms\n", $1, $3 }
    function median(v, n,   i, j, t) {
        for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
        return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    END {
        mw = median(aw, NR); mb = median(bw, NR)
        printf "median wall: A %.1f ms, B %.1f ms (B/A %.2f, B faster in %d of %d rounds); median cpu: A %.1f ms, B %.1f ms\n",
            mw, mb, mb / mw, wins, NR, median(ac, NR), median(bc, NR)
    }'
