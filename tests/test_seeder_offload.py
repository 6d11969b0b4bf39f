"""The seeder's send path with and without offload, on real loopback
sockets: UDP GSO runs built in place (``offload.ChunkSender``) and the
``--no-offload`` fallback, one datagram per system call."""

from __future__ import annotations

import errno
import os
import socket
import threading

import pytest

import offload
import p2p_facom
import protocol as p
import seed_engine as se
import seeder as seeder_module
from conftest import free_port, run_leecher, sha256, skip_outside_ci

SONG = "facom-sample.mp3"


def make_sink() -> socket.socket:
    """A socket on loopback that holds a few hundred datagrams."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(5)
    return sink


class Serving:
    """A ``seeder.Seeder`` serving in a thread of the test process, so
    that the test can look at its sender afterwards."""

    def __init__(self, folder, offload_on: bool):
        self.seeder = seeder_module.Seeder(
            "127.0.0.1", free_port(), str(folder), log=lambda line: None,
            notice=lambda line: None, offload=offload_on)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.seeder.serve, args=(self._stop.is_set, 0.05))
        self._thread.start()

    @property
    def address(self) -> str:
        return "%s:%d" % self.seeder.address

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.seeder.close()


def download(serving, folder, tmp_path) -> int:
    """Download the sample song from ``serving``; its number of chunks."""
    result = run_leecher("get", "facom-sample", "-o", str(tmp_path),
                         "--seeders", serving.address)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sha256(tmp_path / SONG) == sha256(folder / SONG)
    return p.chunk_count(os.path.getsize(folder / SONG))


def test_a_gso_seeder_sends_runs_and_the_download_is_byte_exact(
        song_dir, tmp_path):
    serving = Serving(song_dir, True)
    try:
        sender = serving.seeder.sender
        if not isinstance(sender, offload.GsoSender):
            skip_outside_ci("no UDP GSO on this platform")
        chunks = download(serving, song_dir, tmp_path)
    finally:
        serving.stop()
    assert sender.offload, sender.fallback_reason
    assert sender.gso_sends > 0
    # Runs of many chunks per system call, not one each.
    assert sender.syscalls * 4 < serving.seeder.engine.counters.link.sent
    assert serving.seeder.engine.counters.link.sent >= chunks


def test_a_no_offload_seeder_sends_one_datagram_per_call(song_dir,
                                                         tmp_path):
    serving = Serving(song_dir, False)
    try:
        chunks = download(serving, song_dir, tmp_path)
    finally:
        serving.stop()
    sender = serving.seeder.sender
    assert isinstance(sender, offload.PlainSender)
    assert sender.syscalls >= serving.seeder.engine.counters.link.sent \
        >= chunks


def test_the_no_offload_switch_on_the_command_line(seeders, song_dir,
                                                   tmp_path):
    (plain,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q",
                        "--no-offload"))
    result = run_leecher("get", "facom-sample", "-o", str(tmp_path),
                         "--seeders", plain.address)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sha256(tmp_path / SONG) == sha256(song_dir / SONG)
    parser = p2p_facom.build_parser()
    assert parser.parse_args(["-t", "seeder", "--no-offload"]).offload \
        is False
    assert parser.parse_args(["-t", "seeder"]).offload is True


def test_runs_built_in_place_are_the_engines_bytes(song_dir):
    """What the driver builds from a run (``ChunkSender``: ``preadv`` and
    ``pack_chunk_into``) is what ``datagrams_to_send`` gives, byte for
    byte, resends and the file's short last chunk included."""
    library = seeder_module.Library(str(song_dir), notice=lambda line: None)
    library.scan()
    info = next(f for f in library.index.files if f.name == SONG)
    engines = [se.SeederEngine(library, b"k", 1) for _ in range(2)]
    leecher = ("127.0.0.9", 5000)
    for engine in engines:
        engine.receive_datagram(p.encode(p.Request(
            info.file_id, p.Order.RANDOM, ((0, info.chunks),), 300,
            engine.token_for(leecher, 0.0), seed=9), 3), leecher, 0.0)
        engine.receive_datagram(p.encode(p.Nack(300, 1, (
            (0, 4), (info.chunks - 1, info.chunks))), 3), leecher, 0.0)
    builder = offload.ChunkSender(sender=None)
    fd = library.open_file(info.file_id).fd
    built = []
    for item in engines[0].chunks_to_send(0.0):
        if type(item) is not se.ChunkRun:
            built.append(item)
            continue
        chunks = item.descriptors()
        for start, end in offload.run_bounds(chunks, builder.capacity,
                                             info.chunk_size, info.size):
            size = builder.build(fd, item.file_id, info.size, item.sid,
                                 chunks[start:end])
            view = bytes(builder._buf[:size])
            built += [(view[at:at + builder.seg_size], item.addr)
                      for at in range(0, size, builder.seg_size)]
    assert built == engines[1].datagrams_to_send(0.0)
    assert len(built) == info.chunks + 1  # and the DONE
    library.close()


