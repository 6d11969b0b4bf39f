"""The Wireshark dissector (wireshark/p2p_facom.lua) and the pcap writer.

- the pcap writer, read back in Python (no tshark needed);
- drift: the dissector's tables against protocol.py's constants, structs
  and message classes (no tshark needed);
- round trip: Hypothesis messages, encoded by protocol.py, written by
  pcap.py, decoded by tshark with the dissector, give the same values;
- robustness: hostile bodies never make the dissector throw;
- a whole capture of a real 3-seeder download with loss decodes cleanly
  and agrees with the leecher's JSON timeline.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
import zlib

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import ROOT, free_port, run_leecher, skip_outside_ci
from test_protocol import HOSTILE_SWARM_BODIES, SWARM_STRATEGIES

import pcap
import protocol as p

LUA = os.path.join(ROOT, "wireshark", "p2p_facom.lua")
LUA_TEXT = open(LUA, encoding="utf-8").read()
MAX_LUA_LINES = 500  # issue 16's target
SEEDER = ("127.0.0.1", 9000)
LEECHER = ("127.0.0.9", 40000)
TSHARK_TIMEOUT = 120
RELAY_DROP_EVERY = 15  # a short song's ~90 datagrams: a few drops


# ------------------------------------------------------ reading the .lua
def lua_string(name: str) -> str:
    return re.search(rf'^local {name} = "([^"]*)"', LUA_TEXT, re.M).group(1)


def lua_number(name: str) -> int:
    return int(re.search(rf"^local {name} = (\w+)", LUA_TEXT, re.M).group(1),
                         0)


def lua_table(name: str) -> dict[int, str]:
    body = re.search(rf"^local {name} = \{{(.*?)\}}$", LUA_TEXT,
                     re.M | re.S).group(1)
    return {int(key, 0): value for key, value in
            re.findall(r'\[(0x[0-9a-fA-F]+|\d+)\]\s*=\s*"([^"]+)"', body)}


def lua_spec(spec: str) -> list[tuple[str, str]]:
    return re.findall(r"(\w+):(\w+)", spec)


BODY_ROW = re.compile(r'^\s*\[(\d+)\]\s*=\s*\{"(\w+)",\s*"(\w+)",\s*"(\w*)",'
                      r'\s*"([^"]*)",\s*"([^"]*)"\},?$', re.M)
LUA_BODIES = {int(m[0]): m[1:] for m in BODY_ROW.findall(LUA_TEXT)}
KIND_FORMAT = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q", "id": "8s",
               "sha": "32s", "x1": "x", "s2": "2s", "ipv4": "4s"}
# Wire fields a message class keeps implicitly (a list's length).
IMPLICIT = {"count", "name_len"}


def struct_format(spec: str) -> str:
    return "!" + "".join(KIND_FORMAT[kind] for _, kind in lua_spec(spec))


def message_class(type_number: int):
    return next(cls for cls in p.Message.__args__
                if cls.TYPE == type_number)


# ------------------------------------------------------------------ tshark
def tshark(path: str, fields: list[str]) -> list[dict]:
    """Each packet's ``fields`` (lists of strings), as tshark with the
    dissector decodes ``path``."""
    program = shutil.which("tshark")
    if program is None:
        skip_outside_ci("tshark is not installed")
    cmd = [program, "-n", "-X", f"lua_script:{LUA}", "-r", path, "-T",
           "json", "-o", "udp.try_heuristic_first:TRUE"]
    for field in fields:
        cmd += ["-e", field]
    run = subprocess.run(cmd, capture_output=True, text=True,
                         timeout=TSHARK_TIMEOUT)
    assert run.returncode == 0, run.stderr
    assert "Lua" not in run.stderr, run.stderr  # the script failed to load
    return [packet["_source"]["layers"] for packet in json.loads(run.stdout)]


SANITY = ["_ws.malformed", "_ws.expert.message", "pf.crc.status"]


def assert_no_crash(packet: dict) -> None:
    """No exception (a read past the end) and no Lua error."""
    assert not [m for m in packet.get("_ws.expert.message", [])
                if m.startswith("Lua Error") or "Exception" in m], packet


def assert_clean(packet: dict) -> None:
    """Not malformed at all, a good CRC."""
    assert_no_crash(packet)
    assert "_ws.malformed" not in packet, packet
    assert packet["pf.crc.status"] == ["1"], packet


# ------------------------------------------------------- the pcap writer
def read_pcap(path: str) -> tuple[tuple, list[tuple]]:
    """(global header, [(record header, ip+udp header, payload)])."""
    with open(path, "rb") as file:
        data = file.read()
    head = pcap.GLOBAL_HEADER.unpack_from(data)
    records, at = [], pcap.GLOBAL_HEADER.size
    while at < len(data):
        record = pcap.RECORD_HEADER.unpack_from(data, at)
        at += pcap.RECORD_HEADER.size
        frame = data[at:at + record[2]]
        at += record[2]
        records.append((record, pcap.IP_UDP_HEADER.unpack_from(frame),
                        frame[pcap.IP_UDP_HEADER.size:]))
    return head, records


def test_pcap_file_layout(tmp_path):
    path = str(tmp_path / "c.pcap")
    ping = p.encode(p.Ping(7, 20))
    with pcap.PcapWriter(path) as writer:
        assert writer.write(ping, SEEDER, LEECHER, 1_700_000_000.25)
        assert writer.write(b"xyz", LEECHER, SEEDER, 1_700_000_001.5,
                            dropped=True)
    head, records = read_pcap(path)
    assert head == (pcap.PCAP_MAGIC, 2, 4, 0, 0, pcap.SNAPLEN,
                    pcap.LINKTYPE_IPV4)
    (rec, ip, payload), (rec2, ip2, payload2) = records
    assert rec == (1_700_000_000, 250_000, 28 + len(ping), 28 + len(ping))
    assert payload == ping and payload2 == b"xyz"
    assert socket.inet_ntoa(ip[8]) == SEEDER[0] and ip[10] == SEEDER[1]
    assert socket.inet_ntoa(ip[9]) == LEECHER[0] and ip[11] == LEECHER[1]
    assert ip[2] == 28 + len(ping) and ip[12] == 8 + len(ping)
    with open(path, "rb") as file:  # the IPv4 checksum sums to 0xffff
        file.seek(pcap.GLOBAL_HEADER.size + pcap.RECORD_HEADER.size)
        assert pcap._ip_checksum(file.read(20)) == 0
    assert ip[4] == pcap.IP_DONT_FRAGMENT  # IP ID 0 (RFC 6864)
    assert ip2[4] == pcap.IP_DONT_FRAGMENT | pcap.EMULATED_DROP_FLAG
    assert rec2[:2] == (1_700_000_001, 500_000)


def test_pcap_is_bounded(tmp_path):
    path = str(tmp_path / "c.pcap")
    chunk = p.encode(p.Chunk(bytes(8), 1, 1, 1, bytes(1400)))
    room = pcap.GLOBAL_HEADER.size + 3 * (16 + 28 + len(chunk))
    writer = pcap.PcapWriter(path, max_bytes=room)
    kept = [writer.write(chunk, SEEDER, LEECHER, 1.0) for _ in range(10)]
    writer.close()
    assert kept == [True] * 3 + [False] * 7
    assert os.path.getsize(path) == room
    assert "7 left out" in writer.summary()
    assert not writer.write(chunk, SEEDER, LEECHER, 2.0)  # closed: no raise


def test_a_full_disk_stops_the_capture_not_the_driver():
    """/dev/full opens but fails every write (ENOSPC): the writer says so
    in one line and leaves the rest out, never raising at the driver."""
    chunk = p.encode(p.Chunk(bytes(8), 1, 1, 1, bytes(1400)))
    writer = pcap.PcapWriter("/dev/full")
    for n in range(3 * pcap.FLUSH_AT // len(chunk)):
        writer.write(chunk, SEEDER, LEECHER, float(n))
    writer.close()
    line = writer.summary()
    assert line == "capture /dev/full stopped: No space left on device"
    assert not writer.write(chunk, SEEDER, LEECHER, 0.0)


def test_unwritable_capture_is_one_clear_line(tmp_path):
    path = str(tmp_path / "no-such-folder" / "c.pcap")
    with pytest.raises(pcap.CaptureError) as caught:
        pcap.open_capture(path, ("127.0.0.1", 9000))
    message = str(caught.value)
    assert path in message and "\n" not in message
    assert "No such file or directory" in message


def test_capture_hook_addresses_and_clock(tmp_path):
    path = str(tmp_path / "c.pcap")
    capture = pcap.Capture(pcap.PcapWriter(path), ("0.0.0.0", 5555),
                           wall=lambda: 1000.0, monotonic=lambda: 10.0)
    capture.sent(b"out", ("127.0.0.2", 9000), now=12.5)
    capture.received(b"in", ("127.0.0.2", 9000), now=13.0, dropped=True)
    assert capture.close() == f"capture {path}: 2 datagrams"
    _, ((rec, ip, _), (rec2, ip2, _)) = read_pcap(path)
    # Bound to 0.0.0.0: the kernel's source address for 127.0.0.2.
    assert socket.inet_ntoa(ip[8]) == "127.0.0.1" and ip[10] == 5555
    assert socket.inet_ntoa(ip2[9]) == "127.0.0.1" and ip2[11] == 5555
    assert (rec[0], rec2[0]) == (1002, 1003)
    assert ip2[4] & pcap.EMULATED_DROP_FLAG
    assert not ip[4] & pcap.EMULATED_DROP_FLAG
    bound = pcap.Capture(pcap.PcapWriter(path), ("127.0.0.7", 9000))
    bound.sent(b"out", ("127.0.0.2", 5555), now=1.0)
    bound.close()
    _, ((_, ip, _),) = read_pcap(path)
    assert (socket.inet_ntoa(ip[8]), ip[10]) == ("127.0.0.7", 9000)


# ------------------------------------------------------------------ drift
def test_dissector_header_and_constants_match_protocol():
    assert struct_format(lua_string("HEADER")) == p.HEADER.format
    assert struct_format(lua_string("RANGE")) == p.RANGE.format
    assert struct_format(lua_string("FILE")) == p.FILE_FIXED.format
    assert struct_format(lua_string("PEER")) == p.PEER_ENTRY.format
    assert lua_number("MAX_PEERS_LISTED") == p.MAX_PEERS_LISTED
    assert lua_string("MAGIC").encode() == p.MAGIC
    assert lua_number("VERSION") == p.VERSION
    assert lua_number("HEADER_SIZE") == p.HEADER.size
    assert lua_number("CRC_AT") == p.CRC_AT
    assert lua_number("MAX_DATAGRAM") == p.MAX_DATAGRAM
    assert lua_table("FLAGS") == {value: name for name, value in
                                  vars(p).items() if name.startswith("FLAG_")}
    assert lua_table("ORDERS") == {o.value: p.order_name(o) for o in p.Order}
    assert lua_table("ERRORS") == {e.value: e.name for e in p.ErrorCode}


def test_dissector_knows_every_message_type_and_body():
    assert {n: row[0] for n, row in LUA_BODIES.items()} == \
        {t.value: t.name for t in p.MsgType}
    for number, (name, _, struct_name, fixed, tail) in LUA_BODIES.items():
        if struct_name:
            assert struct_format(fixed) == getattr(p, struct_name).format, \
                f"{name}: the dissector's body differs from {struct_name}"
        else:  # no fixed part: the body must be empty
            assert fixed == "" and p.encode(p.Cancel())[16:] == b""
        # Every field of the message class is on the dissector's list
        # (the tail "ranges:range" holds the class's "ranges").
        names = {field for field, _ in lua_spec(fixed)
                 if field not in IMPLICIT}
        for kind, field in lua_spec(tail):
            names.add(kind if kind in ("ranges", "files", "peers")
                      else field)
        assert {f.name for f in dataclasses.fields(message_class(number))} \
            == names, name


SAMPLE_MESSAGES = [  # distinct values, so that a swap of two fields shows
    p.Ping(11, 3), p.Pong(11, 12, 13, 14, 2, 15, "n"), p.Search("q", 11),
    p.SearchResult((p.FileInfo(b"abcdefgh", 11, 12, 13, 14, bytes(32), "f"),)),
    p.Request(b"abcdefgh", p.Order.RANDOM, ((11, 12),), 13, 14, 15, 16),
    p.Chunk(b"abcdefgh", 11, 12, 13, b"d"), p.Ack(11), p.Nack(11, 12, ()),
    p.Cancel(), p.Done(11, 12, 13, 14, 15), p.Retry(11), p.Error(11, "t"),
    p.Hashes(b"abcdefgh", 11, 12),
    p.HashPage(b"abcdefgh", 11, 12, (bytes(range(32)),)),
    p.Have(b"abcdefgh", 11, ((1, 2),), 12), p.GetPeers(b"abcdefgh", 11),
    p.Peers(b"abcdefgh", (("127.0.0.21", 40001),))]


def test_dissector_field_order_matches_protocol():
    """Each body's fixed part, read with the dissector's field list,
    gives the message's own values (names and order, without tshark)."""
    assert {m.TYPE for m in SAMPLE_MESSAGES} == set(p.MsgType)
    for msg in SAMPLE_MESSAGES:
        _, _, _, fixed, _ = LUA_BODIES[msg.TYPE]
        body = p.encode(msg)[p.HEADER.size:]
        values = struct.unpack_from(struct_format(fixed), body)
        read = dict(zip([name for name, _ in lua_spec(fixed)], values))
        for name, value in read.items():
            if name not in IMPLICIT:
                assert getattr(msg, name) == value, (msg, name)


