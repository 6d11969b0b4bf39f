"""Play an MP3 file, also while it is still downloading (preview).

Design
------
Three pieces, all driven by background threads that ``Player`` starts:

* ``ByteTimeMap`` scans MP3 frame headers (stdlib only) as bytes arrive and
  maps byte offsets to audio time and back.  The player uses it to decide
  when enough audio has arrived (start-up and the end of a stall), and to
  tell the caller which bytes have been played.  The seeder uses it, through
  ``mp3_duration``, to report song lengths.

* Decoding (``Decoder``): a single ffmpeg process (through ``audioread``'s
  ``FFmpegAudioFile``) reads the MP3 from a named pipe (FIFO) in a private
  temporary folder.  A feeder thread copies the bytes given to
  ``Player.feed()`` into the FIFO.  A FIFO, rather than a growing file,
  because ffmpeg treats it as a non-seekable stream: it reads what is there,
  blocks until more comes and sees the end of the file only when the feeder
  closes it (after ``finish_input()``).  So ffmpeg follows the download, and
  every byte is decoded exactly once.  ffmpeg needs about 50 MP3 frames
  (~1.3 s of audio) before it reports the stream format and starts
  decoding; the player simply waits for it.  A decoder thread moves the PCM
  that ffmpeg produces into the player's buffer.  The feeder keeps at most
  ``DECODE_AHEAD_S`` seconds of audio ahead of the playback position in the
  FIFO, so the decoded PCM held in memory stays bounded.  It writes only
  the bytes up to the end of the last MP3 frame found (``audio_end``):
  tags after the audio (ID3v2, APEv2, ID3v1) never reach ffmpeg, which
  could take bytes inside them for frames.

* ``Player``: a playback thread takes blocks of ~0.1 s of PCM from that
  buffer and writes them to a ``Sink``, which consumes them in real time
  (sound card, silent null sink, or a WAV file); it keeps the position,
  the start-up and the stalls.

Stalls: once the first sound has been played, a stall starts whenever the
sink needs audio, the decoder has none ready, and the input is not finished
(the download has not brought the next bytes yet).  Each such event counts
as one stall.  The player then waits until ``prebuffer_s`` more seconds of
audio (per ``ByteTimeMap``, beyond the current position) have been fed, or
the input is finished, and resumes exactly where it stopped: nothing is
skipped and nothing is played twice.  The time spent waiting is the stall
time.  Waiting for the first sound is the start-up time, not a stall.

Input without audio: once the input is finished, data that holds no MP3
frame (an empty file, text, another format) or from which ffmpeg decodes
nothing ends the player with a one-line ``error``, instead of a wait for a
prebuffer that can never fill.

audioread and simpleaudio are imported lazily, so that importing this module
is fast and needs only the standard library.
"""

from __future__ import annotations

import atexit
import bisect
import collections
import contextlib
import errno
import os
import shutil
import sys
import tempfile
import threading
import time
import wave
from array import array

import cli

FFMPEG_MISSING = "ffmpeg not found: install it with 'apt-get install ffmpeg'"
NO_AUDIO = "decoder: ffmpeg found no MP3 audio in the data"
NO_FRAME = "decoder: no MP3 frame found in the data"
DECODE_AHEAD_S = 30.0  # audio handed to ffmpeg beyond the playback position
FEED_SLICE = 1 << 16   # largest write into the FIFO
_LIVE_DIRS: set[str] = set()  # FIFO folders of players still running


@atexit.register
def _remove_live_dirs() -> None:
    """A program may exit without stop(): its daemon threads just die,
    so remove the FIFO folders they would have removed."""
    for folder in list(_LIVE_DIRS):
        shutil.rmtree(folder, ignore_errors=True)


class PlayerError(Exception):
    """A problem that stops audio: the message is one line for the user."""


def check_ffmpeg() -> None:
    """Raise PlayerError if the ffmpeg program is not on the PATH."""
    if shutil.which("ffmpeg") is None:
        raise PlayerError(FFMPEG_MISSING)


# ---------------------------------------------------------------- MP3 frames
_BITRATES_KBPS = {
    1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
# MPEG version bits -> sample rates (0 = MPEG 2.5, 2 = MPEG 2, 3 = MPEG 1)
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000),
                 0: (11025, 12000, 8000)}
