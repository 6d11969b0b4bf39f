"""Make the bundled sample song without the internet.

A short melody is synthesized with the standard library and encoded to MP3
by ffmpeg.  ``music/facom-sample.mp3`` ships with the project; this module
recreates it (``python3 sample_song.py``) and makes test songs of other
lengths, bit rates and encodings (VBR, ID3v2 tags).
"""

from __future__ import annotations

import argparse
import array
import math
import os
import shutil
import subprocess
import sys
import tempfile
import wave

import cli

RATE = 44100
SAMPLE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "music", "facom-sample.mp3")
# (MIDI note, beats) of a simple tune; 0 is a rest.
MELODY = [(72, 1), (74, 1), (76, 1), (72, 1), (76, 1), (77, 1), (79, 2),
          (79, 1), (77, 1), (76, 1), (74, 1), (72, 2), (67, 2),
          (69, 1), (71, 1), (72, 1), (74, 1), (76, 2), (74, 1), (72, 1),
          (71, 1), (69, 1), (67, 2), (0, 1), (67, 1), (72, 4)]
BASS = [48, 53, 55, 48, 45, 50, 43, 48]


def _freq(note: int) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def synthesize(seconds: float, bpm: float = 132.0) -> array.array:
    """Stereo 16-bit samples of the melody over a bass line, looped."""
    beat = 60.0 / bpm
    total = int(seconds * RATE)
    samples = array.array("h", bytes(4 * total))
    notes, t = [], 0.0
    while t < seconds:
        for note, beats in MELODY:
            notes.append((t, beats * beat, note))
            t += beats * beat
    for n, (start, length, note) in enumerate(notes):
        bass = BASS[(n // 4) % len(BASS)]
        _render(samples, start, length, note, bass, total)
    return samples


def _render(samples, start, length, note, bass, total):
    first = int(start * RATE)
    last = min(total, int((start + length) * RATE))
    lead = _freq(note) if note else 0.0
    low = _freq(bass)
    for i in range(first, last):
        t = (i - first) / RATE
        envelope = min(1.0, t * 40) * math.exp(-2.5 * t)
        value = 0.0
        if lead:
            value += 0.45 * envelope * math.sin(2 * math.pi * lead * t)
        value += 0.25 * math.sin(2 * math.pi * low * t) * min(1.0, t * 20)
        left = int(9000 * value * 1.1)
        right = int(9000 * value * 0.9)
        samples[2 * i] = left
        samples[2 * i + 1] = right


def make_mp3(path: str, seconds: float = 20.0, bitrate: str = "128k",
             vbr: bool = False, id3_title: str | None = None) -> str:
    """Write an MP3 of the melody to ``path`` (needs ffmpeg)."""
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg not found: install it (apt-get install "
                           "ffmpeg)")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = os.path.join(tmp, "song.wav")
        with wave.open(wav_path, "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(RATE)
            out.writeframes(synthesize(seconds).tobytes())
        quality = ["-q:a", "4"] if vbr else ["-b:a", bitrate]
        tags = ["-metadata", f"title={id3_title}", "-id3v2_version", "3"] \
            if id3_title else ["-write_xing", "0", "-id3v2_version", "0"]
        cmd = ["ffmpeg", "-loglevel", "error", "-y", "-i", wav_path,
               "-codec:a", "libmp3lame", *quality, *tags, path]
        subprocess.run(cmd, check=True)
    return path


def ensure_sample(folder: str) -> None:
    """The bundled song, made again (offline) if someone deleted it;
    cli.RunError (one line) when it cannot be made."""
    if folder == cli.MUSIC_DIR and not os.path.exists(SAMPLE_PATH):
        print("making the sample song ...")
        try:
            make_mp3(SAMPLE_PATH, id3_title="P2P FACOM sample")
        except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
            raise cli.RunError(f"cannot make the sample song: {exc}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=SAMPLE_PATH)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--vbr", action="store_true")
    args = parser.parse_args(argv)
    try:
        make_mp3(args.output, args.seconds, vbr=args.vbr,
                 id3_title="P2P FACOM sample")
    except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
        print(f"sample_song: {exc}", file=sys.stderr)
        return 1
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
