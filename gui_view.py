"""The window's layout and what it shows (``View``), the session's state
(``Session``) and what each event or message does to them
(``Handlers``).  ``gui.App`` owns one of each."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

import cli
import events as ev
import gui_demo
import gui_state
import gui_worker as gw
import i18n
from gui_panels import (DownloadPanel, Labels, PlayerBar, RunsPanel,
                        SeedersPanel, SongsPanel, build_menu)
from gui_widgets import (Shown, StatsPanel, enable, set_font_size,
                         STAT_NAMES, setup_style, stat_text)
from i18n import N_

try:
    import tkinter as tk
    from tkinter import ttk
except ImportError:
    tk = None

LEFT_WIDTH = 380  # the left column, px: the tables' columns fit in it
LIVE_STATS_EVERY_S = 0.5  # the statistics panel, during a download


@dataclass
class Session:
    """What the window knows: seeders, songs, the download, the runs."""

    peer_rows: list = field(default_factory=list)
    gone: set = field(default_factory=set)
    pinged: list | None = None
    all_songs: tuple = ()
    downloading: bool = False
    final_path: str | None = None
    player: object = None          # whatever plays now
    preview_player: object = None  # fed by the download
    player_name: str | None = None
    song_info: object = None       # of the song downloaded or found
    info: object = None            # of the running or last download
    started_at: float = 0.0        # when it started (time.monotonic())
    runs: list = field(default_factory=list)
    run: gui_state.Run | None = None  # the running or last run
    live: gui_state.Live = field(default_factory=gui_state.Live)
    playback: gui_state.LivePlayback = field(
        default_factory=gui_state.LivePlayback)  # the preview's, so far
    song_selected: bool = False
    final_stats_asked: bool = False
    player_error_shown: object = None
    stats: dict = field(default_factory=dict)  # the last download's
    seeders: frozenset = frozenset()  # the song's: other sources are peers
    simulating: bool = False       # the worker makes a simulated run

    @property
    def got(self) -> int:
        return self.live.received

    def last_run(self) -> gui_state.Run | None:
        return self.run


class View:
    """Builds the window and shows the session in it."""

    def __init__(self, app, root, settings):
        self.app = app
        self.root = root
        self.labels = Labels()
        self.status_history = collections.deque(maxlen=100)
        self._status = (N_("Ready."), {}, "info")
        self._buttons_state = None
        self._live_shown_at = 0.0
        self.shown = Shown()
        root.report_callback_exception = app.on_callback_error
        root.protocol("WM_DELETE_WINDOW", app.close)
        setup_style(root)
        self.font_size = set_font_size(root, 11)
        width, height = gui_state.window_size(root.winfo_screenwidth(),
                                              root.winfo_screenheight())
        root.geometry(f"{width}x{height}+0+0")
        root.minsize(*MIN_SIZE)
        self._build(settings)
        self._set_tk_locale()
        self.relabel()

    # ------------------------------------------------------------ build
    def _build(self, settings) -> None:
        app = self.app
        self.menubar, self.lang_var = build_menu(self.root, self.labels,
                                                 self.app)
        self.note = gui_demo.Note(self.root, self.labels)  # row 0, hidden
        self.root.rowconfigure(1, weight=1)
        self.root.columnconfigure(0, weight=1)
        panes = ttk.PanedWindow(self.root, orient="horizontal")
        panes.grid(row=1, column=0, sticky="nsew", padx=6, pady=(4, 0))
        left = ttk.Frame(panes, width=LEFT_WIDTH)
        self.seeders = SeedersPanel(left, self.labels, ", ".join(
            cli.format_address(a) for a in settings.seeders),
            app.refresh_seeders)
        self.songs = SongsPanel(left, self.labels, app.search,
                                app.start_download, app.filter_songs)
        self.download = DownloadPanel(left, self.labels, settings, {
            "download": app.start_download,
            "download_again": app.download_again,
            "stop_download": app.stop_download,
            "share": app.toggle_sharing})
        for row, panel in enumerate((self.seeders, self.songs,
                                     self.download)):
            panel.frame.grid(row=row, column=0, sticky="nsew",
                             pady=(0 if row == 0 else 4, 0))
        left.rowconfigure(1, weight=1)
        left.columnconfigure(0, weight=1)
        panes.add(left, weight=0)
        panes.add(self._build_right(), weight=1)
        self.player_bar = PlayerBar(self.root, self.labels, {
            "play": app.play, "pause": app.pause,
            "stop_play": app.stop_playback})
        self.player_bar.frame.grid(row=2, column=0, sticky="ew")
        self.status_label = ttk.Label(self.root, style="Status.TLabel",
                                      anchor="w", width=1)
        self.status_label.grid(row=3, column=0, sticky="ew")
        self.widgets = {**self.download.buttons, **self.player_bar.buttons,
                        **self.runs.buttons, **self.save_buttons,
                        "refresh": self.seeders.refresh_button,
                        "search": self.songs.search_button}

    def _build_right(self):
        import gui_plot
        self.notebook = ttk.Notebook(self.root)
        background = ttk.Style(self.root).lookup("TFrame", "background") \
            or "white"
        live = ttk.PanedWindow(self.notebook, orient="vertical")
        top = ttk.Frame(live)
        self.plot = gui_plot.ChunkPlot(top, background)
        self.plot.widget.configure(highlightthickness=0, height=300)
        self.save_buttons = {}
        row = ttk.Frame(top)
        row.pack(side="bottom", fill="x")
        self.plot.widget.pack(fill="both", expand=True)
        self.labels.bind(ttk.Label(row), N_("Save:")).pack(side="left")
        for key, message, command in (
                ("save_png", N_("Plot PNG"), self.app.files.ask_save_png),
                ("save_json", N_("Stats JSON"), self.app.files.ask_save_json),
                ("save_csv", N_("Stats CSV"), self.app.files.ask_save_csv),
                ("save_pcap", N_("Capture PCAP"),
                 self.app.files.ask_save_pcap)):
            button = self.labels.bind(ttk.Button(row, command=command),
                                      message)
            button.pack(side="left", padx=(4, 0))
            self.save_buttons[key] = button
        self.stats_panel = StatsPanel(live)
        live.add(top, weight=3)
        live.add(self.stats_panel.frame, weight=1)
        self.runs = RunsPanel(self.notebook, self.labels, {
            "compare": self.show_comparison,
            "export_runs": self.app.files.export_runs,
            "clear_runs": self.app.clear_runs,
            "simulate": self.app.simulate}, background)
        self.notebook.add(live)
        self.notebook.add(self.runs.frame)
        self.labels.call(lambda: [
            self.notebook.tab(0, text=i18n._("Live")),
            self.notebook.tab(1, text=i18n._("Runs and comparison"))])
        self.notebook.bind("<<NotebookTabChanged>>",
                           lambda event: self.show_comparison())
        return self.notebook

    # ------------------------------------------------------- language
    def relabel(self) -> None:
        self.lang_var.set(i18n.language())
        self._set_tk_locale()
        self.root.title(i18n._("P2P FACOM — leecher"))
        self.labels.apply()
        state = self.app.state
        self.seeders.fill(state.peer_rows, state.gone)
        self.songs.fill(self.songs.songs, keep_selection=True)
        self.stats_panel.relabel()
        self.show_stats()
        self.plot.relabel()
        self.plot.redraw_if_due(time.monotonic(), force=True)
        self.show_runs()
        self._show_status()
        self._show_progress()
        self._show_player()

    def _set_tk_locale(self) -> None:
        """Tk's file dialog speaks the window's language."""
        self.root.tk.call("::msgcat::mclocale", TK_LOCALES[i18n.language()])

    def zoom(self, steps: int) -> None:
        """Ctrl+plus / Ctrl+minus: every font a point bigger / smaller."""
        self.font_size = set_font_size(self.root, self.font_size + steps)

    # --------------------------------------------------------- status
    def set_status(self, message: str, level: str = "info",
                   **params) -> None:
        """``message``: a msgid, or an event (events.py) to describe; an
        event among ``params`` is described too, each time the status is
        shown (a language switch translates it)."""
        self._status = (message, params, level)
        self._show_status()
        self.status_history.append(self.status_text)

    def _show_status(self) -> None:
        message, params, level = self._status
        params = {key: i18n.describe(value)  # in today's language
                  if type(value) in ev.EVENT_TYPES else value
                  for key, value in params.items()}
        shown = i18n.text(message, **params) if isinstance(message, str) \
            else i18n.describe(message)
        self.status_text = shown
        self.shown.show(self.status_label, text=shown,
                        style="Error.Status.TLabel" if level == "error"
                        else "Status.TLabel")

    # ----------------------------------------------------------- tick
    def tick(self, now: float) -> None:
        """What a poll shows: plot, progress, player, live statistics,
        buttons."""
        self.plot.redraw_if_due(now)
        self._show_progress()
        self._show_player()
        self._show_player_error()
        if (self.app.state.downloading or self._previewing()) and \
                now - self._live_shown_at >= LIVE_STATS_EVERY_S:
            self._live_shown_at = now
            self.show_stats()
        self._watch_playback()
        self.update_buttons()

    def show_stats(self) -> None:
        """The statistics panel, and what was served next to the switch
        (nothing before the first download)."""
        stats = self._shown_stats()
        self.stats_panel.show(stats)
        served = stats.get("served_chunks")
        if not served and stats.get("shared") is False:
            served = None  # not sharing: no "↑ 0 chunks" by the switch
        self.download.show_served(
            served,
            f"{i18n._(STAT_NAMES['served'])}: {stat_text('served', stats)}")

    def _previewing(self) -> bool:
        """The last download's preview plays on, its final figures not
        in yet: the statistics follow it."""
        state = self.app.state
        player = state.preview_player
        return player is not None and not state.playback.done and \
            player.state in gui_state.PLAYER_ACTIVE

    def _shown_stats(self) -> dict:
        """The final statistics, or during a download the live ones;
        with, while the preview plays, what it has played so far (the
        download's own start-up and continuity, whole-song figures, stay
        when it knew them)."""
        state = self.app.state
        if state.info is None or state.run is None:
            return state.stats
        playback = {} if state.playback.done else \
            gui_state.preview_figures(state.playback, state.run, state.info,
                                      state.preview_player)
        if not state.downloading:
            return gui_state.over_final(state.stats, playback)
        live = state.live
        return {"file": state.run.song,
                "size": state.info.size, "chunks": state.info.chunks,
                "chunks_received": live.received, "nacks_sent": live.nacks,
                "chunks_retransmitted": live.retransmitted,
                "stalls": live.stalls, "stall_s": None,
                "startup_s": None, "played_s": None, **playback,
                "seeders_gone": sorted(live.gone),
                "elapsed_s": time.monotonic() - state.started_at,
                "per_peer": dict(live.sources),
                "sources": {address: gui_state.source_kind(address,
                                                           state.seeders)
                            for address in live.sources},
                "served_chunks": live.served_chunks,
                "served_peers": live.served_peers,
                "shared": self.download.share_var.get()}

    def _show_progress(self) -> None:
        state = self.app.state
        panel = self.download
        if state.info is None:
            panel.progress_line.show(i18n._("No download yet."))
            return
        total = state.info.chunks
        got = total if state.final_path and not state.downloading \
            else min(state.live.received, total)
        percent = 100 * got // max(total, 1)
        self.shown.show(panel.progress_bar, value=percent)
        panel.progress_line.show(i18n.text(
            N_("{percent} % · {got}/{total} chunks · NACKs {nacks} · "
               "retransmitted {rtx}"), percent=percent, got=got,
            total=total, nacks=state.live.nacks,
            rtx=state.live.retransmitted))

    def _show_player(self) -> None:
        state = self.app.state
        bar = self.player_bar
        player = state.player
        if player is None:
            bar.position_line.show(i18n._("nothing playing"))
            self.shown.show(bar.position_bar, value=0)
            return
        info = state.song_info
        total = info.duration_ms / 1000 if info and info.duration_ms \
            else 0.0
        position = player.position_s
        self.shown.show(bar.position_bar, value=round(
            min(1.0, position / total), 3) if total else 0)
        bar.position_line.show(i18n.text(
            N_("{pos} / {total}  ·  {state}"),
            pos=i18n.decimal(position, 1) + " s",
            total=i18n.decimal(total, 1) + " s",
            state=i18n._(PLAYER_STATES["failed" if player.error
                                       else player.state])))

    def _show_player_error(self) -> None:
        """A player that failed says why in the status line, once."""
        state = self.app.state
        player = state.player
        if player is None or player.error is None or \
                player is state.player_error_shown:
            return
        state.player_error_shown = player
        self.set_status(N_("Cannot play {name}: {text}"), "error",
                        name=state.player_name, text=player.error)

    def _watch_playback(self) -> None:
        """Once the preview has played to its end, its final figures go to
        the run: from the player itself, or, when start-up was not known
        at the download's end, from the worker."""
        state = self.app.state
        player = state.preview_player
        if player is None or state.final_stats_asked or state.downloading \
                or not state.stats or \
                player.state in gui_state.PLAYER_ACTIVE:
            return
        state.final_stats_asked = True
        if state.stats.get("startup_s") is None:
            self.app.worker.submit("stats")
        else:
            self.app.reader.played_to_the_end(player)

    def update_buttons(self) -> None:
        state = self.app.state
        song = self.songs.selected()
        wanted = gui_state.WindowState(
            downloading=state.downloading,
            player_state=None if state.player is None
            else state.player.state,
            song_selected=song is not None,
            song_here=song is not None and any(
                run.song == leecher_name(song) and run.stats
                for run in state.runs) or bool(
                    state.final_path and song is not None and
                    state.final_path.endswith(leecher_name(song))),
            have_file=bool(state.final_path),
            plot_points=self.plot.points,
            have_stats=bool(state.stats), runs=len(state.runs),
            have_capture=self.app.worker.capture_path is not None,
            real_runs=sum(not run.simulated for run in state.runs),
            simulating=state.simulating)
        if wanted == self._buttons_state:
            return
        self._buttons_state = wanted
        for key, on in gui_state.buttons(wanted).items():
            widget = self.widgets.get(key)
            if widget is not None:
                enable(widget, on)

    def prebuffer(self) -> float | None:
        """The prebuffer typed, in seconds; None (and said) when it is
        not a number of seconds from 0 to 30 (a decimal comma or
        point)."""
        value = gui_state.prebuffer_value(self.download.prebuffer_var.get())
        if value is None:
            self.set_status(
                N_("Prebuffer must be a number of seconds (0-30)."),
                "error")
        return value

    # ----------------------------------------------------------- runs
    def show_runs(self) -> None:
        self.runs.fill(self.app.state.runs)
        self.show_comparison()

    def show_comparison(self) -> None:
        """Redraw the comparison, when its tab is the one shown."""
        if self.notebook.index("current") == 1:
            self.runs.draw(self.runs.selected(self.app.state.runs))


