"""Real seeders on 127.0.0.1-3, the terminal leecher, real UDP."""

import json
import os
import re
import socket
import threading

import pytest

import protocol as p
from conftest import run_leecher, sha256, free_port

THREE = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
ORDERS = ("sequential", "random", "semi-random")


def addresses(group):
    return ",".join(s.address for s in group)


def start_three(seeders, song_dir, *extra):
    return seeders(*[(ip, "-m", order, "-d", str(song_dir), "-q",
                      "--rng-seed", str(n), *extra)
                     for n, (ip, order) in enumerate(zip(THREE, ORDERS))])


@pytest.mark.parametrize("loss", ["0", "0.1", "0.3"])
def test_three_seeders_lossy_network_byte_exact(seeders, song_dir, tmp_path,
                                                loss):
    group = start_three(seeders, song_dir, "--loss", loss, "--dup", "0.05")
    stats_path = tmp_path / "stats.json"
    result = run_leecher("get", "facom-sample", "-o", str(tmp_path),
                         "--seeders", addresses(group),
                         "--json", str(stats_path))
    assert result.returncode == 0, result.stdout + result.stderr
    saved = tmp_path / "facom-sample.mp3"
    assert sha256(saved) == sha256(song_dir / "facom-sample.mp3")
    assert not (tmp_path / "facom-sample.mp3.part").exists()
    stats = json.loads(stats_path.read_text())
    for key in ("file", "size", "sha256", "chunks", "chunks_received",
                "duplicates", "nacks_sent", "chunks_retransmitted",
                "elapsed_s", "goodput_Bps", "per_peer", "timeline"):
        assert key in stats
    assert stats["chunks_received"] == stats["chunks"] == 230
    assert len(stats["per_peer"]) == 3  # every seeder contributed
    assert sum(stats["per_peer"].values()) == 230
    assert len(stats["timeline"]) == 230
    assert all(row["received"] is not None for row in stats["timeline"])
    assert stats["chunks_resumed"] == 0
    nacked = [row for row in stats["timeline"] if row["nacked"]]
    assert sum(len(row["nacked"]) for row in nacked) == stats["nack_entries"]
    for row in stats["timeline"]:
        if row["retransmitted"]:  # a retransmission was asked for
            assert row["nacked"] and row["nacked"][0] <= row["received"]
    if loss == "0.3":
        assert nacked
        assert stats["nacks_sent"] > 0
        assert stats["chunks_retransmitted"] > 0
        assert stats["duplicates"] >= 0
    if loss == "0":
        assert stats["chunks_retransmitted"] == 0


def test_leecher_side_loss_uses_the_nack_path(seeders, song_dir, tmp_path):
    group = seeders(("127.0.0.1", "-d", str(song_dir), "-q"))
    stats_path = tmp_path / "s.json"
    result = run_leecher("get", "short-tune", "-o", str(tmp_path),
                         "--seeders", addresses(group), "--loss", "0.2",
                         "--rng-seed", "4", "--json", str(stats_path))
    assert result.returncode == 0, result.stderr
    stats = json.loads(stats_path.read_text())
    assert stats["datagrams_dropped_by_leecher"] > 0
    assert stats["chunks_retransmitted"] > 0
    assert sha256(tmp_path / "short-tune.mp3") == \
        sha256(song_dir / "short-tune.mp3")


def test_seeder_killed_mid_download_the_others_finish(seeders, song_dir,
                                                      tmp_path):
    # Slow links so that the download lasts a few seconds.
    group = start_three(seeders, song_dir, "--rate", "400")
    stats_path = tmp_path / "s.json"
    killer = threading.Timer(1.0, group[1].kill)
    killer.start()
    result = run_leecher("get", "facom-sample", "-o", str(tmp_path),
                         "--seeders", addresses(group),
                         "--json", str(stats_path))
    killer.join()
    assert result.returncode == 0, result.stdout + result.stderr
    assert sha256(tmp_path / "facom-sample.mp3") == \
        sha256(song_dir / "facom-sample.mp3")
    stats = json.loads(stats_path.read_text())
    assert stats["seeders_gone"] == [group[1].address]
    assert "stopped answering" in result.stdout


def test_unknown_song_exit_2(seeders, song_dir, tmp_path):
    group = seeders(("127.0.0.1", "-d", str(song_dir), "-q"))
    result = run_leecher("get", "no-such-song", "-o", str(tmp_path),
                         "--seeders", addresses(group))
    assert result.returncode == 2
    assert "no seeder has a song matching 'no-such-song'" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_seeder_alive_exit_1(tmp_path):
    port = free_port()
    result = run_leecher("get", "x", "-o", str(tmp_path), "--seeders",
                         f"127.0.0.1:{port},127.0.0.2:{port}")
    assert result.returncode == 1
    assert "no seeder is alive" in result.stderr
    assert "no answer" in result.stdout


