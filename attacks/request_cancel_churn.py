"""CPU: REQUEST + CANCEL of a 4.5 GB file, a few times a second.

Each REQUEST for the whole of a 4.5 GB file makes ``Session.__init__``
build a 3.2 M-entry array and three 3.2 MB tables at once (~0.15 s of
seeder CPU, before any shuffle), and a CANCEL throws it all away; the
per-host session limit never trips because each session is cancelled.
One validated host sends 8 REQUEST+CANCEL pairs a second (~900 B/s):
the worst PING round trip of an innocent client and a legitimate 2 MB
download (from 127.0.0.1) are measured with and without it.

Fault: seed_engine.py, ``Session.__init__`` / ``SeederEngine._start``
(work proportional to the file's chunk count per REQUEST, no rate or
cost budget per host for session starts).

Fixed (branch hardseed): a sequential session starts with nothing per
chunk (a cursor over its ranges; resend tables made at the first NACK),
and session starts are a token bucket per host IP (``StartLimiter``:
``START_RATE_CHUNKS`` = 2 M chunks/s, burst ``START_BURST_CHUNKS``; at
most 10,000 hosts tracked).  After: download 2.28 s alone, 2.37 s under
31 pairs (480 B/s), worst PING 0.008 s.  Before: worst PING 1.3-1.6 s,
the download 6.4 s instead of 2.2 s.

Bounded: loopback only (seeder 127.0.0.40, attacker 127.0.0.66, prober
127.0.0.70), at most 80 pairs, ~40 s mostly hashing; the seeder is
stopped by its PID.
"""

import os
import random
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (Client, p, sparse_file,  # noqa: E402
                    start_seeder, stop, timed_get, verdict)
from shuffle_stall import worst_rtt  # noqa: E402

SEEDER_IP = "127.0.0.40"
PAIRS_PER_S = 8


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        sparse_file(os.path.join(folder, "big.mp3"), 4_500_000_000)
        with open(os.path.join(folder, "song.mp3"), "wb") as f:
            f.write(random.Random(3).randbytes(2 * 1024 * 1024))
        proc, seeder = start_seeder(SEEDER_IP, folder, "--rate", "8000")
        try:
            with tempfile.TemporaryDirectory() as out:
                code, quiet = timed_get(seeder, out)
                print(f"download alone: exit {code}, {quiet:.2f} s; worst "
                      f"PING idle {worst_rtt(seeder, 1.0):.3f} s")
                os.remove(os.path.join(out, "song.mp3"))
                attacker = Client("127.0.0.66")
                token = attacker.token(seeder)
                big = attacker.search(seeder, "big", token)[0]
                halt, sent = threading.Event(), [0, 0]

                def churn():
                    sid = 0
                    while not halt.wait(1 / PAIRS_PER_S) and sid < 80:
                        sid += 1
                        sent[0] += attacker.send(p.Request(
                            big.file_id, p.Order.SEQUENTIAL,
                            ((0, big.chunks),), 1, token), seeder, sid)
                        sent[0] += attacker.send(p.Cancel(), seeder, sid)
                        sent[1] += 1
                        attacker.drain()
                thread = threading.Thread(target=churn)
                thread.start()
                result = {}
                probe = threading.Thread(target=lambda: result.setdefault(
                    "rtt", worst_rtt(seeder, 4.0)))
                probe.start()
                code, busy = timed_get(seeder, out)
                probe.join()
                halt.set()
                thread.join()
                took = max(busy, 4.0)
                print(f"under {sent[1]} pairs ({sent[0] / took:.0f} B/s): "
                      f"download exit {code}, {busy:.2f} s; worst PING "
                      f"{result['rtt']:.3f} s")
                verdict(result["rtt"] > 0.5 or busy > 2 * quiet,
                        "seeder stalled / download slowed")
        finally:
            stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
