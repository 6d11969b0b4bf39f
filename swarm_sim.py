"""The swarm of ``swarm.py --simulate``: one seeder and N leechers on the
simulated network (``simnet.py``) in virtual time.

The engines are the real ones: a ``SeederEngine`` over a song held in
memory that publishes its piece list, its upload limited by its emulated
link (``--rate``); per leecher a ``PeerEngine`` (a ``DownloadEngine``
that also serves what it verified, its upload limited by its own
``--upload-rate`` link), or a bare ``DownloadEngine`` without sharing.
The links of the simulated network add delay only: every rate is an
engine's own.

Each leecher's driver (``SimLeecher``) does what ``leecher.py`` does, in
memory: it PINGs the seeder when it joins, keeps the chunks of pieces not
verified yet, checks every whole piece against the list and forgets its
bytes once verified: a verified piece is, by its SHA-256, the song's own
bytes, so what a leecher serves is read from the one copy of the song.
Playback is modelled from the arrival times (``playback_model.py``) on a
constant-bit-rate song of ``--song-seconds``.
"""

from __future__ import annotations

import random
import time
from array import array
from dataclasses import dataclass

import cli
import events as ev
import i18n
import netem
import pieces
import simnet
from i18n import N_, text as tr
from swarm import (DEFAULT_DELAY_MS, DEFAULT_PREBUFFER_S, DEFAULT_SONG_KBPS,
                   PeerResult, SwarmRun, add_playback)

SEEDER = ("127.0.0.1", 9000)
LEECHER_PORT = 40000
SECRET = b"swarm simulation secret"  # tokens only have to be unguessable
# A leecher in a crowd may wait long for its first chunk from a busy
# seeder without sharing (N songs through one link): it waits, as a
# patient listener would, instead of the terminal leecher's 30 s.
PATIENT_TIMEOUT_S = 3600.0
# Virtual time a swarm may take: the seeder alone sending every leecher
# the whole song, and then some: a run that hangs still ends.
SLACK_S = 600.0
EVENTS_PER_CHUNK = 100  # bound on events: datagrams and timers per chunk
# Real seconds a simulated swarm may take (a swarm that floods itself
# with control traffic still ends); the leechers not done then are said
# to be unfinished.  Only reached by a run that is going wrong.
DEFAULT_WALL_LIMIT_S = 600.0
# An MPEG-1 layer III frame: 1152 samples at 44.1 kHz.
FRAME_S = 1152 / 44100


@dataclass(frozen=True)
class SwarmSpec:
    """One simulated swarm."""

    peers: int
    share: bool = True
    pick: str = "rarest"
    song_seconds: float = 20.0
    song_kbps: float = DEFAULT_SONG_KBPS
    rate_kbps: float = 400.0           # the seeder's link
    upload_kbps: float = 400.0         # each leecher's; 0: unlimited
    seed_for_s: float | None = 15.0    # None: until everyone is done
    spread_s: float = 0.0              # joins spread over this long
    delay_ms: float = DEFAULT_DELAY_MS
    slots: int = 0                     # the seeder's upload slots; 0: none
    prebuffer_s: float = DEFAULT_PREBUFFER_S
    seed: int = 1
    wall_limit_s: float = DEFAULT_WALL_LIMIT_S

    @property
    def label(self) -> str:
        sharing = self.pick if self.share else i18n._("no sharing")
        return f"{self.peers} x {sharing}"


def spec_from(args) -> SwarmSpec:
    upload = args.rate if args.upload_rate is None else args.upload_rate
    return SwarmSpec(peers=args.peers or 8, share=args.share, pick=args.pick,
                     song_seconds=args.song_seconds, rate_kbps=args.rate,
                     upload_kbps=upload, seed_for_s=args.seed_for,
                     spread_s=args.spread, delay_ms=args.delay,
                     slots=args.slots or 0, seed=args.seed)


