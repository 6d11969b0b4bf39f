"""P2P FACOM wire protocol: messages, sending orders and receive bookkeeping.

This module does no I/O: no sockets, no clock reads, no files.  Seeders and
leechers (``seeder.py``, ``leecher.py``) feed it bytes and numbers and send
what it gives back.  Every datagram is one header followed by a body:

Header (16 bytes, network byte order, ``HEADER``)

=========== ====== ==========================================================
field       bytes  meaning
=========== ====== ==========================================================
magic       2      ``b"PF"``
version     1      ``VERSION`` (1)
type        1      message type (``MsgType``)
flags       1      ``FLAG_*`` bits (last search page, retransmitted chunk,
                   paged search)
reserved    1      0
session     4      session id chosen by the leecher (0 when none)
length      2      body length in bytes
crc32       4      CRC-32 of header (this field zeroed) and body
=========== ====== ==========================================================

Bodies (fixed part packed with ``struct``, then a variable tail)

============== =============================================================
type           body
============== =============================================================
PING           nonce u32, padding (zeros; makes room for the PONG under
               the seeder's 3x anti-amplification limit)
PONG           nonce u32, token u32, files u16, load u16, order u8,
               ordered fraction u8 (percent), name (UTF-8)
SEARCH         token u32, [page u16 when ``FLAG_PAGE``], query (UTF-8;
               seeders answer at most ``MAX_QUERY`` bytes) — one SEARCH
               gets one page of results back; without ``FLAG_LAST`` the
               leecher asks for the next page
SEARCH_RESULT  count u16, then per file: id 8s, size u64, chunks u32,
               chunk size u16, duration ms u32, sha256 32s, name len u16,
               name (UTF-8)
REQUEST        file id 8s, order u8, ordered fraction u8 (percent),
               token u32, seed u32, window u16, count u16, ranges
               (start u32, end u32)
CHUNK          file id 8s, index u32, tx seq u32, send time ms u32, data
ACK            limit u32 (the seeder may send tx seq < limit)
NACK           limit u32, round u16, count u16, ranges
CANCEL         (empty)
DONE           sent u32, resent u32, dropped u32, duplicated u32,
               bytes sent u64
RETRY          token u32 (the REQUEST did not carry the address's token)
ERROR          code u16, text (UTF-8)
HASHES         token u32, file id 8s, page u16 — one page of the file's
               piece SHA-256 list, please (``pieces.py``)
HASH_PAGE      file id 8s, page u16, pages u16, hashes (32 bytes each, at
               most ``HASHES_PER_PAGE``; the last page may hold fewer)
HAVE           token u32, file id 8s, pieces u32 (the song's piece
               count), count u16, piece ranges (start u32, end u32) — the
               sender holds these verified pieces and shares them (a
               swarm's bitfield; an empty list says "I share, nothing yet");
               with ``FLAG_FETCHING``: pieces it is fetching from a
               seeder, a hint, not held
GET_PEERS      token u32, file id 8s — who else shares this song?
PEERS          file id 8s, count u16, then per peer: IPv4 4s, port u16
               (at most ``MAX_PEERS_LISTED``, the most recent first)
============== =============================================================

Ranges are half-open ``[start, end)`` chunk intervals.  Files are named on
the wire by ``file_id``: the first 8 bytes of the SHA-256 of their piece
hash list (``pieces.py``, like BitTorrent's info-hash), or of their own
SHA-256 for a seeder that publishes no piece hashes.  A datagram is
at most ``MAX_DATAGRAM`` (1472) bytes, so IP never fragments it.
"""

from __future__ import annotations

import bisect
import enum
import ipaddress
import itertools
import struct
import zlib
from array import array
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence, Union

MAGIC = b"PF"
VERSION = 1
HEADER = struct.Struct("!2sBBBxIHI")
MAX_DATAGRAM = 1472  # 1500 (Ethernet MTU) - 20 (IPv4) - 8 (UDP)
MAX_BODY = MAX_DATAGRAM - HEADER.size

FLAG_LAST = 0x01  # SEARCH_RESULT: last page of the answer
FLAG_RETRANSMIT = 0x02  # CHUNK: sent again after a NACK
FLAG_PAGE = 0x04  # SEARCH: a page number (u16) follows the token
# HAVE: these pieces are being fetched from a seeder, not held yet: other
# leechers then ask the seeder for other pieces first, so that its upload
# (the swarm's scarcest) carries each piece once rather than many times.
FLAG_FETCHING = 0x08

FILE_ID_SIZE = 8
SHA256_SIZE = 32
MAX_QUERY = 200
RANGE = struct.Struct("!II")


class MsgType(enum.IntEnum):
    PING = 1
    PONG = 2
    SEARCH = 3
    SEARCH_RESULT = 4
    REQUEST = 5
    CHUNK = 6
    ACK = 7
    NACK = 8
    CANCEL = 9
    DONE = 10
    RETRY = 11
    ERROR = 12
    HASHES = 13
    HASH_PAGE = 14
    HAVE = 15
    GET_PEERS = 16
    PEERS = 17


