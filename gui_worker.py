"""The window's one worker thread: PING, SEARCH and the download.

Jobs come from the Tk thread (``Worker.submit``); what happens goes back
on one queue that the Tk thread drains with ``after``: the download's own
typed events (events.py) and the worker's messages below.  None of them
is a live object of the engine: the window gets copies (rows, songs,
final statistics), so Tk never reads state another thread is changing.

Sharing: a download serves the song's other listeners what it verified
while the switch "Share with other listeners" is on (its changes come on
a queue of their own, taken at every turn of the download's loop), and
once complete it goes on serving while the window is idle (``_share``).
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field

import cli
import events as ev
import gui_state
import leecher
import player as audio
import protocol as p
import share
from i18n import N_

GIVE_WAY_MAX_S = 0.5    # the download waits for the Tk thread at most this
RECHECK_TRIES = 2       # PINGs before a download: a dead seeder costs 0.6 s
# Jobs that need no socket: they run while a complete song is shared
# (between two turns of its loop).  Any other job ends the sharing first.
LIGHT_JOBS = ("stats", "play", "simulate")


# ------------------------------------------------------------- messages
@dataclass(frozen=True)
class PeerRow:
    """What the seeders table shows of one seeder."""

    address: str
    alive: bool
    rtt_ms: float | None
    order: str | None  # the seeder's own order: sequential, random, ...


@dataclass(frozen=True)
class PeerAnswered:
    """One seeder answered PING (shown at once, before the others)."""

    row: PeerRow


@dataclass(frozen=True)
class PeersChecked:
    """Every seeder asked: alive or not."""

    rows: tuple


@dataclass(frozen=True)
class SongsFound:
    query: str
    songs: tuple  # leecher.Song


@dataclass(frozen=True)
class Notice:
    message: str  # an N_() msgid
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class JobFailed:
    """A job could not be done: ``message`` (an N_() msgid) or, for a
    download, ``problem`` (events.Problem) with ``params``."""

    job: str
    message: str | None = None
    params: dict = field(default_factory=dict)
    problem: ev.Problem | None = None


@dataclass(frozen=True)
class AlreadyHere:
    path: str
    info: object  # protocol.FileInfo


@dataclass(frozen=True)
class DownloadStarted:
    name: str
    info: object           # protocol.FileInfo
    part_path: str
    order: str | None
    seeder_orders: tuple   # (address, order) of the seeders with the song
    player: object         # player.Player fed by the download, or None
    seeders: tuple = ()    # every seeder of the song: other sources are peers


@dataclass(frozen=True)
class DownloadEnded:
    """The download is over: ``path`` verified, or ``problem``."""

    path: str | None
    stats: dict  # a copy, without the timeline (the window has the events)
    problem: ev.Problem | None = None
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StatsUpdated:
    """The last download's statistics once its preview has played."""

    stats: dict


@dataclass(frozen=True)
class PlayerStarted:
    player: object
    name: str


@dataclass(frozen=True)
class Saved:
    path: str


@dataclass(frozen=True)
class Simulated:
    """A simulated run is ready (``gui_state.simulated_run``)."""

    run: object  # gui_state.Run, made and no longer touched by the worker


MESSAGE_TYPES = (PeerAnswered, PeersChecked, SongsFound, Notice, JobFailed,
                 AlreadyHere, DownloadStarted, DownloadEnded, StatsUpdated,
                 PlayerStarted, Saved, Simulated)


class GuiError(Exception):
    """A failure the window explains with one of its own msgids."""

    def __init__(self, message: str, **params):
        super().__init__(message)
        self.message = message
        self.params = params


# --------------------------------------------------------------- queue
class Inbox(queue.Queue):
    """The Tk thread's queue.  Each item is kept with when it was put.
    While the Tk thread works (``window_busy``), a put from the download
    waits (GIVE_WAY_MAX_S at most): else the Tk thread shares the GIL with
    the download's loop, its work takes 3-5 times longer, and every Tk
    call, which lets the GIL go, waits up to a switch interval to get it
    back."""

    def __init__(self):
        super().__init__()
        self.window_idle = threading.Event()
        self.window_idle.set()
        self.download_thread = None

    def put(self, item, block=True, timeout=None):
        super().put((time.monotonic(), item), block, timeout)
        if threading.current_thread() is self.download_thread:
            self.window_idle.wait(GIVE_WAY_MAX_S)

    @contextlib.contextmanager
    def window_busy(self):
        self.window_idle.clear()
        try:
            yield
        finally:
            self.window_idle.set()


