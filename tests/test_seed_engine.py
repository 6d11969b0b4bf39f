"""SeederEngine driven by hand-made datagrams on a fake clock: no socket,
no sleep, no file."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings, strategies as st

import netem
import pieces
import protocol as p
import seed_engine as se

LEECHER = ("127.0.0.5", 4000)
SID = 0x51


class BytesSource:
    """Files held in memory: the engine's ChunkSource and catalog."""

    def __init__(self, files: dict[str, bytes]):
        self.data, infos = {}, []
        for name, content in files.items():
            sha = hashlib.sha256(content).digest()
            info = p.FileInfo(p.file_id_of(sha), len(content),
                              p.chunk_count(len(content)), p.CHUNK_SIZE, 0,
                              sha, name)
            self.data[info.file_id] = content
            infos.append(info)
        self.index = se.SearchIndex(infos)
        self.gone: set[bytes] = set()

    def info(self, file_id):
        return self.index.info(file_id)

    def read(self, file_id, index):
        if file_id in self.gone:
            raise OSError("file vanished")
        size = p.CHUNK_SIZE
        return self.data[file_id][index * size:(index + 1) * size]

    def search(self, query):
        return self.index.search(query)

    def __len__(self):
        return len(self.index)


SONG = bytes(range(256)) * 550  # 140,800 bytes = 101 chunks
SOURCE = BytesSource({"song.mp3": SONG})
SONG_ID = SOURCE.index.files[0].file_id
CHUNKS = p.chunk_count(len(SONG))
SONG_PIECES = pieces.piece_count(CHUNKS)


class Harness:
    """One engine, a fake clock, and what it sent to whom."""

    def __init__(self, source=SOURCE, **options):
        self.engine = se.SeederEngine(source, b"secret", 1, **options)
        self.now = 100.0

    def send(self, msg, addr=LEECHER, sid=SID):
        self.engine.receive_datagram(p.encode(msg, sid), addr, self.now)

    def out(self, most=None):
        return [(p.decode(data), addr) for data, addr in
                self.engine.datagrams_to_send(self.now, most)]

    def messages(self, kind=None, most=None):
        return [d.message for d, _ in self.out(most)
                if kind is None or isinstance(d.message, kind)]

    def run(self, until: float):
        """Advance the clock timer by timer, collecting what leaves."""
        got = []
        while True:
            got += self.out()
            timer = self.engine.get_timer()
            if timer is None or timer > until:
                self.now = until
                return got + self.out()
            self.now = max(self.now, timer)
            self.engine.handle_timer(self.now)

    def token(self, addr=LEECHER):
        """What a PONG would carry (without the PONG in what is sent)."""
        return self.engine.token_for(addr, self.now)

    def request(self, ranges=((0, CHUNKS),), window=4096,
                order=p.Order.SEQUENTIAL,
                seed=0, addr=LEECHER, sid=SID, file_id=SONG_ID):
        self.send(p.Request(file_id, order, tuple(ranges), window,
                            self.token(addr), 50, seed), addr, sid)


def chunk_indices(messages):
    return [m.index for m in messages if isinstance(m, p.Chunk)]


# ------------------------------------------------------ tokens, guard
def test_a_request_without_the_token_gets_a_retry_and_no_chunk():
    h = Harness()
    h.send(p.Request(SONG_ID, p.Order.SEQUENTIAL, ((0, 5),), 8, 1234))
    assert [type(m) for m in h.messages()] == [p.Retry]
    token = h.token()
    h.send(p.Request(SONG_ID, p.Order.SEQUENTIAL, ((0, 5),), 8, token))
    assert chunk_indices(h.messages()) == [0, 1, 2, 3, 4]


def test_search_needs_the_token_too():
    h = Harness()
    h.send(p.Search("", 0))
    assert [type(m) for m in h.messages()] == [p.Retry]
    h.send(p.Search("song", h.token()))
    (result,) = h.messages(p.SearchResult)
    assert [f.name for f in result.files] == ["song.mp3"]


def test_amplification_guard_limits_unvalidated_bytes():
    guard = se.AmplificationGuard()
    addr = ("127.0.0.9", 5000)
    assert not guard.allow(addr, 1, 100.0)
    guard.received(addr, 20, 100.0)
    assert guard.allow(addr, 60, 100.0) and not guard.allow(addr, 1, 100.0)
    guard.validate(addr, 100.0)
    assert guard.allow(addr, 10**6, 100.0)


def test_validation_expires_with_the_token_it_rests_on():
    """Attack "validated forever": an hour after an address echoed a
    token, a spoofed PING from it gets no more than 3x its bytes."""
    guard = se.AmplificationGuard()
    addr = ("127.0.0.9", 5000)
    guard.validate(addr, 100.0)
    assert guard.allow(addr, 10**6, 100.0 + 59.0)  # tokens live 30-60 s
    assert not guard.allow(addr, 1, 100.0 + 60.0)
    guard.received(addr, 20, 100.0 + 61.0)
    assert guard.allow(addr, 60, 161.0) and not guard.allow(addr, 1, 161.0)
    h = Harness(name="n" * 40)
    h.send(p.Search("", h.token()))
    h.messages()
    h.now += 3600.0
    ping = p.encode(p.Ping(1))
    h.engine.receive_datagram(ping, LEECHER, h.now)
    out = h.engine.datagrams_to_send(h.now)
    assert sum(len(d) for d, _ in out) <= 3 * len(ping)


def test_an_unvalidated_address_gets_at_most_three_times_its_bytes():
    h = Harness(name="a seeder name long enough for the PONG to be big")
    ping = p.encode(p.Ping(1, 0))  # a PONG is bigger than 3 bare PINGs
    for _ in range(50):
        h.engine.receive_datagram(ping, LEECHER, h.now)
    out = h.engine.datagrams_to_send(h.now)
    assert sum(len(d) for d, _ in out) <= 3 * 50 * len(ping)
    assert 0 < len(out) < 50