def leecher_name(song) -> str:
    import leecher
    return leecher.safe_name(song.info)


MIN_SIZE = (760, 560)
TK_LOCALES = {"pt": "pt_br", "en": "en"}
PLAYER_STATES = {
    "waiting": N_("buffering"), "playing": N_("playing"),
    "stalled": N_("stalled: waiting for data"), "paused": N_("paused"),
    "stopped": N_("stopped"), "finished": N_("finished"),
    "failed": N_("failed")}


# ---------------------------------------------------------------- handlers
class Handlers:
    """What each event (events.py) and worker message does."""

    def __init__(self, app):
        self.app = app
        self.state = app.state
        self.view = app.view

    def table(self) -> dict:
        table = {
            ev.RequestSent: self.status, ev.ChunkReceived: self.chunk,
            ev.NackSent: self.nack, ev.SeederGone: self.seeder_gone,
            ev.SeedersBack: self.seeders_back, ev.Refused: self.error,
            ev.BadPiece: self.bad_piece, ev.BadHashList: self.liar,
            ev.WaitingForSeeders: self.error, ev.Resumed: self.resumed,
            ev.SongChanged: self.status, ev.Played: self.played,
            ev.Stalled: self.stalled, ev.Snapshot: self.snapshot,
            ev.Completed: None, ev.Failed: None,
            ev.PeerJoined: self.peer_joined, ev.Served: self.served,
        }
        for message in gw.MESSAGE_TYPES:
            table[message] = getattr(self, "on_" + message.__name__)
        return table

    # ---------------------------------------------------- the download
    def status(self, event) -> None:
        self.view.set_status(event)

    def error(self, event) -> None:
        self.view.set_status(event, "error")

    def chunk(self, event: ev.ChunkReceived) -> None:
        self.state.live.take(event)
        self.state.run.take(event)
        plot = self.view.plot
        if event.sent_s is not None:
            plot.add("sent", event.sent_s, event.index)
        plot.add(("received", event.source), event.received_s, event.index)
        if event.retransmission:
            plot.add("rtx", event.received_s, event.index)

    def nack(self, event: ev.NackSent) -> None:
        self.state.live.take(event)
        self.state.run.take(event)
        for index in event.chunks:
            self.view.plot.add("nack", event.at_s, index)
        self.view.set_status(event)

    def seeder_gone(self, event: ev.SeederGone) -> None:
        self.state.live.take(event)
        self.state.gone.add(event.peer)
        self.view.seeders.fill(self.state.peer_rows, self.state.gone)
        self.view.set_status(event, "error")

    def bad_piece(self, event: ev.BadPiece) -> None:
        """Wrong data with valid CRCs: the piece is fetched again; a
        seeder with too many bad pieces is shown as gone."""
        for peer in event.dropped:
            self.seeder_gone(ev.SeederGone(peer, event.at_s))
        self.view.set_status(event, "error")

    def liar(self, event: ev.BadHashList) -> None:
        self.seeder_gone(ev.SeederGone(event.peer, event.at_s))
        self.view.set_status(event, "error")

    def seeders_back(self, event: ev.SeedersBack) -> None:
        self.state.live.take(event)
        self.state.gone.difference_update(event.peers)
        self.view.seeders.fill(self.state.peer_rows, self.state.gone)
        self.view.set_status(event)

    def resumed(self, event: ev.Resumed) -> None:
        self.state.live.take(event)
        self.view.set_status(event)

    def peer_joined(self, event: ev.PeerJoined) -> None:
        """Another listener shares this song: chunks may come from it
        (its colour comes with its first chunk)."""
        self.view.set_status(event)

    def served(self, event: ev.Served) -> None:
        """What this window uploaded so far: during the download, the
        panel shows it at its next refresh (Served comes once a second at
        most); once the song is complete and still shared, the run's
        figures take it at once."""
        state = self.state
        state.live.take(event)
        if state.downloading or not state.stats or state.run is None:
            return
        figures = {"served_chunks": event.chunks,
                   "served_peers": event.peers}
        state.stats.update(figures)
        state.run.stats.update(figures)
        self.view.show_stats()

    def snapshot(self, event: ev.Snapshot) -> None:
        self.state.live.take(event)

    def stalled(self, event: ev.Stalled) -> None:
        self.state.live.take(event)
        self.view.set_status(event)

    def played(self, event: ev.Played) -> None:
        info = self.state.info
        if info is None or event.byte_end <= 0:
            return
        last = gui_state.played_chunk(event.byte_end, info.chunk_size,
                                      info.chunks)
        self.view.plot.add("played", event.at_s, last)
        self.state.run.take_played(last, event.at_s)
        self.state.playback.take(event)

    # ------------------------------------------------ worker messages
    def on_PeerAnswered(self, message: gw.PeerAnswered) -> None:
        rows = [r for r in self.state.peer_rows
                if r.address != message.row.address]
        typed = [cli.format_address(a) for a in self.state.pinged or ()]
        self.state.peer_rows = sorted(
            rows + [message.row], key=lambda row: typed.index(row.address)
            if row.address in typed else len(typed))
        self.view.seeders.fill(self.state.peer_rows, self.state.gone)

    def on_PeersChecked(self, message: gw.PeersChecked) -> None:
        state = self.state
        state.peer_rows = list(message.rows)
        state.gone = set()
        self.view.seeders.fill(state.peer_rows, state.gone)
        alive = sum(row.alive for row in state.peer_rows)
        if state.downloading:
            return
        self.app.autostart.seeders_checked()
        if not alive:  # the songs listed are on no seeder alive now
            state.all_songs = ()
            self.view.songs.fill([])
            first = state.peer_rows[0].address if state.peer_rows \
                else "127.0.0.1:9000"
            self.view.set_status(N_(
                "No seeder is alive: start one (python3 seeder.py -i {ip} "
                "-p {port}) and press Refresh."), "error",
                ip=first.rpartition(":")[0], port=first.rpartition(":")[2])
            return
        if not self.view.songs.songs:  # else "N song(s) found" stays
            self.view.set_status(N_("{alive} of {n} seeder(s) alive."),
                                 alive=alive, n=len(state.peer_rows))

    def on_SongsFound(self, message: gw.SongsFound) -> None:
        state = self.state
        state.all_songs = message.songs
        songs = self.app.filter_songs()
        query = self.view.songs.var.get().strip()
        if not songs:
            self.view.set_status(N_("No song matches “{query}”."),
                                 "error", query=query)
            return
        self.view.set_status(N_("{n} song(s) found."), n=len(songs))
        wanted = self.app.settings.song
        if wanted and not state.song_selected:
            state.song_selected = self.app.select_song(wanted)
        self.app.autostart.songs_listed()

    def on_Notice(self, message: gw.Notice) -> None:
        self.view.set_status(message.message, **message.params)

    def on_JobFailed(self, message: gw.JobFailed) -> None:
        self.view.set_status(message.message, "error", **message.params)
        if message.job == "download":
            self.state.downloading = False
        elif message.job == "simulate":
            self.state.simulating = False

    def on_AlreadyHere(self, message: gw.AlreadyHere) -> None:
        self.state.downloading = False
        self.state.final_path = message.path
        self.state.song_info = message.info
        self.view.set_status(N_(
            "{path} is already here and verified (SHA-256): ▶ Play plays "
            "it, Download again fetches it anew."), path=message.path)

    def played_to_the_end(self, player) -> None:
        """The last run's preview is over (played, or stopped by the next
        download): what it played goes into the run's figures."""
        run = self.state.run
        if run is None or run not in self.state.runs:
            return
        run.stats.update(gui_state.audio_figures(player.stats))
        if run is self.state.run:
            self.state.playback.done = True
            self.state.stats = dict(run.stats)
            self.view.show_stats()
        self.view.show_runs()

    def on_DownloadStarted(self, message: gw.DownloadStarted) -> None:
        state = self.state
        if state.preview_player is not None and not state.final_stats_asked:
            self.played_to_the_end(state.preview_player)
        state.info = state.song_info = message.info
        state.started_at = time.monotonic()
        state.preview_player = message.player
        if message.player is not None:
            state.player = message.player
            state.player_name = message.name
        state.stats = {}
        state.live = gui_state.Live(total=message.info.chunks)
        state.playback = gui_state.LivePlayback()
        state.final_stats_asked = False
        state.run = gui_state.Run(
            len(state.runs) + 1, message.name, message.order,
            message.seeder_orders, self._emulation(), time.time(),
            message.info.chunks)
        state.seeders = frozenset(message.seeders or (
            a for a, _ in message.seeder_orders))
        self.view.plot.reset(message.info.chunks, state.run.label(),
                             tuple(a for a, _ in message.seeder_orders),
                             state.seeders)
        self.view.show_stats()
        self.view.set_status(N_("Downloading {name} ({order})…"),
                             name=message.name,
                             order=state.run.order_text())

    def _emulation(self) -> str:
        settings = self.app.settings
        if not settings.loss:
            return ""
        seed = "" if settings.rng_seed is None \
            else f" seed {settings.rng_seed}"
        return f"loss {settings.loss:g}{seed}"

    def on_DownloadEnded(self, message: gw.DownloadEnded) -> None:
        state = self.state
        state.downloading = False
        if message.path is None:
            text = ev.Failed(message.problem, message.params, 0.0)
            stopped = message.problem is ev.Problem.STOPPED
            self.view.set_status(N_("Download stopped; the partial file is "
                                    "kept ({path}): Download resumes it.")
                                 if stopped else N_(
                                     "Download failed: {text}"),
                                 "info" if stopped else "error",
                                 path=message.params.get("path", ""),
                                 text=text)
            return
        state.final_path = message.path
        self._finish_run(message.stats)
        self.view.plot.redraw_if_due(time.monotonic(), force=True)
        self.view.set_status(ev.Completed(message.path, 0.0))

    def _finish_run(self, stats: dict) -> None:
        state = self.state
        run = state.run
        run.finish(stats)
        run.path = state.final_path
        state.stats = dict(run.stats)
        if run not in state.runs:
            state.runs.append(run)
        self.view.show_stats()
        self.view.show_runs()

    def on_StatsUpdated(self, message: gw.StatsUpdated) -> None:
        if self.state.run in self.state.runs:  # completed
            self.state.playback.done = True  # after the preview played
            self._finish_run(message.stats)

    def on_PlayerStarted(self, message: gw.PlayerStarted) -> None:
        self.state.player = message.player
        self.state.player_name = message.name
        self.view.set_status(N_("Playing {name}."), name=message.name)

    def on_Simulated(self, message: gw.Simulated) -> None:
        self.state.simulating = False
        self.app.add_run(message.run)
        self.view.set_status(N_("Simulated run #{n} added: {order}."),
                             n=message.run.number,
                             order=message.run.order_text())

    def on_Saved(self, message: gw.Saved) -> None:
        self.view.set_status(N_("Saved {path}."), path=message.path)

