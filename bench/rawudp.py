"""The raw baseline: a plain Python UDP sender and receiver, no reliability.

They move a file's bytes in datagrams of the size of a P2P FACOM CHUNK
(36-byte header + 1400 bytes of data = 1436 bytes), as fast as Python can,
with the same 4 MB socket buffers as the seeder and the leecher.  What the
receiver's buffer cannot hold is lost and not asked for again, so this is
an upper bound for one Python sender and one Python receiver on this
machine, not a protocol.

    python3 bench/rawudp.py recv PORT SIZE     # prints one JSON line
    python3 bench/rawudp.py send PORT FILE     # prints one JSON line
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time

PAYLOAD = 1400
HEAD = struct.Struct("!I32x")  # sequence number + padding to 36 bytes
BUFFER = 4 * 1024 * 1024
IDLE_S = 0.3  # the receiver stops after this long without a datagram
MAX_S = 60.0  # and in any case after this long


def receive(port: int, size: int) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    sock.bind(("127.0.0.1", port))
    print("ready", flush=True)
    chunks = -(-size // PAYLOAD)
    data = bytearray(size)
    have = bytearray(chunks)
    got = datagrams = 0
    first = last = None
    buf = bytearray(2048)
    view = memoryview(buf)
    sock.settimeout(10.0)  # for the first datagram
    start = time.monotonic()
    while got < chunks and time.monotonic() - start < MAX_S:
        try:
            n = sock.recv_into(buf)
        except socket.timeout:
            break
        last = time.monotonic()
        if first is None:
            first = last
            sock.settimeout(IDLE_S)
        datagrams += 1
        (seq,) = HEAD.unpack_from(buf)
        if seq < chunks and not have[seq]:
            have[seq] = 1
            got += 1
            offset = seq * PAYLOAD
            data[offset:offset + n - HEAD.size] = view[HEAD.size:n]
    sock.close()
    received = sum(min(PAYLOAD, size - i * PAYLOAD)
                   for i in range(chunks) if have[i])
    return {"bytes": received, "chunks": chunks, "chunks_received": got,
            "datagrams": datagrams, "first": first, "last": last}


def send(port: int, path: str) -> dict:
    with open(path, "rb") as handle:
        data = handle.read()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
    addr = ("127.0.0.1", port)
    start = time.monotonic()
    for seq, offset in enumerate(range(0, len(data), PAYLOAD)):
        sock.sendto(HEAD.pack(seq) + data[offset:offset + PAYLOAD], addr)
    end = time.monotonic()
    sock.close()
    return {"start": start, "end": end, "bytes": len(data)}


def main(argv: list[str]) -> int:
    mode, port = argv[0], int(argv[1])
    if mode == "recv":
        result = receive(port, int(argv[2]))
    else:
        result = send(port, argv[2])
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
