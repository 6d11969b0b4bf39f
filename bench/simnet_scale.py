"""The simulated network's own cost at scale: events per second of wall
time on a toy of many hosts (no real engine: each host sends a few
numbered datagrams to other hosts on a timer and answers nothing), so
what is measured is ``simnet.py``'s loop (finding the next event),
not the engines.

Printed: hosts, events handled, wall seconds, events per second.
"""

from __future__ import annotations

import argparse
import sys
import time

import common as c

import netem  # noqa: E402  (common puts the project on sys.path)
import simnet  # noqa: E402


class Chatter:
    """Sends ``count`` datagrams, one every ``every`` s, to hosts further
    along the ring (its whole schedule made up front); counts what it
    receives."""

    def __init__(self, n: int, hosts: int, count: int, every: float):
        first = every * (n % 7) / 7  # spread the first wake-ups
        self.schedule = [(first + k * every, address((n + 1 + 37 * k)
                                                     % hosts))
                         for k in range(count)]
        self.next = 0       # the next entry of the schedule
        self.got = 0
        self.due: list = []

    def receive_datagram(self, data, addr, now):
        self.got += 1

    def datagrams_to_send(self, now):
        due, self.due = self.due, []
        return due

    def get_timer(self):
        if self.next < len(self.schedule):
            return self.schedule[self.next][0]
        return None

    def handle_timer(self, now):
        self.due.append((b"%d" % self.next, self.schedule[self.next][1]))
        self.next += 1


def address(n: int) -> tuple:
    return (f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", 1)


def measure(hosts: int, count: int) -> tuple[int, float]:
    net = simnet.SimNet(seed=1, keep_trace=False,
                        default_link=netem.LinkSpec(delay_s=0.013))
    for n in range(hosts):
        net.add_host(address(n), Chatter(n, hosts, count, 0.1))
    started = time.perf_counter()
    result = net.run()
    return result.events, time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--count", type=int, default=10,
                        help="datagrams each host sends")
    args = parser.parse_args(argv)
    if not 1 <= args.hosts <= 100_000 or not 1 <= args.count <= 1000:
        parser.error("1-100000 hosts, 1-1000 datagrams each")
    c.header(f"simnet at scale: {args.hosts} toy hosts x {args.count} "
             f"datagrams", __file__, sys.argv[1:] if argv is None else argv)
    events, wall = measure(args.hosts, args.count)
    print(f"{args.hosts} hosts: {events} events in {wall:.2f} s wall = "
          f"{events / wall:,.0f} events/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
