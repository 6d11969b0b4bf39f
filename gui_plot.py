"""The window's plots: the live chunk plot and the runs' comparison.

The live plot shows, per chunk (y) and time since the request (x), when it
was sent (the seeder's clock), received (a colour per source: seeders in
one palette of round dots, peers in a family of dark diamonds), played,
and the NACKs and retransmissions; a dashed line marks the chunk playing
now.
Its data lines are blitted on a cached background (axes, ticks, legend)
that a thread of its own paints (``BackgroundPainter``), at most every
``PLOT_EVERY_S``.

The comparison overlays, for several runs, the chunks downloaded in order
(what the player could play) and the chunks played, as ``experiment``'s
PNG does.

matplotlib is imported inside the functions: ``import gui_plot`` is cheap.
"""

from __future__ import annotations

import textwrap
import threading
from dataclasses import dataclass, replace

import gui_state
import i18n
from i18n import N_

PLOT_EVERY_S = 0.25     # the plot is redrawn at most this often
# Points per series on the screen (the axes are ~600 px wide).  Not more:
# numpy lets the GIL go in loops over more than 500 items, and each time
# the Tk thread then waits to get it back from the busy download thread.
LIVE_POINTS = 500
SAVE_POINTS = 20000     # per series in a saved PNG
X_START_S = 2.0         # the x axis's first limit; it doubles as needed
SETTLE_S = 1.0          # no new data this long: x fits the data again
PLOT_SIZE = (6.0, 3.4)  # inches, until the window gives it its size
PLOT_DPI = 100

SERIES = (  # name, label, matplotlib style
    ("sent", N_("sent"),
     dict(ls="none", marker="o", ms=6, mfc="none", mew=1.0,
          color="#1f77b4", zorder=2)),
    ("played", N_("played"),
     dict(drawstyle="steps-post", lw=2.6, color="#ff7f0e", zorder=5)),
    ("rtx", N_("retransmitted"),
     dict(ls="none", marker="o", ms=10, mfc="none", mew=2.0,
          color="#d62728", zorder=4)),
    ("nack", N_("NACK"),
     dict(ls="none", marker="x", ms=8, mew=2.0, color="#9467bd",
          zorder=4)),
)
PLAYHEAD_STYLE = dict(ls="--", lw=1.4, color="#ff7f0e", zorder=1)
# Received chunks, a colour per source.  Seeders: round dots in these;
# past the palette they share its last colour.
SOURCE_COLOURS = ("#2ca02c", "#17becf", "#8c564b", "#e377c2", "#bcbd22",
                  "#7f7f7f")
RECEIVED_STYLE = dict(ls="none", marker="o", ms=3.4, zorder=3)
# Peers (other listeners): diamonds in dark blues and purples, a family
# no seeder and no other series uses.  The peers past the palette are
# one series, "other peers": the legend and the lines stay bounded
# whatever the swarm's size.
PEER_COLOURS = ("#08306b", "#6a3d9a", "#005f73", "#9b2226", "#3f007d",
                "#525252")
PEER_STYLE = dict(ls="none", marker="D", ms=3.6, zorder=3)
OTHER_PEERS = "*"       # the series of the peers without a colour of their own
RUN_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e",
               "#e6ab02")


