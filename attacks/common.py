"""Shared helpers of the attack scripts: an in-memory or sparse chunk
source and a validated-peer harness around ``SeederEngine``.  No socket."""

from __future__ import annotations

import hashlib
import os
import resource
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import protocol as p  # noqa: E402
import seed_engine as se  # noqa: E402

ATTACKER = ("127.0.0.66", 4000)


class SparseSource:
    """Files of any size whose chunks are zeros (a sparse file's view):
    the engine's ChunkSource and catalog."""

    def __init__(self, sizes: dict[str, int]):
        infos = []
        for name, size in sizes.items():
            sha = hashlib.sha256(name.encode()).digest()
            infos.append(p.FileInfo(p.file_id_of(sha), size,
                                    p.chunk_count(size), p.CHUNK_SIZE, 0,
                                    sha, name))
        self.index = se.SearchIndex(infos)
        self.reads = 0

    def info(self, file_id):
        return self.index.info(file_id)

    def read(self, file_id, index):
        self.reads += 1
        info = self.index.info(file_id)
        return bytes(min(p.CHUNK_SIZE, info.size - index * p.CHUNK_SIZE))

    def search(self, query):
        return self.index.search(query)

    def __len__(self):
        return len(self.index)


def rss_mb() -> float:
    """Current resident set size in MB (Linux /proc)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def token(engine, addr, now):
    return engine.token_for(addr, now)


def send(engine, msg, addr=ATTACKER, sid=1, now=100.0):
    engine.receive_datagram(p.encode(msg, sid), addr, now)
