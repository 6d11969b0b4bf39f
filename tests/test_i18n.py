"""Language: the pt_BR catalog covers every msgid of the code, compiles
clean, and events and problems read differently in both languages."""

from __future__ import annotations

import ast
import gettext
import glob
import os
import shutil
import string
import subprocess

import pytest

from conftest import ROOT, skip_outside_ci

import events as ev
import i18n

PO = os.path.join(ROOT, "locale", "pt_BR", "LC_MESSAGES", "p2p_facom.po")
MO = PO[:-3] + ".mo"
SOURCES = sorted(glob.glob(os.path.join(ROOT, "gui*.py"))) + \
    [os.path.join(ROOT, name) for name in (
        "i18n.py", "leecher.py", "seeder.py", "cli.py", "p2p_facom.py",
        "experiment.py", "share.py")]


def msgids_in_code() -> set[str]:
    """Every string literal given to _() or N_() (i18n._ included)."""
    found = set()
    for path in SOURCES:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args and \
                    getattr(node.func, "id", getattr(node.func, "attr",
                                                     None)) in ("_", "N_") \
                    and isinstance(node.args[0], ast.Constant) and \
                    isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return found


@pytest.fixture(autouse=True)
def english_afterwards():
    yield
    i18n.use("en")


def test_every_msgid_of_the_code_has_a_portuguese_translation():
    ids = msgids_in_code()
    assert len(ids) > 100
    catalog = i18n.translation("pt")
    untranslated = sorted(m for m in ids if catalog.gettext(m) == m
                          and m not in SAME_IN_BOTH)
    assert untranslated == []


# Words that are the same in Portuguese (names, abbreviations).
SAME_IN_BOTH = {"NACKs", "NACK", "RTT", "Retransm.", "Seeders",
                "P2P FACOM — leecher", "Download", "Player",
                "{pos} / {total}  ·  {state}", "seeders", "seeders:",
                "seeder {address}"}


def test_translations_keep_the_fields_of_their_msgid():
    catalog = i18n.translation("pt")
    fields = string.Formatter()
    for message in msgids_in_code():
        english = sorted(f for _, f, _, _ in fields.parse(message) if f)
        portuguese = sorted(f for _, f, _, _ in
                            fields.parse(catalog.gettext(message)) if f)
        assert english == portuguese, message


