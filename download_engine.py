"""The leecher's decisions for one song, without I/O (see ENGINES.md).

``DownloadEngine`` takes datagrams and ``now`` and gives back the
datagrams to send, its next deadline, the new chunks' data (for the driver
to write) and typed events (``events.py``).  It asks its sources for the
song (where a chunk is scheduled: ``scheduler.py``, seeders and the
partial peers of a swarm, pieces chosen by ``piece_picker.py``), sends
REQUESTs, ACK credit and NACKs, follows RETRY and ERROR (BUSY: a
back-off, not gone), moves the share of a source that is gone to the
others (or PINGs the sources until one is back), and keeps the counters
and the timeline.  When a chunk is lost is decided per transfer by
``recovery.py``.  A song named by its piece hash list is verified
piece by piece (``PieceCheck``, ``pieces.py``): the driver hashes each
piece the engine hands it (``pieces_to_verify``) and gives it back
(``check_piece``); a bad one is fetched again and its sender named.

It never reads a clock, never touches a socket or a file, and never raises
for what a peer sends: hostile bytes are counted and dropped.  Its own
failures raise ``events.DownloadFailed``.

What comes in is read by ``download_receive.py`` (``Receiver``,
``Arrivals``); the statistics are ``Report``'s.
"""

from __future__ import annotations

import math
import random
from array import array
from dataclasses import dataclass, field

import events as ev
import piece_picker
import pieces
import protocol as p
from download_receive import Receiver
from download_receive import MAX_RETRIES  # noqa: F401  (re-exported)
from recovery import INITIAL_RTT
from scheduler import Scheduler, Transfer, peer_name
from scheduler import MAX_LIMIT  # noqa: F401  (re-exported: the ACK's cap)

DEFAULT_WINDOW = 256  # chunks a seeder may have in flight to us
DEFAULT_TIMEOUT = 30.0  # give up after this long without any new chunk
ORPHAN_PING_S = 1.0  # with no live seeder: PING the sources this often
# The largest song this leecher takes: its bookkeeping costs about 40
# bytes per chunk (timeline, flags, places, CRCs), 60 MB at this size.
MAX_SONG_BYTES = 2 * 1024 ** 3
MAX_CHUNKS = p.chunk_count(MAX_SONG_BYTES)  # (at the usual chunk size)
# The piece hash list: pages asked at once, rounds without a new page
# before the next peer is asked (each round waits twice as long).
PAGES_IN_FLIGHT = 16
HASH_TRIES = 4
MIN_HASH_WAIT_S = 0.05
MAX_BAD_PIECES = 2  # bad pieces a peer may send before it gets no more work
MAX_SLOTS = 255  # peers told apart per chunk (one byte each)
MAX_PEERS = MAX_SLOTS  # known per download (add_peer): each has a slot


def check_size(info: p.FileInfo) -> None:
    """Refuse a song too big to hold (a lying seeder's 2^32 chunks)."""
    if info.size > MAX_SONG_BYTES or info.chunks > MAX_CHUNKS:
        raise ev.DownloadFailed(ev.Problem.TOO_BIG, name=info.name,
                                size=info.size)


@dataclass
class Peer:
    """A source as the leecher knows it after PING: a seeder, or a
    partial peer (a leecher that shares the pieces it verified)."""

    addr: tuple[str, int]
    rtt: float | None = None
    token: int = 0
    name: str = ""
    files: int = 0
    load: int = 0
    order: int = p.Order.SEQUENTIAL
    ordered_percent: int = 50
    # The PIECE ranges a partial peer has (HAVE); None: a seeder, all.
    holds: p.RangeSet | None = None

    @property
    def alive(self) -> bool:
        return self.rtt is not None

    def learn(self, pong: p.Pong) -> None:
        """Take what a PONG says, checked: an unknown order is the
        seeder's business, not a reason to crash."""
        self.token, self.name = pong.token, pong.name
        self.files, self.load = pong.files, pong.load
        self.order = pong.order if pong.order in (
            p.Order.SEQUENTIAL, p.Order.RANDOM, p.Order.SEMI_RANDOM) \
            else p.Order.SEQUENTIAL
        self.ordered_percent = min(pong.ordered_percent, 100)