def test_ping_and_search_show_alive_seeders_and_merged_songs(seeders,
                                                             song_dir):
    group = start_three(seeders, song_dir)
    dead = f"127.0.0.4:{free_port(('127.0.0.4',))}"
    result = run_leecher("ping", "--seeders", addresses(group) + "," + dead)
    assert result.returncode == 0
    assert result.stdout.count("alive") == 3
    assert f"{dead}" in result.stdout and "no answer" in result.stdout
    found = run_leecher("search", "tune", "--seeders", addresses(group))
    assert found.returncode == 0
    row = [line for line in found.stdout.splitlines()
           if line.startswith("short-tune.mp3")]
    assert len(row) == 1 and " 3 (" in row[0]
    assert "facom-sample" not in found.stdout


def test_malformed_datagrams_are_counted_and_the_seeder_keeps_serving(
        seeders, song_dir, tmp_path):
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q"))
    ip, port = seeder.address.split(":")
    garbage = [b"", b"PF", b"hello world", os.urandom(1472), b"PF\x01\x05" +
               os.urandom(40), p.encode(p.Ping(1))[:-1] + b"\x00"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for data in garbage:
            sock.sendto(data, (ip, int(port)))
    result = run_leecher("get", "short-tune", "-o", str(tmp_path),
                         "--seeders", seeder.address)
    assert result.returncode == 0, result.stderr
    summary = seeder.stop()
    bad = int(summary.split(" bad datagrams")[0].rsplit(" ", 1)[1])
    assert bad >= len(garbage) - 1  # the empty datagram may not arrive


def test_output_errors_are_one_line(seeders, song_dir, tmp_path):
    group = seeders(("127.0.0.1", "-d", str(song_dir), "-q"))
    (tmp_path / "a-file").write_text("x")
    impossible = run_leecher("get", "short", "-o",
                             str(tmp_path / "a-file" / "sub"),
                             "--seeders", addresses(group))
    assert impossible.returncode == 2
    assert impossible.stderr.strip().count("\n") == 0
    assert "cannot create the output folder" in impossible.stderr
    (tmp_path / "short-tune.mp3").write_bytes(b"something else")
    clash = run_leecher("get", "short", "-o", str(tmp_path),
                        "--seeders", addresses(group))
    assert clash.returncode == 2 and "--force" in clash.stderr
    assert (tmp_path / "short-tune.mp3").read_bytes() == b"something else"
    forced = run_leecher("get", "short", "-o", str(tmp_path), "--force",
                         "--seeders", addresses(group))
    assert forced.returncode == 0
    assert sha256(tmp_path / "short-tune.mp3") == \
        sha256(song_dir / "short-tune.mp3")
    stats_path = tmp_path / "stats.json"
    again = run_leecher("get", "short", "-o", str(tmp_path),
                        "--seeders", addresses(group), "--json",
                        str(stats_path))
    assert again.returncode == 0 and "already here" in again.stdout
    stats = json.loads(stats_path.read_text())  # written all the same
    assert stats == {"file": "short-tune.mp3",
                     "size": (song_dir / "short-tune.mp3").stat().st_size,
                     "sha256": sha256(song_dir / "short-tune.mp3"),
                     "already_verified": True}


@pytest.mark.parametrize("loss", ["0", "0.05"])
def test_slow_seeder_is_not_flooded_with_nacks(seeders, song_dir, tmp_path,
                                              loss):
    """A rate-limited link (no delay emulated) spaces the chunks far more
    than the RTT: that gap is no loss.  Without loss no NACK at all; with
    5 % loss about one NACK per lost chunk, not one per loop turn."""
    group = seeders(("127.0.0.1", "-d", str(song_dir), "-q", "--rate",
                     "200", "--loss", loss, "--rng-seed", "4"))
    stats_path = tmp_path / "stats.json"
    result = run_leecher("get", "short-tune", "-o", str(tmp_path),
                         "--seeders", addresses(group),
                         "--json", str(stats_path))
    assert result.returncode == 0, result.stdout + result.stderr
    stats = json.loads(stats_path.read_text())
    dropped = int(re.search(r"(\d+) dropped", group[0].stop())[1])
    assert dropped == 0 if loss == "0" else dropped > 0
    assert stats["nacks_sent"] <= 3 * dropped + 2, stats["nacks_sent"]
