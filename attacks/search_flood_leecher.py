"""Leecher memory: a lying seeder floods SEARCH_RESULT pages.

``leecher.search`` keeps reading a seeder's SEARCH_RESULTs until one has
``FLAG_LAST`` or its tries run out (~3 s), and ``_merge`` keeps every
plausible file (a new song per SHA-256) with no bound on their number.
A fake seeder on 127.0.0.34 answers PING, then answers the SEARCH with a
stream of pages of 23 made-up songs each (1-byte names, plausible sizes),
never setting ``FLAG_LAST``.  Measured: the leecher's peak RSS and how
many songs it lists (``leecher.py search x``).

Fault: leecher.py, ``search`` / ``_take_result`` / ``_merge`` (no cap on
pages per seeder or songs in all).

Fixed (branch hardleech): ``leecher.Searching`` asks one page per
SEARCH and stops a seeder after ``MAX_SEARCH_PAGES`` (64) pages, keeps
``MAX_SONGS`` (5000) in all, ends within ``MAX_SEARCH_S``, and says
"search cut: ..." in one line.  Before: 57,593 pages flooded, 495,168
songs listed in 6.8 s, peak RSS 384 MB.  After: 1,473 songs (64 pages)
in 0.3 s, peak RSS 33 MB: "attack failed".

Bounded: loopback only, the flood stops after 4 s or when the leecher
exits; the leecher started here is waited for (timeout 60 s).
"""

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import verdict, PYTHON, ROOT, p  # noqa: E402

FAKE_IP = "127.0.0.34"
FLOOD_S = 4.0


def page(n: int) -> bytes:
    files = []
    for k in range(23):
        sha = hashlib.sha256(b"%d" % (n * 23 + k)).digest()
        files.append(p.FileInfo(p.file_id_of(sha), 1400, 1, 1400, 0, sha,
                                "x"))
    return p.encode(p.SearchResult(tuple(files)))


def fake_seeder(sock, stop: threading.Event, sent: list) -> None:
    pages = [page(n) for n in range(2000)]  # made ahead: flood fast
    target = None
    sock.settimeout(0.2)
    while not stop.is_set() and target is None:
        try:
            data, addr = sock.recvfrom(2048)
        except socket.timeout:
            continue
        msg = p.decode(data).message
        if isinstance(msg, p.Ping):
            sock.sendto(p.encode(p.Pong(msg.nonce, 1, 1, 0, 0, 50, "liar")),
                        addr)
        elif isinstance(msg, p.Search):
            target = addr
    end = time.monotonic() + FLOOD_S
    n = 0
    sock.setblocking(False)
    while not stop.is_set() and time.monotonic() < end:
        try:
            # fresh SHA-256s for every page: patch the counter into page n
            sock.sendto(pages[n % len(pages)] if n < len(pages) else
                        page(n), target)
            n += 1
        except (BlockingIOError, InterruptedError):
            time.sleep(0.0005)
    sent.append(n)


def main() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((FAKE_IP, 0))
    port = sock.getsockname()[1]
    stop, sent = threading.Event(), []
    thread = threading.Thread(target=fake_seeder, args=(sock, stop, sent))
    thread.start()
    t0 = time.monotonic()
    leech = subprocess.Popen(
        ["/usr/bin/time", "-f", "PEAK_RSS_KB %M", PYTHON,
         os.path.join(ROOT, "leecher.py"), "search", "x", "--seeders",
         f"{FAKE_IP}:{port}"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        out, err = leech.communicate(timeout=60)
    finally:
        stop.set()
        thread.join()
        if leech.poll() is None:
            leech.kill()
            leech.wait()
    took = time.monotonic() - t0
    peak = [line for line in err.splitlines() if "PEAK_RSS_KB" in line]
    listed = max(0, len(out.splitlines()) - 1)
    peak_mb = int(peak[-1].split()[1]) / 1000 if peak else 0.0
    print(f"pages flooded: {sent[0] if sent else 0}; the leecher listed "
          f"{listed} songs in {took:.1f} s; peak RSS {peak_mb:.0f} MB")
    verdict(listed > 10000, "unbounded songs kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
