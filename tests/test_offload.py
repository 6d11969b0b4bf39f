"""offload.py on real loopback sockets: UDP GSO -> GRO, the fallbacks, the
CHUNK runs built in place; and protocol.pack_chunk_into (Hypothesis)."""

from __future__ import annotations

import errno
import os
import random
import select
import socket
import time
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import offload
import protocol as p

SEG = p.CHUNK_DATA_AT + p.CHUNK_SIZE  # 1436, a full CHUNK datagram
WAIT_S = 5.0  # the most a test waits for datagrams on loopback

needs_gso = pytest.mark.skipif(
    not offload.gso_supported(socket.socket(socket.AF_INET,
                                            socket.SOCK_DGRAM)),
    reason="this kernel has no UDP GSO (Linux >= 4.18)")


@pytest.fixture
def pair():
    """A sender on 127.0.0.2 and a non-blocking receiver on 127.0.0.1,
    both on ports the kernel picked; closed after the test."""
    socks = []

    def make(ip: str) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        socks.append(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((ip, 0))
        sock.setblocking(False)
        return sock
    yield make("127.0.0.2"), make("127.0.0.1")
    for sock in socks:
        sock.close()


def drain(receiver, sock, count: int) -> list[tuple[bytes, tuple]]:
    """Up to ``count`` datagrams (copied: views die at the next call),
    waiting at most WAIT_S."""
    got: list = []
    deadline = time.monotonic() + WAIT_S
    while len(got) < count and time.monotonic() < deadline:
        select.select([sock], [], [], 0.05)
        got += [(bytes(view), addr) for view, addr in receiver.receive()]
    return got


def datagrams(count: int, last: int, rng: random.Random) -> list[bytes]:
    """``count`` random datagrams of SEG bytes, the last of ``last``."""
    sizes = [SEG] * (count - 1) + [last]
    return [rng.randbytes(size) for size in sizes]


RUNS = [(n, last) for n in range(1, 46) for last in (SEG, 1 + n * 31)]


# ------------------------------------------------------------ GSO -> GRO
@needs_gso
@pytest.mark.parametrize("count,last", RUNS)
def test_gso_to_gro_byte_exact(pair, count, last):
    tx, rx = pair
    sender = offload.make_sender(tx, offload=True)
    receiver = offload.make_receiver(rx, offload=True)
    assert isinstance(sender, offload.GsoSender)
    assert isinstance(receiver, offload.GroReceiver)
    sent = datagrams(count, last, random.Random(count * 1000 + last))
    taken = sender.send_run(b"".join(sent), SEG, rx.getsockname())
    assert taken == count
    got = drain(receiver, rx, count)
    assert [data for data, _ in got] == sent
    assert {addr for _, addr in got} == {tx.getsockname()}
    assert sender.offload
    # One send, and GRO handed the run over in one read (the receive
    # calls then read once more to find the socket empty).
    assert sender.syscalls == 1
    assert receiver.reads == 1


@needs_gso
def test_gso_max_segments_is_the_kernels_limit(pair):
    """45 segments of 1436 bytes go in one send; 46 would not fit."""
    tx, rx = pair
    assert offload.max_segments(SEG) == 45
    too_many = bytes(SEG * 46)
    with pytest.raises(ValueError):
        offload.GsoSender(tx).send_run(too_many, SEG, rx.getsockname())
    with pytest.raises(OSError) as refused:  # what the limit is for
        tx.sendmsg([too_many], [(offload.SOL_UDP, offload.UDP_SEGMENT,
                                 offload.SEGMENT_OPTION.pack(SEG))],
                   0, rx.getsockname())
    assert refused.value.errno == errno.EMSGSIZE


@needs_gso
def test_gso_to_plain_receiver_arrives_as_datagrams(pair):
    tx, rx = pair
    sender = offload.make_sender(tx)
    receiver = offload.make_receiver(rx, offload=False)
    sent = datagrams(45, 700, random.Random(1))
    assert sender.send_run(b"".join(sent), SEG, rx.getsockname()) == 45
    assert [d for d, _ in drain(receiver, rx, 45)] == sent
    assert receiver.reads == 45


def test_gro_receiver_with_a_plain_sender(pair):
    tx, rx = pair
    receiver = offload.make_receiver(rx, offload=True)
    sent = datagrams(45, 99, random.Random(2))
    for data in sent:
        tx.sendto(data, rx.getsockname())
    assert [d for d, _ in drain(receiver, rx, 45)] == sent
    assert receiver.reads == 45  # nothing to coalesce: one each


# ------------------------------------------------------------- fallbacks
@pytest.mark.parametrize("count,last", [(1, SEG), (2, 5), (17, SEG),
                                        (45, 1000)])
def test_plain_path_byte_exact(pair, count, last):
    tx, rx = pair
    sender = offload.make_sender(tx, offload=False)
    receiver = offload.make_receiver(rx, offload=False)
    assert isinstance(sender, offload.PlainSender) and not sender.offload
    assert isinstance(receiver, offload.PlainReceiver)
    sent = datagrams(count, last, random.Random(count))
    assert sender.send_run(b"".join(sent), SEG, rx.getsockname()) == count
    assert sender.syscalls == count
    assert [d for d, _ in drain(receiver, rx, count)] == sent


class RefusingGso:
    """A real socket whose ``sendmsg`` fails as on a kernel or route
    without GSO; everything else is the socket's."""

    def __init__(self, sock, error: int, after: int = 0):
        self.sock, self.error, self.after = sock, error, after

    def sendmsg(self, *args):
        if self.after:
            self.after -= 1
            return self.sock.sendmsg(*args)
        raise OSError(self.error, os.strerror(self.error))

    def __getattr__(self, name):
        return getattr(self.sock, name)


@pytest.mark.parametrize("error", sorted(offload.UNSUPPORTED))
def test_refused_gso_falls_back_for_good(pair, error):
    tx, rx = pair
    sender = offload.GsoSender(RefusingGso(tx, error))
    receiver = offload.make_receiver(rx, offload=True)
    first, second = (datagrams(10, 300, random.Random(seed))
                     for seed in (3, 4))
    for run in (first, second):
        assert sender.send_run(b"".join(run), SEG, rx.getsockname()) == 10
    assert not sender.offload
    assert errno.errorcode[error] in sender.fallback_reason
    assert sender.gso_sends == 1  # tried once, never again
    assert [d for d, _ in drain(receiver, rx, 20)] == first + second


def test_other_send_errors_do_not_turn_offload_off(pair):
    tx, rx = pair
    sender = offload.GsoSender(RefusingGso(tx, errno.ECONNREFUSED))
    assert sender.send_run(bytes(SEG * 3), SEG, rx.getsockname()) == 3
    assert sender.offload  # a loss on the way, not a missing feature


class FullAfter:
    """A socket whose send buffer fills after ``room`` sends."""

    def __init__(self, sock, room: int):
        self.sock, self.room = sock, room

    def _spend(self):
        if self.room <= 0:
            raise BlockingIOError(errno.EAGAIN, "full")
        self.room -= 1

    def sendmsg(self, *args):
        self._spend()
        return self.sock.sendmsg(*args)

    def sendto(self, *args):
        self._spend()
        return self.sock.sendto(*args)

    def __getattr__(self, name):
        return getattr(self.sock, name)


@pytest.mark.parametrize("offloaded", [True, False])
def test_send_batch_keeps_what_a_full_buffer_refused(pair, offloaded):
    tx, rx = pair
    factory = offload.GsoSender if offloaded else offload.PlainSender
    sender = factory(FullAfter(tx, room=2))
    addr = rx.getsockname()
    batch = deque((data, addr) for data in
                  datagrams(45, SEG, random.Random(5)) * 3)
    assert sender.send_batch(batch) is False
    assert len(batch) == (135 - 90 if offloaded else 133)


@pytest.mark.parametrize("offloaded", [True, False])
def test_send_batch_groups_by_address_and_size(pair, offloaded):
    """An engine's output (what ``datagrams_to_send`` gives): two
    receivers interleaved, sizes mixed; each gets its own, in order."""
    tx, rx = pair
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    other.bind(("127.0.0.3", 0))
    other.setblocking(False)
    try:
        rng = random.Random(6)
        batch, expected = deque(), {rx: [], other: []}
        for n in range(300):
            to = rx if (n // 37) % 2 == 0 else other
            size = SEG if rng.random() < 0.9 else rng.randint(1, 1472)
            data = rng.randbytes(size)
            batch.append((data, to.getsockname()))
            expected[to].append(data)
        sender = offload.make_sender(tx, offload=offloaded)
        assert sender.send_batch(batch) is True and not batch
        for sock, want in expected.items():
            receiver = offload.make_receiver(sock, offload=offloaded)
            assert [d for d, _ in drain(receiver, sock, len(want))] == want
        if offloaded and isinstance(sender, offload.GsoSender):
            assert sender.syscalls < 300 / 4
    finally:
        other.close()


def test_make_factories_without_offload_support(pair, monkeypatch):
    tx, rx = pair
    monkeypatch.setattr(offload.sys, "platform", "darwin")
    assert isinstance(offload.make_sender(tx), offload.PlainSender)
    assert isinstance(offload.make_receiver(rx), offload.PlainReceiver)


# ---------------------------------------------------------------- bounds
@needs_gso
def test_gro_split_never_exceeds_the_arena(pair):
    tx, rx = pair
    sender = offload.make_sender(tx)
    receiver = offload.GroReceiver(rx, max_datagrams=8)
    rng = random.Random(7)
    runs = [datagrams(45, rng.randint(1, SEG), rng) for _ in range(6)]
    for run in runs:
        assert sender.send_run(b"".join(run), SEG, rx.getsockname()) == 45
    arena = receiver._arena.obj
    got, calls = [], 0
    deadline = time.monotonic() + WAIT_S
    while len(got) < 270 and time.monotonic() < deadline:
        select.select([rx], [], [], 0.05)
        batch = receiver.receive()
        calls += 1
        assert len(batch) < 8 + offload.MAX_READ_SEGMENTS
        for view, _ in batch:
            assert view.obj is arena and len(view) <= SEG
        got += [bytes(view) for view, _ in batch]
    assert got == [d for run in runs for d in run]
    assert calls >= 6  # an arena of 8 slots + one read: a run per call


class CraftedRead:
    """A socket whose one read returns ``size`` bytes and a UDP_GRO cmsg
    of ``seg_size`` (what no kernel sends: the receiver must cope)."""

    def __init__(self, size: int, seg_size: int, flags: int = 0):
        self.reads = [(size, seg_size, flags)]

    def setsockopt(self, *args):
        pass

    def recvmsg_into(self, buffers, ancbufsize):
        if not self.reads:
            raise BlockingIOError(errno.EAGAIN, "empty")
        size, seg_size, flags = self.reads.pop()
        buffers[0][:size] = bytes(range(256)) * (size // 256) + bytes(
            size % 256)
        cmsg = [(offload.SOL_UDP, offload.UDP_GRO,
                 offload.GRO_OPTION.pack(seg_size))]
        return size, cmsg, flags, ("127.0.0.9", 9)


class ErrorsForever(CraftedRead):
    """A socket that reports an error on every read."""

    def __init__(self):
        self.tries = 0

    def recvmsg_into(self, buffers, ancbufsize):
        self.tries += 1
        raise OSError(errno.ECONNREFUSED, "refused")


def test_gro_receive_is_bounded_when_every_read_fails():
    sock = ErrorsForever()
    assert offload.GroReceiver(sock, max_datagrams=16).receive() == []
    assert sock.tries == 16


def test_gro_read_cut_into_too_many_segments_is_refused():
    receiver = offload.GroReceiver(CraftedRead(65000, 1))
    assert receiver.receive() == []
    assert receiver.refused == 1


@pytest.mark.parametrize("size,seg_size", [(14360, 1436), (1000, 1436),
                                           (2873, 1436), (6000, 48)])
def test_gro_read_yields_ceil_size_over_segment(size, seg_size):
    receiver = offload.GroReceiver(CraftedRead(size, seg_size))
    views = [view for view, _ in receiver.receive()]
    assert len(views) == -(-size // seg_size)
    assert b"".join(views) == (bytes(range(256)) * (size // 256)
                               + bytes(size % 256))


def test_truncated_gro_read_keeps_whole_segments_only():
    receiver = offload.GroReceiver(CraftedRead(3000, 1436, socket.MSG_TRUNC))
    assert [len(v) for v, _ in receiver.receive()] == [1436, 1436]
    assert receiver.truncated == 1


# ------------------------------------------------------- CHUNK datagrams
@settings(max_examples=300, deadline=None)
@given(file_id=st.binary(min_size=8, max_size=8),
       index=st.integers(0, 2**32 - 1), tx_seq=st.integers(0, 2**32 - 1),
       send_ms=st.integers(0, 2**32 - 1), session=st.integers(0, 2**32 - 1),
       flags=st.integers(0, 255),
       data=st.binary(max_size=p.MAX_CHUNK_DATA),
       offset=st.integers(0, 100), tail=st.integers(0, 50),
       fill=st.integers(0, 255))
def test_pack_chunk_into_equals_encode_chunk(file_id, index, tx_seq,
                                             send_ms, session, flags, data,
                                             offset, tail, fill):
    expected = p.encode_chunk(file_id, index, tx_seq, send_ms, data,
                              session, flags)
    buf = bytearray([fill]) * (offset + len(expected) + tail)
    start = offset + p.CHUNK_DATA_AT
    buf[start:start + len(data)] = data
    length = p.pack_chunk_into(buf, offset, file_id, index, tx_seq,
                               send_ms, len(data), session, flags)
    assert length == len(expected)
    assert bytes(buf[offset:offset + length]) == expected
    assert buf[:offset] == bytearray([fill]) * offset  # nothing else moved
    assert buf[offset + length:] == bytearray([fill]) * tail


def test_pack_chunk_into_refuses_what_does_not_fit():
    with pytest.raises(ValueError):
        p.pack_chunk_into(bytearray(2000), 0, bytes(8), 0, 0, 0,
                          p.MAX_CHUNK_DATA + 1)
    with pytest.raises(ValueError):
        p.pack_chunk_into(bytearray(100), 0, bytes(8), 0, 0, 0, 100)


FILE_CHUNKS = 130  # 2.9 runs of 45, and a short last chunk
FILE_SIZE = FILE_CHUNKS * p.CHUNK_SIZE + 123


@pytest.fixture
def song(tmp_path):
    data = random.Random(8).randbytes(FILE_SIZE)
    path = tmp_path / "song.mp3"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    yield fd, data
    os.close(fd)


def chunk_plan(rng: random.Random) -> list[tuple[int, int, int, int]]:
    """A session's sends: the file in order with some emulated losses
    left out, a shuffled stretch, resends (flagged) and a duplicate."""
    order = list(range(FILE_CHUNKS + 1))
    shuffled = order[40:90]
    rng.shuffle(shuffled)
    order[40:90] = shuffled
    order = [i for i in order if rng.random() > 0.1]  # dropped on the link
    order += [3, 3, 77, FILE_CHUNKS, 0]
    return [(index, seq, 1000 + seq, p.FLAG_RETRANSMIT if seq >= len(order)
             - 5 else 0) for seq, index in enumerate(order)]


@pytest.mark.parametrize("offloaded", [True, False])
def test_chunk_runs_from_preadv_decode(pair, song, offloaded):
    tx, rx = pair
    fd, data = song
    file_id, session = b"\x11" * 8, 0xCAFE
    plan = chunk_plan(random.Random(9))
    chunks = offload.ChunkSender(offload.make_sender(tx, offloaded))
    receiver = offload.make_receiver(rx, offloaded)
    assert chunks.send(fd, file_id, FILE_SIZE, session, rx.getsockname(),
                       plan) == len(plan)
    got = drain(receiver, rx, len(plan))
    assert len(got) == len(plan)
    for (datagram, _), (index, tx_seq, send_ms, flags) in zip(got, plan):
        assert p.chunk_fields(memoryview(datagram)) == (
            session, flags, file_id, index, tx_seq, send_ms)
        body = data[index * p.CHUNK_SIZE:(index + 1) * p.CHUNK_SIZE]
        assert datagram[p.CHUNK_DATA_AT:] == body
        assert datagram == p.encode_chunk(file_id, index, tx_seq, send_ms,
                                          body, session, flags)
    if offloaded and chunks.sender.offload:
        assert chunks.sender.syscalls < len(plan) / 4


def test_chunk_run_bounds_cut_at_capacity_and_short_last_chunk():
    chunks = [(i, 0, 0, 0) for i in (0, 1, 2, 9, 3, 4, 5, 6, 9, 7)]
    # capacity 4; chunk 9 is the file's short last one (9 * 10 + 5 bytes)
    assert list(offload.run_bounds(chunks, 4, 10, 95)) == [
        (0, 4), (4, 8), (8, 9), (9, 10)]
    # a file of whole chunks has no short one
    assert list(offload.run_bounds(chunks, 4, 10, 100)) == [
        (0, 4), (4, 8), (8, 10)]
    assert list(offload.run_bounds([], 4, 10, 95)) == []


def test_chunk_sender_says_when_the_file_shrank(pair, song):
    tx, rx = pair
    fd, _ = song
    chunks = offload.ChunkSender(offload.make_sender(tx))
    with pytest.raises(OSError) as shrank:
        chunks.send(fd, bytes(8), FILE_SIZE + 5000, 1, rx.getsockname(),
                    [(FILE_CHUNKS, 0, 0, 0), (FILE_CHUNKS + 1, 1, 0, 0)])
    assert shrank.value.errno == errno.ESTALE
    with pytest.raises(ValueError):
        chunks.send(fd, bytes(8), FILE_SIZE, 1, rx.getsockname(),
                    [(FILE_CHUNKS + 1, 0, 0, 0)])


def test_chunk_sender_stops_where_the_buffer_filled(pair, song):
    tx, rx = pair
    fd, _ = song
    chunks = offload.ChunkSender(offload.GsoSender(FullAfter(tx, room=1)))
    plan = [(i, i, 0, 0) for i in range(100)]
    assert chunks.send(fd, bytes(8), FILE_SIZE, 1, rx.getsockname(),
                       plan) == 45