def test_every_protocol_struct_is_in_the_dissector():
    """A new struct in protocol.py (a new body, a new part) fails here
    until the dissector's tables name it."""
    named = {row[2] for row in LUA_BODIES.values() if row[2]}
    named |= {"HEADER", "RANGE", "FILE_FIXED", "PEER_ENTRY"}
    structs = {name for name, value in vars(p).items()
               if isinstance(value, struct.Struct)}
    # CHUNK_HEAD is HEADER and CHUNK_FIXED read in one go.
    assert p.CHUNK_HEAD.format == p.HEADER.format + p.CHUNK_FIXED.format[1:]
    assert structs - {"CHUNK_HEAD"} == named


def test_dissector_table_mirrors_the_docstring():
    documented = re.findall(r"^([A-Z_]+)\s{2,}", p.__doc__.split(
        "Bodies")[1], re.M)
    assert documented == [t.name for t in p.MsgType]


def test_dissector_is_small():
    assert len(LUA_TEXT.splitlines()) <= MAX_LUA_LINES


# ------------------------------------------------------------- round trip
U8, U16 = st.integers(0, 0xFF), st.integers(0, 0xFFFF)
U32, U64 = st.integers(0, 0xFFFFFFFF), st.integers(0, 2 ** 64 - 1)
FILE_ID = st.binary(min_size=8, max_size=8)
# NUL ends a Wireshark string; surrogates are not UTF-8.
TEXT = st.text(st.characters(blacklist_categories=("Cs",),
                             blacklist_characters="\x00"), max_size=30)
