"""P2P FACOM seeder: shares the MP3 files of a folder over UDP.

One ``select`` loop serves every leecher: it answers PING, SEARCH and
REQUEST, and sends the requested chunks in the requested order, paced by
the leecher's window (credit) and by the classroom network emulation
(``--loss``, ``--dup``, ``--delay``, ``--jitter``, ``--rate``).

    python3 seeder.py -i 127.0.0.1 -p 9000 -m sequential [-d music/]
"""

from __future__ import annotations

import errno
import hashlib
import heapq
import hmac
import os
import random
import select
import socket
import sys
import time
from array import array
from collections import deque
from dataclasses import dataclass, field

import cli
import protocol as p

MAX_SESSIONS = 256
MAX_SESSIONS_PER_ADDRESS = 16
MAX_WINDOW = 4096
SESSION_IDLE_S = 30.0
SEND_BURST = 64  # datagrams per loop turn before looking at the socket again
SESSION_TURN = 16  # datagrams a session sends before the next one's turn
RECV_BURST = 256
READ_AHEAD = 64  # chunks read with one pread when they are sent in a row
SOCKET_BUFFER = 4 * 1024 * 1024
AMPLIFICATION_LIMIT = 3  # RFC 9000 §8: bytes out <= 3x bytes in, unvalidated
MAX_TRACKED_ADDRESSES = 10000  # bounds the guard's memory under a flood
MAX_DELAYED = 20000  # datagrams held by the emulated delay (~29 MB)


# ------------------------------------------------------------------ files
@dataclass
class SharedFile:
    path: str
    info: p.FileInfo
    mtime_ns: int


def _duration_ms(path: str) -> int:
    try:
        import player
        return int(player.mp3_duration(path) * 1000)
    except Exception:  # a file we cannot parse still gets shared
        return 0


class Library:
    """The shared folder: ``.mp3`` files directly inside it, named by id."""

    def __init__(self, folder: str):
        self.folder = os.path.realpath(folder)
        self.by_id: dict[bytes, SharedFile] = {}
        self._by_path: dict[str, SharedFile] = {}
        self._told: set[str] = set()  # notices given while still true

    def scan(self) -> list[str]:
        """Re-read the folder; unchanged files keep their cached hash.
        Returns the notices about its files (empty, no MP3 frame, same
        content) not given by an earlier scan."""
        found: dict[str, SharedFile] = {}
        notices: list[str] = []
        for name in self._mp3_names():
            path = os.path.join(self.folder, name)
            shared = self._load(path, name)
            if shared and self._worth_sharing(shared, notices):
                found[path] = shared
        self._by_path = found
        self.by_id = self._one_per_content(found.values(), notices)
        return self._not_told_yet(notices)

    def _mp3_names(self) -> list[str]:
        try:
            names = sorted(os.listdir(self.folder))
        except OSError:
            names = []
        return [name for name in names if name.lower().endswith(".mp3")
                and self._inside(os.path.join(self.folder, name))]

    def _inside(self, path: str) -> bool:
        """Regular files whose real path stays in the folder."""
        real = os.path.realpath(path)
        return (os.path.dirname(real) == self.folder
                and os.path.isfile(real))

    def _load(self, path: str, name: str) -> SharedFile | None:
        try:
            stat = os.stat(path)
            cached = self._by_path.get(path)
            if cached and cached.mtime_ns == stat.st_mtime_ns \
                    and cached.info.size == stat.st_size:
                return cached
            sha = cli.sha256_file(path)
        except OSError:
            return None
        info = p.FileInfo(p.file_id_of(sha), stat.st_size,
                          p.chunk_count(stat.st_size), p.CHUNK_SIZE,
                          _duration_ms(path), sha, name)
        return SharedFile(path, info, stat.st_mtime_ns)

    @staticmethod
    def _worth_sharing(shared: SharedFile, notices: list[str]) -> bool:
        """False for an empty file (nothing to stream).  A file without
        an MP3 frame is still shared (benchmarks share random bytes), but
        its player will fail: say so."""
        name = shared.info.name
        if not shared.info.size:
            notices.append(f"seeder: {name} is empty: not shared "
                           f"(nothing to stream)")
            return False
        if not shared.info.duration_ms:
            notices.append(f"seeder: {name}: no MP3 frame found (duration "
                           f"unknown), shared anyway")
        return True

    @staticmethod
    def _one_per_content(files, notices: list[str]) -> dict:
        """Files by id; of files with the same content (hence the same
        id) the first name in alphabetical order is shared."""
        by_id: dict[bytes, SharedFile] = {}
        for shared in files:  # in name order
            kept = by_id.setdefault(shared.info.file_id, shared)
            if kept is not shared:
                notices.append(
                    f"seeder: {shared.info.name} has the same content as "
                    f"{kept.info.name}: shared once, as {kept.info.name}")
        return by_id

    def _not_told_yet(self, notices: list[str]) -> list[str]:
        """Each notice once while it holds, not at every rescan; one that
        stopped holding is told again if it comes back."""
        new = [line for line in notices if line not in self._told]
        self._told = set(notices)
        return new

    def search(self, query: str) -> list[p.FileInfo]:
        """Files whose name holds every word of ``query`` (no rescan)."""
        words = query.lower().split()
        return [f.info for f in self.by_id.values()
                if all(w in f.info.name.lower() for w in words)]


