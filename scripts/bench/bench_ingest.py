"""Runs the ingest benchmark (see scripts/bench-ingest) and records the figures."""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RELEASE = os.path.join(ROOT, ".build", "release")
PLAYHEAD = os.path.join(RELEASE, "playhead")
BARE = os.path.join(RELEASE, "bare-nio-server")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def peak_rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return None


class Server:
    def __init__(self, name, argv, port, env=None):
        self.name, self.port = name, port
        self.log = open(os.path.join(ROOT, "test-artifacts", f"bench-{name}.log"), "w")
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        wait_port(port)

    def stop(self):
        rss = peak_rss_mib(self.process.pid)
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()
        return rss


def loadgen(port, batch, duration, connections, replay=None, gzip=False):
    argv = [PLAYHEAD, "loadgen", "--port", str(port), "--batch", str(batch), "--duration", str(duration),
            "--connections", str(connections), "--json"]
    if replay:
        argv += ["--replay", str(replay)]
    if gzip:
        argv += ["--gzip"]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def serve(name, command, extra=()):
    port = free_port()
    data = tempfile.mkdtemp(prefix=f"bench-{name}-")
    # A Kafka --log keeps nothing in a data folder, and ingest refuses a --data-dir it does not read.
    folder = [] if "--log" in extra else ["--data-dir", data]
    argv = [PLAYHEAD, command, "--port", str(port), *folder, "--log-level", "warning", *extra]
    return Server(name, argv, port), data


def bare():
    """The bare SwiftNIO server (202 to every POST) on a free port; no data folder."""
    port = free_port()
    return Server("bare-nio", [BARE, str(port)], port), None


def session_cpu_seconds(sid):
    """User + system CPU seconds of every live process in session `sid` (a server and its workers)."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[3]) == sid:  # field 6 of stat: the session id
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_jiffies():
    """Jiffies of the whole machine: user, nice, system, idle, iowait, irq, softirq, steal."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:9]]


def jiffy_shares(before, after):
    """Each kind of `machine_jiffies()` as a percentage of the machine's time between two readings."""
    jiffies = [b - a for a, b in zip(before, after)]
    return [100 * j / max(1, sum(jiffies)) for j in jiffies]


def idle_percent(before, after):
    """The share of the machine's time between two `machine_jiffies()` that was idle (iowait included)."""
    shares = jiffy_shares(before, after)
    return shares[3] + shares[4]


