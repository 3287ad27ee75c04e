# Sourced by the bench-*.sh scripts: builds the C yardsticks ($bin) and the release `switchboard`
# ($sb), makes a scratch directory ($work) and kills every pid in $pids on exit.
# $1: a name for the scratch directory.
anchors=${ANCHORS:-../shared/anchors}
[ -f "$anchors/build.sh" ] || { echo "no anchors at $anchors (set ANCHORS)" >&2; exit 1; }
scripts/setup.sh >/dev/null
bin=$(bash "$anchors/build.sh" "$(mktemp -d)")
swift build -c release --product switchboard >/dev/null
sb=.build/release/switchboard
work=$(mktemp -d -p "${BENCH_DIR:-$PWD/.build}" "$1.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
# Stops the benchmark when process $1 ($2 names it) has already exited, as a router that could
# not bind does: the load after it would wait for it to the end of its timeout.
alive() { kill -0 "$1" 2>/dev/null || { echo "$2 exited at start (see its error above)" >&2; exit 1; }; }
field() { tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2; exit }'; }
# Below Linux's ephemeral range (32768 and up by default), where a client's own end of a connection
# may already hold the port a router is about to bind.
port=$((20000 + RANDOM % 10000))
# The machine's CPU time in /proc/stat, to tell how much of a measurement the hypervisor took:
# `s=$(cpu_snapshot)` before, `cpu_share "$s"` after prints busy, idle (I/O wait included) and
# steal shares.
cpu_snapshot() { head -1 /proc/stat; }
cpu_share() {
    awk -v a="$1" -v b="$(cpu_snapshot)" 'BEGIN {
        n = split(a, x, " "); split(b, y, " "); t = 0
        for (i = 2; i <= 9 && i <= n; i++) { d[i] = y[i] - x[i]; t += d[i] }
        if (t <= 0) { print "cpu: no sample"; exit }
        printf "cpu: busy %.0f%%, idle or waiting on I/O %.0f%%, stolen by the hypervisor %.0f%%\n",
            100 * (d[2] + d[3] + d[4] + d[7] + d[8]) / t, 100 * (d[5] + d[6]) / t, 100 * d[9] / t }'
}
