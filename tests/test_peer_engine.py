"""PeerEngine and SharedSong driven by hand-made datagrams on a fake
clock: no socket, no sleep.  The unit tests give it a small download
double that records what the swarm side asks of it (``add_peer``,
``peer_has``, ``start``...); the simnet tests at the end run the real
``DownloadEngine`` and ``SeederEngine``."""

from __future__ import annotations

import dataclasses
import random
import zlib

import pytest
from hypothesis import given, settings, strategies as st

import download_engine as de
import events as ev
import pieces
import seed_engine as se
import test_seed_engine
from test_swarm_download import Leecher
import protocol as p
from peer_engine import (MAX_KNOWN_PEERS, PEX_INTERVAL_S, PEX_WAIT_S,
                         PINGS_PER_S, PeerEngine, SharedSong)
import peer_engine as pe

CHUNK = p.CHUNK_SIZE
ME = ("127.0.0.50", 4000)
SEEDER = ("127.0.0.1", 9000)
OTHER = ("127.0.0.60", 4000)
SEEDER_TOKEN = 0x5EED


def song(chunks: int = 200, seed: int = 1):
    data = random.Random(seed).randbytes(chunks * CHUNK - 100)
    sha, hashes = pieces.hash_bytes(data)
    info = p.FileInfo(pieces.file_id_from(hashes), len(data), chunks, CHUNK,
                      0, sha, "song.mp3")
    return info, data, hashes


INFO, DATA, HASHES = song()
PIECES = pieces.piece_count(INFO.chunks)
PIECE = pieces.PIECE_CHUNKS


class FakeDownload:
    """What PeerEngine needs of a DownloadEngine, recorded."""

    def __init__(self, info=INFO):
        self.info = info
        self.peers = {SEEDER: de.Peer(SEEDER, rtt=0.01, token=SEEDER_TOKEN)}
        self.started_at = None
        self.batches, self.added, self.has = [], [], []
        self.complete = False
        self.pieces = None
        self.verified = []
        self.fetching = []  # pieces the test says it asked a seeder for
        self.hints = []  # (addr, ranges) of FLAG_FETCHING HAVEs heard

    def start(self, now):
        self.started_at = now

    def add_peer(self, peer, now):
        self.peers[peer.addr] = peer
        self.added.append(peer)

    def peer_has(self, addr, ranges, now):
        self.has.append((addr, tuple(ranges)))

    def receive_batch(self, batch, now):
        self.batches.append(batch)

    def datagrams_to_send(self, now):
        return []

    def events(self):
        return []

    def get_timer(self):
        return None

    def handle_timer(self, now):
        pass

    def since_start(self, now):
        return now

    def check_piece(self, piece, data, now):
        good = pieces.hash_bytes(data)[1] == HASHES[32 * piece:32 * piece + 32]
        if good:
            self.verified.append(piece)
        return good

    def take_verified(self):
        taken, self.verified = self.verified, []
        return taken

    def take_fetching(self):
        taken, self.fetching = self.fetching, []
        return taken

    def peer_fetching(self, addr, ranges, now):
        self.hints.append((addr, tuple(ranges)))

    def stats(self, now):
        return {"chunks": self.info.chunks}


def chunk_of(index: int) -> bytes:
    return DATA[index * CHUNK:(index + 1) * CHUNK]


def piece_of(piece: int) -> bytes:
    start, end = pieces.chunk_range(piece, INFO.chunks)
    return DATA[start * CHUNK:end * CHUNK]


