"""The seeder's CPU time per CHUNK on its send path, without a leecher.

A real ``seeder.Seeder`` (its ``Library`` over a random file, its engine,
its socket) serves one REQUEST made by hand whose address is a sink
socket that never reads (loopback delivers or drops there, at the same
cost whatever we send); an ACK for the whole window follows every burst,
as a leecher's would.  Each mode sends ``--chunks`` chunks; the figure is
the process's CPU time (``time.process_time``: user + system, the
kernel's part of each send included) per chunk made (lost ones
included), median of ``--reps`` interleaved repetitions.  ``--loss P``:
the seeder's emulated loss (``seeder.py --loss``).

Modes (a mode this version of the seeder lacks is shown as ``-``):

* ``engine, bytes``: ``datagrams_to_send`` only (the file read and each
  CHUNK built as ``bytes``), nothing sent;
* ``engine, runs``: ``chunks_to_send`` only (``ChunkRun``s, nothing built);
* ``engine + sendto``: ``datagrams_to_send``, one ``sendto`` each;
* ``engine + GSO``: ``datagrams_to_send``, ``GsoSender.send_batch``;
* ``driver``: ``Seeder._send`` as ``seeder.py`` runs it (today: runs
  built in place by ``offload.ChunkSender`` and sent with UDP GSO);
* ``driver --no-offload``: the same, one datagram per system call;
* ``driver --pcap``, ``driver --no-offload --pcap``: the same, writing
  every datagram (and the emulated drops) to a capture file
  (``seeder.py --pcap``, in the bench's temporary folder).

Run it on two versions of seeder.py/seed_engine.py for a before/after.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections import deque

import common as c
import netem
import offload
import protocol as p
import seeder as seeder_module

SID = 0x5EED
BURST = getattr(seeder_module, "SEND_BURST", 64)


def make_seeder(folder: str, offload_on: bool, loss: float,
                capture: str | None = None):
    """A seeder on a free loopback port, its link losing ``loss``,
    writing ``capture`` when given; None when this version has no
    ``offload`` switch (and it is off) or no capture."""
    port = c.free_port(("127.0.0.1",))
    options = {} if offload_on else {"offload": False}
    if capture:
        options["pcap_path"] = capture
    try:
        return seeder_module.Seeder(
            "127.0.0.1", port, folder, link=netem.LinkSpec(loss=loss),
            rng_seed=1, log=lambda line: None, notice=lambda line: None,
            **options)
    except TypeError:
        return None


def start_session(seeder, sink, chunks: int, now: float) -> None:
    engine = seeder.engine
    info = seeder.library.index.files[0]
    request = p.Request(info.file_id, p.Order.SEQUENTIAL, ((0, chunks),),
                        0xFFFF, engine.token_for(sink, now))
    engine.receive_datagram(p.encode(request, SID), sink, now)


def engine_step(send):
    """A mode that asks the engine for a burst of bytes and hands it to
    ``send`` (a ``deque`` of ``(bytes, addr)``)."""
    def step(seeder, now):
        batch = deque(seeder.engine.datagrams_to_send(now, BURST))
        while batch and not send(seeder, batch):
            pass  # the socket buffer is full: try again at once
    return step


def runs_step(seeder, now):
    seeder.engine.chunks_to_send(now, BURST)


def driver_step(seeder, now):
    seeder._send(now)


def sender_of(kind):
    senders = {}

    def send(seeder, batch):
        sender = senders.get(id(seeder))
        if sender is None:
            sender = senders[id(seeder)] = (
                offload.make_sender(seeder.sock, True) if kind == "gso"
                else offload.PlainSender(seeder.sock))
        return sender.send_batch(batch)
    return send


MODES = {
    "engine, bytes": (True, engine_step(lambda seeder, batch: batch.clear()
                                        or True)),
    "engine, runs": (True, runs_step),
    "engine + sendto": (True, engine_step(sender_of("plain"))),
    "engine + GSO": (True, engine_step(sender_of("gso"))),
    "driver": (True, driver_step),
    "driver --no-offload": (False, driver_step),
    "driver --pcap": (True, driver_step),
    "driver --no-offload --pcap": (False, driver_step),
}


def measure(mode: str, folder: str, sink, chunks: int,
            loss: float) -> float | None:
    """CPU microseconds per chunk sent in ``mode``, or None when this
    version of the seeder cannot run it."""
    offload_on, step = MODES[mode]
    if step is runs_step and not hasattr(seeder_module.SeederEngine,
                                         "chunks_to_send"):
        return None
    capture = os.path.join(os.path.dirname(folder), "seeder.pcap") \
        if mode.endswith("--pcap") else None
    seeder = make_seeder(folder, offload_on, loss, capture)
    if seeder is None:
        return None
    try:
        engine = seeder.engine
        ack = p.encode(p.Ack(0xFFFFFFFF), SID)
        start_session(seeder, sink, chunks, time.monotonic())
        deadline = time.monotonic() + 60  # bounded whatever happens
        cpu = time.process_time()
        while engine.counters.link.sent < chunks:
            now = time.monotonic()
            step(seeder, now)
            engine.receive_datagram(ack, sink, now)
            if now > deadline:
                raise RuntimeError(f"{mode}: not done within 60 s")
        cpu = time.process_time() - cpu
        return cpu / engine.counters.link.sent * 1e6
    finally:
        seeder.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--loss", type=float, default=0.0,
                        help="the seeder's emulated loss (0..0.5)")
    args = parser.parse_args(argv)
    if not 0 < args.chunks <= 200_000 or not 0 < args.reps <= 50 \
            or not 0 <= args.loss <= 0.5:
        parser.error("--chunks in 1..200000, --reps in 1..50, --loss in "
                     "0..0.5")
    c.header("seeder CPU per chunk on the send path", __file__,
             sys.argv[1:] if argv is None else argv)
    with c.temp_dir("seedcpu") as tmp:
        share = os.path.join(tmp, "share")
        os.makedirs(share)
        c.random_file(os.path.join(share, "cpu.mp3"),
                      args.chunks * p.CHUNK_SIZE, 1)
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        try:
            figures = {mode: [] for mode in MODES}
            for _ in range(args.reps):
                for mode in MODES:
                    figures[mode].append(measure(
                        mode, share, sink.getsockname(), args.chunks,
                        args.loss))
        finally:
            sink.close()
    print(f"{args.chunks} chunks of {p.CHUNK_SIZE} bytes per run, "
          f"{args.reps} reps, burst {BURST}, emulated loss "
          f"{100 * args.loss:g} %, medians")
    print(f"{'mode':<27} {'us/chunk':>9}")
    for mode, values in figures.items():
        print(f"{mode:<27} {c.fmt(c.median(values), '9.2f', '        -')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
