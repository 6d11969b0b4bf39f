"""Which missing pieces a peer fetches next: the download's piece
policies (``Options.pick``, ``leecher.py get --pick``).

Pure: no clock, no I/O, no state.  Ties are broken by the caller's seeded
``random.Random``, so the same seed picks the same pieces.

* ``sequential``: the lowest index first (what a player wants; in a swarm
  where everyone does it, everyone holds the same pieces and has little
  to trade).
* ``rarest``: the fewest holders first, random among ties (BitTorrent's
  rarest first): pieces spread over the swarm, so peers have something
  to trade and a peer leaving loses the least.
* ``deadline``: the ``URGENT_PIECES`` pieces from the play point first,
  lowest index first (the player needs them soonest), then rarest first.
"""

from __future__ import annotations

import bisect
import heapq
import random
from typing import Sequence

POLICIES = ("sequential", "rarest", "deadline")
# 4 pieces = 256 chunks = 358 KB, ~22 s of a 128 kbit/s song: far more
# than a batch takes to arrive, and few enough that the rest of the song
# is still fetched rarest first.
URGENT_PIECES = 4


def pick(policy: str, candidates: Sequence[int], count: int,
         holders: Sequence[int], play_piece: int,
         rng: random.Random) -> list[int]:
    """Up to ``count`` of ``candidates`` (piece indices, ascending) in the
    order ``policy`` wants them.  ``holders[piece]``: how many peers hold
    it (a seeder holds every piece: counting the seeders or not changes
    no order); ``play_piece``: the piece the player is at."""
    if policy not in POLICIES:
        raise ValueError(f"unknown piece policy {policy!r}")
    if count <= 0 or not candidates:
        return []
    if policy == "sequential":
        return list(candidates[:count])
    if policy == "rarest":
        return rarest(candidates, count, holders, rng)
    low = bisect.bisect_left(candidates, play_piece)
    high = bisect.bisect_left(candidates, play_piece + URGENT_PIECES)
    urgent = list(candidates[low:high][:count])
    others = list(candidates[:low]) + list(candidates[high:])
    return urgent + rarest(others, count - len(urgent), holders, rng)


def rarest(candidates: Sequence[int], count: int, holders: Sequence[int],
           rng: random.Random) -> list[int]:
    """The ``count`` candidates with the fewest holders, random among
    ties (one draw per candidate, in order: the seed decides)."""
    if count <= 0 or not candidates:
        return []
    ties = {piece: rng.random() for piece in candidates}
    return heapq.nsmallest(count, candidates,
                           key=lambda piece: (holders[piece], ties[piece]))