ORDER = st.sampled_from(list(p.Order))
PERCENT = st.integers(0, 100)
RANGES = st.lists(st.tuples(st.integers(0, 2 ** 32 - 2), st.integers(1, 999))
                  .map(lambda r: (r[0], min(r[0] + r[1], 2 ** 32 - 1))),
                  max_size=12).map(tuple)
FILE_INFO = st.builds(p.FileInfo, FILE_ID, U64, U32, U16, U32,
                      st.binary(min_size=32, max_size=32), TEXT)
STRATEGIES = {
    p.Ping: st.builds(p.Ping, U32, st.integers(0, 64)),
    p.Pong: st.builds(p.Pong, U32, U32, U16, U16, ORDER, PERCENT, TEXT),
    p.Search: st.builds(p.Search, TEXT, U32, U16),
    p.SearchResult: st.builds(p.SearchResult,
                              st.lists(FILE_INFO, max_size=3).map(tuple)),
    p.Request: st.builds(p.Request, FILE_ID, ORDER, RANGES, U16, U32, PERCENT,
                         U32),
    p.Chunk: st.builds(p.Chunk, FILE_ID, U32, U32, U32,
                       st.binary(max_size=1400)),
    p.Ack: st.builds(p.Ack, U32),
    p.Nack: st.builds(p.Nack, U32, U16, RANGES),
    p.Cancel: st.just(p.Cancel()),
    p.Done: st.builds(p.Done, U32, U32, U32, U32, U64),
    p.Retry: st.builds(p.Retry, U32),
    p.Error: st.builds(p.Error, U16, TEXT),
    p.Hashes: st.builds(p.Hashes, FILE_ID, U16, U32),
    p.HashPage: st.builds(
        lambda fid, pages, hashes: p.HashPage(fid, pages - 1, pages, hashes),
        FILE_ID, st.integers(1, 0xFFFF),
        st.lists(st.binary(min_size=32, max_size=32),
                 max_size=p.HASHES_PER_PAGE).map(tuple)),
    **SWARM_STRATEGIES}
