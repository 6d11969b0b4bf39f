"""``--pcap FILE`` on the terminal leecher: what it writes, tshark reads.

A real download from a loopback seeder with the leecher's emulated loss:
the capture decodes with the dissector (``wireshark/p2p_facom.lua``) with
no Malformed packet and a good CRC everywhere, and the CHUNKs that reached
the leecher (not marked as an emulated drop) are exactly the chunks its
JSON timeline says were received.
"""

from __future__ import annotations

import json
import shutil

import protocol as p
from conftest import free_port, run_leecher, sha256, skip_outside_ci
from test_wireshark import SANITY, assert_clean, tshark


def test_download_capture_decodes_and_matches_the_timeline(
        tmp_path, seeders, song_dir):
    if shutil.which("tshark") is None:
        skip_outside_ci("tshark is not installed")
    seeder = seeders(("127.0.0.1", "-d", str(song_dir), "-q"),
                     port=free_port())[0]
    capture = tmp_path / "download.pcap"
    stats_path = tmp_path / "stats.json"
    run = run_leecher("get", "short-tune", "-o", str(tmp_path / "out"),
                      "--seeders", seeder.address, "--loss", "0.1",
                      "--rng-seed", "5", "--json", str(stats_path),
                      "--pcap", str(capture), timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    with open(stats_path) as file:
        stats = json.load(file)
    assert sha256(str(tmp_path / "out" / "short-tune.mp3")) == \
        sha256(str(song_dir / "short-tune.mp3"))
    packets = tshark(str(capture), SANITY + ["pf.type", "pf.chunk.index",
                                             "pf.emulated_drop"])
    assert f"capture {capture}: {len(packets)} datagrams" in run.stdout
    received, dropped = [], 0
    for packet in packets:
        assert_clean(packet)  # no Malformed, a good CRC
        drop = "pf.emulated_drop" in packet
        dropped += drop  # any type: --loss drops whatever it reads
        if "pf.chunk.index" in packet and not drop:
            received.append(int(packet["pf.chunk.index"][0]))
    assert dropped == stats["datagrams_dropped_by_leecher"] > 0
    timeline = stats["timeline"]
    assert sorted(set(received)) == [row["chunk"] for row in timeline
                                     if row["received"] is not None]
    assert len(set(received)) == stats["chunks"]
    kinds = {int(packet["pf.type"][0]) for packet in packets}
    assert {p.MsgType.PING, p.MsgType.PONG, p.MsgType.SEARCH,
            p.MsgType.REQUEST, p.MsgType.CHUNK, p.MsgType.NACK,
            p.MsgType.CANCEL} <= kinds


def test_ping_writes_a_capture(tmp_path, seeders, song_dir):
    seeder = seeders(("127.0.0.1", "-d", str(song_dir), "-q"),
                     port=free_port())[0]
    capture = tmp_path / "ping.pcap"
    run = run_leecher("ping", "--seeders", seeder.address, "--pcap",
                      str(capture))
    assert run.returncode == 0, run.stderr
    assert f"capture {capture}: 2 datagrams" in run.stdout  # PING, PONG
    assert capture.stat().st_size > 24  # more than the global header


def test_unwritable_capture_is_one_line(tmp_path):
    missing = tmp_path / "no-such-folder" / "x.pcap"
    for command in (["ping"], ["get", "anything", "-o", str(tmp_path)]):
        run = run_leecher(*command, "--seeders", "127.0.0.1:9",
                          "--pcap", str(missing))
        assert run.returncode == 2, run.stdout + run.stderr
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert "Traceback" not in run.stderr
