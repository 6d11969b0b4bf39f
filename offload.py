"""UDP segmentation offload for the drivers: many datagrams per syscall.

Linux can take a run of datagrams to one address in one ``sendmsg`` (UDP
GSO: a ``SOL_UDP``/``UDP_SEGMENT`` cmsg names the segment size, the
kernel cuts the buffer) and hand a receiver that asked for it (UDP GRO,
the ``UDP_GRO`` socket option) a run of datagrams of one flow in one read
(the ``UDP_GRO`` cmsg names the segment size to cut it by).  On the wire
and at a receiver without GRO they are ordinary datagrams.  Stdlib only.

Senders (``make_sender``) share one interface:

- ``send_run(buf, seg_size, addr) -> int``: ``buf`` holds datagrams of
  ``seg_size`` bytes back to back, the last one maybe shorter, at most
  ``max_segments(seg_size)`` of them; returns how many were taken (all,
  or fewer when the socket buffer is full: the caller sends the rest
  later).  A datagram the kernel refuses for another reason (nobody
  there) counts as taken, like a loss on the way.
- ``send_batch(batch) -> bool``: a ``deque`` of ``(bytes, addr)`` (what
  an engine's ``datagrams_to_send`` gives) sent from the front, popping
  what went; consecutive datagrams to one address of one size (the last
  maybe shorter) go as one run.  False when the socket buffer filled:
  what is left stays in ``batch``.

``ChunkSender`` builds runs of CHUNK datagrams without a bytes object per
chunk (headers with ``pack_into``, the file read with ``preadv`` straight
into a reusable buffer, the CRC per chunk) and sends them with a sender.

Receivers (``make_receiver``) share ``receive() -> list[(view, addr)]``:
what the socket holds now (non-blocking socket), at most about
``max_datagrams``, one memoryview per datagram into a fixed arena that the
next call reuses.

Support is detected: no GSO/GRO on the platform, an ``setsockopt`` or
``getsockopt`` refused, or an ``OSError`` such as EIO (no checksum
offload on the route), EINVAL, ENOPROTOOPT, EOPNOTSUPP or EMSGSIZE on a
GSO send, and the objects fall back for good to one datagram per
``sendto`` / ``recvfrom_into``, with the same results.  ``offload=False``
(the drivers' ``--no-offload``) forces that fallback.

In the drivers: the seeder's ``_flush(batch)`` is ``sender.send_batch``
(runs form from what the engine gives, so ask it for 45 or more at a
time); the leecher's ``Endpoint.receive_raw`` keeps its ``select`` and
its emulated loss and takes ``receiver.receive()`` instead of its own
slot loop.  Buffers: a 4 MB ``SO_RCVBUF`` (8 MB as Linux counts it) held
3,640 datagrams of 1436 bytes one by one and 5,760 coalesced, so a leecher
keeps the credit it grants all its seeders below about 3,000 chunks and
no burst can overrun it.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys
from collections import deque
from itertools import islice

import protocol as p

# linux/udp.h; Python names them only from 3.12.
SOL_UDP = getattr(socket, "SOL_UDP", 17)
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)
UDP_GRO = getattr(socket, "UDP_GRO", 104)

# IPv4's 16-bit total length less the IP (20) and UDP (8) headers: the
# most one GSO send may carry (45 segments of 1436 bytes).
MAX_GSO_BYTES = 65535 - 20 - 8
# UDP_MAX_SEGMENTS: 64 from Linux 4.18, 128 in later kernels; the lower
# one holds on both.
MAX_GSO_SEGMENTS = 64
# The largest coalesced read: one IP packet's payload at most.
GRO_READ = 65535
# GRO coalesces at most 64 segments (UDP_GRO_CNT_MAX), GSO sends at most
# 128: a read cut into more is not the kernel's doing, and is dropped.
MAX_READ_SEGMENTS = 128
SEGMENT_OPTION = struct.Struct("=H")  # UDP_SEGMENT cmsg: u16, host order
GRO_OPTION = struct.Struct("=i")  # UDP_GRO cmsg: int, host order
GRO_CMSG_SPACE = socket.CMSG_SPACE(GRO_OPTION.size)
# A GSO send failing with one of these means "not here" (EIO: the route's
# device cannot checksum-offload); we stop trying and send one by one.
UNSUPPORTED = frozenset({errno.EIO, errno.EINVAL, errno.ENOPROTOOPT,
                         errno.EOPNOTSUPP, errno.EMSGSIZE})
RECEIVE_BATCH = 1024  # datagrams per receive() call, as the leecher's
SLOT = p.MAX_DATAGRAM + 1  # a longer datagram fills its slot: rejected


def max_segments(seg_size: int) -> int:
    """How many datagrams of ``seg_size`` bytes one GSO send may carry."""
    if seg_size <= 0:
        raise ValueError("segment size must be positive")
    return max(1, min(MAX_GSO_SEGMENTS, MAX_GSO_BYTES // seg_size))


def segment_count(nbytes: int, seg_size: int) -> int:
    return -(-nbytes // seg_size) if nbytes else 0


def gso_supported(sock: socket.socket) -> bool:
    """The platform has UDP GSO and ``sock`` accepts the option."""
    if not sys.platform.startswith("linux") or not hasattr(sock, "sendmsg"):
        return False
    try:
        sock.getsockopt(SOL_UDP, UDP_SEGMENT)
    except OSError:
        return False
    return True


# ----------------------------------------------------------------- senders
class PlainSender:
    """One ``sendto`` per datagram: the fallback, and ``--no-offload``."""

    offload = False

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.syscalls = 0  # sends tried, for the benchmarks and the tests

    def send_run(self, buf, seg_size: int, addr) -> int:
        view = memoryview(buf)
        sendto = self.sock.sendto
        taken = 0
        for start in range(0, len(view), seg_size):
            self.syscalls += 1
            try:
                sendto(view[start:start + seg_size], addr)
            except (BlockingIOError, InterruptedError):
                return taken
            except OSError:
                pass  # nobody there: lost on the way, timers ask again
            taken += 1
        return taken

    def send_batch(self, batch: deque) -> bool:
        sendto = self.sock.sendto
        while batch:
            data, addr = batch[0]
            self.syscalls += 1
            try:
                sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                pass
            batch.popleft()
        return True


class GsoSender:
    """Runs of datagrams in one ``sendmsg`` each (UDP GSO); falls back to
    ``PlainSender`` for good the first time the kernel says it cannot."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._plain = PlainSender(sock)
        self.offload = True
        self.gso_sends = 0
        self.fallback_reason = ""  # why offload stopped, when it did

    @property
    def syscalls(self) -> int:
        return self.gso_sends + self._plain.syscalls

    def send_run(self, buf, seg_size: int, addr) -> int:
        size = len(buf)
        count = segment_count(size, seg_size)
        if not self.offload or count <= 1:
            return self._plain.send_run(buf, seg_size, addr)
        if count > max_segments(seg_size):
            raise ValueError(f"{count} segments of {seg_size} bytes do not "
                             f"fit one GSO send")
        try:
            self.sock.sendmsg([buf], [(SOL_UDP, UDP_SEGMENT,
                                       SEGMENT_OPTION.pack(seg_size))],
                              0, addr)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            if exc.errno not in UNSUPPORTED:
                return count  # nobody there: the run is lost on the way
            self._fall_back(exc)
            return self._plain.send_run(buf, seg_size, addr)
        finally:
            self.gso_sends += 1
        return count

    def send_batch(self, batch: deque) -> bool:
        while batch:
            if not self.offload:
                return self._plain.send_batch(batch)
            run, seg_size, addr = _next_run(batch)
            data = run[0] if len(run) == 1 else b"".join(run)
            taken = self.send_run(data, seg_size, addr)
            for _ in range(taken):
                batch.popleft()
            if taken < len(run):
                return False
        return True

    def _fall_back(self, exc: OSError) -> None:
        self.offload = False
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        self.fallback_reason = f"UDP GSO refused ({name}): one datagram " \
                               f"per send"


