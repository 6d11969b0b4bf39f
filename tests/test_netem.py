"""The emulated link in virtual time: seeded decisions, order, rate."""

import pytest

from netem import BURST_DATAGRAMS, DATAGRAM_BYTES, Link, LinkSpec


def fates(link: Link, count: int, gap: float = 0.001):
    return [link.send(1000, n * gap) for n in range(count)]


def test_the_same_seed_makes_the_same_decisions():
    spec = LinkSpec(loss=0.2, dup=0.1, delay_s=0.01, jitter_s=0.02,
                    reorder=0.1)
    assert fates(Link(spec, 7), 500) == fates(Link(spec, 7), 500)
    assert fates(Link(spec, 7), 500) != fates(Link(spec, 8), 500)


def test_loss_and_duplication_happen_as_often_as_asked():
    copies = [len(f) for f in fates(Link(LinkSpec(loss=0.1, dup=0.05), 3),
                                     20000)]
    assert 0.09 < copies.count(0) / len(copies) < 0.11
    assert 0.04 < copies.count(2) / len(copies) < 0.06  # 5 % of the kept
    assert set(copies) == {0, 1, 2}


def test_delay_is_added_and_jitter_keeps_the_order():
    link = Link(LinkSpec(delay_s=0.05, jitter_s=0.03), 1)
    arrivals = [f[0] for f in fates(link, 1000)]
    assert arrivals == sorted(arrivals)
    assert all(a >= n * 0.001 + 0.05 for n, a in enumerate(arrivals))
    assert max(a - n * 0.001 for n, a in enumerate(arrivals)) > 0.07


def test_reordering_lets_later_datagrams_overtake():
    link = Link(LinkSpec(delay_s=0.01, reorder=0.1, reorder_hold_s=0.02), 1)
    arrivals = [f[0] for f in fates(link, 1000)]
    overtaken = sum(1 for a, b in zip(arrivals, arrivals[1:]) if b < a)
    assert 30 < overtaken < 150


def test_a_transparent_link_delivers_at_once():
    link = Link(LinkSpec(), 1)
    assert link.transparent
    assert link.send(1472, 5.0) == (5.0,)
    assert link.ready_at(5.0) == 5.0


def test_a_paced_sender_gets_the_rate_over_virtual_time():
    rate = 100_000  # bytes per second
    link = Link(LinkSpec(rate_Bps=rate), 1)
    now, sent = 0.0, 0
    while now < 10.0:
        now = link.ready_at(now)
        if now >= 10.0:
            break
        assert link.send(DATAGRAM_BYTES, now) == (now,)  # never queued
        sent += 1
    expected = rate * 10 / DATAGRAM_BYTES
    assert expected <= sent <= expected + BURST_DATAGRAMS + 1


def test_a_sender_that_ignores_the_rate_queues_in_the_link():
    link = Link(LinkSpec(rate_Bps=14720), 1)  # 10 datagrams per second
    arrivals = [link.send(DATAGRAM_BYTES, 0.0)[0] for _ in range(40)]
    assert arrivals[:BURST_DATAGRAMS] == [0.0] * BURST_DATAGRAMS
    assert arrivals[-1] == pytest.approx((40 - BURST_DATAGRAMS) / 10,
                                         abs=0.11)
    assert arrivals == sorted(arrivals)


def test_next_slot_says_when_the_bucket_lets_one_go():
    link = Link(LinkSpec(rate_Bps=1000), 1)
    assert link.next_slot() == float("-inf")
    for _ in range(BURST_DATAGRAMS + 1):
        link.spend(DATAGRAM_BYTES, 0.0)
    assert link.next_slot() == pytest.approx(DATAGRAM_BYTES / 1000)
    assert link.ready_at(0.0) == link.next_slot()


def test_replies_are_never_lost_but_keep_the_order():
    link = Link(LinkSpec(loss=1.0, delay_s=0.02, jitter_s=0.05), 2)
    assert link.send(100, 0.0) == ()
    first = link.arrival(0.0)
    assert first >= 0.02 and link.arrival(0.001) >= first


@pytest.mark.parametrize("bad", [dict(loss=1.5), dict(dup=-0.1),
                                 dict(delay_s=-1), dict(rate_Bps=-5)])
def test_nonsense_specs_are_refused(bad):
    with pytest.raises(ValueError):
        LinkSpec(**bad)
