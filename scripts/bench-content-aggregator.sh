#!/bin/bash
# Measures ContentAggregator.observe: 1M events over 50k sessions (play/pause/stop mix), release build.
# Prints events per second of CPU time of the observing thread (so a loaded machine does not skew it).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/env
# A SwiftPM target since the aggregator counts through swift-metrics (compiled alone with swiftc,
# as until 2026-12-07, it no longer built).
swift build -c release --static-swift-stdlib --product content-aggregator-bench >/dev/null
"$root/.build/release/content-aggregator-bench"