# ------------------------------------------------ order, window, pacing
def test_chunks_go_in_the_requested_order_with_send_ms_and_tx_seq():
    h = Harness()
    ranges = ((3, 40), (50, 90))
    h.request(ranges, order=p.Order.RANDOM, seed=99)
    h.now += 0.25
    sent = h.messages(p.Chunk)
    assert [c.index for c in sent] == p.send_order(ranges, p.Order.RANDOM,
                                                   99)
    assert [c.tx_seq for c in sent] == list(range(len(sent)))
    assert {c.send_ms for c in sent} == {250}
    assert all(c.data == SONG[c.index * 1400:(c.index + 1) * 1400]
               for c in sent)


def test_the_default_order_is_the_seeders_own():
    h = Harness(order=p.Order.SEMI_RANDOM, ordered_fraction=0.25)
    h.request(order=p.Order.DEFAULT, seed=5)
    assert chunk_indices(h.messages()) == p.send_order(
        [(0, CHUNKS)], p.Order.SEMI_RANDOM, 5, 0.25)


def test_never_more_than_the_acked_window_ahead():
    h = Harness()
    h.request(window=4)
    assert chunk_indices(h.messages()) == [0, 1, 2, 3]
    assert h.messages() == []
    h.send(p.Ack(10))
    assert chunk_indices(h.messages()) == [4, 5, 6, 7, 8, 9]
    h.send(p.Ack(5))  # credit never shrinks
    assert h.messages() == []
    h.send(p.Ack(2**32 - 1))  # never more than MAX_WINDOW past tx_seq
    assert len(h.messages(p.Chunk)) == CHUNKS - 10


def test_a_batch_is_at_most_what_the_driver_asks_for():
    h = Harness()
    h.request()
    assert len(h.out(most=7)) == 7
    assert len(h.out(most=7)) == 7
    assert len(h.out()) == CHUNKS - 14 + 1  # and the DONE


def test_pacing_at_a_rate_over_virtual_time():
    rate = 50_000
    big = BytesSource({"big.mp3": bytes(1400 * 2000)})
    h = Harness(big, link=netem.LinkSpec(rate_Bps=rate))
    h.request(ranges=((0, 2000),), file_id=big.index.files[0].file_id)
    start = h.now
    got = h.run(until=start + 10.0)
    chunks = [m for m, _ in got if isinstance(m.message, p.Chunk)]
    expected = rate * 10 / 1436
    assert expected <= len(chunks) <= expected + netem.BURST_DATAGRAMS + 1


def test_the_timer_is_the_next_departure_of_a_delayed_datagram():
    h = Harness(link=netem.LinkSpec(delay_s=0.05))
    h.request(ranges=((0, 3),))
    assert h.messages() == []  # all held by the emulated delay
    assert h.engine.get_timer() == 100.05
    h.now = 100.05
    assert [type(m) for m in h.messages()] == [p.Chunk, p.Chunk, p.Chunk,
                                               p.Done]


# ---------------------------------------------------------------- NACK
def sent_first_pass(h, window):
    h.request(window=window)
    return chunk_indices(h.messages())


def test_resends_go_first_in_nack_order_and_unsent_chunks_are_skipped():
    h = Harness()
    assert sent_first_pass(h, 10) == list(range(10))
    h.send(p.Nack(14, 1, ((7, 8), (2, 4), (30, 32))))  # 30, 31 not sent
    sent = h.messages(p.Chunk)
    assert [c.index for c in sent] == [7, 2, 3, 10]
    assert [bool(c.index in (7, 2, 3)) for c in sent] == [True] * 3 + [False]
    assert [c.tx_seq for c in sent] == [10, 11, 12, 13]


def test_a_chunk_is_queued_once_per_round_and_once_while_it_waits():
    h = Harness()
    sent_first_pass(h, 10)
    h.send(p.Nack(10, 1, ((2, 4),)))
    h.send(p.Nack(10, 2, ((3, 5),)))  # 3 waits already: not twice
    h.send(p.Ack(20))
    assert chunk_indices(h.messages(most=3)) == [2, 3, 4]
    h.send(p.Nack(20, 2, ((2, 5),)))  # round 2 had 3 and 4 already
    assert chunk_indices(h.messages(most=2)) == [2, 10]


def test_a_late_nack_of_an_older_round_is_ignored():
    h = Harness()
    sent_first_pass(h, 10)
    h.send(p.Nack(20, 5, ((1, 2),)))
    h.send(p.Nack(20, 4, ((6, 7),)))
    assert chunk_indices(h.messages(most=2)) == [1, 10]


def test_nack_rounds_compare_across_the_wrap_around():
    h = Harness()
    sent_first_pass(h, 20)
    h.send(p.Nack(30, 65535, ((1, 2),)))
    h.send(p.Nack(30, 0, ((2, 3),)))  # after 65535 comes 0
    h.send(p.Nack(30, 1, ((3, 4),)))
    h.send(p.Nack(30, 65534, ((4, 5),)))  # older than 65535: late
    assert chunk_indices(h.messages(most=4)) == [1, 2, 3, 20]
    assert se.round_newer(0, 65535) and not se.round_newer(65535, 0)


def test_a_nack_for_an_unknown_session_gets_an_error():
    h = Harness()
    h.token()
    h.send(p.Nack(1, 1, ((0, 1),)), sid=77)
    (error,) = h.messages(p.Error)
    assert error.code == p.ErrorCode.UNKNOWN_SESSION


# ---------------------------------------------------------------- DONE
def test_done_follows_the_last_chunk_with_the_sessions_counters():
    h = Harness()
    h.request(ranges=((0, 3),))
    msgs = h.messages()
    assert [type(m) for m in msgs] == [p.Chunk, p.Chunk, p.Chunk, p.Done]
    done = msgs[-1]
    assert (done.sent, done.resent, done.dropped, done.duplicated) == \
        (3, 0, 0, 0)
    assert done.bytes_sent == 3 * (p.CHUNK_DATA_AT + 1400)
    assert h.messages() == []  # once


def test_done_again_after_the_resends():
    h = Harness()
    h.request(ranges=((0, 3),))
    h.messages()
    h.send(p.Nack(10, 1, ((1, 2),)))
    msgs = h.messages()
    assert [type(m) for m in msgs] == [p.Chunk, p.Done]
    assert msgs[-1].resent == 1 and msgs[-1].sent == 4


