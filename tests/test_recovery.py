"""recovery.py in simulated time: RTT, loss by packet and by time
threshold, re-NACK with backoff, probes, DONE.  No socket, no clock."""

import random

from hypothesis import given, settings, strategies as st

import protocol as p
import recovery as r

RTT = 0.010  # the PING round trip every test starts from


def make(chunks=20, order=None, now=0.0, rtt=RTT):
    first_pass = list(order if order is not None else range(chunks))
    have = bytearray(max(first_pass) + 1 if first_pass else 0)
    return r.TransferRecovery(first_pass, have, rtt, now), have


def arrive(rec, have, now, places=(), resent=(), late=(), send_time=None):
    """Chunks at first-pass ``places`` (and NACKed chunks ``resent``)
    arrive at ``now``, as the engine reports a batch."""
    highest = rec.highest_place
    for place in places:
        have[rec.first_pass[place]] = 1
        highest = max(highest, place)
    for index in list(resent) + list(late):
        have[index] = 1
    rec.on_arrivals(now, highest, list(resent), list(late),
                    len(places) + len(resent) + len(late), send_time)


# ------------------------------------------------------------- RTT
def test_rtt_is_seeded_by_ping_and_smoothed_as_rfc_9002():
    rec, have = make()
    assert rec.rtt.smoothed == RTT and rec.rtt.var == RTT / 2
    arrive(rec, have, 0.030, [0])  # REQUEST -> first chunk: 30 ms
    assert rec.rtt.latest == 0.030
    assert abs(rec.rtt.smoothed - (7 / 8 * RTT + 1 / 8 * 0.030)) < 1e-12
    assert abs(rec.rtt.var - (3 / 4 * RTT / 2 + 1 / 4 * 0.020)) < 1e-12
    assert rec.rtt.min_rtt == RTT


def test_only_the_first_chunk_is_a_request_sample():
    rec, have = make()
    arrive(rec, have, 0.020, [0])
    before = rec.rtt.smoothed
    arrive(rec, have, 5.0, [1])  # a long time later: no RTT sample
    assert rec.rtt.smoothed == before


def test_nack_to_first_retransmission_is_a_sample():
    rec, have = make()
    arrive(rec, have, 0.010, [0, 4])  # 1..3 overtaken by 4: lost by packets
    lost = rec.lost(0.010)
    assert lost == [1]
    rec.on_nack_sent(lost, 0.010)
    arrive(rec, have, 0.050, resent=[1])
    assert rec.rtt.latest == 0.040


def test_probe_to_done_is_a_sample():
    rec, have = make()
    arrive(rec, have, 0.010, [0])
    due = rec.probe_due()
    assert rec.on_probe_timer(due)
    rec.on_done(due + 0.015)
    assert abs(rec.rtt.latest - 0.015) < 1e-12


# ----------------------------------------------------- first pass
def test_lost_by_packet_threshold_only_three_places_behind():
    rec, have = make()
    arrive(rec, have, 0.01, [0, 1])
    arrive(rec, have, 0.011, [3, 4])  # 2 overtaken by 2 places
    assert rec.lost(0.011) == []
    arrive(rec, have, 0.012, [5])  # 3 places ahead of 2
    assert rec.lost(0.012) == [2]
    assert rec.lost(0.013) == []  # told once


def test_lost_by_time_threshold_after_the_reorder_window():
    rec, have = make()
    arrive(rec, have, 0.010, [0, 1, 3])  # 2 overtaken by one place
    assert rec.lost(0.010) == []
    window = rec.reorder_window()
    assert window == max(r.GRANULARITY,
                         max(rec.rtt.smoothed, rec.rtt.latest) / 8)
    assert rec.loss_time() == 0.010 + window
    assert rec.get_timer() == 0.010 + window
    assert rec.lost(0.010 + window * 0.99) == []
    assert rec.lost(0.010 + window) == [2]


def test_a_late_first_copy_is_no_loss_and_widens_the_window():
    rec, have = make()
    arrive(rec, have, 0.010, [0, 1, 3, 4, 5])
    lost = rec.lost(0.010)
    assert lost == [2]
    rec.on_nack_sent(lost, 0.010)
    window = rec.reorder_window()
    arrive(rec, have, 0.011, late=[2])  # it was only late
    assert rec.spurious == 1
    assert rec.reorder_window() > window
    assert not rec.outstanding


def test_no_place_beyond_the_furthest_arrival_is_ever_lost():
    rec, have = make(10)
    arrive(rec, have, 0.01, [0, 1])
    # The seeder may not have sent 2..9 at all: no time makes them lost.
    assert rec.lost(100.0) == []


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 120), st.sampled_from(list(p.ORDER_NAMES.values())),
       st.integers(0, 2 ** 32 - 1), st.data())
