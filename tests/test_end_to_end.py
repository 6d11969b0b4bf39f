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
                     "already_verified": True, "complete": True}


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


# ------------------------------------------------------------ the swarm
def start_sharing_get(out, seeder, ip, seed_for="3"):
    """A sharing `get` bound to ``ip``, serving ``seed_for`` s after its
    download, writing its statistics to ``out/stats.json``."""
    return sharing_get(out, seeder, ip, "--seed-for", seed_for)


def wait_for_line(proc, wanted, timeout: float = 20.0) -> str:
    """Read the leecher's output until a line is ``wanted(line)``.  Raw
    reads of the pipe: a buffered readline would pull later lines into
    a buffer that ``select`` does not see (and ``communicate`` loses)."""
    import select
    import time
    deadline, seen = time.monotonic() + timeout, b""
    while time.monotonic() < deadline:
        if not select.select([proc.stdout], [], [], 0.2)[0]:
            continue
        more = os.read(proc.stdout.fileno(), 65536)
        seen += more
        for line in seen.decode(errors="replace").splitlines():
            if wanted(line):
                return line
        if not more:
            break  # it ended
    raise AssertionError(f"not seen in {timeout} s: {seen[-500:]!r}")


def at_least(percent: int):
    """A progress line (one a second in a pipe) of ``percent`` or more."""
    def wanted(line: str) -> bool:
        found = re.match(r"\s*(\d+)% ", line)
        return bool(found) and int(found.group(1)) >= percent
    return wanted


def test_two_sharing_leechers_trade_pieces_and_end_byte_exact(
        seeders, song_dir, tmp_path):
    """One slow seeder (50 KB/s, in order) and two leechers on their own
    addresses: the second starts once the first has a piece verified;
    each ends byte-exact, and chunks went from one leecher to the other
    (its ``per_peer``), counted as served by the sender."""
    (seeder,) = seeders(("127.0.0.1", "-m", "sequential", "-d",
                         str(song_dir), "-q", "--rate", "400"))
    first = start_sharing_get(tmp_path / "a", seeder, "127.0.0.21")
    second = None
    try:
        wait_for_line(first, at_least(35))  # 80 of 230 chunks: pieces verified
        second = start_sharing_get(tmp_path / "b", seeder, "127.0.0.22")
        outputs = [proc.communicate(timeout=60) for proc in (first, second)]
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (out, err) in zip((first, second), outputs):
        assert proc.returncode == 0, out + err
        assert "sharing for 3.0 s" in out
    stats = {}
    for name in ("a", "b"):
        assert sha256(tmp_path / name / "facom-sample.mp3") == \
            sha256(song_dir / "facom-sample.mp3")
        stats[name] = json.loads((tmp_path / name / "stats.json").read_text())
        assert "per_seeder" not in stats[name]
        assert stats[name]["shared"] is True
        assert stats[name]["pick"] == "rarest"
    ips = {"a": "127.0.0.21", "b": "127.0.0.22"}

    def from_ip(counts: dict, ip: str) -> dict:
        return {peer: n for peer, n in counts.items()
                if peer.rpartition(":")[0] == ip and n > 0}
    traded = [(got, gave) for got, gave in (("a", "b"), ("b", "a"))
              if from_ip(stats[got]["per_peer"], ips[gave])]
    assert traded, (stats["a"]["per_peer"], stats["b"]["per_peer"])
    for got, gave in traded:
        for peer in from_ip(stats[got]["per_peer"], ips[gave]):
            assert stats[got]["sources"][peer] == "peer"
        assert stats[gave]["served_chunks"] > 0
        assert from_ip(stats[gave]["served_to"], ips[got]), stats[gave]
        said = dict(zip("ab", (out for out, _ in outputs)))
        assert f"served          {stats[gave]['served_chunks']} chunks " \
            "to 1 other listener(s)" in said[gave]  # the report's last lines
        assert re.search(r"  served \d+ chunks to 1 other listener",
                         said[gave])  # told while it served
        assert re.search(ips[gave].replace(".", r"\.") + r":\d+, another "
                         "listener sharing this song, joined", said[got])
    assert seeder.proc.poll() is None  # it served both, and still does


def test_ctrl_c_ends_the_sharing_and_the_run_reports(seeders, song_dir,
                                                     tmp_path):
    import signal
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q"))
    proc = start_sharing_get(tmp_path, seeder, "127.0.0.23", seed_for="60")
    try:
        wait_for_line(proc, lambda line: line.startswith("sharing for 60"))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out + err
    assert "sharing stopped" in out and "Traceback" not in err
    assert "served          0 chunks to 0 other listener(s)" in out
    assert sha256(tmp_path / "facom-sample.mp3") == \
        sha256(song_dir / "facom-sample.mp3")
    # saved, and no .part or resume data left behind
    assert sorted(os.listdir(tmp_path)) == ["facom-sample.mp3", "stats.json"]
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["shared"] is True and stats["served_chunks"] == 0


