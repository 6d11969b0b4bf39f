"""The seeder's decisions, sans-I/O: ``SeederEngine`` (see ENGINES.md).

It takes datagrams and ``now`` and gives back what to send and when to
wake up.  It never reads a clock, opens a file or touches a socket, and
its only randomness is a seeded ``netem.Link``; so a simulated network
can drive it in virtual time and repeat a run exactly.

What the driver hands it:

- a ``ChunkSource``: ``info(file_id) -> FileInfo | None`` and
  ``read(file_id, index) -> bytes`` (raises ``OSError`` when the file
  vanished or changed); optionally ``piece_hashes(file_id) -> bytes |
  None``, the file's piece SHA-256s concatenated (``pieces.py``), which
  it serves a page per HASHES; and optionally ``held(file_id) ->
  RangeSet | None``, the chunks it may serve (a peer's verified pieces;
  None: all): a REQUEST is clipped to them;
- a catalog for SEARCH and PONG: ``search(query) -> list[FileInfo]`` and
  ``len(catalog)`` (``SearchIndex`` below is one; build it at scan time);
- the secret for tokens (bytes) and the RNG seed of the emulated link.

Addresses are ``(host, port)`` tuples; limits count sessions per host.
``events()`` drains ``SessionStarted`` / ``SessionEnded`` for the driver
to print.  Peer exchange: a HAVE with a valid token is recorded in
``directory`` (``peer_directory.py``), never answered; GET_PEERS, token-
checked like SEARCH, gets the song's recent sharers (PEERS).
``served_to()`` counts the chunks sent per address.
A driver that writes a capture calls ``keep_drops()`` once, then drains
``drops()`` (what the emulated link dropped) each turn to write it marked.

``datagrams_to_send(now)`` gives bytes (the simulated network, tests).
A driver that builds CHUNKs itself (``seeder.py``: in place, sent with
UDP GSO) calls ``chunks_to_send(now)``: the same datagrams in the same
order, but the chunks a session sends in one turn come as one
``ChunkRun`` (indices, tx_seqs, send_ms, flags) instead of a ``bytes``
each; the driver reports a run it could not read (``chunk_unreadable``).
Both go through one sending path: bookkeeping per run, not per chunk.
The bounds on what a peer can make it do (issue 11) are the named
constants below: per datagram (``MAX_NACK_CHUNKS``, ranges clipped and
merged, ``ORDER_STEPS`` of shuffling per call for all sessions), per
session (``MAX_WINDOW``, ``MAX_RESENDS_PER_CHUNK``, ``RESEND_BUDGET``,
``NO_PROGRESS_S``; memory by the chunks asked, never by the file), per
host (``MAX_SESSIONS_PER_HOST``, session starts ``START_RATE_CHUNKS``,
a fair share of ``MAX_SESSIONS`` and ``MAX_QUEUED_CHUNKS`` enforced by
eviction) and in total (``MAX_SESSIONS``, ``MAX_QUEUED_CHUNKS``,
``MAX_DELAYED``); an address stays validated ``VALIDATION_S``.

Behaviour a leecher relies on:

- chunks go out in ``protocol.send_order`` of the REQUEST's ranges, never
  more than the ACKed window ahead (``tx_seq < limit``); resends go first,
  FIFO in the order the NACK ranges list them (``ResendQueue``);
- DONE when nothing is left to send; a session with nothing pending
  answers an ACK (the leecher's tail probe) with DONE again, at most once
  per ``PROBE_INTERVAL_S``;
- chunks, DONE and the replies share the emulated link: DONE never
  overtakes a chunk and can be lost like one;
- ``send_ms`` is the session's age on the engine's ``now``; ``tx_seq``
  counts the session's datagrams, resends included.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import hmac
import math
import unicodedata
from bisect import bisect_right
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from itertools import repeat
from typing import Iterable, Iterator

import netem
import pieces
import protocol as p
from peer_directory import PeerDirectory

# Datagrams a session sends before the next one's turn: 45 CHUNKs of
# 1436 bytes are one full UDP GSO send (offload.max_segments), so a turn
# is one run for the driver to hand the kernel in one system call.
SESSION_TURN = 45
# Shuffle swaps per call of ``chunks_to_send`` for *all* the sessions
# still making their order (~15-70 ms): the driver reads the socket
# between calls, so no session start stalls the loop for long.
ORDER_STEPS = 20_000
BUILD_SLICE = 5_000  # swaps one such session makes before the next's turn
MAX_DELAYED = 20000  # datagrams held by the emulated delay (~29 MB)
PROBE_INTERVAL_S = 0.010  # at most one DONE per session per 10 ms
EXPIRY_CHECK_S = 1.0  # how often idle sessions are looked for
# Drops remembered for a capturing driver (``keep_drops``) that has not
# drained them yet: runs of up to SESSION_TURN chunks or single datagrams.
# A driver drains them every turn; this only bounds one that forgets.
MAX_DROPS_KEPT = 1024


# ---------------------------------------------------------------- limits
MAX_SESSIONS = 256
MAX_SESSIONS_PER_HOST = 16  # per IP, not IP:port: ports are free to make
# Credit a leecher may grant one session.  A 4 MB SO_RCVBUF holds about
# 3,640 CHUNKs taken one read at a time (offload.py): a window above that
# only lets a burst overrun the receiver, so one session stays well below.
MAX_WINDOW = 2048
# Chunks asked by all sessions together: 3 bytes each (flags by
# position), 7 in a shuffled order (the order, 4 more): <= 28 MB.  One
# whole 4.5 GB file (3.2 M chunks) fits; a host holding more than a
# newcomer would is evicted from when it is full (``make_room``).
MAX_QUEUED_CHUNKS = 4_000_000
SESSION_COST_CHUNKS = 1024  # a session's own objects (~7 KB), as chunks
# Session starts, per host IP, as a token bucket in chunks asked: a
# shuffled order is made at ~30 M chunks/s, so 2 M/s holds one host to
# under a tenth of a core whatever it REQUESTs and CANCELs; a fresh host
# may start a whole table's worth at once.  Each start counts at least
# ``START_COST_CHUNKS`` (so at most ~30 starts/s per host).
START_RATE_CHUNKS = 2_000_000
START_BURST_CHUNKS = MAX_QUEUED_CHUNKS + SESSION_COST_CHUNKS
START_COST_CHUNKS = 65_536
SESSION_IDLE_S = 30.0  # nothing heard from the leecher
NO_PROGRESS_S = 20.0  # heard (ACKs), but no chunk could be sent
AMPLIFICATION_LIMIT = 3  # RFC 9000 §8: bytes out <= 3x bytes in, unvalidated
MAX_TRACKED_ADDRESSES = 10000  # bounds the guard's memory under a flood
TOKEN_EPOCH_S = 30.0  # tokens rotate keys every epoch, valid two: 30-60 s
# An address stays validated as long as the token it echoed could have
# been valid: no longer, or a spoofer could use it long after it left.
VALIDATION_S = 2 * TOKEN_EPOCH_S
MAX_RESENDS_PER_CHUNK = 8  # 30 % loss loses 9 copies in a row 2e-5 times
# Resent chunks <= this x chunks asked for: at most 2x the bytes asked
# (issue 11), small requests included: no floor.  At 30 % loss a session
# needs 0.43 resends per chunk on average, so only a request of a few
# chunks may run out (1 chunk: 9 %); it then ends with BUSY "resend
# limit reached" and the leecher asks again (a new session, rate-limited
# by ``START_RATE_CHUNKS``).
RESEND_BUDGET = 1.0
MAX_NACK_CHUNKS = 4096  # chunks one NACK datagram may make us look at
MAX_SERVED_KEYS = 256  # addresses named in ``served_to`` (the rest: "other")
SEARCH_CACHE = 16  # recent queries whose matches are kept
ROUND_HALF = 1 << 15  # NACK rounds are u16: RFC 1982 serial arithmetic


# ------------------------------------------------------------- counters
SEND_COUNTERS = tuple(f.name for f in dataclasses.fields(p.Done))


class SendCounts:
    """The five counters a DONE carries (sent, resent, dropped,
    duplicated, bytes_sent), declared once: by ``protocol.Done``."""

    __slots__ = SEND_COUNTERS

    def __init__(self):
        for name in SEND_COUNTERS:
            setattr(self, name, 0)

    def count(self, sent: int, resent: int, nbytes: int) -> None:
        self.sent += sent
        self.resent += resent
        self.bytes_sent += nbytes

    def done(self) -> p.Done:
        return p.Done(*(getattr(self, name) for name in SEND_COUNTERS))


class ServedTally:
    """Chunks sent per address (resends included), as ``"ip:port"``:
    at most ``MAX_SERVED_KEYS`` addresses by name, the rest summed
    under ``"other"`` (so a flood of addresses costs no memory)."""

    def __init__(self):
        self._to: Counter = Counter()

    def count(self, addr, chunks: int) -> None:
        name = f"{addr[0]}:{addr[1]}"
        if name not in self._to and len(self._to) >= MAX_SERVED_KEYS:
            name = "other"
        self._to[name] += chunks

    def as_dict(self) -> dict[str, int]:
        return {name: sent for name, sent in self._to.items() if sent}


# ----------------------------------------------------- tokens and guard
class TokenMinter:
    """Address-validation tokens as QUIC's Retry tokens: an HMAC of the
    address under a key that rotates every ``TOKEN_EPOCH_S``; a token is
    accepted in its own epoch and the next, so it lives 30 to 60 s."""

    def __init__(self, secret: bytes):
        self._secret = bytes(secret)
        self._keys: dict[int, bytes] = {}

    def _key(self, epoch: int) -> bytes:
        key = self._keys.get(epoch)
        if key is None:
            if len(self._keys) > 4:
                self._keys.clear()  # old epochs are never asked again
            key = hmac.new(self._secret, b"epoch %d" % epoch,
                           hashlib.sha256).digest()
            self._keys[epoch] = key
        return key

    def _mint(self, addr, epoch: int) -> int:
        mac = hmac.new(self._key(epoch), f"{addr[0]}|{addr[1]}".encode(),
                       hashlib.sha256).digest()
        return int.from_bytes(mac[:4], "big") or 1  # 0 means "no token"

    def token(self, addr, now: float) -> int:
        return self._mint(addr, math.floor(now / TOKEN_EPOCH_S))

    def valid(self, token: int, addr, now: float) -> bool:
        epoch = math.floor(now / TOKEN_EPOCH_S)
        return any(hmac.compare_digest(
            self._mint(addr, e).to_bytes(4, "big"),
            (token & 0xFFFFFFFF).to_bytes(4, "big"))
            for e in (epoch, epoch - 1))


class AmplificationGuard:
    """Never let a spoofed source aim our replies at a third party.

    Until an address proves it receives what we send (by echoing the token
    of its PONG), it gets at most ``AMPLIFICATION_LIMIT`` times the bytes
    it sent us (RFC 9000 §8).
    """

    def __init__(self):
        self.credit: dict[tuple, int] = {}
        # address -> until when, in the order validated (so in expiry
        # order: the oldest is the first to go when full).
        self.validated: dict[tuple, float] = {}
        self.refused = 0

    def is_validated(self, addr, now: float) -> bool:
        until = self.validated.get(addr)
        if until is None:
            return False
        if now < until:
            return True
        del self.validated[addr]  # its token expired: so does the proof
        return False

    def received(self, addr, nbytes: int, now: float) -> None:
        if self.is_validated(addr, now):
            return
        if len(self.credit) >= MAX_TRACKED_ADDRESSES:
            self.credit.clear()  # forgetting credit only ever sends less
        self.credit[addr] = self.credit.get(addr, 0) \
            + AMPLIFICATION_LIMIT * nbytes

    def validate(self, addr, now: float) -> None:
        self.validated.pop(addr, None)
        if len(self.validated) >= MAX_TRACKED_ADDRESSES:
            self.validated.pop(next(iter(self.validated)))
        self.validated[addr] = now + VALIDATION_S
        self.credit.pop(addr, None)

    def allow(self, addr, nbytes: int, now: float) -> bool:
        if self.is_validated(addr, now):
            return True
        left = self.credit.get(addr, 0)
        if nbytes > left:
            self.refused += 1
            return False
        self.credit[addr] = left - nbytes
        return True


class StartLimiter:
    """How often each host (IP) may start sessions: a token bucket in
    chunks asked (``START_RATE_CHUNKS`` a second, ``START_BURST_CHUNKS``
    at most), so REQUEST+CANCEL churn costs the seeder a bounded share
    of its time.  At most ``MAX_TRACKED_ADDRESSES`` hosts, the least
    recently seen forgotten first (a forgotten host starts full: only
    a flood of 10,000 hosts gets that)."""

    def __init__(self):
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.refused = 0

    def take(self, host: str, chunks: int, now: float) -> bool:
        """May ``host`` start a session of ``chunks`` now?  Counted if so."""
        level, then = self._buckets.pop(host, (START_BURST_CHUNKS, now))
        level = min(START_BURST_CHUNKS,
                    level + max(0.0, now - then) * START_RATE_CHUNKS)
        cost = max(chunks, START_COST_CHUNKS)
        allowed = cost <= level
        if allowed:
            level -= cost
        else:
            self.refused += 1
        if len(self._buckets) >= MAX_TRACKED_ADDRESSES:
            self._buckets.popitem(last=False)
        self._buckets[host] = (level, now)
        return allowed


# ---------------------------------------------------------------- search
def fold(text: str) -> str:
    """``text`` for matching: case and accents ignored ("Canção" ~
    "cancao")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class SearchIndex:
    """The shared files, indexed once per scan: by id, and by folded name
    for SEARCH.  A catalog and ``info`` for the engine."""

    def __init__(self, files: Iterable[p.FileInfo] = ()):
        self.files = sorted(files, key=lambda f: (fold(f.name), f.name))
        self._by_id = {f.file_id: f for f in self.files}
        self._folded = [fold(f.name) for f in self.files]
        self._recent: OrderedDict[tuple, list] = OrderedDict()

    def __len__(self) -> int:
        return len(self.files)

    def info(self, file_id: bytes) -> p.FileInfo | None:
        return self._by_id.get(file_id)

    def search(self, query: str) -> list[p.FileInfo]:
        """Files whose name holds every word of ``query``, in name order;
        the matches of recent queries are kept (a SEARCH per page)."""
        words = tuple(sorted(set(fold(query).split())))
        found = self._recent.get(words)
        if found is None:
            found = [info for info, name in zip(self.files, self._folded)
                     if all(word in name for word in words)]
            if len(self._recent) >= SEARCH_CACHE:
                self._recent.popitem(last=False)
            self._recent[words] = found
        self._recent.move_to_end(words)
        return found


