"""Leecher: only the first SEARCH_RESULT page is ever asked for.

The seeder now answers one page per SEARCH (``FLAG_PAGE`` asks for page
N; without ``FLAG_LAST`` there are more), but ``leecher.search`` never
sends a page number: it resends the same page-0 SEARCH on each of its 5
tries and waits the whole backoff (~3 s) for a ``FLAG_LAST`` that never
comes.  With 300 songs shared, ``leecher.py search song`` lists only the
first page and takes ~3 s; ``get NAME`` cannot find a song whose name is
not on page 0 of the query it sends (the name itself, so it only shows
with a query that matches many).

Fault: leecher.py, ``search`` / ``_take_result`` (no ``Search(query,
token, page + 1)`` after a page without ``FLAG_LAST``).

Fixed (branch hardleech): ``leecher.Searching`` asks page N + 1 after a
page without ``FLAG_LAST`` (each page retried like PING, a page
answered twice not taken for the next).  Before: 20 of 300 songs in
3.1 s.  After: 300 of 300 in 0.1 s: "attack failed".

Bounded: loopback only (seeder 127.0.0.35), one leecher run; the seeder
started here is stopped by its PID.
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import verdict, run_leecher, start_seeder, stop  # noqa: E402

SEEDER_IP = "127.0.0.35"
SONGS = 300


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        for n in range(SONGS):
            with open(os.path.join(folder, f"song {n:03d}.mp3"), "wb") as f:
                f.write(b"%d" % n * 100)
        proc, seeder = start_seeder(SEEDER_IP, folder)
        try:
            t0 = time.monotonic()
            result = run_leecher("search", "song", "--seeders",
                                 f"{seeder[0]}:{seeder[1]}")
            took = time.monotonic() - t0
        finally:
            stop(proc)
    listed = [line for line in result.stdout.splitlines()
              if line.startswith("song ")]
    print(f"{SONGS} songs shared; the leecher listed {len(listed)} "
          f"in {took:.1f} s (exit {result.returncode})")
    verdict(len(listed) < SONGS, "results lost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
