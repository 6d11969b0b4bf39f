"""Throughput on loopback, 0 % loss: P2P FACOM against a raw Python UDP
pair (the limit) and against atftp/atftpd (a peer), in the same run.

Figures: goodput in MB/s (10^6 bytes), median over --reps repetitions,
the three transfers interleaved so that machine noise hits them alike.

* ours: one seeder -> the terminal leecher; goodput = the leecher's
  ``goodput_Bps`` (request to verified file, SHA-256 included).
* raw: bench/rawudp.py, a Python sender and receiver with the same 1436-byte
  datagrams and no reliability; goodput = distinct bytes received / (last
  arrival - first send).  Its loss is printed too.
* raw GSO->GRO: the same pair with segmentation offload (``--gso``/``--gro``,
  45 datagrams per ``sendmsg``, coalesced reads): the limit with offload.
* atftp: ``atftp -g`` from ``atftpd`` with blksize 1428 (the same 1400-ish
  bytes per datagram) and windowsize 64; goodput = size / the client's
  wall time (its process start included).

Targets (issue 13): ours >= 0.6x raw, ours >= 1.0x atftp, 3 seeders >= 1x one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

import common as c
import rawudp

ATFTP_PACKAGES = ("atftp", "atftpd")
# The server package enables these at install time (TFTP on UDP 69, every
# interface, every boot): they are disabled at once; the benchmark runs
# atftpd in the foreground on 127.0.0.1 itself.
ATFTPD_UNITS = ("atftpd.socket", "atftpd.service")


def run_raw(procs: c.Procs, path: str, size: int,
            offload: bool = False) -> dict:
    """The raw pair; with ``offload`` the GSO sender and GRO receiver."""
    return rawudp.run_pair(path, size, gso=offload, gro=offload,
                           procs=procs)


def run_ours(seeders: list[c.Seeder], name: str, tmp: str, rep: int) -> dict:
    """One download from ``seeders`` (one, or three for the 3/1 ratio)."""
    tag = f"ours{len(seeders)}-{rep}"
    out_dir = os.path.join(tmp, tag)
    os.makedirs(out_dir)
    stats_path = os.path.join(tmp, f"{tag}.json")
    seeder = seeders[0]
    cpu_before = seeder.cpu()
    run = c.Measured(c.leecher_cmd(name, out_dir,
                                   [s.address for s in seeders],
                                   stats_path, "--rng-seed", str(rep)),
                     timeout=120, stdout_path=stats_path + ".log")
    if run.returncode != 0:
        raise RuntimeError(f"leecher failed: {run.output()[-500:]}")
    stats = c.load_stats(stats_path)
    seeder_cpu = seeder.cpu() - cpu_before
    shutil.rmtree(out_dir)
    return {"goodput": stats["goodput_Bps"] / 1e6,
            "elapsed": stats["elapsed_s"], "process_wall": run.wall,
            "leecher_cpu": run.cpu, "seeder_cpu": seeder_cpu,
            "retransmitted": stats["chunks_retransmitted"]}


class Atftp:
    """atftpd on 127.0.0.1 serving ``folder``, in the foreground, for the
    run only; ``error`` says why when it cannot run.  Installs atftp and
    atftpd when missing, their services off."""

    def __init__(self, procs: c.Procs, folder: str):
        self.error = None
        self.proc = None
        self.error = c.install_tools(ATFTP_PACKAGES, ATFTPD_UNITS)
        if self.error:
            return
        if not (shutil.which("atftpd") and shutil.which("atftp")):
            self.error = "atftp/atftpd not found on the PATH"
            return
        self.port = 6969 if _udp_free("127.0.0.1", 6969) \
            else c.free_port(("127.0.0.1",))
        self.proc = procs.add(subprocess.Popen(
            ["atftpd", "--daemon", "--no-fork", "--port", str(self.port),
             "--bind-address", "127.0.0.1", folder],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        time.sleep(0.3)
        if self.proc.poll() is not None:
            self.error = ("atftpd exited: " +
                          self.proc.stderr.read().decode()[-200:].strip())

    def get(self, name: str, out_path: str, size: int) -> dict:
        cmd = ["atftp", "-g", "-r", name, "-l", out_path, "--option",
               "blksize 1428", "--option", "windowsize 64", "127.0.0.1",
               str(self.port)]
        run = c.Measured(cmd, timeout=120, stdout_path=out_path + ".log")
        ok = (run.returncode == 0 and os.path.exists(out_path)
              and os.path.getsize(out_path) == size)
        if not ok:
            return {"error": f"atftp exit {run.returncode}: "
                             f"{run.output()[-200:].strip()}"}
        return {"goodput": c.mbps(size, run.wall), "wall": run.wall,
                "cpu": run.cpu, "path": out_path}


def _udp_free(ip: str, port: int) -> bool:
    import socket
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((ip, port))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=20.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    c.header("throughput: ours vs raw UDP pair vs atftp (loopback, 0 % "
             "loss)", __file__, sys.argv[1:] if argv is None else argv)
    size = int(args.size_mb * 1e6)
    with c.temp_dir("tput") as tmp, c.Procs() as procs:
        share = os.path.join(tmp, "share")
        os.makedirs(share)
        os.chmod(tmp, 0o755)  # atftpd drops root and reads as nobody
        os.chmod(share, 0o755)
        name = "bench-20mb.mp3"
        path = c.random_file(os.path.join(share, name), size, args.seed)
        os.chmod(path, 0o644)
        digest = c.sha256_file(path)
        ips = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
        port = c.free_port(ips)
        trio = [c.Seeder(procs, ip, port, share) for ip in ips]
        seeder = trio[0]
        atftp = Atftp(procs, share)
        rows = {"ours": [], "ours3": [], "raw": [], "gso": [], "atftp": []}
        for rep in range(args.reps):
            rows["raw"].append(run_raw(procs, path, size))
            rows["gso"].append(run_raw(procs, path, size, offload=True))
            rows["ours"].append(run_ours([seeder], name, tmp, rep))
            rows["ours3"].append(run_ours(trio, name, tmp, rep))
            if not atftp.error:
                result = atftp.get(name, os.path.join(tmp, f"tftp-{rep}"),
                                   size)
                if "error" in result:
                    atftp.error = result["error"]
                else:
                    if c.sha256_file(result["path"]) != digest:
                        atftp.error = "atftp delivered different bytes"
                    os.remove(result["path"])
                    rows["atftp"].append(result)
            print(f"rep {rep + 1}: ours {rows['ours'][-1]['goodput']:.1f}"
                  f"  raw {rows['raw'][-1]['goodput']:.1f} (loss "
                  f"{100 * rows['raw'][-1]['loss']:.1f} %)  GSO->GRO "
                  f"{rows['gso'][-1]['goodput']:.1f} (loss "
                  f"{100 * rows['gso'][-1]['loss']:.1f} %)  atftp "
                  + (f"{rows['atftp'][-1]['goodput']:.1f}" if rows['atftp']
                     and not atftp.error else "-") + " MB/s", flush=True)
        for one in trio:
            one.stop()
    ratio_three = c.median(t["goodput"] / o["goodput"]
                           for o, t in zip(rows["ours"], rows["ours3"]))
    ours = c.median(r["goodput"] for r in rows["ours"])
    raw = c.median(r["goodput"] for r in rows["raw"])
    raw_loss = c.median(r["loss"] for r in rows["raw"])
    gso = c.median(r["goodput"] for r in rows["gso"])
    gso_loss = c.median(r["loss"] for r in rows["gso"])
    print()
    print(f"file {size / 1e6:.0f} MB random bytes (seed {args.seed}), "
          f"{args.reps} reps, medians")
    print(f"{'transfer':<10} {'MB/s':>8}")
    print(f"{'ours':<10} {ours:8.1f}   (leecher process wall "
          f"{c.median(r['process_wall'] for r in rows['ours']):.2f} s incl. "
          f"start, ping, search; leecher CPU "
          f"{c.median(r['leecher_cpu'] for r in rows['ours']):.2f} s, "
          f"seeder CPU {c.median(r['seeder_cpu'] for r in rows['ours']):.2f}"
          f" s)")
    print(f"{'ours x3':<10} "
          f"{c.median(r['goodput'] for r in rows['ours3']):8.1f}   "
          f"(three seeders on 127.0.0.1-3; 3 seeders / 1 = "
          f"{ratio_three:.2f}x, median of per-rep ratios; target >= 1.0x: "
          f"{'met' if ratio_three >= 1.0 else 'MISSED'})")
    print(f"{'raw pair':<10} {raw:8.1f}   (no reliability; "
          f"{100 * raw_loss:.1f} % of datagrams lost)")
    print(f"{'GSO->GRO':<10} {gso:8.1f}   (the limit: raw pair with "
          f"segmentation offload, unpaced; {100 * gso_loss:.1f} % lost)")
    if atftp.error or not rows["atftp"]:
        print(f"{'atftp':<10} {'-':>8}   cannot run: {atftp.error}")
        tftp = None
    else:
        tftp = c.median(r["goodput"] for r in rows["atftp"])
        print(f"{'atftp':<10} {tftp:8.1f}   (client wall incl. process "
              f"start; byte-exact)")
    print()
    # Ratios per repetition (the three ran back to back), then the median.
    ratio_raw = c.median(o["goodput"] / r["goodput"]
                         for o, r in zip(rows["ours"], rows["raw"]))
    print(f"ours / raw   = {ratio_raw:.2f}x  (median of per-rep ratios; "
          f"target >= 0.6x: {'met' if ratio_raw >= 0.6 else 'MISSED'})")
    ratio_gso = c.median(o["goodput"] / g["goodput"]
                         for o, g in zip(rows["ours"], rows["gso"]))
    print(f"ours / GSO->GRO = {ratio_gso:.2f}x  (median of per-rep "
          f"ratios; the limit with offload)")
    if tftp:
        ratio_tftp = c.median(o["goodput"] / t["goodput"]
                              for o, t in zip(rows["ours"], rows["atftp"]))
        print(f"ours / atftp = {ratio_tftp:.2f}x  (median of per-rep "
              f"ratios; target >= 1.0x: "
              f"{'met' if ratio_tftp >= 1.0 else 'MISSED'})")
    else:
        print("ours / atftp = -  (atftp could not run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
