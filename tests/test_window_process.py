"""The leecher's window as a user starts it: `python3 p2p_facom.py -t
leecher` in its own process, on a real X server (Xvfb), driven with the
mouse and the keyboard through xdotool, against three real seeders.

No Tk object of the test's own: what is checked is what a user gets — a
window that finds the song, downloads it on a double-click, plays it, and
closes with Ctrl+Q.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import PYTHON, ROOT, sha256

ARTIFACTS = os.environ.get("P2P_ARTIFACTS") or os.path.join(
    tempfile.gettempdir(), "p2p-facom-artifacts")  # never the repository
SONG = "short-tune.mp3"
# Where the first row of the songs table is, in window coordinates, with
# the window at its natural size (the screenshot in ARTIFACTS shows
# it): the left column, below the search box.  Fonts move it by a few
# pixels, so the clicks try a few heights around it.
FIRST_SONG_ROW_X, FIRST_SONG_ROW_YS = 90, (318, 312, 324, 306, 330)


def xdotool(*args: str) -> str:
    result = subprocess.run(["xdotool", *args], capture_output=True,
                            text=True, timeout=20)
    return result.stdout.strip()


def wait_for(condition, timeout: float, what: str, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the window exited ({proc.returncode}) "
                                 f"before {what}: {proc.stderr.read()}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def window_process(*args: str):
    """The window in its own process; killed if the test did not close
    it, and it must not have printed a traceback."""
    window = subprocess.Popen([PYTHON, *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        yield window
    finally:
        if window.poll() is None:
            window.kill()
            window.wait(timeout=10)
    assert "Traceback" not in window.stderr.read()


def close_with_ctrl_q(window, *target: str) -> None:
    xdotool("key", *target, "ctrl+q")
    assert window.wait(timeout=15) == 0, window.stderr.read()


@pytest.fixture
def one_song(tmp_path, song_dir):
    folder = tmp_path / "music"
    folder.mkdir()
    shutil.copy(song_dir / SONG, folder / SONG)
    return folder


def test_window_downloads_on_double_click_and_closes_with_ctrl_q(
        display, seeders, one_song, tmp_path):
    if shutil.which("xdotool") is None:
        pytest.fail("xdotool is missing: ./setup.sh test installs it")
    common = ("-d", str(one_song), "--rate", "64", "--loss", "0.05",
              "--rng-seed", "3", "-q")
    group = seeders(("127.0.0.1", "-m", "sequential", *common),
                    ("127.0.0.2", "-m", "random", *common),
                    ("127.0.0.3", "-m", "semi-random", *common))
    out = tmp_path / "downloads"
    with window_process(
            os.path.join(ROOT, "p2p_facom.py"), "-t", "leecher", "--lang",
            "en", "-o", str(out), "--seeders",
            ",".join(s.address for s in group)) as window:
        window_id = wait_for(
            lambda: xdotool("search", "--name", "P2P FACOM").split()[:1],
            30, "the window", window)[0]
        part = out / (SONG + ".part")

        heights = iter(FIRST_SONG_ROW_YS * 20)

        def download_started():
            if part.exists() or (out / SONG).exists():
                return True
            # The songs table fills once the seeders answer; until then
            # a double-click lands on an empty row and does nothing.
            xdotool("mousemove", "--window", window_id,
                    str(FIRST_SONG_ROW_X), str(next(heights)), "click",
                    "--repeat", "2", "--delay", "80", "1")
            return False
        wait_for(download_started, 30, "a double-click to start the "
                 "download", window)
        wait_for(lambda: (out / SONG).exists(), 60,
                 "the verified song", window)
        assert sha256(str(out / SONG)) == sha256(str(one_song / SONG))
        assert not part.exists()
        time.sleep(1.0)  # let the plot and the statistics panel refresh
        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "window-process.png")
        subprocess.run(["import", "-window", "root", "-crop",
                        "1100x760+0+0", shot], check=True, timeout=30)
        assert os.path.getsize(shot) > 20_000  # a drawn window, not black

        close_with_ctrl_q(window, "--window", window_id)


# Where the buttons are on a 1280x800 screen (no window manager: the
# window at 0,0; screen coordinates, measured from the laid-out window).
CLICKS = {"sequential": (279, 528), "random": (105, 550),
          "semi-random": (289, 550), "download": (88, 625),
          "again": (235, 625), "runs_tab": (645, 53), "export": (647, 233)}
FIRST_SONG_ROW_SCREEN = (90, 317)


def test_three_orders_compared_and_exported_in_nine_clicks(
        display, seeders, one_song, tmp_path):
    """The lesson: the same song once per order, the runs compared in one
    view and exported (PNG, JSON, CSV) — 9 clicks, no file manager."""
    if shutil.which("xdotool") is None:
        pytest.fail("xdotool is missing: ./setup.sh test installs it")
    common = ("-d", str(one_song), "--rate", "96", "-q")
    group = seeders(("127.0.0.1", *common), ("127.0.0.2", *common))
    out = tmp_path / "downloads"
    clicks = []

    def click(where) -> None:
        clicks.append(where)
        xdotool("mousemove", *map(str, where), "click", "1")
        time.sleep(0.3)
    with window_process(os.path.join(ROOT, "gui.py"), "--lang", "en",
                        "-o", str(out), "--seeders",
                        ",".join(s.address for s in group)) as window:
        wait_for(lambda: xdotool("search", "--name", "P2P FACOM"), 30,
                 "the window", window)
        time.sleep(3.0)  # the seeders answer, the songs are listed
        click(FIRST_SONG_ROW_SCREEN)
        song = out / SONG
        for order, button in (("sequential", "download"),
                              ("random", "again"),
                              ("semi-random", "again")):
            before = song.stat().st_mtime_ns if song.exists() else None
            click(CLICKS[order])
            click(CLICKS[button])
            wait_for(lambda: song.exists() and
                     song.stat().st_mtime_ns != before
                     and not (out / (SONG + ".part")).exists(), 60,
                     f"the {order} run", window)
            time.sleep(1.0)  # the run's statistics reach the window
        click(CLICKS["runs_tab"])
        time.sleep(1.0)
        click(CLICKS["export"])
        stem = "short-tune-sequential-random-semi-random-compare"
        wait_for(lambda: all((out / f"{stem}{ext}").exists()
                             for ext in (".png", ".json", ".csv")), 20,
                 "the exports", window)
        assert len(clicks) <= 10
        rows = (out / f"{stem}.csv").read_text().splitlines()
        assert len(rows) == 4  # a header, three runs
        assert [r.split(",")[2] for r in rows[1:]] == \
            ["sequential", "random", "semi-random"]
        assert sha256(str(song)) == sha256(str(one_song / SONG))
        os.makedirs(ARTIFACTS, exist_ok=True)
        subprocess.run(["import", "-window", "root", os.path.join(
            ARTIFACTS, "window-three-runs.png")], check=True, timeout=30)
        close_with_ctrl_q(window)


def test_the_demo_downloads_by_itself_and_stops_its_seeders(
        display, one_song, tmp_path):
    """p2p_facom.py demo with a screen (what the launcher runs): three
    seeders, and the window downloads the song with no click at all;
    Ctrl+Q closes it and stops the seeders."""
    if shutil.which("xdotool") is None:
        pytest.fail("xdotool is missing: ./setup.sh test installs it")
    from conftest import free_port
    port = free_port()
    out = tmp_path / "downloads"
    with window_process(
            os.path.join(ROOT, "p2p_facom.py"), "demo", "--window", "-p",
            str(port), "-d", str(one_song), "--song", SONG, "-o", str(out),
            "--lang", "en") as window:
        window_id = wait_for(
            lambda: xdotool("search", "--name", "P2P FACOM").split()[:1],
            30, "the window", window)[0]
        wait_for(lambda: (out / (SONG + ".part")).exists()
                 or (out / SONG).exists(), 30,
                 "the download to start by itself", window)
        wait_for(lambda: (out / SONG).exists(), 60, "the verified song",
                 window)
        assert sha256(str(out / SONG)) == sha256(str(one_song / SONG))
        time.sleep(1.0)  # the plot and the note, drawn
        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "window-demo.png")
        subprocess.run(["import", "-window", "root", "-crop",
                        "1100x760+0+0", shot], check=True, timeout=30)
        assert os.path.getsize(shot) > 20_000
        close_with_ctrl_q(window, "--window", window_id)
        said = window.stdout.read()
    assert said.count("sharing") == 3
    assert said.count("stopped: 1 sessions") == 3  # one each, all ended
    check = subprocess.run(["pgrep", "-f", f"seeder.py.*-p {port}"],
                           capture_output=True)
    assert check.returncode == 1  # no seeder left behind
