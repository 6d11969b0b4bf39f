"""Where a chunk is scheduled: which chunks the leecher asks of whom.

Part of the download engine (``download_engine.py``), without I/O.

* **Classic**, while no alive partial peer is known (or the song has no
  piece list, ``pieces.legacy``): the wanted chunks are split among the
  seeders in interleaved blocks, one REQUEST (a ``Transfer``) per share.
* **Piece-wise**, once a partial peer (``Peer.holds`` set: the pieces it
  has verified and shares) is known and alive: the open classic
  transfers are cancelled and every idle peer gets a batch of pieces it
  holds, chosen by the policy (``piece_picker``) among the missing pieces
  nobody is fetching.  A peer is idle while it has no transfer whose
  first pass is still coming (no DONE yet): one open transfer each.  A
  seeder gets first the pieces no alive partial peer holds (seeders
  last: they serve what only they have), then any.  The first batch of
  a peer is one piece; later ones about ``BATCH_S`` worth at the rate
  its last transfer delivered, at most ``MAX_BATCH_PIECES``.  Endgame:
  when no alive peer holds an unclaimed missing piece, an idle peer may
  also fetch a piece one other peer is fetching (once per piece); a
  transfer whose chunks all came from elsewhere is cancelled, not
  waited for.  Nothing at all
  being fetched while pieces are missing (and no peer that holds some
  backing off): the sources are PINGed (``Failover``), as when every
  seeder is gone.

A source that answers BUSY (a peer serves a few sessions at once) is
not gone: what it was to send goes back to the others at once, and it
gets no new work for a back-off (``Backoff``: 0.25 s, doubling per BUSY
in a row up to 4 s, reset once it delivers; a timer of the engine).
Classic, the share of a seeder that said BUSY moves to the other
seeders or, with none ready, is asked of it again when its back-off
ends.  Dead transfers beyond ``KEPT_RETIRED`` leave the table.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random
from array import array
from dataclasses import dataclass

import events as ev
import piece_picker
import pieces
import protocol as p
from recovery import GIVE_UP_SHARE, GRANULARITY, TransferRecovery

MIN_PACED_WINDOW = 8  # smaller windows are paced by our ACKs, not the link
ACKS_PER_WINDOW = 4  # an ACK every window / 4 chunks: the seeder never waits
# The ACK and NACK limit is a u32 on the wire; it grows from the tx_seq a
# peer sends, so a hostile 2^32 - 1 must not push it past what encodes.
MAX_LIMIT = 0xFFFFFFFF
# A batch lasts about this long at the peer's measured rate: long enough
# that the round trip between two batches (one REQUEST each) costs a few
# per cent, short enough that a slow or vanished peer holds few pieces.
BATCH_S = 0.5
# At most 32 pieces (512 chunks, 717 KB) in one batch: what a failover
# or an endgame may have to fetch again, and one REQUEST of 32 ranges.
MAX_BATCH_PIECES = 32
# A peer's "I am fetching these from a seeder" (HAVE with FLAG_FETCHING)
# counts this long: a slow seeder shared by 8 sessions takes ~4 s a
# piece.  A peer that never finishes them only changes the order others
# pick in (when every unheld piece is hinted they fetch one anyway),
# never what they may fetch.
FETCH_HINT_S = 10.0
# A batch is at most this many times the last one: a small batch comes in
# the sender's start burst (netem.BURST_DATAGRAMS, 16 datagrams: a whole
# 16-chunk piece), faster than its link, so its rate says too much; one
# piece at 100 KB/s looked like ~30 pieces in BATCH_S (a 7 s batch).
BATCH_GROWTH = 2
# A peer that answers BUSY (too many sessions, too many session starts,
# its session evicted) is asked again after this, twice as long after
# each BUSY in a row, at most MAX_BUSY_BACKOFF_S: a peer serves a few
# sessions at once (a partial peer ~4), so one frees up within a batch
# or two (~0.5 s each); a peer that is BUSY for ever costs one REQUEST
# every 4 s, its BUSY answer included.
BUSY_BACKOFF_S = 0.25
MAX_BUSY_BACKOFF_S = 4.0
# Endgame rescue: a peer this many times faster (its last batch's rate)
# than every peer fetching a piece right now may fetch it too, once per
# piece: slow peers that took each other's pieces as the endgame's one
# double cannot hold the tail (8 at 2 KB/s held a 7 s song for 33 s).
RESCUE_FACTOR = 4.0
# Retired (dead) transfers kept in ``engine.transfers`` for the chunks
# still on their way: a session is CANCELed when it retires, so they stop
# within a round trip or a queue, long before 64 more retire.  A chunk of
# a session pruned is counted as forged, as any unknown session's, and
# dropped.  Bounds the table of a long piece-wise download: a transfer of
# one piece holds ~2.7 KB (measured), and a 2 GB song fetched a piece per
# batch makes 96,000 of them (~250 MB if all were kept).
KEPT_RETIRED = 64


def peer_name(addr) -> str:
    return f"{addr[0]}:{addr[1]}"


@dataclass(eq=False)  # compared (and hashed) by identity
class Transfer:
    """One REQUEST to one peer (a session) and what came back for it."""

    sid: int
    peer: object  # download_engine.Peer
    ranges: p.RangeSet
    order: int
    percent: int
    seed: int
    window: int
    first_pass: array  # chunk indices in the order the seeder sends them
    recovery: TransferRecovery
    clock_offset: float  # the seeder's send_ms 0, in timeline seconds
    limit: int = 0
    highest_place: int = -1
    highest_seq: int = -1
    highest_send_ms: int = 0  # the seeder's clock when it sent that one
    unacked: int = 0
    nack_round: int = 0
    retries: int = 0
    done: bool = False
    dead: bool = False
    finished: bool = False  # every chunk of it is here
    seeder_counters: p.Done | None = None
    ack_every: int = 1
    slot: int = 0  # the peer's number in PieceBook.sender (0: none)
    started_at: float = 0.0  # when its REQUEST left
    received: int = 0  # chunks that came for it (its rate)
    last_at: float = 0.0  # when the latest of them came

    def request(self, file_id: bytes) -> p.Request:
        return p.Request(file_id, p.Order(self.order), tuple(self.ranges),
                         self.window, self.peer.token, self.percent,
                         self.seed)

    def grant(self) -> int:
        """Credit for a window beyond the furthest chunk that arrived."""
        self.unacked = 0
        self.limit = min(MAX_LIMIT, max(self.limit,
                                        self.highest_seq + 1 + self.window))
        return self.limit

    def pacing(self) -> tuple | None:
        """``(tx_seq, send_ms)`` of the furthest chunk, when the seeder's
        clock tells its link's pace: not while it may have waited for our
        credit (a small window, or little credit left), which is no gap
        of the link and would only stretch the timers."""
        if self.window < MIN_PACED_WINDOW or \
                self.limit - self.highest_seq <= self.window // 2:
            return None
        return self.highest_seq, self.highest_send_ms

    def probe_credit(self) -> int:
        """A silence with credit left means all in flight was lost: a
        window more, so that a seeder stopped by its window sends again
        (and one with nothing pending answers DONE)."""
        self.unacked = 0
        self.limit = min(MAX_LIMIT, max(self.limit, self.highest_seq + 1)
                         + self.window)
        return self.limit

    def rate(self) -> float:
        """Chunks a second that came for it since its REQUEST."""
        return self.received / max(self.last_at - self.started_at,
                                   GRANULARITY)


class Backoff:
    """Peers that answered BUSY: no new work for them until
    ``until[addr]`` (a timer of the engine), ``BUSY_BACKOFF_S`` doubled
    per BUSY in a row (``streak``), reset once one of their transfers
    delivers.  What they hold stays known.  One entry per peer at most.
    Classic, the chunks left when every other source was backing off
    (``deferred``) are asked again when a back-off ends."""

    def __init__(self):
        self.until: dict[tuple, float] = {}
        self.streak: dict[tuple, int] = {}
        self.deferred = p.RangeSet()

    def defer(self, chunks: p.RangeSet) -> None:
        for start, end in chunks:
            self.deferred.add(start, end)

    def hit(self, addr, now: float) -> bool:
        """``addr`` said BUSY: backing off (several BUSY to REQUESTs out
        at once are one).  True when a streak begins (worth telling)."""
        streak = self.streak.get(addr, 0)
        if addr not in self.until:
            self.until[addr] = now + min(
                MAX_BUSY_BACKOFF_S, BUSY_BACKOFF_S * 2 ** min(streak, 16))
            self.streak[addr] = streak + 1
        return streak == 0

    def waiting(self, addr) -> bool:
        return addr in self.until

    def delivered(self, addr) -> None:
        self.streak.pop(addr, None)

    def next_end(self) -> float | None:
        return min(self.until.values(), default=None)

    def expire(self, now: float) -> bool:
        """The back-offs over by ``now`` end; were there any?"""
        over = [addr for addr, end in self.until.items() if end <= now]
        for addr in over:
            del self.until[addr]
        return bool(over)


class Pruner:
    """Dead transfers beyond ``KEPT_RETIRED`` out of the engine's table
    (the oldest REQUESTs first: a dict keeps insertion order), once it
    has grown by that many since the last look (each costs its size)."""

    def __init__(self):
        self.at = 2 * KEPT_RETIRED

    def __call__(self, transfers: dict) -> None:
        if len(transfers) < self.at:
            return
        dead = [key for key, transfer in transfers.items() if transfer.dead]
        for key in dead[:max(0, len(dead) - KEPT_RETIRED)]:
            del transfers[key]
        self.at = len(transfers) + KEPT_RETIRED


class Holdings:
    """The pieces partial peers hold: each one's ``holds`` (a RangeSet
    of pieces, at most half the song's pieces as ranges: memory bounded
    by the song) and, per piece, how many alive ones hold it."""

    def __init__(self, count: int):
        self.pieces = count
        self.count = array("I", [0]) * count
        self.counted: set = set()  # peers whose pieces are in ``count``
        # Per piece, until when a peer's FLAG_FETCHING hint counts.
        self.hinted_until = array("d", [0.0]) * count

    def hint(self, ranges, now: float) -> None:
        """A peer is fetching these pieces from a seeder (clipped)."""
        until = now + FETCH_HINT_S
        for start, end in self.clip(ranges):
            self.hinted_until[start:end] = array("d", [until]) * (end - start)

    def hinted(self, piece: int, now: float) -> bool:
        return self.hinted_until[piece] > now

    def clip(self, ranges) -> p.RangeSet:
        """What a peer said it holds, as it may be trusted: at most
        ``MAX_HAVE_RANGES`` ranges, within the song's pieces."""
        clipped = p.RangeSet()
        for start, end in itertools.islice(ranges, p.MAX_HAVE_RANGES):
            clipped.add(max(0, start), min(self.pieces, end))
        return clipped

    def add(self, peer, ranges) -> p.RangeSet:
        """``ranges`` (clipped) join what ``peer`` holds: the new ones."""
        new = p.RangeSet()
        for start, end in self.clip(ranges):
            gaps = p.RangeSet(((start, end),))
            for first, stop in peer.holds.intersection(gaps):
                gaps.remove(first, stop)
            for first, stop in gaps:
                new.add(first, stop)
        for start, end in new:
            peer.holds.add(start, end)
        if peer.addr in self.counted:
            self._bump(new, 1)
        return new

    @staticmethod
    def held_of(holds: p.RangeSet, free: list[int]) -> list[int]:
        """The pieces of ``free`` (ascending) in ``holds``: a bisection
        per range held, not a look per free piece (a pass over 32 idle
        peers that hold nothing costs nothing on a 10,000-piece song)."""
        mine: list[int] = []
        for start, end in holds:
            mine += free[bisect.bisect_left(free, start):
                         bisect.bisect_left(free, end)]
        return mine

    def sync(self, peer, alive: bool) -> None:
        """Count ``peer``'s pieces while it is alive, not once gone."""
        if alive == (peer.addr in self.counted):
            return
        if alive:
            self.counted.add(peer.addr)
        else:
            self.counted.discard(peer.addr)
        self._bump(peer.holds, 1 if alive else -1)

    def _bump(self, ranges, step: int) -> None:
        count = self.count
        for start, end in ranges:
            for piece in range(start, end):
                count[piece] += step


