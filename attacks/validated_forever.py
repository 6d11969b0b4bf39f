"""Amplification: an address once validated stays validated for good.

Tokens expire after 30-60 s (``TokenMinter``), but
``AmplificationGuard.validated`` keeps an address that once echoed a
token until 10,000 others push it out, and replies to it skip the 3x
limit.  Hours after a leecher at 127.0.0.80:4000 went away, anyone who
spoofs that address gets replies of any size without a token: here a
20-byte PING (no padding) brings a 70-byte PONG (seeder name of 40
characters), 3.5x, where an unvalidated address gets nothing for it.
Small, but above the RFC 9000 §8 factor the seeder promises.

Fault: seed_engine.py, ``AmplificationGuard.validate`` / ``allow`` (no
expiry tied to the token's lifetime).

Fixed (branch hardseed): ``AmplificationGuard.validated`` keeps, per
address, until when (``VALIDATION_S`` = 2 x ``TOKEN_EPOCH_S``, the
longest a token lives); after that the address is unvalidated again.
After: the spoofed PING an hour later gets 0.0x (no PONG: no credit).
Before: 3.5x.

Bounded: engine-level, no socket.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import verdict, SparseSource, p, se  # noqa: E402

VICTIM = ("127.0.0.80", 4000)


def ratio(engine, now: float) -> float:
    ping = p.encode(p.Ping(1))
    engine.receive_datagram(ping, VICTIM, now)
    out = sum(len(d) for d, _ in engine.datagrams_to_send(now))
    return out / len(ping)


def main() -> int:
    engine = se.SeederEngine(SparseSource({"a.mp3": 10_000}), b"k", 1,
                             name="n" * 40)
    fresh = se.SeederEngine(SparseSource({"a.mp3": 10_000}), b"k", 1,
                            name="n" * 40)
    print(f"never validated: PING gets {ratio(fresh, 100.0):.1f}x")
    token = engine.token_for(VICTIM, 100.0)
    engine.receive_datagram(p.encode(p.Search("", token)), VICTIM, 100.0)
    engine.datagrams_to_send(100.0)
    later = 100.0 + 3600.0
    print(f"token still valid an hour later: "
          f"{engine.tokens.valid(token, VICTIM, later)}")
    worst = ratio(engine, later)
    print(f"an hour later, spoofed PING gets {worst:.1f}x")
    verdict(worst > 3, "above 3x without a valid token")
    return 0


if __name__ == "__main__":
    sys.exit(main())
