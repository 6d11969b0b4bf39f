"""P2P FACOM leecher window: find seeders, search, download and watch.

    python3 gui.py [--seeders ADDR,ADDR] [--lang pt|en] [-o DIR]
                   [--song NAME] [--method ORDER] [--prebuffer S]
                   [--loss P [--rng-seed N]]
    python3 p2p_facom.py -t leecher            # the same window

Threads: the Tk thread owns every widget.  One worker thread (``Worker``)
does all the networking: PING, SEARCH and the download's loop
(``leecher.Download.run``).  The player (player.py) decodes and plays on
threads of its own.  None of them touches Tk: they put messages on one
queue (``App.inbox``), which the Tk thread drains every ``POLL_MS`` with
``after``.  So the window never waits for the network or for ffmpeg.

The live plot shows, per chunk, when it was sent, received and played (x:
seconds since the request, y: chunk index); NACKed chunks and chunks that
arrived as a retransmission are marked.  Its data lines are redrawn at
most every ``PLOT_EVERY_S``, on a background (axes, ticks, legend) that a
thread of its own renders (``BackgroundPainter``).  While the Tk thread
polls, the download's loop waits (``Worker.giving_way``).

matplotlib is imported when the window is built, not with this module:
``import gui`` is cheap and needs no display.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import math
import os
import queue
import re
import sys
import threading
import time
import traceback
from dataclasses import dataclass, replace

import cli
import leecher
import player as audio
import protocol as p

try:
    import tkinter as tk
    import tkinter.font as tkfont
    from tkinter import filedialog, ttk
except ImportError:  # python3-tk is not installed
    tk = None

POLL_MS = 50            # how often the Tk thread drains the inbox
EVENT_BUDGET_S = 0.015  # most time one poll spends on messages
SWITCH_INTERVAL_S = 0.001  # see App.__init__
GIVE_WAY_MAX_S = 0.5    # the download waits for the Tk thread at most this
PLOT_EVERY_S = 0.25     # the plot is redrawn at most this often
# Points per series on the screen (the axes are ~600 px wide).  Not more:
# numpy lets the GIL go in loops over more than 500 items, and each time
# the Tk thread then waits to get it back from the busy download thread.
LIVE_POINTS = 500
SAVE_POINTS = 20000     # per series in a saved PNG
X_START_S = 2.0         # the x axis's first limit; it doubles as needed
SETTLE_S = 1.0          # no new data this long: x fits the data again
PLOT_SIZE = (6.6, 4.0)  # inches, until the window gives it its size
PLOT_DPI = 100
LAG_KEEP = 100_000      # event-loop lag samples kept for benchmarks
WINDOW_SIZE = "1100x718"  # + the menu bar: about 1100x750 in all
FONT_SIZE = 11
HEADING_PAD_PX = 14     # a Treeview heading's padding and borders, + a margin
METHODS = (None, "sequential", "random", "semi-random")
ORDER_KEYS = {None: "order_own", "sequential": "order_sequential",
              "random": "order_random", "semi-random": "order_semi"}
STAT_COLUMNS = (  # "stalls" shows stall_s too
    ("size", "chunks", "chunks_received", "duplicates",
     "datagrams_dropped_by_leecher", "nacks_sent", "chunks_retransmitted"),
    ("elapsed_s", "goodput_Bps", "startup_s", "stalls", "continuity",
     "played_s", "seeders_gone"),
)
PLAYER_ACTIVE = ("waiting", "playing", "stalled", "paused")

# ------------------------------------------------------------- strings
STRINGS = {
    "en": {
        "title": "P2P FACOM — leecher",
        "menu_file": "File",
        "menu_language": "Language",
        "menu_save_png": "Save plot (PNG)…",
        "menu_save_json": "Save statistics (JSON)…",
        "menu_save_csv": "Save statistics (CSV)…",
        "menu_quit": "Quit",
        "seeders": "Seeders",
        "addresses": "Addresses:",
        "refresh": "Refresh",
        "col_address": "Address",
        "col_state": "State",
        "col_rtt": "RTT",
        "col_order": "Order",
        "alive": "alive",
        "no_answer": "no answer",
        "gone": "gone",
        "songs": "Songs",
        "search": "Search",
        "col_name": "Name",
        "col_size": "Size",
        "col_duration": "Duration",
        "col_sources": "Seeders",
        "download": "Download",
        "order": "Sending order:",
        "order_own": "each seeder's own",
        "order_sequential": "sequential",
        "order_random": "random",
        "order_semi": "semi-random",
        "preview": "Preview while downloading",
        "prebuffer": "Prebuffer (s):",
        "start": "Download",
        "stop_download": "Stop",
        "no_download": "No download yet.",
        "progress": "{percent} % · {got}/{total} chunks · "
                    "NACKs {nacks} · retransmitted {rtx}",
        "save": "Save:",
        "save_png": "Plot PNG",
        "save_json": "Stats JSON",
        "save_csv": "Stats CSV",
        "plot": "Chunks over time",
        "x_label": "time since the request (s)",
        "y_label": "chunk index",
        "series_sent": "sent",
        "series_received": "received",
        "series_played": "played",
        "series_rtx": "retransmitted",
        "series_nack": "NACK",
        "player": "Player",
        "play": "▶ Play",
        "pause": "❚❚ Pause",
        "stop": "■ Stop",
        "position": "{pos} / {total}  ·  {state}",
        "state_none": "nothing playing",
        "state_waiting": "buffering",
        "state_playing": "playing",
        "state_stalled": "stalled: waiting for data",
        "state_paused": "paused",
        "state_stopped": "stopped",
        "state_finished": "finished",
        "state_failed": "failed",
        "statistics": "Statistics",
        "statistics_of": "Statistics — {name}",
        "stat_size": "Size",
        "stat_chunks": "Chunks",
        "stat_chunks_received": "Received",
        "stat_duplicates": "Duplicates",
        "stat_datagrams_dropped_by_leecher": "Dropped on purpose",
        "stat_nacks_sent": "NACKs sent",
        "stat_chunks_retransmitted": "Retransmitted",
        "stat_elapsed_s": "Elapsed",
        "stat_goodput_Bps": "Goodput",
        "stat_seeders_gone": "Seeders gone",
        "stat_startup_s": "Start-up delay",
        "stat_stalls": "Stalls (time)",
        "stat_continuity": "Continuity",
        "stat_played_s": "Played",
        "stat_per_seeder": "Chunks per seeder",
        "ready": "Ready.",
        "pinging": "Checking {n} seeder(s)…",
        "pinged": "{alive} of {n} seeder(s) alive.",
        "no_seeder_alive": "No seeder is alive: start them (python3 "
                           "seeder.py -i 127.0.0.1 -p 9000) and press "
                           "Refresh.",
        "bad_address": "Bad seeder address: {address} (use IP:PORT, "
                       "PORT 1-65535, e.g. 127.0.0.1:9000).",
        "searching": "Searching for “{query}”…",
        "searching_all": "Listing every song…",
        "found": "{n} song(s) found.",
        "none_found": "No song matches “{query}”.",
        "pick_song": "Pick a song in the list first.",
        "busy": "A download is already running.",
        "bad_prebuffer": "Prebuffer must be a number of seconds (0-30).",
        "downloading": "Downloading {name}…",
        "requested": "Asked {addr} for {n} chunks.",
        "nacked": "NACK: {n} lost chunk(s) asked for again ({chunks}).",
        "seeder_gone": "{addr} stopped answering: its chunks go to the "
                       "other seeders.",
        "resumed": "Resuming: {n} chunks were already here.",
        "done": "Done: {path} saved and verified (SHA-256).",
        "stopped": "Download stopped; the partial file is kept "
                   "({path}): Download again resumes it.",
        "failed": "Download failed: {text}",
        "no_source": "No seeder with this song is alive: press Refresh.",
        "sink_null": "Audio: no sound card, playing silently in real time.",
        "sink_card": "Audio: sound card.",
        "preview_off": "No preview: {text}",
        "playing_file": "Playing {name}.",
        "play_failed": "Cannot play {name}: {text}",
        "already_here": "{path} is already here and verified (SHA-256): "
                        "Play plays it.",
        "saved": "Saved {path}.",
        "save_failed": "Cannot save {path}: {text}",
        "nothing_to_save": "Nothing to save yet: download a song first.",
        "filetype_png": "PNG image",
        "filetype_json": "JSON file",
        "filetype_csv": "CSV file",
        "filetype_all": "All files",
        "error": "Error: {text}",
        "unexpected": "Unexpected error: {text}",
        "no_display": "gui: no display available; use the terminal "
                      "leecher instead: python3 leecher.py get NAME",
        "no_tk": "gui: Tkinter is missing (install python3-tk, or run "
                 "./setup.sh install); terminal leecher: python3 "
                 "leecher.py get NAME",
        "not_a_folder": "-o {path} is not a folder",
        "cannot_create": "cannot create {path}: {text}",
    },
    "pt": {
        "title": "P2P FACOM — leecher",
        "menu_file": "Arquivo",
        "menu_language": "Idioma",
        "menu_save_png": "Salvar gráfico (PNG)…",
        "menu_save_json": "Salvar estatísticas (JSON)…",
        "menu_save_csv": "Salvar estatísticas (CSV)…",
        "menu_quit": "Sair",
        "seeders": "Seeders",
        "addresses": "Endereços:",
        "refresh": "Atualizar",
        "col_address": "Endereço",
        "col_state": "Estado",
        "col_rtt": "RTT",
        "col_order": "Ordem",
        "alive": "ativo",
        "no_answer": "sem resposta",
        "gone": "perdido",
        "songs": "Músicas",
        "search": "Buscar",
        "col_name": "Nome",
        "col_size": "Tamanho",
        "col_duration": "Duração",
        "col_sources": "Seeders",
        "download": "Download",
        "order": "Ordem de envio:",
        "order_own": "a de cada seeder",
        "order_sequential": "sequencial",
        "order_random": "aleatória",
        "order_semi": "semialeatória",
        "preview": "Tocar enquanto baixa",
        "prebuffer": "Pré-buffer (s):",
        "start": "Baixar",
        "stop_download": "Parar",
        "no_download": "Nenhum download ainda.",
        "progress": "{percent} % · {got}/{total} pedaços · "
                    "NACKs {nacks} · retransmitidos {rtx}",
        "save": "Salvar:",
        "save_png": "Gráfico PNG",
        "save_json": "Estat. JSON",
        "save_csv": "Estat. CSV",
        "plot": "Pedaços (chunks) ao longo do tempo",
        "x_label": "tempo desde o pedido (s)",
        "y_label": "índice do pedaço",
        "series_sent": "enviado",
        "series_received": "recebido",
        "series_played": "tocado",
        "series_rtx": "retransmitido",
        "series_nack": "NACK",
        "player": "Player",
        "play": "▶ Tocar",
        "pause": "❚❚ Pausar",
        "stop": "■ Parar",
        "position": "{pos} / {total}  ·  {state}",
        "state_none": "nada tocando",
        "state_waiting": "carregando o buffer",
        "state_playing": "tocando",
        "state_stalled": "travado: esperando dados",
        "state_paused": "pausado",
        "state_stopped": "parado",
        "state_finished": "terminou",
        "state_failed": "falhou",
        "statistics": "Estatísticas",
        "statistics_of": "Estatísticas — {name}",
        "stat_size": "Tamanho",
        "stat_chunks": "Pedaços",
        "stat_chunks_received": "Recebidos",
        "stat_duplicates": "Duplicados",
        "stat_datagrams_dropped_by_leecher": "Descartados de propósito",
        "stat_nacks_sent": "NACKs enviados",
        "stat_chunks_retransmitted": "Retransmitidos",
        "stat_elapsed_s": "Tempo total",
        "stat_goodput_Bps": "Vazão útil",
        "stat_seeders_gone": "Seeders perdidos",
        "stat_startup_s": "Atraso inicial",
        "stat_stalls": "Travamentos (tempo)",
        "stat_continuity": "Continuidade",
        "stat_played_s": "Tocado",
        "stat_per_seeder": "Pedaços por seeder",
        "ready": "Pronto.",
        "pinging": "Verificando {n} seeder(s)…",
        "pinged": "{alive} de {n} seeder(s) ativo(s).",
        "no_seeder_alive": "Nenhum seeder ativo: inicie-os (python3 "
                           "seeder.py -i 127.0.0.1 -p 9000) e clique em "
                           "Atualizar.",
        "bad_address": "Endereço de seeder inválido: {address} (use "
                       "IP:PORTA, PORTA de 1 a 65535, p. ex. "
                       "127.0.0.1:9000).",
        "searching": "Buscando “{query}”…",
        "searching_all": "Listando todas as músicas…",
        "found": "{n} música(s) encontrada(s).",
        "none_found": "Nenhuma música corresponde a “{query}”.",
        "pick_song": "Escolha antes uma música da lista.",
        "busy": "Já há um download em andamento.",
        "bad_prebuffer": "O pré-buffer deve ser um número de segundos "
                         "(0-30).",
        "downloading": "Baixando {name}…",
        "requested": "Pedidos {n} pedaços a {addr}.",
        "nacked": "NACK: {n} pedaço(s) perdido(s) pedido(s) de novo "
                  "({chunks}).",
        "seeder_gone": "{addr} parou de responder: seus pedaços vão para "
                       "os outros seeders.",
        "resumed": "Retomando: {n} pedaços já estavam aqui.",
        "done": "Pronto: {path} salvo e verificado (SHA-256).",
        "stopped": "Download parado; o arquivo parcial foi mantido "
                   "({path}): Baixar de novo o retoma.",
        "failed": "O download falhou: {text}",
        "no_source": "Nenhum seeder com esta música está ativo: clique "
                     "em Atualizar.",
        "sink_null": "Áudio: sem placa de som, tocando em silêncio em "
                     "tempo real.",
        "sink_card": "Áudio: placa de som.",
        "preview_off": "Sem prévia: {text}",
        "playing_file": "Tocando {name}.",
        "play_failed": "Não foi possível tocar {name}: {text}",
        "already_here": "{path} já está aqui e verificado (SHA-256): "
                        "Tocar o toca.",
        "saved": "Salvo: {path}.",
        "save_failed": "Não foi possível salvar {path}: {text}",
        "nothing_to_save": "Nada a salvar ainda: baixe uma música antes.",
        "filetype_png": "Imagem PNG",
        "filetype_json": "Arquivo JSON",
        "filetype_csv": "Arquivo CSV",
        "filetype_all": "Todos os arquivos",
        "error": "Erro: {text}",
        "unexpected": "Erro inesperado: {text}",
        "no_display": "gui: nenhuma tela disponível; use o leecher de "
                      "terminal: python3 leecher.py get NOME",
        "no_tk": "gui: falta o Tkinter (instale python3-tk, ou rode "
                 "./setup.sh install); leecher de terminal: python3 "
                 "leecher.py get NOME",
        "not_a_folder": "-o {path} não é uma pasta",
        "cannot_create": "não foi possível criar {path}: {text}",
    },
}
LANGUAGE_NAMES = (("pt", "Português (Brasil)"), ("en", "English"))
# Tk's own dialogs (the file dialog) take their language from msgcat.
TK_LOCALES = {"pt": "pt_br", "en": "en"}
SAVE_TYPES = {".png": "filetype_png", ".json": "filetype_json",
              ".csv": "filetype_csv"}


def detect_language(environ=None) -> str:
    """pt when the locale (LC_ALL, else LC_MESSAGES, else LANG) is pt*."""
    environ = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            return "pt" if value.lower().startswith("pt") else "en"
    return "en"


def text(lang: str, key: str, **params) -> str:
    template = STRINGS[lang].get(key, STRINGS["en"][key])
    return template.format(**params) if params else template


# ---------------------------------------------------------- formatting
def fmt_decimal(value: float, digits: int, lang: str) -> str:
    shown = f"{value:.{digits}f}"
    return shown.replace(".", ",") if lang == "pt" else shown


def fmt_seconds(value, lang: str) -> str:
    return "—" if value is None else fmt_decimal(value, 2, lang) + " s"


def fmt_size(size, lang: str) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            digits = 0 if unit == "B" else 1
            return f"{fmt_decimal(size, digits, lang)} {unit}"
        size /= 1000
    return ""


def fmt_duration(ms: int) -> str:
    if not ms:
        return "?"
    seconds = round(ms / 1000)
    return f"{seconds // 60}:{seconds % 60:02d}"


def stat_text(key: str, stats: dict, lang: str) -> str:
    """One statistic as the panel shows it ("—" when unknown)."""
    value = stats.get(key)
    if key == "per_seeder":
        return per_seeder_text(value or {})
    if key == "seeders_gone":
        return ", ".join(value) if value else "—"
    if value is None:
        return "—"
    if key == "size":
        return fmt_size(value, lang)
    if key == "goodput_Bps":
        return fmt_size(value, lang) + "/s"
    if key.endswith("_s"):
        return fmt_seconds(value, lang)
    if key == "continuity":
        return fmt_decimal(100 * value, 1, lang) + " %"
    if key == "stalls" and stats.get("stall_s") is not None:
        return f"{value} ({fmt_seconds(stats['stall_s'], lang)})"
    return str(value)


def per_seeder_text(counts: dict) -> str:
    """'127.0.0.1: 24  ·  127.0.0.2: 23' (ports only when they differ)."""
    ports = {addr.rpartition(":")[2] for addr in counts}
    return "  ·  ".join(
        f"{addr.rpartition(':')[0] if len(ports) == 1 else addr}: {count}"
        for addr, count in sorted(counts.items())) or "—"


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def parse_addresses(entry: str) -> list[tuple[str, int]]:
    """'127.0.0.1:9000, 127.0.0.2' -> addresses; GuiError naming the first
    bad one (cli's message would repeat the window's "Bad address")."""
    addrs = []
    for part in re.split(r"[,;\s]+", entry):
        if part:
            try:
                addrs.append(cli.parse_address(part))
            except cli.UsageError:
                raise GuiError("bad_address", address=part) from None
    return addrs


def write_csv(path: str, stats: dict, rows) -> None:
    """The statistics (one per line), a blank line, then the per-chunk
    timeline: one file a spreadsheet opens."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["statistic", "value"])
        for key, value in stats.items():
            if isinstance(value, dict):
                for name, inner in sorted(value.items()):
                    out.writerow([f"{key}.{name}", inner])
            elif isinstance(value, list):
                out.writerow([key, " ".join(map(str, value))])
            else:
                out.writerow([key, "" if value is None else value])
        out.writerow([])
        out.writerow(["chunk", "sent_s", "received_s", "played_s",
                      "retransmitted"])
        for row in rows:
            out.writerow([row["chunk"]] + [
                "" if row[k] is None else row[k]
                for k in ("sent", "received", "played")]
                + [int(row["retransmitted"])])


