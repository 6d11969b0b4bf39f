"""The download engine in a swarm, on simnet: real ``SeederEngine``s as
seeders and as partial peers (a ``ChunkSource`` that has only the pieces
the test decides), the leecher told what each peer holds (``Peer.holds``
and ``peer_has``, as peer_engine.py will).  What the leecher asked of
whom is read from simnet's trace, not from the engine's belief.  Virtual
time only: no sleep, no socket."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import ROOT  # noqa: F401  (puts the project on sys.path)
import download_engine as de
import events as ev
import netem
import piece_picker
import pieces
import protocol as p
import scheduler
import simnet
from seed_engine import SeederEngine
from test_pieces import Source  # a seeder's ChunkSource with a list

CHUNK = p.CHUNK_SIZE
PIECE = pieces.PIECE_CHUNKS
LEECHER = simnet.LEECHER_ADDRESS


def pieces_lasting(seconds: float, rate_Bps: float) -> int:
    """Pieces that take ``seconds`` to send at ``rate_Bps``: a song
    sized by how long the test needs it to last, whatever the piece."""
    return max(1, round(seconds * rate_Bps / (PIECE * CHUNK)))


def song(count: int, seed: int = 1, short: int = 100):
    """``count`` pieces of random bytes (the last one ``short`` bytes
    short), named by their piece list."""
    data = random.Random(seed).randbytes(count * PIECE * CHUNK - short)
    sha, hashes = pieces.hash_bytes(data)
    info = p.FileInfo(pieces.file_id_from(hashes), len(data),
                      p.chunk_count(len(data)), CHUNK, 0, sha, "song.mp3")
    return info, data, hashes


class PartialSource(Source):
    """A ``ChunkSource`` holding only the pieces in ``held`` (None: all,
    a seeder): another chunk cannot be read, as in a peer's .part file.
    ``corrupt`` pieces are sent wrong, with valid CRCs."""

    def __init__(self, info, data, hashes, held=None, corrupt=()):
        super().__init__(info, data, hashes, corrupt=[
            index for piece in corrupt
            for index in range(*pieces.chunk_range(piece, info.chunks))])
        self.holding = None if held is None else set(held)

    def read(self, file_id, index):
        piece = index // PIECE
        if self.holding is not None and piece not in self.holding:
            raise OSError(f"piece {piece} is not here")
        return super().read(file_id, index)


class Leecher:
    """The driver's part of a download as a simnet host: it writes the
    chunks the engine takes in and checks each whole piece."""

    def __init__(self, engine: de.DownloadEngine, size: int):
        self.engine = engine
        self.file = bytearray(size)
        self.verified: list[int] = []

    def receive_datagram(self, data, addr, now):
        self.engine.receive_datagram(data, addr, now)
        self.turn(now)

    def datagrams_to_send(self, now):
        return self.engine.datagrams_to_send(now)

    def get_timer(self):
        return self.engine.get_timer()

    def handle_timer(self, now):
        self.engine.handle_timer(now)
        self.turn(now)

    def turn(self, now):
        engine = self.engine
        for index, chunk in engine.take_fresh():
            self.file[index * CHUNK:index * CHUNK + len(chunk)] = chunk
        for piece in engine.pieces_to_verify():
            start, end = pieces.chunk_range(piece, engine.info.chunks)
            engine.check_piece(piece, bytes(
                self.file[start * CHUNK:end * CHUNK]), now)
        self.verified += engine.take_verified()


class Busy:
    """A source that answers BUSY to the REQUESTs numbered in ``refuse``
    (0: its first; None: to every one, as a peer whose few sessions
    never free up); ``engine`` gets the rest."""

    def __init__(self, engine, refuse: set | None, text: str):
        self.engine, self.refuse, self.text = engine, refuse, text
        self.out: list = []
        self.requests = self.refused = 0

    def receive_datagram(self, data, addr, now):
        datagram = p.decode(data)  # the leecher sends no chunk
        if isinstance(datagram.message, p.Request):
            self.requests += 1
            if self.refuse is None or self.requests - 1 in self.refuse:
                self.refused += 1
                self.out.append((p.encode(p.Error(p.ErrorCode.BUSY,
                                                  self.text),
                                          datagram.session), addr))
                return
        self.engine.receive_datagram(data, addr, now)

    def datagrams_to_send(self, now):
        out, self.out = self.out, []
        return out + self.engine.datagrams_to_send(now)

    def get_timer(self):
        return self.engine.get_timer()

    def handle_timer(self, now):
        self.engine.handle_timer(now)


class Swarm:
    """Sources at 127.0.0.k+1: ``holdings[k]`` is the set of pieces
    source k holds (None: a seeder); ``rates[k]`` its link (bytes/s,
    0: unlimited); ``sessions[k]`` its ``max_sessions``; and the
    leecher."""

    def __init__(self, count: int, holdings: list, rates=None, seed=1,
                 delay=0.005, forward=None, backward=None, corrupt=None,
                 short=100, sessions=None):
        self.info, self.data, hashes = song(count, seed, short)
        self.net = simnet.SimNet(seed=seed, default_link=netem.LinkSpec(
            delay_s=delay))
        self.addrs, self.sources = [], {}
        rates = rates or [0.0] * len(holdings)
        for k, held in enumerate(holdings):
            addr = simnet.seeder_address(k)
            source = PartialSource(self.info, self.data, hashes, held,
                                   (corrupt or {}).get(k, ()))
            engine = SeederEngine(source, simnet.SECRET, seed * 8 + k,
                                  link=netem.LinkSpec(rate_Bps=rates[k]),
                                  name=f"source-{k}", **({
                                      "max_sessions": sessions[k]}
                                      if sessions and k in sessions
                                      else {}))
            self.net.add_host(addr, engine)
            if forward is not None:
                self.net.set_link(addr, LEECHER, forward)
            if backward is not None:
                self.net.set_link(LEECHER, addr, backward)
            self.addrs.append(addr)
            self.sources[addr] = source
        self.initial = {addr: None if source.holding is None else
                        set(source.holding)
                        for addr, source in self.sources.items()}
        self.told: list[tuple] = []  # (time, addr, pieces) given later
        self.engine = self.leecher = None

    def start(self, options: de.Options, playhead: int | None = None,
              known=None) -> de.DownloadEngine:
        """PING the sources, then start the download with the ones in
        ``known`` (all by default), each partial one with its holdings."""
        pinger = simnet.Pinger(self.addrs, self.net.seed)
        pinger.start(self.net.now)
        host = self.net.add_host(LEECHER, pinger)
        self.net.run(until=self.net.now + 60,
                     stop_when=lambda: pinger.finished)
        peers = [pinger.peers[addr] for addr in (known or self.addrs)]
        for peer in peers:
            held = self.sources[peer.addr].holding
            if held is not None:
                peer.holds = p.RangeSet(p.runs(sorted(held))) if held \
                    else p.RangeSet()
        self.started_at = self.net.now
        self.engine = de.DownloadEngine(self.info, peers, self.net.now,
                                        options)
        if playhead is not None:
            self.engine.set_playhead(playhead)
        self.leecher = Leecher(self.engine, len(self.data))
        host.engine = self.leecher
        self.engine.start(self.net.now)
        self.net.run(until=self.net.now)  # the REQUESTs leave
        return self.engine

    def run(self, until: float = 120.0) -> "Swarm":
        engine = self.engine
        self.net.run(until=self.net.now + until,
                     stop_when=lambda: engine.complete)
        return self

    def busy(self, k: int, refuse: set | None,
             text: str = "too many sessions") -> Busy:
        """Source ``k`` answers BUSY to the REQUESTs numbered in
        ``refuse`` (None: to all of them)."""
        host = self.net.hosts[self.addrs[k]]
        host.engine = Busy(host.engine, refuse, text)
        return host.engine

    def requests_to(self, k: int) -> list[float]:
        return [t for t, to, _, _ in self.requests() if to == self.addrs[k]]

    def tell(self, k: int, gained: set) -> None:
        """Source ``k`` verified ``gained`` pieces and says so (HAVE)."""
        addr = self.addrs[k]
        self.sources[addr].holding |= gained
        self.told.append((self.net.now, addr, set(gained)))
        self.engine.peer_has(addr, list(p.runs(sorted(gained))),
                             self.net.now)
        self.net.run(until=self.net.now)  # what that sends leaves now

    # ---------------------------------------------------- the trace
    def requests(self) -> list[tuple]:
        """(time, peer, session, pieces asked) of every REQUEST sent."""
        out = []
        for e in self.net.trace:
            if e.kind == simnet.SENT and e.src == LEECHER:
                datagram = p.decode(e.data)
                if isinstance(datagram.message, p.Request):
                    out.append((e.time, e.dst, datagram.session,
                                pieces_of(datagram.message.ranges)))
        return out

    def held_at(self, addr, time: float) -> set | None:
        held = self.initial[addr]
        if held is None:
            return None
        return held.union(*[gained for at, who, gained in self.told
                            if who == addr and at <= time])

    def asked_of_non_holders(self) -> list[tuple]:
        """(time, peer, pieces) REQUESTed of a peer that did not hold
        them then."""
        bad = []
        for time, addr, _, asked in self.requests():
            held = self.held_at(addr, time)
            if held is not None and not asked <= held:
                bad.append((time, addr, asked - held))
        return bad

    def stored(self, k: int) -> int:
        return self.engine.counters.stored_from.get(self.addrs[k], 0)

    def assert_whole(self) -> None:
        engine = self.engine
        assert engine.complete, (self.net.now, engine.state.received,
                                 self.info.chunks)
        assert bytes(self.leecher.file) == self.data
        assert self.asked_of_non_holders() == []


def pieces_of(ranges) -> set[int]:
    return {piece for start, end in ranges
            for piece in range(start // PIECE, (end - 1) // PIECE + 1)}


def first_request_to(swarm: Swarm, addr) -> set[int]:
    return next(asked for _, to, _, asked in swarm.requests() if to == addr)


# ------------------------------------------------------------ the basics
def test_a_seeder_and_two_partial_peers_byte_exact_none_asked_amiss():
    swarm = Swarm(8, [None, set(range(4)), set(range(2, 8))],
                  rates=[500_000] * 3)
    engine = swarm.start(de.Options(seed=1))
    swarm.run()
    swarm.assert_whole()
    assert engine.scheduler.piecewise
    assert all(swarm.stored(k) > 0 for k in range(3))
    stats = engine.stats(swarm.net.now)
    names = [de.peer_name(addr) for addr in swarm.addrs]
    assert stats["sources"] == {names[0]: "seeder", names[1]: "peer",
                                names[2]: "peer"}
    assert sum(stats["per_peer"].values()) >= swarm.info.chunks
    assert "per_seeder" not in stats
    assert sorted(swarm.leecher.verified) == list(range(8))
    assert engine.take_verified() == []  # each piece once


@pytest.mark.parametrize("policy", piece_picker.POLICIES)
def test_seeders_last_a_peer_holding_half_leaves_the_seeder_the_rest(
        policy):
    """A partial peer holds the first half, as fast as the seeder: the
    seeder serves the other half first, and about half in all, whatever
    the policy's order."""
    count = 16
    swarm = Swarm(count, [None, set(range(count // 2))],
                  rates=[300_000, 300_000])
    swarm.start(de.Options(seed=2, pick=policy))
    swarm.run()
    swarm.assert_whole()
    chunks = swarm.info.chunks
    only_seeder = chunks - count // 2 * PIECE  # pieces the peer lacks
    assert only_seeder <= swarm.stored(0) <= 0.65 * chunks, \
        (swarm.stored(0), swarm.stored(1))
    # Its first requests are pieces the peer does not hold.
    seeder_asks = [asked for _, to, _, asked in swarm.requests()
                   if to == swarm.addrs[0]]
    assert min(seeder_asks[0]) >= count // 2


# ------------------------------------------------------------ policies
def test_sequential_asks_piece_0_first():
    swarm = Swarm(6, [None, set(range(6))], rates=[300_000] * 2)
    swarm.start(de.Options(seed=3, pick="sequential"))
    assert first_request_to(swarm, swarm.addrs[1]) == {0}
    swarm.run()
    swarm.assert_whole()


@pytest.mark.parametrize("policy, first", [("rarest", {6, 7}),
                                           ("sequential", {0})])
def test_rarest_asks_the_least_held_pieces_first(policy, first):
    """Three peers: pieces 0-3 held by three, 4-5 by two, 6-7 by one
    (the first peer): rarest first, that one is asked for 6 or 7."""
    swarm = Swarm(8, [set(range(8)), set(range(6)), set(range(4))],
                  rates=[300_000] * 3)
    swarm.start(de.Options(seed=4, pick=policy))
    assert first_request_to(swarm, swarm.addrs[0]) <= first
    swarm.run()
    swarm.assert_whole()


def test_deadline_asks_the_pieces_at_the_play_point_first():
    swarm = Swarm(12, [set(range(12))], rates=[300_000])
    swarm.start(de.Options(seed=5, pick="deadline"),
                playhead=5 * PIECE + 10)
    asked = [asked for _, _, _, asked in swarm.requests()]
    assert asked[0] == {5}  # the first batch: one piece, the urgent one
    swarm.run()
    swarm.assert_whole()
    urgent = set(range(5, 5 + piece_picker.URGENT_PIECES))
    second = swarm.requests()[1][3]
    assert second & urgent  # the next batch goes on with them


# ------------------------------------------------------------ failover
def test_a_partial_peer_killed_mid_transfer_its_pieces_go_to_holders():
    """Peer 1 dies while fetching: once it is given up on, the piece it
    was on goes back to the pool and is asked of a holder."""
    # ~10 s at the three rates: pieces still unclaimed long after the
    # victim is given up on (six doubling probes, ~6 s after it died).
    count = pieces_lasting(10.0, 3 * 100_000)
    swarm = Swarm(count, [None, set(range(2 * count // 3)),
                          set(range(count // 3, count))],
                  rates=[100_000] * 3)
    victim = swarm.addrs[1]
    swarm.net.kill(victim, 0.5)
    engine = swarm.start(de.Options(seed=6))
    swarm.run()
    swarm.assert_whole()
    assert engine.seeders_gone() == [de.peer_name(victim)]
    (gone,) = [e for e in engine.events() if isinstance(e, ev.SeederGone)]
    given_up_at = swarm.started_at + gone.at_s
    requests = swarm.requests()
    to_victim = [asked for t, to, _, asked in requests if to == victim]
    on = to_victim[-1]  # what it was fetching when it died
    assert 0 < swarm.stored(1) < sum(map(len, to_victim)) * PIECE
    again = [(t, asked) for t, to, _, asked in requests
             if to != victim and t >= given_up_at and asked & on]
    assert on <= {piece for _, asked in again for piece in asked}
    # At once, from the pool: not in the endgame (new pieces after it).
    seen = {piece for t, _, _, asked in requests if t <= again[0][0]
            for piece in asked}
    assert [t for t, _, _, asked in requests if asked - seen]


def test_a_bad_piece_is_fetched_again_from_a_holder_that_did_not_send_it():
    """Peer 0 lies on every piece it holds (0-3); peer 1 (as near, and
    first in address order) holds 4-7 only: each bad piece is asked again
    of the seeder, never of peer 1."""
    swarm = Swarm(8, [set(range(4)), set(range(4, 8)), None],
                  rates=[300_000] * 3, corrupt={0: set(range(4))})
    liar, other, seeder = swarm.addrs
    engine = swarm.start(de.Options(seed=7))
    swarm.run()
    swarm.assert_whole()
    bad = [e for e in engine.events() if isinstance(e, ev.BadPiece)]
    assert bad and {peer for e in bad for peer in e.peers} == {
        de.peer_name(liar)}
    for e in bad:
        sent_bad = [t for t, to, _, asked in swarm.requests()
                    if e.piece in asked and to == liar]
        again = [to for t, to, _, asked in swarm.requests()
                 if e.piece in asked and t > sent_bad[0]]
        assert again and seeder in again and other not in again


# ------------------------------------------------------------ endgame
def test_endgame_a_slow_peers_last_piece_is_fetched_by_an_idle_seeder():
    """The peer is 20x slower than the two seeders: when nothing
    unclaimed is left an idle seeder also fetches the piece the peer is
    on, once (the other seeder does not), and the peer's session is
    cancelled instead of waited for."""
    swarm = Swarm(4, [None, None, set(range(4))],
                  rates=[400_000, 400_000, 20_000])
    engine = swarm.start(de.Options(seed=8))
    swarm.run()
    swarm.assert_whole()
    slow = swarm.addrs[2]
    peer_pieces = {piece for _, to, _, asked in swarm.requests()
                   if to == slow for piece in asked}
    seeder_pieces = [piece for _, to, _, asked in swarm.requests()
                     if to != slow for piece in asked]
    assert peer_pieces & set(seeder_pieces)  # the endgame's double
    asked = [piece for _, _, _, a in swarm.requests() for piece in a]
    assert max(asked.count(piece) for piece in set(asked)) == 2  # once
    # Alone, the peer needs 64 x 1.4 KB / 20 KB/s = 4.6 s per piece.
    assert swarm.net.now < 2.0
    assert swarm.stored(2) < len(peer_pieces) * PIECE  # not waited for
    cancels = [e for e in swarm.net.trace if e.kind == simnet.SENT
               and e.src == LEECHER and e.dst == slow
               and isinstance(p.decode(e.data).message, p.Cancel)]
    assert cancels and engine.complete


# ------------------------------------------- peers that join or gain
def test_a_peer_that_joins_mid_download_gets_work_and_the_seeder_less():
    swarm = Swarm(10, [None, set(range(10))], rates=[200_000, 200_000])
    engine = swarm.start(de.Options(seed=9), known=swarm.addrs[:1])
    assert not engine.scheduler.piecewise  # a lone leecher: classic
    swarm.net.run(until=swarm.net.now + 0.8)
    assert not engine.complete
    peer = de.Peer(swarm.addrs[1], rtt=0.01,
                   token=swarm.net.hosts[swarm.addrs[1]].engine.token_for(
                       LEECHER, swarm.net.now),
                   holds=p.RangeSet([(0, 10)]))
    joined_at = swarm.net.now
    engine.add_peer(peer, joined_at)
    swarm.run()
    swarm.assert_whole()
    assert engine.scheduler.piecewise
    assert swarm.stored(1) > 0
    to_peer = [t for t, to, _, _ in swarm.requests() if to == swarm.addrs[1]]
    assert to_peer[0] == joined_at  # at once
    cancels = [e for e in swarm.net.trace if e.kind == simnet.SENT
               and e.dst == swarm.addrs[0] and e.time == joined_at
               and isinstance(p.decode(e.data).message, p.Cancel)]
    assert cancels  # the classic share, re-planned


def test_a_peer_that_gains_pieces_gets_work_at_once():
    swarm = Swarm(10, [None, set()], rates=[150_000, 150_000])
    engine = swarm.start(de.Options(seed=10))
    assert engine.scheduler.piecewise
    swarm.net.run(until=swarm.net.now + 0.5)
    assert not [r for r in swarm.requests() if r[1] == swarm.addrs[1]]
    swarm.tell(1, {7, 8, 9})
    to_peer = [(t, asked) for t, to, _, asked in swarm.requests()
               if to == swarm.addrs[1]]
    assert to_peer and to_peer[0][0] == swarm.told[0][0]
    assert to_peer[0][1] <= {7, 8, 9}
    swarm.run()
    swarm.assert_whole()
    assert swarm.stored(1) > 0


@pytest.mark.parametrize("hinted", [False, True])
def test_pieces_a_peer_fetches_from_a_seeder_are_asked_of_it_last(hinted):
    """A peer's FLAG_FETCHING hint: the seeder is asked for other pieces
    first (its upload carries each piece once), and what we ask of the
    seeder is handed out as hints in turn."""
    swarm = Swarm(8, [None, set()], rates=[30_000, 30_000])
    engine = swarm.start(de.Options(seed=4, pick="sequential"))
    assert first_request_to(swarm, swarm.addrs[0]) == {0}
    assert engine.take_fetching() == [0]
    if hinted:
        engine.peer_fetching(swarm.addrs[1], [(1, 5)], swarm.net.now)
    engine.peer_fetching(simnet.seeder_address(7), [(5, 8)], swarm.net.now)
    swarm.net.run(until=swarm.net.now + 0.5, stop_when=lambda: len(
        swarm.requests_to(0)) >= 2)
    second = [asked for _, to, _, asked in swarm.requests()
              if to == swarm.addrs[0]][1]
    # The lowest unhinted piece first (an unknown peer's hint counts not).
    assert min(second) == (5 if hinted else 1)
    assert not hinted or not second & {1, 2, 3, 4}
    assert engine.take_fetching() == sorted(second)
    swarm.run()
    swarm.assert_whole()


# ----------------------------------------------- lone leecher: classic
def test_a_lone_leecher_with_only_seeders_asks_exactly_as_before():
    """Two seeders and no peer: one REQUEST each, the missing chunks
    split as ``protocol.split_among`` deals them, seeds and sessions
    drawn as before from the engine's generator."""
    swarm = Swarm(5, [None, None], rates=[300_000, 300_000])
    engine = swarm.start(de.Options(seed=11))
    swarm.run()
    swarm.assert_whole()
    assert not engine.scheduler.piecewise
    requests = [(e.dst, p.decode(e.data)) for e in swarm.net.trace
                if e.kind == simnet.SENT and e.src == LEECHER
                and isinstance(p.decode(e.data).message, p.Request)]
    shares = p.split_among(swarm.info.chunks, 2)
    rng = random.Random(11)
    assert len(requests) == 2
    for (dst, datagram), addr, share in zip(requests, swarm.addrs, shares):
        seed = rng.getrandbits(32)
        sid = rng.getrandbits(32) or 1
        assert dst == addr and datagram.session == sid
        assert datagram.message.seed == seed
        assert datagram.message.ranges == tuple(share)


def test_a_song_without_a_piece_list_ignores_partial_peers():
    info, data, _ = song(3)
    old = p.FileInfo(p.file_id_of(info.sha256), info.size, info.chunks,
                     info.chunk_size, 0, info.sha256, "old.mp3")
    seeder = ("127.0.0.1", 9000)
    engine = de.DownloadEngine(old, [de.Peer(seeder, rtt=0.01)], 0.0,
                               de.Options(seed=1))
    engine.start(0.0)
    before = engine.datagrams_to_send(0.0)
    partial = ("127.0.0.2", 9000)
    engine.add_peer(de.Peer(partial, rtt=0.01, holds=p.RangeSet([(0, 3)])),
                    0.01)
    engine.peer_has(partial, [(0, 3)], 0.01)
    assert partial not in engine.peers
    assert engine.datagrams_to_send(0.01) == []
    assert not engine.scheduler.piecewise
    assert [p.decode(d).message.ranges for d, _ in before] == [
        ((0, old.chunks),)]


# ------------------------------------------------------------ hostile
def engine_with_a_partial_peer(count: int = 8):
    info, _, _ = song(count)
    seeder, partial = ("127.0.0.1", 9000), ("127.0.0.2", 9000)
    engine = de.DownloadEngine(info, [de.Peer(seeder, rtt=0.01)], 0.0,
                               de.Options(seed=1))
    engine.add_peer(de.Peer(partial, rtt=0.01, holds=p.RangeSet()), 0.0)
    return engine, engine.peers[seeder], engine.peers[partial]


def test_have_ranges_are_clipped_to_the_song_and_bounded_per_call():
    engine, seeder, partial = engine_with_a_partial_peer(8)
    engine.peer_has(partial.addr, [(-5, 3), (6, 10 ** 9), (5, 2)], 0.0)
    assert partial.holds == p.RangeSet([(0, 3), (6, 8)])
    engine.peer_has(seeder.addr, [(0, 2)], 0.0)  # a seeder has it all
    assert seeder.holds is None
    engine.peer_has(("10.9.9.9", 1), [(0, 8)], 0.0)  # unknown: ignored
    assert ("10.9.9.9", 1) not in engine.peers
    big, many = 3 * p.MAX_HAVE_RANGES, p.MAX_HAVE_RANGES + 50
    engine, _, partial = engine_with_a_partial_peer(big)
    engine.peer_has(partial.addr, [(2 * k, 2 * k + 1) for k in range(many)],
                    0.0)
    assert len(partial.holds) == p.MAX_HAVE_RANGES
    for _ in range(5):  # memory: a RangeSet of the song's pieces
        engine.peer_has(partial.addr, [(2 * k + 1, 2 * k + 2) for k in
                                       range(many, 2 * many)], 0.0)
    assert len(partial.holds) <= big // 2 + 1


def test_peers_beyond_the_bound_are_ignored():
    engine, _, _ = engine_with_a_partial_peer(2)
    for k in range(de.MAX_PEERS + 10):
        engine.add_peer(de.Peer((f"10.0.{k // 250}.{k % 250}", 7), rtt=0.1,
                                holds=p.RangeSet()), 0.0)
    assert len(engine.peers) == de.MAX_PEERS
    assert max(engine.slots.values()) <= de.MAX_SLOTS


def test_a_peer_that_lied_is_not_taken_back_by_add_peer():
    engine, _, partial = engine_with_a_partial_peer(2)
    engine.failover.ban(partial.addr, 0.0)
    engine.add_peer(de.Peer(partial.addr, rtt=0.01,
                            holds=p.RangeSet([(0, 2)])), 0.1)
    assert partial.addr in engine.failover.gone
    assert partial.holds == p.RangeSet()


# ------------------------------------------------------------ property
@st.composite
def swarms(draw):
    count = draw(st.integers(1, 4))
    seeders = draw(st.integers(1, 2))
    partial = draw(st.lists(st.sets(st.integers(0, count - 1)),
                            min_size=1, max_size=3))
    holdings = [None] * seeders + partial
    rates = [draw(st.sampled_from([0.0, 200_000, 1_000_000]))
             for _ in holdings]
    killable = list(range(seeders, len(holdings))) + (
        list(range(seeders)) if seeders > 1 else [])
    kill = draw(st.one_of(st.none(), st.tuples(
        st.sampled_from(killable), st.floats(0.0, 1.0))))
    return dict(count=count, holdings=holdings, rates=rates, kill=kill,
                loss=draw(st.sampled_from([0.0, 0.05, 0.2])),
                back_loss=draw(st.sampled_from([0.0, 0.1])),
                pick=draw(st.sampled_from(piece_picker.POLICIES)),
                short=draw(st.integers(1, 9000)),
                seed=draw(st.integers(0, 2 ** 31)))


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(swarms())
def test_any_swarm_byte_exact_and_never_asks_a_non_holder(case):
    swarm = Swarm(case["count"], case["holdings"], rates=case["rates"],
                  seed=case["seed"], short=case["short"],
                  forward=netem.LinkSpec(loss=case["loss"], delay_s=0.005),
                  backward=netem.LinkSpec(loss=case["back_loss"],
                                          delay_s=0.005))
    if case["kill"] is not None:
        victim, at = case["kill"]
        swarm.net.kill(swarm.addrs[victim], at)
    swarm.start(de.Options(seed=case["seed"], pick=case["pick"]))
    swarm.run(until=300)
    swarm.assert_whole()


def test_the_batch_grows_with_the_rate_a_peer_delivered():
    """1 piece first; then at most BATCH_GROWTH times the last batch (a
    first piece may come in the sender's start burst), up to about
    BATCH_S worth at the measured rate."""
    rate = 500_000
    count = pieces_lasting(2.0, rate)
    swarm = Swarm(count, [set(range(count))], rates=[rate])
    swarm.start(de.Options(seed=12, pick="sequential"))
    swarm.run()
    swarm.assert_whole()
    sizes = [len(asked) for _, _, _, asked in swarm.requests()]
    assert sizes[0] == 1
    assert all(later <= scheduler.BATCH_GROWTH * earlier
               for earlier, later in zip(sizes, sizes[1:])), sizes
    # 500 KB/s = 357 chunks/s: half a second is ~2.8 pieces of 64
    # chunks, ~11 of 16; the last batch is what is left.
    worth = round(rate / CHUNK * scheduler.BATCH_S / PIECE)
    grown = next((k for k, n in enumerate(sizes) if n >= worth - 1),
                 len(sizes))
    steady = sizes[grown:-1]
    assert len(steady) >= 2 and all(worth - 1 <= n <= worth
                                    for n in steady), sizes
    assert max(sizes) <= scheduler.MAX_BATCH_PIECES


def test_piece_wise_is_about_as_fast_as_the_classic_split():
    """Four sources as fast as each other: piece-wise (batches, one
    REQUEST round trip each, the tail shared out) takes little longer
    than four seeders' one big REQUEST each.  Virtual time."""
    count = 57  # a 5 MB song
    link = netem.LinkSpec(loss=0.02, delay_s=0.01)
    classic = Swarm(count, [None] * 4, rates=[2_000_000] * 4, forward=link)
    classic.start(de.Options(seed=1))
    classic.run()
    classic.assert_whole()
    swarm = Swarm(count, [None] + [set(range(count))] * 3,
                  rates=[2_000_000] * 4, forward=link)
    swarm.start(de.Options(seed=1))
    swarm.run()
    swarm.assert_whole()
    took = swarm.net.now - swarm.started_at
    assert took <= 1.1 * (classic.net.now - classic.started_at)


def test_with_the_seeder_gone_a_peer_without_the_rest_is_no_way_back():
    """The seeder dies; the peer holds piece 0 only.  The sources are
    PINGed (one WaitingForSeeders), the peer's PONGs bring no false
    "back", and when the peer gains the rest it gets them asked."""
    swarm = Swarm(4, [None, {0}], rates=[100_000, 100_000])
    swarm.net.kill(swarm.addrs[0], 0.3)
    engine = swarm.start(de.Options(seed=13))
    swarm.net.run(until=swarm.net.now + 12.0)
    happened = engine.events()
    assert not engine.complete
    assert len([e for e in happened
                if isinstance(e, ev.WaitingForSeeders)]) == 1
    assert not [e for e in happened if isinstance(e, ev.SeedersBack)]
    pings = [e for e in swarm.net.trace if e.kind == simnet.SENT
             and e.src == LEECHER and e.dst == swarm.addrs[1]
             and isinstance(p.decode(e.data).message, p.Ping)]
    assert len(pings) >= 3  # answered, and asked again
    swarm.tell(1, {1, 2, 3})
    swarm.run()
    swarm.assert_whole()


def test_with_nobody_holding_the_rest_the_download_fails_in_time():
    # ~3 s at the seeder's rate: far from done when it dies at 0.3 s.
    swarm = Swarm(pieces_lasting(3.0, 100_000), [None, {0}],
                  rates=[100_000, 100_000])
    swarm.net.kill(swarm.addrs[0], 0.3)
    engine = swarm.start(de.Options(seed=14, timeout=10.0))
    with pytest.raises(ev.DownloadFailed) as failed:
        swarm.run(until=60)
    assert failed.value.problem is ev.Problem.ALL_SEEDERS_GONE
    assert swarm.net.now < 0.3 + 2 * engine.options.timeout


# ------------------------------------------------------------ BUSY
def at_most_requests(seconds: float) -> int:
    """REQUESTs a peer that is BUSY for ever may get in ``seconds``: one,
    then one per back-off (0.25 s doubling up to 4 s)."""
    count, at, step = 1, 0.0, scheduler.BUSY_BACKOFF_S
    while at <= seconds:
        at += step
        count += 1
        step = min(2 * step, scheduler.MAX_BUSY_BACKOFF_S)
    return count


def told_of(engine, *kinds) -> list:
    return [e for e in engine.events() if isinstance(e, kinds)]


def test_back_off_doubles_per_busy_in_a_row_up_to_the_cap_and_resets():
    backoff, addr, now, waits = scheduler.Backoff(), ("10.0.0.1", 5), 0.0, []
    for _ in range(7):
        assert backoff.hit(addr, now) == (not waits)  # told once a streak
        assert not backoff.hit(addr, now)  # BUSY to a REQUEST out too
        end = backoff.next_end()
        assert not backoff.expire(end - 1e-9) and backoff.waiting(addr)
        assert backoff.expire(end) and not backoff.waiting(addr)
        waits.append(end - now)
        now = end
    assert waits == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.next_end() is None  # no timer once over
    backoff.delivered(addr)
    assert backoff.hit(addr, now) and backoff.next_end() == now + 0.25


def test_a_busy_partial_peer_backs_off_then_serves_and_is_never_gone():
    """Peer 0 answers BUSY to its first 3 REQUESTs: each time its piece
    goes back to the pool (peer 1 takes it), it is asked again after
    0.25, 0.5, 1 s, then serves; it is never given up on.  Having
    served, its next BUSY backs off 0.25 s again."""
    count = pieces_lasting(3.6, 2 * 200_000)  # past the 1.75 s of waits
    swarm = Swarm(count, [set(range(count))] * 2, rates=[200_000] * 2)
    busy = swarm.busy(0, {0, 1, 2, 4})
    engine = swarm.start(de.Options(seed=15, pick="sequential"))
    swarm.run()
    swarm.assert_whole()
    assert busy.refused == 4 and swarm.stored(0) > 0
    assert engine.seeders_gone() == []
    happened = engine.events()
    assert not [e for e in happened
                if isinstance(e, (ev.SeederGone, ev.WaitingForSeeders))]
    assert [e.peer for e in happened if isinstance(e, ev.Refused)] == [
        de.peer_name(swarm.addrs[0])] * 2  # at each streak's first BUSY
    times = swarm.requests_to(0)
    waits = [scheduler.BUSY_BACKOFF_S * 2 ** k for k in range(3)]
    for k, wait in enumerate(waits + [None, scheduler.BUSY_BACKOFF_S]):
        if wait is not None:
            assert wait <= times[k + 1] - times[k] < wait + 0.05, times
    refused = first_request_to(swarm, swarm.addrs[0])
    taken = {piece for t, to, _, asked in swarm.requests()
             if to == swarm.addrs[1] and t < times[3] for piece in asked}
    assert refused <= taken  # not kept for the busy peer


class Hog:
    """Another leecher (at ``HOG``) holding a session of ``addr``: the
    whole song REQUESTed, never ACKed, CANCELed at ``until``."""

    SID = 77

    def __init__(self, swarm: Swarm, k: int, until: float):
        self.addr, self.until = swarm.addrs[k], until
        token = swarm.net.hosts[self.addr].engine.token_for(HOG, 0.0)
        info = swarm.info
        self.out = [(p.encode(p.Request(
            info.file_id, p.Order.SEQUENTIAL, ((0, info.chunks),), 8,
            token, 50, 1), self.SID), self.addr)]

    def receive_datagram(self, data, addr, now):
        pass

    def datagrams_to_send(self, now):
        out, self.out = self.out, []
        return out

    def get_timer(self):
        return self.until

    def handle_timer(self, now):
        self.out.append((p.encode(p.Cancel(), self.SID), self.addr))
        self.until = None


HOG = ("127.0.0.99", 9000)


def test_a_real_peer_with_its_one_session_taken_serves_once_it_frees():
    """Peer 0, a real SeederEngine with ``max_sessions=1``, serves
    another leecher until 1.5 s: it answers BUSY "too many sessions"
    (its pieces go to peer 1 meanwhile), and is asked again, not given
    up on: it serves once its session is free."""
    count = pieces_lasting(2.7, 2 * 200_000)  # past the hog's 1.5 s
    swarm = Swarm(count, [set(range(count))] * 2, rates=[200_000] * 2,
                  sessions={0: 1})
    swarm.net.add_host(HOG, Hog(swarm, 0, until=1.5))
    engine = swarm.start(de.Options(seed=21))
    swarm.run()
    swarm.assert_whole()
    busy = [e for e in swarm.net.trace if e.kind == simnet.SENT
            and e.src == swarm.addrs[0] and e.dst == LEECHER
            and isinstance(p.decode(e.data).message, p.Error)]
    assert busy and {p.decode(e.data).message.code for e in busy} == {
        p.ErrorCode.BUSY}
    assert all(e.time < 1.5 for e in busy)
    assert swarm.stored(0) > 0 and engine.seeders_gone() == []
    served_from = min(t for t, to, _, _ in swarm.requests()
                      if to == swarm.addrs[0] and t > 1.5)
    assert served_from < 1.5 + scheduler.MAX_BUSY_BACKOFF_S


def test_a_partial_peer_busy_for_ever_costs_a_request_per_back_off():
    count = pieces_lasting(18.0, 60_000)  # the other peer alone
    swarm = Swarm(count, [set(range(count))] * 2, rates=[0.0, 60_000])
    swarm.busy(0, None)
    engine = swarm.start(de.Options(seed=16))
    swarm.run()
    swarm.assert_whole()
    took = swarm.net.now - swarm.started_at
    assert took > 10  # long enough for several back-offs
    asked = len(swarm.requests_to(0))
    assert 5 <= asked <= at_most_requests(took), (asked, took)
    assert swarm.stored(0) == 0 and engine.seeders_gone() == []
    assert len(told_of(engine, ev.Refused)) == 1


def test_a_lone_seeder_that_says_ask_again_later_is_asked_after_back_off():
    """Classic (no partial peer): "too many session starts" twice, then
    served.  Its whole share is asked of it again after each back-off:
    no SeederGone, no wait for seeders, no PING."""
    swarm = Swarm(4, [None], rates=[300_000])
    swarm.busy(0, {0, 1}, "too many session starts, ask again later")
    engine = swarm.start(de.Options(seed=17))
    swarm.run()
    swarm.assert_whole()
    assert not engine.scheduler.piecewise
    assert not told_of(engine, ev.SeederGone, ev.WaitingForSeeders,
                       ev.SeedersBack)
    assert engine.seeders_gone() == []
    times = swarm.requests_to(0)
    assert len(times) == 3
    assert times[1] - times[0] >= scheduler.BUSY_BACKOFF_S
    assert times[2] - times[1] >= 2 * scheduler.BUSY_BACKOFF_S
    assert {tuple(p.decode(e.data).message.ranges) for e in swarm.net.trace
            if e.kind == simnet.SENT and e.src == LEECHER
            and isinstance(p.decode(e.data).message, p.Request)} == {
        ((0, swarm.info.chunks),)}
    assert not pings_after_start(swarm)


def pings_after_start(swarm: Swarm) -> list:
    return [e for e in swarm.net.trace if e.kind == simnet.SENT
            and e.src == LEECHER and e.time > swarm.started_at
            and isinstance(p.decode(e.data).message, p.Ping)]


@pytest.mark.parametrize("holdings", [[set(range(4))],
                                      [set(range(4)), {0}]])
def test_a_busy_peer_holding_the_rest_is_waited_for_not_called_gone(
        holdings):
    """The only holder of most pieces, a partial peer, is BUSY three
    times (alone, or while the other peer runs out of work): its
    back-off is waited for (no WaitingForSeeders, no PING), then it
    serves."""
    swarm = Swarm(4, holdings, rates=[300_000] * len(holdings))
    swarm.busy(0, {0, 1, 2})
    engine = swarm.start(de.Options(seed=20))
    swarm.run()
    swarm.assert_whole()
    assert engine.scheduler.piecewise
    assert not told_of(engine, ev.SeederGone, ev.WaitingForSeeders,
                       ev.SeedersBack)
    assert not pings_after_start(swarm)
    times = swarm.requests_to(0)
    assert times[3] - times[0] >= 7 * scheduler.BUSY_BACKOFF_S


def test_a_lone_seeder_busy_for_ever_fails_in_time_asked_boundedly():
    swarm = Swarm(2, [None])
    swarm.busy(0, None)
    engine = swarm.start(de.Options(seed=18, timeout=10.0))
    with pytest.raises(ev.DownloadFailed) as failed:
        swarm.run(until=60)
    assert failed.value.problem is ev.Problem.NO_PROGRESS
    assert swarm.net.now - swarm.started_at < engine.options.timeout + 0.1
    assert len(swarm.requests_to(0)) <= at_most_requests(10.0)


# ------------------------------------------------------ the table
def test_a_long_piece_wise_download_keeps_the_transfer_table_bounded(
        monkeypatch):
    """A piece per batch, 40 batches: the retired transfers beyond
    ``KEPT_RETIRED`` are pruned; a late chunk of a pruned session is
    counted as forged, and changes nothing."""
    monkeypatch.setattr(scheduler, "KEPT_RETIRED", 4)
    count = 40
    # Half a piece in BATCH_S: every batch is one piece.
    rate = PIECE * CHUNK / (2 * scheduler.BATCH_S)
    swarm = Swarm(count, [set(range(count))], rates=[rate])
    engine = swarm.start(de.Options(seed=19, pick="sequential"))
    sizes = []

    def complete():
        sizes.append(len(engine.transfers))
        return engine.complete
    swarm.net.run(until=swarm.net.now + 120, stop_when=complete)
    swarm.assert_whole()
    sessions = [sid for _, _, sid, _ in swarm.requests()]
    assert len(set(sessions)) >= 8 * scheduler.KEPT_RETIRED
    assert max(sizes) <= 2 * scheduler.KEPT_RETIRED + 1
    addr = swarm.addrs[0]
    pruned = [sid for sid in sessions if (addr, sid) not in engine.transfers]
    forged, received = engine.counters.forged, engine.state.received
    engine.receive_datagram(p.encode_chunk(
        swarm.info.file_id, 0, 1, 0, swarm.data[:CHUNK], pruned[0]),
        addr, swarm.net.now)
    assert engine.counters.forged == forged + 1
    assert engine.state.received == received