MESSAGES = st.one_of(*STRATEGIES.values())


def test_round_trip_covers_every_message():
    assert set(STRATEGIES) == set(p.Message.__args__)


# message, session, flags; FLAG_PAGE on a SEARCH says a page follows, so
# only ``encode`` sets it there.
DATAGRAMS = st.tuples(MESSAGES, U32, U8).map(
    lambda d: (d[0], d[1], d[2] & ~p.FLAG_PAGE if isinstance(d[0], p.Search)
               else d[2]))


def expected_fields(msg, session: int, flags: int, data: bytes) -> dict:
    """What the dissector must show for ``msg``: pf.* -> list of values.
    Empty tails (text, padding, data) show no field."""
    out = {"pf.version": [p.VERSION], "pf.type": [int(msg.TYPE)],
           "pf.flags": [data[4]], "pf.session": [session],
           "pf.length": [len(data) - p.HEADER.size],
           "pf.crc": [int.from_bytes(data[12:16], "big")]}
    prefix = "pf." + LUA_BODIES[msg.TYPE][1]
    for field in dataclasses.fields(msg):
        value = getattr(msg, field.name)
        if field.name == "ranges":
            out[prefix + ".count"] = [len(value)]
            out[prefix + ".range.start"] = [start for start, _ in value]
            out[prefix + ".range.end"] = [end for _, end in value]
        elif field.name == "files" and isinstance(value, tuple):
            out[prefix + ".count"] = [len(value)]
            for name in ("file_id", "size", "chunks", "chunk_size",
                         "duration_ms", "sha256"):
                out[f"{prefix}.{name}"] = [getattr(f, name) for f in value]
            out[prefix + ".name_len"] = [len(f.name.encode()) for f in value]
            out[prefix + ".name"] = [f.name for f in value if f.name]
        elif field.name == "peers":
            out[prefix + ".count"] = [len(value)]
            out[prefix + ".peer.ip"] = [host for host, _ in value]
            out[prefix + ".peer.port"] = [port for _, port in value]
        elif field.name == "hashes":
            out[prefix + ".hashes"] = list(value)
        elif field.name == "padding":
            out[prefix + ".padding"] = [bytes(value)] if value else []
        elif isinstance(value, (str, bytes)) and field.name not in (
                "file_id", "sha256"):
            out[f"{prefix}.{field.name}"] = [value] if value else []
        else:
            out[f"{prefix}.{field.name}"] = [int(value) if isinstance(
                value, int) else value]
    return {name: values for name, values in out.items()}


