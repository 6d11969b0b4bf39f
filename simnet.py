"""A simulated network in virtual time that drives the real engines.

Hosts are engines (ENGINES.md: ``receive_datagram``, ``datagrams_to_send``,
``get_timer``, ``handle_timer``) at addresses; between any two addresses
a one-way link (``netem.Link`` built from a ``netem.LinkSpec``) decides
whether a datagram arrives, how often and when.  No sockets, no clock:

    net = SimNet(seed=7, default_link=netem.LinkSpec(delay_s=0.02))
    net.add_host(LEECHER, download_engine)
    net.add_host(SEEDER, seed_engine)
    net.kill(SEEDER, at=1.5)           # the seeder dies then
    result = net.run(until=120, stop_when=lambda: download_engine.complete)

The loop takes the earliest of {a datagram's arrival, an engine's timer,
a scheduled kill}, moves the virtual clock there, hands the datagram or
the timer to the engine, and puts what the engine then wants to send on
its links.  Ties are broken by the order things were scheduled, so the
same seed gives the same run, datagram for datagram.

``trace`` records what each host sent and received, and when: the tests
check properties (for instance "no NACK names a chunk its seeder has not
sent") against what really went over the wire, not against what an
engine believes.  Loss, duplication, delay and rate are netem's: this
module only schedules what the link decides.
"""

from __future__ import annotations

import heapq
import math
import zlib
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import netem


DEFAULT_UNTIL_S = 3600.0      # virtual seconds a run may last
DEFAULT_MAX_EVENTS = 2_000_000  # bound on arrivals + timers handled
# An engine whose timer stays due after handle_timer would spin the loop
# at one instant; timers get this many firings at one instant before the
# run stops with a clear error instead of burning the whole event budget.
# (A seeder on an unlimited link fires once per 64-chunk burst: a 200 MB
# song sent at one instant is ~2,300.)
MAX_SAME_INSTANT_TIMERS = 10_000
# The timer heap is rebuilt when it holds this many entries per host
# (most of them stale): memory stays O(hosts), and the rebuild's O(hosts)
# is paid once per that many pushes.
STALE_TIMERS_FACTOR = 4

# What the trace records: a host SENT a datagram; its link DROPPED it (or
# delivered it and RECEIVED is logged on arrival); it arrived where no host
# lives or the host was dead (LOST); a host was KILLED.
SENT, DROPPED, RECEIVED, LOST, KILLED = ("sent", "dropped", "received",
                                         "lost", "killed")


class TraceEntry(NamedTuple):
    """One thing that happened on the simulated wire."""

    time: float
    kind: str            # SENT, DROPPED, RECEIVED, LOST, KILLED
    src: tuple           # address that sent (KILLED: the host)
    dst: tuple | None    # address it was sent to
    data: bytes


class SimError(RuntimeError):
    """The simulation cannot go on (an engine's timer never advances)."""


@dataclass
class Host:
    address: tuple
    engine: object
    alive: bool = True
    killed_at: float | None = None
    order: int = 0                 # when it was added: breaks timer ties
    timer: float | None = None     # its deadline as last read (the heap's)


@dataclass
class RunResult:
    """How a ``run`` ended."""

    now: float                 # virtual time at the end
    events: int                # arrivals and timers handled
    reason: str                # "stopped", "idle", "until", "max-events"
    datagrams: int = 0         # datagrams handed to links


@dataclass(order=True)
class _Arrival:
    time: float
    seq: int
    src: tuple = field(compare=False)
    dst: tuple = field(compare=False)
    data: bytes = field(compare=False)


