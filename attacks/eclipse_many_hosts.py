"""Eclipse by many hosts (still succeeds; needs one IP per 8 places).

One host may hold at most 8 (``peer_directory.MAX_PER_HOST``) of a
seeder's directory entries per song and of a leecher's known peers, so
one machine with many sockets no longer crowds honest peers out (tests/
test_attacks.py).  An attacker with many IP addresses still can: on
loopback every 127.x.y.z is free, on the Internet it takes a botnet or
a /24.  Here 40 hosts, one port each, HAVE a seeder and the leecher:
the seeder's GET_PEERS answer lists no honest peer, and the leecher's
table of known peers (``MAX_KNOWN_PEERS`` = 32) is full, so an honest
peer that comes later is not taken.  The download itself still comes
from the seeders (Sybils that stall or lie are given up on or dropped).

Not fixed: a per-/24 cap would also cap a classroom on 127.0.0.x.
Engine-level, no socket.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests"))
from common import verdict  # noqa: E402
from test_attacks import directory_answer  # noqa: E402
from test_peer_engine import Harness  # noqa: E402

HOSTS = 40
SYBILS = [(f"127.0.{200 + k // 250}.{k % 250 + 1}", 4000)
          for k in range(HOSTS)]
HONEST = [("127.0.0.21", 4000), ("127.0.0.22", 4000)]


def directory_listing() -> tuple:
    return directory_answer(HONEST + SYBILS)


def honest_joins() -> bool:
    h = Harness()
    h.started()
    for addr in SYBILS:
        h.run(h.now + 0.3)
        h.join(addr)
    h.run(h.now + 1.0)
    return h.join(HONEST[0])


def main() -> None:
    listed = directory_listing()
    honest_listed = sum(1 for addr in listed if addr in HONEST)
    joined = honest_joins()
    print(f"{HOSTS} hosts: a GET_PEERS lists {honest_listed} of "
          f"{len(HONEST)} honest peers ({len(listed)} listed); an honest "
          f"peer joins the leecher afterwards: {joined}")
    verdict(honest_listed == 0 or not joined, f"{HOSTS} hosts eclipse "
            "honest peers from the directory and the leecher")


if __name__ == "__main__":
    main()