# ------------------------------------------------------ network emulation
class LinkEmulator:
    """What a lossy, slow classroom network would do to our datagrams."""

    def __init__(self, loss=0.0, dup=0.0, delay_ms=0.0, jitter_ms=0.0,
                 rate_kbps=0.0, seed=None):
        self.loss, self.dup = loss, dup
        self.delay = delay_ms / 1000
        self.jitter = jitter_ms / 1000
        self.rate_Bps = rate_kbps * 1000 / 8
        self.rng = random.Random(seed)
        self._bucket_time = 0.0  # when the token bucket will be empty
        self._last_due = 0.0  # departure of the latest delayed datagram
        # Nothing to emulate: the sender skips asking, once per datagram.
        self.transparent = not (loss or dup or self.delay or self.jitter
                                or self.rate_Bps)

    def ready_at(self, now: float) -> float:
        """Earliest time the next datagram may leave (rate pacing)."""
        if not self.rate_Bps:
            return now
        burst = 16 * p.MAX_DATAGRAM / self.rate_Bps  # allow small bursts
        return max(now, self._bucket_time - burst)

    def spend(self, nbytes: int, now: float) -> None:
        if self.rate_Bps:
            self._bucket_time = max(self._bucket_time, now - 0.05) \
                + nbytes / self.rate_Bps

    def copies(self) -> int:
        """0 when the datagram is lost, 2 when duplicated, else 1."""
        if self.loss and self.rng.random() < self.loss:
            return 0
        if self.dup and self.rng.random() < self.dup:
            return 2
        return 1

    def departure(self, now: float) -> float:
        """When a datagram sent now arrives at the other end.  Jitter
        varies the delay but keeps the order, as one network path does:
        reordering would look like loss to the leecher."""
        if not (self.delay or self.jitter):
            return now
        due = now + self.delay + self.rng.uniform(0, self.jitter)
        self._last_due = max(self._last_due, due)
        return self._last_due


# ---------------------------------------------------- anti-amplification
class AmplificationGuard:
    """Never let a spoofed source aim our replies at a third party.

    Until an address proves it receives what we send (by echoing the token
    of its PONG), it gets at most ``AMPLIFICATION_LIMIT`` times the bytes
    it sent us (RFC 9000 §8).
    """

    def __init__(self):
        self.credit: dict[tuple, int] = {}
        self.validated: dict[tuple, None] = {}  # insertion-ordered set
        self.refused = 0

    def received(self, addr, nbytes: int) -> None:
        if addr in self.validated:
            return
        if len(self.credit) >= MAX_TRACKED_ADDRESSES:
            self.credit.clear()  # forgetting credit only ever sends less
        self.credit[addr] = self.credit.get(addr, 0) \
            + AMPLIFICATION_LIMIT * nbytes

    def validate(self, addr) -> None:
        if addr not in self.validated:
            if len(self.validated) >= MAX_TRACKED_ADDRESSES:
                self.validated.pop(next(iter(self.validated)))
            self.validated[addr] = None
            self.credit.pop(addr, None)

    def allow(self, addr, nbytes: int) -> bool:
        if addr in self.validated:
            return True
        left = self.credit.get(addr, 0)
        if nbytes > left:
            self.refused += 1
            return False
        self.credit[addr] = left - nbytes
        return True


