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
import i18n
from i18n import N_, text as tr

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
        self.exit(EXIT_USAGE, tr(N_("{prog}: error: {message} (see -h)"),
                                 prog=self.prog, message=message) + "\n")


def run_main(prog: str, body) -> int:
    """Run ``body()`` and turn our errors and Ctrl-C into exit codes, each
    told on one line in the language in use (``i18n``)."""
    try:
        return body()
    except UsageError as exc:
        say_error(tr(N_("{prog}: error: {message}"), prog=prog, message=exc))
        return EXIT_USAGE
    except RunError as exc:
        say_error(f"{prog}: {exc}")
        return EXIT_FAILED
    except ev.DownloadFailed as exc:
        say_error(f"{prog}: {problem_line(exc.problem, exc.params)}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        say_error(tr(N_("{prog}: interrupted"), prog=prog))
        return 130
    except Exception as exc:  # a bug: one line for users, all for us
        if os.environ.get("P2PFACOM_DEBUG"):
            raise
        say_error(tr(N_("{prog}: unexpected error: {kind}: {message} (set "
                        "P2PFACOM_DEBUG=1 for details)"), prog=prog,
                     kind=type(exc).__name__, message=exc))
        return EXIT_FAILED


def say_error(line: str) -> None:
    print(line, file=sys.stderr)


def problem_line(problem: ev.Problem, params) -> str:
    """An engine's problem code as the end of a terminal line, in the
    language in use: ``i18n.problem_text`` (the one table, the window's
    too), peers' words escaped (``printable``)."""
    safe = {key: printable(value) if isinstance(value, str) else value
            for key, value in params.items()}
    return i18n.clause(i18n.problem_text(problem, safe))


def setup_language(argv) -> str:
    """The language of a terminal program: its ``--lang``, else the
    locale (``LANG=pt_BR.UTF-8``); decided before its parser is built so
    that the option help is translated too, and argparse's own words
    ("usage:", its errors) with it."""
    argparse._ = i18n._  # argparse asks its module's _ for every word
    return i18n.setup(i18n.option_in(sys.argv[1:] if argv is None
                                     else argv))


# argparse's own words that a user meets, for the catalog (argparse
# translates them through ``_``, see setup_language).
ARGPARSE_WORDS = (
    N_("usage: "), N_("positional arguments"), N_("options"),
    N_("show this help message and exit"),
    N_("the following arguments are required: %s"),
    N_("unrecognized arguments: %s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("expected one argument"), N_("invalid %(type)s value: %(value)r"),
    N_("one of the arguments %s is required"),
    N_("not allowed with argument %s"),
    N_("ambiguous option: %(option)s could match %(matches)s"))


def add_lang_option(parser) -> None:
    parser.add_argument("--lang", choices=i18n.LANGUAGES,
                        help=i18n._("language of the messages (default: "
                                    "the locale, LANG)"))


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type's name when it has
    none): for error lines and the window's messages."""
    return " ".join(str(exc).split()) or type(exc).__name__


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
        raise argparse.ArgumentTypeError(
            tr(N_("not a probability: {text}"), text=repr(text)))
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(
            tr(N_("probability must be in [0, 1): {text}"), text=repr(text)))
    return value


def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            tr(N_("not a number: {text}"), text=repr(text)))
    if value < 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(
            tr(N_("must be a finite number >= 0: {text}"), text=repr(text)))
    return value


def at_least_one(text: str) -> int:
    """A whole number >= 1 (runs, seeders, ...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            tr(N_("not a whole number: {text}"), text=repr(text)))
    if value < 1:
        raise argparse.ArgumentTypeError(
            tr(N_("must be at least 1: {text}"), text=repr(text)))
    return value


def positive(text: str) -> float:
    value = non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(
            tr(N_("must be > 0: {text}"), text=repr(text)))
    return value


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            tr(N_("not a port number: {text}"), text=repr(text)))
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            tr(N_("port must be 1-65535: {text}"), text=repr(text)))
    return value


def ip_address(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        if text == "localhost":
            return "127.0.0.1"
        raise argparse.ArgumentTypeError(
            tr(N_("not an IPv4 address: {text}"), text=repr(text)))


def parse_address(text: str, default_port: int = DEFAULT_PORT
                  ) -> tuple[str, int]:
    """'127.0.0.2:9000' or '127.0.0.2' -> ('127.0.0.2', 9000)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host, port = text.strip(), str(default_port)
    try:
        return ip_address(host), port_number(port)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(tr(N_("bad seeder address {text}: {reason}"),
                            text=repr(text), reason=exc)) from None


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
    raise RunError(tr(N_("no free UDP port on {ips}"), ips=", ".join(ips)))


# How long a seeder may take to say it is sharing: it hashes its whole
# folder first, which on a loaded classroom machine takes seconds.
SEEDER_START_S = 60.0


class SeederDidNotStart(Exception):
    """A seeder process ended, or said something else, before its start
    line; ``reason`` is its error without "seeder: error: " ("" when it
    said nothing in time)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def start_seeders(specs, timeout: float = SEEDER_START_S) -> list:
    """Start one ``seeder.py`` process per ``(ip, port, args)`` of
    ``specs`` (all at once: each hashes its folder meanwhile), wait up to
    ``timeout`` for each one's start line, and return ``(process, first
    line)`` pairs.  If one does not start, end them all and raise
    ``SeederDidNotStart``."""
    import subprocess
    procs = []
    try:
        for ip, port, args in specs:
            cmd = [sys.executable, "-u",
                   os.path.join(PROJECT_DIR, "seeder.py"),
                   "-i", ip, "-p", str(port), *args]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT,
                                          text=True))
        started = [(proc, _first_line(proc, timeout)) for proc in procs]
    except BaseException:
        end_processes(procs)
        raise
    import seeder  # seeder imports this module
    for _proc, line in started:
        if not seeder.is_start_line(line):
            end_processes(procs)
            raise SeederDidNotStart(seeder_error(line.strip()))
    return started


def start_seeder(ip: str, port: int, *args: str,
                 timeout: float = SEEDER_START_S):
    """One seeder process: ``(process, first line)``, as start_seeders."""
    return start_seeders([(ip, port, args)], timeout)[0]


def _first_line(proc, timeout: float) -> str:
    import select
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""


def seeder_error(line: str) -> str:
    """A seeder's error line without its "seeder: error: " (in the
    language the seeder was started in: ours)."""
    prefix = tr(N_("{prog}: error: {message}"), prog="seeder", message="")
    return line[len(prefix):] if line.startswith(prefix) else line


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
