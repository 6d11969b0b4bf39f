"""Shared helpers of the attack scripts: an in-memory or sparse chunk
source and a validated-peer harness around ``SeederEngine``.  No socket."""

from __future__ import annotations

import os
import resource
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import protocol as p  # noqa: E402
import seed_engine as se  # noqa: E402,F401 (for the scripts)

ATTACKER = ("127.0.0.66", 4000)


sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from test_attacks import MemorySource as SparseSource  # noqa: E402,F401
# (file name -> size in bytes: chunks of zeros, as a sparse file reads)


def verdict(succeeded: bool, what: str) -> None:
    print(f"ATTACK SUCCEEDS: {what}" if succeeded else "attack failed")


def rss_mb() -> float:
    """Current resident set size in MB (Linux /proc)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def token(engine, addr, now):
    return engine.token_for(addr, now)


def send(engine, msg, addr=ATTACKER, sid=1, now=100.0):
    engine.receive_datagram(p.encode(msg, sid), addr, now)


# ------------------------------------------------------ real sockets
import socket  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import cli  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PYTHON = sys.executable


def start_seeder(ip: str, folder: str, *args: str):
    """A real seeder.py on ``ip`` (loopback only) and a free port; returns
    (Popen, (ip, port)).  Stop it with ``stop(proc)`` (by its PID)."""
    assert ip.startswith("127."), "loopback only"
    port = cli.free_port((ip,))
    proc = subprocess.Popen(
        [PYTHON, "-u", os.path.join(ROOT, "seeder.py"), "-i", ip, "-p",
         str(port), "-d", folder, "-q", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = proc.stdout.readline()
    if "sharing" not in first:
        proc.kill()
        raise RuntimeError(f"seeder did not start: {first}")
    proc.lines = [first]  # read on, so that a full pipe never blocks it
    threading.Thread(target=lambda: proc.lines.extend(proc.stdout),
                     daemon=True).start()
    return proc, (ip, port)


def stop(proc) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Client:
    """A hostile peer's UDP socket on a loopback address."""

    def __init__(self, ip: str, port: int = 0):
        assert ip.startswith("127."), "loopback only"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, port))
        self.sock.settimeout(0.5)
        self.received = 0

    def send(self, msg, addr, sid: int = 0) -> int:
        data = p.encode(msg, sid)
        self.sock.sendto(data, addr)
        return len(data)

    def recv(self, timeout: float = 0.5):
        self.sock.settimeout(timeout)
        try:
            data, addr = self.sock.recvfrom(2048)
        except (socket.timeout, BlockingIOError):
            return None
        self.received += len(data)
        try:
            return p.decode(data)
        except p.ProtocolError:
            return None

    def drain(self) -> int:
        """Read whatever waits; how many datagrams."""
        n = 0
        self.sock.setblocking(False)
        try:
            while True:
                data = self.sock.recv(2048)
                self.received += len(data)
                n += 1
        except (BlockingIOError, InterruptedError):
            pass
        self.sock.setblocking(True)
        return n

    def wait_for(self, kind, seconds: float):
        """The first ``kind`` message within ``seconds``, or None."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            got = self.recv(0.2)
            if got and isinstance(got.message, kind):
                return got.message
        return None

    def token(self, seeder, tries: int = 5) -> int:
        for _ in range(tries):
            self.send(p.Ping(7, 44), seeder)
            pong = self.wait_for(p.Pong, 1.0)
            if pong:
                return pong.token
        raise RuntimeError("no PONG")

    def search(self, seeder, query: str, token: int):
        self.send(p.Search(query, token), seeder)
        result = self.wait_for(p.SearchResult, 2.0)
        if result is None:
            raise RuntimeError("no SEARCH_RESULT")
        return result.files


def sparse_file(path: str, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)


def run_leecher(*args: str, timeout: float = 60):
    return subprocess.run([PYTHON, os.path.join(ROOT, "leecher.py"), *args],
                          capture_output=True, text=True, timeout=timeout)


def process_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1e3
    return 0.0


def timed_get(seeder, out: str) -> tuple[int, float]:
    """``leecher.py get song`` from ``seeder`` into ``out``: (exit code,
    seconds)."""
    t0 = time.monotonic()
    result = run_leecher("get", "song", "--seeders",
                         f"{seeder[0]}:{seeder[1]}", "-o", out, "--force",
                         timeout=60)
    return result.returncode, time.monotonic() - t0
