"""Leecher trust: a seeder's session may fill chunks it was never asked for.

``DownloadEngine.receive_batch`` checks that a CHUNK comes from an
(address, session) it asked, but not that the chunk's index is in that
transfer's ranges.  A lying seeder that is one of two sources answers
its REQUEST at once with CRC-valid chunks of *every* index (wrong bytes)
before the honest seeder's chunks arrive: the leecher takes them all,
including the honest seeder's share, and the file is wrong (the SHA-256
check at the end then fails the whole download; the leecher cannot tell
which seeder lied).  Engine-level, in virtual time, with the real
``SeederEngine`` as the honest seeder.

Fault: download_engine.py, ``DownloadEngine.receive_batch`` (no
``index in transfer.ranges`` check: ``places[index]`` tells which transfer
a chunk belongs to now).

Fixed (branch hardleech): ``Arrivals.take`` keeps only the part of each
run inside the transfer's ranges (one RangeSet intersection per run)
and counts the rest (``counters.out_of_share``, JSON
``out_of_share_chunks``).  Before: asked 762 of 1498, stored 1498, 1498
wrong.  After: stored 762 (its own share, still wrong: only the whole
or piece hash can tell), 736 out of share dropped, the honest share
byte-exact: "attack failed".

Bounded: no socket; one simulated download.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, ".."))

from common import verdict  # noqa: E402
from test_attacks import (CHUNK, LEECHER, SEEDER, SEEDER2, SONG,  # noqa
                          SONG_INFO, World, new_seeder, p)


def main() -> int:
    honest = new_seeder()
    world = World({SEEDER: new_seeder(), SEEDER2: honest})
    world.start()
    liar_transfers = [t for t in world.download.transfers.values()
                      if t.peer.addr == SEEDER]
    asked = sum(t.ranges.count() for t in liar_transfers)
    world.seeders = {SEEDER2: honest}  # the liar answers by hand
    sid = liar_transfers[0].sid
    for index in range(SONG_INFO.chunks):
        size = min(CHUNK, SONG_INFO.size - index * CHUNK)
        world.put(p.encode_chunk(SONG_INFO.file_id, index, index, 0,
                                 b"\xee" * size, sid), SEEDER, LEECHER,
                  at=world.now + 0.001)
    world.run(until=140.0)
    engine = world.download
    from_liar = engine.counters.stored_from.get(SEEDER, 0)
    wrong = sum(world.fresh[i] != SONG[i * CHUNK:(i + 1) * CHUNK]
                for i in range(SONG_INFO.chunks))
    print(f"liar was asked for {asked} of {SONG_INFO.chunks} chunks; the "
          f"leecher stored {from_liar} from it; {wrong} chunks wrong; "
          f"complete={engine.complete}")
    verdict(from_liar > asked, "chunks outside the liar's share taken")
    return 0


if __name__ == "__main__":
    sys.exit(main())
