"""The leecher's driver under faults: resume, disks, locks, failures."""

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import time

import pytest

from conftest import PYTHON, ROOT, run_leecher, sha256

import cli  # noqa: E402  (conftest puts the project on sys.path)


def start_get(*args):
    return subprocess.Popen([PYTHON, os.path.join(ROOT, "leecher.py"), "get",
                             *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_chunks(part_dir, name, timeout=10):
    """Wait until the leecher has written a first sidecar or some data."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(os.path.join(part_dir, name + ".part")):
            return
        time.sleep(0.05)
    raise AssertionError("the download never started")


def interrupted_get(seeders, song_dir, tmp_path):
    """A slow seeder and a `get` from it stopped with Ctrl-C 1.5 s in:
    the seeder and the leecher's process (to ``communicate`` with)."""
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q",
                         "--rate", "300"))
    first = start_get("facom-sample", "-o", str(tmp_path), "--seeders",
                      seeder.address)
    wait_for_chunks(tmp_path, "facom-sample.mp3")
    time.sleep(1.5)
    first.send_signal(signal.SIGINT)
    return seeder, first


def test_interrupted_get_resumes_and_ends_byte_exact(seeders, song_dir,
                                                     tmp_path):
    seeder, first = interrupted_get(seeders, song_dir, tmp_path)
    out, err = first.communicate(timeout=10)
    assert first.returncode == 130
    assert "run the same command again to resume" in err
    assert "Traceback" not in err
    sidecar = tmp_path / "facom-sample.mp3.part.json"
    kept = json.loads(sidecar.read_text())
    kept_chunks = [i for s, e in kept["chunks"] for i in range(s, e)]
    assert 0 < len(kept_chunks) < 230
    assert not (tmp_path / "facom-sample.mp3").exists()
    # Corrupt one kept chunk on disk: the resume must notice and fetch it.
    some = kept_chunks[0]
    with open(tmp_path / "facom-sample.mp3.part", "r+b") as part:
        part.seek(some * 1400)
        part.write(b"\xff" * 10)
    stats = tmp_path / "s.json"
    second = run_leecher("get", "facom-sample", "-o", str(tmp_path),
                         "--seeders", seeder.address, "--json", str(stats))
    assert second.returncode == 0, second.stderr
    assert "resuming: " in second.stdout
    resumed = int(second.stdout.split("resuming: ")[1].split()[0])
    assert resumed == len(kept_chunks) - 1
    assert sha256(tmp_path / "facom-sample.mp3") == \
        sha256(song_dir / "facom-sample.mp3")
    assert not sidecar.exists()
    assert not (tmp_path / "facom-sample.mp3.part").exists()
    counted = json.loads(stats.read_text())
    assert counted["chunks_resumed"] == resumed
    assert counted["chunks_received"] == 230 - resumed  # over the wire


def test_download_again_starts_from_nothing_despite_resume_data(
        seeders, song_dir, tmp_path):
    """The window's "Download again" (and the demo's first run) must not
    quietly resume a .part left by a run closed mid-download: the lesson
    compares orders from the first chunk."""
    import leecher
    seeder, first = interrupted_get(seeders, song_dir, tmp_path)
    first.communicate(timeout=10)
    sidecar = tmp_path / "facom-sample.mp3.part.json"
    assert sidecar.exists()
    endpoint = leecher.Endpoint()
    try:
        peers = leecher.ping(endpoint, [cli.parse_address(seeder.address)])
        songs = leecher.search(endpoint, [x for x in peers.values()
                                          if x.alive], "facom-sample")
        song = leecher.pick_song(songs, "facom-sample", out=lambda _: None)
        download = leecher.Download(endpoint, song, peers, str(tmp_path),
                                    leecher.Options(fresh=True))
        download.run()
    finally:
        endpoint.close()
    stats = download.stats(timeline=False)
    assert stats["chunks_resumed"] == 0
    assert stats["chunks_received"] == 230
    assert sha256(tmp_path / "facom-sample.mp3") == \
        sha256(song_dir / "facom-sample.mp3")
    assert not sidecar.exists()