class Harness(test_seed_engine.Harness):
    """A PeerEngine, a fake clock (``run`` as a seeder's harness)."""

    def __init__(self, share=True, verified=()):  # its own engine
        self.download = FakeDownload()
        self.song = SharedSong(INFO, chunk_of)
        self.engine = PeerEngine(self.download, self.song, b"secret", 3,
                                 share=share, own_addr=ME)
        self.now = 10.0
        for piece in verified:
            assert self.engine.check_piece(piece, piece_of(piece), self.now)

    def send(self, msg, addr, sid=0):
        self.engine.receive_datagram(p.encode(msg, sid), addr, self.now)

    def out(self):
        return [(p.decode(data), addr) for data, addr in
                self.engine.datagrams_to_send(self.now)]

    def messages(self, kind, to=None):
        return [(d.message, addr) for d, addr in self.out()
                if isinstance(d.message, kind) and to in (None, addr)]

    def token(self, addr):
        """The token our seeding side gives ``addr`` (its PONG's)."""
        return self.engine.seeder.token_for(addr, self.now)

    def started(self):
        """start() and the seeder's answer (no peers): the download
        runs."""
        self.engine.start(self.now)
        (ask,) = [d for d, a in self.out() if isinstance(d.message,
                                                         p.GetPeers)]
        self.send(p.Peers(INFO.file_id, ()), SEEDER, ask.session)
        self.run(self.now)
        assert self.download.started_at is not None
        return ask.session

    def join(self, addr) -> bool:
        """``addr`` HAVEs and answers our PING: it becomes a known peer.
        False if we did not PING it."""
        self.send(p.Have(INFO.file_id, PIECES, (), self.token(addr)), addr)
        pings = [d for d, a in self.out() if isinstance(d.message, p.Ping)
                 and a == addr]
        if pings:
            self.send(p.Pong(pings[0].message.nonce, 99, 1, 0, 0, 50, "x"),
                      addr, pings[0].session)
        return bool(pings)


def types(items):
    return [type(d.message) for d, _ in items]


# ------------------------------------------------------------ SharedSong
def test_shared_song_serves_only_verified_pieces():
    shared = SharedSong(INFO, chunk_of)
    assert len(shared) == 1 and shared.search("song") == [INFO]
    assert shared.held(INFO.file_id) == p.RangeSet()
    shared.add_pieces([1, PIECES + 5, -1])  # out of range: ignored
    assert shared.held(INFO.file_id) == p.RangeSet([(PIECE, 2 * PIECE)])
    assert shared.read(INFO.file_id, PIECE) == chunk_of(PIECE)
    with pytest.raises(OSError):
        shared.read(INFO.file_id, 0)
    assert shared.info(b"unknown!") is None
    assert shared.held(b"unknown!") == p.RangeSet()
    assert shared.piece_hashes(INFO.file_id) is None
    shared.set_hashes(HASHES)
    assert shared.piece_hashes(INFO.file_id) == HASHES


def test_a_song_without_a_piece_list_is_never_shared():
    sha = INFO.sha256
    legacy = dataclasses.replace(INFO, file_id=p.file_id_of(sha))
    shared = SharedSong(legacy, chunk_of)
    shared.add_pieces([0])
    assert len(shared) == 0 and shared.info(legacy.file_id) is None
    assert shared.search("") == []


# --------------------------------------------------------------- routing
def test_a_request_reaches_the_seed_side_a_chunk_the_download():
    h = Harness(verified=[0])
    h.started()
    token = h.token(OTHER)
    h.send(p.Request(INFO.file_id, p.Order.SEQUENTIAL, ((0, PIECE + 6),),
                     100, token), OTHER, sid=5)
    chunks = [d.message.index for d, a in h.out()
              if isinstance(d.message, p.Chunk) and a == OTHER]
    assert chunks == list(range(PIECE))  # piece 0 only: what we verified
    assert h.download.batches == []
    data = p.encode_chunk(INFO.file_id, 3, 0, 0, chunk_of(3), 7)
    h.engine.receive_datagram(data, SEEDER, h.now)
    assert h.download.batches == [[(data, SEEDER)]]
    assert h.engine.served()["chunks"] == PIECE
    assert h.engine.stats(h.now)["served_to"] == {"127.0.0.60:4000": PIECE}


def test_not_sharing_the_seed_side_hears_nothing():
    h = Harness(share=False, verified=[0])
    h.send(p.Ping(1, 44), OTHER)
    h.send(p.Request(INFO.file_id, p.Order.SEQUENTIAL, ((0, 10),), 100,
                     h.token(OTHER)), OTHER, sid=5)
    assert h.out() == []
    h.engine.set_sharing(True, h.now)
    assert h.messages(p.Have) == [(p.Have(INFO.file_id, PIECES, (),
                                          SEEDER_TOKEN), SEEDER)]
    h.send(p.Ping(1, 44), OTHER)
    assert types(h.out()) == [p.Pong]