_Frame = collections.namedtuple("_Frame", "length samples rate key tag_at")


def _parse_header(h) -> _Frame | None:
    """The layer III frame described by the 4 header bytes ``h``, or None."""
    if h[0] != 0xFF or h[1] & 0xE0 != 0xE0:
        return None
    version, layer = (h[1] >> 3) & 3, (h[1] >> 1) & 3
    bitrate_index, rate_index = h[2] >> 4, (h[2] >> 2) & 3
    if version == 1 or layer != 1 or rate_index == 3 \
            or bitrate_index in (0, 15):
        return None  # reserved, not layer III, or free format
    mpeg1 = version == 3
    rate = _SAMPLE_RATES[version][rate_index]
    kbps = _BITRATES_KBPS[1 if mpeg1 else 2][bitrate_index]
    padding = (h[2] >> 1) & 1
    length = (144000 if mpeg1 else 72000) * kbps // rate + padding
    mono = h[3] >> 6 == 3
    # Where a Xing/Info tag would start: after the header and side info.
    tag_at = (21 if mono else 36) if mpeg1 else (13 if mono else 21)
    return _Frame(length, 1152 if mpeg1 else 576, rate, (version, rate),
                  tag_at)


def _is_tag_frame(frame: _Frame, data, start: int) -> bool:
    """True for a Xing/Info/VBRI frame: it describes the file, no audio."""
    at = start + frame.tag_at
    return bytes(data[at:at + 4]) in (b"Xing", b"Info") \
        or bytes(data[start + 36:start + 40]) == b"VBRI"


def _id3v2_size(head) -> int:
    """Total size of the ID3v2 tag starting ``head`` (10 bytes), else 0."""
    if bytes(head[:3]) != b"ID3" or any(b & 0x80 for b in head[6:10]):
        return 0
    size = 0
    for byte in head[6:10]:
        size = (size << 7) | (byte & 0x7F)
    footer = 10 if head[5] & 0x10 else 0
    return 10 + size + footer


APE_HEADER = 32         # APEv2: a 32-byte header and/or footer
APE_IS_HEADER = 1 << 29  # APEv2 flag: this 32-byte block is the header
ID3V1_SIZE = 128        # ID3v1: "TAG" and 125 bytes, always at the end


def _ape_size(head) -> int:
    """Bytes to skip at an APEv2 block (32 bytes of ``head``): the whole
    tag from its header, or just the footer (its items were junk)."""
    size = int.from_bytes(head[12:16], "little")
    flags = int.from_bytes(head[20:24], "little")
    return APE_HEADER + size if flags & APE_IS_HEADER else APE_HEADER


# A tag's magic, the bytes needed to know its size, and that size.
_TAGS = ((b"ID3", 10, _id3v2_size), (b"APETAGEX", APE_HEADER, _ape_size),
         (b"TAG", 3, lambda head: ID3V1_SIZE))


_RESYNC_AT = (b"\xff", b"ID3", b"APETAGEX")


def _tag_size(head) -> int | None:
    """Size of the ID3v2, APEv2 or ID3v1 tag at the start of ``head``;
    0 if none starts there, None if too few bytes to tell."""
    head = bytes(head)
    for magic, needed, size_of in _TAGS:
        if head[:len(magic)] == magic[:len(head)]:
            if len(head) < needed:
                return None
            return size_of(head)
    return 0