@dataclass
class Options:
    order: str | None = None  # None: each seeder's own order
    window: int = DEFAULT_WINDOW
    timeout: float = DEFAULT_TIMEOUT
    loss: float = 0.0  # the driver's: drop received datagrams on purpose
    seed: int | None = None
    force: bool = False  # the driver's: replace a different file
    fresh: bool = False  # the driver's: ignore resume data (Download again)
    pick: str = "rarest"  # piece_picker.POLICIES: pieces from partial peers


class Timeline:
    """Per chunk: when it was sent, received and played, in seconds since
    the request (NaN: not known), whether a retransmission brought it, and
    when it was NACKed.  Arrays, so that a 200 MB song costs a few MB."""

    def __init__(self, chunks: int):
        self.sent = array("d", [math.nan]) * chunks
        self.received = array("d", [math.nan]) * chunks
        self.played = array("d", [math.nan]) * chunks
        self.retransmitted = bytearray(chunks)
        self.nacked: dict[int, list[float]] = {}

    @staticmethod
    def get(series: array, index: int) -> float | None:
        value = series[index]
        return None if math.isnan(value) else value

    def rows(self):
        nacked = self.nacked
        for i in range(len(self.sent)):
            yield {"chunk": i, "sent": _round(self.get(self.sent, i)),
                   "received": _round(self.get(self.received, i)),
                   "played": _round(self.get(self.played, i)),
                   "retransmitted": bool(self.retransmitted[i]),
                   "nacked": [_round(t) for t in nacked.get(i, ())]}


def _round(value):
    return None if value is None else round(value, 4)


@dataclass
class Counters:
    nacks_sent: int = 0  # NACK datagrams
    nack_entries: int = 0  # chunks named in NACKs
    retransmitted: int = 0  # new chunks that came as retransmissions
    bad: int = 0  # datagrams that are no valid message of ours
    forged: int = 0  # chunks from an address or session we did not ask
    out_of_share: int = 0  # chunks of a session that we did not ask it for
    stored_from: dict = field(default_factory=dict)  # addr -> new chunks