# --------------------------------------------------------------- sessions
class FirstPass:
    """The chunks still to send for the first time, in sending order: an
    array and a cursor, and a flag per chunk of the file, so a session
    costs a few bytes per chunk whatever arrives."""

    def __init__(self, chunks: list[int], total: int, ranges):
        """``chunks``: the chunks of ``ranges`` in sending order."""
        self.order = array("I", chunks)
        self.next = 0
        self.waiting = bytearray(total)
        for start, end in ranges:
            self.waiting[start:end] = b"\1" * (end - start)

    def __bool__(self) -> bool:
        return self.next < len(self.order)

    def __contains__(self, index: int) -> bool:
        return bool(self.waiting[index])

    def peek(self) -> int:
        return self.order[self.next]

    def pop(self) -> int:
        index = self.order[self.next]
        self.next += 1
        self.waiting[index] = 0
        return index

    def run(self, limit: int) -> int:
        """How many of the next chunks (at most ``limit``) follow each other
        in the file, starting with the next one."""
        order, start = self.order, self.next
        end = min(len(order), start + limit)
        first = order[start]
        length = 1
        while start + length < end and order[start + length] == first + length:
            length += 1
        return length


class ChunkReader:
    """A session's reads of its file: chunks that are sent in file order
    are read READ_AHEAD at a time, one ``pread`` instead of one each."""

    def __init__(self, fd: int, info: p.FileInfo):
        self.fd = fd
        self.info = info
        self.block = memoryview(b"")
        self.first = 0  # the chunk at the start of ``block``

    def chunk(self, index: int, ahead: FirstPass | None = None):
        """Chunk ``index``; on a miss, reads as many chunks as ``ahead``
        (the first pass, when ``index`` is its next chunk) sends in a row.
        Without ``ahead`` (a resend) a miss reads that chunk alone and
        keeps the block that the first pass is going through."""
        size = self.info.chunk_size
        offset = (index - self.first) * size
        if 0 <= offset < len(self.block):
            data = self.block[offset:offset + size]
        elif ahead is None:
            data = os.pread(self.fd, size, index * size)
        else:
            self.block = memoryview(os.pread(
                self.fd, size * ahead.run(READ_AHEAD), index * size))
            self.first = index
            data = self.block[:size]
        if len(data) != min(size, self.info.size - index * size):
            raise OSError("file changed while serving")
        return data


@dataclass
class Session:
    sid: int
    addr: tuple[str, int]
    shared: SharedFile
    fd: int
    queue: "FirstPass"
    reader: ChunkReader
    limit: int
    started: float
    last_heard: float
    resend: deque = field(default_factory=deque)
    resend_queued: bytearray = b""  # a flag per chunk: bounds ``resend``
    resend_round: int = -1
    round_chunks: bytearray = b""  # a flag per chunk asked for this round
    tx_seq: int = 0
    sent: int = 0
    resent: int = 0
    dropped: int = 0
    duplicated: int = 0
    bytes_sent: int = 0
    done_sent: bool = False

    def pending(self) -> bool:
        return bool(self.queue or self.resend)

    def can_send(self) -> bool:
        return self.tx_seq < self.limit and bool(self.resend or self.queue)


@dataclass
class Counters:
    datagrams_in: int = 0
    bad_datagrams: int = 0
    sessions: int = 0
    chunks_sent: int = 0
    chunks_resent: int = 0
    dropped: int = 0
    duplicated: int = 0
    bytes_sent: int = 0
    refused: int = 0


