"""Measure: the costliest single datagrams of a validated peer.

Issue 11's first target: any single datagram from a validated peer
stalls a real seeder <= 0.5 s and keeps its RSS <= 100 MB, with a 50 MB
and a 4.5 GB (sparse) file shared.  Datagrams sent, one at a time, each
followed by the worst PING round trip of an innocent prober and the
seeder's RSS:

- REQUEST of 179 x [0, 2^32-1), RANDOM order, window 4096 (the issue's
  crash), on each file;
- NACK of 181 x [0, 2^32-1) on that session, new round;
- the 16th one-chunk REQUEST from the same host (see
  ``tiny_requests_memory.py``: it failed the RSS target before the fix).

Branch hardseed, measured: idle RSS 28 MB; 21 MB file REQUEST 0.025 s /
NACK 0.005 s, 28 MB; 4.5 GB file REQUEST 0.158 s, 43 MB, NACK 0.050 s,
48 MB; 16th one-chunk REQUEST 0.008 s, 35 MB: all within the target.

Prints a table; this one is a measurement, not an attack that succeeds.
Bounded: loopback only (seeder 127.0.0.36, attacker 127.0.0.66, prober
127.0.0.70), ~40 s mostly hashing; the seeder is stopped by its PID.
"""

import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (Client, p, process_rss_mb, sparse_file,  # noqa: E402
                    start_seeder, stop)
from shuffle_stall import worst_rtt  # noqa: E402

SEEDER_IP = "127.0.0.36"


def measure(seeder, pid, label, send) -> None:
    result = {}
    probe = threading.Thread(target=lambda: result.setdefault(
        "rtt", worst_rtt(seeder, 2.0)))
    probe.start()
    time.sleep(0.1)
    send()
    probe.join()
    print(f"{label:58s} worst PING {result['rtt']:.3f} s, "
          f"RSS {process_rss_mb(pid):.0f} MB")


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        sparse_file(os.path.join(folder, "mid.mp3"), 50_000_000)
        sparse_file(os.path.join(folder, "big.mp3"), 4_500_000_000)
        proc, seeder = start_seeder(SEEDER_IP, folder)
        try:
            attacker = Client("127.0.0.66")
            token = attacker.token(seeder)
            files = {f.name: f for f in attacker.search(seeder, "mp3", token)}
            print(f"seeder RSS idle: {process_rss_mb(proc.pid):.0f} MB")
            everything = ((0, 0xFFFFFFFF),)
            for n, name in enumerate(("mid.mp3", "big.mp3")):
                info, sid = files[name], n + 1
                measure(seeder, proc.pid, f"{name}: REQUEST 179 x whole",
                        lambda: attacker.send(p.Request(
                            info.file_id, p.Order.RANDOM,
                            everything * p.MAX_REQUEST_RANGES, 4096, token,
                            50, 9), seeder, sid))
                measure(seeder, proc.pid, f"{name}: NACK 181 x whole",
                        lambda: attacker.send(p.Nack(
                            0xFFFFFFFF, 1, everything * p.MAX_NACK_RANGES),
                            seeder, sid))
                attacker.send(p.Cancel(), seeder, sid)
                attacker.drain()
            big = files["big.mp3"]
            for sid in range(10, 25):
                attacker.send(p.Request(big.file_id, p.Order.SEQUENTIAL,
                                        ((0, 1),), 1, token), seeder, sid)
            time.sleep(0.5)
            measure(seeder, proc.pid, "big.mp3: 16th one-chunk REQUEST",
                    lambda: attacker.send(p.Request(
                        big.file_id, p.Order.SEQUENTIAL, ((0, 1),), 1,
                        token), seeder, 25))
            attacker.drain()
        finally:
            stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