# ---------------------------------------------------------------- ranges
def clip_ranges(ranges, total: int) -> p.RangeSet:
    """A REQUEST's ranges inside the file, merged: the work a REQUEST
    makes depends on the chunks it names once, not on how often."""
    clipped = p.RangeSet()
    for start, end in ranges[:p.MAX_REQUEST_RANGES]:
        clipped.add(min(start, total), min(end, total))
    return clipped


def nack_pieces(ranges, total: int, most: int = MAX_NACK_CHUNKS):
    """A NACK's ranges inside the file, each chunk once, in the order the
    NACK lists them, at most ``most`` chunks in all."""
    seen = p.RangeSet()
    for start, end in ranges[:p.MAX_NACK_RANGES]:
        start, end = min(start, total), min(end, total)
        if start >= end:
            continue
        fresh = p.RangeSet([(start, end)])
        for s, e in seen.intersection(fresh):
            fresh.remove(s, e)
        seen.add(start, end)
        for s, e in fresh:
            if most <= 0:
                return
            e = min(e, s + most)
            most -= e - s
            yield s, e


def round_newer(a: int, b: int) -> bool:
    """Is NACK round ``a`` after round ``b`` (u16, RFC 1982)?"""
    diff = (a - b) & 0xFFFF
    return 0 < diff < ROUND_HALF


