"""One leecher in a swarm, sans-I/O (see ENGINES.md): ``PeerEngine``.

It downloads a song (a ``DownloadEngine``), serves the pieces it has
verified (a ``SeederEngine`` over a ``SharedSong``, with a seeder's
tokens, bounds and anti-amplification), finds other peers (GET_PEERS to
the peers it knows, PEERS back, PINGs to the candidates) and tells them
what it holds (HAVE).  Datagrams are routed by the header's type byte:

- PING, SEARCH, REQUEST, ACK, NACK, CANCEL, HASHES, GET_PEERS: the
  seeding side (dropped while not sharing);
- HAVE: the seeding side (its directory) and the swarm side (holdings);
- PEERS, and the PONG / RETRY / ERROR answering the swarm side's own
  PINGs and GET_PEERS (they carry its session id ``swarm_sid``): the
  swarm side;
- everything else (CHUNK, DONE, the download's own answers): the
  download.

A peer learns what another holds from the other's HAVEs, which it sends
once it knows us: a ``share=False`` leecher announces nothing, so it
downloads from seeders only.
"""

from __future__ import annotations

import itertools
import random
from collections import OrderedDict, deque
from typing import Callable, Iterable

import events as ev
import netem
import pieces
import protocol as p
from download_engine import PING_PADDING, Peer, peer_name
from peer_directory import MAX_PER_HOST, PEER_TTL_S, listable
from seed_engine import SearchIndex, SeederEngine

# A leecher's upload is shared by few: each session gets at least an
# eighth of it.  Per host (IP) 4: a class runs several peers on one IP.
PEER_MAX_SESSIONS = 8
PEER_MAX_SESSIONS_PER_HOST = 4
PEX_INTERVAL_S = 2.0  # GET_PEERS to a few known peers this often
PEX_FANOUT = 3  # peers asked per round
PEX_WAIT_S = 0.5  # start() waits this long at most for the PEERS answers
PEX_ANSWER_S = 2 * PEX_INTERVAL_S  # a PEERS is taken this long after asking
MAX_KNOWN_PEERS = 32  # partial peers given to the download
# Candidates PINGed per second at most: a PEERS listing 32 addresses
# (218 bytes) makes at most this many 64-byte PINGs a second, so a
# forged list cannot aim a flood at third parties.
PINGS_PER_S = 8
MAX_CANDIDATES = 64  # addresses waiting for their PING
PING_ANSWER_S = 2.0  # a PONG later than this is not taken
RETRY_CANDIDATE_S = 30.0  # an address that did not answer is left alone
MAX_TRIED = 512  # addresses remembered as PINGed (oldest forgotten)
# PINGs to the addresses one peer listed that got no PONG: past this its
# PEERS answers are not taken.  A lister of addresses that never talked
# to us (reflection) makes at most this many PINGs (1 KB) in all; each
# PONG gives its PING back and room for one more silent one, so an
# honest directory listing peers that left lately (up to PEER_TTL_S)
# is still heard.
SILENT_PINGS_PER_LISTER = 16
# The registration HAVE (and the token it rests on, 30-60 s) is renewed
# this often: three refreshes fit in a directory entry's life.
DIRECTORY_REFRESH_S = PEER_TTL_S / 3
SERVED_EVERY_S = 1.0  # a Served event at most this often

SEEDING_TYPES = frozenset({p.MsgType.PING, p.MsgType.SEARCH,
                           p.MsgType.REQUEST, p.MsgType.ACK, p.MsgType.NACK,
                           p.MsgType.CANCEL, p.MsgType.HASHES,
                           p.MsgType.GET_PEERS})
SWARM_ANSWERS = frozenset({p.MsgType.PONG, p.MsgType.RETRY, p.MsgType.ERROR})


def have_messages(info: p.FileInfo, verified: p.RangeSet, token: int):
    """HAVEs of ``verified`` piece ranges, ``MAX_HAVE_RANGES`` each (one,
    empty, when there is nothing: "I share, nothing yet")."""
    count, ranges = pieces.piece_count(info.chunks), list(verified)
    step = p.MAX_HAVE_RANGES
    return [p.Have(info.file_id, count, tuple(ranges[at:at + step]), token)
            for at in range(0, max(len(ranges), 1), step)]