class Order(enum.IntEnum):
    SEQUENTIAL = 0
    RANDOM = 1
    SEMI_RANDOM = 2
    DEFAULT = 255  # REQUEST: "use the seeder's -m"


ORDER_NAMES = {
    "sequential": Order.SEQUENTIAL,
    "random": Order.RANDOM,
    "semi-random": Order.SEMI_RANDOM,
}


def order_name(order: Order) -> str:
    for name, value in ORDER_NAMES.items():
        if value == order:
            return name
    return "default"


class ErrorCode(enum.IntEnum):
    NOT_FOUND = 1  # no such file id
    FILE_GONE = 2  # the file vanished or changed while being served
    BAD_REQUEST = 3  # ranges out of bounds, too many ranges, bad order
    BUSY = 4  # too many sessions
    UNKNOWN_SESSION = 5


class ProtocolError(ValueError):
    """Raised by ``decode`` for any datagram that is not a valid message."""


CHUNK_FIXED = struct.Struct("!8sIII")
CHUNK_SIZE = 1400  # payload bytes per chunk; CHUNK datagram = 1436 bytes
assert HEADER.size + CHUNK_FIXED.size + CHUNK_SIZE <= MAX_DATAGRAM
# CHUNK is almost all the traffic: its header and fixed body part are read
# and written in one go (``chunk_fields``, ``encode_chunk``).
CHUNK_HEAD = struct.Struct(HEADER.format + CHUNK_FIXED.format[1:])
CHUNK_DATA_AT = CHUNK_HEAD.size  # the chunk's data starts here
MAX_CHUNK_DATA = MAX_DATAGRAM - CHUNK_DATA_AT
CRC_AT = HEADER.size - 4
_ZERO_CRC = bytes(4)


# ---------------------------------------------------------------- messages
@dataclass(frozen=True)
class Ping:
    nonce: int
    padding: int = 0
    TYPE = MsgType.PING


@dataclass(frozen=True)
class Pong:
    nonce: int
    token: int
    files: int
    load: int
    order: int
    ordered_percent: int
    name: str
    TYPE = MsgType.PONG


@dataclass(frozen=True)
class Search:
    query: str
    token: int = 0
    page: int = 0  # which page of the results (0: the first)
    TYPE = MsgType.SEARCH


@dataclass(frozen=True)
class FileInfo:
    file_id: bytes
    size: int
    chunks: int
    chunk_size: int
    duration_ms: int  # 0 when unknown
    sha256: bytes
    name: str


@dataclass(frozen=True)
class SearchResult:
    files: tuple[FileInfo, ...]
    TYPE = MsgType.SEARCH_RESULT


@dataclass(frozen=True)
class Request:
    file_id: bytes
    order: Order
    ranges: tuple[tuple[int, int], ...]
    window: int
    token: int = 0
    ordered_percent: int = 50
    seed: int = 0
    TYPE = MsgType.REQUEST


@dataclass(frozen=True)
class Chunk:
    file_id: bytes
    index: int
    tx_seq: int
    send_ms: int
    data: bytes
    TYPE = MsgType.CHUNK


@dataclass(frozen=True)
class Ack:
    limit: int
    TYPE = MsgType.ACK


@dataclass(frozen=True)
class Nack:
    limit: int
    round: int
    ranges: tuple[tuple[int, int], ...]
    TYPE = MsgType.NACK


@dataclass(frozen=True)
class Cancel:
    TYPE = MsgType.CANCEL


@dataclass(frozen=True)
class Done:
    sent: int
    resent: int
    dropped: int
    duplicated: int
    bytes_sent: int
    TYPE = MsgType.DONE


@dataclass(frozen=True)
class Retry:
    token: int
    TYPE = MsgType.RETRY


@dataclass(frozen=True)
class Error:
    code: int
    text: str
    TYPE = MsgType.ERROR


@dataclass(frozen=True)
class Hashes:
    """Ask for page ``page`` of a file's piece hash list."""

    file_id: bytes
    page: int
    token: int = 0
    TYPE = MsgType.HASHES


@dataclass(frozen=True)
class HashPage:
    """Page ``page`` of ``pages`` of a file's piece hash list."""

    file_id: bytes
    page: int
    pages: int
    hashes: tuple[bytes, ...]  # 32 bytes each
    TYPE = MsgType.HASH_PAGE


@dataclass(frozen=True)
class Have:
    """The sender holds (verified) and shares ``pieces`` of the song:
    piece ranges, added to what it said before.  ``token`` is the one the
    receiver gave the sender (its PONG): only a proven address is listed
    as a peer."""

    file_id: bytes
    pieces: int  # the song's piece count, so ranges are checked
    ranges: tuple[tuple[int, int], ...]
    token: int = 0
    TYPE = MsgType.HAVE


@dataclass(frozen=True)
class GetPeers:
    """Who else shares this song (peer exchange)?"""

    file_id: bytes
    token: int = 0
    TYPE = MsgType.GET_PEERS


