"""Server CPU per request, by thread, under `playhead loadgen` load.

    . scripts/env && python3 scripts/bench/cpu_per_thread.py serve --batch 1 --duration 6 [--server-arg=--metrics --server-arg=off]

Starts `playhead <command>` on a free port and a temporary data folder, warms it up for 2 s, then
reads every thread's user + system time and context switches from /proc/<pid>/task/*/ before and
after a `playhead loadgen` run, and prints them per acknowledged request, by thread name. Build
first: `swift build -c release --product playhead`.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["serve", "ingest"])
    parser.add_argument("--batch", type=int, default=1, help="events per POST (default 1)")
    parser.add_argument("--duration", type=int, default=6, help="seconds measured (default 6)")
    parser.add_argument("--connections", type=int, default=bench.CONNECTIONS, help=f"load generator connections (default {bench.CONNECTIONS})")
    parser.add_argument("--server-arg", action="append", default=[], help="an extra argument for the server (repeatable)")
    args = parser.parse_args()
    os.makedirs(os.path.join(bench.ROOT, "test-artifacts"), exist_ok=True)

    port = bench.free_port()
    data = tempfile.mkdtemp(prefix="cpu-per-thread-")
    argv = [bench.PLAYHEAD, args.command, "--port", str(port), "--data-dir", data, "--log-level", "warning", *args.server_arg]
    server = bench.Server("cpu-per-thread", argv, port)
    try:
        bench.loadgen(port, args.batch, 2, args.connections)
        before = threads(server.process.pid)
        report = bench.loadgen(port, args.batch, args.duration, args.connections)
        after = threads(server.process.pid)
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)

    requests = report["acknowledged_requests"]
    hz = os.sysconf("SC_CLK_TCK")
    by_name = {}
    for tid, (name, ticks, voluntary, involuntary) in after.items():
        _, ticks0, voluntary0, involuntary0 = before.get(tid, (name, 0, 0, 0))
        row = by_name.setdefault(name, [0, 0, 0, 0])
        row[0] += ticks - ticks0
        row[1] += voluntary - voluntary0
        row[2] += involuntary - involuntary0
        row[3] += 1
    print(f"playhead {args.command} {' '.join(args.server_arg)}: {report['requests_per_second']:,.0f} requests/s, "
          f"{args.batch} event(s) per POST")
    total = 0.0
    for name, (ticks, voluntary, involuntary, count) in sorted(by_name.items(), key=lambda item: -item[1][0]):
        micros = ticks / hz / requests * 1e6
        total += micros
        if ticks or voluntary:
            print(f"  {name:24s} {count:3d} thread(s) {micros:7.2f} µs/request  "
                  f"switches/request: {voluntary / requests:.2f} voluntary, {involuntary / requests:.2f} involuntary")
    print(f"  total {total:.2f} µs of server CPU per request")
    print(json.dumps({"requests_per_second": report["requests_per_second"], "server_cpu_micros_per_request": total}))


if __name__ == "__main__":
    main()
