"""P2P FACOM leecher window: find seeders, search, download, compare.

    python3 gui.py [--seeders ADDR,ADDR] [--lang pt|en] [-o DIR]
                   [--song NAME] [--order ORDER] [--prebuffer S]
                   [--loss P [--rng-seed N]] [--no-share] [--autostart]
    python3 p2p_facom.py -t leecher            # the same window

Threads: the Tk thread owns every widget.  One worker thread
(gui_worker.py) does all the networking: PING, SEARCH and the download.
The player (player.py) decodes and plays on threads of its own.  None of
them touches Tk: the download's typed events (events.py) and the worker's
messages come on one queue (``App.inbox``), which the Tk thread drains
every ``POLL_MS`` with ``after`` and hands to ``events.dispatch``: an
event nobody handles is an error, not silence.

Files: gui.py (App: layout and wiring), gui_panels.py (the parts),
gui_plot.py (the live plot, the comparison), gui_worker.py (the worker),
gui_widgets.py (small widgets, styles), gui_state.py (what is decided
without Tk), i18n.py (language).  matplotlib is imported when the window
is built: ``import gui`` is cheap and needs no display.
"""

from __future__ import annotations

import math
import os
import queue
import re
import sys
import threading
import time
import traceback
from dataclasses import dataclass

import cli
import events as ev
import gui_files
import gui_state
import gui_worker as gw
import i18n
import leecher
from i18n import N_

try:
    import tkinter as tk
except ImportError:  # python3-tk is not installed
    tk = None

POLL_MS = 50            # how often the Tk thread drains the inbox
EVENT_BUDGET_S = 0.008  # most time one poll spends on messages
SWITCH_INTERVAL_S = 0.001  # see App.__init__
LAG_KEEP = 100_000      # event-loop lag samples kept for benchmarks


@dataclass
class Settings:
    seeders: list
    lang: str = "en"
    output: str = "downloads"
    song: str | None = None      # search and select it on open
    order: str | None = None     # None: each seeder's own order
    preview: bool = True
    prebuffer: float = 2.0
    loss: float = 0.0            # received datagrams dropped on purpose
    rng_seed: int | None = None  # makes that loss repeatable
    sink: object = None          # a player.Sink; None: player.choose_sink
    autostart: bool = False      # download ``song`` at once (the demo)
    share: bool = True           # serve other listeners (the switch)


def parse_addresses(entry: str) -> list[tuple[str, int]]:
    """'127.0.0.1:9000, 127.0.0.2' -> addresses; GuiError naming the first
    bad one."""
    addrs = []
    for part in re.split(r"[,;\s]+", entry):
        if part:
            try:
                addrs.append(cli.parse_address(part))
            except cli.UsageError:
                raise gw.GuiError(N_(
                    "Bad seeder address: {address} (use IP:PORT, PORT "
                    "1-65535, e.g. 127.0.0.1:9000)."), address=part) \
                    from None
    return addrs