def test_an_ack_after_the_end_is_a_probe_answered_with_done():
    h = Harness()
    h.request(ranges=((0, 3),))
    h.messages()
    h.now += 1
    h.send(p.Ack(10))
    assert [type(m) for m in h.messages()] == [p.Done]
    h.now += 0.001  # within PROBE_INTERVAL_S
    h.send(p.Ack(10))
    assert h.messages() == []


def test_an_ack_flood_gets_fewer_dones_than_acks():
    h = Harness()
    h.request(ranges=((0, 3),))
    h.messages()
    dones = 0
    for _ in range(1000):
        h.now += 0.001
        h.send(p.Ack(10))
        dones += len(h.messages(p.Done))
    assert 0 < dones <= 1000 * 0.001 / se.PROBE_INTERVAL_S + 1


def test_done_never_overtakes_a_chunk_and_can_be_lost():
    spec = netem.LinkSpec(delay_s=0.02, jitter_s=0.05)
    h = Harness(link=spec)
    h.request(ranges=((0, 30),))
    got = h.run(until=h.now + 1)
    kinds = [type(d.message) for d, _ in got]
    assert kinds[-1] is p.Done and kinds.count(p.Done) == 1
    lossy = Harness(link=netem.LinkSpec(loss=1.0))
    lossy.request(ranges=((0, 5),))
    assert lossy.run(until=lossy.now + 1) == []
    assert lossy.engine.counters.link.dropped == 6  # 5 chunks and DONE


def test_emulated_loss_and_duplication_are_counted_in_done():
    h = Harness(link=netem.LinkSpec(loss=0.2, dup=0.2))
    h.request()
    got = h.run(until=h.now + 1)
    link = h.engine.counters.link
    assert link.sent == CHUNKS
    # every chunk and the one DONE went through the link:
    assert len(got) == CHUNKS + 1 - link.dropped + link.duplicated
    assert link.dropped and link.duplicated


# ----------------------------------------------------- endings, expiry
def test_cancel_ends_the_session_done_or_cancelled():
    h = Harness()
    h.request(ranges=((0, 3),), sid=1)
    h.request(ranges=((0, 50),), window=2, sid=2)
    h.messages()
    h.send(p.Cancel(), sid=1)
    h.send(p.Cancel(), sid=2)
    ends = [e for e in h.engine.events() if isinstance(e, se.SessionEnded)]
    assert [(e.sid, e.why, e.sent) for e in ends] == [(1, "done", 3),
                                                      (2, "cancelled", 2)]
    assert len(h.engine.sessions) == 0


def test_beyond_its_upload_slots_a_seeder_says_ask_again_later():
    """``upload_slots``: that many sessions at once; a REQUEST beyond
    gets BUSY (the leecher backs off and asks again) and starts no
    session; once one ends, the next REQUEST is served."""
    h = Harness(upload_slots=2)
    h.request(ranges=((0, 3),), sid=1)
    h.request(ranges=((0, 3),), sid=2)
    h.messages()
    h.request(ranges=((0, 3),), sid=3)
    (error,) = h.messages(p.Error)
    assert error.code == p.ErrorCode.BUSY and "ask again" in error.text
    assert len(h.engine.sessions) == 2
    h.send(p.Cancel(), sid=1)
    h.request(ranges=((0, 3),), sid=3)
    assert chunk_indices(h.messages()) == [0, 1, 2]
    unlimited = Harness()
    for sid in range(1, 6):
        unlimited.request(ranges=((0, 3),), sid=sid)
    assert len(unlimited.engine.sessions) == 5


def test_a_silent_session_times_out():
    h = Harness()
    h.request(ranges=((0, 3),))
    h.run(until=h.now + se.SESSION_IDLE_S + 2)
    assert [e.why for e in h.engine.events()
            if isinstance(e, se.SessionEnded)] == ["timed out"]


def test_a_vanished_file_ends_the_session_with_an_error():
    source = BytesSource({"a.mp3": b"x" * 5000})
    h = Harness(source)
    file_id = source.index.files[0].file_id
    source.gone.add(file_id)
    h.request(ranges=((0, 4),), file_id=file_id)
    (error,) = h.messages(p.Error)
    assert error.code == p.ErrorCode.FILE_GONE
    assert len(h.engine.sessions) == 0


def test_an_unknown_file_and_an_empty_request_are_refused():
    h = Harness()
    h.request(file_id=b"\7" * 8)
    h.request(ranges=((CHUNKS + 5, CHUNKS + 9),), sid=2)
    codes = [m.code for m in h.messages(p.Error)]
    assert codes == [p.ErrorCode.NOT_FOUND, p.ErrorCode.BAD_REQUEST]


# ------------------------------------------------------ hostile input
@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=1600), max_size=20))
def test_random_bytes_never_raise_and_get_at_most_3x_back(datagrams):
    h = Harness()
    for data in datagrams:
        h.engine.receive_datagram(data, LEECHER, h.now)
    out = h.engine.datagrams_to_send(h.now)
    assert sum(len(d) for d, _ in out) <= 3 * sum(map(len, datagrams))


VALID = st.sampled_from([
    p.Ping(3, 30), p.Search("so", 0), p.Ack(50), p.Cancel(),
    p.Nack(99, 1, ((0, 2**32 - 1),)), p.Nack(5, 65535, ((3, 9), (1, 4))),
    p.Request(SONG_ID, p.Order.RANDOM, ((0, 2**32 - 1),) * 100, 65535),
    p.Done(1, 1, 1, 1, 1), p.Chunk(SONG_ID, 1, 1, 1, b"x")])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(VALID, st.integers(0, 3), st.booleans()),
                max_size=30))
def test_valid_but_hostile_messages_never_raise(steps):
    h = Harness()
    token = h.token()
    for msg, sid, tokened in steps:
        if tokened and hasattr(msg, "token"):
            msg = type(msg)(**{**msg.__dict__, "token": token})
        h.send(msg, sid=sid)
        h.now += 0.01
        h.out(most=50)
        h.engine.handle_timer(h.now)


# ------------------------------------------- hardening (issue 11), engine
class HugeSource(BytesSource):
    """One file of ``chunks`` chunks that exists only as its FileInfo."""

    def __init__(self, chunks: int):
        super().__init__({})
        size = chunks * p.CHUNK_SIZE
        self.huge = p.FileInfo(b"\x42" * 8, size, chunks, p.CHUNK_SIZE, 0,
                               b"\x42" * 32, "huge.mp3")
        self.index = se.SearchIndex([self.huge])

    def read(self, file_id, index):
        return bytes(p.CHUNK_SIZE)


