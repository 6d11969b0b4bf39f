"""Profile a seeder and a terminal leecher with py-spy during one download.

    .venv/bin/pip install py-spy        # a tool only: not in requirements
    .venv/bin/python bench/profile.py [--size-mb 50] [--loss 0.1]

Starts one seeder on 127.0.0.1 (under ``py-spy record``), runs the leecher
under ``py-spy record`` too, and prints for each the functions with the
most samples: "self" (the sampled line is in that function) and "total"
(the function is anywhere on the stack).  The raw stacks are kept with
``--keep DIR`` for a flame graph.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import common as c

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    here = os.path.join(os.path.dirname(c.PYTHON), "py-spy")
    return here if os.path.exists(here) else shutil.which("py-spy")


def summarize(raw_path: str, top: int) -> str:
    """Top functions by self and by total samples from py-spy's raw
    (collapsed stacks) output."""
    own = collections.Counter()
    total = collections.Counter()
    samples = 0
    with open(raw_path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            n = int(count)
            samples += n
            frames = [_name(f) for f in stack.split(";")]
            own[frames[-1]] += n
            for name in set(frames):
                total[name] += n
    if not samples:
        return "  (no samples)"
    lines = [f"  {samples} samples"]
    for title, counter in (("self", own), ("total", total)):
        lines.append(f"  top {top} by {title}:")
        for name, n in counter.most_common(top):
            lines.append(f"    {100 * n / samples:5.1f} %  {name}")
    return "\n".join(lines)


def _name(frame: str) -> str:
    m = FRAME.match(frame.strip())
    if not m:
        return frame
    path = m.group("file")
    if path.startswith(c.ROOT):
        path = os.path.relpath(path, c.ROOT)
    else:
        path = os.path.basename(path)
    return f"{m.group('func')} ({path})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=50.0)
    parser.add_argument("--loss", type=float, default=0.0,
                        help="seeder's emulated loss")
    parser.add_argument("--method", default="sequential")
    parser.add_argument("--rate", type=int, default=250,
                        help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--keep", metavar="DIR",
                        help="copy the raw stacks here")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    spy = py_spy()
    c.header("profile: seeder and leecher under py-spy", __file__,
             sys.argv[1:] if argv is None else argv)
    if spy is None:
        print("py-spy not found: .venv/bin/pip install py-spy")
        return 1
    size = int(args.size_mb * 1e6)
    with c.temp_dir("prof") as tmp, c.Procs() as procs:
        share = os.path.join(tmp, "share")
        os.makedirs(share)
        name = "profile.mp3"
        c.random_file(os.path.join(share, name), size, args.seed)
        port = c.free_port(("127.0.0.1",))
        seeder = c.Seeder(procs, "127.0.0.1", port, share, "--loss",
                          str(args.loss), "--rng-seed", str(args.seed))
        seeder_raw = os.path.join(tmp, "seeder.txt")
        leecher_raw = os.path.join(tmp, "leecher.txt")
        spy_seeder = procs.add(subprocess.Popen(
            [spy, "record", "-r", str(args.rate), "-f", "raw", "--function",
             "-o", seeder_raw, "--pid", str(seeder.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5)
        out_dir = os.path.join(tmp, "out")
        os.makedirs(out_dir)
        stats_path = os.path.join(tmp, "stats.json")
        leecher = c.leecher_cmd(name, out_dir, [seeder.address],
                                stats_path, "--method", args.method,
                                "--rng-seed", str(args.seed))
        cmd = [spy, "record", "-r", str(args.rate), "-f", "raw",
               "--function", "-o", leecher_raw, "--", *leecher]
        run = c.Measured(cmd, timeout=300, stdout_path=stats_path + ".log")
        spy_seeder.send_signal(signal.SIGINT)  # py-spy writes on SIGINT
        try:
            spy_seeder.wait(timeout=20)
        except subprocess.TimeoutExpired:
            spy_seeder.kill()
        seeder.stop()
        if run.returncode != 0:
            print(f"leecher failed: {run.output()[-400:]}")
            return 1
        stats = c.load_stats(stats_path)
        print(f"{size / 1e6:.0f} MB, loss {args.loss}, {args.method}: "
              f"goodput {stats['goodput_Bps'] / 1e6:.1f} MB/s (slowed by "
              f"sampling), {stats['chunks_retransmitted']} retransmitted")
        print(f"seeder: {seeder.summary}")
        print("\nLEECHER (whole process: start, ping, search, download, "
              "verify)")
        print(summarize(leecher_raw, args.top))
        print("\nSEEDER (idle time in select included)")
        print(summarize(seeder_raw, args.top))
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            for path in (seeder_raw, leecher_raw):
                if os.path.exists(path):
                    shutil.copy(path, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