def parse_value(text: str, like):
    if isinstance(like, bytes):
        return bytes.fromhex(text.replace(":", ""))
    if isinstance(like, int):
        return int(text, 0)
    return text


def write_capture(path: str, datagrams) -> list[bytes]:
    encoded = []
    with pcap.PcapWriter(path) as writer:
        for n, (msg, session, flags) in enumerate(datagrams):
            data = p.encode(msg, session, flags)
            encoded.append(data)
            writer.write(data, SEEDER, LEECHER, 1_700_000_000 + n / 1000)
    return encoded


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(datagrams=st.lists(DATAGRAMS, min_size=1, max_size=60))
def test_round_trip_through_tshark(tmp_path, datagrams):
    path = str(tmp_path / "round-trip.pcap")
    encoded = write_capture(path, datagrams)
    expected = [expected_fields(msg, session, flags, data)
                for (msg, session, flags), data in zip(datagrams, encoded)]
    fields = sorted({name for packet in expected for name in packet})
    packets = tshark(path, fields + SANITY)
    assert len(packets) == len(datagrams)
    for want, got in zip(expected, packets):
        assert_clean(got)
        assert "pf.expert.malformed" not in json.dumps(got)
        for name in fields:
            values = want.get(name, [])
            like = values[0] if values else 0
            assert [parse_value(v, like) for v in got.get(name, [])] \
                == values, (name, want, got)


def test_info_column_reads_like_a_lesson(tmp_path):
    path = str(tmp_path / "info.pcap")
    fid = bytes(8)
    write_capture(path, [
        (p.Chunk(fid, 417, 902, 5, b"x"), 1, p.FLAG_RETRANSMIT),
        (p.Nack(0, 3, ((40, 45), (90, 96))), 1, 0),
        (p.Request(fid, p.Order.SEMI_RANDOM, ((0, 1), (5, 9), (20, 30)),
                   64), 1, 0)])
    packets = tshark(path, ["_ws.col.Info", "pf.chunk.retransmission",
                            "_ws.expert.message"])
    assert [pkt["_ws.col.Info"] for pkt in packets] == [
        ["CHUNK #417 (retransmission) seq 902"],
        ["NACK round 3: 11 chunks [40–45) [90–96)"],
        ["REQUEST semi-random, 3 ranges, window 64"]]
    assert packets[0]["pf.chunk.retransmission"] == ["1"]
    assert "Retransmitted chunk" in packets[0]["_ws.expert.message"][0]