def test_never_lost_before_the_first_copy_is_sent(total, order, seed, data):
    """Any order, any losses, any local reordering within a batch, any
    amount sent so far: only chunks at places before one that arrived
    (sent, then) are ever declared lost."""
    first_pass = p.send_order([(0, total)], order, seed)
    rec, have = make(order=first_pass)
    sent = data.draw(st.integers(0, total))
    rng = random.Random(data.draw(st.integers(0, 1000)))
    arrived = [place for place in range(sent) if rng.random() > 0.3]
    now = 0.0
    while arrived:
        batch = arrived[:rng.randint(1, 5)]
        arrived = arrived[len(batch):]
        now += rng.random() * 0.02
        arrive(rec, have, now, batch)
        for index in rec.lost(now + rng.random() * 0.1):
            assert first_pass.index(index) < rec.highest_place < sent
            assert not have[index]


@settings(max_examples=200, deadline=None)
@given(st.integers(5, 200), st.integers(0, 2 ** 32 - 1),
       st.floats(0.0, 0.5))
def test_in_order_arrivals_lose_exactly_the_dropped(total, seed, loss):
    """Without reordering, every chunk declared lost was dropped, each
    once: NACK entries = chunks lost (well under 1.5x)."""
    rng = random.Random(seed)
    rec, have = make(total)
    dropped = {i for i in range(total - 1) if rng.random() < loss}
    declared = []
    now = 0.0
    for place in range(total):
        now += 0.001
        if place not in dropped:
            arrive(rec, have, now, [place])
        declared += rec.lost(now)
    now += 1.0  # long after: the time threshold has passed for all
    declared += rec.lost(now)
    assert sorted(declared) == sorted(dropped)


# ----------------------------------------------------- retransmissions
def nacked(rec, have, chunks, now):
    """Declare ``chunks`` lost and NACK them (they count as sent)."""
    rec.on_nack_sent(chunks, now)


def test_a_resend_overtaken_by_three_later_resends_is_lost_again():
    rec, have = make()
    arrive(rec, have, 0.01, [0, 10])  # 1..9 all lost (>= 3 behind 10)
    lost = rec.lost(0.01)
    assert lost == list(range(1, 8))  # 8 and 9: only 2 and 1 behind
    nacked(rec, have, lost, 0.01)
    arrive(rec, have, 0.03, resent=[2, 3])  # ordinals 1, 2: 0 overtaken
    assert rec.lost(0.03) == [8, 9]  # first pass, by time; no resend yet
    arrive(rec, have, 0.031, resent=[4])  # ordinal 3: 3 ahead of chunk 1
    assert rec.lost(0.031) == [1]


def test_a_resend_overtaken_once_is_lost_after_the_window():
    rec, have = make()
    arrive(rec, have, 0.01, [0, 4])
    lost = rec.lost(0.01)
    assert lost == [1]
    arrive(rec, have, 0.02, [5, 6])  # now 2, 3 lost too
    lost2 = rec.lost(0.02)
    assert lost2 == [2, 3]
    rec.on_nack_sent([1], 0.01)
    rec.on_nack_sent(lost2, 0.02)
    arrive(rec, have, 0.04, resent=[2])  # ordinal 1 overtook ordinal 0
    assert rec.lost(0.04) == []
    window = rec.reorder_window()
    assert rec.lost(0.04 + window) == [1]


def test_renack_timer_from_the_rtt_with_exponential_backoff():
    rec, have = make()
    arrive(rec, have, 0.01, [0, 2, 3, 4])  # 1 lost
    lost = rec.lost(0.01)
    rec.on_nack_sent(lost, 0.01)
    first = rec.resend_deadline()
    rto = max(r.MIN_RENACK_S,
              rec.rtt.timeout() + len(rec.outstanding) * rec.gap.gap)
    assert abs(first - (0.01 + rto)) < 1e-12
    assert rec.lost(first - 1e-6) == []
    again = rec.lost(first)  # nothing came at all
    assert again == [1]
    rec.on_nack_sent(again, first)
    second = rec.resend_deadline()
    assert abs((second - first) - 2 * rto) < 1e-9  # doubled
    rec.on_nack_sent(rec.lost(second), second)
    assert abs((rec.resend_deadline() - second) - 4 * rto) < 1e-9
    arrive(rec, have, second + 0.001, resent=[1])  # it came: no backoff
    assert rec.resend_deadline() is None