class SimNet:
    """Hosts, links, a virtual clock, a trace."""

    def __init__(self, seed: int = 0,
                 default_link: "netem.LinkSpec | None" = None,
                 keep_trace: bool = True):
        self.seed = seed
        self.default_link = default_link if default_link is not None \
            else netem.LinkSpec()
        self.keep_trace = keep_trace
        self.now = 0.0
        self.hosts: dict[tuple, Host] = {}
        self.trace: list[TraceEntry] = []
        self._specs: dict[tuple, object] = {}
        self._links: dict[tuple, object] = {}
        self._queue: list[_Arrival] = []
        self._kills: list[tuple[float, int, tuple]] = []
        # (deadline, host.order, host): each host's timer as last read.
        # An entry whose deadline is no longer the host's is stale and
        # skipped when it comes up (lazy invalidation): finding the next
        # timer is O(log hosts), not a scan of every host per event.
        self._timers: list[tuple[float, int, Host]] = []
        self._seq = 0
        self.datagrams = 0

    # -------------------------------------------------------------- set-up
    def add_host(self, address: tuple, engine) -> Host:
        if address in self.hosts:
            raise ValueError(f"two hosts at {address}")
        host = Host(address, engine, order=len(self.hosts))
        self.hosts[address] = host
        self.refresh(address)
        return host

    def refresh(self, address: tuple) -> None:
        """Read the timer of ``address``'s engine again.  The loop does it
        after every delivery, timer and flush of that host; a driver that
        calls an engine itself in the middle of a run (from ``stop_when``,
        say) calls this after it.  (Every host is read again when a run
        starts.)"""
        host = self.hosts[address]
        deadline = host.engine.get_timer() if host.alive else None
        if deadline != host.timer:
            host.timer = deadline
            if deadline is not None:
                heapq.heappush(self._timers, (deadline, host.order, host))
                if len(self._timers) > STALE_TIMERS_FACTOR * (
                        len(self.hosts) + 16):
                    self._rebuild_timers()

    def _rebuild_timers(self) -> None:
        """The heap again from every live host's timer: engines that push
        their deadline back again and again (an idle timeout) leave stale
        entries far ahead that would otherwise pile up."""
        self._timers = [(host.timer, host.order, host)
                        for host in self.hosts.values()
                        if host.alive and host.timer is not None]
        heapq.heapify(self._timers)

    def set_link(self, src: tuple, dst: tuple, spec) -> None:
        """The one-way link from ``src`` to ``dst`` (before it is used)."""
        if (src, dst) in self._links:
            raise ValueError(f"link {src} -> {dst} already carried traffic")
        self._specs[(src, dst)] = spec

    def kill(self, address: tuple, at: float) -> None:
        """``address``'s host dies at virtual time ``at``: it receives,
        sends and wakes no more (datagrams already on the wire still
        arrive where they were going)."""
        if address not in self.hosts:
            raise ValueError(f"no host at {address}")
        self._seq += 1
        heapq.heappush(self._kills, (at, self._seq, address))

    def link(self, src: tuple, dst: tuple):
        """The ``netem.Link`` from ``src`` to ``dst``, made on first use
        with its own RNG: seeded from the net's seed and the two
        addresses, so adding a host does not change another link's
        losses."""
        key = (src, dst)
        link = self._links.get(key)
        if link is None:
            spec = self._specs.get(key, self.default_link)
            link = netem.Link(spec, self._link_seed(src, dst))
            self._links[key] = link
        return link

    def _link_seed(self, src: tuple, dst: tuple) -> int:
        return zlib.crc32(f"{self.seed}|{src}|{dst}".encode()) ^ \
            (self.seed * 0x9E3779B1 & 0xFFFFFFFF)

    # ---------------------------------------------------------------- run
    def run(self, until: float = DEFAULT_UNTIL_S,
            max_events: int = DEFAULT_MAX_EVENTS,
            stop_when: Callable[[], bool] | None = None) -> RunResult:
        """Run until ``stop_when()`` is true, nothing is left to happen,
        virtual time would pass ``until`` or ``max_events`` were handled."""
        self._timers = []
        for host in list(self.hosts.values()):
            host.timer = None  # the engine may have been changed or called
            self._flush(host)
        events = 0
        timers_now = 0  # timers fired at the current instant
        while True:
            if stop_when is not None and stop_when():
                return self._result(events, "stopped")
            if events >= max_events:
                return self._result(events, "max-events")
            timer, timer_host = self._next_timer()
            arrival = self._queue[0].time if self._queue else math.inf
            kill = self._kills[0][0] if self._kills else math.inf
            t = min(timer, arrival, kill)
            if t == math.inf:
                return self._result(events, "idle")
            if t > until:
                self.now = until
                return self._result(events, "until")
            if t > self.now:
                self.now, timers_now = t, 0
            if kill == t:
                self._do_kill(heapq.heappop(self._kills)[2])
                continue
            events += 1
            if arrival <= timer:
                self._deliver(heapq.heappop(self._queue))
            else:
                timers_now += 1
                if timers_now > MAX_SAME_INSTANT_TIMERS:
                    raise SimError(f"the engine at {timer_host.address} "
                                   f"keeps its timer due at {self.now:.6f}")
                timer_host.engine.handle_timer(self.now)
                self._flush(timer_host)

    def _result(self, events: int, reason: str) -> RunResult:
        return RunResult(self.now, events, reason, self.datagrams)

    def _next_timer(self):
        """The earliest timer and its host (ties: the host added first),
        stale heap entries dropped on the way."""
        timers = self._timers
        while timers:
            deadline, _order, host = timers[0]
            if host.alive and host.timer == deadline:
                return deadline, host
            heapq.heappop(timers)
        return math.inf, None

    def _do_kill(self, address: tuple) -> None:
        host = self.hosts[address]
        if host.alive:
            host.alive = False
            host.killed_at = self.now
            host.timer = None
            self._record(KILLED, address, None, b"")

    def _deliver(self, item: _Arrival) -> None:
        host = self.hosts.get(item.dst)
        if host is None or not host.alive:
            self._record(LOST, item.src, item.dst, item.data)
            return
        self._record(RECEIVED, item.src, item.dst, item.data)
        host.engine.receive_datagram(item.data, item.src, self.now)
        self._flush(host)

    def _flush(self, host: Host) -> None:
        """Put what ``host`` wants to send now on its links, and read its
        timer again (what it just did may have moved it)."""
        if not host.alive:
            return
        self._send_all(host)
        self.refresh(host.address)

    def _send_all(self, host: Host) -> None:
        for data, dst in host.engine.datagrams_to_send(self.now):
            self.datagrams += 1
            self._record(SENT, host.address, dst, data)
            arrivals = self.link(host.address, dst).send(len(data),
                                                         self.now)
            if not arrivals:
                self._record(DROPPED, host.address, dst, data)
            for when in arrivals:
                self._seq += 1
                heapq.heappush(self._queue, _Arrival(
                    max(when, self.now), self._seq, host.address, dst,
                    data))

    def _record(self, kind: str, src, dst, data: bytes) -> None:
        if self.keep_trace:
            self.trace.append(TraceEntry(self.now, kind, src, dst, data))

    # -------------------------------------------------------------- trace
    def sent_by(self, address: tuple) -> list[TraceEntry]:
        return [e for e in self.trace
                if e.kind == SENT and e.src == address]

    def received_by(self, address: tuple) -> list[TraceEntry]:
        return [e for e in self.trace
                if e.kind == RECEIVED and e.dst == address]