# ------------------------------------------------------------- sessions
class Asked:
    """The chunks a REQUEST asked for (its clipped, merged ranges) and
    each one's *position* among them.  A session's per-chunk tables are
    indexed by position, so it costs bytes per chunk asked, never per
    chunk of the file: one chunk of a 4.5 GB file costs a few bytes."""

    def __init__(self, ranges):
        self.ranges = [(start, end) for start, end in ranges]
        self.starts = [start for start, _ in self.ranges]
        self.before: list[int] = []  # positions before each range
        count = 0
        for start, end in self.ranges:
            self.before.append(count)
            count += end - start
        self.count = count

    def __len__(self) -> int:
        return self.count

    def position(self, index: int) -> int:
        """Where chunk ``index`` is among the chunks asked; -1 if not."""
        at = bisect_right(self.starts, index) - 1
        if at < 0 or index >= self.ranges[at][1]:
            return -1
        return self.before[at] + index - self.starts[at]

    def index(self, position: int) -> int:
        at = bisect_right(self.before, position) - 1
        return self.starts[at] + position - self.before[at]

    def run_at(self, position: int, most: int) -> range:
        """Up to ``most`` chunk indices from ``position`` on, within one
        range (consecutive positions, consecutive indices)."""
        at = bisect_right(self.before, position) - 1
        start, end = self.ranges[at]
        first = start + position - self.before[at]
        return range(first, min(end, first + most))

    def within(self, start: int, end: int):
        """The parts of chunks ``[start, end)`` asked for, each as
        ``(first index, first position, count)``, in index order."""
        at = max(0, bisect_right(self.starts, start) - 1)
        for s, e in self.ranges[at:]:
            if s >= end:
                return
            low, high = max(s, start), min(e, end)
            if low < high:
                yield low, self.position(low), high - low


class FirstPass:
    """The chunks still to send for the first time, in sending order, and
    which of them went out.  Sequential: a cursor over the ranges asked,
    nothing per chunk.  Shuffled: the order (an ``array('I')``) and a
    flag per chunk *asked*."""

    def __init__(self, asked: Asked, order=None):
        """``order``: the asked chunks in sending order, or None for the
        ranges' own (sequential) order."""
        self.asked = asked
        self.order = order
        self.next = 0  # positions in the sending order already taken
        self.waiting = None if order is None else bytearray(b"\1") * len(
            asked)

    def __len__(self) -> int:
        return len(self.asked)

    def __bool__(self) -> bool:
        return self.next < len(self.asked)

    def left(self) -> int:
        return len(self.asked) - self.next

    def went_out(self, position: int) -> bool:
        """Did the first copy of the chunk at ``position`` go?"""
        if self.waiting is None:
            return position < self.next
        return not self.waiting[position]

    def take(self, most: int):
        """The next ``most`` chunks at most (a ``range`` or an
        ``array('I')`` slice).  Per run, not per chunk: a run of
        consecutive indices (any run of the sequential order) is cleared
        in one go."""
        if self.waiting is None:
            run = self.asked.run_at(self.next, most) if self else range(0)
            self.next += len(run)
            return run
        start = self.next
        run = self.order[start:start + most]
        self.next = start + len(run)
        if run:
            low, high = min(run), max(run)
            position = self.asked.position
            if high - low + 1 == len(run):  # distinct: exactly low..high
                first = position(low)  # ranges are merged: one range
                self.waiting[first:first + len(run)] = bytes(len(run))
            else:
                waiting = self.waiting
                for index in run:
                    waiting[position(index)] = 0
        return run


class ResendQueue:
    """Chunks NACKed and not yet resent, FIFO (by position among the
    chunks asked).  A chunk is queued once while it waits, once per NACK
    round, and resent at most ``MAX_RESENDS_PER_CHUNK`` times and within
    the session's budget: ``RESEND_BUDGET`` x the chunks asked."""

    def __init__(self, asked: Asked):
        self.asked = asked
        self.fifo: deque[int] = deque()  # positions
        # Per chunk asked: queued now?, copies resent.  Made at the first
        # NACK: a session that needs no resend never pays for them.
        self.queued = self.resends = b""
        self.round: int | None = None
        self._this_round: set[int] = set()
        self.budget = math.ceil(len(asked) * RESEND_BUDGET)

    def __bool__(self) -> bool:
        return bool(self.fifo)

    def start_round(self, number: int) -> bool:
        """False for a NACK of a round older than the latest one (a late
        copy: never resend for it)."""
        if self.round is None:
            self.queued = bytearray(len(self.asked))
            self.resends = bytearray(len(self.asked))
        if self.round is None or round_newer(number, self.round):
            self.round = number
            self._this_round = set()
            return True
        return number == self.round

    def offer(self, position: int) -> bool:
        """Queue the chunk at ``position`` unless it waits already or was
        queued this round; False when it may not be resent any more."""
        if self.queued[position] or position in self._this_round:
            self._this_round.add(position)  # asked in this round: answered
            return True
        if self.resends[position] >= MAX_RESENDS_PER_CHUNK \
                or self.budget <= 0:
            return False
        self.budget -= 1
        self.resends[position] += 1
        self.queued[position] = 1
        self._this_round.add(position)
        self.fifo.append(position)
        return True

    def take(self, most: int) -> list[int]:
        """The next ``most`` chunk indices to resend at most, in FIFO
        order."""
        popleft, queued = self.fifo.popleft, self.queued
        run = [popleft() for _ in range(min(most, len(self.fifo)))]
        for position in run:
            queued[position] = 0
        index = self.asked.index
        return [index(position) for position in run]