def test_the_catalog_compiles_clean_and_the_mo_is_up_to_date(tmp_path):
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        skip_outside_ci("msgfmt is missing (Debian package gettext)")
    out = tmp_path / "check.mo"
    result = subprocess.run([msgfmt, "--check", "--statistics", "-o",
                             str(out), PO], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "untranslated" not in result.stderr
    assert "fuzzy" not in result.stderr
    assert result.stderr.strip().endswith("translated messages.")
    shipped = gettext.GNUTranslations(open(MO, "rb"))
    fresh = gettext.GNUTranslations(open(out, "rb"))
    assert shipped._catalog == fresh._catalog  # msgfmt was run


def test_xgettext_finds_no_msgid_the_scan_missed(tmp_path):
    xgettext = shutil.which("xgettext")
    if xgettext is None:
        skip_outside_ci("xgettext is missing (Debian package gettext)")
    pot = tmp_path / "p2p.pot"
    subprocess.run([xgettext, "--from-code=UTF-8", "-L", "Python", "-k_",
                    "-kN_", "-o", str(pot), *SOURCES], check=True)
    text = pot.read_text(encoding="utf-8")
    count = text.count('\nmsgid "') - 1  # the header's empty msgid
    assert count == len(msgids_in_code())


ALL_PROBLEMS = {
    ev.Problem.NO_SEEDER_ALIVE: {"addresses": ["10.0.0.5:9100"]},
    ev.Problem.ALL_SEEDERS_GONE: {},
    ev.Problem.NO_PROGRESS: {"seconds": 30},
    ev.Problem.HASH_MISMATCH: {"name": "a.mp3"},
    ev.Problem.STOPPED: {},
    ev.Problem.CANNOT_WRITE: {"path": "/x/a.mp3.part",
                              "reason": "No space left on device"},
    ev.Problem.LOCKED: {"path": "/x/a.mp3.part"},
    ev.Problem.REFUSED: {"peer": "127.0.0.1:9000", "code": 3,
                         "text": "busy\x1b[2J"},
    ev.Problem.TOO_BIG: {"name": "a.mp3", "size": 5_000_000_000},
}


def test_every_problem_reads_differently_in_english_and_portuguese():
    assert set(ALL_PROBLEMS) == set(ev.Problem)
    for problem, params in ALL_PROBLEMS.items():
        i18n.use("en")
        english = i18n.problem_text(problem, params)
        i18n.use("pt")
        portuguese = i18n.problem_text(problem, params)
        assert english != portuguese, problem
        for words in (english, portuguese):
            assert "?" not in words, (problem, words)
            assert "\x1b" not in words and "\n" not in words
    i18n.use("pt")
    assert "10.0.0.5" in i18n.problem_text(
        ev.Problem.NO_SEEDER_ALIVE, ALL_PROBLEMS[ev.Problem.NO_SEEDER_ALIVE])
    assert "-p 9100" in i18n.problem_text(
        ev.Problem.NO_SEEDER_ALIVE, ALL_PROBLEMS[ev.Problem.NO_SEEDER_ALIVE])
    assert "5,0 GB" in i18n.problem_text(
        ev.Problem.TOO_BIG, ALL_PROBLEMS[ev.Problem.TOO_BIG])


def test_a_missing_parameter_shows_as_a_question_mark_not_a_crash():
    assert i18n.problem_text(ev.Problem.LOCKED, {}) == \
        "Another leecher is already writing ?."


SAMPLE_EVENTS = [
    ev.RequestSent("127.0.0.1:9000", 40, "random", 0.01),
    ev.ChunkReceived(3, 0.1, 0.2, False, "127.0.0.1:9000"),
    ev.NackSent("127.0.0.1:9000", 1, tuple(range(10)), 0.5),
    ev.NackSent("", 1, (4,), 0.5),  # the seeder unknown
    ev.SeederGone("127.0.0.2:9000", 1.0),
    ev.SeedersBack(("127.0.0.2:9000",), 2.0),
    ev.Refused("127.0.0.3:9000", 2, "no\nsuch\x00file", 0.1),
    ev.WaitingForSeeders(30.0, 3.0),
    ev.BadPiece(3, ("127.0.0.4:9000",), 2.5),
    ev.BadPiece(4, ("127.0.0.4:9000",), 2.7, ("127.0.0.4:9000",)),
    ev.BadHashList("127.0.0.5:9000", 0.3),
    ev.PeerJoined("127.0.0.22:40000", 0.4),
    ev.Served(120, 3, 5.0),
    ev.Resumed(10, 69),
    ev.SongChanged(),
    ev.Played(14000, 2.5),
    ev.Stalled(3.25),
    ev.Snapshot(1.0, 20, 69, 3, 2, {"127.0.0.1:9000": 20}),
    ev.Completed("/tmp/a.mp3", 4.0),
    ev.Failed(ev.Problem.ALL_SEEDERS_GONE, {}, 5.0),
]


def test_every_event_type_is_described_in_both_languages():
    assert {type(e) for e in SAMPLE_EVENTS} == set(ev.EVENT_TYPES)
    for event in SAMPLE_EVENTS:
        i18n.use("en")
        english = i18n.describe(event)
        i18n.use("pt")
        portuguese = i18n.describe(event)
        assert english and portuguese and english != portuguese, event
        assert "\n" not in english + portuguese
        assert "\x00" not in english + portuguese


def test_a_nack_without_a_seeder_names_none():
    assert i18n.describe(ev.NackSent("", 1, (4, 5), 0.5)) == \
        "NACK: 2 lost chunk(s) asked for again (4, 5)."


def test_an_unknown_event_is_an_error():
    with pytest.raises(ev.UnknownEvent):
        i18n.describe(object())


def test_describe_speaks_the_language_chosen():
    i18n.use("pt")
    assert i18n.describe(ev.Stalled(3.25)) == \
        "A reprodução travou em 3,25 s: esperando dados."
    i18n.use("en")
    assert i18n.describe(ev.Stalled(3.25)) == \
        "Playback stalled at 3.25 s: waiting for data."
    with pytest.raises(ValueError):
        i18n.use("fr")


def test_setup_takes_the_option_else_the_locale():
    assert i18n.setup(None, {"LANG": "pt_BR.UTF-8"}) == "pt"
    assert i18n.describe(ev.SongChanged()).startswith("A música mudou")
    assert i18n.setup("en", {"LANG": "pt_BR.UTF-8"}) == "en"


def test_language_comes_from_the_locale():
    assert i18n.detect_language({"LANG": "pt_BR.UTF-8"}) == "pt"
    assert i18n.detect_language({"LC_ALL": "en_US.UTF-8",
                                 "LANG": "pt_BR.UTF-8"}) == "en"
    assert i18n.detect_language({"LC_ALL": "pt_PT"}) == "pt"
    assert i18n.detect_language({"LANG": "C.UTF-8"}) == "en"
    assert i18n.detect_language({}) == "en"


def test_search_ignores_case_and_accents():
    assert i18n.fold("Canção ÁGUA") == "cancao agua"
    assert i18n.matches("cancao", "Minha Canção.mp3")
    assert i18n.matches("CANÇÃO minha", "minha-cancao.mp3")
    assert not i18n.matches("cancao azul", "Minha Canção.mp3")
    assert i18n.matches("", "anything.mp3")
    assert i18n.matches("  ", "anything.mp3")


def test_untrusted_words_are_one_bounded_line():
    shown = i18n.untrusted("a\nb\x1b" + "x" * 500)
    assert "\n" not in shown and "\x1b" not in shown
    assert len(shown) == i18n.UNTRUSTED_MAX and shown.endswith("…")


@pytest.mark.parametrize("ms, shown", [
    (0, "?"), (499, "0:00"), (500, "0:01"), (59_499, "0:59"),
    (59_600, "1:00"), (61_500, "1:02"), (3_599_500, "60:00")])
def test_durations_round_to_the_nearest_second(ms, shown):
    assert i18n.duration(ms) == shown


def test_a_59_6_s_song_shows_the_same_length_in_terminal_and_window():
    import contextlib
    import io

    import gui_panels
    import leecher
    import protocol as p
    sha = bytes(32)
    info = p.FileInfo(p.file_id_of(sha), 954_000, 682, 1400, 59_600, sha,
                      "song.mp3")
    song = leecher.Song(info, [("127.0.0.1", 9000)])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        leecher.print_songs([song])
    terminal_row = printed.getvalue().splitlines()[1].split()
    name, size, length, seeders = gui_panels.song_row(song)
    assert length == "1:00"
    assert terminal_row[:4] == [name, *size.split(), length]
