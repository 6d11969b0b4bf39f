"""The leecher's reads with UDP GRO and without (``--no-offload``).

Real loopback seeders (conftest's ``seeders``).  So that the leecher gets
runs sent with UDP GSO whatever the seeder does, a relay stands between
them as a router would: what a seeder sends goes on to the leecher in GSO
runs (``offload.GsoSender``), the leecher's datagrams go back one by one.
GRO coalesces only GSO runs, so a leecher whose reads are fewer than its
datagrams read runs; one with ``--no-offload`` reads one per call.  A
seeder that sends GSO runs itself (one with ``--no-offload``) is used
directly too.

Then, without sockets: the engine's and the driver's work per run of
consecutive chunks ends where one datagram at a time does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import select
import socket
import subprocess
import threading
from collections import deque

import pytest

import download_engine as de
import leecher
import offload
import protocol as p
from conftest import PYTHON, ROOT, free_port, run_leecher, sha256

RELAY_BUFFER = 1 << 22
RELAY_BATCH = 256  # datagrams drained before a GSO send: runs form
SONG = "facom-sample"


def seeder_sends_gso() -> bool:
    """This tree's seeder sends UDP GSO runs (it has ``--no-offload``)."""
    run = subprocess.run([PYTHON, f"{ROOT}/seeder.py", "-h"],
                         capture_output=True, text=True, timeout=60)
    return "--no-offload" in run.stdout


def gso_works() -> bool:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        return offload.gso_supported(sock)
    finally:
        sock.close()


class GsoRelay:
    """A front address for one seeder: the leecher talks to ``front``,
    the seeder's datagrams reach the leecher as GSO runs (see
    ``gso_relay``)."""

    def __init__(self, seeder: tuple, ip: str = "127.0.0.21"):
        self.seeder = seeder
        self.front = self._socket((ip, free_port((ip,))))
        self.address = "%s:%d" % self.front.getsockname()
        self.back = self._socket(("127.0.0.1", 0))
        self.to_leecher = offload.make_sender(self.front)
        self.client = None
        self.stopped = threading.Event()

    @staticmethod
    def _socket(address) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RELAY_BUFFER)
        sock.bind(address)
        sock.setblocking(False)
        return sock

    def run(self) -> None:
        while not self.stopped.is_set():
            readable, _, _ = select.select([self.front, self.back], [], [],
                                           0.05)
            if self.front in readable:
                for data, sender in self._drain(self.front):
                    self.client = sender
                    self.back.sendto(data, self.seeder)
            if self.back in readable and self.client is not None:
                batch = deque((data, self.client)
                              for data, _ in self._drain(self.back))
                while batch and not self.to_leecher.send_batch(batch):
                    select.select([], [self.front], [], 0.05)

    @staticmethod
    def _drain(sock) -> list:
        got = []
        for _ in range(RELAY_BATCH):
            try:
                got.append(sock.recvfrom(65535))
            except BlockingIOError:
                break
        return got


@contextlib.contextmanager
def gso_relay(seeder: tuple):
    """A ``GsoRelay`` relaying in a thread while the block runs."""
    relay = GsoRelay(seeder)
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        relay.stopped.set()
        thread.join(timeout=10)
        relay.front.close()
        relay.back.close()


