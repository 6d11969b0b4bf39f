"""Validated-peer amplification: small requests get up to 9 copies.

Issue 11: over a whole session a validated peer gets at most ~2x the
bytes of the ranges it asked for.  ``ResendQueue.budget`` is
``asked * RESEND_BUDGET + MIN_RESEND_BUDGET`` (64), capped per chunk by
``MAX_RESENDS_PER_CHUNK`` (8): a REQUEST for 1..8 chunks, NACKed in every
new round, gets each chunk 9 times (9x the asked bytes); a REQUEST of 32
chunks gets 3x.  The seeder sends these to an address that proved it
receives (the token), so this is no reflection, but it is above the
issue's 2x.  Also measured: bytes out per byte received over the session.

Fault: seed_engine.py, ``ResendQueue.__init__`` (``MIN_RESEND_BUDGET``
added whatever the size asked) and ``MAX_RESENDS_PER_CHUNK``.

Fixed (branch hardseed): the resend budget is ``RESEND_BUDGET`` (1.0)
x the chunks asked, with no floor (``MIN_RESEND_BUDGET`` is gone).
After: 2.0x the chunks asked for 1, 8, 32 and 64 chunks, 1.1x for 500.
Before: 9x for 1-8 chunks, 3-4x for 32.

Bounded: engine-level, no socket, a few hundred datagrams.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import verdict, ATTACKER, SparseSource, p, se  # noqa: E402


def session_ratio(asked: int) -> tuple[float, float]:
    source = SparseSource({"song.mp3": 2_000_000})
    info = source.index.files[0]
    engine = se.SeederEngine(source, b"k", 1)
    now = 100.0
    token = engine.token_for(ATTACKER, now)
    data = p.encode(p.Request(info.file_id, p.Order.SEQUENTIAL,
                              ((0, asked),), 64, token), 1)
    bytes_in, out = len(data), []
    engine.receive_datagram(data, ATTACKER, now)
    out += engine.datagrams_to_send(now)
    for round_ in range(1, 40):
        now += 0.1
        data = p.encode(p.Nack(0xFFFFFFFF, round_, ((0, asked),)), 1)
        bytes_in += len(data)
        engine.receive_datagram(data, ATTACKER, now)
        out += engine.datagrams_to_send(now)
    chunks = sum(isinstance(p.decode(d).message, p.Chunk) for d, _ in out)
    bytes_out = sum(len(d) for d, _ in out)
    return chunks / asked, bytes_out / bytes_in


def main() -> int:
    worst = 0.0
    for asked in (1, 8, 32, 64, 500):
        copies, per_byte = session_ratio(asked)
        worst = max(worst, copies)
        print(f"asked {asked:4d} chunks: {copies:.1f}x the chunks asked, "
              f"{per_byte:.0f} bytes out per byte in")
    verdict(worst > 2.5, "above 2x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
