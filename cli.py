"""Command-line plumbing shared by the seeder, the leecher and the runner.

Every bad input ends in one clear line on stderr and exit code 2
(``UsageError``); a run that could not finish ends with exit code 1
(``RunError``).  No traceback reaches a user.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import os
import random
import socket
import sys
import unicodedata

import events as ev

PROJECT_DIR = os.path.dirname(os.path.abspath(__file__))
MUSIC_DIR = os.path.join(PROJECT_DIR, "music")
DEFAULT_PORT = 9000
CLASSROOM_SEEDERS = [("127.0.0.1", DEFAULT_PORT), ("127.0.0.2", DEFAULT_PORT),
                     ("127.0.0.3", DEFAULT_PORT)]
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the user: exit code 2."""


class RunError(Exception):
    """The run could not finish: exit code 1."""


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see -h)\n")


def run_main(prog: str, body) -> int:
    """Run ``body()`` and turn our errors and Ctrl-C into exit codes."""
    try:
        return body()
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ev.DownloadFailed as exc:
        print(f"{prog}: {describe(exc.problem, exc.params)}",
              file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line for users, all for us
        if os.environ.get("P2PFACOM_DEBUG"):
            raise
        print(f"{prog}: unexpected error: {type(exc).__name__}: {exc} "
              f"(set P2PFACOM_DEBUG=1 for details)", file=sys.stderr)
        return EXIT_FAILED


# English for the engines' problem codes (events.Problem); peers' words
# in them are escaped (``printable``).
PROBLEM_TEXT = {
    ev.Problem.NO_SEEDER_ALIVE: "no seeder with this song is alive",
    ev.Problem.ALL_SEEDERS_GONE: "all seeders with this song are gone "
                                 "(partial file kept)",
    ev.Problem.NO_PROGRESS: "no progress for {seconds:.0f} s (partial file "
                            "kept)",
    ev.Problem.HASH_MISMATCH: "SHA-256 of {name} does not match the "
                              "seeders' (partial file kept)",
    ev.Problem.STOPPED: "stopped (partial file kept)",
    ev.Problem.CANNOT_WRITE: "cannot write {path}: {reason}",
    ev.Problem.LOCKED: "another leecher is already writing {path}",
    ev.Problem.REFUSED: "{peer} refused: {text}",
    ev.Problem.TOO_BIG: "{name}: {size} bytes is more than this leecher "
                        "can hold",
}


def describe(problem: ev.Problem, params) -> str:
    """One line of English for a problem code and its parameters."""
    safe = {key: printable(value) if isinstance(value, str) else value
            for key, value in params.items()}
    try:
        return PROBLEM_TEXT[problem].format(**safe)
    except (KeyError, ValueError, IndexError):
        return f"{problem.value} {safe}"


def printable(text: str) -> str:
    """``text`` from the network or the disk, safe to print on a terminal:
    control characters (escape codes, newlines) and unpaired surrogates
    are shown escaped, never obeyed."""
    out = []
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            out.append(f"\\x{ord(char):02x}" if ord(char) < 0x100
                       else f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


# ------------------------------------------------------- argument types
def probability(text: str) -> float:
    """A probability given as 0.1 or as a percentage such as 10%."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a probability: {text!r}")
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(
            f"probability must be in [0, 1): {text!r}")
    return value


def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    if value < 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0: "
                                         f"{text!r}")
    return value


def at_least_one(text: str) -> int:
    """A whole number >= 1 (runs, seeders, ...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def positive(text: str) -> float:
    value = non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535: {text!r}")
    return value


def ip_address(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        if text == "localhost":
            return "127.0.0.1"
        raise argparse.ArgumentTypeError(f"not an IPv4 address: {text!r}")


def parse_address(text: str, default_port: int = DEFAULT_PORT
                  ) -> tuple[str, int]:
    """'127.0.0.2:9000' or '127.0.0.2' -> ('127.0.0.2', 9000)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host, port = text.strip(), str(default_port)
    try:
        return ip_address(host), port_number(port)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"bad seeder address {text!r}: {exc}") from None


def format_address(addr: tuple[str, int]) -> str:
    return f"{addr[0]}:{addr[1]}"


def sha256_file(path: str) -> bytes:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()


# ------------------------------------------------- loopback test plumbing
def free_port(ips=("127.0.0.1", "127.0.0.2", "127.0.0.3")) -> int:
    """A UDP port free on every one of ``ips`` at once (the demo, the
    experiment, the tests and the benchmarks start seeders on several
    loopback addresses with one port)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randint(20000, 60000)
        socks = []
        try:
            for ip in ips:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind((ip, port))
            return port
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RunError(f"no free UDP port on {', '.join(ips)}")


def end_processes(procs, grace_s: float = 5.0) -> list[str]:
    """Terminate every process still running, give them ``grace_s`` to
    finish (a seeder prints its summary), then kill.  Returns what each
    printed on a pipe ("" for none)."""
    import subprocess  # only the runner and the tools start processes
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    outputs = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        outputs.append(out.decode(errors="replace")
                       if isinstance(out, bytes) else out or "")
    return outputs
