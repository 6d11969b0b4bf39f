"""P2P FACOM player: decodes MP3 with audioread (ffmpeg) and plays it.

Why a FIFO: audioread takes a file name only, and ffmpeg must decode the
song while it is still arriving.  ``Player.feed`` hands the contiguous
bytes of the file to a feeder thread that writes them into a named pipe;
ffmpeg reads the pipe, so every byte is decoded once, as soon as it is
there, and a pipe that runs dry simply makes ffmpeg wait.

Why stalls are counted here: the sink consumes audio in real time.  When
it needs audio that has not been decoded because its bytes have not
arrived, playback stops (a *stall*), and resumes at the same sample once
``prebuffer_s`` more seconds of audio have arrived (or the input ended).
Nothing is skipped and nothing is played twice.

``ByteTimeMap`` scans MP3 frame headers, so byte offsets of the file map to
media time (VBR and ID3v2 tags included) without decoding anything.

No Tk here: the terminal leecher and the GUI drive the same ``Player``.
audioread and simpleaudio are imported lazily: the seeder imports this
module for ``mp3_duration`` and must start fast.
"""

from __future__ import annotations

import bisect
import os
import queue
import shutil
import tempfile
import threading
import time
import wave
from array import array

BYTES_PER_SAMPLE = 2  # 16-bit PCM
SINK_BLOCK_S = 0.1  # real-time sinks consume audio in pieces this long
SOUNDCARD_BLOCK_S = 0.5


class PlayerError(Exception):
    """A one-line reason why audio cannot be played."""


def check_ffmpeg() -> None:
    if shutil.which("ffmpeg") is None:
        raise PlayerError("ffmpeg not found: install it with "
                          "'apt-get install ffmpeg'")


# ------------------------------------------------------------ MP3 frames
MPEG1, MPEG2, MPEG25 = 3, 2, 0
BITRATES_KBPS = {
    MPEG1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256,
            320),
    MPEG2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
SAMPLE_RATES = {MPEG1: (44100, 48000, 32000), MPEG2: (22050, 24000, 16000),
                MPEG25: (11025, 12000, 8000)}
LAYER3 = 1
ID3_HEADER = 10


