"""player.py with real ffmpeg: frame map, sinks, preview, stalls, control."""

import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import wave

import pytest
from hypothesis import given, settings, strategies as st

import player
import sample_song
from conftest import ROOT, SAMPLE

RATE = 44100
FRAME_S = 1152 / RATE
BYTES_PER_S = 128000 // 8  # the default CBR test songs


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    """Short test songs: CBR, VBR (no Xing frame), and both with an ID3v2
    tag at the front (ffmpeg then also writes a Xing/Info frame)."""
    folder = tmp_path_factory.mktemp("songs")
    specs = {"cbr": {}, "vbr": {"vbr": True},
             "id3": {"id3_title": "Canção"},
             "id3vbr": {"vbr": True, "id3_title": "Tune"}}
    return {name: sample_song.make_mp3(str(folder / f"{name}.mp3"),
                                       seconds=4, **kw)
            for name, kw in specs.items()}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 3 s CBR song for the real-time tests."""
    folder = tmp_path_factory.mktemp("clip")
    return sample_song.make_mp3(str(folder / "clip.mp3"), seconds=3)


def read(path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def ffprobe(path, entries: str, *extra: str) -> list[str]:
    out = subprocess.run(["ffprobe", "-v", "error", *extra, "-show_entries",
                          entries, "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return out.replace("\n", ",").strip(",").split(",")


def ffmpeg_pcm(path) -> bytes:
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f",
                           "s16le", "-"], capture_output=True,
                          check=True).stdout


def wav_pcm(path) -> bytes:
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, RATE)
        return wav.readframes(wav.getnframes())


def frame_map(data: bytes, pieces=None) -> player.ByteTimeMap:
    media = player.ByteTimeMap()
    if pieces is None:
        media.feed(data)
    else:
        for start, end in zip([0, *pieces], [*pieces, len(data)]):
            media.feed(data[start:end])
    return media


def wait_for(predicate, timeout=5.0) -> bool:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def ffmpeg_children() -> list[str]:
    """ffmpeg processes (zombies included) whose parent is this process."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if name == "ffmpeg" and int(fields[1]) == os.getpid():
            found.append(f"{pid} {fields[0]}")
    return found


def player_threads() -> list[str]:
    return [t.name for t in threading.enumerate()
            if t.name.startswith("player-")]


# ------------------------------------------------------------ ByteTimeMap
@pytest.mark.parametrize("kind", ["cbr", "vbr", "id3", "id3vbr"])
def test_frame_map_agrees_with_ffprobe(songs, kind):
    media = frame_map(read(songs[kind]))
    packets, rate = ffprobe(songs[kind], "stream=nb_read_packets,sample_rate",
                            "-count_packets")[::-1][:2]
    # One entry per audio frame: the Xing/Info frame and the tag excluded.
    assert len(media.offsets) == int(packets)
    assert abs(media.seconds - int(packets) * 1152 / int(rate)) < 1e-9
    if kind != "vbr":  # without a Xing frame ffprobe guesses VBR lengths
        duration = float(ffprobe(songs[kind], "format=duration")[0])
        assert abs(media.seconds - duration) <= FRAME_S


@pytest.mark.parametrize("kind", ["cbr", "vbr", "id3", "id3vbr"])
def test_time_and_byte_round_trip(songs, kind):
    data = read(songs[kind])
    media = frame_map(data)
    for tenth in range(0, int(media.seconds * 10)):
        seconds = tenth / 10 + 0.013
        start = media.byte_at(seconds)
        assert data[start] == 0xFF  # a frame header
        assert 0 <= seconds - media.time_at(start) < FRAME_S
    for byte in random.Random(kind).sample(range(media.offsets[0],
                                                 len(data)), 200):
        start = media.byte_at(media.time_at(byte))
        assert start <= byte < start + 1500
        assert media.time_at(start) == media.time_at(byte)


@pytest.mark.parametrize("kind", ["id3", "id3vbr"])
def test_tag_and_info_frame_hold_no_time(songs, kind):
    data = read(songs[kind])
    media = frame_map(data)
    assert data.startswith(b"ID3")
    first = media.offsets[0]
    assert b"Info" in data[:first] or b"Xing" in data[:first]
    assert media.time_at(0) == media.time_at(first - 1) == 0.0
    assert media.time_at(first) == 0.0
    assert media.time_at(media.offsets[1]) == pytest.approx(FRAME_S)
    assert media.byte_at(0.0) == first
    assert media.byte_at(media.seconds) == len(data)
    assert media.time_at(len(data) + 10) == media.seconds


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_feeding_in_pieces_changes_nothing(songs, data):
    kind = data.draw(st.sampled_from(sorted(songs)))
    song = read(songs[kind])
    cuts = data.draw(st.lists(st.integers(0, len(song)), max_size=40))
    whole, parts = frame_map(song), frame_map(song, sorted(cuts))
    assert list(parts.offsets) == list(whole.offsets)
    assert parts.seconds == whole.seconds


