"""Per-piece integrity (issue 12 item 1) in simulated time: the real
``SeederEngine``s and ``DownloadEngine``, a virtual clock, no socket and
no sleep.  A lying seeder is a ``ChunkSource`` whose chunks are wrong
with valid CRCs (the engine builds the CRC over whatever it reads)."""

import hashlib
import heapq
import random

import pytest
from hypothesis import given, settings, strategies as st

import download_engine as de
import events as ev
import pieces
import protocol as p
import seed_engine as se

CHUNK = p.CHUNK_SIZE
LEECHER = ("127.0.0.9", 40000)
A, B, C = ("127.0.0.1", 9000), ("127.0.0.2", 9000), ("127.0.0.3", 9000)


def song(chunks: int, seed: int = 1) -> tuple[p.FileInfo, bytes, bytes]:
    data = random.Random(seed).randbytes(chunks * CHUNK - 100)
    sha, hashes = pieces.hash_bytes(data)
    info = p.FileInfo(pieces.file_id_from(hashes), len(data), chunks, CHUNK,
                      0, sha, "song.mp3")
    return info, data, hashes


class Source:
    """A seeder's ``ChunkSource``: ``corrupt`` chunks are sent wrong (one
    byte flipped), ``hashes`` is the list it publishes (None: none)."""

    def __init__(self, info, data, hashes, corrupt=()):
        self.file, self.data, self.hashes = info, data, hashes
        self.corrupt = set(corrupt)

    def info(self, file_id):
        return self.file if file_id == self.file.file_id else None

    def read(self, file_id, index):
        chunk = self.data[index * CHUNK:(index + 1) * CHUNK]
        if index in self.corrupt:
            chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
        return chunk

    def piece_hashes(self, file_id):
        return self.hashes if file_id == self.file.file_id else None

    def search(self, query):
        return [self.file]

    def __len__(self):
        return 1


class Swarm:
    """The leecher's engine and some seeder engines on a virtual clock:
    a fixed one-way delay, the driver's writes and piece checks."""

    def __init__(self, info, sources: dict, rtts=None, delay=0.002,
                 verified=(), present=b""):
        self.info, self.delay, self.now = info, delay, 0.0
        self.seeders = {addr: se.SeederEngine(src, b"secret", 1)
                        for addr, src in sources.items()}
        rtts = rtts or {}
        peers = [de.Peer(addr, rtt=rtts.get(addr, 2 * delay),
                         token=s.token_for(LEECHER, 0.0))
                 for addr, s in self.seeders.items()]
        self.file = bytearray(present or bytes(info.size))
        have = [i for i in range(info.chunks) if present]
        self.engine = de.DownloadEngine(info, peers, 0.0, de.Options(seed=5),
                                        present=have, verified=verified)
        self.flight, self.n = [], 0
        self.events, self.checked, self.hashes_asked = [], [], []

    def post(self, to, data, source):
        self.n += 1
        heapq.heappush(self.flight, (self.now + self.delay, self.n, to, data,
                                     source))

    def step(self):
        engine = self.engine
        for data, addr in engine.datagrams_to_send(self.now):
            if data[3] == p.MsgType.HASHES:
                self.hashes_asked.append(addr)
            self.post(addr, data, LEECHER)
        for addr, seeder in self.seeders.items():
            timer = seeder.get_timer()
            if timer is not None and timer <= self.now:
                seeder.handle_timer(self.now)
            for data, to in seeder.datagrams_to_send(self.now):
                self.post(to, data, addr)
        times = [t for t in [self.flight[0][0] if self.flight else None,
                             engine.get_timer()] +
                 [s.get_timer() for s in self.seeders.values()]
                 if t is not None]
        self.now = max(self.now + 1e-6, min(times))
        batch = []
        while self.flight and self.flight[0][0] <= self.now:
            _, _, to, data, source = heapq.heappop(self.flight)
            if to == LEECHER:
                batch.append((data, source))
            elif to in self.seeders:
                self.seeders[to].receive_datagram(data, LEECHER, self.now)
        if batch:
            engine.receive_batch(batch, self.now)
        self.driver_turn()
        timer = engine.get_timer()
        if timer is not None and self.now >= timer and not engine.complete:
            engine.handle_timer(self.now)
            self.driver_turn()

    def driver_turn(self):
        """What leecher.py's loop does: write, then check whole pieces."""
        engine = self.engine
        for index, chunk in engine.take_fresh():
            self.file[index * CHUNK:index * CHUNK + len(chunk)] = chunk
        for piece in engine.pieces_to_verify():
            start, end = pieces.chunk_range(piece, self.info.chunks)
            self.checked.append(piece)
            engine.check_piece(piece, bytes(
                self.file[start * CHUNK:end * CHUNK]), self.now)
        self.events += engine.events()

    def run(self, until=30.0):
        self.engine.start(0.0)
        while not self.engine.complete and self.now < until:
            self.step()
        self.events += self.engine.events()
        return self

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]

    def extra_chunks(self) -> int:
        """Chunks stored beyond one copy of the song (fetched again)."""
        return sum(self.engine.counters.stored_from.values()) \
            - self.info.chunks