class Seeder:
    def __init__(self, ip: str, port: int, folder: str,
                 order: p.Order = p.Order.SEQUENTIAL,
                 ordered_fraction: float = 0.5, link: LinkEmulator = None,
                 name: str | None = None, log=print, notice=print):
        self.library = Library(folder)
        # The first scan's notices are the caller's to print, after the
        # line that says the seeder started (test harnesses wait for it).
        self.file_notices = self.library.scan()
        self.notice = notice
        self.order = order
        self.ordered_fraction = ordered_fraction
        self.link = link or LinkEmulator()
        self.name = name or f"{ip}:{port}"
        self.log = log
        self.counters = Counters()
        self.sessions: dict[tuple, Session] = {}
        self.delayed: list = []  # heap of (due, n, datagram, addr)
        self._delayed_n = 0
        self._secret = os.urandom(16)
        self.guard = AmplificationGuard()
        self._rr = deque()  # round-robin order of session keys
        self.sock = self._open_socket(ip, port)
        self.address = self.sock.getsockname()

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
            reason = ("address already in use" if exc.errno == errno.EADDRINUSE
                      else exc.strerror or str(exc))
            raise cli.UsageError(f"cannot listen on {ip}:{port}: {reason}")
        sock.setblocking(False)
        return sock

    def close(self) -> None:
        for session in list(self.sessions.values()):
            self._end(session)
        self.sock.close()

    # ------------------------------------------------------------ tokens
    def token_for(self, addr: tuple[str, int]) -> int:
        mac = hmac.new(self._secret, f"{addr[0]}:{addr[1]}".encode(),
                       hashlib.sha256).digest()
        return int.from_bytes(mac[:4], "big") or 1

    # -------------------------------------------------------------- loop
    def serve(self, should_stop=lambda: False, poll_s: float = 0.5) -> None:
        while not should_stop():
            now = time.monotonic()
            timeout = max(0.0, min(poll_s, self._next_wakeup(now) - now))
            readable, _, _ = select.select([self.sock], [], [], timeout)
            if readable:
                self._receive_all()
            now = time.monotonic()
            self._flush_delayed(now)
            self._send_round(now)
            self._expire(now)

    def _next_wakeup(self, now: float) -> float:
        wake = now + 1.0
        if self.delayed:
            wake = min(wake, self.delayed[0][0])
        if len(self.delayed) < MAX_DELAYED and any(
                s.can_send() for s in self.sessions.values()):
            wake = min(wake, self.link.ready_at(now))
        return wake

    def _receive_all(self) -> None:
        for _ in range(RECV_BURST):
            try:
                data, addr = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # e.g. ICMP port unreachable from an earlier send
            self.counters.datagrams_in += 1
            self.guard.received(addr, len(data))
            try:
                datagram = p.decode(data)
            except p.ProtocolError:
                self.counters.bad_datagrams += 1
                continue
            self._handle(datagram, addr, time.monotonic())

    # ---------------------------------------------------------- replies
    def _reply(self, msg, addr, session: int = 0, flags: int = 0) -> None:
        data = p.encode(msg, session, flags)
        if self.guard.allow(addr, len(data)):
            self._on_link(data, addr, time.monotonic())

    def _transmit(self, data: bytes, addr) -> bool:
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            pass  # the leecher went away; its session will expire
        return True

    def _handle(self, datagram: p.Datagram, addr, now: float) -> None:
        msg = datagram.message
        handler = {
            p.Ping: self._on_ping, p.Search: self._on_search,
            p.Request: self._on_request, p.Ack: self._on_ack,
            p.Nack: self._on_nack, p.Cancel: self._on_cancel,
        }.get(type(msg))
        if handler is None:
            self.counters.bad_datagrams += 1  # a seeder-to-leecher message
            return
        handler(msg, datagram.session, addr, now)

    def _on_ping(self, msg: p.Ping, sid, addr, now) -> None:
        pong = p.Pong(msg.nonce, self.token_for(addr), len(self.library.by_id),
                      min(len(self.sessions), 0xFFFF), self.order,
                      round(self.ordered_fraction * 100), self.name[:40])
        self._reply(pong, addr, sid)

    def _on_search(self, msg: p.Search, sid, addr, now) -> None:
        if not self._check_token(msg.token, sid, addr):
            return
        if len(msg.query.encode("utf-8")) > p.MAX_QUERY:
            self._reply(p.Error(p.ErrorCode.BAD_REQUEST,
                                f"search query longer than {p.MAX_QUERY} "
                                f"bytes"), addr, sid)
            return
        self._rescan()
        pages = p.search_result_pages(self.library.search(msg.query))
        for n, page in enumerate(pages):
            flags = p.FLAG_LAST if n == len(pages) - 1 else 0
            self._reply(page, addr, sid, flags)

    def _on_request(self, msg: p.Request, sid, addr, now) -> None:
        key = (addr, sid)
        if key in self.sessions:
            self._on_ack(p.Ack(msg.window), sid, addr, now)
            return  # a repeated REQUEST never restarts a session
        if not self._check_token(msg.token, sid, addr):
            return
        error = self._check_request(msg, addr)
        if error:
            self.counters.refused += 1
            self._reply(p.Error(*error), addr, sid)
            return
        self._start_session(msg, sid, addr, now)

    def _rescan(self) -> None:
        """Re-read the shared folder: files may come and go while we run."""
        for line in self.library.scan():
            self.notice(line)

    def _check_token(self, token: int, sid, addr) -> bool:
        """A right token proves the address receives our replies."""
        if token == self.token_for(addr):
            self.guard.validate(addr)
            return True
        self.counters.refused += 1
        self._reply(p.Retry(self.token_for(addr)), addr, sid)
        return False

    def _check_request(self, msg: p.Request, addr):
        shared = self.library.by_id.get(msg.file_id)
        if shared is None:
            self._rescan()
            shared = self.library.by_id.get(msg.file_id)
        if shared is None:
            return p.ErrorCode.NOT_FOUND, "no such file here"
        if any(end > shared.info.chunks for _, end in msg.ranges):
            return p.ErrorCode.BAD_REQUEST, "chunk range beyond the file"
        if not msg.ranges or not msg.window:
            return p.ErrorCode.BAD_REQUEST, "empty request"
        if len(self.sessions) >= MAX_SESSIONS or sum(
                1 for a, _ in self.sessions if a == addr) \
                >= MAX_SESSIONS_PER_ADDRESS:
            return p.ErrorCode.BUSY, "too many sessions"
        return None

    def _start_session(self, msg: p.Request, sid, addr, now) -> None:
        shared = self.library.by_id[msg.file_id]
        try:
            fd = os.open(shared.path, os.O_RDONLY)
        except OSError:
            self._reply(p.Error(p.ErrorCode.FILE_GONE, "file vanished"),
                        addr, sid)
            return
        order = self.order if msg.order == p.Order.DEFAULT else msg.order
        fraction = (self.ordered_fraction if msg.order == p.Order.DEFAULT
                    else msg.ordered_percent / 100)
        chunks = p.send_order(msg.ranges, order, msg.seed, fraction)
        total = shared.info.chunks
        session = Session(sid, addr, shared, fd,
                          FirstPass(chunks, total, msg.ranges),
                          ChunkReader(fd, shared.info),
                          min(msg.window, MAX_WINDOW), now, now,
                          resend_queued=bytearray(total),
                          round_chunks=bytearray(total))
        self.sessions[(addr, sid)] = session
        self._rr.append((addr, sid))
        self.counters.sessions += 1
        self.log(f"session {sid:08x} from {cli.format_address(addr)}: "
                 f"{shared.info.name}, {len(chunks)} chunks, "
                 f"{p.order_name(order)}")

    def _session(self, sid, addr, now) -> Session | None:
        session = self.sessions.get((addr, sid))
        if session:
            session.last_heard = now
        return session

    def _on_ack(self, msg: p.Ack, sid, addr, now) -> None:
        session = self._session(sid, addr, now)
        if session:
            session.limit = max(session.limit,
                                min(msg.limit, session.tx_seq + MAX_WINDOW))

    def _on_nack(self, msg: p.Nack, sid, addr, now) -> None:
        session = self._session(sid, addr, now)
        if session is None:
            self._reply(p.Error(p.ErrorCode.UNKNOWN_SESSION, "no such session"),
                        addr, sid)
            return
        self._on_ack(msg, sid, addr, now)
        if msg.round < session.resend_round:
            return  # a late copy of an old NACK: never resend for it
        if msg.round > session.resend_round:
            session.resend_round = msg.round
            session.round_chunks = bytearray(len(session.round_chunks))
        total = session.shared.info.chunks
        for start, end in msg.ranges:
            for index in range(start, min(end, total)):
                if index in session.queue:
                    continue  # its first copy is still on the way
                if not (session.round_chunks[index]
                        or session.resend_queued[index]):
                    session.round_chunks[index] = 1
                    session.resend_queued[index] = 1
                    session.resend.append(index)
        session.done_sent = False

    def _on_cancel(self, msg, sid, addr, now) -> None:
        session = self.sessions.get((addr, sid))
        if session:
            # The leecher also cancels once it has the whole file: with
            # every chunk sent and none to resend, the session went well.
            self._end(session, "cancelled" if session.pending() else "done")

    def _end(self, session: Session, why: str = "") -> None:
        self.sessions.pop((session.addr, session.sid), None)
        try:
            os.close(session.fd)
        except OSError:
            pass
        if why:
            self.log(f"session {session.sid:08x} {why}: {session.sent} sent, "
                     f"{session.resent} resent")

    def _expire(self, now: float) -> None:
        for session in list(self.sessions.values()):
            if now - session.last_heard > SESSION_IDLE_S:
                self._end(session, "timed out")

    # ------------------------------------------------------------ sending
    def _send_round(self, now: float) -> None:
        """Send up to SEND_BURST chunks, taking sessions in turn."""
        budget = SEND_BURST
        idle = 0
        while budget and self._rr and idle < len(self._rr):
            key = self._rr[0]
            self._rr.rotate(-1)
            session = self.sessions.get(key)
            if session is None:
                self._rr.remove(key)
                continue
            if not session.can_send():
                self._maybe_done(session)
                idle += 1
                continue
            sent, blocked = self._send_turn(
                session, min(budget, SESSION_TURN), now)
            if blocked:
                return  # link or socket buffer full: wait for the next turn
            budget -= sent
            idle = 0

    def _maybe_done(self, session: Session) -> None:
        if session.pending() or session.done_sent:
            return
        done = p.Done(session.sent, session.resent, session.dropped,
                      session.duplicated, session.bytes_sent)
        if self.link.copies():  # DONE can be lost like any datagram
            self._reply(done, session.addr, session.sid)
        session.done_sent = True

    def _send_turn(self, session: Session, most: int,
                   now: float) -> tuple[int, bool]:
        """Up to ``most`` chunks of one session: (sent, blocked).

        This loop runs once per chunk, the hottest code of the seeder, so
        it works with locals and adds the counters up once per turn."""
        link, queue, resend = self.link, session.queue, session.resend
        file_id = session.shared.info.file_id
        send_ms = int((now - session.started) * 1000) & 0xFFFFFFFF
        sent = resent = nbytes = 0
        blocked = False
        while sent < most and session.tx_seq < session.limit:
            again = bool(resend)
            if not (again or queue):
                break
            if not link.transparent and (link.ready_at(now) > now or len(
                    self.delayed) >= MAX_DELAYED):
                blocked = True
                break
            index = resend[0] if again else queue.peek()
            try:
                data = session.reader.chunk(index, None if again else queue)
            except OSError:
                self._unreadable(session)
                break
            datagram = p.encode_chunk(
                file_id, index, session.tx_seq, send_ms, data, session.sid,
                p.FLAG_RETRANSMIT if again else 0)
            if not self._emit(datagram, session, now):
                blocked = True  # socket buffer full
                break
            if again:
                session.resend_queued[resend.popleft()] = 0
            else:
                queue.pop()
            session.tx_seq += 1
            sent += 1
            resent += again
            nbytes += len(datagram)
        self._count_sent(session, sent, resent, nbytes)
        return sent, blocked

    def _count_sent(self, session: Session, sent: int, resent: int,
                    nbytes: int) -> None:
        session.sent += sent
        session.resent += resent
        session.bytes_sent += nbytes
        counters = self.counters
        counters.chunks_sent += sent
        counters.chunks_resent += resent
        counters.bytes_sent += nbytes

    def _unreadable(self, session: Session) -> None:
        self._reply(p.Error(p.ErrorCode.FILE_GONE, "file unreadable"),
                    session.addr, session.sid)
        self._end(session, "failed: file unreadable")

    def _emit(self, data: bytes, session: Session, now: float) -> bool:
        """Put one chunk datagram on the (emulated) link."""
        if self.link.transparent:
            return self._transmit(data, session.addr)
        copies = self.link.copies()
        self.link.spend(len(data), now)
        if copies == 0:
            session.dropped += 1
            self.counters.dropped += 1
            return True
        if copies == 2:
            session.duplicated += 1
            self.counters.duplicated += 1
            self._on_link(data, session.addr, now)  # the extra copy
        return self._on_link(data, session.addr, now)

    def _on_link(self, data: bytes, addr, now: float) -> bool:
        """Send now, or later if the emulated link delays it: replies and
        DONE too, so that they never overtake the chunks."""
        due = self.link.departure(now)
        if due > now:
            self._delay(due, data, addr)
            return True
        return self._transmit(data, addr)

    def _delay(self, due: float, data: bytes, addr) -> None:
        self._delayed_n += 1
        heapq.heappush(self.delayed, (due, self._delayed_n, data, addr))

    def _flush_delayed(self, now: float) -> None:
        while self.delayed and self.delayed[0][0] <= now:
            _, _, data, addr = self.delayed[0]
            if not self._transmit(data, addr):
                return
            heapq.heappop(self.delayed)

    def summary(self) -> str:
        c = self.counters
        return (f"seeder {self.name} stopped: {c.sessions} sessions, "
                f"{c.chunks_sent} chunks sent ({c.chunks_resent} resent, "
                f"{c.dropped} dropped and {c.duplicated} duplicated by "
                f"emulation), {c.bytes_sent / 1e6:.1f} MB, "
                f"{c.bad_datagrams} bad datagrams")