def test_feeding_byte_by_byte_and_partial_frames(songs):
    song = read(songs["id3"])
    whole = frame_map(song)
    media = player.ByteTimeMap()
    for end in range(len(song)):
        media.feed(song[end:end + 1])
        if end == 5:  # inside the ID3 header: nothing known yet
            assert media.seconds == 0.0 and media.byte_at(1.0) == 0
    assert list(media.offsets) == list(whole.offsets)
    half = frame_map(song[:whole.offsets[40] + 100])  # frame 40 incomplete
    assert half.seconds == pytest.approx(40 * FRAME_S)


def test_junk_before_the_first_frame_is_skipped(songs):
    song = read(songs["cbr"])
    # A lone valid-looking header (MPEG-1 layer III, 128 kbit/s) and noise.
    junk = bytes(range(256)) + b"\xff\xfb\x90\x00" + bytes(500)
    media = frame_map(junk + song)
    assert list(media.offsets) == [o + len(junk)
                                   for o in frame_map(song).offsets]


def test_mp3_duration_of_the_sample_is_right():
    # How fast: bench/player_latency.py.
    seconds = player.mp3_duration(SAMPLE)
    assert abs(seconds - float(ffprobe(SAMPLE, "format=duration")[0])) \
        <= FRAME_S


# ----------------------------------------------------------------- sinks
def test_choose_sink_without_a_file_reports_its_choice(capfd):
    notices = []
    sink = player.choose_sink(notice=notices.append)
    assert len(notices) == 1 and notices[0].startswith("audio: ")
    assert "\n" not in notices[0]
    assert sink.name in notices[0]
    assert isinstance(sink, (player.NullSink, player.SoundcardSink))
    if isinstance(sink, player.NullSink):  # no sound card, as on CI
        with pytest.raises(player.PlayerError) as failed:
            player.SoundcardSink().open(RATE, 2)
        assert f"no sound card ({failed.value})" in notices[0]
        assert "null sink" in notices[0]
    assert capfd.readouterr().err == ""  # ALSA's complaints were hidden


def test_choose_sink_with_audio_out_writes_a_wav(tmp_path):
    notices = []
    sink = player.choose_sink(str(tmp_path / "o.wav"), fast=True,
                              notice=notices.append)
    assert isinstance(sink, player.WavSink) and sink.fast
    assert len(notices) == 1 and str(tmp_path / "o.wav") in notices[0]


def test_null_sink_plays_a_file_in_real_time(clip):
    song = player.Player(player.NullSink(), prebuffer_s=0.5)
    began = time.monotonic()
    song.play_file(clip)
    assert song.wait(10) and song.state == "finished", song.error
    assert time.monotonic() - began >= 2.5
    assert song.position_s == pytest.approx(len(ffmpeg_pcm(clip)) / 4 / RATE)


# ---------------------------------------------------------------- player
@pytest.mark.parametrize("kind", ["cbr", "vbr", "id3", "id3vbr"])
def test_play_file_to_a_fast_wav_equals_ffmpeg(songs, kind, tmp_path):
    out, calls = tmp_path / "out.wav", []
    song = player.Player(player.WavSink(str(out), fast=True),
                         on_played=lambda end, when: calls.append((end, when)))
    song.play_file(songs[kind])
    assert song.wait(10) and song.state == "finished", song.error
    reference = ffmpeg_pcm(songs[kind])
    assert wav_pcm(out) == reference
    assert song.error is None and song.stats["stalls"] == 0
    assert song.position_s == song.stats["played_s"] == len(reference) / 4 \
        / RATE
    ends = [end for end, _ in calls]
    assert calls == sorted(calls) and ends[-1] == len(read(songs[kind]))
    if kind == "cbr":  # reported at least every ~0.1 s of audio
        assert max(b - a for a, b in zip([0, *ends], ends)) \
            <= 0.1 * BYTES_PER_S + 2 * 418


def feed_in_pieces(song, data, start, end, bytes_per_s, piece=1400):
    for at in range(start, end, piece):
        song.feed(data[at:min(at + piece, end)])
        time.sleep(piece / bytes_per_s)