# -------------------------------------------------------------- threads
class StampedQueue(queue.Queue):
    """A queue that keeps, with each item, when it was put."""

    def put(self, item, block=True, timeout=None):
        super().put((time.monotonic(), item), block, timeout)


class GuiError(Exception):
    """A failure the window explains with one of its own strings."""

    def __init__(self, key: str, **params):
        super().__init__(key)
        self.key = key
        self.params = params


@dataclass
class PeerRow:
    """What the seeders table shows of one seeder."""

    address: str
    alive: bool
    rtt_ms: float | None
    order: str  # the seeder's own order: sequential, random, ...


@dataclass
class Settings:
    seeders: list
    lang: str = "en"
    output: str = "downloads"
    song: str | None = None      # search and select it on open
    method: str | None = None    # None: each seeder's own order
    preview: bool = True
    prebuffer: float = 2.0
    loss: float = 0.0            # received datagrams dropped on purpose
    rng_seed: int | None = None  # makes that loss repeatable
    sink: object = None          # a player.Sink; None: player.choose_sink


class Worker(threading.Thread):
    """The one thread that talks to seeders: jobs come from the Tk thread
    (``submit``), results go back as messages on ``inbox``."""

    def __init__(self, inbox: queue.Queue, settings: Settings):
        super().__init__(name="leecher-worker", daemon=True)
        self.inbox = inbox
        self.jobs: queue.Queue = queue.Queue()
        self.loss = settings.loss
        self.rng_seed = settings.rng_seed
        self.sink = settings.sink
        self.endpoint = None
        self.peers: dict = {}
        self.pinged = None
        self.download = None
        self.player = None
        self.closing = False
        self.stop_requested = False
        # Clear while the Tk thread works: the download then waits.
        self.window_idle = threading.Event()
        self.window_idle.set()

    # -------------------------------------------------- Tk thread side
    def submit(self, job: str, *args) -> None:
        self.jobs.put((job, args))

    def stop_download(self) -> None:
        self.stop_requested = True
        download = self.download
        if download is not None:
            download.stop()

    @contextlib.contextmanager
    def giving_way(self):
        """While in this block, the download's loop waits at its next turn
        (GIVE_WAY_MAX_S at most).  Else the Tk thread shares the GIL with
        it: its work then takes 3-5 times longer, and every Tk call, which
        lets the GIL go, waits up to a switch interval to get it back."""
        self.window_idle.clear()
        try:
            yield
        finally:
            self.window_idle.set()

    def _give_way(self) -> None:
        self.window_idle.wait(GIVE_WAY_MAX_S)

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
    def post(self, *message) -> None:
        self.inbox.put(message)

    def run(self) -> None:
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
            self.post("error", job, exc.key, exc.params)
        except (cli.RunError, cli.UsageError, audio.PlayerError,
                OSError) as exc:
            self.post("error", job, "error", {"text": one_line(exc)})
        except Exception as exc:  # a bug: one line, never a dialog
            if os.environ.get("P2PFACOM_DEBUG"):
                traceback.print_exc()
            self.post("error", job, "unexpected",
                      {"text": f"{type(exc).__name__}: {one_line(exc)}"})

    def _clean_up(self) -> None:
        if self.player is not None:
            self.player.stop()
        if self.endpoint is not None:
            self.endpoint.close()

    def _endpoint(self) -> leecher.Endpoint:
        if self.endpoint is None:
            self.endpoint = leecher.Endpoint(self.loss, self.rng_seed)
        return self.endpoint

    def do_ping(self, addrs: list) -> None:
        self.peers = leecher.ping(self._endpoint(), addrs)
        self.pinged = list(addrs)
        rows = [PeerRow(cli.format_address(peer.addr), peer.alive,
                        None if peer.rtt is None else 1000 * peer.rtt,
                        p.order_name(p.Order(peer.order)))
                for peer in self.peers.values()]
        self.post("peers", rows)

    def do_search(self, addrs: list, query: str) -> None:
        if self.pinged != list(addrs):
            self.do_ping(addrs)
        alive = [peer for peer in self.peers.values() if peer.alive]
        if not alive:
            raise GuiError("no_seeder_alive")
        self.post("songs", query, leecher.search(self._endpoint(), alive,
                                                 query))

    def do_download(self, song, method, preview, prebuffer, out_dir):
        if not any(a in self.peers and self.peers[a].alive
                   for a in song.sources):
            raise GuiError("no_source")
        os.makedirs(out_dir, exist_ok=True)
        existing = self._verified_copy(out_dir, song)
        if existing:
            self.post("already-here", existing, song.info)
            return
        download = leecher.Download(self._endpoint(), song, self.peers,
                                    out_dir, leecher.Options(method=method),
                                    events=self.inbox)
        download.on_turn = self._give_way
        self.download = download
        if self.closing or self.stop_requested:  # Stop came first
            self.post("download-failed", "stopped", True, download.part_path)
            return
        player = self._preview(download, prebuffer) if preview else None
        self.post("download-started", download, player)
        try:
            path = download.run()
        except Exception as exc:
            if player is not None:
                player.stop()  # its input will never end
            if not isinstance(exc, cli.RunError):
                raise
            self.post("download-failed", one_line(exc), self.stop_requested,
                      download.part_path)
            return
        self.post("download-done", path, download.stats(timeline=False))

    @staticmethod
    def _verified_copy(out_dir: str, song) -> str | None:
        """The song's file in ``out_dir`` when it is there with the right
        SHA-256 (the terminal leecher's check).  A file that differs is
        downloaded again and replaced: double-clicking asks for the song,
        and the window has no --force to ask with."""
        try:
            return leecher.check_output(out_dir, song, force=False)
        except cli.UsageError:
            return None

    def _preview(self, download, prebuffer: float):
        try:
            audio.check_ffmpeg()
            sink = self._sink()
        except audio.PlayerError as exc:
            self.post("notice", "preview_off", {"text": one_line(exc)})
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
            kind = "sink_null" if isinstance(self.sink, audio.NullSink) \
                else "sink_card"
            self.post("notice", kind, {})
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
        self.post("player", self.player, os.path.basename(path))

    def do_stats(self) -> None:
        if self.download is not None:
            self.post("stats", self.download.stats(timeline=False))


