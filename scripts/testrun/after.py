"""What scripts/test does after `swift test` has ended.

    after.py in-flight LOG   the tests that started and did not finish, from swift test's log
    after.py leftovers MARK  stop the processes that the tests started and left running

Every process that the tests start inherits the environment variable PLAYHEAD_TEST_RUN=MARK from
`swift test`, so a process that still carries the mark after `swift test` has ended was left
behind: by a test that did not stop what it started, or by a test process that died (a crash stops
nothing its tests started). Run this without the mark in its own environment.
"""
import os
import re
import signal
import sys
import time


def in_flight(log_path):
    started, finished = [], set()
    # Lines of parallel tests can run into each other: search, do not match from the start.
    for line in open(log_path, errors="replace"):
        for m in re.finditer(r"◇ Test (.*?) started\.", line):
            started.append(m.group(1))
        for m in re.finditer(r"[✔✘] Test (.*?) (?:passed after|failed after|with \d+ test cases)", line):
            finished.add(m.group(1))
    for name in started:
        if name not in finished and name != "run" and not name.startswith("case passing"):
            print("  " + name)


def marked_processes(mark):
    needle = b"PLAYHEAD_TEST_RUN=" + mark.encode()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = " ".join(f.read().replace(b"\0", b" ").decode(errors="replace").split())  # one line, even for python -c
        except OSError:  # gone, a zombie, or another user's
            continue
        if command:
            found[int(entry)] = command
    return found


def leftovers(mark):
    found = marked_processes(mark)
    if not found:
        return
    print(f"{len(found)} process(es) started by the tests still running after swift test ended; stopping them:")
    for pid, command in sorted(found.items()):
        print(f"  {pid}: {command[:200]}")
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        for pid in found:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            found = marked_processes(mark)
            if not found:
                return
            time.sleep(0.2)
    print(f"  still running after SIGKILL: {sorted(found)}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("in-flight", "leftovers"):
        sys.exit(__doc__)
    (in_flight if sys.argv[1] == "in-flight" else leftovers)(sys.argv[2])
