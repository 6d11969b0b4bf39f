"""Session exhaustion of a peer by several hosts (still succeeds).

A leecher that shares serves few sessions (``PEER_MAX_SESSIONS`` = 8,
``PEER_MAX_SESSIONS_PER_HOST`` = 4).  From one or two hosts this is no
lock-out: a full peer evicts from the host holding the most.  From 8
hosts (loopback has 16 M addresses; on the Internet, 8 machines) each
keeping one session alive with progress (window 1, one ACK a second: a
chunk a second, never idle, never "no progress"), every honest leecher
gets BUSY for as long as the attack lasts; it backs off (0.25 s doubling
to 4 s) and fetches from the seeder and other peers instead, so its
download still finishes, but this peer's upload is lost to the swarm.

Not fixed: telling 8 honest slow leechers from 8 Sybils takes more than
a session table (a minimum rate per session would also cut off honest
leechers on slow links).  Figure: honest REQUESTs refused while 8 hosts
hold one session each.  Engine-level, no socket.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests"))
from common import verdict, p  # noqa: E402
from test_peer_engine import INFO, Harness  # noqa: E402

HONEST = ("127.0.0.200", 4000)


def honest_refused(hosts: int, per_host: int) -> tuple[int, int]:
    """(REQUESTs refused, REQUESTs) of an honest leecher, once a second
    for 60 s, while ``hosts`` x ``per_host`` sessions progress slowly."""
    h = Harness(verified=range(4))
    h.started()
    attackers = [(f"127.0.9.{k + 1}", 5000 + s) for k in range(hosts)
                 for s in range(per_host)]
    for sid, addr in enumerate(attackers, 1):
        h.send(p.Request(INFO.file_id, p.Order.SEQUENTIAL, ((0, 256),), 1,
                         h.token(addr)), addr, sid)
    refused = asked = 0
    for second in range(60):
        for sid, addr in enumerate(attackers, 1):
            h.send(p.Ack(second + 2), addr, sid)  # one more chunk
        asked += 1
        h.send(p.Request(INFO.file_id, p.Order.SEQUENTIAL, ((0, 64),), 64,
                         h.token(HONEST)), HONEST, 1000 + second)
        got = h.run(h.now + 1.0)
        refused += any(isinstance(d.message, p.Error) and a == HONEST
                       for d, a in got)
        h.send(p.Cancel(), HONEST, 1000 + second)
    return refused, asked


def main() -> None:
    for hosts, per_host in ((1, 8), (2, 4), (8, 1)):
        refused, asked = honest_refused(hosts, per_host)
        print(f"{hosts} host(s) x {per_host} session(s): honest REQUESTs "
              f"refused {refused}/{asked}")
    verdict(refused == asked, "8 hosts with one slow session each lock "
            "an honest leecher out of a peer for as long as they go on")


if __name__ == "__main__":
    main()
