"""Shared fixtures: real seeders on loopback addresses, sample songs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# Tests read the programs' English output: whatever the locale of the
# machine running them (tests/test_terminal_language.py sets its own).
os.environ["LC_ALL"] = "C.UTF-8"
for _variable in ("LANGUAGE", "LC_MESSAGES", "LANG"):
    os.environ.pop(_variable, None)
PYTHON = sys.executable
SAMPLE = os.path.join(ROOT, "music", "facom-sample.mp3")

from cli import free_port  # noqa: E402  (re-exported for the tests)
from cli import SeederDidNotStart, start_seeder  # noqa: E402


class SeederProcess:
    def __init__(self, ip: str, port: int, *args: str):
        self.address = f"{ip}:{port}"
        try:
            self.proc, first = start_seeder(ip, port, *args)
        except SeederDidNotStart as failed:
            raise RuntimeError(f"seeder did not start: {failed}") from None
        self.output = [first]

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)
        # read(), not communicate(): the lines the first readline() pulled
        # into the pipe's buffer would be lost to communicate's raw reads.
        self.output.append(self.proc.stdout.read())
        return "".join(self.output)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def seeders():
    """Start seeders: ``seeders(("127.0.0.1", "-m", "random"), ...)``."""
    started: list[SeederProcess] = []

    def start(*specs, port: int | None = None):
        port = port or free_port()
        group = [SeederProcess(spec[0], port, *spec[1:]) for spec in specs]
        started.extend(group)
        return group
    yield start
    for seeder in started:
        if seeder.proc.poll() is None:
            seeder.proc.kill()
            seeder.proc.wait(timeout=10)


def run_leecher(*args: str,
                timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, os.path.join(ROOT, "leecher.py"), *args],
                          capture_output=True, text=True, timeout=timeout)


def sha256(path: str) -> str:
    from cli import sha256_file
    return sha256_file(path).hex()


@pytest.fixture(scope="session")
def song_dir(tmp_path_factory):
    """A music folder with the sample song and a 6 s test song."""
    folder = tmp_path_factory.mktemp("music")
    shutil.copy(SAMPLE, folder / "facom-sample.mp3")
    import sample_song
    sample_song.make_mp3(str(folder / "short-tune.mp3"), seconds=6)
    return folder


def skip_outside_ci(reason: str) -> None:
    """Skip a test whose tool is missing here; in CI, where ./setup.sh
    test installs every tool, that is a failure, not a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run this test)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def display():
    """An Xvfb server of our own; DISPLAY points at it meanwhile.  Skips
    only when the Xvfb program is missing, and never in CI."""
    import select
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        skip_outside_ci("Xvfb is not installed")
    read, write = os.pipe()
    proc = subprocess.Popen(
        [xvfb, "-displayfd", str(write), "-screen", "0", "1280x800x24",
         "-dpi", "96", "-nolisten", "tcp"], pass_fds=(write,),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    number = b""
    while not number.endswith(b"\n"):
        if not select.select([read], [], [], 10)[0]:
            proc.kill()
            pytest.fail("Xvfb did not start")
        number += os.read(read, 16) or b"\n"
    os.close(read)
    saved = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = ":" + number.decode().strip()
    yield os.environ["DISPLAY"]
    if saved is None:
        del os.environ["DISPLAY"]
    else:
        os.environ["DISPLAY"] = saved
    proc.terminate()
    proc.wait(timeout=10)
