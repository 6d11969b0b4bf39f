"""P2P FACOM seeder: shares the MP3 files of a folder over UDP.

The driver of ``seed_engine.SeederEngine``: it owns the socket (one
``select`` loop), the clock, the shared folder (``Library``: scan,
SHA-256, reading chunks) and the command line.  Every decision — tokens,
sessions, sending order, window, pacing, NACKs, DONE, the emulated link
(``--loss``, ``--dup``, ``--delay``, ``--jitter``, ``--rate``) — is the
engine's.

    python3 seeder.py -i 127.0.0.1 -p 9000 -m sequential [-d music/]

``--pcap FILE`` writes every datagram sent and received to a classic pcap
file (``pcap.py``), the emulated link's drops marked.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import stat
import sys
import time
import unicodedata
from collections import OrderedDict, deque
from dataclasses import dataclass

import cli
import i18n
from i18n import N_, _, text as tr
import netem
import offload as udp_offload
import pcap
import pieces
import protocol as p
from seed_engine import ChunkRun, SearchIndex, SeederEngine, SessionEnded, \
    SessionStarted

# Datagrams per loop turn: then ACKs are read (the window moves); a whole
# window at once would leave the pipe empty meanwhile.  Two full UDP GSO
# sends (45 CHUNKs each, seed_engine.SESSION_TURN).
SEND_BURST = 90
RECV_BURST = 256
READ_AHEAD = 64  # chunks read with one pread when they are read in a row
SOCKET_BUFFER = 4 * 1024 * 1024
MAX_OPEN_FILES = 64  # files kept open for reading (least recently used out)
RESCAN_S = 5.0  # a folder whose mtime stays is rescanned this often, at most
MIN_RESCAN_S = 0.25  # never more often, however fast the folder changes
FRESH_CHECKS = 64  # files of a SEARCH answer checked (stat) for a change
SECRET_BYTES = 32


# ------------------------------------------------------------------ files
@dataclass
class SharedFile:
    path: str  # as the file system spells it (maybe not UTF-8)
    info: p.FileInfo  # info.name: the display name, always valid UTF-8
    mtime_ns: int
    dev: int
    ino: int
    piece_hashes: bytes = b""  # pieces.py: the list the id is made from

    def identity(self) -> tuple:
        return (self.mtime_ns, self.info.size, self.dev, self.ino)


def identity(st: os.stat_result) -> tuple:
    """What must not change between the scan and a read of a file."""
    return (st.st_mtime_ns, st.st_size, st.st_dev, st.st_ino)


def hash_file(path: str) -> tuple[bytes, bytes]:
    """``(sha256, piece hashes)`` of a file, in one read of it."""
    hasher = pieces.PieceHasher(p.CHUNK_SIZE)
    with open(path, "rb") as handle:
        # Whole pieces per read: 12 x 22.4 KB, 269 KB.
        for block in iter(lambda: handle.read(12 * hasher.piece_bytes), b""):
            hasher.update(block)
    return hasher.digest()


def _duration_ms(path: str) -> int:
    try:
        import player
        return int(player.mp3_duration(path) * 1000)
    except Exception:  # a file we cannot parse still gets shared
        return 0


def display_name(name: str) -> str:
    """A file name as valid UTF-8: bytes that are not UTF-8 (kept by
    ``os.listdir`` as surrogate escapes) become U+FFFD."""
    return os.fsencode(name).decode("utf-8", "replace")


def printable(text: str) -> str:
    """``text`` for one line of a terminal: control characters (escape
    codes, newlines) written as ``\\x1b``, ``\\n`` …"""
    return "".join(c.encode("unicode_escape").decode("ascii")
                   if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")
                   else c for c in text)


class OpenFile:
    """One shared file open for reading.  Opened without following a
    symlink and checked against the scan (device, inode, size, mtime), so
    a file swapped or edited after the scan is never served.  Chunks read
    in file order are read ``READ_AHEAD`` at a time, one ``pread`` instead
    of one each."""

    def __init__(self, shared: SharedFile):
        self.info = shared.info
        self.fd = os.open(shared.path, os.O_RDONLY | os.O_NOFOLLOW
                          | getattr(os, "O_CLOEXEC", 0))
        st = os.fstat(self.fd)
        if not stat.S_ISREG(st.st_mode) or identity(st) != shared.identity():
            os.close(self.fd)
            raise OSError(errno.ESTALE, "file changed since the scan")
        self.block = memoryview(b"")
        self.first = 0  # the chunk at the start of ``block``
        self.last = -2  # the chunk read last

    def chunk(self, index: int):
        size = self.info.chunk_size
        offset = (index - self.first) * size
        if 0 <= offset < len(self.block):
            data = self.block[offset:offset + size]
        elif index == self.last + 1:  # in file order: read ahead
            self.block = memoryview(os.pread(self.fd, size * READ_AHEAD,
                                             index * size))
            self.first = index
            data = self.block[:size]
        else:  # out of order (a resend, a shuffled order): this one only
            data = os.pread(self.fd, size, index * size)
        self.last = index
        if len(data) != min(size, self.info.size - index * size):
            raise OSError(errno.ESTALE, "file changed while serving")
        return data

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


class Library:
    """The shared folder: ``.mp3`` regular files directly inside it, named
    by id.  The engine's ``ChunkSource`` and catalog: ``info``, ``read``,
    ``search``, ``len``.  Rescanned when asked (SEARCH, REQUEST) and the
    folder's mtime or a file asked for changed, or the last scan is
    ``RESCAN_S`` old; never per datagram."""

    def __init__(self, folder: str, notice=print, clock=time.monotonic):
        self.folder = os.path.realpath(folder)
        self.notice = notice
        self.clock = clock
        self.by_id: dict[bytes, SharedFile] = {}
        self.index = SearchIndex()
        self._by_path: dict[str, SharedFile] = {}
        self._told: set[str] = set()  # notices given while still true
        self._open: OrderedDict[bytes, OpenFile] = OrderedDict()
        self._folder_mtime = None
        self._scanned_at = float("-inf")

    # ------------------------------------------------- ChunkSource, catalog
    def info(self, file_id: bytes) -> p.FileInfo | None:
        """A file changed since the scan is scanned again (it has a new
        id): its old id is never served with new content."""
        shared = self.by_id.get(file_id)
        self.refresh([shared] if shared else [])
        shared = self.by_id.get(file_id)
        return shared.info if shared else None

    def read(self, file_id: bytes, index: int):
        return self.open_file(file_id).chunk(index)

    def piece_hashes(self, file_id: bytes) -> bytes | None:
        shared = self.by_id.get(file_id)
        return shared.piece_hashes if shared else None

    def open_file(self, file_id: bytes) -> OpenFile:
        """The shared file open for reading (``fd`` for a driver that reads
        chunks itself); ``OSError`` when it is no longer shared, or changed
        since the scan."""
        opened = self._open.get(file_id)
        if opened is None:
            shared = self.by_id.get(file_id)
            if shared is None:
                raise OSError(errno.ENOENT, "no longer shared")
            opened = self._open[file_id] = OpenFile(shared)
            if len(self._open) > MAX_OPEN_FILES:
                self._open.popitem(last=False)[1].close()
        else:
            self._open.move_to_end(file_id)
        return opened

    def search(self, query: str) -> list[p.FileInfo]:
        """Matches from the index; the first ``FRESH_CHECKS`` are looked
        at (one ``stat`` each) so that a song edited in place is announced
        with its new id."""
        found = self.index.search(query)
        self.refresh(self.by_id[info.file_id]
                     for info in found[:FRESH_CHECKS])
        return self.index.search(query)

    def __len__(self) -> int:
        return len(self.by_id)

    def close(self) -> None:
        for opened in self._open.values():
            opened.close()
        self._open.clear()

    # ------------------------------------------------------------- scans
    def refresh(self, suspects=()) -> None:
        """Rescan when the folder changed (its mtime: one ``stat``), when
        one of the ``suspects`` (shared files) changed, or when the last
        scan is ``RESCAN_S`` old; never twice within ``MIN_RESCAN_S``."""
        since = self.clock() - self._scanned_at
        if since < MIN_RESCAN_S:
            return
        if since >= RESCAN_S or self._folder_mtime != self._mtime() or any(
                map(self._changed, suspects)):
            for line in self.scan():
                self.notice(line)

    def _mtime(self) -> int | None:
        try:
            return os.stat(self.folder).st_mtime_ns
        except OSError:
            return None

    @staticmethod
    def _changed(shared: SharedFile) -> bool:
        try:
            st = os.stat(shared.path, follow_symlinks=False)
        except OSError:
            return True
        return identity(st) != shared.identity()

    def scan(self) -> list[str]:
        """Re-read the folder; unchanged files keep their cached hash.
        Returns the notices about its files (empty, no MP3 frame, same
        content, name not UTF-8) not given by an earlier scan."""
        self._scanned_at = self.clock()
        self._folder_mtime = self._mtime()
        found: dict[str, SharedFile] = {}
        notices: list[str] = []
        for entry in self._mp3_entries():
            shared = self._load(entry)
            if shared and self._worth_sharing(shared, entry.name, notices):
                found[entry.path] = shared
        self._by_path = found
        self.by_id = self._one_per_content(found.values(), notices)
        self.index = SearchIndex(s.info for s in self.by_id.values())
        self._close_changed()
        return self._not_told_yet(notices)

    def _mp3_entries(self) -> list:
        """Regular files (not symlinks) ending in .mp3, in name order."""
        try:
            with os.scandir(self.folder) as entries:
                found = [e for e in entries
                         if e.name.lower().endswith(".mp3")
                         and e.is_file(follow_symlinks=False)]
        except OSError:
            return []
        return sorted(found, key=lambda e: e.name)

    def _load(self, entry) -> SharedFile | None:
        try:
            st = entry.stat(follow_symlinks=False)
            cached = self._by_path.get(entry.path)
            if cached and cached.identity() == identity(st):
                return cached
            sha, hashes = hash_file(entry.path)
        except OSError:
            return None
        info = p.FileInfo(pieces.file_id_from(hashes), st.st_size,
                          p.chunk_count(st.st_size), p.CHUNK_SIZE,
                          _duration_ms(entry.path), sha,
                          display_name(entry.name))
        return SharedFile(entry.path, info, st.st_mtime_ns, st.st_dev,
                          st.st_ino, hashes)

    @staticmethod
    def _worth_sharing(shared: SharedFile, raw_name: str,
                       notices: list[str]) -> bool:
        """False for an empty file (nothing to stream).  A file without
        an MP3 frame is still shared (benchmarks share random bytes), but
        its player will fail: say so."""
        name = printable(shared.info.name)
        if shared.info.name != raw_name:
            notices.append(tr(N_("seeder: {name}: the file's name is not "
                                 "UTF-8: shared under this name"), name=name))
        if not shared.info.size:
            notices.append(tr(N_("seeder: {name} is empty: not shared "
                                 "(nothing to stream)"), name=name))
            return False
        if not shared.info.duration_ms:
            notices.append(tr(N_("seeder: {name}: no MP3 frame found "
                                 "(duration unknown), shared anyway"),
                              name=name))
        return True

    @staticmethod
    def _one_per_content(files, notices: list[str]) -> dict:
        """Files by id; of files with the same content (hence the same
        id) the first name in alphabetical order is shared."""
        by_id: dict[bytes, SharedFile] = {}
        for shared in files:  # in name order
            kept = by_id.setdefault(shared.info.file_id, shared)
            if kept is not shared:
                first = printable(kept.info.name)
                notices.append(tr(
                    N_("seeder: {name} has the same content as {first}: "
                       "shared once, as {first}"),
                    name=printable(shared.info.name), first=first))
        return by_id

    def _close_changed(self) -> None:
        """Files no longer shared, or changed, are read afresh (reopened
        and checked again) the next time."""
        for file_id in list(self._open):
            shared = self.by_id.get(file_id)
            opened = self._open[file_id]
            if shared is None or shared.info is not opened.info:
                self._open.pop(file_id).close()

    def _not_told_yet(self, notices: list[str]) -> list[str]:
        """Each notice once while it holds, not at every rescan; one that
        stopped holding is told again if it comes back."""
        new = [line for line in notices if line not in self._told]
        self._told = set(notices)
        return new


# ---------------------------------------------------------------- capture
class CapturedSender:
    """A sender (``offload.make_sender``) that also writes what it sent
    to a ``pcap.Capture``: each datagram of a GSO run, and only those that
    went (a full socket buffer takes part of a run or a batch).  Put in
    place only with ``--pcap``: without it the send path is untouched."""

    def __init__(self, sender, capture: pcap.Capture, clock=time.monotonic):
        self._sender = sender
        self.capture = capture
        self.clock = clock

    def __getattr__(self, name):  # offload, syscalls, fallback_reason …
        return getattr(self._sender, name)

    def send_run(self, buf, seg_size: int, addr) -> int:
        taken = self._sender.send_run(buf, seg_size, addr)
        if taken:
            self.capture.sent_run(buf, seg_size, taken, addr, self.clock())
        return taken

    def send_batch(self, batch: deque) -> bool:
        offered = list(batch)
        try:
            return self._sender.send_batch(batch)
        finally:  # the front of what was offered went
            now, sent = self.clock(), self.capture.sent
            for data, addr in offered[:len(offered) - len(batch)]:
                sent(data, addr, now)


def open_capture(path: str, sock: socket.socket) -> pcap.Capture:
    """``pcap.open_capture`` for the bound socket; a file that cannot be
    written is a usage error (one line)."""
    try:
        return pcap.open_capture(path, sock.getsockname())
    except pcap.CaptureError as exc:
        raise cli.UsageError(str(exc)) from None


# ----------------------------------------------------------------- driver
class Seeder:
    """The socket, the clock and the loop around one ``SeederEngine``."""

    def __init__(self, ip: str, port: int, folder: str,
                 order: p.Order = p.Order.SEQUENTIAL,
                 ordered_fraction: float = 0.5,
                 link: netem.LinkSpec = netem.LinkSpec(),
                 rng_seed: int | None = None, name: str | None = None,
                 log=print, notice=print, offload: bool = True,
                 pcap_path: str | None = None,
                 upload_slots: int | None = None):
        self.library = Library(folder, notice)
        # The first scan's notices are the caller's to print, after the
        # line that says the seeder started (test harnesses wait for it).
        self.file_notices = self.library.scan()
        self.log = log
        self.sock = self._open_socket(ip, port)
        self.address = self.sock.getsockname()
        self.capture = None  # --pcap: every datagram in and out
        if pcap_path is not None:
            try:
                self.capture = open_capture(pcap_path, self.sock)
            except cli.UsageError:
                self.sock.close()
                raise
        self.name = printable(display_name(name or f"{ip}:{port}"))
        if rng_seed is None:
            rng_seed = int.from_bytes(os.urandom(8), "big")
        self.engine = SeederEngine(
            self.library, os.urandom(SECRET_BYTES), rng_seed, order=order,
            ordered_fraction=ordered_fraction, link=link, name=self.name,
            upload_slots=upload_slots or 0)
        # offload=False (--no-offload): one datagram per system call.
        self.sender = udp_offload.make_sender(self.sock, offload)
        if self.capture:
            self.sender = CapturedSender(self.sender, self.capture)
            self.engine.keep_drops()
        self.chunk_sender = udp_offload.ChunkSender(self.sender)
        self._unsent: deque = deque()  # the socket buffer was full

    @staticmethod
    def _open_socket(ip: str, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
            except OSError:
                pass
        try:
            sock.bind((ip, port))
        except OSError as exc:
            sock.close()
            reason = (N_("address already in use")
                      if exc.errno == errno.EADDRINUSE
                      else exc.strerror or str(exc))
            raise cli.UsageError(tr(N_("cannot listen on {ip}:{port}: "
                                       "{reason}"), ip=ip, port=port,
                                    reason=_(reason)))
        sock.setblocking(False)
        return sock

    def close(self) -> str:
        """Stop; the capture's one-line summary ("" without --pcap)."""
        self.engine.close()
        self.library.close()
        self.sock.close()
        return self.capture.close() if self.capture else ""

    # -------------------------------------------------------------- loop
    def serve(self, should_stop=lambda: False, poll_s: float = 0.5) -> None:
        engine = self.engine
        while not should_stop():
            now = time.monotonic()
            timer = engine.get_timer()
            timeout = poll_s
            if timer is not None and not self._unsent:
                timeout = max(0.0, min(poll_s, timer - now))
            writers = [self.sock] if self._unsent else []
            readable, _, _ = select.select([self.sock], writers, [], timeout)
            if readable:
                self._receive_all()
            now = time.monotonic()
            if timer is not None and now >= timer:
                engine.handle_timer(now)
            self._tell_events()  # before the replies that may follow them
            self._send(now)
            self._tell_events()

    def _receive_all(self) -> None:
        engine, sock, capture = self.engine, self.sock, self.capture
        now = time.monotonic()
        for _turn in range(RECV_BURST):
            try:
                data, addr = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # e.g. ICMP port unreachable from an earlier send
            if capture:
                capture.received(data, addr, now)
            engine.receive_datagram(data, addr, now)

    def _send(self, now: float) -> None:
        """What was left unsent, then one burst from the engine; what
        the full socket buffer refuses waits for the next turn."""
        if self._flush(self._unsent, now):
            batch = deque(self.engine.chunks_to_send(now, SEND_BURST))
            if self.capture:
                self._capture_drops()
            if not self._flush(batch, now):
                self._unsent = batch

    def _flush(self, batch: deque, now: float) -> bool:
        """Send from the front of ``batch`` (``(bytes, addr)`` and
        ``ChunkRun``s, in order); False if the socket buffer filled."""
        while batch:
            if type(batch[0]) is ChunkRun:
                if not self._send_run(batch, now):
                    return False
                continue
            datagrams = deque()
            while batch and type(batch[0]) is not ChunkRun:
                datagrams.append(batch.popleft())
            if not self.sender.send_batch(datagrams):
                batch.extendleft(reversed(datagrams))
                return False
        return True

    def _send_run(self, batch: deque, now: float) -> bool:
        """The run at the front of ``batch``, built in place from the file
        and sent (in UDP GSO runs unless --no-offload); False when only
        part of it went (the rest stays at the front)."""
        run = batch[0]
        try:
            opened = self.library.open_file(run.file_id)
            sent = self.chunk_sender.send(
                opened.fd, run.file_id, run.info.size, run.sid, run.addr,
                run.descriptors())
        except OSError:
            self._drop_session(batch, run.session, now)
            return True
        if sent < len(run):
            batch[0] = run.tail(sent)
            return False
        batch.popleft()
        return True

    def _capture_drops(self) -> None:
        """Write what the emulated link dropped this turn, marked: before
        the burst's sent datagrams, though their ``tx_seq``s interleave.
        Dropped chunks are built here, only for the capture."""
        now, write = time.monotonic(), self.capture.sent
        for item in self.engine.drops():
            if type(item) is not ChunkRun:
                write(item[0], item[1], now, dropped=True)
                continue
            try:
                for index, tx_seq, send_ms, flags in item.descriptors():
                    data = self.library.read(item.file_id, index)
                    write(p.encode_chunk(item.file_id, index, tx_seq,
                                         send_ms, data, item.sid, flags),
                          item.addr, now, dropped=True)
            except OSError:
                continue  # the file went: the send path ends the session

    def _drop_session(self, batch: deque, session, now: float) -> None:
        """A run's file could not be read: the engine ends the session;
        its runs still waiting here are not sent."""
        for run in [item for item in batch if type(item) is ChunkRun
                    and item.session is session]:
            batch.remove(run)
            self.engine.chunk_unreadable(run, 0, now)

    def _tell_events(self) -> None:
        for event in self.engine.events():
            if isinstance(event, SessionStarted):
                self.log(tr(N_("session {sid} from {peer}: {name}, {chunks} "
                               "chunks, {order}"), sid=f"{event.sid:08x}",
                            peer=cli.format_address(event.peer),
                            name=printable(event.name), chunks=event.chunks,
                            order=i18n.order_name(event.order)))
            elif isinstance(event, SessionEnded):
                self.log(tr(N_("session {sid} {why}: {sent} sent, {resent} "
                               "resent"), sid=f"{event.sid:08x}",
                            why=session_end(event.why), sent=event.sent,
                            resent=event.resent))

    def summary(self) -> str:
        c = self.engine.counters
        link = c.link
        return (tr(N_("seeder {name} stopped: {sessions} sessions, {sent} "
                      "chunks sent ({resent} resent, {dropped} dropped and "
                      "{duplicated} duplicated by emulation), {mb} MB, "
                      "{bad} bad datagrams"), name=self.name,
                   sessions=c.sessions, sent=link.sent, resent=link.resent,
                   dropped=link.dropped, duplicated=link.duplicated,
                   mb=i18n.decimal(link.bytes_sent / 1e6, 1),
                   bad=c.bad_datagrams)
                + (tr(N_(", {n} requests told to ask again later (every "
                         "upload slot taken)"), n=c.slots_full)
                   if self.engine.upload_slots else "")
                + (f"; {fallback}" if (fallback := getattr(
                    self.sender, "fallback_reason", "")) else ""))


