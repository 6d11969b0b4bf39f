"""Start time: wall time of ``-h`` for the programs a user types first.

Median (and min) of --runs runs each, interleaved; ``python3 -c pass``
(the bare interpreter, site-packages of the venv included) is measured in
the same run as the floor, and each command is also shown as a multiple of
it.  Imports that cost the most are listed with ``-X importtime`` for the
slowest command.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import common as c

COMMANDS = {
    "python3 -c pass": ["-c", "pass"],
    "p2p_facom.py -h": ["p2p_facom.py", "-h"],
    "seeder.py -h": ["seeder.py", "-h"],
    "leecher.py -h": ["leecher.py", "-h"],
}


def once(args: list[str]) -> float:
    run = c.Measured([c.PYTHON, *args], timeout=60)
    if run.returncode != 0:
        raise RuntimeError(f"{args} failed with exit code {run.returncode}")
    return run.wall


def import_times(args: list[str], top: int) -> list[tuple[int, str]]:
    run = subprocess.run([c.PYTHON, "-X", "importtime", *args], cwd=c.ROOT,
                         capture_output=True, text=True, timeout=60)
    rows = []
    for line in run.stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 \
                or "cumulative" in parts[1]:
            continue
        rows.append((int(parts[1]), parts[2][1:].rstrip()))
    top_level = [r for r in rows if not r[1].startswith(" ")]
    return sorted(top_level, reverse=True)[:top]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args(argv)
    c.header("start: -h wall time", __file__,
             sys.argv[1:] if argv is None else argv)
    times = {name: [] for name in COMMANDS}
    for name, cmd in COMMANDS.items():
        once(cmd)  # warm the page cache and the .pyc files
    for _ in range(args.runs):
        for name, cmd in COMMANDS.items():
            times[name].append(once(cmd))
    floor = c.median(times["python3 -c pass"])
    print(f"{args.runs} runs each, interleaved")
    print(f"{'command':<18} {'median':>8} {'min':>8} {'x bare':>7}")
    for name in COMMANDS:
        med = c.median(times[name])
        print(f"{name:<18} {med * 1000:6.0f}ms {min(times[name]) * 1000:6.0f}"
              f"ms {med / floor:6.1f}x")
    slowest = max((n for n in COMMANDS if n != "python3 -c pass"),
                  key=lambda n: c.median(times[n]))
    print(f"\nlargest top-level imports of {slowest} (-X importtime, "
          f"cumulative):")
    for cumulative, name in import_times(COMMANDS[slowest], 8):
        print(f"  {cumulative / 1000:6.1f} ms  {name.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