def test_sharing_switched_off_ends_the_sessions_with_an_error():
    h = Harness(verified=[0, 1])
    h.send(p.Request(INFO.file_id, p.Order.SEQUENTIAL, ((0, 2 * PIECE),), 8,
                     h.token(OTHER)), OTHER, sid=5)
    h.out()
    h.engine.set_sharing(False, h.now)
    (error,) = [d.message for d, _ in h.out()]
    assert error.code == p.ErrorCode.BUSY
    assert len(h.engine.seeder.sessions) == 0


# ---------------------------------------------------------- start, PEX
def test_start_asks_the_seeders_and_waits_for_their_answer():
    h = Harness()
    h.engine.start(h.now)
    got = h.out()
    assert sorted(t.__name__ for t in types(got)) == ["GetPeers", "Have"]
    ask = next(d for d, _ in got if isinstance(d.message, p.GetPeers))
    assert ask.message.token == SEEDER_TOKEN
    register = next(d.message for d, _ in got if isinstance(d.message, p.Have))
    assert register == p.Have(INFO.file_id, PIECES, (), SEEDER_TOKEN)
    h.run(h.now + PEX_WAIT_S / 2)
    assert h.download.started_at is None  # still waiting
    h.send(p.Peers(INFO.file_id, ()), SEEDER, ask.session)
    h.run(h.now)
    assert h.download.started_at == h.now


def test_start_gives_up_waiting_after_pex_wait():
    h = Harness()
    h.engine.start(h.now)
    h.run(h.now + 5)
    assert h.download.started_at == pytest.approx(10.0 + PEX_WAIT_S)


def test_a_retry_to_get_peers_is_followed_once_with_the_fresh_token():
    h = Harness()
    h.engine.start(h.now)
    sid = next(d.session for d, _ in h.out()
               if isinstance(d.message, p.GetPeers))
    for _ in range(3):
        h.send(p.Retry(4242), SEEDER, sid)
    asks = h.messages(p.GetPeers)
    assert [m.token for m, _ in asks] == [4242]


def test_peers_from_an_address_not_asked_is_ignored():
    h = Harness()
    sid = h.started()
    h.send(p.Peers(INFO.file_id, (OTHER,)), ("127.0.0.66", 9000), sid)
    h.send(p.Peers(INFO.file_id, (OTHER,)), SEEDER, sid)  # answered already
    assert h.run(h.now + 0.5) == []


def hostile(n):
    return [(f"10.{k // 250}.{k % 250}.1", 80) for k in range(n)]


def test_a_peers_of_32_hostile_addresses_pings_at_most_the_bound():
    h = Harness()
    h.engine.start(h.now)
    sid = next(d.session for d, _ in h.out()
               if isinstance(d.message, p.GetPeers))
    listed = (ME,) + tuple(hostile(p.MAX_PEERS_LISTED - 1))
    h.send(p.Peers(INFO.file_id, listed), SEEDER, sid)
    pings = [(h.now, a) for d, a in h.out() if isinstance(d.message, p.Ping)]
    assert len(pings) == PINGS_PER_S
    start = h.now
    while h.now < start + 3:
        for d, a in h.run(h.now + 0.25):
            if isinstance(d.message, p.Ping) and a != SEEDER:
                pings.append((h.now, a))
    assert ME not in [a for _, a in pings]  # never ourselves
    for at, _ in pings:  # never more than the bound in any second
        assert sum(1 for t, _ in pings if at <= t < at + 1) <= PINGS_PER_S
    assert len(pings) >= 2 * PINGS_PER_S  # the rest goes, slowly
    assert all(d.message.padding == de.PING_PADDING for d, a in h.out()
               if isinstance(d.message, p.Ping))


