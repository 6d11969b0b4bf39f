"""What a download tells the world: one stream of typed events.

The leecher's engine (``download_engine.py``) and its driver
(``leecher.py``) report everything a user may see as frozen dataclasses
defined here.  The terminal leecher, the window and the JSON statistics
all read this one stream; nobody parses log text.  Events carry codes and
parameters, never sentences: the interface turns them into words in the
user's language (``i18n.py``).

Rules:
- every event is a frozen dataclass listed in ``EVENT_TYPES``;
- times (``*_s``) are seconds since the download's request, on the
  leecher's clock (or the simulated clock);
- peers are named ``"IP:port"`` strings;
- ``dispatch`` raises ``UnknownEvent`` for a type nobody handles, so a
  new event cannot be silently dropped by an interface.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable, Mapping, Union


class Problem(str, enum.Enum):
    """Why a download stopped or a peer was refused: a code the interface
    translates.  The value is a stable identifier (used in JSON)."""

    NO_SEEDER_ALIVE = "no-seeder-alive"  # params: addresses
    ALL_SEEDERS_GONE = "all-seeders-gone"  # params: -
    NO_PROGRESS = "no-progress"  # params: seconds
    HASH_MISMATCH = "hash-mismatch"  # params: name
    STOPPED = "stopped"  # params: -
    CANNOT_WRITE = "cannot-write"  # params: path, reason
    LOCKED = "locked"  # params: path
    REFUSED = "refused"  # params: peer, code, text
    TOO_BIG = "too-big"  # params: name, size


class DownloadFailed(Exception):
    """The engine's own error: a ``Problem`` and its parameters.  The
    command line maps it to exit code 1 in one place (``cli.run_main``);
    the window shows it translated."""

    def __init__(self, problem: Problem, **params):
        self.problem = problem
        self.params = params
        super().__init__(f"{problem.value} {params}")


# ------------------------------------------------------------ the events
@dataclass(frozen=True)
class RequestSent:
    """A REQUEST for ``chunks`` chunks went to ``peer``."""

    peer: str
    chunks: int
    order: str  # "sequential", "random", "semi-random"
    at_s: float


@dataclass(frozen=True)
class ChunkReceived:
    """A chunk we did not have yet arrived (duplicates are not told)."""

    index: int
    sent_s: float | None  # the seeder's clock, mapped onto ours
    received_s: float
    retransmission: bool
    source: str


@dataclass(frozen=True)
class NackSent:
    """A NACK asked ``peer`` again for ``chunks`` (in ``round``)."""

    peer: str
    round: int
    chunks: tuple[int, ...]
    at_s: float


@dataclass(frozen=True)
class SeederGone:
    """``peer`` stopped answering; its missing share moves elsewhere."""

    peer: str
    at_s: float


@dataclass(frozen=True)
class SeedersBack:
    """Seeders that were gone answer again and get the orphaned chunks."""

    peers: tuple[str, ...]
    at_s: float


@dataclass(frozen=True)
class Refused:
    """``peer`` answered our REQUEST with an ERROR."""

    peer: str
    code: int
    text: str  # the peer's own words: untrusted, shown escaped
    at_s: float


@dataclass(frozen=True)
class WaitingForSeeders:
    """No live seeder has the missing chunks; asking again for up to
    ``seconds``."""

    seconds: float
    at_s: float


@dataclass(frozen=True)
class BadPiece:
    """Piece ``piece`` failed its SHA-256: the data ``peers`` sent for it
    was wrong (valid CRCs, wrong bytes).  It is fetched again; ``dropped``
    are the peers that have now sent too many bad pieces and get no more
    work."""

    piece: int
    peers: tuple[str, ...]
    at_s: float
    dropped: tuple[str, ...] = ()


@dataclass(frozen=True)
class BadHashList:
    """``peer`` sent a piece hash list that does not hash to the song's
    id: it lies, and gets no more work."""

    peer: str
    at_s: float


@dataclass(frozen=True)
class PeerJoined:
    """``peer``, another listener that shares this song (found by peer
    exchange or by its HAVE), answered: chunks may now come from it."""

    peer: str
    at_s: float


@dataclass(frozen=True)
class Served:
    """What this leecher has uploaded to other peers so far: ``chunks``
    sent (resends included) to ``peers`` distinct addresses."""

    chunks: int
    peers: int
    at_s: float


@dataclass(frozen=True)
class Resumed:
    """``chunks`` of ``total`` were already on disk from an earlier run."""

    chunks: int
    total: int


@dataclass(frozen=True)
class SongChanged:
    """The sidecar was for another version of the song: starting over."""


@dataclass(frozen=True)
class Played:
    """Every byte before ``byte_end`` has been played (player thread)."""

    byte_end: int
    at_s: float


@dataclass(frozen=True)
class Stalled:
    """Playback reached audio that has not arrived (a stall began)."""

    at_s: float


@dataclass(frozen=True)
class Snapshot:
    """Counters at one moment, for progress bars: a copy, never the
    live engine."""

    at_s: float
    received: int  # distinct chunks we hold (resumed ones included)
    total: int
    nack_entries: int  # chunk entries named in NACKs
    retransmitted: int  # chunks that came as retransmissions
    per_source: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Completed:
    """The file is complete, its SHA-256 verified, renamed to ``path``."""

    path: str
    at_s: float


@dataclass(frozen=True)
class Failed:
    """The download stopped for ``problem`` (see ``Problem``)."""

    problem: Problem
    params: Mapping[str, object]
    at_s: float


Event = Union[RequestSent, ChunkReceived, NackSent, SeederGone,
              SeedersBack, Refused, WaitingForSeeders, BadPiece, BadHashList,
              PeerJoined, Served, Resumed, SongChanged, Played, Stalled,
              Snapshot, Completed, Failed]
EVENT_TYPES: tuple[type, ...] = Event.__args__  # type: ignore[attr-defined]


class UnknownEvent(TypeError):
    """An event type the reader has no handler for."""


def dispatch(event: object, handlers: Mapping[type, Callable]) -> None:
    """Call the handler for ``type(event)``.  ``handlers`` may map a type
    to ``None`` to say "seen, nothing to do"; a type it does not list at
    all raises ``UnknownEvent``."""
    try:
        handler = handlers[type(event)]
    except KeyError:
        raise UnknownEvent(f"no handler for {type(event).__name__}") \
            from None
    if handler is not None:
        handler(event)
