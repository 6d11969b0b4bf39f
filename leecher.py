"""P2P FACOM leecher: finds seeders, downloads a song in chunks, plays it.

``Download`` is the driver of ``download_engine.DownloadEngine``: it owns
the socket (``Endpoint``), the ``.part`` file, the clock and the player,
and runs one ``select`` loop (the GUI runs it in one worker thread).  The
rest of the module is the terminal leecher:

    python3 leecher.py ping   [--seeders 127.0.0.1:9000,127.0.0.2:9000]
    python3 leecher.py search QUERY
    python3 leecher.py get NAME -o DIR [--order random] [--json STATS.json]
                       [--pcap CAPTURE.pcap] [--no-offload]
                       [--bind IP[:PORT]] [--seed-for S] [--no-share]
                       [--pick rarest] [--upload-rate KBPS]

A song with a piece list is shared while it downloads (``share.py``:
the options, the file served from, the seed-for loop; the engine is
``peer_engine.PeerEngine`` around the ``DownloadEngine``).

What is lost, and when it is asked for again, is decided in
``recovery.py`` (RACK, RFC 8985; RFC 9002).  Each piece (``pieces.py``) is
hashed from the ``.part`` as soon as it is complete; only verified pieces
are played and go into the final SHA-256.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import math
import json
import os
import random
import select
import signal
import socket
import sys
import time
import unicodedata
import zlib
from array import array
from dataclasses import dataclass, field
from operator import itemgetter

import cli
import events as ev
import i18n
import pieces
import protocol as p
import share
from download_engine import (DEFAULT_TIMEOUT, DEFAULT_WINDOW, PING_PADDING,
                             DownloadEngine, Options, Peer, Timeline,
                             check_size)
from i18n import N_, _, text as tr
from offload import make_receiver

__all__ = ["DEFAULT_TIMEOUT", "DEFAULT_WINDOW", "Download", "Endpoint",
           "Options", "Peer", "Song", "Timeline", "ping", "search"]

SOCKET_BUFFER = 4 * 1024 * 1024
RECEIVE_BATCH = 1024  # datagrams taken per loop turn (and buffer slots)
POLL_S = 0.1  # the loop looks at stop() and progress at least this often
SNAPSHOT_S = 0.2  # events and a Snapshot to the interface this often
HASH_STEP = 256  # chunks of contiguous prefix hashed at a time
FILL_GAP = 8  # missing chunks a write may cover with zeros (see _fill)
IOV_MAX = min(os.sysconf("SC_IOV_MAX"), RECEIVE_BATCH)  # per pwritev
# A PING or SEARCH and its answer can be lost (30 % loss each way is a
# classroom setting): a try is answered when both get through, 0.7 * 0.7
# = 0.49, so it fails with 0.51, and eight tries all fail with 0.51^8 =
# 0.5 %: that many seeders are wrongly "no answer" (five tries: 3.5 %).
# The wait doubles every second try up to a cap (0.3, 0.3, 0.6 s, then
# 0.6 s: 4.2 s in all for a dead seeder); a PONG that comes late still
# counts in a later try's wait, so a seeder slowed down by a busy machine
# is not lost by the cap.
PING_TIMEOUT = 0.3
PING_TRIES = 8
MAX_PING_WAIT = 0.6
# SEARCH is answered one page (one datagram, ~20 songs) per request.  A
# seeder that never sets FLAG_LAST, or shares more than a classroom ever
# does, is cut after MAX_SEARCH_PAGES pages (~1,500 songs); the list
# holds MAX_SONGS songs in all (a few MB), and a search ends after
# MAX_SEARCH_S whatever the seeders send.
MAX_SEARCH_PAGES = 64
MAX_SONGS = 5000
MAX_SEARCH_S = 15.0
SIDECAR_SUFFIX = ".part.json"
SAVE_EVERY_S = 5.0


# ----------------------------------------------------------- the socket
class Endpoint:
    """The leecher's UDP socket; ``loss`` drops received datagrams on
    purpose so that the NACK path can be shown with any seeder.

    Reads go through ``offload.make_receiver``: with UDP GRO (``offload``,
    the default) a run of chunks a seeder sent with GSO comes in one read,
    cut into datagrams; without it (``--no-offload``, or a kernel that
    refuses) one datagram per ``recvfrom_into``.  Once GRO is on, every
    read of the socket goes through the receiver.  ``capture`` (a
    ``pcap.Capture``, see ``open_capture``) is handed every datagram sent
    and received, those ``loss`` drops marked; None costs nothing."""

    def __init__(self, loss: float = 0.0, seed: int | None = None,
                 bind: tuple[str, int] = ("0.0.0.0", 0),
                 offload: bool = True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
            except OSError:
                pass
        try:
            self.sock.bind(bind)
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        self.receiver = make_receiver(self.sock, offload, RECEIVE_BATCH)
        self.loss = loss
        self.rng = random.Random(seed)
        self.capture = None
        self.dropped = 0
        self.bad = 0
        self.received = 0  # datagrams read (dropped ones included)

    def open_capture(self, path: str) -> None:
        """Write every datagram to the pcap file ``path`` from now on;
        ``pcap.CaptureError`` (one line) when it cannot be written."""
        import pcap
        self.capture = pcap.open_capture(path, self.sock.getsockname())

    def close(self) -> str | None:
        """Close the socket (and the capture: its one-line summary)."""
        self.sock.close()
        capture, self.capture = self.capture, None
        return capture.close() if capture is not None else None

    @property
    def offload(self) -> bool:
        return self.receiver.offload

    @property
    def reads(self) -> int:
        """Reads that brought data: fewer than datagrams with GRO."""
        return self.receiver.reads

    def send(self, msg, addr, session: int = 0) -> None:
        self.send_raw(p.encode(msg, session), addr)

    def send_raw(self, data: bytes, addr) -> None:
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            pass  # like a loss on the way: timers will ask again
        except OSError:
            pass  # nobody there (ICMP); silence is handled by timeouts
        if self.capture is not None:
            self.capture.sent(data, addr, time.monotonic())

    def receive_raw(self, timeout: float) -> list[tuple[memoryview, tuple]]:
        """What arrives within ``timeout`` (at least one wait), undecoded:
        views into the receiver's buffer that the next call reuses, so
        whatever must outlive it is copied or written out before."""
        readable, _, _ = select.select([self.sock], [], [], max(0, timeout))
        if not readable:
            return []
        received = self.receiver.receive()
        self.received += len(received)
        if self.loss or self.capture is not None:
            return self._lose_and_capture(received)
        return received

    def _lose_and_capture(self, received: list) -> list:
        """The emulated ``loss`` (and the capture, which marks its drops)."""
        kept = []
        loss, chance, capture = self.loss, self.rng.random, self.capture
        now = time.monotonic()
        for view, addr in received:
            if loss and chance() < loss:
                self.dropped += 1
                if capture is not None:
                    capture.received(view, addr, now, dropped=True)
                continue
            if capture is not None:
                capture.received(view, addr, now)
            kept.append((view, addr))
        return kept

    def receive(self, timeout: float) -> list[tuple[p.Datagram, tuple]]:
        """Everything that arrives within ``timeout``, decoded."""
        received = []
        for view, addr in self.receive_raw(timeout):
            try:
                received.append((p.decode(view), addr))
            except p.ProtocolError:
                self.bad += 1
        return received


def backoff(first: float, tries: int,
            cap: float = MAX_PING_WAIT) -> list[float]:
    """How long to wait after each try: doubling every second try, up to
    ``cap`` (but never below ``first``)."""
    return [min(max(cap, first), first * 2 ** (attempt // 2))
            for attempt in range(tries)]


def ping(endpoint: Endpoint, addrs, timeout: float = PING_TIMEOUT,
         tries: int = PING_TRIES, on_answer=None,
         stop=lambda: False) -> dict[tuple, Peer]:
    """PING every seeder (a few tries) and return them all, alive or not;
    ``on_answer(peer)`` is told of each the moment it answers (the
    window shows the live ones at once); ``stop()`` true ends the tries
    early (a window closing does not wait for dead addresses)."""
    peers = {addr: Peer(addr) for addr in addrs}
    nonces = {}
    for wait in backoff(timeout, tries):
        waiting = [a for a, peer in peers.items() if not peer.alive]
        if not waiting or stop():
            break
        for addr in waiting:
            nonce = random.getrandbits(32)
            nonces[nonce] = (addr, time.monotonic())
            endpoint.send(p.Ping(nonce, PING_PADDING), addr)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not stop() and any(
                not peers[a].alive for a in waiting):
            for datagram, addr in endpoint.receive(
                    deadline - time.monotonic()):
                answered = _take_pong(datagram.message, addr, peers, nonces)
                if answered is not None and on_answer is not None:
                    on_answer(answered)
    return peers


def _take_pong(msg, addr, peers, nonces) -> Peer | None:
    """The peer that answered for the first time, else None."""
    if not isinstance(msg, p.Pong) or msg.nonce not in nonces:
        return None
    sent_to, sent_at = nonces[msg.nonce]
    if sent_to != addr:
        return None
    peer = peers[addr]
    if peer.alive:
        return None
    peer.rtt = time.monotonic() - sent_at
    peer.learn(msg)
    return peer


@dataclass
class Song:
    """One file as found by SEARCH: the same SHA-256 on several seeders is
    one song with several sources."""

    info: p.FileInfo
    sources: list = field(default_factory=list)


def search(endpoint: Endpoint, peers: list[Peer], query: str,
           timeout: float = PING_TIMEOUT, note=None) -> list[Song]:
    """The songs ``peers`` have for ``query``, every page of each (see
    ``Searching``); ``note(line)`` is told, in one line, when the list
    was cut (default: printed to stderr)."""
    if len(query.encode("utf-8")) > p.MAX_QUERY:
        raise cli.UsageError(f"search query longer than {p.MAX_QUERY} bytes")
    searching = Searching(endpoint, peers, query,
                          backoff(timeout, PING_TRIES))
    songs = searching.run()
    if searching.cut:
        line = "search cut: " + "; ".join(searching.cut)
        if note is None:
            print(line, file=sys.stderr)
        else:
            note(line)
    return songs


@dataclass
class _Asked:
    """What ``Searching`` asked one seeder: the page, how many tries."""

    peer: Peer
    page: int = 0
    tries: int = 0
    deadline: float = 0.0
    seen: set = field(default_factory=set)  # keys of the songs it listed


class Searching:
    """One search: each seeder is asked page after page (a SEARCH per
    page, each retried after ``waits``) until a page with FLAG_LAST, its
    tries run out, ``MAX_SEARCH_PAGES`` pages or ``MAX_SEARCH_S``; no
    more than ``MAX_SONGS`` songs are kept.  ``cut`` says why the list
    may not be whole."""

    def __init__(self, endpoint, peers: list[Peer], query: str,
                 waits: list[float]):
        self.endpoint, self.query, self.waits = endpoint, query, waits
        self.asked = {peer.addr: _Asked(peer) for peer in peers}
        self.songs: dict = {}
        self.cut: list[str] = []  # why the list may not be whole
        self.songs_cut = False

    def run(self) -> list[Song]:
        now = time.monotonic()
        give_up = now + MAX_SEARCH_S
        for asked in self.asked.values():
            self._ask(asked, now)
        while self.asked:
            now = time.monotonic()
            if now >= give_up:
                self.cut.append(f"no answer in {MAX_SEARCH_S:g} s from "
                                f"{len(self.asked)} seeder(s)")
                break
            self._retry_late(now)
            if not self.asked:
                break
            wait = min(asked.deadline for asked in self.asked.values())
            for datagram, addr in self.endpoint.receive(
                    min(wait, give_up) - now):
                self._take(datagram, addr)
        return sorted(self.songs.values(), key=lambda s: s.info.name.lower())

    def _ask(self, asked: _Asked, now: float) -> None:
        self.endpoint.send(p.Search(self.query, asked.peer.token,
                                    asked.page), asked.peer.addr)
        asked.deadline = now + self.waits[asked.tries]

    def _retry_late(self, now: float) -> None:
        """Ask again whoever did not answer in time (answers get lost
        too); after its last try a seeder is left out."""
        for addr, asked in list(self.asked.items()):
            if now >= asked.deadline:
                self._next_try(addr, asked, now)

    def _next_try(self, addr, asked: _Asked, now: float) -> None:
        asked.tries += 1
        if asked.tries >= len(self.waits):
            del self.asked[addr]
        else:
            self._ask(asked, now)

    def _take(self, datagram, addr) -> None:
        asked = self.asked.get(addr)
        if asked is None:
            return  # not asked, or done with
        msg, now = datagram.message, time.monotonic()
        if isinstance(msg, p.Retry):
            asked.peer.token = msg.token
            self._next_try(addr, asked, now)  # bounded like a lost answer
        elif isinstance(msg, p.SearchResult):
            if not self._take_page(asked, msg.files):
                return  # the twin of a page taken (a retry's answer)
            if datagram.flags & p.FLAG_LAST:
                del self.asked[addr]
            elif asked.page + 1 >= MAX_SEARCH_PAGES:
                del self.asked[addr]
                self.cut.append(f"{cli.format_address(addr)} has more than "
                                f"{MAX_SEARCH_PAGES} pages")
            else:
                asked.page, asked.tries = asked.page + 1, 0
                self._ask(asked, now)

    def _take_page(self, asked: _Asked, files) -> bool:
        """Merge a page; False when every file on it was listed by the
        same seeder before: a page answered twice, not the next one."""
        keys = {_song_key(info) for info in files}
        if keys and keys <= asked.seen:
            return False
        asked.seen |= keys
        if _merge(self.songs, files, asked.peer.addr, MAX_SONGS) \
                and not self.songs_cut:
            self.songs_cut = True
            self.cut.append(f"more than {MAX_SONGS} songs")
        return True


def _song_key(info: p.FileInfo) -> tuple:
    return (info.sha256, info.size, info.chunk_size, info.file_id)


def _merge(songs: dict, files, addr, limit: int = MAX_SONGS) -> int:
    """Add what ``addr`` answered; one song per content and layout, so a
    seeder that lies about the size of a known SHA-256 is a song apart
    (and loses the vote in ``pick_song``).  No more than ``limit`` songs:
    how many new ones were left out."""
    dropped = 0
    for info in files:
        if not plausible(info):
            continue  # fields that contradict each other: a lie or a bug
        key = _song_key(info)
        song = songs.get(key)
        if song is None:
            if len(songs) >= limit:
                dropped += 1
                continue
            song = songs[key] = Song(info)
        if addr not in song.sources:
            song.sources.append(addr)
            song.sources.sort()
    return dropped


def plausible(info: p.FileInfo) -> bool:
    """SEARCH_RESULT fields that agree with each other (an id made
    from a piece list of several pieces is checked with its list)."""
    return (1 <= info.chunk_size <= p.MAX_CHUNK_DATA
            and info.chunks == p.chunk_count(info.size, info.chunk_size)
            and pieces.id_plausible(info))


# Linux's NAME_MAX; the longest name the leecher makes from a song's is
# NAME + SIDECAR_SUFFIX + ".tmp" (the sidecar written, then renamed).
NAME_MAX = 255
LONGEST_SUFFIX = len(".part.json.tmp")
MAX_EXTENSION = 16  # a longer "extension" is part of the name


def safe_name(song: p.FileInfo) -> str:
    """The file name to save under: never a path, never hidden, no
    control characters, and short enough for its .part and sidecar."""
    name = os.path.basename(song.name.replace("\\", "/"))
    name = "".join("_" if unicodedata.category(c) in ("Cc", "Cs") else c
                   for c in name)
    if not name or name.startswith("."):
        name = song.file_id.hex() + ".mp3"
    return fit_name(name, NAME_MAX - LONGEST_SUFFIX, song.file_id.hex()[:8])


def fit_name(name: str, limit: int, tag: str) -> str:
    """``name`` cut to ``limit`` UTF-8 bytes, keeping its extension and
    adding ``tag`` so that two long names cut alike stay apart."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, extension = os.path.splitext(name)
    if len(extension.encode("utf-8")) > MAX_EXTENSION:
        stem, extension = name, ""
    room = limit - len(extension.encode("utf-8")) - len(tag) - 1
    cut = stem.encode("utf-8")[:room].decode("utf-8", "ignore")
    return f"{cut}-{tag}{extension}"


