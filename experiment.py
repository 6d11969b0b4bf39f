"""P2P FACOM experiment: compare the sending orders while playing.

    python3 p2p_facom.py experiment [--runs N] [--loss P] [--rate KBPS]
        [--delay MS] [--seeders K] [--song NAME] [-o DIR] [--simulate]

Starts its own K seeders on 127.0.0.1 .. 127.0.0.K (one free port), then
downloads the same song with each sending order (sequential, random,
semi-random) N times under the same emulated link (rate, loss, delay) and
the same seeds, with preview on: playback starts while the song downloads,
on the silent null sink, in real time.  For each order it prints start-up
delay, stalls, stall time, continuity index, completion time and chunks
retransmitted (median and min-max over the runs), writes them as CSV and
draws a PNG comparing the orders, both into -o DIR.

The seeders are started again for every download, with the same seeds, so
that run r of every order meets the same emulated losses.

``--simulate`` runs the same comparison on the simulated network
(``simnet.py``) in virtual time: the real engines (``seed_engine.py``,
``download_engine.py``) with the same emulated links, no processes, no
sockets, no sound; playback is modelled from the arrival times
(``playback_model.py``, the player's prebuffer rules).  3 orders x 10 runs
take seconds.

What to expect with the defaults (3 seeders that together carry 1.2x the
song's bit rate, 5 % loss): sequential starts at once and never stalls;
semi-random starts as fast, then stalls once where its shuffled half
begins; random waits almost to the end of the download before the first
seconds of the song are complete, so it starts late (and, having nearly
everything by then, rarely stalls afterwards: the player only starts on a
complete prefix).
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass

import cli
import i18n
import protocol as p
from i18n import N_, _, text as tr

ORDERS = ("sequential", "random", "semi-random")
DEFAULT_RUNS = 3
DEFAULT_LOSS = 0.05
DEFAULT_DELAY_MS = 20.0
DEFAULT_SEEDERS = 3
# Default link rate of each seeder, as a multiple of the song's bit rate
# divided among the seeders: together they carry DEFAULT_RATE_FACTOR x the
# bit rate.  Just above 1x, a sequential download stays ahead of playback
# while a random one delivers the start of the song last.
DEFAULT_RATE_FACTOR = 1.2
MIN_RATE_KBPS = 8.0
MAX_SEEDERS = 16
SONG = os.path.join(cli.MUSIC_DIR, "facom-sample.mp3")
PLAY_SLACK_S = 60.0  # playback may take this much longer than the song

# (key, column title, unit, format) of each measure, in table order.
MEASURES = (
    ("startup_s", N_("start-up"), "s", "{:.2f}"),
    ("stalls", N_("stalls"), "", "{:.0f}"),
    ("stall_s", N_("stall time"), "s", "{:.2f}"),
    ("continuity", N_("continuity"), "%", "{:.1f}"),
    ("completion_s", N_("completion"), "s", "{:.2f}"),
    ("retransmitted", N_("retransmitted"), N_("chunks"), "{:.0f}"),
)


# ---------------------------------------------------------------- options
def build_parser() -> cli.Parser:
    parser = cli.Parser(
        prog="p2p_facom.py experiment",
        description=_("Compare the sending orders (sequential, random, "
                      "semi-random): K seeders on 127.0.0.1..K, N downloads "
                      "per order with preview on, a table, a CSV and a "
                      "PNG."))
    parser.add_argument("--runs", type=cli.at_least_one, default=DEFAULT_RUNS,
                        metavar="N", help=tr(N_("downloads per order "
                                                "(default {n})"),
                                             n=DEFAULT_RUNS))
    parser.add_argument("--loss", type=cli.probability, default=DEFAULT_LOSS,
                        metavar="P", help=_("emulated loss at each seeder "
                                            "(0.05 or 5%%; default 5%%)"))
    parser.add_argument("--rate", type=cli.positive, default=None,
                        metavar="KBPS",
                        help=tr(N_("emulated link rate of each seeder, "
                                   "kbit/s (default: {factor}x the song's "
                                   "bit rate, divided among the seeders)"),
                                factor=DEFAULT_RATE_FACTOR))
    parser.add_argument("--delay", type=cli.non_negative,
                        default=DEFAULT_DELAY_MS, metavar="MS",
                        help=tr(N_("emulated one-way delay (default {ms} "
                                   "ms)"), ms=f"{DEFAULT_DELAY_MS:.0f}"))
    parser.add_argument("--seeders", type=cli.at_least_one,
                        default=DEFAULT_SEEDERS, metavar="K",
                        help=tr(N_("seeders, 1-{most} (default {n})"),
                                most=MAX_SEEDERS, n=DEFAULT_SEEDERS))
    parser.add_argument("--song", default=None, metavar="NAME",
                        help=_("an .mp3 file, or the name of one in music/ "
                               "(default: the sample song)"))
    parser.add_argument("-o", "--output", default="experiment-results",
                        metavar="DIR",
                        help=_("folder for the CSV and the PNG (default "
                               "experiment-results/)"))
    parser.add_argument("--prebuffer", type=cli.non_negative, default=2.0,
                        metavar="S", help=_("seconds of audio before playing "
                                            "(default 2, as the leecher)"))
    parser.add_argument("--seed", type=int, default=1, metavar="N",
                        help=_("seed of the emulated losses and the orders"))
    parser.add_argument("--port", type=cli.port_number, default=None,
                        help=_("UDP port of the seeders (default: a free "
                               "one)"))
    parser.add_argument("--orders", default=",".join(ORDERS),
                        help=_("sending orders to compare, comma-separated "
                               "(default all three)"))
    parser.add_argument("--pcap", default=None, metavar="FILE",
                        help=_("write every run's leecher datagrams into "
                               "one pcap file (real runs only; each "
                               "download is its own pf.stream)"))
    parser.add_argument("--simulate", action="store_true",
                        help=_("on the simulated network in virtual time: "
                               "the same engines, no processes or sockets, "
                               "playback modelled (seconds for 3 x 10 "
                               "runs)"))
    cli.add_lang_option(parser)
    return parser


def find_song(name: str | None) -> str:
    """``--song``: a path to an .mp3 file, or a name in music/."""
    if name is None:
        if not os.path.exists(SONG):
            from sample_song import ensure_sample
            ensure_sample(cli.MUSIC_DIR)
        return SONG
    candidates = [name, os.path.join(cli.MUSIC_DIR, name),
                  os.path.join(cli.MUSIC_DIR, name + ".mp3")]
    for path in candidates:
        if os.path.isfile(path):
            if not path.lower().endswith(".mp3"):
                raise cli.UsageError(tr(N_("not an .mp3 file: {name}"),
                                        name=name))
            return os.path.abspath(path)
    raise cli.UsageError(tr(N_("song not found: {name} (give an .mp3 file or "
                               "a name in {folder})"), name=name,
                            folder=cli.MUSIC_DIR))


def check_args(args) -> list[str]:
    if args.seeders > MAX_SEEDERS:
        raise cli.UsageError(tr(N_("--seeders must be between 1 and "
                                   "{most}"), most=MAX_SEEDERS))
    orders = [o.strip() for o in args.orders.split(",") if o.strip()]
    unknown = [o for o in orders if o not in p.ORDER_NAMES]
    if unknown or not orders:
        raise cli.UsageError(tr(N_("unknown sending order {order} (choose "
                                   "from {orders})"), order=repr(unknown[0]),
                                orders=", ".join(ORDERS)) if unknown
                             else _("no sending order given"))
    if args.pcap and args.simulate:
        raise cli.UsageError(_("--pcap is not available with --simulate: "
                               "the simulated network sends no datagrams"))
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise cli.UsageError(tr(N_("output is not a folder: {path}"),
                                path=args.output))
    try:
        os.makedirs(args.output, exist_ok=True)
    except OSError as exc:
        raise cli.UsageError(tr(N_("cannot make the output folder {path}: "
                                   "{reason}"), path=args.output,
                                reason=exc.strerror or exc))
    if not os.access(args.output, os.W_OK):
        raise cli.UsageError(tr(N_("output folder is not writable: {path}"),
                                path=args.output))
    return list(dict.fromkeys(orders))


# ------------------------------------------------------------------ song
class SongInfo:
    def __init__(self, path: str):
        import player
        self.path = path
        self.name = os.path.basename(path)
        self.size = os.path.getsize(path)
        self.frames = player.scan_file(path)
        self.duration = self.frames.seconds
        if self.duration <= 0:
            raise cli.UsageError(tr(N_("no MP3 audio found in {path}"),
                                    path=path))
        self.kbps = self.size * 8 / self.duration / 1000

    def media_time(self, chunk: int) -> float:
        """Audio time at the start of chunk ``chunk``."""
        return self.frames.time_at(chunk * p.CHUNK_SIZE)


# --------------------------------------------------------------- seeders
class Seeders:
    """K seeder processes on 127.0.0.1..K, started for one download."""

    def __init__(self, share: str, count: int, port: int, link: list[str],
                 seed: int):
        specs = [(f"127.0.0.{k + 1}", port,
                  ["-d", share, "-q", "--rng-seed", str(seed + k), *link,
                   "--lang", i18n.language()]) for k in range(count)]
        self.addresses = [(ip, port) for ip, port, _args in specs]
        try:
            started = cli.start_seeders(specs)
        except cli.SeederDidNotStart as failed:
            raise cli.RunError(tr(N_("a seeder did not start: {reason}"),
                                  reason=failed.reason or _("no answer")))
        self.procs = [proc for proc, _line in started]

    def stop(self) -> None:
        cli.end_processes(self.procs)


# ----------------------------------------------------------- one download
def download_once(song: SongInfo, order: str, addresses, out_dir: str,
                  prebuffer: float, seed: int, writer=None) -> dict:
    """One download with preview on the null sink; its statistics plus
    the received and played times of every chunk.  ``writer`` (a
    ``pcap.PcapWriter`` shared by every run) gets its datagrams."""
    import leecher
    import player
    endpoint = leecher.Endpoint(seed=seed)
    if writer is not None:
        import pcap
        endpoint.capture = pcap.Capture(writer, endpoint.sock.getsockname())
    try:
        peers = leecher.ping(endpoint, addresses)
        alive = [peer for peer in peers.values() if peer.alive]
        if not alive:
            raise cli.RunError(_("no seeder answered"))
        songs = leecher.search(endpoint, alive, song.name)
        found = leecher.pick_song(songs, song.name)
        options = leecher.Options(order=order, seed=seed, force=True)
        download = leecher.Download(endpoint, found, peers, out_dir, options)
        audio = player.Player(player.NullSink(), prebuffer,
                              on_played=download.record_played)
        download.attach_player(audio)
        audio.start()
        try:
            download.run()
            if not audio.wait(timeout=song.duration + PLAY_SLACK_S):
                raise cli.RunError(_("playback did not finish in time"))
        finally:
            audio.stop()
        if audio.error:
            raise cli.RunError(tr(N_("playback failed: {reason}"),
                                  reason=audio.error))
    finally:
        endpoint.capture = None  # the shared writer outlives this socket
        endpoint.close()
    stats = download.stats(timeline=False)
    return {
        "startup_s": stats.get("startup_s"),
        "stalls": stats.get("stalls"),
        "stall_s": stats.get("stall_s"),
        "continuity": None if stats.get("continuity") is None
        else 100 * stats["continuity"],
        "completion_s": stats["elapsed_s"],
        "retransmitted": stats["chunks_retransmitted"],
        "received": list(download.times.received),
        "played": list(download.times.played),
    }


# ------------------------------------------------- simulated downloads
# Virtual seconds a simulated download may take: generous (a slow link
# and losses), but a run that hangs still ends.
SIM_LIMIT_S = 600.0
SIM_LIMIT_PER_SONG_S = 20.0  # ... plus this many times the song's length


@dataclass(frozen=True)
class SimConditions:
    """The emulated links of a simulated download: each seeder's, as
    ``seeder.py --rate --loss --delay`` would set them."""

    seeders: int
    loss: float = 0.0
    delay_ms: float = 0.0
    rate_kbps: float = 0.0     # each seeder's; 0: unlimited
    prebuffer: float = 2.0
    seeder_orders: tuple = ()  # each seeder's own order (-m), by name


def simulate_download(song: SongInfo, data: bytes, order: str | None,
                      seed: int, conditions: SimConditions) -> dict:
    """One download of ``song`` (its bytes ``data``) on the simulated
    network in virtual time: the real engines, each seeder on the link
    ``conditions`` gives, the loopback between them ideal, and playback
    modelled from the arrival times with the player's rules
    (``playback_model``).  ``order`` None: each seeder's own
    (``conditions.seeder_orders``, sequential when not given).  The
    same seed gives the same run."""
    import netem
    import playback_model
    import simnet
    from download_engine import Options
    link = netem.LinkSpec(loss=conditions.loss,
                          delay_s=conditions.delay_ms / 1000,
                          rate_Bps=conditions.rate_kbps * 1000 / 8)
    net = simnet.SimNet(seed=seed, keep_trace=False)
    source = simnet.BytesSource()
    info = source.add(song.name, data, round(song.duration * 1000))
    seeders = simnet.add_seeders(net, source, conditions.seeders, link,
                                 seed * MAX_SEEDERS)
    for address, name in zip(seeders, conditions.seeder_orders):
        if name in p.ORDER_NAMES:  # its -m: what a REQUEST in DEFAULT gets
            net.hosts[address].engine.order = p.ORDER_NAMES[name]
    engine = simnet.download(
        net, info, seeders, Options(order=order, seed=seed),
        until=SIM_LIMIT_S + SIM_LIMIT_PER_SONG_S * song.duration)
    if not engine.complete:
        raise cli.RunError(tr(N_("the simulated download ({order}, seed "
                                 "{seed}) did not finish"),
                              order=i18n.order_name(order), seed=seed))
    received = list(engine.timeline.received)
    played = playback_model.simulate(received, info.chunk_size, info.size,
                                     song.frames, conditions.prebuffer)
    stats = engine.stats(net.now)
    return {
        "startup_s": played.startup_s,
        "stalls": played.stalls,
        "stall_s": played.stall_s,
        "continuity": None if played.continuity is None
        else 100 * played.continuity,
        "completion_s": stats["elapsed_s"],
        "retransmitted": stats["chunks_retransmitted"],
        "received": received,
        "played": played.played,
        "stats": stats,
    }


class SimulatedDownloads:
    """``download(order, seed)`` on the simulated network
    (``simulate_download``), each seeder with the emulated link ``seeder.py
    --rate --loss --delay`` gives it (same seeds as the real run)."""

    def __init__(self, song: SongInfo, args, rate: float):
        self.song = song
        self.conditions = SimConditions(args.seeders, args.loss, args.delay,
                                        rate, args.prebuffer)
        with open(song.path, "rb") as handle:
            self.data = handle.read()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def __call__(self, order: str, seed: int) -> dict:
        return simulate_download(self.song, self.data, order, seed,
                                 self.conditions)


# ------------------------------------------------------------- summaries
def summarize(runs: list[dict]) -> dict:
    """{measure: (median, min, max)} over the runs (None when unknown)."""
    summary = {}
    for key, *_spec in MEASURES:
        values = [r[key] for r in runs if r.get(key) is not None]
        summary[key] = ((statistics.median(values), min(values),
                         max(values)) if values else (None, None, None))
    return summary


def _cell(value, spec: str) -> str:
    """A measure as shown (1.5; 1,5 in Portuguese); "-" when unknown."""
    if value is None:
        return "-"
    shown = spec.format(value)
    return shown.replace(".", ",") if i18n.language() == "pt" else shown


def format_table(summaries: dict, runs: int) -> str:
    """One row per order; each cell 'median (min-max)'."""
    heads = [_("order")] + [f"{_(title)} ({_(unit)})" if unit else _(title)
                            for key, title, unit, spec in MEASURES]
    rows = []
    for order, summary in summaries.items():
        row = [i18n.order_name(order)]
        for key, title, unit, spec in MEASURES:
            med, low, high = summary[key]
            cell = _cell(med, spec)
            if runs > 1 and med is not None:
                cell += f" ({_cell(low, spec)}-{_cell(high, spec)})"
            row.append(cell)
        rows.append(row)
    widths = [max(len(r[i]) for r in [heads] + rows)
              for i in range(len(heads))]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                       for i, (h, w) in enumerate(zip(heads, widths)))]
    for row in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
    note = tr(N_("median (min-max) over {runs} runs"), runs=runs) \
        if runs > 1 else _("one run per order")
    return "\n".join(lines) + "\n" + note


def write_csv(path: str, summaries: dict, runs: int) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        head = ["order", "runs"]
        for key, *_spec in MEASURES:
            head += [f"{key}_median", f"{key}_min", f"{key}_max"]
        out.writerow(head)
        for order, summary in summaries.items():
            row = [order, runs]
            for key, *_spec in MEASURES:
                row += ["" if v is None else round(v, 4)
                        for v in summary[key]]
            out.writerow(row)


def write_runs_csv(path: str, results: dict) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["order", "run"] + [key for key, *_ in MEASURES])
        for order, runs in results.items():
            for n, run in enumerate(runs, 1):
                out.writerow([order, n] + [
                    "" if run[key] is None else round(run[key], 4)
                    for key, *_ in MEASURES])


# ------------------------------------------------------------------ plot
COLORS = {"sequential": "#1b9e77", "random": "#d95f02",
          "semi-random": "#7570b3"}


def ready_curve(song: SongInfo, received: list[float]):
    """(time, seconds of audio ready in order), a step at each arrival
    that completed more of the song's start."""
    import playback_model
    steps = playback_model.ready_steps(list(received), p.CHUNK_SIZE,
                                       song.frames)
    return [0.0] + [t for t, _ in steps], [0.0] + [r for _, r in steps]


