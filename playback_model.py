"""Playback with preview, modelled from arrival times (no audio, no clock).

Given when each chunk of a song arrived and the song's byte-to-time map
(``player.ByteTimeMap``, from ``player.scan_file``), this computes what
``player.Player`` would have done with the same prebuffer rules:

* playback starts once the first ``prebuffer`` seconds of audio have
  arrived in order (or the whole song has);
* it plays in real time; on reaching audio that has not arrived it stalls
  (one stall) and waits until ``prebuffer`` seconds more than the current
  position have arrived in order (or the whole song), then goes on from
  the same sample: nothing is skipped or played twice;
* continuity (CoolStreaming's index): the share of chunks that arrived
  before their deadline, first sound + the chunk's media time.

The player counts audio "arrived" when its complete MP3 frames were fed
in order: the in-order prefix of chunks, read through the time map.
Times are seconds since the request, like the leecher's timeline.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Playback:
    startup_s: float | None   # request to first sound (None: never)
    stalls: int
    stall_s: float
    continuity: float | None  # 0..1
    played: list[float]       # per chunk, when its last byte had played
    end_s: float | None       # when the last audio played


def ready_steps(arrivals: list[float], chunk_size: int,
                time_map) -> list[tuple[float, float]]:
    """(time, seconds of audio arrived in order) after each arrival that
    moved the in-order prefix, in time order.  NaN arrivals never come."""
    count = len(arrivals)
    have = bytearray(count)
    prefix = 0
    steps: list[tuple[float, float]] = []
    duration = time_map.seconds
    for t, index in sorted((t, i) for i, t in enumerate(arrivals)
                           if not math.isnan(t)):
        have[index] = 1
        moved = False
        while prefix < count and have[prefix]:
            prefix += 1
            moved = True
        if moved:
            audio = duration if prefix >= count else \
                time_map.time_at(prefix * chunk_size)
            steps.append((t, min(audio, duration)))
    return steps


def simulate(arrivals: list[float], chunk_size: int, size: int, time_map,
             prebuffer_s: float) -> Playback:
    """The player's start-up, stalls and stall time for these arrivals."""
    duration = time_map.seconds
    steps = ready_steps(arrivals, chunk_size, time_map)
    # segments of playback: (wall start, media start, media end)
    segments: list[tuple[float, float, float]] = []
    stalls, stall_s = 0, 0.0
    k = _first_step(steps, lambda ready: ready >= min(prebuffer_s,
                                                      duration))
    if k is None or duration <= 0:
        return Playback(None, 0, 0.0, None, [math.nan] * len(arrivals),
                        None)
    start, ready = steps[k]
    wall, position = start, 0.0
    while True:
        # play until the audio arrived in order runs out
        while k + 1 < len(steps) and steps[k + 1][0] <= \
                wall + (ready - position):
            k += 1
            ready = steps[k][1]
        run_out = wall + (ready - position)
        segments.append((wall, position, ready))
        if ready >= duration:
            break
        # stall: wait for prebuffer seconds beyond the position
        stalls += 1
        position = ready
        target = min(position + prebuffer_s, duration)
        later = _first_step(steps[k + 1:], lambda r: r >= target)
        if later is None:  # the song never completes: stalled for good
            stall_s += math.inf
            break
        k += 1 + later
        wall, ready = max(steps[k][0], run_out), steps[k][1]
        stall_s += wall - run_out
    played = _played_times(segments, len(arrivals), chunk_size, size,
                           time_map)
    # a chunk that never came has no arrival to judge: no index then
    continuity_index = continuity(arrivals, start, chunk_size, time_map) \
        if all(not math.isnan(t) for t in arrivals) else None
    last = segments[-1]
    return Playback(start, stalls, stall_s, continuity_index, played,
                    last[0] + last[2] - last[1] if ready >= duration
                    else None)


def _first_step(steps, condition) -> int | None:
    for n, (_, ready) in enumerate(steps):
        if condition(ready):
            return n
    return None


def _played_times(segments, count: int, chunk_size: int, size: int,
                  time_map) -> list[float]:
    """When the last byte of each chunk had played: the wall time at which
    the media position passed the end of the frame holding that byte."""
    starts = [media_start for _, media_start, _ in segments]
    played = []
    for index in range(count):
        last_byte = min((index + 1) * chunk_size, size) - 1
        media = _frame_end(time_map, last_byte)
        # a chunk ending where a stall began played before the stall
        n = max(bisect.bisect_left(starts, media) - 1, 0)
        if media > segments[n][2] + 1e-9:  # past the end: never played
            played.append(math.nan)
            continue
        wall, media_start, _ = segments[n]
        played.append(wall + media - media_start)
    return played


def _frame_end(time_map, byte: int) -> float:
    """Media time at which the frame holding ``byte`` has played."""
    offsets = time_map.offsets
    i = bisect.bisect_right(offsets, byte) - 1
    if i + 1 < len(offsets):
        return time_map.time_at(offsets[i + 1])
    return time_map.seconds


def continuity(arrivals, startup: float, chunk_size: int,
               time_map) -> float:
    """CoolStreaming's continuity index: the share of chunks here by their
    deadline, first sound (``startup``) + their media time.  A NaN
    arrival is a chunk that was here before the request (resumed)."""
    on_time = sum(1 for index, t in enumerate(arrivals)
                  if math.isnan(t)
                  or t <= startup + time_map.time_at(index * chunk_size))
    return on_time / len(arrivals) if arrivals else 1.0
