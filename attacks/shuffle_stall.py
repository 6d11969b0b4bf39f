"""Stall: sessions that are all building their random order at once.

``SeederEngine._make`` gives *every* session that is still shuffling its
sending order ``ORDER_STEPS`` (20,000) swaps per call, and a session that
can send only one chunk (window 1) uses up just one of the call's
``most`` datagrams, so one call shuffles for up to 64 such sessions in a
row.  Validated hosts each open 16 sessions (``MAX_SESSIONS_PER_HOST``)
of a 21 MB file in RANDOM order with window 1: the seeder's loop stops
answering for the whole shuffle.  Measured here as the worst PING round
trip of an innocent client during the attack (issue 11: stall <= 0.5 s).

Fault: seed_engine.py, ``SeederEngine._make`` (``session.build(
ORDER_STEPS)`` per building session with no budget per call) with
``Session.can_send`` granting one datagram per turn to window-1 sessions.

Fixed (branch hardseed): ``SeederEngine._build_orders`` shuffles
``ORDER_STEPS`` swaps per call for *all* building sessions together,
``BUILD_SLICE`` each in turn.  After: worst PING 0.109 s (idle 0.004 s).
Before: 1.0-1.2 s.

Bounded: loopback only (seeder 127.0.0.33, attackers 127.0.0.61-64,
prober 127.0.0.70), 64 REQUESTs, ~20 s; the seeder started here is
stopped by its PID.
"""

import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (Client, p, sparse_file, start_seeder,  # noqa: E402
                    stop, verdict)

SEEDER_IP = "127.0.0.33"
ATTACKERS = [f"127.0.0.{n}" for n in range(61, 65)]
PROBER = "127.0.0.70"


def worst_rtt(seeder, seconds: float) -> float:
    """PING every 20 ms for ``seconds``; the longest wait for a PONG."""
    client = Client(PROBER)
    worst, nonce, end = 0.0, 0, time.monotonic() + seconds
    while time.monotonic() < end:
        nonce += 1
        t0 = time.monotonic()
        client.send(p.Ping(nonce, 44), seeder)
        while True:
            got = client.recv(5.0)
            if got is None or (isinstance(got.message, p.Pong)
                               and got.message.nonce == nonce):
                break
        worst = max(worst, time.monotonic() - t0)
        time.sleep(0.02)
    return worst


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        sparse_file(os.path.join(folder, "mid.mp3"), 21_000_000)
        proc, seeder = start_seeder(SEEDER_IP, folder)
        try:
            print(f"worst PING RTT, idle: {worst_rtt(seeder, 1.0):.3f} s")
            clients = []
            for host in ATTACKERS:
                client = Client(host)
                token = client.token(seeder)
                mid = client.search(seeder, "mid", token)[0]
                clients.append((client, token, mid))
            result = {}
            probe = threading.Thread(target=lambda: result.setdefault(
                "rtt", worst_rtt(seeder, 6.0)))
            probe.start()
            time.sleep(0.2)
            for client, token, mid in clients:
                for sid in range(1, 17):
                    client.send(p.Request(mid.file_id, p.Order.RANDOM,
                                          ((0, mid.chunks),), 1, token, 50,
                                          sid), seeder, sid)
            probe.join()
            for client, _, _ in clients:
                client.drain()
            print(f"worst PING RTT while 64 window-1 RANDOM sessions "
                  f"build: {result['rtt']:.3f} s")
            verdict(result["rtt"] > 0.5, "stall > 0.5 s")
        finally:
            stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