# ------------------------------------------------------------ pure parts
@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300_000), st.lists(st.integers(1, 200_000),
                                         min_size=1, max_size=8))
def test_one_pass_gives_the_sha256_and_every_piece_hash(size, blocks):
    data = random.Random(size).randbytes(size)
    hasher = pieces.PieceHasher(CHUNK)
    at = 0
    for block in blocks * (size // sum(blocks) + 1):
        hasher.update(data[at:at + block])
        at += block
    sha, hashes = hasher.digest()
    piece = CHUNK * pieces.PIECE_CHUNKS
    assert sha == hashlib.sha256(data).digest()
    assert hashes == b"".join(hashlib.sha256(data[at:at + piece]).digest()
                              for at in range(0, size, piece))
    assert len(hashes) // 32 == pieces.piece_count(p.chunk_count(size))


def test_the_id_is_the_hash_of_the_list_and_one_piece_is_checked_at_once():
    info, _, hashes = song(3 * pieces.PIECE_CHUNKS)
    assert info.file_id == hashlib.sha256(hashes).digest()[:8]
    assert not pieces.legacy(info) and pieces.id_plausible(info)
    small, data, small_hashes = song(10)
    assert small_hashes == small.sha256  # one piece: the list is [sha256]
    assert pieces.id_plausible(small)
    lie = p.FileInfo(b"12345678", *list(vars(small).values())[1:])
    assert not pieces.id_plausible(lie)
    old = p.FileInfo(p.file_id_of(small.sha256), *list(
        vars(small).values())[1:])
    assert pieces.legacy(old) and pieces.id_plausible(old)


def test_hash_pages_fit_a_datagram_and_a_list_takes_only_its_own_pages():
    info, _, hashes = song(200 * pieces.PIECE_CHUNKS)  # 200 pieces
    pages = pieces.page_count(200)
    assert pages == 5 == -(-200 // p.HASHES_PER_PAGE)
    built = pieces.HashList(info)
    for page in range(pages):
        msg = p.HashPage(info.file_id, page, pages,
                         pieces.page_of(hashes, page))
        assert len(p.encode(msg)) <= p.MAX_DATAGRAM
        assert p.decode(p.encode(msg)).message == msg
        assert not built.add(p.HashPage(info.file_id, page, pages + 1,
                                        msg.hashes))
        assert not built.add(p.HashPage(info.file_id, page, pages,
                                        msg.hashes[:-1] or (bytes(32),) * 2))
        assert built.add(msg)
    assert built.complete and built.matches() and built.joined() == hashes
    with pytest.raises(p.ProtocolError):  # a page past the count
        p.decode(p.encode(p.HashPage(info.file_id, 5, 5, ())))


def test_the_seeder_serves_one_page_per_hashes_and_only_to_a_token():
    info, data, hashes = song(100 * pieces.PIECE_CHUNKS)
    seeder = se.SeederEngine(Source(info, data, hashes), b"s", 1)
    ask = p.encode(p.Hashes(info.file_id, 1, 0))
    seeder.receive_datagram(ask, LEECHER, 0.0)
    (reply, _), = seeder.datagrams_to_send(0.0)
    assert isinstance(p.decode(reply).message, p.Retry)  # no token: no list
    token = seeder.token_for(LEECHER, 0.0)
    for page, want in ((1, pieces.page_of(hashes, 1)), (9, None)):
        seeder.receive_datagram(p.encode(p.Hashes(info.file_id, page,
                                                  token)), LEECHER, 0.0)
        (reply, _), = seeder.datagrams_to_send(0.0)
        msg = p.decode(reply).message
        if want is None:
            assert isinstance(msg, p.Error) \
                and msg.code == p.ErrorCode.BAD_REQUEST
        else:
            assert msg == p.HashPage(info.file_id, 1, 3, want)
    seeder.receive_datagram(p.encode(p.Hashes(b"nothere!", 0, token)),
                            LEECHER, 0.0)
    (reply, _), = seeder.datagrams_to_send(0.0)
    assert p.decode(reply).message.code == p.ErrorCode.NOT_FOUND


# ------------------------------------------------------------ downloads
def test_honest_seeders_every_piece_checked_once_no_extra():
    info, data, hashes = song(5 * pieces.PIECE_CHUNKS - 3)
    swarm = Swarm(info, {a: Source(info, data, hashes) for a in (A, B, C)})
    swarm.run()
    assert bytes(swarm.file) == data
    assert sorted(swarm.checked) == list(range(5))
    assert swarm.extra_chunks() == 0 and not swarm.of(ev.BadPiece)
    stats = swarm.engine.stats(swarm.now)
    assert stats["piece_hashes"] == "checked"
    assert stats["pieces_verified"] == 5 and stats["bad_pieces"] == 0


@pytest.mark.parametrize("corrupt", ["one chunk", "everything"])
def test_a_seeder_sending_wrong_data_with_valid_crcs_is_named(corrupt):
    """Target of issue 12: byte-exact on the first run, the bad peer
    named, at most 2 extra pieces fetched per bad piece, the honest ones
    never blamed."""
    info, data, hashes = song(6 * pieces.PIECE_CHUNKS)
    # B deals the second block of each round (the classic split): one of
    # its chunks past piece 0, in a piece the three of them share.
    from_b = p.split_among(info.chunks, 3)[1].values()
    one = next(index for index in from_b if index > pieces.PIECE_CHUNKS)
    bad = {one} if corrupt == "one chunk" else set(range(info.chunks))
    swarm = Swarm(info, {A: Source(info, data, hashes),
                         B: Source(info, data, hashes, corrupt=bad),
                         C: Source(info, data, hashes)})
    swarm.run()
    assert swarm.engine.complete and bytes(swarm.file) == data
    blamed = {peer for e in swarm.of(ev.BadPiece) for peer in e.peers}
    assert blamed == {"127.0.0.2:9000"}
    bad_pieces = {e.piece for e in swarm.of(ev.BadPiece)}
    assert swarm.extra_chunks() <= 2 * pieces.PIECE_CHUNKS * len(bad_pieces)
    stats = swarm.engine.stats(swarm.now)
    assert stats["bad_pieces_per_peer"].keys() == {"127.0.0.2:9000"}
    if corrupt == "everything":
        # Dropped at its second bad piece; what it had sent already is
        # still found bad (and counted) afterwards.
        assert stats["bad_pieces_per_peer"]["127.0.0.2:9000"] \
            >= de.MAX_BAD_PIECES
        assert [e.dropped for e in swarm.of(ev.BadPiece) if e.dropped] \
            == [("127.0.0.2:9000",)]
        assert B in swarm.engine.failover.banned


def test_a_lone_lying_seeder_fetched_again_from_an_honest_one():
    info, data, hashes = song(2 * pieces.PIECE_CHUNKS)
    swarm = Swarm(info, {A: Source(info, data, hashes, corrupt={3}),
                         B: Source(info, data, hashes)},
                  rtts={A: 0.001, B: 0.004})
    swarm.engine.options.order = "sequential"
    swarm.run()
    assert bytes(swarm.file) == data
    assert [e.peers for e in swarm.of(ev.BadPiece)] == [("127.0.0.1:9000",)]
    assert swarm.extra_chunks() <= 2 * pieces.PIECE_CHUNKS


def test_forged_chunks_from_a_host_that_is_not_a_peer_change_nothing():
    info, data, hashes = song(3 * pieces.PIECE_CHUNKS)
    swarm = Swarm(info, {A: Source(info, data, hashes),
                         B: Source(info, data, hashes)})
    swarm.engine.start(0.0)
    swarm.step()
    sids = [sid for (addr, sid) in swarm.engine.transfers]
    forged = [(p.encode_chunk(info.file_id, i, 0, 0, bytes(CHUNK), sid),
               ("10.6.6.6", 9000)) for i in range(info.chunks)
              for sid in sids[:1]]
    swarm.engine.receive_batch(forged, swarm.now)
    while not swarm.engine.complete and swarm.now < 30:
        swarm.step()
    assert bytes(swarm.file) == data
    assert swarm.engine.counters.forged == info.chunks
    assert not swarm.of(ev.BadPiece)


def test_a_lying_hash_list_names_its_peer_and_the_next_one_is_asked():
    info, data, hashes = song(60 * pieces.PIECE_CHUNKS)  # two pages
    lie = bytearray(hashes)
    lie[-1] ^= 1  # the last page's last hash
    swarm = Swarm(info, {A: Source(info, data, bytes(lie)),
                         B: Source(info, data, hashes)},
                  rtts={A: 0.001, B: 0.004})  # the liar is asked first
    swarm.run()
    assert bytes(swarm.file) == data
    assert [e.peer for e in swarm.of(ev.BadHashList)] == ["127.0.0.1:9000"]
    assert swarm.hashes_asked.count(A) == 2
    assert swarm.hashes_asked.count(B) == 2
    assert A in swarm.engine.failover.banned
    assert swarm.engine.counters.stored_from.get(A, 0) < info.chunks


def test_without_any_list_the_song_is_still_fetched_and_checked_whole():
    """Seeders that publish no list (NOT_FOUND): the download goes on;
    the driver's whole-file SHA-256 is then the only check."""
    info, data, hashes = song(2 * pieces.PIECE_CHUNKS)
    swarm = Swarm(info, {A: Source(info, data, None),
                         B: Source(info, data, None)})
    swarm.run()
    assert swarm.engine.complete and bytes(swarm.file) == data
    assert swarm.engine.stats(swarm.now)["piece_hashes"] == "unavailable"
    assert swarm.checked == [] and swarm.engine.verified_prefix() \
        == info.chunks


def test_a_resume_checks_only_the_pieces_not_verified_before():
    info, data, hashes = song(4 * pieces.PIECE_CHUNKS)
    swarm = Swarm(info, {A: Source(info, data, hashes)}, verified=[0, 2],
                  present=data)
    swarm.run()
    assert swarm.engine.complete and sorted(swarm.checked) == [1, 3]
    assert sum(swarm.engine.counters.stored_from.values()) == 0


def test_a_song_named_by_its_sha256_asks_for_no_list():
    info, data, hashes = song(2 * pieces.PIECE_CHUNKS)
    old = p.FileInfo(p.file_id_of(info.sha256), *list(vars(info).values())[1:])
    swarm = Swarm(old, {A: Source(old, data, None)})
    swarm.run()
    assert bytes(swarm.file) == data and swarm.hashes_asked == []
    assert swarm.engine.stats(swarm.now)["piece_hashes"] == "none"


# ------------------------------------------------------ the leecher's file
def test_the_sidecar_keeps_verified_pieces_while_their_chunks_are_intact(
        tmp_path, monkeypatch):
    import leecher
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    info, data, hashes = song(3 * pieces.PIECE_CHUNKS)
    part = leecher.PartFile(info, str(tmp_path / "s.mp3"))
    part.open()
    state = p.ReceiveState(info.chunks)
    fresh = []
    for index in range(info.chunks):
        state.add(index)
        fresh.append((index, data[index * CHUNK:(index + 1) * CHUNK]))
    part.write(fresh, state)
    assert part.save_progress(state, verified=[(0, 2)]) is None
    part.close()
    rotten = pieces.PIECE_CHUNKS + 6  # a chunk of piece 1
    with open(tmp_path / "s.mp3.part", "r+b") as handle:  # the disk rots
        handle.seek(rotten * CHUNK + 5)
        handle.write(b"\xff")
    again = leecher.PartFile(info, str(tmp_path / "s.mp3"))
    again.open()
    told = []
    present = again.resume(told.append)
    again.close()
    assert rotten not in present and len(present) == info.chunks - 1
    assert again.verified_pieces == [0]  # piece 1 lost a chunk
    other = p.FileInfo(b"otherid!", *list(vars(info).values())[1:])
    assert leecher.Sidecar(str(tmp_path / "s.mp3.part.json")).load(other) \
        is leecher.Sidecar.CHANGED  # another id: another song


def test_a_bad_piece_is_announced_in_one_line_naming_the_culprit():
    import io
    import leecher
    info, _, _ = song(3)
    out = io.StringIO()
    view = leecher.TerminalView(info, stream=out)
    view.put(ev.BadPiece(4, ("127.0.0.2:9000",), 1.0, ("127.0.0.2:9000",)))
    view.put(ev.BadHashList("127.0.0.3:9000", 1.0))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "piece 4" in lines[0] and "127.0.0.2:9000" in lines[0] \
        and "dropped" in lines[0]
    assert "127.0.0.3:9000" in lines[1]


def test_a_bad_piece_partly_from_disk_blames_only_by_comparison():
    """An earlier run left a wrong chunk on disk (its CRC is of what was
    written): the peer that sent the rest of the piece is not blamed."""
    info, data, hashes = song(2 * pieces.PIECE_CHUNKS)
    rotten = bytearray(data)
    rotten[5] ^= 0xFF  # chunk 0, from "disk"
    swarm = Swarm(info, {A: Source(info, data, hashes)}, present=rotten)
    engine = swarm.engine
    for index in range(1, info.chunks):  # only chunk 0 was on disk
        engine.state.discard(index, index + 1)
    swarm.run()
    assert bytes(swarm.file) == data
    assert swarm.of(ev.BadPiece) == []  # the fresh copy matched: no liar
    assert engine.stats(swarm.now)["bad_pieces"] == 1
