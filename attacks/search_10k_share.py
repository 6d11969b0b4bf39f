"""Measure: 10 SEARCH/s on a 10,000-file share while a download runs (a
4000 kbit/s emulated link: ~4 s).

Issue 11's target: a legitimate download finishes and one SEARCH gets at
most one page back.  A real seeder shares 10,000 small files and a 2 MB
song; a validated attacker sends 10 SEARCH a second (a fresh query each
time, so that no cached match list helps, and deep pages of the whole
share) while ``leecher.py get song`` runs from another loopback address.
Prints the download's time with and without the attack, the replies per
SEARCH and bytes out per byte in.

A measurement (the seeder withstands it here).  Bounded: loopback only
(seeder 127.0.0.37, attacker 127.0.0.66), at most ~60 s; the seeder is
stopped by its PID.
"""

import os
import random
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Client, p, start_seeder, stop, timed_get  # noqa: E402

SEEDER_IP = "127.0.0.37"
SONG = random.Random(5).randbytes(2 * 1024 * 1024)


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        for n in range(10_000):
            with open(os.path.join(folder, f"track {n:05d} band {n % 97}"
                                   f".mp3"), "wb") as f:
                f.write(b"%05d" % n)
        with open(os.path.join(folder, "song.mp3"), "wb") as f:
            f.write(SONG)
        t0 = time.monotonic()
        proc, seeder = start_seeder(SEEDER_IP, folder, "--rate", "4000")
        print(f"seeder up in {time.monotonic() - t0:.1f} s")
        try:
            with tempfile.TemporaryDirectory() as out:
                code, quiet = timed_get(seeder, out)
                print(f"download without attack: exit {code}, {quiet:.2f} s")
                attacker = Client("127.0.0.66")
                token = attacker.token(seeder)
                stop_event, counts = threading.Event(), [0, 0, 0]

                def flood():
                    n = 0
                    while not stop_event.wait(0.1) and n < 600:
                        n += 1
                        query = (f"track {n % 10} band mp3 {n}"
                                 if n % 2 else "")
                        counts[0] += attacker.send(
                            p.Search(query, token, n % 600), seeder)
                        counts[2] += 1
                        counts[1] += attacker.drain()
                thread = threading.Thread(target=flood)
                thread.start()
                time.sleep(0.5)
                os.remove(os.path.join(out, "song.mp3"))
                code, busy = timed_get(seeder, out)
                stop_event.set()
                thread.join()
                time.sleep(0.3)
                counts[1] += attacker.drain()
                print(f"download under 10 SEARCH/s: exit {code}, "
                      f"{busy:.2f} s")
                print(f"{counts[2]} SEARCHes, {counts[1]} replies, "
                      f"{attacker.received / counts[0]:.1f} bytes out per "
                      f"byte in")
        finally:
            stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