def test_pex_asks_a_few_known_peers_every_interval_while_downloading():
    h = Harness()
    h.started()
    got = h.run(h.now + 3 * PEX_INTERVAL_S + 0.01)
    asks = [d for d, _ in got if isinstance(d.message, p.GetPeers)]
    assert len(asks) == 3
    h.download.complete = True
    got = h.run(h.now + 3 * PEX_INTERVAL_S)
    assert not [d for d, _ in got if isinstance(d.message, p.GetPeers)]


# ------------------------------------------------------------- HAVE, PONG
def test_a_have_from_an_unknown_address_needs_our_token_to_get_a_ping():
    h = Harness()
    h.started()
    h.send(p.Have(INFO.file_id, PIECES, ((0, 1),), 1234), OTHER)
    assert h.out() == []
    h.send(p.Have(INFO.file_id, PIECES, ((0, 1),), h.token(OTHER)), OTHER)
    (ping,) = h.messages(p.Ping)
    assert ping[1] == OTHER


def test_a_proven_peer_not_ours_hears_what_we_hold_in_answer():
    """A HAVE from a peer we do not know (our table may be full) but that
    proved its address: our pieces go back to it, at most once per
    PEX_INTERVAL_S; nothing to a bad token, nothing when we hold nothing
    (without this, late joiners of a big swarm knew peers that never
    told them a piece, and took the whole song from the seeder)."""
    h = Harness(verified=[0, 2])
    h.started()
    h.send(p.Have(INFO.file_id, PIECES, (), 1234), OTHER)
    assert h.messages(p.Have) == []
    h.send(p.Have(INFO.file_id, PIECES, (), h.token(OTHER)), OTHER)
    assert h.messages(p.Have) == [(p.Have(INFO.file_id, PIECES,
                                          ((0, 1), (2, 3)), 0), OTHER)]
    h.now += pe.PEX_INTERVAL_S / 2
    h.send(p.Have(INFO.file_id, PIECES, (), h.token(OTHER)), OTHER)
    assert h.messages(p.Have) == []
    h.now += pe.PEX_INTERVAL_S
    h.send(p.Have(INFO.file_id, PIECES, (), h.token(OTHER)), OTHER)
    assert len(h.messages(p.Have)) == 1
    empty = Harness()
    empty.started()
    empty.send(p.Have(INFO.file_id, PIECES, (), empty.token(OTHER)), OTHER)
    assert empty.messages(p.Have) == []


def test_a_pong_makes_a_peer_that_hears_what_we_hold():
    h = Harness(verified=[0, 2])
    h.started()
    h.send(p.Have(INFO.file_id, PIECES, ((1, 2),), h.token(OTHER)), OTHER)
    (ping, _), = h.messages(p.Ping)
    h.send(p.Pong(ping.nonce ^ 1, 99, 1, 0, 0, 50, "x"), OTHER, 0)
    assert h.download.added == []  # not our nonce
    sid = h.engine.swarm.sid
    h.send(p.Pong(ping.nonce, 99, 1, 0, 0, 50, "x"), OTHER, sid)
    (peer,) = h.download.added
    assert peer.addr == OTHER and peer.token == 99 and peer.holds == \
        p.RangeSet()
    assert h.download.has == [(OTHER, ((1, 2),))]  # what its HAVE said
    (have, to), = h.messages(p.Have)
    assert to == OTHER and have == p.Have(INFO.file_id, PIECES,
                                          ((0, 1), (2, 3)), 99)
    joined = [e for e in h.engine.events() if isinstance(e, ev.PeerJoined)]
    assert joined == [ev.PeerJoined("127.0.0.60:4000", h.now)]


def test_a_have_from_a_known_peer_goes_to_the_download():
    h = Harness()
    h.started()
    assert h.join(OTHER)
    h.out()
    h.download.has.clear()
    h.send(p.Have(INFO.file_id, PIECES, ((0, 3),), 0), OTHER)
    h.send(p.Have(INFO.file_id, PIECES + 1, ((0, 3),), 0), OTHER)  # lies
    h.send(p.Have(b"another!", PIECES, ((0, 3),), 0), OTHER)
    assert h.download.has == [(OTHER, ((0, 3),))]
    assert h.out() == []