def thinned(values: list, most: int) -> list:
    """At most about ``most`` of ``values``, evenly spread."""
    step = -(-len(values) // most)
    return values if step <= 1 else values[::step]


def source_styles(sources: tuple) -> list[dict]:
    """The style of each (address, kind) of ``sources``: numbered within
    its kind, seeders in SOURCE_COLOURS, peers in PEER_COLOURS."""
    styles, counts = [], {}
    for _, kind in sources:
        number = counts.get(kind, 0)
        counts[kind] = number + 1
        style, colours = (RECEIVED_STYLE, SOURCE_COLOURS) \
            if kind == gui_state.SEEDER else (PEER_STYLE, PEER_COLOURS)
        styles.append(dict(style,
                           color=colours[min(number, len(colours) - 1)]))
    return styles


def source_legend(sources: tuple) -> tuple:
    """The legend's label of each (address, kind) of ``sources``, in the
    language in use: "seeder 127.0.0.1", "peer 127.0.0.22:40001"."""
    named = gui_state.source_labels({address: kind for address, kind
                                     in sources if address != OTHER_PEERS})
    return tuple(named.get(address) or i18n._("other peers")
                 for address, _ in sources)


# The legend: two rows while its columns fit the figure's width, else
# as many columns as fit (a swarm's addresses are long).  Its width is
# estimated, not measured: measuring text needs a renderer, and this
# runs before the figure is drawn.
LEGEND_PT = 8.5
# Measured on the legends drawn (DejaVu Sans, addresses and words):
# ~0.60 em a character and ~1.8 em a column besides; a small margin.
LEGEND_CHAR_EM = 0.62
LEGEND_ENTRY_EM = 2.0


def legend_columns(labels, width_px: float, dpi: float) -> int:
    """How many columns the legend of ``labels`` gets in ``width_px``:
    half as many as labels (two rows) when they fit, else fewer."""
    em = LEGEND_PT * dpi / 72
    most = max(1, -(-len(labels) // 2))
    for columns in range(most, 1, -1):
        if legend_width_em(labels, columns) * em <= width_px:
            return columns
    return 1


def legend_width_em(labels, columns: int) -> float:
    """The legend's estimated width with ``columns`` columns, filled as
    matplotlib fills them (down each column; the first ones one longer
    when the labels do not divide evenly)."""
    rows, long_columns = divmod(len(labels), columns)
    width, start = 0.0, 0
    for column in range(columns):
        count = rows + (column < long_columns)
        chunk = labels[start:start + count]
        start += count
        width += max(map(len, chunk), default=0) * LEGEND_CHAR_EM + \
            LEGEND_ENTRY_EM
    return width


@dataclass(frozen=True)
class Look:
    """Everything the plot's background depends on."""

    inches: tuple        # the figure's (width, height) on the screen
    dpi: float           # the figure's on the screen (100 x Tk's scaling)
    x_limit: float
    y_limits: tuple
    labels: tuple        # x label, y label, then one per SERIES
    sources: tuple = ()  # (address, kind) of each source, first seen first
    source_labels: tuple = ()  # the legend's, one per source


def decorated_figure(look: Look, background: str):
    """A figure with the plot's axes, grid, labels and legend, and one
    empty line per series and per source: (figure, axes, lines)."""
    from matplotlib.figure import Figure
    figure = Figure(figsize=look.inches, dpi=look.dpi, facecolor=background)
    axes = figure.add_subplot()
    lines = {name: axes.plot([], [], label=label, **style)[0]
             for (name, _, style), label in zip(SERIES, look.labels[2:])}
    for (source, _), style, label in zip(look.sources,
                                         source_styles(look.sources),
                                         look.source_labels):
        lines[("received", source)] = axes.plot([], [], label=label,
                                                **style)[0]
    lines["playhead"] = axes.plot([], [], **PLAYHEAD_STYLE)[0]
    axes.grid(True, alpha=0.3)
    axes.tick_params(labelsize=10)
    axes.set_xlabel(look.labels[0], fontsize=11)
    axes.set_ylabel(look.labels[1], fontsize=11)
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0),
                ncols=legend_columns(look.labels[2:] + look.source_labels,
                                     look.inches[0] * look.dpi, look.dpi),
                frameon=False, fontsize=LEGEND_PT, handlelength=1.2,
                handletextpad=0.3, columnspacing=0.9, borderaxespad=0.2)
    axes.set_xlim(0, look.x_limit)
    axes.set_ylim(*look.y_limits)
    return figure, axes, lines


@dataclass(frozen=True)
class Painting:
    look: Look
    rgba: object         # numpy array (height, width, 4)
    axes_box: object     # the axes' position in the figure (a Bbox)


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
        self.legend_key = None  # labels and sources of the figure
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
        legend_key = (look.labels, look.sources, look.source_labels)
        if legend_key != self.legend_key:
            self.figure, self.axes, _ = decorated_figure(look,
                                                         self.background)
            self.canvas = FigureCanvasAgg(self.figure)
            self.legend_key = legend_key
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
        size, legend, digits of the limits."""
        key = (look.inches, look.dpi, self.legend_key,
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
    doubles, a new source in the legend, a language switch, a resize.
    """

    def __init__(self, master, background: str = "white"):
        from matplotlib.backends.backend_tkagg import FigureCanvasTkAgg
        from matplotlib.figure import Figure
        self.figure = Figure(figsize=PLOT_SIZE, dpi=PLOT_DPI,
                             facecolor=background)
        self.axes = self.figure.add_subplot()
        self.axes.set_axis_off()  # the painter draws all that
        self.lines = {name: self._line(style)
                      for name, _, style in SERIES}
        self.lines["playhead"] = self._line(PLAYHEAD_STYLE)
        self.canvas = FigureCanvasTkAgg(self.figure, master=master)
        self.widget = self.canvas.get_tk_widget()
        self.canvas.mpl_connect("draw_event", self._on_full_draw)
        self.painter = BackgroundPainter(background)
        self.painter.start()
        self.data: dict = {name: ([], []) for name, _, _ in SERIES}
        self.chunks = 1
        self.playing = None  # the chunk playing now
        self.title = ""
        self.x_max = 0.0
        self.seeders: frozenset = frozenset()  # the song's: others are peers
        self.look = Look(self._inches(), self.figure.dpi, X_START_S,
                         (0, 1), self._labels())
        self.shown: Painting | None = None  # the background on screen
        self.background = None  # the same, as the canvas keeps it
        self.dirty = True
        self.drawn_at = 0.0
        self.painter.paint(self.look)

    def _line(self, style: dict):
        return self.axes.plot([], [], animated=True, **style)[0]

    def _inches(self) -> tuple:
        """The figure's size, as the canvas set it: a background painted
        at this size and dpi has the same pixels as the canvas."""
        return tuple(self.figure.get_size_inches())

    def _fits(self, painting: Painting | None) -> bool:
        return painting is not None and painting.look.dpi == \
            self.figure.dpi and painting.look.inches == self._inches()

    @staticmethod
    def _labels() -> tuple:
        return (i18n._("time since the request (s)"),
                i18n._("chunk index"),
                *(i18n._(label) for _, label, _ in SERIES))

    def _want(self, **changes) -> None:
        self.look = replace(self.look, **changes)
        self.painter.paint(self.look)

    @property
    def points(self) -> int:
        return sum(len(xs) for xs, _ in self.data.values())

    def reset(self, chunks: int, title: str, sources: tuple = (),
              seeders=None) -> None:
        """A new download: no data; ``sources``, the seeders expected,
        get their colours now (one new background, not one per seeder
        as their first chunks come).  ``seeders``: all the song's
        seeders (default: ``sources``); any other source is a peer."""
        for line in [k for k in self.lines if isinstance(k, tuple)]:
            del self.lines[line]
        self.data = {name: ([], []) for name, _, _ in SERIES}
        self.chunks = max(chunks, 1)
        self.playing = None
        self.title = title
        self.x_max = 0.0
        self.dirty = True
        self.seeders = frozenset(sources if seeders is None else seeders)
        kinds = tuple((source, gui_state.source_kind(source, self.seeders))
                      for source in sources)
        for (source, _), style in zip(kinds, source_styles(kinds)):
            self.data[("received", source)] = ([], [])
            self.lines[("received", source)] = self._line(style)
        self._want(x_limit=X_START_S, y_limits=(-0.5, self.chunks - 0.5),
                   sources=kinds, source_labels=source_legend(kinds))

    def add(self, series, x: float, y: int) -> None:
        """A point of ``series``: a SERIES name, or ("received", source)
        (a source seen for the first time gets its colour)."""
        if series not in self.data:
            series = self._new_source(series[1])
        xs, ys = self.data[series]
        xs.append(x)
        ys.append(y)
        if x > self.x_max:
            self.x_max = x
        if series == "played":
            self.playing = y
        self.dirty = True

    def _new_source(self, source: str) -> tuple:
        """The series of a new source: its own, or for a peer past the
        peers' palette the "other peers" one (made the first time)."""
        kind = gui_state.source_kind(source, self.seeders)
        coloured = sum(k == gui_state.PEER for a, k in self.look.sources
                       if a != OTHER_PEERS)
        if kind == gui_state.PEER and coloured >= len(PEER_COLOURS) - 1:
            source = OTHER_PEERS
            if ("received", source) in self.data:
                return ("received", source)
        kinds = self.look.sources + ((source, kind),)
        self.data[("received", source)] = ([], [])
        self.lines[("received", source)] = self._line(
            source_styles(kinds)[-1])
        self._want(sources=kinds, source_labels=source_legend(kinds))
        return ("received", source)

    def relabel(self) -> None:
        self._want(labels=self._labels(),
                   source_labels=source_legend(self.look.sources))

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

    def _put_data(self, lines: dict, most: int, x_limit: float) -> None:
        for name, (xs, ys) in self.data.items():
            lines[name].set_data(thinned(xs, most), thinned(ys, most))
        if self.playing is None:
            lines["playhead"].set_data([], [])
        else:
            lines["playhead"].set_data([0, x_limit],
                                       [self.playing, self.playing])

    def _draw_lines(self) -> None:
        self._put_data(self.lines, LIVE_POINTS, self.look.x_limit)
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

    def save_png(self, path: str, title: str) -> None:
        """The plot at 150 dpi with ``title``, up to SAVE_POINTS points a
        series."""
        look = replace(self.look, x_limit=self._tight_x_limit(),
                       inches=(10.0, 6.0), dpi=100)
        figure, axes, lines = decorated_figure(look,
                                               self.figure.get_facecolor())
        figure.suptitle(title, fontsize=13)
        figure.set_layout_engine("constrained")
        self._put_data(lines, SAVE_POINTS, look.x_limit)
        figure.savefig(path, dpi=150)

    def close(self) -> None:
        self.painter.close()
        # Not left drawing when the interpreter exits: that would abort.
        self.painter.join(timeout=5.0)


# ------------------------------------------------------------- compare
def compare_figure(runs: list):
    """A figure of its own for ``runs`` (a saved PNG)."""
    from matplotlib.figure import Figure
    figure = Figure(figsize=(10.0, 6.0), dpi=100)
    draw_compare(figure, runs)
    return figure


def draw_compare(figure, runs: list, small: bool = False) -> None:
    """The runs overlaid on ``figure``: chunks downloaded in order (solid
    steps) and chunks played (dashed), one colour per run.  A simulated
    run (``App.simulate``) is drawn the same way, its mark in its label."""
    scale = 0.8 if small else 1.0
    figure.set_layout_engine("constrained")
    axes = figure.add_subplot()
    for number, run in enumerate(runs):
        colour = RUN_COLOURS[number % len(RUN_COLOURS)]
        width = max(1.2, 3.6 - 0.8 * number) * scale  # equal curves show
        times, ready = gui_state.in_order_curve(run.received)
        axes.step(times, ready, where="post", color=colour, lw=width,
                  label=i18n.text(N_("{run}: downloaded in order"),
                                  run=f"#{run.number} {run.order_text()}"))
        times, played = gui_state.played_curve(run.played)
        if times:
            axes.plot(times, played, color=colour, lw=max(1.0, width - 1),
                      ls="--", label=i18n.text(N_("{run}: played"),
                                               run=f"#{run.number}"))
    title = gui_state.compare_title(runs)
    axes.set_title(textwrap.fill(title, 60) if small else title,
                   fontsize=12 * scale)
    axes.set_xlabel(i18n._("time since the request (s)"),
                    fontsize=11 * scale)
    axes.set_ylabel(i18n._("chunks"), fontsize=11 * scale)
    axes.tick_params(labelsize=10 * scale)
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=9 * scale, loc="lower right")