def test_renack_timer_waits_for_the_queue_on_a_slow_link():
    rec, have = make(40)
    # A rate-limited seeder: one chunk every 50 ms on its own clock.
    for place in range(0, 10):
        arrive(rec, have, 0.05 * (place + 1), [place],
               send_time=(place, 50 * place))
    assert abs(rec.gap.gap - 0.05) < 1e-9
    arrive(rec, have, 0.55, [20], send_time=(20, 1000))
    lost = rec.lost(0.55)
    assert lost == list(range(10, 18))
    rec.on_nack_sent(lost, 0.55)
    wait = rec.resend_deadline() - 0.55
    assert wait >= len(lost) * rec.gap.gap  # the queue's time on the link
    assert rec.pto() >= r.PTO_GAPS * rec.gap.gap
    # A silence beyond the gaps doubles from the RTT, not from the gaps.
    due = rec.probe_due()
    assert rec.on_probe_timer(due)
    assert rec.probe_due() - due < 2 * r.PTO_GAPS * rec.gap.gap


# ----------------------------------------------------------- tail
def test_probe_timer_doubles_and_gives_up_after_max_silent_probes():
    rec, have = make()
    arrive(rec, have, 0.01, [0])
    pto = rec.pto()
    assert rec.probe_due() == 0.01 + pto
    now = rec.probe_due()
    waits = []
    for _ in range(r.MAX_SILENT_PROBES):
        assert rec.on_probe_timer(now)
        waits.append(rec.probe_due() - now)
        now = rec.probe_due()
    assert not rec.on_probe_timer(now)  # gone
    base = rec.rtt.timeout() + r.MAX_ACK_DELAY
    for n, wait in enumerate(waits, start=1):
        assert abs(wait - base * 2 ** n) < 1e-9


def test_an_arrival_answers_the_probes():
    rec, have = make()
    arrive(rec, have, 0.01, [0])
    now = rec.probe_due()
    rec.on_probe_timer(now)
    arrive(rec, have, now + 0.001, [1])
    assert rec.probes == 0
    assert rec.probe_due() == now + 0.001 + rec.pto()


def test_done_makes_every_missing_chunk_lost():
    rec, have = make(10)
    arrive(rec, have, 0.01, [0, 1, 2, 5])
    assert rec.lost(0.01) == []  # 3 and 4: not yet, by time
    rec.on_done(0.011)
    assert rec.lost(0.011) == [3, 4, 6, 7, 8, 9]


def test_a_done_that_crossed_a_nack_does_not_renack_it():
    rec, have = make(10)
    arrive(rec, have, 0.01, [0, 1, 2, 3, 4, 5, 6, 7, 9])
    lost = rec.lost(0.01 + rec.reorder_window())
    assert lost == [8]
    rec.on_nack_sent(lost, 0.02)
    # Sent before our NACK reached the seeder: no resend counted in it.
    rec.on_done(0.021, resent=0)
    assert rec.lost(0.021) == []
    rec.on_done(0.031, resent=1)  # after the resend: lost
    assert rec.lost(0.031) == [8]


def test_a_done_that_crossed_a_nack_proves_only_what_it_counts():
    """Bug 1 (a 19,601-byte song, 5 % loss, 1 ms back): the leecher
    NACKed 10, then 12 and 14 in a second NACK; the seeder's DONE came
    after resending 10 only, one round trip after the second NACK was
    sent.  It proves 10 lost again, not 12 and 14."""
    rec, have = make(15, rtt=0.001)
    arrive(rec, have, 0.002, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13])
    rec.on_nack_sent([10], 0.002)
    rec.on_done(0.002, resent=0)  # the first pass is all sent
    lost = rec.lost(0.002)
    assert lost == [12, 14]
    rec.on_nack_sent(lost, 0.002)
    rec.on_done(0.003, resent=1)  # a round trip later, before 12 and 14
    assert rec.lost(0.003) == [10]
    arrive(rec, have, 0.003, resent=[12, 14])
    assert rec.lost(0.003) == []


def test_a_late_chunk_raises_the_packet_threshold_to_its_reordering():
    rec, have = make(40)
    arrive(rec, have, 0.010, [0, 1] + list(range(3, 10)))  # 2 overtaken
    lost = rec.lost(0.010)
    assert lost == [2]
    rec.on_nack_sent(lost, 0.010)
    arrive(rec, have, 0.011, late=[2])  # 7 places late, not lost
    assert rec.packet_threshold == 8
    arrive(rec, have, 0.012, list(range(11, 18)))  # 10 overtaken by 7
    assert rec.lost(0.012) == []
    arrive(rec, have, 0.013, [18])  # by 8: lost
    assert rec.lost(0.013) == [10]


