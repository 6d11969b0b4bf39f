"""p2p_facom.py experiment: the sending orders compared end to end."""

import csv
import math
import os
import shutil
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from conftest import ROOT, skip_outside_ci

RUNNER = os.path.join(ROOT, "p2p_facom.py")


def experiment(*args, timeout=240):
    return subprocess.run([sys.executable, RUNNER, "experiment", *args],
                          capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


@pytest.fixture(scope="module")
def short_song(tmp_path_factory):
    import sample_song
    folder = tmp_path_factory.mktemp("experiment-song")
    return sample_song.make_mp3(str(folder / "four-seconds.mp3"), seconds=4)


def summary_rows(folder, runs: int) -> dict:
    """experiment.csv's row per order, checked whole; the PNG is a PNG."""
    with open(folder / "experiment.csv", newline="") as handle:
        rows = {row["order"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"sequential", "random", "semi-random"}
    for row in rows.values():
        assert row["runs"] == str(runs)
        for key in ("startup_s", "stalls", "stall_s", "continuity",
                    "completion_s", "retransmitted"):
            assert row[f"{key}_median"] != "", (key, row)
            assert float(row[f"{key}_min"]) <= float(row[f"{key}_max"])
    with open(folder / "experiment.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    return rows


def test_small_run_writes_csv_and_png_and_random_starts_later(
        short_song, tmp_path):
    # One seeder: its first burst cannot carry the whole 4 s song, so the
    # sending order decides when the start of the song is complete.
    result = experiment("--song", short_song, "--runs", "1", "--seeders",
                        "1", "-o", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = summary_rows(tmp_path, runs=1)
    assert float(rows["random"]["startup_s_median"]) >= \
        float(rows["sequential"]["startup_s_median"])
    assert (tmp_path / "experiment-runs.csv").exists()
    for order in ("sequential", "random", "semi-random"):
        assert order in result.stdout  # the table
    assert "start-up" in result.stdout and "continuity" in result.stdout


def test_simulated_run_writes_the_same_outputs_and_repeats_exactly(
        short_song, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        result = experiment("--simulate", "--song", short_song, "--runs",
                            "3", "--seeders", "1", "-o", str(out))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "simulated network" in result.stdout
    rows = summary_rows(first, runs=3)
    assert float(rows["random"]["startup_s_median"]) > \
        float(rows["sequential"]["startup_s_median"])
    # virtual time, seeded: the same command gives the same runs
    assert (first / "experiment-runs.csv").read_text() == \
        (second / "experiment-runs.csv").read_text()


def test_simulated_default_scenario_shows_what_the_orders_cost(tmp_path):
    result = experiment("--simulate", "--runs", "2", "-o", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    with open(tmp_path / "experiment-runs.csv", newline="") as handle:
        runs = list(csv.DictReader(handle))
    by_order = {}
    for run in runs:
        by_order.setdefault(run["order"], []).append(run)
    for run in by_order["sequential"]:
        assert int(run["stalls"]) == 0 and float(run["startup_s"]) < 1
    for run in by_order["random"]:  # the start of the song comes last
        assert float(run["startup_s"]) > 0.5 * float(run["completion_s"])
    for run in by_order["semi-random"]:  # its shuffled half stalls
        assert int(run["stalls"]) >= 1
        assert float(run["continuity"]) < 100


@pytest.mark.parametrize("args", [
    ("--runs", "0"),
    ("--runs", "many"),
    ("--loss", "1.5"),
    ("--rate", "-3"),
    ("--delay", "soon"),
    ("--seeders", "0"),
    ("--seeders", "40"),
    ("--song", "no-such-song"),
    ("--orders", "backwards"),
    ("--bogus",),
])
def test_bad_input_is_one_line_and_exit_2(args, tmp_path):
    result = experiment(*args, "-o", str(tmp_path / "out"), timeout=60)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_output_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    result = experiment("-o", str(target), timeout=60)
    assert result.returncode == 2
    assert "not a folder" in result.stderr


def test_summary_table_and_curves_without_network():
    sys.path.insert(0, ROOT)
    import experiment as e
    runs = [dict(startup_s=0.5, stalls=0, stall_s=0.0, continuity=100.0,
                 completion_s=10.0, retransmitted=3),
            dict(startup_s=1.5, stalls=2, stall_s=1.0, continuity=90.0,
                 completion_s=12.0, retransmitted=5),
            dict(startup_s=None, stalls=1, stall_s=0.5, continuity=None,
                 completion_s=11.0, retransmitted=4)]
    summary = e.summarize(runs)
    assert summary["startup_s"] == (1.0, 0.5, 1.5)
    assert summary["stalls"] == (1, 0, 2)
    assert summary["completion_s"] == (11.0, 10.0, 12.0)
    table = e.format_table({"sequential": summary}, 3)
    assert "1.00 (0.50-1.50)" in table and "sequential" in table
    song = e.SongInfo(e.SONG)
    received = [math.nan] * 4
    received[1], received[0] = 0.5, 1.0
    times, ready = e.ready_curve(song, received)
    assert times == [0.0, 1.0]  # chunk 1 alone completes nothing
    assert ready == [0.0, song.media_time(2)] and ready[1] > 0


# ------------------------------------------------- the playback model
FRAME = b"\xff\xfb\x90\x64" + bytes(413)  # MPEG-1 layer III, 128 kbit/s
FRAME_S = 1152 / 44100


def cbr_song(frames):
    """The byte-to-time map of ``frames`` constant-bit-rate MP3 frames
    (the player's own ByteTimeMap) and the song's size."""
    import player
    time_map = player.ByteTimeMap()
    time_map.feed(FRAME * frames)
    return time_map, len(FRAME) * frames


def test_model_all_at_once_starts_at_once_and_never_stalls():
    import playback_model as pm
    time_map, size = cbr_song(400)  # 10.4 s
    chunks = -(-size // 1400)
    result = pm.simulate([0.0] * chunks, 1400, size, time_map, 2.0)
    assert result.startup_s == 0.0
    assert (result.stalls, result.stall_s) == (0, 0.0)
    assert result.continuity == 1.0
    assert result.end_s == pytest.approx(400 * FRAME_S)
    assert result.played[-1] == pytest.approx(400 * FRAME_S)


def test_model_stalls_where_the_audio_runs_out_and_waits_a_prebuffer():
    import playback_model as pm
    time_map, size = cbr_song(400)
    chunks = -(-size // 1400)
    # the first 100 frames' chunks arrive at 1 s, the rest at 10 s
    first = (100 * len(FRAME)) // 1400  # chunks wholly inside them
    arrivals = [1.0] * first + [10.0] * (chunks - first)
    result = pm.simulate(arrivals, 1400, size, time_map, 2.0)
    ready = time_map.time_at(first * 1400)  # audio complete by 1 s
    assert result.startup_s == 1.0
    assert result.stalls == 1
    assert result.stall_s == pytest.approx(10.0 - (1.0 + ready))
    assert result.end_s == pytest.approx(10.0 + 400 * FRAME_S - ready)
    # a chunk never plays before it arrived, and plays in order
    for arrival, played in zip(arrivals, result.played):
        assert played >= arrival
    assert result.played == sorted(result.played)
    late = [i for i in range(chunks)
            if arrivals[i] > 1.0 + time_map.time_at(i * 1400)]
    assert result.continuity == pytest.approx(1 - len(late) / chunks)


def test_model_waits_for_the_prebuffer_before_the_first_sound():
    import playback_model as pm
    time_map, size = cbr_song(200)
    chunks = -(-size // 1400)
    # one chunk a second: 2 s of audio (77 frames) take ~23 chunks
    arrivals = [float(i) for i in range(chunks)]
    result = pm.simulate(arrivals, 1400, size, time_map, 2.0)
    need = next(i for i in range(chunks)
                if time_map.time_at((i + 1) * 1400) >= 2.0)
    assert result.startup_s == float(need)
    assert result.stalls >= 1  # 1 chunk/s is far below the bit rate


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0, 60), min_size=1, max_size=60),
       st.floats(0, 5))
def test_model_invariants(arrivals, prebuffer):
    import playback_model as pm
    time_map, _ = cbr_song(len(arrivals) * 4)  # ~1400 B per 4 frames
    size = min(len(arrivals) * 1400, len(FRAME) * len(arrivals) * 4)
    arrivals = arrivals[:-(-size // 1400)]
    result = pm.simulate(arrivals, 1400, size, time_map, prebuffer)
    assert result.startup_s >= min(arrivals)
    assert result.stall_s >= 0
    assert result.end_s == pytest.approx(
        result.startup_s + time_map.seconds + result.stall_s)
    for arrival, played in zip(arrivals, result.played):
        assert played >= arrival - 1e-9
    assert result.played == sorted(result.played)
    assert 0.0 <= result.continuity <= 1.0
    if result.stalls == 0:
        assert result.stall_s == 0


def test_pcap_holds_every_run_and_tshark_decodes_it(short_song, tmp_path):
    capture = tmp_path / "runs.pcap"
    result = experiment("--song", short_song, "--runs", "1", "--seeders",
                        "1", "--orders", "sequential,random", "--loss",
                        "0.1", "--pcap", str(capture), "-o", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith(f"capture {capture}: ") and "datagrams" in last
    program = shutil.which("tshark")
    if program is None:
        skip_outside_ci("tshark is not installed")
    decoded = subprocess.run(
        [program, "-X", "lua_script:" + os.path.join(
            ROOT, "wireshark", "p2p_facom.lua"), "-o",
         "udp.try_heuristic_first:TRUE", "-r", str(capture), "-T", "fields",
         "-e", "pf.type", "-e", "pf.stream", "-e", "_ws.malformed"],
        capture_output=True, text=True, timeout=120)
    assert decoded.returncode == 0, decoded.stderr
    rows = [line.split("\t") for line in decoded.stdout.splitlines()]
    assert len(rows) == int(last.split(": ")[1].split()[0])
    assert all(row[0] and not row[2] for row in rows), rows[:5]
    import protocol as p
    chunk_streams = {row[1] for row in rows
                     if row[0] == str(int(p.MsgType.CHUNK))}
    assert len(chunk_streams) == 2  # one seeder, two downloads: 2 streams


@pytest.mark.parametrize("args", [
    ("--simulate", "--pcap", "x.pcap"),
    ("--pcap", os.path.join("no-such-folder", "x.pcap")),
])
def test_pcap_refused_is_one_line_and_exit_2(args, tmp_path):
    result = experiment(*args, "-o", str(tmp_path / "out"), timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "--pcap" in result.stderr or "capture" in result.stderr
    assert "seeder(s) x" not in result.stdout  # no run started
