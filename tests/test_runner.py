"""p2p_facom.py: the original command line, the demo, one-line errors."""

import os
import subprocess
import sys

import pytest

import cli
from conftest import ROOT, free_port, run_leecher, sha256

RUNNER = os.path.join(ROOT, "p2p_facom.py")


def runner(*args, timeout=60, **kwargs):
    return subprocess.run([sys.executable, RUNNER, *args],
                          capture_output=True, text=True, timeout=timeout,
                          **kwargs)


def test_help_shows_the_original_options():
    result = runner("-h")
    assert result.returncode == 0
    for option in ("-t {seeder,leecher}", "-i IP", "-p PORT",
                   "-m {sequential,random,semi-random}", "demo"):
        assert option in result.stdout


def test_original_runner_name_still_works():
    result = subprocess.run([sys.executable, os.path.join(ROOT,
                                                          "p2p-runner.py"),
                             "-h"], capture_output=True, text=True)
    assert result.returncode == 0 and "-t {seeder,leecher}" in result.stdout


def test_original_seeder_command_serves_a_leecher(song_dir, tmp_path):
    port = free_port()
    seeder = subprocess.Popen([sys.executable, "-u", RUNNER, "-t", "seeder",
                               "-i", "127.0.0.2", "-p", str(port), "-m",
                               "semi-random", "-d", str(song_dir)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert "semi-random order" in seeder.stdout.readline()
        result = run_leecher("get", "short-tune", "-o", str(tmp_path),
                             "--seeders", f"127.0.0.2:{port}")
    finally:
        seeder.terminate()
        summary = seeder.communicate(timeout=10)[0]
    assert result.returncode == 0, result.stderr
    assert "semi-random" in result.stdout
    assert sha256(tmp_path / "short-tune.mp3") == \
        sha256(song_dir / "short-tune.mp3")
    assert "stopped: 1 sessions" in summary


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    cases = [
        ("-t", "seeder", "-p", "70000"),
        ("-t", "seeder", "-i", "not-an-ip"),
        ("-t", "seeder", "--loss", "1.5"),
        ("-t", "seeder", "-m", "backwards"),
        ("-t", "seeder", "-d", str(tmp_path / "missing")),
        ("-t", "nobody"),
        ("demo", "-d", str(tmp_path / "missing")),
    ]
    for args in cases:
        result = runner(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert "Traceback" not in result.stderr


def test_port_in_use_is_one_line_and_exit_2():
    port = free_port()
    first = subprocess.Popen([sys.executable, "-u", RUNNER, "-t", "seeder",
                              "-p", str(port), "-q"],
                             stdout=subprocess.PIPE, text=True)
    try:
        first.stdout.readline()
        second = runner("-t", "seeder", "-p", str(port))
    finally:
        first.terminate()
        first.wait(timeout=10)
    assert second.returncode == 2
    assert second.stderr.strip() == (f"seeder: error: cannot listen on "
                                     f"127.0.0.1:{port}: address already "
                                     f"in use")


def test_demo_in_a_terminal_plays_the_song_and_stops_its_seeders(song_dir,
                                                                 tmp_path):
    port = free_port()
    result = runner("demo", "--terminal", "-p", str(port), "-d",
                    str(song_dir), "--song", "short-tune.mp3", "-o",
                    str(tmp_path), timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("sharing") == 3
    assert "audio: " in result.stdout and "continuity" in result.stdout
    assert result.stdout.count("stopped: 1 sessions") == 3
    assert sha256(tmp_path / "short-tune.mp3") == \
        sha256(song_dir / "short-tune.mp3")
    assert (tmp_path / "stats.json").exists()
    check = subprocess.run(["pgrep", "-f", f"seeder.py.*-p {port}"],
                           capture_output=True)
    assert check.returncode == 1  # no seeder left behind


def test_demo_window_without_a_screen_is_one_line_and_starts_nothing(
        tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    port = free_port()
    result = runner("demo", "--window", "-p", str(port), "-o",
                    str(tmp_path / "out"), env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == ("demo: error: no display available for the "
                             "window; the terminal demo: python3 "
                             "p2p_facom.py demo --terminal\n")
    assert result.stdout == ""  # no seeder said "sharing"
    assert not (tmp_path / "out").exists()
    both = runner("demo", "--window", "--terminal", env=env)
    assert both.returncode == 2 and both.stderr.count("\n") == 1


def test_the_demo_window_starts_its_first_run_by_itself(monkeypatch):
    """demo_leecher opens the window with --autostart, the song, and the
    lesson's first order; p2p_facom.py -t leecher opens it idle."""
    import gui
    import p2p_facom
    opened = []
    monkeypatch.setattr(gui, "display_available", lambda: True)
    monkeypatch.setattr(gui, "main", lambda argv: opened.append(argv) or 0)
    args = p2p_facom.demo_parser().parse_args(["--song", "x.mp3", "--lang",
                                               "pt"])
    assert p2p_facom.demo_leecher(args, "127.0.0.1:9000") == 0
    assert p2p_facom.main(["-t", "leecher", "--seeders",
                           "127.0.0.1:9000"]) == 0
    demo, plain = opened
    assert demo == ["--seeders", "127.0.0.1:9000", "-o", "downloads",
                    "--song", "x.mp3", "--order", "sequential",
                    "--autostart", "--lang", "pt"]
    assert "--autostart" not in plain


def test_the_terminal_demo_plays_the_lesson_s_first_order(monkeypatch):
    """Without a screen the demo runs the terminal leecher in the same
    order as the window's first run (sequential: playback at once)."""
    import gui
    import leecher
    import p2p_facom
    ran = []
    monkeypatch.setattr(gui, "display_available", lambda: False)
    monkeypatch.setattr(leecher, "main", lambda argv: ran.append(argv) or 0)
    args = p2p_facom.demo_parser().parse_args(["--song", "x.mp3"])
    assert p2p_facom.demo_leecher(args, "127.0.0.1:9000") == 0
    (argv,) = ran
    assert argv[argv.index("--order") + 1] == "sequential"
    assert "--preview" in argv and "--force" in argv


@pytest.mark.parametrize("option", ["--order", "--method"])
def test_order_is_named_order_and_method_still_works(option):
    """"--order" on every command line; "--method" (and the seeder's -m,
    as the original command line wrote it) stay as aliases."""
    import gui
    import leecher
    import seeder
    get = leecher.build_parser().parse_args(
        ["get", "song.mp3", option, "random"])
    assert get.order == "random"
    window = gui.build_parser().parse_args([option, "semi-random"])
    assert window.order == "semi-random"
    for flag in (option, "-m"):
        parser = cli.Parser(prog="seeder.py")
        seeder.add_arguments(parser)
        assert parser.parse_args([flag, "random"]).order == "random"
    assert parser.parse_args([]).order == "sequential"