def test_swarm_info_column_reads_like_a_lesson(tmp_path):
    path = str(tmp_path / "swarm.pcap")
    fid = bytes(8)
    peers = (("127.0.0.21", 40001), ("127.0.0.22", 40002),
             ("127.0.0.23", 9000))
    many = tuple(("127.0.0.30", 1000 + n) for n in range(p.MAX_PEERS_LISTED))
    write_capture(path, [
        (p.Have(fid, 12, ((0, 4), (7, 8)), 5), 0, 0),
        (p.Have(fid, 12, ((11, 12),), 5), 0, 0),
        (p.Have(fid, 12, ()), 0, 0), (p.GetPeers(fid, 5), 0, 0),
        (p.Peers(fid, peers), 0, 0), (p.Peers(fid, ()), 0, 0),
        (p.Peers(fid, many), 0, 0)])
    packets = tshark(path, ["_ws.col.Info", "pf.peers.peer.ip"])
    assert [pkt["_ws.col.Info"] for pkt in packets[:6]] == [
        ["HAVE: pieces 0-3, 7 of 12 (shares them)"],
        ["HAVE: piece 11 of 12 (shares them)"],
        ["HAVE: no piece yet of 12 (shares the song)"],
        ["GET_PEERS: who else shares this song?"],
        ["PEERS: 3 peers: 127.0.0.21:40001, 127.0.0.22:40002, "
         "127.0.0.23:9000"],
        ["PEERS: 0 peers"]]
    (info,) = packets[6]["_ws.col.Info"]
    assert info.startswith("PEERS: 32 peers: 127.0.0.30:1000, ")
    assert info.endswith(", …")  # the Info column names only the first
    assert len(packets[6]["pf.peers.peer.ip"]) == p.MAX_PEERS_LISTED


def test_hostile_swarm_bodies_are_malformed_for_the_same_reason(tmp_path):
    """What protocol.py refuses in a HAVE, GET_PEERS or PEERS the
    dissector calls malformed, in the same words, without a Lua error."""
    path = str(tmp_path / "hostile-swarm.pcap")
    with pcap.PcapWriter(path) as writer:
        for kind, body, _ in HOSTILE_SWARM_BODIES:
            writer.write(with_crc(kind, body), SEEDER, LEECHER, 1.0)
    packets = tshark(path, SANITY + ["_ws.col.Info"])
    assert len(packets) == len(HOSTILE_SWARM_BODIES)
    for (kind, _, reason), packet in zip(HOSTILE_SWARM_BODIES, packets):
        assert_no_crash(packet)
        assert packet["_ws.col.Info"] == [
            f"{kind.name} (malformed: {reason})"], packet
        assert "_ws.malformed" in packet
        assert packet["_ws.expert.message"] == [reason]


def test_bad_crc_and_emulated_drop_are_marked(tmp_path):
    path = str(tmp_path / "marks.pcap")
    ack = bytearray(p.encode(p.Ack(5)))
    ack[-1] ^= 1  # one flipped bit in the body
    with pcap.PcapWriter(path) as writer:
        writer.write(bytes(ack), SEEDER, LEECHER, 1.0)
        writer.write(p.encode(p.Ack(5)), SEEDER, LEECHER, 2.0, dropped=True)
    bad, dropped = tshark(path, ["pf.crc.status", "pf.emulated_drop",
                                 "_ws.col.Info", "_ws.expert.message"])
    assert bad["pf.crc.status"] == ["0"] and "pf.emulated_drop" not in bad
    assert bad["_ws.col.Info"] == ["ACK: send up to seq 4 [bad CRC]"]
    assert any("Bad CRC-32" in m for m in bad["_ws.expert.message"])
    assert dropped["pf.crc.status"] == ["1"]
    assert dropped["pf.emulated_drop"] == ["1"]
    assert dropped["_ws.col.Info"] == ["[emulated drop] ACK: send up to "
                                       "seq 5"]


