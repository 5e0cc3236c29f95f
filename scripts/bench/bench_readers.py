"""The log's readers and the segment size: `playhead serve` with `--log-segment-bytes 65536` and with
the default (128 MiB), alternated, each under `playhead loadgen --batch 100 --connections 4 --rate R
--duration D`; at the end of the load the lake's rows and the readers' lag are read from /metrics.
Until 2026-12-04 a reader paused after every segment's end, and small segments held it to a few
thousand events/s. Run through scripts/bench-readers."""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import urllib.request
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(__file__))
from bench_ingest import PLAYHEAD, ROOT, replace_section, serve  # noqa: E402

SMALL, DEFAULT = 65536, 128 << 20


def total(text, name, match=""):
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if (line.startswith(name + "{") or line.startswith(name + " ")) and match in line)


def run(segment, rate, duration):
    server, data = serve(f"readers-{segment}", "serve", ["--log-segment-bytes", str(segment)])
    try:
        subprocess.run([PLAYHEAD, "loadgen", "--port", str(server.port), "--batch", "100", "--connections", "4",
                        "--rate", str(rate), "--duration", str(duration)], check=True, capture_output=True)
        text = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=30).read().decode()
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)
    return {
        "segment": segment,
        "accepted": int(total(text, "playhead_events_accepted_total")),
        # The events dataset's rows (rollup and rejected rows were summed in, a review).
        "rows": int(total(text, "playhead_lake_rows_written_total", 'dataset="events"')),
        "counted": int(total(text, "playhead_content_events_total")),
        "lake_lag": int(total(text, "playhead_consumer_lag_events", 'consumer="lake"')),
        "metrics_lag": int(total(text, "playhead_consumer_lag_events", 'consumer="metrics"')),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=20000)
    parser.add_argument("--duration", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    os.makedirs(os.path.join(ROOT, "test-artifacts"), exist_ok=True)
    rows = []
    for round_ in range(args.rounds):
        order = (SMALL, DEFAULT) if round_ % 2 == 0 else (DEFAULT, SMALL)
        for segment in order:
            rows.append(run(segment, args.rate, args.duration))
            print(rows[-1], flush=True)

    def median(segment, key):
        return statistics.median(r[key] for r in rows if r["segment"] == segment)

    lines = ["| segments | accepted | lake rows written | events the metrics counted | lake lag | metrics lag |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        name = "64 KiB" if r["segment"] == SMALL else "128 MiB (default)"
        lines.append(f"| {name} | {r['accepted']:,} | {r['rows']:,} | {r['counted']:,} | {r['lake_lag']:,} | {r['metrics_lag']:,} |")
    ratio_rows = median(SMALL, "rows") / max(1, median(DEFAULT, "rows"))
    ratio_counted = median(SMALL, "counted") / max(1, median(DEFAULT, "counted"))
    command = f"scripts/bench-readers --rate {args.rate} --duration {args.duration} --rounds {args.rounds}"
    text = "\n".join([
        "## The log's readers and the segment size (`scripts/bench-readers`)",
        "",
        f"`{command}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores: `playhead serve` with "
        "`--log-segment-bytes 65536` and with the default (128 MiB), alternated, each under "
        f"`playhead loadgen --batch 100 --connections 4 --rate {args.rate} --duration {args.duration}`; the figures are "
        "`/metrics` at the end of the load. The lake writer flushes every 10 s (`--flush-interval`), so up to 10 s of "
        "events are its open batch, not lag. Until 2026-12-04 a reader paused after every segment's end, and with 64 KiB "
        "segments the lake had written about 63,000 rows of 600,000 and the metrics had counted about 141,000 "
        "(docs/performance.md, \"The first three rounds\").",
        "",
        *lines,
        "",
        f"Median ratio, 64 KiB segments to the default, of lake rows written: **{ratio_rows:.2f}**; "
        f"of events the metrics counted: **{ratio_counted:.2f}**.",
    ])
    print(text)
    replace_section("Readers", text)


if __name__ == "__main__":
    main()