def played_curve(song: SongInfo, played: list[float]):
    points = sorted((t, song.media_time(i + 1) if i + 1 < len(played)
                     else song.duration)
                    for i, t in enumerate(played) if not math.isnan(t))
    return [t for t, _ in points], [m for _, m in points]


def draw_png(path: str, song: SongInfo, results: dict, summaries: dict,
             conditions: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 9), dpi=100)
    FigureCanvasAgg(fig)
    fig.suptitle(tr(N_("Sending orders compared: {name}"), name=song.name)
                 + "\n" + conditions, fontsize=18)
    grid = fig.add_gridspec(2, 4, height_ratios=(1, 1.3), hspace=0.55,
                            wspace=0.3, left=0.06, right=0.98, top=0.85,
                            bottom=0.17)
    orders = list(summaries)
    bars = (("startup_s", _("Start-up (s)")),
            ("stall_s", _("Stall time (s)")),
            ("continuity", _("Continuity (%)")),
            ("completion_s", _("Download time (s)")))
    labels = [i18n.order_name(o).replace("-", "-\n") for o in orders]
    for col, (key, title) in enumerate(bars):
        ax = fig.add_subplot(grid[0, col])
        meds, lows, highs = [], [], []
        for order in orders:
            med, low, high = summaries[order][key]
            med = med or 0.0
            meds.append(med)
            lows.append(med - (med if low is None else low))
            highs.append((med if high is None else high) - med)
        ax.bar(range(len(orders)), meds, yerr=[lows, highs], capsize=6,
               color=[COLORS.get(o, "grey") for o in orders])
        ax.set_xticks(range(len(orders)))
        ax.set_xticklabels(labels, fontsize=13)
        ax.set_title(title, fontsize=16, pad=10)
        ax.tick_params(axis="y", labelsize=12)
        top = max(m + h for m, h in zip(meds, highs)) or 1.0
        ax.set_ylim(0, 120 if key == "continuity" else
                    top * (1.45 if key == "stall_s" else 1.25))
        for x, (order, med) in enumerate(zip(orders, meds)):
            text = i18n.decimal(med, 0 if key == "continuity" else 1)
            if key == "stall_s":
                stalls = summaries[order]["stalls"][0]
                if stalls is not None:
                    text += "\n" + (tr(N_("({n} stall)"), n=f"{stalls:.0f}")
                                    if round(stalls) == 1 else
                                    tr(N_("({n} stalls)"),
                                       n=f"{stalls:.0f}"))
            ax.annotate(text, (x, med + highs[x]), ha="center",
                        va="bottom", fontsize=12, xytext=(0, 2),
                        textcoords="offset points")
    ax = fig.add_subplot(grid[1, :])
    for n, order in enumerate(orders):
        first = results[order][0]
        color = COLORS.get(order, "grey")
        width = 5.0 - 1.3 * n  # later orders thinner: equal curves show
        t, m = ready_curve(song, first["received"])
        ax.step(t, m, where="post", color=color, linewidth=width,
                label=tr(N_("{order}: audio downloaded in order"),
                         order=i18n.order_name(order)))
        t, m = played_curve(song, first["played"])
        ax.plot(t, m, color=color, linewidth=width - 0.5, linestyle="--",
                label=tr(N_("{order}: audio played"),
                         order=i18n.order_name(order)))
    ax.set_xlabel(_("seconds since the request"), fontsize=15)
    ax.set_ylabel(_("song position (s)"), fontsize=15)
    ax.set_title(_("Run 1: playback (dashed) can only follow the audio "
                   "downloaded in order (solid); flat dashed = waiting"),
                 fontsize=15)
    ax.tick_params(labelsize=12)
    ax.set_ylim(0, song.duration * 1.05)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=12, ncol=3, loc="upper center",
              bbox_to_anchor=(0.5, -0.16), frameon=False)
    fig.savefig(path)