def test_preview_stalls_waits_for_the_prebuffer_and_loses_nothing(
        clip, tmp_path):
    """2 s of the clip arrive, then nothing until playback has stalled,
    then 0.5 s (not enough to resume with a 1 s pre-buffer), then the
    rest: one stall, and the WAV is still the whole decode."""
    data, out, calls = read(clip), tmp_path / "out.wav", []
    media = frame_map(data)
    song = player.Player(player.WavSink(str(out)), prebuffer_s=1.0,
                         on_played=lambda end, when: calls.append(end))
    seen = {}

    def download():
        two_s, half_more = media.byte_at(2.0), media.byte_at(2.5)
        feed_in_pieces(song, data, 0, two_s, 20 * BYTES_PER_S)
        seen["stalled"] = wait_for(lambda: song.state == "stalled")
        seen["stalled_at"] = song.position_s
        feed_in_pieces(song, data, two_s, half_more, 20 * BYTES_PER_S)
        time.sleep(0.4)
        seen["still"], seen["held"] = song.state, song.position_s
        feed_in_pieces(song, data, half_more, len(data), 4 * BYTES_PER_S)
        song.finish_input()

    feeder = threading.Thread(target=download)
    song.start()
    feeder.start()
    assert song.wait(15) and song.state == "finished", song.error
    feeder.join()
    assert seen["stalled"] and seen["still"] == "stalled"
    assert 1.5 < seen["stalled_at"] <= 2.0  # less than 2 s had arrived
    assert seen["held"] == seen["stalled_at"]
    stats = song.stats
    assert stats["stalls"] == 1 and stats["stall_s"] >= 0.4
    assert wav_pcm(out) == ffmpeg_pcm(clip)
    assert calls == sorted(calls) and calls[-1] == len(data)


@pytest.mark.parametrize("kind", ["cbr", "id3vbr"])
def test_slow_preview_into_a_fast_wav_stalls_and_loses_nothing(
        songs, kind, tmp_path):
    data, out, calls = read(songs[kind]), tmp_path / "out.wav", []
    song = player.Player(player.WavSink(str(out), fast=True),
                         prebuffer_s=0.5,
                         on_played=lambda end, when: calls.append(end))
    song.start()
    feed_in_pieces(song, data, 0, len(data), 4 * BYTES_PER_S)
    song.finish_input()
    assert song.wait(10) and song.state == "finished", song.error
    assert song.stats["stalls"] > 0
    assert wav_pcm(out) == ffmpeg_pcm(songs[kind])
    assert calls == sorted(calls) and calls[-1] == len(data)


def test_fast_feed_never_stalls(clip, tmp_path):
    data, out = read(clip), tmp_path / "out.wav"
    song = player.Player(player.WavSink(str(out)), prebuffer_s=1.0)
    song.start()
    feed_in_pieces(song, data, 0, len(data), 20 * BYTES_PER_S)
    song.finish_input()
    assert song.wait(10) and song.state == "finished", song.error
    stats = song.stats
    assert stats["stalls"] == 0 and stats["stall_s"] == 0.0
    assert stats["startup_s"] > 0  # how long: bench/player_latency.py
    assert wav_pcm(out) == ffmpeg_pcm(clip)


def test_playback_waits_for_the_prebuffer(clip):
    data = read(clip)
    media = frame_map(data)
    song = player.Player(player.NullSink(), prebuffer_s=2.0)
    song.start()
    song.feed(data[:media.byte_at(1.9)])
    time.sleep(0.5)
    assert song.state == "waiting" and song.stats["startup_s"] is None
    song.feed(data[media.byte_at(1.9):])
    assert wait_for(lambda: song.state == "playing", 2.0)
    song.stop()
    assert song.stats["stalls"] == 0


def test_pause_holds_the_position_and_loses_nothing(clip, tmp_path):
    out = tmp_path / "out.wav"
    song = player.Player(player.WavSink(str(out)), prebuffer_s=0.5)
    song.play_file(clip)
    assert wait_for(lambda: song.position_s >= 0.5)
    song.pause()
    assert song.state == "paused"
    time.sleep(0.2)  # the block being played ends
    held = song.position_s
    time.sleep(0.5)
    assert song.position_s == held and song.state == "paused"
    song.resume()
    assert wait_for(lambda: song.position_s > held + 0.2, 2.0)
    assert song.wait(10) and song.state == "finished", song.error
    assert song.stats["stalls"] == 0
    assert wav_pcm(out) == ffmpeg_pcm(clip)


