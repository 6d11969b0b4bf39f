"""What the window decides without Tk: which buttons work, the runs of a
session and how they compare, file names, live counters.

Everything here is a pure function or a plain object: tested without a
display (tests/test_gui_state.py).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import time
from dataclasses import dataclass, field

import events as ev
import i18n
from i18n import N_

PLAYER_ACTIVE = ("waiting", "playing", "stalled", "paused")
NAME_MAX = 60  # characters of a song's name in a default file name


# ------------------------------------------------------------- buttons
@dataclass(frozen=True)
class WindowState:
    """What the buttons depend on."""

    downloading: bool = False
    player_state: str | None = None  # player.Player.state, None: no player
    song_selected: bool = False
    song_here: bool = False       # the selected song is downloaded, verified
    have_file: bool = False       # a verified file to play
    plot_points: int = 0          # points on the live plot
    have_stats: bool = False      # statistics of the last download
    have_capture: bool = False    # the pcap of the last download
    runs: int = 0                 # runs of this session
    runs_selected: int = 0
    real_runs: int = 0            # runs that were real downloads
    simulating: bool = False      # the worker makes a simulated run


def buttons(state: WindowState) -> dict[str, bool]:
    """Which buttons are enabled in ``state``."""
    busy = state.downloading
    player = state.player_state
    return {
        "refresh": not busy,
        "search": not busy,
        "download": not busy and state.song_selected,
        "download_again": not busy and state.song_here,
        "stop_download": busy,
        "play": player == "paused" or (
            state.have_file and not busy and player not in PLAYER_ACTIVE),
        "pause": player in ("waiting", "playing", "stalled"),
        "stop_play": player in PLAYER_ACTIVE,
        "save_png": state.plot_points > 0,
        "save_json": state.have_stats,
        "save_csv": state.have_stats,
        "save_pcap": state.have_capture,
        "compare": state.runs > 0,
        "export_runs": state.runs > 0,
        "simulate": not busy and not state.simulating and
        state.real_runs > 0,
    }


# ---------------------------------------------------------------- runs
@dataclass
class Run:
    """One download of this session, with what it showed: its final
    statistics and, per chunk, what its events told (sent, received,
    played, retransmitted, NACKed) — the window never reads the engine."""

    number: int
    song: str
    order: str | None          # None: each seeder's own
    seeder_orders: tuple       # (address, order) of the seeders used
    emulation: str             # the leecher's own --loss, "" when none
    started: float             # wall clock (time.time())
    chunks: int = 0
    stats: dict = field(default_factory=dict)  # the download's, final
    sent: list = field(default_factory=list)      # per chunk, s or None
    received: list = field(default_factory=list)
    played: list = field(default_factory=list)
    retransmitted: bytearray = field(default_factory=bytearray)
    nacked: bytearray = field(default_factory=bytearray)  # NACKs, <= 255
    simulated: bool = False    # on the simulated network (simulated_run)
    path: str | None = None    # the verified file a real run made

    def __post_init__(self):
        if not self.received:
            self.sent = [None] * self.chunks
            self.received = [None] * self.chunks
            self.played = [None] * self.chunks
            self.retransmitted = bytearray(self.chunks)
            self.nacked = bytearray(self.chunks)

    @property
    def orders(self) -> tuple:
        """The orders chunks were sent in: one, or each seeder's."""
        if self.order is not None:
            return (self.order,)
        return tuple(dict.fromkeys(o for _, o in self.seeder_orders)) or \
            (None,)

    def order_text(self) -> str:
        """The order(s), and the mark of a simulated run: what tells runs
        apart in the table, the legend and the titles."""
        orders = " + ".join(i18n.order_name(o) for o in self.orders)
        return i18n.text(N_("{order} (simulated)"), order=orders) \
            if self.simulated else orders

    def label(self) -> str:
        """'#2 song.mp3 · random · 10:42:07'"""
        return f"#{self.number} {self.song} · {self.order_text()} · " \
            f"{time.strftime('%H:%M:%S', time.localtime(self.started))}"

    def take(self, event) -> None:
        """Note what ``event`` tells of a chunk (others: nothing)."""
        if isinstance(event, ev.ChunkReceived) and \
                0 <= event.index < self.chunks:
            self.sent[event.index] = event.sent_s
            self.received[event.index] = event.received_s
            self.retransmitted[event.index] = event.retransmission
        elif isinstance(event, ev.NackSent):
            for index in event.chunks:
                if 0 <= index < self.chunks:
                    self.nacked[index] = min(255, self.nacked[index] + 1)

    def take_played(self, last: int, at_s: float) -> None:
        """Every chunk up to ``last`` has played by ``at_s``."""
        for index in range(min(last, self.chunks - 1), -1, -1):
            if self.played[index] is not None:
                break  # played already, and so is all before it
            self.played[index] = at_s

    def finish(self, stats: dict) -> None:
        """Keep the download's final statistics."""
        self.stats = {k: v for k, v in stats.items() if k != "timeline"}
        self.stats["nacked_chunks"] = sum(1 for n in self.nacked if n)

    def seeders_used(self) -> int:
        return max(1, len(self.seeder_orders))

    def timeline(self) -> list[dict]:
        """Per chunk, as the leecher's JSON has it."""
        def rounded(value):
            return None if value is None else round(value, 4)
        return [{"chunk": i, "sent": rounded(self.sent[i]),
                 "received": rounded(self.received[i]),
                 "played": rounded(self.played[i]),
                 "retransmitted": bool(self.retransmitted[i]),
                 "nacked": self.nacked[i]} for i in range(self.chunks)]


