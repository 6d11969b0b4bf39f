"""Goodput under emulated loss, and how many retransmissions a loss costs.

One seeder (``--loss P --rng-seed N``) -> the terminal leecher, loopback,
a file of random bytes (20 MB).  For each loss rate, --reps downloads
(default 7; the rates interleaved, the same seeds for every rate);
medians.

* goodput ratio = goodput at P / goodput at 0 % of the same repetition
  (median of those ratios).
  Targets (issue 10): >= 0.8x at 10 % loss, >= 0.6x at 30 %.
* retransmitted / lost = the leecher's ``chunks_retransmitted`` (retransmitted
  copies received) / the seeder's ``dropped`` (chunks it dropped, first
  copies and retransmissions alike, from its SIGTERM summary).  Target
  <= 1.3.  Also shown: the seeder's ``resent`` / ``dropped`` (every drop
  needs exactly one resend: 1.0 is ideal) and the leecher's duplicates.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

import common as c

# Goodput at this loss / goodput at 0 %, at least (issue 10's targets).
GOODPUT_TARGETS = {0.1: 0.8, 0.3: 0.6}


def download(tmp: str, share: str, name: str, loss: float, seed: int,
             rep: int) -> dict:
    with c.Procs() as procs:
        seeder = c.Seeder(procs, "127.0.0.1", c.free_port(("127.0.0.1",)),
                          share, "--loss", str(loss), "--rng-seed",
                          str(seed))
        out_dir = os.path.join(tmp, f"out-{loss}-{rep}")
        os.makedirs(out_dir)
        stats_path = out_dir + ".json"
        run = c.Measured(c.leecher_cmd(name, out_dir, [seeder.address],
                                       stats_path, "--rng-seed", str(seed)),
                         timeout=300, stdout_path=stats_path + ".log")
        seeder.stop()
        counters = seeder.counters()
    if run.returncode != 0:
        raise RuntimeError(f"leecher failed at loss {loss}: "
                           f"{run.output()[-400:]}")
    stats = c.load_stats(stats_path)
    shutil.rmtree(out_dir)
    lost = counters.get("dropped", 0)
    return {"goodput": stats["goodput_Bps"] / 1e6,
            "elapsed": stats["elapsed_s"],
            "retransmitted": stats["chunks_retransmitted"],
            "duplicates": stats["duplicates"], "nacks": stats["nacks_sent"],
            "lost": lost, "resent": counters.get("resent", 0),
            "sent": counters.get("sent", 0),
            "retx_per_loss": stats["chunks_retransmitted"] / lost
            if lost else None,
            "resent_per_loss": counters.get("resent", 0) / lost
            if lost else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=20.0)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--losses", default="0,0.1,0.3")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    c.header("loss: goodput and retransmissions per loss (loopback, "
             "seeder --loss)", __file__, sys.argv[1:] if argv is None
             else argv)
    losses = [float(x) for x in args.losses.split(",")]
    if 0.0 not in losses:
        losses.insert(0, 0.0)
    size = int(args.size_mb * 1e6)
    rows = {loss: [] for loss in losses}
    with c.temp_dir("loss") as tmp:
        share = os.path.join(tmp, "share")
        os.makedirs(share)
        name = "bench-loss.mp3"
        c.random_file(os.path.join(share, name), size, args.seed)
        for rep in range(args.reps):
            for loss in losses:
                row = download(tmp, share, name, loss, args.seed + rep, rep)
                rows[loss].append(row)
                print(f"rep {rep + 1} loss {loss:.0%}: "
                      f"{row['goodput']:.1f} MB/s, lost {row['lost']}, "
                      f"resent {row['resent']}, retransmitted received "
                      f"{row['retransmitted']}, duplicates "
                      f"{row['duplicates']}, NACKs {row['nacks']}",
                      flush=True)
    print()
    print(f"file {size / 1e6:.0f} MB, {args.reps} reps, medians")
    print(f"{'loss':>5} {'MB/s':>7} {'ratio':>6} {'lost':>6} "
          f"{'retx rcvd':>9} {'retx/lost':>9} {'resent/lost':>11} "
          f"{'dups':>5} {'NACKs':>6}")
    verdicts = []
    for loss in losses:
        r = rows[loss]
        goodput = c.median(x["goodput"] for x in r)
        # per repetition: this loss against 0 % of the same repetition
        ratio = c.median(x["goodput"] / z["goodput"]
                         for x, z in zip(r, rows[0.0]))
        retx = c.median(x["retx_per_loss"] for x in r)
        print(f"{loss:5.0%} {goodput:7.1f} {ratio:5.2f}x "
              f"{c.median(x['lost'] for x in r):6.0f} "
              f"{c.median(x['retransmitted'] for x in r):9.0f} "
              f"{c.fmt(retx):>9} "
              f"{c.fmt(c.median(x['resent_per_loss'] for x in r)):>11} "
              f"{c.median(x['duplicates'] for x in r):5.0f} "
              f"{c.median(x['nacks'] for x in r):6.0f}")
        target = GOODPUT_TARGETS.get(round(loss, 6))
        if target is not None:
            verdicts.append(f"goodput at {loss:.0%} = {ratio:.2f}x of 0 % "
                            f"(target >= {target}x: "
                            f"{'met' if ratio >= target else 'MISSED'})")
        if loss and retx is not None:
            verdicts.append(f"retransmitted/lost at {loss:.0%} = {retx:.2f} "
                            f"(target <= 1.3: "
                            f"{'met' if retx <= 1.3 else 'MISSED'})")
    print()
    print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