def test_verified_pieces_are_told_to_the_known_peers_not_the_seeders():
    h = Harness()
    h.started()
    assert h.join(OTHER)
    h.out()
    assert h.engine.check_piece(1, piece_of(1), h.now)
    assert h.engine.check_piece(2, piece_of(2), h.now)
    assert not h.engine.check_piece(3, piece_of(0), h.now)
    haves = h.messages(p.Have)
    assert haves == [(p.Have(INFO.file_id, PIECES, ((1, 3),), 99), OTHER)]
    assert h.song.held(INFO.file_id) == p.RangeSet([(PIECE, 3 * PIECE)])
    assert h.engine.take_verified() == [1, 2]
    assert h.engine.take_verified() == []


def test_pieces_asked_of_a_seeder_are_hinted_to_peers_and_hints_heard():
    """What the download asks of a seeder goes to the known partial
    peers (not the seeders) as a HAVE with FLAG_FETCHING; such a HAVE
    from a known peer is a hint for the download, not a holding."""
    h = Harness()
    h.started()
    assert h.join(OTHER)
    h.out()
    h.download.fetching = [4, 5, 9]
    sent = [(d.message, d.flags, addr) for d, addr in h.out()
            if isinstance(d.message, p.Have)]
    assert sent == [(p.Have(INFO.file_id, PIECES, ((4, 6), (9, 10)), 99),
                     p.FLAG_FETCHING, OTHER)]
    hint = p.Have(INFO.file_id, PIECES, ((7, 8),), h.token(OTHER))
    h.engine.receive_datagram(p.encode(hint, 0, p.FLAG_FETCHING), OTHER,
                              h.now)
    assert h.download.hints == [(OTHER, ((7, 8),))]
    assert h.download.has == []  # a hint is no holding
    h.engine.receive_datagram(p.encode(hint, 0, p.FLAG_FETCHING),
                              ("127.0.9.9", 4000), h.now)
    assert h.download.hints == [(OTHER, ((7, 8),))]  # unknown: ignored


def test_known_peers_are_bounded():
    h = Harness()
    h.started()
    joined = []
    for k in range(MAX_KNOWN_PEERS + 5):
        h.run(h.now + 1)
        joined.append(h.join((f"127.0.1.{k + 1}", 4000)))
    assert len(h.download.added) == MAX_KNOWN_PEERS
    assert joined == [True] * MAX_KNOWN_PEERS + [False] * 5


def test_the_registration_is_refreshed_with_a_fresh_token():
    h = Harness()
    h.started()
    got = h.run(h.now + pe.DIRECTORY_REFRESH_S + 0.01)
    (ping,) = [d for d, a in got if isinstance(d.message, p.Ping)
               and a == SEEDER]
    h.send(p.Pong(ping.message.nonce, 777, 1, 0, 0, 50, "s"), SEEDER,
           ping.session)
    assert h.messages(p.Have) == [(p.Have(INFO.file_id, PIECES, (), 777),
                                   SEEDER)]


def test_served_events_are_throttled_to_one_a_second():
    h = Harness(verified=[0, 1])
    h.started()
    for k in range(20):
        h.send(p.Request(INFO.file_id, p.Order.SEQUENTIAL, ((k, k + 1),), 8,
                         h.token(OTHER)), OTHER, sid=100 + k)
        h.run(h.now + 0.1)
        h.send(p.Cancel(), OTHER, sid=100 + k)
    h.run(h.now + 2)
    served = [e for e in h.engine.events() if isinstance(e, ev.Served)]
    assert 2 <= len(served) <= 4
    assert served[-1].chunks == 20 and served[-1].peers == 1
    times = [e.at_s for e in served]
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(times, times[1:]))