class DownloadEngine:
    """Download one song (``info``) from ``peers`` (the alive sources)."""

    def __init__(self, info: p.FileInfo, peers: list[Peer], now: float,
                 options: Options | None = None, present=(),
                 chunk_events: bool = False, verified=()):
        """``present``: chunks the driver took from disk; ``verified``:
        pieces among them that an earlier run verified."""
        check_size(info)
        self.info = info
        self.options = options or Options()
        if self.options.pick not in piece_picker.POLICIES:
            raise ValueError(f"unknown piece policy {self.options.pick!r}")
        self.rng = random.Random(self.options.seed)
        self.scheduler = Scheduler(self)
        self.peers: dict[tuple, Peer] = {}
        self.slots: dict[tuple, int] = {}  # addr -> its PieceBook.sender
        for peer in peers:
            self._know(peer)
        self.started = now
        self.state = p.ReceiveState(info.chunks)
        for index in present:  # taken from disk by the driver
            self.state.add(index)
        self.resumed = self.state.received
        self.timeline = Timeline(info.chunks)
        self.counters = Counters()
        self.transfers: dict[tuple, Transfer] = {}
        # Each chunk's place in the first pass of the transfer it belongs
        # to now (one array for all transfers: a chunk is in one at a time).
        self.place = array("i", [-1]) * info.chunks
        self.failover = Failover(self)
        # A song named by its piece list is checked piece by piece.
        self.pieces = None if pieces.legacy(info) else PieceCheck(
            self, verified)
        self.sender = self.pieces.book.sender if self.pieces \
            else bytearray(info.chunks)
        self.chunk_events = chunk_events
        self._events: list = []
        self._outbox: list = []
        self.fresh_runs: list = []  # (start, [data...]) new, unwritten
        self.receiver = Receiver(self)  # datagrams in
        self.report = Report(self)  # counters out
        self.last_progress = now
        self.finished_at: float | None = None

    def _know(self, peer: Peer) -> bool:
        """``peer`` among the sources (a partial one only if the song is
        ever fetched piece-wise), with a slot while there are."""
        if peer.holds is not None and not self.scheduler.adopt(peer):
            return False
        self.peers[peer.addr] = peer
        if len(self.slots) < MAX_SLOTS:
            self.slots.setdefault(peer.addr, len(self.slots) + 1)
        return True

    # ---------------------------------------------------------- interface
    def start(self, now: float) -> None:
        """Ask the alive peers for what is missing (``Scheduler``)."""
        alive = [peer for peer in self.peers.values() if peer.alive]
        if not alive:
            raise ev.DownloadFailed(ev.Problem.NO_SEEDER_ALIVE,
                                    addresses=[peer_name(a)
                                               for a in self.peers])
        if self.pieces:
            self.pieces.start(alive, now)
        if self.state.complete:
            self.maybe_complete(now)
            return
        self.scheduler.start(alive, now)

    def add_peer(self, peer: Peer, now: float) -> None:
        """A partial peer that answered our PING (``holds``: what it
        said it has): known, and given work when it holds what we miss.
        A known address is refreshed (back if it was gone, not if it
        lied); past ``MAX_PEERS`` a newcomer is ignored."""
        known = self.peers.get(peer.addr)
        if known is None:
            if len(self.peers) >= MAX_PEERS or not self._know(peer):
                return
        elif peer.addr in self.failover.banned or not peer.alive:
            return
        else:
            known.rtt, known.token = peer.rtt, peer.token
            if known.holds is not None and peer.holds:
                self.scheduler.has(known, peer.holds)
        self.failover.gone.discard(peer.addr)
        self.scheduler.refresh(now)

    def peer_has(self, addr, ranges, now: float) -> None:
        """A HAVE from ``addr``: piece ``ranges`` join what it holds
        (clipped to the song, at most ``p.MAX_HAVE_RANGES``); from an
        unknown address or a seeder it is ignored."""
        peer = self.peers.get(addr)
        if peer is not None and peer.holds is not None \
                and self.scheduler.has(peer, ranges):
            self.scheduler.refresh(now)

    def peer_fetching(self, addr, ranges, now: float) -> None:
        """A known partial peer fetches ``ranges`` from a seeder (HAVE
        with ``FLAG_FETCHING``): ours ask the seeders for others first."""
        self.scheduler.hint(self.peers.get(addr), ranges, now)

    def take_fetching(self) -> list[int]:
        """The pieces asked of seeders since the last call (to hint)."""
        return self.scheduler.take_fetching()

    def take_verified(self) -> list[int]:
        """The pieces verified since the last call (to share them)."""
        return self.pieces.take_verified() if self.pieces else []

    def set_playhead(self, chunk: int) -> None:
        """The player's position (the deadline policy's urgent pieces
        start there); until it is set, the verified prefix."""
        self.scheduler.playhead = max(0, min(chunk, self.info.chunks))

    @property
    def complete(self) -> bool:
        """Every chunk here and, when the song has a piece list, every
        piece verified (or no list to be had)."""
        return self.state.complete and (self.pieces is None
                                        or self.pieces.settled())

    def events(self) -> list:
        drained, self._events = self._events, []
        return drained

    def take_fresh(self) -> list:
        """``(index, data)`` of the chunks new since the last call; the
        data may be views of the driver's receive buffers."""
        return [(start + k, data) for start, payloads in self.take_runs()
                for k, data in enumerate(payloads)]

    def take_runs(self) -> list:
        """The chunks new since the last call as runs: ``(start,
        [data, ...])`` for chunks ``start``, ``start + 1``..., in arrival
        order (the driver's write path: one ``pwritev`` per run)."""
        fresh, self.fresh_runs = self.fresh_runs, []
        if self.pieces and fresh:
            self.pieces.touch_runs(fresh)
        return fresh

    def pieces_to_verify(self) -> list[int]:
        """Pieces whose chunks are all here (and given by
        ``take_fresh``): the driver reads each from its file and calls
        ``check_piece``."""
        return self.pieces.to_verify() if self.pieces else []

    def check_piece(self, piece: int, data, now: float) -> bool:
        """``data``: piece ``piece`` as the driver's file holds it.  A
        bad piece is fetched again and its sender blamed."""
        return self.pieces.check(piece, data, now) if self.pieces else True

    def verified_prefix(self) -> int:
        """Chunks from the start that may be trusted (played, hashed):
        in verified pieces, or all that arrived without a piece list."""
        if self.pieces and not self.pieces.unavailable:
            return self.pieces.book.verified_prefix()
        return self.state.contiguous()

    def datagrams_to_send(self, now: float) -> list:
        out, self._outbox = self._outbox, []
        return out

    def send(self, msg, addr, session: int = 0) -> None:
        self._outbox.append((p.encode(msg, session), addr))

    def emit(self, event) -> None:
        self._events.append(event)

    def since_start(self, now: float) -> float:
        return now - self.started

    def receive_datagram(self, data, addr, now: float) -> None:
        self.receive_batch([(data, addr)], now)

    def receive_batch(self, batch, now: float) -> None:
        """One turn's datagrams (``download_receive.Receiver``)."""
        self.receiver.receive_batch(batch, now)

    # ------------------------------------------------------------- losses
    def detect_losses(self, transfer: Transfer, now: float) -> None:
        lost = transfer.recovery.lost(now, transfer.highest_seq)
        if lost:
            self.nack(transfer, lost, now)

    def nack(self, transfer: Transfer, chunks: list[int], now: float):
        """NACK ``chunks`` in this order (the seeder resends in it)."""
        have = self.state.have
        chunks = [i for i in chunks if not have[i]]
        if not chunks:
            return
        transfer.nack_round = (transfer.nack_round + 1) & 0xFFFF
        credit = transfer.limit  # before this NACK's own grant
        limit = transfer.grant()
        since = self.since_start(now)
        nacked = self.timeline.nacked
        for index in chunks:
            nacked.setdefault(index, []).append(since)
        for start in range(0, len(chunks), p.MAX_NACK_RANGES):
            part = chunks[start:start + p.MAX_NACK_RANGES]
            # Runs taken in the list's order (not sorted) keep the NACK's
            # order: the seeder's resend order, which recovery.py counts on.
            ranges = tuple(p.runs(part))
            self.send(p.Nack(limit, transfer.nack_round, ranges),
                      transfer.peer.addr, transfer.sid)
            self.counters.nacks_sent += 1
        self.counters.nack_entries += len(chunks)
        transfer.recovery.on_nack_sent(chunks, now, credit)
        self.emit(ev.NackSent(peer_name(transfer.peer.addr),
                              transfer.nack_round, tuple(chunks), since))

    # ------------------------------------------------------------- timers
    def open_transfers(self) -> list[Transfer]:
        return [t for t in self.transfers.values()
                if not (t.dead or t.finished)]

    def get_timer(self) -> float | None:
        if self.complete:
            return None
        deadline = self.last_progress + self.options.timeout
        for transfer in self.open_transfers():
            deadline = min(deadline, transfer.recovery.get_timer())
        for timer in (self.failover.next_ping(),
                      self.scheduler.backoff.next_end(),
                      self.pieces.timer() if self.pieces else None):
            if timer is not None:
                deadline = min(deadline, timer)
        return deadline

    def handle_timer(self, now: float) -> None:
        if self.complete:
            return
        for transfer in self.open_transfers():
            recovery = transfer.recovery
            if now < recovery.get_timer() or self._finished(transfer):
                continue
            self.detect_losses(transfer, now)
            if now >= recovery.probe_due() and not transfer.dead:
                self._probe(transfer, now)
        self.failover.on_timer(now)
        if self.pieces:
            self.pieces.on_timer(now)
        self.scheduler.on_timer(now)
        self.scheduler.settle(now)
        if now - self.last_progress >= self.options.timeout:
            self.cancel_all()
            if self.failover.orphans:
                raise ev.DownloadFailed(ev.Problem.ALL_SEEDERS_GONE)
            raise ev.DownloadFailed(ev.Problem.NO_PROGRESS,
                                    seconds=self.options.timeout)

    def _finished(self, transfer: Transfer) -> bool:
        """All of ``transfer``'s chunks are here (some may have come from
        elsewhere): it needs no timer any more."""
        if not self.state.missing_in(transfer.ranges):
            self.scheduler.finish(transfer)
        return transfer.finished

    def _probe(self, transfer: Transfer, now: float) -> None:
        if not transfer.recovery.on_probe_timer(now):
            self.failover.give_up_on(transfer, now, silent=True)
        elif not transfer.recovery.heard:  # the REQUEST may be lost
            self.send(transfer.request(self.info.file_id),
                      transfer.peer.addr, transfer.sid)
        else:
            self.send(p.Ack(transfer.probe_credit()), transfer.peer.addr,
                      transfer.sid)

    def start_transfers(self, peers: list[Peer], wanted: p.RangeSet,
                        now: float) -> None:
        self.scheduler.start_transfers(peers, wanted, now)

    def missing_of(self, transfer: Transfer) -> p.RangeSet:
        return self.state.missing_in(transfer.ranges)

    def maybe_complete(self, now: float) -> None:
        """Done once ``complete``: every session still open is CANCELled."""
        if not self.complete or self.finished_at is not None:
            return  # pieces still to verify, or done already
        self.finished_at = now
        self.cancel_all()

    def cancel_all(self) -> None:
        """CANCEL every session still open (done, stopped or failed)."""
        for transfer in self.transfers.values():
            if not transfer.dead:
                transfer.dead = True
                self.send(p.Cancel(), transfer.peer.addr, transfer.sid)

    # --------------------------------------------------------------- stats
    def snapshot(self, now: float) -> ev.Snapshot:
        return self.report.snapshot(now)

    def per_peer(self) -> dict[str, int]:
        return self.report.per_peer()

    def sources(self) -> dict[str, str]:
        return self.report.sources()

    def seeders_gone(self) -> list[str]:
        return self.report.seeders_gone()

    def stats(self, now: float) -> dict:
        """The counters of the JSON statistics (``Report.stats``)."""
        return self.report.stats(now)

    def piece_stats(self) -> dict:
        return self.report.piece_stats()