# ------------------------------------------------------------------ main
def run(args) -> int:
    orders = check_args(args)
    song = SongInfo(find_song(args.song))
    args.pcap_writer = open_pcap(args.pcap)  # before any seeder starts
    rate = args.rate or max(MIN_RATE_KBPS, round(
        DEFAULT_RATE_FACTOR * song.kbps / args.seeders, 1))
    conditions = tr(
        N_("{seeders} seeder(s) x {rate} kbit/s (song {kbps} kbit/s, "
           "{duration} s), loss {loss}, delay {delay} ms, prebuffer "
           "{prebuffer} s, {runs} run(s), seed {seed}"),
        seeders=args.seeders, rate=_general(rate),
        kbps=i18n.decimal(song.kbps, 0),
        duration=i18n.decimal(song.duration, 1),
        loss=f"{args.loss:.0%}", delay=_general(args.delay),
        prebuffer=_general(args.prebuffer), runs=args.runs, seed=args.seed) \
        + (_(", simulated network") if args.simulate else "")
    print(tr(N_("experiment: {conditions}"), conditions=conditions),
          flush=True)
    downloads = SimulatedDownloads if args.simulate else RealDownloads
    results: dict[str, list[dict]] = {order: [] for order in orders}
    try:
        with downloads(song, args, rate) as download:
            for run_n in range(args.runs):
                seed = args.seed * 1000 + run_n
                for order in orders:
                    result = download(order, seed)
                    results[order].append(result)
                    print(f"  {i18n.order_name(order):<11} " + tr(
                        N_("run {n}/{runs}: start-up {startup} s, {stalls} "
                           "stall(s) ({stall} s), continuity {continuity} %, "
                           "done in {done} s"), n=run_n + 1, runs=args.runs,
                        startup=_cell(result["startup_s"], "{:.2f}"),
                        stalls=result["stalls"],
                        stall=_cell(result["stall_s"], "{:.2f}"),
                        continuity=_cell(result["continuity"], "{:.1f}"),
                        done=_cell(result["completion_s"], "{:.2f}")),
                        flush=True)
    finally:
        if args.pcap_writer is not None:
            args.pcap_writer.close()
    summaries = {order: summarize(results[order]) for order in orders}
    print()
    print(format_table(summaries, args.runs))
    csv_path = os.path.join(args.output, "experiment.csv")
    runs_path = os.path.join(args.output, "experiment-runs.csv")
    png_path = os.path.join(args.output, "experiment.png")
    try:
        write_csv(csv_path, summaries, args.runs)
        write_runs_csv(runs_path, results)
        draw_png(png_path, song, results, summaries, conditions)
    except OSError as exc:
        raise cli.RunError(tr(N_("cannot write into {path}: {reason}"),
                              path=args.output, reason=exc.strerror or exc))
    print("\n" + tr(N_("wrote {csv}, {runs} and {png}"), csv=csv_path,
                    runs=runs_path, png=png_path))
    if args.pcap_writer is not None:
        print(args.pcap_writer.summary())
    return cli.EXIT_OK