# ------------------------------------------------------ what seeders share
class BytesSource:
    """Songs held in memory, for ``SeederEngine`` (its ``ChunkSource`` and
    its catalog): ``info``, ``read``, ``search``, ``piece_hashes`` and
    ``len``."""

    def __init__(self):
        self._files: dict[bytes, tuple] = {}
        self._hashes: dict[bytes, bytes] = {}

    def add(self, name: str, data: bytes, duration_ms: int = 0,
            with_pieces: bool = False):
        """Share ``data`` as ``name``; its ``protocol.FileInfo``.  With
        ``with_pieces`` the song publishes its piece list and is named by
        it (as ``seeder.py`` does), else by its SHA-256 (``legacy``)."""
        import hashlib
        import pieces
        import protocol as p
        if with_pieces:
            sha, hashes = pieces.hash_bytes(data)
            file_id = pieces.file_id_from(hashes)
        else:
            sha, hashes = hashlib.sha256(data).digest(), None
            file_id = p.file_id_of(sha)
        info = p.FileInfo(file_id, len(data), p.chunk_count(len(data)),
                          p.CHUNK_SIZE, duration_ms, sha, name)
        self._files[info.file_id] = (info, data)
        if hashes is not None:
            self._hashes[info.file_id] = hashes
        return info

    def piece_hashes(self, file_id: bytes) -> bytes | None:
        return self._hashes.get(file_id)

    def info(self, file_id: bytes):
        entry = self._files.get(file_id)
        return entry[0] if entry else None

    def read(self, file_id: bytes, index: int) -> bytes:
        entry = self._files.get(file_id)
        if entry is None:
            raise OSError(f"no file {file_id.hex()}")
        info, data = entry
        start = index * info.chunk_size
        if not 0 <= start < max(info.size, 1):
            raise OSError(f"no chunk {index}")
        return data[start:start + info.chunk_size]

    def search(self, query: str) -> list:
        query = query.lower()
        return [info for info, _ in self._files.values()
                if query in info.name.lower()]

    def __len__(self) -> int:
        return len(self._files)


