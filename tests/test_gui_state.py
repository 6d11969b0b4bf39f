"""What the window decides without Tk: buttons, runs, curves, names."""

from __future__ import annotations

import csv
import json
import math
from types import SimpleNamespace

import pytest

import events as ev
import gui_state as gs
import i18n

NAN = math.nan


@pytest.fixture(autouse=True)
def english():
    i18n.use("en")
    yield
    i18n.use("en")


def test_nothing_to_do_at_the_start_but_refresh_and_search():
    on = gs.buttons(gs.WindowState())
    assert {k for k, v in on.items() if v} == {"refresh", "search"}


def test_a_download_disables_what_would_race_it():
    on = gs.buttons(gs.WindowState(downloading=True, song_selected=True,
                                   song_here=True, player_state="playing",
                                   plot_points=10))
    assert on["stop_download"] and on["pause"] and on["stop_play"]
    assert not (on["download"] or on["download_again"] or on["refresh"]
                or on["search"] or on["play"])
    assert on["save_png"]  # the plot so far can be saved


def test_plot_png_needs_points_and_stats_need_a_finished_download():
    assert not gs.buttons(gs.WindowState(plot_points=0))["save_png"]
    assert gs.buttons(gs.WindowState(plot_points=1))["save_png"]
    on = gs.buttons(gs.WindowState(have_stats=True, runs=1))
    assert on["save_json"] and on["save_csv"] and on["compare"]


def test_play_pause_stop_follow_the_player():
    def on(state, **more):
        return gs.buttons(gs.WindowState(player_state=state, **more))
    assert on("paused")["play"] and not on("paused")["pause"]
    assert not on("playing", have_file=True)["play"]
    assert on("stopped", have_file=True)["play"]
    assert not on("stopped", have_file=False)["play"]
    assert on("stalled")["pause"] and on("stalled")["stop_play"]
    assert not on("finished")["stop_play"]


def test_download_again_only_for_a_song_that_is_here():
    assert not gs.buttons(gs.WindowState(song_selected=True))[
        "download_again"]
    assert gs.buttons(gs.WindowState(song_selected=True, song_here=True))[
        "download_again"]


def run(number=1, order="random", received=(0.1, 0.3, 0.2),
        played=(1.0, 1.5, None)):
    r = gs.Run(number, "Minha Canção.mp3", order,
               (("127.0.0.1:9000", "sequential"),
                ("127.0.0.2:9000", "random")), "loss 0.05", 0.0,
               chunks=len(received))
    for index, at in enumerate(received):
        r.take(ev.ChunkReceived(index, at / 2, at, index == 2,
                                "127.0.0.1:9000"))
    r.take(ev.NackSent("127.0.0.1:9000", 1, (1, 99), 0.25))
    for index, at in enumerate(played):
        if at is not None:
            r.take_played(index, at)
    r.finish({"chunks": 3, "startup_s": 0.9, "continuity": 0.5,
              "stalls": 1, "stall_s": 0.25, "elapsed_s": 0.31,
              "nacks_sent": 2, "chunks_retransmitted": 1})
    return r


def test_a_run_keeps_what_the_events_told():
    r = run()
    assert r.received == [0.1, 0.3, 0.2]
    assert r.played == [1.0, 1.5, None]
    assert r.stats["nacked_chunks"] == 1  # chunk 99 is no chunk of it
    rows = r.timeline()
    assert rows[1] == {"chunk": 1, "sent": 0.15, "received": 0.3,
                       "played": 1.5, "retransmitted": False, "nacked": 1}
    assert rows[2]["retransmitted"] is True
    assert r.orders == ("random",)
    own = run(order=None)
    assert own.orders == ("sequential", "random")
    assert own.order_text() == "sequential + random"


def test_played_fills_every_chunk_before_the_last_once():
    r = gs.Run(1, "a.mp3", None, (), "", 0.0, chunks=5)
    r.take_played(2, 1.0)
    r.take_played(4, 2.0)
    r.take_played(1, 3.0)  # late news changes nothing
    assert r.played == [1.0, 1.0, 1.0, 2.0, 2.0]


def test_runs_table_cells_in_both_languages():
    cells = gs.run_cells(run())
    assert cells == ("#1", "random", "0.90 s", "50.0 %", "1 (0.25 s)",
                     "0.31 s", "2", "1")
    i18n.use("pt")
    assert gs.run_cells(run())[1:4] == ("aleatória", "0,90 s", "50,0 %")


