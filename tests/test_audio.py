"""The leecher's --play / --preview end to end: real seeders, real ffmpeg.

player.py on its own is tested in test_player.py.
"""

import json
import os
import subprocess
import wave

from conftest import ROOT, run_leecher


def ffmpeg_pcm(path) -> bytes:
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f",
                           "s16le", "-"], capture_output=True,
                          check=True).stdout


def wav_pcm(path) -> bytes:
    with wave.open(str(path)) as wav:
        return wav.readframes(wav.getnframes())


def test_missing_ffmpeg_is_one_clear_line_and_exit_2(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))
    result = subprocess.run(
        [os.sys.executable, os.path.join(ROOT, "leecher.py"), "get", "x",
         "--play", "--seeders", "127.0.0.1:9"], capture_output=True,
        text=True, env=env, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip() == ("leecher: error: ffmpeg not found: "
                                     "install it with 'apt-get install "
                                     "ffmpeg'")


# ------------------------------------------------- the leecher with audio
def test_get_play_fast_wav_equals_the_decode_of_the_original(
        seeders, song_dir, tmp_path):
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q"))
    wav, stats = tmp_path / "out.wav", tmp_path / "s.json"
    result = run_leecher("get", "short-tune", "-o", str(tmp_path), "--play",
                         "--audio-out", str(wav), "--fast", "--seeders",
                         seeder.address, "--json", str(stats))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audio: WAV file" in result.stdout
    assert wav_pcm(wav) == ffmpeg_pcm(song_dir / "short-tune.mp3")
    timeline = json.loads(stats.read_text())["timeline"]
    assert all(row["played"] is not None for row in timeline)


def preview(seeders, song_dir, tmp_path, rate, method, name="run"):
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q", "--rate",
                         str(rate), "-m", method))
    out = tmp_path / name
    out.mkdir()
    wav, stats = out / "out.wav", out / "s.json"
    result = run_leecher("get", "short-tune", "-o", str(out), "--preview",
                         "--audio-out", str(wav), "--seeders",
                         seeder.address, "--json", str(stats),
                         "--prebuffer", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    seeder.stop()
    return json.loads(stats.read_text()), wav


def test_preview_slower_than_the_song_stalls_but_loses_nothing(
        seeders, song_dir, tmp_path):
    stats, wav = preview(seeders, song_dir, tmp_path, 90, "sequential")
    assert stats["stalls"] > 0 and stats["stall_s"] > 0
    assert stats["continuity"] < 1.0
    assert wav_pcm(wav) == ffmpeg_pcm(song_dir / "short-tune.mp3")
    played = [row["played"] for row in stats["timeline"]]
    assert None not in played and played == sorted(played)
    # every chunk was received before it was played
    assert all(row["received"] <= row["played"] + 1e-3
               for row in stats["timeline"])


def test_random_order_starts_later_than_sequential(seeders, song_dir,
                                                   tmp_path):
    sequential, _ = preview(seeders, song_dir, tmp_path, 400, "sequential",
                            "seq")
    shuffled, _ = preview(seeders, song_dir, tmp_path, 400, "random",
                          "rnd")
    assert sequential["stalls"] == 0
    assert sequential["continuity"] == 1.0
    assert shuffled["startup_s"] > sequential["startup_s"]


def test_preview_of_a_song_already_here_plays_it(seeders, song_dir,
                                                 tmp_path):
    """A second `get --preview` of a verified song plays the file (the
    README's examples run one after the other), and a plain `get` says
    how to fetch it again."""
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q"))
    first = run_leecher("get", "short-tune", "-o", str(tmp_path),
                        "--seeders", seeder.address)
    assert first.returncode == 0, first.stdout + first.stderr
    again = run_leecher("get", "short-tune", "-o", str(tmp_path),
                        "--seeders", seeder.address)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already here and verified (--force downloads it again)" in \
        again.stdout
    wav = tmp_path / "heard.wav"
    played = run_leecher("get", "short-tune", "-o", str(tmp_path),
                         "--preview", "--audio-out", str(wav), "--fast",
                         "--seeders", seeder.address)
    assert played.returncode == 0, played.stdout + played.stderr
    assert wav_pcm(wav) == ffmpeg_pcm(song_dir / "short-tune.mp3")