def test_chunk_data_cut_short_keeps_every_header(tmp_path):
    """``chunk_data=N`` keeps N bytes of each CHUNK's data (like tcpdump
    -s): the rest of the datagram and every other message stay whole."""
    path = str(tmp_path / "snap.pcap")
    chunk = p.encode(p.Chunk(b"abcdefgh", 417, 902, 5, bytes(range(200))))
    nack = p.encode(p.Nack(9, 1, tuple((i, i + 1) for i in range(0, 300, 2))))
    with pcap.PcapWriter(path, chunk_data=16) as writer:
        writer.write(chunk, SEEDER, LEECHER, 1.0)
        writer.write(nack, LEECHER, SEEDER, 2.0)
    _, ((rec, _, kept), (rec2, _, whole)) = read_pcap(path)
    assert rec[2:] == (28 + p.CHUNK_DATA_AT + 16, 28 + len(chunk))
    assert kept == chunk[:p.CHUNK_DATA_AT + 16] and whole == nack
    cut, full = tshark(path, ["_ws.malformed", "_ws.expert.message",
                              "pf.crc.status", "pf.chunk.index",
                              "pf.chunk.data", "pf.length",
                              "pf.nack.range.start", "_ws.col.Info"])
    assert_no_crash(cut)
    assert "_ws.malformed" not in cut and "_ws.malformed" not in full
    assert cut["pf.crc.status"] == ["2"] and full["pf.crc.status"] == ["1"]
    assert cut["pf.chunk.index"] == ["417"]
    assert cut["pf.length"] == [str(len(chunk) - p.HEADER.size)]
    assert bytes.fromhex(cut["pf.chunk.data"][0]) == bytes(range(16))
    assert cut["_ws.col.Info"] == ["CHUNK #417 seq 902"]
    assert len(full["pf.nack.range.start"]) == 150


def with_crc(kind: int, body: bytes) -> bytes:
    header = p.HEADER.pack(p.MAGIC, p.VERSION, kind, 0, 1, len(body), 0)
    crc = zlib.crc32(body, zlib.crc32(header))
    return header[:-4] + crc.to_bytes(4, "big") + body


@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(bodies=st.lists(st.tuples(st.integers(0, max(p.MsgType) + 1),
                                 st.binary(max_size=120)),
                       min_size=1, max_size=80))
def test_hostile_bodies_never_break_the_dissector(tmp_path, bodies):
    """Any body under a valid header: no exception, no Lua error, and
    what the dissector calls malformed protocol.py rejects too."""
    path = str(tmp_path / "hostile.pcap")
    datagrams = [with_crc(kind, body) for kind, body in bodies]
    with pcap.PcapWriter(path) as writer:
        for data in datagrams:
            writer.write(data, SEEDER, LEECHER, 1.0)
    packets = tshark(path, SANITY + ["pf.type"])
    assert len(packets) == len(datagrams)
    for data, packet in zip(datagrams, packets):
        assert_no_crash(packet)
        assert packet["pf.crc.status"] == ["1"]
        assert packet["pf.type"] == [str(data[3])]
        if "_ws.malformed" in packet:
            with pytest.raises(p.ProtocolError):
                p.decode(data)


# ------------------------------------------------------- a whole capture
class CapturingRelay:
    """Stands between a leecher and real seeders, as a router would, and
    writes what passes to a pcap file: the leecher talks to ``fronts``.
    It drops every ``drop_every``-th datagram from a seeder (an emulated
    loss: written, marked), on top of the seeders' own emulated loss
    (which the leecher's side never sees: a real loss in this capture)."""

    def __init__(self, writer: pcap.PcapWriter, seeders: list[tuple],
                 front_ips: list[str], port: int, drop_every: int):
        self.writer, self.drop_every = writer, drop_every
        self.from_seeders = 0
        self.routes = {}  # socket -> (peer socket, seeder address or None)
        self.front_of, self.client = {}, {}
        for ip, seeder in zip(front_ips, seeders):
            front = self._socket((ip, port))
            back = self._socket(("127.0.0.1", 0))
            self.routes[front] = (back, seeder)
            self.routes[back] = (front, None)
        self.fronts = [f"{ip}:{port}" for ip in front_ips]
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _socket(address) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        sock.bind(address)
        return sock

    def _run(self) -> None:
        while not self._stop:
            readable, _, _ = select.select(list(self.routes), [], [], 0.05)
            for sock in readable:
                data, sender = sock.recvfrom(65535)
                self._forward(sock, data, sender)

    def _forward(self, sock, data: bytes, sender) -> None:
        peer, seeder = self.routes[sock]
        if seeder is not None:  # leecher -> front -> seeder
            self.client[sock] = sender
            self.writer.write(data, sender, sock.getsockname(), time.time())
            peer.sendto(data, seeder)
            return
        client = self.client.get(peer)  # seeder -> back -> front -> leecher
        if client is None:
            return
        self.from_seeders += 1
        dropped = self.from_seeders % self.drop_every == 0
        self.writer.write(data, peer.getsockname(), client, time.time(),
                          dropped)
        if not dropped:
            peer.sendto(data, client)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self.thread.join(timeout=10)
        for sock in self.routes:
            sock.close()
        self.writer.close()