def test_overlapping_request_ranges_are_merged_before_any_work():
    h = Harness()
    h.request(ranges=((0, CHUNKS + 10**6),) * p.MAX_REQUEST_RANGES,
              window=1)
    (session,) = h.engine.sessions
    assert len(session.first_pass) == CHUNKS  # once, and inside the file


def test_one_nack_costs_at_most_a_bounded_number_of_chunks():
    source = HugeSource(2_000_000)  # a 2.8 GB file
    h = Harness(source)
    h.request(ranges=((0, 2_000_000),), window=4096,
              file_id=source.huge.file_id)
    assert len(h.out()) == se.MAX_WINDOW  # the window asked for, clamped
    h.send(p.Nack(0, 1, ((0, 2**32 - 1),) * p.MAX_NACK_RANGES))
    (session,) = h.engine.sessions
    # only chunks already sent
    assert len(session.resend.fifo) == se.MAX_WINDOW
    h.send(p.Ack(10**6))
    h.out(most=6000)  # the resends and new ones
    h.send(p.Nack(0, 2, ((0, 2**32 - 1),) * p.MAX_NACK_RANGES))
    assert len(session.resend.fifo) <= se.MAX_NACK_CHUNKS


def test_a_chunk_is_resent_a_few_times_at_most():
    h = Harness()
    sent_first_pass(h, 10)
    resent = 0
    for round_ in range(1, 30):
        h.send(p.Nack(10 + 10 * round_, round_, ((4, 5),)))
        msgs = h.messages()
        resent += chunk_indices(msgs).count(4)
        if any(isinstance(m, p.Error) for m in msgs):
            break
    assert resent == se.MAX_RESENDS_PER_CHUNK
    assert len(h.engine.sessions) == 0  # it could not finish: it ended


def test_a_validated_peer_gets_about_twice_the_bytes_it_asked_for():
    big = BytesSource({"big.mp3": bytes(1400 * 1000)})
    h = Harness(big)
    h.request(ranges=((0, 1000),), file_id=big.index.files[0].file_id)
    total = sum(len(d) for d, _ in h.engine.datagrams_to_send(h.now, 10**6))
    for round_ in range(1, 21):  # the whole file NACKed 20 times
        h.send(p.Nack(10**6, round_, ((0, 1000),)))
        total += sum(len(d) for d, _ in h.engine.datagrams_to_send(
            h.now, 10**6))
    asked = 1000 * 1400
    assert total <= 2.1 * asked


def test_session_limits_count_per_host_not_per_port():
    h = Harness()
    for port in range(se.MAX_SESSIONS_PER_HOST + 1):
        h.request(ranges=((0, 1),), window=1, addr=("127.0.0.7", 5000 + port))
    errors = h.messages(p.Error)
    assert [e.code for e in errors] == [p.ErrorCode.BUSY]
    assert len(h.engine.sessions) == se.MAX_SESSIONS_PER_HOST
    h.request(ranges=((0, 1),), window=1, addr=("127.0.0.8", 5000))
    assert len(h.engine.sessions) == se.MAX_SESSIONS_PER_HOST + 1


def test_a_full_seeder_evicts_from_the_host_holding_the_most():
    h = Harness()
    hosts = se.MAX_SESSIONS // se.MAX_SESSIONS_PER_HOST
    for host in range(hosts):
        for sid in range(se.MAX_SESSIONS_PER_HOST - (host == 0)):
            h.request(ranges=((0, 50),), window=1, sid=sid,
                      addr=(f"127.0.1.{host}", 6000))
    h.request(ranges=((0, 50),), window=1, sid=99, addr=("127.0.1.200", 1))
    h.out()
    h.request(ranges=((0, 50),), window=1, sid=1, addr=("127.0.2.1", 1))
    got = h.out()
    assert len(h.engine.sessions) == se.MAX_SESSIONS
    assert any(isinstance(d.message, p.Chunk) and addr == ("127.0.2.1", 1)
               for d, addr in got)
    (evicted,) = [(d, addr) for d, addr in got
                  if isinstance(d.message, p.Error)]
    assert evicted[0].message.code == p.ErrorCode.BUSY
    assert evicted[1][0] not in ("127.0.1.0", "127.0.1.200", "127.0.2.1")


def test_a_session_that_only_acks_without_progress_expires():
    h = Harness()
    h.request(window=2, sid=1)  # never gets more credit
    h.request(ranges=((0, 3),), sid=2)  # all sent, never cancelled
    h.out()
    for _ in range(int(se.NO_PROGRESS_S) + 5):
        h.now += 1.0
        h.send(p.Ack(0), sid=1)  # alive, but no credit
        h.send(p.Ack(3), sid=2)  # alive, nothing to send
        h.out()
        h.engine.handle_timer(h.now)
    assert sorted((e.sid, e.why) for e in h.engine.events()
                  if isinstance(e, se.SessionEnded)) == [
        (1, "timed out without progress"), (2, "timed out without progress")]


def test_tokens_expire_after_a_minute_at_most():
    h = Harness()
    token = h.token()
    for later, valid in ((0, True), (29, True), (59, None), (61, False)):
        accepted = h.engine.tokens.valid(token, LEECHER, h.now + later)
        if valid is not None:
            assert accepted is valid, later
    assert not h.engine.tokens.valid(token, ("127.0.0.6", 4000), h.now)
    other = se.SeederEngine(SOURCE, b"another secret", 1)
    assert not other.tokens.valid(token, LEECHER, h.now)


def test_an_expired_token_gets_a_retry_with_a_fresh_one():
    h = Harness()
    token = h.token()
    h.now += 3600
    h.send(p.Request(SONG_ID, p.Order.SEQUENTIAL, ((0, 2),), 8, token))
    (retry,) = h.messages()
    assert isinstance(retry, p.Retry) and retry.token != token
    h.send(p.Request(SONG_ID, p.Order.SEQUENTIAL, ((0, 2),), 8, retry.token))
    assert chunk_indices(h.messages()) == [0, 1]