@pytest.mark.parametrize("moment", ["before ffmpeg starts", "mid-song",
                                    "while paused"])
def test_stop_ends_threads_ffmpeg_and_the_fifo(clip, moment, tmp_path,
                                               monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    data = read(clip)
    song = player.Player(player.NullSink(), prebuffer_s=0.5)
    song.start()
    if moment == "before ffmpeg starts":
        song.feed(data[:3000])  # too little for ffmpeg to report a format
        time.sleep(0.3)
        assert ffmpeg_children() and song.state == "waiting"
    else:
        song.feed(data)
        assert wait_for(lambda: song.position_s > 0.3)
        if moment == "while paused":
            song.pause()
    assert os.listdir(tmp_path)  # the FIFO's folder
    song.stop()  # returns with everything ended (how fast: bench/)
    assert song.wait(0) and song.state == "stopped" and song.error is None
    assert ffmpeg_children() == [] and player_threads() == []
    assert os.listdir(tmp_path) == []
    position = song.position_s
    song.feed(b"more")  # ignored after stop
    time.sleep(0.2)
    assert song.position_s == position


def test_exiting_without_stop_leaves_no_fifo(clip, tmp_path):
    script = (f"import player, time\n"
              f"song = player.Player(player.NullSink())\n"
              f"song.feed(open({str(clip)!r}, 'rb').read()[:5000])\n"
              f"song.start()\n"
              f"time.sleep(0.3)\n"
              f"print(song.state)\n")
    env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", script], env=env,
                          capture_output=True, text=True, timeout=10)
    assert done.stdout == "waiting\n", done.stderr
    assert os.listdir(tmp_path) == []


def test_a_decoder_failure_is_one_line_not_an_exception():
    song = player.Player(player.NullSink())
    song.feed(b"this is not an mp3 file\n" * 500)
    song.finish_input()
    song.start()
    assert song.wait(5) and song.state == "stopped"
    assert song.error.startswith("decoder: ") and "\n" not in song.error
    assert song.stats["startup_s"] is None


def empty_wav() -> bytes:
    """A WAV file without samples: audio ffmpeg reads, but not MP3."""
    import io
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
    return out.getvalue()


@pytest.mark.parametrize("data", [b"", b"this is not an mp3 file\n" * 500,
                                  empty_wav()],
                         ids=["0 bytes", "text", "empty WAV"])
def test_finished_input_without_mp3_audio_ends_with_an_error(data):
    """As in a preview: started first, then fed, then finished.  The
    prebuffer can never fill: the player must end, not wait forever."""
    song = player.Player(player.NullSink(), prebuffer_s=2.0)
    song.start()
    song.feed(data)
    song.finish_input()
    assert song.wait(timeout=10), song.state
    assert song.state == "stopped" and song.stats["startup_s"] is None
    assert song.error.startswith("decoder: ") and "MP3" in song.error
    assert "\n" not in song.error
    assert player_threads() == []


def test_ffmpeg_decoding_nothing_is_an_error_not_a_song(clip, monkeypatch):
    """Should ffmpeg end well without a sample, the player has played
    nothing: an error, not a "finished" song."""
    def pump_nothing(self, audio):
        for _ in audio.read_data(timeout=1.0):
            pass  # the PCM is lost, as if ffmpeg had decoded none
    monkeypatch.setattr(player.Decoder, "_pump", pump_nothing)
    song = player.Player(player.NullSink())
    song.play_file(clip)
    assert song.wait(timeout=10) and song.state == "stopped"
    assert song.error == player.NO_AUDIO and song.position_s == 0.0


def test_missing_ffmpeg(monkeypatch, tmp_path, clip):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(player.PlayerError) as missing:
        player.check_ffmpeg()
    assert "apt-get install ffmpeg" in str(missing.value)
    song = player.Player(player.NullSink())
    song.play_file(clip)
    assert song.wait(5) and song.state == "stopped"
    assert song.error == str(missing.value)
    assert player_threads() == []


def test_player_time_map_is_the_scan_of_the_whole_file():
    """The leecher's continuity uses the map the player built while being
    fed, instead of scanning the file again: they must agree."""
    with open(SAMPLE, "rb") as handle:
        data = handle.read()
    fed = player.Player(player.NullSink())
    fed.feed(data[:5000])
    assert fed.time_map(len(data)) is None  # not all there: no map yet
    for start in range(5000, len(data), 7777):
        fed.feed(data[start:start + 7777])
    scanned = player.scan_file(SAMPLE)
    mapped = fed.time_map(len(data))
    assert mapped is not None and mapped.seconds == scanned.seconds > 19
    for offset in range(0, len(data), 1400):
        assert mapped.time_at(offset) == scanned.time_at(offset)