def parse_frame_header(header: bytes):
    """(frame length, sample rate, samples per frame) or None."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version = (header[1] >> 3) & 3
    layer = (header[1] >> 1) & 3
    bitrate_index = header[2] >> 4
    rate_index = (header[2] >> 2) & 3
    if version == 1 or layer != LAYER3 or bitrate_index in (0, 15) \
            or rate_index == 3:
        return None
    table = BITRATES_KBPS[MPEG1 if version == MPEG1 else MPEG2]
    bitrate = table[bitrate_index] * 1000
    rate = SAMPLE_RATES[version][rate_index]
    padding = (header[2] >> 1) & 1
    if version == MPEG1:
        return 144 * bitrate // rate + padding, rate, 1152
    return 72 * bitrate // rate + padding, rate, 576


def _is_info_frame(frame: bytes) -> bool:
    """A Xing/Info/VBRI frame describes the file and carries no audio."""
    return any(tag in frame[:64] for tag in (b"Xing", b"Info", b"VBRI"))


class ByteTimeMap:
    """Byte offset in an MP3 file <-> media time, built as bytes arrive."""

    def __init__(self):
        self._pending = bytearray()  # bytes not yet parsed
        self._pending_at = 0  # file offset of _pending[0]
        self._skip = 0  # bytes of an ID3v2 tag still to pass over
        self._started = False
        self.offsets = array("Q")  # file offset of each audio frame
        self.rate = 0
        self.samples_per_frame = 0
        self.total_bytes = 0

    def feed(self, data: bytes) -> None:
        self.total_bytes += len(data)
        self._pending += data
        if not self._started and not self._read_id3():
            return
        self._scan()

    def _read_id3(self) -> bool:
        """Skip an ID3v2 tag at the front; False until we know its size."""
        if len(self._pending) < ID3_HEADER:
            return False
        head = self._pending[:ID3_HEADER]
        if head[:3] == b"ID3":
            size = 0
            for byte in head[6:10]:
                size = (size << 7) | (byte & 0x7F)
            footer = ID3_HEADER if head[5] & 0x10 else 0
            self._skip = ID3_HEADER + size + footer
        self._started = True
        return True

    def _drop(self, count: int) -> None:
        del self._pending[:count]
        self._pending_at += count

    def _scan(self) -> None:
        if self._skip:
            step = min(self._skip, len(self._pending))
            self._drop(step)
            self._skip -= step
            if self._skip:
                return
        pos = 0
        pending = self._pending
        while len(pending) - pos >= 4:
            parsed = parse_frame_header(pending[pos:pos + 4])
            if parsed is None or (self.rate and parsed[1] != self.rate):
                pos += 1  # not a frame start: resynchronise
                continue
            length, rate, samples = parsed
            if len(pending) - pos < length:
                break  # wait for the rest of the frame
            if not self.rate and _is_info_frame(pending[pos:pos + length]):
                self.rate, self.samples_per_frame = rate, samples
            else:
                self.rate, self.samples_per_frame = rate, samples
                self.offsets.append(self._pending_at + pos)
            pos += length
        self._drop(pos)

    @property
    def frame_s(self) -> float:
        return self.samples_per_frame / self.rate if self.rate else 0.0

    @property
    def seconds(self) -> float:
        return len(self.offsets) * self.frame_s

    def time_at(self, byte_offset: int) -> float:
        frame = bisect.bisect_right(self.offsets, byte_offset) - 1
        return max(frame, 0) * self.frame_s

    def byte_at(self, seconds: float) -> int:
        if not self.offsets:
            return 0
        frame = int(seconds / self.frame_s) if self.frame_s else 0
        if frame >= len(self.offsets):
            return self.total_bytes
        return self.offsets[max(frame, 0)]


def mp3_duration(path: str) -> float:
    media = ByteTimeMap()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            media.feed(block)
    return media.seconds


# ------------------------------------------------------------------ sinks
class Sink:
    """Consumes interleaved 16-bit PCM."""

    name = "sink"
    real_time = True

    def __init__(self):
        self.rate = 0
        self.channels = 0
        self.frames_written = 0
        self._clock = None

    def open(self, rate: int, channels: int) -> None:
        self.rate, self.channels = rate, channels

    def write(self, pcm: bytes) -> None:
        step = int(self.rate * SINK_BLOCK_S) * self.frame_bytes
        for start in range(0, len(pcm), step or len(pcm) or 1):
            piece = pcm[start:start + step]
            self._consume(piece)
            self.frames_written += len(piece) // self.frame_bytes
            if self.real_time:
                self._wait_while_playing(len(piece) // self.frame_bytes)

    @property
    def frame_bytes(self) -> int:
        return max(1, self.channels * BYTES_PER_SAMPLE)

    def _consume(self, piece: bytes) -> None:
        """Send one piece of PCM to its destination."""

    def _wait_while_playing(self, frames: int) -> None:
        """Return when ``frames`` would have been played, never drifting."""
        now = time.monotonic()
        if self._clock is None or self._clock < now:
            self._clock = now  # after a pause or stall, time restarts
        self._clock += frames / self.rate
        time.sleep(max(0.0, self._clock - now))

    def pause_clock(self) -> None:
        self._clock = None

    def close(self) -> None:
        pass


class NullSink(Sink):
    name = "null sink (silent, real time)"


class WavSink(Sink):
    """Writes exactly what was played to a WAV file."""

    def __init__(self, path: str, fast: bool = False):
        super().__init__()
        self.path = path
        self.real_time = not fast
        self.name = f"WAV file {path}" + (" (fast)" if fast else "")
        self._wav = None

    def open(self, rate: int, channels: int) -> None:
        super().open(rate, channels)
        try:
            self._wav = wave.open(self.path, "wb")
        except OSError as exc:
            raise PlayerError(f"cannot write {self.path}: "
                              f"{exc.strerror or exc}") from None
        self._wav.setnchannels(channels)
        self._wav.setsampwidth(BYTES_PER_SAMPLE)
        self._wav.setframerate(rate)

    def _consume(self, piece: bytes) -> None:
        self._wav.writeframesraw(piece)

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None


class SoundcardSink(Sink):
    """The sound card, through simpleaudio."""

    name = "sound card (simpleaudio)"
    real_time = False  # play_buffer + wait_done keep the pace themselves

    def write(self, pcm: bytes) -> None:
        import simpleaudio
        step = int(self.rate * SOUNDCARD_BLOCK_S) * self.frame_bytes
        for start in range(0, len(pcm), step):
            piece = pcm[start:start + step]
            simpleaudio.play_buffer(piece, self.channels, BYTES_PER_SAMPLE,
                                    self.rate).wait_done()
            self.frames_written += len(piece) // self.frame_bytes

    @staticmethod
    def probe() -> None:
        """Raise if no sound card can be opened."""
        import simpleaudio
        silence = bytes(2 * 2 * 441)
        simpleaudio.play_buffer(silence, 2, 2, 44100).wait_done()


def choose_sink(audio_out: str | None = None, fast: bool = False,
                notice=print) -> Sink:
    if audio_out:
        sink = WavSink(audio_out, fast)
        notice(f"audio: {sink.name} (--audio-out)")
        return sink
    try:
        SoundcardSink.probe()
    except Exception as exc:  # ImportError, SimpleaudioError, ...
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else \
            type(exc).__name__
        sink = NullSink()
        notice(f"audio: no sound card ({why}), using the {sink.name}")
        return sink
    sink = SoundcardSink()
    notice(f"audio: {sink.name}")
    return sink


# ----------------------------------------------------------------- player
class _Decoder:
    """ffmpeg (through audioread) reading the song from a FIFO."""

    def __init__(self, pcm: queue.Queue):
        self.pcm = pcm
        self.dir = tempfile.mkdtemp(prefix="p2pfacom-")
        self.fifo = os.path.join(self.dir, "song.mp3")
        os.mkfifo(self.fifo)
        self.blocks: queue.Queue = queue.Queue()
        self.audio = None
        self.ready = threading.Event()  # rate and channels known
        self.error = None
        self.closed = False
        threading.Thread(target=self._feed, daemon=True).start()
        threading.Thread(target=self._decode, daemon=True).start()

    def _feed(self) -> None:
        try:
            with open(self.fifo, "wb") as pipe:
                while (block := self.blocks.get()) is not None:
                    pipe.write(block)
                    pipe.flush()
        except OSError:
            pass  # ffmpeg went away (stop): nothing left to feed

    def _decode(self) -> None:
        from audioread import ffdec
        try:
            self.audio = ffdec.FFmpegAudioFile(self.fifo)
            self.ready.set()
            for block in self.audio.read_data(timeout=365 * 86400):
                self.pcm.put(block)
        except Exception as exc:  # decoding errors end playback, not us
            if not self.closed:
                self.error = f"{type(exc).__name__}: {exc}".strip(": ")
        finally:
            self.ready.set()
            self.pcm.put(None)

    def close(self) -> None:
        self.closed = True
        self.blocks.put(None)
        try:  # unblock a feeder still waiting for ffmpeg to open the FIFO
            fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass
        if self.audio is not None:
            self.audio.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Player:
    """Plays an MP3 fed in order, from a file or as it downloads."""

    def __init__(self, sink: Sink, prebuffer_s: float = 2.0, on_played=None,
                 clock=time.monotonic):
        self.sink = sink
        self.prebuffer_s = prebuffer_s
        self.on_played = on_played
        self.clock = clock
        self.media = ByteTimeMap()
        self.error = None
        self._pcm: queue.Queue = queue.Queue()
        self._decoder = None
        self._input_done = False
        self._state = "waiting"
        self._cond = threading.Condition()
        self._paused = False
        self._stopped = False
        self._finished = threading.Event()
        self._thread = None
        self._started_at = None
        self._first_sound = None
        self.stalls = 0
        self.stall_s = 0.0

    # ------------------------------------------------------------- input
    def feed(self, data: bytes) -> None:
        if not data:
            return
        with self._cond:
            self.media.feed(data)
            self._cond.notify_all()
        self._ensure_decoder().blocks.put(bytes(data))

    def finish_input(self) -> None:
        with self._cond:
            self._input_done = True
            self._cond.notify_all()
        self._ensure_decoder().blocks.put(None)

    def play_file(self, path: str) -> None:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 16), b""):
                self.feed(block)
        self.finish_input()
        self.start()

    def _ensure_decoder(self) -> _Decoder:
        if self._decoder is None:
            self._decoder = _Decoder(self._pcm)
        return self._decoder

    # ----------------------------------------------------------- control
    def start(self) -> None:
        if self._thread is not None:
            return
        self._started_at = self.clock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def pause(self) -> None:
        with self._cond:
            if self._state in ("playing", "stalled", "waiting"):
                self._paused = True
                self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._decoder is not None:
            self._decoder.close()
        if self._thread is not None and \
                self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._finished.set()

    def wait(self, timeout=None) -> bool:
        return self._finished.wait(timeout)

    @property
    def state(self) -> str:
        if self._stopped and self._state != "finished":
            return "stopped"
        if self._paused and self._state not in ("finished", "stopped"):
            return "paused"
        return self._state

    @property
    def position_s(self) -> float:
        rate = self.sink.rate
        return self.sink.frames_written / rate if rate else 0.0

    @property
    def stats(self) -> dict:
        startup = None
        if self._first_sound is not None:
            startup = self._first_sound - self._started_at
        return {"startup_s": startup, "stalls": self.stalls,
                "stall_s": self.stall_s, "played_s": self.position_s}

    # ---------------------------------------------------------- playback
    def _run(self) -> None:
        try:
            if self._wait_for_audio(self.prebuffer_s):
                self._play()
        except PlayerError as exc:
            self.error = str(exc)
        finally:
            self.sink.close()
            if self._decoder is not None:
                self.error = self.error or self._decoder.error
                self._decoder.close()
            if not self._stopped:
                self._state = "finished"
            self._report_played(final=True)
            self._finished.set()

    def _buffered_s(self) -> float:
        return self.media.seconds - self.position_s

    def _wait_for_audio(self, seconds: float) -> bool:
        """Block until ``seconds`` of audio are fed beyond the play point,
        the input ended, or stop(); False when stopped."""
        with self._cond:
            while not self._stopped and not self._input_done and (
                    self._paused or self._buffered_s() < seconds):
                self._cond.wait(0.1)
            while self._paused and not self._stopped:
                self._cond.wait(0.1)
            return not self._stopped

    def _play(self) -> None:
        decoder = self._ensure_decoder()
        while not decoder.ready.wait(0.1):
            if self._stopped:
                return
        if decoder.audio is None:
            return  # decoding failed before it began: error is set
        self.sink.open(decoder.audio.samplerate, decoder.audio.channels)
        self._state = "playing"
        while not self._stopped:
            try:
                block = self._pcm.get(timeout=0.05)
            except queue.Empty:
                if not self._stall():
                    return
                continue
            if block is None:
                return  # the decoder reached the end of the song
            if not self._wait_for_audio(0):
                return  # stopped while paused
            self._write(block)

    def _write(self, block: bytes) -> None:
        if self._first_sound is None:
            self._first_sound = self.clock()
        step = int(self.sink.rate * SINK_BLOCK_S) * self.sink.frame_bytes
        for start in range(0, len(block), step or len(block)):
            if self._paused:
                self.sink.pause_clock()
                if not self._wait_for_audio(0):
                    return
            self.sink.write(block[start:start + step])
            self._report_played()

    def _stall(self) -> bool:
        """No decoded audio ready.  Stall unless the input is complete or
        enough is fed (then ffmpeg is merely busy).  False when stopped."""
        if self._input_done or self._buffered_s() > self.prebuffer_s:
            return not self._stopped
        self.stalls += 1
        self._state = "stalled"
        began = self.clock()
        self.sink.pause_clock()
        resumed = self._wait_for_audio(self.prebuffer_s)
        self.stall_s += self.clock() - began
        self._state = "playing"
        return resumed

    def _report_played(self, final: bool = False) -> None:
        if self.on_played is None:
            return
        if final and self._state == "finished":
            byte_end = self.media.total_bytes
        else:
            byte_end = self.media.byte_at(self.position_s)
        try:
            self.on_played(byte_end, self.clock())
        except Exception:  # a callback bug must not stop the music
            pass
