"""The leecher's window (gui.py) under Xvfb, against real seeders or fed
typed events directly, and the double-click launcher.

The Xvfb fixture (conftest.py) starts its own X server on a free display
number.  Screenshots go to $P2P_ARTIFACTS, else a temporary folder: never
into the repository.
"""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import PYTHON, ROOT, free_port, sha256

import gui  # noqa: E402  (conftest puts the project on sys.path)
import gui_files  # noqa: E402
import gui_plot  # noqa: E402
import gui_state  # noqa: E402
import gui_widgets  # noqa: E402
import i18n  # noqa: E402
import p2p_facom  # noqa: E402
import player  # noqa: E402
import share  # noqa: E402

# Screenshots: $P2P_ARTIFACTS, else a temporary folder (issue 15: no test
# writes into the repository).
ARTIFACTS = os.environ.get("P2P_ARTIFACTS") or os.path.join(
    tempfile.gettempdir(), "p2p-facom-artifacts")
LAUNCHER = os.path.join(ROOT, "launcher", "p2p-facom-launcher.sh")
DESKTOP = os.path.join(ROOT, "launcher", "p2p-facom.desktop")
SONG = "short-tune.mp3"  # 6 s, made by conftest's song_dir


# ------------------------------------------------------------ fixtures
@pytest.fixture
def window(display):
    """Make an App; always close it (and its threads) afterwards."""
    import tkinter as tk
    apps = []

    def make(addresses, **settings):
        root = tk.Tk()
        settings.setdefault("sink", player.NullSink())
        app = gui.App(root, gui.Settings(addresses, **settings))
        apps.append(app)
        return app
    yield make
    for app in apps:
        app.close()
    # Free the windows' Tk objects (variables, images) here, on the main
    # thread: a collection started later on another thread (a player's,
    # a download's) would fail to delete them ("main thread is not in
    # main loop").
    apps.clear()
    gc.collect()


def classroom(seeders, song_dir, rate: int, *extra: str):
    """The three classroom seeders (sequential, random, semi-random)."""
    common = ("-d", str(song_dir), "--rate", str(rate), "--delay", "30",
              "-q", *extra)
    group = seeders(("127.0.0.1", "-m", "sequential", *common),
                    ("127.0.0.2", "-m", "random", *common),
                    ("127.0.0.3", "-m", "semi-random", *common))
    return [gui.cli.parse_address(s.address) for s in group]


def pump(app, until, timeout: float = 20.0, what: str = "condition"):
    """Run the Tk event loop until ``until()`` is true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.root.update()
        if until():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}; status: "
                         f"{app.status_text()!r}")


def screenshot(app, name: str, settled: bool = False) -> str | None:
    """The window as a PNG in ARTIFACTS (imagemagick's import);
    ``settled``: once the plot's x axis fits the data again (no new data
    for gui_plot.SETTLE_S)."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    if settled:
        calm = time.monotonic() + gui_plot.SETTLE_S + 0.5
        pump(app, lambda: time.monotonic() > calm, what="the plot settling")
    pump(app, app.view.plot.up_to_date, what="the plot's background")
    app.view.plot.redraw_if_due(time.monotonic(), force=True)
    for _ in range(5):
        app.root.update()
    path = os.path.join(ARTIFACTS, name)
    root = app.root
    # No window manager here: the window (menu bar included) starts at
    # the screen's top; crop the screen to it.
    crop = (f"{root.winfo_width()}x{root.winfo_rooty() + root.winfo_height()}"
            f"+{root.winfo_rootx()}+0")
    if shutil.which("import"):
        command = ["import", "-window", "root", "-crop", crop, path]
    elif shutil.which("xwd"):
        path = path.rsplit(".", 1)[0] + ".xwd"
        command = ["xwd", "-root", "-out", path]
    else:
        return None
    subprocess.run(command, check=True, timeout=30)
    return path


# ------------------------------------------------------------ the window
def test_download_with_preview_fills_the_window(window, seeders, song_dir,
                                                tmp_path):
    addresses = classroom(seeders, song_dir, 32)
    out = tmp_path / "downloads"
    app = window(addresses, lang="en", output=str(out), song=SONG,
                 prebuffer=1.0, loss=0.06, rng_seed=11)  # drops 5 of 60

    pump(app, lambda: sum(row.alive for row in app.peer_rows) == 3,
         what="three seeders alive")
    assert [row.address for row in app.peer_rows] == \
        [f"{ip}:{port}" for ip, port in addresses]
    pump(app, lambda: app.selected_song() is not None, what="--song")
    assert app.selected_song().info.name == SONG
    assert app.view.songs.tree.item("0")["values"][3] == 3  # seeders

    capture_button = app.view.save_buttons["save_pcap"]
    assert capture_button.instate(["disabled"])  # no download yet
    app.start_download()
    started = time.monotonic()
    pump(app, lambda: time.monotonic() - started > 1.6
         or app.view.download.progress_bar.cget("value") == 100,
         what="a while")
    during = screenshot(app, "gui-during-download.png")

    pump(app, lambda: bool(app.stats), what="the download's end")
    assert app.view.download.progress_bar.cget("value") == 100
    assert "100 %" in app.view.download.progress_label.cget("text")
    assert sha256(out / SONG) == sha256(song_dir / SONG)
    assert app.status_text().startswith("Done:")

    # the preview plays to the end; the final audio statistics follow
    pump(app, lambda: app.preview_player.state == "finished"
         and app.stats.get("played_s", 0) > 5, timeout=20,
         what="the preview's end")
    played = app.view.plot.data["played"][1]
    pump(app, lambda: played and played[-1] == app.stats["chunks"] - 1,
         what="the last chunk played")
    app.view.plot.redraw_if_due(time.monotonic(), force=True)
    lines = app.view.plot.lines
    for series in ("sent", "played"):
        assert len(lines[series].get_xdata()) > 0, series
    chunks = app.stats["chunks"]
    received = [line for key, line in lines.items()
                if isinstance(key, tuple) and key[0] == "received"]
    assert len(received) == 3  # a colour per seeder
    assert sum(len(line.get_xdata()) for line in received) == chunks
    assert len(lines["playhead"].get_ydata()) == 2
    assert max(lines["played"].get_ydata()) == chunks - 1
    assert app.stats["datagrams_dropped_by_leecher"] > 0
    assert len(lines["nack"].get_xdata()) > 0
    assert len(lines["rtx"].get_xdata()) == \
        app.stats["chunks_retransmitted"] > 0

    check_saved_statistics(app, tmp_path)
    check_saved_capture(app, tmp_path)
    after = screenshot(app, "gui-after-download.png", settled=True)
    assert app.view.plot.look.x_limit == max(app.view.plot.x_max * 1.04, 1.0)

    check_language_switch(app)
    screenshot(app, "gui-after-download-pt.png")
    check_player_controls(app)
    # the event loop's lag is a bench figure: bench/gui_latency.py
    for path in (during, after):
        assert path is None or os.path.getsize(path) > 10_000


def check_saved_statistics(app, tmp_path) -> None:
    """JSON, CSV and PNG saved; the panel shows the JSON's numbers."""
    paths = {kind: str(tmp_path / f"stats.{kind}")
             for kind in ("json", "csv", "png")}
    app.save_stats_json(paths["json"])
    pump(app, lambda: app.status_text() == f"Saved {paths['json']}.",
         what="the JSON")
    app.save_stats_csv(paths["csv"])
    pump(app, lambda: app.status_text() == f"Saved {paths['csv']}.",
         what="the CSV")
    app.save_plot_png(paths["png"])
    assert os.path.getsize(paths["png"]) > 10_000

    with open(paths["json"], encoding="utf-8") as handle:
        saved = json.load(handle)
    assert len(saved["timeline"]) == saved["chunks"]
    values = {key: label.cget("text")
              for key, label in app.view.stats_panel.values.items()}
    for key in ("chunks", "chunks_received", "duplicates", "nacks_sent",
                "chunks_retransmitted", "datagrams_dropped_by_leecher"):
        assert values[key] == str(saved[key]), key
    for key in ("elapsed_s", "startup_s", "played_s"):
        assert values[key] == f"{saved[key]:.2f} s", key
    assert values["stalls"] == f"{saved['stalls']} ({saved['stall_s']:.2f} s)"
    assert values["continuity"] == f"{100 * saved['continuity']:.1f} %"
    assert values["goodput_Bps"].endswith("KB/s")
    per_source = values["per_peer"].replace("\u00a0", " ")  # no-break
    for seeder, count in gui_state.per_peer(saved).items():
        ip = seeder.rpartition(":")[0]  # one port for all: shown once
        assert f"seeder {ip}: {count}" in per_source
    assert "peer" not in per_source  # a lone leecher: seeders only
    assert saved["chunks_received"] == saved["chunks"]
    with open(paths["csv"], encoding="utf-8") as handle:
        csv_text = handle.read()
    assert f"nacks_sent,{saved['nacks_sent']}" in csv_text
    assert "chunk,sent_s,received_s,played_s,retransmitted" in csv_text


