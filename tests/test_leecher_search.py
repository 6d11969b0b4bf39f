"""``leecher.search`` and ``leecher.ping`` against fake seeders: a fake
Endpoint answers what they send, in virtual time (a fake clock that the
endpoint moves on when it has nothing to give)."""

import hashlib

import types

import pytest

import leecher
import protocol as p

A, B = ("127.0.0.1", 9000), ("127.0.0.2", 9000)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(leecher, "time", clock)
    return clock


def song_info(n: int, tag: str = "") -> p.FileInfo:
    sha = hashlib.sha256(f"{tag}{n}".encode()).digest()
    return p.FileInfo(p.file_id_of(sha), 1000, 1, 1400, 0, sha,
                      f"song {tag}{n:05}.mp3")


class FakeSeeders:
    """A fake Endpoint.  ``answer(msg, addr, sent)`` gives what a seeder
    sends back to one datagram, as ``[(message, flags), ...]``; answers
    come one receive later; an empty receive moves the clock by its
    timeout, a non-empty one by ``step``."""

    def __init__(self, clock, answer, step=0.0001):
        self.clock, self.answer, self.step = clock, answer, step
        self.sent = []  # (message, addr)
        self.pending = []

    def send(self, msg, addr, session: int = 0) -> None:
        self.sent.append((msg, addr))
        for reply, flags in self.answer(msg, addr, self.sent):
            self.pending.append((p.decode(p.encode(reply, 0, flags)), addr))

    def receive(self, timeout: float):
        answers, self.pending = self.pending, []
        self.clock.now += self.step if answers else max(timeout, 0.0)
        return answers

    def searches(self, addr=A) -> list:
        return [m for m, a in self.sent if a == addr
                and isinstance(m, p.Search)]


def pages_of(files):
    """A seeder's answer to SEARCH: the page it names, FLAG_LAST on the
    last (what seed_engine does)."""
    def answer(msg, addr, sent):
        page, last = p.search_result_page(files, msg.page)
        return [(page, p.FLAG_LAST if last else 0)]
    return answer


def peers(*addrs):
    return [leecher.Peer(addr, rtt=0.001) for addr in addrs]


# ------------------------------------------------------------ SEARCH
def test_every_page_of_a_300_song_share_is_asked_for(clock):
    files = [song_info(n) for n in range(300)]
    endpoint = FakeSeeders(clock, pages_of(files))
    started = clock.now
    songs = leecher.search(endpoint, peers(A), "song")
    assert sorted(s.info.name for s in songs) == sorted(f.name
                                                        for f in files)
    pages = len(p.search_result_pages(files))
    assert pages > 1
    assert [m.page for m in endpoint.searches()] == list(range(pages))
    assert clock.now - started < 0.1  # no wait for a FLAG_LAST


def test_each_page_is_retried_when_its_answer_is_lost(clock):
    files = [song_info(n) for n in range(100)]
    pages = pages_of(files)

    def lossy(msg, addr, sent):  # the first answer to each page is lost
        asked = [m.page for m, _ in sent if isinstance(m, p.Search)]
        return pages(msg, addr, sent) if asked.count(msg.page) > 1 else []
    endpoint = FakeSeeders(clock, lossy)
    songs = leecher.search(endpoint, peers(A), "song")
    assert len(songs) == 100
    count = len(p.search_result_pages(files))
    assert len(endpoint.searches()) == 2 * count


def test_a_page_answered_twice_does_not_skip_the_next(clock):
    files = [song_info(n) for n in range(100)]
    pages = pages_of(files)
    endpoint = FakeSeeders(clock, lambda *args: 2 * pages(*args))
    assert len(leecher.search(endpoint, peers(A), "song")) == 100


def test_a_seeder_that_never_sets_flag_last_is_cut(clock):
    """A flood of pages of new songs without FLAG_LAST, one answered to
    each SEARCH and more unasked: bounded pages, songs and time, and
    one line says the list was cut."""
    made = iter(range(10 ** 9))

    def flood(msg, addr, sent):
        return [(p.SearchResult(tuple(song_info(next(made), "x")
                                      for _ in range(15))), 0)] * 3
    endpoint = FakeSeeders(clock, flood)
    started, notes = clock.now, []
    songs = leecher.search(endpoint, peers(A), "", note=notes.append)
    assert len(endpoint.searches()) == leecher.MAX_SEARCH_PAGES
    assert len(songs) <= leecher.MAX_SEARCH_PAGES * 3 * 15
    assert clock.now - started <= leecher.MAX_SEARCH_S
    assert len(notes) == 1 and "127.0.0.1:9000" in notes[0] and \
        str(leecher.MAX_SEARCH_PAGES) in notes[0]