def download_through_relay(tmp_path, seeders, song_dir) -> tuple[str, dict]:
    port = free_port()
    group = seeders(*[(f"127.0.0.{n}", "-d", str(song_dir), "--loss", "0.1",
                       "--rng-seed", str(n), "--rate", "2000", "-q")
                      for n in (1, 2, 3)], port=port)
    path = str(tmp_path / "download.pcap")
    relay = CapturingRelay(pcap.PcapWriter(path),
                           [("127.0.0.%d" % n, port) for n in (1, 2, 3)],
                           ["127.0.0.11", "127.0.0.12", "127.0.0.13"],
                           free_port(), drop_every=RELAY_DROP_EVERY)
    with relay:
        run = run_leecher("get", "short-tune", "-o", str(tmp_path / "out"),
                          "--seeders", ",".join(relay.fronts), "--json",
                          str(tmp_path / "stats.json"), timeout=120)
    for seeder in group:
        seeder.stop()
    assert run.returncode == 0, run.stdout + run.stderr
    with open(tmp_path / "stats.json") as file:
        return path, json.load(file)


def test_whole_download_decodes_and_agrees_with_the_leecher(
        tmp_path, seeders, song_dir):
    if shutil.which("tshark") is None:
        skip_outside_ci("tshark is not installed")
    path, stats = download_through_relay(tmp_path, seeders, song_dir)
    packets = tshark(path, SANITY + [
        "udp.payload", "pf.type", "pf.chunk.index", "pf.flags",
        "pf.emulated_drop", "pf.nack.range.start", "pf.nack.range.end",
        "pf.stream", "ip.src"])
    _, records = read_pcap(path)
    assert len(packets) == len(records)
    for packet, (_, _, payload) in zip(packets, records):
        assert_clean(packet)  # 100 %: no malformed, CRC good
        assert packet["pf.type"] == [str(p.decode(payload).message.TYPE)]
    kinds = [int(pkt["pf.type"][0]) for pkt in packets]
    for kind in (p.MsgType.PING, p.MsgType.SEARCH, p.MsgType.REQUEST,
                 p.MsgType.CHUNK, p.MsgType.NACK, p.MsgType.DONE):
        assert kind in kinds, kind.name
    # What reached the leecher: CHUNKs not marked as an emulated drop.
    first_copy = {}
    nacked = set()
    for packet in packets:
        if "pf.nack.range.start" in packet:
            for start, end in zip(packet["pf.nack.range.start"],
                                  packet["pf.nack.range.end"]):
                nacked.update(range(int(start), int(end)))
        if "pf.chunk.index" not in packet or "pf.emulated_drop" in packet:
            continue
        index = int(packet["pf.chunk.index"][0])
        retransmit = bool(int(packet["pf.flags"][0], 0) & p.FLAG_RETRANSMIT)
        if retransmit:  # asked for by a NACK seen earlier in the capture
            assert index in nacked, index
        first_copy.setdefault(index, retransmit)
    timeline = stats["timeline"]
    assert sorted(first_copy) == [row["chunk"] for row in timeline
                                  if row["received"] is not None]
    assert len(first_copy) == stats["chunks"]
    assert {i for i, again in first_copy.items() if again} == \
        {row["chunk"] for row in timeline if row["retransmitted"]}
    assert sum(first_copy.values()) == stats["chunks_retransmitted"] > 0
    assert any("pf.emulated_drop" in pkt for pkt in packets)
    # One stream per session: every CHUNK of a seeder's session shares it.
    streams = {pkt["pf.stream"][0] for pkt in packets
               if "pf.chunk.index" in pkt}
    assert len(streams) == 3


def test_installed_where_the_readme_says(tmp_path):
    """wireshark/README.md: copy the .lua to ~/.local/lib/wireshark/plugins/
    and Wireshark loads it (HOME is a temporary folder here)."""
    program = shutil.which("tshark")
    if program is None:
        skip_outside_ci("tshark is not installed")
    plugins = tmp_path / ".local" / "lib" / "wireshark" / "plugins"
    plugins.mkdir(parents=True)
    shutil.copy(LUA, plugins)
    run = subprocess.run([program, "-G", "protocols"], capture_output=True,
                         text=True, timeout=TSHARK_TIMEOUT,
                         env={**os.environ, "HOME": str(tmp_path)})
    assert "P2P FACOM\tPF\tpf" in run.stdout.splitlines()
