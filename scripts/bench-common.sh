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
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
field() { tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2; exit }'; }
port=$((20000 + RANDOM % 20000))