class ByteTimeMap:
    """Maps byte offsets of an MP3 file to audio time, built incrementally.

    ``feed()`` the file's bytes in order, in pieces of any size.  Only the
    unparsed tail (at most one frame) is kept; frames are never rescanned.
    Tags (ID3v2 at the front or the end, APEv2, ID3v1) are skipped whole,
    so the bytes inside them (a picture, binary items) are never taken for
    frames, and a Xing/Info/VBRI frame is skipped too (none holds audio).
    Junk between frames is skipped by searching for the next frame header;
    after junk (and at the start) a frame counts only if the next header,
    or a tag, confirms it.  ``audio_end`` is the end of the last frame:
    what follows it (trailing tags) is no audio for a decoder.
    """

    def __init__(self):
        self._buf = bytearray()
        self._base = 0          # file offset of self._buf[0]
        self._skip = 0          # bytes of a tag still to skip
        self._key = None        # (version, rate) of the stream, once known
        self._rate = 0
        self._spf = 0           # samples per frame
        self._synced = False    # the next frame follows the previous one
        self._tag_checked = False
        self.offsets = array("q")  # first byte of each audio frame (read)
        self._ends = array("q")    # end byte of each audio frame
        self._starts = array("q")  # first sample of each audio frame
        self._samples = 0
        self.audio_end = 0      # end byte of the last frame (Xing included)

    # ------------------------------------------------------------- feeding
    def feed(self, data: bytes) -> None:
        """Append the next bytes of the file."""
        self._buf += data
        pos = 0
        while True:
            if self._skip:
                skipped = min(self._skip, len(self._buf) - pos)
                self._skip -= skipped
                pos += skipped
                if self._skip:
                    break
            step = self._step(pos)
            if step == 0:
                break
            pos += step
        del self._buf[:pos]
        self._base += pos

    def _step(self, pos: int) -> int:
        """Bytes consumed at ``pos`` (0: wait for more data)."""
        buf = self._buf
        avail = len(buf) - pos
        if avail < 4:
            return 0
        frame = _parse_header(buf[pos:pos + 4])
        if frame is None or (self._key and frame.key != self._key):
            return self._skip_tag_or_junk(pos)
        if not self._synced:
            end = pos + frame.length
            confirmed = self._confirms(buf[end:end + APE_HEADER], frame)
            if confirmed is None:
                return 0
            if not confirmed:
                return self._resync(pos)
        if avail < frame.length:
            return 0
        self._add(frame, pos)
        return frame.length

    @staticmethod
    def _confirms(after, frame: _Frame) -> bool | None:
        """Do the bytes after an unconfirmed frame make it one: the next
        header of the same stream, or a tag (the frame is the last)?
        None: too few bytes yet to tell."""
        if len(after) < 4:
            return None
        following = _parse_header(after[:4])
        if following is not None:
            return following.key == frame.key
        size = _tag_size(after)
        return None if size is None else bool(size)

    def _skip_tag_or_junk(self, pos: int) -> int:
        """At ``pos`` no frame of the stream starts: a whole tag is skipped,
        anything else is junk up to the next possible header."""
        size = _tag_size(self._buf[pos:pos + APE_HEADER])
        if size is None:
            return 0
        if not size:
            return self._resync(pos)
        self._synced = False
        here = min(size, len(self._buf) - pos)
        self._skip = size - here
        return here

    def _resync(self, pos: int) -> int:
        """Skip junk up to the next byte where a frame or a tag may start
        (ID3v1 is left out: "TAG" is too likely in junk, and it only ends
        a file)."""
        self._synced = False
        starts = [self._buf.find(magic, pos + 1) for magic in _RESYNC_AT]
        found = min((at for at in starts if at >= 0), default=-1)
        if found < 0:  # keep what may be the start of a split magic
            found = max(pos + 1, len(self._buf) - len(b"APETAGEX") + 1)
        return found - pos

    def _add(self, frame: _Frame, pos: int) -> None:
        self._synced = True
        self.audio_end = self._base + pos + frame.length
        if self._key is None:
            self._key, self._rate, self._spf = frame.key, frame.rate, \
                frame.samples
        if not self._tag_checked:
            self._tag_checked = True
            if _is_tag_frame(frame, self._buf, pos):
                return
        start = self._base + pos
        self.offsets.append(start)
        self._ends.append(start + frame.length)
        self._starts.append(self._samples)
        self._samples += frame.samples

    # ------------------------------------------------------------- queries
    @property
    def seconds(self) -> float:
        """Audio duration of the complete frames fed so far."""
        return self._samples / self._rate if self._rate else 0.0

    def time_at(self, byte_offset: int) -> float:
        """Start time of the frame holding ``byte_offset`` (bytes before the
        first audio frame: 0.0; bytes after the last complete frame or in
        junk between frames: the start of the next frame)."""
        i = bisect.bisect_right(self.offsets, byte_offset) - 1
        if i < 0:
            return 0.0
        if byte_offset >= self._ends[i]:
            return (self._starts[i] + self._spf) / self._rate
        return self._starts[i] / self._rate

    def byte_at(self, seconds: float) -> int:
        """Start byte of the frame playing at ``seconds``; the end of the
        last complete frame for times at or past ``self.seconds``."""
        if not self.offsets:
            return 0
        if seconds >= self.seconds:
            return self._ends[-1]
        # + 1e-6 sample: a frame's own start time (starts[i] / rate) must
        # map back to that frame despite floating-point rounding.
        sample = seconds * self._rate + 1e-6
        i = bisect.bisect_right(self._starts, sample) - 1
        return self.offsets[max(i, 0)]