def measure(server_factory, batch, duration, connections, warmup=2, replay=None, gzip=False):
    server, data = server_factory()
    try:
        loadgen(server.port, batch, warmup, connections, replay, gzip)
        server_before = session_cpu_seconds(server.process.pid)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        machine_before = machine_jiffies()
        report = loadgen(server.port, batch, duration, connections, replay, gzip)
        machine_after = machine_jiffies()
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_cpu = session_cpu_seconds(server.process.pid) - server_before
        loadgen_cpu = (children_after.ru_utime + children_after.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
        requests = max(report.get("acknowledged_requests", 0), 1)
        # CPU of the whole loadgen process (start-up included) per acknowledged request, and as a
        # share of one core over the run: near 100 % the load generator is what limits the row.
        report["server_cpu_micros_per_request"] = server_cpu / requests * 1e6
        report["loadgen_cpu_micros_per_request"] = loadgen_cpu / requests * 1e6
        report["loadgen_core_percent"] = 100 * loadgen_cpu / max(report.get("elapsed_seconds", duration), 1e-9)
        report["machine_idle_percent"] = idle_percent(machine_before, machine_after)
    finally:
        rss = server.stop()
        if data:
            shutil.rmtree(data, ignore_errors=True)
    report["peak_rss_mib"] = rss
    return report


# The order of the single-event rows in each round, by index in the list of rows (bare, serve,
# serve without metrics, ingest, ingest without metrics): a Latin square (each row runs once in
# each position) in which no row comes right after another in more than two rounds. A plain
# rotation would keep `serve` right after the bare server in four rounds of five.
ORDERS = [(0, 2, 4, 1, 3), (2, 3, 0, 4, 1), (1, 4, 3, 2, 0), (3, 1, 2, 0, 4), (4, 0, 1, 3, 2)]
ROUNDS = len(ORDERS)
# Connections of the load generator, for single events and batches alike: enough that group commit
# has requests to gather while an fsync runs (with 16, batches of 100 measured 0.75x of 64).
CONNECTIONS = 64


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10)
    args = parser.parse_args()
    os.makedirs(os.path.join(ROOT, "test-artifacts"), exist_ok=True)
    d = args.duration
    # scripts/bench-ingest reads it before its build steps, which would raise it.
    results = {"load_average_before": float(os.environ.get("BENCH_LOAD_BEFORE") or os.getloadavg()[0])}

    # Single events: ROUNDS rounds, each measuring the bare server, and serve and ingest with
    # metrics on and off, one after the other. This machine's throughput drifts by +-30 % within
    # minutes, so every ratio is taken inside a round (against the bare server of that round) and
    # the median of the rounds' ratios is reported. The order changes from round to round
    # (ORDERS), so that no row always follows the same one or always runs at the same point.
    rows = [("bare_single", bare)]
    for kind in ("serve", "ingest"):
        rows.append((f"{kind}_single_on", lambda kind=kind: serve(f"{kind}-on", kind)))
        rows.append((f"{kind}_single_off", lambda kind=kind: serve(f"{kind}-off", kind, ["--metrics", "off"])))
    for round_ in range(ROUNDS):
        order = [rows[index] for index in ORDERS[round_]]
        print(f"single-event POSTs, round {round_ + 1} of {ROUNDS}: {', '.join(name for name, _ in order)} ...", flush=True)
        for name, factory in order:
            results[f"{name}_{round_}"] = measure(factory, 1, d, CONNECTIONS)
    for batch in (100, 250, 500):
        print(f"batches of {batch} ...", flush=True)
        results[f"serve_batch_{batch}"] = measure(lambda: serve("serve", "serve"), batch, d, CONNECTIONS)
        results[f"ingest_batch_{batch}"] = measure(lambda: serve("ingest", "ingest"), batch, d, CONNECTIONS)
        # The same with bodies made up front: the generator's own CPU (about a third of the two
        # cores at 500 events per POST) goes to the server instead.
        results[f"ingest_replay_{batch}"] = measure(lambda: serve("ingest", "ingest"), batch, d, CONNECTIONS, replay=16)
    # Gzip bodies, as mobile SDKs send batches: what decoding them on the server's thread pool costs.
    print("batches of 100, gzip ...", flush=True)
    results["ingest_replay_gzip_100"] = measure(lambda: serve("ingest", "ingest"), 100, d, CONNECTIONS, replay=16, gzip=True)

    try:
        import fastapi, uvicorn, pydantic  # noqa: F401
        have_fastapi = True
    except ImportError:
        have_fastapi = False
    if have_fastapi:
        def fastapi_server():
            port = free_port()
            # uvicorn with 2 workers, with TCP_NODELAY on its sockets (see fastapi_app.py for why).
            argv = [sys.executable, os.path.join(ROOT, "scripts", "bench", "fastapi_app.py"), str(port)]
            return Server("fastapi", argv, port), None
        print("FastAPI + pydantic ...", flush=True)
        results["fastapi_single"] = measure(fastapi_server, 1, d, CONNECTIONS, warmup=3)
        for batch in (100, 500):
            results[f"fastapi_batch_{batch}"] = measure(fastapi_server, batch, d, CONNECTIONS, warmup=3)

    with open(os.path.join(ROOT, "test-artifacts", "bench-ingest.json"), "w") as f:
        json.dump(results, f, indent=2)
    results["load_average_after"] = os.getloadavg()[0]
    write_markdown(results, d)