class Report:
    """What the download did, for the JSON statistics, the window's
    snapshots and the driver: counters, sources, pieces."""

    def __init__(self, engine: DownloadEngine):
        self.engine = engine

    def snapshot(self, now: float) -> ev.Snapshot:
        engine = self.engine
        return ev.Snapshot(engine.since_start(now), engine.state.received,
                           engine.info.chunks, engine.counters.nack_entries,
                           engine.counters.retransmitted, self.per_peer())

    def per_peer(self) -> dict[str, int]:
        """New chunks stored from each source (seeder or peer)."""
        return {peer_name(addr): count for addr, count
                in self.engine.counters.stored_from.items()}

    def sources(self) -> dict[str, str]:
        """Every known source: "seeder" or "peer" (partial)."""
        return {peer_name(addr): "seeder" if peer.holds is None else "peer"
                for addr, peer in self.engine.peers.items()}

    def seeders_gone(self) -> list[str]:
        return sorted(peer_name(addr) for addr in self.engine.failover.gone)

    def stats(self, now: float) -> dict:
        """The counters of the JSON statistics (the driver adds the file
        and audio parts)."""
        engine = self.engine
        end = engine.finished_at or now
        elapsed = end - engine.started
        over_the_wire = engine.state.received - engine.resumed
        size = min(engine.info.size, over_the_wire * engine.info.chunk_size)
        counters = engine.counters
        return {
            "chunks": engine.info.chunks,
            "chunks_received": over_the_wire,
            "chunks_resumed": engine.resumed,
            "duplicates": engine.state.duplicates,
            "nacks_sent": counters.nacks_sent,
            "nack_entries": counters.nack_entries,
            "chunks_retransmitted": counters.retransmitted,
            "forged_chunks": counters.forged,
            "out_of_share_chunks": counters.out_of_share,
            "elapsed_s": round(elapsed, 4),
            "goodput_Bps": round(size / elapsed, 1)
            if elapsed > 0 and engine.complete else 0.0,
            "per_peer": self.per_peer(),
            "sources": self.sources(),
            "seeders_gone": self.seeders_gone(),
            **self.piece_stats(),
        }

    def piece_stats(self) -> dict:
        """``piece_hashes``: "checked" (the list), "unavailable" (no
        peer gave a list that matches the id) or "none" (a song named by
        its SHA-256: checked whole only)."""
        pieces = self.engine.pieces
        if pieces is None:
            return {"piece_hashes": "none", "bad_pieces": 0,
                    "bad_pieces_per_peer": {}}
        return pieces.stats()