def check_saved_capture(app, tmp_path) -> None:
    """Save capture: a copy of the download's pcap, every datagram in it
    (more than its chunks: REQUEST, NACKs); a folder that is not there
    is one status line."""
    pump(app, lambda: app.view.save_buttons["save_pcap"].instate(
        ["!disabled"]), what="Save capture enabled")
    missing = str(tmp_path / "no-such-folder" / "x.pcap")
    app.save_capture(missing)
    assert app.status_text().startswith(f"Cannot save {missing}:")
    path = str(tmp_path / "download.pcap")
    app.save_capture(path)
    assert app.status_text() == f"Saved {path}."
    with open(path, "rb") as handle:
        data = handle.read()
    assert data[:4] == b"\xd4\xc3\xb2\xa1"  # classic pcap
    with open(app.worker.capture_path, "rb") as handle:
        assert handle.read() == data
    assert data.count(b"PF") > app.stats["chunks"]


def check_language_switch(app) -> None:
    english = {"download": app.view.download.buttons["download"].cget("text"),
               "refresh": app.view.seeders.refresh_button.cget("text"),
               "x": app.view.plot.look.labels[0],
               "menu": app.view.menubar.entrycget(0, "label"),
               "heading": app.view.songs.tree.heading("name")["text"],
               "stat": app.view.stats_panel.names["nacks_sent"].cget("text"),
               "status": app.status_text()}
    app.set_language("pt")
    app.root.update()
    assert app.view.download.buttons["download"].cget("text") == "Baixar"
    assert app.view.seeders.refresh_button.cget("text") == "Atualizar"
    assert app.view.plot.look.labels[0] == "tempo desde o pedido (s)"
    assert app.view.menubar.entrycget(0, "label") == "Arquivo"
    assert app.view.songs.tree.heading("name")["text"] == "Nome"
    assert app.view.stats_panel.names["nacks_sent"].cget("text") == \
        "NACKs enviados:"
    assert app.status_text().startswith("Salvo")
    assert app.view.download.order_buttons[None].cget("text") == \
        "a de cada seeder"
    assert "," in app.view.stats_panel.values["elapsed_s"].cget("text")
    assert app.view.plot.look.labels[2:5] == ("enviado", "tocado",
                                              "retransmitido")
    app.set_language("en")
    button = app.view.download.buttons["download"]
    assert button.cget("text") == english["download"]
    assert app.view.plot.look.labels[0] == english["x"]
    assert app.view.menubar.entrycget(0, "label") == english["menu"]
    assert app.view.stats_panel.names["nacks_sent"].cget("text") == \
        english["stat"]
    app.set_language("pt")  # the third screenshot is in Portuguese


def check_player_controls(app) -> None:
    """Play the downloaded file again: pause, resume, stop."""
    assert app.view.player_bar.buttons["play"].instate(["!disabled"])
    app.play()
    pump(app, lambda: app.player is not app.preview_player
         and app.player.state == "playing" and app.player.position_s > 0.2,
         what="playing the file")
    assert app.view.player_bar.position_label.cget("text").endswith("tocando")
    app.pause()
    pump(app, lambda: app.player.state == "paused", what="paused")
    app.play()
    pump(app, lambda: app.player.state == "playing", what="resumed")
    app.stop_playback()
    pump(app, lambda: app.player.state == "stopped"
         and app.view.player_bar.buttons["play"].instate(["!disabled"]),
         what="stopped")


def test_stop_resume_and_close_mid_download(window, seeders, song_dir,
                                            tmp_path, monkeypatch):
    # one slow seeder: a 16-datagram burst, then two chunks a second
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "--rate", "24",
                         "-q"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg: no preview
    app = window([gui.cli.parse_address(seeder.address)], lang="en",
                 output=str(tmp_path), song=SONG)
    pump(app, lambda: app.selected_song() is not None, what="the song")
    app.start_download()
    pump(app, lambda: app.got >= 10, what="ten chunks")
    app.search("other")  # the worker is busy: refused, one line
    assert app.status_text() == "A download is already running."
    assert app.view.songs.search_button.instate(["disabled"])
    assert any("No preview: ffmpeg not found" in line
               for line in app.status_history)
    assert app.preview_player is None

    app.stop_download()
    pump(app, lambda: app.status_text().startswith("Download stopped"),
         what="the stop")
    kept = app.got
    assert (tmp_path / (SONG + ".part.json")).exists()
    app.start_download()
    pump(app, lambda: app.got > kept + 2, what="more chunks")
    assert f"Resuming: {kept} of {app.state.info.chunks} chunks were " \
        "already here." in \
        app.status_history

    worker = app.worker
    started = time.monotonic()
    app.close()
    assert time.monotonic() - started < 3
    assert not worker.is_alive()
    assert (tmp_path / (SONG + ".part")).exists()
    assert (tmp_path / (SONG + ".part.json")).exists()  # resumable
    assert not (tmp_path / SONG).exists()
    import tkinter as tk
    with pytest.raises(tk.TclError):
        app.root.winfo_exists()


def test_no_seeder_alive_is_one_readable_line(window):
    port = free_port()
    app = window([("127.0.0.1", port), ("127.0.0.2", port)], lang="pt")
    pump(app, lambda: "Nenhum seeder ativo" in app.status_text(),
         what="the error")
    assert "\n" not in app.status_text()
    assert "Traceback" not in app.status_text()
    states = [app.view.seeders.tree.item(i)["values"][1]
              for i in app.view.seeders.tree.get_children()]
    assert states == ["sem resposta", "sem resposta"]
    app.start_download()  # nothing picked: says so, does not fail
    assert app.status_text() == "Escolha antes uma música da lista."
    for bad in ("127.0.0.1:99999", "127.0.0.999:9400"):
        app.view.seeders.var.set(f"127.0.0.1:9000, {bad}")
        app.refresh_seeders()
        status = app.status_text()  # said once, naming the bad one
        assert status.startswith("Endereço de seeder inválido: " + bad)
        assert status.lower().count("inválido") == 1, status
        assert status.count(bad) == 1, status


def test_longer_texts_do_not_resize_the_plot(window):
    """The labels next to the plot change many times a second during a
    download: they must not take width from the plot's canvas (each
    resize is a full redraw), nor wrap (that moves what is below them)."""
    app = window([("127.0.0.1", free_port())], lang="pt")
    for _ in range(10):
        app.root.update()
    canvas = app.view.plot.widget
    size = (canvas.winfo_width(), canvas.winfo_height())
    heights = (app.view.download.progress_label.winfo_height(),
               app.view.player_bar.position_label.winfo_height())
    from types import SimpleNamespace  # a download's counters, huge
    app.state.info = SimpleNamespace(chunks=123456, size=1)
    app.state.live = gui_state.Live(received=123456, total=123456,
                                    nacks=99999, retransmitted=99999)
    app.view.tick(time.monotonic())
    app.view.player_bar.position_line.show(i18n.text(
        "{pos} / {total}  ·  {state}", pos="12345,6 s", total="12345,6 s",
        state=i18n._("stalled: waiting for data")))
    for _ in range(10):
        app.root.update()
    assert (canvas.winfo_width(), canvas.winfo_height()) == size
    assert (app.view.download.progress_label.winfo_height(),
            app.view.player_bar.position_label.winfo_height()) == heights
    for line in (app.view.download.progress_line,
                 app.view.player_bar.position_line):
        shown = line.label.cget("text")
        assert "\n" not in shown
        assert line.font.measure(shown) <= line.label.winfo_width()
    # too long: cut with an ellipsis
    assert app.view.download.progress_label.cget("text").endswith("…")


def test_a_long_line_ends_with_an_ellipsis():
    assert gui_widgets.ellipsized("short", 10, len) == "short"
    assert gui_widgets.ellipsized("NACKs 17 · retransmitidos 6", 12, len) == \
        "NACKs 17 ·…"
    assert gui_widgets.ellipsized("abc", 0, len) == "…"


