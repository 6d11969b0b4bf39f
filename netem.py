"""An emulated network link: loss, duplication, delay, jitter, reordering
and a rate, decided by a seeded RNG.  Pure: no clock, no socket.

One ``Link`` models **one direction of one link**.  The seeder engine puts
what it sends on one (``--loss``, ``--rate`` …); the simulated network
(``simnet.py``) gives every one-way link its own.  The same seed and the
same calls give the same decisions, so a run can be repeated.

API::

    link = Link(LinkSpec(loss=0.1, delay_s=0.02, rate_Bps=64_000), rng_seed=1)
    link.ready_at(now)        # earliest time the next datagram may leave
    link.next_slot()          # the same without ``now`` (for a timer)
    link.spend(nbytes, now)   # take nbytes from the token bucket
    link.send(nbytes, now)    # -> tuple of arrival times, one per copy:
                              #    () lost, (t,) delivered, (t1, t2) duplicated
    link.arrival(now)         # arrival time of a datagram that is never lost
                              # (for replies that must keep their order)

``send`` spends the bucket; with a rate, a datagram sent before
``ready_at(now)`` waits in the link (departure = ``ready_at(now)``), so a
sender that ignores pacing still gets the rate, and one that waits for
``ready_at`` never queues.  Jitter varies the delay but keeps the order,
as one network path does; only ``reorder`` lets a later datagram overtake
an earlier one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# The bucket holds this many full datagrams: a short burst at the start of
# a turn is let through, the long-run rate is exact.
BURST_DATAGRAMS = 16
DATAGRAM_BYTES = 1472  # protocol.MAX_DATAGRAM (no import: netem is generic)
# A reordered datagram is held this much longer at most (on top of delay
# and jitter), so that a few later datagrams overtake it.
DEFAULT_REORDER_HOLD_S = 0.02


@dataclass(frozen=True)
class LinkSpec:
    """What a link does to each datagram.  Probabilities are 0..1."""

    loss: float = 0.0  # dropped
    dup: float = 0.0  # delivered twice
    delay_s: float = 0.0  # one-way delay
    jitter_s: float = 0.0  # extra random delay, uniform in [0, jitter_s]
    reorder: float = 0.0  # held back an extra random delay: later ones pass
    rate_Bps: float = 0.0  # bytes per second; 0 = unlimited
    reorder_hold_s: float = DEFAULT_REORDER_HOLD_S

    def __post_init__(self):
        for name in ("loss", "dup", "reorder"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        for name in ("delay_s", "jitter_s", "rate_Bps", "reorder_hold_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    @property
    def transparent(self) -> bool:
        """Nothing to emulate: a sender may skip the link altogether."""
        return not (self.loss or self.dup or self.delay_s or self.jitter_s
                    or self.reorder or self.rate_Bps)


class Link:
    """One direction of one emulated link (see the module docstring)."""

    def __init__(self, spec: LinkSpec = LinkSpec(), rng_seed: int = 0):
        self.spec = spec
        self.rng = random.Random(rng_seed)
        self.transparent = spec.transparent
        self._tat = float("-inf")  # GCRA: when the bucket is full again
        self._burst_s = (BURST_DATAGRAMS * DATAGRAM_BYTES / spec.rate_Bps
                         if spec.rate_Bps else 0.0)
        self._last_arrival = float("-inf")  # keeps the order under jitter

    # ------------------------------------------------------------- rate
    def next_slot(self) -> float:
        """When the bucket next lets a datagram go (-inf: now)."""
        if not self.spec.rate_Bps:
            return float("-inf")
        return self._tat - self._burst_s

    def ready_at(self, now: float) -> float:
        return max(now, self.next_slot())

    def spend(self, nbytes: int, now: float) -> None:
        """Take ``nbytes`` from the token bucket (the generic cell rate
        algorithm: ``_tat`` advances by the bytes' transmission time)."""
        if self.spec.rate_Bps:
            self._tat = max(self._tat, now) + nbytes / self.spec.rate_Bps

    # ----------------------------------------------------- per datagram
    def send(self, nbytes: int, now: float) -> tuple[float, ...]:
        """Put one datagram of ``nbytes`` on the link at ``now``; the
        arrival time of each copy that gets through."""
        departure = self.ready_at(now)
        self.spend(nbytes, departure)
        spec, rng = self.spec, self.rng
        if spec.loss and rng.random() < spec.loss:
            return ()
        first = self.arrival(departure)
        if spec.dup and rng.random() < spec.dup:
            return (first, self.arrival(departure))
        return (first,)

    def arrival(self, departure: float) -> float:
        """When a datagram that leaves at ``departure`` arrives (never
        lost).  In order, unless ``reorder`` holds this one back."""
        spec = self.spec
        due = departure + spec.delay_s
        if spec.jitter_s:
            due += self.rng.uniform(0.0, spec.jitter_s)
        if spec.reorder and self.rng.random() < spec.reorder:
            # Held back: later datagrams may overtake it, so it does not
            # move the in-order horizon.
            return max(due, self._last_arrival) + self.rng.uniform(
                0.0, spec.reorder_hold_s)
        self._last_arrival = max(self._last_arrival, due)
        return self._last_arrival