# Why a session ended (seed_engine's words) in the language in use; a
# "failed: ..." carries the system's own words and stays as it is.
SESSION_ENDS = {"done": N_("done"), "cancelled": N_("cancelled"),
                "timed out": N_("timed out"), "evicted": N_("evicted")}


def session_end(why: str) -> str:
    return _(SESSION_ENDS[why]) if why in SESSION_ENDS else why


# -------------------------------------------------------------------- CLI
def add_arguments(parser) -> None:
    """Options shared by ``seeder.py`` and ``p2p_facom.py -t seeder``."""
    parser.add_argument("-i", "--ip", type=cli.ip_address, default="127.0.0.1",
                        help=_("address to listen on (default 127.0.0.1)"))
    parser.add_argument("-p", "--port", type=cli.port_number,
                        default=cli.DEFAULT_PORT, help=_("UDP port (9000)"))
    parser.add_argument("-m", "--order", "--method", dest="order",
                        choices=list(p.ORDER_NAMES), default="sequential",
                        help=_("sending order when a request names none"))
    parser.add_argument("-d", "--dir", default=cli.MUSIC_DIR,
                        help=_("folder of .mp3 files to share (music/)"))
    parser.add_argument("--ordered-fraction", type=cli.non_negative,
                        default=0.5,
                        help=_("semi-random: share sent in order"))
    parser.add_argument("--rate", type=cli.non_negative, default=0,
                        metavar="KBPS", help=_("emulated link rate, kbit/s"))
    parser.add_argument("--loss", type=cli.probability, default=0.0,
                        metavar="P", help=_("emulated loss (0.1 or 10%%)"))
    parser.add_argument("--dup", type=cli.probability, default=0.0,
                        metavar="P", help=_("emulated duplication"))
    parser.add_argument("--delay", type=cli.non_negative, default=0,
                        metavar="MS", help=_("emulated one-way delay"))
    parser.add_argument("--jitter", type=cli.non_negative, default=0,
                        metavar="MS", help=_("emulated extra random delay"))
    parser.add_argument("--slots", type=cli.at_least_one, default=None,
                        metavar="N",
                        help=_("send to at most N leechers at once; the "
                               "others are told to ask again (a swarm "
                               "then shares sooner)"))
    parser.add_argument("--rng-seed", type=int, default=None, metavar="N",
                        help=_("make loss and orders repeatable"))
    parser.add_argument("--name", default=None,
                        help=_("name shown to leechers"))
    parser.add_argument("-q", "--quiet", action="store_true",
                        help=_("no line per session"))
    parser.add_argument("--no-offload", dest="offload", action="store_false",
                        help=_("one datagram per system call, no UDP GSO"))
    parser.add_argument("--pcap", default=None, metavar="FILE",
                        help=_("write every datagram sent and received to "
                               "this pcap file (Wireshark: see wireshark/)"))


