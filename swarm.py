"""P2P FACOM swarm: one seeder and N leechers that share what they hold.

    python3 p2p_facom.py swarm [--peers N] [--rate KBPS] [--seed-for S]
        [--song-seconds S] [--pick POLICY] [--no-share] [--csv FILE]
        [--png FILE]
    python3 p2p_facom.py swarm --simulate [--peers N | --scale 10,100,1000]
        [--policies] ...

Real mode (the default) makes a sample song of ``--song-seconds``
(``sample_song.py``), starts one seeder on 127.0.0.1 at ``--rate`` and N
terminal leechers together, each on its own loopback address
(127.0.0.21, 127.0.0.22 ...), with ``--seed-for`` seconds of serving
after their download; no audio.  ``--simulate`` runs the same swarm on
the simulated network (``simnet.py``) in virtual time: the real engines
(a ``SeederEngine``, one ``PeerEngine`` per leecher), a small in-memory
driver per leecher, playback modelled from the arrival times
(``playback_model.py``); N up to thousands.

Per leecher it reports completion, start-up, stalls, chunks from the
seeder and from peers, chunks served; for the swarm the time to serve
everyone and what the seeder sent, in songs.  ``--scale`` runs the
simulated swarm for each N with and without sharing; ``--policies``
runs the three piece policies on one swarm.  ``--csv`` and ``--png``
(``swarm_plot.py``) write the figures.
"""

from __future__ import annotations

import csv
import math
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass, field, replace

import cli
import piece_picker
import protocol as p
from experiment import _cell  # a measure as shown, in the language
from i18n import N_, _, text as tr

POLICIES = piece_picker.POLICIES  # sequential, rarest, deadline
DEFAULT_PEERS = 8
DEFAULT_RATE_KBPS = 400.0      # the seeder's link: 3x a 128 kbit/s song
DEFAULT_SEED_FOR_S = 15.0
DEFAULT_SONG_S = 20.0
DEFAULT_SONG_KBPS = 128.0      # the simulated song's bit rate
DEFAULT_DELAY_MS = 10.0        # simulated one-way delay between two hosts
DEFAULT_PREBUFFER_S = 2.0      # the player's
POLICY_PEERS = 50              # --policies: the swarm of 50
# --scale simulates the swarm without sharing up to this many leechers:
# beyond it the seeder alone needs N songs' time (the PNG draws that
# line), and its O(sessions) work per datagram makes each point minutes.
NO_SHARE_SIM_MAX = 100
# Loopback addresses of real leechers: 127.0.0.21 .. 127.0.0.80 (the
# seeder is 127.0.0.1; the classroom's seeders 127.0.0.1-3 stay clear).
FIRST_LEECHER_IP = 21
MAX_REAL_PEERS = 60
MAX_SIM_PEERS = 5000
MAX_SCALE_POINTS = 12
MAX_SONG_S = 600.0
MAX_RATE_KBPS = 1_000_000.0

# (key, column title, unit, format) of a swarm's summary, in table order.
SUMMARY = (
    ("peers", N_("leechers"), "", "{:.0f}"),
    ("verified", N_("verified"), "", "{:.0f}"),
    ("serve_all_s", N_("everyone served"), "s", "{:.1f}"),
    ("completion_s", N_("completion"), "s", "{:.1f}"),
    ("startup_s", N_("start-up"), "s", "{:.2f}"),
    ("stalls", N_("stalls"), "", "{:.1f}"),
    ("seeder_songs", N_("seeder sent"), N_("songs"), "{:.2f}"),
    ("peer_share", N_("from peers"), "%", "{:.0f}"),
)
PEER_COLUMNS = ("peer", "joined_s", "completion_s", "startup_s", "stalls",
                "stall_s", "from_seeder", "from_peers", "served",
                "verified", "problem")


# ------------------------------------------------------------- results
@dataclass
class PeerResult:
    """One leecher of a swarm run."""

    peer: str
    joined_s: float = 0.0
    completion_s: float | None = None  # join to last piece verified
    startup_s: float | None = None     # request to first sound (modelled)
    stalls: int | None = None
    stall_s: float | None = None
    from_seeder: int = 0               # chunks kept, from the seeder
    from_peers: int = 0                # ... from other leechers
    served: int = 0                    # chunks it sent to other leechers
    verified: bool = False             # every piece checked, byte-exact
    problem: str = ""