RUN_COLUMNS = (  # id, heading, width
    ("run", N_("Run"), 36),
    ("order", N_("Order"), 110),
    ("startup", N_("Start-up"), 70),
    ("continuity", N_("Continuity"), 80),
    ("stalls", N_("Stalls (time)"), 96),
    ("completion", N_("Completion"), 84),
    ("nacks", N_("NACKs"), 56),
    ("rtx", N_("Retransm."), 70),
)


def run_cells(run: Run) -> tuple:
    """The runs table's cells for ``run`` (in the language in use)."""
    stats = run.stats
    continuity = stats.get("continuity")
    stalls = stats.get("stalls")
    return (f"#{run.number}", run.order_text(),
            i18n.seconds(stats.get("startup_s")),
            "—" if continuity is None
            else i18n.decimal(100 * continuity, 1) + " %",
            "—" if stalls is None
            else f"{stalls} ({i18n.seconds(stats.get('stall_s'))})",
            i18n.seconds(stats.get("elapsed_s")),
            str(stats.get("nacks_sent", "—")),
            str(stats.get("chunks_retransmitted", "—")))


CSV_FIELDS = ("run", "song", "orders", "seeders", "emulation", "started",
              "startup_s", "continuity", "stalls", "stall_s",
              "completion_s", "nacks_sent", "nacked_chunks",
              "chunks_retransmitted", "chunks", "per_peer",
              "served_chunks", "simulated")


def run_record(run: Run) -> dict:
    """``run`` as one flat record (CSV row, JSON object)."""
    stats = run.stats
    return {
        "run": run.number, "song": run.song,
        "orders": "+".join(o or "own" for o in run.orders),
        "seeders": " ".join(f"{a}={o}" for a, o in run.seeder_orders),
        "emulation": run.emulation,
        "started": time.strftime("%Y-%m-%d %H:%M:%S",
                                 time.localtime(run.started)),
        "startup_s": stats.get("startup_s"),
        "continuity": stats.get("continuity"),
        "stalls": stats.get("stalls"), "stall_s": stats.get("stall_s"),
        "completion_s": stats.get("elapsed_s"),
        "nacks_sent": stats.get("nacks_sent"),
        "nacked_chunks": stats.get("nacked_chunks"),
        "chunks_retransmitted": stats.get("chunks_retransmitted"),
        "chunks": stats.get("chunks"),
        "per_peer": " ".join(f"{address}={count}" for address, count
                             in sorted(per_peer(stats).items())),
        "served_chunks": stats.get("served_chunks"),
        "simulated": int(run.simulated),
    }


def per_peer(stats: dict) -> dict:
    """Chunks received per source ("ip:port" -> chunks), seeders and
    peers, as the leecher's JSON has them."""
    return dict(stats.get("per_peer") or {})