class Failover:
    """Seeders that stop answering or refuse: their missing share moves to
    the live ones; with none left the chunks are orphans, and the sources
    are PINGed until one answers."""

    def __init__(self, engine: DownloadEngine):
        self.engine = engine
        self.gone: set = set()  # addresses that stopped answering
        self.banned: set = set()  # addresses that lied: never again
        self.orphans = p.RangeSet()
        self._next_ping: float | None = None
        self._nonces: dict[int, tuple] = {}  # nonce -> (addr, sent at)

    def give_up_on(self, transfer: Transfer, now: float,
                   silent: bool = False) -> None:
        engine = self.engine
        addr = transfer.peer.addr
        self.gone.add(addr)
        missing = p.RangeSet()
        for victim in engine.transfers.values():
            if victim.peer.addr == addr and not victim.dead:
                victim.dead = True
                engine.send(p.Cancel(), addr, victim.sid)
                for start, end in engine.missing_of(victim):
                    missing.add(start, end)
        if silent:
            engine.emit(ev.SeederGone(peer_name(addr),
                                      engine.since_start(now)))
        self.give_up_on_chunks(missing, now)

    def busy(self, transfer: Transfer, now: float) -> None:
        """BUSY: its peer is not gone, only backing off
        (``scheduler.Backoff``); the chunks ``transfer`` was to send go
        to the others at once, or wait for a back-off to end."""
        transfer.dead = True  # its session ended there (or never began)
        self.give_up_on_chunks(self.engine.missing_of(transfer), now)

    def give_up_on_chunks(self, missing: p.RangeSet, now: float) -> None:
        """``missing`` to the live sources not backing off, or kept for
        one that is, or orphans until one is back."""
        engine = self.engine
        if not missing:
            return
        scheduler = engine.scheduler
        ready = [peer for _, peer in sorted(engine.peers.items())
                 if scheduler.ready(peer)]
        if ready:
            engine.start_transfers(ready, missing, now)
        elif scheduler.waiting_for(missing):
            scheduler.backoff.defer(missing)
        else:
            self.orphan(missing, now)

    def orphan(self, missing: p.RangeSet, now: float) -> None:
        """Nobody can fetch ``missing``: the sources are PINGed until
        one answers."""
        engine = self.engine
        if not self.orphans:
            engine.emit(ev.WaitingForSeeders(engine.options.timeout,
                                             engine.since_start(now)))
            self._next_ping = now
        for start, end in missing:
            self.orphans.add(start, end)

    def ban(self, addr, now: float) -> None:
        """No more work for ``addr`` (it lied): its share moves."""
        self.banned.add(addr)
        live = [t for t in self.engine.transfers.values()
                if t.peer.addr == addr and not t.dead]
        if live:
            self.give_up_on(live[0], now)
        self.gone.add(addr)

    def next_ping(self) -> float | None:
        return self._next_ping if self.orphans else None

    def on_timer(self, now: float) -> None:
        if not self.orphans or self._next_ping is None \
                or now < self._next_ping:
            return
        self._next_ping = now + ORPHAN_PING_S
        self._nonces = {}
        for addr in self.engine.peers:
            nonce = self.engine.rng.getrandbits(32)
            self._nonces[nonce] = (addr, now)
            self.engine.send(p.Ping(nonce, PING_PADDING), addr)

    def on_pong(self, msg: p.Pong, addr, now: float) -> None:
        sent = self._nonces.pop(msg.nonce, None)
        if sent is None or sent[0] != addr or not self.orphans \
                or addr in self.banned:
            return
        engine = self.engine
        peer = engine.peers[addr]
        peer.rtt = max(now - sent[1], 0.0)
        peer.learn(msg)
        self.gone.discard(addr)
        wanted = engine.state.missing.intersection(self.orphans)
        if not engine.scheduler.can_serve(peer, wanted):
            return  # a partial peer without what is missing: still waiting
        self.orphans = p.RangeSet()
        engine.emit(ev.SeedersBack((peer_name(addr),),
                                   engine.since_start(now)))
        engine.start_transfers([peer], wanted, now)


