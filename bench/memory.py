"""Memory: the terminal leecher's peak RSS downloading a big file.

One seeder -> ``leecher.py get ... --json`` (the statistics with the full
per-chunk timeline are written too, as a user would).  Peak RSS is the
kernel's: ``ru_maxrss`` from ``wait4`` and VmHWM sampled from
/proc/PID/status while it runs (the larger is shown).  Also printed: the
peak RSS of a leecher that only answers ``-h`` (the interpreter and the
imports), for comparison.  Target: < 80 MB for 200 MB.
"""

from __future__ import annotations

import argparse
import os
import sys

import common as c


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=200.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-json", action="store_true",
                        help="without --json (no timeline written)")
    parser.add_argument("--no-offload", action="store_true",
                        help="the leecher reads one datagram per call "
                             "(no UDP GRO arena)")
    args = parser.parse_args(argv)
    c.header("memory: terminal leecher peak RSS", __file__,
             sys.argv[1:] if argv is None else argv)
    size = int(args.size_mb * 1e6)
    base = c.Measured([c.PYTHON, os.path.join(c.ROOT, "leecher.py"), "-h"],
                      timeout=30)
    with c.temp_dir("mem") as tmp, c.Procs() as procs:
        share = os.path.join(tmp, "share")
        os.makedirs(share)
        name = "bench-big.mp3"
        c.random_file(os.path.join(share, name), size, args.seed)
        seeder = c.Seeder(procs, "127.0.0.1", c.free_port(("127.0.0.1",)),
                          share, start_timeout=300)
        out_dir = os.path.join(tmp, "out")
        os.makedirs(out_dir)
        stats_path = os.path.join(tmp, "stats.json")
        cmd = c.leecher_cmd(name, out_dir, [seeder.address], stats_path)
        if args.no_json:
            i = cmd.index("--json")
            del cmd[i:i + 2]
        if args.no_offload:
            cmd.append("--no-offload")
        run = c.Measured(cmd, timeout=600, stdout_path=stats_path + ".log",
                         sample_hwm=True)
        seeder_hwm = c.peak_rss_mb(seeder.pid)
        seeder.stop()
        if run.returncode != 0:
            print(f"leecher failed: {run.output()[-400:]}")
            return 1
        goodput = None
        if not args.no_json:
            goodput = c.load_stats(stats_path)["goodput_Bps"] / 1e6
    peak = max(run.maxrss_mb, run.hwm_mb or 0)
    print(f"file {size / 1e6:.0f} MB"
          + ("" if args.no_json else " (with --json and its timeline)")
          + (", --no-offload" if args.no_offload else ", UDP GRO on"))
    print(f"leecher peak RSS      {peak:.1f} MB  (ru_maxrss "
          f"{run.maxrss_mb:.1f}, VmHWM sampled {c.fmt(run.hwm_mb, '.1f')})")
    print(f"leecher -h peak RSS   {base.maxrss_mb:.1f} MB  (interpreter + "
          f"imports)")
    print(f"seeder peak RSS       {c.fmt(seeder_hwm, '.1f')} MB")
    print(f"download              {c.fmt(goodput, '.1f')} MB/s, process "
          f"wall {run.wall:.1f} s, CPU {run.cpu:.1f} s")
    print(f"target < 80 MB: {'met' if peak < 80 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
