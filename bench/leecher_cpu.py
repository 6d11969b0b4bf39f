"""Leecher CPU per chunk, without sockets: the engine and the write path.

A pre-built arena of valid CHUNK datagrams for ``--chunks`` chunks (one
seeder, one session, sequential order, as the receiver hands them over:
memoryviews of ``(view, addr)`` in batches of ``--batch``) is fed to
``DownloadEngine.receive_batch``, then the driver's write path
(``PartFile.write`` of ``take_fresh()`` and ``hash_prefix``) and the
SHA-256 check at the end (``PartFile.finish`` without the fsync cost
counted apart).  Reported: CPU µs per chunk (process time), median of
``--reps`` runs, for the whole path and for the engine alone.

``--loss P`` leaves out a fraction of the datagrams (seeded) so that runs
are cut and the recovery path runs too (the NACKed chunks never come:
only the per-chunk cost of what arrives is counted).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

import common as c

import download_engine as de  # noqa: E402  (common puts ROOT on sys.path)
import leecher  # noqa: E402
import protocol as p  # noqa: E402

SEEDER = ("127.0.0.1", 9000)


def make_song(chunks: int, seed: int) -> tuple[p.FileInfo, bytes]:
    import hashlib
    rng = random.Random(seed)
    data = rng.randbytes(chunks * p.CHUNK_SIZE - p.CHUNK_SIZE // 3)
    sha = hashlib.sha256(data).digest()
    info = p.FileInfo(p.file_id_of(sha), len(data),
                      p.chunk_count(len(data)), p.CHUNK_SIZE, 0, sha,
                      "bench.mp3")
    return info, data


def build_arena(info: p.FileInfo, data: bytes, session: int,
                keep) -> list[memoryview]:
    """One view per datagram, all in one arena (as a receiver's)."""
    size = p.CHUNK_DATA_AT + info.chunk_size
    indices = [i for i in range(info.chunks) if keep(i)]
    arena = bytearray(len(indices) * size)
    views, offset = [], 0
    for tx_seq, index in enumerate(indices):
        start = index * info.chunk_size
        length = min(info.chunk_size, info.size - start)
        arena[offset + p.CHUNK_DATA_AT:offset + p.CHUNK_DATA_AT + length] = \
            data[start:start + length]
        p.pack_chunk_into(arena, offset, info.file_id, index, tx_seq,
                          tx_seq // 10, length, session)
        views.append(memoryview(arena)[offset:offset + p.CHUNK_DATA_AT
                                       + length])
        offset += size
    return views


def one_run(info, data, batch: int, loss: float, seed: int, folder: str,
            rep: int) -> tuple[float, float, int]:
    """(CPU s of the whole path, CPU s of the engine alone, chunks fed)."""
    peer = de.Peer(SEEDER, rtt=0.001)
    options = de.Options("sequential", window=4096, seed=seed)
    engine = de.DownloadEngine(info, [peer], 0.0, options)
    engine.start(0.0)
    engine.datagrams_to_send(0.0)
    (_, session), = engine.transfers
    rng = random.Random(seed)
    views = build_arena(info, data, session,
                        lambda i: not loss or rng.random() >= loss)
    part = leecher.PartFile(info, os.path.join(folder, f"run-{rep}.mp3"))
    part.open()
    batches = [[(view, SEEDER) for view in views[first:first + batch]]
               for first in range(0, len(views), batch)]
    engine_cpu = 0.0
    clock = time.process_time
    start = clock()
    now = 0.0
    try:
        for datagrams in batches:
            now += 0.001
            before = clock()
            engine.receive_batch(datagrams, now)
            engine.datagrams_to_send(now)
            engine_cpu += clock() - before
            part.write_runs(engine.take_runs(), engine.state)
            part.hash_prefix(engine.state.contiguous())
        if engine.complete:
            part.finish()
    finally:
        part.close()
    total = clock() - start
    for suffix in ("", ".part", leecher.SIDECAR_SUFFIX):
        path = os.path.join(folder, f"run-{rep}.mp3{suffix}")
        if os.path.exists(path):
            os.remove(path)
    return total, engine_cpu, len(views)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=leecher.RECEIVE_BATCH)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--loss", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    c.header("leecher CPU per chunk (engine + write path, no sockets)",
             __file__, sys.argv[1:] if argv is None else argv)
    info, data = make_song(args.chunks, args.seed)
    totals, engines = [], []
    with c.temp_dir("cpu") as folder:
        for rep in range(args.reps):
            total, engine, fed = one_run(info, data, args.batch, args.loss,
                                         args.seed, folder, rep)
            totals.append(total / fed * 1e6)
            engines.append(engine / fed * 1e6)
    print(f"{args.chunks} chunks, batches of {args.batch}, loss "
          f"{args.loss:.0%}, median of {args.reps}")
    print(f"engine + write path  {c.median(totals):6.2f} µs/chunk "
          f"(min {min(totals):.2f})")
    print(f"engine alone         {c.median(engines):6.2f} µs/chunk "
          f"(min {min(engines):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
