"""Language: which one, and every sentence a user reads, in it.

The texts are English msgids in the code, marked ``_("...")`` (translated
now) or ``N_("...")`` (translated later, when shown); the Brazilian
Portuguese catalog is ``locale/pt_BR/LC_MESSAGES/p2p_facom.po``, compiled
to the ``.mo`` next to it (``msgfmt``) and read by the standard library's
``gettext``.

This module also turns the typed events of ``events.py`` and the
``Problem`` codes into sentences (``describe``, ``problem_text``), for the
window and for the terminal leecher and seeder alike, and folds names for
a search that ignores case and accents (``fold``).

    import i18n
    i18n.use(i18n.detect_language())      # LANG=pt_BR.UTF-8 -> "pt"
    print(i18n.describe(event))
"""

from __future__ import annotations

import gettext
import os
import unicodedata

import events as ev

DOMAIN = "p2p_facom"
LOCALE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "locale")
LANGUAGES = ("pt", "en")
CATALOGS = {"pt": "pt_BR"}  # the language's catalog folder; English: none
LANGUAGE_NAMES = (("pt", "Português (Brasil)"), ("en", "English"))
UNTRUSTED_MAX = 120  # characters of a peer's own words shown at most

_translations: dict[str, gettext.NullTranslations] = {}
_lang = "en"


def N_(message: str) -> str:
    """Mark ``message`` for the catalog; it is translated when shown."""
    return message


def detect_language(environ=None) -> str:
    """pt when the locale (LC_ALL, else LC_MESSAGES, else LANG) is pt*."""
    environ = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            return "pt" if value.lower().startswith("pt") else "en"
    return "en"


def translation(lang: str) -> gettext.NullTranslations:
    """The catalog of ``lang`` (English: the msgids themselves)."""
    if lang not in _translations:
        catalog = CATALOGS.get(lang)
        _translations[lang] = gettext.translation(
            DOMAIN, LOCALE_DIR, languages=[catalog], fallback=True) \
            if catalog else gettext.NullTranslations()
    return _translations[lang]


def use(lang: str) -> None:
    """Speak ``lang`` ("pt" or "en") from now on."""
    global _lang
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}")
    _lang = lang


def setup(lang: str | None = None, environ=None) -> str:
    """The language of a program: ``--lang`` when given, else the locale
    (``LANG=pt_BR.UTF-8`` speaks Portuguese).  For the terminal leecher
    and seeder as for the window; returns it."""
    use(lang or detect_language(environ))
    return _lang


def option_in(argv) -> str | None:
    """The value of ``--lang`` in a command line not parsed yet (the
    option help texts are translated before argparse reads them)."""
    argv = list(argv)
    for n, arg in enumerate(argv):
        if arg == "--lang" and n + 1 < len(argv):
            value = argv[n + 1]
        elif arg.startswith("--lang="):
            value = arg.partition("=")[2]
        else:
            continue
        return value if value in LANGUAGES else None  # argparse says why
    return None


def clause(sentence: str) -> str:
    """A sentence as the end of a terminal line ("leecher: ..."): its
    first letter small (unless the word is an abbreviation such as SHA),
    no final period."""
    first = sentence.split(" ")[0]
    if first[:1].isupper() and not (len(first) > 1 and first.isupper()):
        sentence = sentence[0].lower() + sentence[1:]
    return sentence[:-1] if sentence.endswith(".") else sentence


def language() -> str:
    return _lang


def _(message: str) -> str:
    """``message`` in the language in use."""
    return translation(_lang).gettext(message)


def translate(lang: str, message: str) -> str:
    """``message`` in ``lang``, whatever the language in use."""
    return translation(lang).gettext(message)


def text(message: str, /, **params) -> str:
    """``message`` translated, its ``{fields}`` filled in; a missing
    parameter shows as "?" rather than failing."""
    return _(message).format_map(_Lenient(params))