def test_song_changed_on_the_seeders_restarts_cleanly(seeders, tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    shutil.copy(os.path.join(ROOT, "music", "facom-sample.mp3"),
                music / "song.mp3")
    out = tmp_path / "out"
    out.mkdir()
    (seeder,) = seeders(("127.0.0.1", "-d", str(music), "-q",
                         "--rate", "300"))
    first = start_get("song", "-o", str(out), "--seeders", seeder.address)
    wait_for_chunks(out, "song.mp3")
    time.sleep(1.0)
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=10)
    assert (out / "song.mp3.part.json").exists()
    data = bytearray((music / "song.mp3").read_bytes())
    data[5000:5010] = b"0123456789"
    (music / "song.mp3").write_bytes(bytes(data))
    again = run_leecher("get", "song", "-o", str(out), "--seeders",
                        seeder.address)
    assert again.returncode == 0, again.stderr
    assert "changed on the seeders" in again.stdout
    assert sha256(out / "song.mp3") == sha256(music / "song.mp3")


# Seeders dying, coming back, or all gone for the timeout are engine
# behaviour: tests/test_download_engine.py drives them in simulated time
# (test_a_seeder_gone_silent_..., test_with_no_seeder_left_...,
# test_all_gone_for_the_timeout_...).


def test_the_engines_failures_are_one_line_and_exit_1(capsys):
    import cli
    import events as ev

    def fail():
        raise ev.DownloadFailed(ev.Problem.REFUSED, peer="127.0.0.1:9000",
                                code=4, text="busy\x1b[2J\nnow")
    assert cli.run_main("leecher", fail) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err == "leecher: 127.0.0.1:9000 refused: busy\\x1b[2J\\x0anow\n"

    def gone():
        raise ev.DownloadFailed(ev.Problem.ALL_SEEDERS_GONE)
    assert cli.run_main("leecher", gone) == cli.EXIT_FAILED
    assert "gone (partial file kept)" in capsys.readouterr().err


def test_unwritable_output_and_full_disk_are_clear_errors(seeders, song_dir,
                                                          tmp_path):
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q"))
    # A file-size limit below the song's size stands for a full disk.
    limit = 100 * 1400

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    result = subprocess.run(
        [PYTHON, os.path.join(ROOT, "leecher.py"), "get", "facom-sample",
         "-o", str(tmp_path), "--seeders", seeder.address],
        capture_output=True, text=True, timeout=60, preexec_fn=small_files)
    assert result.returncode == 1, result.stderr
    assert "cannot write" in result.stderr and "Traceback" not in \
        result.stderr
    assert not (tmp_path / "facom-sample.mp3").exists()
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    result = run_leecher("get", "facom-sample", "-o", str(not_a_dir),
                         "--seeders", seeder.address)
    assert result.returncode == 2 and "not a folder" in result.stderr


def _root() -> bool:
    return os.geteuid() == 0


