"""How fast `playhead store` catches up a backlog of the embedded log written by `playhead ingest`,
for two builds, alternated: B's events/s over A's, round by round.

    python3 scripts/bench/store_catchup.py OLD_PLAYHEAD NEW_PLAYHEAD [EVENTS] [ROUNDS] [WORK_DIR]

The backlog (EVENTS events, 500 per POST) is written once by NEW's `ingest`; each round copies it
and times `store` from its start until `playhead_lake_rows_written_total{dataset="events"}` reaches
EVENTS. Ports 24601 and 24602.
"""
import subprocess, time, urllib.request, shutil, os, signal, statistics, sys
OLD, NEW = sys.argv[1], sys.argv[2]
N = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
ROUNDS = int(sys.argv[4]) if len(sys.argv) > 4 else 4
B = sys.argv[5] if len(sys.argv) > 5 else "/tmp/playhead-store-catchup"
os.makedirs(B, exist_ok=True)
def metric(port, name):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except Exception:
        return 0.0
    return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith(name))
def wait_up(port):
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1); return
        except Exception: time.sleep(0.1)
    raise SystemExit("not up")
src = B + "/src"
if not os.path.exists(src + "/log/events"):
    ing = subprocess.Popen([NEW, "ingest", "--port", "24601", "--data-dir", src], stdout=open(B + "/ingest.out", "w"), stderr=subprocess.STDOUT, cwd=B)
    wait_up(24601)
    out = subprocess.run([NEW, "loadgen", "--port", "24601", "--batch", "500", "--connections", "8", "--events", str(N), "--duration", "300", "--json"], capture_output=True, text=True)
    print("loadgen:", out.stdout.strip()[:300])
    ing.send_signal(signal.SIGTERM); ing.wait()
print("durable-end present:", os.path.exists(src + "/log/events/durable-end"))
results = {"old": [], "new": []}
for r in range(ROUNDS):
    order = [("old", OLD), ("new", NEW)] if r % 2 == 0 else [("new", NEW), ("old", OLD)]
    for name, binary in order:
        run = B + "/run"
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(src, run)
        shutil.rmtree(run + "/lake", ignore_errors=True)
        t0 = time.monotonic()
        p = subprocess.Popen([binary, "store", "--port", "24602", "--data-dir", run, "--flush-interval", "1"], stdout=open(B + f"/store-{name}.out", "w"), stderr=subprocess.STDOUT, cwd=B)
        wait_up(24602)
        while metric(24602, 'playhead_lake_rows_written_total{dataset="events"}') < N:
            time.sleep(0.1)
            if time.monotonic() - t0 > 600: break
        took = time.monotonic() - t0
        if took > 600:
            p.send_signal(signal.SIGTERM); p.wait()
            sys.exit(f"round {r} {name}: the lake had fewer than {N} rows after 600 s (see {B}/store-{name}.out); no figure")
        p.send_signal(signal.SIGTERM); p.wait()
        results[name].append(took)
        print(f"round {r} {name}: {took:.2f} s ({N / took:,.0f} events/s)", flush=True)
ratios = [o / n for o, n in zip(results["old"], results["new"])]
print("new/old events per second, by round:", [round(x, 3) for x in ratios])
print("median:", round(statistics.median(ratios), 3))
