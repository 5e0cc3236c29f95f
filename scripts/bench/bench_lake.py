"""NDJSON -> Parquet: `playhead import` vs DuckDB COPY (2 threads) vs pyarrow, on the same file.

The contenders take turns, round after round (5 rounds by default), so that a noisy moment of the
shared machine hits all of them alike; each one's best and median times are reported. Bytes per event
are measured on the Parquet each one wrote. Ratios are against DuckDB in the same run.
"""
import argparse, glob, json, os, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(__file__))
from bench_ingest import replace_section, ROOT  # noqa: E402

PLAYHEAD = os.path.join(ROOT, ".build", "release", "playhead")


def take_turns(runs, contenders):
    """Runs every contender once per round; returns each one's times."""
    times = {name: [] for name, _ in contenders}
    for _ in range(runs):
        for name, fn in contenders:
            times[name].append(fn())
    return times


def size_of(pattern):
    return sum(os.path.getsize(p) for p in glob.glob(pattern, recursive=True))


def count_rows(lake):
    import duckdb
    try:
        return duckdb.sql(f"SELECT count(*) FROM read_parquet('{lake}/events/**/*.parquet')").fetchall()[0][0]
    except Exception:
        return 0


def measure_serve(work, events):
    """playhead serve under loadgen: lake events/s, time to visibility, peak RSS."""
    import socket
    data = os.path.join(work, "serve-data")
    shutil.rmtree(data, ignore_errors=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([PLAYHEAD, "serve", "--data-dir", data, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        started = time.perf_counter()
        report = json.loads(subprocess.run(
            [PLAYHEAD, "loadgen", "--port", str(port), "--connections", "8", "--batch", "500",
             "--events", str(events), "--duration", "600", "--json"],
            check=True, capture_output=True, text=True).stdout)
        acked_at = time.perf_counter()
        acknowledged = report.get("acknowledged_events") or report.get("events_acknowledged") or events
        lake = os.path.join(data, "lake")
        while count_rows(lake) < acknowledged and time.perf_counter() - acked_at < 120:
            time.sleep(0.5)
        visible_at = time.perf_counter()
        peak = 0
        with open(f"/proc/{server.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
        rows = count_rows(lake)
        size = size_of(os.path.join(lake, "events", "**", "*.parquet"))
        return {
            "events": rows,
            "ack_events_per_second": acknowledged / (acked_at - started),
            "lake_events_per_second": rows / (visible_at - started),
            "visible_after_seconds": visible_at - acked_at,
            "peak_rss_mib": peak,
            "bytes_per_event": size / max(rows, 1),
        }
    finally:
        server.terminate()
        server.wait(timeout=120)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--live-events", type=int, default=2_000_000)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-lake-")
    try:
        source = os.path.join(work, "events.ndjson")
        subprocess.run([PLAYHEAD, "loadgen", "--output", source, "--events", str(args.events), "--seed", "1"], check=True,
                       stdout=subprocess.DEVNULL)
        input_bytes = os.path.getsize(source)
        n = args.events

        def playhead_import():
            data = os.path.join(work, "data")
            shutil.rmtree(data, ignore_errors=True)
            start = time.perf_counter()
            out = subprocess.run([PLAYHEAD, "import", "--data-dir", data, source], check=True,
                                 capture_output=True, text=True).stdout
            elapsed = time.perf_counter() - start
            summary = json.loads(out.splitlines()[0])
            assert summary["accepted"] == n, summary
            return elapsed

        def duckdb_copy():
            import duckdb
            target = os.path.join(work, "duckdb.parquet")
            con = duckdb.connect()
            con.execute("SET threads = 2")
            start = time.perf_counter()
            con.execute(f"COPY (SELECT * FROM read_json('{source}', format='newline_delimited')) TO '{target}' "
                        "(FORMAT parquet, COMPRESSION zstd)")
            elapsed = time.perf_counter() - start
            con.close()
            return elapsed

        def pyarrow_write():
            import pyarrow.json as pj, pyarrow.parquet as pq
            start = time.perf_counter()
            table = pj.read_json(source)
            pq.write_table(table, os.path.join(work, "pyarrow.parquet"), compression="zstd")
            return time.perf_counter() - start

        contenders = [("playhead import", playhead_import), ("DuckDB COPY (2 threads)", duckdb_copy),
                      ("pyarrow read_json + write_table", pyarrow_write)]
        times = take_turns(args.runs, contenders)
        results = {}
        for name, _ in contenders:
            ordered = sorted(times[name])
            results[name] = {"seconds": ordered[0], "events_per_second": n / ordered[0],
                             "median_events_per_second": n / ordered[len(ordered) // 2], "all_seconds": times[name]}
        results["playhead import"]["bytes"] = size_of(os.path.join(work, "data", "lake", "events", "**", "*.parquet"))
        results["DuckDB COPY (2 threads)"]["bytes"] = os.path.getsize(os.path.join(work, "duckdb.parquet"))
        results["pyarrow read_json + write_table"]["bytes"] = os.path.getsize(os.path.join(work, "pyarrow.parquet"))
        live = measure_serve(work, args.live_events)
        duck = results["DuckDB COPY (2 threads)"]["events_per_second"]
        lines = [
            "## Lake import: NDJSON -> Parquet (`scripts/bench-lake`)",
            "",
            f"{n:,} synthetic events (`playhead loadgen --output`), {input_bytes / n:.0f} bytes of NDJSON per event, "
            f"{args.runs} rounds in which the contenders take turns, 2 cores. "
            f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
            "",
            "| contender | events/s (best) | × DuckDB (best) | events/s (median) | × DuckDB (median) | bytes/event | compression |",
            "|---|---|---|---|---|---|---|",
        ]
        duck_median = results["DuckDB COPY (2 threads)"]["median_events_per_second"]
        for name, r in results.items():
            per_event = r["bytes"] / n
            lines.append(f"| {name} | {r['events_per_second']:,.0f} | {r['events_per_second'] / duck:.2f} | "
                         f"{r['median_events_per_second']:,.0f} | {r['median_events_per_second'] / duck_median:.2f} | "
                         f"{per_event:.1f} | {input_bytes / r['bytes']:.1f}:1 |")
        lines += [
            "",
            f"### The lake writer inside `playhead serve`, from the log",
            "",
            f"{live['events']:,} events sent by `playhead loadgen` (batches of 500, 8 connections) to `playhead serve` "
            "(default flush settings: 1,000,000 events or 10 s), load generator on the same 2 cores.",
            "",
            "| figure | value |",
            "|---|---|",
            f"| lake writer, events/s written (all events / time from the first ack until the last row is in the lake) | {live['lake_events_per_second']:,.0f} |",
            f"| ingest, acknowledged events/s during the same run | {live['ack_events_per_second']:,.0f} |",
            f"| from the last acknowledgement until every event is queryable in the lake | {live['visible_after_seconds']:.1f} s |",
            f"| peak resident memory of `playhead serve` (VmHWM) | {live['peak_rss_mib']:.0f} MiB |",
            f"| bytes per event in the lake (live files) | {live['bytes_per_event']:.1f} |",
        ]
        results["serve"] = live
        lines += ["", "Targets (the design's): faster than DuckDB's COPY, at most 40 bytes per event. "
                  "`playhead import` validates every event (DuckDB and pyarrow validate nothing) and writes "
                  "the lake's schema (TIMESTAMP columns, LIST genre, JSON extra)."]
        os.makedirs(os.path.join(ROOT, "test-artifacts"), exist_ok=True)
        with open(os.path.join(ROOT, "test-artifacts", "bench-lake.json"), "w") as f:
            json.dump(results, f, indent=2)
        replace_section("Lake import", "\n".join(lines))
        print("\n".join(lines))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
