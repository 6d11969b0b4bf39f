"""GUI latency: the Tk event loop's lag while a download runs at full speed.

Starts its own Xvfb (a free display number) and one seeder on 127.0.0.1
with no emulated limits, then, in a child process on that display, opens
the leecher's window (gui.App, null audio sink), selects the song and
downloads it --reps times through the window, as a user would with the
Download button.  gui.App records, for every poll (POLL_MS), how long
after it was due the poll ended, its own work included (``loop_lag_ms``):
what a click made when the poll was due waited at least.  The samples
taken while a download runs are pooled and their percentiles printed.
Target: p99 < 50 ms.

The song is a real MP3 (the sample song's frames repeated up to --size-mb),
so that preview (on by default, as in the window) really decodes while the
download runs; ``--no-preview`` measures the download alone.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import select
import shutil
import subprocess
import sys
import time

import common as c


# --------------------------------------------------------------- child
def child(args) -> int:
    """Runs on the Xvfb display: the window, driven from its own loop."""
    import tkinter as tk

    import gui
    import player
    root = tk.Tk()
    app = gui.App(root, gui.Settings(
        [_address(args.seeder)], output=args.out,
        song=args.song, preview=not args.no_preview,
        sink=player.NullSink()))
    result = {"lags": [], "elapsed": [], "errors": []}
    state = {"rep": 0, "started": None, "first": 0}
    deadline = time.monotonic() + args.timeout

    def step():
        now = time.monotonic()
        if now > deadline:
            result["errors"].append(f"timed out; status: {app.status_text()}")
            root.quit()
            return
        if state["started"] is None:
            if app.selected_song() is not None and not app.downloading:
                state["first"] = len(app.loop_lag_ms)
                state["started"] = now
                app.start_download()
        elif not app.downloading:
            result["lags"] += app.loop_lag_ms[state["first"]:]
            result["elapsed"].append(now - state["started"])
            if not app.final_path:
                result["errors"].append(app.status_text())
            else:  # or the next Download finds it verified and plays it
                os.remove(app.final_path)
            state["rep"] += 1
            state["started"] = None
            if state["rep"] >= args.reps or result["errors"]:
                root.quit()
                return
        root.after(20, step)
    root.after(100, step)
    try:
        root.mainloop()
    finally:
        app.close()
    print(json.dumps(result))
    return 0


def _address(text: str):
    host, port = text.rsplit(":", 1)
    return (c.check_loopback(host), int(port))


# -------------------------------------------------------------- parent
def start_xvfb(procs: c.Procs) -> str | None:
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        return None
    read, write = os.pipe()
    proc = procs.add(subprocess.Popen(
        [xvfb, "-displayfd", str(write), "-screen", "0", "1280x800x24",
         "-nolisten", "tcp"], pass_fds=(write,),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    os.close(write)
    number = b""
    while not number.endswith(b"\n"):
        if not select.select([read], [], [], 10)[0]:
            proc.kill()
            os.close(read)
            return None
        number += os.read(read, 16) or b"\n"
    os.close(read)
    return ":" + number.decode().strip()


def long_mp3(path: str, size: int, tmp: str) -> str:
    """The sample song's frames (no tags) repeated up to ``size`` bytes:
    a valid MP3 that ffmpeg decodes from end to end."""
    import sample_song
    piece = sample_song.make_mp3(os.path.join(tmp, "piece.mp3"), seconds=20)
    with open(piece, "rb") as handle:
        frames = handle.read()
    with open(path, "wb") as out:
        for _ in range(max(1, size // len(frames))):
            out.write(frames)
    return path


def percentile(values: list, q: float):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered))
                       - 1)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=50.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-preview", action="store_true")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--profile", metavar="FILE",
                        help="record the window's process with py-spy "
                             "(raw stacks, per thread) into FILE")
    parser.add_argument("--child", action="store_true",
                        help=argparse.SUPPRESS)
    parser.add_argument("--seeder", help=argparse.SUPPRESS)
    parser.add_argument("--song", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    c.header("GUI latency: Tk event-loop lag during a full-speed download",
             __file__, sys.argv[1:] if argv is None else argv)
    if not os.path.exists(os.path.join(c.ROOT, "gui.py")):
        print("gui.py is not there yet: nothing to measure")
        return 1
    with c.temp_dir("gui") as tmp, c.Procs() as procs:
        display = start_xvfb(procs)
        if display is None:
            print("Xvfb cannot run (apt-get install xvfb): nothing measured")
            return 1
        share = os.path.join(tmp, "share")
        out = os.path.join(tmp, "out")
        os.makedirs(share)
        os.makedirs(out)
        name = "gui-bench.mp3"
        long_mp3(os.path.join(share, name), int(args.size_mb * 1e6), tmp)
        size = os.path.getsize(os.path.join(share, name))
        seeder = c.Seeder(procs, "127.0.0.1", c.free_port(("127.0.0.1",)),
                          share)
        env = dict(os.environ, DISPLAY=display)
        cmd = [c.PYTHON, os.path.abspath(__file__), "--child", "--seeder",
               seeder.address, "--song", name, "--out", out, "--reps",
               str(args.reps), "--timeout", str(args.timeout)]
        if args.no_preview:
            cmd.append("--no-preview")
        if args.profile:
            import profile as spy_tools  # bench/profile.py
            spy = spy_tools.py_spy()
            if spy is None:
                print("py-spy not found: .venv/bin/pip install py-spy")
                return 1
            cmd = [spy, "record", "-r", "200", "-f", "raw", "--threads",
                   "--function", "-o", os.path.abspath(args.profile),
                   "--", *cmd]
        run = subprocess.run(cmd, env=env, cwd=c.ROOT, capture_output=True,
                             text=True, timeout=args.timeout + 60)
        seeder.stop()
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("{")]
    if run.returncode != 0 or not lines:
        print(f"the window failed: {(run.stderr or run.stdout)[-600:]}")
        return 1
    result = json.loads(lines[-1])
    lags = result["lags"]
    print(f"file {size / 1e6:.0f} MB (an MP3), 1 seeder, no emulated "
          f"limits, preview {'off' if args.no_preview else 'on'} (null "
          f"sink), {len(result['elapsed'])} downloads through the window")
    if result["errors"]:
        print(f"errors: {result['errors']}")
    print(f"download time (Download pressed to done, as the window saw "
          f"it): median {c.fmt(c.median(result['elapsed']))} s = "
          f"{c.fmt(c.mbps(size, c.median(result['elapsed'])), '.1f')} MB/s")
    p99 = percentile(lags, 99)
    print(f"event-loop lag, {len(lags)} polls during the downloads: p50 "
          f"{c.fmt(percentile(lags, 50), '.1f')} ms, p90 "
          f"{c.fmt(percentile(lags, 90), '.1f')} ms, p99 "
          f"{c.fmt(p99, '.1f')} ms, max "
          f"{c.fmt(max(lags, default=None), '.1f')}"
          f" ms")
    if p99 is not None:
        print(f"target p99 < 50 ms: {'met' if p99 < 50 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