# ------------------------------------------------------------ the song
class CbrTimeMap:
    """The byte-to-time map of a constant-bit-rate MP3 of ``size``
    bytes (what ``playback_model`` reads of ``player.ByteTimeMap``)."""

    def __init__(self, size: int, kbps: float):
        self.frame_bytes = max(1, round(kbps * 125 * FRAME_S))
        frames = max(1, size // self.frame_bytes)
        self.offsets = array("q", range(0, frames * self.frame_bytes,
                                        self.frame_bytes))
        self.seconds = frames * FRAME_S

    def time_at(self, byte_offset: int) -> float:
        return min(max(byte_offset, 0) // self.frame_bytes * FRAME_S,
                   self.seconds)


class SimSong:
    """The song every leecher wants: random bytes of the bit rate and
    length asked, with its piece list, shared by the seeder."""

    def __init__(self, seconds: float, kbps: float, seed: int):
        size = max(1, round(seconds * kbps * 125))
        self.data = random.Random(seed).randbytes(size)
        self.source = simnet.BytesSource()
        self.info = self.source.add("swarm.mp3", self.data,
                                    round(seconds * 1000), with_pieces=True)
        self.time_map = CbrTimeMap(size, kbps)

    def chunk(self, index: int) -> bytes:
        size = self.info.chunk_size
        return self.data[index * size:(index + 1) * size]


def leecher_address(n: int) -> tuple:
    """Leecher ``n`` (0-based): 127.1.0.1, 127.1.0.2 ... one address
    each, as ``swarm.py`` gives real leechers (a seeder's limits count
    sessions per IP)."""
    return (f"127.{1 + n // 62500}.{n // 250 % 250}.{n % 250 + 1}",
            LEECHER_PORT)


# ---------------------------------------------------------- one leecher
class SimLeecher:
    """One leecher and its driver, as one simnet host: waits for its
    join time, PINGs the seeder (``simnet.Pinger``), then downloads
    through a ``PeerEngine`` (or a ``DownloadEngine`` without sharing),
    checks pieces and stops serving ``seed_for_s`` after its download."""

    def __init__(self, swarm: "SimSwarm", addr: tuple, join_at: float,
                 seed: int):
        self.swarm, self.addr = swarm, addr
        self.join_at, self.seed = join_at, seed
        self.engine = None      # the Pinger, then the download's engine
        self.download = None    # the DownloadEngine
        self.pending: dict[int, bytes] = {}  # chunks of unverified pieces
        self.finished_at: float | None = None
        self.stop_sharing_at: float | None = None
        self.problem = ""

    # --------------------------------------------------- engine interface
    def get_timer(self) -> float | None:
        if self.problem:
            return None
        if self.engine is None:
            return self.join_at
        timer = self.engine.get_timer()
        if self.stop_sharing_at is not None:
            timer = self.stop_sharing_at if timer is None \
                else min(timer, self.stop_sharing_at)
        return timer

    def handle_timer(self, now: float) -> None:
        if self.engine is None:
            self.engine = simnet.Pinger([SEEDER], self.seed)
            self.engine.start(now)
        if self.stop_sharing_at is not None and now >= self.stop_sharing_at:
            self.stop_sharing_at = None
            self.engine.set_sharing(False, now)
        self._guarded(self.engine.handle_timer, now)

    def receive_datagram(self, data, addr, now: float) -> None:
        if self.engine is not None and not self.problem:
            self._guarded(self.engine.receive_datagram, now, data, addr)

    def datagrams_to_send(self, now: float) -> list:
        if self.engine is None or self.problem:
            return []
        return self.engine.datagrams_to_send(now)

    # ------------------------------------------------------------- driver
    def _guarded(self, call, now: float, *args) -> None:
        """``call``, then the driver's turn; a failed download ends this
        leecher (said in its row), not the swarm."""
        try:
            if args:
                call(*args, now)
            else:
                call(now)
            if self.download is None:
                if self.engine.finished:
                    self._start_download(now)
            else:
                self._driver_turn(now)
        except ev.DownloadFailed as failed:
            self.problem = cli.problem_line(failed.problem, failed.params)
            self.swarm.one_done()

    def _start_download(self, now: float) -> None:
        from download_engine import DownloadEngine, Options
        spec = self.swarm.spec
        peers = list(self.engine.peers.values())
        self.download = DownloadEngine(
            self.swarm.song.info, peers, now,
            Options(seed=self.seed, timeout=PATIENT_TIMEOUT_S,
                    pick=spec.pick))
        if spec.share:
            from peer_engine import PeerEngine, SharedSong
            self.shared = SharedSong(self.swarm.song.info,
                                     self.swarm.song.chunk)
            upload = netem.LinkSpec(rate_Bps=spec.upload_kbps * 125)
            self.engine = PeerEngine(self.download, self.shared, SECRET,
                                     self.seed, share=True, upload=upload,
                                     own_addr=self.addr)
        else:
            self.engine = self.download
        self.engine.start(now)

    def _driver_turn(self, now: float) -> None:
        engine, download = self.engine, self.download
        pending = self.pending
        for start, payloads in download.take_runs():
            for k, data in enumerate(payloads):
                pending[start + k] = data
        chunks = self.swarm.song.info.chunks
        for piece in download.pieces_to_verify():
            first, end = pieces.chunk_range(piece, chunks)
            data = b"".join(pending.pop(i, b"") for i in range(first, end))
            engine.check_piece(piece, data, now)
        engine.events()  # drained: the report reads the counters
        if self.finished_at is None and download.complete:
            self.finished_at = now
            if self.swarm.spec.share and \
                    self.swarm.spec.seed_for_s is not None:
                self.stop_sharing_at = now + self.swarm.spec.seed_for_s
            self.swarm.one_done()

    # ------------------------------------------------------------- result
    def result(self, served: int) -> PeerResult:
        row = PeerResult(cli.format_address(self.addr), self.join_at,
                         served=served, problem=self.problem)
        download = self.download
        if download is None:
            row.problem = row.problem or tr(N_("never started"))
            return row
        kept = download.counters.stored_from
        row.from_seeder = kept.get(SEEDER, 0)
        row.from_peers = sum(kept.values()) - row.from_seeder
        if self.finished_at is not None:
            row.completion_s = self.finished_at - self.join_at
            # complete: every piece matched the list, the list the id
            row.verified = download.stats(self.finished_at)[
                "piece_hashes"] == "checked"
        song = self.swarm.song
        add_playback(row, download.timeline.received, song.info.size,
                     song.time_map, self.swarm.spec.prebuffer_s)
        return row


# ------------------------------------------------------------ the swarm
class SimSwarm:
    """A seeder and ``spec.peers`` leechers on one simulated network."""

    def __init__(self, spec: SwarmSpec):
        self.spec = spec
        self.song = SimSong(spec.song_seconds, spec.song_kbps, spec.seed)
        self.net = simnet.SimNet(seed=spec.seed, keep_trace=False,
                                 default_link=netem.LinkSpec(
                                     delay_s=spec.delay_ms / 1000))
        from seed_engine import SeederEngine
        self.seeder = SeederEngine(
            self.song.source, SECRET, spec.seed,
            link=netem.LinkSpec(rate_Bps=spec.rate_kbps * 125),
            name="swarm-seeder", upload_slots=spec.slots)
        self.net.add_host(SEEDER, self.seeder)
        self.leechers = [
            SimLeecher(self, leecher_address(n), self._join_time(n),
                       spec.seed * 100_003 + n)
            for n in range(spec.peers)]
        for leecher in self.leechers:
            self.net.add_host(leecher.addr, leecher)
        self.done = 0

    def _join_time(self, n: int) -> float:
        if self.spec.peers <= 1:
            return 0.0
        return self.spec.spread_s * n / (self.spec.peers - 1)

    def one_done(self) -> None:
        self.done += 1

    def run(self) -> SwarmRun:
        started = time.perf_counter()
        spec, chunks = self.spec, self.song.info.chunks
        whole = self.song.info.size * spec.peers / (spec.rate_kbps * 125)
        wall_deadline = started + spec.wall_limit_s
        self.ended = self.net.run(
            until=spec.spread_s + whole + SLACK_S,
            max_events=EVENTS_PER_CHUNK * chunks * spec.peers + 100_000,
            stop_when=lambda: self.done >= spec.peers
            or time.perf_counter() > wall_deadline)
        if self.done < spec.peers:
            self._unfinished(self.ended.reason if time.perf_counter()
                             <= wall_deadline else "wall")
        served = self._served()
        run = SwarmRun(spec.label, spec.peers, spec.share, spec.pick, chunks,
                       [leecher.result(served.get(leecher.addr, 0))
                        for leecher in self.leechers],
                       self.seeder.counters.link.sent)
        run.wall_s = time.perf_counter() - started
        run.alone_s = self.song.info.size * spec.peers / (spec.rate_kbps
                                                          * 125)
        return run

    def _unfinished(self, reason: str) -> None:
        limit = {"until": N_("its virtual time limit"),
                 "max-events": N_("its event budget"),
                 "wall": N_("its real time limit")}.get(reason)
        for leecher in self.leechers:
            if leecher.finished_at is None and not leecher.problem:
                leecher.problem = tr(N_(
                    "unfinished: the simulation reached {limit}"),
                    limit=i18n._(limit)) if limit else \
                    i18n._("unfinished: nothing left to happen")

    def _served(self) -> dict:
        """Chunks each leecher gave the others (what they kept from it)."""
        served: dict = {}
        for leecher in self.leechers:
            if leecher.download is None:
                continue
            for addr, count in leecher.download.counters.stored_from.items():
                served[addr] = served.get(addr, 0) + count
        return served


def simulate(spec: SwarmSpec) -> SwarmRun:
    return SimSwarm(spec).run()
