"""The seeder under hostile input: amplification, floods, bounds, files."""

import os
import select
import socket
import subprocess
import sys
import time

import protocol as p
import seed_engine
import seeder as seeder_module
from conftest import ROOT, run_leecher, sha256


def exchange(address: str, datagrams, wait: float = 0.6):
    """Send datagrams from one socket; return everything that came back."""
    ip, port = address.split(":")
    replies = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        for data in datagrams:
            sock.sendto(data, (ip, int(port)))
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            if select.select([sock], [], [], left)[0]:
                replies.append(sock.recv(2048))
    return replies


def song_id(song_dir, name="facom-sample.mp3"):
    import pieces
    _, hashes = pieces.hash_bytes((song_dir / name).read_bytes())
    return pieces.file_id_from(hashes)  # the id made from the piece list


def test_request_without_token_gets_at_most_three_times_its_bytes(
        seeders, song_dir):
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q"))
    request = p.encode(p.Request(song_id(song_dir), p.Order.SEQUENTIAL,
                                 ((0, 230),), 4096, token=12345), session=9)
    replies = exchange(seeder.address, [request] * 5)
    sent = 5 * len(request)
    received = sum(len(r) for r in replies)
    assert received <= 3 * sent
    kinds = {type(p.decode(r).message) for r in replies}
    assert kinds == {p.Retry}  # no chunk ever left for an unproven address


def test_search_without_token_is_not_answered_with_results(seeders,
                                                            song_dir):
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q"))
    replies = exchange(seeder.address, [p.encode(p.Search("", 0))])
    assert [type(p.decode(r).message) for r in replies] == [p.Retry]


def test_echoed_token_unlocks_the_song(seeders, song_dir):
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q"))
    ip, port = seeder.address.split(":")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2)
        sock.sendto(p.encode(p.Search("", 0)), (ip, int(port)))
        token = p.decode(sock.recv(2048)).message.token
        sock.sendto(p.encode(p.Request(song_id(song_dir), p.Order.SEQUENTIAL,
                                       ((0, 3),), 8, token), session=4),
                    (ip, int(port)))
        first = p.decode(sock.recv(2048))
    assert isinstance(first.message, p.Chunk) and first.message.index == 0


def test_sessions_per_host_are_bounded_with_a_clear_error(seeders,
                                                             song_dir):
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q",
                         "--rate", "8"))
    ip, port = seeder.address.split(":")
    limit = seed_engine.MAX_SESSIONS_PER_HOST
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2)
        sock.sendto(p.encode(p.Ping(1, 44)), (ip, int(port)))
        token = p.decode(sock.recv(2048)).message.token
        for sid in range(1, limit + 2):
            sock.sendto(p.encode(p.Request(
                song_id(song_dir), p.Order.SEQUENTIAL, ((0, 1),), 1, token),
                session=sid), (ip, int(port)))
        errors = []
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not errors:
            try:
                msg = p.decode(sock.recv(2048))
            except socket.timeout:
                break
            if isinstance(msg.message, p.Error):
                errors.append((msg.session, msg.message))
    assert errors and errors[0][0] == limit + 1
    assert errors[0][1].code == p.ErrorCode.BUSY


def test_flood_of_hostile_datagrams_during_a_download(seeders, song_dir,
                                                      tmp_path):
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q",
                         "--rate", "1500"))
    ip, port = seeder.address.split(":")
    flood = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests",
                                                           "flood.py"),
                              ip, port, "100000"], stdout=subprocess.PIPE,
                             text=True)
    result = run_leecher("get", "facom-sample", "-o", str(tmp_path),
                         "--seeders", seeder.address, timeout=120)
    sent = int(flood.communicate(timeout=90)[0])
    assert result.returncode == 0, result.stdout + result.stderr
    assert sha256(tmp_path / "facom-sample.mp3") == \
        sha256(song_dir / "facom-sample.mp3")
    assert seeder.proc.poll() is None  # still alive
    summary = seeder.stop()
    bad = int(summary.split(" bad datagrams")[0].rsplit(" ", 1)[1])
    assert sent == 100000
    assert bad > 50000  # most hostile datagrams arrive and are counted