# ------------------------------------------------------------- resuming
def fallback_folder() -> str:
    """Where resume data goes when the output folder will not take it:
    the user's state folder (XDG), not the output folder."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "p2p-facom", "resume")


class Sidecar:
    """``NAME.part.json``: what an interrupted download already has.

    It names the song by SHA-256 and id and keeps each received chunk's
    CRC-32, so a new run re-checks the ``.part`` bytes before trusting
    them, and the pieces verified against the piece hash list (``pieces``,
    ranges of pieces): a new run hashes only the others again.  When the
    output folder stops taking files, it goes to ``fallback_folder()``
    under a name drawn from the ``.part``'s full path, and is found there.
    """

    CHANGED = object()

    def __init__(self, path: str):
        self.path = path
        tag = hashlib.sha256(os.path.abspath(path).encode(
            "utf-8", "surrogateescape")).hexdigest()[:24]
        self.fallback = os.path.join(fallback_folder(), tag + ".json")
        self.saved_at: str | None = None  # where the last save went

    def load(self, info: p.FileInfo):
        """({chunk: crc}, verified pieces), ``CHANGED`` for another
        song, None for nothing."""
        for path in (self.path, self.fallback):
            found = self._load(path, info)
            if found is not None:
                return found
        return None

    def _load(self, path: str, info: p.FileInfo):
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            if data["sha256"] != info.sha256.hex() \
                    or data["chunk_size"] != info.chunk_size \
                    or data.get("file_id", info.file_id.hex()) \
                    != info.file_id.hex():
                return self.CHANGED
            crcs = array("I")
            crcs.frombytes(base64.b64decode(data["crc32"]))
            if sys.byteorder == "little":
                crcs.byteswap()  # stored big-endian
            ranges = [(int(s), int(e)) for s, e in data["chunks"]]
            verified = [(int(s), int(e)) for s, e in data.get("pieces", [])]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        pieces_here = pieces.piece_count(info.chunks)
        return ({i: crcs[i] for start, end in ranges
                 for i in range(max(start, 0), min(end, info.chunks,
                                                   len(crcs)))},
                [n for start, end in verified
                 for n in range(max(start, 0), min(end, pieces_here))])

    def save(self, info: p.FileInfo, chunks: list[tuple[int, int]],
             crcs: array, verified: list[tuple[int, int]] = ()) -> str:
        """Record the ``chunks`` ranges as here, with their ``crcs``, and
        the ``verified`` piece ranges; the path it went to (the fallback
        when the folder refuses it)."""
        crcs = array("I", crcs)
        if sys.byteorder == "little":
            crcs.byteswap()
        data = {"sha256": info.sha256.hex(), "size": info.size,
                "file_id": info.file_id.hex(),
                "chunk_size": info.chunk_size,
                "chunks": chunks, "pieces": list(verified),
                "crc32": base64.b64encode(crcs.tobytes()).decode("ascii")}
        try:
            self._write(self.path, data)
            self.saved_at = self.path
        except OSError:
            os.makedirs(os.path.dirname(self.fallback), exist_ok=True)
            self._write(self.fallback, data)
            self.saved_at = self.fallback
        return self.saved_at

    @staticmethod
    def _write(path: str, data: dict) -> None:
        temporary = path + ".tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(temporary, path)

    def remove(self) -> None:
        for path in (self.path, self.fallback):
            with contextlib.suppress(OSError):
                os.remove(path)


# ------------------------------------------------------------ the .part
class PartFile:
    """``NAME.part`` and its sidecar: writes (``pwritev``), the SHA-256 of
    the contiguous prefix as it grows, the resume data, the final rename.
    Errors become ``events.DownloadFailed``."""

    def __init__(self, info: p.FileInfo, final_path: str,
                 in_place: bool = False):
        """``in_place``: the song is here already (its pieces are checked
        to be shared): the file itself is the ``.part``, never renamed
        away and given no resume data."""
        self.info = info
        self.name = os.path.basename(final_path)
        self.final_path = final_path
        self.in_place = in_place
        self.part_path = final_path if in_place else final_path + ".part"
        self.sidecar = Sidecar(final_path + SIDECAR_SUFFIX)
        self.crcs = array("I", bytes(4 * info.chunks))  # for resuming
        self.fd = None
        self.untrusted = False  # a hash mismatch: keep no resume data
        self._unchecked: list = []  # runs written since the last CRC pass
        self._unwritten = p.RangeSet()  # chunks whose write failed
        self._zeros = bytes(info.chunk_size)
        self._digest = hashlib.sha256()  # of the file's contiguous prefix
        self._hashed_chunks = 0  # chunks of the prefix in the digest
        self._advised_chunks = 0  # of them, given to fadvise
        self.verified_pieces: list[int] = []  # resumed, still intact
        # Runs written feed the digest from memory: only when no piece
        # check comes first (a bad piece would have been hashed).
        self.hash_on_write = True

    def _cannot_write(self, exc: OSError) -> ev.DownloadFailed:
        return ev.DownloadFailed(ev.Problem.CANNOT_WRITE,
                                 path=self.part_path,
                                 reason=exc.strerror or str(exc))

    def open(self) -> None:
        try:
            self.fd = os.open(self.part_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise self._cannot_write(exc) from None
        self._lock()
        try:
            os.ftruncate(self.fd, self.info.size)
        except OSError as exc:
            self.close()
            raise self._cannot_write(exc) from None

    def _lock(self) -> None:
        """One leecher per .part file: a second one (terminal or window)
        would write the same file and rename it under the first."""
        import fcntl
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.close()
            raise ev.DownloadFailed(ev.Problem.LOCKED,
                                    path=self.part_path) from None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def chunk_length(self, index: int) -> int:
        return min(self.info.chunk_size,
                   self.info.size - index * self.info.chunk_size)

    def resume(self, emit) -> list[int]:
        """The chunks an interrupted run left in ``.part`` that the disk
        still holds intact (each re-checked against its CRC-32)."""
        kept = self.sidecar.load(self.info)
        if kept is None:
            return []
        if kept is Sidecar.CHANGED:
            emit(ev.SongChanged())
            return []
        kept, verified = kept
        good = []
        for index, crc in kept.items():
            offset = index * self.info.chunk_size
            data = self.read(offset, offset + self.chunk_length(index))
            if zlib.crc32(data) == crc:
                self.crcs[index] = crc
                good.append(index)
        intact = bytearray(self.info.chunks)
        for index in good:
            intact[index] = 1
        # A verified piece stays so while every chunk of it is intact.
        self.verified_pieces = [
            n for n in verified
            if 0 not in intact[slice(*pieces.chunk_range(
                n, self.info.chunks))]]
        emit(ev.Resumed(len(good), self.info.chunks))
        return good

    def save_progress(self, state: p.ReceiveState, runs=(),
                      verified=()) -> str | None:
        """Write the sidecar (after the engine's ``runs`` not yet written);
        the reason it failed, if it did."""
        if self.fd is None or not state.received or self.untrusted \
                or self.in_place:
            return None
        try:
            with contextlib.suppress(ev.DownloadFailed):
                self.write_runs(runs, state)  # stopped in mid-turn
            self._checksum_written()
            kept = p.RangeSet(state.present())
            for start, end in self._unwritten:
                kept.remove(start, end)
            self.sidecar.save(self.info, list(kept), self.crcs, verified)
        except OSError as exc:
            return tr(N_("cannot save progress to {path}: {reason}"),
                      path=self.sidecar.path, reason=exc.strerror or exc)
        return None

    def _checksum_written(self) -> None:
        """The CRC-32 of each chunk written since the last save, as the
        file holds it: the next run trusts a chunk only if it still
        matches.  Done here, not per chunk, because saves are rare."""
        size = self.info.chunk_size
        for start, end in self._unchecked:
            for first in range(start, end, 512):  # reads of at most 700 KB
                last = min(end, first + 512)
                block = memoryview(os.pread(self.fd, (last - first) * size,
                                            first * size))
                for index in range(first, last):
                    offset = (index - first) * size
                    self.crcs[index] = zlib.crc32(block[offset:offset + size])
        self._unchecked.clear()

    # ------------------------------------------------------------ writes
    def write(self, fresh: list, state: p.ReceiveState) -> None:
        """Write new chunks given as ``(index, data)``."""
        self.write_runs([(index, [data]) for index, data in fresh], state)

    def write_runs(self, runs: list, state: p.ReceiveState) -> None:
        """Write new chunks, given as the engine's runs ``(start, [data,
        ...])``: one ``pwritev`` per stretch of runs that follow each
        other in the file (short gaps filled, see ``_fill``); a run that
        extends the hashed prefix is fed to the SHA-256 from memory."""
        if not runs:
            return
        runs = sorted(runs, key=itemgetter(0))
        first, views = runs[0][0], []
        for start, payloads in runs:
            end = first + len(views)
            if start != end and views \
                    and not self._fill(views, end, start, state):
                self._write_run(first, views, runs)
                first, views = start, []
            views.extend(payloads)
        self._write_run(first, views, runs)
        if self.hash_on_write:
            self._hash_runs(runs)

    def _hash_runs(self, runs: list) -> None:
        """Feed the digest the runs (sorted, written) that continue the
        hashed prefix: their bytes are in memory, so none is read back."""
        update, hashed = self._digest.update, self._hashed_chunks
        for start, payloads in runs:
            if start != hashed:
                continue
            for data in payloads:
                update(data)
            hashed += len(payloads)
        self._hashed_chunks = hashed

    def _fill(self, views: list, start: int, end: int, state) -> bool:
        """Bridge a gap of a few chunks that are all still missing with
        zeros, what the file holds there anyway (their data is written when
        they come; nothing reads or trusts a missing chunk), so that a lost
        chunk does not cost a write call of its own.  False: not bridged."""
        if end - start > FILL_GAP or any(state.have[start:end]):
            return False
        views.extend([self._zeros] * (end - start))
        return True

    def _write_run(self, first: int, views: list, runs: list) -> None:
        """Write chunks ``first``, ``first + 1``... of the sorted ``runs``;
        when that fails, none from ``first`` on is to be trusted on resume.
        """
        try:
            self._write_at(views, first)
        except OSError as exc:
            for start, payloads in runs:
                end = start + len(payloads)
                if end > first:
                    self._unwritten.add(max(start, first), end)
            raise self._cannot_write(exc) from None
        self._unchecked.append((first, first + len(views)))

    def _write_at(self, views: list, first: int) -> None:
        size = self.info.chunk_size
        for part in range(0, len(views), IOV_MAX):
            block = views[part:part + IOV_MAX]
            offset = (first + part) * size
            end = min(self.info.size, offset + len(block) * size)
            written = os.pwritev(self.fd, block, offset)
            if written < end - offset:  # the disk is full, most likely
                self._write_rest(b"".join(block)[written:], offset + written)

    def _write_rest(self, data: bytes, offset: int) -> None:
        while data:
            written = os.pwrite(self.fd, data, offset)
            if not written:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            data, offset = data[written:], offset + written

    def read(self, start: int, end: int) -> bytes:
        try:
            return os.pread(self.fd, end - start, start)
        except OSError as exc:  # the disk went away under us
            raise self._cannot_write(exc) from None

    # ------------------------------------------------------------ the end
    def hash_verified(self, start: int, end: int, data) -> None:
        """Chunks ``[start, end)`` were just read and verified (a
        piece): when they continue the prefix, the whole-file digest takes
        them from memory instead of reading them again."""
        if start == self._hashed_chunks:
            self._digest.update(data)
            self._hashed_chunks = end

    def hash_prefix(self, ready: int) -> None:
        """Hash the file's contiguous prefix (``ready`` chunks) as it
        grows: what ``write`` did not feed from memory (chunks that waited
        on disk for a gap to fill) is read back, in steps, so little is
        left to hash when it is complete."""
        new = ready - self._hashed_chunks
        if new > 0 and (new >= HASH_STEP or ready == self.info.chunks):
            start = self._hashed_chunks * self.info.chunk_size
            end = min(self.info.size, ready * self.info.chunk_size)
            while start < end:
                block = self.read(start, min(end, start + (1 << 20)))
                if not block:
                    break  # shorter than it should be: the digest says so
                self._digest.update(block)
                start += len(block)
            self._hashed_chunks = ready
        self._advise()

    def _advise(self) -> None:
        """Hashed, so not read again: have the kernel start writing it to
        disk now, so that the fsync at the end has less to do."""
        hashed = self._hashed_chunks
        if hashed - self._advised_chunks < HASH_STEP \
                and hashed < self.info.chunks:
            return
        size = self.info.chunk_size
        if hasattr(os, "posix_fadvise"):
            with contextlib.suppress(OSError):  # a hint, nothing more
                os.posix_fadvise(self.fd, self._advised_chunks * size,
                                 (hashed - self._advised_chunks) * size,
                                 os.POSIX_FADV_DONTNEED)
        self._advised_chunks = hashed

    def finish(self) -> None:
        """fsync, check the SHA-256, rename ``.part`` to the song's name."""
        try:
            os.fsync(self.fd)
        except OSError as exc:
            raise self._cannot_write(exc) from None
        self.hash_prefix(self.info.chunks)
        if self._digest.digest() != self.info.sha256:
            self.untrusted = True  # keep no sidecar: start over next time
            self.sidecar.remove()
            raise ev.DownloadFailed(ev.Problem.HASH_MISMATCH, name=self.name)
        try:
            os.replace(self.part_path, self.final_path)
        except OSError as exc:
            raise ev.DownloadFailed(ev.Problem.CANNOT_WRITE,
                                    path=self.final_path,
                                    reason=exc.strerror or str(exc)) from None
        self.sidecar.remove()