class Endgame:
    """Who else may fetch a piece someone is fetching, once nothing
    unclaimed is left: the only fetcher's double, once per piece; and
    once more a rescue, by a peer ``RESCUE_FACTOR`` times faster (its
    last batch's rate; a seeder not yet measured counts as fast) than
    every fetcher now.  Slow peers that took each other's pieces as
    their double then cannot hold the tail."""

    def __init__(self, scheduler: "Scheduler"):
        self.scheduler = scheduler
        self.doubled: set[int] = set()  # pieces fetched twice
        self.rescued: set[int] = set()  # ... and once more
        self.rates: dict[tuple, float] = {}  # peer -> its last batch's
        self._paces_at: tuple = (None, {})  # (when, the paces then)

    def new_pass(self) -> None:
        """Transfers changed: paces are made anew when asked."""
        self._paces_at = (None, {})

    def doubles(self, piece: int, who: list) -> bool:
        """The endgame's double: the only fetcher's, once per piece."""
        return len(who) == 1 and piece not in self.doubled

    def may_fetch(self, peer, piece: int, who: list, now: float) -> bool:
        """May ``peer`` also fetch ``piece`` (``who`` fetch it)?"""
        if self.doubles(piece, who):
            return True
        if piece in self.rescued:
            return False
        mine = self.rate(peer)
        paces, peers = self.paces(now), self.scheduler.engine.peers
        return mine > 0 and all(  # a transfer of this pass: young
            mine > RESCUE_FACTOR * paces.get(addr, self.rate(peers[addr]))
            for addr in who)

    def taken(self, piece: int, who: list) -> None:
        """``piece`` (``who`` fetch it) went to one more peer."""
        (self.doubled if self.doubles(piece, who) else self.rescued).add(
            piece)

    def rate(self, peer) -> float:
        """Chunks a second ``peer``'s last batch came at (a seeder not
        yet measured counts as fast, a partial peer as slow)."""
        return self.rates.get(peer.addr,
                              math.inf if peer.holds is None else 0.0)

    def paces(self, now: float) -> dict:
        """Per peer, chunks a second its open transfer delivers so far
        (a stalled one slows down as time passes); before a batch's
        ``BATCH_S``, too early to tell: its last batch's rate.  Made once
        per pass, not per piece looked at."""
        if self._paces_at[0] != now:
            paces = {}
            for transfer in self.scheduler.live:
                if not transfer.dead:
                    elapsed = now - transfer.started_at
                    paces[transfer.peer.addr] = transfer.received / elapsed \
                        if elapsed >= BATCH_S else self.rate(transfer.peer)
            self._paces_at = (now, paces)
        return self._paces_at[1]


