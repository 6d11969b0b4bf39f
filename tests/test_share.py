"""The terminal leecher's sharing options and parts (share.py): --bind,
--seed-for, --pick and --upload-rate on the command line, the file the
shared chunks are read from, the window's switch, and the statistics and
report of what was shared."""

from __future__ import annotations

import hashlib
import io
import os
import socket

import pytest

import cli  # noqa: E402  (conftest puts the project on sys.path)
import events as ev
import i18n
import leecher
import pieces
import protocol as p
import share


@pytest.fixture(autouse=True)
def english_afterwards():
    yield
    i18n.use("en")


def one_line_error(capsys, argv) -> str:
    """Run the leecher with ``argv`` in this process: its exit code is
    non-zero and it says one line on stderr, which is returned."""
    try:
        code = leecher.main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code != 0
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("command", ["ping", "search", "get"])
def test_a_bind_address_that_is_not_one_is_one_line(capsys, command):
    argv = [command, "--bind", "127.0.0.300", "--seeders", "127.0.0.1:9"]
    if command == "get":
        argv[1:1] = ["song"]
    err = one_line_error(capsys, argv)
    assert err.startswith("leecher: error: cannot bind 127.0.0.300: ")


def test_an_address_not_on_this_machine_is_refused_by_the_socket(capsys):
    # 198.51.100.0/24 is TEST-NET-2 (RFC 5737): no machine's address.
    err = one_line_error(capsys, ["ping", "--bind", "198.51.100.7",
                                  "--seeders", "127.0.0.1:9"])
    assert err.startswith("leecher: error: cannot bind 198.51.100.7: ")
    assert os.strerror(99) in err  # EADDRNOTAVAIL, from the kernel


def test_a_port_in_use_or_out_of_range_is_refused(capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        err = one_line_error(capsys, ["ping", "--bind", f"127.0.0.1:{port}",
                                      "--seeders", "127.0.0.1:9"])
    assert f"cannot bind 127.0.0.1:{port}: " in err
    err = one_line_error(capsys, ["ping", "--bind", "127.0.0.1:70000"])
    assert "port must be 0-65535: '70000'" in err
    err = one_line_error(capsys, ["ping", "--bind", "127.0.0.1:x"])
    assert "port must be 0-65535: 'x'" in err


@pytest.mark.parametrize("option, value, words", [
    ("--seed-for", "-1", "must be a finite number >= 0"),
    ("--seed-for", "nan", "must be a finite number >= 0"),
    ("--upload-rate", "-5", "must be a finite number >= 0"),
    ("--pick", "fastest", "invalid choice: 'fastest'"),
])
def test_bad_sharing_options_are_one_line(capsys, option, value, words):
    err = one_line_error(capsys, ["get", "song", option, value])
    assert f"argument {option}: {words}" in err


def test_bind_addresses_parse_to_socket_addresses():
    assert share.bind_address(None) == ("0.0.0.0", 0)
    assert share.bind_address("127.0.0.21") == ("127.0.0.21", 0)
    assert share.bind_address("127.0.0.21:4000") == ("127.0.0.21", 4000)
    assert share.bind_address("localhost:0") == ("127.0.0.1", 0)
    with pytest.raises(cli.UsageError):
        share.bind_address("127.0.0.1:٣")  # a digit, but not an ASCII one


def test_the_sharing_options_reach_the_download():
    args = leecher.build_parser().parse_args(
        ["get", "song", "--no-share", "--seed-for", "2.5",
         "--upload-rate", "800", "--pick", "deadline",
         "--bind", "127.0.0.21:0"])
    assert share.from_args(args) == share.Sharing(False, 2.5, 800.0)
    assert share.from_args(args).upload_Bps == 100_000
    assert args.pick == "deadline" and args.bind == "127.0.0.21:0"
    defaults = leecher.build_parser().parse_args(["get", "song"])
    assert share.from_args(defaults) == share.Sharing()
    assert defaults.pick == "rarest" and defaults.bind is None


def test_datagrams_from_ourselves_are_dropped_when_bound_to_any():
    ours = share.NotFromSelf(4000, frozenset({"10.1.2.3"}))
    seeder, peer = ("127.0.0.1", 9000), ("127.0.0.22", 4001)
    batch = [(b"a", seeder), (b"b", peer)]
    assert ours.keep(batch) is batch  # nothing of ours: not even copied
    mixed = batch + [(b"c", ("127.0.0.1", 4000)), (b"d", ("127.0.9.9", 4000)),
                     (b"e", ("10.1.2.3", 4000)), (b"f", ("10.1.2.4", 4000))]
    assert [data for data, _ in ours.keep(mixed)] == [b"a", b"b", b"f"]


def test_this_machines_addresses_are_found():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("127.0.0.1", 9))  # no packet: picks the route
        assert probe.getsockname()[0] in share.local_ips()


