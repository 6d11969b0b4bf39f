"""P2P FACOM leecher: finds seeders, downloads a song in chunks, plays it.

``Download`` is the engine (one ``select`` loop; the GUI runs it in one
worker thread); the rest of the module is the terminal leecher:

    python3 leecher.py ping   [--seeders 127.0.0.1:9000,127.0.0.2:9000]
    python3 leecher.py search QUERY
    python3 leecher.py get NAME -o DIR [--method random] [--json STATS.json]

How losses are found: the REQUEST carries a seed, so the leecher knows the
exact order in which each seeder sends its first pass.  A chunk still
missing when three chunks sent after it have arrived is lost and is asked
for again at once (NACK).  Chunks whose first copy never came are asked for
after the seeder's DONE, or when the seeder falls silent; NACKed chunks are
asked for again when their retransmission does not come back in time.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import heapq
import math
import json
import os
import random
import select
import signal
import socket
import sys
import time
import zlib
from array import array
from dataclasses import dataclass, field
from operator import itemgetter

import cli
import protocol as p

DEFAULT_WINDOW = 256  # chunks a seeder may have in flight to us
RTO_FLOOR = 0.05
RTO_MAX = 2.0
REORDER_THRESHOLD = 3  # RFC 9002: lost once 3 later packets have arrived
MAX_SILENT_TIMEOUTS = 5  # consecutive silences before a seeder is gone
DEFAULT_TIMEOUT = 30.0  # give up after this long without any new chunk
SOCKET_BUFFER = 4 * 1024 * 1024
RECEIVE_BATCH = 1024  # datagrams taken per loop turn (and buffer slots)
SLOT = p.MAX_DATAGRAM + 1  # a longer datagram fills its slot: rejected
POLL_S = 0.1  # the loop looks at stop() and progress at least this often
RENACK_FLOOR = 0.01  # a NACKed chunk is asked for again after >= 10 ms
HASH_STEP = 256  # chunks of contiguous prefix hashed at a time
FILL_GAP = 8  # missing chunks a write may cover with zeros (see _fill)
IOV_MAX = min(os.sysconf("SC_IOV_MAX"), RECEIVE_BATCH)  # per pwritev
# A PING or SEARCH and its answer can be lost (30 % loss is a classroom
# setting): five tries leave 0.3^5 = 0.2 % of seeders wrongly "no answer".
# The wait doubles every second try (0.3, 0.3, 0.6, 0.6, 1.2 s: 3 s in
# all), so a seeder slowed down by a busy machine still counts.
PING_TIMEOUT = 0.3
PING_TRIES = 5
PING_PADDING = 44  # a 64-byte PING earns room for any PONG
SIDECAR_SUFFIX = ".part.json"
SAVE_EVERY_S = 5.0


# ----------------------------------------------------------- the socket
@dataclass
class Peer:
    """A seeder as the leecher knows it after PING."""

    addr: tuple[str, int]
    rtt: float | None = None
    token: int = 0
    name: str = ""
    files: int = 0
    load: int = 0
    order: int = p.Order.SEQUENTIAL
    ordered_percent: int = 50

    @property
    def alive(self) -> bool:
        return self.rtt is not None


class Endpoint:
    """The leecher's UDP socket; ``loss`` drops received datagrams on
    purpose so that the NACK path can be shown with any seeder."""

    def __init__(self, loss: float = 0.0, seed: int | None = None,
                 bind: tuple[str, int] = ("0.0.0.0", 0)):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
            except OSError:
                pass
        self.sock.bind(bind)
        self.sock.setblocking(False)
        arena = memoryview(bytearray(RECEIVE_BATCH * SLOT))
        self._slots = [arena[start:start + SLOT]
                       for start in range(0, len(arena), SLOT)]
        self.loss = loss
        self.rng = random.Random(seed)
        self.dropped = 0
        self.bad = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, msg, addr, session: int = 0) -> None:
        try:
            self.sock.sendto(p.encode(msg, session), addr)
        except (BlockingIOError, InterruptedError):
            pass  # like a loss on the way: timers will ask again
        except OSError:
            pass  # nobody there (ICMP); silence is handled by timeouts

    def receive_raw(self, timeout: float) -> list[tuple[memoryview, tuple]]:
        """What arrives within ``timeout`` (at least one wait), undecoded:
        views into buffer slots that the next call reuses, so whatever must
        outlive it is copied or written out before."""
        readable, _, _ = select.select([self.sock], [], [], max(0, timeout))
        received = []
        if not readable:
            return received
        recvfrom_into, loss = self.sock.recvfrom_into, self.loss
        for slot in self._slots:  # a slot that got no datagram stays free
            try:
                size, addr = recvfrom_into(slot)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue  # ICMP error for an earlier send
            if loss and self.rng.random() < loss:
                self.dropped += 1
                continue
            received.append((slot[:size], addr))
        return received

    def receive(self, timeout: float) -> list[tuple[p.Datagram, tuple]]:
        """Everything that arrives within ``timeout``, decoded."""
        received = []
        for view, addr in self.receive_raw(timeout):
            try:
                received.append((p.decode(view), addr))
            except p.ProtocolError:
                self.bad += 1
        return received


def backoff(first: float, tries: int) -> list[float]:
    """How long to wait after each try: doubling every second try."""
    return [first * 2 ** (attempt // 2) for attempt in range(tries)]


def ping(endpoint: Endpoint, addrs, timeout: float = PING_TIMEOUT,
         tries: int = PING_TRIES) -> dict[tuple, Peer]:
    """PING every seeder (a few tries) and return them all, alive or not."""
    peers = {addr: Peer(addr) for addr in addrs}
    nonces = {}
    for wait in backoff(timeout, tries):
        waiting = [a for a, peer in peers.items() if not peer.alive]
        if not waiting:
            break
        for addr in waiting:
            nonce = random.getrandbits(32)
            nonces[nonce] = (addr, time.monotonic())
            endpoint.send(p.Ping(nonce, PING_PADDING), addr)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(
                not peers[a].alive for a in waiting):
            for datagram, addr in endpoint.receive(
                    deadline - time.monotonic()):
                _take_pong(datagram.message, addr, peers, nonces)
    return peers


def _take_pong(msg, addr, peers, nonces) -> None:
    if not isinstance(msg, p.Pong) or msg.nonce not in nonces:
        return
    sent_to, sent_at = nonces[msg.nonce]
    if sent_to != addr:
        return
    peer = peers[addr]
    if peer.alive:
        return
    peer.rtt = time.monotonic() - sent_at
    peer.token, peer.name, peer.files, peer.load = (msg.token, msg.name,
                                                    msg.files, msg.load)
    peer.order, peer.ordered_percent = msg.order, msg.ordered_percent


@dataclass
class Song:
    """One file as found by SEARCH: the same SHA-256 on several seeders is
    one song with several sources."""

    info: p.FileInfo
    sources: list = field(default_factory=list)


def search(endpoint: Endpoint, peers: list[Peer], query: str,
           timeout: float = PING_TIMEOUT) -> list[Song]:
    if len(query.encode("utf-8")) > p.MAX_QUERY:
        raise cli.UsageError(f"search query longer than {p.MAX_QUERY} bytes")
    by_addr = {peer.addr: peer for peer in peers}
    pending = set(by_addr)
    songs: dict[bytes, Song] = {}
    for wait in backoff(timeout, PING_TRIES):  # answers get lost too
        for addr in pending:
            endpoint.send(p.Search(query, by_addr[addr].token), addr)
        deadline = time.monotonic() + wait
        while pending and time.monotonic() < deadline:
            for datagram, addr in endpoint.receive(
                    deadline - time.monotonic()):
                _take_result(datagram, addr, by_addr, pending, songs, query,
                             endpoint)
        if not pending:
            break
    return sorted(songs.values(), key=lambda s: s.info.name.lower())


def _take_result(datagram, addr, by_addr, pending, songs, query, endpoint):
    msg = datagram.message
    if addr not in pending:
        return
    if isinstance(msg, p.Retry):
        by_addr[addr].token = msg.token
        endpoint.send(p.Search(query, msg.token), addr)
    elif isinstance(msg, p.SearchResult):
        _merge(songs, msg.files, addr)
        if datagram.flags & p.FLAG_LAST:
            pending.discard(addr)


def _merge(songs: dict, files, addr) -> None:
    for info in files:
        song = songs.setdefault(info.sha256, Song(info))
        if addr not in song.sources:
            song.sources.append(addr)
            song.sources.sort()


def safe_name(song: p.FileInfo) -> str:
    """The file name to save under: never a path, never hidden."""
    name = os.path.basename(song.name.replace("\\", "/")).replace("\0", "")
    if not name or name.startswith("."):
        name = song.file_id.hex() + ".mp3"
    return name


# ------------------------------------------------------------- resuming
class Sidecar:
    """``NAME.part.json``: what an interrupted download already has.

    It names the song by SHA-256 and keeps each received chunk's CRC-32, so
    a new run re-checks the ``.part`` bytes before trusting them.
    """

    CHANGED = object()

    def __init__(self, path: str):
        self.path = path

    def load(self, info: p.FileInfo):
        """{chunk: crc}, ``CHANGED`` for another song, None for nothing."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
            if data["sha256"] != info.sha256.hex() \
                    or data["chunk_size"] != info.chunk_size:
                return self.CHANGED
            crcs = array("I")
            crcs.frombytes(base64.b64decode(data["crc32"]))
            if sys.byteorder == "little":
                crcs.byteswap()  # stored big-endian
            ranges = [(int(s), int(e)) for s, e in data["chunks"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        return {i: crcs[i] for start, end in ranges
                for i in range(max(start, 0), min(end, info.chunks,
                                                  len(crcs)))}

    def save(self, info: p.FileInfo, chunks: list[tuple[int, int]],
             crcs: array) -> None:
        """Record the ``chunks`` ranges as here, with their ``crcs``."""
        crcs = array("I", crcs)
        if sys.byteorder == "little":
            crcs.byteswap()
        data = {"sha256": info.sha256.hex(), "size": info.size,
                "chunk_size": info.chunk_size,
                "chunks": chunks,
                "crc32": base64.b64encode(crcs.tobytes()).decode("ascii")}
        temporary = self.path + ".tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(temporary, self.path)

    def remove(self) -> None:
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass


# --------------------------------------------------------------- transfers
@dataclass(eq=False)  # compared (and hashed) by identity
class Transfer:
    """One REQUEST to one seeder and what came back for it."""

    sid: int
    peer: Peer
    ranges: p.RangeSet
    order: int
    percent: int
    seed: int
    window: int
    last_heard: float  # the REQUEST's time until a chunk comes
    rto: float
    first_pass: array  # chunk indices in the order the seeder sends them
    checked_upto: int = 0  # first-pass places already examined for loss
    highest_place: int = -1
    highest_seq: int = -1
    limit: int = 0
    unacked: int = 0
    nack_round: int = 0
    silences: int = 0
    heard: bool = False
    done: bool = False
    dead: bool = False
    seeder_counters: p.Done | None = None
    stored: int = 0  # chunks of this transfer that we did not have yet
    ack_every: int = field(init=False)  # chunks between two ACKs
    base_rto: float = field(init=False)  # the RTO while the seeder talks
    # Smoothed time between two receive turns that brought this transfer's
    # chunks: on a slow (rate-limited) link it is far longer than the RTT,
    # and a silence is only a silence when it is much longer than that.
    arrival_gap: float = 0.0
    clock_offset: float = 0.0  # seeder's send_ms 0, in our timeline's time

    def __post_init__(self):
        self.ack_every = max(1, self.window // 4)
        self.base_rto = self.rto

    def request(self, file_id: bytes) -> p.Request:
        return p.Request(file_id, p.Order(self.order), tuple(self.ranges),
                         self.window, self.peer.token, self.percent,
                         self.seed)


class Timeline:
    """Per chunk: when it was sent, received and played, in seconds since
    the request (NaN: not known).  Arrays, so that a 200 MB song costs a
    few MB."""

    def __init__(self, chunks: int):
        self.sent = array("d", [math.nan]) * chunks
        self.received = array("d", [math.nan]) * chunks
        self.played = array("d", [math.nan]) * chunks
        self.retransmitted = bytearray(chunks)

    @staticmethod
    def get(series: array, index: int) -> float | None:
        value = series[index]
        return None if math.isnan(value) else value

    def rows(self):
        for i in range(len(self.sent)):
            yield {"chunk": i, "sent": _round(self.get(self.sent, i)),
                   "received": _round(self.get(self.received, i)),
                   "played": _round(self.get(self.played, i)),
                   "retransmitted": bool(self.retransmitted[i])}


@dataclass
class Options:
    method: str | None = None  # None: each seeder's own order
    window: int = DEFAULT_WINDOW
    timeout: float = DEFAULT_TIMEOUT
    loss: float = 0.0
    seed: int | None = None
    force: bool = False


class Download:
    """Download one song from its seeders into ``out_dir``.

    ``run()`` blocks until the file is complete and verified (returns the
    final path) or raises ``cli.RunError``.  ``stop()`` may be called from
    another thread.  ``events`` (a ``queue.Queue``) receives tuples for a
    GUI; ``player`` (see player.py) is fed the contiguous prefix.
    """

    def __init__(self, endpoint: Endpoint, song: Song, peers: dict,
                 out_dir: str, options: Options | None = None, events=None,
                 player=None, log=None):
        self.endpoint = endpoint
        self.song = song
        self.info = song.info
        self.peers = peers
        self.options = options or Options()
        self.events = events
        self.player = player
        self.log = log or (lambda line: None)
        self.rng = random.Random(self.options.seed)
        self.name = safe_name(song.info)
        self.final_path = os.path.join(out_dir, self.name)
        self.part_path = self.final_path + ".part"
        self.sidecar_path = self.final_path + SIDECAR_SUFFIX
        self.crcs = array("I", bytes(4 * song.info.chunks))  # for resuming
        # Each chunk's place in the first pass of the transfer it belongs
        # to (one array for all transfers: a chunk is in one at a time).
        self.place = array("i", [-1]) * song.info.chunks
        self.resumed = 0
        self._untrusted = False
        self.player_attached_at = None
        self.state = p.ReceiveState(self.info.chunks)
        self.transfers: dict[tuple, Transfer] = {}
        self.nacked_at: dict[int, float] = {}  # chunk -> its last NACK
        # When a NACKed chunk that has not come is asked for again: a heap
        # of (due, chunk) finds the next one; stale entries are skipped.
        self._renack_due: dict[int, float] = {}
        self._renack_heap: list = []
        self.renack_after = 0.3
        self._nack_rtt = None  # smoothed 2 x (NACK -> retransmission)
        self._fresh: list = []  # (chunk, data view) to write this turn
        self._unchecked: list = []  # runs written since the last CRC pass
        self._unwritten = p.RangeSet()  # chunks whose write failed
        self._zeros = bytes(song.info.chunk_size)
        self._digest = hashlib.sha256()  # of the file's contiguous prefix
        self._hashed_chunks = 0
        self.orphans = p.RangeSet()  # chunks no live seeder is asked for
        self.gone: set = set()  # seeders that stopped answering
        self._next_orphan_ping = 0.0
        self.nacks_sent = 0
        self.retransmitted = 0
        # Chunks stored per seeder address: counted by each transfer, and
        # here for chunks of no (more) known transfer.
        self.stored_from: dict[tuple, int] = {}
        self.times = Timeline(self.info.chunks)
        self.fed_chunks = 0
        self.started = None
        self.finished = None
        self._stop = False
        self._fd = None
        self.on_turn = None  # called once per loop turn (progress display)

    # ------------------------------------------------------------ control
    def stop(self) -> None:
        self._stop = True

    def _emit(self, *event) -> None:
        if self.events is not None:
            self.events.put(event)

    def run(self) -> str:
        self._open_part()
        self.started = time.monotonic()
        try:
            self._resume()
            if not self.state.complete:
                self._start_transfers(self._sources(), self.state.missing)
            self._loop()
            self._feed_player()
            self._finish()
        except BaseException:
            self._save_progress()  # Ctrl-C, failure, window closed: resume
            raise
        finally:
            self._cancel_all()
            self._close_part()
        self.finished = time.monotonic()
        self._emit("complete", self.final_path)
        return self.final_path

    def _sources(self) -> list[Peer]:
        alive = [self.peers[a] for a in self.song.sources
                 if a in self.peers and self.peers[a].alive]
        if not alive:
            raise cli.RunError("no seeder with this song is alive")
        return alive

    # -------------------------------------------------------------- files
    def _open_part(self) -> None:
        try:
            self._fd = os.open(self.part_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise cli.RunError(f"cannot write {self.part_path}: "
                               f"{exc.strerror or exc}") from None
        self._lock_part()
        try:
            os.ftruncate(self._fd, self.info.size)
        except OSError as exc:
            self._close_part()
            raise cli.RunError(f"cannot write {self.part_path}: "
                               f"{exc.strerror or exc}") from None

    def _lock_part(self) -> None:
        """One leecher per .part file: a second one (terminal or window)
        would write the same file and rename it under the first."""
        import fcntl
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._close_part()
            raise cli.RunError(f"another leecher is already writing "
                               f"{self.part_path}") from None

    def _resume(self) -> None:
        """Take back the chunks an interrupted run left in ``.part``."""
        kept = Sidecar(self.sidecar_path).load(self.info)
        if kept is None:
            return
        if kept is Sidecar.CHANGED:
            self.log("the song changed on the seeders since the last try: "
                     "starting over")
            return
        good = 0
        for index, crc in kept.items():
            data = os.pread(self._fd, self._chunk_length(index),
                            index * self.info.chunk_size)
            if zlib.crc32(data) == crc:  # re-check what the disk holds
                self.state.add(index)
                self.crcs[index] = crc
                good += 1
        self.resumed = good
        self.log(f"resuming: {good} of {self.info.chunks} chunks already "
                 f"here")
        self._emit("resumed", good)

    def _save_progress(self) -> None:
        if self._fd is None or not self.state.received or self._untrusted:
            return
        try:
            with contextlib.suppress(cli.RunError):
                self._write_fresh()  # stopped in mid-turn: write it first
            self._checksum_written()
            kept = p.RangeSet(self.state.present())
            for start, end in self._unwritten:
                kept.remove(start, end)
            Sidecar(self.sidecar_path).save(self.info, list(kept), self.crcs)
        except OSError as exc:
            self.log(f"cannot save progress to {self.sidecar_path}: "
                     f"{exc.strerror or exc}")

    def _checksum_written(self) -> None:
        """The CRC-32 of each chunk written since the last save, as the
        file holds it: the next run trusts a chunk only if it still
        matches.  Done here, not per chunk, because saves are rare."""
        size = self.info.chunk_size
        for start, end in self._unchecked:
            for first in range(start, end, 512):  # reads of at most 700 KB
                last = min(end, first + 512)
                block = memoryview(os.pread(self._fd, (last - first) * size,
                                            first * size))
                for index in range(first, last):
                    offset = (index - first) * size
                    self.crcs[index] = zlib.crc32(block[offset:offset + size])
        self._unchecked.clear()

    def _close_part(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _finish(self) -> None:
        os.fsync(self._fd)
        self._hash_prefix()
        digest = self._digest
        if digest.digest() != self.info.sha256:
            self._untrusted = True  # keep no sidecar: start over next time
            Sidecar(self.sidecar_path).remove()
            raise cli.RunError(f"SHA-256 of {self.name} does not match the "
                               f"seeders' (partial file kept)")
        os.replace(self.part_path, self.final_path)
        Sidecar(self.sidecar_path).remove()

    def _hash_prefix(self) -> None:
        """Hash the file's contiguous prefix as it grows (in steps, and all
        of it at the end), so little is left to hash when it is complete."""
        ready = self.state.contiguous()
        new = ready - self._hashed_chunks
        if new <= 0 or (new < HASH_STEP and ready < self.info.chunks):
            return
        start = self._hashed_chunks * self.info.chunk_size
        end = min(self.info.size, ready * self.info.chunk_size)
        while start < end:
            block = os.pread(self._fd, min(end - start, 1 << 20), start)
            if not block:
                break  # shorter than it should be: the digest says so
            self._digest.update(block)
            start += len(block)
        first = self._hashed_chunks * self.info.chunk_size
        self._hashed_chunks = ready
        if hasattr(os, "posix_fadvise"):
            # Hashed, so not read again: have the kernel start writing it
            # to disk now, so that the fsync at the end has less to do.
            os.posix_fadvise(self._fd, first, end - first,
                             os.POSIX_FADV_DONTNEED)

    # ------------------------------------------------------------- starts
    def _start_transfers(self, peers: list[Peer], wanted: p.RangeSet):
        """Split ``wanted`` chunks among ``peers`` and REQUEST each share."""
        wanted_list = list(wanted.values())
        shares = p.split_among(len(wanted_list), len(peers))
        for peer, share in zip(peers, shares):
            chunks = [wanted_list[i] for start, end in share
                      for i in range(start, end)]
            if chunks:
                self._start_transfer(peer, p.RangeSet(p.runs(chunks)))

    def _start_transfer(self, peer: Peer, ranges: p.RangeSet) -> None:
        pairs = list(ranges)
        if len(pairs) > p.MAX_REQUEST_RANGES:  # scattered: several requests
            for start in range(0, len(pairs), p.MAX_REQUEST_RANGES):
                self._start_transfer(peer, p.RangeSet(
                    pairs[start:start + p.MAX_REQUEST_RANGES]))
            return
        if self.options.method:
            order = p.ORDER_NAMES[self.options.method]
            percent = 50
        else:
            order, percent = p.Order(peer.order), peer.ordered_percent
        seed = self.rng.getrandbits(32)
        first_pass = array("I", p.send_order(ranges, order, seed,
                                             percent / 100))
        for place, index in enumerate(first_pass):
            self.place[index] = place
        now = time.monotonic()
        sid = self.rng.getrandbits(32) or 1
        transfer = Transfer(
            sid, peer, ranges, order, percent, seed, self.options.window,
            now, self._base_rto(peer), first_pass,
            limit=self.options.window,
            clock_offset=now - self.started + (peer.rtt or 0) / 2)
        self.transfers[(peer.addr, sid)] = transfer
        self.endpoint.send(transfer.request(self.info.file_id), peer.addr,
                           sid)
        self.log(f"asked {cli.format_address(peer.addr)} for "
                 f"{ranges.count()} chunks ({p.order_name(order)})")
        self._emit("request", cli.format_address(peer.addr), ranges.count())

    @staticmethod
    def _base_rto(peer: Peer) -> float:
        return max(RTO_FLOOR, 4 * (peer.rtt or 0.05))

    # --------------------------------------------------------------- loop
    def _loop(self) -> None:
        last_progress = last_save = time.monotonic()
        received_before = 0
        while not self.state.complete:
            if time.monotonic() - last_save > SAVE_EVERY_S:
                self._save_progress()  # survives even a kill -9
                last_save = time.monotonic()
            if self._stop:
                raise cli.RunError("stopped (partial file kept)")
            now = time.monotonic()
            self._take(self.endpoint.receive_raw(self._next_timer(now) - now))
            now = time.monotonic()
            self._check_timers(now)
            self._feed_player()
            self._hash_prefix()
            if self.on_turn:
                self.on_turn()
            if self.state.received != received_before:
                received_before = self.state.received
                last_progress = now
            elif now - last_progress > self.options.timeout:
                why = ("all seeders with this song are gone" if self.orphans
                       else f"no progress for {self.options.timeout:.0f} s")
                raise cli.RunError(f"{why} (partial file kept)")

    def _next_timer(self, now: float) -> float:
        wake = now + POLL_S
        for transfer in self._open_transfers():
            wake = min(wake, transfer.last_heard + transfer.rto)
        due = self._next_renack()
        if due is not None:
            wake = min(wake, due)
        return max(now, wake)

    def _open_transfers(self) -> list[Transfer]:
        return [t for t in self.transfers.values()
                if not t.dead and not (t.done and not self._missing_of(t))]

    def _missing_of(self, transfer: Transfer) -> p.RangeSet:
        return self.state.missing_in(transfer.ranges)

    def _take(self, received: list) -> None:
        """One turn's datagrams: chunks on the fast path, the rest decoded.

        The loop runs once per chunk, the hottest code of the leecher, so it
        does only what must be done per chunk, with locals and without
        calls where it can: ACKs when due, the furthest first-pass place,
        and for a new chunk its times and a queued write.  Writes, loss
        detection and timers are per turn.  The chunks' data are views of
        the endpoint's buffer: they are written out before the next receive.
        """
        heard = {}  # transfers that sent chunks this turn (ordered set)
        chunk_fields, data_at = p.chunk_fields, p.CHUNK_DATA_AT
        file_id, total, last = self.info.file_id, self.info.chunks, \
            self.info.chunks - 1
        full, last_length = self.info.chunk_size, self._chunk_length(last)
        transfers, places, add = self.transfers, self.place, self.state.add
        fresh, received_at, sent_at = (self._fresh, self.times.received,
                                       self.times.sent)
        started, monotonic = self.started, time.monotonic
        nacked_at = self.nacked_at
        for view, addr in received:
            fields = chunk_fields(view)
            if fields is None:
                self._on_message(view, addr)
                continue
            session, flags, chunk_file, index, tx_seq, send_ms = fields
            data = view[data_at:]
            if chunk_file != file_id or index >= total or len(data) != (
                    full if index != last else last_length):
                self.endpoint.bad += 1
                continue
            retransmit = flags & p.FLAG_RETRANSMIT
            transfer = transfers.get((addr, session))
            if transfer is not None:
                heard[transfer] = None
                if tx_seq > transfer.highest_seq:
                    transfer.highest_seq = tx_seq
                transfer.unacked += 1
                if transfer.unacked >= transfer.ack_every:
                    self._ack(transfer)
                place = places[index]
                if not retransmit and transfer.highest_place < place \
                        < len(transfer.first_pass) \
                        and transfer.first_pass[place] == index:
                    transfer.highest_place = place
            if not add(index):
                continue
            now = monotonic()
            fresh.append((index, data))
            received_at[index] = now - started
            if transfer is not None:
                sent_at[index] = transfer.clock_offset + send_ms / 1000
                transfer.stored += 1
            else:  # a late chunk of a session we gave up on
                self.stored_from[addr] = self.stored_from.get(addr, 0) + 1
            asked_at = self._forget_nack(index) if nacked_at else None
            if retransmit:
                self._on_retransmission(index, asked_at, transfer, now)
            if self.events is not None:
                self._emit("chunk", index, self.times.get(sent_at, index),
                           received_at[index], bool(retransmit),
                           cli.format_address(addr))
        self._write_fresh()
        now = time.monotonic()
        for transfer in heard:
            streaming = not transfer.done  # the first pass, paced by the link
            if streaming and transfer.heard and not transfer.silences:
                gap = now - transfer.last_heard
                transfer.arrival_gap = gap if not transfer.arrival_gap else \
                    transfer.arrival_gap + (gap - transfer.arrival_gap) / 8
            transfer.heard = True
            transfer.last_heard = now
            transfer.silences = 0
            transfer.rto = max(transfer.base_rto, 4 * transfer.arrival_gap) \
                if streaming else transfer.base_rto
            self._detect_losses(transfer, now)

    def _on_message(self, view: memoryview, addr) -> None:
        try:
            datagram = p.decode(view)
        except p.ProtocolError:
            self.endpoint.bad += 1
            return
        msg = datagram.message
        transfer = self.transfers.get((addr, datagram.session))
        if transfer is None:
            return  # a reply to an old or unknown session
        if isinstance(msg, p.Done):
            self._on_done(transfer, msg)
        elif isinstance(msg, p.Retry):
            transfer.peer.token = msg.token
            self.endpoint.send(transfer.request(self.info.file_id), addr,
                               transfer.sid)
        elif isinstance(msg, p.Error):
            self.log(f"{cli.format_address(addr)} refused: {msg.text}")
            self._give_up_on(transfer)

    # ------------------------------------------------------------- chunks
    def _chunk_length(self, index: int) -> int:
        return min(self.info.chunk_size,
                   self.info.size - index * self.info.chunk_size)

    def _on_retransmission(self, index, asked_at, transfer, now) -> None:
        """A new chunk that came as a retransmission (NACKed at
        ``asked_at``, if we know when)."""
        self.retransmitted += 1
        self.times.retransmitted[index] = 1
        if asked_at is None:
            return
        # Learn how long a NACK takes to come back: ask again after twice
        # that (smoothed), never sooner than twice the seeder's RTT.
        sample = 2 * (now - asked_at)
        self._nack_rtt = sample if self._nack_rtt is None \
            else 0.8 * self._nack_rtt + 0.2 * sample
        rtt = (transfer.peer.rtt or 0.0) if transfer is not None else 0.0
        self.renack_after = max(RENACK_FLOOR, 2 * rtt, self._nack_rtt)

    def _ack(self, transfer: Transfer) -> None:
        transfer.unacked = 0
        transfer.limit = max(transfer.limit,
                             transfer.highest_seq + 1 + transfer.window)
        self.endpoint.send(p.Ack(transfer.limit), transfer.peer.addr,
                           transfer.sid)

    def _detect_losses(self, transfer: Transfer, now: float) -> None:
        """NACK the first-pass chunks that three later ones overtook."""
        upto = transfer.highest_place - REORDER_THRESHOLD
        if upto <= transfer.checked_upto:
            return
        first_pass, have = transfer.first_pass, self.state.have
        lost = [first_pass[k] for k in range(transfer.checked_upto, upto)
                if not have[first_pass[k]]]
        transfer.checked_upto = upto
        self._nack(transfer, [i for i in lost if i not in self.nacked_at],
                   now)

    def _write_fresh(self) -> None:
        """Write this turn's new chunks: one ``pwritev`` per run of chunks
        that follow each other in the file (short gaps filled, see
        ``_fill``)."""
        fresh = self._fresh
        if not fresh:
            return
        fresh.sort(key=itemgetter(0))
        self._fresh = []
        first = previous = fresh[0][0]
        views = []
        for index, data in fresh:
            if index != previous + 1 and views \
                    and not self._fill(views, previous + 1, index):
                self._write_run(first, views, fresh)
                first, views = index, []
            views.append(data)
            previous = index
        self._write_run(first, views, fresh)

    def _fill(self, views: list, start: int, end: int) -> bool:
        """Bridge a gap of a few chunks that are all still missing with
        zeros, what the file holds there anyway (their data is written when
        they come; nothing reads or trusts a missing chunk), so that a lost
        chunk does not cost a write call of its own.  False: not bridged."""
        if end - start > FILL_GAP or any(self.state.have[start:end]):
            return False
        views.extend([self._zeros] * (end - start))
        return True

    def _write_run(self, first: int, views: list, fresh: list) -> None:
        """Write chunks ``first``, ``first + 1``... of the sorted ``fresh``;
        when that fails, none from ``first`` on is to be trusted on resume.
        """
        try:
            self._write_at(views, first)
        except cli.RunError:
            for index, _ in fresh:
                if index >= first:
                    self._unwritten.add(index)
            raise
        self._unchecked.append((first, first + len(views)))

    def _write_at(self, views: list, first: int) -> None:
        """Write the data of chunks ``first``, ``first + 1``... in order."""
        size = self.info.chunk_size
        try:
            for part in range(0, len(views), IOV_MAX):
                block = views[part:part + IOV_MAX]
                offset = (first + part) * size
                end = min(self.info.size, offset + len(block) * size)
                written = os.pwritev(self._fd, block, offset)
                if written < end - offset:  # the disk is full, most likely
                    self._write_rest(b"".join(block)[written:],
                                     offset + written)
        except OSError as exc:
            raise cli.RunError(f"cannot write {self.part_path}: "
                               f"{exc.strerror or exc} (partial file kept)"
                               ) from None

    def _write_rest(self, data: bytes, offset: int) -> None:
        while data:
            written = os.pwrite(self._fd, data, offset)
            if not written:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            data, offset = data[written:], offset + written

    def _on_done(self, transfer: Transfer, done: p.Done) -> None:
        transfer.done = True
        transfer.seeder_counters = done
        now = time.monotonic()
        transfer.last_heard = now
        self._nack(transfer, self._due_for_nack(transfer, now), now)

    def _due_for_nack(self, transfer: Transfer, now: float) -> list[int]:
        return [i for i in self._missing_of(transfer).values()
                if now >= self._renack_due.get(i, now)]

    def _nack(self, transfer: Transfer, chunks: list[int], now: float):
        if not chunks:
            return
        transfer.nack_round = (transfer.nack_round + 1) & 0xFFFF
        transfer.limit = max(transfer.limit,
                             transfer.highest_seq + 1 + transfer.window)
        for index in chunks:
            due = now + self.renack_after
            self.nacked_at[index] = now
            self._renack_due[index] = due
            heapq.heappush(self._renack_heap, (due, index))
        pairs = list(p.runs(sorted(set(chunks))))
        for start in range(0, len(pairs), p.MAX_NACK_RANGES):
            nack = p.Nack(transfer.limit, transfer.nack_round,
                          tuple(pairs[start:start + p.MAX_NACK_RANGES]))
            self.endpoint.send(nack, transfer.peer.addr, transfer.sid)
            self.nacks_sent += 1
        self._emit("nack", chunks)

    # -------------------------------------------------------------- timers
    def _check_timers(self, now: float) -> None:
        for transfer in self._open_transfers():
            if now - transfer.last_heard >= transfer.rto:
                self._on_silence(transfer, now)
        self._renack_overdue(now)
        self._adopt_orphans(now)

    def _renack_overdue(self, now: float) -> None:
        overdue = []
        while (due := self._next_renack()) is not None and due <= now:
            overdue.append(heapq.heappop(self._renack_heap)[1])
        if not overdue:
            return
        for transfer in self._open_transfers():
            mine = [i for i in overdue if i in transfer.ranges]
            self._nack(transfer, [i for i in mine
                                  if self._sent_yet(transfer, i)], now)
        for index in overdue:  # not asked again: forget the NACK
            if self._renack_due.get(index, now) <= now:
                self._forget_nack(index)

    def _sent_yet(self, transfer: Transfer, index: int) -> bool:
        """Has the seeder sent chunk ``index`` yet, as far as we know?  On
        a slow link a NACK (after a silence) can name chunks that are
        still waiting for their turn: asking again and again for those is
        a NACK storm; they come with the first pass, and if that copy is
        lost, three later chunks tell (_detect_losses)."""
        return transfer.done or self.place[index] <= transfer.highest_place

    def _next_renack(self) -> float | None:
        """When the next NACKed chunk that has not come is due again."""
        heap, due_of = self._renack_heap, self._renack_due
        while heap and due_of.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # the chunk came, or was NACKed again since
        return heap[0][0] if heap else None

    def _forget_nack(self, index: int) -> float | None:
        """Chunk ``index`` came (or no one asks for it any more): when it
        was last NACKed, if it was."""
        self._renack_due.pop(index, None)
        return self.nacked_at.pop(index, None)

    def _on_silence(self, transfer: Transfer, now: float) -> None:
        transfer.silences += 1
        transfer.last_heard = now
        transfer.rto = min(RTO_MAX, transfer.rto * 2)
        if transfer.silences > MAX_SILENT_TIMEOUTS:
            self.log(f"{cli.format_address(transfer.peer.addr)} stopped "
                     f"answering")
            self._give_up_on(transfer)
        elif not transfer.heard:
            self.endpoint.send(transfer.request(self.info.file_id),
                               transfer.peer.addr, transfer.sid)
        else:
            # Silence with credit left means everything in flight was lost.
            transfer.limit = max(transfer.limit,
                                 transfer.highest_seq + 1) + transfer.window
            self.endpoint.send(p.Ack(transfer.limit), transfer.peer.addr,
                               transfer.sid)
            # Silent twice, or DONE seen: the rest of the first pass (or the
            # DONE itself) was lost.  The seeder skips chunks not yet sent.
            if transfer.done or transfer.silences >= 2:
                self._nack(transfer, self._due_for_nack(transfer, now), now)

    def _give_up_on(self, transfer: Transfer) -> None:
        """A seeder is gone: move its missing share to those still here."""
        addr = transfer.peer.addr
        self.gone.add(addr)
        missing = p.RangeSet()
        for victim in self._open_transfers():
            if victim.peer.addr == addr:
                victim.dead = True
                self.endpoint.send(p.Cancel(), addr, victim.sid)
                for start, end in self._missing_of(victim):
                    missing.add(start, end)
        transfer.dead = True
        for start, end in self._missing_of(transfer):
            missing.add(start, end)
        self._emit("seeder-gone", cli.format_address(addr))
        if not missing:
            return
        live = {t.peer.addr for t in self.transfers.values()} - self.gone
        alive = [self.peers[a] for a in sorted(live)]
        if alive:
            self._start_transfers(alive, missing)
            return
        if not self.orphans:
            self.log(f"no seeder with this song answers: asking again for "
                     f"up to {self.options.timeout:.0f} s")
        for start, end in missing:
            self.orphans.add(start, end)

    def _adopt_orphans(self, now: float) -> None:
        """Seeders that were gone may be back: ask every source again."""
        if not self.orphans or now < self._next_orphan_ping:
            return
        found = ping(self.endpoint, self.song.sources)
        self._next_orphan_ping = time.monotonic() + 1.0
        alive = [peer for peer in found.values() if peer.alive]
        if alive:
            self.peers.update(found)
            self.gone -= {peer.addr for peer in alive}
            wanted = self.state.missing.intersection(self.orphans)
            self.orphans = p.RangeSet()
            self.log("seeders back: " + ", ".join(
                cli.format_address(peer.addr) for peer in alive))
            self._start_transfers(alive, wanted)

    def _cancel_all(self) -> None:
        for transfer in self.transfers.values():
            if not transfer.dead:
                self.endpoint.send(p.Cancel(), transfer.peer.addr,
                                   transfer.sid)

    # -------------------------------------------------------------- player
    def _feed_player(self) -> None:
        if self.player is None:
            return
        ready = self.state.contiguous()
        if ready <= self.fed_chunks:
            if not self.info.chunks:  # an empty file: nothing will come
                self.player.finish_input()
            return
        start = self.fed_chunks * self.info.chunk_size
        end = min(self.info.size, ready * self.info.chunk_size)
        self.player.feed(os.pread(self._fd, end - start, start))
        self.fed_chunks = ready
        if ready == self.info.chunks:
            self.player.finish_input()

    def attach_player(self, player) -> None:
        """Feed ``player`` (player.Player) the file as it arrives; start
        the player right after this."""
        self.player = player
        self.player_attached_at = time.monotonic()

    def record_played(self, byte_end: int, when: float) -> None:
        """Player callback: every byte before ``byte_end`` has played."""
        if self.started is None:
            return
        self._emit("played", byte_end, when - self.started)
        last = min(self.info.chunks, -(-byte_end // self.info.chunk_size))
        for index in range(last - 1, -1, -1):
            if self.times.played[index] == self.times.played[index]:
                break  # not NaN: played already, and so is all before it
            self.times.played[index] = when - self.started

    # --------------------------------------------------------------- stats
    def stats(self, timeline: bool = True) -> dict:
        end = self.finished or time.monotonic()
        elapsed = end - (self.started or end)
        return {
            "file": self.name,
            "size": self.info.size,
            "sha256": self.info.sha256.hex(),
            "chunks": self.info.chunks,
            "chunks_received": self.state.received,
            "duplicates": self.state.duplicates,
            "nacks_sent": self.nacks_sent,
            "chunks_retransmitted": self.retransmitted,
            "datagrams_dropped_by_leecher": self.endpoint.dropped,
            "bad_datagrams": self.endpoint.bad,
            "elapsed_s": round(elapsed, 4),
            "goodput_Bps": round(self.bytes_this_run / elapsed, 1)
            if elapsed and self.state.complete else 0.0,
            "per_seeder": self.per_seeder,
            "seeders_gone": sorted({cli.format_address(t.peer.addr)
                                    for t in self.transfers.values()
                                    if t.dead}),
            **({"timeline": self.timeline()} if timeline else {}),
            **self.audio_stats(),
        }

    @property
    def bytes_this_run(self) -> int:
        """Bytes received by this run: a resumed run had some already."""
        return min(self.info.size, (self.state.received - self.resumed)
                   * self.info.chunk_size)

    @property
    def per_seeder(self) -> dict[str, int]:
        """Chunks stored per seeder, by ``IP:port``."""
        counts = dict(self.stored_from)
        for transfer in list(self.transfers.values()):
            if transfer.stored:
                addr = transfer.peer.addr
                counts[addr] = counts.get(addr, 0) + transfer.stored
        return {cli.format_address(addr): count
                for addr, count in counts.items()}

    def audio_stats(self) -> dict:
        """Start-up, stalls and continuity of what the player played."""
        if self.player is None:
            return {}
        played = self.player.stats
        startup = played.get("startup_s")
        if startup is not None:  # from the request, not from play()
            startup += self.player_attached_at - self.started
        return {"startup_s": _round(startup), "stalls": played["stalls"],
                "stall_s": _round(played["stall_s"]),
                "played_s": _round(played["played_s"]),
                "continuity": _round(self.continuity(startup))}

    def continuity(self, startup: float | None) -> float | None:
        """Share of chunks that arrived before their playback deadline
        (CoolStreaming's continuity index).  A chunk's deadline is when it
        would play had playback never stalled: first sound + its media
        time."""
        if startup is None or not self.state.complete:
            return None
        # The player scanned every byte it was fed: scanning the whole file
        # again costs ~1 s of Python per 50 MB (and the window's thread).
        media = self.player.time_map(self.info.size)
        if media is None:
            import player
            media = player.scan_file(self.final_path)
        on_time = sum(
            1 for i in range(self.info.chunks)
            if math.isnan(self.times.received[i])  # here before (resumed)
            or self.times.received[i] <= startup + media.time_at(
                i * self.info.chunk_size))
        return on_time / self.info.chunks

    def timeline(self) -> list[dict]:
        return list(self.times.rows())


def _round(value):
    return None if value is None else round(value, 4)


# ------------------------------------------------------------ terminal UI
def read_seeders(text: str | None) -> list[tuple[str, int]]:
    """--seeders, else a seeders.txt (cwd, then project), else the class."""
    if text:
        return [cli.parse_address(part) for part in text.split(",")
                if part.strip()]
    for folder in (os.getcwd(), cli.PROJECT_DIR):
        path = os.path.join(folder, "seeders.txt")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                lines = [line.split("#")[0].strip() for line in handle]
            found = [cli.parse_address(line) for line in lines if line]
            if found:
                return found
    return list(cli.CLASSROOM_SEEDERS)


def find_alive(endpoint: Endpoint, addrs, out=print) -> dict[tuple, Peer]:
    peers = ping(endpoint, addrs)
    for peer in peers.values():
        where = cli.format_address(peer.addr)
        if peer.alive:
            out(f"  {where:<21} alive  {peer.rtt * 1000:6.1f} ms  "
                f"{peer.files} file(s), {p.order_name(p.Order(peer.order))}"
                f", load {peer.load}")
        else:
            out(f"  {where:<21} no answer")
    if not any(peer.alive for peer in peers.values()):
        ip, port = next(iter(peers))
        raise cli.RunError(f"no seeder is alive (start one: python3 "
                           f"seeder.py -i {ip} -p {port})")
    return peers


def pick_song(songs: list[Song], name: str) -> Song:
    exact = [s for s in songs if s.info.name.lower() == name.lower()]
    if len(exact) == 1 or len(songs) == 1:
        return (exact or songs)[0]
    if not songs:
        raise cli.UsageError(f"no seeder has a song matching {name!r}")
    names = ", ".join(s.info.name for s in songs[:5])
    raise cli.UsageError(f"{name!r} matches several songs: {names}")


def format_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else \
                f"{size:.1f} {unit}"
        size /= 1000
    return ""


def print_songs(songs: list[Song]) -> None:
    if not songs:
        print("no songs found")
        return
    print(f"{'name':<36} {'size':>9} {'duration':>8}  seeders")
    for song in songs:
        info = song.info
        duration = (f"{info.duration_ms // 60000}:"
                    f"{info.duration_ms // 1000 % 60:02d}"
                    if info.duration_ms else "?")
        sources = ", ".join(cli.format_address(a) for a in song.sources)
        print(f"{info.name[:36]:<36} {format_size(info.size):>9} "
              f"{duration:>8}  {len(song.sources)} ({sources})")


class Progress:
    """A bar on a terminal; a plain line per second otherwise."""

    def __init__(self, download: Download, stream=sys.stdout):
        self.download = download
        self.stream = stream
        self.tty = stream.isatty()
        self.last = 0.0
        self.shown = None  # (chunks, NACKs, resent) of the last line

    def update(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < (0.2 if self.tty else 1.0):
            return
        d = self.download
        counts = (d.state.received, d.nacks_sent, d.retransmitted)
        if not self.tty and counts == self.shown:
            return  # a log gets no line that says nothing new
        self.last, self.shown = now, counts
        done, total = d.state.received, d.info.chunks
        elapsed = now - (d.started or now)
        rate = d.bytes_this_run / elapsed if elapsed else 0
        text = (f"{100 * done // max(total, 1):3d}% {done}/{total} chunks "
                f"{format_size(rate)}/s  nacks {d.nacks_sent}  "
                f"resent {d.retransmitted}")
        if d.player is not None:
            text += f"  play {d.player.position_s:5.1f} s ({d.player.state})"

        if self.tty:
            width = 30
            filled = width * done // max(total, 1)
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r[{bar}] {text}")
            if force:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def report(stats: dict) -> str:
    lines = [
        f"file            {stats['file']} ({format_size(stats['size'])}, "
        f"SHA-256 verified)",
        f"chunks          {stats['chunks']} "
        f"({stats['chunks_received']} received, "
        f"{stats['duplicates']} duplicates)",
        f"nacks sent      {stats['nacks_sent']}",
        f"retransmitted   {stats['chunks_retransmitted']} chunks",
        f"elapsed         {stats['elapsed_s']:.2f} s",
        f"goodput         {format_size(stats['goodput_Bps'])}/s",
    ]
    for seeder, count in sorted(stats["per_seeder"].items()):
        lines.append(f"  from {seeder:<21} {count} chunks")
    if stats["seeders_gone"]:
        lines.append("seeders gone    " + ", ".join(stats["seeders_gone"]))
    if "stalls" in stats:
        def seconds(key):
            value = stats[key]
            return "-" if value is None else f"{value:.2f} s"
        continuity = stats["continuity"]
        lines += [
            f"start-up        {seconds('startup_s')} (request to first sound)",
            f"stalls          {stats['stalls']} ({seconds('stall_s')} "
            f"stalled)",
            "continuity      " + ("-" if continuity is None else
                                   f"{100 * continuity:.1f} % of chunks "
                                   f"before their deadline"),
            f"played          {seconds('played_s')}",
        ]
    return "\n".join(lines)


def write_json(path: str, stats: dict, timeline=None) -> None:
    """Write the statistics; ``timeline`` rows are streamed one by one so
    that a long song never sits in memory as a list of dicts."""
    try:
        with open(path, "w", encoding="utf-8") as handle:
            head = json.dumps(stats, indent=1)
            if timeline is None:
                handle.write(head)
                return
            handle.write(head[:-2] + ',\n "timeline": [')
            for n, row in enumerate(timeline):
                handle.write((",\n  " if n else "\n  ") + json.dumps(row))
            handle.write("\n ]\n}\n")
    except OSError as exc:
        raise cli.RunError(f"cannot write {path}: {exc.strerror or exc}")


def _endpoint(args) -> Endpoint:
    return Endpoint(getattr(args, "loss", 0.0), getattr(args, "rng_seed",
                                                         None))


def cmd_ping(args) -> int:
    endpoint = _endpoint(args)
    try:
        find_alive(endpoint, read_seeders(args.seeders))
    finally:
        endpoint.close()
    return cli.EXIT_OK


def cmd_search(args) -> int:
    endpoint = _endpoint(args)
    try:
        peers = find_alive(endpoint, read_seeders(args.seeders))
        songs = search(endpoint, [x for x in peers.values() if x.alive],
                       args.query)
    finally:
        endpoint.close()
    print_songs(songs)
    return cli.EXIT_OK


def prepare_output(out_dir: str) -> None:
    """The download folder: made when missing, refused when unusable."""
    if not os.path.exists(out_dir):
        try:
            os.makedirs(out_dir)
        except OSError as exc:
            raise cli.UsageError(f"cannot create the output folder "
                                 f"{out_dir}: {exc.strerror or exc}") from None
    if not os.path.isdir(out_dir):
        raise cli.UsageError(f"output is not a folder: {out_dir}")
    if not os.access(out_dir, os.W_OK):
        raise cli.UsageError(f"output folder is not writable: {out_dir}")


def check_file_to_write(path: str | None, option: str) -> None:
    """Refuse a --json / --audio-out path that cannot be written, before
    the download rather than after it."""
    if path is None:
        return
    folder = os.path.dirname(path) or "."
    if os.path.isdir(path):
        raise cli.UsageError(f"{option} {path}: is a folder, not a file")
    if not os.path.isdir(folder):
        raise cli.UsageError(f"{option} {path}: folder {folder} not found")
    if not os.access(folder, os.W_OK):
        raise cli.UsageError(f"{option} {path}: folder {folder} is not "
                             f"writable")


def check_output(out_dir: str, song: Song, force: bool) -> str | None:
    """Say when the song is already there (and verified)."""
    final = os.path.join(out_dir, safe_name(song.info))
    if os.path.exists(final) and not force:
        if cli.sha256_file(final) == song.info.sha256:
            return final
        raise cli.UsageError(f"{final} exists and differs; use --force to "
                             f"replace it")
    return None


def cmd_get(args) -> int:
    if (args.audio_out or args.fast) and not (args.play or args.preview):
        raise cli.UsageError("--audio-out and --fast go with --play or "
                             "--preview")
    if args.fast and not args.audio_out:
        raise cli.UsageError("--fast goes with --audio-out FILE.wav")
    prepare_output(args.output)
    check_file_to_write(args.json, "--json")
    check_file_to_write(args.audio_out, "--audio-out")
    options = Options(args.method, args.window, args.timeout, args.loss,
                      args.rng_seed, args.force)
    audio = Audio(args) if (args.play or args.preview) else None
    with Keys.active(audio):
        return _get(args, options, audio)


def _get(args, options: Options, audio) -> int:
    endpoint = _endpoint(args)
    try:
        print("seeders:")
        peers = find_alive(endpoint, read_seeders(args.seeders))
        songs = search(endpoint, [x for x in peers.values() if x.alive],
                       args.name)
        song = pick_song(songs, args.name)
        existing = check_output(args.output, song, args.force)
        if existing and not args.play:
            print(f"{existing} is already here and verified")
            return cli.EXIT_OK
        download = Download(endpoint, song, peers, args.output, options,
                            log=lambda line: print("  " + line))
        path = existing or _download(download, audio)
    finally:
        endpoint.close()
    print(f"saved {path}")
    if audio:
        audio.play_to_the_end(download, path)
    stats = download.stats(timeline=False)
    print(report(stats))
    if args.json:
        write_json(args.json, stats, download.times.rows())
    return cli.EXIT_OK


def _download(download: Download, audio) -> str:
    if audio and audio.preview:
        audio.start_preview(download)
    try:
        return run_with_progress(download, audio.handle_keys if audio
                                 else None)
    except (KeyboardInterrupt, cli.RunError):
        if audio:
            audio.stop()
        if download.started and os.path.exists(download.part_path):
            print(f"partial download kept in {download.part_path}: run "
                  f"the same command again to resume", file=sys.stderr)
        raise


def run_with_progress(download: Download, also=None) -> str:
    """Run the download on this thread, drawing progress between turns
    (and calling ``also``, e.g. the player's keys)."""
    progress = Progress(download)

    def turn():
        progress.update()
        if also:
            also()
    download.on_turn = turn
    try:
        return download.run()
    finally:
        progress.update(force=True)


KEYS_HELP = "keys: p or space = pause/resume, q = stop playing"


class Keys:
    """Single key presses on a terminal, without waiting for Enter."""

    def __init__(self):
        self.fd = sys.stdin.fileno() if sys.stdin and sys.stdin.isatty() \
            else None
        self._saved = None

    @classmethod
    @contextlib.contextmanager
    def active(cls, audio):
        keys = audio.keys if audio else cls()
        if audio:
            keys.open()
        try:
            yield keys
        finally:
            keys.close()

    def open(self) -> None:
        if self.fd is not None:
            import termios
            import tty
            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)  # Ctrl-C still interrupts

    def close(self) -> None:
        if self._saved is not None:
            import termios
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def read(self) -> str | None:
        if self._saved is None or not select.select([self.fd], [], [], 0)[0]:
            return None
        return os.read(self.fd, 1).decode("latin-1").lower()


class Audio:
    """--play / --preview for the terminal leecher (see player.py)."""

    def __init__(self, args):
        import importlib.util
        if importlib.util.find_spec("audioread") is None:
            raise cli.UsageError("audioread is missing: run ./setup.sh "
                                 "install, then use .venv/bin/python")
        import player
        self.module = player
        try:
            player.check_ffmpeg()
        except player.PlayerError as exc:
            raise cli.UsageError(str(exc)) from None
        self.preview = args.preview
        self.prebuffer = args.prebuffer
        self.sink = player.choose_sink(args.audio_out, args.fast,
                                       notice=print)
        self.player = None
        self.keys = Keys()

    def _new_player(self, download: Download):
        self.player = self.module.Player(self.sink, self.prebuffer,
                                         on_played=download.record_played)
        download.attach_player(self.player)
        return self.player

    def start_preview(self, download: Download) -> None:
        self._new_player(download).start()
        print(KEYS_HELP)

    def play_to_the_end(self, download: Download, path: str) -> None:
        if self.player is None:  # --play: the whole file is here
            if download.started is None:
                download.started = time.monotonic()
            self._new_player(download).play_file(path)
            print(KEYS_HELP)
        # On a terminal one line is rewritten in place; in a log, a line
        # per second.
        tty = sys.stdout.isatty()
        last = 0.0
        try:
            while not self.player.wait(timeout=0.1):
                self.handle_keys()
                if time.monotonic() - last >= (0.2 if tty else 1.0):
                    last = time.monotonic()
                    self._show_position("\r" if tty else "", "" if tty
                                        else "\n")
        except KeyboardInterrupt:
            self.stop()
            raise
        finally:
            if tty:
                self._show_position("\r", "\n")
        if self.player.error:
            raise cli.RunError(f"playback failed: {self.player.error}")

    def _show_position(self, start: str, end: str) -> None:
        sys.stdout.write(f"{start}playing {self.player.position_s:5.1f} s "
                         f"({self.player.state})   {end}")
        sys.stdout.flush()

    def handle_keys(self) -> None:
        key = self.keys.read()
        if self.player is None or key is None:
            return
        if key in " p":
            if self.player.state == "paused":
                self.player.resume()
            else:
                self.player.pause()
        elif key == "q":
            self.player.stop()

    def stop(self) -> None:
        if self.player is not None:
            self.player.stop()


def build_parser() -> cli.Parser:
    parser = cli.Parser(prog="leecher.py", description=(
        "Find P2P FACOM seeders, search their songs and download one."))
    sub = parser.add_subparsers(dest="command", required=True,
                                parser_class=cli.Parser)
    common = cli.Parser(add_help=False)
    common.add_argument("--seeders", metavar="ADDR,ADDR",
                        help="seeders to use (default: seeders.txt or "
                             "127.0.0.1-3:9000)")
    sub.add_parser("ping", parents=[common], help="which seeders are alive")
    find = sub.add_parser("search", parents=[common], help="search songs")
    find.add_argument("query", nargs="?", default="",
                      help="words of the name (empty: all songs)")
    get = sub.add_parser("get", parents=[common], help="download a song")
    add_get_arguments(get)
    return parser


def add_get_arguments(get) -> None:
    get.add_argument("name", help="song name (or a unique part of it)")
    get.add_argument("-o", "--output", default="downloads",
                     help="folder to save into (default downloads/)")
    get.add_argument("--method", choices=list(p.ORDER_NAMES),
                     help="sending order to ask for (default: each "
                          "seeder's own)")
    get.add_argument("--json", metavar="FILE", help="write statistics here")
    get.add_argument("--loss", type=cli.probability, default=0.0,
                     metavar="P", help="drop received datagrams on purpose")
    get.add_argument("--rng-seed", type=int, default=None, metavar="N")
    get.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                     help="chunks in flight per seeder (default 256)")
    get.add_argument("--timeout", type=cli.positive, default=DEFAULT_TIMEOUT,
                     metavar="S", help="give up after S s without progress")
    get.add_argument("--force", action="store_true",
                     help="replace an existing file of the same name")
    get.add_argument("--play", action="store_true",
                     help="play the song once it is downloaded")
    get.add_argument("--preview", action="store_true",
                     help="play while downloading")
    get.add_argument("--prebuffer", type=cli.non_negative, default=2.0,
                     metavar="S", help="seconds of audio before playing "
                                       "(default 2)")
    get.add_argument("--audio-out", metavar="FILE.wav",
                     help="write what is played to a WAV file")
    get.add_argument("--fast", action="store_true",
                     help="with --audio-out: not in real time")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if hasattr(signal, "SIGXFSZ"):  # over a file-size limit: EFBIG, not death
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    commands = {"ping": cmd_ping, "search": cmd_search, "get": cmd_get}

    def body():
        if args.command == "get" and not 1 <= args.window <= 4096:
            raise cli.UsageError("--window must be between 1 and 4096")
        return commands[args.command](args)
    return cli.run_main("leecher", body)


if __name__ == "__main__":
    sys.exit(main())