def _next_run(batch: deque) -> tuple[list, int, tuple]:
    """The datagrams at the front of ``batch`` that one GSO send can carry:
    one address, one size, only the last one shorter."""
    first, addr = batch[0]
    seg_size = len(first)
    run = [first]
    for data, to in islice(batch, 1, max_segments(seg_size)):
        if to != addr or len(data) > seg_size:
            break
        run.append(data)
        if len(data) < seg_size:
            break  # only the last segment may be short
    return run, seg_size, addr


def make_sender(sock: socket.socket, offload: bool = True):
    """A ``GsoSender`` when asked for and supported, else a
    ``PlainSender``: the same interface either way."""
    if offload and gso_supported(sock):
        return GsoSender(sock)
    return PlainSender(sock)


# ----------------------------------------------------------- CHUNK runs
class ChunkSender:
    """CHUNK datagrams of one session built in place and sent in runs.

    ``send(fd, file_id, file_size, session, addr, chunks)`` takes a list
    of ``(index, tx_seq, send_ms, flags)``, the chunks that go on the wire
    in that order, and returns how many were sent (fewer when the socket
    buffer filled: the caller offers the rest again later).  Each run of
    up to ``capacity`` chunks is built in one reusable buffer: the file's
    bytes read with one ``preadv`` per stretch of consecutive indices
    straight into the datagrams' data slots, then headers and CRCs written
    around them with ``protocol.pack_chunk_into``.  The file's short last
    chunk ends a run (GSO: only the last segment may be short).

    Emulated loss: a chunk the link drops is left out of ``chunks`` (its
    ``tx_seq`` is used up all the same); that cuts the ``preadv`` stretch
    there, and nothing else, since each segment is a datagram of its own.
    A duplicated chunk appears twice.  Raises ``OSError`` (ESTALE) when the
    file is shorter than ``file_size`` says, like the driver's reads.
    """

    def __init__(self, sender, chunk_size: int = p.CHUNK_SIZE):
        self.sender = sender
        self.chunk_size = chunk_size
        self.seg_size = p.CHUNK_DATA_AT + chunk_size
        if self.seg_size > p.MAX_DATAGRAM:
            raise ValueError(f"chunks of {chunk_size} bytes do not fit a "
                             f"datagram")
        self.capacity = max_segments(self.seg_size)
        self._buf = bytearray(self.capacity * self.seg_size)
        self._view = memoryview(self._buf)

    def send(self, fd: int, file_id: bytes, file_size: int, session: int,
             addr, chunks) -> int:
        sent = 0
        for start, end in run_bounds(chunks, self.capacity, self.chunk_size,
                                     file_size):
            run = chunks[start:end]
            size = self.build(fd, file_id, file_size, session, run)
            taken = self.sender.send_run(self._view[:size], self.seg_size,
                                         addr)
            sent += taken
            if taken < len(run):
                break
        return sent

    def build(self, fd: int, file_id: bytes, file_size: int, session: int,
              run) -> int:
        """Fill the buffer with ``run``'s datagrams; their total length."""
        seg, view, chunk_size = self.seg_size, self._view, self.chunk_size
        lengths = [min(chunk_size, file_size - index * chunk_size)
                   for index, _, _, _ in run]
        if min(lengths, default=0) <= 0:
            raise ValueError("a chunk index beyond the end of the file")
        self._read(fd, run, lengths)
        pack = p.pack_chunk_into
        for slot, ((index, tx_seq, send_ms, flags), length) in enumerate(
                zip(run, lengths)):
            pack(view, slot * seg, file_id, index, tx_seq, send_ms, length,
                 session, flags)
        return (len(run) - 1) * seg + p.CHUNK_DATA_AT + lengths[-1]

    def _read(self, fd: int, run, lengths) -> None:
        """One ``preadv`` per stretch of consecutive chunk indices."""
        seg, view, chunk_size = self.seg_size, self._view, self.chunk_size
        slot = 0
        while slot < len(run):
            first = run[slot][0]
            end = slot + 1
            while end < len(run) and run[end][0] == run[end - 1][0] + 1:
                end += 1
            slots = [view[k * seg + p.CHUNK_DATA_AT:
                          k * seg + p.CHUNK_DATA_AT + lengths[k]]
                     for k in range(slot, end)]
            want = sum(lengths[slot:end])
            if os.preadv(fd, slots, first * chunk_size) != want:
                raise OSError(errno.ESTALE, "file changed while serving")
            slot = end