# ----------------------------------------------------------- the file
def song_info(data: bytes, chunk_size: int = 1000) -> p.FileInfo:
    sha = hashlib.sha256(data).digest()
    return p.FileInfo(p.file_id_of(sha), len(data),
                      p.chunk_count(len(data), chunk_size), chunk_size, 0,
                      sha, "s.mp3")


def open_part(tmp_path):
    """A 2,500-byte song's .part, open, and a reader of it."""
    data = os.urandom(2500)
    part = leecher.PartFile(song_info(data), str(tmp_path / "s.mp3"))
    part.open()
    return data, part, share.SongReader(part)


def test_chunks_are_read_from_the_part_then_from_the_final_file(tmp_path):
    data, part, reader = open_part(tmp_path)
    info = part.info
    state = p.ReceiveState(info.chunks)
    part.write([(0, data[:1000]), (2, data[2000:])], state)
    assert reader.read(0) == data[:1000]
    assert reader.read(2) == data[2000:]  # the short last chunk
    part.write([(1, data[1000:2000])], state)
    part.hash_prefix(info.chunks)
    part.finish()  # renamed: the same descriptor still reads it
    assert not os.path.exists(part.part_path)
    assert reader.read(1) == data[1000:2000]
    part.close()  # now from the final file, opened on demand
    assert reader.read(1) == data[1000:2000]
    assert reader._final_fd is not None
    reader.close()
    assert reader._final_fd is None


def test_a_chunk_that_cannot_be_read_is_an_os_error(tmp_path):
    data, part, reader = open_part(tmp_path)
    info = part.info
    for index in (-1, info.chunks, 10**9):
        with pytest.raises(OSError):
            reader.read(index)
    os.ftruncate(part.fd, 1500)  # the file shrank under us
    with pytest.raises(OSError):
        reader.read(1)
    part.close()
    with pytest.raises(OSError):  # no final file: it was never finished
        reader.read(0)


def test_the_switch_keeps_the_last_of_quick_flips():
    switch = share.Switch(True)
    assert switch.due() is None
    switch.set(False)
    switch.set(True)
    assert switch.due() is None  # back where it was: nothing to apply
    switch.set(False)
    assert switch.due() is False
    switch.applied(False)
    assert switch.due() is None


def test_a_download_without_sharing_is_not_switched_on(tmp_path):
    endpoint = leecher.Endpoint(bind=("127.0.0.1", 0))
    download = leecher.Download(endpoint, leecher.Song(song_info(b"x"),
                                                       []), {}, str(tmp_path))
    download.set_sharing(True)  # the window's switch: nothing to switch
    assert not download.sharing_on
    download.seed(5.0)  # returns at once: nothing to serve
    stats = download.stats(timeline=False)
    endpoint.close()
    assert stats["shared"] is False and stats["served_chunks"] == 0
    assert "per_seeder" not in stats


# ---------------------------------------------------- stats and report
def test_the_sharing_keys_replace_per_seeder():
    counted = {"chunks": 3, "per_peer": {"127.0.0.1:9000": 2,
                                         "127.0.0.22:4000": 1},
               "sources": {"127.0.0.1:9000": "seeder",
                           "127.0.0.22:4000": "peer"},
               "served_chunks": 7, "served_to": {"127.0.0.22:4000": 7}}
    keys = share.stats(counted, "rarest", True)
    assert keys == {"per_peer": {"127.0.0.1:9000": 2, "127.0.0.22:4000": 1},
                    "sources": {"127.0.0.1:9000": "seeder",
                                "127.0.0.22:4000": "peer"},
                    "served_chunks": 7,
                    "served_to": {"127.0.0.22:4000": 7},
                    "pick": "rarest", "shared": True}
    assert counted == {"chunks": 3}