class Session:
    """One REQUEST being served: what to send, credit, DONE, liveness."""

    def __init__(self, sid: int, addr, info: p.FileInfo, ranges: p.RangeSet,
                 order: p.Order, seed: int, fraction: float, window: int,
                 now: float):
        self.sid, self.addr, self.info = sid, addr, info
        self.asked = Asked(ranges)
        # Sequential: no order to make, a cursor over the ranges.  Else
        # the order is made a slice per turn (``build``): shuffling a
        # huge file at once would stall every other session.
        self._order = None
        if order != p.Order.SEQUENTIAL:
            self._order = p.SendOrderBuilder(ranges, order, seed, fraction)
        self.first_pass = FirstPass(self.asked, self._order
                                    and self._order.chunks)
        self.resend = ResendQueue(self.asked)
        # What it holds, counted against ``MAX_QUEUED_CHUNKS``.
        self.cost = len(self.asked) + SESSION_COST_CHUNKS
        self.counts = SendCounts()
        self.limit = window
        self.tx_seq = 0
        self.started = self.last_heard = self.last_progress = now
        self._done_owed = True  # a DONE once everything went out
        self._probed = False  # an ACK asked for DONE again
        self._last_done = float("-inf")

    def pending(self) -> bool:
        return bool(self.first_pass or self.resend)

    def can_send(self) -> bool:
        return (self.tx_seq < self.limit and self.pending()
                and not self.building())

    def building(self) -> bool:
        """Is the sending order still being made?"""
        return self._order is not None and not self._order.done

    def build(self, steps: int) -> None:
        self._order.step(steps)

    def heard(self, now: float) -> None:
        self.last_heard = now

    def grant(self, limit: int) -> None:
        """Credit from an ACK: never more than a window past what we
        sent, whatever the peer claims."""
        self.limit = max(self.limit, min(limit, self.tx_seq + MAX_WINDOW))

    def send_ms(self, now: float) -> int:
        return int((now - self.started) * 1000) & 0xFFFFFFFF

    def take(self, most: int, now: float) -> tuple:
        """``(indices, resent?)`` of up to ``most`` chunks that go now, all
        resends or all first copies (resends first), within the credit;
        their ``tx_seq`` are the next ones, in that order."""
        most = min(most, self.limit - self.tx_seq)
        if self.resend:
            run, again = self.resend.take(most), True
        else:
            run, again = self.first_pass.take(most), False
        self.tx_seq += len(run)
        self.last_progress = now
        return run, again

    def on_nack(self, round_: int, ranges) -> bool:
        """Queue the NACKed chunks whose first copy went out; False when
        one may not be resent any more (the session cannot finish)."""
        if not self.resend.start_round(round_):
            return True
        before = len(self.resend.fifo)
        went_out, offer = self.first_pass.went_out, self.resend.offer
        for start, end in nack_pieces(ranges, self.info.chunks):
            for _, first, count in self.asked.within(start, end):
                for position in range(first, first + count):
                    if went_out(position) and not offer(position):
                        return False
        if len(self.resend.fifo) > before:
            self._done_owed = True
        return True

    def probe(self, now: float, interval: float) -> None:
        """The leecher asks (ACK or NACK) while nothing is pending: one
        DONE in answer, at most one per ``interval``."""
        if not self.pending() and now - self._last_done >= interval:
            self._probed = True

    def done_due(self) -> bool:
        return not self.pending() and (self._done_owed or self._probed)

    def done_sent(self, now: float) -> None:
        self._done_owed = self._probed = False
        self._last_done = now

    def expired(self, now: float) -> str | None:
        if now - self.last_heard > SESSION_IDLE_S:
            return "timed out"
        if self.last_heard > self.last_progress \
                and now - self.last_progress > NO_PROGRESS_S:
            # ACKs keep it heard, but nothing went out for long: no
            # credit, or all sent and never CANCELled.  A slot held idle.
            return "timed out without progress"
        return None


class SessionTable:
    """The sessions by (address, id), in sending turn, counted per host
    in sessions and in chunks held; full (in either), it makes room by
    evicting from the host holding the most, so one host cannot lock
    out the rest."""

    def __init__(self, most: int = MAX_SESSIONS,
                 per_host: int = MAX_SESSIONS_PER_HOST):
        self.most, self.per_host = most, per_host
        self._by_key: dict[tuple, Session] = {}
        self._per_host: Counter = Counter()  # sessions per host
        self._host_chunks: Counter = Counter()  # their ``cost`` per host
        self._turn: deque[Session] = deque()
        self.building: deque[Session] = deque()  # orders being made
        self.queued_chunks = 0

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self):
        return iter(list(self._by_key.values()))

    def get(self, addr, sid: int) -> Session | None:
        return self._by_key.get((addr, sid))

    def add(self, session: Session) -> None:
        self._by_key[(session.addr, session.sid)] = session
        self._per_host[session.addr[0]] += 1
        self._host_chunks[session.addr[0]] += session.cost
        self._turn.append(session)
        if session.building():
            self.building.append(session)
        self.queued_chunks += session.cost

    def remove(self, session: Session) -> None:
        if self._by_key.pop((session.addr, session.sid), None) is None:
            return
        host = session.addr[0]
        self._per_host[host] -= 1
        self._host_chunks[host] -= session.cost
        if not self._per_host[host]:
            del self._per_host[host], self._host_chunks[host]
        self._turn.remove(session)
        if session.building():
            self.building.remove(session)
        self.queued_chunks -= session.cost

    def make_room(self, host: str, cost: int,
                  slots: int = 0) -> tuple[bool, list]:
        """(room for a new session of ``host`` holding ``cost``?, the
        sessions to evict for it: from the host holding the most
        sessions, or chunks, when that is more than ``host`` would hold
        with the new one; least recently heard first).  ``slots``: room
        for fewer sessions than ``self.most`` (the upload slots)."""
        if self._per_host[host] >= self.per_host \
                or cost > MAX_QUEUED_CHUNKS:
            return False, []
        room_for = min(slots or self.most, self.most)
        sessions, chunks = Counter(self._per_host), Counter(
            self._host_chunks)
        victims: list[Session] = []
        while True:
            if sum(chunks.values()) + cost > MAX_QUEUED_CHUNKS:
                held, mine = chunks, chunks[host] + cost
            elif sum(sessions.values()) >= room_for:
                held, mine = sessions, sessions[host] + 1
            else:
                return True, victims
            top, most = held.most_common(1)[0]
            if most <= mine:
                return False, []  # no host holds more than its fair share
            victim = min((s for s in self._by_key.values() if s.addr[0]
                          == top and s not in victims),
                         key=lambda s: s.last_heard)
            victims.append(victim)
            sessions[top] -= 1
            chunks[top] -= victim.cost

    def in_turn(self) -> Iterator[Session]:
        """Every session once, starting where the last turn stopped."""
        for _ in range(len(self._turn)):
            if not self._turn:
                return
            session = self._turn[0]
            self._turn.rotate(-1)
            yield session

    def any_can_send(self) -> bool:
        return any(s.can_send() for s in self._turn)

    def any_done_due(self) -> bool:
        return any(s.done_due() for s in self._turn)

    def expired(self, now: float) -> list[tuple[Session, str]]:
        return [(s, why) for s in self._by_key.values()
                if (why := s.expired(now))]