def run_bounds(chunks, capacity: int, chunk_size: int, file_size: int):
    """``(start, end)`` slices of ``chunks`` that each fit one GSO send:
    at most ``capacity`` long, cut after the file's short last chunk."""
    short_last = (file_size // chunk_size
                  if file_size % chunk_size else None)
    start = 0
    for i, chunk in enumerate(chunks):
        if i + 1 - start == capacity or chunk[0] == short_last:
            yield start, i + 1
            start = i + 1
    if start < len(chunks):
        yield start, len(chunks)


# -------------------------------------------------------------- receivers
class PlainReceiver:
    """One ``recvfrom_into`` per datagram into fixed slots: the fallback."""

    offload = False

    def __init__(self, sock: socket.socket,
                 max_datagrams: int = RECEIVE_BATCH):
        self.sock = sock
        arena = memoryview(bytearray(max_datagrams * SLOT))
        self._slots = [arena[start:start + SLOT]
                       for start in range(0, len(arena), SLOT)]
        self.reads = 0  # reads that brought a datagram

    def receive(self) -> list[tuple[memoryview, tuple]]:
        received = []
        recvfrom_into = self.sock.recvfrom_into
        for slot in self._slots:  # a slot that got no datagram stays free
            try:
                size, addr = recvfrom_into(slot)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue  # ICMP error for an earlier send
            self.reads += 1
            received.append((slot[:size], addr))
        return received