# ---------------------------------------------------------------- plot
SERIES = (  # name, string key, matplotlib style
    ("sent", "series_sent",
     dict(ls="none", marker="o", ms=6, mfc="none", mew=1.0,
          color="#1f77b4", zorder=2)),
    ("received", "series_received",
     dict(ls="none", marker="o", ms=3.2, color="#2ca02c", zorder=3)),
    ("played", "series_played",
     dict(drawstyle="steps-post", lw=2.6, color="#ff7f0e", zorder=5)),
    ("rtx", "series_rtx",
     dict(ls="none", marker="o", ms=10, mfc="none", mew=2.0,
          color="#d62728", zorder=4)),
    ("nack", "series_nack",
     dict(ls="none", marker="x", ms=8, mew=2.0, color="#9467bd",
          zorder=4)),
)


def thinned(values: list, most: int) -> list:
    """At most about ``most`` of ``values``, evenly spread."""
    step = -(-len(values) // most)
    return values if step <= 1 else values[::step]


@dataclass(frozen=True)
class Look:
    """Everything the plot's background depends on."""

    inches: tuple        # the figure's (width, height) on the screen
    dpi: float           # the figure's on the screen (100 x Tk's scaling)
    x_limit: float
    y_limits: tuple
    labels: tuple        # x label, y label, then one per SERIES


@dataclass(frozen=True)
class Painting:
    look: Look
    rgba: object         # numpy array (height, width, 4)
    axes_box: object     # the axes' position in the figure (a Bbox)


def decorated_figure(look: Look, background: str):
    """A figure with the plot's axes, grid, labels and legend, and one
    empty line per series: (figure, axes, lines by series name)."""
    from matplotlib.figure import Figure
    figure = Figure(figsize=look.inches, dpi=look.dpi, facecolor=background)
    axes = figure.add_subplot()
    lines = {name: axes.plot([], [], label=label, **style)[0]
             for (name, _, style), label in zip(SERIES, look.labels[2:])}
    axes.grid(True, alpha=0.3)
    axes.tick_params(labelsize=11)
    axes.set_xlabel(look.labels[0], fontsize=12)
    axes.set_ylabel(look.labels[1], fontsize=12)
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0),
                ncols=len(SERIES), frameon=False, fontsize=11,
                handlelength=1.4, handletextpad=0.4,
                columnspacing=1.2, borderaxespad=0.3)
    axes.set_xlim(0, look.x_limit)
    axes.set_ylim(*look.y_limits)
    return figure, axes, lines


