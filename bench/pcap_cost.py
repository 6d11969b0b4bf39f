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
  against without, interleaved, median goodputs.

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


def capture_cost_us(count: int, folder: str) -> tuple[float, float]:
    """µs per CHUNK datagram through ``Capture.received``, file closed:
    (wall, CPU time of the calling thread: what the driver's loop pays)."""
    datagram = memoryview(bytearray(p.encode(p.Chunk(
        bytes(8), 1, 1, 1, bytes(p.CHUNK_SIZE)))))
    path = os.path.join(folder, "cost.pcap")
    seeder = ("127.0.0.1", 9000)
    start, start_cpu = time.perf_counter(), time.thread_time()
    capture = pcap.open_capture(path, ("127.0.0.9", 40000))
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
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.capture = pcap.open_capture({pcap_path!r}, self.sock.getsockname())

    def send(self, msg, addr, session=0):
        self.capture.sent(p.encode(msg, session), addr, time.monotonic())
        super().send(msg, addr, session)

    def receive_raw(self, timeout):
        received = super().receive_raw(timeout)
        now, capture = time.monotonic(), self.capture.received
        for view, addr in received:
            capture(view, addr, now)
        return received

leecher.Endpoint = CapturingEndpoint
sys.exit(leecher.main(sys.argv[1:]))
"""


def download(seeder: c.Seeder, name: str, tmp: str, rep: int,
             pcap_path: str | None) -> float:
    """The leecher's goodput in MB/s, capturing to ``pcap_path`` or not."""
    tag = "with" if pcap_path else "without"
    out_dir = os.path.join(tmp, f"{tag}-{rep}")
    stats_path = os.path.join(tmp, f"{tag}-{rep}.json")
    cmd = c.leecher_cmd(name, out_dir, [seeder.address], stats_path)
    if pcap_path:
        code = CHILD.format(root=c.ROOT, pcap_path=pcap_path)
        cmd = [c.PYTHON, "-c", code, *cmd[2:]]
    run = c.Measured(cmd, timeout=120, stdout_path=stats_path + ".log")
    if run.returncode != 0:
        raise RuntimeError(f"leecher failed: {run.output()[-500:]}")
    if pcap_path:
        size = os.path.getsize(pcap_path)
        os.remove(pcap_path)
        if size < c.load_stats(stats_path)["size"]:
            raise RuntimeError("the capture is smaller than the song")
    subprocess.run(["rm", "-rf", out_dir], check=True)
    return c.load_stats(stats_path)["goodput_Bps"] / 1e6


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=20.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--datagrams", type=int, default=100_000)
    args = parser.parse_args(argv)
    c.header("pcap capture cost (loopback, 0 % loss)", __file__,
             sys.argv[1:] if argv is None else argv)
    with c.temp_dir("pcap") as tmp, c.Procs() as procs:
        micro = [capture_cost_us(args.datagrams, tmp)
                 for _ in range(args.reps)]
        share = os.path.join(tmp, "share")
        os.makedirs(share)
        name = "bench-pcap.mp3"
        c.random_file(os.path.join(share, name), int(args.size_mb * 1e6), 1)
        seeder = c.Seeder(procs, "127.0.0.1", c.free_port(("127.0.0.1",)),
                          share)
        without, with_pcap = [], []
        for rep in range(args.reps):  # interleaved: noise hits both alike
            without.append(download(seeder, name, tmp, rep, None))
            with_pcap.append(download(seeder, name, tmp, rep, os.path.join(
                tmp, "download.pcap")))
            print(f"rep {rep + 1}: capture {micro[rep][0]:.2f} µs/datagram "
                  f"({micro[rep][1]:.2f} µs CPU in the driver's thread), "
                  f"goodput without {without[-1]:.1f} MB/s, with "
                  f"{with_pcap[-1]:.1f} MB/s", flush=True)
        seeder.stop()
    report(statistics.median(m[0] for m in micro),
           statistics.median(m[1] for m in micro), statistics.median(without),
           statistics.median(with_pcap))
    return 0


def report(micro_us: float, thread_us: float, without: float,
           with_pcap: float) -> None:
    per_chunk_us = p.CHUNK_SIZE / (without * 1e6) * 1e6
    micro_share = micro_us / per_chunk_us
    e2e_share = 1 - with_pcap / without
    print()
    print(f"capture hook        {micro_us:.2f} µs per 1436-byte datagram "
          f"(median; {thread_us:.2f} µs CPU in the driver's thread)")
    print(f"leecher now         {per_chunk_us:.2f} µs per chunk "
          f"({without:.1f} MB/s median goodput)")
    print(f"micro cost          {100 * micro_share:.1f} % of the per-chunk "
          f"cost (target <= {100 * TARGET:.0f} %: "
          f"{'met' if micro_share <= TARGET else 'MISSED'})")
    print(f"end to end          {with_pcap:.1f} MB/s with a capture, "
          f"{without:.1f} without: {100 * e2e_share:.1f} % less goodput "
          f"(target <= {100 * TARGET:.0f} %: "
          f"{'met' if e2e_share <= TARGET else 'MISSED'})")


if __name__ == "__main__":
    sys.exit(main())
