"""The terminal leecher's sharing: what it serves while and after it
downloads (``leecher.Download`` drives the engines, this module holds
the parts that are about sharing).

- ``Sharing``: the options (``--no-share``, ``--seed-for``,
  ``--upload-rate``); ``add_arguments`` and ``from_args`` for the CLI,
  with ``--pick`` and ``--bind``;
- ``SongReader``: the chunks served, read from the leecher's own file
  (the ``.part`` while downloading, the final file once it is renamed);
- ``Switch``: the window's share switch, set from any thread and applied
  by the download loop;
- ``stats``: the JSON's sharing keys (``per_peer``, ``sources``,
  ``served_chunks``, ``served_to``, ``pick``, ``shared``).
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import time
from dataclasses import dataclass

import cli
import piece_picker
import pieces
from download_engine import Options
from i18n import N_, _, text as tr

BITS_PER_BYTE = 8
MAX_PORT = 65535


@dataclass
class Sharing:
    """Whether the leecher serves what it has verified (``share``), how
    long it keeps serving once the song is complete (``seed_for``
    seconds), and its upload rate (``upload_kbps`` kbit/s, 0 unlimited)."""

    share: bool = True
    seed_for: float = 0.0
    upload_kbps: float = 0.0

    @property
    def upload_Bps(self) -> float:
        return self.upload_kbps * 1000 / BITS_PER_BYTE


# ------------------------------------------------------------ the CLI
def add_bind_argument(parser) -> None:
    parser.add_argument("--bind", metavar="IP[:PORT]",
                        help=_("the local address to send from and listen "
                               "on (default: any, a free port)"))


def add_arguments(get) -> None:
    """``get``'s sharing and piece-picking options."""
    get.add_argument("--no-share", action="store_true",
                     help=_("do not serve other listeners what this "
                            "download has verified"))
    get.add_argument("--seed-for", type=cli.non_negative, default=0.0,
                     metavar="SECONDS",
                     help=_("keep serving this many seconds after the "
                            "download (default 0; Ctrl-C stops)"))
    get.add_argument("--upload-rate", type=cli.non_negative, default=0.0,
                     metavar="KBPS",
                     help=_("upload rate to other listeners, kbit/s "
                            "(default 0: unlimited)"))
    get.add_argument("--pick", choices=piece_picker.POLICIES,
                     default=Options.pick,  # rarest: as BitTorrent
                     help=_("which pieces first: sequential, rarest "
                            "(default) or deadline (near the play point)"))


def from_args(args) -> Sharing:
    return Sharing(share=not args.no_share, seed_for=args.seed_for,
                   upload_kbps=args.upload_rate)


def bind_address(text: str | None) -> tuple[str, int]:
    """``--bind IP[:PORT]`` as a socket address (port 0: any free one);
    a bad one is a ``cli.UsageError`` of one line."""
    if text is None:
        return ("0.0.0.0", 0)
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host, port = text.strip(), "0"
    try:
        ip = cli.ip_address(host)
    except argparse.ArgumentTypeError:  # the whole value, as typed
        raise cannot_bind(text, tr(N_("not an IPv4 address: {text}"),
                                   text=repr(text.strip()))) from None
    if not (port.isascii() and port.isdigit()) or int(port) > MAX_PORT:
        raise cannot_bind(text, tr(N_("port must be 0-65535: {text}"),
                                   text=repr(port)))
    return ip, int(port)


def cannot_bind(text: str, reason) -> cli.UsageError:
    if isinstance(reason, OSError):
        reason = reason.strerror or reason
    return cli.UsageError(tr(N_("cannot bind {address}: {reason}"),
                             address=cli.printable(text), reason=reason))


SIOCGIFADDR = 0x8915  # Linux ioctl: an interface's IPv4 address
IFNAMSIZ = 16


def local_ips() -> frozenset[str]:
    """The IPv4 addresses of this machine's interfaces (all of 127/8 is
    this machine's too, see ``is_local``)."""
    import fcntl
    import struct
    found = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:IFNAMSIZ - 1])
            try:
                answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, request)
            except OSError:
                continue  # no IPv4 address on it
            found.add(socket.inet_ntoa(answer[20:24]))
    return frozenset(found)


class NotFromSelf:
    """A socket bound to every address (0.0.0.0, port ``port``) is
    reached at any address of this machine: a datagram from one of them
    with our port is our own (no other socket here can hold the port),
    say a PING we sent ourselves because a PEERS listed us.  ``keep``
    drops those, so the leecher never becomes its own peer."""

    def __init__(self, port: int, ips: frozenset[str] | None = None):
        self.port = port
        self.ips = local_ips() if ips is None else ips

    def is_self(self, addr) -> bool:
        return addr[1] == self.port and (addr[0].startswith("127.")
                                         or addr[0] in self.ips)

    def keep(self, batch: list) -> list:
        port = self.port
        if all(addr[1] != port for _, addr in batch):
            return batch  # the usual case: one pass, nothing copied
        return [(data, addr) for data, addr in batch
                if not self.is_self(addr)]


