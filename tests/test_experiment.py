"""p2p_facom.py experiment: the sending orders compared end to end."""

import csv
import math
import os
import subprocess
import sys

import pytest

from conftest import ROOT

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


def test_small_run_writes_csv_and_png_and_random_starts_later(
        short_song, tmp_path):
    # One seeder: its first burst cannot carry the whole 4 s song, so the
    # sending order decides when the start of the song is complete.
    result = experiment("--song", short_song, "--runs", "1", "--seeders",
                        "1", "-o", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    with open(tmp_path / "experiment.csv", newline="") as handle:
        rows = {row["order"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"sequential", "random", "semi-random"}
    for row in rows.values():
        assert row["runs"] == "1"
        for key in ("startup_s", "stalls", "stall_s", "continuity",
                    "completion_s", "retransmitted"):
            assert row[f"{key}_median"] != "", (key, row)
            assert float(row[f"{key}_min"]) <= float(row[f"{key}_max"])
    assert float(rows["random"]["startup_s_median"]) >= \
        float(rows["sequential"]["startup_s_median"])
    with open(tmp_path / "experiment.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "experiment-runs.csv").exists()
    for order in ("sequential", "random", "semi-random"):
        assert order in result.stdout  # the table
    assert "start-up" in result.stdout and "continuity" in result.stdout


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
    assert times == [0.0, 0.5, 1.0]
    assert ready[1] == 0.0 and ready[2] == song.media_time(2) > 0
