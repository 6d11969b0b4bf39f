"""Helpers shared by the benchmark scripts in bench/.

Every script prints the machine line (CPU, cores, Python, date) and the
command that reproduces its figures.  Processes are started on loopback
addresses only (127.0.0.0/8), every wait is bounded, and every process a
script starts is ended by that script (``Procs``).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, ROOT)
import cli  # noqa: E402

PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------- reporting
def machine_line() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    now = datetime.datetime.now(datetime.timezone.utc)
    return (f"machine: {model}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, {platform.system()} "
            f"{platform.release()}, {now:%Y-%m-%d %H:%M} UTC")


def header(title: str, script: str, argv: list[str]) -> None:
    """Print what is measured, the machine and the command to repeat it.
    Also makes SIGTERM unwind like Ctrl-C, so that ``Procs`` still ends
    every process the script started."""
    signal.signal(signal.SIGTERM, _interrupt)
    rel = os.path.relpath(os.path.abspath(script), ROOT)
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", rel,
                                                 *argv])
    print(f"# {title}")
    print(machine_line())
    print(f"reproduce (from the project folder): {command}")
    print(flush=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, spec: str = ".2f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def mbps(nbytes: float, seconds: float | None) -> float | None:
    """Megabytes (10^6) per second."""
    return nbytes / seconds / 1e6 if seconds else None


# ------------------------------------------------------------ test data
def random_file(path: str, size: int, seed: int) -> str:
    """``size`` pseudo-random bytes from ``seed`` (repeatable)."""
    rng = random.Random(seed)
    with open(path, "wb") as handle:
        left = size
        while left:
            block = min(left, 1 << 20)
            handle.write(rng.randbytes(block))
            left -= block
    return path


def sha256_file(path: str) -> str:
    return cli.sha256_file(path).hex()


def temp_dir(prefix: str) -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix=f"p2p-bench-{prefix}-")


free_port = cli.free_port


def check_loopback(ip: str) -> str:
    if not ip.startswith("127."):
        raise ValueError(f"benchmarks only target 127.0.0.0/8, not {ip}")
    return ip


# ------------------------------------------------------------ packages
# Run as root to install a benchmark's tools with their services kept off:
# a policy-rc.d answering 101 ("action forbidden") stops the package's
# scripts from starting the daemon during the install (a policy already
# there is kept), then its systemd units are disabled and stopped, or its
# init script disabled without systemd.  $1: packages, $2: units.
_INSTALL_SERVICES_OFF = r"""
set -e
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  --no-install-recommends $1 > /dev/null
if [ -d /run/systemd/system ]; then
  systemctl disable --now $2
else
  for unit in $2; do
    name=${unit%.*}
    if [ -x "/etc/init.d/$name" ]; then
      "/etc/init.d/$name" stop || true
      update-rc.d "$name" disable
    fi
  done