# ---------------------------------------------------------- the file
class SongReader:
    """The chunks a sharing leecher serves, from its own file: through
    the ``.part``'s descriptor (``leecher.PartFile``) while it is open —
    it stays the same file when ``finish()`` renames it — and from the
    final file once it is closed.  ``read(index)`` raises ``OSError``
    when it cannot (the engine answers with an error, never crashes)."""

    def __init__(self, part):
        self.part = part
        self.info = part.info
        self._final_fd: int | None = None

    def read(self, index: int) -> bytes:
        if not 0 <= index < self.info.chunks:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        length = self.part.chunk_length(index)
        data = os.pread(self._fd(), length, index * self.info.chunk_size)
        if len(data) != length:  # truncated under us
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return data

    def _fd(self) -> int:
        if self.part.fd is not None:
            return self.part.fd
        if self._final_fd is None:
            self._final_fd = os.open(self.part.final_path, os.O_RDONLY)
        return self._final_fd

    def close(self) -> None:
        if self._final_fd is not None:
            os.close(self._final_fd)
            self._final_fd = None


class Switch:
    """The share switch: ``set`` from any thread (the window's), ``due``
    read by the download loop, which applies it and calls ``applied``.
    Only the wanted state is written across threads, so two quick flips
    never lose the last one."""

    def __init__(self, on: bool):
        self.wanted = on
        self.current = on

    def set(self, on: bool) -> None:
        self.wanted = bool(on)

    def due(self) -> bool | None:
        """The state to apply now, or None when nothing changed."""
        wanted = self.wanted
        return None if wanted == self.current else wanted

    def applied(self, on: bool) -> None:
        self.current = on


# ------------------------------------------------------ the engine
SECRET_BYTES = 16  # the token key of what we serve (as a seeder's)
LOOPBACK = "127.0.0.1"
EVENTS_S = 0.2  # seeding: PeerJoined and Served told this promptly


class Sharer:
    """A download's sharing side (``leecher.Download`` has one): the
    engine its loop drives (``drive``), the file it serves from, the
    window's switch (``apply``), its own datagrams dropped (``keep``)."""

    def __init__(self, sharing: Sharing | None, part):
        self.sharing = sharing
        self.switch = Switch(sharing is not None and sharing.share)
        self.reader = SongReader(part)
        self.peer = None  # the PeerEngine, when there is one
        self.not_self: NotFromSelf | None = None

    def drive(self, engine, sock_name, seed: int | None):
        """A ``PeerEngine`` around the download ``engine`` for a song with
        a piece list, else the download engine itself.  ``sock_name``:
        where we listen."""
        if self.sharing is None or pieces.legacy(engine.info):
            return engine
        host, port = sock_name
        if host == "0.0.0.0":  # reached at every address of this machine
            self.not_self = NotFromSelf(port)
            host = LOOPBACK  # as the others on this machine see us
        self.peer = peer_engine(engine, self.reader, self.sharing,
                                (host, port), seed)
        return self.peer

    @property
    def on(self) -> bool:
        """Serving now: a peer engine whose switch is on."""
        return self.peer is not None and self.switch.current

    @property
    def seed_for(self) -> float:
        return self.sharing.seed_for if self.sharing else 0.0

    def apply(self, now: float) -> None:
        """The switch's last state, to the engine, once."""
        wanted = self.switch.due()
        if wanted is not None and self.peer is not None:
            self.peer.set_sharing(wanted, now)
            self.switch.applied(wanted)

    def serve(self, turn, pump, seconds: float | None, stopped) -> None:
        """The seed-for loop, after the download: the driver's select
        loop ``turn``s for ``seconds`` (default ``seed_for``), until
        ``stopped()`` or the switch is off; the events ``pump``ed (no
        progress snapshots: nothing moves) every ``EVENTS_S``."""
        if not self.on:
            return
        seconds = self.seed_for if seconds is None else seconds
        now = time.monotonic()
        until, pumped = now + seconds, now
        try:
            while self.on and now < until and not stopped():
                now = turn(now, self._drop_runs, until)
                if now - pumped >= EVENTS_S:
                    pumped = now
                    pump(now, snapshot=False)
        finally:
            pump(time.monotonic(), snapshot=False)
            self.close()

    def _drop_runs(self, now: float) -> None:
        self.peer.take_runs()  # late copies of a song saved already

    def keep(self, batch: list) -> list:
        return batch if self.not_self is None else self.not_self.keep(batch)

    def close(self) -> None:
        self.reader.close()


def peer_engine(download, reader: SongReader, sharing: Sharing,
                own_addr, seed: int | None):
    """The ``PeerEngine`` a sharing leecher drives around its
    ``download`` engine: it serves from ``reader`` (from the start the
    pieces a resumed run had verified), never counting ``own_addr``."""
    import netem
    from peer_engine import PeerEngine, SharedSong
    song = SharedSong(reader.info, reader.read)
    if seed is None:
        seed = int.from_bytes(os.urandom(8), "big")
    return PeerEngine(download, song, os.urandom(SECRET_BYTES), seed,
                      share=sharing.share,
                      upload=netem.LinkSpec(rate_Bps=sharing.upload_Bps),
                      own_addr=own_addr)


# --------------------------------------------------------- statistics
def stats(counted: dict, pick: str, shared: bool) -> dict:
    """The sharing keys of the JSON statistics, from the engine's
    ``counted`` stats: ``per_peer`` and ``sources`` (who sent chunks, as
    what), ``served_chunks``/``served_to`` (what this leecher uploaded),
    the ``pick`` policy and whether it ``shared``."""
    return {"per_peer": counted.pop("per_peer"),
            "sources": counted.pop("sources"),
            "served_chunks": counted.pop("served_chunks", 0),
            "served_to": counted.pop("served_to", {}),
            "pick": pick, "shared": shared}
