"""Loss detection and timers for one transfer (one REQUEST to one seeder).

Pure: no clock, no socket, no file.  The download engine tells it what
arrived and when (``now``), and asks it which chunks are lost and when to
wake up, in the manner of aioquic's ``QuicPacketRecovery``.  The rules are
RACK (RFC 8985) and QUIC's loss detection (RFC 9002 §5, §6), applied to
what a leecher can know about a seeder's sending:

* **RTT** (RFC 9002 §5): ``smoothed``, ``rttvar``, ``min_rtt``, seeded by
  the PING round trip; samples are REQUEST -> its first chunk, NACK -> the
  first retransmission it caused (only when nothing was queued ahead of
  it), probe ACK -> the DONE it caused.
* **First pass.** The REQUEST carries a seed, so the order of the seeder's
  first pass (``protocol.send_order``) is known: the chunk at place ``k``
  left the seeder before every chunk at a later place.  A missing chunk is
  lost only once a chunk at a later place has arrived (so its first copy
  was sent: no NACK ever names a chunk the seeder has not sent yet), and
  either it is ``REORDER_THRESHOLD`` places behind the furthest place that
  arrived (RFC 9002 §6.1.1, packet threshold) or a reorder window has
  passed since the first later chunk arrived (RFC 8985 §6.2: lost when
  ``now >= xmit_ts + rtt + reo_wnd``; the overtaking chunk left after the
  lost one and arrived about one RTT after it left, so its arrival plus
  ``reo_wnd`` is the latest that deadline can be — and it is a time the
  leecher observed, where the lost chunk's send time is only a guess).
  ``reo_wnd`` is ``max(srtt, latest_rtt) / 8`` (the 1/8 of RFC 9002's 9/8),
  never under ``GRANULARITY``.  Each time a chunk declared lost turns out
  to have been late, ``reo_wnd`` grows by that step, up to a whole RTT
  (RFC 8985 §6.2 step 4), and the packet threshold grows to the number of
  places that chunk was overtaken by (RFC 9002 §6.1.1 allows it).
* **Retransmissions.** The seeder resends first-in first-out in the order
  NACKs list chunks, before any first-pass chunk.  Each NACKed chunk gets
  an ordinal in that order; a NACKed chunk is lost again by the same two
  thresholds, counted in ordinals of resends that arrived, or by time
  once a chunk arrives whose ``tx_seq`` the seeder can only have used
  after resending it (the credit granted before the NACK plus the
  resends it may have had queued: the case of a small window, where no
  other resend follows).  When nothing at all comes, a re-NACK timer
  fires after ``max(MIN_RENACK_S, rto + queued x gap)`` (``rto = srtt +
  4 rttvar``; ``queued x gap`` is what the link needs for the resends
  still outstanding on a rate-limited link; the floor is RFC 6298's, for
  a silence whose pacing or jitter the samples have not shown yet),
  doubling each time it fires without a retransmission arriving in
  between.
* **Tail.** A probe timer fires when nothing arrives for ``pto = srtt +
  4 rttvar + MAX_ACK_DELAY``, never under ``PTO_GAPS`` smoothed arrival
  gaps; after each unanswered probe the RTT part doubles; after
  ``MAX_SILENT_PROBES`` of them (``MAX_UNHEARD_PROBES`` REQUESTs when no
  chunk ever came), or a silence of ``give_up_s`` (a share of the
  download's no-progress timeout), the seeder is gone.  The probe (an
  ACK with credit, sent by the engine) makes a seeder with nothing
  pending send DONE again.  DONE means the whole first pass was sent, so
  every missing first-pass chunk of the transfer is then lost; and it
  counts the seeder's resends, which went out before it in NACK order:
  a NACKed chunk whose ordinal is below that count is lost again (a DONE
  that crossed a NACK counts none of its chunks, and proves nothing of
  them).
"""

from __future__ import annotations

from collections import deque
from typing import Sequence

