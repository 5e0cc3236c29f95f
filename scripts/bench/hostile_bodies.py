#!/usr/bin/env python3
"""How long one request of a hostile body holds `playhead serve`, for two builds side by side.

Each body is POSTed (gzip, as an attacker sends it: a few KB on the wire) to an otherwise idle
server, one request at a time; the figure is the request's wall time (its decoding runs on an
event loop, so it is also how long that loop serves no one else). The two builds take turns,
round by round, and each row gives both medians and their ratio, next to a body of ordinary events
of the same decoded size as the baseline.

    python3 scripts/bench/hostile_bodies.py OLD_PLAYHEAD NEW_PLAYHEAD [--rounds 5]
"""
import argparse
import gzip
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

LIMIT = 5 * 1024 * 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def event(i, **extra):
    e = {"event_id": f"hb-{i}", "event_type": "play", "timestamp": "2026-12-08T01:00:00Z", "user_id": f"u{i % 97}",
         "device_id": f"d{i % 89}", "session_id": f"s{i % 83}", "ip_address": "10.0.0.1", "content_id": f"c{i % 31}",
         "content_type": "movie", "title": "The Long Night", "genre": ["drama"], "duration_seconds": 7260,
         "language": "en", "current_timestamp": 1.5, "event_source": "web_app"}
    e.update(extra)
    return e


def bodies():
    """(name, decoded JSON bytes): each under the 5 MiB body limit."""
    out = []
    unit = b'"a":1,'
    out.append(("one object, one unknown key repeated", b"{" + unit * ((LIMIT - 16) // len(unit)) + b'"z":1}'))
    unit = b'"title":"",'
    out.append(("one object, a known key repeated", b"{" + unit * ((LIMIT - 16) // len(unit)) + b'"z":1}'))
    keys = []
    size = 2
    i = 0
    while True:
        member = f'"k{i}":1,'.encode()
        if size + len(member) > LIMIT - 16:
            break
        keys.append(member)
        size += len(member)
        i += 1
    out.append(("one object, distinct unknown keys", b"{" + b"".join(keys) + b'"z":1}'))
    # Events of just under 32 KiB (the default limit): repeated unknown keys (each rejected),
    # distinct ones (accepted), as many as fit in the body.
    def sized(i, member):
        text = json.dumps(event(i)).encode()[:-1]
        k = 0
        while len(text) + len(member(k)) + 2 < 32 * 1024:
            text += b"," + member(k)
            k += 1
        return text + b"}"
    count = LIMIT // (32 * 1024 + 1) - 1
    repeated = [sized(i, lambda k: b'"a":1') for i in range(count)]
    out.append((f"{count} events of 32 KiB, one unknown key repeated", b"[" + b",".join(repeated) + b"]"))
    distinct = [sized(i, lambda k: f'"k{k}":1'.encode()) for i in range(count)]
    out.append((f"{count} events of 32 KiB, distinct unknown keys (accepted)", b"[" + b",".join(distinct) + b"]"))
    ordinary = []
    size = 2
    i = 0
    while True:
        e = json.dumps(event(i)).encode()
        if size + len(e) + 1 > LIMIT - 16 or len(ordinary) >= 1000:
            break
        ordinary.append(e)
        size += len(e) + 1
        i += 1
    out.append((f"baseline: {len(ordinary)} ordinary events", b"[" + b",".join(ordinary) + b"]"))
    return out


class Server:
    def __init__(self, binary):
        self.folder = tempfile.mkdtemp(prefix="hostile-bodies-")
        self.port = free_port()
        self.process = subprocess.Popen(
            [binary, "serve", "--port", str(self.port), "--data-dir", self.folder + "/data", "--log-level", "warning",
             "--max-events-per-request", "1000"],
            stdout=subprocess.DEVNULL, stderr=open(self.folder + "/server.log", "w"))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"{binary} did not start: {open(self.folder + '/server.log').read()[-2000:]}")

    def post(self, body):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        started = time.perf_counter()
        connection.request("POST", "/v1/events", body=body,
                           headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        response = connection.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
        connection.close()
        return elapsed, response.status

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cases = [(name, body, gzip.compress(body, 6)) for name, body in bodies()]
    servers = {"old": Server(args.old), "new": Server(args.new)}
    times = {(name, side): [] for name, _, _ in cases for side in servers}
    statuses = {}
    try:
        for round_number in range(args.rounds):
            order = ["old", "new"] if round_number % 2 == 0 else ["new", "old"]
            for name, _, wire in cases:
                for side in order:
                    elapsed, status = servers[side].post(wire)
                    times[(name, side)].append(elapsed)
                    statuses[(name, side)] = status
    finally:
        for server in servers.values():
            server.stop()
    print(f"| body | decoded bytes | gzip bytes | status (old / new) | old ms (median) | new ms (median) | new / old |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for name, body, wire in cases:
        old = statistics.median(times[(name, "old")]) * 1000
        new = statistics.median(times[(name, "new")]) * 1000
        print(f"| {name} | {len(body):,} | {len(wire):,} | {statuses[(name, 'old')]} / {statuses[(name, 'new')]} | {old:.1f} | {new:.1f} | {new / old:.2f} |")


if __name__ == "__main__":
    main()
