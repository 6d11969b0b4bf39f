"""The terminal leecher with candidate speed-ups patched in (benchmarks only).

    python3 bench/whatif_leecher.py PATCHES get NAME -o DIR ...

PATCHES is ``none`` or a comma-separated list of the names below.  Each
patch replaces one piece of leecher.py / protocol.py at run time, in this
process only, so that bench/whatif.py can measure what a change to those
files would bring before anyone makes it.  Nothing here is used by the
program itself.

* ``decode``: a fast path in ``protocol.decode`` for CHUNK datagrams: no
  copies of the body for the CRC (memoryview), no enum lookup, no chain of
  type tests.  Every other message, and every bad datagram, goes through
  the original ``decode``.
* ``writes``: the chunks of one receive batch are written with one
  ``os.pwritev`` per run of consecutive chunks instead of one ``os.pwrite``
  each; flushed before every read of the file and every progress save.
* ``renack``: a NACKed chunk that does not come back is asked for again
  after max(10 ms, 2 x RTT, 2 x the smoothed NACK round trip) instead of
  at least 100 ms, and the loop wakes up when that time comes instead of
  polling every 100 ms.
* ``rto``: the silence timeout floor (``RTO_FLOOR``) 50 ms instead of 250 ms
  (a lost DONE costs RTO + 2 x RTO before the tail is NACKed).
"""

from __future__ import annotations

import os
import sys
import zlib
from operator import itemgetter

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(BENCH))

import cli  # noqa: E402
import leecher  # noqa: E402
import protocol as p  # noqa: E402


def patch_decode() -> None:
    original = p.decode
    header, fixed = p.HEADER, p.CHUNK_FIXED
    head_n, data_at = p.HEADER.size, p.HEADER.size + p.CHUNK_FIXED.size
    chunk_type = int(p.MsgType.CHUNK)
    zero_crc = b"\0\0\0\0"
    magic, version = p.MAGIC, p.VERSION
    crc32 = zlib.crc32
    Chunk, Datagram = p.Chunk, p.Datagram

    def decode(data):
        n = len(data)
        if data_at <= n <= p.MAX_DATAGRAM and data[3] == chunk_type:
            mag, ver, _, flags, session, length, crc = header.unpack_from(
                data)
            if mag == magic and ver == version and length == n - head_n:
                view = memoryview(data)
                if crc32(view[head_n:], crc32(zero_crc, crc32(
                        view[:head_n - 4]))) == crc:
                    fid, index, tx_seq, send_ms = fixed.unpack_from(
                        data, head_n)
                    return Datagram(Chunk(fid, index, tx_seq, send_ms,
                                          data[data_at:]), session, flags)
        return original(data)  # other messages and all errors, unchanged
    p.decode = decode


def patch_writes() -> None:
    D = leecher.Download
    iov_max = min(os.sysconf("SC_IOV_MAX"), 1024)

    def _write_chunk(self, index, data):
        pending = self.__dict__.setdefault("_pending_writes", [])
        pending.append((index, data))
        if len(pending) >= 4096:
            flush(self)

    def flush(self):
        pending = self.__dict__.get("_pending_writes")
        if not pending:
            return
        pending.sort(key=itemgetter(0))
        size = self.info.chunk_size
        start = 0
        for k in range(1, len(pending) + 1):
            if k < len(pending) and pending[k][0] == pending[k - 1][0] + 1 \
                    and k - start < iov_max:
                continue
            blocks = [data for _, data in pending[start:k]]
            offset = pending[start][0] * size
            try:
                written = os.pwritev(self._fd, blocks, offset)
                total = sum(len(b) for b in blocks)
                if written < total:  # short write: the rest one by one
                    rest = b"".join(blocks)[written:]
                    os.pwrite(self._fd, rest, offset + written)
            except OSError as exc:
                pending.clear()
                raise cli.RunError(f"cannot write {self.part_path}: "
                                   f"{exc.strerror or exc} (partial file "
                                   f"kept)") from None
            start = k
        pending.clear()

    def flushing(method):
        def wrapper(self, *args, **kwargs):
            flush(self)
            return method(self, *args, **kwargs)
        return wrapper

    D._write_chunk = _write_chunk
    for name in ("_check_timers", "_feed_player", "_finish",
                 "_save_progress"):
        setattr(D, name, flushing(getattr(D, name)))


def patch_renack(floor: float = 0.01) -> None:
    D = leecher.Download
    store, next_timer = D._store, D._next_timer

    def _store(self, chunk, retransmit, transfer, addr, now):
        asked = self.nacked_at.get(chunk.index)
        store(self, chunk, retransmit, transfer, addr, now)
        if retransmit and asked is not None:
            sample = 2 * (now - asked)
            smooth = self.__dict__.get("_renack_smooth")
            smooth = sample if smooth is None else 0.8 * smooth + 0.2 * sample
            self._renack_smooth = smooth
            rtt = (transfer.peer.rtt or 0.0) if transfer else 0.0
            self.renack_after = max(floor, 2 * rtt, smooth)

    def _next_timer(self, now):
        wake = next_timer(self, now)
        if self.nacked_at:  # O(n) here; a deque in NACK order in a fix
            wake = min(wake, min(self.nacked_at.values())
                       + self.renack_after)
        return max(now, wake)
    D._store, D._next_timer = _store, _next_timer


def patch_rto(floor: float = 0.05) -> None:
    leecher.RTO_FLOOR = floor


PATCHES = {"decode": patch_decode, "writes": patch_writes,
           "renack": patch_renack, "rto": patch_rto}


def main(argv: list[str]) -> int:
    names = [] if argv[0] == "none" else argv[0].split(",")
    for name in names:
        PATCHES[name]()
    return leecher.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
