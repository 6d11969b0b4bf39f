"""What would the proposed leecher fixes bring?  Measured, not guessed.

Runs the same downloads as bench/throughput.py and bench/loss.py (one
seeder -> the terminal leecher, loopback, a file of random bytes) with the
leecher as it is and with candidate patches applied at run time by
bench/whatif_leecher.py (see its docstring), interleaved, same seeds;
prints median goodput and the ratio to the unpatched leecher in the same
run.  leecher.py and protocol.py are not changed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

import common as c

VARIANTS = ["none", "decode", "writes", "decode,writes", "renack,rto",
            "decode,writes,renack,rto"]


def one(tmp, share, name, loss, variant, seed, rep) -> float:
    with c.Procs() as procs:
        seeder = c.Seeder(procs, "127.0.0.1", c.free_port(("127.0.0.1",)),
                          share, "--loss", str(loss), "--rng-seed",
                          str(seed))
        out_dir = os.path.join(tmp, f"o-{rep}")
        os.makedirs(out_dir)
        stats = out_dir + ".json"
        cmd = c.leecher_cmd(name, out_dir, [seeder.address], stats,
                            "--rng-seed", str(seed))
        cmd[1:2] = [os.path.join(c.BENCH_DIR, "whatif_leecher.py"), variant]
        run = c.Measured(cmd, timeout=300, stdout_path=stats + ".log")
        seeder.stop()
    if run.returncode != 0:
        raise RuntimeError(f"{variant}: {run.output()[-400:]}")
    goodput = c.load_stats(stats)["goodput_Bps"] / 1e6
    shutil.rmtree(out_dir)
    return goodput


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=20.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--losses", default="0,0.1")
    parser.add_argument("--variants", default=";".join(VARIANTS),
                        help="';'-separated patch sets (see "
                             "whatif_leecher.py)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    c.header("what-if: leecher patches, goodput vs the leecher as it is",
             __file__, sys.argv[1:] if argv is None else argv)
    variants = args.variants.split(";")
    losses = [float(x) for x in args.losses.split(",")]
    size = int(args.size_mb * 1e6)
    results = {(loss, v): [] for loss in losses for v in variants}
    with c.temp_dir("whatif") as tmp:
        share = os.path.join(tmp, "share")
        os.makedirs(share)
        name = "whatif.mp3"
        c.random_file(os.path.join(share, name), size, args.seed)
        for rep in range(args.reps):
            for loss in losses:
                for variant in variants:
                    results[(loss, variant)].append(one(
                        tmp, share, name, loss, variant, args.seed + rep,
                        rep))
            print(f"rep {rep + 1}/{args.reps} done", flush=True)
    print(f"\nfile {size / 1e6:.0f} MB, {args.reps} reps, median MB/s "
          f"(ratio to 'none' at the same loss)")
    for loss in losses:
        base = c.median(results[(loss, "none")])
        for variant in variants:
            med = c.median(results[(loss, variant)])
            print(f"  loss {loss:4.0%}  {variant:<26} {med:7.1f}  "
                  f"{med / base:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