class SharedSong:
    """A ``ChunkSource`` and catalog for ONE song being downloaded: it
    serves only the pieces verified so far (``held``)."""

    def __init__(self, info: p.FileInfo, read: Callable[[int], bytes]):
        """``read(index)``: the chunk's bytes (raises ``OSError``)."""
        self.song = info
        self._read = read
        self.pieces = p.RangeSet()  # verified pieces
        self._chunks = p.RangeSet()  # their chunks
        self._hashes: bytes | None = None
        # Songs without a piece list are never shared (nothing verifies
        # a part of them).
        self._index = SearchIndex(() if pieces.legacy(info) else (info,))

    def add_pieces(self, verified: Iterable[int]) -> None:
        total = pieces.piece_count(self.song.chunks)
        for piece in verified:
            if 0 <= piece < total:
                self.pieces.add(piece)
                self._chunks.add(*pieces.chunk_range(piece, self.song.chunks))

    def set_hashes(self, hashes: bytes) -> None:
        self._hashes = bytes(hashes)

    def info(self, file_id: bytes) -> p.FileInfo | None:
        return self._index.info(file_id)

    def read(self, file_id: bytes, index: int) -> bytes:
        if self.info(file_id) is None or index not in self._chunks:
            raise OSError(f"chunk {index} is not shared")
        return self._read(index)

    def held(self, file_id: bytes) -> p.RangeSet:
        return self._chunks if self.info(file_id) else p.RangeSet()

    def piece_hashes(self, file_id: bytes) -> bytes | None:
        return self._hashes if self.info(file_id) else None

    def search(self, query: str) -> list[p.FileInfo]:
        return self._index.search(query)

    def __len__(self) -> int:
        return len(self._index)