class BackgroundPainter(threading.Thread):
    """Renders the plot's background (axes, ticks, labels, legend: all
    but the data) on a thread of its own.  It is mostly text, 50-100 ms
    of it, which would stop the Tk thread each time the axes change;
    here the Tk thread only shares the GIL meanwhile.  Only the latest
    wanted look is painted; the Tk thread picks ``painted`` up."""

    def __init__(self, background: str):
        super().__init__(name="plot-painter", daemon=True)
        self.background = background
        self.wanted: Look | None = None
        self.painted: Painting | None = None
        self.closing = False
        self.wakeup = threading.Condition()
        self.figure = self.axes = self.canvas = None
        self.labels = None  # the figure's
        self.layout = None  # run by hand: see _lay_out
        self.laid_out_for = None

    def paint(self, look: Look) -> None:
        with self.wakeup:
            self.wanted = look
            self.wakeup.notify()

    def close(self) -> None:
        with self.wakeup:
            self.closing = True
            self.wakeup.notify()

    def run(self) -> None:
        while True:
            with self.wakeup:
                while self.wanted is None and not self.closing:
                    self.wakeup.wait()
                if self.closing:
                    return
                look, self.wanted = self.wanted, None
            self.painted = self._render(look)

    def _render(self, look: Look) -> Painting:
        import numpy as np
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.layout_engine import ConstrainedLayoutEngine
        if look.labels != self.labels:  # a new language: a new figure
            self.figure, self.axes, _ = decorated_figure(look,
                                                         self.background)
            self.canvas = FigureCanvasAgg(self.figure)
            self.labels = look.labels
            self.layout = ConstrainedLayoutEngine()
            self.laid_out_for = None
        self.figure.set_dpi(look.dpi)
        self.figure.set_size_inches(look.inches)
        self.axes.set_xlim(0, look.x_limit)
        self.axes.set_ylim(*look.y_limits)
        self._lay_out(look)
        self.canvas.draw()
        return Painting(look, np.array(self.canvas.buffer_rgba()),
                        self.axes.get_position())

    def _lay_out(self, look: Look) -> None:
        """Run the layout only when it can change (a third of a draw):
        size, language, digits of the limits."""
        key = (look.inches, look.dpi, look.labels,
               len(str(int(look.x_limit))), len(str(int(look.y_limits[1]))))
        if key != self.laid_out_for:
            self.layout.execute(self.figure)
            self.laid_out_for = key


class ChunkPlot:
    """The live plot: per chunk, when it was sent, received and played.

    The Tk canvas shows a figure in which only the data lines are drawn
    (at most LIVE_POINTS a series, at most every PLOT_EVERY_S): each
    redraw puts the background back and draws the lines on it (blitting,
    a few ms).  The background comes from a BackgroundPainter, asked for
    a new one when the axes change: a new download, an x limit that
    doubles (so: seldom), a language switch, a resize.
    """

    def __init__(self, master, tr, background: str = "white"):
        from matplotlib.backends.backend_tkagg import FigureCanvasTkAgg
        from matplotlib.figure import Figure
        self.tr = tr
        self.figure = Figure(figsize=PLOT_SIZE, dpi=PLOT_DPI,
                             facecolor=background)
        self.axes = self.figure.add_subplot()
        self.axes.set_axis_off()  # the painter draws all that
        self.lines = {name: self.axes.plot([], [], animated=True,
                                           **style)[0]
                      for name, _, style in SERIES}
        self.canvas = FigureCanvasTkAgg(self.figure, master=master)
        self.widget = self.canvas.get_tk_widget()
        self.canvas.mpl_connect("draw_event", self._on_full_draw)
        self.painter = BackgroundPainter(background)
        self.painter.start()
        self.data = {name: ([], []) for name, _, _ in SERIES}
        self.title = ""
        self.x_max = 0.0
        self.look = Look(self._inches(), self.figure.dpi, X_START_S,
                         (0, 1), self._labels())
        self.shown: Painting | None = None  # the background on screen
        self.background = None  # the same, as the canvas keeps it
        self.dirty = True
        self.drawn_at = 0.0
        self.painter.paint(self.look)

    def _inches(self) -> tuple:
        """The figure's size, as the canvas set it: a background painted
        at this size and dpi has the same pixels as the canvas."""
        return tuple(self.figure.get_size_inches())

    def _fits(self, painting: Painting | None) -> bool:
        return painting is not None and painting.look.dpi == \
            self.figure.dpi and painting.look.inches == self._inches()

    def _labels(self) -> tuple:
        return (self.tr("x_label"), self.tr("y_label"),
                *(self.tr(key) for _, key, _ in SERIES))

    def _want(self, **changes) -> None:
        self.look = replace(self.look, **changes)
        self.painter.paint(self.look)

    def reset(self, chunks: int, title: str) -> None:
        for xs, ys in self.data.values():
            xs.clear()
            ys.clear()
        self.title = title
        self.x_max = 0.0
        self.dirty = True
        self._want(x_limit=X_START_S, y_limits=(-0.5, max(chunks, 1) - 0.5))

    def add(self, series: str, x: float, y: int) -> None:
        xs, ys = self.data[series]
        xs.append(x)
        ys.append(y)
        if x > self.x_max:
            self.x_max = x
        self.dirty = True

    def relabel(self) -> None:
        self._want(labels=self._labels())

    def up_to_date(self) -> bool:
        """The screen shows the background of the latest look."""
        return self.shown is not None and self.shown.look == self.look

    def redraw_if_due(self, now: float, force: bool = False) -> None:
        """Show a new background if one came, else the new data if the
        last redraw is PLOT_EVERY_S old (``force``: whatever its age)."""
        self._fit_x(now)
        painted = self.painter.painted
        if painted is not self.shown and self._fits(painted):
            self._show_background(painted)
        elif self.dirty and self.background is not None and \
                (force or now - self.drawn_at >= PLOT_EVERY_S):
            self.canvas.restore_region(self.background)
            self._draw_lines()
            self.canvas.blit(self.axes.bbox)
        else:
            return
        self.dirty = False
        self.drawn_at = now

    def _fit_x(self, now: float) -> None:
        """While data comes, double the x limit until it fits (each change
        is a new background: it changes seldom); once no data came for
        SETTLE_S, fit it to the data."""
        limit = self.look.x_limit
        if not self.dirty and now - self.drawn_at > SETTLE_S:
            limit = self._tight_x_limit()
        while limit < self.x_max * 1.04:
            limit *= 2
        if limit != self.look.x_limit:
            self._want(x_limit=limit)

    def _tight_x_limit(self) -> float:
        return max(X_START_S / 2, self.x_max * 1.04)

    def _show_background(self, painting: Painting) -> None:
        """Put ``painting`` in the canvas' image, the lines on it, and
        all of it on the screen."""
        import numpy as np
        self.shown = painting
        self.axes.set_position(painting.axes_box)
        self.axes.set_xlim(0, painting.look.x_limit)
        self.axes.set_ylim(*painting.look.y_limits)
        renderer = self.canvas.get_renderer()
        np.asarray(renderer.buffer_rgba())[...] = painting.rgba
        self.background = self.canvas.copy_from_bbox(self.axes.bbox)
        self._draw_lines()
        self.canvas.blit()

    def _put_data(self, lines: dict, most: int) -> None:
        for name, (xs, ys) in self.data.items():
            lines[name].set_data(thinned(xs, most), thinned(ys, most))

    def _draw_lines(self) -> None:
        self._put_data(self.lines, LIVE_POINTS)
        for line in self.lines.values():
            self.axes.draw_artist(line)

    def _on_full_draw(self, event) -> None:
        """The canvas drew the figure itself, that is without background
        (at the start, on a resize): put it back, or ask for one of the
        new size."""
        painted = self.painter.painted
        if self._fits(painted):
            self._show_background(painted)
        else:
            self.background = None
        if (self._inches(), self.figure.dpi) != (self.look.inches,
                                                 self.look.dpi):
            self._want(inches=self._inches(), dpi=self.figure.dpi)

    def save_png(self, path: str) -> None:
        """The plot at 150 dpi, with up to SAVE_POINTS points a series."""
        look = replace(self.look, x_limit=self._tight_x_limit())
        figure, _, lines = decorated_figure(look,
                                            self.figure.get_facecolor())
        figure.set_layout_engine("constrained")
        self._put_data(lines, SAVE_POINTS)
        figure.savefig(path, dpi=150)

    def close(self) -> None:
        self.painter.close()
        # Not left drawing when the interpreter exits: that would abort.
        self.painter.join(timeout=5.0)


# ---------------------------------------------------------- statistics
class StatsPanel:
    """Every number of the terminal report, in two columns."""

    def __init__(self, master, tr):
        self.tr = tr
        self.frame = ttk.LabelFrame(master, padding=(8, 2, 8, 6))
        self.names: dict = {}
        self.values: dict = {}
        for column, keys in enumerate(STAT_COLUMNS):
            for row, key in enumerate(keys):
                self._add(key, row, 2 * column)
        self._add("per_seeder", len(STAT_COLUMNS[0]), 0, span=3)
        self.values["per_seeder"].configure(wraplength=520)
        self.frame.columnconfigure(1, weight=1)
        self.frame.columnconfigure(3, weight=1)
        self.stats: dict = {}
        self.relabel()

    def _add(self, key: str, row: int, column: int, span: int = 1) -> None:
        name = ttk.Label(self.frame, style="StatName.TLabel")
        value = ttk.Label(self.frame, text="—", style="StatValue.TLabel")
        name.grid(row=row, column=column, sticky="w", padx=(0, 6))
        value.grid(row=row, column=column + 1, columnspan=span,
                   sticky="w", padx=(0, 14))
        self.names[key] = name
        self.values[key] = value

    def show(self, stats: dict, lang: str) -> None:
        self.stats = stats
        for key, label in self.values.items():
            label.configure(text=stat_text(key, stats, lang))
        self._show_title()

    def relabel(self) -> None:
        """The names too: after a language switch only (``show`` leaves
        them: every Tk call may cost the Tk thread a wait for the GIL)."""
        self._show_title()
        for key, label in self.names.items():
            label.configure(text=self.tr("stat_" + key) + ":")

    def _show_title(self) -> None:
        name = self.stats.get("file")
        self.frame.configure(text=self.tr("statistics_of", name=name)
                             if name else self.tr("statistics"))


