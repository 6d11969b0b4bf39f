"""setup.sh in a controlled environment: a PATH of our own where `id`,
`dpkg-query`, `apt-get` and `sudo` are stand-ins that log their calls, so
nothing is installed and the answers do not depend on this machine."""

import os
import shutil
import subprocess

import pytest

from conftest import ROOT

SETUP = os.path.join(ROOT, "setup.sh")
REAL_TOOLS = ("bash", "dirname", "grep", "cat", "cksum", "cut", "env")
# Debian packages whose job is a network server (a test must not install
# one: a TFTP server on UDP 69 at every boot, say).
SERVERS = ("atftpd", "tftpd-hpa", "openssh-server", "apache2", "nginx",
           "dnsmasq", "avahi-daemon")
# Units a test package may ship: nftables.service loads firewall rules at
# boot when enabled (Debian leaves it disabled); it listens on nothing.
HARMLESS_UNITS = {"/lib/systemd/system/nftables.service"}


def fake_bin(tmp_path, uid: int, sudo: bool):
    """A bin folder: the real tools setup.sh needs, and stand-ins."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in REAL_TOOLS:
        os.symlink(shutil.which(tool), folder / tool)
    log = tmp_path / "calls.log"
    stand_ins = {
        "id": f'echo {uid}',
        "dpkg-query": "exit 1",  # nothing is installed
        "apt-get": f'echo "apt-get $*" >> {log}',
    }
    if sudo:
        stand_ins["sudo"] = f'echo "sudo $*" >> {log}; exit 1'
    for name, body in stand_ins.items():
        script = folder / name
        script.write_text(f"#!{shutil.which('bash')}\n{body}\n")
        script.chmod(0o755)
    return folder, log


def run(args, path, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=30,
                          env={"PATH": str(path), "HOME": os.environ.get(
                              "HOME", "/")}, cwd=ROOT, **kw)


def source_and_call(call: str, path):
    """Run one of setup.sh's functions (sourcing defines, never runs)."""
    return run([shutil.which("bash"), "-c",
                f"set -euo pipefail; source ./setup.sh; {call}"], path)


def package_lists() -> dict[str, list[str]]:
    out = subprocess.run([shutil.which("bash"), "-c",
                          "source ./setup.sh; echo $APT_RUNTIME; "
                          "echo $APT_TEST"], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.splitlines()
    return {"runtime": out[0].split(), "test": out[1].split()}


@pytest.mark.parametrize("mode", ["demo", "test", "install"])
def test_without_root_or_sudo_one_line_names_the_packages(tmp_path, mode):
    path, log = fake_bin(tmp_path, uid=1000, sudo=False)
    result = run([SETUP, mode], path)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert "command not found" not in line
    assert line.startswith("setup: missing Debian packages: ffmpeg ")
    assert "as root" in line and "install sudo" in line
    assert "su -c 'apt-get install -y ffmpeg" in line
    wanted = package_lists()["runtime"]
    if mode == "test":
        wanted += package_lists()["test"]
    for package in wanted:
        assert f" {package}" in line
    assert not log.exists()  # nothing was attempted


def test_without_root_sudo_installs(tmp_path):
    path, log = fake_bin(tmp_path, uid=1000, sudo=True)
    result = source_and_call("install_apt ffmpeg gcc", path)
    assert result.returncode == 1  # the stand-in sudo fails
    assert log.read_text() == "sudo apt-get update -qq\n"


def test_as_root_installs_only_what_is_missing_with_apt(tmp_path):
    path, log = fake_bin(tmp_path, uid=0, sudo=False)
    result = source_and_call("install_apt $APT_RUNTIME $APT_TEST", path)
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "apt-get update -qq"
    installed = calls[1].split()
    assert installed[:4] == ["apt-get", "install", "-y", "-qq"]
    lists = package_lists()
    assert installed[4:] == lists["runtime"] + lists["test"]


def test_the_test_set_up_installs_no_server():
    lists = package_lists()
    for package in lists["runtime"] + lists["test"]:
        assert package not in SERVERS
        assert "atftp" not in package  # only bench/throughput.py uses it


def test_installed_test_packages_ship_no_daemon():
    """Checked against the real packages when dpkg knows them."""
    if shutil.which("dpkg") is None:
        pytest.skip("no dpkg here to list the packages' files")
    units = []
    lists = package_lists()
    for package in lists["runtime"] + lists["test"]:
        files = subprocess.run(["dpkg", "-L", package], capture_output=True,
                               text=True).stdout.splitlines()
        units += [f for f in files if f.startswith("/etc/init.d/") or
                  (f.startswith(("/lib/systemd/system/",
                                 "/usr/lib/systemd/system/"))
                   and f.endswith((".service", ".socket")))]
    assert set(units) <= HARMLESS_UNITS


def test_unknown_mode_is_usage_exit_2(tmp_path):
    path, _ = fake_bin(tmp_path, uid=0, sudo=False)
    result = run([SETUP, "frobnicate"], path)
    assert result.returncode == 2
    assert result.stderr == "usage: ./setup.sh demo|test|lint|install\n"


def test_the_suite_prints_why_each_test_skips():
    """`./setup.sh test` passes -rs to pytest (skip reasons)."""
    with open(SETUP, encoding="utf-8") as handle:
        commands = [line.split() for line in handle
                    if "-m pytest" in line and "exec" in line]
    assert commands and all("-rs" in command for command in commands)


def test_ci_lints_with_the_venvs_ruff_then_runs_the_readme_command():
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as handle:
        steps = [line.strip() for line in handle
                 if line.strip() and not line.startswith(("#", "set ",
                                                         "cd "))]
    assert steps == ["./setup.sh lint", "./setup.sh test"]