@dataclass
class SwarmRun:
    """One swarm: its conditions, every leecher, the seeder's total."""

    label: str
    peers: int
    share: bool
    pick: str
    song_chunks: int
    rows: list[PeerResult] = field(default_factory=list)
    seeder_sent: int = 0               # chunks, resends included
    wall_s: float = 0.0
    kind: str = "one"                  # "one", "scale" or "policy"
    # The seeder alone sending every leecher the whole song at its rate:
    # the least time to serve everyone without sharing.
    alone_s: float | None = None

    @property
    def verified(self) -> int:
        return sum(row.verified for row in self.rows)

    @property
    def serve_all_s(self) -> float | None:
        """First join to the last leecher's completion (None: someone
        never completed)."""
        if not self.rows or self.verified < len(self.rows):
            return None
        return max(r.joined_s + r.completion_s for r in self.rows) \
            - min(r.joined_s for r in self.rows)

    @property
    def seeder_songs(self) -> float:
        return self.seeder_sent / self.song_chunks if self.song_chunks \
            else 0.0

    @property
    def peer_share(self) -> float | None:
        """Percent of the chunks the leechers kept that came from peers."""
        kept = sum(r.from_seeder + r.from_peers for r in self.rows)
        return 100 * sum(r.from_peers for r in self.rows) / kept \
            if kept else None

    def median(self, key: str) -> float | None:
        values = [getattr(r, key) for r in self.rows
                  if getattr(r, key) is not None]
        return statistics.median(values) if values else None

    def summary(self) -> dict:
        return {"peers": self.peers, "verified": self.verified,
                "serve_all_s": self.serve_all_s,
                "completion_s": self.median("completion_s"),
                "startup_s": self.median("startup_s"),
                "stalls": statistics.mean(
                    [r.stalls for r in self.rows if r.stalls is not None]
                    or [0]),
                "seeder_songs": self.seeder_songs,
                "peer_share": self.peer_share}


def add_playback(row: PeerResult, received, size: int, time_map,
                 prebuffer: float) -> None:
    """The start-up, stalls and stall time the player would have had with
    these arrival times (``playback_model``), into ``row`` (left unknown
    when it never played)."""
    import playback_model
    played = playback_model.simulate(list(received), p.CHUNK_SIZE, size,
                                     time_map, prebuffer)
    if played.startup_s is not None:
        row.startup_s, row.stalls = played.startup_s, played.stalls
        row.stall_s = None if math.isinf(played.stall_s) \
            else played.stall_s


# ------------------------------------------------------------ reporting
def _table(heads: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [heads] + rows)
              for i in range(len(heads))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths)))
                     for row in [heads] + rows)


def format_peers(run: SwarmRun, most: int = 60) -> str:
    """One line per leecher (the first ``most``)."""
    heads = [_("leecher"), _("completion (s)"), _("start-up (s)"),
             _("stalls"), _("from seeder"), _("from peers"), _("served"),
             _("verified")]
    rows = [[r.peer, _cell(r.completion_s, "{:.1f}"),
             _cell(r.startup_s, "{:.2f}"), _cell(r.stalls, "{:.0f}"),
             str(r.from_seeder), str(r.from_peers), str(r.served),
             _("yes") if r.verified else (r.problem or _("NO"))]
            for r in run.rows[:most]]
    text = _table(heads, rows)
    if len(run.rows) > most:
        text += "\n" + tr(N_("... and {n} more (all of them in the CSV)"),
                          n=len(run.rows) - most)
    return text


def format_summary(runs: list[SwarmRun]) -> str:
    """One line per swarm run."""
    heads = [_("swarm")] + [f"{_(title)} ({_(unit)})" if unit else _(title)
                            for key, title, unit, spec in SUMMARY]
    rows = []
    for run in runs:
        summary = run.summary()
        rows.append([run.label] + [_cell(summary[key], spec)
                                   for key, title, unit, spec in SUMMARY])
    return _table(heads, rows)


def write_csv(path: str, runs: list[SwarmRun]) -> str:
    """The summary of each run into ``path`` and every leecher's row
    into ``<path without .csv>-peers.csv``; the second path."""
    stem = path[:-4] if path.lower().endswith(".csv") else path
    peers_path = stem + "-peers.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["swarm", "share", "pick", "song_chunks",
                      "seeder_sent", "wall_s"]
                     + [key for key, *_rest in SUMMARY])
        for run in runs:
            summary = run.summary()
            out.writerow([run.label, int(run.share), run.pick,
                          run.song_chunks, run.seeder_sent,
                          round(run.wall_s, 2)]
                         + [_csv_value(summary[key]) for key, *_r in SUMMARY])
    with open(peers_path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["swarm", *PEER_COLUMNS])
        for run in runs:
            for row in run.rows:
                out.writerow([run.label] + [_csv_value(getattr(row, name))
                                            for name in PEER_COLUMNS])
    return peers_path


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    return round(value, 4) if isinstance(value, float) else value


