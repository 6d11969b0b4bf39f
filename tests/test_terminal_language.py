"""The terminal programs speak the language of --lang, else of the locale:
the leecher, the seeder, the runner and their errors, in Portuguese and
English, with names from the network still escaped."""

from __future__ import annotations

import concurrent.futures
import io
import os
import subprocess

import pytest

from conftest import PYTHON, ROOT, free_port

import cli
import events as ev
import i18n
import leecher

LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE")


def environment(**locale) -> dict:
    """This process's environment with only the locale given."""
    env = {k: v for k, v in os.environ.items() if k not in LOCALE_VARIABLES}
    env.update(locale)
    return env


def run(program: str, *args: str, timeout: float = 60,
        **locale) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, os.path.join(ROOT, program), *args],
                          capture_output=True, text=True, timeout=timeout,
                          env=environment(**locale))


@pytest.fixture(autouse=True)
def english_afterwards():
    yield
    i18n.use("en")


def test_an_unknown_song_is_told_in_the_locales_language(
        seeders, song_dir, tmp_path):
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q"))
    args = ("get", "NOSUCHSONG", "-o", str(tmp_path), "--seeders",
            seeder.address)
    portuguese = run("leecher.py", *args, LANG="pt_BR.UTF-8")
    english = run("leecher.py", *args, LANG="C.UTF-8")
    assert portuguese.returncode == english.returncode == 2
    assert portuguese.stderr == ("leecher: erro: nenhum seeder tem uma "
                                 "música que corresponda a 'NOSUCHSONG'\n")
    assert english.stderr == ("leecher: error: no seeder has a song "
                              "matching 'NOSUCHSONG'\n")
    assert "ativo" in portuguese.stdout and "ordem" in portuguese.stdout
    assert "alive" in english.stdout and "ativo" not in english.stdout


def test_lang_wins_over_the_locale_and_no_locale_is_english(tmp_path):
    port = free_port()
    args = ("get", "x", "-o", str(tmp_path), "--seeders", f"127.0.0.1:{port}")
    # Five leechers that each wait out their PINGs to a dead address: run
    # together, not one after the other.
    runs = {
        "pt": (("leecher.py", *args, "--lang", "pt"), {"LANG": "C.UTF-8"}),
        "en": (("leecher.py", *args, "--lang", "en"),
               {"LANG": "pt_BR.UTF-8"}),
        "none": (("leecher.py", *args), {}),  # CI: no locale at all
        "C": (("leecher.py", *args), {"LANG": "C.UTF-8"}),
        "before": (("leecher.py", "--lang", "pt", *args),
                   {"LANG": "C.UTF-8"}),
    }
    with concurrent.futures.ThreadPoolExecutor(len(runs)) as pool:
        futures = {key: pool.submit(run, *argv, **locale)
                   for key, (argv, locale) in runs.items()}
        told = {key: future.result() for key, future in futures.items()}
    assert {r.returncode for r in told.values()} == {cli.EXIT_FAILED}
    assert told["pt"].stderr.startswith("leecher: nenhum seeder ativo")
    assert told["pt"].stdout.endswith("sem resposta\n")
    assert told["before"].stderr == told["pt"].stderr
    for english in ("en", "none", "C"):
        assert told[english].stderr.startswith("leecher: no seeder is alive")
        assert told[english].stdout.endswith("no answer\n")


def test_the_option_help_is_translated():
    portuguese = run("leecher.py", "--lang", "pt", "get", "-h")
    english = run("leecher.py", "get", "-h", LANG="C.UTF-8")
    assert portuguese.returncode == english.returncode == 0
    assert "toca enquanto baixa" in portuguese.stdout
    assert portuguese.stdout.startswith("uso: leecher.py get")  # argparse's
    assert english.stdout.startswith("usage: leecher.py get")
    assert "play while downloading" in english.stdout
    seeder = run("seeder.py", "-h", LANG="pt_BR.UTF-8")
    assert "nome mostrado aos leechers" in seeder.stdout


def test_a_usage_error_of_every_program_is_portuguese():
    for program, args in (("seeder.py", ("-d", "/nonexistent-folder")),
                          ("p2p_facom.py", ("experiment", "--runs", "0")),
                          ("experiment.py", ("--orders", "backwards"))):
        result = run(program, *args, "--lang", "pt", LANG="C.UTF-8")
        assert result.returncode == cli.EXIT_USAGE, result.stderr
        assert ": erro: " in result.stderr, result.stderr
        assert len(result.stderr.splitlines()) == 1
    missing = run("leecher.py", "get", "--lang", "pt")
    assert missing.stderr == ("leecher.py get: erro: os seguintes "
                              "argumentos são obrigatórios: name (veja -h)\n")