# ------------------------------------------------------------ the driver
class Download:
    """Download one song from its seeders into ``out_dir``: the driver of
    ``download_engine.DownloadEngine`` (socket, file, clock, player).

    ``run()`` blocks until the file is complete and verified (returns the
    final path) or raises ``events.DownloadFailed``.  ``stop()`` may be
    called from another thread.  ``events`` (anything with ``put``, e.g. a
    ``queue.Queue``) receives the typed events of ``events.py`` and a
    ``Snapshot`` a few times a second; ``player`` (see player.py) is fed
    the contiguous prefix.

    ``sharing`` (``share.Sharing``; None: no sharing) makes it a peer of
    the swarm for a song with a piece list: it serves what it verified
    while downloading, and ``seed()`` goes on serving after ``run()``.
    ``already_here``: the song is saved and verified already; ``run()``
    fetches its piece list and checks its pieces from the file (nothing
    is downloaded), so that ``seed()`` can share it.
    """

    def __init__(self, endpoint: Endpoint, song: Song, peers: dict,
                 out_dir: str, options: Options | None = None, events=None,
                 player=None, sharing: share.Sharing | None = None,
                 already_here: bool = False):
        self.endpoint = endpoint
        self.song = song
        self.info = song.info
        self.peers = peers
        self.options = options or Options()
        self.events = events
        self.player = player
        self.name = safe_name(song.info)
        self.final_path = os.path.join(out_dir, self.name)
        self.part = PartFile(self.info, self.final_path, already_here)
        self.part_path = self.part.part_path
        self.engine: DownloadEngine | None = None
        self.driven = None  # what the loop drives: engine, or a PeerEngine
        self.sharer = share.Sharer(sharing, self.part)
        self.player_attached_at = None
        self.fed_chunks = 0
        self.played_to = 0  # bytes the player has played
        self.started = None
        self.finished = None
        self._stop = False
        self._timeline = None

    # ------------------------------------------------------------ control
    def stop(self) -> None:
        self._stop = True

    def set_sharing(self, on: bool) -> None:
        """The window's share switch (any thread): the loop applies it.
        Without ``sharing`` (None) there is nothing to switch."""
        self.sharer.switch.set(on)

    def _emit(self, event) -> None:
        if self.events is not None:
            self.events.put(event)

    def run(self) -> str:
        check_size(self.info)
        self.part.open()
        self.started = time.monotonic()
        try:
            if self.part.in_place:  # every chunk here, pieces to check
                present = range(self.info.chunks)
            elif self.options.fresh:  # "Download again": from nothing
                self.part.sidecar.remove()
                present = []
            else:
                present = self.part.resume(self._emit)
            self.engine = DownloadEngine(
                self.info, self._sources(), self.started, self.options,
                present, chunk_events=getattr(self.events, "wants_chunks",
                                              self.events is not None),
                verified=self.part.verified_pieces)
            self.part.hash_on_write = self.engine.pieces is None
            self.driven = self.sharer.drive(
                self.engine, self.endpoint.sock.getsockname(),
                self.options.seed)
            self.driven.start(self.started)
            self._loop()
            self._feed_player()
            self.part.finish()
        except BaseException as exc:
            self._save_progress()  # Ctrl-C, failure, window closed: resume
            if isinstance(exc, ev.DownloadFailed):
                self._emit(ev.Failed(exc.problem, exc.params,
                                     time.monotonic() - self.started))
            raise
        finally:
            self._close()
        self.finished = time.monotonic()
        self._emit(ev.Completed(self.final_path,
                                self.finished - self.started))
        return self.final_path

    @property
    def sharing_on(self) -> bool:
        return self.sharer.on

    def seed(self, seconds: float | None = None) -> None:
        """After ``run()``: go on serving ``seconds`` (default: the
        sharing's ``seed_for``) or until ``stop()``; Ctrl-C ends it as
        well (the song is saved already)."""
        self.sharer.serve(self._turn, self._pump_events, seconds,
                          stopped=lambda: self._stop)

    def _sources(self) -> list[Peer]:
        return [self.peers.get(addr) or Peer(addr)
                for addr in self.song.sources]

    def _close(self) -> None:
        if self.engine is not None:
            self.engine.cancel_all()
            driven = self.driven or self.engine
            self._send(driven.datagrams_to_send(time.monotonic()))
            self._pump_events(time.monotonic(), final=True)
        self.part.close()

    def _save_progress(self) -> None:
        if self.engine is None:
            return
        engine = self.engine
        verified = engine.pieces.book.verified_ranges() if engine.pieces \
            else ()
        problem = self.part.save_progress(engine.state, engine.take_runs(),
                                          verified)
        if problem:
            print(problem, file=sys.stderr)

    # -------------------------------------------------------------- loop
    def _loop(self) -> None:
        engine = self.driven
        last_save = last_snapshot = now = self.started
        while not engine.complete:
            if self._stop:
                raise ev.DownloadFailed(ev.Problem.STOPPED)
            if now - last_save > SAVE_EVERY_S:
                self._save_progress()  # survives even a kill -9
                last_save = now
            now = self._turn(now, self._write_runs)
            self._check_pieces(now)  # the hash list may have come
            self._feed_player()
            self.part.hash_prefix(engine.verified_prefix())
            if now - last_snapshot >= SNAPSHOT_S:
                last_snapshot = now
                self._pump_events(now)
        self._send(engine.datagrams_to_send(now))

    def _turn(self, now: float, take_runs, until: float = math.inf
              ) -> float:
        """One turn of the select loop: send, wait (up to the engine's
        timer, ``POLL_S`` and ``until``), hand over what came (then
        ``take_runs(now)``), fire the timer; the new ``now``."""
        engine = self.driven
        self.sharer.apply(now)
        self._send(engine.datagrams_to_send(now))
        timer = engine.get_timer()
        wait = min(POLL_S, until - now,
                   math.inf if timer is None else timer - now)
        batch = self.endpoint.receive_raw(wait)
        batch = self.sharer.keep(batch)
        now = time.monotonic()
        if batch:
            engine.receive_batch(batch, now)
            # The chunks are views of the endpoint's buffers: written
            # before the next receive reuses them.
            take_runs(now)
        timer = engine.get_timer()
        if timer is not None and now >= timer:
            engine.handle_timer(now)
        return now

    def _write_runs(self, now: float) -> None:
        self.part.write_runs(self.driven.take_runs(), self.engine.state)
        self._check_pieces(now)

    def _check_pieces(self, now: float) -> None:
        """Hash each piece that is complete, as the .part holds it."""
        engine, size = self.driven, self.info.chunk_size
        for piece in engine.pieces_to_verify():
            start, end = pieces.chunk_range(piece, self.info.chunks)
            data = self.part.read(start * size, min(self.info.size,
                                                    end * size))
            if engine.check_piece(piece, data, now):
                self.part.hash_verified(start, end, data)

    def _send(self, datagrams) -> None:
        for data, addr in datagrams:
            self.endpoint.send_raw(data, addr)

    def _pump_events(self, now: float, final: bool = False,
                     snapshot: bool = True) -> None:
        """The engine's events (and a snapshot) to whoever listens."""
        happened = (self.driven or self.engine).events()
        if self.events is None:
            return
        for event in happened:
            self.events.put(event)
        if snapshot:
            self.events.put(self.engine.snapshot(now))

    # -------------------------------------------------------------- player
    def _feed_player(self) -> None:
        if self.player is None:
            return
        if self.played_to:  # --pick deadline: the play point's first
            self.engine.set_playhead(self.played_to // self.info.chunk_size)
        # What arrived, verified or not: a piece is ~5.6 s of a 128 kbit/s
        # song, and waiting for whole pieces would delay start-up by that.
        # The file and its SHA-256 take verified pieces only.
        ready = self.engine.state.contiguous()
        if ready <= self.fed_chunks:
            if not self.info.chunks:  # an empty file: nothing will come
                self.player.finish_input()
            return
        start = self.fed_chunks * self.info.chunk_size
        end = min(self.info.size, ready * self.info.chunk_size)
        self.player.feed(self.part.read(start, end))
        self.fed_chunks = ready
        if ready == self.info.chunks:
            self.player.finish_input()

    def attach_player(self, player) -> None:
        """Feed ``player`` (player.Player) the file as it arrives; start
        the player right after this."""
        self.player = player
        self.player_attached_at = time.monotonic()

    def record_played(self, byte_end: int, when: float) -> None:
        """Player callback: every byte before ``byte_end`` has played."""
        self.played_to = byte_end  # the loop's thread reads it
        if self.started is None:
            return
        self._emit(ev.Played(byte_end, when - self.started))
        played = self.times.played
        last = min(self.info.chunks, -(-byte_end // self.info.chunk_size))
        for index in range(last - 1, -1, -1):
            if played[index] == played[index]:
                break  # not NaN: played already, and so is all before it
            played[index] = when - self.started

    # --------------------------------------------------------------- stats
    @property
    def times(self) -> Timeline:
        if self.engine is not None:
            return self.engine.timeline
        if self._timeline is None:  # --play of a song already here
            self._timeline = Timeline(self.info.chunks)
        return self._timeline

    @property
    def nacks_sent(self) -> int:
        return self.engine.counters.nacks_sent if self.engine else 0

    @property
    def retransmitted(self) -> int:
        return self.engine.counters.retransmitted if self.engine else 0

    def stats(self, timeline: bool = True) -> dict:
        now = self.finished or time.monotonic()
        # Not run (--play of a song already here): every counter at zero.
        engine = self.engine or DownloadEngine(
            self.info, [], now, present=range(self.info.chunks),
            verified=range(pieces.piece_count(self.info.chunks)))
        counted = (self.driven or engine).stats(now)
        sharing = share.stats(counted, self.options.pick, self.sharing_on)
        bad = self.endpoint.bad + (self.engine.counters.bad
                                   if self.engine else 0)
        return {
            "file": self.name,
            "size": self.info.size,
            "sha256": self.info.sha256.hex(),
            **counted,
            **sharing,
            "datagrams_dropped_by_leecher": self.endpoint.dropped,
            # UDP GRO: datagrams per read above 1 when seeders send with GSO
            "receive_offload": self.endpoint.offload,
            "datagrams_read": self.endpoint.received,
            "receive_reads": self.endpoint.reads,
            "bad_datagrams": bad,
            **({"timeline": self.timeline()} if timeline else {}),
            **self.audio_stats(),
        }

    def audio_stats(self) -> dict:
        """Start-up, stalls and continuity of what the player played."""
        if self.player is None:
            return {}
        played = self.player.stats
        startup = played.get("startup_s")
        if startup is not None:  # from the request, not from play()
            startup += self.player_attached_at - self.started
        return {"startup_s": _round(startup), "stalls": played["stalls"],
                "stall_s": _round(played["stall_s"]),
                "played_s": _round(played["played_s"]),
                "continuity": _round(self.continuity(startup))}

    def continuity(self, startup: float | None) -> float | None:
        """Share of chunks that arrived before their playback deadline
        (CoolStreaming's continuity index).  A chunk's deadline is when it
        would play had playback never stalled: first sound + its media
        time."""
        complete = self.engine.complete if self.engine else True
        if startup is None or not complete:
            return None
        # The player scanned every byte it was fed: scanning the whole file
        # again costs ~1 s of Python per 50 MB (and the window's thread).
        media = self.player.time_map(self.info.size)
        if media is None:
            import player
            media = player.scan_file(self.final_path)
        received = self.times.received
        on_time = sum(
            1 for i in range(self.info.chunks)
            if math.isnan(received[i])  # here before (resumed)
            or received[i] <= startup + media.time_at(
                i * self.info.chunk_size))
        return on_time / self.info.chunks

    def timeline(self) -> list[dict]:
        return list(self.times.rows())


def _round(value):
    return None if value is None else round(value, 4)


# ------------------------------------------------------------ terminal UI
def read_seeders(text: str | None) -> list[tuple[str, int]]:
    """--seeders, else a seeders.txt (cwd, then project), else the class."""
    if text:
        return [cli.parse_address(part) for part in text.split(",")
                if part.strip()]
    for folder in (os.getcwd(), cli.PROJECT_DIR):
        path = os.path.join(folder, "seeders.txt")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                lines = [line.split("#")[0].strip() for line in handle]
            found = [cli.parse_address(line) for line in lines if line]
            if found:
                return found
    return list(cli.CLASSROOM_SEEDERS)


def find_alive(endpoint: Endpoint, addrs, out=print) -> dict[tuple, Peer]:
    peers = ping(endpoint, addrs)
    for peer in peers.values():
        where = cli.format_address(peer.addr)
        if peer.alive:
            out(f"  {where:<21} " + tr(
                N_("alive  {rtt} ms  {files} file(s), {order}, load {load}"),
                rtt=i18n.decimal(peer.rtt * 1000, 1).rjust(6),
                files=peer.files, load=peer.load, order=i18n.order_name(
                    p.order_name(p.Order(peer.order)))))
        else:
            out(f"  {where:<21} " + _("no answer"))
    if not any(peer.alive for peer in peers.values()):
        ip, port = next(iter(peers))
        raise cli.RunError(tr(N_("no seeder is alive (start one: python3 "
                                 "seeder.py -i {ip} -p {port})"),
                              ip=ip, port=port))
    return peers


def pick_song(songs: list[Song], name: str, song_id: str | None = None,
              out=print) -> Song:
    """The song ``name`` names (or ``song_id``, a prefix of its SHA-256).
    Seeders that disagree on a name: the song most of them have wins and
    the others are named; with no majority, the user chooses by --id."""
    if song_id:
        return _by_id(songs, song_id.lower())
    exact = [s for s in songs if s.info.name.lower() == name.lower()]
    pool = exact or songs
    if len(pool) == 1:
        return pool[0]
    if not pool:
        raise cli.UsageError(tr(N_("no seeder has a song matching {name}"),
                                name=repr(cli.printable(name))))
    if len({s.info.name.lower() for s in pool}) > 1:
        names = ", ".join(cli.printable(s.info.name) for s in pool[:5])
        raise cli.UsageError(tr(N_("{name} matches several songs: {names}"),
                                name=repr(cli.printable(name)),
                                names=names))
    ranked = sorted(pool, key=lambda s: -len(s.sources))
    if len(ranked[0].sources) == len(ranked[1].sources):
        raise cli.UsageError(tr(
            N_("seeders disagree on {name}: {candidates}; choose one with "
               "--id PREFIX"), name=repr(cli.printable(pool[0].info.name)),
            candidates=describe_candidates(ranked)))
    for odd in ranked[1:]:
        out(tr(N_("note: {peers} offer(s) another {name} (id {id}, {size} "
                  "bytes); the one of {n} seeders is taken (--id {id} takes "
                  "the other)"),
               peers=", ".join(cli.format_address(a) for a in odd.sources),
               name=cli.printable(odd.info.name), id=song_id_of(odd),
               size=odd.info.size, n=len(ranked[0].sources)))
    return ranked[0]


def song_id_of(song: Song) -> str:
    return song.info.sha256.hex()[:12]


def describe_candidates(songs: list[Song]) -> str:
    return "; ".join(
        tr(N_("id {id} ({size} bytes) from {peers}"), id=song_id_of(s),
           size=s.info.size,
           peers=", ".join(cli.format_address(a) for a in s.sources))
        for s in songs)


def _by_id(songs: list[Song], prefix: str) -> Song:
    found = [s for s in songs if s.info.sha256.hex().startswith(prefix)]
    if not found:
        raise cli.UsageError(tr(N_("no song found has an id starting with "
                                   "{prefix}"), prefix=prefix))
    if len(found) > 1:
        raise cli.UsageError(tr(N_("--id {prefix} matches several songs: "
                                   "{candidates}"), prefix=prefix,
                                candidates=describe_candidates(found)))
    return found[0]


def print_songs(songs: list[Song]) -> None:
    if not songs:
        print(_("no songs found"))
        return
    heads = _("name"), _("size"), _("duration"), _("seeders")
    print(f"{heads[0]:<36} {heads[1]:>9} {heads[2]:>8}  {heads[3]}")
    for song in songs:
        info = song.info
        sources = ", ".join(cli.format_address(a) for a in song.sources)
        print(f"{cli.printable(info.name)[:36]:<36} "
              f"{i18n.size(info.size):>9} "
              f"{i18n.duration(info.duration_ms):>8}  "
              f"{len(song.sources)} ({sources})")


class TerminalView:
    """The terminal leecher's reader of the typed events: lines for what
    happens, a progress bar (a plain line per second in a log) from the
    snapshots.  Passed to ``Download`` as its ``events``."""

    wants_chunks = False  # no per-chunk event: the bar reads snapshots

    def __init__(self, info: p.FileInfo, stream=sys.stdout, also=None):
        self.info = info
        self.stream = stream
        self.tty = stream.isatty()
        self.also = also  # called at each snapshot (the player's keys)
        self.audio = None
        self.resumed = 0
        self.last = None  # monotonic time of the last bar drawn
        self.shown = None  # the counts of the last line (a log's)
        self.snapshot = None
        self.busy: set[str] = set()  # peers whose last answer was BUSY
        told = self.tell  # a line in the language in use (i18n.describe)
        self.handlers = {
            ev.RequestSent: self._asked, ev.Resumed: self._resumed,
            ev.SongChanged: told, ev.SeederGone: told, ev.SeedersBack: told,
            ev.Refused: self._refused, ev.WaitingForSeeders: told,
            ev.BadPiece: told, ev.BadHashList: told,
            ev.Snapshot: self._snapshot,
            ev.ChunkReceived: None, ev.NackSent: None, ev.Played: None,
            ev.Stalled: None, ev.Completed: None, ev.Failed: None,
            ev.PeerJoined: told, ev.Served: told,
        }

    def put(self, event) -> None:
        ev.dispatch(event, self.handlers)

    def tell(self, event) -> None:
        """An event as the window says it (``i18n.describe``), a peer's
        words escaped for the terminal (``cli.printable``)."""
        if isinstance(event, ev.Refused):
            event = ev.Refused(event.peer, event.code,
                               cli.printable(event.text), event.at_s)
        self.say(i18n.clause(i18n.describe(event)))

    def say(self, line: str) -> None:
        if self.tty and self.last is not None:
            self.stream.write("\r\033[K")  # over the bar, drawn again later
        self.stream.write("  " + line + "\n")
        self.stream.flush()

    def _refused(self, event: ev.Refused) -> None:
        if event.code == p.ErrorCode.BUSY:
            self.busy.add(event.peer)
        self.tell(event)

    def _asked(self, event: ev.RequestSent) -> None:
        """A REQUEST; one that follows a BUSY "ask again later" says it
        is the same chunks asked again after the back-off."""
        if event.peer not in self.busy:
            self.tell(event)
            return
        self.busy.discard(event.peer)
        self.say(tr(N_("asked {peer} again for {chunks} chunks, after its "
                       "\"ask again later\""), peer=event.peer,
                    chunks=event.chunks))

    def _resumed(self, event: ev.Resumed) -> None:
        self.resumed = event.chunks
        self.tell(event)

    def _snapshot(self, snap: ev.Snapshot) -> None:
        self.snapshot = snap
        if self.also:
            self.also()
        self.draw()

    def draw(self, final: bool = False) -> None:
        snap = self.snapshot
        if snap is None:
            return
        now = time.monotonic()
        if not final and self.last is not None and \
                now - self.last < (0.2 if self.tty else 1.0):
            return
        counts = (snap.received, snap.nack_entries, snap.retransmitted)
        if not self.tty and counts == self.shown:
            return  # a log gets no line that says nothing new
        self.last, self.shown = now, counts
        done, total = snap.received, max(snap.total, 1)
        rate = min(self.info.size, (done - self.resumed)
                   * self.info.chunk_size) / snap.at_s if snap.at_s else 0
        text = f"{100 * done // total:3d}% " + tr(
            N_("{done}/{total} chunks {rate}/s  nacked {nacks}  resent "
               "{resent}"), done=done, total=snap.total,
            rate=i18n.size(rate), nacks=snap.nack_entries,
            resent=snap.retransmitted)
        player = self.audio.player if self.audio else None
        if player is not None:
            text += "  " + tr(N_("play {at} s ({state})"),
                              at=i18n.decimal(player.position_s, 1).rjust(5),
                              state=player_state(player.state))
        if self.tty:
            width = 30
            filled = width * done // total
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r[{bar}] {text}" + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def player_state(state: str) -> str:
    """The player's state (player.py's words) in the language in use."""
    return _(PLAYER_STATES.get(state, state))


PLAYER_STATES = {"playing": N_("playing"), "paused": N_("paused"),
                 "waiting": N_("waiting"), "stalled": N_("stalled"),
                 "stopped": N_("stopped"),
                 "finished": N_("finished")}


# What each source of chunks was (download_engine's "sources").
ROLES = {"seeder": N_("a seeder"), "peer": N_("a listener")}


def report(stats: dict) -> str:
    """The statistics of a download, one labelled line each (the
    labels padded to one column in every language)."""
    lines = [
        tr(N_("file            {file} ({size}, SHA-256 verified)"),
           file=stats["file"], size=i18n.size(stats["size"])),
        tr(N_("chunks          {chunks} ({received} received, "
              "{resumed}{duplicates} duplicates)"), chunks=stats["chunks"],
           received=stats["chunks_received"], duplicates=stats["duplicates"],
           resumed=tr(N_("{n} already on disk, "),
                      n=stats["chunks_resumed"])
           if stats.get("chunks_resumed") else ""),
        tr(N_("nacks sent      {n}"), n=stats["nacks_sent"]),
        tr(N_("retransmitted   {n} chunks"), n=stats["chunks_retransmitted"]),
        tr(N_("elapsed         {seconds} s"),
           seconds=i18n.decimal(stats["elapsed_s"], 2)),
        tr(N_("goodput         {rate}/s"),
           rate=i18n.size(stats["goodput_Bps"])),
    ]
    roles = stats.get("sources", {})
    for peer, count in sorted(stats["per_peer"].items()):
        lines.append(tr(N_("  from {peer} {n} chunks ({role})"),
                        peer=f"{peer:<21}", n=count,
                        role=_(ROLES.get(roles.get(peer), ROLES["seeder"]))))
    if stats.get("shared") or stats.get("served_chunks"):
        lines.append(tr(N_("served          {chunks} chunks to {peers} "
                           "other listener(s)"),
                        chunks=stats["served_chunks"],
                        peers=len(stats["served_to"])))
    if stats["seeders_gone"]:
        lines.append(tr(N_("seeders gone    {peers}"),
                        peers=", ".join(stats["seeders_gone"])))
    if stats.get("bad_pieces"):
        lines.append(tr(
            N_("bad pieces      {n} failed their SHA-256, fetched again "
               "(bad data from {peers})"), n=stats["bad_pieces"],
            peers=", ".join(tr(N_("{peer} in {n}"), peer=peer, n=count)
                            for peer, count in
                            stats["bad_pieces_per_peer"].items())))
    if "stalls" in stats:
        lines += _playback_lines(stats)
    return "\n".join(lines)


def _playback_lines(stats: dict) -> list[str]:
    def seconds(key):
        value = stats[key]
        return "-" if value is None else i18n.decimal(value, 2) + " s"
    continuity = stats["continuity"]
    return [
        tr(N_("start-up        {seconds} (request to first sound)"),
           seconds=seconds("startup_s")),
        tr(N_("stalls          {n} ({seconds} stalled)"),
           n=stats["stalls"], seconds=seconds("stall_s")),
        tr(N_("continuity      {share}"), share="-" if continuity is None
           else tr(N_("{percent} % of chunks before their deadline"),
                   percent=i18n.decimal(100 * continuity, 1))),
        tr(N_("played          {seconds}"), seconds=seconds("played_s")),
    ]


def write_json(path: str, stats: dict, timeline=None) -> None:
    """Write the statistics; ``timeline`` rows are streamed one by one so
    that a long song never sits in memory as a list of dicts."""
    try:
        with open(path, "w", encoding="utf-8") as handle:
            head = json.dumps(stats, indent=1)
            if timeline is None:
                handle.write(head)
                return
            handle.write(head[:-2] + ',\n "timeline": [')
            for n, row in enumerate(timeline):
                handle.write((",\n  " if n else "\n  ") + json.dumps(row))
            handle.write("\n ]\n}\n")
    except OSError as exc:
        raise cli.RunError(tr(N_("cannot write {path}: {reason}"),
                              path=path, reason=exc.strerror or exc))


def _endpoint(args) -> Endpoint:
    """The command's socket (--loss, --rng-seed, --no-offload) and its
    capture (--pcap), opened right after binding."""
    try:
        endpoint = Endpoint(getattr(args, "loss", 0.0),
                            getattr(args, "rng_seed", None),
                            share.bind_address(args.bind),
                            offload=not args.no_offload)
    except OSError as exc:  # not an address of this machine, in use...
        raise share.cannot_bind(args.bind, exc) from None
    if args.pcap:
        import pcap
        try:
            endpoint.open_capture(args.pcap)
        except pcap.CaptureError as exc:
            endpoint.close()
            raise cli.UsageError(str(exc)) from None
    return endpoint


def _close(endpoint: Endpoint) -> None:
    """Close the socket; with --pcap, say what the capture holds."""
    summary = endpoint.close()
    if summary:
        print(summary)


def cmd_ping(args) -> int:
    endpoint = _endpoint(args)
    try:
        find_alive(endpoint, read_seeders(args.seeders))
    finally:
        _close(endpoint)
    return cli.EXIT_OK


def cmd_search(args) -> int:
    endpoint = _endpoint(args)
    try:
        peers = find_alive(endpoint, read_seeders(args.seeders))
        songs = search(endpoint, [x for x in peers.values() if x.alive],
                       args.query)
    finally:
        _close(endpoint)
    print_songs(songs)
    return cli.EXIT_OK


def prepare_output(out_dir: str) -> None:
    """The download folder: made when missing, refused when unusable."""
    if not os.path.exists(out_dir):
        try:
            os.makedirs(out_dir)
        except OSError as exc:
            raise cli.UsageError(tr(
                N_("cannot create the output folder {path}: {reason}"),
                path=out_dir, reason=exc.strerror or exc)) from None
    if not os.path.isdir(out_dir):
        raise cli.UsageError(tr(N_("output is not a folder: {path}"),
                                path=out_dir))
    if not os.access(out_dir, os.W_OK):
        raise cli.UsageError(tr(N_("output folder is not writable: {path}"),
                                path=out_dir))


def check_file_to_write(path: str | None, option: str) -> None:
    """Refuse a --json / --audio-out path that cannot be written, before
    the download rather than after it."""
    if path is None:
        return
    folder = os.path.dirname(path) or "."
    if os.path.isdir(path):
        raise cli.UsageError(tr(N_("{option} {path}: is a folder, not a "
                                   "file"), option=option, path=path))
    if not os.path.isdir(folder):
        raise cli.UsageError(tr(N_("{option} {path}: folder {folder} not "
                                   "found"), option=option, path=path,
                                folder=folder))
    if not os.access(folder, os.W_OK):
        raise cli.UsageError(tr(N_("{option} {path}: folder {folder} is not "
                                   "writable"), option=option, path=path,
                                folder=folder))


def check_output(out_dir: str, song: Song, force: bool) -> str | None:
    """Say when the song is already there (and verified)."""
    final = os.path.join(out_dir, safe_name(song.info))
    if os.path.exists(final) and not force:
        if cli.sha256_file(final) == song.info.sha256:
            return final
        raise cli.UsageError(tr(N_("{path} exists and differs; use --force "
                                   "to replace it"),
                                path=cli.printable(final)))
    return None


def cmd_get(args) -> int:
    if (args.audio_out or args.fast) and not (args.play or args.preview):
        raise cli.UsageError(_("--audio-out and --fast go with --play or "
                               "--preview"))
    if args.fast and not args.audio_out:
        raise cli.UsageError(_("--fast goes with --audio-out FILE.wav"))
    prepare_output(args.output)
    check_file_to_write(args.json, "--json")
    check_file_to_write(args.audio_out, "--audio-out")
    options = Options(args.order, args.window, args.timeout, args.loss,
                      args.rng_seed, args.force, pick=args.pick)
    audio = Audio(args) if (args.play or args.preview) else None
    with Keys.active(audio), sigterm_as_interrupt():
        try:
            return _get(args, options, audio)
        except Terminated:
            cli.say_error(tr(N_("{prog}: terminated"), prog="leecher"))
            return EXIT_TERMINATED


def _get(args, options: Options, audio) -> int:
    """The run; Ctrl-C or SIGTERM (``Terminated``) during it still writes
    the --json (``complete`` false) before the run ends with 130 / 143;
    during --seed-for either ends the sharing and the run reports, exit
    0 (the song is saved)."""
    endpoint = _endpoint(args)
    song = download = None
    try:
        print(_("seeders:"))
        peers = find_alive(endpoint, read_seeders(args.seeders))
        songs = search(endpoint, [x for x in peers.values() if x.alive],
                       args.name)
        song = pick_song(songs, args.name, args.song_id)
        sharing = share.from_args(args)
        existing = check_output(args.output, song, args.force)
        # --play and --preview play a song already here, --seed-for shares
        # it; anything else has nothing to do (--force fetches it again).
        reshare = existing and shares_when_here(sharing, song)
        if existing and not (args.play or args.preview or reshare):
            print(tr(N_("{path} is already here and verified (--force "
                        "downloads it again)"),
                     path=cli.printable(existing)))
            if args.json:
                write_json(args.json, already_verified(existing, song))
            return cli.EXIT_OK
        view = TerminalView(song.info, also=audio.handle_keys if audio
                            else None)
        view.audio = audio
        download = Download(endpoint, song, peers, args.output, options,
                            events=view, sharing=sharing,
                            already_here=bool(reshare))
        if reshare:
            print(tr(N_("{path} is already here and verified: its pieces "
                        "are checked, then shared"),
                     path=cli.printable(existing)))
        path = _download(download, audio, view) if not existing or reshare \
            else existing
        print(tr(N_("saved {path}"), path=cli.printable(path)))
        stopped_by = _seed(download) if download.started else None
    except KeyboardInterrupt as exc:
        if args.json:
            write_interrupted(args.json, download, song, exc)
        raise
    finally:
        _close(endpoint)
    if audio:
        audio.play_to_the_end(download, path)
    stats = download.stats(timeline=False)
    print(report(stats))
    if args.json:
        stats.update(complete=True, interrupted_by=stopped_by)
        write_json(args.json, stats, download.times.rows())
    return cli.EXIT_OK


def shares_when_here(sharing: share.Sharing, song: Song) -> bool:
    """A song saved already is shared (--seed-for) when it has a piece
    list: the list is fetched and each piece checked, as in a download,
    so that the others may trust what they get."""
    return sharing.share and sharing.seed_for > 0 \
        and not pieces.legacy(song.info)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where a Ctrl-C would be: the run ends the same
    way (the --json written, --seed-for's summary), but exits 143."""


EXIT_TERMINATED = 128 + signal.SIGTERM  # as the shell reports a SIGTERM


def signal_name(exc: BaseException) -> str:
    return "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM raises ``Terminated`` meanwhile (main thread only)."""
    import threading

    def terminated(signum, frame):
        raise Terminated
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def write_interrupted(path: str, download, song, exc) -> None:
    """The --json of a run stopped before its song was saved: what is
    known, ``complete`` false."""
    if download is not None and download.engine is not None:
        stats = download.stats(timeline=False)
        timeline = download.times.rows()
    else:
        stats, timeline = {}, None
        if song is not None:
            stats = {"file": safe_name(song.info), "size": song.info.size,
                     "sha256": song.info.sha256.hex()}
    stats.update(complete=False, interrupted_by=signal_name(exc))
    write_json(path, stats, timeline)


def already_verified(path: str, song: Song) -> dict:
    """The statistics of a song that was already here: what is known."""
    return {"file": os.path.basename(path), "size": song.info.size,
            "sha256": song.info.sha256.hex(), "already_verified": True,
            "complete": True}


# How the pieces are chosen (--pick), told once as a download starts.
PICKS = {"sequential": N_("pieces picked in order"),
         "rarest": N_("pieces picked rarest first"),
         "deadline": N_("pieces picked near the play point first")}


def _download(download: Download, audio, view: TerminalView) -> str:
    if not (pieces.legacy(download.info) or download.part.in_place):
        print(_(PICKS[download.options.pick]))
    if audio and audio.preview:
        audio.start_preview(download)
    try:
        return download.run()
    except (KeyboardInterrupt, ev.DownloadFailed):
        if audio:
            audio.stop()
        if download.started and not download.part.in_place \
                and os.path.exists(download.part_path):
            print(tr(N_("partial download kept in {path}: run the same "
                        "command again to resume"),
                     path=cli.printable(download.part_path)),
                  file=sys.stderr)
        raise
    finally:
        view.draw(final=True)


def _seed(download: Download) -> str | None:
    """--seed-for: serve the saved song a while; Ctrl-C or SIGTERM ends
    it (the signal's name returned), and the run goes on to its report."""
    seconds = download.sharer.seed_for
    if not download.sharing_on or not seconds:
        return None
    try:  # from the line on: a Ctrl-C right after it ends the sharing
        print(tr(N_("sharing for {seconds} s (Ctrl-C stops)"),
                 seconds=i18n.decimal(seconds, 1)), flush=True)
        download.seed()
    except KeyboardInterrupt as exc:
        print(_("sharing stopped"))
        return signal_name(exc)
    return None


KEYS_HELP = N_("keys: p or space = pause/resume, q = stop playing")


class Keys:
    """Single key presses on a terminal, without waiting for Enter."""

    def __init__(self):
        self.fd = sys.stdin.fileno() if sys.stdin and sys.stdin.isatty() \
            else None
        self._saved = None

    @classmethod
    @contextlib.contextmanager
    def active(cls, audio):
        keys = audio.keys if audio else cls()
        if audio:
            keys.open()
        try:
            yield keys
        finally:
            keys.close()

    def open(self) -> None:
        if self.fd is not None:
            import termios
            import tty
            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)  # Ctrl-C still interrupts

    def close(self) -> None:
        if self._saved is not None:
            import termios
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def read(self) -> str | None:
        if self._saved is None or not select.select([self.fd], [], [], 0)[0]:
            return None
        return os.read(self.fd, 1).decode("latin-1").lower()


class Audio:
    """--play / --preview for the terminal leecher (see player.py)."""

    def __init__(self, args):
        import importlib.util
        if importlib.util.find_spec("audioread") is None:
            raise cli.UsageError(_("audioread is missing: run ./setup.sh "
                                   "install, then use .venv/bin/python"))
        import player
        self.module = player
        try:
            player.check_ffmpeg()
        except player.PlayerError as exc:
            raise cli.UsageError(str(exc)) from None
        self.preview = args.preview
        self.prebuffer = args.prebuffer
        self.sink = player.choose_sink(args.audio_out, args.fast,
                                       notice=print)
        self.player = None
        self.keys = Keys()

    def _new_player(self, download: Download):
        self.player = self.module.Player(self.sink, self.prebuffer,
                                         on_played=download.record_played)
        download.attach_player(self.player)
        return self.player

    def start_preview(self, download: Download) -> None:
        self._new_player(download).start()
        print(_(KEYS_HELP))

    def play_to_the_end(self, download: Download, path: str) -> None:
        if self.player is None:  # --play: the whole file is here
            if download.started is None:
                download.started = time.monotonic()
            self._new_player(download).play_file(path)
            print(_(KEYS_HELP))
        # On a terminal one line is rewritten in place; in a log, a line
        # per second.
        tty = sys.stdout.isatty()
        last = 0.0
        try:
            while not self.player.wait(timeout=0.1):
                self.handle_keys()
                if time.monotonic() - last >= (0.2 if tty else 1.0):
                    last = time.monotonic()
                    self._show_position("\r" if tty else "", "" if tty
                                        else "\n")
        except KeyboardInterrupt:
            self.stop()
            raise
        finally:
            if tty:
                self._show_position("\r", "\n")
        if self.player.error:
            raise cli.RunError(tr(N_("playback failed: {reason}"),
                                  reason=self.player.error))

    def _show_position(self, start: str, end: str) -> None:
        sys.stdout.write(start + tr(
            N_("playing {at} s ({state})"),
            at=i18n.decimal(self.player.position_s, 1).rjust(5),
            state=player_state(self.player.state)) + "   " + end)
        sys.stdout.flush()

    def handle_keys(self) -> None:
        key = self.keys.read()
        if self.player is None or key is None:
            return
        if key in " p":
            if self.player.state == "paused":
                self.player.resume()
            else:
                self.player.pause()
        elif key == "q":
            self.player.stop()

    def stop(self) -> None:
        if self.player is not None:
            self.player.stop()


def build_parser() -> cli.Parser:
    parser = cli.Parser(prog="leecher.py", description=_(
        "Find P2P FACOM seeders, search their songs and download one."))
    cli.add_lang_option(parser)  # before or after the command
    sub = parser.add_subparsers(dest="command", required=True,
                                parser_class=cli.Parser)
    common = cli.Parser(add_help=False)
    common.add_argument("--seeders", metavar="ADDR,ADDR",
                        help=_("seeders to use (default: seeders.txt or "
                               "127.0.0.1-3:9000)"))
    common.add_argument("--no-offload", action="store_true",
                        help=_("one datagram per read (no UDP GRO)"))
    common.add_argument("--pcap", metavar="FILE",
                        help=_("write every datagram sent and received to "
                               "this pcap file (Wireshark: see wireshark/)"))
    share.add_bind_argument(common)
    cli.add_lang_option(common)
    sub.add_parser("ping", parents=[common],
                   help=_("which seeders are alive"))
    find = sub.add_parser("search", parents=[common],
                          help=_("search songs"))
    find.add_argument("query", nargs="?", default="",
                      help=_("words of the name (empty: all songs)"))
    get = sub.add_parser("get", parents=[common], help=_("download a song"))
    add_get_arguments(get)
    return parser


def add_get_arguments(get) -> None:
    get.add_argument("name", help=_("song name (or a unique part of it)"))
    get.add_argument("--id", dest="song_id", metavar="PREFIX",
                     type=hex_prefix,
                     help=_("the song whose SHA-256 starts with PREFIX (when "
                            "seeders disagree on a name)"))
    get.add_argument("-o", "--output", default="downloads",
                     help=_("folder to save into (default downloads/)"))
    get.add_argument("--order", "--method", dest="order",
                     choices=list(p.ORDER_NAMES),
                     help=_("sending order to ask for (default: each "
                            "seeder's own)"))
    get.add_argument("--json", metavar="FILE",
                     help=_("write statistics here"))
    get.add_argument("--loss", type=cli.probability, default=0.0,
                     metavar="P", help=_("drop received datagrams on "
                                         "purpose"))
    get.add_argument("--rng-seed", type=int, default=None, metavar="N")
    get.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                     help=_("chunks in flight per seeder (default 256)"))
    get.add_argument("--timeout", type=cli.positive, default=DEFAULT_TIMEOUT,
                     metavar="S",
                     help=_("give up after S s without progress"))
    get.add_argument("--force", action="store_true",
                     help=_("replace an existing file of the same name"))
    get.add_argument("--play", action="store_true",
                     help=_("play the song once it is downloaded"))
    get.add_argument("--preview", action="store_true",
                     help=_("play while downloading"))
    get.add_argument("--prebuffer", type=cli.non_negative, default=2.0,
                     metavar="S", help=_("seconds of audio before playing "
                                         "(default 2)"))
    get.add_argument("--audio-out", metavar="FILE.wav",
                     help=_("write what is played to a WAV file"))
    get.add_argument("--fast", action="store_true",
                     help=_("with --audio-out: not in real time"))
    share.add_arguments(get)


def hex_prefix(text: str) -> str:
    import argparse
    if not text or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise argparse.ArgumentTypeError(
            tr(N_("not a hexadecimal id: {text}"), text=repr(text)))
    return text.lower()


def main(argv=None) -> int:
    cli.setup_language(argv)  # --lang, else LANG (before the help texts)
    args = build_parser().parse_args(argv)
    if hasattr(signal, "SIGXFSZ"):  # over a file-size limit: EFBIG, not death
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    commands = {"ping": cmd_ping, "search": cmd_search, "get": cmd_get}

    def body():
        if args.command == "get" and not 1 <= args.window <= 4096:
            raise cli.UsageError(_("--window must be between 1 and "
                                   "4096"))
        return commands[args.command](args)
    return cli.run_main("leecher", body)


if __name__ == "__main__":
    sys.exit(main())