def test_a_file_cut_short_while_serving_ends_the_session(tmp_path):
    """The driver cannot read a run (the file shrank): the session ends
    with FILE_GONE and nothing more of it is sent."""
    folder = tmp_path / "share"
    folder.mkdir()
    path = folder / "cut.mp3"
    path.write_bytes(os.urandom(400 * p.CHUNK_SIZE))
    sink = make_sink()
    seeder = seeder_module.Seeder("127.0.0.1", free_port(), str(folder),
                                  log=lambda line: None,
                                  notice=lambda line: None)
    try:
        engine, info = seeder.engine, seeder.library.index.files[0]
        addr = sink.getsockname()
        engine.receive_datagram(p.encode(p.Request(
            info.file_id, p.Order.SEQUENTIAL, ((0, info.chunks),), 400,
            engine.token_for(addr, 0.0)), 4), addr, 0.0)
        seeder._send(0.0)
        first = engine.counters.link.sent
        assert first == seeder_module.SEND_BURST
        with open(path, "r+b") as handle:
            handle.truncate(first * p.CHUNK_SIZE)  # the rest is gone
        engine.events()
        seeder._send(0.0)  # the next runs fail: the session ends
        seeder._send(0.0)  # its ERROR goes out
        assert [e.why for e in engine.events()] == ["failed: file unreadable"]
        assert engine.counters.link.sent == first
        messages = [p.decode(sink.recv(2048)).message
                    for _ in range(first + 1)]
        assert all(isinstance(m, p.Chunk) for m in messages[:first])
        assert messages[-1].code == p.ErrorCode.FILE_GONE
    finally:
        seeder.close()
        sink.close()


@pytest.mark.parametrize("offload_on", [True, False])
def test_a_full_socket_buffer_keeps_the_rest_of_a_run_for_later(
        song_dir, offload_on):
    """A run the socket takes only in part: the rest waits, then goes, in
    order, with nothing sent twice."""
    sink = make_sink()
    seeder = seeder_module.Seeder("127.0.0.1", free_port(), str(song_dir),
                                  log=lambda line: None,
                                  notice=lambda line: None,
                                  offload=offload_on)
    sent_runs = []

    class Refusing:
        """Takes 10 datagrams of the first run offered, then all."""

        def __init__(self, real):
            self.real = real

        def send_run(self, buf, seg_size, addr):
            if not sent_runs:
                sent_runs.append(None)
                return self.real.send_run(buf[:10 * seg_size], seg_size,
                                          addr)
            return self.real.send_run(buf, seg_size, addr)

    seeder.chunk_sender.sender = Refusing(seeder.sender)
    try:
        request_in_order(seeder, sink, 60)
        seeder._send(0.0)
        assert seeder._unsent  # the rest of the first run waits
        seeder._send(0.0)
        seeder._send(0.0)
        got = [p.decode(sink.recv(2048)).message for _ in range(61)]
        assert [m.tx_seq for m in got[:60]] == list(range(60))
        assert [m.index for m in got[:60]] == list(range(60))
        assert isinstance(got[60], p.Done)
    finally:
        seeder.close()
        sink.close()


def test_a_gso_send_the_kernel_refuses_falls_back_with_the_same_datagrams(
        song_dir):
    sink = make_sink()
    seeder = seeder_module.Seeder("127.0.0.1", free_port(), str(song_dir),
                                  log=lambda line: None,
                                  notice=lambda line: None)

    class NoChecksumOffload:
        """The seeder's socket on a route whose device cannot offload:
        every GSO send fails with EIO."""

        def __init__(self, real):
            self.real = real

        def sendmsg(self, *args):
            raise OSError(errno.EIO, "Input/output error")

        def sendto(self, *args):
            return self.real.sendto(*args)

    try:
        if not isinstance(seeder.sender, offload.GsoSender):
            skip_outside_ci("no UDP GSO on this platform")
        seeder.sender.sock = NoChecksumOffload(seeder.sock)
        seeder.sender._plain.sock = seeder.sender.sock
        request_in_order(seeder, sink, 100)
        seeder._send(0.0)
        seeder._send(0.0)
        got = [p.decode(sink.recv(2048)).message for _ in range(100)]
        assert [m.tx_seq for m in got] == list(range(100))
        assert [m.index for m in got] == list(range(100))
        assert not seeder.sender.offload
        assert "UDP GSO refused (EIO)" in seeder.summary()
    finally:
        seeder.close()
        sink.close()


def request_in_order(seeder, sink, chunks: int) -> None:
    """Hand the seeder's engine a validated REQUEST from ``sink`` for the
    first ``chunks`` chunks of SONG, in order, window ``chunks``."""
    engine = seeder.engine
    info = next(f for f in seeder.library.index.files if f.name == SONG)
    addr = sink.getsockname()
    engine.receive_datagram(p.encode(p.Request(
        info.file_id, p.Order.SEQUENTIAL, ((0, chunks),), chunks,
        engine.token_for(addr, 0.0)), 4), addr, 0.0)