# ------------------------------------------------------------ chunk runs
class ChunkRun:
    """Chunks of one session that leave now, back to back, described
    rather than built: ``indices`` with their ``tx_seqs`` (sequences of
    the same length: a ``range`` unless the emulated link dropped or
    duplicated some), one ``send_ms`` and one ``flags``.  What
    ``chunks_to_send`` gives for chunks the emulated link does not delay;
    a driver builds the datagrams itself (``descriptors()`` for
    ``offload.ChunkSender``), ``SeederEngine.encode_run`` builds them as
    ``bytes``.  One object per run, none per chunk."""

    __slots__ = ("session", "addr", "sid", "info", "indices", "tx_seqs",
                 "send_ms", "flags")

    def __init__(self, session, indices, tx_seqs, send_ms: int, flags: int):
        self.session = session  # opaque to a driver: for chunk_unreadable
        self.addr, self.sid, self.info = session.addr, session.sid, \
            session.info
        self.indices, self.tx_seqs = indices, tx_seqs
        self.send_ms, self.flags = send_ms, flags

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def file_id(self) -> bytes:
        return self.info.file_id

    def tail(self, start: int) -> "ChunkRun":
        """The run without its first ``start`` chunks (those went)."""
        return ChunkRun(self.session, self.indices[start:],
                        self.tx_seqs[start:], self.send_ms, self.flags)

    def descriptors(self) -> list[tuple[int, int, int, int]]:
        """``(index, tx_seq, send_ms, flags)`` per chunk, as
        ``offload.ChunkSender.send`` takes them."""
        return list(zip(self.indices, self.tx_seqs, repeat(self.send_ms),
                        repeat(self.flags)))

    def nbytes(self) -> int:
        """The bytes of its datagrams (only the file's last chunk is
        short)."""
        info = self.info
        total = len(self.indices) * (p.CHUNK_DATA_AT + info.chunk_size)
        short = info.chunks * info.chunk_size - info.size
        if short and info.chunks - 1 in self.indices:
            total -= short
        return total


# ---------------------------------------------------------------- outbox
class Outbox:
    """Datagrams ready to leave, and those the emulated link holds until
    their time (a heap by departure, then by the order they were put)."""

    def __init__(self):
        self._ready: list[tuple[bytes, tuple]] = []
        self._held: list = []
        self._n = 0

    def __len__(self) -> int:
        return len(self._ready) + len(self._held)

    def put(self, data: bytes, addr, at: float, now: float) -> None:
        if at <= now and not self._held:
            self._ready.append((data, addr))
            return
        self._n += 1
        heapq.heappush(self._held, (at, self._n, data, addr))

    def next_due(self) -> float | None:
        if self._ready:
            return float("-inf")
        return self._held[0][0] if self._held else None

    def due(self, now: float) -> list[tuple[bytes, tuple]]:
        out, self._ready = self._ready, []
        held = self._held
        while held and held[0][0] <= now:
            _, _, data, addr = heapq.heappop(held)
            out.append((data, addr))
        return out


# ---------------------------------------------------------------- engine
@dataclass(frozen=True)
class SessionStarted:
    sid: int
    peer: tuple
    name: str
    chunks: int
    order: str


@dataclass(frozen=True)
class SessionEnded:
    sid: int
    peer: tuple
    why: str  # "done", "cancelled", "timed out", "evicted", "failed: …"
    sent: int
    resent: int


@dataclass
class Counters:
    """The engine's totals since it started (the summary line)."""

    datagrams_in: int = 0
    bad_datagrams: int = 0
    sessions: int = 0
    refused: int = 0
    slots_full: int = 0  # REQUESTs told BUSY: every upload slot taken

    def __post_init__(self):
        self.link = SendCounts()  # the five DONE counters, summed


