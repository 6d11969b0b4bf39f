"""Scale: 3 seeders (127.0.0.1-3) and 30 concurrent terminal leechers.

All leechers start at once and download the same file of random bytes
from all three seeders.  Printed: whether every copy is byte-exact
(SHA-256 compared here, besides the leecher's own check), the aggregate
goodput (all bytes delivered / first start to last finish), the spread of
per-leecher times, and the seeders' CPU seconds per MB served (from
/proc/PID/stat before and after; no psutil).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import common as c


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeders", type=int, default=3)
    parser.add_argument("--leechers", type=int, default=30)
    parser.add_argument("--size-mb", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    if not 1 <= args.seeders <= 16 or not 1 <= args.leechers <= 100:
        parser.error("1-16 seeders, 1-100 leechers")
    c.header(f"scale: {args.seeders} seeders, {args.leechers} concurrent "
             f"leechers", __file__, sys.argv[1:] if argv is None else argv)
    size = int(args.size_mb * 1e6)
    ips = [f"127.0.0.{n + 1}" for n in range(args.seeders)]
    with c.temp_dir("scale") as tmp, c.Procs() as procs:
        share = os.path.join(tmp, "share")
        os.makedirs(share)
        name = "bench-scale.mp3"
        digest = c.sha256_file(c.random_file(os.path.join(share, name),
                                             size, args.seed))
        port = c.free_port(tuple(ips))
        seeders = [c.Seeder(procs, ip, port, share, "--rng-seed",
                            str(args.seed + n)) for n, ip in enumerate(ips)]
        cpu_before = [s.cpu() for s in seeders]
        leechers = []
        start = time.monotonic()
        for n in range(args.leechers):
            out_dir = os.path.join(tmp, f"l{n}")
            os.makedirs(out_dir)
            stats = out_dir + ".json"
            log = open(out_dir + ".log", "wb")
            cmd = c.leecher_cmd(name, out_dir, [s.address for s in seeders],
                                stats, "--rng-seed", str(args.seed + n))
            proc = procs.add(subprocess.Popen(cmd, cwd=c.ROOT, stdout=log,
                                              stderr=subprocess.STDOUT))
            leechers.append((proc, out_dir, stats, log))
        ends = {}
        deadline = start + args.timeout
        while len(ends) < len(leechers) and time.monotonic() < deadline:
            for n, (proc, *_rest) in enumerate(leechers):
                if n not in ends and proc.poll() is not None:
                    ends[n] = time.monotonic()
            time.sleep(0.01)
        cpu_after = [s.cpu() for s in seeders]
        for s in seeders:
            s.stop()
        exact = failed = 0
        engine_times = []
        for n, (proc, out_dir, stats, log) in enumerate(leechers):
            log.close()
            path = os.path.join(out_dir, name)
            if proc.returncode == 0 and os.path.exists(path) \
                    and c.sha256_file(path) == digest:
                exact += 1
                with open(stats, encoding="utf-8") as handle:
                    engine_times.append(json.load(handle)["elapsed_s"])
            else:
                failed += 1
    wall = (max(ends.values()) - start) if ends else None
    seeder_cpu = sum(a - b for a, b in zip(cpu_after, cpu_before))
    served_mb = size * args.leechers / 1e6
    print(f"file {size / 1e6:.1f} MB x {args.leechers} leechers = "
          f"{served_mb:.0f} MB from {args.seeders} seeders")
    print(f"byte-exact          {exact}/{args.leechers}"
          + (f" ({failed} failed or timed out)" if failed else ""))
    print(f"aggregate goodput   {c.fmt(c.mbps(size * exact, wall), '.1f')} "
          f"MB/s (first start to last finish {c.fmt(wall)} s, process "
          f"start included)")
    if engine_times:
        engine_times.sort()
        print(f"per-leecher time    min {engine_times[0]:.2f} s, median "
              f"{c.median(engine_times):.2f} s, max {engine_times[-1]:.2f} "
              f"s (request to verified)")
    print(f"seeder CPU          {seeder_cpu:.2f} s in all = "
          f"{seeder_cpu / served_mb * 1000:.1f} ms per MB served")
    return 0 if exact == args.leechers else 1


if __name__ == "__main__":
    sys.exit(main())