def many_songs(count: int) -> BytesSource:
    return BytesSource({f"song number {n:04d}.mp3": b"%d" % n
                        for n in range(count)})


def test_one_search_gets_one_page_and_the_pages_make_the_whole_list():
    source = many_songs(300)
    h = Harness(source)
    token, names, page = h.token(), [], 0
    while True:
        h.send(p.Search("song", token, page))
        (datagram, _), = h.out()
        assert len(p.encode(datagram.message)) <= p.MAX_DATAGRAM
        names += [f.name for f in datagram.message.files]
        if datagram.flags & p.FLAG_LAST:
            break
        page += 1
    assert page > 5
    assert sorted(names) == sorted(f.name for f in source.index.files)


def test_search_ignores_case_and_accents():
    index = se.SearchIndex(BytesSource({
        "Canção do Mar.mp3": b"1", "CORAÇÃO.mp3": b"2", "other.mp3": b"3",
    }).index.files)
    assert [f.name for f in index.search("cancao")] == ["Canção do Mar.mp3"]
    assert [f.name for f in index.search("MAR CANÇÃO")] == [
        "Canção do Mar.mp3"]
    assert [f.name for f in index.search("coracao")] == ["CORAÇÃO.mp3"]
    assert len(index.search("")) == 3


def test_a_huge_shuffled_order_is_made_a_slice_per_turn():
    source = HugeSource(300_000)
    h = Harness(source)
    h.request(ranges=((0, 300_000),), order=p.Order.RANDOM, seed=3,
              window=8, file_id=source.huge.file_id)
    turns, sent = 0, []
    while not sent:
        assert h.engine.get_timer() == h.now  # work to do: call again now
        sent = chunk_indices(h.messages())
        turns += 1
    assert turns >= 300_000 // se.ORDER_STEPS
    assert sent == list(p.send_order_array([(0, 300_000)], p.Order.RANDOM,
                                           3)[:8])


# ------------------------------------------------- runs (chunks_to_send)
OTHER = ("127.0.0.6", 4001)


def expand(items, source=SOURCE):
    """``chunks_to_send``'s output as bytes, built from the runs'
    descriptors here (not by the engine's own ``encode_run``)."""
    out = []
    for item in items:
        if type(item) is not se.ChunkRun:
            out.append(item)
            continue
        for index, tx_seq, send_ms, flags in item.descriptors():
            out.append((p.encode_chunk(item.file_id, index, tx_seq, send_ms,
                                       source.read(item.file_id, index),
                                       item.sid, flags), item.addr))
    return out


def scripted(h, take):
    """Two sessions (random and sequential), a NACK, ACKs and the tail:
    all that leaves, through ``take(now, most)``, in order."""
    got = []
    h.request(window=60, order=p.Order.RANDOM, seed=3)
    h.request(window=50, addr=OTHER, sid=7)
    got += take(h.now, 90)
    h.send(p.Nack(40, 1, ((0, 5), (30, 40), (90, 101))))
    h.send(p.Ack(1000), addr=OTHER, sid=7)
    for _ in range(6):
        got += take(h.now, 37)
        h.now += 0.01
    h.send(p.Ack(1000))
    got += take(h.now, None)
    return got


@pytest.mark.parametrize("link", [netem.LinkSpec(),
                                  netem.LinkSpec(loss=0.2, dup=0.1)])
def test_runs_stand_for_the_same_datagrams_in_the_same_order(link):
    h1, h2 = Harness(link=link), Harness(link=link)
    by_bytes = scripted(h1, h1.engine.datagrams_to_send)
    by_runs = scripted(h2, lambda now, most: expand(
        h2.engine.chunks_to_send(now, most)))
    assert by_runs == by_bytes
    kinds = {type(p.decode(d).message) for d, _ in by_bytes}
    assert {p.Chunk, p.Done} <= kinds
    assert any(p.decode(d).flags & p.FLAG_RETRANSMIT for d, _ in by_bytes)


def test_a_turn_is_one_run_of_at_most_session_turn_chunks():
    h = Harness()
    h.request()
    h.request(addr=OTHER, sid=7)
    items = h.engine.chunks_to_send(h.now, 2 * se.SESSION_TURN + 10)
    assert [type(item) for item in items] == [se.ChunkRun] * 3
    first, second, third = items
    assert (first.addr, second.addr, third.addr) == (LEECHER, OTHER, LEECHER)
    assert len(first) == len(second) == se.SESSION_TURN
    assert len(third) == 10
    assert list(first.indices) == list(range(se.SESSION_TURN))
    assert (first.tx_seqs[0], third.tx_seqs[0]) == (0, se.SESSION_TURN)
    assert list(third.indices) == list(range(45, 55))


def test_resends_and_first_copies_are_separate_runs_in_one_turn():
    h = Harness()
    h.request(window=10)
    h.engine.chunks_to_send(h.now)
    h.send(p.Nack(20, 1, ((2, 4), (7, 8))))
    resent, fresh = h.engine.chunks_to_send(h.now)
    assert (list(resent.indices), list(resent.tx_seqs)) == ([2, 3, 7],
                                                          [10, 11, 12])
    assert resent.flags == p.FLAG_RETRANSMIT
    assert (list(fresh.indices), fresh.tx_seqs[0], fresh.flags) == (
        list(range(10, 17)), 13, 0)
    assert resent.descriptors()[0] == (2, 10, resent.send_ms,
                                       p.FLAG_RETRANSMIT)


def test_a_link_that_delays_gives_bytes_only():
    h = Harness(link=netem.LinkSpec(loss=0.2, delay_s=0.001))
    h.request()
    assert h.engine.chunks_to_send(h.now) == []  # all held by the delay
    items = h.engine.chunks_to_send(h.now + 0.001)
    assert items and all(type(item) is tuple for item in items)


def test_done_counts_the_bytes_of_the_chunks_short_last_one_included():
    h = Harness()
    assert len(SONG) % p.CHUNK_SIZE  # the last chunk is short
    h.request()
    out = h.engine.datagrams_to_send(h.now)
    done = [p.decode(d).message for d, _ in out][-1]
    assert isinstance(done, p.Done)
    assert done.bytes_sent == sum(len(d) for d, _ in out[:-1])
    assert h.engine.counters.link.bytes_sent == done.bytes_sent