@dataclass(frozen=True)
class Peers:
    """Some recent peers that share ``file_id``: IPv4 ``(host, port)``."""

    file_id: bytes
    peers: tuple[tuple[str, int], ...]
    TYPE = MsgType.PEERS


Message = Union[Ping, Pong, Search, SearchResult, Request, Chunk, Ack, Nack,
                Cancel, Done, Retry, Error, Hashes, HashPage, Have, GetPeers,
                Peers]


@dataclass(frozen=True)
class Datagram:
    """A decoded datagram: the message plus the header fields around it."""

    message: Message
    session: int = 0
    flags: int = 0


# ------------------------------------------------------------ body codecs
PING_BODY = struct.Struct("!I")
PONG_FIXED = struct.Struct("!IIHHBB")
SEARCH_FIXED = struct.Struct("!I")
PAGE_BYTES = 2  # SEARCH with FLAG_PAGE: a u16 page after the token
FILE_FIXED = struct.Struct("!8sQIHI32sH")
COUNT = struct.Struct("!H")
REQUEST_FIXED = struct.Struct("!8sBBIIHH")
ACK_BODY = struct.Struct("!I")
NACK_FIXED = struct.Struct("!IHH")
DONE_BODY = struct.Struct("!IIIIQ")
RETRY_BODY = struct.Struct("!I")
ERROR_FIXED = struct.Struct("!H")
HASHES_BODY = struct.Struct("!I8sH")
HASH_PAGE_FIXED = struct.Struct("!8sHH")
HAVE_FIXED = struct.Struct("!I8sIH")
GET_PEERS_BODY = struct.Struct("!I8s")
PEERS_FIXED = struct.Struct("!8sH")
PEER_ENTRY = struct.Struct("!4sH")
# A PEERS answer names at most this many peers: 32 x 6 bytes, so a
# 28-byte GET_PEERS gets 218 bytes back (and only from a proven address).
MAX_PEERS_LISTED = 32
# Hashes one HASH_PAGE carries: as many as fit in one datagram (45, a
# 1468-byte answer; the token makes sure the asker receives it).
HASHES_PER_PAGE = (MAX_DATAGRAM - HEADER.size - HASH_PAGE_FIXED.size) \
    // SHA256_SIZE

MAX_REQUEST_RANGES = (MAX_BODY - REQUEST_FIXED.size) // RANGE.size
MAX_NACK_RANGES = (MAX_BODY - NACK_FIXED.size) // RANGE.size
MAX_HAVE_RANGES = (MAX_BODY - HAVE_FIXED.size) // RANGE.size
MAX_TEXT = 400


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{what} is not UTF-8") from exc


def _unpack(fmt: struct.Struct, body: bytes, offset: int = 0) -> tuple:
    if len(body) < offset + fmt.size:
        raise ProtocolError("body too short")
    return fmt.unpack_from(body, offset)


def _exact(fmt: struct.Struct, body: bytes) -> tuple:
    if len(body) != fmt.size:
        raise ProtocolError(f"body must be {fmt.size} bytes")
    return fmt.unpack(body)


def _encode_ranges(ranges: Sequence[tuple[int, int]]) -> bytes:
    return b"".join(RANGE.pack(start, end) for start, end in ranges)


def _decode_ranges(body: bytes, offset: int, count: int) -> tuple:
    if len(body) != offset + count * RANGE.size:
        raise ProtocolError("range list length does not match its count")
    ranges = tuple(RANGE.iter_unpack(body[offset:]))
    for start, end in ranges:
        if start >= end:
            raise ProtocolError("empty or reversed range")
    return ranges


def _encode_file(info: FileInfo) -> bytes:
    name = info.name.encode("utf-8")
    return FILE_FIXED.pack(info.file_id, info.size, info.chunks,
                           info.chunk_size, info.duration_ms, info.sha256,
                           len(name)) + name


def _decode_files(body: bytes) -> tuple[FileInfo, ...]:
    (count,) = _unpack(COUNT, body)
    offset = COUNT.size
    files = []
    for _ in range(count):
        fid, size, chunks, csize, dur, sha, name_len = _unpack(
            FILE_FIXED, body, offset)
        offset += FILE_FIXED.size
        if len(body) < offset + name_len:
            raise ProtocolError("file name truncated")
        name = _text(body[offset:offset + name_len], "file name")
        offset += name_len
        files.append(FileInfo(fid, size, chunks, csize, dur, sha, name))
    if offset != len(body):
        raise ProtocolError("trailing bytes after file list")
    return tuple(files)