STATS = {"file": "a.mp3", "size": 1_500_000, "chunks": 69,
         "chunks_received": 69, "chunks_resumed": 0, "duplicates": 0,
         "nacks_sent": 0, "chunks_retransmitted": 0, "elapsed_s": 1.5,
         "goodput_Bps": 1_000_000,
         "per_peer": {"127.0.0.1:9000": 60, "127.0.0.22:4000": 9},
         "sources": {"127.0.0.1:9000": "seeder", "127.0.0.22:4000": "peer"},
         "served_chunks": 40, "served_to": {"127.0.0.22:4000": 30,
                                            "127.0.0.23:4000": 10},
         "pick": "rarest", "shared": True, "seeders_gone": []}


def test_the_report_names_each_source_with_its_role_and_what_was_served():
    english = leecher.report(STATS).splitlines()
    assert "  from 127.0.0.1:9000        60 chunks (a seeder)" in english
    assert "  from 127.0.0.22:4000       9 chunks (a listener)" in english
    # one word for the others in every line (the report, the events)
    assert "served          40 chunks to 2 other listener(s)" in english
    i18n.use("pt")
    portuguese = leecher.report(STATS).splitlines()
    assert "  de   127.0.0.22:4000       9 pedaços (um ouvinte)" \
        in portuguese
    assert "servidos        40 pedaços a 2 outro(s) ouvinte(s)" \
        in portuguese
    for line in portuguese:
        if not line.startswith("  "):  # every label pads to column 16
            assert line[15] == " " and line[16] != " ", line


def test_no_served_line_for_a_leecher_that_did_not_share():
    quiet = dict(STATS, shared=False, served_chunks=0, served_to={})
    assert "served" not in leecher.report(quiet)


def test_the_terminal_view_tells_who_joined_and_what_was_served():
    out = io.StringIO()
    view = leecher.TerminalView(song_info(b"x"), stream=out)
    view.put(ev.PeerJoined("127.0.0.22:4000", 1.0))
    view.put(ev.Served(12, 2, 2.0))
    assert out.getvalue().splitlines() == [
        "  127.0.0.22:4000, another listener sharing this song, joined",
        "  served 12 chunks to 2 other listener(s)"]
    i18n.use("pt")
    out.seek(0)
    out.truncate()
    view.put(ev.Served(16, 1, 3.0))
    assert out.getvalue() == \
        "  16 pedaços enviados a 1 outro(s) ouvinte(s)\n"  # not "chunks"


def test_a_request_after_ask_again_later_says_it_is_asked_again():
    out = io.StringIO()
    view = leecher.TerminalView(song_info(b"x"), stream=out)
    seeder = "127.0.0.1:9000"
    view.put(ev.RequestSent(seeder, 16, "random", 0.1))
    view.put(ev.Refused(seeder, p.ErrorCode.BUSY, "every upload slot is "
                        "taken, ask again later", 0.2))
    view.put(ev.RequestSent(seeder, 16, "random", 0.9))
    view.put(ev.RequestSent(seeder, 16, "random", 1.9))  # served: plain
    lines = out.getvalue().splitlines()
    assert lines[0] == lines[3] == \
        "  asked 127.0.0.1:9000 for 16 chunks (random)"
    assert lines[2] == ('  asked 127.0.0.1:9000 again for 16 chunks, '
                        'after its "ask again later"')
    view.put(ev.Refused(seeder, p.ErrorCode.NOT_FOUND, "gone", 2.0))
    view.put(ev.RequestSent(seeder, 16, "random", 2.1))
    assert "again" not in out.getvalue().splitlines()[-1]  # not busy


def test_an_ipv6_bind_address_is_quoted_whole():
    with pytest.raises(cli.UsageError) as raised:
        share.bind_address("::1")
    assert str(raised.value) == \
        "cannot bind ::1: not an IPv4 address: '::1'"


@pytest.mark.parametrize("pick, line", [
    ("sequential", "pieces picked in order"),
    ("rarest", "pieces picked rarest first"),
    ("deadline", "pieces picked near the play point first")])
def test_the_pick_is_said_in_both_languages(pick, line):
    assert leecher._(leecher.PICKS[pick]) == line
    i18n.use("pt")
    assert leecher._(leecher.PICKS[pick]).startswith("partes escolhidas ")


class FakePeerEngine:
    """What the loop needs of a PeerEngine, and what it was told."""

    complete = False

    def __init__(self):
        self.switched = []

    def set_sharing(self, on, now):
        self.switched.append(on)

    def datagrams_to_send(self, now):
        return []

    def get_timer(self):
        return None

    def take_runs(self):
        return []


