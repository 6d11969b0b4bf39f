"""The leecher's reads with UDP GRO and without (``--no-offload``).

Real loopback seeders (conftest's ``seeders``).  So that the leecher gets
runs sent with UDP GSO whatever the seeder does, a relay stands between
them as a router would: what a seeder sends goes on to the leecher in GSO
runs (``offload.GsoSender``), the leecher's datagrams go back one by one.
GRO coalesces only GSO runs, so a leecher whose reads are fewer than its
datagrams read runs; one with ``--no-offload`` reads one per call.
"""

from __future__ import annotations

import json
import select
import socket
import threading
from collections import deque

import pytest

import offload
from conftest import free_port, run_leecher, sha256

RELAY_BUFFER = 1 << 22
RELAY_BATCH = 256  # datagrams drained before a GSO send: runs form
SONG = "facom-sample"


def gso_works() -> bool:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        return offload.gso_supported(sock)
    finally:
        sock.close()


class GsoRelay:
    """A front address for one seeder: the leecher talks to ``front``,
    the seeder's datagrams reach the leecher as GSO runs."""

    def __init__(self, seeder: tuple, ip: str = "127.0.0.21"):
        self.seeder = seeder
        self.front = self._socket((ip, free_port((ip,))))
        self.address = "%s:%d" % self.front.getsockname()
        self.back = self._socket(("127.0.0.1", 0))
        self.to_leecher = offload.make_sender(self.front)
        self.client = None
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _socket(address) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RELAY_BUFFER)
        sock.bind(address)
        sock.setblocking(False)
        return sock

    def _run(self) -> None:
        while not self._stop:
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

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self.thread.join(timeout=10)
        self.front.close()
        self.back.close()


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
    with GsoRelay(seeder_addr(one_seeder)) as relay:
        path, stats = download(tmp_path, [relay.address], *extra)
    assert sha256(str(path)) == sha256(str(song_dir / f"{SONG}.mp3"))
    assert stats["receive_offload"] is True
    # Runs came coalesced: fewer reads than datagrams, by far.
    assert stats["receive_reads"] * 4 < stats["datagrams_read"]
    if extra:  # the emulated loss still drops, and NACKs still recover
        assert stats["datagrams_dropped_by_leecher"] > 0
        assert stats["chunks_retransmitted"] > 0


def test_no_offload_reads_one_datagram_per_call(tmp_path, one_seeder,
                                                 song_dir):
    with GsoRelay(seeder_addr(one_seeder)) as relay:
        path, stats = download(tmp_path, [relay.address], "--no-offload")
    assert sha256(str(path)) == sha256(str(song_dir / f"{SONG}.mp3"))
    assert stats["receive_offload"] is False
    assert stats["receive_reads"] == stats["datagrams_read"] > 0


def test_mixed_gso_and_plain_seeders(tmp_path, seeders, song_dir):
    """One seeder's chunks come in GSO runs, another's one by one: both
    kinds of read in one download, byte-exact."""
    port = free_port()
    gso_seeder, plain_seeder = seeders(
        ("127.0.0.1", "-d", str(song_dir), "-q"),
        ("127.0.0.2", "-d", str(song_dir), "-q"), port=port)
    with GsoRelay(seeder_addr(gso_seeder)) as relay:
        path, stats = download(tmp_path, [relay.address,
                                          plain_seeder.address])
    assert sha256(str(path)) == sha256(str(song_dir / f"{SONG}.mp3"))
    assert set(stats["per_seeder"]) == {relay.address, plain_seeder.address}
    assert all(count > 0 for count in stats["per_seeder"].values())
    if gso_works():
        assert stats["receive_reads"] < stats["datagrams_read"]


def test_no_offload_on_ping_and_search(tmp_path, one_seeder):
    for command in (["ping"], ["search", "facom"]):
        run = run_leecher(*command, "--seeders", one_seeder.address,
                          "--no-offload")
        assert run.returncode == 0, run.stderr
        assert "alive" in run.stdout