def test_songs_in_all_are_capped(clock, monkeypatch):
    monkeypatch.setattr(leecher, "MAX_SONGS", 150)
    shares = {A: [song_info(n, "a") for n in range(100)],
              B: [song_info(n, "b") for n in range(100)]}
    endpoint = FakeSeeders(clock, lambda msg, addr, sent: pages_of(
        shares[addr])(msg, addr, sent))
    notes = []
    songs = leecher.search(endpoint, peers(A, B), "", note=notes.append)
    assert len(songs) == 150
    assert notes == ["search cut: more than 150 songs"]


def test_retry_floods_are_bounded_like_lost_answers(clock):
    endpoint = FakeSeeders(clock, lambda msg, addr, sent: [
        (p.Retry(len(sent)), 0)] * 5)
    assert leecher.search(endpoint, peers(A), "x") == []
    assert len(endpoint.searches()) == leecher.PING_TRIES


def test_a_search_ends_within_its_time_bound_whatever_answers(clock):
    """A seeder that answers every page only on its last try."""
    files = [song_info(n) for n in range(2000)]
    pages = pages_of(files)

    def slow(msg, addr, sent):
        asked = [m.page for m, _ in sent if isinstance(m, p.Search)]
        late = asked.count(msg.page) == leecher.PING_TRIES
        return pages(msg, addr, sent) if late else []
    endpoint = FakeSeeders(clock, slow)
    started, notes = clock.now, []
    leecher.search(endpoint, peers(A), "", note=notes.append)
    assert clock.now - started <= leecher.MAX_SEARCH_S + 1
    assert len(notes) == 1 and "no answer in" in notes[0]


# ------------------------------------------------------------ PING
def pong(msg):
    return p.Pong(msg.nonce, 7, 1, 0, int(p.Order.RANDOM), 50, "s")


def test_ping_tries_leave_under_1_percent_wrongly_dead_at_30_percent_loss():
    """30 % loss each way: a try fails with 1 - 0.7 * 0.7 = 0.51."""
    assert (1 - 0.7 * 0.7) ** leecher.PING_TRIES < 0.01
    assert sum(leecher.backoff(leecher.PING_TIMEOUT,
                               leecher.PING_TRIES)) <= 5.0


def test_a_seeder_answering_only_the_sixth_ping_is_alive(clock):
    def sixth(msg, addr, sent):
        return [(pong(msg), 0)] if len(sent) == 6 else []
    endpoint = FakeSeeders(clock, sixth)
    assert leecher.ping(endpoint, [A])[A].alive


def test_on_answer_is_told_of_each_seeder_once_the_moment_it_answers(clock):
    told = []
    endpoint = FakeSeeders(clock, lambda msg, addr, sent: [
        (pong(msg), 0)] * 2 if addr == A else [])
    found = leecher.ping(endpoint, [A, B], tries=3, timeout=0.001,
                         on_answer=lambda peer: told.append(
                             (peer.addr, len(endpoint.sent))))
    assert found[A].alive and not found[B].alive
    assert told == [(A, 2)]  # after the first PINGs, before B's retries
    assert [a for _, a in endpoint.sent].count(B) == 3


def test_the_window_pings_through_leecher_ping(clock, monkeypatch):
    import gui_worker
    calls = []
    monkeypatch.setattr(leecher, "ping", lambda *args, **kwargs: calls.append(
        kwargs) or {})
    posted = []
    worker = types.SimpleNamespace(_endpoint=lambda: None, closing=False,
                                   post=posted.append)
    gui_worker.Worker._ping(worker, [A], tries=2)
    assert calls and callable(calls[0]["on_answer"])
    assert calls[0]["stop"]() is False  # stops once the window closes
    worker.closing = True
    assert calls[0]["stop"]() is True


def test_stop_ends_the_tries_for_dead_seeders_at_once(clock):
    """A window that closes does not wait out eight tries at a dead
    address: ``stop()`` is looked at between tries and while waiting."""
    endpoint = FakeSeeders(clock, lambda msg, addr, sent: [])
    asked = []

    def stop():
        asked.append(len(endpoint.sent))
        return len(endpoint.sent) >= 2  # after the second PING
    found = leecher.ping(endpoint, [A], stop=stop)
    assert not found[A].alive
    assert len(endpoint.sent) == 2
    assert asked  # looked at