PING_PADDING = 44  # a 64-byte PING earns room for any PONG (anti-amp.)


class PieceCheck:
    """The song's piece hash list and the check of each piece.

    The list is asked of one peer at a time (its pages, retried), the
    fastest first, and checked against the song's id: a peer whose list
    does not match lies (``BadHashList``) and gets no more work.  A piece
    whose chunks are all here is checked by the driver (``check``).  A
    bad one is fetched again, from a peer that did not send it if there
    is one; who lied is then known: the sender of a piece fetched whole
    from one peer, or, once a good copy came, the senders of the chunks
    that differ from it (``BadPiece``).  A peer with ``MAX_BAD_PIECES``
    bad pieces gets no more work."""

    def __init__(self, engine: DownloadEngine, verified=()):
        self.engine = engine
        self.book = pieces.PieceBook(engine.info, verified)
        self.queue: list[Peer] = []  # peers still to ask for the list
        self.asking: Peer | None = None
        self.list: pieces.HashList | None = None
        self.in_flight: set[int] = set()
        self.tries = 0
        self.deadline: float | None = None
        self.unavailable = False
        self.strikes: dict[str, int] = {}  # peer -> bad pieces sent
        self.blamed: dict[int, set] = {}  # piece -> slots blamed for it
        self.fresh: list[int] = []  # verified, not taken yet (each once)

    # ----------------------------------------------------- the list
    def start(self, alive: list[Peer], now: float) -> None:
        self.book.touch(self.engine.state.have, range(self.book.pieces))
        if self.book.all_verified():
            return  # all verified by an earlier run: no list needed
        self.queue = sorted(alive, key=lambda peer: peer.rtt or 0)
        self._next_peer(now)

    def settled(self) -> bool:
        return self.unavailable or self.book.all_verified()

    def timer(self) -> float | None:
        return self.deadline

    def _next_peer(self, now: float) -> None:
        banned = self.engine.failover.banned
        while self.queue:
            peer = self.queue.pop(0)
            if peer.addr not in banned:
                self.asking, self.tries = peer, 0
                self.list = pieces.HashList(self.engine.info)
                self.in_flight = set()
                self._ask(now)
                return
        self.asking = self.list = self.deadline = None
        self.unavailable = True  # checked whole, at the end, only
        self.engine.maybe_complete(now)

    def _ask(self, now: float) -> None:
        """The next pages (up to ``PAGES_IN_FLIGHT``) of the peer asked."""
        peer, info = self.asking, self.engine.info
        pages = self.list.missing()[:PAGES_IN_FLIGHT]
        self.in_flight = set(pages)
        for page in pages:
            self.engine.send(p.Hashes(info.file_id, page, peer.token),
                             peer.addr)
        wait = max(MIN_HASH_WAIT_S, 2 * (peer.rtt or INITIAL_RTT))
        self.deadline = now + wait * 2 ** self.tries

    def on_timer(self, now: float) -> None:
        if self.deadline is None or now < self.deadline:
            return
        self.tries += 1
        if self.tries >= HASH_TRIES:
            self._next_peer(now)
        else:
            self._ask(now)

    def on_message(self, msg, addr, now: float) -> None:
        """A session-less answer: a HASH_PAGE, or RETRY / ERROR to a
        HASHES.  Only the peer asked is heard."""
        if self.asking is None or addr != self.asking.addr:
            return
        if isinstance(msg, p.HashPage):
            if self.list.add(msg):
                self.in_flight.discard(msg.page)
                if self.list.complete:
                    self._have_list(now)
                elif not self.in_flight:
                    self.tries = 0
                    self._ask(now)
        elif isinstance(msg, p.Retry):
            self.asking.token = msg.token
            self.tries += 1  # bounded like a lost answer
            if self.tries >= HASH_TRIES:
                self._next_peer(now)
            else:
                self._ask(now)
        elif isinstance(msg, p.Error):
            self._next_peer(now)  # no list there

    def _have_list(self, now: float) -> None:
        peer = self.asking
        if not self.list.matches():
            self.engine.emit(ev.BadHashList(peer_name(peer.addr),
                                            self.engine.since_start(now)))
            self.engine.failover.ban(peer.addr, now)
            self._next_peer(now)
            return
        self.book.hashes = self.list.joined()
        self.asking = self.list = self.deadline = None

    def stats(self) -> dict:
        book = self.book
        return {"piece_hashes": "unavailable" if self.unavailable
                else "checked",
                "pieces": book.pieces,
                "pieces_verified": sum(book.verified),
                "bad_pieces": book.bad_pieces,
                "bad_pieces_per_peer": dict(sorted(self.strikes.items()))}

    def take_verified(self) -> list[int]:
        taken, self.fresh = self.fresh, []
        return taken

    def touch_runs(self, runs: list) -> None:
        """The pieces the new chunks of ``runs`` (``(start, [data,
        ...])``) fall in may be ready to check."""
        size = pieces.PIECE_CHUNKS
        self.book.touch(self.engine.state.have, {
            piece for start, payloads in runs for piece in range(
                start // size, (start + len(payloads) - 1) // size + 1)})

    def to_verify(self) -> list[int]:
        return sorted(self.book.ready) if self.book.hashes else []

    # --------------------------------------------------- the pieces
    def check(self, piece: int, data, now: float) -> bool:
        book = self.book
        if book.hashes is None or piece not in book.ready:
            return bool(0 <= piece < book.pieces and book.verified[piece])
        if book.check(piece, data):
            book.mark_verified(piece)
            self.fresh.append(piece)
            if piece in book.bad_copy:
                self._blame(piece, book.liars(piece, data), now)
            self.engine.maybe_complete(now)
            return True
        self._bad(piece, data, now)
        return False

    def _bad(self, piece: int, data, now: float) -> None:
        book, engine = self.book, self.engine
        book.bad_pieces += 1
        book.ready.discard(piece)
        start, end = book.range(piece)
        senders = book.senders(piece)
        if len(senders) == 1 and 0 not in book.sender[start:end]:
            # Every chunk from one peer (none from disk): that one lied.
            self._blame(piece, senders, now)
        elif piece not in book.bad_copy:  # known once a good copy comes
            book.bad_copy[piece] = (book.chunk_crcs(piece, data),
                                    bytes(book.sender[start:end]))
        engine.state.discard(start, end)
        book.sender[start:end] = bytes(end - start)
        for transfer in engine.transfers.values():
            transfer.ranges.remove(start, end)  # no one else waits for it
        self._fetch_again(piece, senders, now)

    def _fetch_again(self, piece: int, senders: set, now: float) -> None:
        """The piece, whole, from one peer that holds it: one that did
        not send the bad copy if any, else the one with the fewest bad
        pieces."""
        engine = self.engine
        failover, scheduler = engine.failover, engine.scheduler
        alive = [peer for addr, peer in sorted(engine.peers.items())
                 if peer.alive and addr not in failover.gone
                 and scheduler.holds(peer, piece)]
        start, end = self.book.range(piece)
        wanted = p.RangeSet([(start, end)])
        if not alive:
            failover.give_up_on_chunks(wanted, now)
            return
        peer = min(alive, key=lambda peer: (
            engine.slots.get(peer.addr) in senders,
            scheduler.backoff.waiting(peer.addr),
            self.strikes.get(peer_name(peer.addr), 0), peer.rtt or 0))
        scheduler.start_transfer(peer, wanted, now)
        scheduler.dirty = True  # others' transfers lost the piece
        scheduler.settle(now)

    def _blame(self, piece: int, slots: set, now: float) -> None:
        """``slots`` sent bad data for ``piece``: once per piece each."""
        engine = self.engine
        by_slot = {slot: addr for addr, slot in engine.slots.items()}
        already = self.blamed.setdefault(piece, set())
        culprits = sorted(by_slot[slot] for slot in slots - already
                          if slot in by_slot)
        already |= slots
        if not culprits:
            return
        dropped = []
        for addr in culprits:
            name = peer_name(addr)
            self.strikes[name] = self.strikes.get(name, 0) + 1
            if self.strikes[name] == MAX_BAD_PIECES:
                dropped.append(name)
                engine.failover.ban(addr, now)
        engine.emit(ev.BadPiece(piece, tuple(map(peer_name, culprits)),
                                engine.since_start(now), tuple(dropped)))