def scan_file(path: str) -> ByteTimeMap:
    """The byte-to-time map of the whole MP3 file at ``path``."""
    frames = ByteTimeMap()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            frames.feed(block)
    return frames


def mp3_duration(path: str) -> float:
    """Duration in seconds of the MP3 file at ``path`` (frame scan)."""
    return scan_file(path).seconds


# --------------------------------------------------------------------- sinks
class Sink:
    """Consumes interleaved signed 16-bit little-endian PCM.

    ``write()`` returns once the audio has been played: it sleeps to keep
    real time unless ``fast``.  After a gap (pause, stall) the real-time
    clock restarts instead of catching up.
    """

    name = "sink"
    block_s = 0.1  # how much audio the player writes at a time
    late_s = 0.05  # behind real time by more than this: restart the clock

    def __init__(self, fast: bool = False):
        self.fast = fast
        self.rate = 0
        self.channels = 0
        self.frames_written = 0
        self._deadline = None

    def open(self, rate: int, channels: int) -> None:
        self.rate, self.channels = rate, channels
        self.frames_written = 0
        self._deadline = None

    def write(self, pcm: bytes) -> None:
        self._output(pcm)
        frames = len(pcm) // (2 * self.channels)
        self.frames_written += frames
        if not self.fast:
            self._keep_real_time(frames)

    def close(self) -> None:
        pass

    def _output(self, pcm: bytes) -> None:
        pass

    def _keep_real_time(self, frames: int) -> None:
        now = time.monotonic()
        if self._deadline is None or now - self._deadline > self.late_s:
            self._deadline = now
        self._deadline += frames / self.rate
        delay = self._deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class NullSink(Sink):
    """Discards the audio, in real time."""

    name = "null sink"