def _encode_body(msg: Message) -> bytes:
    if isinstance(msg, Ping):
        return PING_BODY.pack(msg.nonce) + bytes(msg.padding)
    if isinstance(msg, Pong):
        return PONG_FIXED.pack(msg.nonce, msg.token, msg.files, msg.load,
                               msg.order, msg.ordered_percent
                               ) + msg.name.encode("utf-8")
    if isinstance(msg, Search):
        page = msg.page.to_bytes(PAGE_BYTES, "big") if msg.page else b""
        return SEARCH_FIXED.pack(msg.token) + page + msg.query.encode(
            "utf-8")
    if isinstance(msg, SearchResult):
        return COUNT.pack(len(msg.files)) + b"".join(
            _encode_file(f) for f in msg.files)
    if isinstance(msg, Request):
        return REQUEST_FIXED.pack(
            msg.file_id, msg.order, msg.ordered_percent, msg.token, msg.seed,
            msg.window, len(msg.ranges)) + _encode_ranges(msg.ranges)
    if isinstance(msg, Ack):
        return ACK_BODY.pack(msg.limit)
    if isinstance(msg, Nack):
        return NACK_FIXED.pack(msg.limit, msg.round,
                               len(msg.ranges)) + _encode_ranges(msg.ranges)
    if isinstance(msg, Cancel):
        return b""
    if isinstance(msg, Done):
        return DONE_BODY.pack(msg.sent, msg.resent, msg.dropped,
                              msg.duplicated, msg.bytes_sent)
    if isinstance(msg, Retry):
        return RETRY_BODY.pack(msg.token)
    if isinstance(msg, Error):
        return ERROR_FIXED.pack(msg.code) + msg.text.encode("utf-8")[:MAX_TEXT]
    if isinstance(msg, Hashes):
        return HASHES_BODY.pack(msg.token, msg.file_id, msg.page)
    if isinstance(msg, HashPage):
        if any(len(h) != SHA256_SIZE for h in msg.hashes):
            raise ValueError("a piece hash is 32 bytes")
        return HASH_PAGE_FIXED.pack(msg.file_id, msg.page, msg.pages) \
            + b"".join(msg.hashes)
    if isinstance(msg, Have):
        return HAVE_FIXED.pack(msg.token, msg.file_id, msg.pieces,
                               len(msg.ranges)) + _encode_ranges(msg.ranges)
    if isinstance(msg, GetPeers):
        return GET_PEERS_BODY.pack(msg.token, msg.file_id)
    if isinstance(msg, Peers):
        if len(msg.peers) > MAX_PEERS_LISTED:
            raise ValueError(f"a PEERS lists at most {MAX_PEERS_LISTED}")
        return PEERS_FIXED.pack(msg.file_id, len(msg.peers)) + b"".join(
            PEER_ENTRY.pack(ipaddress.IPv4Address(host).packed, port)
            for host, port in msg.peers)
    raise TypeError(f"not a message: {msg!r}")


def _decode_body(kind: MsgType, body: bytes, flags: int = 0) -> Message:
    if kind is MsgType.PING:
        (nonce,) = _unpack(PING_BODY, body)
        return Ping(nonce, len(body) - PING_BODY.size)
    if kind is MsgType.PONG:
        fixed = _unpack(PONG_FIXED, body)
        return Pong(*fixed, _text(body[PONG_FIXED.size:], "seeder name"))
    if kind is MsgType.SEARCH:
        (token,) = _unpack(SEARCH_FIXED, body)
        at = SEARCH_FIXED.size
        if flags & FLAG_PAGE:
            if len(body) < at + PAGE_BYTES:
                raise ProtocolError("body too short")
            page = int.from_bytes(body[at:at + PAGE_BYTES], "big")
            return Search(_text(body[at + PAGE_BYTES:], "search query"),
                          token, page)
        return Search(_text(body[at:], "search query"), token)
    if kind is MsgType.SEARCH_RESULT:
        return SearchResult(_decode_files(body))
    if kind is MsgType.REQUEST:
        fid, order, percent, token, seed, window, count = _unpack(
            REQUEST_FIXED, body)
        if order not in Order._value2member_map_:
            raise ProtocolError(f"unknown sending order {order}")
        if percent > 100:
            raise ProtocolError("ordered fraction above 100 %")
        ranges = _decode_ranges(body, REQUEST_FIXED.size, count)
        return Request(fid, Order(order), ranges, window, token, percent, seed)
    if kind is MsgType.CHUNK:
        fid, index, tx_seq, send_ms = _unpack(CHUNK_FIXED, body)
        return Chunk(fid, index, tx_seq, send_ms, body[CHUNK_FIXED.size:])
    if kind is MsgType.ACK:
        return Ack(*_exact(ACK_BODY, body))
    if kind is MsgType.NACK:
        limit, round_, count = _unpack(NACK_FIXED, body)
        return Nack(limit, round_, _decode_ranges(body, NACK_FIXED.size,
                                                  count))
    if kind is MsgType.CANCEL:
        if body:
            raise ProtocolError("CANCEL carries no body")
        return Cancel()
    if kind is MsgType.DONE:
        return Done(*_exact(DONE_BODY, body))
    if kind is MsgType.RETRY:
        return Retry(*_exact(RETRY_BODY, body))
    if kind is MsgType.ERROR:
        (code,) = _unpack(ERROR_FIXED, body)
        return Error(code, _text(body[ERROR_FIXED.size:], "error text"))
    if kind is MsgType.HASHES:
        token, fid, page = _exact(HASHES_BODY, body)
        return Hashes(fid, page, token)
    if kind is MsgType.HASH_PAGE:
        return _decode_hash_page(body)
    if kind is MsgType.HAVE:
        return _decode_have(body)
    if kind is MsgType.GET_PEERS:
        token, fid = _exact(GET_PEERS_BODY, body)
        return GetPeers(fid, token)
    if kind is MsgType.PEERS:
        return _decode_peers(body)
    raise ProtocolError(f"unhandled message type {kind}")  # pragma: no cover


