"""p2p_facom.py swarm: a seeder and N leechers that share, simulated in
virtual time (the real engines, no socket, no sleep) and, once, for
real on loopback."""

import csv
import os
import subprocess
import sys

import pytest

import swarm
import swarm_sim
from conftest import ROOT, skip_outside_ci

RUNNER = os.path.join(ROOT, "p2p_facom.py")
# A short song keeps each simulated swarm under a second of real time.
SONG_S = 8.0


def run_swarm(*args, timeout=240):
    return subprocess.run([sys.executable, RUNNER, "swarm", *args],
                          capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def simulate(peers, **kw):
    kw.setdefault("song_seconds", SONG_S)
    return swarm_sim.simulate(swarm_sim.SwarmSpec(peers=peers, **kw))


# ------------------------------------------------------------ simulated
@pytest.fixture(scope="module")
def shared():
    return simulate(20)


@pytest.fixture(scope="module")
def alone():
    return simulate(20, share=False)


def test_every_leecher_of_a_shared_swarm_is_verified(shared):
    assert shared.verified == 20 == len(shared.rows)
    for row in shared.rows:
        assert row.verified and not row.problem
        assert row.from_seeder + row.from_peers >= shared.song_chunks
        assert row.completion_s > 0 and row.startup_s is not None


def test_sharing_costs_the_seeder_fewer_songs_than_leechers(shared, alone):
    assert shared.seeder_songs < 20
    assert sum(row.from_peers for row in shared.rows) > 0
    assert sum(row.served for row in shared.rows) == \
        sum(row.from_peers for row in shared.rows)


def test_without_sharing_the_seeder_sends_every_leecher_the_song(alone):
    assert alone.verified == 20
    assert all(row.from_peers == 0 and row.served == 0
               for row in alone.rows)
    assert 20 <= alone.seeder_songs < 21  # a few resends at most
    # one link carries 20 songs: nobody is served before that time
    assert alone.serve_all_s >= alone.alone_s


def test_sharing_serves_everyone_sooner(shared, alone):
    assert shared.serve_all_s < alone.serve_all_s


def test_the_same_seed_gives_the_same_swarm():
    one, two = simulate(6, seed=3), simulate(6, seed=3)
    assert [(r.completion_s, r.from_peers, r.served) for r in one.rows] == \
        [(r.completion_s, r.from_peers, r.served) for r in two.rows]
    assert one.seeder_sent == two.seeder_sent


def test_joins_spread_over_time_are_kept():
    run = simulate(5, spread_s=4.0)
    assert [row.joined_s for row in run.rows] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert run.verified == 5


def test_policies_differ_where_they_should():
    runs = {pick: simulate(12, pick=pick, song_seconds=16.0)
            for pick in swarm.POLICIES}
    assert all(run.verified == 12 for run in runs.values())
    # in order from the start: the first seconds come first
    assert runs["sequential"].median("startup_s") <= \
        runs["rarest"].median("startup_s")
    assert runs["deadline"].median("startup_s") <= \
        runs["rarest"].median("startup_s")


def test_a_constant_bit_rate_map_reads_like_the_players():
    song = swarm_sim.SimSong(10.0, 128.0, seed=1)
    time_map = song.time_map
    assert time_map.seconds == pytest.approx(10.0, abs=0.03)
    assert time_map.time_at(0) == 0.0
    assert time_map.time_at(song.info.size // 2) == \
        pytest.approx(5.0, abs=0.03)
    assert list(time_map.offsets[:3]) == [0, 418, 836]


# ------------------------------------------------------ outputs and CLI
def test_table_csv_and_png_of_a_simulated_run(tmp_path):
    out = tmp_path / "swarm.csv"
    png = tmp_path / "swarm.png"
    result = run_swarm("--simulate", "--peers", "6", "--song-seconds", "6",
                       "--csv", str(out), "--png", str(png))
    assert result.returncode == 0, result.stderr
    assert "6/6 verified" in result.stdout
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and rows[0]["verified"] == "6"
    assert float(rows[0]["seeder_songs"]) < 6
    with open(tmp_path / "swarm-peers.csv", newline="") as handle:
        peers = list(csv.DictReader(handle))
    assert len(peers) == 6 and all(row["verified"] == "1" for row in peers)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scale_and_policies_draw_every_panel(tmp_path):
    png = tmp_path / "all.png"
    runs = []
    for n in (2, 6):
        for share in (True, False):
            run = simulate(n, share=share, song_seconds=4.0)
            run.kind = "scale"
            runs.append(run)
    for pick in swarm.POLICIES:
        run = simulate(4, pick=pick, song_seconds=4.0)
        run.kind = "policy"
        runs.append(run)
    import swarm_plot
    assert [f.__name__ for f in swarm_plot.panels_for(runs)] == \
        ["draw_scale", "draw_sources", "draw_policies"]
    swarm_plot.draw(str(png), runs, "test")
    assert png.stat().st_size > 10_000
    out = tmp_path / "all.csv"
    swarm.write_csv(str(out), runs)
    with open(out, newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 7


def test_the_runner_names_the_swarm_command():
    result = subprocess.run([sys.executable, RUNNER, "-h"],
                            capture_output=True, text=True, timeout=60)
    assert "p2p_facom.py swarm -h" in result.stdout
    result = run_swarm("-h", timeout=60)
    assert result.returncode == 0
    for option in ("--peers", "--simulate", "--scale", "--policies",
                   "--seed-for", "--pick", "--csv", "--png"):
        assert option in result.stdout


@pytest.mark.parametrize("args", [
    ("--peers", "0"), ("--peers", "61"), ("--simulate", "--peers", "5001"),
    ("--scale", "10,30"), ("--simulate", "--scale", "10,x"),
    ("--simulate", "--scale", "0,10"), ("--simulate", "--scale", "6000"),
    ("--policies",), ("--rate", "0"), ("--song-seconds", "-1"),
    ("--song-seconds", "601"), ("--pick", "fastest"),
    ("--csv", "/no/such/folder/x.csv"), ("--png", "/"), ("--bogus",)])
def test_bad_input_is_one_line_and_exit_2(args):
    result = run_swarm(*args, timeout=60)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------ real
def test_a_real_swarm_of_three_is_byte_exact_and_shares(tmp_path):
    """One seeder process and three leecher processes on 127.0.0.21-23
    (real sockets), a 6 s song: every copy byte-exact, the table and
    the CSV say where the chunks came from."""
    import shutil
    if shutil.which("ffmpeg") is None:
        skip_outside_ci("ffmpeg is missing (the sample song)")
    out = tmp_path / "real.csv"
    result = run_swarm("--peers", "3", "--song-seconds", "6", "--rate",
                       "300", "--seed-for", "4", "--timeout", "60",
                       "--csv", str(out), timeout=120)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "3/3 verified" in result.stdout
    with open(tmp_path / "real-peers.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["peer"] for row in rows] == [
        "127.0.0.21", "127.0.0.22", "127.0.0.23"]
    for row in rows:
        assert row["verified"] == "1", row
        assert int(row["from_seeder"]) + int(row["from_peers"]) > 0
        assert float(row["completion_s"]) > 0
    with open(out, newline="") as handle:
        summary = next(csv.DictReader(handle))
    assert 0 < float(summary["seeder_songs"]) <= 3.5  # resends at most
    assert int(summary["seeder_sent"]) > 0


def test_the_seeders_upload_slots_reach_the_simulated_seeder():
    spec = swarm_sim.SwarmSpec(peers=6, slots=2, song_seconds=4.0)
    swarm_run = swarm_sim.SimSwarm(spec)
    assert swarm_run.seeder.upload_slots == 2
    run = swarm_run.run()
    assert run.verified == 6