class Swarm:
    """The swarm side of a ``PeerEngine``: peer exchange, PINGs of the
    candidates, HAVEs.  Every table is bounded: known peers
    (``MAX_KNOWN_PEERS``), candidates, PINGs in flight and a second's
    PINGs (``PINGS_PER_S``), addresses tried (``MAX_TRIED``)."""

    def __init__(self, engine: "PeerEngine", seed: int):
        self.engine = engine
        self.info = engine.download.info
        self.piece_total = pieces.piece_count(self.info.chunks)
        self.rng = random.Random(seed)
        # Our PINGs and GET_PEERS carry this session id: their answers
        # come back with it (the download's own PINGs use 0).
        self.sid = self.rng.getrandbits(32) or 1
        # A song without a piece list is never shared nor fetched from
        # peers: no peer exchange for it at all.
        self.active = not pieces.legacy(self.info)
        self.partial: dict[tuple, Peer] = {}  # peers given to the download
        self.tokens: dict[tuple, int] = {}  # the token each one gave us
        self.asked: dict[tuple, list] = {}  # GET_PEERS: addr -> [at, retried]
        self.awaiting: set[tuple] = set()  # start()'s asks not answered
        # Addresses to PING -> who listed them (None: they HAVEd us
        # with our token, so they proved their address).
        self.candidates: OrderedDict[tuple, tuple | None] = OrderedDict()
        self.owed: dict[tuple, int] = {}  # lister -> its PINGs unanswered
        # What a not yet known peer's HAVE said it holds: given to the
        # download when it joins (it tells only new pieces after that).
        self.holds: OrderedDict[tuple, p.RangeSet] = OrderedDict()
        # nonce -> (addr, sent at, who listed it)
        self.pinging: dict[int, tuple] = {}
        self.tried: OrderedDict[tuple, float] = OrderedDict()
        # Peers not among ours that got our pieces in answer to a HAVE.
        self.answered: OrderedDict[tuple, float] = OrderedDict()
        self.recent_pings: deque[float] = deque()  # candidates, last second
        self.fresh = p.RangeSet()  # pieces verified, not yet announced
        self.next_pex = self.next_refresh = None
        self.outbox: list = []
        self.bad = 0  # datagrams that could not be decoded

    # ------------------------------------------------------------ who
    def seeders(self) -> list[Peer]:
        return [peer for peer in self.engine.download.peers.values()
                if peer.holds is None and peer.alive]

    def known(self, addr) -> bool:
        return addr in self.engine.download.peers or addr in self.partial

    def token(self, peer: Peer) -> int:
        return self.tokens.get(peer.addr, peer.token)

    def send(self, msg, addr, sid: int = 0, flags: int = 0) -> None:
        self.outbox.append((p.encode(msg, sid, flags), addr))

    # ---------------------------------------------------------- start
    def start(self, now: float) -> None:
        """GET_PEERS (and, sharing, the registration HAVE) to the
        seeders."""
        if not self.active:
            return
        for peer in self.seeders():
            self.ask_peers(peer, now)
            self.awaiting.add(peer.addr)
            self.register(peer)
        self.next_pex = now + PEX_INTERVAL_S
        self.next_refresh = now + DIRECTORY_REFRESH_S

    def ask_peers(self, peer: Peer, now: float) -> None:
        self.asked[peer.addr] = [now, False]
        self.send(p.GetPeers(self.info.file_id, self.token(peer)), peer.addr,
                  self.sid)

    def register(self, peer: Peer) -> None:
        """A HAVE "I share this song" (its directory lists us)."""
        if self.engine.sharing and self.active:
            self.send(p.Have(self.info.file_id, self.piece_total, (),
                             self.token(peer)), peer.addr)

    def announce(self, peer: Peer, pieces_: p.RangeSet,
                 flags: int = 0) -> None:
        """HAVEs of ``pieces_`` (verified, or with ``FLAG_FETCHING``
        being fetched from a seeder) to ``peer``."""
        if self.engine.sharing and self.active:
            for have in have_messages(self.info, pieces_, self.token(peer)):
                self.send(have, peer.addr, flags=flags)

    def announce_all(self) -> None:
        """Sharing (again): every peer hears all we hold."""
        for peer in self.seeders():
            self.register(peer)
        for peer in self.partial.values():
            self.announce(peer, self.engine.song.pieces)

    # -------------------------------------------------------- receive
    def receive(self, data, addr, now: float) -> None:
        try:
            datagram = p.decode(data)
        except p.ProtocolError:
            self.bad += 1
            return
        msg = datagram.message
        if isinstance(msg, p.Have) and datagram.flags & p.FLAG_FETCHING:
            if addr in self.partial and msg.file_id == self.info.file_id:
                self.engine.download.peer_fetching(addr, msg.ranges, now)
        elif isinstance(msg, p.Have):
            self.on_have(msg, addr, now)
        elif isinstance(msg, p.Peers):
            self.on_peers(msg, addr, now)
        elif isinstance(msg, p.Pong):
            self.on_pong(msg, addr, now)
        elif isinstance(msg, p.Retry) and addr in self.asked:
            self.on_retry(msg, addr)
        elif isinstance(msg, p.Error) and addr in self.asked:
            del self.asked[addr]  # no such song there
            self.awaiting.discard(addr)

    def on_have(self, msg: p.Have, addr, now: float) -> None:
        if msg.file_id != self.info.file_id or msg.pieces != self.piece_total:
            return
        if addr in self.partial:
            self.engine.download.peer_has(addr, msg.ranges, now)
        elif not self.known(addr) and self.engine.seeder.tokens.valid(
                msg.token, addr, now):
            # It PINGed us (the token is our PONG's): a peer to PING back.
            self._hold(addr, msg.ranges)
            self.candidate(addr, now)
            self.ping_candidates(now)
            self.answer_have(addr, now)

    def answer_have(self, addr, now: float) -> None:
        """What we hold, to a proven peer that told us its pieces but is
        not among ours (our table may be full): it knows us, so it can
        fetch from us.  Once per ``PEX_INTERVAL_S`` per address, for at
        most ``MAX_TRIED`` addresses: a reply of a few ranges to each of
        its HAVEs, never more.  Full of addresses answered within
        ``PEX_INTERVAL_S``, none is forgotten (else a host with more
        ports than that is answered at every HAVE)."""
        pieces_held = self.engine.song.pieces
        last = self.answered.get(addr)
        if not pieces_held or not self.engine.sharing or (
                last is not None and now - last < PEX_INTERVAL_S):
            return
        if last is None and len(self.answered) >= MAX_TRIED and \
                now - next(iter(self.answered.values())) < PEX_INTERVAL_S:
            return
        self.answered.pop(addr, None)
        self.answered[addr] = now
        if len(self.answered) > MAX_TRIED:
            self.answered.popitem(last=False)
        for have in have_messages(self.info, pieces_held,
                                  self.tokens.get(addr, 0)):
            self.send(have, addr)

    def on_peers(self, msg: p.Peers, addr, now: float) -> None:
        """Only the answer of a peer we asked, once, in time."""
        asked = self.asked.pop(addr, None)
        if asked is None or now - asked[0] > PEX_ANSWER_S \
                or msg.file_id != self.info.file_id:
            return
        self.awaiting.discard(addr)
        if self.owed.get(addr, 0) >= SILENT_PINGS_PER_LISTER:
            return  # it lists addresses that do not answer
        for listed in msg.peers:
            self.candidate(listed, now, addr)
        self.ping_candidates(now)

    def on_retry(self, msg: p.Retry, addr) -> None:
        """Our token there expired: ask again with the fresh one, once."""
        self.tokens[addr] = msg.token
        asked = self.asked[addr]
        if not asked[1]:
            asked[1] = True
            self.send(p.GetPeers(self.info.file_id, msg.token), addr,
                      self.sid)

    def on_pong(self, msg: p.Pong, addr, now: float) -> None:
        sent = self.pinging.pop(msg.nonce, None)
        if sent is None or sent[0] != addr or now - sent[1] > PING_ANSWER_S:
            return
        lister = sent[2]
        if self.owed.get(lister):  # its address answered
            self.owed[lister] = max(0, self.owed[lister] - 2)
        if self.known(addr):  # a refresh: the token renewed
            self.tokens[addr] = msg.token
            peer = self.partial.get(addr) or self.engine.download.peers[addr]
            self.register(peer)
            return
        holds = self.holds.pop(addr, None)
        if len(self.partial) < MAX_KNOWN_PEERS:
            self.tokens[addr] = msg.token
            self.join(addr, max(now - sent[1], 0.0), msg, holds, now)

    def join(self, addr, rtt: float, pong: p.Pong, holds, now: float):
        download = self.engine.download
        peer = Peer(addr, rtt=rtt, holds=p.RangeSet())
        peer.learn(pong)
        told = self.engine.mark()  # joined: told before it is asked
        download.add_peer(peer, now)
        if addr not in download.peers:
            return  # the download takes no more peers (or banned it)
        self.partial[addr] = peer
        if holds:
            download.peer_has(addr, tuple(holds), now)
        self.engine.emit(ev.PeerJoined(peer_name(addr),
                                       download.since_start(now)), told)
        self.announce(peer, self.engine.song.pieces)

    # ----------------------------------------------------- candidates
    def candidate(self, addr, now: float, lister=None) -> None:
        """``addr`` (listed by ``lister``) to PING, unless it is us,
        known, waiting already, tried lately, its host holds
        ``MAX_PER_HOST`` places already, or the tables are full."""
        full = len(self.candidates) >= MAX_CANDIDATES or len(
            self.partial) + len(self.candidates) >= MAX_KNOWN_PEERS
        if full or not self.active or not listable(addr) \
                or self.host_full(addr[0]):
            return
        tried = self.tried.get(addr)
        if addr == self.engine.own_addr or self.known(addr) \
                or addr in self.candidates \
                or (tried is not None and now - tried < RETRY_CANDIDATE_S):
            return
        self.candidates[addr] = lister

    def host_full(self, host: str) -> bool:
        """Does ``host`` hold ``MAX_PER_HOST`` of our peers and
        candidates?  One IP with many ports cannot fill our table."""
        return sum(1 for known in itertools.chain(self.partial,
                                                  self.candidates)
                   if known[0] == host) >= MAX_PER_HOST

    def _hold(self, addr, ranges) -> None:
        """Remember what a HAVE of a peer not yet known said, at most
        ``MAX_HAVE_RANGES`` ranges each, for ``MAX_CANDIDATES`` peers."""
        held = self.holds.pop(addr, None) or p.RangeSet()
        for start, end in ranges[:p.MAX_HAVE_RANGES]:
            if len(held) < p.MAX_HAVE_RANGES:
                held.add(min(start, self.piece_total),
                         min(end, self.piece_total))
        self.holds[addr] = held
        if len(self.holds) > MAX_CANDIDATES:
            self.holds.popitem(last=False)

    def ping_slot(self, now: float) -> float:
        """When the next candidate may be PINGed (``PINGS_PER_S``)."""
        recent = self.recent_pings
        while recent and now - recent[0] >= 1.0:
            recent.popleft()
        return now if len(recent) < PINGS_PER_S else recent[0] + 1.0

    def ping_candidates(self, now: float) -> None:
        while self.candidates and self.ping_slot(now) <= now:
            addr, lister = self.candidates.popitem(last=False)
            if lister is not None:
                owed = self.owed.get(lister, 0)
                if owed >= SILENT_PINGS_PER_LISTER:
                    continue  # its addresses did not answer
                self.owed[lister] = owed + 1
            self.recent_pings.append(now)
            self.tried.pop(addr, None)
            self.tried[addr] = now
            if len(self.tried) > MAX_TRIED:
                self.tried.popitem(last=False)
            self.ping(addr, now, lister)

    def ping(self, addr, now: float, lister=None) -> None:
        for nonce, (_, at, _) in list(self.pinging.items()):
            if now - at > PING_ANSWER_S:
                del self.pinging[nonce]
        nonce = self.rng.getrandbits(32)
        self.pinging[nonce] = (addr, now, lister)
        self.send(p.Ping(nonce, PING_PADDING), addr, self.sid)

    # ---------------------------------------------------------- timers
    def timer(self, now: float) -> float | None:
        times = []
        if self.candidates:
            times.append(self.ping_slot(now))
        if self.next_pex is not None and not self.engine.download.complete:
            times.append(self.next_pex)
        if self.next_refresh is not None and self.engine.sharing:
            times.append(self.next_refresh)
        return min(times) if times else None

    def on_timer(self, now: float) -> None:
        self.ping_candidates(now)
        if self.next_pex is not None and now >= self.next_pex:
            self.next_pex = now + PEX_INTERVAL_S
            if not self.engine.download.complete:
                self.pex_round(now)
        if self.next_refresh is not None and now >= self.next_refresh:
            self.next_refresh = now + DIRECTORY_REFRESH_S
            if self.engine.sharing:
                self.refresh(now)

    def pex_round(self, now: float) -> None:
        """GET_PEERS to ``PEX_FANOUT`` known peers, picked at random."""
        for addr, asked in list(self.asked.items()):
            if now - asked[0] > PEX_ANSWER_S:
                del self.asked[addr]
        peers = self.seeders() + [peer for peer in self.partial.values()
                                  if peer.alive]
        for peer in self.rng.sample(peers, min(PEX_FANOUT, len(peers))):
            self.ask_peers(peer, now)

    def refresh(self, now: float) -> None:
        """PING every seeder and peer: each PONG renews its token and
        our registration there (``on_pong``)."""
        for peer in self.seeders() + list(self.partial.values()):
            self.ping(peer.addr, now)

    def _announce_alive(self, pieces_: p.RangeSet, flags: int = 0) -> None:
        for peer in self.partial.values():
            if peer.alive:
                self.announce(peer, pieces_, flags)

    def flush(self) -> list:
        """What the swarm side sends now: the HAVE of the pieces
        verified since the last call to every known peer (the seeders
        hold them all)."""
        if self.fresh:
            self._announce_alive(self.fresh)
            self.fresh = p.RangeSet()
        fetching = self.engine.download.take_fetching() if self.active \
            else ()
        if fetching:
            self._announce_alive(p.RangeSet(p.runs(sorted(fetching))),
                                 p.FLAG_FETCHING)
        out, self.outbox = self.outbox, []
        return out