# ------------------------------------------------------------- the app
class App:
    """The leecher's window.  Tests drive it through its methods
    (``refresh_seeders``, ``search``, ``select_song``, ``start_download``,
    ``set_language``, ``save_*``, ``close``) while pumping
    ``root.update()``.  ``loop_lag_ms`` holds, for every poll, how long
    after it was due it ended (for benchmarks: see ``lag_percentile``)."""

    def __init__(self, root, settings: Settings):
        self.root = root
        self.settings = settings
        self.lang = settings.lang if settings.lang in STRINGS else "en"
        self.inbox = StampedQueue()
        # Other threads of this process (download, plot painter, player)
        # are busy in Python.  Each Tk call lets the GIL go, and getting it
        # back takes up to a switch interval: 5 ms by default.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.worker = Worker(self.inbox, settings)
        self.loop_lag_ms: list[float] = []
        self._relabelers: list = []
        self._init_state()
        root.report_callback_exception = self._on_callback_error
        root.title(self.t("title"))
        root.geometry(WINDOW_SIZE)
        root.minsize(1000, 660)
        root.protocol("WM_DELETE_WINDOW", self.close)
        setup_style(root)
        self._build()
        self.set_status("ready")
        self._set_tk_locale()
        self.worker.start()
        self._schedule_poll()
        self.query_var.set(settings.song or "")
        self.last_query = self.query_var.get()
        self.refresh_seeders()  # and then searches

    def _init_state(self) -> None:
        self.peer_rows: list[PeerRow] = []
        self.gone: set = set()
        self.songs: list = []
        self.download = None          # the running or last Download
        self.downloading = False
        self.preview_player = None    # fed by the download
        self.player = None            # whatever plays now
        self.final_path = None
        self.stats: dict = {}
        self.got = 0
        self.complete = False
        self.song_info = None         # of the song downloaded or found
        self.player_name = None       # the file self.player plays
        self.last_query = ""
        self._search_after_ping = False
        self._player_error_shown = None  # the player whose error is shown
        self._song_selected = False
        self._final_stats_asked = False
        self._status = ("ready", {}, "info")
        self.status_history = collections.deque(maxlen=100)
        self._buttons_state = None
        self._shown: dict = {}  # widget -> options last given, see _show
        self.closed = False
        self._poll_id = None
        self._poll_due = 0.0

    def t(self, key: str, **params) -> str:
        return text(self.lang, key, **params)

    # ------------------------------------------------------------ build
    def _build(self) -> None:
        self._build_menu()
        main = ttk.Frame(self.root, padding=(8, 6, 8, 2))
        main.grid(row=0, column=0, sticky="nsew")
        self.root.rowconfigure(0, weight=1)
        self.root.columnconfigure(0, weight=1)
        left = ttk.Frame(main, width=400)
        left.grid(row=0, column=0, sticky="ns", padx=(0, 8))
        right = ttk.Frame(main)
        right.grid(row=0, column=1, sticky="nsew")
        main.columnconfigure(1, weight=1)
        main.rowconfigure(0, weight=1)
        self._build_seeders(left)
        self._build_songs(left)
        self._build_download(left)
        self._build_player(left)
        left.rowconfigure(1, weight=1)
        self._build_plot(right)
        self.stats_panel = StatsPanel(right, self.t)
        self.stats_panel.frame.grid(row=1, column=0, sticky="ew",
                                    pady=(6, 0))
        self._build_save(right)
        right.columnconfigure(0, weight=1)
        right.rowconfigure(0, weight=1)
        self.status_label = ttk.Label(self.root, style="Status.TLabel",
                                      anchor="w")
        self.status_label.grid(row=1, column=0, sticky="ew")

    def _label(self, widget, key: str, option: str = "text"):
        """Give ``widget`` the string ``key`` now and after every
        language switch."""
        def apply():
            widget.configure(**{option: self.t(key)})
        apply()
        self._relabelers.append(apply)
        return widget

    def _build_menu(self) -> None:
        bar = tk.Menu(self.root, tearoff=False)
        files = tk.Menu(bar, tearoff=False)
        for key, command in (("menu_save_png", self.ask_save_png),
                             ("menu_save_json", self.ask_save_json),
                             ("menu_save_csv", self.ask_save_csv)):
            files.add_command(command=command)
        files.add_separator()
        files.add_command(command=self.close, accelerator="Ctrl+Q")
        self.root.bind_all("<Control-q>", lambda event: self.close())
        languages = tk.Menu(bar, tearoff=False)
        self.lang_var = tk.StringVar(value=self.lang)
        for code, name in LANGUAGE_NAMES:
            languages.add_radiobutton(
                label=name, value=code, variable=self.lang_var,
                command=lambda: self.set_language(self.lang_var.get()))
        bar.add_cascade(menu=files)
        bar.add_cascade(menu=languages)
        self.root.configure(menu=bar)
        self.menubar = bar

        def apply():
            bar.entryconfigure(0, label=self.t("menu_file"))
            bar.entryconfigure(1, label=self.t("menu_language"))
            for index, key in enumerate(("menu_save_png", "menu_save_json",
                                         "menu_save_csv")):
                files.entryconfigure(index, label=self.t(key))
            files.entryconfigure(4, label=self.t("menu_quit"))
        apply()
        self._relabelers.append(apply)

    def _tree(self, parent, columns, height: int):
        """A Treeview with translated headings and a vertical scrollbar,
        in a frame of its own: (frame, tree).  columns = (id, key, width,
        anchor[, value keys]); a column is widened to fit its heading, and
        the texts of its value keys, in every language, so that a language
        switch never changes the layout."""
        frame = ttk.Frame(parent)
        tree = ttk.Treeview(frame, columns=[c[0] for c in columns],
                            show="headings", height=height,
                            selectmode="browse")
        heading_font = tkfont.nametofont("TkHeadingFont", root=self.root)
        body_font = tkfont.nametofont("TkDefaultFont", root=self.root)
        for column, key, width, anchor, *values in columns:
            fit = max([heading_width(heading_font, key)] +
                      [heading_width(body_font, value)
                       for value in (values[0] if values else ())])
            tree.column(column, width=max(width, fit), minwidth=fit,
                        anchor=anchor, stretch=column == columns[0][0])
            self._relabelers.append(
                lambda c=column, k=key: tree.heading(c, text=self.t(k)))
        for apply in self._relabelers[-len(columns):]:
            apply()
        bar = ttk.Scrollbar(frame, orient="vertical", command=tree.yview)
        tree.configure(yscrollcommand=bar.set)
        tree.grid(row=0, column=0, sticky="nsew")
        bar.grid(row=0, column=1, sticky="ns")
        frame.columnconfigure(0, weight=1)
        frame.rowconfigure(0, weight=1)
        return frame, tree

    def _build_seeders(self, parent) -> None:
        frame = self._label(ttk.LabelFrame(parent, padding=6), "seeders")
        frame.grid(row=0, column=0, sticky="ew")
        self._label(ttk.Label(frame), "addresses").grid(row=0, column=0,
                                                        sticky="w")
        self.seeders_var = tk.StringVar(value=", ".join(
            cli.format_address(a) for a in self.settings.seeders))
        entry = ttk.Entry(frame, textvariable=self.seeders_var, width=12)
        entry.grid(row=0, column=1, sticky="ew", padx=4)
        entry.bind("<Return>", lambda event: self.refresh_seeders())
        self.refresh_button = self._label(
            ttk.Button(frame, command=self.refresh_seeders), "refresh")
        self.refresh_button.grid(row=0, column=2)
        table, self.seeder_tree = self._tree(frame, (
            ("address", "col_address", 129, "w"),
            ("state", "col_state", 106, "w", ("alive", "no_answer", "gone")),
            ("rtt", "col_rtt", 60, "e"),
            ("order", "col_order", 106, "w",
             ("order_sequential", "order_random", "order_semi"))), height=3)
        table.grid(row=1, column=0, columnspan=3, sticky="ew", pady=(6, 0))
        frame.columnconfigure(1, weight=1)

    def _build_songs(self, parent) -> None:
        frame = self._label(ttk.LabelFrame(parent, padding=6), "songs")
        frame.grid(row=1, column=0, sticky="nsew", pady=(6, 0))
        self.query_var = tk.StringVar()
        entry = ttk.Entry(frame, textvariable=self.query_var)
        entry.grid(row=0, column=0, sticky="ew", padx=(0, 4))
        entry.bind("<Return>", lambda event: self.search())
        self.search_button = self._label(
            ttk.Button(frame, command=self.search), "search")
        self.search_button.grid(row=0, column=1)
        table, self.song_tree = self._tree(frame, (
            ("name", "col_name", 150, "w"),
            ("size", "col_size", 80, "e"),
            ("duration", "col_duration", 80, "e"),
            ("sources", "col_sources", 80, "center")), height=3)
        table.grid(row=1, column=0, columnspan=2, sticky="nsew", pady=(6, 0))
        self.song_tree.bind("<Double-1>", lambda event: self.start_download())
        frame.columnconfigure(0, weight=1)
        frame.rowconfigure(1, weight=1)

    def _build_download(self, parent) -> None:
        frame = self._label(ttk.LabelFrame(parent, padding=6), "download")
        frame.grid(row=2, column=0, sticky="ew", pady=(6, 0))
        self._label(ttk.Label(frame), "order").grid(row=0, column=0,
                                                    sticky="w")
        self.order_box = ttk.Combobox(frame, state="readonly", width=18)
        self.order_box.grid(row=0, column=1, columnspan=2, sticky="ew",
                            pady=2)
        self._relabelers.append(self._relabel_orders)
        self._relabel_orders(METHODS.index(self.settings.method))
        self._build_preview(frame)
        buttons = ttk.Frame(frame)
        buttons.grid(row=3, column=0, columnspan=3, sticky="ew", pady=(4, 2))
        self.download_button = self._label(ttk.Button(
            buttons, command=self.start_download, style="Accent.TButton"),
            "start")
        self.download_button.pack(side="left", fill="x", expand=True)
        self.stop_button = self._label(
            ttk.Button(buttons, command=self.stop_download), "stop_download")
        self.stop_button.pack(side="left", padx=(6, 0))
        self.progress_bar = ttk.Progressbar(frame, maximum=100)
        self.progress_bar.grid(row=4, column=0, columnspan=3, sticky="ew",
                               pady=(4, 0))
        self.progress_label = ttk.Label(frame, style="Small.TLabel")
        self.progress_line = OneLine(self.progress_label,
                                     self.root.p2p_fonts[0])
        self.progress_label.grid(row=5, column=0, columnspan=3, sticky="ew")
        self._relabelers.append(self._show_progress)
        frame.columnconfigure(2, weight=1)

    def _build_preview(self, frame) -> None:
        """[x] Preview while downloading     Prebuffer (s): [2.0]"""
        row = ttk.Frame(frame)
        row.grid(row=1, column=0, columnspan=3, sticky="ew", pady=2)
        self.preview_var = tk.BooleanVar(value=self.settings.preview)
        self._label(ttk.Checkbutton(row, variable=self.preview_var),
                    "preview").pack(side="left")
        self.prebuffer_var = tk.StringVar(value=str(self.settings.prebuffer))
        ttk.Spinbox(row, from_=0, to=30, increment=0.5, width=4,
                    textvariable=self.prebuffer_var).pack(side="right")
        self._label(ttk.Label(row), "prebuffer").pack(side="right",
                                                      padx=(8, 4))

    def _relabel_orders(self, index: int | None = None) -> None:
        index = self.order_box.current() if index is None else index
        self.order_box.configure(values=[self.t(ORDER_KEYS[m])
                                         for m in METHODS])
        self.order_box.current(max(index, 0))

    def _build_save(self, parent) -> None:
        frame = ttk.Frame(parent, padding=(0, 6, 0, 0))
        frame.grid(row=2, column=0, sticky="e")
        self._label(ttk.Label(frame), "save").pack(side="left")
        self.save_buttons = []
        for key, command in (("save_png", self.ask_save_png),
                             ("save_json", self.ask_save_json),
                             ("save_csv", self.ask_save_csv)):
            button = self._label(ttk.Button(frame, command=command), key)
            button.pack(side="left", padx=(6, 0))
            self.save_buttons.append(button)

    def _build_plot(self, parent) -> None:
        frame = ttk.LabelFrame(parent, padding=4)
        frame.grid(row=0, column=0, sticky="nsew")
        background = ttk.Style(self.root).lookup("TFrame", "background")
        self.plot = ChunkPlot(frame, self.t, background or "white")

        def apply():  # "Chunks over time — song.mp3"
            title = self.t("plot")
            frame.configure(text=f"{title} — {self.plot.title}"
                            if self.plot.title else title)
        apply()
        self._relabelers.append(apply)
        self._plot_frame_relabel = apply
        self.plot.widget.configure(highlightthickness=0)
        self.plot.widget.pack(fill="both", expand=True)

    def _build_player(self, parent) -> None:
        frame = self._label(ttk.LabelFrame(parent, padding=6), "player")
        frame.grid(row=3, column=0, sticky="ew", pady=(6, 0))
        self.play_button = self._label(
            ttk.Button(frame, command=self.play), "play")
        self.pause_button = self._label(
            ttk.Button(frame, command=self.pause), "pause")
        self.stop_play_button = self._label(
            ttk.Button(frame, command=self.stop_playback), "stop")
        for column, button in enumerate((self.play_button,
                                         self.pause_button,
                                         self.stop_play_button)):
            button.grid(row=0, column=column, sticky="ew",
                        padx=(0 if column == 0 else 4, 0))
            frame.columnconfigure(column, weight=1, uniform="player")
        self.position_bar = ttk.Progressbar(frame, maximum=1.0,
                                            style="Thin.Horizontal."
                                                  "TProgressbar")
        self.position_bar.grid(row=1, column=0, columnspan=3, sticky="ew",
                               pady=(5, 0))
        self.position_label = ttk.Label(frame)
        self.position_line = OneLine(self.position_label, tkfont.nametofont(
            "TkDefaultFont", root=self.root))
        self.position_label.grid(row=2, column=0, columnspan=3, sticky="ew")
        self._relabelers.append(self._show_player)

    # ------------------------------------------------------ user actions
    def addresses(self) -> list | None:
        try:
            return parse_addresses(self.seeders_var.get())
        except GuiError as exc:
            self.set_status(exc.key, "error", **exc.params)
            return None

    def refresh_seeders(self) -> None:
        """Ping the seeders; once some answer, search again (_on_peers):
        the songs found before may be on seeders no longer listed."""
        addrs = self.addresses() if self._idle() else None
        if addrs is None:
            return
        self.set_status("pinging", n=len(addrs))
        self._search_after_ping = True
        self.worker.submit("ping", addrs)

    def search(self, query: str | None = None) -> None:
        if query is not None:
            self.query_var.set(query)
        query = self.query_var.get().strip()
        addrs = self.addresses() if self._idle() else None
        if addrs is None:
            return
        self.last_query = query
        if query:
            self.set_status("searching", query=query)
        else:
            self.set_status("searching_all")
        self.worker.submit("search", addrs, query)

    def _idle(self) -> bool:
        """The worker is free (during a download it runs the download)."""
        if self.downloading:
            self.set_status("busy", "error")
        return not self.downloading

    def select_song(self, name: str) -> bool:
        """Select the song called ``name`` (else the only one containing
        it) in the results; False when there is none."""
        wanted = name.lower()
        found = [n for n, s in enumerate(self.songs)
                 if s.info.name.lower() == wanted] or \
            [n for n, s in enumerate(self.songs)
             if wanted in s.info.name.lower()]
        if not found:
            return False
        iid = str(found[0])
        self.song_tree.selection_set(iid)
        self.song_tree.focus(iid)
        self.song_tree.see(iid)
        return True

    def selected_song(self):
        selection = self.song_tree.selection()
        return self.songs[int(selection[0])] if selection else None

    def start_download(self) -> None:
        if not self._idle():
            return
        song = self.selected_song()
        if song is None:
            self.set_status("pick_song", "error")
            return
        try:
            prebuffer = float(self.prebuffer_var.get().replace(",", "."))
            if not 0 <= prebuffer <= 30:
                raise ValueError
        except ValueError:
            self.set_status("bad_prebuffer", "error")
            return
        self._stop_player()
        self.downloading = True
        self.final_path = None
        self.worker.stop_requested = False
        self.set_status("downloading", name=song.info.name)
        self.worker.submit("download", song,
                           METHODS[max(self.order_box.current(), 0)],
                           self.preview_var.get(), prebuffer,
                           self.settings.output)
        self._update_buttons()

    def stop_download(self) -> None:
        if self.downloading:
            self.worker.stop_download()

    def play(self) -> None:
        player = self.player
        if player is not None and player.state == "paused":
            player.resume()
        elif player is not None and player.state in PLAYER_ACTIVE:
            return
        elif self.final_path and not self.downloading:
            self.worker.submit("play", self.final_path)

    def pause(self) -> None:
        player = self.player
        if player is not None and player.state in PLAYER_ACTIVE:
            player.pause()

    def stop_playback(self) -> None:
        self._stop_player()

    def _stop_player(self) -> None:
        player = self.player
        if player is not None and player.state not in ("stopped",
                                                       "finished"):
            # stop() waits for the player's threads: not on the Tk thread
            threading.Thread(target=player.stop, name="player-stop",
                             daemon=True).start()

    def set_language(self, lang: str) -> None:
        if lang not in STRINGS:
            return
        self.lang = lang
        self.lang_var.set(lang)
        self._set_tk_locale()
        self.root.title(self.t("title"))
        for apply in self._relabelers:
            apply()
        self._fill_seeders()
        self._fill_songs(keep_selection=True)
        self.stats_panel.show(self.stats, lang)
        self.stats_panel.relabel()
        self.plot.relabel()
        self.plot.redraw_if_due(time.monotonic(), force=True)
        self._show_status()

    def _set_tk_locale(self) -> None:
        """Tk's file dialog speaks the window's language (Tk ships its
        Portuguese in msgcat's catalog "pt")."""
        self.root.tk.call("::msgcat::mclocale", TK_LOCALES[self.lang])

    # ------------------------------------------------------------ saving
    def _ask_path(self, kind: str, extension: str) -> str | None:
        if not self.download or not (self.stats or kind == "plot"):
            self.set_status("nothing_to_save", "error")
            return None
        base = os.path.splitext(self.download.name)[0]
        return filedialog.asksaveasfilename(
            parent=self.root, defaultextension=extension,
            filetypes=[(self.t(SAVE_TYPES[extension]), "*" + extension),
                       (self.t("filetype_all"), "*")],
            initialdir=self.settings.output,
            initialfile=f"{base}-{kind}{extension}") or None

    def ask_save_png(self) -> None:
        path = self._ask_path("plot", ".png")
        if path:
            self.save_plot_png(path)

    def ask_save_json(self) -> None:
        path = self._ask_path("stats", ".json")
        if path:
            self.save_stats_json(path)

    def ask_save_csv(self) -> None:
        path = self._ask_path("stats", ".csv")
        if path:
            self.save_stats_csv(path)

    def save_plot_png(self, path: str) -> None:
        try:
            self.plot.save_png(path)
        except (OSError, ValueError) as exc:
            self.set_status("save_failed", "error", path=path,
                            text=one_line(exc))
            return
        self.set_status("saved", path=path)

    def save_stats_json(self, path: str) -> None:
        self._save_in_background(path, lambda stats, rows:
                                 leecher.write_json(path, stats, rows))

    def save_stats_csv(self, path: str) -> None:
        self._save_in_background(path, lambda stats, rows:
                                 write_csv(path, stats, rows))

    def _save_in_background(self, path: str, write) -> None:
        """Write what the panel shows, plus the per-chunk timeline, on a
        short-lived thread (a long song's timeline takes a while)."""
        if not self.stats or self.download is None:
            self.set_status("nothing_to_save", "error")
            return
        stats, rows = dict(self.stats), self.download.times.rows()

        def run():
            try:
                write(stats, rows)
            except (cli.RunError, OSError) as exc:
                self.inbox.put(("error", "save", "save_failed",
                                {"path": path, "text": one_line(exc)}))
                return
            self.inbox.put(("saved", path))
        threading.Thread(target=run, name="save", daemon=True).start()

    # ------------------------------------------------------------ status
    def set_status(self, key: str, level: str = "info", **params) -> None:
        self._status = (key, params, level)
        self._show_status()
        self.status_history.append(self.status_text())

    def _show_status(self) -> None:
        key, params, level = self._status
        self.status_label.configure(
            text=self.t(key, **params),
            style="Error.Status.TLabel" if level == "error"
            else "Status.TLabel")

    def status_text(self) -> str:
        return self.status_label.cget("text")

    def _on_callback_error(self, kind, exc, tb) -> None:
        if os.environ.get("P2PFACOM_DEBUG"):
            traceback.print_exception(kind, exc, tb)
        self.set_status("unexpected", "error",
                        text=f"{kind.__name__}: {one_line(exc)}")

    # -------------------------------------------------------- event loop
    def _schedule_poll(self) -> None:
        self._poll_due = time.monotonic() + POLL_MS / 1000
        self._poll_id = self.root.after(POLL_MS, self._poll)

    def _poll(self) -> None:
        with self.worker.giving_way():
            self._drain()
            self.plot.redraw_if_due(time.monotonic())
            self._show_progress()
            self._show_player()
            self._show_player_error()
            self._watch_playback()
            self._update_buttons()
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
        """Handle queued messages, for at most EVENT_BUDGET_S."""
        deadline = time.monotonic() + EVENT_BUDGET_S
        while time.monotonic() < deadline:
            try:
                stamp, message = self.inbox.get_nowait()
            except queue.Empty:
                return
            handler = getattr(self, "_on_" + message[0].replace("-", "_"),
                              None)
            if handler is not None:
                handler(stamp, *message[1:])

    # ----------------------------------------- messages from the worker
    def _on_peers(self, stamp, rows) -> None:
        self.peer_rows = rows
        self.gone = set()
        self._fill_seeders()
        alive = sum(row.alive for row in rows)
        search_again, self._search_after_ping = self._search_after_ping, False
        if not alive:  # the songs listed are on no seeder alive now
            self.songs = []
            self._fill_songs()
            self.set_status("no_seeder_alive", "error")
            return
        self.set_status("pinged", alive=alive, n=len(rows))
        if search_again and not self.downloading:
            self.search(self.last_query)

    def _on_songs(self, stamp, query, songs) -> None:
        self.songs = songs
        self._fill_songs()
        if not songs:
            self.set_status("none_found", "error", query=query)
            return
        self.set_status("found", n=len(songs))
        if self.settings.song and not self._song_selected:
            self._song_selected = self.select_song(self.settings.song)

    def _on_notice(self, stamp, key, params) -> None:
        self.set_status(key, **params)

    def _on_error(self, stamp, job, key, params) -> None:
        self.set_status(key, "error", **params)
        if job == "download":
            self.downloading = False

    def _on_already_here(self, stamp, path, info) -> None:
        self.downloading = False
        self.final_path = path
        self.song_info = info
        self.set_status("already_here", path=path)

    def _on_download_started(self, stamp, download, player) -> None:
        self.download = download
        self.song_info = download.info
        self.preview_player = player
        if player is not None:
            self.player = player
            self.player_name = download.name
        self.stats = {}
        self.got = 0
        self.complete = False
        self._final_stats_asked = False
        self.stats_panel.show({}, self.lang)
        self.plot.reset(download.info.chunks, download.name)
        self._plot_frame_relabel()

    def _on_request(self, stamp, addr, count) -> None:
        self.set_status("requested", addr=addr, n=count)

    def _on_resumed(self, stamp, count) -> None:
        self.got += count
        self.set_status("resumed", n=count)

    def _on_chunk(self, stamp, index, sent, received, retransmitted,
                  seeder) -> None:
        self.got += 1
        if sent is not None:
            self.plot.add("sent", sent, index)
        self.plot.add("received", received, index)
        if retransmitted:
            self.plot.add("rtx", received, index)

    def _on_nack(self, stamp, chunks) -> None:
        started = self.download.started if self.download else None
        if started is None:
            return
        for index in chunks:
            self.plot.add("nack", stamp - started, index)
        shown = ", ".join(map(str, chunks[:6])) + \
            (", …" if len(chunks) > 6 else "")
        self.set_status("nacked", n=len(chunks), chunks=shown)

    def _on_played(self, stamp, byte_end, when) -> None:
        info = self.download.info if self.download else None
        if info is None or byte_end <= 0:
            return
        index = min(info.chunks, -(-byte_end // info.chunk_size)) - 1
        self.plot.add("played", when, index)

    def _on_seeder_gone(self, stamp, addr) -> None:
        self.gone.add(addr)
        self._fill_seeders()
        self.set_status("seeder_gone", "error", addr=addr)

    def _on_complete(self, stamp, path) -> None:
        self.complete = True

    def _on_download_done(self, stamp, path, stats) -> None:
        self.downloading = False
        self.complete = True
        self.final_path = path
        self.stats = stats
        self.stats_panel.show(stats, self.lang)
        self.plot.redraw_if_due(time.monotonic(), force=True)
        self.set_status("done", path=path)

    def _on_download_failed(self, stamp, reason, stopped, part) -> None:
        self.downloading = False
        if stopped:
            self.set_status("stopped", path=part)
        else:
            self.set_status("failed", "error", text=reason)

    def _on_stats(self, stamp, stats) -> None:
        self.stats = stats
        self.stats_panel.show(stats, self.lang)

    def _on_player(self, stamp, player, name) -> None:
        self.player = player
        self.player_name = name
        self.set_status("playing_file", name=name)

    def _on_saved(self, stamp, path) -> None:
        self.set_status("saved", path=path)

    # --------------------------------------------------------- showing
    def _fill_seeders(self) -> None:
        tree = self.seeder_tree
        tree.delete(*tree.get_children())
        for row in self.peer_rows:
            state = "gone" if row.address in self.gone else \
                "alive" if row.alive else "no_answer"
            rtt = "—" if row.rtt_ms is None else fmt_decimal(
                row.rtt_ms, 1 if row.rtt_ms < 10 else 0, self.lang) + " ms"
            order = self.t(ORDER_KEYS.get(row.order, "order_own")) \
                if row.alive else "—"
            tree.insert("", "end", values=(row.address, self.t(state), rtt,
                                           order), tags=(state,))

    def _fill_songs(self, keep_selection: bool = False) -> None:
        tree = self.song_tree
        selected = tree.selection() if keep_selection else ()
        tree.delete(*tree.get_children())
        for n, song in enumerate(self.songs):
            info = song.info
            tree.insert("", "end", iid=str(n), values=(
                info.name, fmt_size(info.size, self.lang),
                fmt_duration(info.duration_ms), len(song.sources)))
        if selected and tree.exists(selected[0]):
            tree.selection_set(selected[0])

    def _show_progress(self) -> None:
        download = self.download
        if download is None:
            self.progress_line.show(self.t("no_download"))
            return
        total = download.info.chunks
        got = total if self.complete else min(self.got, total)
        percent = 100 * got // max(total, 1)
        self._show(self.progress_bar, value=percent)
        self.progress_line.show(self.t(
            "progress", percent=percent, got=got, total=total,
            nacks=download.nacks_sent, rtx=download.retransmitted))

    def _show_player(self) -> None:
        player = self.player
        if player is None:
            self.position_line.show(self.t("state_none"))
            self._show(self.position_bar, value=0)
            return
        total = self._song_seconds()
        position = player.position_s
        state = "failed" if player.error else player.state
        self._show(self.position_bar, value=round(
            min(1.0, position / total), 3) if total else 0)
        self.position_line.show(self.t(
            "position", pos=fmt_decimal(position, 1, self.lang) + " s",
            total=fmt_decimal(total, 1, self.lang) + " s",
            state=self.t("state_" + state)))

    def _show(self, widget, **options) -> None:
        """Configure ``widget`` only with what changed: every Tk call lets
        the GIL go, and a busy thread (plot painter, player) may then keep
        it for a switch interval before the Tk thread gets it back."""
        shown = self._shown.setdefault(str(widget), {})
        changed = {key: value for key, value in options.items()
                   if shown.get(key) != value}
        if changed:
            widget.configure(**changed)
            shown.update(changed)

    def _song_seconds(self) -> float:
        info = self.song_info
        return info.duration_ms / 1000 if info and info.duration_ms else 0.0

    def _show_player_error(self) -> None:
        """A player that failed (not an MP3, ffmpeg gone...) says why in
        the status line, once: it fails on its own threads, after "Playing
        NAME." was shown."""
        player = self.player
        if player is None or player.error is None or \
                player is self._player_error_shown:
            return
        self._player_error_shown = player
        self.set_status("play_failed", "error", name=self.player_name,
                        text=player.error)

    def _watch_playback(self) -> None:
        """Once the preview has played to its end, show the final audio
        statistics (played time, stalls)."""
        player = self.preview_player
        if player is None or self._final_stats_asked or self.downloading \
                or not self.stats or player.state in PLAYER_ACTIVE:
            return
        self._final_stats_asked = True
        self.worker.submit("stats")

    def _update_buttons(self) -> None:
        player = self.player
        state = player.state if player is not None else None
        wanted = (self.downloading, state, bool(self.final_path),
                  bool(self.stats))
        if wanted == self._buttons_state:
            return
        self._buttons_state = wanted
        for button in (self.download_button, self.refresh_button,
                       self.search_button):
            enable(button, not self.downloading)
        enable(self.stop_button, self.downloading)
        enable(self.play_button, state == "paused" or (
            bool(self.final_path) and not self.downloading
            and state not in PLAYER_ACTIVE))
        enable(self.pause_button, state in ("waiting", "playing",
                                            "stalled"))
        enable(self.stop_play_button, state in PLAYER_ACTIVE)
        for button in self.save_buttons[1:]:
            enable(button, bool(self.stats))
        enable(self.save_buttons[0], self.download is not None)

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
        for player in {self.player, self.preview_player} - {None}:
            threading.Thread(target=player.stop, daemon=True).start()
        self.worker.join(timeout=5.0)
        self.plot.close()
        self.root.destroy()


class OneLine:
    """Shows a text in ``label`` on one line, cut with "…" when it is
    wider than the label.  The label asks for no width of its own: its
    text changes many times a second during a download, and if that
    widened the left column, the plot's canvas would shrink and be fully
    redrawn each time; wrapping instead would make the label taller and
    move everything below it."""

    def __init__(self, label, font):
        self.label = label
        self.font = font
        self.text = ""
        self.width = 0  # pixels for the text; known once the label is laid out
        label.configure(width=1, anchor="w")
        label.bind("<Configure>", self._on_configure)

    def show(self, text: str) -> None:
        if text != self.text:
            self.text = text
            self._fit()

    def _on_configure(self, event) -> None:
        if event.width != self.width:
            self.width = event.width
            self._fit()

    def _fit(self) -> None:
        self.label.configure(text=ellipsized(self.text, self.width,
                                             self.font.measure))


def ellipsized(line: str, width: int, measure) -> str:
    """``line``, or its longest start that fits in ``width`` (as
    ``measure`` measures) followed by "…"."""
    if measure(line) <= width:
        return line
    fits, too_long = 0, len(line)  # lengths of starts, binary search
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if measure(line[:middle] + "…") <= width:
            fits = middle
        else:
            too_long = middle
    return line[:fits].rstrip() + "…"


def heading_width(font, key: str) -> int:
    """Pixels a Treeview column needs to show the heading ``key`` in
    every language: the text, the heading's padding and border."""
    return HEADING_PAD_PX + max(font.measure(STRINGS[lang][key])
                                for lang in STRINGS)


def enable(widget, on: bool) -> None:
    widget.state(["!disabled"] if on else ["disabled"])


def setup_style(root) -> None:
    """Fonts big enough for a projector, the clam theme, status styles."""
    for name in ("TkDefaultFont", "TkTextFont", "TkMenuFont",
                 "TkHeadingFont"):
        tkfont.nametofont(name, root=root).configure(size=FONT_SIZE)
    tkfont.nametofont("TkHeadingFont", root=root).configure(weight="bold")
    style = ttk.Style(root)
    if "clam" in style.theme_names():
        style.theme_use("clam")
    line = tkfont.nametofont("TkDefaultFont", root=root).metrics("linespace")
    style.configure("Treeview", rowheight=line + 6)
    style.configure("Treeview.Heading", font="TkHeadingFont")
    style.configure("TLabelframe.Label", font="TkHeadingFont")
    style.configure("Status.TLabel", padding=(10, 4), relief="sunken")
    style.configure("Error.Status.TLabel", foreground="#b00020")
    family = tkfont.nametofont("TkDefaultFont", root=root).actual("family")
    small = tkfont.Font(root=root, family=family, size=FONT_SIZE - 1)
    bold = tkfont.Font(root=root, family=family, size=FONT_SIZE,
                       weight="bold")
    root.p2p_fonts = (small, bold)  # Tk forgets fonts Python lets go
    style.configure("Small.TLabel", font=small)
    style.configure("StatName.TLabel", foreground="#444444")
    style.configure("StatValue.TLabel", font=bold)
    style.configure("Accent.TButton", font=bold)
    style.configure("Horizontal.TProgressbar", background="#2ca02c")
    style.configure("Thin.Horizontal.TProgressbar", thickness=8,
                    background="#ff7f0e")  # the colour of "played"


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
    parser.add_argument("--lang", choices=("pt", "en"),
                        help="language (default: from LANG/LC_ALL)")
    parser.add_argument("-o", "--output", default="downloads",
                        help="download folder (default downloads/)")
    parser.add_argument("--song", metavar="NAME",
                        help="search and select this song on open")
    parser.add_argument("--method", choices=list(p.ORDER_NAMES),
                        help="sending order (default: each seeder's own)")
    parser.add_argument("--prebuffer", type=cli.non_negative, default=2.0,
                        metavar="S", help="seconds of audio before playing")
    parser.add_argument("--loss", type=cli.probability, default=0.0,
                        metavar="P",
                        help="drop received datagrams on purpose")
    parser.add_argument("--rng-seed", type=int, metavar="N",
                        help="repeatable --loss")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    lang = args.lang or detect_language()
    return cli.run_main("gui", lambda: run(args, lang))


def make_output_folder(path: str, lang: str) -> None:
    """Create the download folder; cli.UsageError (one line) if it cannot
    be, as when ``path`` is a file."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise cli.UsageError(text(lang, "not_a_folder", path=path))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise cli.UsageError(text(lang, "cannot_create", path=path,
                                  text=exc.strerror or exc)) from None


def run(args, lang: str) -> int:
    seeders = leecher.read_seeders(args.seeders)
    if tk is None:
        print(text(lang, "no_tk"), file=sys.stderr)
        return cli.EXIT_USAGE
    try:
        if not (os.environ.get("DISPLAY") or
                os.environ.get("WAYLAND_DISPLAY")):
            raise tk.TclError("no DISPLAY")
        root = tk.Tk(className="p2p-facom")
    except tk.TclError:
        print(text(lang, "no_display"), file=sys.stderr)
        return cli.EXIT_USAGE
    try:
        make_output_folder(args.output, lang)
    except cli.UsageError:
        root.destroy()
        raise
    try:
        app = App(root, Settings(seeders, lang, args.output, args.song,
                                 args.method, prebuffer=args.prebuffer,
                                 loss=args.loss, rng_seed=args.rng_seed))
    except ImportError as exc:  # matplotlib: set-up not (fully) run
        root.destroy()
        raise cli.UsageError(f"{exc.name or exc} is missing: run "
                             f"./setup.sh install") from None
    try:
        root.mainloop()
    finally:
        app.close()
    return cli.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