def test_the_window_switch_is_applied_by_the_loop_once_per_change(tmp_path):
    endpoint = leecher.Endpoint(bind=("127.0.0.1", 0))
    download = leecher.Download(endpoint, leecher.Song(song_info(b"x"), []),
                                {}, str(tmp_path), sharing=share.Sharing())
    download.engine = object()
    download.driven = download.sharer.peer = FakePeerEngine()
    assert download.sharing_on
    download.set_sharing(False)
    download.set_sharing(True)
    download.set_sharing(False)  # from the window's thread, quickly
    now = download._turn(0.0, download.sharer._drop_runs, until=0.0)
    download._turn(now, download.sharer._drop_runs, until=now)
    endpoint.close()
    assert download.driven.switched == [False]  # the last state, once
    assert not download.sharing_on


def swarm_song(tmp_path, data: bytes):
    """A song with a piece list (shared), its .part open with every
    chunk written, and its download engine."""
    from download_engine import DownloadEngine
    sha, hashes = pieces.hash_bytes(data, 1000)
    info = p.FileInfo(pieces.file_id_from(hashes), len(data),
                      p.chunk_count(len(data), 1000), 1000, 0, sha, "s.mp3")
    part = leecher.PartFile(info, str(tmp_path / "s.mp3"))
    part.open()
    part.write([(i, data[i * 1000:(i + 1) * 1000])
                for i in range(info.chunks)], p.ReceiveState(info.chunks))
    return info, part, DownloadEngine(info, [], 0.0)


@pytest.mark.parametrize("bound, own", [
    (("0.0.0.0", 4000), ("127.0.0.1", 4000)),  # as this machine sees us
    (("127.0.0.21", 4000), ("127.0.0.21", 4000))])
def test_a_song_with_a_piece_list_is_driven_by_a_peer_engine(
        tmp_path, bound, own):
    piece = pieces.PIECE_CHUNKS
    data = os.urandom((piece + 6) * 1000)  # 2 pieces of 1000-byte chunks
    info, part, engine = swarm_song(tmp_path, data)
    sharer = share.Sharer(share.Sharing(upload_kbps=800), part)
    peer = sharer.drive(engine, bound, seed=1)
    assert peer is sharer.peer and peer.download is engine
    assert peer.own_addr == own
    assert (sharer.not_self is not None) == (bound[0] == "0.0.0.0")
    assert peer.seeder.link.spec.rate_Bps == 100_000
    assert sharer.on and peer.sharing
    peer.song.add_pieces([1])  # verified: served from the .part
    assert peer.song.read(info.file_id, piece) \
        == data[piece * 1000:(piece + 1) * 1000]
    with pytest.raises(OSError):  # piece 0 is not verified: not served
        peer.song.read(info.file_id, 0)
    part.close()


def test_no_peer_engine_without_sharing_or_for_a_legacy_song(tmp_path):
    info, part, engine = swarm_song(tmp_path, os.urandom(5000))
    assert share.Sharer(None, part).drive(engine, ("0.0.0.0", 1), 1) \
        is engine
    legacy = song_info(os.urandom(5000))  # named by its SHA-256
    from download_engine import DownloadEngine
    plain = DownloadEngine(legacy, [], 0.0)
    sharer = share.Sharer(share.Sharing(), part)
    assert sharer.drive(plain, ("0.0.0.0", 1), 1) is plain
    assert not sharer.on
    part.close()


def test_no_share_starts_a_peer_that_serves_nothing(tmp_path):
    info, part, engine = swarm_song(tmp_path, os.urandom(5000))
    sharer = share.Sharer(share.Sharing(share=False), part)
    peer = sharer.drive(engine, ("127.0.0.21", 4000), seed=1)
    assert peer is not engine and not peer.sharing and not sharer.on
    part.close()


def test_the_play_point_is_the_deadline_policys_once_playing(tmp_path):
    from download_engine import DownloadEngine
    info, part, _ = swarm_song(tmp_path, os.urandom(200_000))
    part.close()
    endpoint = leecher.Endpoint(bind=("127.0.0.1", 0))
    download = leecher.Download(endpoint, leecher.Song(info, []), {},
                                str(tmp_path))
    endpoint.close()
    download.engine = DownloadEngine(info, [], 0.0,
                                     leecher.Options(pick="deadline"))
    download.player = object()  # fed nothing: no chunk is here
    download._feed_player()
    assert download.engine.scheduler.playhead is None  # not playing yet
    download.started = 0.0
    download.record_played(130_500, 1.0)  # from the player's thread
    download._feed_player()
    assert download.engine.scheduler.playhead == 130
