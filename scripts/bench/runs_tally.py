"""How often `scripts/bench-ingest` met issue 2's two targets, from docs/benchmarks.md.

    python3 scripts/bench/runs_tally.py [docs/benchmarks.md]

Reads the table "Ingest: the runs compared" (one row per run: when, machine, the bare server's
requests/s, `serve`'s ratio to it, `ingest`'s, and `ingest --replay 16` at 100 / 250 / 500 events
per POST) and prints, as a Markdown table, for all runs and for each kind of machine: how many runs
met each target, and the median (and range) over the runs. docs/performance.md, "Where the targets stand",
is this script's output; run it after adding a row.

The targets: single events at 0.75 × the bare server's requests/s or more; batches at 1,000,000
events/s or more.
"""
import re
import statistics
import sys

HEADING = "### Ingest: the runs compared"
SINGLE_TARGET = 0.75
BATCH_TARGET = 1_000_000
SIZES = (100, 250, 500)


class Run:
    def __init__(self, cells, line):
        self.when = cells[0]
        machine = cells[1]
        if "earlier" in machine:
            self.machine = "the earlier VM"
        elif "AMD EPYC" in machine:
            self.machine = "AMD EPYC VMs"
        elif "Intel Xeon" in machine:
            self.machine = "Intel Xeon VMs"
        else:
            raise ValueError(f"line {line}: no machine kind in {machine!r}")
        serve = re.search(r"\*\*([0-9.]+)\*\*", cells[3])
        if serve is None:
            raise ValueError(f"line {line}: no bold ratio for serve in {cells[3]!r}")
        self.serve = float(serve.group(1))
        self.ingest = float(cells[4].split()[0])
        # A figure in parentheses is the one before it, more precisely ("1.00 M (996 k)"): taken
        # instead of it, not as the next batch size's rate (as it was, a review).
        found = re.findall(r"([0-9.]+) ([Mk])\b(?:\s*\(([0-9.]+) ([Mk])\))?", cells[5])[:len(SIZES)]
        rates = [(precise, unit2) if precise else (value, unit) for value, unit, precise, unit2 in found]
        if len(rates) != len(SIZES):
            raise ValueError(f"line {line}: expected {len(SIZES)} rates in {cells[5]!r}")
        self.batches = [float(value) * (1e6 if unit == "M" else 1e3) for value, unit in rates]


def runs(path):
    try:
        lines = open(path, encoding="utf-8").read().split("\n")
    except OSError as error:
        sys.exit(f"{path}: {error.strerror}")
    try:
        start = lines.index(HEADING)
    except ValueError:
        sys.exit(f"{path}: no heading {HEADING!r}")
    found = []
    for number, line in enumerate(lines[start + 1:], start + 2):
        if line.startswith("#"):
            break
        if re.match(r"\| \d{4}-\d\d-\d\d \d\d:\d\d \|", line):
            found.append(Run([cell.strip() for cell in line.strip().strip("|").split("|")], number))
    if not found:
        sys.exit(f"{path}: no runs under {HEADING!r}")
    return found


def median_range(values, form):
    if len(values) == 1:
        return form(values[0])
    return f"{form(statistics.median(values))} ({form(min(values))}–{form(max(values))})"


def ratio(value):
    return f"{value:.2f}"


def millions(value):
    return f"{value / 1e6:.2f} M"


def row(title, group):
    met = lambda values, target: str(sum(v >= target for v in values))
    serve = [r.serve for r in group]
    ingest = [r.ingest for r in group]
    batches = [[r.batches[index] for r in group] for index in range(len(SIZES))]
    return " | ".join([
        f"| {title}", str(len(group)),
        met(serve, SINGLE_TARGET), median_range(serve, ratio),
        met(ingest, SINGLE_TARGET), median_range(ingest, ratio),
        " / ".join(met(values, BATCH_TARGET) for values in batches),
        " / ".join(millions(statistics.median(values)) for values in batches)]) + " |"


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "docs/benchmarks.md"
    found = runs(path)
    sizes = " / ".join(str(size) for size in SIZES)
    print(f"{len(found)} runs of `scripts/bench-ingest`, {found[0].when} to {found[-1].when} UTC "
          f"(`python3 scripts/bench/runs_tally.py`). Single events: runs at {SINGLE_TARGET} × the bare "
          f"server's requests/s or more, and the ratio's median (lowest–highest). Batches: runs at "
          f"{BATCH_TARGET:,} events/s or more, and the median events/s, at {sizes} events per POST "
          "(`ingest`, `loadgen --replay 16`).")
    print()
    print("| machines | runs | `serve`, single events: target met | `serve` / bare | "
          "`ingest`, single events: target met | `ingest` / bare | batches: target met | batches: median events/s |")
    print("|---|---:|---:|---|---:|---|---|---|")
    print(row("all", found))
    for machine in sorted({r.machine for r in found}, key=lambda m: -sum(r.machine == m for r in found)):
        print(row(machine, [r for r in found if r.machine == machine]))


if __name__ == "__main__":
    main()