REORDER_THRESHOLD = 3  # RFC 9002 §6.1.1 kPacketThreshold
# Grown to the reordering seen (RFC 9002 §6.1.1 allows it; Linux TCP's
# tcp_reordering does it), up to this many places.
MAX_REORDER_THRESHOLD = 64
TIME_THRESHOLD_EXTRA = 1 / 8  # RFC 9002 kTimeThreshold 9/8: 1/8 over an RTT
MAX_REORDER_STEPS = 8  # reo_wnd grows up to 8/8 of an RTT (RFC 8985 §6.2)
GRANULARITY = 0.001  # RFC 9002 kGranularity: timers finer than 1 ms are noise
INITIAL_RTT = 0.333  # RFC 9002 kInitialRtt: only when no PING RTT is known
# RFC 9000's default max_ack_delay: the slack a probe allows for the
# seeder's own loop (it answers from a select loop, not at once).
MAX_ACK_DELAY = 0.025
PTO_GAPS = 4  # a probe never fires within this many usual arrival gaps
MAX_SILENT_PROBES = 6  # unanswered probes (doubling) before a seeder is gone
# A seeder that never sent a chunk for this REQUEST (dead since its PONG,
# or deaf) is given up on after this many REQUESTs resent with backoff
# from the PING RTT: there is no stream to wait for (RFC 6298 §5's
# backoff, as TCP gives up on a SYN after a few retries).
MAX_UNHEARD_PROBES = 3
# Whatever the backoff, a silent seeder is given up on within this share
# of the download's no-progress timeout, so that its share moves to the
# others before the whole download would fail (RFC 6298 (2.5) allows an
# upper bound on the RTO).
GIVE_UP_SHARE = 0.5
# RFC 6298 (2.4): an RTO is rounded up to 1 s.  Only the re-NACK timer
# (nothing at all came since the NACK) takes this floor: a silence is no
# proof of loss while the seeder's pacing may hold the resend back (a
# first burst empties its rate allowance and shows no gap), or while a
# handful of RTT samples have not shown the link's jitter yet.  Losses
# seen by overtaking or by DONE never wait for it.
MIN_RENACK_S = 1.0
GAP_GAIN = 1 / 8  # smoothing of the arrival gap, as RFC 6298's alpha


class RttEstimator:
    """RFC 6298 / RFC 9002 §5.3 smoothing; the first sample seeds it."""

    def __init__(self, first_sample: float | None):
        sample = first_sample if first_sample and first_sample > 0 \
            else INITIAL_RTT
        self.latest = self.smoothed = self.min_rtt = sample
        self.var = sample / 2

    def update(self, sample: float) -> None:
        sample = max(sample, 0.0)
        self.latest = sample
        self.min_rtt = min(self.min_rtt, sample)
        self.var += (abs(self.smoothed - sample) - self.var) / 4
        self.smoothed += (sample - self.smoothed) / 8

    def timeout(self) -> float:
        """srtt + 4 rttvar (RFC 6298's RTO, RFC 9002's PTO base)."""
        return self.smoothed + max(4 * self.var, GRANULARITY)


class ArrivalGap:
    """The smoothed time between two chunks while the seeder streams: on a
    rate-limited link far longer than the RTT, and no sign of loss.

    Measured two ways, and the larger is used: on the seeder's clock (the
    ``send_ms`` and ``tx_seq`` its chunks carry: its pacing, whatever our
    own timers do) and on ours between arrivals (a bottleneck after the
    seeder), the latter only while no probe fired (a silence is no gap).
    """

    def __init__(self):
        self.sent_gap = 0.0
        self.arrival_gap = 0.0
        self.last: float | None = None
        self._last_send: tuple | None = None  # (tx_seq, send_ms)

    @property
    def gap(self) -> float:
        return max(self.sent_gap, self.arrival_gap)

    def on_arrivals(self, now: float, count: int, streaming: bool) -> None:
        if streaming and self.last is not None and count:
            self.arrival_gap = _smooth(self.arrival_gap,
                                       (now - self.last) / count)
        self.last = now

    def on_send_time(self, tx_seq: int, send_ms: int,
                     streaming: bool) -> None:
        """The furthest chunk of a batch left the seeder at ``send_ms``."""
        last = self._last_send
        if streaming and last is not None and tx_seq > last[0]:
            elapsed = ((send_ms - last[1]) & 0xFFFFFFFF) / 1000
            self.sent_gap = _smooth(self.sent_gap,
                                    elapsed / (tx_seq - last[0]))
        if last is None or tx_seq > last[0]:
            self._last_send = (tx_seq, send_ms)

    def pause(self) -> None:
        """A silence is no gap: the next arrival starts a new measure."""
        self.last = None