def test_headings_fit_and_tables_scroll(window):
    """Every heading fits its column in both languages, and a table with
    more rows than it shows has a scrollbar."""
    import tkinter.font as tkfont
    app = window([("127.0.0.1", free_port())], lang="en")
    font = tkfont.nametofont("TkHeadingFont", root=app.root)
    for lang in ("en", "pt"):
        app.set_language(lang)
        app.root.update()
        for tree in (app.view.seeders.tree, app.view.songs.tree):
            for column in tree["columns"]:
                heading = tree.heading(column)["text"]
                # 10: the heading's padding (3 a side) and its borders
                assert tree.column(column, "width") >= \
                    font.measure(heading) + 10, (lang, heading)
        body = tkfont.nametofont("TkDefaultFont", root=app.root)
        for key in ("no answer", "alive", "gone"):  # "sem resposta"
            assert app.view.seeders.tree.column("state", "width") >= \
                body.measure(i18n.translate(lang, key)) + 10, (lang, key)
        assert app.view.seeders.tree.column("order", "width") >= \
            body.measure(i18n.translate(lang, "semi-random")) + 10
    app.view.songs.fill([fake_song(f"song-{n}.mp3") for n in range(12)])
    app.root.update()
    for tree in (app.view.seeders.tree, app.view.songs.tree):
        bars = [w for w in tree.master.winfo_children()
                if w.winfo_class() == "TScrollbar"]
        assert len(bars) == 1 and bars[0].winfo_ismapped()
    assert app.view.songs.tree.yview()[1] < 1.0  # 6 songs: some are below


def fake_song(name: str):
    from types import SimpleNamespace
    return SimpleNamespace(info=SimpleNamespace(
        name=name, size=1000, duration_ms=1000), sources=[])


def two_song_folders(tmp_path, song_dir):
    """One folder with the short song, one with the sample song."""
    folders = []
    for name in (SONG, "facom-sample.mp3"):
        folder = tmp_path / name.split(".")[0]
        folder.mkdir()
        shutil.copy(song_dir / name, folder / name)
        folders.append(folder)
    return folders


def song_names(app) -> list:
    return [song.info.name for song in app.view.songs.songs]


def test_refresh_searches_again_on_the_new_seeders(window, seeders,
                                                   song_dir, tmp_path):
    short, sample = two_song_folders(tmp_path, song_dir)
    (first,) = seeders(("127.0.0.1", "-d", str(short), "-q"))
    (second,) = seeders(("127.0.0.2", "-d", str(sample), "-q"))
    app = window([gui.cli.parse_address(first.address)], lang="en")
    pump(app, lambda: song_names(app) == [SONG], what="the first song")
    app.view.seeders.var.set(second.address)
    app.refresh_seeders()
    pump(app, lambda: song_names(app) == ["facom-sample.mp3"],
         what="the songs of the new seeder")
    assert [row.address for row in app.peer_rows] == [second.address]
    assert app.status_text() == "1 song(s) found."