def test_a_run_the_driver_cannot_read_ends_the_session_uncounted():
    h = Harness()
    h.request()
    run, = h.engine.chunks_to_send(h.now, 20)
    h.engine.events()
    h.engine.chunk_unreadable(run, 5, h.now)  # 5 went, then the read failed
    (ended,) = h.engine.events()
    assert ended.why == "failed: file unreadable" and ended.sent == 5
    assert h.engine.counters.link.sent == 5
    assert h.engine.counters.link.bytes_sent == 5 * (
        p.CHUNK_DATA_AT + p.CHUNK_SIZE)
    (error,) = h.messages()
    assert error.code == p.ErrorCode.FILE_GONE
    assert not h.engine.sessions


def test_later_runs_of_a_session_that_failed_are_not_built():
    source = BytesSource({"song.mp3": SONG})
    h = Harness(source)
    h.request(file_id=source.index.files[0].file_id)
    h.request(file_id=source.index.files[0].file_id, addr=OTHER, sid=7)
    items = h.engine.chunks_to_send(h.now, 3 * se.SESSION_TURN)
    source.gone.add(source.index.files[0].file_id)
    out = [h.engine.encode_run(run, h.now) for run in items]
    assert out == [[], [], []]
    assert h.engine.counters.link.sent == 0
    assert {e.why for e in h.engine.events()
            if isinstance(e, se.SessionEnded)} == {"failed: file unreadable"}


@settings(max_examples=40, deadline=None)
@given(order=st.sampled_from([p.Order.SEQUENTIAL, p.Order.RANDOM,
                              p.Order.SEMI_RANDOM]),
       window=st.integers(1, CHUNKS), seed=st.integers(0, 2**32 - 1),
       most=st.integers(1, 60))
def test_only_chunks_sent_once_can_be_nacked_whatever_the_order(
        order, window, seed, most):
    h = Harness()
    h.request(window=window, order=order, seed=seed)
    sent = []
    for _ in range(CHUNKS):
        got = chunk_indices(h.messages(most=most))
        if not got:
            break
        sent += got
    assert sorted(sent) == sorted(set(sent)) and len(sent) == window
    h.send(p.Nack(window, 1, ((0, CHUNKS),)))
    (session,) = h.engine.sessions
    assert sorted(session.resend.fifo) == sorted(sent)


def test_a_lossy_link_leaves_chunks_out_of_runs_their_tx_seq_used():
    h = Harness(link=netem.LinkSpec(loss=0.3, dup=0.2))
    h.request()
    items = h.engine.chunks_to_send(h.now)
    runs = [item for item in items if type(item) is se.ChunkRun]
    assert runs  # no delay: runs even through a lossy link
    tx_seqs = [t for run in runs for t in run.tx_seqs]
    assert tx_seqs == sorted(tx_seqs)  # a duplicate right after its twin
    built = [p.decode(d).message for d, _ in h.engine.encode_run(runs[0],
                                                                 h.now)]
    assert [m.tx_seq for m in built] == list(runs[0].tx_seqs)
    h.engine.datagrams_to_send(h.now)  # the DONE went with the runs
    link = h.engine.counters.link
    assert link.sent == CHUNKS
    assert link.dropped == CHUNKS - len(set(tx_seqs)) > 0
    assert link.duplicated == len(tx_seqs) - len(set(tx_seqs)) > 0


# ------------------------------------- hardening round 3 (helper "attack")
class SparseSource(BytesSource):
    """Files of zeros known only by their size (a sparse 4.5 GB file)."""

    def __init__(self, sizes: dict[str, int]):
        super().__init__({})
        infos = []
        for name, size in sizes.items():
            sha = hashlib.sha256(name.encode()).digest()
            infos.append(p.FileInfo(p.file_id_of(sha), size,
                                    p.chunk_count(size), p.CHUNK_SIZE, 0,
                                    sha, name))
        self.index = se.SearchIndex(infos)

    def read(self, file_id, index):
        info = self.info(file_id)
        return bytes(min(p.CHUNK_SIZE, info.size - index * p.CHUNK_SIZE))

    def by_name(self, name) -> p.FileInfo:
        return next(f for f in self.index.files if f.name == name)


BIG = SparseSource({"huge.mp3": 4_500_000_000, "mid.mp3": 21_000_000,
                    "song.mp3": 2 * 1024 * 1024})
HUGE, MID = BIG.by_name("huge.mp3"), BIG.by_name("mid.mp3")
ATTACKER = ("127.0.0.66", 4000)
QUEUE_CAP = 4_000_000  # chunks all sessions may ask together (issue 11)


def errors(h, addr):
    return [d.message.text for d, a in h.out()
            if a == addr and isinstance(d.message, p.Error)]


def test_one_host_filling_the_chunk_budget_cannot_lock_out_another():
    """Attack "queued chunks lock-out": two REQUESTs (the whole 4.5 GB
    file and 800 k chunks more) fill the queue; another host is served,
    by evicting from the host that holds the most."""
    h = Harness(BIG)
    h.request(((0, HUGE.chunks),), 1, addr=ATTACKER, sid=1,
              file_id=HUGE.file_id)
    h.now += 2.0  # the start bucket refills
    h.request(((0, QUEUE_CAP - HUGE.chunks - 4096),), 1, addr=ATTACKER,
              sid=2, file_id=HUGE.file_id)
    assert len(h.engine.sessions) == 2
    h.out()
    h.request(((0, 10_000),), 64, sid=7, file_id=HUGE.file_id)
    assert h.engine.sessions.get(LEECHER, 7) is not None
    assert len(chunk_indices(h.messages())) == 64
    assert len(h.engine.sessions) == 2  # one of the attacker's went
    assert h.engine.sessions.queued_chunks <= se.MAX_QUEUED_CHUNKS