def test_only_files_inside_the_shared_folder_are_served(seeders, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    outside = tmp_path / "secret.mp3"
    outside.write_bytes(b"secret" * 100)
    (shared / "escape.mp3").symlink_to(outside)
    (shared / "..hidden.mp3").write_bytes(b"ID3" + b"\0" * 500)
    (shared / "sub").mkdir()
    (shared / "sub" / "deep.mp3").write_bytes(b"deep" * 100)
    (shared / "notes.txt").write_text("not music")
    library = seeder_module.Library(str(shared))
    library.scan()
    names = sorted(f.info.name for f in library.by_id.values())
    assert names == ["..hidden.mp3"]  # a plain file; the name is harmless
    assert all("secret" not in f.path for f in library.by_id.values())
    (seeder,) = seeders(("127.0.0.1", "-d", str(shared), "-q"))
    found = run_leecher("search", "", "--seeders", seeder.address)
    assert "escape" not in found.stdout and "deep" not in found.stdout
    assert "..hidden.mp3" in found.stdout


def test_leecher_saves_under_a_safe_name_whatever_the_seeder_says():
    import leecher
    info = p.FileInfo(b"\1" * 8, 1, 1, 1400, 0, b"\0" * 32, "../../etc/x")
    assert leecher.safe_name(info) == "x"
    for hostile in ("..", "/", "", ".bashrc", "a\0/.."):
        name = leecher.safe_name(p.FileInfo(b"\1" * 8, 1, 1, 1400, 0,
                                            b"\0" * 32, hostile))
        assert "/" not in name and not name.startswith(".")


# ------------------------------------------------- issue 11: the driver
def test_a_file_name_that_is_not_utf8_is_shared_and_fetched(seeders,
                                                            song_dir,
                                                            tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    raw = os.path.join(os.fsencode(str(shared)), b"m\xfasica.mp3")
    with open(raw, "wb") as out:
        out.write((song_dir / "short-tune.mp3").read_bytes())
    (seeder,) = seeders(("127.0.0.1", "-d", str(shared)))
    found = run_leecher("search", "", "--seeders", seeder.address)
    assert found.returncode == 0, found.stderr
    assert "m\ufffdsica.mp3" in found.stdout
    got = run_leecher("get", "sica", "-o", str(tmp_path / "out"),
                      "--seeders", seeder.address)
    assert got.returncode == 0, got.stdout + got.stderr
    assert seeder.proc.poll() is None
    output = seeder.stop()
    assert "m\ufffdsica.mp3: the file's name is not UTF-8" in output


def shared_library(tmp_path, content=b"ID3" + bytes(5000)):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "song.mp3").write_bytes(content)
    clock = [0.0]
    library = seeder_module.Library(str(shared), notice=lambda line: None,
                                    clock=lambda: clock[0])
    library.scan()
    (file_id,) = library.by_id
    return shared, library, file_id, clock


def test_a_symlink_swapped_in_after_the_scan_is_never_read(tmp_path):
    shared, library, file_id, _ = shared_library(tmp_path)
    outside = tmp_path / "secret.mp3"
    outside.write_bytes(b"S" * 5003)  # the same size
    os.unlink(shared / "song.mp3")
    os.symlink(outside, shared / "song.mp3")
    try:
        data = library.read(file_id, 0)
    except OSError:
        data = None
    assert data is None


def test_a_file_replaced_after_the_scan_is_never_read(tmp_path):
    shared, library, file_id, _ = shared_library(tmp_path)
    (tmp_path / "other.mp3").write_bytes(b"X" * 5003)  # same size
    os.replace(tmp_path / "other.mp3", shared / "song.mp3")
    try:
        data = library.read(file_id, 0)
    except OSError:
        data = None
    assert data is None


def test_the_folder_is_rescanned_only_when_it_changes_or_now_and_then(
        tmp_path, monkeypatch):
    shared, library, file_id, clock = shared_library(tmp_path)
    scans = []
    real_scan = library.scan
    monkeypatch.setattr(library, "scan",
                        lambda: scans.append(clock[0]) or real_scan())
    for _ in range(100):  # a SEARCH flood: no rescan
        clock[0] += 0.01
        library.search("")
        library.info(b"\0" * 8)
    assert scans == []
    (shared / "new.mp3").write_bytes(b"ID3" + bytes(100))
    library.search("")
    assert len(scans) == 1 and len(library) == 2
    clock[0] += seeder_module.RESCAN_S
    library.search("")
    assert len(scans) == 2


def test_whole_file_nacks_do_not_stall_a_download(seeders, song_dir,
                                                  tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "facom-sample.mp3").write_bytes(
        (song_dir / "facom-sample.mp3").read_bytes())
    (shared / "big.mp3").write_bytes(os.urandom(50 * 10**6))
    # A slow link: the download lasts a few seconds under attack.
    (seeder,) = seeders(("127.0.0.1", "-d", str(shared), "-q", "--rate",
                         "800"))
    ip, port = seeder.address.split(":")
    big = song_id(shared, "big.mp3")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2)
        sock.sendto(p.encode(p.Ping(1, 44)), (ip, int(port)))
        token = p.decode(sock.recv(2048)).message.token
        whole = ((0, p.chunk_count(50 * 10**6)),)
        sock.sendto(p.encode(p.Request(big, p.Order.SEQUENTIAL, whole,
                                       4096, token),
                             session=5), (ip, int(port)))
        leecher = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "leecher.py"), "get",
             "facom-sample", "-o", str(tmp_path / "out"), "--seeders",
             seeder.address], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        for n in range(40):  # 4 whole-file NACKs a second, 10 s at most
            if leecher.poll() is not None:
                break
            sock.sendto(p.encode(p.Nack(2**32 - 1, n + 1, ((0, 2**32 - 1),)
                                        * p.MAX_NACK_RANGES), session=5),
                        (ip, int(port)))
            time.sleep(0.25)
        out = leecher.communicate(timeout=60)[0]
    assert leecher.returncode == 0, out
    assert sha256(tmp_path / "out" / "facom-sample.mp3") == \
        sha256(song_dir / "facom-sample.mp3")


def test_a_song_edited_in_place_gets_its_new_id_and_the_old_is_gone(
        tmp_path):
    shared, library, old_id, clock = shared_library(tmp_path)
    clock[0] += 1.0
    data = bytearray((shared / "song.mp3").read_bytes())
    data[100:104] = b"EDIT"
    (shared / "song.mp3").write_bytes(bytes(data))  # same inode and size
    os.utime(shared / "song.mp3", ns=(1, 1))  # whatever the clock's grain
    (info,) = library.search("song")
    assert info.file_id != old_id
    assert library.info(old_id) is None
    assert bytes(library.read(info.file_id, 0))[100:104] == b"EDIT"