def test_a_file_that_is_not_mp3_says_why_it_does_not_play(
        window, seeders, tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    (music / "fake.mp3").write_bytes(b"this is not audio")
    (seeder,) = seeders(("127.0.0.1", "-d", str(music), "-q"))
    out = tmp_path / "downloads"
    app = window([gui.cli.parse_address(seeder.address)], lang="en",
                 output=str(out), song="fake.mp3", preview=False)
    pump(app, lambda: app.selected_song() is not None, what="the song")
    app.start_download()
    pump(app, lambda: app.status_text().startswith("Done:"),
         what="the download")
    app.play()
    pump(app, lambda: app.status_text().startswith("Cannot play"),
         what="the player's error")
    assert app.player.error and app.player.error in app.status_text()
    assert app.status_text().startswith("Cannot play fake.mp3: ")
    assert app.view.player_bar.position_label.cget("text").endswith("failed")
    app.set_language("pt")
    assert app.status_text() == \
        f"Não foi possível tocar fake.mp3: {app.player.error}"
    assert app.view.player_bar.position_label.cget("text").endswith("falhou")


def test_a_song_already_downloaded_is_played_not_fetched_again(
        window, seeders, song_dir, tmp_path):
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q"))
    out = tmp_path / "downloads"
    out.mkdir()
    shutil.copy(song_dir / SONG, out / SONG)
    app = window([gui.cli.parse_address(seeder.address)], lang="en",
                 output=str(out), song=SONG)
    pump(app, lambda: app.selected_song() is not None, what="the song")
    app.start_download()
    pump(app, lambda: "already here" in app.status_text(),
         what="already here")
    assert app.status_text() == (f"{out / SONG} is already here and "
                                 f"verified (SHA-256): ▶ Play plays it, "
                                 f"Download again fetches it anew.")
    assert app.state.info is None
    assert not (out / (SONG + ".part")).exists()
    play = app.view.player_bar.buttons["play"]
    pump(app, lambda: play.instate(["!disabled"]), what="Play enabled")
    app.play()
    pump(app, lambda: app.player is not None
         and app.player.state == "playing" and app.player.position_s > 0.2,
         what="playing the file")
    assert "/ 6.0 s" in app.view.player_bar.position_label.cget("text")
    app.stop_playback()


def test_save_dialog_speaks_the_language_and_names_the_types(
        window, monkeypatch, tmp_path):
    app = window([("127.0.0.1", free_port())], lang="pt")
    asked = []

    def fake_dialog(**options):
        save = app.root.tk.eval('namespace eval ::tk {::msgcat::mc "&Save"}')
        asked.append((save, options["filetypes"], options["initialfile"]))
        return ""  # cancelled
    monkeypatch.setattr(gui_files.filedialog, "asksaveasfilename", fake_dialog)
    app.state.run = gui_state.Run(1, "song.mp3", "random", (), "", 0.0)
    app.ask_save_png()
    app.set_language("en")
    app.ask_save_csv()
    app.ask_save_pcap()  # no capture yet: no dialog
    assert app.status_text() == "No capture yet: download a song first."
    app.worker.capture_path = str(tmp_path / "last.pcap")
    app.ask_save_pcap()
    assert asked == [
        ("&Salvar", [("Imagem PNG", "*.png"), ("Todos os arquivos", "*")],
         "song-random-plot.png"),
        ("&Save", [("CSV file", "*.csv"), ("All files", "*")],
         "song-random-stats.csv"),
        ("&Save", [("pcap capture", "*.pcap"), ("All files", "*")],
         "song-random.pcap")]


def test_the_live_plot_thins_long_series():
    values = list(range(35714))
    thinned = gui_plot.thinned(values, gui_plot.LIVE_POINTS)
    assert len(thinned) <= gui_plot.LIVE_POINTS
    assert thinned[0] == 0 and thinned[-1] > 35714 - 2 * 35714 // 500
    assert gui_plot.thinned(values[:300], gui_plot.LIVE_POINTS) == values[:300]


# --------------------------------------------------------- no display
def run_python(*args, env=None, timeout=30):
    env = dict(os.environ if env is None else env)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return subprocess.run([PYTHON, *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def test_without_a_display_main_says_so_in_one_line(tmp_path):
    for command in (["gui.py", "-o", str(tmp_path)],
                    ["p2p_facom.py", "-t", "leecher", "-o", str(tmp_path)]):
        result = run_python(*command)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert "python3 leecher.py get NAME" in result.stderr


def test_output_that_is_a_file_is_one_line(display, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    for lang, error, says in (("en", "error", "is not a folder"),
                              ("pt", "erro", "não é uma pasta")):
        result = subprocess.run(
            [PYTHON, "gui.py", "--lang", lang, "-o", str(afile)],
            capture_output=True, text=True, timeout=30, cwd=ROOT)
        assert result.returncode == 2, result.stderr
        assert result.stderr == f"gui: {error}: -o {afile} {says}\n"


def test_importing_gui_needs_no_display_nor_matplotlib():
    result = run_python("-c", "import sys, gui; "
                              "print('matplotlib' in sys.modules, "
                              "gui.display_available())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


# ------------------------------------------------------------ launcher
def fake_project(tmp_path, with_venv: bool):
    """A copy of launcher/ in a project whose .venv/bin/python only
    writes down how it was started."""
    project = tmp_path / "my project"
    shutil.copytree(os.path.join(ROOT, "launcher"), project / "launcher")
    if with_venv:
        fake = project / ".venv" / "bin" / "python"
        fake.parent.mkdir(parents=True)
        fake.write_text('#!/bin/sh\n[ "$1" = -c ] && exit 0\n'
                        'echo "SM=${SESSION_MANAGER-unset} PWD=$PWD '
                        'ARGS=$*" > "$(dirname "$0")/../../ran.txt"\n')
        fake.chmod(0o755)
    return project


def launcher_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(extra)
    return env


def test_launcher_without_set_up_says_to_run_setup(tmp_path):
    project = fake_project(tmp_path, with_venv=False)
    result = subprocess.run([str(project / "launcher" /
                                 "p2p-facom-launcher.sh")],
                            capture_output=True, text=True, timeout=30,
                            env=launcher_env(LANG="C.UTF-8", LC_ALL=""))
    assert result.returncode == 1
    assert "./setup.sh demo" in result.stderr
    assert result.stderr.count("\n") == 1


def test_launcher_uses_the_venv_without_session_manager(tmp_path):
    project = fake_project(tmp_path, with_venv=True)
    result = subprocess.run([str(project / "launcher" /
                                 "p2p-facom-launcher.sh"), "--lang", "pt"],
                            capture_output=True, text=True, timeout=30,
                            cwd=tmp_path, env=launcher_env(
                                SESSION_MANAGER="local/host:@/tmp/.ICE"))
    assert result.returncode == 0, result.stderr
    assert (project / "ran.txt").read_text().strip() == \
        f"SM=unset PWD={project} ARGS=p2p_facom.py demo --window --lang pt"


def test_launcher_window_option_opens_the_window_alone(tmp_path):
    project = fake_project(tmp_path, with_venv=True)
    result = subprocess.run([str(project / "launcher" /
                                 "p2p-facom-launcher.sh"), "--window",
                             "--lang", "pt"],
                            capture_output=True, text=True, timeout=30,
                            cwd=tmp_path, env=launcher_env())
    assert result.returncode == 0, result.stderr
    assert (project / "ran.txt").read_text().strip() == \
        f"SM=unset PWD={project} ARGS=gui.py --lang pt"


def test_launcher_with_the_real_venv_and_no_display(tmp_path):
    """The demo, without a screen: one line, and no seeder started."""
    port = free_port()
    result = subprocess.run([LAUNCHER, "-o", str(tmp_path), "-p",
                             str(port)],
                            capture_output=True, text=True, timeout=30,
                            env=launcher_env())
    assert result.returncode == 2
    assert result.stderr == f"demo: error: {p2p_facom.NO_DISPLAY}\n"
    assert "sharing" not in result.stdout
    result = subprocess.run([LAUNCHER, "--window", "-o", str(tmp_path)],
                            capture_output=True, text=True, timeout=30,
                            env=launcher_env())
    assert result.returncode == 2
    assert result.stderr.strip() in (i18n.translate("en", gui.NO_DISPLAY),
                                     i18n.translate("pt", gui.NO_DISPLAY))


def desktop_exec(path: str) -> list[str]:
    """The Exec key of a desktop entry as an argv, per the Desktop Entry
    Specification (string escapes first, then quoting)."""
    with open(path, encoding="utf-8") as handle:
        line = next(x for x in handle if x.startswith("Exec="))
    value = line[len("Exec="):].rstrip("\n")
    value = re.sub(r"\\(.)", lambda m: {"s": " ", "n": "\n", "t": "\t",
                                         "r": "\r"}.get(m[1], m[0]
                                                        if m[1] != "\\"
                                                        else "\\"), value)
    args, current, quoted, i = [], "", False, 0
    while i < len(value):
        char = value[i]
        if quoted and char == "\\" and value[i + 1] in '"`$\\':
            current += value[i + 1]
            i += 1
        elif char == '"':
            quoted = not quoted
        elif char == " " and not quoted:
            if current:
                args.append(current)
            current = ""
        else:
            current += char
        i += 1
    return args + ([current] if current else [])


def test_desktop_file_runs_the_script_next_to_it(tmp_path):
    project = fake_project(tmp_path, with_venv=True)
    desktop = str(project / "launcher" / "p2p-facom.desktop")
    argv = [str(project / "launcher" / "p2p-facom.desktop")
            if arg == "%k" else arg for arg in desktop_exec(desktop)]
    result = subprocess.run(argv, capture_output=True, text=True,
                            timeout=30, cwd="/", env=launcher_env())
    assert result.returncode == 0, result.stderr
    assert (project / "ran.txt").read_text().startswith("SM=unset PWD=")


def test_installed_desktop_entry_has_an_absolute_command(tmp_path):
    project = fake_project(tmp_path, with_venv=True)
    home = tmp_path / "home"
    result = subprocess.run([str(project / "launcher" /
                                 "p2p-facom-launcher.sh"), "--install"],
                            capture_output=True, text=True, timeout=30,
                            env=launcher_env(HOME=str(home),
                                             XDG_DATA_HOME=str(home)))
    assert result.returncode == 0, result.stderr
    entry = home / "applications" / "p2p-facom.desktop"
    assert desktop_exec(str(entry)) == [str(project / "launcher" /
                                            "p2p-facom-launcher.sh")]
    if shutil.which("gio"):  # GLib's own parser, when it is here
        subprocess.run(["gio", "launch", str(entry)], timeout=30,
                       env=launcher_env(), check=True)
        deadline = time.monotonic() + 10
        while not (project / "ran.txt").exists() and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        assert "ARGS=p2p_facom.py demo --window" in \
            (project / "ran.txt").read_text()


# ----------------------------------------------------- screen sizes
FIT_CHILD = """
import json, sys, time, tkinter as tk
from tkinter import ttk
import cli, gui, player
from types import SimpleNamespace
root = tk.Tk()
app = gui.App(root, gui.Settings([("127.0.0.1", cli.free_port())],
                                 lang="pt", sink=player.NullSink()))
app.view.songs.fill([SimpleNamespace(info=SimpleNamespace(
    name=f"música-{n}.mp3", size=1000, duration_ms=1000), sources=[])
    for n in range(12)])
for _ in range(30):
    root.update()
    time.sleep(0.01)
tree = app.view.songs.tree
row = int(ttk.Style(root).lookup("Treeview", "rowheight"))
print(json.dumps({"right": root.winfo_rootx() + root.winfo_width(),
                  "bottom": root.winfo_rooty() + root.winfo_height(),
                  "menu": root.winfo_rooty(), "width": root.winfo_width(),
                  "rows": (tree.winfo_height() - row) // row}))
sys.stdout.flush()
import subprocess
subprocess.run(["import", "-window", "root", sys.argv[1]], check=True)
app.close()
"""


@pytest.mark.parametrize("width,height", [(1024, 768), (1366, 768),
                                          (1920, 1080)])
def test_the_window_fits_the_screen(width, height):
    """At 1024x768 all the window is on the screen (with room for a title
    bar) and the songs table shows at least 5 rows; bigger screens get a
    bigger window.  Screenshots in ARTIFACTS (each size an Xvfb of its
    own, by xvfb-run, with the window in it)."""
    if shutil.which("xvfb-run") is None or shutil.which("import") is None:
        pytest.fail("xvfb-run and ImageMagick are needed: ./setup.sh test")
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, f"window-{width}x{height}.png")
    result = subprocess.run(
        ["xvfb-run", "-a", "-s", f"-screen 0 {width}x{height}x24 -dpi 96 "
         f"-nolisten tcp", PYTHON, "-c", FIT_CHILD, shot],
        capture_output=True, text=True, timeout=90, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[0])
    assert seen["right"] <= width
    assert seen["bottom"] + 30 <= height  # a title bar fits too
    assert seen["menu"] > 0  # the menu bar is above the window's body
    assert seen["rows"] >= 5, seen
    if width > 1024:
        assert seen["width"] > 1024
    assert os.path.getsize(shot) > 10_000


def ttk_style(root):
    from tkinter import ttk
    return ttk.Style(root)


def test_font_zoom_makes_every_text_bigger(window):
    import tkinter.font as tkfont
    app = window([("127.0.0.1", free_port())], lang="en")
    font = tkfont.nametofont("TkDefaultFont", root=app.root)
    before = font.actual("size")
    app.zoom(2)
    assert font.actual("size") == before + 2
    app.zoom(-50)
    assert font.actual("size") == gui_widgets.FONT_SIZES[0]


# ------------------------------------------- typed events, no network
def fake_download(app, chunks: int = 10):
    """Tell the window a download started, as the worker would."""
    from types import SimpleNamespace
    import gui_worker as gw
    info = SimpleNamespace(chunks=chunks, chunk_size=1400,
                           size=chunks * 1400, duration_ms=5000,
                           name="a.mp3")
    app.state.downloading = True
    app.inbox.put(gw.DownloadStarted(
        "a.mp3", info, "/x/a.mp3.part", "random",
        (("127.0.0.1:9000", "random"), ("127.0.0.2:9000", "random")),
        None))
    return info


def test_typed_events_fill_the_window_without_a_network(window):
    import events as ev
    import gui_worker as gw
    app = window([("127.0.0.1", free_port())], lang="en")
    fake_download(app)
    put = app.inbox.put
    put(ev.RequestSent("127.0.0.1:9000", 5, "random", 0.01))
    for index in range(10):
        put(ev.ChunkReceived(index, 0.1 * index, 0.1 * index + 0.05,
                             index == 3, f"127.0.0.{1 + index % 2}:9000"))
    put(ev.NackSent("127.0.0.1:9000", 1, (3,), 0.2))
    put(ev.Stalled(0.4))
    put(ev.Played(1400 * 5, 0.6))
    pump(app, lambda: app.state.live.received == 10
         and app.inbox.empty(), what="the events")
    assert app.status_text() == "Playback stalled at 0.40 s: waiting " \
                                "for data."
    app.view._live_shown_at = 0.0  # statistics shown during the download
    app.view.tick(time.monotonic())
    values = {k: v.cget("text")
              for k, v in app.view.stats_panel.values.items()}
    assert values["chunks_received"] == "10"
    assert values["nacks_sent"] == "1"
    assert values["stalls"] == "1"
    plot = app.view.plot
    assert {k for k in plot.data if isinstance(k, tuple)} == {
        ("received", "127.0.0.1:9000"), ("received", "127.0.0.2:9000")}
    assert plot.playing == 4 and plot.data["nack"] == ([0.2], [3])

    put(gw.DownloadEnded("/x/a.mp3", {"file": "a.mp3", "chunks": 10,
                                      "nacks_sent": 1, "elapsed_s": 1.0,
                                      "chunks_retransmitted": 1}))
    pump(app, lambda: not app.state.downloading, what="the end")
    run = app.state.runs[0]
    assert run.nacked[3] == 1 and run.retransmitted[3] == 1
    assert run.played[:5] == [0.6] * 5 and run.played[5] is None
    assert app.view.runs.tree.item("1")["values"][1] == "random"
    assert app.status_text() == \
        "Done: /x/a.mp3 saved and verified (SHA-256)."
    app.set_language("pt")
    assert app.status_text() == \
        "Pronto: /x/a.mp3 salvo e verificado (SHA-256)."
    assert app.view.runs.tree.item("1")["values"][1] == "aleatória"


def test_a_failure_is_told_in_the_windows_language(window):
    import events as ev
    import gui_worker as gw
    app = window([("127.0.0.1", free_port())], lang="pt")
    fake_download(app)
    app.inbox.put(gw.DownloadEnded(None, {}, ev.Problem.ALL_SEEDERS_GONE))
    pump(app, lambda: not app.state.downloading, what="the failure")
    portuguese = app.status_text()
    assert portuguese == "O download falhou: Todos os seeders com esta " \
                         "música sumiram (o arquivo parcial foi mantido)."
    app.set_language("en")
    assert app.status_text() != portuguese
    assert app.status_text().startswith("Download failed: All seeders")


def test_after_stop_the_player_no_longer_says_playing(window):
    import events as ev
    import gui_worker as gw
    app = window([("127.0.0.1", free_port())], lang="en")
    fake_download(app)
    app.inbox.put(gw.DownloadEnded(None, {}, ev.Problem.STOPPED,
                                   {"path": "/x/a.mp3.part"}))
    pump(app, lambda: not app.state.downloading, what="the stop")
    assert app.status_text().startswith("Download stopped; the partial "
                                        "file is kept (/x/a.mp3.part)")
    assert "Playing" not in app.status_text()


def test_an_unknown_event_is_an_error_not_silence(window):
    app = window([("127.0.0.1", free_port())], lang="en")
    app.inbox.put(("chunk", 1, 2))  # an old tuple: nobody handles it
    pump(app, lambda: app.status_text().startswith("Unexpected error"),
         what="the error")
    assert "UnknownEvent" in app.status_text()


def test_a_run_made_elsewhere_joins_the_comparison(window):
    """The hook for a simulated run (experiment --simulate)."""
    app = window([("127.0.0.1", free_port())], lang="en")
    run = gui_state.Run(0, "a.mp3", "random", (), "simulated", 0.0, 3)
    run.received = [0.1, 0.2, 0.3]
    app.add_run(run)
    app.view.notebook.select(1)
    app.root.update()
    assert app.view.runs.tree.item("1")["values"][:2] == ["#1", "random"]
    assert app.view.runs.figure.axes  # drawn


def test_simulate_adds_a_simulated_run_next_to_the_real_one(
        window, seeders, song_dir, tmp_path):
    """A real run, then Simulate with another order: a second row marked
    simulated, drawn in the comparison (screenshot at 1024x768)."""
    addresses = classroom(seeders, song_dir, 64)
    app = window(addresses, lang="en", output=str(tmp_path), song=SONG,
                 prebuffer=1.0)
    app.root.geometry("{}x{}".format(*gui_state.window_size(1024, 768)))
    simulate = app.view.runs.buttons["simulate"]
    pump(app, lambda: app.selected_song() is not None, what="--song")
    app.view.download.order_var.set("sequential")
    app.start_download()
    pump(app, lambda: app.preview_player is not None
         and app.preview_player.state == "finished"
         and app.stats.get("played_s"), timeout=40,
         what="the real run played")
    app.root.update()
    assert len(app.state.runs) == 1 and simulate.instate(["!disabled"])
    app.view.download.order_var.set("random")
    simulate.invoke()
    assert simulate.instate(["disabled"])  # one simulation at a time
    pump(app, lambda: len(app.state.runs) == 2, timeout=30,
         what="the simulated run")
    real, simulated = app.state.runs
    assert simulated.simulated and not real.simulated
    assert simulated.song == real.song == SONG
    assert "run #1" in simulated.emulation
    tree = app.view.runs.tree
    assert tree.item("1")["values"][1] == "sequential"
    assert tree.item("2")["values"][1] == "random (simulated)"
    assert app.status_text() == "Simulated run #2 added: random " \
                                "(simulated)."
    assert all(t is not None for t in simulated.received)
    assert simulated.stats["startup_s"] > 0
    app.view.notebook.select(1)
    tree.selection_set(("1", "2"))
    app.root.update()
    legend = [text.get_text() for text in
              app.view.runs.figure.axes[0].get_legend().get_texts()]
    assert "#2 random (simulated): downloaded in order" in legend
    shot = screenshot(app, "gui-compare-simulated-1024x768.png")
    assert shot is None or os.path.getsize(shot) > 10_000
    app.set_language("pt")
    assert tree.item("2")["values"][1] == "aleatória (simulada)"


def test_download_rechecks_the_seeders_and_fails_at_once(window, seeders,
                                                         song_dir, tmp_path):
    """Every seeder died after the list loaded: Download says so in a
    second or two (it PINGs them first), naming the address typed."""
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q"))
    app = window([gui.cli.parse_address(seeder.address)], lang="en",
                 output=str(tmp_path), song=SONG)
    pump(app, lambda: app.selected_song() is not None, what="the song")
    seeder.kill()
    app.start_download()
    pump(app, lambda: not app.state.downloading, timeout=5,
         what="the download to give up")
    assert app.status_text().startswith(
        f"No seeder with this song is alive ({seeder.address})")
    assert f"-p {seeder.address.rpartition(':')[2]}" in app.status_text()
    assert app.view.seeders.tree.item(
        app.view.seeders.tree.get_children()[0])["values"][1] == "no answer"


def test_search_ignores_case_and_accents_in_the_window(window, seeders,
                                                       song_dir, tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    shutil.copy(song_dir / SONG, music / "Canção Nova.mp3")
    shutil.copy(song_dir / "facom-sample.mp3", music / "other.mp3")
    (seeder,) = seeders(("127.0.0.1", "-d", str(music), "-q"))
    app = window([gui.cli.parse_address(seeder.address)], lang="en")
    pump(app, lambda: len(song_names(app)) == 2, what="both songs")
    app.search("CANCAO")
    pump(app, lambda: app.status_text() == "1 song(s) found.",
         what="the search")
    assert song_names(app) == ["Canção Nova.mp3"]
    app.search("xyz")
    pump(app, lambda: app.status_text().startswith("No song matches"),
         what="no match")
    app.view.songs.var.set("  ")  # typing narrows the list at once
    assert len(app.filter_songs()) == 2
    app.view.songs.var.set("nova can")
    assert [s.info.name for s in app.filter_songs()] == ["Canção Nova.mp3"]
    assert song_names(app) == ["Canção Nova.mp3"]


# ------------------------------------------------------------ the swarm
class FakeDownload:
    """Stands for leecher.Download in the worker: records the sharing it
    was made with and every set_sharing call, and turns its loop on the
    worker's endpoint (as the real one does) until stopped."""

    made: list = []
    sharing_on = False  # its run() never completes: nothing to serve on

    def __init__(self, endpoint, song, peers, out_dir, options=None,
                 events=None, player=None, sharing=None):
        self.endpoint = endpoint
        self.sharing = sharing
        self.calls: list = []
        self.running = False
        self.stopped = False
        self.name = song.info.name
        self.final_path = os.path.join(out_dir, self.name)
        self.part_path = self.final_path + ".part"
        self.seeding = False
        FakeDownload.made.append(self)

    def set_sharing(self, on: bool) -> None:
        self.calls.append(on)

    def stop(self) -> None:
        self.stopped = True

    def run(self) -> str:
        import events as ev
        self.running = True
        deadline = time.monotonic() + 20  # bounded, whatever happens
        while not self.stopped and time.monotonic() < deadline:
            self.endpoint.receive_raw(0.01)
        self.running = False
        raise ev.DownloadFailed(ev.Problem.STOPPED)


class SharingDownload(FakeDownload):
    """Completes at once, then serves the song (``seed``) as the real
    one does: until stopped or the switch goes off."""

    def run(self) -> str:
        return self.final_path

    @property
    def sharing_on(self) -> bool:
        return self.calls[-1] if self.calls else self.sharing.share

    def seed(self, seconds: float) -> None:
        self.seeding = True
        deadline = time.monotonic() + min(seconds, 20)  # bounded
        while self.sharing_on and not self.stopped and \
                time.monotonic() < deadline:
            self.endpoint.receive_raw(0.01)
        self.seeding = False

    def stats(self, timeline: bool = True) -> dict:
        return {"file": self.name, "chunks": 10, "served_chunks": 20,
                "served_to": {"127.0.0.22:40001": 20}, "shared": True}


@pytest.fixture
def fake_downloads(monkeypatch):
    """The worker makes FakeDownloads, and checks no seeder first."""
    import gui_worker as gw
    FakeDownload.made = []
    monkeypatch.setattr(gw.leecher, "Download", FakeDownload)
    monkeypatch.setattr(gw.Worker, "_recheck", lambda self, song: None)
    return FakeDownload.made


def one_fake_song(app, port: int):
    from types import SimpleNamespace
    info = SimpleNamespace(name="a.mp3", size=14000, chunks=10,
                           chunk_size=1400, duration_ms=5000,
                           file_id=bytes(16))
    app.view.songs.fill([SimpleNamespace(info=info,
                                         sources=[("127.0.0.1", port)])])
    app.view.songs.select_index(0)


def test_the_share_switch_reaches_the_download(window, fake_downloads,
                                               tmp_path):
    """On by default, the switch makes the Download share; toggled during
    the download, each change reaches it through the worker's queue, in
    order; toggled between downloads, the next one starts so."""
    port = free_port()
    app = window([("127.0.0.1", port)], lang="en", output=str(tmp_path),
                 preview=False)
    one_fake_song(app, port)
    switch = app.view.download.share_button
    assert app.view.download.share_var.get() is True
    pump(app, switch.winfo_ismapped, what="the switch shown")
    app.download_again()
    pump(app, lambda: fake_downloads and fake_downloads[0].running,
         what="the download")
    first = fake_downloads[0]
    assert isinstance(first.sharing, share.Sharing)
    assert first.sharing.share is True and first.calls == []
    switch.invoke()  # off
    assert app.status_text() == "Sharing off: nothing more is served to " \
                                "other listeners."
    pump(app, lambda: first.calls == [False], what="the switch off")
    switch.invoke()  # on again
    switch.invoke()  # and off
    pump(app, lambda: len(first.calls) == 3, what="the switches")
    assert first.calls == [False, True, False]
    app.stop_download()
    pump(app, lambda: not app.state.downloading, what="the stop")

    switch.invoke()  # on, between downloads: nothing to call
    switch.invoke()  # off
    app.download_again()
    pump(app, lambda: len(fake_downloads) == 2 and fake_downloads[1].running,
         what="the second download")
    assert fake_downloads[1].sharing.share is False
    assert fake_downloads[1].calls == [] and first.calls == [False, True,
                                                             False]
    app.stop_download()
    pump(app, lambda: not app.state.downloading, what="the second stop")


def test_a_complete_song_is_shared_while_the_window_is_idle(
        window, fake_downloads, monkeypatch, tmp_path):
    """Once complete, the song is served on: light jobs (statistics, play,
    simulate) run meanwhile; a job that needs the socket, the switch or
    closing the window ends it."""
    import events as ev
    import gui_worker as gw
    monkeypatch.setattr(gw.leecher, "Download", SharingDownload)
    port = free_port()
    app = window([("127.0.0.1", port)], lang="en", output=str(tmp_path),
                 preview=False)
    one_fake_song(app, port)
    app.download_again()
    pump(app, lambda: fake_downloads and fake_downloads[0].seeding
         and not app.state.downloading, what="the song shared")
    first = fake_downloads[0]
    assert app.status_text().startswith("Done: ")
    app.inbox.put(ev.Served(12, 1, 3.0))  # as the shared song's loop tells
    pump(app, lambda: app.stats.get("served_chunks") == 12, what="Served")
    values = app.view.stats_panel.values
    assert values["served"].cget("text") == "12 chunks to 1 listener(s)"
    assert app.state.runs[0].stats["served_chunks"] == 12
    assert app.view.download.served_line.text == "↑ 12 chunks"
    app.worker.submit("stats")  # a light job: done while sharing
    pump(app, lambda: app.stats.get("served_chunks") == 20,
         what="the statistics")
    assert first.seeding and not first.stopped
    app.refresh_seeders()  # needs the socket: the sharing ends first
    pump(app, lambda: not first.seeding and app.status_text().startswith(
        "No seeder is alive"), what="the refresh")
    assert first.stopped

    one_fake_song(app, port)  # the refresh found no seeder alive
    app.download_again()
    pump(app, lambda: len(fake_downloads) == 2 and fake_downloads[1].seeding
         and not app.state.downloading, what="the second song shared")
    second = fake_downloads[1]
    app.view.download.share_button.invoke()  # off: the sharing ends
    pump(app, lambda: not second.seeding, what="the switch off")
    assert second.calls == [False] and not second.stopped
    app.view.download.share_button.invoke()  # on: for the next download
    app.download_again()
    pump(app, lambda: len(fake_downloads) == 3 and fake_downloads[2].seeding,
         what="the third song shared")
    app.close()  # while sharing: it ends, the worker too
    assert fake_downloads[2].stopped and not app.worker.is_alive()


def test_the_window_takes_chunks_from_a_sharing_peer_coloured_apart(
        window, seeders, song_dir, tmp_path):
    """A real swarm: one seeder, and a terminal leecher that downloaded
    the song and shares it from 127.0.0.22 (--seed-for).  The window
    finds it (peer exchange), says so, takes chunks from it, draws them
    in the peers' colours and names it a peer; byte-exact; and once
    complete it shares the song on."""
    song = "facom-sample.mp3"  # 15 pieces: room to fetch some from the peer
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q", "--rate",
                         "400"))
    giver = subprocess.Popen(
        [PYTHON, os.path.join(ROOT, "leecher.py"), "get", song, "-o",
         str(tmp_path / "peer"), "--seeders", seeder.address, "--bind",
         "127.0.0.22", "--seed-for", "60"], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "peer" / song).exists():
            assert time.monotonic() < deadline and giver.poll() is None
            time.sleep(0.1)
        app = window([gui.cli.parse_address(seeder.address)], lang="en",
                     output=str(tmp_path / "window"), song=song,
                     preview=False)
        pump(app, lambda: app.selected_song() is not None, what="the song")
        app.start_download()
        pump(app, lambda: bool(app.stats), timeout=40, what="the download")
    finally:
        giver.kill()
        giver.wait(timeout=10)
    assert sha256(tmp_path / "window" / song) == sha256(song_dir / song)
    joined = [line for line in app.status_history
              if line.endswith(", another listener sharing this song, "
                               "joined.")]
    assert joined and joined[0].startswith("127.0.0.22:"), \
        list(app.status_history)
    peers = {source: count for source, count in app.stats["per_peer"].items()
             if app.stats["sources"][source] == "peer" and count}
    assert [source.rpartition(":")[0] for source in peers] == ["127.0.0.22"]
    assert app.stats["shared"] is True
    (peer,) = peers
    lines = app.view.plot.lines
    assert lines[("received", peer)].get_color() in gui_plot.PEER_COLOURS
    assert lines[("received", seeder.address)].get_color() in \
        gui_plot.SOURCE_COLOURS
    assert len(app.view.plot.data[("received", peer)][1]) == peers[peer]
    per_source = app.view.stats_panel.values["per_peer"].cget("text")
    assert f"peer {peer}: {peers[peer]}" in per_source.replace("\u00a0",
                                                               " ")
    assert app.worker.seeding is not None  # it shares the song on


def test_served_and_joined_peers_are_shown(window):
    """PeerJoined in the status line; Served next to the switch and in
    the statistics, live, then the final figures; both languages."""
    import events as ev
    import gui_worker as gw
    app = window([("127.0.0.1", free_port())], lang="en")
    fake_download(app)
    app.inbox.put(ev.PeerJoined("127.0.0.22:40001", 0.5))
    pump(app, lambda: app.inbox.empty(), what="PeerJoined")
    assert app.status_text() == "127.0.0.22:40001, another listener " \
                                "sharing this song, joined."
    app.inbox.put(ev.Served(57, 2, 1.0))
    pump(app, lambda: app.state.live.served_chunks == 57, what="Served")
    app.view._live_shown_at = 0.0
    app.view.tick(time.monotonic())
    panel = app.view.stats_panel
    assert panel.values["served"].cget("text") == "57 chunks to 2 " \
                                                  "listener(s)"
    assert panel.names["served"].cget("text") == "Served to others:"
    download = app.view.download
    assert download.served_line.text == "↑ 57 chunks"
    assert download.served_tip == "Served to others: 57 chunks to 2 " \
                                  "listener(s)"
    app.set_language("pt")
    assert panel.values["served"].cget("text") == "57 pedaços para 2 " \
                                                  "ouvinte(s)"
    assert download.served_line.text == "↑ 57 pedaços"
    assert app.status_text().startswith("127.0.0.22:40001, outro ouvinte")
    app.set_language("en")

    app.inbox.put(gw.DownloadEnded("/x/a.mp3", {
        "file": "a.mp3", "chunks": 10, "served_chunks": 80, "shared": True,
        "served_to": {"127.0.0.22:40001": 50, "127.0.0.23:40002": 30}}))
    pump(app, lambda: not app.state.downloading, what="the end")
    assert panel.values["served"].cget("text") == "80 chunks to 2 " \
                                                  "listener(s)"
    assert download.served_line.text == "↑ 80 chunks"
    app.state.stats = {"served_chunks": 0, "served_to": {}, "shared": False}
    app.view.show_stats()
    assert panel.values["served"].cget("text") == "not sharing"
    assert download.served_line.text == ""  # no "↑ 0 chunks" by the switch


PEERS = tuple(f"127.0.0.{22 + n}:{40001 + n}" for n in range(7))


def test_peers_and_seeders_get_colours_of_their_own_family(window):
    """Seeders keep the seeders' palette (dots), peers get the peers'
    (diamonds); past that palette, peers share one "other peers" series;
    the legend and the statistics say seeder or peer."""
    import events as ev
    app = window([("127.0.0.1", free_port())], lang="en")
    fake_download(app)  # seeders 127.0.0.1:9000 and 127.0.0.2:9000
    sources = ("127.0.0.1:9000", "127.0.0.2:9000") + PEERS
    for index in range(10 * len(sources)):
        app.inbox.put(ev.ChunkReceived(index % 10, None, 0.01 * index,
                                       False, sources[index % len(sources)]))
    pump(app, lambda: app.state.live.received == 10 * len(sources),
         what="the chunks")
    plot = app.view.plot
    lines = plot.lines

    def colour(source):
        return lines[("received", source)].get_color()
    seeder_colours = {colour(s) for s in sources[:2]}
    peer_colours = [colour(p) for p in PEERS[:5]]
    assert seeder_colours <= set(gui_plot.SOURCE_COLOURS)
    assert len(seeder_colours) == 2
    assert set(peer_colours) <= set(gui_plot.PEER_COLOURS)
    assert len(set(peer_colours)) == 5  # a colour each
    assert not seeder_colours & set(gui_plot.PEER_COLOURS)
    assert lines[("received", PEERS[0])].get_marker() != \
        lines[("received", sources[0])].get_marker()
    others = ("received", gui_plot.OTHER_PEERS)
    assert ("received", PEERS[5]) not in plot.data  # past the palette
    assert len(plot.data[others][0]) == 20  # PEERS[5] and PEERS[6]
    assert colour(gui_plot.OTHER_PEERS) not in peer_colours

    legend = dict(zip((s for s, _ in plot.look.sources),
                      plot.look.source_labels))
    assert legend["127.0.0.1:9000"] == "seeder 127.0.0.1:9000"
    assert legend[PEERS[0]] == "peer 127.0.0.22:40001"
    assert legend[gui_plot.OTHER_PEERS] == "other peers"
    pump(app, plot.up_to_date, what="the plot's background")
    painted = [text.get_text() for text in
               plot.painter.figure.axes[0].get_legend().get_texts()]
    assert "peer 127.0.0.22:40001" in painted and \
        "seeder 127.0.0.2:9000" in painted
    app.view._live_shown_at = 0.0
    app.view.tick(time.monotonic())
    per_source = app.view.stats_panel.values["per_peer"].cget("text")
    assert "peer\u00a0127.0.0.22:40001:\u00a010  ·  " in per_source  # one
    per_source = per_source.replace("\u00a0", " ")  # piece when wrapped
    assert per_source.startswith("seeder 127.0.0.1:9000: 10  ·  seeder "
                                 "127.0.0.2:9000: 10  ·  peer ")
    assert "peer 127.0.0.28:40007: 10" in per_source
    assert app.view.stats_panel.names["per_peer"].cget("text") == \
        "Chunks per source:"
    app.set_language("pt")
    assert "par 127.0.0.22:40001" in plot.look.source_labels


def test_a_swarm_legend_gets_more_rows_not_wider_than_the_plot():
    """Two rows while they fit; a swarm's long addresses get fewer
    columns, and the legend drawn stays inside the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    labels = ("sent", "played", "retransmitted", "NACK")
    assert gui_plot.legend_columns(labels + ("seeder 127.0.0.1",) * 3,
                                   600, 100) == 4
    seeders = (("127.0.0.1:9000", "seeder"), ("127.0.0.2:9000", "seeder"))
    swarm = seeders + tuple((peer, "peer") for peer in PEERS[:5]) + (
        (gui_plot.OTHER_PEERS, "peer"),)
    for sources, inches in ((seeders, (5.6, 4.0)), (swarm, (5.6, 4.0)),
                            (swarm, (10.0, 6.0))):
        look = gui_plot.Look(inches, 100, 2.0, (0, 9), ("x", "y") + labels,
                             sources, gui_plot.source_legend(sources))
        figure, axes, _ = gui_plot.decorated_figure(look, "white")
        FigureCanvasAgg(figure).draw()
        legend = axes.get_legend()
        assert legend.get_window_extent().width <= inches[0] * 100
        rows = -(-(len(labels) + len(sources)) // legend._ncols)
        assert rows == 2 or (sources is swarm and inches[0] < 6)


def test_the_window_handles_every_event_type(window):
    import events as ev
    import gui_worker as gw
    app = window([("127.0.0.1", free_port())], lang="en")
    assert set(app.handlers) == set(ev.EVENT_TYPES) | set(gw.MESSAGE_TYPES)


# ------------------------------------------------- the demo's first run
def test_autostart_downloads_at_once_with_preview_and_a_note(
        window, seeders, song_dir, tmp_path):
    """gui.py --autostart (the demo): no click, the song downloads with
    preview on, and a note says so and what to try next (screenshot at
    1024x768); the note follows a language switch and can be hidden."""
    addresses = classroom(seeders, song_dir, 64)
    out = tmp_path / "downloads"
    (out / SONG).parent.mkdir()
    shutil.copy(song_dir / SONG, out / SONG)  # here already: fetched anew
    app = window(addresses, lang="en", output=str(out), song=SONG,
                 order="sequential", prebuffer=1.0, preview=False,
                 autostart=True)
    app.root.geometry("{}x{}".format(*gui_state.window_size(1024, 768)))
    note = app.view.note
    assert not note.visible
    pump(app, lambda: app.state.downloading, what="the download by itself")
    pump(app, lambda: app.preview_player is not None
         and app.view.download.progress_bar.cget("value") > 30,
         timeout=30, what="a third downloaded, the preview playing")
    assert app.view.download.preview_var.get()  # preview on, whatever set
    assert note.visible
    assert note.text == (
        "Demo: this first download started by itself (short-tune.mp3, "
        "order: sequential, preview on). Next: pick another order and "
        "press “Download again”, then compare the runs in the “Runs and "
        "comparison” tab.")
    shot = screenshot(app, "gui-demo-autostart-1024x768.png")
    assert shot is None or os.path.getsize(shot) > 10_000
    # with the note above, the songs table still shows five rows
    from tkinter import ttk
    row_px = int(ttk.Style(app.root).lookup("Treeview", "rowheight"))
    assert app.view.songs.tree.winfo_height() >= 5 * row_px
    pump(app, lambda: bool(app.stats), timeout=40, what="the end")
    assert [run.order for run in app.state.runs] == ["sequential"]
    assert sha256(out / SONG) == sha256(song_dir / SONG)
    app.set_language("pt")
    assert note.text.startswith("Demonstração: este primeiro download "
                                "começou sozinho (short-tune.mp3, ordem: "
                                "sequencial, tocando enquanto baixa).")
    note.hide_button.invoke()
    app.root.update()
    assert not note.visible
    app.view.download.order_var.set("random")  # the next run: a click
    app.download_again()
    pump(app, lambda: len(app.state.runs) == 2 and app.stats, timeout=40,
         what="the second run")
    assert not note.visible  # the first run only


def test_without_autostart_the_window_waits_for_a_click(window, seeders,
                                                        song_dir, tmp_path):
    addresses = classroom(seeders, song_dir, 64)
    app = window(addresses, lang="en", output=str(tmp_path), song=SONG)
    pump(app, lambda: app.selected_song() is not None
         and app.state.pinged and len(app.peer_rows) == 3
         and app.status_text() == "1 song(s) found.", what="the song")
    settle = time.monotonic() + 1.0
    pump(app, lambda: time.monotonic() > settle, what="a second")
    assert not app.state.downloading and not app.state.runs
    assert not app.view.note.visible
    assert not (tmp_path / (SONG + ".part")).exists()


def test_autostart_without_a_seeder_says_so_in_the_note(window):
    address = ("127.0.0.1", free_port())  # nobody there
    app = window([address], lang="en", song=SONG, autostart=True)
    pump(app, lambda: app.view.note.visible, timeout=15, what="the note")
    assert app.view.note.text == (
        f"Demo: no seeder answered (127.0.0.1:{address[1]}), so the first "
        "download did not start: check that the seeders run and press "
        "Refresh.")
    assert not app.state.downloading
    assert app.status_text().startswith("No seeder is alive")


def test_autostart_without_the_song_says_so_in_the_note(window, seeders,
                                                        song_dir, tmp_path):
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q"))
    app = window([gui.cli.parse_address(seeder.address)], lang="pt",
                 output=str(tmp_path), song="no-such-song.mp3",
                 autostart=True)
    pump(app, lambda: app.view.note.visible, what="the note")
    assert app.view.note.text == (
        "Demonstração: nenhum seeder tem no-such-song.mp3, então o primeiro "
        "download não começou: escolha uma música da lista e clique em "
        "Baixar.")
    assert not app.state.downloading and not app.state.runs


def test_autostart_needs_a_song_one_line(tmp_path):
    result = run_python("gui.py", "--autostart", "-o", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == ("gui.py: error: --autostart needs --song NAME "
                             "(see -h)\n")


# ------------------------------------------------------- window fixes
class PreviewPlayer:
    """A preview player as the window sees it: its state, its own
    figures, no time map yet (the download is not complete)."""

    error = None
    position_s = 0.0

    def __init__(self):
        self.state = "waiting"
        self.stats = {"startup_s": None, "stalls": 0, "stall_s": 0.0,
                      "played_s": 0.0}

    @staticmethod
    def time_map(size):
        return None

    def stop(self):
        self.state = "stopped"


def preview_download(app, player, chunks: int = 10):
    """fake_download, with a preview player; every chunk arrives, chunk 3
    late (at 2.0 s, after its turn to play)."""
    import events as ev
    import gui_worker as gw
    info = fake_download(app, chunks)
    app.inbox.get_nowait()  # fake_download's DownloadStarted: ours instead
    app.inbox.put(gw.DownloadStarted(
        "a.mp3", info, "/x/a.mp3.part", "random",
        (("127.0.0.1:9000", "random"),), player))
    for index in range(chunks):
        app.inbox.put(ev.ChunkReceived(index, None, 2.0 if index == 3
                                       else 0.05 * index, False,
                                       "127.0.0.1:9000"))
    pump(app, lambda: app.inbox.empty() and app.state.live.received ==
         chunks, what="the chunks")
    return info


def shown_stats(app) -> dict:
    app.view._live_shown_at = 0.0
    app.view.tick(time.monotonic())
    return {key: label.cget("text")
            for key, label in app.view.stats_panel.values.items()}


def test_preview_figures_are_live_during_and_after_the_download(window):
    """Start-up as soon as playback starts, Played and the continuity of
    what played so far while it plays, from the Played events; after the
    download ends (its final figures knew no start-up: the first sound
    came later) they go on, not frozen at the download's end."""
    import events as ev
    import gui_worker as gw
    app = window([("127.0.0.1", free_port())], lang="en")
    player = PreviewPlayer()
    preview_download(app, player)  # 10 chunks of 1400 B, 5 s of audio
    assert shown_stats(app)["startup_s"] == "—"
    player.state = "playing"
    # 0.5 s of audio (1400 B) had played at 1.2 s: first sound at 0.7 s
    app.inbox.put(ev.Played(1400, 1.2))
    pump(app, lambda: app.inbox.empty(), what="Played")
    values = shown_stats(app)
    assert values["startup_s"] == "0.70 s"
    assert values["played_s"] == "0.50 s"
    assert values["continuity"] == "100.0 %"  # chunk 0 only, on time
    app.inbox.put(gw.DownloadEnded("/x/a.mp3", {
        "file": "a.mp3", "chunks": 10, "startup_s": None,
        "continuity": None, "played_s": 0.5, "stalls": 0}))
    pump(app, lambda: not app.state.downloading, what="the end")
    # chunk 3's turn came at 0.7 + 1.5 s = 2.2 s: on time at 2.0 s; 4
    # chunks played of which none late
    app.inbox.put(ev.Played(4 * 1400, 2.7))
    pump(app, lambda: app.inbox.empty(), what="Played")
    values = shown_stats(app)
    assert values["startup_s"] == "0.70 s"
    assert values["played_s"] == "2.00 s"  # not 0.50 s, the download's
    assert values["continuity"] == "100.0 %"
    app.set_language("pt")
    assert shown_stats(app)["played_s"] == "2,00 s"
    app.set_language("en")
    player.state = "finished"  # the worker gives the final figures
    player.stats = {"startup_s": 0.69, "stalls": 0, "stall_s": 0.0,
                    "played_s": 5.0}
    app.inbox.put(gw.StatsUpdated({"file": "a.mp3", "chunks": 10,
                                   "startup_s": 0.69, "continuity": 1.0,
                                   "played_s": 5.0, "stalls": 0}))
    pump(app, lambda: app.state.playback.done, what="the final figures")
    values = shown_stats(app)
    assert (values["startup_s"], values["played_s"]) == ("0.69 s",
                                                         "5.00 s")


def test_continuity_so_far_counts_a_late_chunk_once_played(window):
    import events as ev
    app = window([("127.0.0.1", free_port())], lang="en")
    player = PreviewPlayer()
    player.state = "playing"
    preview_download(app, player)
    # first sound at 0.0 s (0.5 s played at 0.5 s): chunk 3's turn at
    # 1.5 s, it came at 2.0 s; 5 chunks played, 4 on time
    app.inbox.put(ev.Played(1400, 0.5))
    app.inbox.put(ev.Played(5 * 1400, 3.0))
    pump(app, lambda: app.inbox.empty(), what="Played")
    values = shown_stats(app)
    assert values["startup_s"] == "0.00 s"
    assert values["continuity"] == "80.0 %"
    assert values["played_s"] == "2.50 s"


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_what_was_served_is_in_sight_at_1024x768(window, lang):
    """'Served to others' is among the statistics shown without scrolling
    at 1024x768, with the demo's note (three lines in Portuguese) above."""
    import gui_demo
    app = window([("127.0.0.1", free_port())], lang=lang)
    app.root.geometry("{}x{}".format(*gui_state.window_size(1024, 768)))
    app.view.note.show(gui_demo.STARTED, song="facom-sample.mp3",
                       order="each seeder's own")
    app.state.stats = {"served_chunks": 57, "served_peers": 2}
    app.view.show_stats()
    for _ in range(30):
        app.root.update()
        time.sleep(0.01)
    panel = app.view.stats_panel
    canvas = panel.scrolled.canvas
    assert canvas.yview()[0] == 0.0  # not scrolled
    for widget in (panel.names["served"], panel.values["served"]):
        bottom = widget.winfo_y() + widget.winfo_height()
        assert 0 < bottom <= canvas.winfo_height(), (lang, bottom,
                                                     canvas.winfo_height())
        assert widget.winfo_ismapped()


def test_prebuffer_uses_the_decimal_comma_in_portuguese(window):
    """Pré-buffer (s): 2,0 in Portuguese, 2.0 in English; the arrows step
    in the language shown; a comma typed is read."""
    app = window([("127.0.0.1", free_port())], lang="pt")
    download = app.view.download
    assert download.prebuffer_var.get() == "2,0"
    spin = download.prebuffer_box
    spin.event_generate("<<Increment>>")
    assert download.prebuffer_var.get() == "2,5"
    download.prebuffer_var.set("2,3")
    spin.event_generate("<<Increment>>")
    assert download.prebuffer_var.get() == "2,5"  # not Tk's "3.0"
    spin.event_generate("<<Decrement>>")
    spin.event_generate("<<Decrement>>")
    assert download.prebuffer_var.get() == "1,5"
    download.prebuffer_var.set("0,25")
    assert app.view.prebuffer() == 0.25
    app.set_language("en")
    assert download.prebuffer_var.get() == "0.25"
    app.set_language("pt")
    assert download.prebuffer_var.get() == "0,25"