class Scheduler:
    """Where a chunk is scheduled (see the module's docstring)."""

    def __init__(self, engine):
        self.engine = engine
        info, seed = engine.info, engine.options.seed
        self.holdings = None if pieces.legacy(info) else Holdings(
            pieces.piece_count(info.chunks))
        # The policy's own generator: its ties do not shift the sessions'
        # seeds, and the same seed picks the same pieces.
        self.rng = random.Random(None if seed is None else f"pick {seed}")
        self.begun = self.piecewise = self.dirty = False
        self.live: list[Transfer] = []  # piece-wise, not dead
        self.batch: dict[tuple, int] = {}  # peer -> pieces in its next
        self.fetching: list[int] = []  # pieces asked of seeders: hints out
        self.endgame = Endgame(self)
        self.playhead: int | None = None  # the driver's play point
        self.backoff = Backoff()  # peers that said BUSY
        self.prune = Pruner()

    # ------------------------------------------------------ the peers
    def hint(self, peer, ranges, now: float) -> None:
        """``peer`` (partial) fetches ``ranges`` from a seeder."""
        if peer is not None and peer.holds is not None and self.holdings:
            self.holdings.hint(ranges, now)

    def take_fetching(self) -> list[int]:
        taken, self.fetching = self.fetching, []
        return taken

    def adopt(self, peer) -> bool:
        """A partial peer's ``holds`` clipped; False when the song is
        never fetched piece-wise (no piece list)."""
        if self.holdings is None:
            return False
        told, peer.holds = peer.holds, p.RangeSet()
        self.holdings.add(peer, told)
        return True

    def has(self, peer, ranges) -> bool:
        """A HAVE: ``ranges`` join what ``peer`` holds.  Worth a
        scheduling pass (every idle peer against every missing piece)
        only when ``peer`` may take work now and gained a piece we miss:
        a flood of HAVEs from a busy peer, or of pieces we have, costs
        no pass per datagram.  A busy peer's new pieces are looked at
        when its batch is done."""
        new = self.holdings.add(peer, ranges)
        return bool(new) and self.ready(peer) and not self.busy(peer) \
            and self.misses_any(new)

    def busy(self, peer) -> bool:
        """Has ``peer`` a piece-wise transfer whose first pass is still
        coming (one open transfer each)?"""
        return any(transfer.peer is peer and not (transfer.done
                                                  or transfer.dead)
                   for transfer in self.live)

    def misses_any(self, new: p.RangeSet) -> bool:
        """Is a chunk of the pieces ``new`` missing?"""
        have, chunks = self.engine.state.have, self.engine.info.chunks
        return any(have.find(0, pieces.chunk_range(start, chunks)[0],
                             pieces.chunk_range(end - 1, chunks)[1]) != -1
                   for start, end in new)

    def usable(self, peer) -> bool:
        return peer.alive and peer.addr not in self.engine.failover.gone

    def ready(self, peer) -> bool:
        """Usable and not backing off after a BUSY: may get work now."""
        return self.usable(peer) and not self.backoff.waiting(peer.addr)

    def waiting_for(self, chunks: p.RangeSet) -> bool:
        """Does a usable peer backing off hold some of ``chunks``?  Its
        back-off ends soon: no reason to call the sources gone."""
        peers = self.engine.peers
        return any(self.usable(peer) and self.can_serve(peer, chunks)
                   for peer in map(peers.get, self.backoff.until)
                   if peer is not None)

    @staticmethod
    def holds(peer, piece: int) -> bool:
        return peer.holds is None or piece in peer.holds

    @staticmethod
    def can_serve(peer, chunks: p.RangeSet) -> bool:
        """Does ``peer`` hold a piece of ``chunks``?"""
        size = pieces.PIECE_CHUNKS
        return peer.holds is None or any(
            piece in peer.holds for start, end in chunks
            for piece in range(start // size, (end - 1) // size + 1))

    # ---------------------------------------------------- when to act
    def start(self, alive: list, now: float) -> None:
        self.begun = True
        self.start_transfers(alive, self.engine.state.missing, now)

    def start_transfers(self, peers: list, wanted: p.RangeSet,
                        now: float) -> None:
        """``wanted`` chunks to ``peers`` (classic), or, piece-wise,
        whatever is missing to whoever is idle."""
        self._maybe_switch()
        if self.piecewise:
            self.fill(now)
        else:
            self._split(peers, wanted, now)

    def refresh(self, now: float) -> None:
        """A peer joined, came back or gained pieces."""
        if self.begun:
            self._maybe_switch()
            self.dirty = True
            self.settle(now)

    def settle(self, now: float) -> None:
        if self.piecewise and self.dirty:
            self.fill(now)

    def on_timer(self, now: float) -> None:
        """Back-offs over: those peers may get work again (piece-wise:
        the next fill; classic: what was deferred)."""
        if not self.backoff.expire(now):
            return
        self.dirty = True
        backoff = self.backoff
        wanted = self.engine.state.missing.intersection(backoff.deferred)
        backoff.deferred = p.RangeSet()
        if wanted and not self.piecewise:
            self.engine.failover.give_up_on_chunks(wanted, now)
        self.settle(now)

    def finish(self, transfer: Transfer) -> None:
        """All of ``transfer``'s chunks are here (some may have come from
        elsewhere).  Piece-wise its session is closed: its peer is free."""
        transfer.finished = True
        if self.piecewise:
            self._retire(transfer)

    def on_done(self, transfer: Transfer, now: float) -> None:
        """Its first pass is all sent: its peer may take the next batch.
        A DONE before any chunk came is a refusal, as BUSY (a back-off,
        its pieces to the others): a peer that answers every REQUEST so
        would get a new batch per round trip for ever."""
        if self.piecewise and not transfer.received:
            self.backoff.hit(transfer.peer.addr, now)
            self.engine.failover.busy(transfer, now)
        elif self.piecewise:
            self._learn(transfer)
            self.dirty = True
            self.settle(now)

    def after_arrivals(self, transfers, now: float) -> None:
        """Piece-wise: the transfers that got chunks, finished or not."""
        have = self.engine.state.have
        for transfer in transfers:
            if not (transfer.dead or transfer.finished) and all(
                    have.find(0, start, end) == -1
                    for start, end in transfer.ranges):
                self.finish(transfer)
        self.settle(now)

    def _maybe_switch(self) -> None:
        """Piece-wise from the first alive partial peer on: the classic
        shares are cancelled (what is in flight still counts)."""
        if self.piecewise or not self.begun or self.holdings is None:
            return
        if any(peer.holds is not None and self.usable(peer)
               for peer in self.engine.peers.values()):
            self.piecewise = self.dirty = True
            self.engine.cancel_all()

    # -------------------------------------------------------- classic
    def _split(self, peers: list, wanted: p.RangeSet, now: float) -> None:
        """Split ``wanted`` chunks among ``peers``, REQUEST each share."""
        wanted_list = list(wanted.values())
        shares = p.split_among(len(wanted_list), len(peers))
        for peer, share in zip(peers, shares):
            chunks = [wanted_list[i] for start, end in share
                      for i in range(start, end)]
            if chunks:
                self.start_transfer(peer, p.RangeSet(p.runs(chunks)), now)

    def start_transfer(self, peer, ranges: p.RangeSet, now: float) -> None:
        """REQUEST ``ranges`` of ``peer`` (several REQUESTs when they do
        not fit one)."""
        engine = self.engine
        pairs = list(ranges)
        if len(pairs) > p.MAX_REQUEST_RANGES:  # scattered: several requests
            for start in range(0, len(pairs), p.MAX_REQUEST_RANGES):
                self.start_transfer(peer, p.RangeSet(
                    pairs[start:start + p.MAX_REQUEST_RANGES]), now)
            return
        if engine.options.order:
            order, percent = p.ORDER_NAMES[engine.options.order], 50
        else:
            order, percent = p.Order(peer.order), peer.ordered_percent
        seed = engine.rng.getrandbits(32)
        first_pass = array("I", p.send_order(ranges, order, seed,
                                             percent / 100))
        for place, index in enumerate(first_pass):
            engine.place[index] = place
        sid = engine.rng.getrandbits(32) or 1
        window = engine.options.window
        transfer = Transfer(
            sid, peer, ranges, order, percent, seed, window, first_pass,
            TransferRecovery(first_pass, engine.state.have, peer.rtt, now,
                             engine.options.timeout * GIVE_UP_SHARE),
            clock_offset=engine.since_start(now) + (peer.rtt or 0) / 2,
            limit=window, ack_every=max(1, window // ACKS_PER_WINDOW),
            slot=engine.slots.get(peer.addr, 0), started_at=now)
        engine.transfers[(peer.addr, sid)] = transfer
        self.prune(engine.transfers)
        if self.piecewise:
            self.live.append(transfer)
        engine.send(transfer.request(engine.info.file_id), peer.addr, sid)
        engine.emit(ev.RequestSent(peer_name(peer.addr), len(first_pass),
                                   p.order_name(p.Order(order)),
                                   engine.since_start(now)))

    # ----------------------------------------------------- piece-wise
    def fill(self, now: float) -> None:
        """Work for every idle peer; the sources PINGed when nothing at
        all can be fetched."""
        engine = self.engine
        self.dirty = False
        if engine.state.complete:
            return
        for peer in engine.peers.values():
            if peer.holds is not None:
                self.holdings.sync(peer, self.usable(peer))
        claims = self._claims()
        self.endgame.new_pass()
        idle = self._idle({t.peer.addr for t in self.live if not t.done})
        if not idle and self.live:
            return  # everyone busy: nothing to look at
        pool = self._pool()
        free = [piece for piece in pool if piece not in claims]
        alive = [peer for peer in engine.peers.values() if self.usable(peer)]
        seeding = any(peer.holds is None for peer in alive)
        for peer in idle:
            endgame = not self._fetchable(free, seeding)
            picked = self._pick_for(peer, free, claims, endgame, len(alive),
                                    now)
            if picked:
                if peer.holds is None:
                    self.fetching += picked
                for piece in picked:
                    claims.setdefault(piece, []).append(peer.addr)
                free = [piece for piece in free if piece not in claims]
                wanted = p.RangeSet(pieces.chunk_range(
                    piece, engine.info.chunks) for piece in picked)
                self.start_transfer(
                    peer, engine.state.missing.intersection(wanted), now)
        if pool and not self.live and not self.waiting_for(
                engine.state.missing):
            engine.failover.orphan(engine.state.missing, now)

    def _claims(self) -> dict[int, list]:
        """piece -> the peers fetching it; transfers with nothing left
        to come retired."""
        claims: dict[int, list] = {}
        have, size = self.engine.state.have, pieces.PIECE_CHUNKS
        live = []
        for transfer in self.live:
            if transfer.dead:
                continue
            fetching = {piece for start, end in transfer.ranges
                        for piece in range(start // size,
                                           (end - 1) // size + 1)
                        if have.find(0, max(start, piece * size),
                                     min(end, (piece + 1) * size)) != -1}
            if not fetching:
                self.finish(transfer)
                continue
            live.append(transfer)
            for piece in fetching:
                claims.setdefault(piece, []).append(transfer.peer.addr)
        self.live = live
        return claims

    def _pool(self) -> list[int]:
        """The pieces with a chunk missing, ascending."""
        pool: list[int] = []
        size = pieces.PIECE_CHUNKS
        for start, end in self.engine.state.missing:
            first = start // size
            if pool and pool[-1] >= first:
                first = pool[-1] + 1
            pool.extend(range(first, (end - 1) // size + 1))
        return pool

    def _idle(self, busy: set) -> list:
        """Ready peers without an open transfer: partial peers first
        (seeders last), then the nearest."""
        idle = [peer for peer in self.engine.peers.values()
                if peer.addr not in busy and self.ready(peer)]
        return sorted(idle, key=lambda peer: (peer.holds is None,
                                              peer.rtt or 0.0, peer.addr))

    def _fetchable(self, free: list, seeding: bool) -> bool:
        """Is an unclaimed piece left that an alive peer holds?"""
        return bool(free) and (seeding or any(self.holdings.count[n]
                                              for n in free))

    def _pick_for(self, peer, free: list, claims: dict, endgame: bool,
                  alive: int, now: float) -> list[int]:
        """``peer``'s next batch: unclaimed pieces it holds or, in the
        endgame, pieces one other peer is fetching (once each).  Near
        the end no more than its share of what is left (the ``alive``
        peers'), so that no peer is left with the tail alone."""
        holds = peer.holds
        if endgame:
            mine = sorted(n for n, who in claims.items()
                          if peer.addr not in who and self.holds(peer, n)
                          and self.endgame.may_fetch(peer, n, who, now))
        elif holds is None:  # a seeder: first what no partial peer holds
            # nor fetches from a seeder (its upload carries a piece once)
            count = self.holdings.count
            unheld = [n for n in free if not count[n]]
            mine = self._unhinted(unheld, now) or unheld or free
        else:
            mine = Holdings.held_of(holds, free)
        left = len(mine) if endgame else len(free)
        count = min(self.batch.get(peer.addr, 1), -(-left // max(alive, 1)))
        picked = piece_picker.pick(self.engine.options.pick, mine, count,
                                   self.holdings.count, self._play_piece(),
                                   self.rng)
        for piece in picked if endgame else ():
            self.endgame.taken(piece, claims[piece])
        return picked

    def _unhinted(self, unheld: list, now: float) -> list[int]:
        """``unheld`` but the pieces a peer says it fetches from a
        seeder, except, while a player plays, the ``URGENT_PIECES`` next
        from its play point: a liar hinting those for ever must not
        defer what the player needs next to the end of the download."""
        play = self.playhead
        urgent = () if play is None else set(heapq.nsmallest(
            piece_picker.URGENT_PIECES,
            (n for n in unheld if n >= play // pieces.PIECE_CHUNKS)))
        return [n for n in unheld
                if n in urgent or not self.holdings.hinted(n, now)]

    def _play_piece(self) -> int:
        chunk = self.playhead if self.playhead is not None \
            else self.engine.verified_prefix()
        return chunk // pieces.PIECE_CHUNKS

    def _retire(self, transfer: Transfer) -> None:
        """A piece-wise transfer with nothing left to come: its rate
        learnt, its session CANCELed (the peer's session table is
        small), its peer free."""
        self._learn(transfer)
        self.dirty = True
        if not transfer.dead:
            transfer.dead = True
            self.engine.send(p.Cancel(), transfer.peer.addr, transfer.sid)

    def _learn(self, transfer: Transfer) -> None:
        """The next batch: ``BATCH_S`` worth at the rate it delivered,
        at most ``BATCH_GROWTH`` times the last one."""
        if transfer.received:
            addr = transfer.peer.addr
            self.endgame.rates[addr] = transfer.rate()
            worth = transfer.rate() * BATCH_S / pieces.PIECE_CHUNKS
            self.batch[addr] = max(1, min(
                MAX_BATCH_PIECES, BATCH_GROWTH * self.batch.get(addr, 1),
                round(worth)))