# ------------------------------------------------- tags at the end of a file
def synchsafe(size: int) -> bytes:
    return bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))


def id3v24_at_the_end(*frames: tuple[bytes, bytes]) -> bytes:
    """An ID3v2.4 tag with a footer, as appended after the audio."""
    body = b"".join(name + synchsafe(len(data)) + b"\0\0" + data
                    for name, data in frames)
    size = synchsafe(len(body))
    return b"ID3\x04\x00\x10" + size + body + b"3DI\x04\x00\x10" + size


def apev2(*items: tuple[bytes, bytes]) -> bytes:
    """An APEv2 tag with header and footer (flag bit 29: header)."""
    body = b"".join(len(value).to_bytes(4, "little") + bytes(4) + key +
                    b"\0" + value for key, value in items)
    size = len(body) + 32

    def block(flags: int) -> bytes:
        return (b"APETAGEX" + (2000).to_bytes(4, "little") +
                size.to_bytes(4, "little") +
                len(items).to_bytes(4, "little") +
                flags.to_bytes(4, "little") + bytes(8))
    return block(0xA0000000) + body + block(0x80000000)


@pytest.fixture(scope="module")
def tagged_at_the_end(tmp_path_factory):
    """A mono 16 kHz MP3 with an ID3v2 tag at the end and an APEv2 tag
    after it (the layout Audacious writes), and the same audio untagged.
    Binary items in both tags hold real frames of the song, as a picture
    or a private item may hold anything: a scan through the tags, or a
    decoder given them, would take them for audio."""
    folder = tmp_path_factory.mktemp("tagged")
    plain = folder / "plain.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=16000:duration=1.3",
                    "-ac", "1", "-codec:a", "libmp3lame", "-b:a", "32k",
                    str(plain)], check=True)
    audio = read(plain)
    media = frame_map(audio)
    frames = audio[media.offsets[3]:media.offsets[9]]  # six real frames
    tags = (id3v24_at_the_end((b"TIT2", "\x03Canção".encode()),
                              (b"PRIV", b"facom\0" + frames)) +
            apev2((b"Title", "Canção".encode()), (b"Cover", frames)))
    tagged = folder / "tagged.mp3"
    tagged.write_bytes(audio + tags)
    return plain, tagged


def test_tags_at_the_end_hold_no_frames(tagged_at_the_end):
    plain, tagged = tagged_at_the_end
    clean, with_tags = frame_map(read(plain)), frame_map(read(tagged))
    assert list(with_tags.offsets) == list(clean.offsets)
    assert with_tags.seconds == clean.seconds
    assert with_tags.audio_end == len(read(plain))  # the last frame counts
    cuts = sorted(random.Random(7).sample(range(len(read(tagged))), 30))
    assert list(frame_map(read(tagged), cuts).offsets) == list(clean.offsets)


def test_a_last_frame_after_junk_is_confirmed_by_the_tag_after_it(
        tagged_at_the_end):
    """After junk a frame needs confirming; the last one has no next
    header, only the tag: it must still count."""
    plain, _ = tagged_at_the_end
    audio = read(plain)
    last = frame_map(audio).offsets[-1]
    data = audio[:last] + b"junk" + audio[last:] + b"TAG" + bytes(125)
    media = frame_map(data)
    assert len(media.offsets) == len(frame_map(audio).offsets)
    assert media.offsets[-1] == last + 4


def test_tags_at_the_end_play_exactly_the_audio(tagged_at_the_end,
                                               tmp_path):
    """Sample for sample what ffmpeg decodes from the audio itself: the
    bytes of the tags never reach the decoder."""
    plain, tagged = tagged_at_the_end
    out = tmp_path / "out.wav"
    song = player.Player(player.WavSink(str(out), fast=True))
    song.play_file(tagged)
    assert song.wait(10) and song.state == "finished", song.error
    with wave.open(str(out)) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (1, 16000)
        played = wav.readframes(wav.getnframes())
    assert played == ffmpeg_pcm(plain)
    # ffmpeg's own decode of the tagged file holds every sample played, in
    # order; what it adds at the end comes from the bytes of the tags.
    assert ffmpeg_pcm(tagged).startswith(played)
