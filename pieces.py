"""Pieces: a song's chunks in groups of ``PIECE_CHUNKS``, each with its
SHA-256, so that a leecher verifies what it got piece by piece.

Pure: no socket, no file, no clock.  The seeder's driver hashes a file
once (``PieceHasher``: the whole-file SHA-256 and the piece hashes in the
same pass); the song's id on the wire is the first 8 bytes of the SHA-256
of the concatenated piece hashes (``file_id_from``), as BitTorrent's
info-hash names a torrent by the hash of its piece list.  A leecher
fetches the list in pages (``HashList``), checks it against the id, and
keeps per piece what is verified and who sent its chunks
(``PieceBook``): a piece that fails is fetched again, and comparing the
chunks of the bad copy with the good one names the peer that lied.

A seeder that publishes no list keeps the old id (the first 8 bytes of
the file's SHA-256, ``legacy``): its songs are checked whole, at the end.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Iterable

import protocol as p

# 16 chunks = 22.4 KB a piece, ~1.4 s of a 128 kbit/s song: enough pieces
# for rarest-first to spread.  With 64-chunk pieces the classroom's 20 s
# song (230 chunks) had only 4: 8 leechers started together on
# 127.0.0.21-28 (the seeder at --rate 400, --seed-for 15) mostly fetched
# the same pieces from the seeder, which served 685 chunks (2.97x the
# song), and every leecher finished at 19.3 s; with 16-chunk pieces (15)
# the seeder served 432 (1.88x), all done at 12.1 s.  A bad piece costs
# at most 22.4 KB to fetch again, and the list stays small: 32 bytes per
# 16 chunks, 0.14 % of the song; a 200 MB song's list is ~200 HASH_PAGEs.
# (BitTorrent's 256 KB+ pieces suit bigger files and swarms.)
PIECE_CHUNKS = 16
HASH_SIZE = p.SHA256_SIZE


def piece_count(chunks: int) -> int:
    return (chunks + PIECE_CHUNKS - 1) // PIECE_CHUNKS


def chunk_range(piece: int, chunks: int) -> tuple[int, int]:
    """The ``[start, end)`` chunks of ``piece`` in a file of ``chunks``."""
    start = piece * PIECE_CHUNKS
    return start, min(chunks, start + PIECE_CHUNKS)


def page_count(pieces: int) -> int:
    return max(1, -(-pieces // p.HASHES_PER_PAGE))


def page_of(hashes: bytes, page: int) -> tuple[bytes, ...]:
    """Page ``page`` of the concatenated list ``hashes``."""
    first = page * p.HASHES_PER_PAGE * HASH_SIZE
    last = min(len(hashes), first + p.HASHES_PER_PAGE * HASH_SIZE)
    return tuple(hashes[at:at + HASH_SIZE]
                 for at in range(first, last, HASH_SIZE))


def file_id_from(hashes: bytes) -> bytes:
    """The song's id: the start of the SHA-256 of its piece list."""
    return hashlib.sha256(hashes).digest()[:p.FILE_ID_SIZE]


def legacy(info: p.FileInfo) -> bool:
    """Named by its own SHA-256: a seeder without piece hashes."""
    return info.file_id == p.file_id_of(info.sha256)


def id_plausible(info: p.FileInfo) -> bool:
    """An id that may be right.  A file of one piece has the list
    ``[sha256]``, so its id is known from the info alone; a longer one's
    is checked when its list is fetched."""
    if legacy(info):
        return True
    if piece_count(info.chunks) <= 1:
        return info.file_id == file_id_from(info.sha256)
    return True


class PieceHasher:
    """A file's SHA-256 and its piece hashes, fed its bytes in order in
    blocks of any size: the seeder reads each file once."""

    def __init__(self, chunk_size: int = p.CHUNK_SIZE):
        self.piece_bytes = chunk_size * PIECE_CHUNKS
        self.whole = hashlib.sha256()
        self.piece = hashlib.sha256()
        self.in_piece = 0
        self.hashes: list[bytes] = []

    def update(self, block) -> None:
        view = memoryview(block)
        self.whole.update(view)
        while view:
            take = min(len(view), self.piece_bytes - self.in_piece)
            self.piece.update(view[:take])
            self.in_piece += take
            view = view[take:]
            if self.in_piece == self.piece_bytes:
                self._close_piece()

    def _close_piece(self) -> None:
        self.hashes.append(self.piece.digest())
        self.piece, self.in_piece = hashlib.sha256(), 0

    def digest(self) -> tuple[bytes, bytes]:
        """``(sha256, piece hashes concatenated)``."""
        if self.in_piece:
            self._close_piece()
        return self.whole.digest(), b"".join(self.hashes)


def hash_bytes(data: bytes, chunk_size: int = p.CHUNK_SIZE
               ) -> tuple[bytes, bytes]:
    """``PieceHasher`` over bytes held in memory (tests, simulations)."""
    hasher = PieceHasher(chunk_size)
    hasher.update(data)
    return hasher.digest()