class WindowEndpoint(leecher.Endpoint):
    """The worker's socket.  Before each receive, that is at every turn
    of the download's loop, it waits while the Tk thread works (see
    ``Inbox``): the driver puts its events in bursts a few times a second,
    and in between it would share the GIL with every poll."""

    def __init__(self, inbox: Inbox, loss: float, seed: int | None,
                 each_turn=lambda: None):
        super().__init__(loss, seed)
        self.inbox = inbox
        self.each_turn = each_turn  # the worker's, on its own thread

    def receive_raw(self, timeout: float):
        self.inbox.window_idle.wait(GIVE_WAY_MAX_S)
        self.each_turn()
        return super().receive_raw(timeout)


# ------------------------------------------------------------- pinging
def peer_row(peer) -> PeerRow:
    return PeerRow(cli.format_address(peer.addr), peer.alive,
                   None if peer.rtt is None else 1000 * peer.rtt,
                   p.order_name(p.Order(peer.order)) if peer.alive else None)


# -------------------------------------------------------------- worker
@dataclass
class WorkerSettings:
    loss: float = 0.0            # received datagrams dropped on purpose
    rng_seed: int | None = None  # makes that loss repeatable
    sink: object = None          # a player.Sink; None: player.choose_sink


class Worker(threading.Thread):
    """The one thread that talks to seeders: jobs come from the Tk thread
    (``submit``), results go back as messages on ``inbox``."""

    def __init__(self, inbox: Inbox, settings: WorkerSettings):
        super().__init__(name="leecher-worker", daemon=True)
        self.inbox = inbox
        self.jobs: queue.Queue = queue.Queue()
        self.settings = settings
        self.sink = settings.sink
        self.endpoint = None
        self.peers: dict = {}
        self.download = None
        self.completed = None   # the last download that completed
        self.player = None
        self.closing = False
        self.stop_requested = False
        # The switch "Share with other listeners": the Tk thread puts each
        # change in ``switches``; this thread takes them at every turn of
        # the download's loop (``take_switches``).
        self.switches: queue.Queue = queue.Queue()
        self.sharing = True  # as this thread last heard it
        # The complete download that still serves the song (``_share``);
        # set and cleared by this thread, stopped by any.
        self.seeding = None
        # The last download's complete pcap (a temporary file, see
        # _captured): "Save capture" copies it.  Set by this thread only.
        self.capture_path: str | None = None

    # -------------------------------------------------- Tk thread side
    def submit(self, job: str, *args) -> None:
        self.jobs.put((job, args))
        if job not in LIGHT_JOBS:
            self.end_sharing()  # the job needs the socket

    def end_sharing(self) -> None:
        """A complete song stops being served (the socket is wanted)."""
        seeding = self.seeding
        if seeding is not None:
            seeding.stop()

    def set_sharing(self, on: bool) -> None:
        """The switch changed: the running download, if any, shares or
        stops sharing at its next turn; the next download starts so."""
        self.switches.put(on)

    def stop_download(self) -> None:
        self.stop_requested = True
        download = self.download
        if download is not None:
            download.stop()

    def shutdown(self) -> None:
        """Stop the download (its .part is kept) and end the thread."""
        self.closing = True
        while True:
            try:
                self.jobs.get_nowait()
            except queue.Empty:
                break
        self.jobs.put(None)
        self.stop_download()

    # ----------------------------------------------------- own thread
    def post(self, message) -> None:
        self.inbox.put(message)

    def run(self) -> None:
        self.inbox.download_thread = self
        try:
            while not self.closing:
                job = self.jobs.get()
                if job is None or self.closing:
                    break
                self._run_job(*job)
        finally:
            self._clean_up()

    def _run_job(self, job: str, args: tuple) -> None:
        try:
            getattr(self, "do_" + job)(*args)
        except GuiError as exc:
            self.post(JobFailed(job, exc.message, exc.params))
        except (cli.RunError, cli.UsageError, audio.PlayerError,
                OSError) as exc:
            self.post(JobFailed(job, N_("Error: {text}"),
                                {"text": cli.one_line(exc)}))
        except Exception as exc:  # a bug: one line, never a dialog
            if os.environ.get("P2PFACOM_DEBUG"):
                traceback.print_exc()
            self.post(JobFailed(job, N_("Unexpected error: {text}"), {
                "text": f"{type(exc).__name__}: {cli.one_line(exc)}"}))

    def _clean_up(self) -> None:
        if self.player is not None:
            self.player.stop()
        if self.endpoint is not None:
            self.endpoint.close()
        remove_quietly(self.capture_path)
        self.capture_path = None

    def _endpoint(self) -> leecher.Endpoint:
        if self.endpoint is None:
            self.endpoint = WindowEndpoint(self.inbox, self.settings.loss,
                                           self.settings.rng_seed,
                                           self._each_turn)
        return self.endpoint

    def _each_turn(self) -> None:
        """At every turn of a download's loop, or of a shared song's."""
        self.take_switches()
        if self.seeding is not None:
            self._run_light_jobs()

    def _run_light_jobs(self) -> None:
        """While a complete song is shared, the jobs that need no socket
        run between two turns; the first other job waits (it ended the
        sharing: ``submit``), and so do all after it, in order."""
        while True:
            with self.jobs.mutex:
                head = self.jobs.queue[0] if self.jobs.queue else None
            if head is None or head[0] not in LIGHT_JOBS:
                return
            self._run_job(*self.jobs.get_nowait())

    def take_switches(self) -> None:
        """The switch's changes since the last turn, to the download that
        runs (``Download.set_sharing``); on this thread only."""
        while True:
            try:
                on = self.switches.get_nowait()
            except queue.Empty:
                return
            self.sharing = on
            if self.download is not None:
                self.download.set_sharing(on)

    def _ping(self, addrs, tries: int = leecher.PING_TRIES) -> dict:
        def answered(peer):
            self.post(PeerAnswered(peer_row(peer)))
        return leecher.ping(self._endpoint(), addrs, leecher.PING_TIMEOUT,
                            tries, on_answer=answered,
                            stop=lambda: self.closing)

    def do_refresh(self, addrs: list, query: str) -> None:
        """PING every seeder; search the first that answer at once, then
        those that answer later (one dead address delays nobody)."""
        self.peers = self._ping(addrs, tries=1)
        if any(peer.alive for peer in self.peers.values()):
            self.do_search(query)
        late = [a for a, peer in self.peers.items() if not peer.alive]
        if late:
            more = self._ping(late, tries=leecher.PING_TRIES - 1)
            self.peers.update(more)
            if any(peer.alive for peer in more.values()):
                self.do_search(query)
        self.post(PeersChecked(tuple(peer_row(peer)
                                     for peer in self.peers.values())))

    def do_search(self, query: str) -> None:
        alive = [peer for peer in self.peers.values() if peer.alive]
        if not alive:
            raise GuiError(N_("No seeder is alive: start one (python3 "
                              "seeder.py -i {ip} -p {port}) and press "
                              "Refresh."), **self._hint())
        songs = leecher.search(self._endpoint(), alive, "")
        self.post(SongsFound(query, tuple(songs)))

    def _hint(self) -> dict:
        """The first address typed, for "start one: ..." hints."""
        first = next(iter(self.peers), ("127.0.0.1", 9000))
        return {"ip": first[0], "port": first[1]}

    def do_download(self, song, order, preview, prebuffer, out_dir,
                    again=False, share_on=True):
        self.sharing = share_on  # later switches come after it
        self._recheck(song)
        os.makedirs(out_dir, exist_ok=True)
        existing = None if again else self._verified_copy(out_dir, song)
        if existing:
            self.post(AlreadyHere(existing, song.info))
            return
        self.take_switches()
        download = leecher.Download(
            self._endpoint(), song, self.peers, out_dir,
            leecher.Options(order=order, fresh=again), events=self.inbox,
            sharing=share.Sharing(share=self.sharing))
        self.download = download
        try:
            if self.closing or self.stop_requested:  # Stop came first
                self.post(DownloadEnded(None, {}, ev.Problem.STOPPED))
                return
            player = self._preview(download, prebuffer) if preview else None
            self.post(DownloadStarted(
                download.name, song.info, download.part_path, order,
                tuple((cli.format_address(a), peer_row(self.peers[a]).order)
                      for a in song.sources if a in self.peers
                      and self.peers[a].alive), player,
                tuple(cli.format_address(a) for a in song.sources)))
            self._run(download, player)
        finally:
            self.download = None  # the switch goes to the next one

    def _recheck(self, song) -> None:
        """PING the song's seeders again: a seeder that died since the
        list was made costs 0.6 s here, not a long wait in the download."""
        fresh = self._ping(song.sources, tries=RECHECK_TRIES)
        self.peers.update(fresh)
        self.post(PeersChecked(tuple(peer_row(peer)
                                     for peer in self.peers.values())))
        if not any(peer.alive for peer in fresh.values()):
            raise GuiError(N_("No seeder with this song is alive "
                              "({addresses}): start one (python3 seeder.py "
                              "-i {ip} -p "
                              "{port}) and press Refresh."),
                           addresses=", ".join(cli.format_address(a)
                                               for a in song.sources),
                           ip=song.sources[0][0] if song.sources else "?",
                           port=song.sources[0][1] if song.sources else "?")

    def _run(self, download, player) -> None:
        try:
            path = self._captured(download.run)
        except ev.DownloadFailed as exc:
            if player is not None:
                player.stop()  # its input will never end
            problem, params = exc.problem, dict(exc.params)
            if self.stop_requested:
                problem, params = ev.Problem.STOPPED, {}
            params.setdefault("path", download.part_path)
            self.post(DownloadEnded(None, {}, problem, params))
            return
        except BaseException:
            if player is not None:
                player.stop()
            raise
        self.completed = download
        if download.sharing_on:
            self.seeding = download  # before the window may submit a job
        self.inbox.window_idle.wait(GIVE_WAY_MAX_S)  # see do_stats
        self.post(DownloadEnded(path, download.stats(timeline=False)))
        self._share(download)

    def _share(self, download) -> None:
        """The window shares while it is open: the complete song is served
        to the other listeners until the switch goes off, a job needs the
        socket, or the window closes (all of them stop ``download``)."""
        if self.seeding is not download:
            return
        try:
            download.seed(math.inf)
        finally:
            self.seeding = None

    def _captured(self, run):
        """``run()`` with every datagram in a fresh temporary capture,
        which replaces the last one once complete: before the window
        hears that the download ended.  No capture (no room in the
        temporary folder, say) does not stop the download."""
        import pcap
        endpoint = self._endpoint()
        try:
            handle, path = tempfile.mkstemp(prefix="p2p-facom-",
                                            suffix=".pcap")
            os.close(handle)
        except OSError:
            return run()
        try:
            endpoint.open_capture(path)
        except pcap.CaptureError:
            remove_quietly(path)
            return run()
        try:
            return run()
        finally:
            capture, endpoint.capture = endpoint.capture, None
            capture.close()
            remove_quietly(self.capture_path)
            self.capture_path = path

    @staticmethod
    def _verified_copy(out_dir: str, song) -> str | None:
        """The song's file in ``out_dir`` when it is there with the right
        SHA-256.  A file that differs is downloaded again and replaced."""
        try:
            return leecher.check_output(out_dir, song, force=False)
        except cli.UsageError:
            return None

    def _preview(self, download, prebuffer: float):
        try:
            audio.check_ffmpeg()
            sink = self._sink()
        except audio.PlayerError as exc:
            self.post(Notice(N_("No preview: {text}"),
                             {"text": cli.one_line(exc)}))
            return None
        self._stop_player()
        self.player = audio.Player(sink, prebuffer,
                                   on_played=download.record_played)
        download.attach_player(self.player)
        self.player.start()
        return self.player

    def _sink(self):
        if self.sink is None:
            self.sink = audio.choose_sink(notice=lambda line: None)
            self.post(Notice(
                N_("Audio: no sound card, playing silently in real time.")
                if isinstance(self.sink, audio.NullSink)
                else N_("Audio: sound card.")))
        return self.sink

    def _stop_player(self) -> None:
        if self.player is not None:
            self.player.stop()

    def do_play(self, path: str) -> None:
        audio.check_ffmpeg()
        sink = self._sink()
        self._stop_player()
        self.player = audio.Player(sink, prebuffer_s=0.0)
        self.player.play_file(path)
        self.post(PlayerStarted(self.player, os.path.basename(path)))

    def do_stats(self) -> None:
        """The last completed download's statistics again (its preview
        made its first sound after the download ended: start-up and
        continuity are known only now).  Computed between two polls of
        the window: it is tens of ms of Python for a long song."""
        if self.completed is not None:
            self.inbox.window_idle.wait(GIVE_WAY_MAX_S)
            self.post(StatsUpdated(self.completed.stats(timeline=False)))

    def do_simulate(self, request) -> None:
        """A simulated run (``gui_state.SimRequest``), here and not on the
        Tk thread: it is seconds of Python for a song of minutes."""
        self.post(Simulated(gui_state.simulated_run(request)))


def remove_quietly(path: str | None) -> None:
    """Remove a temporary file of ours; one already gone is fine."""
    if path:
        with contextlib.suppress(OSError):
            os.unlink(path)