class RealDownloads:
    """``download(order, seed)`` with real seeder processes on loopback,
    started again for every download, and the real player."""

    def __init__(self, song: SongInfo, args, rate: float):
        self.song, self.args = song, args
        self.port = args.port or cli.free_port(
            [f"127.0.0.{k + 1}" for k in range(args.seeders)])
        self.link = ["--rate", str(rate), "--loss", str(args.loss),
                     "--delay", str(args.delay)]
        self._tmp = tempfile.TemporaryDirectory(
            prefix="p2p-facom-experiment-")
        self.share = os.path.join(self._tmp.name, "share")

    def __enter__(self):
        os.makedirs(self.share)
        shutil.copy(self.song.path, os.path.join(self.share, self.song.name))
        return self

    def __exit__(self, *exc):
        self._tmp.cleanup()

    def __call__(self, order: str, seed: int) -> dict:
        out_dir = tempfile.mkdtemp(prefix=f"{order}-", dir=self._tmp.name)
        seeders = Seeders(self.share, self.args.seeders, self.port,
                          self.link, seed * MAX_SEEDERS)
        try:
            return download_once(self.song, order, seeders.addresses,
                                 out_dir, self.args.prebuffer, seed,
                                 self.args.pcap_writer)
        finally:
            seeders.stop()
            shutil.rmtree(out_dir, ignore_errors=True)


def open_pcap(path: str | None):
    """The one ``pcap.PcapWriter`` of every run (None without --pcap); a
    path that cannot be written is a usage error, said in one line."""
    if not path:
        return None
    import pcap
    try:
        return pcap.PcapWriter(path)
    except pcap.CaptureError as exc:
        raise cli.UsageError(str(exc)) from None


def _general(value: float) -> str:
    """A number as short as it goes (``{:g}``), in the language in use."""
    shown = f"{value:g}"
    return shown.replace(".", ",") if i18n.language() == "pt" else shown


def main(argv=None) -> int:
    cli.setup_language(argv)  # --lang, else LANG (before the help texts)
    args = build_parser().parse_args(argv)
    return cli.run_main("experiment", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