class Replies:
    """The answers to messages that open no session (PING, SEARCH,
    HASHES, HAVE, GET_PEERS): tokens checked, within the amplification
    limit.  Part of ``SeederEngine`` (its state), kept apart to read."""

    def _reply(self, msg, addr, sid: int, now: float, flags: int = 0) -> None:
        """A control reply: within the amplification limit, through the
        emulated delay (so it never overtakes a chunk), never lost."""
        data = p.encode(msg, sid, flags)
        if self.guard.allow(addr, len(data), now):
            at = now if self.link.transparent else self.link.arrival(now)
            self.outbox.put(data, addr, at, now)

    def _on_ping(self, datagram, addr, now) -> None:
        msg = datagram.message
        self._reply(p.Pong(msg.nonce, self.token_for(addr, now),
                           min(len(self.catalog), 0xFFFF),
                           min(len(self.sessions), 0xFFFF), self.order,
                           round(self.ordered_fraction * 100),
                           self.name[:40]), addr, datagram.session, now)

    def _check_token(self, token: int, sid: int, addr, now) -> bool:
        """A valid token proves the address receives our replies."""
        if self.tokens.valid(token, addr, now):
            self.guard.validate(addr, now)
            return True
        self.counters.refused += 1
        self._reply(p.Retry(self.token_for(addr, now)), addr, sid, now)
        return False

    def _refuse(self, code, text: str, addr, sid: int, now) -> None:
        self.counters.refused += 1
        self._reply(p.Error(code, text), addr, sid, now)

    def _on_hashes(self, datagram, addr, now) -> None:
        """One page of a file's piece hash list per HASHES: a 30-byte
        request gets a 1468-byte answer, so only to a validated address
        (the token, as SEARCH)."""
        msg, sid = datagram.message, datagram.session
        if not self._check_token(msg.token, sid, addr, now):
            return
        published = getattr(self.source, "piece_hashes", None)
        hashes = published(msg.file_id) if published and self.source.info(
            msg.file_id) is not None else None
        if hashes is None:
            self._refuse(p.ErrorCode.NOT_FOUND, "no piece hashes for this "
                         "file", addr, sid, now)
            return
        pages = pieces.page_count(len(hashes) // pieces.HASH_SIZE)
        if msg.page >= pages:
            self._refuse(p.ErrorCode.BAD_REQUEST, "no such page", addr, sid,
                         now)
            return
        self._reply(p.HashPage(msg.file_id, msg.page, pages,
                               pieces.page_of(hashes, msg.page)),
                    addr, sid, now)

    def _on_have(self, datagram, addr, now) -> None:
        """A peer shares a song we know: listed for GET_PEERS if its
        token proves the address.  Never answered (no amplification)."""
        msg = datagram.message
        info = self.source.info(msg.file_id)
        if not self.tokens.valid(msg.token, addr, now) or info is None \
                or msg.pieces != pieces.piece_count(info.chunks):
            self.counters.refused += 1
            return
        self.guard.validate(addr, now)
        self.directory.record(msg.file_id, addr, now)

    def _on_get_peers(self, datagram, addr, now) -> None:
        """Peer exchange: a 28-byte ask, up to 218 bytes back, so only
        to a validated address (the token, as SEARCH)."""
        msg, sid = datagram.message, datagram.session
        if not self._check_token(msg.token, sid, addr, now):
            return
        if self.source.info(msg.file_id) is None:
            self._refuse(p.ErrorCode.NOT_FOUND, "no such file here", addr,
                         sid, now)
            return
        self._reply(p.Peers(msg.file_id, self.directory.listing(
            msg.file_id, addr, now)), addr, sid, now)

    def _on_search(self, datagram, addr, now) -> None:
        msg, sid = datagram.message, datagram.session
        if not self._check_token(msg.token, sid, addr, now):
            return
        if len(msg.query.encode("utf-8", "surrogatepass")) > p.MAX_QUERY:
            self._refuse(p.ErrorCode.BAD_REQUEST, f"search query longer "
                         f"than {p.MAX_QUERY} bytes", addr, sid, now)
            return
        page, last = p.search_result_page(self.catalog.search(msg.query),
                                          msg.page)
        self._reply(page, addr, sid, now, p.FLAG_LAST if last else 0)


class ChunkSending:
    """How a ``SeederEngine`` sends: sessions in turn, runs of chunks,
    the emulated link.  Part of ``SeederEngine`` (its state)."""

    def _can_make(self) -> bool:
        return len(self.outbox) < MAX_DELAYED and self.sessions.any_can_send()

    def _make(self, now: float, most: int, out: list) -> None:
        """Up to ``most`` datagrams, taking sessions in turn, up to
        ``SESSION_TURN`` each, round after round."""
        self._build_orders()
        link = self.link
        while most > 0:
            made = 0
            for session in self.sessions.in_turn():
                if most <= 0:
                    return
                if not session.can_send():
                    self._maybe_done(session, now, out)
                    continue
                if not link.transparent and (link.ready_at(now) > now or len(
                        self.outbox) >= MAX_DELAYED):
                    return  # the link is busy: wait for the next slot
                sent = self._send_turn(session, min(most, SESSION_TURN), now,
                                       out)
                most -= sent
                made += sent
            if not made:
                return

    def _build_orders(self) -> None:
        """``ORDER_STEPS`` of shuffling in all, ``BUILD_SLICE`` per
        session in turn, however many sessions are making their order."""
        building, left = self.sessions.building, ORDER_STEPS
        while left > 0 and building:
            session = building.popleft()
            steps = min(left, BUILD_SLICE)
            session.build(steps)
            left -= steps
            if session.building():
                building.append(session)

    def _maybe_done(self, session: Session, now: float, out: list) -> None:
        if not session.done_due():
            return
        session.done_sent(now)
        self._on_link(p.encode(session.counts.done(), session.sid), session,
                      now, out)

    def _send_turn(self, session: Session, most: int, now: float,
                   out: list) -> int:
        """Up to ``most`` chunks of one session; how many were sent.  The
        hottest path of the seeder: a turn is one or two ``ChunkRun``s
        (resends, first copies), bookkeeping per run, unless the emulated
        link delays datagrams: then chunk by chunk, as bytes."""
        send_ms = session.send_ms(now)
        if not self._instant:
            return self._emulate_turn(session, most, send_ms, now, out)
        sent = 0
        while sent < most and session.can_send():
            tx_seq = session.tx_seq
            indices, again = session.take(most - sent, now)
            run = ChunkRun(session, indices,
                           range(tx_seq, tx_seq + len(indices)), send_ms,
                           p.FLAG_RETRANSMIT if again else 0)
            self._count(session, len(run), len(run) if again else 0,
                        run.nbytes())
            sent += len(run)
            if not self.link.transparent:
                run = self._lose_and_duplicate(run, now)
            if run:
                out.append(run)
        return sent

    def _lose_and_duplicate(self, run: ChunkRun, now: float) -> ChunkRun:
        """``run`` as a link that only loses and duplicates lets it
        through: a lost chunk left out (its ``tx_seq`` used all the
        same), a duplicated one twice in a row."""
        indices, tx_seqs = [], []
        lost_indices, lost_seqs = [], []
        keep = self._drops is not None
        nbytes = p.CHUNK_DATA_AT + run.info.chunk_size  # rate-free link
        for index, tx_seq in zip(run.indices, run.tx_seqs):
            copies = len(self._copies(run.session, nbytes, now))
            if not copies and keep:
                lost_indices.append(index)
                lost_seqs.append(tx_seq)
            indices += [index] * copies
            tx_seqs += [tx_seq] * copies
        if lost_indices:
            self._drops.append(ChunkRun(run.session, lost_indices,
                                        lost_seqs, run.send_ms, run.flags))
        return ChunkRun(run.session, indices, tx_seqs, run.send_ms,
                        run.flags)

    def _emulate_turn(self, session: Session, most: int, send_ms: int,
                      now: float, out: list) -> int:
        """A turn through a link that delays: each chunk built, then
        lost, duplicated or held as the link decides; the rate checked
        before each one."""
        link, sent = self.link, 0
        while sent < most and session.can_send():
            if link.ready_at(now) > now or len(self.outbox) >= MAX_DELAYED:
                break
            tx_seq = session.tx_seq
            indices, again = session.take(1, now)
            run = ChunkRun(session, indices, range(tx_seq, tx_seq + 1),
                           send_ms, p.FLAG_RETRANSMIT if again else 0)
            self._count(session, 1, 1 if again else 0, run.nbytes())
            built = self.encode_run(run, now)
            if not built:
                break  # unreadable: the session ended
            self._on_link(built[0][0], session, now, out)
            sent += 1
        return sent

    def _count(self, session: Session, sent: int, resent: int,
               nbytes: int) -> None:
        session.counts.count(sent, resent, nbytes)
        self.counters.link.count(sent, resent, nbytes)
        self.served.count(session.addr, sent)

    def _on_link(self, data: bytes, session: Session, now: float,
                 out: list) -> None:
        """One datagram of a session through the emulated link."""
        if self.link.transparent:
            out.append((data, session.addr))
            return
        arrivals = self._copies(session, len(data), now)
        if not arrivals and self._drops is not None:
            self._drops.append((data, session.addr))
        for at in arrivals:
            if at <= now:
                out.append((data, session.addr))
            else:
                self.outbox.put(data, session.addr, at, now)

    def _copies(self, session: Session, nbytes: int, now: float) -> tuple:
        """The emulated link's arrival time of each copy of one datagram
        of ``session`` (none: lost), counted for DONE."""
        arrivals = self.link.send(nbytes, now)
        if not arrivals:
            session.counts.dropped += 1
            self.counters.link.dropped += 1
        elif len(arrivals) > 1:
            session.counts.duplicated += 1
            self.counters.link.duplicated += 1
        return arrivals

    def _unreadable(self, session: Session, now: float) -> None:
        self._reply(p.Error(p.ErrorCode.FILE_GONE, "file unreadable"),
                    session.addr, session.sid, now)
        self._end(session, "failed: file unreadable")


class SeederEngine(Replies, ChunkSending):
    """Every decision of a seeder; the driver only moves bytes."""

    def __init__(self, source, secret: bytes, rng_seed: int, *,
                 catalog=None, order: p.Order = p.Order.SEQUENTIAL,
                 ordered_fraction: float = 0.5,
                 link: netem.LinkSpec = netem.LinkSpec(),
                 name: str = "seeder", max_sessions: int = MAX_SESSIONS,
                 max_sessions_per_host: int = MAX_SESSIONS_PER_HOST,
                 upload_slots: int = 0):
        """``upload_slots``: sessions served at once (0: as many as
        ``max_sessions``); beyond, a REQUEST gets BUSY "ask again later"
        (see ``_start``)."""
        self.source = source
        self.upload_slots = upload_slots
        self.catalog = source if catalog is None else catalog
        self.order = order
        self.ordered_fraction = ordered_fraction
        self.name = name
        self.link = netem.Link(link, rng_seed)
        # Without delay, jitter, reordering or a rate every copy arrives
        # at once: chunks still leave in runs (loss and duplication
        # applied to the run).
        self._instant = not (link.delay_s or link.jitter_s or link.reorder
                             or link.rate_Bps)
        self.tokens = TokenMinter(secret)
        self.guard = AmplificationGuard()
        self.starts = StartLimiter()
        self.sessions = SessionTable(max_sessions, max_sessions_per_host)
        self.outbox = Outbox()
        self.counters = Counters()
        self.directory = PeerDirectory(rng_seed)  # who sent a HAVE, per song
        self.served = ServedTally()
        self._events: list = []
        self._now = float("-inf")  # the latest ``now`` we were given
        self._next_expiry = math.inf
        self._drops: deque | None = None  # see keep_drops

    # ------------------------------------------------------ the interface
    def receive_datagram(self, data: bytes, addr, now: float) -> None:
        self._now = max(self._now, now)
        self.counters.datagrams_in += 1
        self.guard.received(addr, len(data), now)
        try:
            datagram = p.decode(data)
        except p.ProtocolError:
            self.counters.bad_datagrams += 1
            return
        handler = self._HANDLERS.get(type(datagram.message))
        if handler is None:
            self.counters.bad_datagrams += 1  # a seeder-to-leecher message
            return
        handler(self, datagram, addr, now)

    def datagrams_to_send(self, now: float, most: int | None = None
                          ) -> list[tuple[bytes, tuple]]:
        """What leaves now: held datagrams that are due, then up to
        ``most`` new ones from the sessions, in turn (all they may send
        now when None; a driver asks a few dozen at a time so that it
        reads ACKs in between).  Call it again while ``get_timer()`` is
        ``now``.  ``chunks_to_send`` with every run built as bytes."""
        out: list = []
        for item in self.chunks_to_send(now, most):
            if type(item) is ChunkRun:
                out += self.encode_run(item, now)
            else:
                out.append(item)
        out += self.outbox.due(now)  # an ERROR for a file gone unreadable
        return out

    def chunks_to_send(self, now: float, most: int | None = None) -> list:
        """``datagrams_to_send`` for a driver that builds CHUNKs itself:
        the same datagrams in the same order, each ``(bytes, addr)`` or,
        for chunks that leave untouched by the emulated link, a
        ``ChunkRun`` that stands for ``len(run)`` of them.  A driver that
        cannot read a run's chunks calls ``chunk_unreadable``."""
        self._now = max(self._now, now)
        if most is None:
            most = math.inf
        out = self.outbox.due(now)
        self._make(now, most, out)
        out += self.outbox.due(now)  # replies made meanwhile (an ERROR)
        return out

    def encode_run(self, run: ChunkRun, now: float
                   ) -> list[tuple[bytes, tuple]]:
        """A run's datagrams as bytes (data through the ``ChunkSource``);
        fewer when the file cannot be read: the session then ends."""
        if self.sessions.get(run.addr, run.sid) is not run.session:
            self.chunk_unreadable(run, 0, now)  # ended by an earlier run
            return []
        read, file_id, addr = self.source.read, run.file_id, run.addr
        sid, send_ms, flags = run.sid, run.send_ms, run.flags
        out = []
        try:
            for index, tx_seq in zip(run.indices, run.tx_seqs):
                out.append((p.encode_chunk(file_id, index, tx_seq, send_ms,
                                           read(file_id, index), sid,
                                           flags), addr))
        except OSError:
            self.chunk_unreadable(run, len(out), now)
        return out

    def chunk_unreadable(self, run: ChunkRun, sent: int, now: float) -> None:
        """Only the first ``sent`` chunks of ``run`` went: its file could
        not be read.  The rest is taken off the counters and the session
        ends with an ERROR (FILE_GONE) to the leecher."""
        unsent = run.tail(sent)
        self._count(run.session, -len(unsent), -len(unsent) if run.flags
                    & p.FLAG_RETRANSMIT else 0, -unsent.nbytes())
        if self.sessions.get(run.addr, run.sid) is run.session:
            self._unreadable(run.session, now)

    def get_timer(self) -> float | None:
        """The next of: a held datagram's departure, the next pacing slot
        (when a session could send), the next look for idle sessions."""
        times = [self.outbox.next_due(), self._next_expiry]
        if self.sessions.any_done_due() or self.sessions.building:
            times.append(self._now)
        elif self._can_make():
            times.append(self.link.next_slot())
        times = [t for t in times if t is not None and t != math.inf]
        return max(min(times), self._now) if times else None

    def handle_timer(self, now: float) -> None:
        self._now = max(self._now, now)
        if now >= self._next_expiry:
            for session, why in self.sessions.expired(now):
                self._end(session, why)
            self._next_expiry = (now + EXPIRY_CHECK_S if self.sessions
                                 else math.inf)

    def events(self) -> list:
        """``SessionStarted`` / ``SessionEnded`` since the last call."""
        events, self._events = self._events, []
        return events

    def keep_drops(self) -> None:
        """Remember what the emulated link drops, for ``drops()``: a
        driver that writes a capture shows them, marked.  Off by default:
        nothing is kept and a lost chunk costs nothing more."""
        if self._drops is None:
            self._drops = deque(maxlen=MAX_DROPS_KEPT)

    def drops(self) -> list:
        """What the emulated link dropped since the last call, in the
        order it was made: ``(bytes, addr)`` and, for chunks a driver
        builds itself, ``ChunkRun``s of the lost chunks (with the
        ``tx_seq`` each used).  Empty unless ``keep_drops()`` was
        called; only the latest ``MAX_DROPS_KEPT`` are kept."""
        if not self._drops:
            return []
        drops = list(self._drops)
        self._drops.clear()
        return drops

    def served_to(self) -> dict[str, int]:
        """Chunks sent per ``"ip:port"`` (resends included); their sum
        is ``counters.link.sent``."""
        return self.served.as_dict()

    def token_for(self, addr, now: float) -> int:
        return self.tokens.token(addr, now)

    def close(self, why: str | None = None) -> None:
        """End every session; with ``why``, an ERROR (BUSY) tells each
        leecher, so it moves on at once."""
        for session in list(self.sessions):
            if why is None:
                self.sessions.remove(session)
            else:
                self._end(session, why, notify=True)

    # -------------------------------------------------------- sessions
    def _on_request(self, datagram, addr, now) -> None:
        msg, sid = datagram.message, datagram.session
        session = self.sessions.get(addr, sid)
        if session is not None:  # a repeated REQUEST never restarts it
            self._on_credit(session, msg.window, now)
            return
        if not self._check_token(msg.token, sid, addr, now):
            return
        info = self.source.info(msg.file_id)
        if info is None:
            self._refuse(p.ErrorCode.NOT_FOUND, "no such file here", addr,
                         sid, now)
            return
        ranges = clip_ranges(msg.ranges, info.chunks)
        if not ranges or not msg.window:
            self._refuse(p.ErrorCode.BAD_REQUEST, "empty request", addr,
                         sid, now)
            return
        ranges = self._held_of(msg.file_id, ranges)
        if not ranges:
            self._refuse(p.ErrorCode.NOT_FOUND, "those pieces are not here",
                         addr, sid, now)
            return
        self._start(msg, info, ranges, addr, sid, now)

    def _held_of(self, file_id: bytes, ranges: p.RangeSet) -> p.RangeSet:
        """``ranges`` within what the source may serve (a peer: its
        verified pieces); one bisection per range asked."""
        held = getattr(self.source, "held", None)
        allowed = held(file_id) if held is not None else None
        return ranges if allowed is None else allowed.intersection(ranges)

    def _start(self, msg: p.Request, info, ranges, addr, sid, now) -> None:
        asked = ranges.count()
        # Upload slots (BitTorrent's unchoked few): a flash crowd's
        # leechers get whole pieces soon, one after the other, and share
        # them, instead of a sliver each and nothing to share (a seeder
        # dividing 400 kbit/s among 100 sessions sends nobody a piece for
        # a minute).  They ask again after a back-off, and meanwhile
        # fetch from each other.  Slots full, a host holding more than
        # its share loses one (else one host holds them all for ever).
        room, evicted = self.sessions.make_room(
            addr[0], asked + SESSION_COST_CHUNKS, self.upload_slots)
        if not room and self.upload_slots \
                and len(self.sessions) >= self.upload_slots:
            self.counters.slots_full += 1
            self._refuse(p.ErrorCode.BUSY, "every upload slot is taken, "
                         "ask again later", addr, sid, now)
            return
        if not room:
            self._refuse(p.ErrorCode.BUSY, "too many sessions", addr, sid,
                         now)
            return
        if not self.starts.take(addr[0], asked, now):
            self._refuse(p.ErrorCode.BUSY, "too many session starts, ask "
                         "again later", addr, sid, now)
            return
        for victim in evicted:
            self._end(victim, "evicted", notify=True)
        default = msg.order == p.Order.DEFAULT
        order = self.order if default else msg.order
        fraction = (self.ordered_fraction if default
                    else msg.ordered_percent / 100)
        session = Session(sid, addr, info, ranges, order, msg.seed,
                          fraction, min(msg.window, MAX_WINDOW), now)
        self.sessions.add(session)
        self.counters.sessions += 1
        self._next_expiry = min(self._next_expiry, now + EXPIRY_CHECK_S)
        self._events.append(SessionStarted(
            sid, addr, info.name, len(session.first_pass),
            p.order_name(order)))

    def _on_credit(self, session: Session, limit: int, now: float) -> None:
        """An ACK (or a NACK's limit, or a repeated REQUEST's window)."""
        session.heard(now)
        session.grant(limit)
        session.probe(now, PROBE_INTERVAL_S)  # DONE again if all is sent

    def _on_ack(self, datagram, addr, now) -> None:
        session = self.sessions.get(addr, datagram.session)
        if session is not None:
            self._on_credit(session, datagram.message.limit, now)

    def _on_nack(self, datagram, addr, now) -> None:
        msg, sid = datagram.message, datagram.session
        session = self.sessions.get(addr, sid)
        if session is None:
            self._reply(p.Error(p.ErrorCode.UNKNOWN_SESSION,
                                "no such session"), addr, sid, now)
            return
        session.heard(now)
        session.grant(msg.limit)
        if not session.on_nack(msg.round, msg.ranges):
            self._reply(p.Error(p.ErrorCode.BUSY, "resend limit reached"),
                        addr, sid, now)
            self._end(session, "failed: resend limit reached")
            return
        session.probe(now, PROBE_INTERVAL_S)  # nothing to resend: DONE

    def _on_cancel(self, datagram, addr, now) -> None:
        session = self.sessions.get(addr, datagram.session)
        if session is not None:
            # The leecher also cancels once it has the whole file: with
            # every chunk sent and none to resend, the session went well.
            self._end(session, "cancelled" if session.pending() else "done")

    def _end(self, session: Session, why: str, notify: bool = False) -> None:
        if notify:
            self._reply(p.Error(p.ErrorCode.BUSY, f"session {why}"),
                        session.addr, session.sid, self._now)
        self.sessions.remove(session)
        self._events.append(SessionEnded(session.sid, session.addr, why,
                                         session.counts.sent,
                                         session.counts.resent))

    _HANDLERS = {p.Ping: Replies._on_ping, p.Search: Replies._on_search,
                 p.Request: _on_request, p.Ack: _on_ack, p.Nack: _on_nack,
                 p.Cancel: _on_cancel, p.Hashes: Replies._on_hashes,
                 p.Have: Replies._on_have,
                 p.GetPeers: Replies._on_get_peers}