def sharing_get(out, seeder, ip, *extra):
    """A `get` bound to ``ip`` writing ``out/stats.json``, in a pipe."""
    import subprocess
    from conftest import PYTHON, ROOT
    os.makedirs(out, exist_ok=True)
    return subprocess.Popen(
        [PYTHON, os.path.join(ROOT, "leecher.py"), "get", "facom-sample",
         "-o", str(out), "--seeders", seeder.address, "--bind", ip,
         "--json", str(out / "stats.json"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ended(proc, timeout: float = 30) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("signame, code", [("SIGINT", 130),
                                           ("SIGTERM", 143)])
def test_a_download_stopped_by_a_signal_still_writes_its_json(
        seeders, song_dir, tmp_path, signame, code):
    """Ctrl-C or SIGTERM mid-download: the .part is kept, the JSON says
    what is known and that the run is not complete, the exit code is the
    shell's for the signal.  The pick policy was said as it started."""
    import signal
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q",
                         "--rate", "200"))  # ~13 s for the song
    proc = sharing_get(tmp_path, seeder, "127.0.0.26", "--pick", "deadline")
    try:
        said = wait_for_line(proc, lambda line: "pieces picked" in line)
        wait_for_line(proc, at_least(5))
        proc.send_signal(getattr(signal, signame))
    finally:
        out, err = ended(proc)
    assert proc.returncode == code, out + err
    assert said == "pieces picked near the play point first"
    assert "Traceback" not in err and "partial download kept in" in err
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["complete"] is False and stats["interrupted_by"] == signame
    assert 0 < stats["chunks_received"] < stats["chunks"]
    assert stats["pick"] == "deadline"


def test_seed_for_shares_a_song_already_here_and_sigterm_ends_it(
        seeders, song_dir, tmp_path):
    """The song is in a/ already: --seed-for checks its pieces (the list
    from the seeder) and shares it; a second leecher gets chunks from it
    while the seeder sends slowly; SIGTERM then ends the sharing as Ctrl-C
    does: summary, JSON, exit 0."""
    import shutil
    import signal
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q",
                         "--rate", "200"))
    os.makedirs(tmp_path / "a")
    shutil.copy(song_dir / "facom-sample.mp3", tmp_path / "a")
    sharer = sharing_get(tmp_path / "a", seeder, "127.0.0.24",
                         "--seed-for", "60")
    getter = None
    try:
        wait_for_line(sharer, lambda line: line.startswith("sharing for 60"))
        getter = sharing_get(tmp_path / "b", seeder, "127.0.0.25")
        got_out, got_err = ended(getter, timeout=40)
        sharer.send_signal(signal.SIGTERM)
    finally:
        out, err = ended(sharer)
    assert getter.returncode == 0, got_out + got_err
    assert sharer.returncode == 0, out + err
    assert "sharing stopped" in out and "Traceback" not in err
    assert sha256(tmp_path / "b" / "facom-sample.mp3") == \
        sha256(song_dir / "facom-sample.mp3")
    shared = json.loads((tmp_path / "a" / "stats.json").read_text())
    assert shared["complete"] is True and shared["interrupted_by"] == \
        "SIGTERM"
    assert shared["piece_hashes"] == "checked"
    assert shared["pieces_verified"] == shared["pieces"]
    got = json.loads((tmp_path / "b" / "stats.json").read_text())
    from_sharer = {peer: n for peer, n in got["per_peer"].items()
                   if peer.startswith("127.0.0.24:")}
    assert sum(from_sharer.values()) > 0, got["per_peer"]
    assert shared["served_chunks"] >= sum(from_sharer.values())
    assert f"served          {shared['served_chunks']} chunks to 1 other " \
        "listener(s)" in out
    assert sorted(os.listdir(tmp_path / "a")) == ["facom-sample.mp3",
                                                  "stats.json"]
    # the sharer joined before it was asked for anything
    lines = got_out.splitlines()
    joined = next(n for n, line in enumerate(lines)
                  if re.match(r"  127\.0\.0\.24:\d+, another listener", line))
    asked = [n for n, line in enumerate(lines)
             if re.match(r"  asked 127\.0\.0\.24:\d+ ", line)]
    assert asked and min(asked) > joined, got_out
