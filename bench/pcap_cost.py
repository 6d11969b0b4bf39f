"""What writing a capture (pcap.py) costs the leecher, against its goodput.

Two figures, the leecher's side (the busier one: the seeder pays the same
hook once per chunk sent):

* micro: the hook ``Capture.received`` for a CHUNK datagram (1436 bytes,
  a memoryview as the leecher holds it) writing to a file, in µs per
  datagram (median over --reps runs of --datagrams, flush and close
  included), against the leecher's current cost per chunk = CHUNK_SIZE /
  its goodput on a real loopback download (one seeder, 0 % loss).
  cost = capture µs per datagram / current µs per chunk.
* end to end: the same download with the leecher's ``Endpoint`` wrapped to
  capture every datagram sent and received (what ``--pcap`` will do),
  against without, interleaved: median goodputs, and median CPU seconds of
  the leecher process (steadier than goodput on a shared machine: the
  leecher is CPU-bound on loopback, so its extra CPU is its lost goodput).

Both for whole datagrams and for captures that keep only CUT_CHUNK_DATA
bytes of each CHUNK's data (``chunk_data``, like ``tcpdump -s``).

Target (issue 16): writing a capture costs <= 10 % of goodput.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import common as c

import pcap
import protocol as p

TARGET = 0.10  # issue 16: <= 10 % of goodput
CUT_CHUNK_DATA = 64  # bytes of each CHUNK's data a cut capture keeps


def capture_cost_us(count: int, folder: str,
                    chunk_data: int | None) -> tuple[float, float]:
    """µs per CHUNK datagram through ``Capture.received``, file closed:
    (wall, CPU time of the calling thread: what the driver's loop pays)."""
    datagram = memoryview(bytearray(p.encode(p.Chunk(
        bytes(8), 1, 1, 1, bytes(p.CHUNK_SIZE)))))
    path = os.path.join(folder, "cost.pcap")
    seeder = ("127.0.0.1", 9000)
    start, start_cpu = time.perf_counter(), time.thread_time()
    capture = pcap.open_capture(path, ("127.0.0.9", 40000),
                                chunk_data=chunk_data)
    received, now = capture.received, time.monotonic()
    for n in range(count):
        received(datagram, seeder, now + n * 1e-5)
    capture.close()
    elapsed = time.perf_counter() - start
    cpu = time.thread_time() - start_cpu
    if capture.writer.records != count:
        raise RuntimeError(capture.writer.summary())
    os.remove(path)
    return elapsed / count * 1e6, cpu / count * 1e6


# Run in a child: the terminal leecher with a capturing Endpoint.
CHILD = """
import sys, time
sys.path.insert(0, {root!r})
import leecher, pcap, protocol as p

class CapturingEndpoint(leecher.Endpoint):
    # The Endpoint captures by itself once it has a capture: only the
    # writer (and its chunk_data) is chosen here.
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.capture = pcap.open_capture({pcap_path!r},
                                         self.sock.getsockname(),
                                         chunk_data={chunk_data!r})

leecher.Endpoint = CapturingEndpoint
sys.exit(leecher.main(sys.argv[1:]))
"""


def download(seeder: c.Seeder, name: str, tmp: str, rep: int,
             pcap_path: str | None,
             chunk_data: int | None = None) -> tuple[float, float]:
    """The leecher's (goodput in MB/s, CPU seconds), capturing to
    ``pcap_path`` or not."""
    tag = f"{'with' if pcap_path else 'without'}-{chunk_data}"
    out_dir = os.path.join(tmp, f"{tag}-{rep}")
    stats_path = os.path.join(tmp, f"{tag}-{rep}.json")
    cmd = c.leecher_cmd(name, out_dir, [seeder.address], stats_path)
    if pcap_path:
        code = CHILD.format(root=c.ROOT, pcap_path=pcap_path,
                            chunk_data=chunk_data)
        cmd = [c.PYTHON, "-c", code, *cmd[2:]]
    run = c.Measured(cmd, timeout=120, stdout_path=stats_path + ".log")
    if run.returncode != 0:
        raise RuntimeError(f"leecher failed: {run.output()[-500:]}")
    if pcap_path:
        size = os.path.getsize(pcap_path)
        os.remove(pcap_path)
        if chunk_data is None and size < c.load_stats(stats_path)["size"]:
            raise RuntimeError("the capture is smaller than the song")
    subprocess.run(["rm", "-rf", out_dir], check=True)
    return c.load_stats(stats_path)["goodput_Bps"] / 1e6, run.cpu


VARIANTS = {"whole": None, "cut": CUT_CHUNK_DATA}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=20.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--datagrams", type=int, default=100_000)
    args = parser.parse_args(argv)
    c.header("pcap capture cost (loopback, 0 % loss)", __file__,
             sys.argv[1:] if argv is None else argv)
    micro = {variant: [] for variant in VARIANTS}
    goodput = {variant: [] for variant in ("none", *VARIANTS)}
    with c.temp_dir("pcap") as tmp, c.Procs() as procs:
        share = os.path.join(tmp, "share")
        os.makedirs(share)
        name = "bench-pcap.mp3"
        c.random_file(os.path.join(share, name), int(args.size_mb * 1e6), 1)
        seeder = c.Seeder(procs, "127.0.0.1", c.free_port(("127.0.0.1",)),
                          share)
        capture_path = os.path.join(tmp, "download.pcap")
        for rep in range(args.reps):  # interleaved: noise hits all alike
            goodput["none"].append(download(seeder, name, tmp, rep, None))
            for variant, chunk_data in VARIANTS.items():
                micro[variant].append(capture_cost_us(args.datagrams, tmp,
                                                      chunk_data))
                goodput[variant].append(download(seeder, name, tmp, rep,
                                                 capture_path, chunk_data))
            print(f"rep {rep + 1}: goodput (MB/s, leecher CPU s) " +
                  ", ".join(f"{variant} {values[-1][0]:.1f} "
                            f"{values[-1][1]:.2f}" for variant, values in
                            goodput.items()) + "; hook " + ", ".join(
                f"{variant} {values[-1][0]:.2f} µs ({values[-1][1]:.2f} "
                f"CPU)" for variant, values in micro.items()), flush=True)
        seeder.stop()
    report(micro, goodput)
    return 0


def report(micro: dict, goodput: dict) -> None:
    without = statistics.median(g for g, _ in goodput["none"])
    cpu_without = statistics.median(cpu for _, cpu in goodput["none"])
    per_chunk_us = p.CHUNK_SIZE / without
    print()
    print(f"leecher without a capture: {without:.1f} MB/s median goodput = "
          f"{per_chunk_us:.2f} µs per chunk")
    for variant, chunk_data in VARIANTS.items():
        wall = statistics.median(m[0] for m in micro[variant])
        cpu = statistics.median(m[1] for m in micro[variant])
        with_pcap = statistics.median(g for g, _ in goodput[variant])
        extra_cpu = statistics.median(cpu for _, cpu in goodput[variant]) \
            / cpu_without - 1
        loss = 1 - with_pcap / without
        kept = "whole datagrams" if chunk_data is None else \
            f"CHUNK data cut to {chunk_data} bytes"
        print(f"{variant:5} ({kept}): hook {wall:.2f} µs per datagram "
              f"({cpu:.2f} µs CPU in the driver's thread) = "
              f"{100 * wall / per_chunk_us:.1f} % of a chunk's cost; "
              f"goodput {with_pcap:.1f} MB/s = {100 * loss:.1f} % less; "
              f"leecher CPU {100 * extra_cpu:+.1f} % (target <= "
              f"{100 * TARGET:.0f} %: "
              f"{'met' if extra_cpu <= TARGET else 'MISSED'})")


if __name__ == "__main__":
    sys.exit(main())