def download(tmp_path, seeder_addresses, *extra):
    out = tmp_path / "out"
    stats_path = tmp_path / "stats.json"
    run = run_leecher("get", SONG, "-o", str(out), "--seeders",
                      ",".join(seeder_addresses), "--json", str(stats_path),
                      *extra, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    with open(stats_path) as file:
        stats = json.load(file)
    return out / f"{SONG}.mp3", stats


@pytest.fixture
def one_seeder(seeders, song_dir):
    port = free_port()
    return seeders(("127.0.0.1", "-d", str(song_dir), "-q"), port=port)[0]


def seeder_addr(seeder) -> tuple:
    ip, port = seeder.address.split(":")
    return ip, int(port)


@pytest.mark.parametrize("extra", [(), ("--loss", "0.1", "--rng-seed", "3")],
                         ids=["clean", "loss"])
def test_gso_runs_read_with_gro(tmp_path, one_seeder, song_dir, extra):
    if not gso_works():
        pytest.skip("this kernel has no UDP GSO: nothing to coalesce")
    with gso_relay(seeder_addr(one_seeder)) as relay:
        path, stats = download(tmp_path, [relay.address], *extra)
    assert sha256(str(path)) == sha256(str(song_dir / f"{SONG}.mp3"))
    assert stats["receive_offload"] is True
    # Runs came coalesced: fewer reads than datagrams (one each without
    # GRO), at least 1.5 a read on average.
    assert stats["receive_reads"] * 3 < stats["datagrams_read"] * 2
    if extra:  # the emulated loss still drops, and NACKs still recover
        assert stats["datagrams_dropped_by_leecher"] > 0
        assert stats["chunks_retransmitted"] > 0


def test_no_offload_reads_one_datagram_per_call(tmp_path, one_seeder,
                                                 song_dir):
    with gso_relay(seeder_addr(one_seeder)) as relay:
        path, stats = download(tmp_path, [relay.address], "--no-offload")
    assert sha256(str(path)) == sha256(str(song_dir / f"{SONG}.mp3"))
    assert stats["receive_offload"] is False
    assert stats["receive_reads"] == stats["datagrams_read"] > 0


def test_a_gso_seeder_directly(tmp_path, one_seeder, song_dir):
    path, stats = download(tmp_path, [one_seeder.address])
    assert sha256(str(path)) == sha256(str(song_dir / f"{SONG}.mp3"))
    if seeder_sends_gso() and gso_works():
        assert stats["receive_reads"] < stats["datagrams_read"]
    else:  # a seeder sending one datagram per call: nothing to coalesce
        assert stats["receive_reads"] == stats["datagrams_read"]


def test_mixed_gso_and_plain_seeders(tmp_path, seeders, song_dir):
    """One seeder's chunks come in GSO runs, another's one by one: both
    kinds of read in one download, byte-exact."""
    port = free_port()
    plain = ("--no-offload",) if seeder_sends_gso() else ()
    gso_seeder, plain_seeder = seeders(
        ("127.0.0.1", "-d", str(song_dir), "-q"),
        ("127.0.0.2", "-d", str(song_dir), "-q", *plain), port=port)
    with gso_relay(seeder_addr(gso_seeder)) as relay:
        path, stats = download(tmp_path, [relay.address,
                                          plain_seeder.address])
    assert sha256(str(path)) == sha256(str(song_dir / f"{SONG}.mp3"))
    assert set(stats["per_peer"]) == {relay.address, plain_seeder.address}
    assert all(count > 0 for count in stats["per_peer"].values())
    if gso_works():
        assert stats["receive_reads"] < stats["datagrams_read"]


def test_no_offload_on_ping_and_search(tmp_path, one_seeder):
    for command in (["ping"], ["search", "facom"]):
        run = run_leecher(*command, "--seeders", one_seeder.address,
                          "--no-offload")
        assert run.returncode == 0, run.stderr
        assert "alive" in run.stdout


# ------------------------------------------------ per-run work, no sockets
# Runs of consecutive chunks (as GRO hands them over) are taken in one go
# by the engine and written in one go by the driver; these check that the
# result is what one datagram at a time gives.
SEEDER = ("127.0.0.1", 9000)


def song(chunks: int, seed: int = 1) -> tuple[p.FileInfo, bytes]:
    data = random.Random(seed).randbytes(chunks * p.CHUNK_SIZE - 123)
    sha = hashlib.sha256(data).digest()
    return p.FileInfo(p.file_id_of(sha), len(data), p.chunk_count(len(data)),
                      p.CHUNK_SIZE, 0, sha, "runs.mp3"), data


def started_engine(info) -> tuple[de.DownloadEngine, int]:
    engine = de.DownloadEngine(info, [de.Peer(SEEDER, rtt=0.01)], 0.0,
                               de.Options("sequential", seed=5))
    engine.start(0.0)
    engine.datagrams_to_send(0.0)
    (_, session), = engine.transfers
    return engine, session


def chunk_datagram(info, data, index, tx_seq, session, flags=0) -> bytes:
    size = info.chunk_size
    return p.encode_chunk(info.file_id, index, tx_seq, tx_seq * 3,
                          data[index * size:(index + 1) * size], session,
                          flags)


def test_add_run_marks_the_new_chunks_and_counts_duplicates():
    state = p.ReceiveState(10)
    state.add(3)
    state.add(5)
    assert state.add_run(2, 8) == [(2, 3), (4, 5), (6, 8)]
    assert (state.received, state.duplicates) == (6, 2)
    assert list(state.missing) == [(0, 2), (8, 10)]
    assert state.add_run(4, 4) == [] and state.add_run(2, 8) == []
    assert state.duplicates == 8
    with pytest.raises(ValueError):
        state.add_run(9, 11)


def hostile_mix(info, data, session) -> list:
    """Runs, a run cut by a bad CRC, duplicates inside a run, a chunk out
    of order, retransmissions, a forged sender, a wrong session."""
    datagrams = [chunk_datagram(info, data, i, i, session)
                 for i in range(12)]
    corrupt = bytearray(datagrams[6])
    corrupt[-1] ^= 0xFF
    datagrams[6] = bytes(corrupt)
    batch = [(d, SEEDER) for d in datagrams]
    batch += [(chunk_datagram(info, data, i, 12 + i - 3, session), SEEDER)
              for i in range(3, 9)]  # 3..5 again, 6 for real, 7..8 again
    batch += [(chunk_datagram(info, data, 20, 30, session), SEEDER),
              (chunk_datagram(info, data, 14, 31, session), SEEDER)]
    batch += [(chunk_datagram(info, data, i, 40 + i, session,
                              p.FLAG_RETRANSMIT), SEEDER)
              for i in (12, 13, 15, 16)]
    batch += [(chunk_datagram(info, data, 17, 90, session),
               ("127.0.0.9", 9000)),
              (chunk_datagram(info, data, 18, 91, session ^ 1), SEEDER)]
    return batch


def assembled(info, fresh) -> dict:
    return {index: bytes(chunk) for index, chunk in fresh}


def test_a_batch_in_runs_ends_where_one_datagram_at_a_time_does():
    info, data = song(30)
    whole, session = started_engine(info)
    single, other_session = started_engine(info)
    assert session == other_session  # the same seed: the same session
    batch = hostile_mix(info, data, session)
    whole.receive_batch(batch, 0.5)
    for datagram, addr in batch:
        single.receive_datagram(datagram, addr, 0.5)
    assert whole.state.have == single.state.have
    assert whole.state.duplicates == single.state.duplicates == 5
    for name in ("bad", "forged", "retransmitted", "stored_from"):
        assert getattr(whole.counters, name) == \
            getattr(single.counters, name), name
    assert whole.counters.bad == 1 and whole.counters.forged == 2
    for series in ("sent", "received", "retransmitted"):
        ours, theirs = (getattr(e.timeline, series) for e in (whole, single))
        assert [x if x == x else None for x in ours] == \
            [x if x == x else None for x in theirs], series
    got, want = (assembled(info, e.take_fresh()) for e in (whole, single))
    assert got == want
    size = info.chunk_size
    assert got == {i: data[i * size:(i + 1) * size]
                   for i in range(info.chunks) if whole.state.have[i]}
    transfer, = whole.transfers.values()
    assert transfer.highest_seq == 40 + 16  # not the forged ones' 90, 91
    assert transfer.highest_place == 20


def write_through(tmp_path, info, data, arrivals, batch) -> None:
    """``arrivals`` (chunk indices, in order) through an engine in batches
    of ``batch`` and written by a ``PartFile``, which must end verified."""
    engine, session = started_engine(info)
    part = leecher.PartFile(info, str(tmp_path / "runs.mp3"))
    part.open()
    for first in range(0, len(arrivals), batch):
        engine.receive_batch(
            [(memoryview(chunk_datagram(info, data, i, n, session)), SEEDER)
             for n, i in enumerate(arrivals[first:first + batch], first)],
            0.01 + first / 1000)
        part.write_runs(engine.take_runs(), engine.state)
        part.hash_prefix(engine.state.contiguous())
    assert engine.complete
    part.finish()
    part.close()
    assert (tmp_path / "runs.mp3").read_bytes() == data


def test_a_sequential_download_is_hashed_from_memory(tmp_path, monkeypatch):
    """Runs that extend the prefix feed the SHA-256 as they are written:
    nothing is read back from the file, and the check at the end holds."""
    info, data = song(700)
    monkeypatch.setattr(leecher.PartFile, "read",
                        lambda *a: pytest.fail("read back"))
    write_through(tmp_path, info, data, list(range(info.chunks)), 45)


def test_runs_out_of_order_write_the_file_and_hash_it(tmp_path):
    """Gaps filled later: what waited on disk is read back for the hash."""
    info, data = song(600)
    holes = [5, 6, 7, 8, 300, 301]
    arrivals = [i for i in range(info.chunks) if i not in holes] + holes
    write_through(tmp_path, info, data, arrivals, 64)