class WavSink(Sink):
    """Writes what is played to a WAV file; real time unless ``fast``."""

    name = "WAV file"

    def __init__(self, path: str, fast: bool = False):
        super().__init__(fast)
        self.path = path
        self._wav = None

    def open(self, rate: int, channels: int) -> None:
        super().open(rate, channels)
        self.close()
        try:
            self._wav = wave.open(self.path, "wb")
        except OSError as exc:
            raise PlayerError(f"cannot write {self.path}: "
                              f"{exc.strerror or exc}") from None
        self._wav.setnchannels(channels)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate)

    def _output(self, pcm: bytes) -> None:
        self._wav.writeframesraw(pcm)

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (ALSA prints its errors there)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class SoundcardSink(Sink):
    """Plays through the sound card with simpleaudio, one block at a time
    (simpleaudio has no streaming interface)."""

    name = "sound card"
    block_s = 0.25  # fewer, longer blocks: fewer gaps between them
    poll_s = 0.002

    def __init__(self):
        super().__init__(fast=False)
        self._audio = None
        self._playing = None

    def open(self, rate: int, channels: int) -> None:
        """Open the device by playing a few ms of silence; PlayerError if
        there is no usable sound card."""
        super().open(rate, channels)
        try:
            import simpleaudio
        except ImportError:
            raise PlayerError("simpleaudio is not installed") from None
        self._audio = simpleaudio
        silence = bytes(2 * channels * max(1, rate // 100))
        try:
            with _quiet_stderr():
                self._play(silence)
        except Exception as exc:  # simpleaudio.SimpleaudioError and kin
            reason = cli.one_line(exc).split(" -- ")[0].rstrip(".")
            raise PlayerError(reason) from None

    def write(self, pcm: bytes) -> None:
        self._play(pcm)
        self.frames_written += len(pcm) // (2 * self.channels)

    def _play(self, pcm: bytes) -> None:
        self._playing = self._audio.play_buffer(pcm, self.channels, 2,
                                                self.rate)
        while self._playing.is_playing():
            time.sleep(self.poll_s)

    def close(self) -> None:
        if self._playing is not None:
            self._playing.stop()
            self._playing = None


def choose_sink(audio_out: str | None = None, fast: bool = False,
                notice=print) -> Sink:
    """A WAV sink for ``audio_out``, else the sound card if it opens, else
    the null sink.  ``fast`` applies to WAV output only.  Reports the choice
    with one ``notice("audio: ...")`` line."""
    if audio_out:
        pace = "as fast as decoding goes" if fast else "real time"
        notice(f"audio: WAV file {audio_out} ({pace})")
        return WavSink(audio_out, fast=fast)
    card = SoundcardSink()
    try:
        card.open(44100, 2)
    except PlayerError as exc:
        notice(f"audio: no sound card ({exc}), using the null sink "
               f"(silent, real time)")
        return NullSink()
    card.close()
    notice("audio: sound card (simpleaudio)")
    return card


# ------------------------------------------------------------------- decoder
class Decoder:
    """The MP3 bytes fed in order, decoded by ffmpeg into PCM.

    Holds the input (``map``, the bytes not yet given to ffmpeg), the
    FIFO in a private folder, and the two threads around ffmpeg: the
    feeder writes the FIFO (audio frames only, at most ``DECODE_AHEAD_S``
    ahead of the playback position), the decoder moves ffmpeg's PCM into
    ``pcm``.  Everything here is guarded by the player's lock; the
    player's ``_stopping`` ends both threads.
    """

    def __init__(self, player: "Player"):
        self.player = player
        self._cond = player._cond
        self.map = ByteTimeMap()
        self.pending = collections.deque()  # fed, not yet in the FIFO
        self.fed = 0             # bytes given to feed()
        self.written = 0         # bytes written into the FIFO
        self.input_done = False
        self.pcm = bytearray()   # decoded, not yet played
        self.format = None       # (rate, channels) once ffmpeg reports it
        self.done = False        # the decoder thread has ended
        self._audio = None       # the FFmpegAudioFile
        self._tmpdir = None
        self._fifo = None

    def feed(self, data: bytes) -> None:
        """The next bytes of the file (called with the lock held)."""
        self.map.feed(data)
        self.fed += len(data)
        self.pending.append(memoryview(bytes(data)))

    def no_frame(self) -> bool:
        """All the input is here and holds no MP3 frame: the prebuffer can
        never fill, and ffmpeg may be slow to give up (or, given some other
        format, play what our time map cannot follow)."""
        return self.input_done and not self.map.offsets

    def take_pcm(self, block: int, frame_bytes: int) -> bytes:
        """Up to ``block`` bytes of the PCM decoded, whole audio frames
        (called with the lock held, at least one frame there)."""
        size = min(len(self.pcm), block)
        size -= size % frame_bytes
        pcm = bytes(self.pcm[:size])
        del self.pcm[:size]
        return pcm

    def make_fifo(self) -> str | None:
        """Make the FIFO ffmpeg reads; the one-line error if it cannot."""
        try:
            self._tmpdir = tempfile.mkdtemp(prefix="p2p-facom-player-")
            self._fifo = os.path.join(self._tmpdir, "input.mp3")
            _LIVE_DIRS.add(self._tmpdir)
            os.mkfifo(self._fifo)
        except (OSError, AttributeError) as exc:  # no mkfifo: Windows
            if self._tmpdir:
                self.remove_fifo()
            return f"cannot make the decoder's pipe: {cli.one_line(exc)}"
        return None

    def remove_fifo(self) -> None:
        shutil.rmtree(self._tmpdir, ignore_errors=True)
        _LIVE_DIRS.discard(self._tmpdir)

    def threads(self) -> tuple:
        """(name, target) of the feeder and decoder threads."""
        return (("feeder", self._run_feeder), ("decoder", self._run_decoder))

    def kill(self) -> None:
        with self._cond:
            audio = self._audio
        proc = getattr(audio, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()  # the decoder thread reaps it (audio.close())

    # ------------------------------------------------------ feeder thread
    def _run_feeder(self) -> None:
        fd = self._open_fifo()
        if fd is None:
            return
        try:
            while (data := self._next_input()) is not None:
                while data:
                    data = data[os.write(fd, data):]
        except OSError:
            pass  # ffmpeg is gone; the decoder thread says why
        finally:
            os.close(fd)

    def _open_fifo(self) -> int | None:
        """Open the FIFO for writing once ffmpeg has opened it for reading
        (a blocking open could wait forever if ffmpeg never starts)."""
        while True:
            try:
                fd = os.open(self._fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    return None
                with self._cond:
                    if self.done:
                        return None
                    self._cond.wait(0.01)
                continue
            os.set_blocking(fd, True)
            return fd

    def _next_input(self) -> memoryview | None:
        """The next bytes for ffmpeg, None when the input ends or on stop.
        Waits while enough audio is already ahead of the position."""
        with self._cond:
            while True:
                if self.player._stopping:
                    return None
                # Only bytes up to the end of the last frame: trailing tags
                # are no audio, and ffmpeg may take bytes in them for
                # frames (and play them, or the encoder's padding).
                allowed = self.map.audio_end - self.written
                if self.pending and allowed > 0 \
                        and self._may_decode_more():
                    data = self.pending.popleft()
                    size = min(len(data), allowed, FEED_SLICE)
                    if size < len(data):
                        self.pending.appendleft(data[size:])
                        data = data[:size]
                    self.written += len(data)
                    return data
                if self.input_done and (not self.pending or allowed <= 0):
                    return None
                self._cond.wait()

    def _may_decode_more(self) -> bool:
        ahead = self.map.time_at(self.written) - self.player._position()
        return ahead < DECODE_AHEAD_S

    # ----------------------------------------------------- decoder thread
    def _run_decoder(self) -> None:
        try:
            self._decode()
        except PlayerError as exc:
            self.player._fail(str(exc))
        except Exception as exc:  # audioread's DecodeError, OSError, ...
            self.player._fail(f"decoder: {cli.one_line(exc)}")
        finally:
            with self._cond:
                self.done = True
                self._cond.notify_all()

    def _decode(self) -> None:
        from audioread import ffdec
        try:
            # Returns once ffmpeg has printed the stream format, i.e. after
            # it has read ~50 frames from the FIFO (or its end).
            audio = ffdec.FFmpegAudioFile(self._fifo)
        except ffdec.NotInstalledError:
            raise PlayerError(FFMPEG_MISSING) from None
        except (ffdec.UnsupportedError, ffdec.CommunicationError):
            raise PlayerError(NO_AUDIO) from None
        try:
            with self._cond:
                self._audio = audio
                if self.player._stopping:
                    return
                if audio.samplerate <= 0 or audio.channels <= 0:
                    raise PlayerError("decoder: no audio stream found")
                self.format = (audio.samplerate, audio.channels)
                self._cond.notify_all()
            self._pump(audio)
        finally:
            audio.close()  # kills ffmpeg if still running, and reaps it
        self._check_exit(audio)

    def _pump(self, audio) -> None:
        """Move ffmpeg's PCM into self.pcm until ffmpeg ends."""
        from audioread.ffdec import ReadTimeoutError
        while True:
            try:
                for block in audio.read_data(timeout=1.0):
                    with self._cond:
                        self.pcm += block
                        self._cond.notify_all()
                return
            except ReadTimeoutError:
                continue  # the download is slow; ffmpeg waits for bytes

    def _check_exit(self, audio) -> None:
        with self._cond:
            if self.player._stopping:
                return
            input_done = self.input_done
        code = audio.proc.returncode
        if code == 0 and input_done:
            return
        # audioread keeps ffmpeg's stderr in its reader thread's queue.
        reader = getattr(audio, "stderr_reader", None)
        output = b"".join(reader.queue.queue) if reader else b""
        lines = output.decode("utf-8", "replace").strip().splitlines()
        why = lines[-1].strip() if lines else f"exit status {code}"
        raise PlayerError(f"decoder: ffmpeg stopped early ({why})")


# -------------------------------------------------------------------- player
class Player:
    """Plays an MP3 file fed in order, possibly while it downloads.

    Thread-safe: ``feed``, ``finish_input``, ``pause``, ``resume`` and
    ``stop`` may be called from any thread and never block for long.
    ``on_played(byte_end, when)`` is called from the playback thread.
    The decoding is the ``Decoder``'s; the player owns the playback
    thread, the sink, the position, start-up and stalls.
    """

    def __init__(self, sink: Sink, prebuffer_s: float = 2.0, on_played=None,
                 clock=time.monotonic):
        self.sink = sink
        self.prebuffer_s = max(0.0, float(prebuffer_s))
        self.on_played = on_played
        self.clock = clock
        self.error: str | None = None
        self._cond = threading.Condition()
        self._done = threading.Event()
        self._decoder = Decoder(self)
        self._frames = 0         # audio frames (samples per channel) played
        self._rate = 0
        self._paused = False
        self._stopping = False
        self._final = None       # "finished" or "stopped"
        self._started_at = None
        self._first_sound = None
        self._stall_since = None
        self._stalls = 0
        self._stall_s = 0.0
        self._reported = 0
        self._threads: list[threading.Thread] = []

    # ---------------------------------------------------------- public API
    def feed(self, data: bytes) -> None:
        """The next contiguous bytes of the MP3 file."""
        if not data:
            return
        with self._cond:
            if self._stopping or self._final:
                return
            if self._decoder.input_done:
                raise ValueError("feed() after finish_input()")
            self._decoder.feed(data)
            self._cond.notify_all()

    def time_map(self, size: int) -> ByteTimeMap | None:
        """The byte-to-time map of what was fed, once ``size`` bytes (the
        whole file) were: it is final then, and no other thread writes
        it.  None before."""
        with self._cond:
            decoder = self._decoder
            return decoder.map if decoder.fed >= size else None

    def finish_input(self) -> None:
        """No more bytes will come."""
        with self._cond:
            self._decoder.input_done = True
            self._cond.notify_all()

    def play_file(self, path: str) -> None:
        """Feed the whole file at ``path``, finish the input and start."""
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 16), b""):
                self.feed(block)
        self.finish_input()
        self.start()

    def start(self) -> None:
        """Start the threads; the first sound comes once ``prebuffer_s``
        seconds of audio have been fed (or the input is finished)."""
        with self._cond:
            if self._threads or self._final:
                return
            self._started_at = self.clock()
            failed = self._decoder.make_fifo()
            if failed:
                self.error = failed
                self._end_without_threads()
                return
            self._threads = [
                threading.Thread(target=target, name=f"player-{name}",
                                 daemon=True)
                for name, target in (*self._decoder.threads(),
                                     ("playback", self._run_playback))]
        for thread in self._threads:
            thread.start()

    def pause(self) -> None:
        with self._cond:
            self._paused = True
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def stop(self) -> None:
        """Stop playback; ends the threads and ffmpeg, removes the FIFO."""
        with self._cond:
            if self._final:
                return
            self._stopping = True
            self._cond.notify_all()
            if not self._threads:
                self._end_without_threads()
                return
        self._decoder.kill()
        if threading.current_thread() not in self._threads:
            self._done.wait(timeout=5.0)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until playback has finished or stopped; False on timeout."""
        return self._done.wait(timeout)

    @property
    def state(self) -> str:
        with self._cond:
            if self._final:
                return self._final
            if self._paused:
                return "paused"
            if self._stall_since is not None:
                return "stalled"
            return "waiting" if self._first_sound is None else "playing"

    @property
    def position_s(self) -> float:
        """Seconds of audio played so far."""
        with self._cond:
            return self._position()

    @property
    def stats(self) -> dict:
        with self._cond:
            stall_s = self._stall_s
            if self._stall_since is not None:
                stall_s += self.clock() - self._stall_since
            startup = None if self._first_sound is None \
                else self._first_sound - self._started_at
            return {"startup_s": startup, "stalls": self._stalls,
                    "stall_s": stall_s, "played_s": self._position()}

    # ------------------------------------------------------------- helpers
    def _position(self) -> float:
        return self._frames / self._rate if self._rate else 0.0

    def _fail(self, message: str) -> None:
        with self._cond:
            if self.error is None and not self._stopping:
                self.error = message
            self._cond.notify_all()

    def _end_without_threads(self) -> None:
        self._final = "stopped"
        self._done.set()

    # ---------------------------------------------------- playback thread
    def _run_playback(self) -> None:
        finished = False
        try:
            if self._wait_until_ready():
                finished = self._play()
        except PlayerError as exc:
            self._fail(str(exc))
        except Exception as exc:  # a failing sink or on_played callback
            self._fail(f"playback: {cli.one_line(exc)}")
        finally:
            self._shut_down(finished)

    def _wait_until_ready(self) -> bool:
        """Wait for the format and the pre-buffer; False if none comes."""
        decoder = self._decoder
        with self._cond:
            while not (self._stopping or decoder.done or
                       decoder.no_frame() or (decoder.format and (
                           decoder.input_done or
                           decoder.map.seconds >= self.prebuffer_s))):
                self._cond.wait()
            if decoder.no_frame() and not self._stopping:
                raise PlayerError(NO_FRAME)
            return bool(decoder.format) and not self._stopping

    def _play(self) -> bool:
        """Play until the end (True) or a stop (False)."""
        rate, channels = self._decoder.format
        frame_bytes = 2 * channels
        block_s = getattr(self.sink, "block_s", Sink.block_s)
        block = max(1, int(rate * block_s)) * frame_bytes
        with self._cond:
            self._rate = rate
        self.sink.open(rate, channels)
        try:
            while (pcm := self._next_block(block, frame_bytes)) is not None:
                self.sink.write(pcm)
                with self._cond:
                    self._frames += len(pcm) // frame_bytes
                    byte_end = self._decoder.map.byte_at(self._position())
                    self._cond.notify_all()  # the feeder may go on
                self._report(byte_end)
        finally:
            self.sink.close()
        with self._cond:
            if not (self._frames or self._stopping or self.error):
                # ffmpeg ended well but decoded nothing: not a song.
                raise PlayerError(NO_AUDIO)
            return not self._stopping and self.error is None

    def _next_block(self, block: int, frame_bytes: int) -> bytes | None:
        """Up to ``block`` bytes of PCM; waits while paused or stalled.
        None at the end of the audio or on stop."""
        decoder = self._decoder
        with self._cond:
            while not self._stopping:
                if self._paused:
                    self._cond.wait()
                elif len(decoder.pcm) >= frame_bytes:
                    pcm = decoder.take_pcm(block, frame_bytes)
                    if self._first_sound is None:
                        self._first_sound = self.clock()
                    return pcm
                elif decoder.done:
                    return None
                elif self._first_sound is not None \
                        and not decoder.input_done:
                    self._stall(frame_bytes)
                else:
                    self._cond.wait()  # start-up or the decoder's tail
            return None

    def _stall(self, frame_bytes: int) -> None:
        """Called with the lock held when the decoder has nothing ready
        and more input is to come: wait for prebuffer_s more seconds."""
        self._stalls += 1
        self._stall_since = self.clock()
        target = self._position() + self.prebuffer_s
        decoder = self._decoder
        while not (self._stopping or decoder.done or (
                len(decoder.pcm) >= frame_bytes and (
                    decoder.input_done or decoder.map.seconds >= target))):
            self._cond.wait()
        self._stall_s += self.clock() - self._stall_since
        self._stall_since = None

    def _report(self, byte_end: int) -> None:
        """Tell on_played that every byte before byte_end has played."""
        self._reported = max(self._reported, byte_end)
        if self.on_played is not None:
            self.on_played(self._reported, self.clock())

    def _shut_down(self, finished: bool) -> None:
        with self._cond:
            self._stopping = True  # feeder and decoder end if still running
            self._cond.notify_all()
        self._decoder.kill()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()
        self._decoder.remove_fifo()
        if finished:
            try:
                self._report(self._decoder.fed)
            except Exception as exc:
                self._fail(f"playback: {cli.one_line(exc)}")
        with self._cond:
            self._final = "finished" if finished else "stopped"
            self._cond.notify_all()
        self._done.set()
