"""Captures written by the program itself: classic pcap, no root, stdlib only.

A driver (seeder, leecher, experiment) hands every datagram it sends or
receives to a ``Capture``; the file opens in Wireshark or ``tshark`` like a
capture taken on the wire, and ``wireshark/p2p_facom.lua`` decodes it.

File format (classic pcap, https://www.tcpdump.org/linktypes.html):

- global header: magic ``0xa1b2c3d4`` (microsecond timestamps), version
  2.4, snap length ``SNAPLEN``, link type ``LINKTYPE_IPV4`` (228: every
  record starts with an IPv4 header, no Ethernet);
- per datagram: a record header (seconds, microseconds, captured length,
  original length), a made-up IPv4 header and UDP header carrying the real
  addresses and ports, then the datagram itself.

Emulated drops (the seeder's ``--loss``, the leecher's ``--loss``) are
written too, with the IPv4 header's reserved flag bit set
(``EMULATED_DROP_FLAG``): RFC 791 says it must be zero, so no real stack
ever sets it and a capture taken by ``dumpcap`` never has it.  The
dissector shows those datagrams as "emulated drop"
(``pf.emulated_drop``); a datagram that is simply missing was lost for real.

How a driver uses it::

    try:
        capture = pcap.open_capture(args.pcap, sock.getsockname())
    except pcap.CaptureError as exc:      # one line, e.g. a bad folder
        raise cli.UsageError(str(exc))
    ...
    sock.sendto(data, addr); capture.sent(data, addr, now)
    capture.sent(data, addr, now, dropped=True)    # the emulated link ate it
    capture.received(view, addr, now)              # before decoding it
    capture.received(view, addr, now, dropped=True)  # --loss threw it away
    ...
    print(capture.close())   # "capture F: N datagrams" (or what went wrong)

A write that fails mid-run (disk full) stops the capture, never the
driver: ``close()`` then returns the reason in one line.
"""

from __future__ import annotations

import socket
import struct
import time

import protocol as p

LINKTYPE_IPV4 = 228
PCAP_MAGIC = 0xA1B2C3D4  # microsecond timestamps
PCAP_VERSION = (2, 4)
SNAPLEN = 65535
GLOBAL_HEADER = struct.Struct("<IHHiIII")
RECORD_HEADER = struct.Struct("<IIII")
_pack_record = RECORD_HEADER.pack
_CHUNK_TYPE = int(p.MsgType.CHUNK)
# IPv4 (no options) then UDP, both in network byte order.
IP_UDP_HEADER = struct.Struct("!BBHHHBBH4s4sHHHH")
IP_HEADER_SIZE = 20
UDP_HEADER_SIZE = 8
IPV4_VERSION_IHL = 0x45  # version 4, header of 5 32-bit words
IP_TTL = 64  # what Linux sends with
IPPROTO_UDP = 17
EMULATED_DROP_FLAG = 0x8000  # IPv4 reserved flag: see the module docstring
MAX_PAYLOAD = SNAPLEN - IP_HEADER_SIZE - UDP_HEADER_SIZE
# A long experiment writes a few MB per song; this stops a runaway capture
# from filling the disk.  What no longer fits is counted, not written.
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
FLUSH_AT = 1 << 20  # one write(2) per ~700 chunks
MAX_CACHED_ADDRESSES = 1024  # packed IPs kept; hostile senders can't grow it
MAX_CACHED_HEADERS = 4096  # (addresses, size) pairs whose headers are kept
IP_DONT_FRAGMENT = 0x4000  # our datagrams fit the MTU: IP ID 0 (RFC 6864)


class CaptureError(Exception):
    """The capture file cannot be written; ``str()`` is one clear line."""


