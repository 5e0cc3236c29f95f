#!/usr/bin/env python3
"""Peak memory of `playhead serve` under a hostile load, for the 1 GiB target (docs/lake.md, "Memory").

Starts `serve` (release build) on a free port with its own data folder and the given extra flags,
sends batches of events from several processes for `--duration` seconds (keep-alive; unique
event_ids; optionally a large unknown field per event, and new sessions, users and contents per
event), samples the server's VmHWM, stops it with SIGTERM, and prints one JSON line: the peak
resident memory, events acknowledged, and requests refused.

    .venv/bin/python scripts/bench/memory_load.py --extra-bytes 30000 --batch 165
    .venv/bin/python scripts/bench/memory_load.py --extra-bytes 7800 --batch 600 --cardinality unique
    .venv/bin/python scripts/bench/memory_load.py --extra-bytes 30000 --batch 165 -- --flush-bytes 536870912
"""
import argparse, http.client, json, multiprocessing, os, random, signal, socket, string, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sender(index, port, args, results):
    rnd = random.Random(index)
    blob = ''.join(rnd.choice(string.ascii_letters) for _ in range(args.extra_bytes))
    tag = f'p{index}'
    if args.cardinality == 'unique':
        ids = f'"user_id":"u-{tag}-%d","device_id":"d-{tag}-%d","session_id":"s-{tag}-%d","content_id":"c-{tag}-%d",'
    else:
        ids = f'"user_id":"user_{index}","device_id":"web_{index}","session_id":"s-{index}","content_id":"media_123",'
    template = ('{"event_id":"' + tag + '-%d","event_type":"play","timestamp":"2026-12-03T14:30:45.123Z",' + ids
                + '"ip_address":"192.168.1.1","content_type":"movie","title":"Mr Robot","genre":["thriller","action"],'
                + '"duration_seconds":8880,"language":"en","current_timestamp":120.5,"event_source":"web_app"'
                + (f',"blob":"{blob}"' if blob else '') + '}')
    slots = template.count('%d')
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=120)
    sent = accepted = refused = 0
    end = time.time() + args.duration
    while time.time() < end:
        body = ('[' + ','.join(template % ((sent + i,) * slots) for i in range(args.batch)) + ']').encode()
        sent += args.batch
        try:
            connection.request('POST', '/v1/events', body=body, headers={'Content-Type': 'application/json'})
            response = connection.getresponse()
            data = response.read()
        except OSError:
            connection.close()
            connection = http.client.HTTPConnection('127.0.0.1', port, timeout=120)
            refused += 1
            time.sleep(0.2)
            continue
        if response.status == 202:
            accepted += json.loads(data)['accepted']
        else:
            refused += 1
            time.sleep(0.2)
    results.put((accepted, refused))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--processes', type=int, default=4, help='sending processes, one connection each (default 4)')
    parser.add_argument('--batch', type=int, default=500, help='events per POST (default 500)')
    parser.add_argument('--extra-bytes', type=int, default=0, help='bytes of an unknown field in every event (default 0)')
    parser.add_argument('--cardinality', choices=['low', 'unique'], default='low',
                        help='low: one session, user and content per process; unique: new ones for every event (default low)')
    parser.add_argument('--duration', type=float, default=45, help='seconds of load (default 45)')
    parser.add_argument('serve_flags', nargs='*', help='more flags for playhead serve, after --')
    args = parser.parse_args()

    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    data = tempfile.mkdtemp(prefix='memory-load-')
    server = subprocess.Popen([os.path.join(ROOT, '.build/release/playhead'), 'serve', '--port', str(port), '--data-dir', data]
                              + args.serve_flags, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(('127.0.0.1', port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    sys.exit('serve did not start')
                time.sleep(0.1)
        results = multiprocessing.Queue()
        senders = [multiprocessing.Process(target=sender, args=(i, port, args, results)) for i in range(args.processes)]
        for process in senders:
            process.start()
        totals = [results.get() for _ in senders]
        for process in senders:
            process.join()
        with open(f'/proc/{server.pid}/status') as status:
            peak = next(int(line.split()[1]) for line in status if line.startswith('VmHWM:'))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=600)
        subprocess.run(['rm', '-rf', data])
    print(json.dumps({
        'peak_rss_mib': peak // 1024, 'acknowledged_events': sum(t[0] for t in totals),
        'refused_requests': sum(t[1] for t in totals), 'extra_bytes': args.extra_bytes,
        'cardinality': args.cardinality, 'serve_flags': args.serve_flags,
    }))


if __name__ == '__main__':
    main()