# ------------------------------------------------------------- options
# The seeder's upload slots (BitTorrent unchokes ~4): without them a
# seeder splits its link among every leecher that asks, nobody completes
# a piece for long, and a big flash crowd has nothing to share.
DEFAULT_SLOTS = 4


def build_parser() -> cli.Parser:
    parser = cli.Parser(
        prog="p2p_facom.py swarm",
        description=_("One seeder and N leechers that share what they "
                      "hold: real processes on loopback (127.0.0.21...), or "
                      "--simulate in virtual time; per-leecher completion, "
                      "start-up and stalls, chunks from the seeder and "
                      "from peers, a table, a CSV and a PNG."))
    parser.add_argument("--peers", type=cli.at_least_one, default=None,
                        metavar="N", help=tr(N_(
                            "leechers (default {n}; real at most {real}, "
                            "simulated at most {sim})"), n=DEFAULT_PEERS,
                            real=MAX_REAL_PEERS, sim=MAX_SIM_PEERS))
    parser.add_argument("--rate", type=cli.positive,
                        default=DEFAULT_RATE_KBPS, metavar="KBPS",
                        help=tr(N_("the seeder's link rate, kbit/s "
                                   "(default {n})"),
                                n=f"{DEFAULT_RATE_KBPS:g}"))
    parser.add_argument("--upload-rate", type=cli.non_negative, default=None,
                        metavar="KBPS",
                        help=_("each leecher's upload rate, kbit/s (0: "
                               "unlimited; default: the seeder's --rate)"))
    parser.add_argument("--slots", type=cli.at_least_one,
                        default=DEFAULT_SLOTS, metavar="N",
                        help=_("the seeder sends to at most N leechers at "
                               "once (seeder.py --slots; default 4: a "
                               "flash crowd then gets whole pieces soon "
                               "and shares them)"))
    parser.add_argument("--seed-for", type=cli.non_negative,
                        default=DEFAULT_SEED_FOR_S, metavar="S",
                        help=tr(N_("seconds each leecher keeps serving "
                                   "after its download (default {n})"),
                                n=f"{DEFAULT_SEED_FOR_S:g}"))
    parser.add_argument("--song-seconds", type=cli.positive,
                        default=DEFAULT_SONG_S, metavar="S",
                        help=tr(N_("length of the sample song (default "
                                   "{n})"), n=f"{DEFAULT_SONG_S:g}"))
    parser.add_argument("--pick", choices=POLICIES, default="rarest",
                        help=_("which piece each leecher fetches first "
                               "(default rarest)"))
    parser.add_argument("--no-share", dest="share", action="store_false",
                        help=_("leechers do not serve: every one takes the "
                               "whole song from the seeder"))
    parser.add_argument("--spread", type=cli.non_negative, default=0.0,
                        metavar="S", help=_("leechers join evenly over S "
                                            "seconds (default 0: all at "
                                            "once)"))
    parser.add_argument("--simulate", action="store_true",
                        help=_("on the simulated network in virtual time "
                               "(N up to thousands)"))
    parser.add_argument("--scale", default=None, metavar="N,N,...",
                        help=_("simulated: completion against N, with and "
                               "without sharing"))
    parser.add_argument("--policies", action="store_true",
                        help=tr(N_("simulated: the three pick policies on "
                                   "one swarm (default {n} leechers)"),
                                n=POLICY_PEERS))
    parser.add_argument("--delay", type=cli.non_negative,
                        default=DEFAULT_DELAY_MS, metavar="MS",
                        help=_("simulated one-way delay between two hosts "
                               "(default 10 ms)"))
    parser.add_argument("--csv", default=None, metavar="FILE",
                        help=_("write the figures as CSV (and every "
                               "leecher's into FILE-peers.csv)"))
    parser.add_argument("--png", default=None, metavar="FILE",
                        help=_("draw the figures into a PNG"))
    parser.add_argument("--timeout", type=cli.positive, default=None,
                        metavar="S", help=_("real mode: give up after S "
                                            "seconds (default: from the "
                                            "song's length)"))
    parser.add_argument("--seed", type=int, default=1, metavar="N",
                        help=_("seed of the simulated network and engines"))
    cli.add_lang_option(parser)
    return parser