def _decode_hash_page(body: bytes) -> HashPage:
    fid, page, pages = _unpack(HASH_PAGE_FIXED, body)
    tail = body[HASH_PAGE_FIXED.size:]
    if len(tail) % SHA256_SIZE:
        raise ProtocolError("hash list is not a whole number of hashes")
    if page >= pages:
        raise ProtocolError("page number past the page count")
    return HashPage(fid, page, pages, tuple(
        tail[at:at + SHA256_SIZE] for at in range(0, len(tail), SHA256_SIZE)))


def _decode_have(body: bytes) -> Have:
    token, fid, count_pieces, count = _unpack(HAVE_FIXED, body)
    ranges = _decode_ranges(body, HAVE_FIXED.size, count)
    if any(end > count_pieces for _, end in ranges):
        raise ProtocolError("piece range past the piece count")
    return Have(fid, count_pieces, ranges, token)


def _decode_peers(body: bytes) -> Peers:
    fid, count = _unpack(PEERS_FIXED, body)
    if count > MAX_PEERS_LISTED:
        raise ProtocolError("more peers than a PEERS may list")
    if len(body) != PEERS_FIXED.size + count * PEER_ENTRY.size:
        raise ProtocolError("peer list length does not match its count")
    peers = []
    for packed, port in PEER_ENTRY.iter_unpack(body[PEERS_FIXED.size:]):
        if not port:
            raise ProtocolError("peer port 0")
        peers.append((str(ipaddress.IPv4Address(packed)), port))
    return Peers(fid, tuple(peers))


_CHUNK_TYPE = int(MsgType.CHUNK)


def encode(msg: Message, session: int = 0, flags: int = 0) -> bytes:
    """Pack one message into one datagram (header + body, CRC filled in)."""
    if isinstance(msg, Chunk):
        return encode_chunk(msg.file_id, msg.index, msg.tx_seq, msg.send_ms,
                            msg.data, session, flags)
    body = _encode_body(msg)
    if isinstance(msg, Search) and msg.page:
        flags |= FLAG_PAGE
    if len(body) > MAX_BODY:
        raise ValueError(f"{type(msg).__name__} body of {len(body)} bytes "
                         f"exceeds {MAX_BODY}")
    header = HEADER.pack(MAGIC, VERSION, msg.TYPE, flags, session,
                         len(body), 0)
    crc = zlib.crc32(body, zlib.crc32(header))
    return header[:-4] + crc.to_bytes(4, "big") + body


def encode_chunk(file_id: bytes, index: int, tx_seq: int, send_ms: int,
                 data, session: int = 0, flags: int = 0) -> bytes:
    """``encode(Chunk(...))`` without building the message: a seeder sends
    one per chunk.  ``data`` may be any bytes-like object."""
    if len(data) > MAX_CHUNK_DATA:
        raise ValueError(f"Chunk body of {CHUNK_FIXED.size + len(data)} "
                         f"bytes exceeds {MAX_BODY}")
    length = CHUNK_FIXED.size + len(data)
    head = CHUNK_HEAD.pack(MAGIC, VERSION, _CHUNK_TYPE, flags, session,
                           length, 0, file_id, index, tx_seq, send_ms)
    crc = zlib.crc32(data, zlib.crc32(head))  # with the CRC field zero
    return CHUNK_HEAD.pack(MAGIC, VERSION, _CHUNK_TYPE, flags, session,
                           length, crc, file_id, index, tx_seq,
                           send_ms) + data


def pack_chunk_into(buf, offset: int, file_id: bytes, index: int,
                    tx_seq: int, send_ms: int, data_len: int,
                    session: int = 0, flags: int = 0) -> int:
    """Write a CHUNK datagram in place: its ``data_len`` bytes of data must
    already be at ``buf[offset + CHUNK_DATA_AT:]`` (a seeder reads the file
    straight there); this writes the header and fixed body part in front
    of them and the CRC over the whole.  The bytes at ``buf[offset:offset
    + length]`` are then those of ``encode_chunk``; returns ``length``."""
    if not 0 <= data_len <= MAX_CHUNK_DATA:
        raise ValueError(f"Chunk body of {CHUNK_FIXED.size + data_len} "
                         f"bytes exceeds {MAX_BODY}")
    length = CHUNK_DATA_AT + data_len
    if offset < 0 or offset + length > len(buf):
        raise ValueError("the datagram does not fit in the buffer")
    CHUNK_HEAD.pack_into(buf, offset, MAGIC, VERSION, _CHUNK_TYPE, flags,
                         session, CHUNK_FIXED.size + data_len, 0, file_id,
                         index, tx_seq, send_ms)
    # The CRC field is zero: CRC the datagram in one go, through a view
    # (a seeder passes one) so that nothing is copied.
    view = buf if type(buf) is memoryview else memoryview(buf)
    crc = zlib.crc32(view[offset:offset + length])
    buf[offset + CRC_AT:offset + HEADER.size] = crc.to_bytes(4, "big")
    return length


