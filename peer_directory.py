"""Who shares which song, as a seeder or a peer heard it (peer exchange).

A ``SeederEngine`` records every address that sent it a HAVE with a
valid token for a song it knows (``record``) and answers GET_PEERS with
the newest of them and a random sample of the others (``listing``).
Pure and bounded: no clock (the caller gives ``now``), no socket, and its
memory is capped per song and in total whatever a flood of HAVEs from
proven addresses does.
"""

from __future__ import annotations

import ipaddress
import random
from collections import OrderedDict

import protocol as p

# Songs tracked at once: a seeder's whole catalog rarely swarms at once;
# the least recently announced song is forgotten first.
MAX_SONGS = 64
# Peers remembered per song: a PEERS lists 32, so 4 answers' worth lets
# different askers learn different peers.
MAX_PEERS_PER_SONG = 128
# All entries together (~100 bytes each): ~400 KB at most.
MAX_ENTRIES = 4096
# Entries one host (IP) may hold per song: a class may run a few peers on
# one IP, while one host with many sockets (every port validated by its
# own token) must not crowd honest peers out of every PEERS answer.
MAX_PER_HOST = 8
# A peer re-registers every ``peer_engine.DIRECTORY_REFRESH_S`` (20 s):
# three refreshes lost in a row, or a peer gone, and it is no longer listed.
PEER_TTL_S = 60.0
# A PEERS lists the newest sharers first (a newcomer is found at once),
# then a random sample of the others: if every answer listed the same 32
# newest, a flash crowd would split into one clique everyone knows and
# the rest, who would take everything from the seeder.
NEWEST_LISTED = 8


def listable(addr) -> bool:
    """An address a PEERS can carry: IPv4 unicast, port 1-65535.  Never
    0.0.0.0/8 (a PING there reaches the sender's own host), multicast
    or 240/4 with the broadcast address (they reach many hosts)."""
    try:
        host, port = addr
        ip = ipaddress.IPv4Address(host)
    except (TypeError, ValueError):
        return False
    if ip.packed[0] == 0 or ip.is_multicast or ip.is_reserved:
        return False
    return type(port) is int and 0 < port <= 0xFFFF


class PeerDirectory:
    """Recent sharers per song, most recent last in insertion order; one
    entry per (song, address), refreshed (moved to the end) by each
    HAVE.  Entries older than ``PEER_TTL_S`` are dropped as they are met."""

    def __init__(self, seed: int = 0):
        self._rng = random.Random(seed)  # the sample: seeded, repeatable
        # (file_id, addr) -> when last heard, oldest first: expiry and
        # the total bound take from the front.
        self._recent: OrderedDict[tuple, float] = OrderedDict()
        # file_id -> addresses in the order last heard (oldest first).
        self._songs: dict[bytes, OrderedDict[tuple, None]] = {}

    def __len__(self) -> int:
        return len(self._recent)

    def songs(self) -> int:
        return len(self._songs)

    def record(self, file_id: bytes, addr, now: float) -> None:
        """``addr`` shares ``file_id`` as of ``now`` (its HAVE was
        token-checked by the caller)."""
        if not listable(addr):
            return
        addr = (addr[0], addr[1])
        self._expire(now)
        peers = self._songs.get(file_id)
        if peers is None:
            while len(self._songs) >= MAX_SONGS:
                self._drop(next(iter(self._recent)))
            peers = self._songs[file_id] = OrderedDict()
        if self._recent.pop((file_id, addr), None) is None:
            self._make_room_for(file_id, addr[0])
        peers.pop(addr, None)
        self._recent[(file_id, addr)] = now
        peers[addr] = None
        if len(peers) > MAX_PEERS_PER_SONG:
            self._drop((file_id, next(iter(peers))))
        if len(self._recent) > MAX_ENTRIES:
            self._drop(next(iter(self._recent)))

    def listing(self, file_id: bytes, asker, now: float,
                most: int = p.MAX_PEERS_LISTED) -> tuple[tuple[str, int], ...]:
        """Up to ``most`` sharers of ``file_id``, ``asker`` left out: the
        ``NEWEST_LISTED`` most recent first, then a random sample of the
        others (at most ``MAX_PEERS_PER_SONG``: bounded work)."""
        self._expire(now)
        peers = self._songs.get(file_id)
        if not peers:
            return ()
        newest_first = [addr for addr in reversed(peers) if addr != asker]
        if len(newest_first) <= most:
            return tuple(newest_first)
        newest = newest_first[:min(NEWEST_LISTED, most)]
        return tuple(newest + self._rng.sample(newest_first[len(newest):],
                                               most - len(newest)))

    def _make_room_for(self, file_id: bytes, host: str) -> None:
        """A new entry of ``host``: its oldest for this song goes when it
        holds ``MAX_PER_HOST`` already (one look at <= 128 entries)."""
        mine = [addr for addr in self._songs[file_id] if addr[0] == host]
        if len(mine) >= MAX_PER_HOST:
            self._drop((file_id, mine[0]))

    def _expire(self, now: float) -> None:
        recent = self._recent
        while recent:
            key, heard = next(iter(recent.items()))
            if now - heard <= PEER_TTL_S:
                return
            self._drop(key)

    def _drop(self, key: tuple) -> None:
        file_id, addr = key
        del self._recent[key]
        peers = self._songs[file_id]
        del peers[addr]
        if not peers:
            del self._songs[file_id]