# ------------------------------------------- regressions (issue 10 #4)
def test_a_silence_after_a_burst_is_no_proof_the_resend_was_lost():
    """Bug 2: a paced seeder's first burst came at one instant (no gap
    measured); its resend waits for the next pacing slot.  Nothing at all
    arriving is no proof before the RTO floor."""
    rec, have = make(40, rtt=0.02)
    arrive(rec, have, 0.02, [0, 1, 2, 4, 5, 6, 7])  # 3 lost in the burst
    lost = rec.lost(0.02)
    assert lost == [3] and rec.gap.gap == 0
    rec.on_nack_sent(lost, 0.02, credit=256)
    assert rec.resend_deadline() >= 0.02 + r.MIN_RENACK_S
    assert rec.lost(0.02 + 0.087) == []  # the pacing slot, 87 ms on


def test_the_renack_timer_has_the_rto_floor_whatever_the_samples():
    """Bug 3: two ~1 ms samples say nothing of 5 ms of jitter."""
    rec, have = make(1, rtt=0.001)
    rec.on_done(0.0307, resent=0)
    lost = rec.lost(0.0307)
    assert lost == [0]
    rec.on_nack_sent(lost, 0.0307, credit=1)
    assert rec.rtt.timeout() < 0.0033  # the resend took 3.3 ms
    assert rec.lost(0.0307 + 0.0033) == []
    assert rec.resend_deadline() == 0.0307 + r.MIN_RENACK_S


def test_a_seeder_never_heard_from_is_gone_after_a_few_requests():
    """Bug 4: no chunk ever came for the REQUEST: MAX_UNHEARD_PROBES
    REQUESTs again, backing off from the PING RTT, then gone."""
    rec, _ = make(1, rtt=0.1, now=0.1)
    now, fired = rec.probe_due(), 0
    while rec.on_probe_timer(now):
        fired += 1
        now = rec.probe_due()
    assert fired == r.MAX_UNHEARD_PROBES
    assert now - 0.1 < 6.0  # seconds, not the 6 doubling probes' ~41 s


def test_a_silent_seeder_is_given_up_on_within_the_budget():
    """However long the RTT, a silence outlasting ``give_up_s`` ends the
    transfer: the download's no-progress timeout must not come first."""
    first_pass = list(range(10))
    have = bytearray(10)
    rec = r.TransferRecovery(first_pass, have, 0.5, 0.0, give_up_s=15.0)
    arrive(rec, have, 0.5, [0])
    now = rec.probe_due()
    while rec.on_probe_timer(now):
        assert rec.probe_due() <= 0.5 + 15.0
        now = rec.probe_due()
    assert rec.probes < r.MAX_SILENT_PROBES  # the budget ended it
    assert now <= 0.5 + 15.0


def test_a_chunk_sent_after_the_resends_shows_them_lost():
    """With a small window no other resend follows a lost one: a chunk
    whose tx_seq the seeder could only use after resending (the credit
    before the NACK plus what it may have had queued) proves it lost."""
    rec, have = make(10)
    arrive(rec, have, 0.01, [0, 2, 3, 4])
    rec.on_nack_sent(rec.lost(0.01), 0.01, credit=6)  # 1; 5 sent so far
    assert rec.lost(0.02, highest_seq=6) == []  # may still be the resend
    arrive(rec, have, 0.03, [5])
    assert rec.lost(0.03, highest_seq=7) == []  # sent after: by time
    assert rec.lost(0.03 + rec.reorder_window(), highest_seq=7) == [1]


def test_a_probe_makes_the_nack_round_trip_no_sample():
    """Karn: a resend that came after a probe may have waited for the
    probe's credit (a window of 1), and would inflate the RTT."""
    rec, have = make(10)
    arrive(rec, have, 0.01, [0, 2, 3, 4])
    rec.on_nack_sent(rec.lost(0.01), 0.01, credit=6)
    smoothed = rec.rtt.smoothed
    assert rec.on_probe_timer(rec.probe_due())
    arrive(rec, have, 2.0, resent=[1])
    assert rec.rtt.smoothed == smoothed


def test_a_done_resets_the_renack_backoff():
    """A NACK lost on the way leaves no resend for any DONE to count; the
    seeder still answers (DONE: its queue is empty), so there is no
    congestion to back off from: the next re-NACK comes one floored RTO
    after the last, not a doubled one (RFC 9002 §6.2.1 resets on ACK)."""
    rec, have = make(1)
    rec.on_done(0.02, resent=0)
    rec.on_nack_sent(rec.lost(0.02), 0.02, credit=256)  # lost on the way
    first = rec.resend_deadline()
    again = rec.lost(first)
    assert again == [0]
    rec.on_nack_sent(again, first, credit=256)
    assert rec.resend_deadline() - first == 2 * r.MIN_RENACK_S  # backoff
    rec.on_done(first + 0.02, resent=0)  # the seeder answers a probe
    assert rec.resend_deadline() - first == r.MIN_RENACK_S