# ------------------------------------------------------- a whole download
LEECHER_ADDRESS = ("127.0.0.200", 40000)
SEEDER_PORT = 9000
# Links here lose PINGs and PONGs alike (up to 30 % each way, so a try
# fails with p = 1 - 0.7 * 0.7 = 0.51): 12 tries leave 0.51^12 = 3e-4 of
# seeders unseen, where 5 left 3.5 % (seen as "no seeder alive" in the
# property tests, before the download engine even starts).
PING_TRIES = 12
PING_WAIT_S = 0.5    # between PING rounds
SECRET = b"simnet token secret"  # tokens only need to be unguessable
                                 # by other hosts, and there are none


def seeder_address(k: int) -> tuple:
    """Where seeder ``k`` (0-based) lives: 127.0.0.k+1, as in a class."""
    return (f"127.0.0.{k + 1}", SEEDER_PORT)


def add_seeders(net: SimNet, source: BytesSource, count: int, link_spec,
                seed: int, order=None) -> list[tuple]:
    """``count`` real ``SeederEngine``s sharing ``source``, each with its
    own emulated link (``link_spec``, like ``seeder.py --rate --loss
    --delay``) seeded ``seed + k``; their addresses."""
    import protocol as p
    from seed_engine import SeederEngine
    addresses = []
    for k in range(count):
        engine = SeederEngine(source, SECRET, seed + k, link=link_spec,
                              order=p.Order.SEQUENTIAL if order is None
                              else order, name=f"sim-{k + 1}")
        addresses.append(net.add_host(seeder_address(k), engine).address)
    return addresses


class Pinger:
    """The leecher's PING round before a download, as an engine: PING
    every seeder (again every ``PING_WAIT_S`` until it answers, at most
    ``PING_TRIES`` times) and learn its token and round trip from the
    PONG, as the terminal leecher does before it downloads."""

    def __init__(self, addresses, seed: int):
        import random
        from download_engine import Peer
        self.peers = {addr: Peer(addr) for addr in addresses}
        self.rng = random.Random(seed)
        self._nonces: dict[int, tuple] = {}  # nonce -> (addr, sent at)
        self._outbox: list = []
        self._tries = 0
        self._next: float | None = None

    def start(self, now: float) -> None:
        self._next = now

    @property
    def finished(self) -> bool:
        return self._next is None or all(
            peer.alive for peer in self.peers.values())

    def receive_datagram(self, data, addr, now: float) -> None:
        import protocol as p
        try:
            msg = p.decode(data).message
        except p.ProtocolError:
            return
        sent = self._nonces.get(getattr(msg, "nonce", None))
        if isinstance(msg, p.Pong) and sent and sent[0] == addr:
            peer = self.peers[addr]
            if not peer.alive:
                peer.rtt = max(now - sent[1], 0.0)
                peer.learn(msg)

    def datagrams_to_send(self, now: float) -> list:
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> float | None:
        return None if self.finished else self._next

    def handle_timer(self, now: float) -> None:
        import protocol as p
        from download_engine import PING_PADDING
        if self._tries >= PING_TRIES:
            self._next = None
            return
        self._tries += 1
        self._next = now + PING_WAIT_S
        for addr, peer in self.peers.items():
            if not peer.alive:
                nonce = self.rng.getrandbits(32)
                self._nonces[nonce] = (addr, now)
                self._outbox.append(
                    (p.encode(p.Ping(nonce, PING_PADDING)), addr))