def chunk_fields(data) -> tuple | None:
    """``(session, flags, file_id, index, tx_seq, send_ms)`` when ``data``
    (bytes or a memoryview) is a valid CHUNK datagram, else None: ``decode``
    then says what is wrong with it.  The chunk's data is
    ``data[CHUNK_DATA_AT:]``.  Builds no message: a leecher calls this
    once per chunk."""
    size = len(data)
    if not CHUNK_DATA_AT <= size <= MAX_DATAGRAM or data[3] != _CHUNK_TYPE:
        return None
    (magic, version, _, flags, session, length, crc, file_id, index, tx_seq,
     send_ms) = CHUNK_HEAD.unpack_from(data)
    if magic != MAGIC or version != VERSION or length != size - HEADER.size:
        return None
    # A leecher passes a memoryview: these slices copy nothing.
    if zlib.crc32(data[HEADER.size:], zlib.crc32(
            _ZERO_CRC, zlib.crc32(data[:CRC_AT]))) != crc:
        return None
    return session, flags, file_id, index, tx_seq, send_ms


def decode(data: bytes) -> Datagram:
    """Parse one datagram; any malformed input raises ``ProtocolError``.
    CHUNK, most of the traffic, skips the general path's type dispatch."""
    fields = chunk_fields(data)
    if fields is None:
        return _decode_any(data)
    session, flags, *chunk = fields
    return Datagram(Chunk(*chunk, bytes(data[CHUNK_DATA_AT:])), session,
                    flags)


def _decode_any(data: bytes) -> Datagram:
    """The general path of ``decode``: every type, every check."""
    if len(data) < HEADER.size:
        raise ProtocolError("datagram shorter than the header")
    if len(data) > MAX_DATAGRAM:
        raise ProtocolError("datagram longer than the maximum")
    magic, version, kind, flags, session, length, crc = HEADER.unpack_from(
        data)
    if magic != MAGIC:
        raise ProtocolError("bad magic")
    if version != VERSION:
        raise ProtocolError(f"unsupported protocol version {version}")
    if length != len(data) - HEADER.size:
        raise ProtocolError("length field does not match the datagram")
    body = bytes(data[HEADER.size:])
    zeroed = bytes(data[:CRC_AT]) + _ZERO_CRC
    if zlib.crc32(body, zlib.crc32(zeroed)) != crc:
        raise ProtocolError("CRC mismatch")
    try:
        msg_type = MsgType(kind)
    except ValueError:
        raise ProtocolError(f"unknown message type {kind}") from None
    return Datagram(_decode_body(msg_type, body, flags), session, flags)


def _pages(files: Iterable[FileInfo]) -> Iterator[tuple[FileInfo, ...]]:
    """The files in SEARCH_RESULT-sized groups, made as they are read."""
    page: list[FileInfo] = []
    used = COUNT.size
    for info in files:
        size = file_entry_size(info)
        if size + COUNT.size > MAX_BODY:
            continue  # a name this long cannot be announced at all
        if used + size > MAX_BODY:
            yield tuple(page)
            page, used = [], COUNT.size
        page.append(info)
        used += size
    yield tuple(page)


def search_result_pages(files: Iterable[FileInfo]) -> list[SearchResult]:
    """Split a list of files into SEARCH_RESULT messages that each fit."""
    return [SearchResult(page) for page in _pages(files)]


def search_result_page(files: Iterable[FileInfo],
                       number: int) -> tuple[SearchResult, bool]:
    """Page ``number`` of ``search_result_pages(files)`` and whether it is
    the last; made without building the pages after it.  A page past the
    end is empty and last."""
    pages = _pages(files)
    for page in itertools.islice(pages, number, None):
        return SearchResult(page), next(pages, None) is None
    return SearchResult(()), True


def file_entry_size(info: FileInfo) -> int:
    """Bytes one file takes in a SEARCH_RESULT body."""
    return FILE_FIXED.size + len(info.name.encode("utf-8"))


def file_id_of(sha256: bytes) -> bytes:
    return sha256[:FILE_ID_SIZE]


def chunk_count(size: int, chunk_size: int = CHUNK_SIZE) -> int:
    return (size + chunk_size - 1) // chunk_size


