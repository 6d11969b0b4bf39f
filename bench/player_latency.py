"""Player latency: the timings tests/test_player.py used to assert.

Figures, median and max over --runs runs each (seconds):

* start-up: ``Player.stats["startup_s"]`` with the whole 3 s clip fed at
  20x its bit rate and a 1 s prebuffer (request to first sound; ffmpeg
  must read ~50 frames before it reports the format).  Target < 1.0 s.
* stop: wall time of ``Player.stop()`` before ffmpeg has reported the
  format, mid-song and while paused (threads joined, ffmpeg reaped, FIFO
  removed).  Target < 1.0 s.
* duration: wall time of ``mp3_duration`` on the bundled 20 s sample
  (frame scan, stdlib only).  Target < 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import common as c
import player
import sample_song

BYTES_PER_S = 128000 // 8  # the clip is 128 kbit/s CBR
FEED_PIECE = 1400          # bytes per feed(), as a chunk of the protocol
STARTUP_TARGET_S = 1.0
STOP_TARGET_S = 1.0
DURATION_TARGET_S = 0.5
WAIT_LIMIT_S = 10.0        # every wait is bounded


def read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def startup_once(data: bytes) -> float | None:
    song = player.Player(player.NullSink(), prebuffer_s=1.0)
    song.start()
    try:
        for at in range(0, len(data), FEED_PIECE):
            song.feed(data[at:at + FEED_PIECE])
            time.sleep(FEED_PIECE / (20 * BYTES_PER_S))
            if song.stats["startup_s"] is not None:
                break
        song.finish_input()
        deadline = time.monotonic() + WAIT_LIMIT_S
        while song.stats["startup_s"] is None and not song.wait(0.01) \
                and time.monotonic() < deadline:
            pass
        return song.stats["startup_s"]
    finally:
        song.stop()


def _wait_for(predicate) -> bool:
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def stop_once(data: bytes, moment: str) -> float | None:
    song = player.Player(player.NullSink(), prebuffer_s=0.5)
    song.start()
    if moment == "before ffmpeg starts":
        song.feed(data[:3000])  # too little for ffmpeg to report a format
        time.sleep(0.3)
    else:
        song.feed(data)
        if not _wait_for(lambda: song.position_s > 0.3):
            song.stop()
            return None
        if moment == "while paused":
            song.pause()
    began = time.monotonic()
    song.stop()
    elapsed = time.monotonic() - began
    ended = song.wait(0) and not [t for t in threading.enumerate()
                                  if t.name.startswith("player-")]
    return elapsed if ended else None


def duration_once(path: str) -> float:
    began = time.monotonic()
    player.mp3_duration(path)
    return time.monotonic() - began


def row(label: str, values: list, target: float) -> str:
    done = [v for v in values if v is not None]
    if not done:
        return f"{label:<28} {'-':>8} {'-':>8}   (no run finished)"
    worst = max(done)
    verdict = "met" if worst < target else "MISSED"
    failed = len(values) - len(done)
    extra = f", {failed} runs did not finish" if failed else ""
    return (f"{label:<28} {c.median(done):8.3f} {worst:8.3f}   target < "
            f"{target:g} s: {verdict}{extra}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    c.header("player latency: start-up, stop, duration scan", __file__,
             sys.argv[1:] if argv is None else argv)
    try:
        player.check_ffmpeg()
    except player.PlayerError as exc:
        print(f"player_latency: {exc}", file=sys.stderr)
        return 1
    with c.temp_dir("player") as tmp:
        clip = sample_song.make_mp3(os.path.join(tmp, "clip.mp3"),
                                    seconds=3)
        data = read(clip)
        startups = [startup_once(data) for _ in range(args.runs)]
        moments = ("before ffmpeg starts", "mid-song", "while paused")
        stops = {m: [stop_once(data, m) for _ in range(args.runs)]
                 for m in moments}
    scans = [duration_once(sample_song.SAMPLE_PATH)
             for _ in range(args.runs)]
    print(f"{'seconds':<28} {'median':>8} {'max':>8}   ({args.runs} runs)")
    print(row("start-up (fed at 20x)", startups, STARTUP_TARGET_S))
    for moment in moments:
        print(row(f"stop {moment}", stops[moment], STOP_TARGET_S))
    print(row("mp3_duration of the sample", scans, DURATION_TARGET_S))
    return 0


if __name__ == "__main__":
    sys.exit(main())
