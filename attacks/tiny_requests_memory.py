"""Memory: a one-chunk REQUEST on a 4.5 GB file costs the seeder ~10 MB.

``Session`` sizes three per-chunk tables by the *file's* chunk count,
not by the ranges asked: ``FirstPass.waiting``, ``ResendQueue.queued``
and ``ResendQueue.resends`` are each ``bytearray(info.chunks)`` (3.2 MB
apiece for 4.5 GB), filled at once.  ``MAX_QUEUED_CHUNKS`` counts only the
chunks asked (1 here), so it never bounds this.  One validated host opens
16 sessions (``MAX_SESSIONS_PER_HOST``) of [0, 1) with 16 datagrams of
52 bytes; a second host 16 more.  Measured on the real seeder: RSS grows
~9.6 MB per datagram (issue 11 target: RSS <= 100 MB); 256 sessions (16
hosts) would hold ~2.5 GB.

Fault: seed_engine.py, ``FirstPass.__init__`` and ``ResendQueue.__init__``
(``bytearray(total)``), and ``SessionTable.make_room`` (counts
``len(first_pass)``, not the memory a session holds).

Fixed (branch hardseed): per-chunk tables are indexed by position among
the chunks *asked* (``Asked``), a sequential order is a cursor over the
ranges, the resend tables are made at the first NACK, and every session
counts ``asked + SESSION_COST_CHUNKS`` against ``MAX_QUEUED_CHUNKS``.
After: RSS 27 -> 27 MB for the 32 REQUESTs (0.0 MB per datagram).
Before: 23 -> 174 MB after 16 (~9.4 MB per datagram).

Bounded: loopback only (seeder 127.0.0.32, attackers 127.0.0.66-67), 32
datagrams, ~30 s mostly hashing the sparse file; the seeder started here
is stopped by its PID.
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (Client, p, process_rss_mb, sparse_file,  # noqa: E402
                    start_seeder, stop, verdict)

SEEDER_IP = "127.0.0.32"
HOSTS = ("127.0.0.66", "127.0.0.67")


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        sparse_file(os.path.join(folder, "big.mp3"), 4_500_000_000)
        proc, seeder = start_seeder(SEEDER_IP, folder)
        try:
            before = process_rss_mb(proc.pid)
            print(f"seeder RSS before: {before:.0f} MB")
            sent = 0
            for host in HOSTS:
                client = Client(host)
                token = client.token(seeder)
                big = client.search(seeder, "big", token)[0]
                for sid in range(1, 17):
                    sent += client.send(p.Request(
                        big.file_id, p.Order.SEQUENTIAL, ((0, 1),), 1,
                        token), seeder, sid)
                time.sleep(1.0)
                client.drain()
                rss = process_rss_mb(proc.pid)
                print(f"after 16 more one-chunk REQUESTs from {host}: RSS "
                      f"{rss:.0f} MB (+{rss - before:.0f} MB for {sent} "
                      f"bytes sent)")
            grew = process_rss_mb(proc.pid) - before
            per = grew / 32
            print(f"{per:.1f} MB per datagram; 256 sessions: "
                  f"~{per * 256 / 1000:.1f} GB")
            verdict(grew > 100, "RSS > 100 MB")
        finally:
            stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
