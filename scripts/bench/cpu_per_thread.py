"""Server and load-generator CPU per request, by thread, under `playhead loadgen` load.

    . scripts/env && python3 scripts/bench/cpu_per_thread.py serve --batch 1 --duration 6 [--server-arg=--metrics --server-arg=off]
    . scripts/env && python3 scripts/bench/cpu_per_thread.py bare

Starts `playhead <command>` (or the benchmark's bare SwiftNIO server) on a free port and a temporary
data folder, warms it up for 2 s, then starts a `playhead loadgen` run and, from 1.5 s into it for
`--duration` - 2 s, reads every thread's user + system time and context switches from
/proc/<pid>/task/*/ of both processes, and the machine's idle and steal time from /proc/stat. Prints
them per acknowledged request, by thread name (the log writer is `log-events`; the Swift concurrency
pool's threads are `…oot.default-qos`). Build first:
`swift build -c release --static-swift-stdlib --product playhead` and the same with
`--product bare-nio-server` (scripts/setup says why the flag).
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

import bench_ingest as bench


def threads(pid):
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                status = f.read()
        except FileNotFoundError:
            continue  # the thread ended
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        voluntary = int(status.split("\nvoluntary_ctxt_switches:")[1].split()[0])
        involuntary = int(status.split("nonvoluntary_ctxt_switches:")[1].split()[0])
        found[tid] = (name, ticks, voluntary, involuntary)
    return found


def report_threads(label, before, after, requests, seconds):
    hz = os.sysconf("SC_CLK_TCK")
    by_name = {}
    for tid, (name, ticks, voluntary, involuntary) in after.items():
        _, ticks0, voluntary0, involuntary0 = before.get(tid, (name, 0, 0, 0))
        row = by_name.setdefault(name, [0, 0, 0, 0])
        row[0] += ticks - ticks0
        row[1] += voluntary - voluntary0
        row[2] += involuntary - involuntary0
        row[3] += 1
    print(f"  {label}:")
    total = 0.0
    for name, (ticks, voluntary, involuntary, count) in sorted(by_name.items(), key=lambda item: -item[1][0]):
        micros = ticks / hz / requests * 1e6
        total += micros
        if ticks or voluntary:
            print(f"    {name:24s} {count:3d} thread(s) {micros:7.2f} µs/request ({100 * ticks / hz / seconds:3.0f} % of a core)  "
                  f"switches/request: {voluntary / requests:.3f} voluntary, {involuntary / requests:.3f} involuntary")
    print(f"    total {total:.2f} µs of CPU per request")
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["serve", "ingest", "bare"])
    parser.add_argument("--batch", type=int, default=1, help="events per POST (default 1)")
    parser.add_argument("--duration", type=int, default=6, help="seconds of load; the last duration - 2 are measured (default 6)")
    parser.add_argument("--connections", type=int, default=bench.CONNECTIONS, help=f"load generator connections (default {bench.CONNECTIONS})")
    parser.add_argument("--server-arg", action="append", default=[], help="an extra argument for the server (repeatable)")
    args = parser.parse_args()
    if args.duration < 4:
        parser.error("--duration must be at least 4 (1.5 s of ramp-up, then the measured part)")
    os.makedirs(os.path.join(bench.ROOT, "test-artifacts"), exist_ok=True)

    port = bench.free_port()
    data = tempfile.mkdtemp(prefix="cpu-per-thread-")
    if args.command == "bare":
        argv = [bench.BARE, str(port)]
    else:
        argv = [bench.PLAYHEAD, args.command, "--port", str(port), "--data-dir", data, "--log-level", "warning", *args.server_arg]
    server = bench.Server("cpu-per-thread", argv, port)
    try:
        bench.loadgen(port, args.batch, 2, args.connections)
        load = subprocess.Popen(
            [bench.PLAYHEAD, "loadgen", "--port", str(port), "--batch", str(args.batch), "--duration", str(args.duration),
             "--connections", str(args.connections), "--json"],
            stdout=subprocess.PIPE, text=True)
        time.sleep(1.5)
        before = (threads(server.process.pid), threads(load.pid), bench.machine_jiffies(), time.monotonic())
        time.sleep(args.duration - 2)
        after = (threads(server.process.pid), threads(load.pid), bench.machine_jiffies(), time.monotonic())
        report = json.loads(load.communicate()[0].strip().splitlines()[-1])
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)

    seconds = after[3] - before[3]
    requests = report["requests_per_second"] * seconds
    name = "bare SwiftNIO server" if args.command == "bare" else f"playhead {args.command} {' '.join(args.server_arg)}".rstrip()
    print(f"{name}: {report['requests_per_second']:,.0f} requests/s, {args.batch} event(s) per POST, {args.connections} connections")
    server_total = report_threads("server", before[0], after[0], requests, seconds)
    load_total = report_threads("load generator", before[1], after[1], requests, seconds)
    shares = bench.jiffy_shares(before[2], after[2])
    idle = bench.idle_percent(before[2], after[2])
    print(f"  machine: idle {idle:.0f} % (iowait included), steal {shares[7]:.0f} %, softirq {shares[6]:.0f} %")
    print(json.dumps({"requests_per_second": report["requests_per_second"], "server_cpu_micros_per_request": server_total,
                      "loadgen_cpu_micros_per_request": load_total, "idle_percent": idle, "steal_percent": shares[7]}))


if __name__ == "__main__":
    main()