# ------------------------------------------------------------------ ranges
class RangeSet:
    """A set of non-negative integers kept as sorted disjoint [start, end)."""

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()):
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in ranges:
            self.add(start, end)

    def add(self, start: int, end: int | None = None) -> None:
        end = start + 1 if end is None else end
        if start >= end:
            return
        # Every range touching [start, end) is merged into one.
        lo = bisect.bisect_left(self._ends, start)
        hi = bisect.bisect_right(self._starts, end)
        if lo < hi:
            start = min(start, self._starts[lo])
            end = max(end, self._ends[hi - 1])
        self._starts[lo:hi] = [start]
        self._ends[lo:hi] = [end]

    def remove(self, start: int, end: int | None = None) -> None:
        end = start + 1 if end is None else end
        if start >= end:
            return
        lo = bisect.bisect_right(self._ends, start)
        hi = bisect.bisect_left(self._starts, end)
        if lo >= hi:
            return
        keep_starts, keep_ends = [], []
        if self._starts[lo] < start:
            keep_starts.append(self._starts[lo])
            keep_ends.append(start)
        if self._ends[hi - 1] > end:
            keep_starts.append(end)
            keep_ends.append(self._ends[hi - 1])
        self._starts[lo:hi] = keep_starts
        self._ends[lo:hi] = keep_ends

    def __contains__(self, value: int) -> bool:
        i = bisect.bisect_right(self._starts, value) - 1
        return i >= 0 and value < self._ends[i]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self._starts, self._ends))

    def __len__(self) -> int:
        """Number of ranges (not of integers: see ``count``)."""
        return len(self._starts)

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RangeSet) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"RangeSet({list(self)!r})"

    def count(self) -> int:
        return sum(e - s for s, e in self)

    def values(self) -> Iterator[int]:
        for start, end in self:
            yield from range(start, end)

    def first(self) -> int | None:
        return self._starts[0] if self._starts else None

    def intersection(self, other: "RangeSet") -> "RangeSet":
        result = RangeSet()
        for start, end in other:
            lo = bisect.bisect_right(self._ends, start)
            hi = bisect.bisect_left(self._starts, end)
            for i in range(lo, hi):
                result.add(max(start, self._starts[i]),
                           min(end, self._ends[i]))
        return result

    def head(self, max_ranges: int) -> list[tuple[int, int]]:
        return list(zip(self._starts[:max_ranges], self._ends[:max_ranges]))


# ---------------------------------------------------------- sending orders
class OrderRng:
    """A tiny seeded generator (SplitMix64) that every Python agrees on.

    The leecher recomputes the seeder's sending order from the REQUEST's
    seed, so both sides must shuffle identically whatever their Python
    version: ``random.shuffle`` does not promise that.
    """

    MASK = (1 << 64) - 1

    def __init__(self, seed: int):
        self.state = seed & self.MASK

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & self.MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.MASK
        return z ^ (z >> 31)

    def shuffle(self, items) -> None:
        self.shuffle_steps(items, 0, len(items) - 1, len(items))

    def shuffle_steps(self, items, base: int, top: int, steps: int) -> int:
        """Go on with a Fisher-Yates shuffle of ``items[base:]``, from
        its position ``top`` down, ``steps`` swaps at most; the next
        ``top`` (0 when the shuffle is over).  Split into steps or not,
        the same seed gives the same order."""
        stop = max(0, top - steps)
        for i in range(top, stop, -1):
            j = self.next() % (i + 1)
            items[base + i], items[base + j] = items[base + j], items[base + i]
        return stop


def send_order(ranges: Iterable[tuple[int, int]], order: Order, seed: int,
               ordered_fraction: float = 0.5) -> list[int]:
    """The chunk indices of ``ranges`` in the order a seeder sends them.

    ``semi-random`` is the original P2P FACOM's: the first part (``ordered
    fraction`` of the chunks) in order, the rest shuffled.
    """
    return list(send_order_array(ranges, order, seed, ordered_fraction))


def send_order_array(ranges: Iterable[tuple[int, int]], order: Order,
                     seed: int, ordered_fraction: float = 0.5) -> array:
    """``send_order`` as an ``array('I')``: 4 bytes a chunk, so a seeder
    can hold the order of a file of millions of chunks."""
    builder = SendOrderBuilder(ranges, order, seed, ordered_fraction)
    builder.step(len(builder.chunks))
    return builder.chunks


class SendOrderBuilder:
    """``send_order_array`` made a slice at a time: shuffling millions of
    chunks takes seconds, which a seeder spreads over its loop turns.
    ``chunks`` holds the chunks from the start and is shuffled in place;
    it is the sending order once ``step`` returned True."""

    def __init__(self, ranges: Iterable[tuple[int, int]], order: Order,
                 seed: int, ordered_fraction: float = 0.5):
        self.chunks = array("I")
        for start, end in ranges:
            self.chunks.extend(range(start, end))
        self._rng = OrderRng(seed)
        if order == Order.RANDOM:
            self._base = 0
        elif order == Order.SEMI_RANDOM:
            # The first part in order, the rest shuffled.
            self._base = round(len(self.chunks) * ordered_fraction)
        elif order == Order.SEQUENTIAL:
            self._base = len(self.chunks)
        else:
            raise ValueError(f"no sending order {order!r}")
        self._top = len(self.chunks) - self._base - 1

    @property
    def done(self) -> bool:
        return self._top <= 0

    def step(self, steps: int) -> bool:
        """At most ``steps`` swaps of the shuffle; True when it is over."""
        if self._top > 0:
            self._top = self._rng.shuffle_steps(self.chunks, self._base,
                                                self._top, steps)
        return self.done