class HashList:
    """One peer's pages of a file's piece list, as they come: bounded to
    the size the file's chunk count implies, whatever a peer sends."""

    def __init__(self, info: p.FileInfo):
        self.pieces = piece_count(info.chunks)
        self.pages = page_count(self.pieces)
        self.file_id = info.file_id
        self._got: dict[int, tuple[bytes, ...]] = {}

    def expected(self, page: int) -> int:
        """How many hashes page ``page`` holds."""
        return min(p.HASHES_PER_PAGE,
                   self.pieces - page * p.HASHES_PER_PAGE)

    def add(self, msg: p.HashPage) -> bool:
        """Take a page; False when it cannot belong to this list."""
        if msg.file_id != self.file_id or msg.pages != self.pages \
                or not 0 <= msg.page < self.pages \
                or len(msg.hashes) != self.expected(msg.page):
            return False
        self._got.setdefault(msg.page, msg.hashes)
        return True

    def missing(self) -> list[int]:
        return [n for n in range(self.pages) if n not in self._got]

    @property
    def complete(self) -> bool:
        return len(self._got) == self.pages

    def joined(self) -> bytes:
        return b"".join(h for n in range(self.pages) for h in self._got[n])

    def matches(self) -> bool:
        """Complete, and its hash is the song's id."""
        return self.complete and file_id_from(self.joined()) == self.file_id


class PieceBook:
    """A leecher's bookkeeping per piece: the list (once known), which
    pieces are verified, which wait for the driver to check them, who
    sent each chunk, the chunk CRCs of a bad copy (for blame) and how many
    bad pieces each peer sent."""

    def __init__(self, info: p.FileInfo, verified: Iterable[int] = ()):
        self.info = info
        self.pieces = piece_count(info.chunks)
        self.hashes: bytes | None = None
        self.verified = bytearray(self.pieces)
        for piece in verified:
            if 0 <= piece < self.pieces:
                self.verified[piece] = 1
        self.ready: set[int] = set()  # complete, not verified
        self.sender = bytearray(info.chunks)  # peer slot per chunk, 0: none
        self.bad_copy: dict[int, tuple[list, bytes]] = {}  # crcs, senders
        self.strikes: dict[int, int] = {}  # peer slot -> bad pieces
        self.bad_pieces = 0
        self._prefix = 0  # pieces verified from the start

    def of_chunk(self, index: int) -> int:
        return index // PIECE_CHUNKS

    def range(self, piece: int) -> tuple[int, int]:
        return chunk_range(piece, self.info.chunks)

    def touch(self, have: bytearray, pieces: Iterable[int]) -> None:
        """Pieces that got chunks: the complete ones wait for a check."""
        for piece in pieces:
            start, end = self.range(piece)
            if not self.verified[piece] and 0 not in have[start:end]:
                self.ready.add(piece)

    def expected(self, piece: int) -> bytes | None:
        if self.hashes is None:
            return None
        return self.hashes[piece * HASH_SIZE:(piece + 1) * HASH_SIZE]

    def check(self, piece: int, data) -> bool:
        """Does ``data`` (the piece's bytes) match the list?"""
        return hashlib.sha256(data).digest() == self.expected(piece)

    def mark_verified(self, piece: int) -> None:
        self.verified[piece] = 1
        self.ready.discard(piece)

    def senders(self, piece: int) -> set[int]:
        start, end = self.range(piece)
        return set(self.sender[start:end]) - {0}

    def chunk_crcs(self, piece: int, data) -> list[int]:
        size = self.info.chunk_size
        view = memoryview(data)
        return [zlib.crc32(view[at:at + size])
                for at in range(0, len(view), size)]

    def liars(self, piece: int, good) -> set[int]:
        """The peers whose chunks of the recorded bad copy of ``piece``
        differ from ``good`` (its verified bytes)."""
        crcs, senders = self.bad_copy.pop(piece)
        return {senders[n] for n, crc in enumerate(self.chunk_crcs(
            piece, good)) if n < len(crcs) and crcs[n] != crc
            and senders[n]}

    def all_verified(self) -> bool:
        return self.verified_prefix_pieces() == self.pieces

    def verified_prefix_pieces(self) -> int:
        while self._prefix < self.pieces and self.verified[self._prefix]:
            self._prefix += 1
        return self._prefix

    def verified_prefix(self) -> int:
        """Chunks from the start of the file in verified pieces."""
        return min(self.info.chunks,
                   self.verified_prefix_pieces() * PIECE_CHUNKS)

    def verified_ranges(self) -> list[tuple[int, int]]:
        """The verified pieces as ``[start, end)`` piece ranges."""
        done = [n for n in range(self.pieces) if self.verified[n]]
        return list(p.runs(done)) if done else []