def test_a_song_without_a_piece_list_has_no_peer_exchange():
    legacy = dataclasses.replace(INFO, file_id=p.file_id_of(INFO.sha256))
    h = Harness()
    h.download.info = legacy
    h.engine = PeerEngine(h.download, SharedSong(legacy, chunk_of),
                          b"secret", 3, own_addr=ME)
    h.engine.start(h.now)
    assert h.run(h.now) == []
    assert h.download.started_at == h.now  # at once: nobody to wait for
    h.send(p.Have(legacy.file_id, PIECES, (), h.token(OTHER)), OTHER)
    assert h.run(h.now + 30) == []


# ------------------------------------------------ a swarm on simnet
class HashedSource:
    """The seeder's source: the song and its piece list."""

    def info(self, file_id):
        return BIG if file_id == BIG.file_id else None

    def read(self, file_id, index):
        return BIG_DATA[index * CHUNK:(index + 1) * CHUNK]

    def piece_hashes(self, file_id):
        return BIG_HASHES if file_id == BIG.file_id else None

    def search(self, query):
        return [BIG]

    def __len__(self):
        return 1


# 0.9 MB: 4.5 s at the simnet seeders' 200 kB/s.
BIG, BIG_DATA, BIG_HASHES = song(chunks=640, seed=2)


def leecher(net, addr, seeder, now):
    """A sharing leecher of BIG at ``addr`` on ``net``, started: its
    engine and the bytes it wrote."""
    host = Leecher(None, BIG.size)  # the driver: writes, checks pieces
    file = host.file
    peer = de.Peer(SEEDER, rtt=0.02, token=seeder.token_for(addr, now))
    download = de.DownloadEngine(BIG, [peer], now, de.Options(seed=len(
        net.hosts)))
    shared = SharedSong(BIG, lambda i: bytes(file[i * CHUNK:(i + 1) * CHUNK]))
    host.engine = PeerEngine(download, shared, b"peer secret "
                             + addr[0].encode(), len(net.hosts),
                             own_addr=addr)
    net.add_host(addr, host)
    host.engine.start(now)
    return host.engine, file


def test_a_second_leecher_gets_chunks_from_the_first_byte_exact():
    import netem
    import simnet
    net = simnet.SimNet(seed=4, default_link=netem.LinkSpec(delay_s=0.005))
    # A slow seeder (200 kB/s): the first leecher holds pieces the second
    # lacks for a while.
    seeder = se.SeederEngine(HashedSource(), b"seeder secret", 1,
                             link=netem.LinkSpec(rate_Bps=200_000))
    net.add_host(SEEDER, seeder)
    first, first_file = leecher(net, ("127.0.0.101", 4000), seeder, 0.0)
    net.run(until=1.5)
    assert not first.complete and first.song.pieces
    second, second_file = leecher(net, ("127.0.0.102", 4000), seeder, net.now)
    net.run(until=60, stop_when=lambda: first.complete and second.complete)
    assert first.complete and second.complete
    assert bytes(first_file) == BIG_DATA and bytes(second_file) == BIG_DATA
    per_peer = second.stats(net.now)["per_peer"]
    assert per_peer.get("127.0.0.1:9000", 0) > 0
    assert per_peer.get("127.0.0.101:4000", 0) > 0
    assert first.served()["to"].get("127.0.0.102:4000", 0) > 0


