"""P2P FACOM runner: the original command line and the classroom demo.

    python3 p2p_facom.py -t seeder -i 127.0.0.1 -p 9000 -m sequential
    python3 p2p_facom.py -t leecher            # the leecher's window
    python3 p2p_facom.py demo                  # three seeders + a leecher
    python3 p2p_facom.py experiment --runs 3   # compare the sending orders
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import cli
from sample_song import ensure_sample

DEMO_ORDERS = ("sequential", "random", "semi-random")
# Slow, slightly lossy links make the demo worth watching: three seeders
# at 160 kbit/s each carry a 128 kbit/s song with room to spare.
DEMO_LINK = ("--rate", "160", "--loss", "0.05", "--delay", "20",
             "--jitter", "10")


def build_parser() -> cli.Parser:
    import seeder
    parser = cli.Parser(
        prog="p2p_facom.py",
        description="P2P FACOM: peer-to-peer MP3 streaming over UDP.",
        epilog="Other commands: 'p2p_facom.py demo' starts three seeders "
               "on 127.0.0.1-3 and a leecher; 'p2p_facom.py experiment "
               "-h' compares the sending orders. Terminal leecher: "
               "'python3 leecher.py -h'.")
    parser.add_argument("-t", "--type", choices=("seeder", "leecher"),
                        required=True, help="run a seeder or the leecher")
    seeder.add_arguments(parser)
    parser.add_argument("--seeders", metavar="ADDR,ADDR",
                        help="leecher: seeders to use")
    parser.add_argument("--lang", choices=("pt", "en"),
                        help="leecher window language (default: locale)")
    parser.add_argument("-o", "--output", default="downloads",
                        help="leecher: folder for downloads")
    return parser


def run_leecher_window(args) -> int:
    import gui
    argv = ["-o", args.output]
    if args.seeders:
        argv += ["--seeders", args.seeders]
    if args.lang:
        argv += ["--lang", args.lang]
    return gui.main(argv)


# ------------------------------------------------------------------ demo
def demo_parser() -> cli.Parser:
    parser = cli.Parser(prog="p2p_facom.py demo", description=(
        "Start the three classroom seeders (127.0.0.1-3, sequential, random "
        "and semi-random) and a leecher on the sample song; stop them all "
        "on exit."))
    parser.add_argument("-p", "--port", type=cli.port_number,
                        default=cli.DEFAULT_PORT)
    parser.add_argument("--song", default="facom-sample.mp3")
    parser.add_argument("-d", "--dir", default=cli.MUSIC_DIR)
    parser.add_argument("-o", "--output", default="downloads")
    parser.add_argument("--terminal", action="store_true",
                        help="terminal leecher even when a screen exists")
    parser.add_argument("--lang", choices=("pt", "en"))
    return parser


def start_seeders(args) -> list[subprocess.Popen]:
    procs = []
    for n, order in enumerate(DEMO_ORDERS):
        cmd = [sys.executable, os.path.join(cli.PROJECT_DIR, "seeder.py"),
               "-i", f"127.0.0.{n + 1}", "-p", str(args.port), "-m", order,
               "-d", args.dir, "-q", "--rng-seed", str(n + 1), *DEMO_LINK]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        line = proc.stdout.readline().strip()
        if proc.poll() is not None or "sharing" not in line:
            stop_seeders(procs)
            raise cli.UsageError(line.replace("seeder: error: ", "") or
                                 "a seeder did not start")
        print(line)
    return procs


def stop_seeders(procs) -> None:
    for out in cli.end_processes(procs):
        if out.strip():
            print(out.strip().splitlines()[-1])  # the seeder's summary


def run_demo(argv) -> int:
    args = demo_parser().parse_args(argv)

    def body():
        import seeder
        seeder.check_folder(args.dir)
        ensure_sample(args.dir)
        os.makedirs(args.output, exist_ok=True)
        procs = start_seeders(args)
        seeders = ",".join(f"127.0.0.{n + 1}:{args.port}" for n in range(3))
        try:
            time.sleep(0.2)
            return demo_leecher(args, seeders)
        finally:
            stop_seeders(procs)
    return cli.run_main("demo", body)


def demo_leecher(args, seeders: str) -> int:
    if not args.terminal and _gui().display_available():
        import gui
        argv = ["--seeders", seeders, "-o", args.output, "--song", args.song]
        if args.lang:
            argv += ["--lang", args.lang]
        return gui.main(argv)
    print("no screen: running the terminal leecher (preview on)")
    import leecher
    return leecher.main(["get", args.song, "-o", args.output, "--seeders",
                         seeders, "--force", "--preview",
                         "--json", os.path.join(args.output, "stats.json")])


def _gui():
    import gui
    return gui


# ------------------------------------------------------------------ main
def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "demo":
        return run_demo(argv[1:])
    if argv and argv[0] == "experiment":
        import experiment
        return experiment.main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.type == "seeder":
        import seeder
        return cli.run_main("seeder", lambda: seeder.run(args))
    return cli.run_main("leecher", lambda: run_leecher_window(args))


if __name__ == "__main__":
    sys.exit(main())
