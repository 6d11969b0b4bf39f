"""P2P FACOM runner: the original command line and the classroom demo.

    python3 p2p_facom.py -t seeder -i 127.0.0.1 -p 9000 -m sequential
    python3 p2p_facom.py -t leecher            # the leecher's window
    python3 p2p_facom.py demo                  # three seeders + a leecher
    python3 p2p_facom.py experiment --runs 3   # compare the sending orders
    python3 p2p_facom.py swarm --peers 8       # a seeder, 8 sharing leechers
"""

from __future__ import annotations

import os
import sys
import time

import cli
import i18n
from i18n import N_, _
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
        description=_("P2P FACOM: peer-to-peer MP3 streaming over UDP."),
        epilog=_("Other commands: 'p2p_facom.py demo' starts three seeders "
                 "on 127.0.0.1-3 and a leecher; 'p2p_facom.py experiment "
                 "-h' compares the sending orders; 'p2p_facom.py swarm -h' "
                 "runs a seeder and N leechers that share. Terminal "
                 "leecher: 'python3 leecher.py -h'."))
    parser.add_argument("-t", "--type", choices=("seeder", "leecher"),
                        required=True, help=_("run a seeder or the leecher"))
    seeder.add_arguments(parser)
    parser.add_argument("--seeders", metavar="ADDR,ADDR",
                        help=_("leecher: seeders to use"))
    cli.add_lang_option(parser)
    parser.add_argument("-o", "--output", default="downloads",
                        help=_("leecher: folder for downloads"))
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
    parser = cli.Parser(prog="p2p_facom.py demo", description=_(
        "Start the three classroom seeders (127.0.0.1-3, sequential, random "
        "and semi-random) and a leecher on the sample song; stop them all "
        "on exit."))
    parser.add_argument("-p", "--port", type=cli.port_number,
                        default=cli.DEFAULT_PORT)
    parser.add_argument("--song", default="facom-sample.mp3")
    parser.add_argument("-d", "--dir", default=cli.MUSIC_DIR)
    parser.add_argument("-o", "--output", default="downloads")
    screen = parser.add_mutually_exclusive_group()
    screen.add_argument("--terminal", action="store_true",
                        help=_("terminal leecher even when a screen exists"))
    screen.add_argument("--window", action="store_true",
                        help=_("the window or nothing: without a screen, "
                               "say so and start no seeder (the launcher)"))
    cli.add_lang_option(parser)
    return parser


def start_seeders(args) -> list:
    specs = [(f"127.0.0.{n + 1}", args.port,
              ["-m", order, "-d", args.dir, "-q", "--rng-seed", str(n + 1),
               *DEMO_LINK, "--lang", i18n.language()])
             for n, order in enumerate(DEMO_ORDERS)]
    try:
        started = cli.start_seeders(specs)
    except cli.SeederDidNotStart as failed:
        raise cli.UsageError(failed.reason or _("a seeder did not start"))
    for _proc, line in started:
        print(line.strip())
    return [proc for proc, _line in started]


def stop_seeders(procs) -> None:
    for out in cli.end_processes(procs):
        if out.strip():
            print(out.strip().splitlines()[-1])  # the seeder's summary


def run_demo(argv) -> int:
    args = demo_parser().parse_args(argv)

    def body():
        import seeder
        if args.window and not _gui().display_available():
            raise cli.UsageError(_(NO_DISPLAY))
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


NO_DISPLAY = N_("no display available for the window; the terminal demo: "
                "python3 p2p_facom.py demo --terminal")
# The lesson's first run is in order: the next ones (random, semi-random,
# "Download again") compare against it.
DEMO_FIRST_ORDER = "sequential"


def demo_leecher(args, seeders: str) -> int:
    """The window, downloading the song by itself with preview on (a
    note says what to try next); without a screen the terminal
    leecher."""
    if not args.terminal and _gui().display_available():
        import gui
        argv = ["--seeders", seeders, "-o", args.output, "--song", args.song,
                "--order", DEMO_FIRST_ORDER, "--autostart"]
        if args.lang:
            argv += ["--lang", args.lang]
        return gui.main(argv)
    print(_("no screen: running the terminal leecher (preview on)"))
    import leecher
    # Sequential, as the window's first run: playback starts at once, the
    # lesson's baseline (each seeder's own order would wait seconds).
    return leecher.main(["get", args.song, "-o", args.output, "--seeders",
                         seeders, "--force", "--preview",
                         "--order", "sequential",
                         "--lang", i18n.language(),
                         "--json", os.path.join(args.output, "stats.json")])


def _gui():
    import gui
    return gui


# ------------------------------------------------------------------ main
def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    cli.setup_language(argv)  # --lang, else LANG (before the help texts)
    if argv and argv[0] == "demo":
        return run_demo(argv[1:])
    if argv and argv[0] == "experiment":
        import experiment
        return experiment.main(argv[1:])
    if argv and argv[0] == "swarm":
        import swarm
        return swarm.main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.type == "seeder":
        import seeder
        return cli.run_main("seeder", lambda: seeder.run(args))
    return cli.run_main("leecher", lambda: run_leecher_window(args))


if __name__ == "__main__":
    sys.exit(main())
