"""The raw baseline: a plain Python UDP sender and receiver, no reliability.

They move a file's bytes in datagrams of the size of a P2P FACOM CHUNK
(36-byte header + 1400 bytes of data = 1436 bytes), as fast as Python can,
with the same 4 MB socket buffers as the seeder and the leecher.  What the
receiver's buffer cannot hold is lost and not asked for again, so this is
an upper bound for one Python sender and one Python receiver on this
machine, not a protocol.

``--gso`` sends runs of up to 45 datagrams per ``sendmsg`` (UDP GSO) and
``--gro`` receives coalesced runs (UDP GRO), both through ``offload.py``:
the GSO->GRO pair is the limit with segmentation offload.  ``--pace MBPS``
holds the sender to that payload rate (checked every 45 datagrams), to
find what a burst-free sender needs against the receiver's buffer.

    python3 bench/rawudp.py recv PORT SIZE [--gro]      # one JSON line
    python3 bench/rawudp.py send PORT FILE [--gso] [--pace MBPS]
    python3 bench/rawudp.py compare [--size-mb 20] [--reps 5] [--pace ...]

``compare`` runs the plain pair, GSO->GRO and GSO with a plain receiver,
interleaved, and prints per pair the median MB/s, the loss and the CPU
time per datagram of each side; with ``--pace`` also GSO->GRO at those
rates.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time

PAYLOAD = 1400
HEAD = struct.Struct("!I32x")  # sequence number + padding to 36 bytes
SEG = HEAD.size + PAYLOAD  # 1436, a full CHUNK datagram
BUFFER = 4 * 1024 * 1024
IDLE_S = 0.3  # the receiver stops after this long without a datagram
MAX_S = 60.0  # and in any case after this long
FIRST_S = 10.0  # the longest wait for the first datagram
PACE_EVERY = 45  # datagrams between pacing checks (one GSO run)


# --------------------------------------------------------------- receiver
class Progress:
    """What the receiver has: distinct datagrams by sequence number."""

    def __init__(self, size: int):
        self.size = size
        self.chunks = -(-size // PAYLOAD)
        self.data = bytearray(size)
        self.have = bytearray(self.chunks)
        self.got = self.datagrams = 0
        self.first = self.last = None

    def take(self, view) -> None:
        self.datagrams += 1
        (seq,) = HEAD.unpack_from(view)
        if seq < self.chunks and not self.have[seq]:
            self.have[seq] = 1
            self.got += 1
            offset = seq * PAYLOAD
            self.data[offset:offset + len(view) - HEAD.size] = \
                view[HEAD.size:]

    def result(self, cpu_s: float, reads: int) -> dict:
        received = sum(min(PAYLOAD, self.size - i * PAYLOAD)
                       for i in range(self.chunks) if self.have[i])
        return {"bytes": received, "chunks": self.chunks,
                "chunks_received": self.got, "datagrams": self.datagrams,
                "first": self.first, "last": self.last, "cpu_s": cpu_s,
                "reads": reads}


def _socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    sock.bind(("127.0.0.1", port))
    return sock


def receive(port: int, size: int) -> dict:
    """One ``recv_into`` per datagram (the baseline, unchanged)."""
    sock = _socket(port)
    print("ready", flush=True)
    state = Progress(size)
    buf = bytearray(2048)
    view = memoryview(buf)
    sock.settimeout(FIRST_S)
    start = time.monotonic()
    cpu = time.process_time()
    while state.got < state.chunks and time.monotonic() - start < MAX_S:
        try:
            n = sock.recv_into(buf)
        except socket.timeout:
            break
        state.last = time.monotonic()
        if state.first is None:
            state.first = state.last
            sock.settimeout(IDLE_S)
        state.take(view[:n])
    cpu = time.process_time() - cpu
    sock.close()
    return state.result(cpu, state.datagrams)


def receive_gro(port: int, size: int) -> dict:
    """Coalesced reads through ``offload.GroReceiver``."""
    import offload
    sock = _socket(port)
    sock.setblocking(False)
    receiver = offload.make_receiver(sock, offload=True)
    if not receiver.offload:
        raise SystemExit("rawudp: UDP GRO is not available here")
    print("ready", flush=True)
    state = Progress(size)
    start = time.monotonic()
    cpu = time.process_time()
    wait = FIRST_S
    while state.got < state.chunks and time.monotonic() - start < MAX_S:
        if not select.select([sock], [], [], wait)[0]:
            break
        for view, _ in receiver.receive():
            state.take(view)
        state.last = time.monotonic()
        if state.first is None:
            state.first = state.last
            wait = IDLE_S
    cpu = time.process_time() - cpu
    sock.close()
    return state.result(cpu, receiver.reads)


# ----------------------------------------------------------------- sender
class Pacer:
    """Holds the sender to ``mbps`` (None: never waits).  Time the sender
    lost (a sleep that overslept, the scheduler) is not made up for with
    a burst: a late sender starts a new schedule from now."""

    def __init__(self, mbps: float | None):
        self.rate = mbps * 1e6 if mbps else None
        self.due = 0.0  # when the next bytes may leave

    def sent(self, nbytes: int) -> None:
        if self.rate is None:
            return
        now = time.monotonic()
        self.due = max(self.due, now) + nbytes / self.rate
        if self.due > now:
            time.sleep(self.due - now)


def send(port: int, path: str, pace: float | None = None) -> dict:
    """One ``sendto`` per datagram (the baseline, unchanged unpaced)."""
    with open(path, "rb") as handle:
        data = handle.read()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
    addr = ("127.0.0.1", port)
    start = time.monotonic()
    cpu = time.process_time()
    pacer = Pacer(pace)
    datagrams = 0
    if pace is None:  # the baseline loop, nothing else in it
        for seq, offset in enumerate(range(0, len(data), PAYLOAD)):
            sock.sendto(HEAD.pack(seq) + data[offset:offset + PAYLOAD], addr)
        datagrams = -(-len(data) // PAYLOAD)
    for seq, offset in enumerate(range(0, len(data) if pace else 0,
                                       PAYLOAD)):
        sock.sendto(HEAD.pack(seq) + data[offset:offset + PAYLOAD], addr)
        datagrams += 1
        if seq % PACE_EVERY == PACE_EVERY - 1:
            pacer.sent(PACE_EVERY * PAYLOAD)
    end = time.monotonic()
    cpu = time.process_time() - cpu
    sock.close()
    return {"start": start, "end": end, "bytes": len(data),
            "datagrams": datagrams, "syscalls": datagrams, "cpu_s": cpu}


def send_gso(port: int, path: str, pace: float | None = None) -> dict:
    """Runs of 45 datagrams per ``sendmsg`` through ``offload.GsoSender``:
    headers packed into one reusable buffer, the data copied beside."""
    import offload
    with open(path, "rb") as handle:
        data = memoryview(handle.read())
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
    sender = offload.make_sender(sock, offload=True)
    if not sender.offload:
        raise SystemExit("rawudp: UDP GSO is not available here")
    addr = ("127.0.0.1", port)
    per_run = offload.max_segments(SEG)
    buf = bytearray(per_run * SEG)
    start = time.monotonic()
    cpu = time.process_time()
    pacer = Pacer(pace)
    seq = datagrams = 0
    for run_start in range(0, len(data), per_run * PAYLOAD):
        fill = 0
        for offset in range(run_start, min(run_start + per_run * PAYLOAD,
                                           len(data)), PAYLOAD):
            HEAD.pack_into(buf, fill, seq)
            piece = data[offset:offset + PAYLOAD]
            buf[fill + HEAD.size:fill + HEAD.size + len(piece)] = piece
            fill += HEAD.size + len(piece)
            seq += 1
        datagrams += sender.send_run(memoryview(buf)[:fill], SEG, addr)
        pacer.sent(fill)
    end = time.monotonic()
    cpu = time.process_time() - cpu
    sock.close()
    return {"start": start, "end": end, "bytes": len(data),
            "datagrams": datagrams, "syscalls": sender.syscalls,
            "cpu_s": cpu, "offload": sender.offload}


# ------------------------------------------------------------ one transfer
def run_pair(path: str, size: int, gso: bool, gro: bool,
             pace: float | None = None, procs=None) -> dict:
    """One transfer between two fresh processes; the figures of both.
    ``procs``: a ``common.Procs`` that ends the receiver if we fail."""
    import common as c
    port = c.free_port(("127.0.0.1",))
    script = os.path.abspath(__file__)
    recv_cmd = [c.PYTHON, script, "recv", str(port), str(size)]
    recv_cmd += ["--gro"] if gro else []
    recv = subprocess.Popen(recv_cmd, stdout=subprocess.PIPE, text=True)
    if procs is not None:
        procs.add(recv)
    try:
        if recv.stdout.readline().strip() != "ready":
            raise RuntimeError("raw receiver did not start")
        send_cmd = [c.PYTHON, script, "send", str(port), path]
        send_cmd += (["--gso"] if gso else []) + (
            ["--pace", str(pace)] if pace else [])
        sent = subprocess.run(send_cmd, capture_output=True, text=True,
                              timeout=MAX_S + 10, check=True)
        out, _ = recv.communicate(timeout=MAX_S + 10)
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()
    got = json.loads(out.strip().splitlines()[-1])
    sender = json.loads(sent.stdout)
    elapsed = (got["last"] - sender["start"]) if got["last"] else None
    return {"goodput": c.mbps(got["bytes"], elapsed),
            "loss": 1 - got["chunks_received"] / got["chunks"],
            "send_us": 1e6 * sender["cpu_s"] / sender["datagrams"],
            "recv_us": (1e6 * got["cpu_s"] / got["datagrams"]
                        if got["datagrams"] else None),
            "send_calls": sender["syscalls"], "reads": got["reads"],
            "datagrams": got["datagrams"]}


PAIRS = {  # name: (GSO sender, GRO receiver)
    "plain pair": (False, False),
    "GSO->GRO": (True, True),
    "GSO->plain": (True, False),
}


def compare(argv: list[str]) -> int:
    import common as c
    parser = argparse.ArgumentParser(prog="rawudp.py compare")
    parser.add_argument("--size-mb", type=float, default=20.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pace", type=float, nargs="*", default=[],
                        metavar="MBPS", help="GSO->GRO also at these rates")
    args = parser.parse_args(argv)
    c.header("raw UDP pairs: plain, GSO->GRO, GSO->plain (loopback)",
             __file__, ["compare", *argv])
    size = int(args.size_mb * 1e6)
    runs = dict(PAIRS)
    runs.update({f"GSO->GRO paced {rate:g}": (True, True, rate)
                 for rate in args.pace})
    rows: dict[str, list] = {name: [] for name in runs}
    with c.temp_dir("rawudp") as tmp, c.Procs() as procs:
        path = c.random_file(os.path.join(tmp, "data"), size, args.seed)
        for rep in range(args.reps):
            for name, (gso, gro, *pace) in runs.items():
                rows[name].append(run_pair(path, size, gso, gro,
                                           pace[0] if pace else None, procs))
            print(f"rep {rep + 1}: " + "  ".join(
                f"{name} {c.fmt(rows[name][-1]['goodput'], '.0f')}"
                for name in runs) + " MB/s", flush=True)
    print()
    print(f"file {size / 1e6:.0f} MB, {args.reps} reps interleaved, "
          f"medians (loss: also the worst rep); CPU time per datagram "
          f"sent / received (us); send calls and reads per transfer")
    print(f"{'pair':<24} {'MB/s':>7} {'loss %':>7} {'max %':>6} "
          f"{'send us':>8} {'recv us':>8} {'sends':>7} {'reads':>7}")
    for name, results in rows.items():
        med = {key: c.median(r[key] for r in results)
               for key in results[0]}
        worst = max(r["loss"] for r in results)
        print(f"{name:<24} {c.fmt(med['goodput'], '7.0f')} "
              f"{100 * med['loss']:7.1f} {100 * worst:6.1f} "
              f"{c.fmt(med['send_us'], '8.2f')} "
              f"{c.fmt(med['recv_us'], '8.2f')} "
              f"{med['send_calls']:7.0f} {med['reads']:7.0f}")
    return 0


def main(argv: list[str]) -> int:
    if argv and argv[0] == "compare":
        return compare(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("recv", "send"))
    parser.add_argument("port", type=int)
    parser.add_argument("what", help="recv: SIZE in bytes; send: FILE")
    parser.add_argument("--gro", action="store_true")
    parser.add_argument("--gso", action="store_true")
    parser.add_argument("--pace", type=float, metavar="MBPS")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))  # offload.py
    if args.mode == "recv":
        size = int(args.what)
        result = (receive_gro if args.gro else receive)(args.port, size)
    else:
        result = (send_gso if args.gso else send)(args.port, args.what,
                                                  args.pace)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