class _Lenient(dict):
    def __missing__(self, key):
        return "?"


# ---------------------------------------------------------- formatting
def decimal(value: float, digits: int) -> str:
    """1.5 -> "1.5" in English, "1,5" in Portuguese."""
    shown = f"{value:.{digits}f}"
    return shown.replace(".", ",") if _lang == "pt" else shown


def seconds(value) -> str:
    return "—" if value is None else decimal(value, 2) + " s"


def size(value) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{decimal(value, 0 if unit == 'B' else 1)} {unit}"
        value /= 1000
    return ""


def duration(ms: int) -> str:
    """A song's length as minutes:seconds, to the nearest second (59.6 s
    -> "1:00", in the terminal and the window alike); "?" when unknown
    (0)."""
    if not ms:
        return "?"
    seconds = (ms + 500) // 1000  # integer half-up: no banker's rounding
    return f"{seconds // 60}:{seconds % 60:02d}"


def untrusted(words: object) -> str:
    """A peer's own words, made safe to show on one line: no control
    characters, at most UNTRUSTED_MAX characters."""
    shown = "".join(ch if ch.isprintable() else "\ufffd"
                    for ch in str(words))
    if len(shown) > UNTRUSTED_MAX:
        shown = shown[:UNTRUSTED_MAX - 1] + "…"
    return shown


def chunk_list(chunks, most: int = 6) -> str:
    chunks = list(chunks)
    return ", ".join(map(str, chunks[:most])) + \
        (", …" if len(chunks) > most else "")