def test_on_simnet_two_leechers_find_each_other_and_exchange_haves(
        monkeypatch):
    """The swarm side end to end with a real seeder: the second leecher
    learns the first from the seeder's PEERS, both PING each other once,
    each hears what the other holds (recorded at the download's
    ``add_peer`` / ``peer_has``)."""
    import netem
    import simnet
    calls = []
    for name in ("add_peer", "peer_has"):
        real = getattr(de.DownloadEngine, name)

        def record(engine, *args, _name=name, _real=real):
            calls.append((engine, _name, args))
            _real(engine, *args)
        monkeypatch.setattr(de.DownloadEngine, name, record)
    net = simnet.SimNet(seed=5, default_link=netem.LinkSpec(delay_s=0.005))
    seeder = se.SeederEngine(HashedSource(), b"seeder secret", 1,
                             link=netem.LinkSpec(rate_Bps=200_000))
    net.add_host(SEEDER, seeder)
    one, two = ("127.0.0.101", 4000), ("127.0.0.102", 4000)
    first, _ = leecher(net, one, seeder, 0.0)
    net.run(until=1.5)
    held = first.song.pieces
    assert held and seeder.directory.listing(BIG.file_id, None, net.now) \
        == (one,)
    second, _ = leecher(net, two, seeder, net.now)
    net.run(until=net.now + 1.0)
    joined = {(engine, args[0].addr) for engine, name, args in calls
              if name == "add_peer"}
    assert joined == {(second.download, one), (first.download, two)}
    told = p.RangeSet()
    for engine, name, args in calls:
        if name == "peer_has" and engine is second.download:
            assert args[0] == one
            for start, end in args[1]:
                told.add(start, end)
    assert list(held.intersection(told)) == list(held)  # all it had then
    pings = [e for e in net.trace if e.kind == simnet.SENT
             and e.data[3] == p.MsgType.PING and e.dst in (one, two)]
    assert len(pings) == 2  # one each way, no more
    events = first.events() + second.events()
    assert sorted(e.peer for e in events if isinstance(e, ev.PeerJoined)) \
        == ["127.0.0.101:4000", "127.0.0.102:4000"]


def test_a_peer_serves_a_few_sessions_per_host_and_in_all():
    h = Harness(verified=[0])
    for port in range(pe.PEER_MAX_SESSIONS_PER_HOST + 1):
        addr = ("127.0.2.1", 5000 + port)
        h.send(p.Request(INFO.file_id, p.Order.SEQUENTIAL, ((0, 1),), 1,
                         h.token(addr)), addr, sid=1)
    busy = [m for m, _ in h.messages(p.Error)]
    assert [m.code for m in busy] == [p.ErrorCode.BUSY]
    assert len(h.engine.seeder.sessions) == pe.PEER_MAX_SESSIONS_PER_HOST
    for host in range(2, 2 + pe.PEER_MAX_SESSIONS):
        addr = (f"127.0.2.{host}", 5000)
        h.send(p.Request(INFO.file_id, p.Order.SEQUENTIAL, ((0, 1),), 1,
                         h.token(addr)), addr, sid=1)
    assert len(h.engine.seeder.sessions) == pe.PEER_MAX_SESSIONS


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(p.MsgType)),
                          st.integers(0, 2**32 - 1), st.binary(max_size=80),
                          st.integers(0, 3)), max_size=12))
def test_hostile_datagrams_of_every_type_never_raise(items):
    """Valid headers (right CRC) with hostile bodies, to every side."""
    h = Harness(verified=[0])
    h.started()
    sources = [OTHER, SEEDER, ME, ("127.0.0.70", 1)]
    before = len(h.download.batches)
    for kind, session, body, who in items:
        header = p.HEADER.pack(p.MAGIC, p.VERSION, kind, 0, session,
                               len(body), 0)
        data = bytearray(header + body)
        crc = zlib.crc32(bytes(data[p.HEADER.size:]), zlib.crc32(
            bytes(data[:p.CRC_AT]) + bytes(4)))
        data[p.CRC_AT:p.HEADER.size] = crc.to_bytes(4, "big")
        h.engine.receive_datagram(bytes(data), sources[who], h.now)
    got = h.run(h.now + 3)
    assert len(h.download.batches) - before <= len(items)
    assert sum(isinstance(d.message, p.Ping) for d, a in got
               if a != SEEDER) <= 3 * PINGS_PER_S


def test_pieces_an_earlier_run_verified_are_shared_from_the_start():
    seeder = de.Peer(SEEDER, rtt=0.02, token=1)
    download = de.DownloadEngine(BIG, [seeder], 0.0,
                                 present=range(2 * PIECE),
                                 verified=[0, 1])
    shared = SharedSong(BIG, lambda i: BIG_DATA[i * CHUNK:(i + 1) * CHUNK])
    PeerEngine(download, shared, b"secret", 1, own_addr=ME)
    assert shared.pieces == p.RangeSet([(0, 2)])
    assert shared.held(BIG.file_id) == p.RangeSet([(0, 2 * PIECE)])