# -------------------------------------------------------------------- CLI
def add_arguments(parser) -> None:
    """Options shared by ``seeder.py`` and ``p2p_facom.py -t seeder``."""
    parser.add_argument("-i", "--ip", type=cli.ip_address, default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1)")
    parser.add_argument("-p", "--port", type=cli.port_number,
                        default=cli.DEFAULT_PORT, help="UDP port (9000)")
    parser.add_argument("-m", "--method", choices=list(p.ORDER_NAMES),
                        default="sequential",
                        help="sending order when a request names none")
    parser.add_argument("-d", "--dir", default=cli.MUSIC_DIR,
                        help="folder of .mp3 files to share (music/)")
    parser.add_argument("--ordered-fraction", type=cli.non_negative,
                        default=0.5, help="semi-random: share sent in order")
    parser.add_argument("--rate", type=cli.non_negative, default=0,
                        metavar="KBPS", help="emulated link rate, kbit/s")
    parser.add_argument("--loss", type=cli.probability, default=0.0,
                        metavar="P", help="emulated loss (0.1 or 10%%)")
    parser.add_argument("--dup", type=cli.probability, default=0.0,
                        metavar="P", help="emulated duplication")
    parser.add_argument("--delay", type=cli.non_negative, default=0,
                        metavar="MS", help="emulated one-way delay")
    parser.add_argument("--jitter", type=cli.non_negative, default=0,
                        metavar="MS", help="emulated extra random delay")
    parser.add_argument("--rng-seed", type=int, default=None, metavar="N",
                        help="make loss and orders repeatable")
    parser.add_argument("--name", default=None, help="name shown to leechers")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no line per session")