def _smooth(average: float, sample: float) -> float:
    return sample if not average else average + (sample - average) * GAP_GAIN


class TransferRecovery:
    """What is lost, and when to wake up, for one transfer.

    ``first_pass`` lists the transfer's chunks in the seeder's sending
    order; ``have`` is the download's flag per chunk (shared, read only).
    """

    def __init__(self, first_pass: Sequence[int], have: bytearray,
                 ping_rtt: float | None, now: float,
                 give_up_s: float = float("inf")):
        self.first_pass = first_pass
        self.have = have
        self.rtt = RttEstimator(ping_rtt)
        self.gap = ArrivalGap()
        self.requested_at = now
        self.heard = False
        self.done = False
        # The seeder's count of resends in the latest DONE: every NACK
        # entry it took made one resend, FIFO, before that DONE.
        self._done_resent = 0
        self.reorder_steps = 1
        self.packet_threshold = REORDER_THRESHOLD
        self.spurious = 0  # chunks declared lost that came late instead
        self._lost_at_place: dict[int, int] = {}  # chunk -> its place
        # First pass: places before _checked are decided (here or lost).
        self.highest_place = -1
        self._checked = 0
        self._overtaken: dict[int, float] = {}  # place -> first overtaken
        # Resends: chunk -> ordinal, and the ordinals in NACK order.
        self.outstanding: dict[int, int] = {}
        self._resends: deque = deque()  # (ordinal, chunk, sent_after)
        # The lowest tx_seq the seeder can only have used after it resent
        # every chunk NACKed so far (see on_nack_sent): never decreases.
        self._sent_after = -1
        self._next_ordinal = 0
        self._highest_resend = -1
        self._resend_overtaken: dict[int, float] = {}
        self._resend_clock = now  # last NACK sent or retransmission heard
        self._resend_backoff = 0
        self._rtt_nack: tuple | None = None  # (first, last ordinal, sent)
        # Probes.
        self.probes = 0
        self.give_up_s = give_up_s  # silence after which a seeder is gone
        self._heard = now  # the latest arrival (or the REQUEST)
        self._probe_due = now + self.pto()
        self._probe_sent: float | None = None

    # ------------------------------------------------------------ input
    def on_arrivals(self, now: float, highest_place: int, resent: list,
                    late: list, count: int,
                    send_time: tuple | None = None) -> None:
        """A batch brought ``count`` chunks of this transfer: the furthest
        first-pass place is now ``highest_place``; ``resent`` are NACKed
        chunks that came as retransmissions, ``late`` NACKed chunks whose
        first copy came after all (a loss declared too early);
        ``send_time`` the ``(tx_seq, send_ms)`` of the furthest chunk."""
        if not self.heard:
            self.heard = True
            self.rtt.update(now - self.requested_at)
        self.gap.on_arrivals(now, count, not self.done and not self.probes)
        if send_time is not None:
            self.gap.on_send_time(*send_time, streaming=not self.done)
        self._heard_at(now)
        if highest_place > self.highest_place:
            self._overtake_places(highest_place, now)
        outstanding = self.outstanding
        highest_resend = self._highest_resend
        for index in late:
            if outstanding.pop(index, None) is not None:
                self._on_spurious(index)
        for index in resent:
            ordinal = outstanding.pop(index, None)
            self._lost_at_place.pop(index, None)
            if ordinal is None:
                continue
            self._resend_clock = now
            self._resend_backoff = 0
            if ordinal > self._highest_resend:
                self._highest_resend = ordinal
            sample = self._rtt_nack
            if sample is not None and sample[0] <= ordinal <= sample[1]:
                self.rtt.update(now - sample[2])
                self._rtt_nack = None
        if self._highest_resend > highest_resend:
            self._overtake_resends(now)

    def _on_spurious(self, index: int) -> None:
        """A chunk declared lost came after all: that much reordering is
        normal here; wait longer (in places and in time) from now on."""
        self.spurious += 1
        self.reorder_steps = min(MAX_REORDER_STEPS, self.reorder_steps + 1)
        place = self._lost_at_place.pop(index, None)
        if place is not None:
            self.packet_threshold = min(
                MAX_REORDER_THRESHOLD,
                max(self.packet_threshold, self.highest_place - place + 1))

    def _overtake_places(self, highest_place: int, now: float) -> None:
        """Note when each missing place before ``highest_place`` was first
        overtaken: the start of its time threshold."""
        first_pass, have = self.first_pass, self.have
        for place in range(max(self.highest_place + 1, self._checked),
                           highest_place):
            if not have[first_pass[place]]:
                self._overtaken.setdefault(place, now)
        self.highest_place = highest_place

    def _overtake_resends(self, now: float) -> None:
        outstanding, overtaken = self.outstanding, self._resend_overtaken
        for ordinal, index, _ in self._resends:
            if ordinal >= self._highest_resend:
                break
            if outstanding.get(index) == ordinal:
                overtaken.setdefault(ordinal, now)

    def on_done(self, now: float, resent: int = 0) -> None:
        """The seeder says its first pass was sent, and ``resent`` (its
        DONE counter) resends: those the NACKs it had taken asked for."""
        if self._probe_sent is not None:
            self.rtt.update(now - self._probe_sent)
        self.done = True
        self._done_resent = max(self._done_resent, resent)
        # The seeder answers and its queue is empty: no congestion to back
        # off from (RFC 9002 §6.2.1 resets the PTO backoff on an ACK).  A
        # NACK it never got (lost on the way) is asked again after one
        # floored RTO, not after a timer doubled by the resends it lost.
        self._resend_backoff = 0
        self._heard_at(now)

    def on_nack_sent(self, chunks: Sequence[int], now: float,
                     credit: int | None = None) -> None:
        """The engine NACKed ``chunks`` in this order; ``credit`` is the
        tx_seq limit it had granted before this NACK.

        The seeder takes the NACK having sent fewer than ``credit``
        chunks, and resends FIFO before anything else: its queue then
        holds at most our outstanding NACKed chunks, so every chunk it
        sends with ``tx_seq >= credit + len(outstanding)`` left after
        these resends, and its arrival shows them lost (RACK, RFC 8985:
        a chunk sent later has arrived) even when no other resend or no
        first-pass chunk is left to overtake them (a small window)."""
        if not chunks:
            return
        clean = not self.outstanding  # nothing queued ahead: a fair sample
        first = self._next_ordinal
        for index in chunks:
            self.outstanding[index] = self._next_ordinal
            self._next_ordinal += 1
        if credit is None:
            self._sent_after = float("inf")  # nothing known from now on
        else:
            self._sent_after = max(self._sent_after,
                                   credit + len(self.outstanding))
        for index in chunks:
            self._resends.append((self.outstanding[index], index,
                                  self._sent_after))
        self._rtt_nack = (first, self._next_ordinal - 1, now) if clean \
            else self._rtt_nack
        self._resend_clock = now

    def _heard_at(self, now: float) -> None:
        self._heard = now
        self.probes = 0
        self._probe_sent = None
        self._probe_due = now + self.pto()

    # ------------------------------------------------------------ losses
    def reorder_window(self) -> float:
        rtt = max(self.rtt.smoothed, self.rtt.latest)
        return max(GRANULARITY,
                   self.reorder_steps * rtt * TIME_THRESHOLD_EXTRA)

    def lost(self, now: float, highest_seq: int = -1) -> list[int]:
        """The chunks to NACK now (each at most once until NACKed again);
        ``highest_seq`` is the furthest tx_seq that arrived."""
        self._sent_after_resends(highest_seq, now)
        window = self.reorder_window()
        lost = self._lost_first_pass(now, window)
        lost += self._lost_resends(now, window)
        return lost

    def _lost_first_pass(self, now: float, window: float) -> list[int]:
        first_pass, have, outstanding = (self.first_pass, self.have,
                                         self.outstanding)
        overtaken = self._overtaken
        end = len(first_pass) if self.done else self.highest_place
        lost = []
        place = self._checked
        while place < end:
            index = first_pass[place]
            if not (have[index] or index in outstanding):
                if self.done or self.highest_place - place \
                        >= self.packet_threshold or \
                        now >= overtaken.setdefault(place, now) + window:
                    lost.append(index)
                    self._lost_at_place[index] = place
                else:
                    break  # later places were overtaken later still
            overtaken.pop(place, None)
            place += 1
        self._checked = place
        return lost

    def _sent_after_resends(self, highest_seq: int, now: float) -> None:
        """Resends that a chunk sent after them overtook (by tx_seq)
        start their time threshold now."""
        outstanding, overtaken = self.outstanding, self._resend_overtaken
        for ordinal, index, sent_after in self._resends:
            if sent_after > highest_seq:
                break  # the bounds only grow along the queue
            if outstanding.get(index) == ordinal:
                overtaken.setdefault(ordinal, now)

    def _lost_resends(self, now: float, window: float) -> list[int]:
        resends, have, outstanding = (self._resends, self.have,
                                      self.outstanding)
        overtaken = self._resend_overtaken
        lost = []
        if outstanding and now >= self.resend_deadline():
            self._resend_backoff += 1  # nothing came at all: all again
            self._rtt_nack = None  # Karn: the next sample is ambiguous
            lost = [index for _, index, _ in resends
                    if not have[index] and outstanding.get(index) is not None]
            resends.clear()
            overtaken.clear()
            outstanding.clear()
            return lost
        while resends:
            ordinal, index, _ = resends[0]
            if have[index] or outstanding.get(index) != ordinal:
                resends.popleft()  # here, or NACKed again since
            elif self._highest_resend - ordinal >= self.packet_threshold or (
                    ordinal < self._highest_resend and now >=
                    overtaken.setdefault(ordinal, now) + window) or (
                    ordinal in overtaken and
                    now >= overtaken[ordinal] + window) or (
                    ordinal < self._done_resent):
                # (the seeder had resent more chunks than the ordinal
                # before its DONE: it had taken this NACK, and its resend
                # went out before the DONE.  Ordinals only ever run ahead
                # of resends — a lost NACK, a chunk queued twice — so a
                # DONE that crossed the NACK never counts as proof.)
                resends.popleft()
                del outstanding[index]
                lost.append(index)
            else:
                break
            overtaken.pop(ordinal, None)
        return lost

    # ------------------------------------------------------------ timers
    def pto(self) -> float:
        """How long a silence after an arrival may last: an RTT-based
        timeout, or a few usual gaps on a slow link."""
        return max(self.rtt.timeout() + MAX_ACK_DELAY,
                   PTO_GAPS * self.gap.gap)

    def probe_backoff(self) -> float:
        """The wait after the ``probes``-th unanswered probe.  Only the
        RTT part doubles: once a silence has outlasted the usual gaps,
        the link's pacing no longer explains it (doubling the gaps too
        would take minutes to tell a dead seeder on a slow link)."""
        return (self.rtt.timeout() + MAX_ACK_DELAY) * 2 ** self.probes

    def give_up_at(self) -> float:
        return self._heard + self.give_up_s

    def resend_deadline(self) -> float | None:
        if not self.outstanding:
            return None
        wait = max(MIN_RENACK_S, self.rtt.timeout()
                   + len(self.outstanding) * self.gap.gap)
        return self._resend_clock + wait * 2 ** self._resend_backoff

    def loss_time(self) -> float | None:
        """When a chunk overtaken by fewer than REORDER_THRESHOLD becomes
        lost by time, if one is waiting."""
        first = min(self._overtaken.values(), default=None)
        again = min(self._resend_overtaken.values(), default=None)
        times = [t for t in (first, again) if t is not None]
        return min(times) + self.reorder_window() if times else None

    def probe_due(self) -> float:
        return self._probe_due

    def get_timer(self) -> float:
        deadline = self._probe_due
        for other in (self.loss_time(), self.resend_deadline()):
            if other is not None and other < deadline:
                deadline = other
        return deadline

    def on_probe_timer(self, now: float) -> bool:
        """The probe timer fired: True to send a probe, False when the
        seeder is gone (``MAX_SILENT_PROBES`` unanswered)."""
        most = MAX_SILENT_PROBES if self.heard else MAX_UNHEARD_PROBES
        if self.probes >= most or now >= self.give_up_at():
            return False
        self.probes += 1
        self.gap.pause()
        # Karn: a resend that comes after a probe may have waited for the
        # probe's credit; its NACK -> resend time is no round trip.
        self._rtt_nack = None
        self._probe_sent = now
        self._probe_due = min(now + self.probe_backoff(), self.give_up_at())
        return True