def run(args) -> int:
    """Run a seeder until Ctrl-C (or SIGTERM) from parsed arguments."""
    if args.ordered_fraction > 1:
        raise cli.UsageError(_("--ordered-fraction must be between 0 "
                               "and 1"))
    check_folder(args.dir)
    link = netem.LinkSpec(loss=args.loss, dup=args.dup,
                          delay_s=args.delay / 1000,
                          jitter_s=args.jitter / 1000,
                          rate_Bps=args.rate * 1000 / 8)
    # -q silences the line per session, not what is wrong with the files.
    seeder = Seeder(args.ip, args.port, args.dir, p.ORDER_NAMES[args.order],
                    args.ordered_fraction, link, args.rng_seed, args.name,
                    (lambda line: None) if args.quiet else _say, _say,
                    offload=args.offload, pcap_path=args.pcap,
                    upload_slots=args.slots)
    files = len(seeder.library)
    _say(tr(N_("seeder {name}: sharing {files} file(s) from {folder}, "
               "{order} order"), name=seeder.name, files=files,
            folder=printable(args.dir), order=i18n.order_name(args.order))
         + ("" if files else _(" (no .mp3 files yet: add some)")))
    for line in seeder.file_notices:
        _say(line)
    _stop_on_sigterm()
    try:
        seeder.serve()
    except KeyboardInterrupt:
        pass
    finally:
        _say(seeder.summary())
        capture_line = seeder.close()
        if capture_line:
            _say(capture_line)
    return cli.EXIT_OK


def _say(line: str) -> None:
    print(line, flush=True)  # flushed: a pipe reader sees it at once


def check_folder(folder: str) -> None:
    """UsageError unless ``folder`` is a folder we can share."""
    if not os.path.exists(folder):
        raise cli.UsageError(tr(N_("shared folder not found: {folder}"),
                                folder=folder))
    if not os.path.isdir(folder):
        raise cli.UsageError(tr(N_("not a folder: {folder} (-d names the "
                                   "folder whose .mp3 files are shared)"),
                                folder=folder))


def _stop_on_sigterm() -> None:
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)


def is_start_line(line: str) -> bool:
    """The line a seeder prints once it listens ("seeder NAME: sharing
    ..."), in any language; its errors start "seeder: "."""
    return line.startswith("seeder ")


def main(argv=None) -> int:
    cli.setup_language(argv)  # --lang, else LANG (before the help texts)
    parser = cli.Parser(prog="seeder.py", description=_(
        "Share the MP3 files of a folder with P2P FACOM leechers over UDP."))
    add_arguments(parser)
    cli.add_lang_option(parser)
    args = parser.parse_args(argv)
    return cli.run_main("seeder", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