class App:
    """The leecher's window.  Tests drive it through its methods
    (``refresh_seeders``, ``search``, ``select_song``, ``start_download``,
    ``toggle_sharing``, ``set_language``, ``save_*``, ``export_runs``,
    ``close``) while
    pumping ``root.update()``.  ``loop_lag_ms`` holds, for every poll, how
    long after it was due it ended (for bench/gui_latency.py)."""

    def __init__(self, root, settings: Settings):
        import gui_demo
        import gui_view
        self.root = root
        self.settings = settings
        i18n.use(settings.lang if settings.lang in i18n.LANGUAGES else "en")
        self.inbox = gw.Inbox()
        # Other threads of this process (download, plot painter, player)
        # are busy in Python.  Each Tk call lets the GIL go, and getting it
        # back takes up to a switch interval: 5 ms by default.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.worker = gw.Worker(self.inbox, gw.WorkerSettings(
            settings.loss, settings.rng_seed, settings.sink))
        self.loop_lag_ms: list[float] = []
        self.state = gui_view.Session()
        self.files = gui_files.Files(self)
        self.view = gui_view.View(self, root, settings)
        self.autostart = gui_demo.Autostart(self, self.view.note)
        self.reader = gui_view.Handlers(self)  # what each event does
        self.handlers = self.reader.table()
        self.closed = False
        self._poll_id = None
        self._poll_due = 0.0
        self.view.set_status(N_("Ready."))
        self.worker.start()
        self._schedule_poll()
        self.view.songs.var.set(settings.song or "")
        self.refresh_seeders()  # and then searches

    def __getattr__(self, name):
        """The session's state and the saving actions read as the App's
        (``app.downloading``, ``app.save_plot_png``): tests, benchmarks."""
        if name in ("view", "state", "files"):
            raise AttributeError(name)
        for holder in (self.state, self.files):
            try:
                return getattr(holder, name)
            except AttributeError:
                pass
        raise AttributeError(name)

    # ------------------------------------------------------ user actions
    def addresses(self) -> list | None:
        try:
            return parse_addresses(self.view.seeders.var.get())
        except gw.GuiError as exc:
            self.view.set_status(exc.message, "error", **exc.params)
            return None

    def refresh_seeders(self) -> None:
        """Ping the seeders (each shown as it answers) and list their
        songs again."""
        addrs = self.addresses() if self._idle() else None
        if addrs is None:
            return
        self.state.peer_rows = []
        self.state.gone = set()
        self.view.seeders.fill([], set())
        self.state.pinged = addrs
        self.view.set_status(N_("Checking {n} seeder(s)…"), n=len(addrs))
        self.worker.submit("refresh", addrs, self.view.songs.var.get())

    def search(self, query: str | None = None) -> None:
        """Show the songs whose names hold every word of the query, case
        and accents aside; ask the seeders again for their lists."""
        if query is not None:
            self.view.songs.var.set(query)
        addrs = self.addresses() if self._idle() else None
        if addrs is None:
            return
        if addrs != self.state.pinged:
            self.refresh_seeders()
            return
        query = self.view.songs.var.get().strip()
        self.view.set_status(N_("Searching for “{query}”…") if query
                             else N_("Listing every song…"), query=query)
        self.worker.submit("search", query)

    def filter_songs(self) -> list:
        """List the songs whose names hold every word typed, case and
        accents aside (as the query is typed: no network)."""
        query = self.view.songs.var.get()
        songs = [song for song in self.state.all_songs
                 if i18n.matches(query, song.info.name)]
        self.view.songs.fill(songs, keep_selection=True)
        return songs

    def _idle(self) -> bool:
        """The worker is free (during a download it runs the download)."""
        if self.state.downloading:
            self.view.set_status(N_("A download is already running."),
                                 "error")
        return not self.state.downloading

    def select_song(self, name: str) -> bool:
        """Select the song called ``name`` (else the first containing it,
        case and accents aside); False when there is none."""
        songs = self.view.songs.songs
        wanted = i18n.fold(name)
        found = [n for n, s in enumerate(songs)
                 if i18n.fold(s.info.name) == wanted] or \
            [n for n, s in enumerate(songs) if i18n.matches(name,
                                                             s.info.name)]
        if found:
            self.view.songs.select_index(found[0])
        return bool(found)

    def selected_song(self):
        return self.view.songs.selected()

    def start_download(self, again: bool = False) -> None:
        """Download the selected song in the chosen order (``again``: even
        when it is here and verified, replacing it)."""
        if not self._idle():
            return
        song = self.selected_song()
        if song is None:
            self.view.set_status(N_("Pick a song in the list first."),
                                 "error")
            return
        view = self.view.download
        prebuffer = self.view.prebuffer()
        if prebuffer is None:
            return
        self._stop_player()
        self.state.downloading = True
        self.state.final_path = None
        self.worker.stop_requested = False
        self.view.set_status(N_("Checking the seeders of {name}…"),
                             name=song.info.name)
        self.worker.submit("download", song, view.order(),
                           view.preview_var.get(), prebuffer,
                           self.settings.output, again,
                           view.share_var.get())
        self.view.update_buttons()

    def toggle_sharing(self) -> None:
        """The switch "Share with other listeners": the next download
        shares or not, and a running one starts or stops serving now."""
        on = self.view.download.share_var.get()
        self.worker.set_sharing(on)
        self.view.set_status(
            N_("Sharing on: the song's other listeners may fetch the "
               "pieces verified here.") if on else
            N_("Sharing off: nothing more is served to other listeners."))

    def download_again(self) -> None:
        self.start_download(again=True)

    def stop_download(self) -> None:
        if self.state.downloading:
            self.worker.stop_download()

    def play(self) -> None:
        player = self.state.player
        if player is not None and player.state == "paused":
            player.resume()
        elif player is not None and player.state in gui_state.PLAYER_ACTIVE:
            return
        elif self.state.final_path and not self.state.downloading:
            self.worker.submit("play", self.state.final_path)

    def pause(self) -> None:
        player = self.state.player
        if player is not None and player.state in gui_state.PLAYER_ACTIVE:
            player.pause()

    def stop_playback(self) -> None:
        self._stop_player()

    def _stop_player(self) -> None:
        player = self.state.player
        if player is not None and player.state not in ("stopped",
                                                       "finished"):
            # stop() waits for the player's threads: not on the Tk thread
            threading.Thread(target=player.stop, name="player-stop",
                             daemon=True).start()

    def set_language(self, lang: str) -> None:
        if lang in i18n.LANGUAGES:
            i18n.use(lang)
            self.view.relabel()

    def zoom(self, steps: int) -> None:
        self.view.zoom(steps)

    def simulate(self) -> None:
        """Add a simulated run next to the real ones: the selected real
        run's song and seeders (else the last real run's), the order and
        prebuffer chosen now, links estimated from what that run measured
        (``gui_state.simulation_request``).  The worker computes it."""
        if not self._idle() or self.state.simulating:
            return
        base = self.view.runs.simulation_base(self.state.runs)
        if base is None:
            self.view.set_status(N_("Download a song first: a simulated "
                                    "run repeats a real one."), "error")
            return
        path = base.path
        if not path or not os.path.isfile(path):
            self.view.set_status(N_("The file of run #{n} is gone: download"
                                    " it again to simulate it."), "error",
                                 n=base.number)
            return
        prebuffer = self.view.prebuffer()
        if prebuffer is None:
            return
        rtts = [row.rtt_ms for row in self.state.peer_rows
                if row.address in {a for a, _ in base.seeder_orders}]
        request = gui_state.simulation_request(
            base, path, self.view.download.order(), prebuffer, rtts,
            self.settings.rng_seed)
        self.state.simulating = True
        self.view.set_status(N_("Simulating run #{n} ({order}) on the "
                                "simulated network…"), n=base.number,
                             order=i18n.order_name(request.order))
        self.view.update_buttons()
        self.worker.submit("simulate", request)

    def add_run(self, run: gui_state.Run) -> None:
        """A run made elsewhere (a simulated one: ``simulate``) joins the
        table and the comparison."""
        run.number = len(self.state.runs) + 1
        self.state.runs.append(run)
        self.view.show_runs()

    def clear_runs(self) -> None:
        self.state.runs.clear()
        self.view.show_runs()

    # -------------------------------------------------------- event loop
    def _schedule_poll(self) -> None:
        self._poll_due = time.monotonic() + POLL_MS / 1000
        self._poll_id = self.root.after(POLL_MS, self._poll)

    def _poll(self) -> None:
        with self.inbox.window_busy():
            self._drain()
            self.view.tick(time.monotonic())
        self._record_lag()
        self._schedule_poll()

    def _record_lag(self) -> None:
        """How long after it was due this poll ended, its own work
        included: a click that came when the poll was due waited that
        long."""
        late = time.monotonic() - self._poll_due
        self.loop_lag_ms.append(max(0.0, late) * 1000)
        if len(self.loop_lag_ms) > LAG_KEEP:
            del self.loop_lag_ms[:LAG_KEEP // 2]

    def lag_percentile(self, q: float = 99) -> float | None:
        """The ``q``-th percentile of the event-loop lag, in ms."""
        lags = sorted(self.loop_lag_ms)
        if not lags:
            return None
        return lags[min(len(lags) - 1, math.ceil(q / 100 * len(lags)) - 1)]

    def _drain(self) -> None:
        """Handle queued events and messages, for at most
        EVENT_BUDGET_S."""
        deadline = time.monotonic() + EVENT_BUDGET_S
        while time.monotonic() < deadline:
            try:
                _, item = self.inbox.get_nowait()
            except queue.Empty:
                return
            ev.dispatch(item, self.handlers)

    def on_callback_error(self, kind, exc, tb) -> None:
        if os.environ.get("P2PFACOM_DEBUG"):
            traceback.print_exception(kind, exc, tb)
        self.view.set_status(N_("Unexpected error: {text}"), "error",
                             text=f"{kind.__name__}: {cli.one_line(exc)}")

    @property
    def status_history(self):
        return self.view.status_history

    def status_text(self) -> str:
        return self.view.status_text

    # ------------------------------------------------------------- close
    def close(self) -> None:
        """Stop everything (the download keeps its .part) and destroy the
        window."""
        if self.closed:
            return
        self.closed = True
        if self._poll_id is not None:
            self.root.after_cancel(self._poll_id)
        self.worker.shutdown()
        for player in {self.state.player, self.state.preview_player} - {
                None}:
            threading.Thread(target=player.stop, daemon=True).start()
        self.worker.join(timeout=5.0)
        self.view.plot.close()
        self.root.destroy()


# ---------------------------------------------------------------- main
def display_available() -> bool:
    """True when a Tk window can be opened here."""
    if tk is None or not (os.environ.get("DISPLAY")
                          or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        root = tk.Tk()
    except tk.TclError:
        return False
    root.destroy()
    return True


def build_parser() -> cli.Parser:
    parser = cli.Parser(prog="gui.py", description=(
        "The P2P FACOM leecher's window. Without a display use the "
        "terminal leecher: python3 leecher.py get NAME."))
    parser.add_argument("--seeders", metavar="ADDR,ADDR",
                        help="seeders (default: seeders.txt or "
                             "127.0.0.1-3:9000)")
    parser.add_argument("--lang", choices=i18n.LANGUAGES,
                        help="language (default: from LANG/LC_ALL)")
    parser.add_argument("-o", "--output", default="downloads",
                        help="download folder (default downloads/)")
    parser.add_argument("--song", metavar="NAME",
                        help="search and select this song on open")
    parser.add_argument("--order", "--method", dest="order",
                        choices=list(leecher.p.ORDER_NAMES),
                        help="sending order (default: each seeder's own)")
    parser.add_argument("--prebuffer", type=cli.non_negative, default=2.0,
                        metavar="S", help="seconds of audio before playing")
    parser.add_argument("--loss", type=cli.probability, default=0.0,
                        metavar="P",
                        help="drop received datagrams on purpose")
    parser.add_argument("--rng-seed", type=int, metavar="N",
                        help="repeatable --loss")
    parser.add_argument("--no-share", dest="share", action="store_false",
                        help="serve nothing to the song's other listeners "
                             "(the window's switch starts off)")
    parser.add_argument("--autostart", action="store_true",
                        help="download --song by itself as soon as the "
                             "seeders list it, preview on, with a note "
                             "saying what to try next (the demo)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.autostart and not args.song:
        parser.error("--autostart needs --song NAME")
    i18n.setup(args.lang)
    return cli.run_main("gui", lambda: run(args))


def make_output_folder(path: str) -> None:
    """Create the download folder; cli.UsageError (one line) if it cannot
    be, as when ``path`` is a file."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise cli.UsageError(i18n.text(N_("-o {path} is not a folder"),
                                       path=path))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise cli.UsageError(i18n.text(N_("cannot create {path}: {text}"),
                                       path=path,
                                       text=exc.strerror or exc)) from None


NO_DISPLAY = N_("gui: no display available; use the terminal leecher "
                "instead: python3 leecher.py get NAME")
NO_TK = N_("gui: Tkinter is missing (install python3-tk, or run "
           "./setup.sh install); terminal leecher: python3 leecher.py get "
           "NAME")


def run(args) -> int:
    seeders = leecher.read_seeders(args.seeders)
    if tk is None:
        print(i18n._(NO_TK), file=sys.stderr)
        return cli.EXIT_USAGE
    try:
        if not (os.environ.get("DISPLAY") or
                os.environ.get("WAYLAND_DISPLAY")):
            raise tk.TclError("no DISPLAY")
        root = tk.Tk(className="p2p-facom")
    except tk.TclError:
        print(i18n._(NO_DISPLAY), file=sys.stderr)
        return cli.EXIT_USAGE
    try:
        make_output_folder(args.output)
        app = App(root, Settings(seeders, i18n.language(), args.output,
                                 args.song, args.order,
                                 prebuffer=args.prebuffer, loss=args.loss,
                                 rng_seed=args.rng_seed,
                                 autostart=args.autostart,
                                 share=args.share))
    except ImportError as exc:  # matplotlib: set-up not (fully) run
        root.destroy()
        raise cli.UsageError(f"{exc.name or exc} is missing: run "
                             f"./setup.sh install") from None
    except cli.UsageError:
        root.destroy()
        raise
    try:
        root.mainloop()
    finally:
        app.close()
    return cli.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
