"""simnet.py: the simulated network itself, driven by toy engines.

The real engines are driven in tests/test_engine_properties.py; here the
engines are a few lines each, so every expected time can be worked out by
hand.  The links are netem's.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

import netem
import simnet
from conftest import ROOT

A, B, C = ("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)


def make_net(seed=0, delay=0.01, loss=0.0, **kw):
    return simnet.SimNet(seed=seed, default_link=spec(delay, loss), **kw)


def spec(delay, loss=0.0):
    return netem.LinkSpec(delay_s=delay, loss=loss)


class Pinger:
    """Sends ``count`` numbered datagrams to ``peer``, one every
    ``every`` seconds (a timer), and records what comes back."""

    def __init__(self, peer, count, every):
        self.peer, self.count, self.every = peer, count, every
        self.next_at = 0.0
        self.sent = 0
        self.outbox = []
        self.got = []

    def receive_datagram(self, data, addr, now):
        self.got.append((now, data, addr))

    def datagrams_to_send(self, now):
        out, self.outbox = self.outbox, []
        return out

    def get_timer(self):
        return self.next_at if self.sent < self.count else None

    def handle_timer(self, now):
        self.outbox.append((b"%d" % self.sent, self.peer))
        self.sent += 1
        self.next_at = now + self.every


class Echo:
    """Sends every datagram back where it came from."""

    def __init__(self):
        self.outbox = []
        self.got = []

    def receive_datagram(self, data, addr, now):
        self.got.append((now, data))
        self.outbox.append((b"echo " + data, addr))

    def datagrams_to_send(self, now):
        out, self.outbox = self.outbox, []
        return out

    def get_timer(self):
        return None

    def handle_timer(self, now):
        raise AssertionError("no timer was asked for")


class Sink(Echo):
    """Takes datagrams in, answers none."""

    def receive_datagram(self, data, addr, now):
        self.got.append((now, data))


def test_datagrams_arrive_after_the_link_delay_and_are_traced():
    net = make_net(delay=0.25)
    pinger, echo = Pinger(B, 3, 1.0), Echo()
    net.add_host(A, pinger)
    net.add_host(B, echo)
    result = net.run()
    assert result.reason == "idle"
    assert [t for t, _ in echo.got] == pytest.approx([0.25, 1.25, 2.25])
    assert [(t, d) for t, d, _ in pinger.got] == [
        (pytest.approx(0.5), b"echo 0"), (pytest.approx(1.5), b"echo 1"),
        (pytest.approx(2.5), b"echo 2")]
    assert {a for _, _, a in pinger.got} == {B}
    sent = net.sent_by(A)
    assert [(e.time, e.dst, e.data) for e in sent] == [
        (0.0, B, b"0"), (1.0, B, b"1"), (2.0, B, b"2")]
    assert [e.time for e in net.received_by(A)] == \
        pytest.approx([0.5, 1.5, 2.5])
    assert result.datagrams == 6


def test_each_direction_has_its_own_link():
    net = make_net(delay=0.1)
    net.set_link(B, A, spec(0.4))
    pinger, echo = Pinger(B, 1, 1.0), Echo()
    net.add_host(A, pinger)
    net.add_host(B, echo)
    net.run()
    assert echo.got[0][0] == pytest.approx(0.1)
    assert pinger.got[0][0] == pytest.approx(0.5)


def test_a_killed_host_neither_receives_nor_sends_nor_wakes():
    net = make_net(delay=0.25)
    pinger, echo = Pinger(B, 10, 1.0), Echo()
    net.add_host(A, pinger)
    net.add_host(B, echo)
    net.kill(B, at=3.1)
    net.run()
    # datagrams sent at 0, 1, 2 arrive at 0.25, 1.25, 2.25; the one sent
    # at 3 arrives at 3.25, after the death
    assert [d for _, d in echo.got] == [b"0", b"1", b"2"]
    assert pinger.sent == 10
    lost = [e for e in net.trace if e.kind == simnet.LOST]
    assert [e.data for e in lost] == [b"%d" % n for n in range(3, 10)]
    killed = [e for e in net.trace if e.kind == simnet.KILLED]
    assert killed == [simnet.TraceEntry(3.1, simnet.KILLED, B, None, b"")]
    net2 = make_net()
    net2.add_host(A, Pinger(B, 5, 1.0))
    net2.kill(A, at=2.5)
    net2.run()
    assert len(net2.sent_by(A)) == 3  # at 0, 1, 2


def test_a_datagram_already_on_the_wire_arrives_after_its_sender_died():
    net = make_net(delay=0.5)
    echo = Echo()
    net.add_host(A, Pinger(B, 1, 1.0))
    net.add_host(B, echo)
    net.kill(A, at=0.2)
    net.run()
    assert echo.got == [(pytest.approx(0.5), b"0")]


def test_the_run_stops_at_until_at_max_events_and_when_told():
    net = make_net()
    net.add_host(A, Pinger(B, 1000, 1.0))
    net.add_host(B, Echo())
    assert net.run(until=10.5).reason == "until"
    assert net.now == 10.5
    net = make_net()
    net.add_host(A, Pinger(B, 1000, 1.0))
    net.add_host(B, Echo())
    result = net.run(max_events=7)
    assert (result.reason, result.events) == ("max-events", 7)
    net = make_net()
    echo = Echo()
    net.add_host(A, Pinger(B, 1000, 1.0))
    net.add_host(B, echo)
    assert net.run(stop_when=lambda: len(echo.got) == 4).reason == "stopped"
    assert len(echo.got) == 4


def test_an_engine_whose_timer_never_advances_is_an_error_not_a_hang():
    class Stuck(Echo):
        def get_timer(self):
            return 1.0

        def handle_timer(self, now):
            pass
    net = make_net()
    net.add_host(A, Stuck())
    with pytest.raises(simnet.SimError, match="keeps its timer"):
        net.run()


def test_two_hosts_at_one_address_are_refused():
    net = make_net()
    net.add_host(A, Echo())
    with pytest.raises(ValueError):
        net.add_host(A, Echo())
    with pytest.raises(ValueError):
        net.kill(C, at=1.0)


def _trace_of(seed, loss):
    net = make_net(seed=seed, loss=loss)
    net.add_host(A, Pinger(B, 40, 0.1))
    net.add_host(B, Echo())
    net.add_host(C, Pinger(B, 40, 0.07))
    net.run()
    return net.trace


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), loss=st.floats(0.0, 0.9))
def test_same_seed_same_run(seed, loss):
    assert _trace_of(seed, loss) == _trace_of(seed, loss)


def test_links_draw_from_their_own_seeded_rng():
    traces = {tuple(_trace_of(seed, 0.5)) for seed in range(5)}
    assert len(traces) == 5
    a = make_net(seed=3)
    assert a._link_seed(A, B) != a._link_seed(B, A)
    assert a._link_seed(A, B) == make_net(seed=3)._link_seed(A, B)


def test_what_a_link_drops_is_traced_and_what_it_duplicates_arrives_twice():
    net = simnet.SimNet(seed=4, default_link=netem.LinkSpec(loss=0.5))
    echo = Echo()
    net.add_host(A, Pinger(B, 200, 0.01))
    net.add_host(B, echo)
    net.run()
    sent = [e for e in net.trace if e.src == A and e.kind == simnet.SENT]
    dropped = [e for e in net.trace if e.src == A
               and e.kind == simnet.DROPPED]
    assert len(sent) == 200 and 60 < len(dropped) < 140
    assert len(echo.got) == 200 - len(dropped)
    assert {d for _, d in echo.got}.isdisjoint({e.data for e in dropped})
    net = simnet.SimNet(default_link=netem.LinkSpec(dup=1.0, delay_s=0.1))
    echo = Echo()
    net.add_host(A, Pinger(B, 3, 1.0))
    net.add_host(B, echo)
    net.run()
    assert [d for _, d in echo.got] == [b"0", b"0", b"1", b"1", b"2", b"2"]


def test_a_rate_limited_link_spaces_arrivals_by_their_size():
    rate = 14_720  # bytes/s: a 1472-byte datagram takes 0.1 s
    net = simnet.SimNet(default_link=netem.LinkSpec(rate_Bps=rate))

    class Burst(Echo):
        def __init__(self):
            super().__init__()
            self.outbox = [(bytes(1472), B) for _ in range(40)]
    sink = Sink()
    net.add_host(A, Burst())
    net.add_host(B, sink)
    net.run()
    times = [t for t, _ in sink.got]
    assert len(times) == 40
    # netem lets a burst of 16 datagrams through, then one per 0.1 s
    assert times[-1] == pytest.approx((40 - netem.BURST_DATAGRAMS) * 0.1,
                                      abs=0.11)
    gaps = [b - a for a, b in zip(times[20:], times[21:])]
    assert gaps == pytest.approx([0.1] * len(gaps))


@pytest.mark.parametrize("args", [("--loss", "2"), ("--size-mb", "0"),
                                  ("--size-mb", "500"), ("--seeders", "x"),
                                  ("--bogus",)])
def test_bad_input_to_the_program_is_one_line_and_exit_2(args):
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "simnet.py", *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_many_datagrams_at_one_instant_are_no_stuck_timer():
    # 20 000 arrivals at t = 0 (no delay) and then a timer at t = 0
    class Flood(Sink):
        def __init__(self):
            super().__init__()
            self.outbox = [(b"x", B)] * 20_000
            self.fired = False

        def get_timer(self):
            return None if self.fired else 0.0

        def handle_timer(self, now):
            self.fired = True
    net = make_net(delay=0.0)
    flood = Flood()
    sink = Sink()
    net.add_host(A, flood)
    net.add_host(B, sink)
    assert net.run().reason == "idle"
    assert flood.fired and len(sink.got) == 20_000


# ----------------------------------------------------- the timer heap
class Spawner(Pinger):
    """A pinger that adds a new host to the net on its third firing (a
    host added while the net runs)."""

    def __init__(self, net, peer, count, every):
        super().__init__(peer, count, every)
        self.net = net

    def handle_timer(self, now):
        super().handle_timer(now)
        if self.sent == 3:
            self.net.add_host(("10.0.0.9", 1), Pinger(A, 5, 0.1))


class ScanNet(simnet.SimNet):
    """The loop as it was: every host's timer read at every event (the
    reference the heap must agree with)."""

    def _next_timer(self):
        best, best_host = float("inf"), None
        for host in self.hosts.values():
            deadline = host.engine.get_timer() if host.alive else None
            if deadline is not None and deadline < best:
                best, best_host = deadline, host
        return best, best_host


def _scenario(net_class=simnet.SimNet, seed=11, loss=0.2):
    """Ties (A and C wake together), a kill, hosts added while running
    and between runs, losses."""
    net = net_class(seed=seed, default_link=spec(0.05, loss))
    net.add_host(A, Pinger(B, 30, 0.1))
    net.add_host(B, Echo())
    net.add_host(C, Pinger(B, 30, 0.1))
    net.add_host(("10.0.0.4", 1), Spawner(net, C, 10, 0.25))
    net.kill(C, at=1.23)
    net.run(until=2.0)
    net.add_host(("10.0.0.5", 1), Pinger(B, 8, 0.1))
    net.run()
    return net.trace


def test_the_timer_heap_gives_the_trace_the_scan_gave():
    import hashlib
    trace = _scenario()
    # recorded with the scan over every host (simnet before the heap)
    assert len(trace) == 221
    assert hashlib.sha256(repr(trace).encode()).hexdigest() == \
        "5d152d8f1ca7d798fcd42dbbf7ce02bfbb711dbfac0ced8550d20fc1ec2834f2"


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), loss=st.floats(0.0, 0.9))
def test_the_timer_heap_agrees_with_the_scan(seed, loss):
    assert _scenario(simnet.SimNet, seed, loss) == \
        _scenario(ScanNet, seed, loss)


def test_a_timer_moved_back_and_forth_keeps_the_heap_small():
    class Fidget(Echo):
        """Pushes its deadline back at every datagram (an idle timeout)."""

        def __init__(self):
            super().__init__()
            self.deadline = 100.0

        def receive_datagram(self, data, addr, now):
            self.deadline = now + 100.0

        def get_timer(self):
            return self.deadline

        def handle_timer(self, now):
            self.deadline = None
    net = make_net(delay=0.001)
    fidget = Fidget()
    net.add_host(A, Pinger(B, 2000, 0.01))
    net.add_host(B, fidget)
    net.run(until=15.0)  # 1,500 deadlines pushed back so far
    assert len(net._timers) <= simnet.STALE_TIMERS_FACTOR * (2 + 16)
    assert net.run().reason == "idle"
    assert fidget.deadline is None and net.now > 100
