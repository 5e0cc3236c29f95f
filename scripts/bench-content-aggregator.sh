#!/bin/sh
# Measures ContentAggregator.observe: 1M events over 50k sessions (play/pause/stop mix), release build.
# Prints events per second of CPU time of the observing thread (so a loaded machine does not skew it).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
swiftc -O "$root/Sources/PlayheadMetrics/ContentAggregator.swift" "$root/Sources/PlayheadMetrics/SessionKey.swift" "$root/Benchmarks/ContentAggregator/main.swift" -o "$out/bench"
"$out/bench"
