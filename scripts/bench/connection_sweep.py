"""Requests/s of the bare server and `playhead serve` (or `ingest`) at several connection counts.

    . scripts/env && python3 scripts/bench/connection_sweep.py [--rounds 2] [--connections 16,64,128,256,512]
        [--duration 6] [--batch 1] [--command serve]

A durable server is latency-bound at low concurrency (each request waits for its group's fsync)
where the bare server is not, so one connection count alone does not say which server has more
capacity. Each round measures both servers at every count (the order of counts alternates between
rounds), prints a line per point, and ends with each server's best count and the ratio of the
bests. Uses the release builds that `scripts/bench-ingest` makes.
"""
import argparse

import bench_ingest as bench


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", default="16,64,128,256,512", help="comma-separated (default 16,64,128,256,512)")
    parser.add_argument("--duration", type=float, default=6, help="seconds per point after a 2 s warm-up (default 6)")
    parser.add_argument("--batch", type=int, default=1, help="events per POST (default 1)")
    parser.add_argument("--command", default="serve", choices=["serve", "ingest"])
    args = parser.parse_args()
    counts = [int(c) for c in args.connections.split(",")]

    servers = {"bare": bench.bare, args.command: lambda: bench.serve(args.command, args.command)}
    for r in range(args.rounds):
        rates = {name: {} for name in servers}
        for count in counts if r % 2 == 0 else reversed(counts):
            for name, factory in servers.items():
                report = bench.measure(factory, args.batch, args.duration, count)
                rates[name][count] = report["requests_per_second"]
                print(f"round {r + 1}  {name:6} {count:4} connections  {report['requests_per_second']:9,.0f} requests/s  "
                      f"p50 {report['latency_micros']['p50'] / 1000:6.2f} ms  p99 {report['latency_micros']['p99'] / 1000:6.2f} ms  "
                      f"server {report['server_cpu_micros_per_request']:5.1f} µs/request  "
                      f"load generator {report['loadgen_cpu_micros_per_request']:5.1f} µs/request  "
                      f"idle {report['machine_idle_percent']:3.0f} %", flush=True)
        best = {name: max(by_count.items(), key=lambda item: item[1]) for name, by_count in rates.items()}
        (bare_count, bare_rate), (count, rate) = best["bare"], best[args.command]
        print(f"round {r + 1}: best bare {bare_rate:,.0f} ({bare_count} connections), {args.command} {rate:,.0f} "
              f"({count} connections): {args.command} / bare {rate / bare_rate:.2f}", flush=True)


if __name__ == "__main__":
    main()
