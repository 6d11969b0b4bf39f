"""Send hostile datagrams to a seeder: ``python3 flood.py IP PORT COUNT``.

Random bytes, truncated and oversized datagrams, and valid datagrams with
one byte changed.  Bounded in count and in time (at most 60 s).
"""

import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
import protocol as p  # noqa: E402

VALID = [
    p.encode(p.Ping(1)), p.encode(p.Search("a", 5)),
    p.encode(p.Request(b"\1" * 8, p.Order.RANDOM, ((0, 100000),), 4096, 7)),
    p.encode(p.Nack(10**6, 1, ((0, 10**6),)), session=3),
    p.encode(p.Ack(10**9), session=3), p.encode(p.Cancel(), session=3),
    p.encode(p.Chunk(b"\2" * 8, 1, 1, 1, b"x" * 1400)),
    p.encode(p.Search("", 5, page=3)),
    p.encode(p.Nack(2**32 - 1, 65535, ((0, 2**32 - 1),) * p.MAX_NACK_RANGES),
             session=3),
    p.encode(p.Request(b"\1" * 8, p.Order.SEMI_RANDOM,
                       ((0, 2**32 - 1),) * p.MAX_REQUEST_RANGES, 65535, 7)),
]


def hostile(rng: random.Random, n: int) -> bytes:
    kind = n % 4
    if kind == 0:
        return rng.randbytes(rng.randint(0, 1472))
    valid = VALID[n % len(VALID)]
    if kind == 1:
        return valid[:rng.randint(0, len(valid) - 1)]
    if kind == 2:
        return valid + rng.randbytes(rng.randint(1, 3000))
    data = bytearray(valid)
    data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def main() -> int:
    ip, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    assert ip.startswith("127."), "loopback only"
    rng = random.Random(1)
    deadline = time.monotonic() + 60
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for n in range(count):
            if time.monotonic() > deadline:
                break
            try:
                sock.sendto(hostile(rng, n), (ip, port))
                sent += 1
            except OSError:
                time.sleep(0.001)
            if n % 200 == 0:
                time.sleep(0.002)  # let the receiver's buffer drain a bit
    print(sent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
