"""Leecher crash: a CHUNK with tx_seq near 2^32 makes the ACK overflow.

``Transfer.grant`` computes the ACK limit as ``highest_seq + 1 + window``
with ``highest_seq`` taken from the chunk's u32 ``tx_seq`` field; a seeder
that sends ``tx_seq = 0xFFFFFFFF`` makes that limit exceed 2^32 - 1, and
``protocol.encode(Ack(limit))`` raises ``struct.error`` out of
``DownloadEngine.receive_batch`` (the engine promises never to raise for
what a peer sends).  ``probe_credit`` and the NACK's limit overflow alike.

A fake seeder on 127.0.0.39 answers PING, SEARCH (a real song's fields),
and the REQUEST with the song's first 64 chunks, correct bytes, each with
``tx_seq = 0xFFFFFFFF``.  Shown twice: on the engine (the exception) and
on the real ``leecher.py get`` (exit code and last lines).

Fault: download_engine.py, ``Transfer.grant`` / ``Transfer.probe_credit``
(no clamp to u32; or ``receive_batch`` trusting ``tx_seq``).

Fixed (branch hardleech): the ACK/NACK limit is clamped to 2^32 - 1
(``download_engine.MAX_LIMIT``).  Before: "unexpected error: 'I' format
requires 0 <= number <= 4294967295", exit 1.  After: the engine raises
nothing; ``get`` ends with "no progress for 5 s" (the fake seeder sends
only 64 chunks), partial file kept: "attack failed".

Bounded: loopback only; the fake seeder stops after the leecher exits or
20 s.
"""

import hashlib
import os
import random
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PYTHON, ROOT, p, verdict  # noqa: E402

import download_engine as de  # noqa: E402

FAKE_IP = "127.0.0.39"
SONG = random.Random(9).randbytes(300_000)
SHA = hashlib.sha256(SONG).digest()
INFO = p.FileInfo(p.file_id_of(SHA), len(SONG), p.chunk_count(len(SONG)),
                  p.CHUNK_SIZE, 0, SHA, "song.mp3")
HUGE_SEQ = 0xFFFFFFFF


def chunk(index: int, sid: int) -> bytes:
    data = SONG[index * p.CHUNK_SIZE:(index + 1) * p.CHUNK_SIZE]
    return p.encode_chunk(INFO.file_id, index, HUGE_SEQ, 0, data, sid)


def on_engine() -> None:
    engine = de.DownloadEngine(INFO, [de.Peer(("127.0.0.1", 9), rtt=0.01)],
                               0.0, de.Options(seed=1))
    engine.start(0.0)
    ((request, _),) = engine.datagrams_to_send(0.0)
    sid = p.decode(request).session
    try:
        for index in range(64):
            engine.receive_datagram(chunk(index, sid), ("127.0.0.1", 9),
                                    0.01)
        print("engine: no exception")
    except Exception as exc:  # what the attack shows
        print(f"engine: {type(exc).__name__}: {exc}")


def fake_seeder(sock, stop: threading.Event) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data, addr = sock.recvfrom(2048)
        except socket.timeout:
            continue
        datagram = p.decode(data)
        msg = datagram.message
        if isinstance(msg, p.Ping):
            sock.sendto(p.encode(p.Pong(msg.nonce, 1, 1, 0, 0, 50, "liar")),
                        addr)
        elif isinstance(msg, p.Search):
            sock.sendto(p.encode(p.SearchResult((INFO,)), 0, p.FLAG_LAST),
                        addr)
        elif isinstance(msg, p.Request):
            for index in range(64):
                sock.sendto(chunk(index, datagram.session), addr)


def on_leecher() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((FAKE_IP, 0))
    stop = threading.Event()
    thread = threading.Thread(target=fake_seeder, args=(sock, stop))
    thread.start()
    try:
        import tempfile
        with tempfile.TemporaryDirectory() as out:
            result = subprocess.run(
                [PYTHON, os.path.join(ROOT, "leecher.py"), "get", "song",
                 "--seeders", f"{FAKE_IP}:{sock.getsockname()[1]}", "-o",
                 out, "--timeout", "5"], capture_output=True, text=True,
                timeout=20)
    finally:
        stop.set()
        thread.join()
        sock.close()
    tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
    print(f"leecher.py: exit {result.returncode}")
    for line in tail:
        print("  " + line)
    crashed = "struct.error" in result.stderr or "unexpected" in \
        (result.stdout + result.stderr)
    verdict(crashed, "the leecher crashed")


if __name__ == "__main__":
    on_engine()
    t0 = time.monotonic()
    on_leecher()
