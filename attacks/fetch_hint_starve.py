"""A known partial peer that holds nothing and hints (HAVE with
FLAG_FETCHING), every second, the pieces just ahead of the play point:
when does the leecher (pick sequential / deadline) hold the first
TARGET pieces in order (what playback needs)?
Simulated time only (simnet)."""
import sys

sys.path[:0] = [".", "tests"]
import download_engine as de  # noqa: E402
import pieces  # noqa: E402
from test_swarm_download import Swarm  # noqa: E402

COUNT = 64
HINTED = 16  # pieces [0, HINTED) hinted for ever
TARGET = 16  # the prefix playback waits for


def prefix_at(pick: str, liar: bool) -> float:
    swarm = Swarm(COUNT, [set(), None], rates=[0, 400_000])
    engine = swarm.start(de.Options(seed=1, pick=pick), playhead=0)
    start = swarm.net.now
    for _ in range(600):  # 60 s in 0.1 s steps, bounded
        if liar:
            engine.peer_fetching(swarm.addrs[0], ((0, HINTED),),
                                 swarm.net.now)
        swarm.net.run(until=swarm.net.now + 0.1)
        if engine.verified_prefix() >= TARGET * pieces.PIECE_CHUNKS:
            return swarm.net.now - start
    return float("inf")


if __name__ == "__main__":
    for pick in ("sequential", "deadline"):
        print(pick, "honest %.2f s" % prefix_at(pick, False),
              "liar hinting %.2f s" % prefix_at(pick, True))
