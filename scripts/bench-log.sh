#!/usr/bin/env bash
# Raw LMDB (../shared/anchors/lmdb_append) against Switchboard's event log, side by side on one disk.
# Prints both figures and the ratio for append at batch 1, 100, 1000 (fsync and buffered) and scan.
set -euo pipefail
cd "$(dirname "$0")/.."
anchors=${ANCHORS:-../shared/anchors}
[ -x "$anchors/build.sh" ] || [ -f "$anchors/build.sh" ] || { echo "no anchors at $anchors (set ANCHORS)" >&2; exit 1; }
scripts/setup.sh >/dev/null
bin=$(bash "$anchors/build.sh" "$(mktemp -d)")
swift build -c release --product switchboard >/dev/null
sb=.build/release/switchboard
work=$(mktemp -d -p "${BENCH_DIR:-$PWD/.build}" bench-log.XXXXXX)
trap 'rm -rf "$work"' EXIT
size=256

field() { tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2; exit }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }

printf '%-28s %14s %14s %7s\n' "case" "raw LMDB/s" "switchboard/s" "ratio"
for durability in fsync buffered; do
    nosync=$([ "$durability" = fsync ] && echo 0 || echo 1)
    for batch in 1 100 1000; do
        n=$([ "$batch" = 1 ] && echo 2000 || echo 200000)
        rm -rf "$work/c" "$work/s"; mkdir -p "$work/c"
        c=$("$bin/lmdb_append" "$work/c" "$n" "$size" "$batch" "$nosync")
        s=$($sb log bench --data "$work/s" -n "$n" --size "$size" --batch "$batch" --durability "$durability")
        ca=$(echo "$c" | grep '^append' | field events/s); sa=$(echo "$s" | grep '^append' | field events/s)
        printf '%-28s %14.0f %14.0f %7s\n' "append $durability batch=$batch" "$ca" "$sa" "$(ratio "$sa" "$ca")"
        if [ "$batch" = 1000 ]; then
            cs=$(echo "$c" | grep '^scan' | field events/s); ss=$(echo "$s" | grep '^scan' | field events/s)
            printf '%-28s %14.0f %14.0f %7s\n' "scan ($durability log)" "$cs" "$ss" "$(ratio "$ss" "$cs")"
        fi
    done
done
echo "payload ${size} B; Switchboard stores a ~95 B header, a run and a stream index entry per event, and a SHA-256 link"