def check_args(args) -> list[int]:
    """Bounds the parser cannot check; the --scale list."""
    simulated_only = [name for name, given in (
        ("--scale", args.scale), ("--policies", args.policies),
        ("--spread", args.spread)) if given]
    if simulated_only and not args.simulate:
        raise cli.UsageError(tr(N_("{option} needs --simulate"),
                                option=simulated_only[0]))
    most = MAX_SIM_PEERS if args.simulate else MAX_REAL_PEERS
    if args.peers is not None and args.peers > most:
        raise cli.UsageError(tr(N_("--peers must be between 1 and {most}"),
                                most=most))
    if args.song_seconds > MAX_SONG_S:
        raise cli.UsageError(tr(N_("--song-seconds must be at most {most}"),
                                most=f"{MAX_SONG_S:g}"))
    if max(args.rate, args.upload_rate or 0) > MAX_RATE_KBPS:
        raise cli.UsageError(tr(N_("rates must be at most {most} kbit/s"),
                                most=f"{MAX_RATE_KBPS:g}"))
    for path in (args.csv, args.png):
        check_writable(path)
    return parse_scale(args.scale) if args.scale else []


def parse_scale(text: str) -> list[int]:
    try:
        sizes = [int(n) for n in text.split(",") if n.strip()]
    except ValueError:
        raise cli.UsageError(tr(N_("--scale takes whole numbers separated "
                                   "by commas: {text}"), text=repr(text)))
    if not sizes or len(sizes) > MAX_SCALE_POINTS \
            or not all(1 <= n <= MAX_SIM_PEERS for n in sizes):
        raise cli.UsageError(tr(N_("--scale takes 1 to {points} sizes, "
                                   "each 1-{most}"),
                                points=MAX_SCALE_POINTS, most=MAX_SIM_PEERS))
    return sorted(set(sizes))


def check_writable(path: str | None) -> None:
    """A --csv or --png path whose folder exists and can be written."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(folder) \
            or not os.access(folder, os.W_OK):
        raise cli.UsageError(tr(N_("cannot write {path}"), path=path))


# ------------------------------------------------------------ real mode
SEEDER_IP = "127.0.0.1"
# Real leechers are given this long beyond the seeder sending every one of
# them the whole song alone (the worst case) and their --seed-for.
REAL_SLACK_S = 60.0
POLL_S = 0.2  # how often the runner looks whether the leechers ended


def leecher_ip(n: int) -> str:
    return f"127.0.0.{FIRST_LEECHER_IP + n}"


def real_timeout(args, song_bytes: int, peers: int) -> float:
    if args.timeout:
        return args.timeout
    alone = song_bytes * peers / (args.rate * 125)
    return alone + args.seed_for + REAL_SLACK_S


def make_song(folder: str, seconds: float) -> str:
    """The sample melody, ``seconds`` long, as an MP3 in ``folder``."""
    import subprocess
    import sample_song
    path = os.path.join(folder, f"swarm-{seconds:g}s.mp3")
    try:
        return sample_song.make_mp3(path, seconds, id3_title="P2P FACOM "
                                    "swarm")
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        raise cli.RunError(tr(N_("cannot make the sample song: {reason}"),
                              reason=cli.one_line(exc)))


class RealSwarm:
    """One seeder process and N leecher processes on loopback."""

    def __init__(self, args, folder: str):
        self.args, self.folder = args, folder
        self.peers = args.peers or DEFAULT_PEERS
        self.share_dir = os.path.join(folder, "share")
        os.makedirs(self.share_dir)
        self.song = make_song(self.share_dir, args.song_seconds)
        self.name = os.path.basename(self.song)
        self.port = cli.free_port([SEEDER_IP] + [
            leecher_ip(n) for n in range(self.peers)])
        self.seeder = None
        self.leechers: list = []

    def start_seeder(self) -> None:
        args = ["-d", self.share_dir, "-q", "--rate", f"{self.args.rate:g}",
                "--rng-seed", str(self.args.seed), "--lang", "en"] + (
            ["--slots", str(self.args.slots)] if self.args.slots else [])
        try:
            self.seeder = cli.start_seeders(
                [(SEEDER_IP, self.port, args)])[0][0]
        except cli.SeederDidNotStart as failed:
            raise cli.RunError(tr(N_("the seeder did not start: {reason}"),
                                  reason=failed.reason or _("no answer")))

    def leecher_command(self, n: int) -> list[str]:
        args = self.args
        upload = args.rate if args.upload_rate is None else args.upload_rate
        out = os.path.join(self.folder, f"leecher-{n + 1}")
        return [sys.executable, "-u", os.path.join(cli.PROJECT_DIR,
                                                   "leecher.py"),
                "get", self.name, "--seeders", f"{SEEDER_IP}:{self.port}",
                "--bind", leecher_ip(n), "--seed-for", f"{args.seed_for:g}",
                "--pick", args.pick, "--upload-rate", f"{upload:g}",
                "--json", out + ".json", "-o", out, "--force",
                "--rng-seed", str(args.seed * 1000 + n), "--lang", "en"] \
            + ([] if args.share else ["--no-share"])

    def start_leechers(self) -> None:
        import subprocess
        for n in range(self.peers):
            log = open(os.path.join(self.folder, f"leecher-{n + 1}.log"),
                       "wb")
            self.leechers.append((subprocess.Popen(
                self.leecher_command(n), stdout=log,
                stderr=subprocess.STDOUT), log))

    def wait(self, timeout: float) -> bool:
        """Until every leecher ended or ``timeout``; False on time out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(proc.poll() is not None for proc, _log in self.leechers):
                return True
            time.sleep(POLL_S)
        return False

    def stop(self) -> str:
        """End every process still running; the seeder's summary line."""
        cli.end_processes([proc for proc, _log in self.leechers])
        for _proc, log in self.leechers:
            log.close()
        if self.seeder is None:
            return ""
        out = cli.end_processes([self.seeder])[0].strip()
        return out.splitlines()[-1] if out else ""