@contextlib.contextmanager
def tmpfs(path, options: str):
    """A small tmpfs mounted at ``path`` for the duration of a block."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs",
                    str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.skipif(not _root(), reason="mounting a tmpfs needs root")
def test_disk_full_mid_download_keeps_the_part_and_says_so(seeders, song_dir,
                                                           tmp_path):
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q"))
    with tmpfs(tmp_path / "small", "size=128k") as small:
        result = run_leecher("get", "facom-sample", "-o", str(small),
                             "--seeders", seeder.address)
        names = sorted(os.listdir(small))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "No space left on device" in result.stderr
    assert "Traceback" not in result.stderr
    assert "facom-sample.mp3" not in names  # nothing passed off as complete
    assert "facom-sample.mp3.part" in names


@pytest.mark.skipif(not _root(), reason="read-only mounts need root")
def test_read_only_output_folder_is_a_clear_error(seeders, song_dir,
                                                  tmp_path):
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q"))
    with tmpfs(tmp_path / "ro", "size=1m,ro") as ro:
        result = run_leecher("get", "facom-sample", "-o", str(ro),
                             "--seeders", seeder.address)
    assert result.returncode in (1, 2), result.stderr
    assert "Read-only file system" in result.stderr or \
        "not writable" in result.stderr
    assert result.stderr.strip().count("\n") <= 1


def test_missing_output_folder_is_made(seeders, song_dir, tmp_path):
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q"))
    out = tmp_path / "new" / "downloads"
    result = run_leecher("get", "short-tune", "-o", str(out), "--seeders",
                         seeder.address)
    assert result.returncode == 0, result.stderr
    assert sha256(out / "short-tune.mp3") == sha256(song_dir /
                                                    "short-tune.mp3")


@pytest.mark.parametrize("args, message", [
    (["--json", "/nonexistent-dir/s.json"], "folder /nonexistent-dir not"),
    (["--play", "--audio-out", "/nonexistent-dir/x.wav"],
     "folder /nonexistent-dir not"),
    (["--audio-out", "x.wav"], "go with --play or --preview"),
    (["--play", "--fast"], "--fast goes with --audio-out"),
])
def test_bad_output_paths_and_options_fail_before_any_download(
        tmp_path, args, message):
    # No seeder at that address: exit 2 with the message proves the check
    # came before the network (it would be exit 1, "no seeder is alive").
    result = run_leecher("get", "facom-sample", "-o", str(tmp_path),
                         "--seeders", "127.0.0.9:9", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in \
        result.stderr


def test_a_second_leecher_on_the_same_part_file_is_refused(
        seeders, song_dir, tmp_path):
    import fcntl
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q"))
    with open(tmp_path / "short-tune.mp3.part", "wb") as other:
        fcntl.flock(other, fcntl.LOCK_EX)  # as a running leecher holds it
        result = run_leecher("get", "short-tune", "-o", str(tmp_path),
                             "--seeders", seeder.address)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "another leecher is already writing" in result.stderr
    assert "partial download kept" not in result.stderr
    assert not (tmp_path / "short-tune.mp3").exists()
    result = run_leecher("get", "short-tune", "-o", str(tmp_path),
                         "--seeders", seeder.address)  # lock gone: fine
    assert result.returncode == 0, result.stderr


# ------------------------------------------------ lying seeders, names
def _info(name="song.mp3", size=321064, chunk_size=1400, sha=bytes(32),
          chunks=None):
    import protocol as p
    return p.FileInfo(p.file_id_of(sha), size, p.chunk_count(
        size, chunk_size) if chunks is None else chunks, chunk_size, 0, sha,
        name)


A1, A2, A3 = ("127.0.0.1", 9000), ("127.0.0.2", 9000), ("127.0.0.3", 9000)


def test_search_results_whose_fields_disagree_are_dropped():
    import leecher
    songs = {}
    honest = _info()
    leecher._merge(songs, [honest], A1)
    import protocol as p
    wrong_id = p.FileInfo(b"12345678", 10, 1, 1400, 0, bytes(32), "x.mp3")
    leecher._merge(songs, [_info(chunks=2 ** 32 - 1),  # a huge lie
                           _info(chunk_size=0, chunks=230),
                           _info(size=5, chunks=9),
                           wrong_id], A2)
    assert [s.info for s in songs.values()] == [honest]
    assert [s.sources for s in songs.values()] == [[A1]]


def test_a_song_too_big_to_hold_is_refused_not_a_memory_error():
    import download_engine as de
    import events as ev
    huge = _info(size=2 ** 32 * 1400)
    with pytest.raises(ev.DownloadFailed) as failed:
        de.DownloadEngine(huge, [de.Peer(A1, rtt=0.01)], 0.0)
    assert failed.value.problem is ev.Problem.TOO_BIG


def test_seeders_disagreeing_on_a_name_majority_wins_and_the_odd_is_named():
    import cli
    import leecher
    songs = {}
    good, liar = _info(), _info(size=999_999, sha=bytes([7]) * 32)
    leecher._merge(songs, [good], A1)
    leecher._merge(songs, [liar], A2)  # answered first, or not
    leecher._merge(songs, [good], A3)
    found = sorted(songs.values(), key=lambda s: s.info.name)
    notes = []
    assert leecher.pick_song(found, "song.mp3", out=notes.append).info \
        == good
    assert len(notes) == 1 and "127.0.0.2:9000" in notes[0]
    assert bytes([7]).hex() * 6 in notes[0]  # its id, to choose it
    chosen = leecher.pick_song(found, "song.mp3", "0707")
    assert chosen.info == liar
    # Two against two: no majority, the user chooses.
    leecher._merge(songs, [liar], ("127.0.0.4", 9000))
    with pytest.raises(cli.UsageError) as tie:
        leecher.pick_song(list(songs.values()), "song.mp3")
    assert "--id" in str(tie.value) and "127.0.0.4:9000" in str(tie.value)


def test_long_and_control_character_names_fit_name_max_and_print_safely():
    import leecher
    long_name = "é" * 125 + ".mp3"  # 254 bytes
    saved = leecher.safe_name(_info(name=long_name))
    assert saved.endswith(".mp3")
    assert len((saved + ".part.json.tmp").encode()) <= 255
    other = leecher.safe_name(_info(name="é" * 124 + "x.mp3",
                                    sha=bytes([3]) * 32))
    assert other != saved  # cut alike, told apart by the id
    assert leecher.safe_name(_info(name="a\nb\x1b[2J.mp3")) == \
        "a_b_[2J.mp3"
    songs = [leecher.Song(_info(name="\x1b[2Jevil\n.mp3"), [A1])]
    import io
    import contextlib as cl
    printed = io.StringIO()
    with cl.redirect_stdout(printed):
        leecher.print_songs(songs)
    assert "\x1b" not in printed.getvalue()
    assert "\\x1b[2Jevil\\x0a.mp3" in printed.getvalue()


def test_a_250_byte_song_name_is_fetched_and_saved(seeders, song_dir,
                                                   tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    name = "a" * 246 + ".mp3"
    shutil.copy(song_dir / "short-tune.mp3", music / name)
    (seeder,) = seeders(("127.0.0.1", "-d", str(music), "-q"))
    out = tmp_path / "out"
    result = run_leecher("get", "aaaa", "-o", str(out), "--seeders",
                         seeder.address)
    assert result.returncode == 0, result.stdout + result.stderr
    (saved,) = os.listdir(out)
    assert saved.endswith(".mp3") and len(saved.encode()) <= 255 - 14
    assert sha256(out / saved) == sha256(song_dir / "short-tune.mp3")


def test_a_folder_that_stops_taking_files_keeps_the_resume_data_elsewhere(
        tmp_path, monkeypatch):
    """The folder turns read-only at the end (the rename fails): one clear
    failure, and the sidecar goes to the state folder, where the next run
    finds it.  (As root chmod stops nothing: the refusal is injected.)"""
    import hashlib
    import events as ev
    import leecher
    import protocol as p
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    data = os.urandom(10 * 1400 - 7)
    sha = hashlib.sha256(data).digest()
    info = p.FileInfo(p.file_id_of(sha), len(data), 10, 1400, 0, sha,
                      "s.mp3")
    out = tmp_path / "out"
    out.mkdir()
    part = leecher.PartFile(info, str(out / "s.mp3"))
    part.open()
    state = p.ReceiveState(10)
    fresh = []
    for index in range(10):
        state.add(index)
        fresh.append((index, data[index * 1400:(index + 1) * 1400]))
    part.write(fresh, state)
    real_replace = os.replace

    def read_only_folder(source, target):
        if os.path.dirname(str(target)) == str(out):
            raise PermissionError(13, "Permission denied")
        real_replace(source, target)
    monkeypatch.setattr(os, "replace", read_only_folder)
    with pytest.raises(ev.DownloadFailed) as failed:
        part.finish()
    assert failed.value.problem is ev.Problem.CANNOT_WRITE
    assert failed.value.params["reason"] == "Permission denied"
    assert part.save_progress(state) is None  # no complaint: it went...
    assert part.sidecar.saved_at == part.sidecar.fallback  # ...elsewhere
    assert str(tmp_path / "state") in part.sidecar.fallback
    part.close()
    monkeypatch.setattr(os, "replace", real_replace)
    again = leecher.PartFile(info, str(out / "s.mp3"))
    again.open()
    told = []
    assert sorted(again.resume(told.append)) == list(range(10))
    assert told == [ev.Resumed(10, 10)]
    again.hash_prefix(10)
    again.finish()
    again.close()
    assert (out / "s.mp3").read_bytes() == data
    assert not os.path.exists(again.sidecar.fallback)


def test_statistics_of_a_download_never_run_are_zero_not_a_crash():
    """--play of a song already here reports without downloading."""
    import leecher
    info = _info(size=3000)
    endpoint = leecher.Endpoint()
    download = leecher.Download(endpoint, leecher.Song(info, [A1]), {},
                                "/nonexistent")
    stats = download.stats(timeline=False)
    endpoint.close()
    assert stats["chunks_received"] == 0 and stats["nacks_sent"] == 0
    assert "0 received, 3 already on disk" in leecher.report(stats)