def test_the_seeder_starts_and_stops_in_portuguese_with_lang_pt(song_dir):
    port = free_port()
    proc = subprocess.Popen(
        [PYTHON, "-u", os.path.join(ROOT, "seeder.py"), "-i", "127.0.0.1",
         "-p", str(port), "-d", str(song_dir), "-m", "random",
         "--lang", "pt"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=environment(LANG="C.UTF-8"))
    try:
        first = proc.stdout.readline()
        endpoint = leecher.Endpoint()
        try:  # an answer: it serves, so SIGTERM ends it with its summary
            assert leecher.ping(endpoint, [("127.0.0.1", port)])[
                ("127.0.0.1", port)].alive
        finally:
            endpoint.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        rest = proc.stdout.read()  # not communicate(): see conftest
    assert first == (f"seeder 127.0.0.1:{port}: compartilhando 2 "
                     f"arquivo(s) de {song_dir}, ordem aleatória\n")
    assert f"seeder 127.0.0.1:{port} parou: 0 sessões" in rest
    import seeder
    assert seeder.is_start_line(first)


def test_an_engine_problem_is_one_translated_line_with_peer_words_escaped(
        capsys):
    def refused():
        raise ev.DownloadFailed(ev.Problem.REFUSED, peer="127.0.0.1:9000",
                                code=4, text="ocupado\x1b[2J\nagora")
    i18n.use("pt")
    assert cli.run_main("leecher", refused) == cli.EXIT_FAILED
    portuguese = capsys.readouterr().err
    assert portuguese == ("leecher: 127.0.0.1:9000 recusou: "
                          "ocupado\\x1b[2J\\x0aagora\n")
    i18n.use("en")
    assert cli.run_main("leecher", refused) == cli.EXIT_FAILED
    assert capsys.readouterr().err == ("leecher: 127.0.0.1:9000 refused: "
                                       "ocupado\\x1b[2J\\x0aagora\n")


def test_problem_lines_take_the_windows_table_as_terminal_clauses():
    i18n.use("pt")
    line = cli.problem_line(ev.Problem.ALL_SEEDERS_GONE, {})
    assert line == "todos os seeders com esta música sumiram (o arquivo " \
                   "parcial foi mantido)"
    assert cli.problem_line(ev.Problem.HASH_MISMATCH, {"name": "a.mp3"}) \
        .startswith("o SHA-256 de a.mp3")  # the abbreviation stays
    i18n.use("en")
    assert cli.problem_line(ev.Problem.HASH_MISMATCH, {"name": "a.mp3"}) \
        .startswith("the SHA-256 of a.mp3")
    assert i18n.clause("SHA-256 differs.") == "SHA-256 differs"


class Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_the_terminal_view_tells_events_in_the_language_in_use():
    i18n.use("pt")
    out = Pipe()
    view = leecher.TerminalView(None, stream=out)
    view.put(ev.Resumed(10, 69))
    view.put(ev.SeederGone("127.0.0.2:9000", 1.0))
    view.put(ev.Refused("127.0.0.3:9000", 2, "não\x1b[2Jaqui", 0.1))
    lines = out.getvalue().splitlines()
    assert lines[0] == "  retomando: 10 de 69 pedaços já estavam aqui"
    assert lines[1].startswith("  127.0.0.2:9000 parou de responder")
    assert lines[2] == "  127.0.0.3:9000 recusou: não\\x1b[2Jaqui"
    assert view.resumed == 10


STATS = {"file": "a.mp3", "size": 1_500_000, "chunks": 69,
         "chunks_received": 69, "chunks_resumed": 0, "duplicates": 2,
         "nacks_sent": 3, "chunks_retransmitted": 4, "elapsed_s": 1.5,
         "goodput_Bps": 1_000_000, "per_peer": {"127.0.0.1:9000": 69},
         "seeders_gone": [], "stalls": 1, "startup_s": 0.25,
         "stall_s": 0.5, "continuity": 0.975, "played_s": 9.0}


def test_the_report_is_aligned_and_localised_in_both_languages():
    english = leecher.report(STATS)
    assert "elapsed         1.50 s" in english
    assert "continuity      97.5 % of chunks before their deadline" \
        in english
    i18n.use("pt")
    portuguese = leecher.report(STATS)
    assert "tempo total     1,50 s" in portuguese
    assert "continuidade    97,5 % dos pedaços antes do prazo" in portuguese
    for line in portuguese.splitlines():
        if not line.startswith("  "):  # every label pads to column 16
            assert line[15] == " " and line[16] != " ", line