class PeerEngine:
    """One leecher in a swarm: downloads (a DownloadEngine), serves what it
    verified (a SeederEngine over a SharedSong), finds peers (GET_PEERS,
    PEERS, PINGs them) and tells them what it holds (HAVE)."""

    def __init__(self, download, song: SharedSong, secret: bytes, seed: int,
                 share: bool = True, upload: netem.LinkSpec | None = None,
                 own_addr: tuple | None = None):
        """``upload``: the emulated link of what we serve (its rate is
        ``--upload-rate``); ``own_addr``: never listed nor PINGed."""
        self.download, self.song = download, song
        self.sharing = share
        self.own_addr = own_addr
        self.seeder = SeederEngine(
            song, secret, seed, link=upload or netem.LinkSpec(), name="peer",
            max_sessions=PEER_MAX_SESSIONS,
            max_sessions_per_host=PEER_MAX_SESSIONS_PER_HOST)
        self.swarm = Swarm(self, seed)
        self._verified: list[int] = []  # for take_verified
        self._share_resumed()
        self._events: list = []
        self._start_by: float | None = None  # the download starts then
        self._started = False
        self._served_told = 0  # chunks the last Served event said
        self._served_next = float("-inf")
        self.now = float("-inf")  # the latest ``now`` we were given

    def start(self, now: float) -> None:
        """GET_PEERS and the registration HAVE to the seeders; the
        download starts once they answered, or ``PEX_WAIT_S`` later."""
        self.swarm.start(now)
        self._start_by = now + PEX_WAIT_S if self.swarm.awaiting else now

    def mark(self) -> int:
        """Where an event emitted now goes (``emit``'s ``at``); the
        download's events so far are taken first, to keep the order."""
        self._events += self.download.events()
        return len(self._events)

    def emit(self, event, at: int | None = None) -> None:
        """``event`` after everything so far, or at ``at`` (a ``mark``
        taken during this call): before what the download said since."""
        self._events += self.download.events()
        self._events.insert(len(self._events) if at is None else at, event)

    # ------------------------------------------------- engine interface
    def receive_datagram(self, data, addr, now: float) -> None:
        self.receive_batch([(data, addr)], now)

    def receive_batch(self, batch, now: float) -> None:
        """Each datagram to its side by the header's type byte; the
        download's in one batch (its fast path), in arrival order."""
        self.now = max(self.now, now)
        swarm, seeder, download_part = self.swarm, self.seeder, []
        for data, addr in batch:
            kind = data[3] if len(data) >= p.HEADER.size else None
            if kind == p.MsgType.CHUNK or kind is None:
                download_part.append((data, addr))
            elif kind in SEEDING_TYPES:
                if self.sharing:
                    seeder.receive_datagram(data, addr, now)
            elif kind == p.MsgType.HAVE:
                seeder.receive_datagram(data, addr, now)
                swarm.receive(data, addr, now)
            elif kind == p.MsgType.PEERS or (
                    kind in SWARM_ANSWERS
                    and int.from_bytes(data[6:10], "big") == swarm.sid):
                swarm.receive(data, addr, now)
            else:
                download_part.append((data, addr))
        if download_part:
            self.download.receive_batch(download_part, now)
        if self._start_by is not None and not swarm.awaiting:
            self._start_by = min(self._start_by, now)  # answers are in

    def datagrams_to_send(self, now: float) -> list:
        self.now = max(self.now, now)
        out = self.swarm.flush()
        out += self.seeder.datagrams_to_send(now)
        out += self.download.datagrams_to_send(now)
        return out

    def get_timer(self) -> float | None:
        times = [self._start_by, self.seeder.get_timer(),
                 self.swarm.timer(self.now), self._served_timer()]
        if self._started:
            times.append(self.download.get_timer())
        times = [t for t in times if t is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        """May raise ``events.DownloadFailed`` (the download's own)."""
        self.now = max(self.now, now)
        timer = self.seeder.get_timer()
        if timer is not None and timer <= now:
            self.seeder.handle_timer(now)
        self.swarm.on_timer(now)
        self._tell_served(now)
        if self._start_by is not None and now >= self._start_by:
            self._start_by, self._started = None, True
            self.download.start(now)
        elif self._started:
            self.download.handle_timer(now)

    def events(self) -> list:
        """The download's events, ``PeerJoined`` and ``Served``, in the
        order they happened."""
        mine, self._events = self._events, []
        return mine + self.download.events()

    # ---------------------------------------------- the driver's download
    @property
    def complete(self) -> bool:
        return self.download.complete

    def take_runs(self) -> list:
        return self.download.take_runs()

    def take_fresh(self) -> list:
        return self.download.take_fresh()

    @property
    def info(self) -> p.FileInfo:
        return self.download.info

    def take_verified(self) -> list[int]:
        """The pieces verified since the last call (shared already)."""
        taken, self._verified = self._verified, []
        return taken

    def pieces_to_verify(self) -> list[int]:
        return self.download.pieces_to_verify()

    def check_piece(self, piece: int, data, now: float) -> bool:
        """True: the piece is good; it joins what we serve and a HAVE
        tells the known peers (``datagrams_to_send``)."""
        good = self.download.check_piece(piece, data, now)
        self._share_verified()
        return good

    def _share_verified(self) -> None:
        """The pieces the download verified since the last look."""
        verified = self.download.take_verified()
        if not verified:
            return
        if self.song.piece_hashes(self.download.info.file_id) is None:
            self._learn_hashes()
        self.song.add_pieces(verified)
        for piece in verified:
            self.swarm.fresh.add(piece)
        self._verified += verified

    def _share_resumed(self) -> None:
        """Pieces an earlier run verified are shared from the start."""
        book = getattr(self.download.pieces, "book", None)
        if book is not None:
            self.song.add_pieces(piece for piece, ok in enumerate(
                book.verified) if ok)

    def _learn_hashes(self) -> None:
        """The piece list the download fetched and checked: we serve it
        too (HASHES)."""
        book = getattr(self.download.pieces, "book", None)
        if getattr(book, "hashes", None):
            self.song.set_hashes(book.hashes)

    def verified_prefix(self) -> int:
        return self.download.verified_prefix()

    def stats(self, now: float) -> dict:
        stats = self.download.stats(now)
        served = self.served()
        stats["served_chunks"], stats["served_to"] = served["chunks"], \
            served["to"]
        return stats

    # ------------------------------------------------------- sharing
    def set_sharing(self, on: bool, now: float) -> None:
        """The window's switch.  Off: the sessions we serve end (an ERROR
        tells each leecher) and nothing is answered; on: every peer
        hears what we hold again."""
        if on == self.sharing:
            return
        self.sharing = on
        if on:
            self.swarm.announce_all()
        else:
            self.seeder.close("stopped sharing")

    def served(self) -> dict:
        return {"chunks": self.seeder.counters.link.sent,
                "to": self.seeder.served_to()}

    def _served_timer(self) -> float | None:
        changed = self.seeder.counters.link.sent != self._served_told
        return max(self._served_next, self.now) if changed else None

    def _tell_served(self, now: float) -> None:
        """A ``Served`` event, at most every ``SERVED_EVERY_S``, when
        the count changed."""
        sent = self.seeder.counters.link.sent
        if sent == self._served_told or now < self._served_next:
            return
        self._served_told, self._served_next = sent, now + SERVED_EVERY_S
        self.emit(ev.Served(sent, len(self.seeder.served_to()),
                            self.download.since_start(now)))