def download(net: SimNet, info, seeders: list[tuple], options=None,
             leecher: tuple = LEECHER_ADDRESS, until: float = 3600.0,
             max_events: int = DEFAULT_MAX_EVENTS):
    """PING ``seeders``, then download ``info`` with a real
    ``DownloadEngine`` at ``leecher``; the engine once it is complete (or
    the run hit a limit: check ``engine.complete``).  ``until`` is
    virtual time from now."""
    from download_engine import DownloadEngine, Options
    options = options or Options(seed=net.seed)
    deadline = net.now + until
    pinger = Pinger(seeders, net.seed)
    pinger.start(net.now)
    host = net.hosts.get(leecher) or net.add_host(leecher, pinger)
    host.engine = pinger
    net.run(until=deadline, max_events=max_events,
            stop_when=lambda: pinger.finished)
    engine = DownloadEngine(info, list(pinger.peers.values()), net.now,
                            options)
    engine.start(net.now)
    host.engine = engine
    net.run(until=deadline, max_events=max_events,
            stop_when=lambda: engine.complete)
    return engine


# ------------------------------------------------------ how fast it runs
MAX_SIZE_MB = 200.0  # a simulated song is held in memory, twice


def assemble(engine, size: int) -> bytes:
    """The song from the chunks the engine took in (``take_fresh``)."""
    out = bytearray(size)
    chunk_size = engine.info.chunk_size
    for index, data in engine.take_fresh():
        out[index * chunk_size:index * chunk_size + len(data)] = data
    return bytes(out)


def measure(size_mb: float, seeders: int, loss: float, delay_ms: float,
            rate_kbps: float, seed: int) -> str:
    """One simulated download of random bytes; what it took, in virtual
    and in real time."""
    import random
    import time
    import netem
    data = random.Random(seed).randbytes(int(size_mb * 1e6))
    started = time.perf_counter()
    net = SimNet(seed=seed, keep_trace=False)
    source = BytesSource()
    info = source.add("simulated.mp3", data)
    link = netem.LinkSpec(loss=loss, delay_s=delay_ms / 1000,
                          rate_Bps=rate_kbps * 1000 / 8)
    addresses = add_seeders(net, source, seeders, link, seed)
    engine = download(net, info, addresses)
    wall = time.perf_counter() - started
    exact = engine.complete and assemble(engine, len(data)) == data
    stats = engine.stats(net.now)
    lost = sum(net.hosts[a].engine.counters.link.dropped for a in addresses)
    return (f"{size_mb:g} MB from {seeders} seeder(s), loss {loss:.0%}, "
            f"delay {delay_ms:g} ms, rate {rate_kbps or 'unlimited'} "
            f"kbit/s: {net.datagrams} datagrams, {lost} chunks lost, "
            f"{stats['nack_entries']} NACK entries, "
            f"{stats['chunks_retransmitted']} retransmitted; "
            f"virtual {net.now:.3f} s, real {wall:.3f} s; "
            f"byte-exact {'yes' if exact else 'NO'}")


def main(argv=None) -> int:
    import cli
    parser = cli.Parser(prog="simnet.py", description="Time one simulated "
                        "download of random bytes (real engines, virtual "
                        "time).")
    parser.add_argument("--size-mb", type=cli.positive, default=5.0)
    parser.add_argument("--seeders", type=cli.at_least_one, default=3)
    parser.add_argument("--loss", type=cli.probability, default=0.05)
    parser.add_argument("--delay", type=cli.non_negative, default=20.0,
                        metavar="MS")
    parser.add_argument("--rate", type=cli.non_negative, default=0.0,
                        metavar="KBPS")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    def body() -> int:
        if args.size_mb > MAX_SIZE_MB or args.seeders > 200:
            raise cli.UsageError(f"at most {MAX_SIZE_MB:g} MB and 200 "
                                 f"seeders")
        print(measure(args.size_mb, args.seeders, args.loss, args.delay,
                      args.rate, args.seed))
        return 0
    return cli.run_main("simnet", body)


if __name__ == "__main__":
    import sys
    sys.exit(main())
