"""The seeder's ``--pcap FILE``: every datagram sent and received, the
emulated link's drops marked.

- the engine's drop report (``keep_drops``/``drops``), in simulated time:
  what it reports is exactly what the link dropped, and asking for it
  changes nothing the engine sends;
- ``CapturedSender``: a partial send writes only what went;
- a real download from a seeder started with ``--pcap`` and ``--loss``
  (UDP GSO and ``--no-offload``), decoded by tshark with the dissector;
- a capture file that cannot be written: exit 2, one line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import deque

import pytest

from conftest import PYTHON, ROOT, free_port, run_leecher
from test_seed_engine import CHUNKS, Harness
from test_wireshark import assert_clean, read_pcap, tshark

import netem
import pcap
import protocol as p
import seed_engine as se
import seeder as seeder_module

LOSS = 0.2


# ------------------------------------------------ the engine's drop report
def serve_all(h: Harness, runs: bool) -> list:
    """Everything the engine sends for a whole-file request, ACKed as it
    goes (``chunks_to_send`` when ``runs``), until nothing is left."""
    h.request(window=64)
    sent = []
    for _ in range(1000):  # bounded: a few dozen turns are enough
        out = (h.engine.chunks_to_send(h.now, 90) if runs
               else h.engine.datagrams_to_send(h.now, 90))
        if not out:
            timer = h.engine.get_timer()
            if timer is None or timer > h.now + 1:
                return sent
            h.now = max(h.now, timer)
            h.engine.handle_timer(h.now)
            continue
        sent += out
        h.send(p.Ack(0xFFFFFFFF))
    raise AssertionError("the engine never stopped sending")


def described(item) -> list[tuple[int, int]]:
    """(index, tx_seq) of each CHUNK an item stands for (a run or bytes)."""
    if type(item) is se.ChunkRun:
        return list(zip(item.indices, item.tx_seqs))
    msg = p.decode(item[0]).message
    return [(msg.index, msg.tx_seq)] if isinstance(msg, p.Chunk) else []


@pytest.mark.parametrize("delay", [0.0, 0.01], ids=["runs", "delayed"])
def test_the_engine_reports_exactly_what_its_link_dropped(delay):
    link = netem.LinkSpec(loss=LOSS, delay_s=delay)
    h = Harness(link=link)
    h.engine.keep_drops()
    sent, dropped = [], []
    h.request(window=4096)
    for _ in range(200):
        sent += h.engine.chunks_to_send(h.now, 90)
        dropped += h.engine.drops()
        h.now += 0.005
    link_counts = h.engine.counters.link
    assert link_counts.sent == CHUNKS  # one first copy each, no NACK
    lost = [pair for item in dropped for pair in described(item)]
    got = [pair for item in sent for pair in described(item)]
    assert len(lost) == link_counts.dropped > 0
    if delay:  # chunk by chunk through the link: the bytes themselves
        assert all(type(item) is tuple for item in dropped)
    else:  # runs of chunks the driver builds
        assert all(type(item) is se.ChunkRun for item in dropped)
    # Together, each tx_seq once: what went and what the link ate.
    assert sorted(t for _, t in lost + got) == list(range(CHUNKS))
    assert sorted(i for i, _ in lost + got) == list(range(CHUNKS))
    assert h.engine.drops() == []  # drained


@pytest.mark.parametrize("runs", [True, False], ids=["runs", "bytes"])
def test_keeping_drops_changes_nothing_sent(runs):
    def datagrams(keep: bool) -> list:
        h = Harness(link=netem.LinkSpec(loss=LOSS))
        if keep:
            h.engine.keep_drops()
        out = serve_all(h, runs)
        if not keep:
            assert h.engine.drops() == []  # nothing kept unless asked
        return [h.engine.encode_run(item, h.now) if type(item) is
                se.ChunkRun else [item] for item in out]
    assert datagrams(keep=True) == datagrams(keep=False)


def test_kept_drops_are_bounded_when_never_drained(monkeypatch):
    monkeypatch.setattr(se, "MAX_DROPS_KEPT", 10)
    h = Harness(link=netem.LinkSpec(loss=0.9))
    h.engine.keep_drops()
    h.request(window=4096)
    for _ in range(CHUNKS):  # one chunk per call: one run per drop
        h.engine.chunks_to_send(h.now, 1)
    assert h.engine.counters.link.dropped > 10
    assert len(h.engine.drops()) == 10


# ------------------------------------------------------- CapturedSender
class HalfSender:
    """Takes half of each run or batch, as a socket buffer filling up."""

    def send_run(self, buf, seg_size, addr) -> int:
        return -(-len(buf) // seg_size) // 2

    def send_batch(self, batch: deque) -> bool:
        for _ in range(len(batch) // 2):
            batch.popleft()
        return False


def test_a_partial_send_writes_only_what_went(tmp_path):
    path = str(tmp_path / "part.pcap")
    capture = pcap.open_capture(path, ("127.0.0.1", 9000))
    sender = seeder_module.CapturedSender(HalfSender(), capture,
                                          clock=lambda: 5.0)
    run = b"".join(bytes([n]) * 10 for n in range(5)) + b"\x05" * 4
    assert sender.send_run(memoryview(run), 10, ("127.0.0.2", 1)) == 3
    batch = deque((bytes([b"abcd"[n]]) * 7, ("127.0.0.3", 2))
                  for n in range(4))
    assert sender.send_batch(batch) is False and len(batch) == 2
    assert capture.close().endswith(": 5 datagrams")
    _, records = read_pcap(path)
    assert [payload for _, _, payload in records] == [
        b"\0" * 10, b"\1" * 10, b"\2" * 10, b"a" * 7, b"b" * 7]


@pytest.mark.parametrize("segments, last, count, options", [
    (45, 1436, 45, {}),  # a full GSO send
    (7, 300, 7, {}),  # the file's short last chunk ends it
    (7, 300, 3, {}),  # the socket buffer took only 3
    (7, 300, 6, {}),
    (5, 1436, 5, {"chunk_data": 64}),  # CHUNKs cut: datagram by datagram
    (5, 1436, 5, {"max_bytes": 3 * 1500}),  # no room for all: the same
])
def test_a_run_is_written_as_its_datagrams_one_by_one(
        tmp_path, segments, last, count, options):
    seg = 1436
    datagrams = [p.encode_chunk(bytes(8), n, n, 0, bytes([n]) *
                                ((seg if n < segments - 1 else last)
                                 - p.CHUNK_DATA_AT)) for n in range(segments)]
    src, dst = ("127.0.0.1", 9000), ("127.0.0.2", 4000)
    files = []
    for name in ("one", "run"):
        path = str(tmp_path / f"{name}.pcap")
        with pcap.PcapWriter(path, **options) as writer:
            if name == "one":
                written = sum(writer.write(d, src, dst, 7.5, True)
                              for d in datagrams[:count])
            else:
                written = writer.write_run(b"".join(datagrams), seg, count,
                                           src, dst, 7.5, True)
        with open(path, "rb") as file:
            files.append((written, writer.records, writer.skipped,
                          file.read()))
    assert files[0] == files[1]
    # 3 records of 16 + 28 + 1436 bytes fit in 3 * 1500 with the header
    assert files[0][1] == (count if "max_bytes" not in options else 3)


# ------------------------------------------------------ a real download
SUMMARY = re.compile(r"(\d+) chunks sent \((\d+) resent, (\d+) dropped and "
                     r"(\d+) duplicated")


def capture_a_download(tmp_path, seeders, song_dir, *options):
    path = str(tmp_path / "seeder.pcap")
    (seeder,) = seeders(("127.0.0.7", "-d", str(song_dir), "--pcap", path,
                         "--loss", "0.1", "--rng-seed", "1", *options))
    run = run_leecher("get", "short-tune", "-o", str(tmp_path / "out"),
                      "--seeders", seeder.address, "--json",
                      str(tmp_path / "stats.json"), timeout=120)
    output = seeder.stop()
    assert run.returncode == 0, run.stdout + run.stderr
    with open(tmp_path / "stats.json") as file:
        stats = json.load(file)
    return path, stats, output


@pytest.mark.parametrize("options", [(), ("--no-offload",)],
                         ids=["gso", "no-offload"])
def test_a_download_captured_by_the_seeder_decodes_and_agrees(
        tmp_path, seeders, song_dir, options):
    path, stats, output = capture_a_download(tmp_path, seeders, song_dir,
                                             *options)
    records = len(read_pcap(path)[1])
    assert f"capture {path}: {records} datagrams" in output, output
    packets = tshark(path, ["_ws.malformed", "_ws.expert.message",
                            "pf.crc.status", "pf.type", "pf.chunk.index",
                            "pf.emulated_drop", "ip.src", "ip.dst"])
    assert len(packets) == records
    for packet in packets:
        assert_clean(packet)  # every frame: no Malformed, CRC good
    sent = [pkt for pkt in packets if pkt["ip.src"] == ["127.0.0.7"]]
    received = [pkt for pkt in packets if pkt["ip.dst"] == ["127.0.0.7"]]
    assert len(sent) + len(received) == len(packets)
    kinds_in = {int(pkt["pf.type"][0]) for pkt in received}
    assert {p.MsgType.PING, p.MsgType.REQUEST, p.MsgType.NACK} <= kinds_in
    assert not any("pf.emulated_drop" in pkt for pkt in received)

    def chunks(marked: bool) -> list[int]:
        return [int(pkt["pf.chunk.index"][0]) for pkt in sent
                if "pf.chunk.index" in pkt
                and ("pf.emulated_drop" in pkt) == marked]
    went, lost = chunks(marked=False), chunks(marked=True)
    total, _, dropped, duplicated = map(int, SUMMARY.search(output).groups())
    assert duplicated == 0
    marked = [pkt for pkt in sent if "pf.emulated_drop" in pkt]
    assert len(marked) == dropped > 0  # every drop written, marked
    assert len(went) + len(lost) == total  # and every chunk made
    got = {row["chunk"] for row in stats["timeline"]
           if row["received"] is not None}
    assert len(got) == stats["chunks"]
    assert got <= set(went)  # all the leecher got went out unmarked
    assert set(lost) <= got  # each drop came again later


def test_a_capture_file_that_cannot_be_written_is_one_line(tmp_path):
    missing = str(tmp_path / "no" / "such" / "folder" / "s.pcap")
    for program in (["seeder.py"], ["p2p_facom.py", "-t", "seeder"]):
        run = subprocess.run(
            [PYTHON, os.path.join(ROOT, *program[:1]), *program[1:], "-p",
             str(free_port()), "-d", os.path.join(ROOT, "music"), "--pcap",
             missing], capture_output=True, text=True, timeout=30)
        assert run.returncode == 2, run
        assert run.stderr.strip().count("\n") == 0, run.stderr
        assert "cannot write capture" in run.stderr
        assert "Traceback" not in run.stderr + run.stdout