def test_runs_csv_and_json(tmp_path):
    runs = [run(1, "sequential"), run(2, "random")]
    gs.write_runs_csv(tmp_path / "runs.csv", runs)
    with open(tmp_path / "runs.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["orders"] for r in rows] == ["sequential", "random"]
    assert rows[0]["song"] == "Minha Canção.mp3"
    assert rows[0]["nacked_chunks"] == "1"
    gs.write_runs_json(tmp_path / "runs.json", runs)
    saved = json.loads((tmp_path / "runs.json").read_text())
    assert saved["runs"][1]["received_s"] == [0.1, 0.3, 0.2]


def test_downloaded_in_order_counts_the_contiguous_prefix():
    times, ready = gs.in_order_curve([0.3, 0.1, None, 0.2])
    # chunks 1 and 3 alone complete nothing; chunk 0 at 0.3 s completes
    # two; chunk 2 never came
    assert times == [0.0, 0.3]
    assert ready == [0, 2]
    assert gs.in_order_curve([0.1, NAN, 0.2]) == ([0.0, 0.1], [0, 1])
    assert gs.in_order_curve([]) == ([0.0], [0])


def test_played_curve_never_goes_back():
    times, counts = gs.played_curve([1.0, 2.0, NAN, None])
    assert times == [1.0, 2.0] and counts == [1, 2]
    assert gs.played_curve([2.0, 1.0]) == ([1.0, 2.0], [2, 2])


def test_default_file_names_name_the_song_and_the_orders():
    assert gs.default_name("Minha Canção.mp3", ["random"], "plot",
                           ".png") == "Minha_Canção-random-plot.png"
    assert gs.file_stem("a/../b.mp3", ["sequential", None, "sequential"]) \
        == "b-sequential-own"
    assert gs.file_stem("...", []) == "run"


def test_live_counters_follow_the_events():
    live = gs.Live()
    for event in (ev.Resumed(5, 69),
                  ev.ChunkReceived(6, None, 0.1, False, "a:1"),
                  ev.ChunkReceived(7, 0.1, 0.2, True, "b:1"),
                  ev.NackSent("a:1", 1, (8, 9), 0.3),
                  ev.Stalled(1.0), ev.SeederGone("b:1", 2.0)):
        live.take(event)
    assert (live.received, live.total, live.retransmitted) == (7, 69, 1)
    assert (live.nacks, live.nack_entries, live.stalls) == (1, 2, 1)
    assert live.sources == {"a:1": 1, "b:1": 1} and live.gone == {"b:1"}
    live.take(ev.SeedersBack(("b:1",), 3.0))
    assert live.gone == set()


def test_the_window_fits_the_screen_it_opens_on():
    assert gs.window_size(1024, 768) == (1014, 688)
    width, height = gs.window_size(1920, 1080)
    assert width <= 1920 and height <= 1080 - gs.WINDOW_MARGIN[1]
    assert gs.window_size(1366, 768)[1] == 688


def test_played_chunk():
    assert gs.played_chunk(1, 1400, 10) == 0
    assert gs.played_chunk(1400, 1400, 10) == 0
    assert gs.played_chunk(1401, 1400, 10) == 1
    assert gs.played_chunk(10 ** 9, 1400, 10) == 9


class FakeEndpoint:
    """Answers PING from ``alive`` addresses at once; logs every send."""

    def __init__(self, alive):
        self.alive = set(alive)
        self.log = []      # ("ping", addr) and ("answered", addr)
        self.pending = []

    def send(self, msg, addr, session: int = 0) -> None:
        import protocol as p
        self.log.append(("ping", addr))
        if addr in self.alive:
            self.pending.append((SimpleNamespace(message=p.Pong(
                msg.nonce, 7, 1, 0, int(p.Order.RANDOM), 50, "s")), addr))

    def receive(self, timeout: float):
        answers, self.pending = self.pending, []
        return answers


def test_each_seeder_is_told_the_moment_it_answers():
    import gui_worker as gw
    import leecher
    alive, dead = ("127.0.0.1", 9000), ("127.0.0.2", 9000)
    endpoint = FakeEndpoint([alive])
    peers = leecher.ping(endpoint, [alive, dead], 0.001, 3,
                         on_answer=lambda peer: endpoint.log.append(
                             ("answered", peer.addr)))
    assert peers[alive].alive and not peers[dead].alive
    assert endpoint.log.index(("answered", alive)) < \
        len(endpoint.log) - 1 - endpoint.log[::-1].index(("ping", dead))
    assert endpoint.log.count(("ping", dead)) == 3  # every try
    assert endpoint.log.count(("ping", alive)) == 1  # answered: no more
    row = gw.peer_row(peers[alive])
    assert (row.address, row.alive, row.order) == ("127.0.0.1:9000", True,
                                                   "random")


def test_audio_figures_take_what_the_player_played():
    assert gs.audio_figures({"startup_s": 9.0, "stalls": 2,
                             "stall_s": 1.23456, "played_s": 6.00001}) == \
        {"stalls": 2, "stall_s": 1.2346, "played_s": 6.0}


# ------------------------------------------------------ simulated runs
@pytest.fixture(scope="module")
def four_second_song(tmp_path_factory):
    import sample_song
    folder = tmp_path_factory.mktemp("sim-song")
    return sample_song.make_mp3(str(folder / "four.mp3"), seconds=4)


def real_run(seeder_orders, goodput_Bps=20_000.0, retransmitted=0):
    run = gs.Run(1, "four.mp3", "sequential", seeder_orders, "", 0.0, 47)
    run.finish({"goodput_Bps": goodput_Bps, "chunks": 47,
                "chunks_retransmitted": retransmitted})  # no times: goodput
    return run


def test_the_steady_rate_leaves_the_first_burst_out():
    # 8 chunks of 1000 bytes: 4 at once, then one every 0.5 s
    received = [0.01] * 4 + [0.5, 1.0, 1.5, 2.0]
    assert gs.steady_rate(received, 8000) == pytest.approx(2000 / 1.0)
    assert gs.steady_rate([0.1] * 8, 8000) is None     # all in one burst
    assert gs.steady_rate(received[:-1] + [None], 8000) is None
    assert gs.steady_rate(received, None) is None
    assert gs.steady_rate(received[:7], 7000) is None  # too few to tell
    run = gs.Run(1, "a.mp3", "random", (("a", "random"),) * 2, "", 0.0, 8)
    run.received = received
    run.finish({"size": 8000, "goodput_Bps": 4000.0, "chunks": 8})
    request = gs.simulation_request(run, "/x", None, 2.0, [], None)
    assert request.rate_kbps == pytest.approx(2000 * 8 / 1000 / 2)


def test_a_simulation_estimates_the_links_from_the_real_run():
    run = real_run((("127.0.0.1:9000", "random"),
                    ("127.0.0.2:9000", "sequential")), 20_000.0, 5)
    request = gs.simulation_request(run, "/x/four.mp3", "random", 1.5,
                                    [40.0, None, 60.0, 50.0], None)
    assert request.rate_kbps == pytest.approx(80.0)  # 160 kbit/s / 2
    assert request.loss == pytest.approx(5 / 47)
    assert request.delay_ms == 25.0  # half the median round trip
    assert request.seed == gs.SIM_SEED and request.prebuffer == 1.5
    assert "run #1" in request.emulation() and "80 kbit/s" in \
        request.emulation()
    lossy = gs.simulation_request(real_run((), retransmitted=47),
                                  "/x", None, 2.0, [], 7)
    assert lossy.loss == gs.MAX_SIM_LOSS and lossy.delay_ms == 0.0
    assert lossy.seed == 7


def test_a_simulated_run_has_times_stats_and_its_mark(four_second_song):
    run = real_run((("127.0.0.1:9000", "random"),))
    sequential = gs.simulated_run(gs.simulation_request(
        run, four_second_song, "sequential", 2.0, [40.0], None))
    assert sequential.simulated and sequential.chunks > 10
    assert all(t is not None and t > 0 for t in sequential.received)
    assert all(t is None or t >= r for t, r in
               zip(sequential.played, sequential.received))
    assert sequential.played[-1] is not None  # it played to the end
    assert sequential.stats["startup_s"] > 0
    assert sequential.order_text() == "sequential (simulated)"
    assert gs.run_cells(sequential)[1] == "sequential (simulated)"
    assert gs.run_record(sequential)["simulated"] == 1
    assert gs.run_record(run)["simulated"] == 0
    i18n.use("pt")
    assert sequential.order_text() == "sequencial (simulada)"
    i18n.use("en")
    # order None: each seeder's own, as the real run's seeders had it
    own = gs.simulated_run(gs.simulation_request(
        run, four_second_song, None, 2.0, [40.0], None))
    assert own.order_text() == "random (simulated)"
    # random sends the song's start late: playback starts later
    assert own.stats["startup_s"] > sequential.stats["startup_s"]
    again = gs.simulated_run(gs.simulation_request(
        run, four_second_song, None, 2.0, [40.0], None))
    assert again.received == own.received  # virtual time, seeded


def test_simulate_needs_a_real_run_and_no_other_work():
    def simulate(**state):
        return gs.buttons(gs.WindowState(**state))["simulate"]
    assert not simulate(runs=1)  # a simulated run alone
    assert simulate(runs=1, real_runs=1)
    assert not simulate(runs=1, real_runs=1, downloading=True)
    assert not simulate(runs=1, real_runs=1, simulating=True)


# ------------------------------------------------------------ capture
def pcap_records(path) -> int:
    """Records of a classic pcap file, walked header by header."""
    import struct
    with open(path, "rb") as handle:
        data = handle.read()
    assert data[:4] == b"\xd4\xc3\xb2\xa1"  # little-endian classic pcap
    count, at = 0, 24
    while at < len(data):
        included = struct.unpack_from("<I", data, at + 8)[0]
        at += 16 + included
        count += 1
    assert at == len(data)
    return count


def test_save_capture_needs_a_capture():
    assert not gs.buttons(gs.WindowState(have_stats=True))["save_pcap"]
    assert gs.buttons(gs.WindowState(have_capture=True))["save_pcap"]
    assert gs.default_name("Hey Jude.mp3", ["random"], None, ".pcap") == \
        "Hey_Jude-random.pcap"


def test_each_download_gets_a_capture_that_replaces_the_last(tmp_path):
    import os

    import gui_worker as gw
    import protocol as p
    worker = gw.Worker(gw.Inbox(), gw.WorkerSettings())
    nobody = ("127.0.0.1", 9)  # the discard port: nothing answers

    def download(pings: int):
        for n in range(pings):
            worker._endpoint().send(p.Ping(n), nobody)
        return "done"

    try:
        assert worker.capture_path is None
        assert worker._captured(lambda: download(2)) == "done"
        first = worker.capture_path
        assert pcap_records(first) == 2  # complete before the window hears
        assert worker._endpoint().capture is None  # pings later: not in it

        def failing():
            download(3)
            raise OSError("the download failed")
        with pytest.raises(OSError):
            worker._captured(failing)
        second = worker.capture_path
        assert second != first and not os.path.exists(first)
        assert pcap_records(second) == 3  # a failed download's is kept
    finally:
        worker._clean_up()
    assert worker.capture_path is None and not os.path.exists(second)


# ------------------------------------------------------- the swarm's sources
SWARM_STATS = {"chunks": 3, "per_peer": {"127.0.0.1:9000": 2,
                                         "127.0.0.22:40001": 1},
               "sources": {"127.0.0.1:9000": "seeder",
                           "127.0.0.22:40001": "peer"},
               "served_chunks": 7, "served_to": {"127.0.0.23:40002": 7}}


def test_exports_count_the_chunks_of_every_source(tmp_path):
    """per_peer (seeders and peers, the leecher JSON's key) reaches the
    runs' CSV and JSON and the statistics' CSV."""
    swarm = run()
    swarm.finish(SWARM_STATS)
    gs.write_runs_csv(tmp_path / "runs.csv", [swarm, run(2)])
    with open(tmp_path / "runs.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["per_peer"] == "127.0.0.1:9000=2 127.0.0.22:40001=1"
    assert rows[0]["served_chunks"] == "7"
    assert rows[1]["per_peer"] == rows[1]["served_chunks"] == ""
    gs.write_runs_json(tmp_path / "runs.json", [swarm])
    saved = json.loads((tmp_path / "runs.json").read_text())["runs"][0]
    assert saved["per_peer"] == SWARM_STATS["per_peer"]
    assert saved["sources"]["127.0.0.22:40001"] == "peer"
    gs.write_stats_csv(tmp_path / "stats.csv", swarm.stats, [])
    text = (tmp_path / "stats.csv").read_text()
    assert "per_peer.127.0.0.22:40001,1\n" in text
    assert "sources.127.0.0.1:9000,seeder\n" in text


def test_a_source_not_among_the_seeders_is_a_peer_and_named_so():
    seeders = {"127.0.0.1:9000", "127.0.0.2:9000"}
    assert gs.source_kind("127.0.0.2:9000", seeders) == gs.SEEDER
    assert gs.source_kind("127.0.0.22:9000", seeders) == gs.PEER
    same_port = {"127.0.0.1:9000": gs.SEEDER, "127.0.0.22:9000": gs.PEER}
    assert gs.source_labels(same_port) == {
        "127.0.0.1:9000": "seeder 127.0.0.1",
        "127.0.0.22:9000": "peer 127.0.0.22"}
    mixed = {"127.0.0.1:9000": gs.SEEDER, "127.0.0.22:40001": gs.PEER}
    assert gs.source_labels(mixed)["127.0.0.22:40001"] == \
        "peer 127.0.0.22:40001"
    i18n.use("pt")
    assert gs.source_labels(mixed)["127.0.0.22:40001"] == \
        "par 127.0.0.22:40001"


def test_live_counters_keep_the_last_served_figures():
    live = gs.Live()
    assert (live.served_chunks, live.served_peers) == (0, 0)
    live.take(ev.Served(120, 3, 5.0))
    live.take(ev.PeerJoined("127.0.0.22:40001", 5.5))  # counts nothing
    assert (live.served_chunks, live.served_peers) == (120, 3)
    live.take(ev.Served(150, 4, 6.0))  # totals, not increments
    assert (live.served_chunks, live.served_peers) == (150, 4)
    assert live.received == 0 and live.sources == {}


# ------------------------------------------------------ live playback
def test_live_playback_takes_start_up_from_the_first_played_event():
    run = gs.Run(1, "a.mp3", None, (), "", 0.0, chunks=4)
    for index, when in enumerate((0.1, 0.2, 3.0, 0.3)):  # chunk 2 late
        run.take(ev.ChunkReceived(index, None, when, False, "s"))
    clock = gs.MeanRateClock(4000, 4.0)  # 1 s per 1000-byte chunk
    playback = gs.LivePlayback()
    assert playback.figures(clock, run, 1000) == {}
    playback.take(ev.Played(0, 0.5))  # nothing played yet: ignored
    playback.take(ev.Played(500, 1.5))
    run.take_played(0, 1.5)
    figures = playback.figures(clock, run, 1000)
    assert figures["startup_s"] == pytest.approx(1.0)
    assert figures["played_s"] == pytest.approx(0.5)
    assert figures["continuity"] == 1.0
    playback.take(ev.Played(3000, 4.0))  # chunk 2 (due 3.0 s) came at 3.0
    run.take_played(2, 4.0)
    assert playback.figures(clock, run, 1000)["continuity"] == 1.0
    playback.take(ev.Played(2000, 9.0))  # older news: never goes back
    assert playback.figures(clock, run, 1000)["played_s"] == \
        pytest.approx(3.0)


def test_continuity_so_far_counts_played_chunks_only():
    run = gs.Run(1, "a.mp3", None, (), "", 0.0, chunks=4)
    clock = gs.MeanRateClock(4000, 4.0)
    assert gs.continuity_so_far(run, 0.5, 1000, clock) is None
    run.received = [0.1, 2.0, None, 9.0]  # chunk 1 late; 2 was on disk
    run.take_played(2, 4.0)
    assert gs.continuity_so_far(run, 0.5, 1000, clock) == \
        pytest.approx(2 / 3)  # chunk 3, very late, has not played yet


def test_mean_rate_clock_stays_within_the_song():
    clock = gs.MeanRateClock(1000, 10.0)
    assert (clock.time_at(-5), clock.time_at(500),
            clock.time_at(5000)) == (0.0, 5.0, 10.0)
    assert gs.MeanRateClock(0, 10.0).time_at(100) == 0.0


# ----------------------------------------------------------- prebuffer
@pytest.mark.parametrize("text,value", [
    ("2", 2.0), ("2,5", 2.5), (" 2.5 ", 2.5), ("0", 0.0), ("30", 30.0),
    ("30,5", None), ("-1", None), ("nan", None), ("inf", None),
    ("dois", None), ("", None), ("1,2,3", None)])
def test_prebuffer_reads_a_comma_or_a_point(text, value):
    assert gs.prebuffer_value(text) == value


def test_prebuffer_is_shown_and_stepped_in_the_language_in_use():
    i18n.use("pt")
    assert gs.prebuffer_text(2.0) == "2,0"
    assert gs.prebuffer_text(0.25) == "0,25"
    assert gs.prebuffer_step("2,0", 1) == "2,5"
    assert gs.prebuffer_step("2,3", 1) == "2,5"
    assert gs.prebuffer_step("2,3", -1) == "2,0"
    assert gs.prebuffer_step("0", -1) == "0,0"
    assert gs.prebuffer_step("30", 1) == "30,0"
    assert gs.prebuffer_step("x", 1) is None
    i18n.use("en")
    assert gs.prebuffer_step("2,5", 1) == "3.0"


def test_over_final_keeps_the_downloads_whole_song_figures():
    final = {"startup_s": 0.46, "continuity": 0.9, "played_s": 1.0}
    live = {"startup_s": 0.45, "continuity": 1.0, "played_s": 7.5}
    assert gs.over_final(final, live) == {"startup_s": 0.46,
                                          "continuity": 0.9, "played_s": 7.5}
    unknown = {"startup_s": None, "continuity": None, "played_s": 0.0}
    assert gs.over_final(unknown, live) == live
    assert gs.over_final(final, {}) == final