SEEDER_SENT = re.compile(r"(\d+) chunks sent")  # in its summary (--lang en)


def load_stats(swarm: RealSwarm, n: int) -> dict | None:
    """Leecher ``n``'s JSON (None: it wrote none that can be read)."""
    import json
    path = os.path.join(swarm.folder, f"leecher-{n + 1}.json")
    try:
        with open(path, encoding="utf-8") as handle:
            stats = json.load(handle)
    except (OSError, ValueError):
        return None
    return stats if isinstance(stats, dict) else None


def served_by_ip(all_stats: list) -> dict[str, int]:
    """Chunks each leecher's address gave the others: what they kept
    from it (their ``per_peer``), as the simulation counts it."""
    served: dict[str, int] = {}
    for stats in all_stats:
        for name, count in ((stats or {}).get("per_peer") or {}).items():
            ip = name.rpartition(":")[0]
            served[ip] = served.get(ip, 0) + int(count)
    return served


def real_row(swarm: RealSwarm, n: int, stats: dict | None, served: dict,
             want: bytes, time_map) -> PeerResult:
    """Leecher ``n``'s row from its JSON and its file."""
    out = os.path.join(swarm.folder, f"leecher-{n + 1}")
    row = PeerResult(leecher_ip(n), served=served.get(leecher_ip(n), 0))
    proc = swarm.leechers[n][0]
    if stats is None:
        row.problem = tr(N_("no statistics (exit code {code})"),
                         code=proc.returncode)
        return row
    kept = stats.get("per_peer") or {}
    row.from_seeder = int(kept.get(f"{SEEDER_IP}:{swarm.port}", 0))
    row.from_peers = int(sum(kept.values())) - row.from_seeder
    row.completion_s = stats.get("elapsed_s")
    received = [math.nan if r.get("received") is None else r["received"]
                for r in stats.get("timeline", [])]
    if received:
        add_playback(row, received, stats["size"], time_map,
                     DEFAULT_PREBUFFER_S)
    path = os.path.join(out, swarm.name)
    row.verified = proc.returncode == 0 and os.path.isfile(path) \
        and cli.sha256_file(path) == want
    if not row.verified:
        row.problem = tr(N_("not byte-exact (exit code {code})"),
                         code=proc.returncode)
    return row