# ------------------------------------------------------------ searching
def fold(name: str) -> str:
    """``name`` without case and accents: "Canção" -> "cancao"."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return "".join(ch for ch in decomposed
                   if not unicodedata.combining(ch))


def matches(query: str, name: str) -> bool:
    """Every word of ``query`` is in ``name``, case and accents aside."""
    folded = fold(name)
    return all(word in folded for word in fold(query).split())


# ------------------------------------------------------------ problems
PROBLEMS = {
    ev.Problem.NO_SEEDER_ALIVE: N_(
        "No seeder is alive ({addresses}): start one (python3 seeder.py "
        "-i {ip} -p {port}) and try again."),
    ev.Problem.ALL_SEEDERS_GONE: N_(
        "All seeders with this song are gone (partial file kept)."),
    ev.Problem.NO_PROGRESS: N_(
        "No chunk arrived for {seconds} s (the partial file is kept)."),
    ev.Problem.HASH_MISMATCH: N_(
        "The SHA-256 of {name} does not match the seeders' (not kept)."),
    ev.Problem.STOPPED: N_("Stopped (the partial file is kept)."),
    ev.Problem.CANNOT_WRITE: N_("Cannot write {path}: {reason}."),
    ev.Problem.LOCKED: N_("Another leecher is already writing {path}."),
    ev.Problem.REFUSED: N_("{peer} refused: {text}."),
    ev.Problem.TOO_BIG: N_("{name} is too big ({size})."),
}


def problem_text(problem: ev.Problem, params: dict | None = None) -> str:
    """Why a download stopped, in one sentence of the language in use."""
    params = dict(params or {})
    if "text" in params:
        params["text"] = untrusted(params["text"])
    if "size" in params and isinstance(params["size"], (int, float)):
        params["size"] = size(params["size"])
    if "seconds" in params and isinstance(params["seconds"], (int, float)):
        params["seconds"] = decimal(params["seconds"], 0)
    addresses = params.get("addresses")
    if isinstance(addresses, (list, tuple)):
        first = str(addresses[0]) if addresses else "127.0.0.1:9000"
        params.setdefault("ip", first.rpartition(":")[0] or first)
        params.setdefault("port", first.rpartition(":")[2] or "9000")
        params["addresses"] = ", ".join(map(str, addresses)) or "—"
    return text(PROBLEMS.get(problem, N_("Failed: {problem}.")),
                problem=getattr(problem, "value", problem), **params)


# -------------------------------------------------------------- events
def _snapshot(e: ev.Snapshot) -> str:
    return text(N_("{received}/{total} chunks · NACKs {nacks} · "
                   "retransmitted {rtx}"), received=e.received,
                total=e.total, nacks=e.nack_entries, rtx=e.retransmitted)


_DESCRIBE = {
    ev.RequestSent: lambda e: text(
        N_("Asked {peer} for {chunks} chunks ({order})."), peer=e.peer,
        chunks=e.chunks, order=order_name(e.order)),
    ev.ChunkReceived: lambda e: text(
        N_("Chunk {index} from {source} at {at}."), index=e.index,
        source=e.source, at=seconds(e.received_s)),
    ev.NackSent: lambda e: text(
        N_("NACK to {peer}: {n} lost chunk(s) asked for again "
           "({chunks}).") if e.peer else
        N_("NACK: {n} lost chunk(s) asked for again ({chunks})."),
        peer=e.peer, n=len(e.chunks), chunks=chunk_list(e.chunks)),
    ev.SeederGone: lambda e: text(
        N_("{peer} stopped answering: its chunks go to the other "
           "seeders."), peer=e.peer),
    ev.SeedersBack: lambda e: text(
        N_("Seeders back: {peers}."), peers=", ".join(e.peers)),
    ev.Refused: lambda e: text(
        N_("{peer} refused: {text}"), peer=e.peer, text=untrusted(e.text)),
    ev.WaitingForSeeders: lambda e: text(
        N_("No seeder with this song answers: asking again for up to "
           "{seconds}."), seconds=seconds(e.seconds)),
    ev.BadPiece: lambda e: text(
        N_("Piece {piece} failed its SHA-256 (wrong data from {peers}): "
           "fetching it again.") if not e.dropped else
        N_("Piece {piece} failed its SHA-256 (wrong data from {peers}): "
           "fetching it again; {dropped} dropped: too many bad pieces."),
        piece=e.piece, peers=", ".join(e.peers),
        dropped=", ".join(e.dropped)),
    ev.BadHashList: lambda e: text(
        N_("{peer} sent a piece hash list that does not match the song: "
           "it gets no more work."), peer=e.peer),
    ev.PeerJoined: lambda e: text(
        N_("{peer}, another listener sharing this song, joined."),
        peer=e.peer),
    ev.Served: lambda e: text(
        N_("Served {chunks} chunks to {peers} other listener(s)."),
        chunks=e.chunks, peers=e.peers),
    ev.Resumed: lambda e: text(
        N_("Resuming: {chunks} of {total} chunks were already here."),
        chunks=e.chunks, total=e.total),
    ev.SongChanged: lambda e: _(
        "The song changed on the seeders since the last try: starting "
        "over."),
    ev.Played: lambda e: text(N_("Played up to byte {byte}."),
                              byte=e.byte_end),
    ev.Stalled: lambda e: text(
        N_("Playback stalled at {at}: waiting for data."),
        at=seconds(e.at_s)),
    ev.Snapshot: _snapshot,
    ev.Completed: lambda e: text(
        N_("Done: {path} saved and verified (SHA-256)."), path=e.path),
    ev.Failed: lambda e: problem_text(e.problem, dict(e.params)),
}


def describe(event: object) -> str:
    """One typed event (events.py) as a sentence; ``UnknownEvent`` for a
    type this module does not know."""
    try:
        render = _DESCRIBE[type(event)]
    except KeyError:
        raise ev.UnknownEvent(f"no sentence for {type(event).__name__}") \
            from None
    return render(event)


ORDER_NAMES = {None: N_("each seeder's own"), "sequential": N_("sequential"),
               "random": N_("random"), "semi-random": N_("semi-random")}


def order_name(order: str | None) -> str:
    """A sending order in the language in use."""
    return _(ORDER_NAMES.get(order, order or ORDER_NAMES[None]))