def write_runs_csv(path: str, runs: list[Run]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.DictWriter(handle, CSV_FIELDS)
        out.writeheader()
        for run in runs:
            out.writerow({k: "" if v is None else v
                          for k, v in run_record(run).items()})


def write_runs_json(path: str, runs: list[Run]) -> None:
    """Every run with its per-chunk received and played times."""
    document = [{**run_record(run), "per_peer": per_peer(run.stats),
                 "sources": run.stats.get("sources", {}),
                 "received_s": run.received, "played_s": run.played}
                for run in runs]
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"runs": document}, handle, indent=1)


def write_stats_csv(path: str, stats: dict, rows) -> None:
    """One download's statistics (one per line), a blank line, then the
    per-chunk timeline: one file a spreadsheet opens."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["statistic", "value"])
        for key, value in stats.items():
            if isinstance(value, dict):
                for name, inner in sorted(value.items()):
                    out.writerow([f"{key}.{name}", inner])
            elif isinstance(value, list):
                out.writerow([key, " ".join(map(str, value))])
            else:
                out.writerow([key, "" if value is None else value])
        out.writerow([])
        columns = ("sent", "received", "played", "retransmitted", "nacked")
        out.writerow(["chunk", "sent_s", "received_s", "played_s",
                      "retransmitted", "nacked"])
        for row in rows:
            out.writerow([row.get("chunk")] + [
                "" if row.get(k) is None else int(row[k])
                if isinstance(row[k], bool) else row[k] for k in columns])


# ------------------------------------------------------------- compare
class _ChunkClock:
    """A time map (``player.ByteTimeMap``'s ``seconds`` and ``time_at``)
    whose "seconds" are chunks, for one-byte chunks: through it,
    ``playback_model.ready_steps`` counts chunks downloaded in order."""

    def __init__(self, chunks: int):
        self.seconds = chunks

    @staticmethod
    def time_at(byte: int) -> int:
        return byte


def in_order_curve(received: list) -> tuple[list, list]:
    """(times, chunks downloaded in order) after each arrival that made
    the in-order prefix longer: what the player could have played by
    then.  The same steps as ``experiment``'s audio-seconds curve."""
    import playback_model
    arrivals = [math.nan if t is None else t for t in received]
    steps = playback_model.ready_steps(arrivals, 1,
                                       _ChunkClock(len(arrivals)))
    return [0.0] + [t for t, _ in steps], [0] + [int(n) for _, n in steps]


def played_curve(played: list) -> tuple[list, list]:
    """(times, chunks played) at each moment a chunk finished playing."""
    points = sorted((t, i + 1) for i, t in enumerate(played)
                    if t is not None and not math.isnan(t))
    times, counts, most = [], [], 0
    for t, count in points:
        most = max(most, count)
        times.append(t)
        counts.append(most)
    return times, counts


def compare_title(runs: list[Run]) -> str:
    songs = " / ".join(dict.fromkeys(run.song for run in runs))
    orders = ", ".join(dict.fromkeys(run.order_text() for run in runs))
    return i18n.text(N_("Orders compared: {song} ({orders})"), song=songs,
                     orders=orders)


# ------------------------------------------------------ simulated runs
SIM_SEED = 1          # the simulated network's seed when the window has none
MAX_SIM_LOSS = 0.5    # a lossier estimate is a broken run, not a link


@dataclass(frozen=True)
class SimRequest:
    """A simulated run to make: a real run's song and seeders, the order
    chosen in the window, and the links estimated from what the real run
    measured (the seeders' own --rate --loss --delay are not told to the
    leecher)."""

    base: int              # the real run's number
    song: str
    path: str              # the song's verified file
    order: str | None
    seeder_orders: tuple   # (address, order) of the real run's seeders
    loss: float
    delay_ms: float
    rate_kbps: float       # each seeder's; 0: unlimited
    prebuffer: float
    seed: int

    def emulation(self) -> str:
        """The conditions, as a run's ``emulation`` text (CSV, JSON)."""
        rate = f"{self.rate_kbps:.0f} kbit/s" if self.rate_kbps \
            else "unlimited"
        return (f"simulated from run #{self.base}: "
                f"{len(self.seeder_orders) or 1} x {rate}, loss "
                f"{self.loss:.1%}, delay {self.delay_ms:.1f} ms, prebuffer "
                f"{self.prebuffer:g} s, seed {self.seed}")


def simulation_request(run: Run, path: str, order: str | None,
                       prebuffer: float, rtts_ms: list,
                       seed: int | None) -> SimRequest:
    """What a simulation of ``run`` (a real, completed one) uses: each
    seeder's rate, its share of the rate the run's second half came at
    (``steady_rate``; else of its goodput); the loss, the share of chunks
    that had to be retransmitted; the one-way delay, half the median
    round trip of its seeders (``rtts_ms``)."""
    stats = run.stats
    seeders = run.seeders_used()
    goodput = steady_rate(run.received, stats.get("size")) or \
        stats.get("goodput_Bps") or 0.0
    chunks = stats.get("chunks") or run.chunks or 1
    loss = min(MAX_SIM_LOSS, (stats.get("chunks_retransmitted") or 0)
               / chunks)
    rtts = sorted(r for r in rtts_ms if r is not None)
    delay = rtts[len(rtts) // 2] / 2 if rtts else 0.0
    return SimRequest(run.number, run.song, path, order, run.seeder_orders,
                      loss, delay, goodput * 8 / 1000 / seeders, prebuffer,
                      SIM_SEED if seed is None else seed)


# The steady rate is read on the last chunks only: a seeder's link lets
# a burst through at first, most of a short song.
STEADY_SHARE = 0.25
STEADY_MIN_CHUNKS = 2


def steady_rate(received: list, size: int | None) -> float | None:
    """Bytes per second the last STEADY_SHARE of the chunks came at: the
    seeders' link rate without the burst a link lets through at first
    (on a short song the goodput, burst and all, overstates the rate).
    None when it cannot be told."""
    times = sorted(t for t in received if t is not None)
    tail = int(len(times) * STEADY_SHARE)
    if not size or tail < STEADY_MIN_CHUNKS or len(times) < len(received):
        return None
    span = times[-1] - times[-tail - 1]
    if span <= 0:
        return None
    return tail * size / len(received) / span


def simulated_run(request: SimRequest) -> Run:
    """The simulated download of ``request`` (``experiment``'s simulated
    network and playback model) as a Run marked simulated.  Seconds of
    CPU for a song of minutes: the window's worker thread runs it."""
    import experiment
    song = experiment.SongInfo(request.path)
    with open(request.path, "rb") as handle:
        data = handle.read()
    conditions = experiment.SimConditions(
        len(request.seeder_orders) or 1, request.loss, request.delay_ms,
        request.rate_kbps, request.prebuffer,
        tuple(o for _, o in request.seeder_orders))
    result = experiment.simulate_download(song, data, request.order,
                                          request.seed, conditions)
    seeders = tuple((f"{a} (sim)", o) for a, o in request.seeder_orders)
    run = Run(0, request.song, request.order, seeders,
              request.emulation(), time.time(), len(result["received"]),
              simulated=True)
    run.received = [_known(t) for t in result["received"]]
    run.played = [_known(t) for t in result["played"]]
    continuity = result["continuity"]
    run.finish({**result["stats"], "startup_s": result["startup_s"],
                "stalls": result["stalls"], "stall_s": result["stall_s"],
                "continuity": None if continuity is None
                else continuity / 100})
    return run


def _known(value: float) -> float | None:
    """A timeline's NaN (never happened) as the window's None."""
    return None if value is None or math.isnan(value) else value


# ---------------------------------------------------------- file names
def file_stem(song: str, orders) -> str:
    """'short-tune-sequential-random': the song and the order(s), safe for
    a file name."""
    base = os.path.splitext(os.path.basename(song))[0][:NAME_MAX]
    parts = [base] + [o or "own" for o in dict.fromkeys(orders)]
    return re.sub(r"[^\w.-]+", "_", "-".join(parts)).strip("._") or "run"


def default_name(song: str, orders, kind: str | None,
                 extension: str) -> str:
    """A default file name for an export: song, order(s), what it is
    (``kind`` None: nothing more, as for a capture)."""
    tail = f"-{kind}" if kind else ""
    return f"{file_stem(song, orders)}{tail}{extension}"


# ------------------------------------------------------------- sources
SEEDER, PEER = "seeder", "peer"  # the leecher JSON's "sources" values
SOURCE_NAMES = {SEEDER: N_("seeder {address}"), PEER: N_("peer {address}")}


def source_kind(address: str, seeders) -> str:
    """A source that is not one of the song's seeders is a peer: another
    listener sharing what it has verified."""
    return SEEDER if address in seeders else PEER


def source_labels(kinds: dict) -> dict:
    """{address: "seeder 127.0.0.1" or "peer 127.0.0.22:40001"} for
    ``kinds`` ({address: SEEDER or PEER}), in the language in use; the
    port left out when every source has the same one."""
    ports = {address.rpartition(":")[2] for address in kinds}
    return {address: i18n.text(
        SOURCE_NAMES.get(kind, SOURCE_NAMES[PEER]),
        address=address.rpartition(":")[0] if len(ports) == 1 else address)
        for address, kind in kinds.items()}


# ------------------------------------------------- live counters
@dataclass
class Live:
    """Counters of the running download, from its events alone."""

    received: int = 0
    total: int = 0
    nacks: int = 0          # NACK datagrams
    nack_entries: int = 0   # chunks named in them
    retransmitted: int = 0
    stalls: int = 0
    gone: set = field(default_factory=set)
    sources: dict = field(default_factory=dict)  # address -> chunks
    served_chunks: int = 0  # sent to other listeners (ev.Served)
    served_peers: int = 0   # how many listeners got them

    def take(self, event) -> None:
        """Count ``event`` (events.py); other events change nothing."""
        if isinstance(event, ev.ChunkReceived):
            self.received += 1
            self.retransmitted += event.retransmission
            self.sources[event.source] = self.sources.get(event.source,
                                                          0) + 1
        elif isinstance(event, ev.NackSent):
            self.nacks += 1
            self.nack_entries += len(event.chunks)
        elif isinstance(event, ev.Stalled):
            self.stalls += 1
        elif isinstance(event, ev.Served):
            self.served_chunks, self.served_peers = event.chunks, event.peers
        elif isinstance(event, ev.SeederGone):
            self.gone.add(event.peer)
        elif isinstance(event, ev.SeedersBack):
            self.gone.difference_update(event.peers)
        elif isinstance(event, ev.Resumed):
            self.received += event.chunks
            self.total = event.total
        elif isinstance(event, ev.Snapshot):
            self.received, self.total = event.received, event.total
            self.nack_entries = event.nack_entries
            self.retransmitted = event.retransmitted


def audio_figures(played: dict) -> dict:
    """What a player's ``stats`` adds to a run once it stopped: stalls,
    stall time, seconds played (start-up and continuity stay the
    download's)."""
    def rounded(value):
        return None if value is None else round(value, 4)
    return {"stalls": played.get("stalls"),
            "stall_s": rounded(played.get("stall_s")),
            "played_s": rounded(played.get("played_s"))}


# -------------------------------------------------------------- layout
WINDOW_MOST = (1400, 900)   # no bigger at first: it scales up by hand
WINDOW_MARGIN = (10, 80)    # title bar, menu bar, a panel: fits 1024x768


def window_size(screen_width: int, screen_height: int) -> tuple[int, int]:
    """The window's first size on a screen: all of it visible with its
    title and menu bars, up to WINDOW_MOST."""
    return (min(WINDOW_MOST[0], screen_width - WINDOW_MARGIN[0]),
            min(WINDOW_MOST[1], screen_height - WINDOW_MARGIN[1]))


def played_chunk(byte_end: int, chunk_size: int, chunks: int) -> int:
    """The last chunk wholly or partly played when every byte before
    ``byte_end`` has played (-1: none)."""
    return min(chunks, -(-byte_end // max(chunk_size, 1))) - 1


# ------------------------------------------------------ live playback
class MeanRateClock:
    """A time map (``time_at``) at the song's mean bit rate, duration over
    size: the window's estimate until the player has scanned the whole
    file (its own ``time_map``).  A tag at the front makes it late by the
    tag's share of the song."""

    def __init__(self, size: int, duration_s: float):
        self.size = size
        self.seconds = duration_s

    def time_at(self, byte_offset: int) -> float:
        if self.size <= 0:
            return 0.0
        return self.seconds * min(max(byte_offset, 0), self.size) / self.size


@dataclass
class LivePlayback:
    """What the preview has played so far, from its Played events alone
    (on the download's clock): when it first sounded, how far it got."""

    first: tuple | None = None  # (byte_end, at_s) of the first Played
    byte_end: int = 0           # every byte before it has played
    done: bool = False          # the player's final figures took over

    def take(self, event: ev.Played) -> None:
        if event.byte_end <= 0:
            return
        if self.first is None:
            self.first = (event.byte_end, event.at_s)
        self.byte_end = max(self.byte_end, event.byte_end)

    def figures(self, clock, run: Run, chunk_size: int) -> dict:
        """Start-up, seconds played and the continuity of the chunks
        played so far, through the time map ``clock``; {} before the
        first sound.  Start-up: the first Played's time less the audio it
        says had played by then."""
        if self.first is None:
            return {}
        byte_end, at_s = self.first
        startup = max(0.0, at_s - clock.time_at(byte_end))
        return {"startup_s": startup,
                "played_s": clock.time_at(self.byte_end),
                "continuity": continuity_so_far(run, startup, chunk_size,
                                                clock)}


def preview_figures(playback: LivePlayback, run: Run, info,
                    player) -> dict:
    """The preview's start-up, seconds played and continuity so far (its
    Played events, through the player's time map once it has the whole
    file, else the song's mean bit rate, ``info``'s), and its stalls (the
    player's own count: no event tells when a stall ends); {} without a
    preview."""
    if player is None:
        return {}
    clock = player.time_map(info.size) or MeanRateClock(
        info.size, (info.duration_ms or 0) / 1000)
    figures = playback.figures(clock, run, info.chunk_size)
    audio = player.stats
    if audio.get("stalls") is not None:
        figures.update(stalls=audio["stalls"], stall_s=audio["stall_s"])
    return figures


WHOLE_SONG = ("startup_s", "continuity")  # a download's, once it knew them


def over_final(stats: dict, playback: dict) -> dict:
    """A download's final ``stats`` with what its preview has played
    since (``preview_figures``): its start-up and continuity stay when
    the download knew them (continuity then counts the whole song)."""
    return {**stats, **{key: value for key, value in playback.items()
                        if key not in WHOLE_SONG or stats.get(key) is None}}


def continuity_so_far(run: Run, startup: float, chunk_size: int,
                      clock) -> float | None:
    """The continuity index (``playback_model.continuity``) of the chunks
    played so far: each of them is here, so one that never arrived during
    this run was on disk before it (resumed: on time).  Chunks still to
    play are left out: whether they come in time is not known yet."""
    import playback_model
    count = sum(1 for t in run.played if t is not None)  # a prefix
    if not count:
        return None
    arrivals = [math.nan if t is None else t for t in run.received[:count]]
    return playback_model.continuity(arrivals, startup, chunk_size, clock)


# ----------------------------------------------------------- prebuffer
PREBUFFER_MAX_S = 30.0  # more is no preview: a short song would be over
PREBUFFER_STEP_S = 0.5  # one click of the prebuffer box's arrows
PREBUFFER_DIGITS = 3    # decimals kept of a prebuffer typed finer


def prebuffer_value(text: str) -> float | None:
    """The seconds typed in the prebuffer box, with a decimal comma or a
    point; None unless a number from 0 to PREBUFFER_MAX_S."""
    try:
        value = float(text.strip().replace(",", "."))
    except ValueError:
        return None
    return value if 0 <= value <= PREBUFFER_MAX_S else None  # NaN: None


def prebuffer_text(value: float) -> str:
    """'2.0' in English, '2,0' in Portuguese; a finer value typed keeps
    its decimals ('2,25')."""
    digits = next((d for d in range(1, PREBUFFER_DIGITS)
                   if round(value, d) == value), PREBUFFER_DIGITS)
    return i18n.decimal(value, digits)


def prebuffer_step(text: str, direction: int) -> str | None:
    """The prebuffer box after a click of its up (+1) or down (-1) arrow:
    the next multiple of PREBUFFER_STEP_S that way, within range, in the
    language in use; None when the text is no prebuffer."""
    value = prebuffer_value(text)
    if value is None:
        return None
    steps = value / PREBUFFER_STEP_S
    steps = math.floor(steps + 1e-9) + 1 if direction > 0 \
        else math.ceil(steps - 1e-9) - 1
    return prebuffer_text(min(PREBUFFER_MAX_S,
                              max(0.0, steps * PREBUFFER_STEP_S)))