def run(args) -> int:
    """Run a seeder until Ctrl-C (or SIGTERM) from parsed arguments."""
    if args.ordered_fraction > 1:
        raise cli.UsageError("--ordered-fraction must be between 0 and 1")
    check_folder(args.dir)
    link = LinkEmulator(args.loss, args.dup, args.delay, args.jitter,
                        args.rate, args.rng_seed)
    # -q silences the line per session, not what is wrong with the files.
    seeder = Seeder(args.ip, args.port, args.dir, p.ORDER_NAMES[args.method],
                    args.ordered_fraction, link, args.name,
                    (lambda line: None) if args.quiet else _say, _say)
    files = len(seeder.library.by_id)
    _say(f"seeder {seeder.name}: sharing {files} file(s) from {args.dir}, "
         f"{args.method} order" + ("" if files else
                                    " (no .mp3 files yet: add some)"))
    for line in seeder.file_notices:
        _say(line)
    _stop_on_sigterm()
    try:
        seeder.serve()
    except KeyboardInterrupt:
        pass
    finally:
        _say(seeder.summary())
        seeder.close()
    return cli.EXIT_OK


def _say(line: str) -> None:
    print(line, flush=True)  # flushed: a pipe reader sees it at once


def check_folder(folder: str) -> None:
    """UsageError unless ``folder`` is a folder we can share."""
    if not os.path.exists(folder):
        raise cli.UsageError(f"shared folder not found: {folder}")
    if not os.path.isdir(folder):
        raise cli.UsageError(f"not a folder: {folder} (-d names the folder "
                             f"whose .mp3 files are shared)")


def _stop_on_sigterm() -> None:
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)


def main(argv=None) -> int:
    parser = cli.Parser(prog="seeder.py", description=(
        "Share the MP3 files of a folder with P2P FACOM leechers over UDP."))
    add_arguments(parser)
    args = parser.parse_args(argv)
    return cli.run_main("seeder", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
