"""Two builds of `playhead` at the same time, each under its own load generator: B's requests/s over A's.

    . scripts/env && python3 scripts/bench/side_by_side.py OLD/playhead .build/release/playhead [--rounds 6]
        [--command serve] [--batch 1] [--connections 64] [--duration 6] [--loadgen-arg=ARG ...]
        [--a-arg=ARG ...] [--b-arg=ARG ...]
        [--a-env=NAME=VALUE ...] [--b-env=NAME=VALUE ...]

`--command bare` compares two builds of the bare server instead (`bare-nio-server PORT`).
One binary with different flags works too: what the metrics cost `ingest` is
`side_by_side.py P P --command ingest --b-arg=--metrics --b-arg=off`, and what an allocator setting does
is `side_by_side.py P P --b-env=GLIBC_TUNABLES=glibc.malloc.trim_threshold=1073741824`.

On this shared 2-core VM one build's requests/s moves by ±30 % from one minute to the next, so
an old-against-new comparison run one after the other needs many pairs to show a change of a few
per cent. Run together, both servers and both load generators share the same cores in the same
seconds, and their requests/s answer "which build does more with the same CPU": the spread of the
ratio between two copies of the same binary was ±4 % here (2026-12-02), against ±30 % for
alternated runs. The rounds alternate which load generator starts first; the median ratio is
printed last.

It measures CPU efficiency, not latency: CPU that one server leaves idle (for example while it
waits for an fsync) goes to the other. Use `scripts/bench-ingest` for the figures against the bare
server. Both builds get fresh data folders; the load generator is this tree's release build.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import bench_ingest as bench


def one_round(binaries, args, first):
    servers, folders, ports = [], [], []
    try:
        for binary, extra, env in zip(binaries, (args.a_arg, args.b_arg), (args.a_env, args.b_env)):
            folder = tempfile.mkdtemp(prefix="side-by-side-")
            port = bench.free_port()
            if args.command == "bare":
                argv = [binary, str(port), *extra]
            else:
                argv = [binary, args.command, "--port", str(port), "--data-dir", folder, "--log-level", "warning", *extra]
            servers.append(subprocess.Popen(
                argv,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env={**os.environ, **dict(item.split("=", 1) for item in env)},
            ))
            folders.append(folder)
            ports.append(port)
        for port in ports:
            bench.wait_port(port)
        time.sleep(1)  # both warm up the same way: idle, then loaded together
        loads = {}
        for i in (first, 1 - first):
            loads[i] = subprocess.Popen(
                [bench.PLAYHEAD, "loadgen", "--port", str(ports[i]), "--batch", str(args.batch),
                 "--connections", str(args.connections), "--duration", str(args.duration), "--json", *args.loadgen_arg],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )
        rates = {}
        for i, load in loads.items():
            result = json.loads(load.communicate()[0].strip().splitlines()[-1])
            rates[i] = result["acknowledged_requests"] / result["elapsed_seconds"]
        return rates[0], rates[1]
    finally:
        for server in servers:
            server.terminate()
            server.wait()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="the baseline build's playhead binary")
    parser.add_argument("b", help="the build to compare with it")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--command", default="serve", choices=["serve", "ingest", "bare"],
                        help="what A and B run; bare: A and B are builds of bare-nio-server (Benchmarks/BareNIOServer)")
    parser.add_argument("--batch", type=int, default=1, help="events per POST (default 1)")
    parser.add_argument("--connections", type=int, default=64, help="per load generator (default 64)")
    parser.add_argument("--duration", type=int, default=6, help="seconds per round (default 6)")
    parser.add_argument("--loadgen-arg", action="append", default=[],
                        help="an extra argument for both load generators (repeatable), e.g. --loadgen-arg=--replay --loadgen-arg=16")
    parser.add_argument("--a-arg", action="append", default=[], help="an extra argument for A's server (repeatable)")
    parser.add_argument("--b-arg", action="append", default=[], help="an extra argument for B's server (repeatable)")
    parser.add_argument("--a-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for A's server (repeatable)")
    parser.add_argument("--b-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for B's server (repeatable)")
    args = parser.parse_args()
    ratios = []
    for r in range(args.rounds):
        a, b = one_round([args.a, args.b], args, first=r % 2)
        ratios.append(b / a)
        print(f"round {r + 1}: A {a:,.0f} requests/s, B {b:,.0f} requests/s, B/A {b / a:.3f}", flush=True)
    print(f"median B/A {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}, {len(ratios)} rounds)")


if __name__ == "__main__":
    main()
