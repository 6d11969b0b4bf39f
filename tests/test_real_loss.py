"""Real packet loss: seeder and leecher in two network namespaces joined by
a veth pair, nftables dropping a share of the UDP packets at random (this
kernel has no netem).  Everything made here is removed afterwards."""

import os
import random
import shutil
import subprocess

import pytest

from conftest import PYTHON, ROOT, sha256, skip_outside_ci

SEEDER_IP, LEECHER_IP = "10.213.77.1", "10.213.77.2"


def sh(*cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


@pytest.fixture
def namespaces():
    reason = _why_not()
    if reason:
        skip_outside_ci(reason)
    tag = f"p2pf{os.getpid() % 100000}"
    seed_ns, leech_ns = f"{tag}s", f"{tag}l"
    try:
        sh("ip", "netns", "add", seed_ns)
        sh("ip", "netns", "add", leech_ns)
        sh("ip", "link", "add", f"{tag}a", "netns", seed_ns, "type", "veth",
           "peer", "name", f"{tag}b", "netns", leech_ns)
        for ns, dev, ip in ((seed_ns, f"{tag}a", SEEDER_IP),
                            (leech_ns, f"{tag}b", LEECHER_IP)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/30", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
    except subprocess.CalledProcessError as exc:
        for ns in (seed_ns, leech_ns):
            sh("ip", "netns", "del", ns, check=False)
        skip_outside_ci(f"cannot make namespaces here: "
                        f"{exc.stderr.strip()}")
    yield seed_ns, leech_ns
    for ns in (seed_ns, leech_ns):
        sh("ip", "netns", "del", ns, check=False)


def drop_rule(ns: str, percent: int, port: int) -> None:
    rules = f"""
table inet p2pfloss {{
  chain input {{
    type filter hook input priority 0; policy accept;
    udp sport {port} numgen random mod 100 < {percent} counter drop
  }}
}}
"""
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"],
                   input=rules, text=True, check=True)


def dropped(ns: str) -> int:
    listing = sh("ip", "netns", "exec", ns, "nft", "list", "table", "inet",
                 "p2pfloss").stdout
    return int(listing.split("counter packets ")[1].split()[0])


# With UDP GSO a run of up to 45 chunks crosses the veth pair as one
# packet, split only by the receiver's UDP code, so nftables drops whole
# runs: the kernel still loses data, just in bursts.  --no-offload gives
# one datagram per packet, and nftables drops single chunks.  The sample
# song is only ~6 GSO runs (at 10 % none is dropped a third of the time),
# so the GSO case fetches a 5 MB song: ~80 runs, none dropped 2e-4 of the
# time.
GSO_SONG_BYTES = 5_000_000
@pytest.mark.parametrize("offload", [False, True], ids=["no-offload", "gso"])
@pytest.mark.parametrize("percent", [10, 30])
def test_download_is_byte_exact_through_real_packet_loss(namespaces,
                                                         song_dir, tmp_path,
                                                         percent, offload):
    seed_ns, leech_ns = namespaces
    drop_rule(leech_ns, percent, 9000)
    share, name = song_dir, "facom-sample"
    if offload:
        share, name = tmp_path / "share", "big-song"
        share.mkdir()
        (share / f"{name}.mp3").write_bytes(
            random.Random(percent).randbytes(GSO_SONG_BYTES))
    out = tmp_path / "out"
    seeder = subprocess.Popen(
        ["ip", "netns", "exec", seed_ns, PYTHON, "-u",
         os.path.join(ROOT, "seeder.py"), "-i", SEEDER_IP, "-p", "9000",
         "-d", str(share), "-q",
         *([] if offload else ["--no-offload"])],
        stdout=subprocess.PIPE, text=True)
    try:
        assert "sharing" in seeder.stdout.readline()
        result = subprocess.run(
            ["ip", "netns", "exec", leech_ns, PYTHON,
             os.path.join(ROOT, "leecher.py"), "get", name, "-o",
             str(out), "--seeders", f"{SEEDER_IP}:9000"],
            capture_output=True, text=True, timeout=90)
    finally:
        seeder.kill()
        seeder.wait()
    assert result.returncode == 0, result.stdout + result.stderr
    assert sha256(out / f"{name}.mp3") == sha256(share / f"{name}.mp3")
    lost = dropped(leech_ns)
    if offload:
        assert lost > 0  # whole GSO runs dropped by the kernel
    else:
        assert lost > 230 * percent / 100 / 3  # the kernel dropped chunks