fi
"""


def missing_packages(packages) -> list[str]:
    """The Debian packages among ``packages`` that are not installed."""
    missing = []
    for package in packages:
        status = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package],
            capture_output=True, text=True).stdout
        if "ok installed" not in status:
            missing.append(package)
    return missing


def install_tools(packages, units=()) -> str | None:
    """Install the Debian packages a benchmark compares with, leaving
    their services (``units``) disabled and stopped: the benchmark runs
    the daemon itself, on loopback, for the measurement only.  None when
    they are there, else why not (one line)."""
    if shutil.which("dpkg-query") is None:
        return f"not a Debian system: install {' '.join(packages)}"
    missing = missing_packages(packages)
    if not missing:
        return None
    as_root = [] if os.geteuid() == 0 else ["sudo"]
    if as_root and shutil.which("sudo") is None:
        return (f"{' '.join(missing)} not installed: as root, apt-get "
                f"install --no-install-recommends {' '.join(missing)}")
    print(f"bench: installing {' '.join(missing)} (its services kept off)",
          flush=True)
    done = subprocess.run(
        [*as_root, "sh", "-c", _INSTALL_SERVICES_OFF, "sh",
         " ".join(missing), " ".join(units)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        timeout=600)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["failed"])[-1]
        return f"installing {' '.join(missing)} failed: {why}"
    return None


# ------------------------------------------------------------ processes
def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a running process (/proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the ")" field 3 (state) is fields[0]: utime is field 14.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (peak resident set) of a running process, in MB (10^6)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return None


class Procs:
    """Every process a benchmark starts; ``close()`` ends those still
    running (by their own pid, never by name)."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def add(self, proc: subprocess.Popen) -> subprocess.Popen:
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        cli.end_processes(self.procs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Seeder:
    """A ``seeder.py`` process on a loopback address."""

    def __init__(self, procs: Procs, ip: str, port: int, folder: str,
                 *extra: str, log_path: str | None = None,
                 start_timeout: float = 60.0):
        """``start_timeout``: the seeder hashes its folder before it says
        it is sharing; a 200 MB file on a loaded machine takes longer."""
        self.address = f"{check_loopback(ip)}:{port}"
        try:
            proc, _first = cli.start_seeder(ip, port, "-d", folder, "-q",
                                            *extra, timeout=start_timeout)
        except cli.SeederDidNotStart as failed:
            raise RuntimeError(f"seeder did not start: {failed}") from None
        self.proc = procs.add(proc)
        self.summary = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float | None:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> str:
        """SIGTERM; returns the summary line the seeder prints."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate(timeout=5)
        lines = [ln for ln in (out or "").splitlines() if "stopped:" in ln]
        self.summary = lines[-1] if lines else ""
        return self.summary

    def counters(self) -> dict:
        """Numbers of the summary line: sent, resent, dropped, ..."""
        import re
        m = re.search(r"(\d+) sessions, (\d+) chunks sent \((\d+) resent, "
                      r"(\d+) dropped and (\d+) duplicated", self.summary)
        if not m:
            return {}
        keys = ("sessions", "sent", "resent", "dropped", "duplicated")
        return dict(zip(keys, map(int, m.groups())))


class Measured:
    """Run a command to its end (bounded: killed after ``timeout``), with
    its wall time, CPU time and peak RSS from ``wait4`` (no psutil).

    The wait blocks in ``wait4`` (no polling, so the wall time is exact);
    a timer thread kills the process at the deadline, and with
    ``sample_hwm`` another one samples VmHWM from /proc meanwhile."""

    def __init__(self, cmd: list[str], timeout: float, cwd: str = ROOT,
                 stdout_path: str | None = None, sample_hwm: bool = False):
        import threading
        self.cmd = cmd
        self.hwm_mb = None
        self.timed_out = False
        finished = threading.Event()
        with open(stdout_path or os.devnull, "wb") as out:
            start = time.monotonic()
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=out,
                                    stderr=subprocess.STDOUT)

            def kill():
                self.timed_out = True
                proc.kill()
            timer = threading.Timer(timeout, kill)
            timer.start()

            def sample():
                while not finished.wait(0.02):
                    hwm = peak_rss_mb(proc.pid)
                    if hwm is not None:
                        self.hwm_mb = max(self.hwm_mb or 0, hwm)
            sampler = threading.Thread(target=sample, daemon=True)
            if sample_hwm:
                sampler.start()
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            finally:
                self.wall = time.monotonic() - start
                finished.set()
                timer.cancel()
        if sample_hwm:
            sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        self.returncode = proc.returncode
        self.cpu = usage.ru_utime + usage.ru_stime
        self.maxrss_mb = usage.ru_maxrss * 1024 / 1e6  # ru_maxrss is KiB
        self.stdout_path = stdout_path

    def output(self) -> str:
        if not self.stdout_path:
            return ""
        with open(self.stdout_path, encoding="utf-8", errors="replace") as f:
            return f.read()


def leecher_cmd(name: str, out_dir: str, seeders: list[str],
                json_path: str, *extra: str) -> list[str]:
    return [PYTHON, os.path.join(ROOT, "leecher.py"), "get", name, "-o",
            out_dir, "--seeders", ",".join(seeders), "--json", json_path,
            "--force", *extra]


def load_stats(json_path: str) -> dict:
    """The leecher's statistics without the (long) timeline."""
    with open(json_path, encoding="utf-8") as handle:
        stats = json.load(handle)
    stats.pop("timeline", None)
    return stats
