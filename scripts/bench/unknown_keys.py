#!/usr/bin/env python3
"""How an event's unknown fields cost the edge: a 5 MiB body of 159 events of 32 KiB, each holding
thousands of short unknown keys, against a control body of the same size whose events hold one
long unknown string. Both are accepted (202); the figure is the ratio of their answer times,
measured in the same run against one `playhead ingest --threads 1`.

Each unknown key is checked against the event's earlier ones (a repeat is `duplicate_field`).
Until 2026-12-07 that compared each key with every earlier one, quadratic in the keys: the
many-keys body took about 46 times the control's time, 3.3 s on one event loop (an outside
review of the code). Usage:

    python3 scripts/bench/unknown_keys.py [--playhead .build/release/playhead] [--rounds 3]
"""
import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_ingest import free_port, wait_port  # noqa: E402

EVENT_BYTES = 32 * 1024
EVENTS = 159  # 5 MiB with the newlines


def base(event_id):
    return (
        '"event_id":"%s","event_type":"play","timestamp":"2026-12-07T12:00:00Z","user_id":"u","device_id":"d",'
        '"ip_address":"1.2.3.4","content_id":"c","content_type":"movie","title":"t","genre":["a"],'
        '"duration_seconds":10,"language":"en","current_timestamp":1.5,"event_source":"web"' % event_id
    )


def many_keys_event(event_id):
    head = base(event_id)
    keys = ("".join(chars) for chars in itertools.product("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", repeat=3))
    room = EVENT_BYTES - len(head) - 2
    members = []
    used = 0
    while used + 8 <= room:
        member = ',"%s":0' % next(keys)
        members.append(member)
        used += len(member)
    return "{" + head + "".join(members) + "}", len(members)


def control_event(event_id):
    head = base(event_id)
    pad = EVENT_BYTES - len(head) - len(',"note":""') - 2
    return "{" + head + ',"note":"' + "x" * pad + '"}'


def post(port, body):
    request = urllib.request.Request(
        "http://127.0.0.1:%d/v1/events" % port, data=body, headers={"Content-Type": "application/x-ndjson"}, method="POST"
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as answer:
        status = answer.status
        answer.read()
    return status, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--playhead", default=".build/release/playhead")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    many = [many_keys_event("k%d" % n) for n in range(EVENTS)]
    keys = many[0][1]
    many_body = "\n".join(event for event, _ in many).encode()
    control_body = "\n".join(control_event("c%d" % n) for n in range(EVENTS)).encode()
    folder = tempfile.mkdtemp(prefix="unknown-keys-")
    port = free_port()
    server = subprocess.Popen(
        [args.playhead, "ingest", "--port", str(port), "--data-dir", folder + "/data", "--threads", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        rounds = []
        for _ in range(args.rounds):
            control_status, control = post(port, control_body)
            many_status, many_seconds = post(port, many_body)
            assert control_status == 202 and many_status == 202, (control_status, many_status)
            rounds.append((control, many_seconds))
        rounds.sort(key=lambda pair: pair[1] / pair[0])
        control, many_seconds = rounds[len(rounds) // 2]
        print(json.dumps({
            "events": EVENTS, "unknown_keys_per_event": keys, "body_bytes": [len(control_body), len(many_body)],
            "control_seconds": round(control, 3), "many_keys_seconds": round(many_seconds, 3),
            "ratio": round(many_seconds / control, 1),
        }))
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