def run_real(args) -> SwarmRun:
    """The real swarm: rows from the leechers' JSON, the seeder's total
    from its summary."""
    import tempfile
    import player
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="p2p-facom-swarm-") as folder:
        swarm = RealSwarm(args, folder)
        size = os.path.getsize(swarm.song)
        label = tr(N_("{n} x {pick} (real sockets)"), n=swarm.peers,
                   pick=args.pick if args.share else _("no sharing"))
        try:
            swarm.start_seeder()
            swarm.start_leechers()
            in_time = swarm.wait(real_timeout(args, size, swarm.peers))
        finally:
            summary = swarm.stop()
        if not in_time:
            print(_("time out: the leechers still running were ended"))
        want = cli.sha256_file(swarm.song)
        time_map = player.scan_file(swarm.song)
        chunks = p.chunk_count(size)
        all_stats = [load_stats(swarm, n) for n in range(swarm.peers)]
        served = served_by_ip(all_stats)
        rows = [real_row(swarm, n, stats, served, want, time_map)
                for n, stats in enumerate(all_stats)]
    sent = SEEDER_SENT.search(summary)
    run = SwarmRun(label, swarm.peers, args.share, args.pick, chunks, rows,
                   int(sent.group(1)) if sent else
                   sum(r.from_seeder for r in rows))
    run.wall_s = time.monotonic() - started
    return run


# ---------------------------------------------------------------- main
def conditions_line(args) -> str:
    upload = args.rate if args.upload_rate is None else args.upload_rate
    return tr(N_("seeder {rate} kbit/s, leechers upload {upload}, song "
                 "{song} s, pick {pick}, seed-for {seed_for} s"),
              rate=f"{args.rate:g}",
              upload=f"{upload:g} kbit/s" if upload else _("unlimited"),
              song=f"{args.song_seconds:g}", pick=args.pick,
              seed_for=f"{args.seed_for:g}") \
        + (tr(N_(", seeder slots {n}"), n=args.slots) if args.slots else "") \
        + (_(", simulated network") if args.simulate else "")


def collect_runs(args, scale: list[int]) -> list[SwarmRun]:
    """The runs the options ask for, each reported as it ends."""
    if not args.simulate:
        return [_report(run_real(args))]
    import swarm_sim
    spec = swarm_sim.spec_from(args)
    runs = []
    for n in scale:
        for share in (True, False)[:2 if n <= NO_SHARE_SIM_MAX else 1]:
            runs.append(_report(swarm_sim.simulate(replace(
                spec, peers=n, share=share)), peers=False, kind="scale"))
    if scale and max(scale) > NO_SHARE_SIM_MAX:
        print(tr(N_("(without sharing simulated up to {n} leechers: "
                    "beyond, the seeder alone needs N songs' time)"),
                 n=NO_SHARE_SIM_MAX))
    if args.policies:
        for pick in POLICIES:
            runs.append(_report(swarm_sim.simulate(replace(
                spec, peers=args.peers or POLICY_PEERS, pick=pick,
                share=True)), peers=False, kind="policy"))
    if not runs:
        runs.append(_report(swarm_sim.simulate(spec)))
    return runs


def _report(run: SwarmRun, peers: bool = True,
            kind: str = "one") -> SwarmRun:
    run.kind = kind
    if peers:
        print(format_peers(run))
    print(tr(N_("{label}: {verified}/{n} verified, everyone served in "
                "{serve} s, the seeder sent {songs} songs ({wall} s "
                "wall)"), label=run.label, verified=run.verified,
             n=run.peers, serve=_cell(run.serve_all_s, "{:.1f}"),
             songs=_cell(run.seeder_songs, "{:.2f}"),
             wall=_cell(run.wall_s, "{:.1f}")), flush=True)
    return run


def run(args) -> int:
    scale = check_args(args)
    print(tr(N_("swarm: {conditions}"), conditions=conditions_line(args)),
          flush=True)
    runs = collect_runs(args, scale)
    print()
    print(format_summary(runs))
    try:
        if args.csv:
            peers_path = write_csv(args.csv, runs)
            print(tr(N_("wrote {csv} and {peers}"), csv=args.csv,
                     peers=peers_path))
        if args.png:
            import swarm_plot
            swarm_plot.draw(args.png, runs, conditions_line(args))
            print(tr(N_("wrote {png}"), png=args.png))
    except OSError as exc:
        raise cli.RunError(tr(N_("cannot write the figures: {reason}"),
                              reason=exc.strerror or exc))
    complete = all(run.verified == run.peers for run in runs
                   if run.share or not args.scale)
    return cli.EXIT_OK if complete else cli.EXIT_FAILED


def main(argv=None) -> int:
    cli.setup_language(argv)
    args = build_parser().parse_args(argv)
    return cli.run_main("swarm", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