def write_markdown(r, duration):
    def rps(key):
        return r[key]["requests_per_second"]

    def eps(key):
        return r[key]["events_per_second"]

    def lat(key, p):
        return r[key]["latency_micros"].get(p, 0) / 1000

    def rss(key):
        value = r[key].get("peak_rss_mib")
        return f"{value:.0f}" if value else "?"

    def cpu(key):
        """Server CPU per request, the load generator's share of one core, and the machine's idle time."""
        row = r[key]
        if "server_cpu_micros_per_request" not in row:
            return "| | |"
        return (f"| {row['server_cpu_micros_per_request']:,.1f} | {row['loadgen_core_percent']:.0f} % "
                f"| {row['machine_idle_percent']:.0f} %")

    def median(values):
        values = sorted(values)
        return values[len(values) // 2]

    def single(kind, state="on"):
        return median([rps(f"{kind}_single_{state}_{i}") for i in range(ROUNDS)])

    def ratio(kind, state="on"):
        """The median over rounds of kind/bare, both measured in the same round."""
        return median([rps(f"{kind}_single_{state}_{i}") / rps(f"bare_single_{i}") for i in range(ROUNDS)])

    def ratios(kind, state="on"):
        return ", ".join(f"{rps(f'{kind}_single_{state}_{i}') / rps(f'bare_single_{i}'):.2f}" for i in range(ROUNDS))

    def cost(kind):
        """Metrics cost: median over rounds of (off - on) / off."""
        return 100 * median([(rps(f"{kind}_single_off_{i}") - rps(f"{kind}_single_on_{i}")) / rps(f"{kind}_single_off_{i}") for i in range(ROUNDS)])

    def mid(kind):
        """The round whose requests/s is the median (for its latency and memory)."""
        values = sorted(range(ROUNDS), key=lambda i: rps(f"{kind}_{i}"))
        return f"{kind}_{values[ROUNDS // 2]}"

    bare = mid("bare_single")
    serve_on, ingest_on = mid("serve_single_on"), mid("ingest_single_on")
    lines = [
        "## Ingest (`scripts/bench-ingest`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on this 2-core machine, the load generator",
        f"(`playhead loadgen`, 1 thread, {CONNECTIONS} connections) on the same machine, {duration:.0f} s per row after a warm-up.",
        "Every event is validated and fsynced (group commit) before its 202; `serve` also runs the lake",
        "writer and the metrics consumer on the same 2 cores.",
        f"Load average (1 min) before the run: {r['load_average_before']:.2f}, after: {r['load_average_after']:.2f}. The cores are shared with",
        "other work: on a busy machine every row is slower, and the ratios lower (more CPU per request than the bare server means more to lose).",
        "",
        f"Single events: {ROUNDS} rounds, each measuring the bare server, `serve` and `ingest` one after the other, in an order that changes "
        "from round to round (each row runs once in each position, and right after any other row in at most two rounds); a ratio is taken "
        "within its round and the median of the rounds is shown (the rounds' ratios in brackets). Requests/s and latencies are those of the median round.",
        "",
        "| run | requests/s | events/s | p50 ms | p99 ms | peak RSS MiB | server CPU µs/request | load generator, share of a core | idle | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| bare SwiftNIO, 202 to every POST (baseline) | {rps(bare):,.0f} | | {lat(bare,'p50'):.2f} | {lat(bare,'p99'):.2f} | {rss(bare)} {cpu(bare)} | 1.00 |",
        f"| `playhead serve`, 1 event per POST | {rps(serve_on):,.0f} | {eps(serve_on):,.0f} | {lat(serve_on,'p50'):.2f} | {lat(serve_on,'p99'):.2f} | {rss(serve_on)} {cpu(serve_on)} | **{ratio('serve'):.2f}** × bare ({ratios('serve')}) |",
        f"| `playhead serve --metrics off`, 1 event per POST | {single('serve', 'off'):,.0f} | | | | | | | | {ratio('serve', 'off'):.2f} × bare; metrics cost **{cost('serve'):+.1f} %** |",
        f"| `playhead ingest`, 1 event per POST | {rps(ingest_on):,.0f} | {eps(ingest_on):,.0f} | {lat(ingest_on,'p50'):.2f} | {lat(ingest_on,'p99'):.2f} | {rss(ingest_on)} {cpu(ingest_on)} | **{ratio('ingest'):.2f}** × bare ({ratios('ingest')}) |",
        f"| `playhead ingest --metrics off`, 1 event per POST | {single('ingest', 'off'):,.0f} | | | | | | | | {ratio('ingest', 'off'):.2f} × bare; instruments cost **{cost('ingest'):+.1f} %** |",
    ]
    for batch in (100, 250, 500):
        for kind in ("serve", "ingest"):
            key = f"{kind}_batch_{batch}"
            lines.append(f"| `playhead {kind}`, {batch} events per POST | {rps(key):,.0f} | **{eps(key):,.0f}** | {lat(key,'p50'):.2f} | {lat(key,'p99'):.2f} | {rss(key)} {cpu(key)} | |")
        key = f"ingest_replay_{batch}"
        lines.append(f"| `playhead ingest`, {batch} events per POST, `loadgen --replay 16` | {rps(key):,.0f} | **{eps(key):,.0f}** | {lat(key,'p50'):.2f} | {lat(key,'p99'):.2f} | {rss(key)} {cpu(key)} | |")
    if "ingest_replay_gzip_100" in r:
        key = "ingest_replay_gzip_100"
        lines.append(f"| `playhead ingest`, 100 events per POST, gzip (`loadgen --gzip --replay 16`) | {rps(key):,.0f} | **{eps(key):,.0f}** | {lat(key,'p50'):.2f} | {lat(key,'p99'):.2f} | {rss(key)} {cpu(key)} | {eps(key)/max(eps('ingest_replay_100'),1):.2f} × the same without gzip |")
    if "fastapi_single" in r:
        lines.append(f"| FastAPI + pydantic, 2 workers, 1 event per POST (no storage) | {rps('fastapi_single'):,.0f} | {eps('fastapi_single'):,.0f} | {lat('fastapi_single','p50'):.2f} | {lat('fastapi_single','p99'):.2f} | {cpu('fastapi_single')} | {rps(serve_on)/max(rps('fastapi_single'),1):.1f}× slower than serve |")
        for batch in (100, 500):
            key = f"fastapi_batch_{batch}"
            lines.append(f"| FastAPI + pydantic, 2 workers, {batch} events per POST (no storage) | {rps(key):,.0f} | {eps(key):,.0f} | {lat(key,'p50'):.2f} | {lat(key,'p99'):.2f} | {cpu(key)} | |")
    lines += ["", "`--replay 16`: each connection of the load generator makes 16 bodies up front and sends them in turn, "
              "so that generating events (about a third of the two cores at 500 events per POST) does not take the "
              "server's CPU; the server still validates and fsyncs every event of every body (only `ingest`: on "
              "`serve` the lake writer would drop the repeated events as duplicates and do less than with real traffic).",
              "", "Metrics cost: in each round, metrics on and off (in that round's order); the median over rounds of (off - on) / off: "
              "on `serve` it is the whole feature (the instruments, `/metrics`, and the `metrics` consumer group that "
              "reads every event again for the content KPIs and the live page); on `ingest` (edge and log only) it is "
              "the instruments on the hot path.",
              "", "CPU: the server's user + system time over the measured run (every process of its session, so "
              "uvicorn's workers too) per acknowledged request; the load generator's over its run, as a share of "
              "one core (it has one thread: near 100 % it, not the server, limits the row); the machine's idle time "
              "over the run. With the two cores shared, the ratio to the bare server is roughly the ratio of "
              "(server + load generator) CPU per request, bare over Playhead (docs/performance.md, \"A sixth round\").", ""]
    replace_section("Ingest", "\n".join(lines))
    print("\n".join(lines))


def replace_section(title, text):
    path = os.path.join(ROOT, "docs", "benchmarks.md")
    current = open(path).read() if os.path.exists(path) else "# Benchmarks\n\nEach section is written by the script named in its title.\n"
    begin, end = f"<!-- BEGIN {title} -->", f"<!-- END {title} -->"
    block = f"{begin}\n{text}\n{end}"
    if begin in current:
        current = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, current, flags=re.S)
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(current)


if __name__ == "__main__":
    main()
