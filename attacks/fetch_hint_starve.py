"""A known partial peer that holds nothing hints (HAVE with
FLAG_FETCHING), every 0.1 s, the first 16 of 64 pieces: when does a
playing leecher (pick sequential, 400 kB/s seeder) hold them?
Simulated time only (simnet); the harness is the test's."""
import sys

sys.path[:0] = [".", "tests"]
from test_attacks import _prefix_time  # noqa: E402

if __name__ == "__main__":
    print("honest %.2f s, liar hinting %.2f s"
          % (_prefix_time(False), _prefix_time(True)))