def _ip_checksum(header: bytes) -> int:
    """RFC 791 header checksum: one's complement sum of 16-bit words."""
    total = sum(struct.unpack("!10H", header))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class PcapWriter:
    """Append datagrams to a classic pcap file, bounded to ``max_bytes``.

    ``write`` appends to a buffer that goes out once per ``FLUSH_AT``
    bytes.  ``close`` (or the ``with`` block's end) writes the rest: a
    driver must call it before it exits.  (A writer thread was tried: it
    cost more CPU than the copy into the kernel it took off this one.)"""

    def __init__(self, path: str, max_bytes: int = DEFAULT_MAX_BYTES,
                 chunk_data: int | None = None):
        self.path = path
        # Bytes of each CHUNK's data kept (None: all), like tcpdump -s: the
        # headers stay whole, the file shrinks ~10x, the CRC is unverified.
        self.snap_at = None if chunk_data is None else \
            p.CHUNK_DATA_AT + max(0, chunk_data)
        try:
            self._file = open(path, "wb", buffering=0)
        except OSError as exc:
            raise CaptureError(f"cannot write capture {path}: "
                               f"{exc.strerror or exc}") from None
        self.max_bytes = max_bytes
        self._buffer = bytearray(GLOBAL_HEADER.pack(
            PCAP_MAGIC, *PCAP_VERSION, 0, 0, SNAPLEN, LINKTYPE_IPV4))
        self.written_bytes = len(self._buffer)  # accepted, maybe not yet out
        self.records = 0
        self.skipped = 0  # datagrams left out: file full, failed or closed
        self.error: str | None = None  # a write that failed mid-run
        self._open = True
        self._packed: dict[str, bytes] = {}
        self._headers: dict[tuple, bytes] = {}

    def _pack_ip(self, ip: str) -> bytes:
        packed = self._packed.get(ip)
        if packed is None:
            try:
                packed = socket.inet_aton(ip)
            except (OSError, TypeError):
                packed = bytes(4)  # not IPv4: shown as 0.0.0.0
            if len(self._packed) >= MAX_CACHED_ADDRESSES:
                self._packed.clear()
            self._packed[ip] = packed
        return packed

    def _make_headers(self, key: tuple) -> bytes:
        """The IPv4 and UDP headers of one datagram.  They depend only on
        ``key`` (the IP ID is 0 with DF set, RFC 6864), so a chunk stream
        reuses them."""
        src, dst, size, dropped = key
        length = IP_HEADER_SIZE + UDP_HEADER_SIZE + size
        flags = IP_DONT_FRAGMENT | (EMULATED_DROP_FLAG if dropped else 0)
        fields = [IPV4_VERSION_IHL, 0, length, 0, flags, IP_TTL, IPPROTO_UDP,
                  0, self._pack_ip(src[0]), self._pack_ip(dst[0]),
                  src[1] & 0xFFFF, dst[1] & 0xFFFF, UDP_HEADER_SIZE + size,
                  0]  # UDP checksum 0: "none"
        fields[7] = _ip_checksum(IP_UDP_HEADER.pack(*fields)[:IP_HEADER_SIZE])
        headers = IP_UDP_HEADER.pack(*fields)
        if len(self._headers) >= MAX_CACHED_HEADERS:
            self._headers.clear()
        self._headers[key] = headers
        return headers

    def write(self, datagram, src: tuple, dst: tuple, t: float,
              dropped: bool = False) -> bool:
        """Write one UDP datagram from ``src`` to ``dst`` ((ip, port)) at
        ``t`` (seconds since the epoch); False when it was left out."""
        size = len(datagram)
        if size > MAX_PAYLOAD:
            datagram, size = datagram[:MAX_PAYLOAD], MAX_PAYLOAD
        kept, snap_at = size, self.snap_at
        if snap_at is not None and size > snap_at \
                and datagram[3] == _CHUNK_TYPE:
            datagram, kept = datagram[:snap_at], snap_at
        record = RECORD_HEADER.size + IP_HEADER_SIZE + UDP_HEADER_SIZE + kept
        if not self._open or self.written_bytes + record > self.max_bytes:
            self.skipped += 1
            return False
        key = (src, dst, size, dropped)
        headers = self._headers.get(key) or self._make_headers(key)
        seconds = int(t)
        buffer = self._buffer
        buffer += _pack_record(seconds, int((t - seconds) * 1e6),
                               record - RECORD_HEADER.size,
                               IP_HEADER_SIZE + UDP_HEADER_SIZE + size)
        buffer += headers
        buffer += datagram
        self.written_bytes += record
        self.records += 1
        if len(buffer) >= FLUSH_AT:
            self._flush()
        return True

    def write_run(self, buf, seg_size: int, count: int, src: tuple,
                  dst: tuple, t: float, dropped: bool = False) -> int:
        """The first ``count`` datagrams of ``buf``, which holds datagrams
        of ``seg_size`` bytes back to back, the last maybe shorter (a UDP
        GSO send), written as ``write`` writes each; how many were.  The
        full-size ones share one time and one size, hence one record
        header and IPv4/UDP header: a capture of a run costs a copy per
        datagram, not a header built per datagram."""
        view = memoryview(buf)
        full = min(count, len(view) // seg_size)
        record = RECORD_HEADER.size + IP_HEADER_SIZE + UDP_HEADER_SIZE \
            + seg_size
        if self.snap_at is not None or seg_size > MAX_PAYLOAD \
                or not self._open \
                or self.written_bytes + full * record > self.max_bytes:
            return sum(self.write(view[start:start + seg_size], src, dst,
                                  t, dropped) for start in
                       range(0, min(len(view), count * seg_size), seg_size))
        key = (src, dst, seg_size, dropped)
        seconds = int(t)
        prefix = _pack_record(seconds, int((t - seconds) * 1e6),
                              record - RECORD_HEADER.size,
                              record - RECORD_HEADER.size) \
            + (self._headers.get(key) or self._make_headers(key))
        buffer = self._buffer
        for start in range(0, full * seg_size, seg_size):
            buffer += prefix
            buffer += view[start:start + seg_size]
        self.written_bytes += full * record
        self.records += full
        written = full
        if full < count and full * seg_size < len(view):  # the short last
            written += self.write(view[full * seg_size:], src, dst, t,
                                  dropped)
        elif len(buffer) >= FLUSH_AT:
            self._flush()
        return written

    def _flush(self) -> None:
        """Write the buffer out; on failure keep one line and stop."""
        try:
            view, written = memoryview(self._buffer), 0
            while written < len(view):  # a raw file may write a part
                written += self._file.write(view[written:])
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            self.error = f"capture {self.path} stopped: {reason}"
            self._open = False
        finally:
            view.release()
        self._buffer.clear()

    def close(self) -> None:
        """Write what is left and close; a failure is kept in ``error``."""
        if self._file.closed:
            return
        if self._open and self._buffer:
            self._flush()
        self._open = False
        try:
            self._file.close()
        except OSError as exc:
            self.error = self.error or f"capture {self.path} incomplete: " \
                f"{exc.strerror or exc}"

    def summary(self) -> str:
        """One line for the driver to print when it stops."""
        line = f"capture {self.path}: {self.records} datagrams"
        if self.skipped:
            line += f", {self.skipped} left out (over {self.max_bytes} bytes)"
        return self.error or line

    def __enter__(self) -> "PcapWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Capture:
    """The hook a driver calls once per datagram it sends or receives.

    ``local`` is the driver's socket address (``sock.getsockname()``);
    when it is bound to 0.0.0.0 the address the kernel would send from is
    looked up once per peer.  ``now`` is the driver's monotonic clock: it
    is turned into wall-clock time for the file.
    """

    def __init__(self, writer: PcapWriter, local: tuple,
                 wall=time.time, monotonic=time.monotonic):
        self.writer = writer
        self.local_ip, self.local_port = local[0], local[1]
        self._bound = None if self.local_ip in ("", "0.0.0.0") \
            else (self.local_ip, self.local_port)
        self._wall_offset = wall() - monotonic()
        self._source: dict[str, str] = {}

    def _local_for(self, peer_ip: str) -> tuple:
        if self._bound:
            return self._bound
        source = self._source.get(peer_ip)
        if source is None:
            source = _route_source(peer_ip)
            if len(self._source) >= MAX_CACHED_ADDRESSES:
                self._source.clear()
            self._source[peer_ip] = source
        return source, self.local_port

    def sent(self, data, to: tuple, now: float, dropped: bool = False) -> None:
        """``data`` went (or, ``dropped``, would have gone) to ``to``."""
        self.writer.write(data, self._local_for(to[0]), to,
                          now + self._wall_offset, dropped)

    def sent_run(self, buf, seg_size: int, count: int, to: tuple,
                 now: float, dropped: bool = False) -> None:
        """The first ``count`` datagrams of a UDP GSO buffer (see
        ``PcapWriter.write_run``) went to ``to``."""
        self.writer.write_run(buf, seg_size, count, self._local_for(to[0]),
                              to, now + self._wall_offset, dropped)

    def received(self, data, sender: tuple, now: float,
                 dropped: bool = False) -> None:
        """``data`` arrived from ``sender`` (``dropped``: then discarded
        on purpose by an emulated loss)."""
        self.writer.write(data, sender, self._local_for(sender[0]),
                          now + self._wall_offset, dropped)

    def close(self) -> str:
        self.writer.close()
        return self.writer.summary()


def _route_source(peer_ip: str) -> str:
    """The local address the kernel picks to reach ``peer_ip``: connecting
    a UDP socket sends nothing, it only chooses the route."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((peer_ip, 9))
        return probe.getsockname()[0]
    except OSError:
        return "0.0.0.0"
    finally:
        probe.close()


def open_capture(path: str, local: tuple, max_bytes: int = DEFAULT_MAX_BYTES,
                 chunk_data: int | None = None) -> Capture:
    """``Capture`` writing to ``path``; raises ``CaptureError`` (one line).
    ``chunk_data``: see ``PcapWriter``."""
    return Capture(PcapWriter(path, max_bytes, chunk_data), local)