def split_among(total: int, sources: int, block: int | None = None,
                max_ranges: int = MAX_REQUEST_RANGES) -> list[RangeSet]:
    """Deal ``total`` chunks to ``sources`` in round-robin blocks.

    Interleaved blocks let every seeder work near the start of the file at
    once, which is what playback needs first.  Blocks grow for big files
    so that each share fits in one REQUEST.
    """
    if sources <= 0:
        return []
    if block is None:  # small files: blocks small enough to share evenly
        block = max(4, min(32, total // (sources * 8)))
    per_source_blocks = -(-total // (block * sources))
    if per_source_blocks > max_ranges:
        block = -(-total // (max_ranges * sources))
    shares = [RangeSet() for _ in range(sources)]
    for n, start in enumerate(range(0, total, block)):
        shares[n % sources].add(start, min(start + block, total))
    return shares


# --------------------------------------------------- receiver bookkeeping
@dataclass
class ReceiveState:
    """What a leecher has of one file: which chunks arrived, which not.

    ``add`` runs once per chunk, so it only flags the chunk; ``missing``
    takes the arrivals out in runs when someone reads it."""

    total: int
    have: bytearray = field(init=False)
    received: int = 0
    duplicates: int = 0
    _missing: RangeSet = field(init=False, repr=False)
    _arrived: list = field(init=False, repr=False)  # not yet out of missing

    def __post_init__(self):
        self.have = bytearray(self.total)
        self._missing = RangeSet([(0, self.total)] if self.total else [])
        self._arrived = []
        self._arrived_runs = []  # (start, end) from add_run

    def add(self, index: int) -> bool:
        """Record chunk ``index``; False when it was a duplicate."""
        if not 0 <= index < self.total:
            raise ValueError(f"chunk {index} outside 0..{self.total - 1}")
        if self.have[index]:
            self.duplicates += 1
            return False
        self.have[index] = 1
        self.received += 1
        self._arrived.append(index)
        return True

    def add_run(self, start: int, end: int) -> list[tuple[int, int]]:
        """Record chunks ``start`` to ``end - 1`` in one go (a run that
        came together); the ``[start, end)`` runs of them that are new,
        the others counted as duplicates.  The scan is ``bytearray.find``:
        no Python work per chunk."""
        if not 0 <= start <= end <= self.total:
            raise ValueError(f"chunks {start}..{end - 1} outside "
                             f"0..{self.total - 1}")
        have, new, count, position = self.have, [], 0, start
        while position < end:
            first = have.find(0, position, end)
            if first == -1:
                break
            stop = have.find(1, first, end)
            if stop == -1:
                stop = end
            have[first:stop] = b"\x01" * (stop - first)
            new.append((first, stop))
            count += stop - first
            position = stop
        self._arrived_runs.extend(new)
        self.received += count
        self.duplicates += end - start - count
        return new

    @property
    def missing(self) -> RangeSet:
        if self._arrived:
            arrived = sorted(self._arrived)
            self._arrived.clear()
            for start, end in runs(arrived):
                self._missing.remove(start, end)
        if self._arrived_runs:
            for start, end in self._arrived_runs:
                self._missing.remove(start, end)
            self._arrived_runs.clear()
        return self._missing

    def discard(self, start: int, end: int) -> int:
        """Chunks ``[start, end)`` are missing again (a piece that failed
        its hash); how many of them we had."""
        missing = self.missing  # takes the pending arrivals out first
        had = sum(self.have[start:end])
        self.have[start:end] = bytes(end - start)
        self.received -= had
        missing.add(start, end)
        return had

    @property
    def complete(self) -> bool:
        return self.received == self.total

    def contiguous(self) -> int:
        """Number of chunks at the start of the file that have all arrived."""
        first = self.missing.first()
        return self.total if first is None else first

    def present(self) -> Iterator[tuple[int, int]]:
        """The ranges of chunks that have arrived."""
        start = 0
        for gap_start, gap_end in self.missing:
            if gap_start > start:
                yield start, gap_start
            start = gap_end
        if start < self.total:
            yield start, self.total

    def missing_in(self, ranges: RangeSet) -> RangeSet:
        return self.missing.intersection(ranges)


def runs(ordered: list[int]) -> Iterator[tuple[int, int]]:
    """The [start, end) runs of consecutive values in a sorted list."""
    start = previous = ordered[0]
    for value in ordered[1:]:
        if value != previous + 1:
            yield start, previous + 1
            start = value
        previous = value
    yield start, previous + 1
