"""Per-piece integrity over real sockets: three seeders, one of them
reached through a relay on 127.0.0.4 that rewrites one chunk's data and
fixes its CRC (a seeder cannot be made to lie: it re-checks its files).
The download still verifies, and the relay is named as the culprit."""

import json
import select
import socket
import threading
import time

from conftest import free_port, run_leecher, sha256

import pieces
import protocol as p

RELAY_IP = "127.0.0.4"
# Piece 1 of the 230-chunk sample song: whichever of its chunks the
# leecher asks of the relay come wrong.
SAMPLE_CHUNKS = 230
CORRUPTED = range(*pieces.chunk_range(1, SAMPLE_CHUNKS))
RELAY_LIFETIME_S = 90  # the relay stops by itself (the test's bound)


class CorruptingRelay:
    """Forwards one leecher's datagrams to ``upstream`` and the answers
    back, the data of ``CORRUPTED`` chunks altered, their CRC made valid."""

    def __init__(self, port: int, upstream: tuple):
        self.outside = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.outside.bind((RELAY_IP, port))
        self.inside = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.inside.bind((RELAY_IP, 0))
        self.upstream, self.leecher = upstream, None
        self.corrupted = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        end = time.monotonic() + RELAY_LIFETIME_S
        while not self.stopped.is_set() and time.monotonic() < end:
            ready, _, _ = select.select([self.outside, self.inside], [], [],
                                        0.1)
            if self.outside in ready:
                data, self.leecher = self.outside.recvfrom(2048)
                self.inside.sendto(data, self.upstream)
            if self.inside in ready:
                data, _ = self.inside.recvfrom(2048)
                if self.leecher:
                    self.outside.sendto(self._tamper(data), self.leecher)

    def _tamper(self, data: bytes) -> bytes:
        fields = p.chunk_fields(data)
        if fields is None or fields[3] not in CORRUPTED:
            return data
        session, flags, file_id, index, tx_seq, send_ms = fields
        payload = bytearray(data[p.CHUNK_DATA_AT:])
        payload[100] ^= 0x55
        self.corrupted += 1
        return p.encode_chunk(file_id, index, tx_seq, send_ms,
                              bytes(payload), session, flags)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.outside.close()
        self.inside.close()


def test_a_chunk_rewritten_with_a_valid_crc_is_caught_and_its_peer_named(
        seeders, song_dir, tmp_path):
    port = free_port(("127.0.0.1", "127.0.0.2", "127.0.0.3", RELAY_IP))
    seeders(*[(ip, "-d", str(song_dir), "-m", "sequential")
              for ip in ("127.0.0.1", "127.0.0.2", "127.0.0.3")], port=port)
    relay = CorruptingRelay(port, ("127.0.0.3", port))
    stats_path = tmp_path / "stats.json"
    try:
        result = run_leecher(
            "get", "facom-sample", "-o", str(tmp_path), "--json",
            str(stats_path), "--seeders",
            f"127.0.0.1:{port},127.0.0.2:{port},{RELAY_IP}:{port}")
    finally:
        relay.close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert sha256(tmp_path / "facom-sample.mp3") \
        == sha256(song_dir / "facom-sample.mp3")
    culprit = f"{RELAY_IP}:{port}"
    stats = json.loads(stats_path.read_text())
    assert relay.corrupted >= 1
    assert stats["piece_hashes"] == "checked"
    assert stats["bad_pieces"] >= 1
    assert list(stats["bad_pieces_per_peer"]) == [culprit]
    named = [line for line in result.stdout.splitlines()
             if "failed its SHA-256" in line]
    assert named and all(culprit in line for line in named), result.stdout
    # At most two extra pieces fetched per bad piece.
    extra = sum(stats["per_peer"].values()) - stats["chunks"]
    assert extra <= 2 * pieces.PIECE_CHUNKS * stats["bad_pieces"]
