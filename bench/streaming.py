"""Streaming: start-up and stalls while playing during the download.

Runs the experiment mode (experiment.py: its own seeders, preview on, the
null sink in real time) on the sample song with one seeder whose link is
capped at --factor x the song's bit rate (default 1.5x) and loses --loss of
its chunks (default 10 %), --runs runs per order (default 5); medians.

Targets: sequential start-up <= 0.5 s and 0 stalls; semi-random start-up
<= 1 s.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

import common as c

import experiment  # noqa: E402  (common put the project on sys.path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--factor", type=float, default=1.5,
                        help="link rate as a multiple of the bit rate")
    parser.add_argument("--loss", type=float, default=0.1)
    parser.add_argument("--seeders", type=int, default=1)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--orders", default="sequential,semi-random")
    parser.add_argument("--song", default=None)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    c.header("streaming: start-up and stalls with preview", __file__,
             sys.argv[1:] if argv is None else argv)
    song = experiment.SongInfo(experiment.find_song(args.song))
    rate = round(args.factor * song.kbps / args.seeders, 1)
    print(f"song {song.name}: {song.kbps:.0f} kbit/s, {song.duration:.1f} "
          f"s; {args.seeders} seeder(s) at {rate} kbit/s each "
          f"({args.factor}x the bit rate in all), loss {args.loss:.0%}, "
          f"{args.runs} runs", flush=True)
    with c.temp_dir("stream") as tmp:
        code = experiment.main([
            "--runs", str(args.runs), "--loss", str(args.loss), "--rate",
            str(rate), "--delay", str(args.delay), "--seeders",
            str(args.seeders), "--orders", args.orders, "--seed",
            str(args.seed), "-o", tmp] + (["--song", args.song]
                                          if args.song else []))
        if code != 0:
            return code
        with open(os.path.join(tmp, "experiment.csv"), newline="") as f:
            rows = {row["order"]: row for row in csv.DictReader(f)}
    print()
    verdicts = []
    if "sequential" in rows:
        row = rows["sequential"]
        startup = float(row["startup_s_median"])
        stalls = float(row["stalls_max"])
        verdicts.append(f"sequential start-up median {startup:.2f} s "
                        f"(target <= 0.5 s: "
                        f"{'met' if startup <= 0.5 else 'MISSED'})")
        verdicts.append(f"sequential stalls, worst run {stalls:.0f} "
                        f"(target 0: {'met' if stalls == 0 else 'MISSED'})")
    if "semi-random" in rows:
        startup = float(rows["semi-random"]["startup_s_median"])
        verdicts.append(f"semi-random start-up median {startup:.2f} s "
                        f"(target <= 1 s: "
                        f"{'met' if startup <= 1.0 else 'MISSED'})")
    print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
