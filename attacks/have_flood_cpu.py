"""HAVE flood on a big song: scheduling passes per HAVE datagram.

A known partial peer sends HAVEs of one new piece each.  Before the fix
every one ran a whole scheduling pass (every idle peer against every
missing piece): 23 ms per 18-byte datagram on a 10,000-piece song with
32 known peers.  Now a HAVE only schedules when its peer is idle, may
take work and gained a piece we miss: a busy attacker costs nothing.
What is left: an idle attacker HAVEing pieces we miss that others are
fetching (claimed, not endgame) gets one pass per such piece, at most
once per piece (its holdings only grow), so at most ~ (claimed pieces)
passes in all.  Run: python attacks/have_flood_cpu.py [pieces]"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import download_engine as de  # noqa: E402
import protocol as p  # noqa: E402
import scheduler  # noqa: E402
from test_attacks import engine_with_idle_peers  # noqa: E402

ATTACKER = ("127.0.0.66", 5000)


def engine_for(count: int) -> de.DownloadEngine:
    """32 peers known: 31 holding nothing, and the attacker."""
    engine = engine_with_idle_peers(count, 31)
    engine.add_peer(de.Peer(ATTACKER, rtt=0.01, holds=p.RangeSet()), 0.0)
    engine.datagrams_to_send(0.0)
    return engine


def flood(engine, pieces_told, label: str) -> float:
    passes = []
    real = scheduler.Scheduler.fill
    scheduler.Scheduler.fill = lambda self, now: (passes.append(now),
                                                  real(self, now))[1]
    began = time.process_time()
    for piece in pieces_told:
        engine.peer_has(ATTACKER, [(piece, piece + 1)], 0.01)
    spent = time.process_time() - began
    scheduler.Scheduler.fill = real
    told = max(1, len(pieces_told))
    print(f"{label}: {told} HAVEs, {len(passes)} scheduling passes, "
          f"{spent * 1000 / told:.3f} ms CPU per HAVE")
    return spent / told


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    engine = engine_for(count)
    engine.peer_has(ATTACKER, [(count - 1, count)], 0.0)  # busy now
    busy = flood(engine, range(count - 2, count - 302, -1),
                 "busy attacker, new pieces")
    engine = engine_for(count)
    claimed = sorted({n for t in engine.scheduler.live
                      for start, end in t.ranges
                      for n in range(start // 64, (end - 1) // 64 + 1)})
    flood(engine, claimed, "idle attacker, pieces others fetch")
    print("ATTACK SUCCEEDS: a pass per HAVE" if busy > 0.005
          else "attack failed")


if __name__ == "__main__":
    main()