def test_a_host_never_evicts_one_that_holds_less_than_itself():
    h = Harness(BIG)
    h.request(((0, 1000),), 1, sid=1, file_id=HUGE.file_id)
    h.request(((0, HUGE.chunks),), 1, addr=ATTACKER, sid=1,
              file_id=HUGE.file_id)
    h.now += 5.0
    h.out()
    h.request(((0, QUEUE_CAP // 2),), 1, addr=ATTACKER, sid=2,
              file_id=HUGE.file_id)
    assert errors(h, ATTACKER) == ["too many sessions"]
    assert h.engine.sessions.get(LEECHER, 1) is not None


def traced_bytes(action) -> int:
    """The peak of the bytes ``action`` allocates (tracemalloc)."""
    import tracemalloc
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_session_costs_memory_by_the_chunks_asked_not_the_file():
    """Attack "tiny requests memory": a one-chunk REQUEST of a 4.5 GB
    file cost ~9.4 MB (three tables sized by the file)."""
    h = Harness(BIG)
    peak = traced_bytes(lambda: h.request(((0, 1),), 1,
                                          file_id=HUGE.file_id))
    assert peak < 64_000
    h.request(((5, 6),), 1, sid=2, file_id=HUGE.file_id)
    h.out()
    h.now += 0.1
    peak = traced_bytes(lambda: h.send(p.Nack(2, 1, ((5, 6),)), sid=2))
    assert peak < 64_000
    assert chunk_indices(h.messages()) == [5]


def test_a_whole_file_sequential_request_makes_nothing_per_chunk():
    """Attack "REQUEST+CANCEL churn": a REQUEST of all 3.2 M chunks of a
    4.5 GB file built a 3.2 M-entry order (~0.15 s) and 3 tables."""
    h = Harness(BIG)
    peak = traced_bytes(lambda: h.request(((0, HUGE.chunks),), 64,
                                          file_id=HUGE.file_id))
    assert peak < 64_000
    assert chunk_indices(h.messages()) == list(range(64))


def test_session_starts_per_host_are_rate_limited():
    """8 REQUEST+CANCEL pairs a second of the whole 4.5 GB file for 10 s:
    a few start (~2 M chunks a second per host); another host still
    starts at once."""
    h = Harness(BIG)
    started = 0
    for sid in range(1, 81):
        h.now = 100.0 + sid / 8
        h.request(((0, HUGE.chunks),), 1, addr=ATTACKER, sid=sid,
                  file_id=HUGE.file_id)
        started += h.engine.sessions.get(ATTACKER, sid) is not None
        h.send(p.Cancel(), ATTACKER, sid)
        h.out()
    assert 1 <= started <= 1 + 10 * 2_000_000 // HUGE.chunks
    h.request(((0, HUGE.chunks),), 64, file_id=HUGE.file_id)
    assert len(chunk_indices(h.messages())) == 64


def count_swaps(monkeypatch) -> list:
    """Swaps of every shuffle made, one entry per ``shuffle_steps``."""
    swaps = []
    real = p.OrderRng.shuffle_steps

    def counted(self, items, base, top, steps):
        left = real(self, items, base, top, steps)
        swaps.append(top - left)
        return left
    monkeypatch.setattr(p.OrderRng, "shuffle_steps", counted)
    return swaps


def test_building_orders_is_bounded_per_call_in_total(monkeypatch):
    """Attack "shuffle stall": 64 window-1 RANDOM sessions of a 21 MB
    file shuffled 20,000 swaps each in one call (~1 s)."""
    h = Harness(BIG)
    for n in range(4):
        host = (f"127.0.0.{61 + n}", 4000)
        for sid in range(1, 17):
            h.request(((0, MID.chunks),), 1, p.Order.RANDOM, sid,
                      host, sid, MID.file_id)
    swaps = count_swaps(monkeypatch)
    calls = 0
    while h.engine.sessions.building and calls < 1000:
        del swaps[:]
        h.engine.chunks_to_send(h.now, 64)
        assert sum(swaps) <= 20_000
        calls += 1
    assert not h.engine.sessions.building  # each got its turn
    assert calls >= 64 * MID.chunks // 20_000


@pytest.mark.parametrize("asked", [1, 2, 8, 32])
def test_a_small_request_gets_at_most_twice_its_chunks(asked):
    """Attack "small request resends": 1-8 chunks NACKed every round
    came 9 times (a floor of 64 resends)."""
    h = Harness()
    h.request(((0, asked),), 64)
    sent = chunk_indices(h.messages())
    for round_ in range(1, 40):
        h.now += 0.1
        h.send(p.Nack(0xFFFFFFFF, round_, ((0, asked),)))
        sent += chunk_indices(h.messages())
    assert len(sent) <= 2 * asked
    assert sorted(set(sent)) == list(range(asked))


@settings(max_examples=60, deadline=None)
@given(spans=st.lists(st.tuples(st.integers(0, CHUNKS), st.integers(0, 12)),
                      min_size=1, max_size=6),
       order=st.sampled_from([p.Order.SEQUENTIAL, p.Order.RANDOM,
                              p.Order.SEMI_RANDOM]),
       seed=st.integers(0, 2**32 - 1), most=st.integers(1, 60))
def test_tables_by_position_serve_exactly_the_chunks_asked(spans, order, seed,
                                                           most):
    """Several ranges, any order: every chunk asked goes once, a NACK of
    the whole file resends exactly those (positions map back to indices)
    and nothing outside them."""
    ranges = p.RangeSet()
    for start, length in spans:
        ranges.add(start, min(CHUNKS, start + length))
    asked = [i for s, e in ranges for i in range(s, e)]
    if not asked:
        return
    h = Harness()
    h.request(list(ranges), window=4096, order=order, seed=seed)
    sent = []
    for _ in range(len(asked) + 2):
        sent += chunk_indices(h.messages(most=most))
    assert sorted(sent) == asked
    assert sent == p.send_order(list(ranges), order, seed, 0.5)
    h.now += 0.1
    h.send(p.Nack(0xFFFFFFFF, 1, ((0, CHUNKS),)))
    assert sorted(chunk_indices(h.messages())) == asked


def test_the_start_limiter_tracks_a_bounded_number_of_hosts():
    limiter = se.StartLimiter()
    for n in range(10_050):
        assert limiter.take(f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}", 1,
                            100.0)
    assert len(limiter._buckets) <= 10_000
    host = "192.0.2.1"
    assert limiter.take(host, 3_000_000, 100.0)
    assert not limiter.take(host, 3_000_000, 100.1)  # refills 2 M/s
    assert limiter.take(host, 3_000_000, 101.5)


# ------------------------------------------- a peer's source, the swarm
class HeldSource(BytesSource):
    """A peer's source: only the chunks in ``held_chunks`` may go."""

    def __init__(self, held_chunks):
        super().__init__({"song.mp3": SONG})
        self.held_chunks = p.RangeSet(held_chunks)

    def held(self, file_id):
        return self.held_chunks

    def read(self, file_id, index):
        assert index in self.held_chunks, f"chunk {index} read, not held"
        return super().read(file_id, index)


def test_a_request_for_chunks_not_held_is_refused_not_found():
    h = Harness(HeldSource([(0, 10)]))
    h.request(ranges=((20, 40),))
    (error,) = h.messages()
    assert error.code == p.ErrorCode.NOT_FOUND
    assert error.text == "those pieces are not here"
    assert len(h.engine.sessions) == 0


def test_a_request_partly_held_is_served_only_what_is_held():
    h = Harness(HeldSource([(0, 10), (30, 35)]))
    h.request(ranges=((5, 40), (90, CHUNKS)))
    sent = chunk_indices(h.messages())
    assert sent == [*range(5, 10), *range(30, 35)]
    h.send(p.Nack(10**6, 1, ((0, CHUNKS),)))  # a NACK of everything
    assert set(chunk_indices(h.messages())) <= set(sent)


def test_a_source_without_held_or_with_none_serves_everything():
    class AllHeld(BytesSource):
        def held(self, file_id):
            return None

    for source in (SOURCE, AllHeld({"song.mp3": SONG})):
        h = Harness(source)
        h.request()
        assert chunk_indices(h.messages()) == list(range(CHUNKS))


def have(h, token, addr=LEECHER, pieces_=SONG_PIECES, file_id=SONG_ID):
    h.send(p.Have(file_id, pieces_, ((0, 1),), token), addr, sid=0)


def test_a_have_with_a_valid_token_is_recorded_and_never_answered():
    h = Harness()
    have(h, h.token())
    assert h.out() == []
    assert h.engine.directory.listing(SONG_ID, None, h.now) == (LEECHER,)


@pytest.mark.parametrize("token, pieces_, file_id", [
    (1234, SONG_PIECES, SONG_ID),  # a forged token
    (None, SONG_PIECES + 1, SONG_ID),  # a piece count not the song's
    (None, SONG_PIECES, b"unknown!"),  # a song we do not have
])
def test_a_bad_have_is_not_recorded_and_gets_no_reply(token, pieces_,
                                                      file_id):
    h = Harness()
    refused = h.engine.counters.refused
    have(h, h.token() if token is None else token, pieces_=pieces_,
         file_id=file_id)
    assert h.out() == []
    assert len(h.engine.directory) == 0
    assert h.engine.counters.refused == refused + 1


def test_get_peers_needs_the_token_then_lists_recent_have_senders():
    h = Harness()
    peers = [(f"127.0.3.{n}", 7000 + n) for n in range(1, 4)]
    for n, peer in enumerate(peers):
        h.now += 1
        have(h, h.token(peer), addr=peer)
    h.send(p.GetPeers(SONG_ID, 0), sid=77)
    ((retry, to),) = h.out()
    assert isinstance(retry.message, p.Retry) and retry.session == 77
    h.send(p.GetPeers(SONG_ID, retry.message.token), sid=77)
    ((answer, _),) = h.out()
    assert answer.session == 77
    assert answer.message == p.Peers(SONG_ID, tuple(reversed(peers)))
    # the asker itself is never listed
    h.send(p.GetPeers(SONG_ID, h.token(peers[1])), addr=peers[1])
    (listing,) = h.messages()
    assert listing.peers == (peers[2], peers[0])
    h.send(p.GetPeers(b"unknown!", h.token()))
    (error,) = h.messages()
    assert error.code == p.ErrorCode.NOT_FOUND


def test_get_peers_answers_at_most_a_bounded_datagram():
    h = Harness()
    for n in range(100):
        peer = (f"127.0.4.{n + 1}", 1000)  # one each: a host holds few
        have(h, h.token(peer), addr=peer)
    h.send(p.GetPeers(SONG_ID, h.token()))
    ((data, _),) = h.engine.datagrams_to_send(h.now)
    assert len(data) <= 16 + 10 + 6 * p.MAX_PEERS_LISTED
    assert len(p.decode(data).message.peers) == p.MAX_PEERS_LISTED


def test_session_bounds_are_the_constructors():
    h = Harness(max_sessions=3, max_sessions_per_host=2)
    for port in range(3):
        h.request(ranges=((0, 1),), window=1, addr=("127.0.5.1", 100 + port))
    assert [e.code for e in h.messages(p.Error)] == [p.ErrorCode.BUSY]
    assert len(h.engine.sessions) == 2
    for host in (2, 3):
        h.request(ranges=((0, 1),), window=1, addr=(f"127.0.5.{host}", 1))
    assert len(h.engine.sessions) == 3  # full: one of 127.0.5.1's went
    hosts = sorted(s.addr[0] for s in h.engine.sessions)
    assert hosts == ["127.0.5.1", "127.0.5.2", "127.0.5.3"]


def test_served_to_counts_chunks_per_address_and_sums_to_the_total():
    h = Harness()
    a, b = ("127.0.6.1", 1), ("127.0.6.2", 2)
    h.request(ranges=((0, 10),), addr=a)
    h.request(ranges=((0, 4),), addr=b)
    h.out()
    h.send(p.Nack(10**6, 1, ((2, 3),)), addr=b)
    h.out()
    assert h.engine.served_to() == {"127.0.6.1:1": 10, "127.0.6.2:2": 5}
    assert sum(h.engine.served_to().values()) == h.engine.counters.link.sent


def test_served_to_names_a_bounded_number_of_addresses(monkeypatch):
    monkeypatch.setattr(se, "MAX_SERVED_KEYS", 3)
    h = Harness()
    for n in range(6):
        h.request(ranges=((0, 1),), window=1, addr=(f"127.0.7.{n}", 1))
        h.out()
    served = h.engine.served_to()
    assert len(served) == 4 and served["other"] == 3
    assert sum(served.values()) == h.engine.counters.link.sent == 6