class GroReceiver:
    """Coalesced reads (UDP GRO) into one fixed arena, cut into datagrams
    by the segment size the kernel reports.

    Bounded: the arena is ``max_datagrams`` slots plus one coalesced read;
    reading stops when fewer than ``GRO_READ`` bytes are left or
    ``max_datagrams`` views are out.  A read of n bytes yields
    ``ceil(n / segment size)`` views, never more than
    ``MAX_READ_SEGMENTS`` (a read that would is dropped and counted in
    ``refused``), so one call yields fewer than ``max_datagrams +
    MAX_READ_SEGMENTS``.  Reads without the cmsg (a sender without GSO)
    are one datagram each."""

    offload = True

    def __init__(self, sock: socket.socket,
                 max_datagrams: int = RECEIVE_BATCH):
        sock.setsockopt(SOL_UDP, UDP_GRO, 1)  # OSError: not supported
        self.sock = sock
        self.max_datagrams = max_datagrams
        self._arena = memoryview(bytearray(max_datagrams * SLOT + GRO_READ))
        self.reads = 0  # reads that brought data (a run or a datagram)
        self.truncated = 0  # reads longer than GRO_READ (never from GRO)
        self.refused = 0  # reads cut into more than MAX_READ_SEGMENTS

    def receive(self) -> list[tuple[memoryview, tuple]]:
        received: list = []
        arena, pos = self._arena, 0
        last_start = len(arena) - GRO_READ
        recvmsg_into = self.sock.recvmsg_into
        for _ in range(self.max_datagrams):  # one read a pass: bounded
            if pos > last_start or len(received) >= self.max_datagrams:
                break
            try:
                size, ancdata, flags, addr = recvmsg_into(
                    [arena[pos:pos + GRO_READ]], GRO_CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue  # ICMP error for an earlier send: not data
            self.reads += 1
            seg_size = _segment_size(ancdata) or size or 1
            if flags & socket.MSG_TRUNC:
                self.truncated += 1
                if seg_size < size:  # keep the whole segments only
                    size -= size % seg_size
            if segment_count(size, seg_size) > MAX_READ_SEGMENTS:
                self.refused += 1
                continue
            end = pos + size
            for start in range(pos, end, seg_size):
                received.append((arena[start:min(start + seg_size, end)],
                                 addr))
            pos = end
        return received


def _segment_size(ancdata) -> int:
    for level, kind, data in ancdata:
        if level == SOL_UDP and kind == UDP_GRO and len(
                data) >= GRO_OPTION.size:
            (seg_size,) = GRO_OPTION.unpack_from(data)
            return max(seg_size, 0)
    return 0


def make_receiver(sock: socket.socket, offload: bool = True,
                  max_datagrams: int = RECEIVE_BATCH):
    """A ``GroReceiver`` when asked for and the socket accepts UDP_GRO,
    else a ``PlainReceiver``: the same interface either way.  Once GRO is
    on, every read of ``sock`` must go through the receiver (a plain
    ``recvfrom`` would get coalesced runs)."""
    if offload and sys.platform.startswith("linux") and hasattr(
            sock, "recvmsg_into"):
        try:
            return GroReceiver(sock, max_datagrams)
        except OSError:
            pass
    return PlainReceiver(sock, max_datagrams)
