"""Candidate fixes for the window's event-loop lag, patched in at run time
(benchmarks only: bench/gui_latency.py --patch NAME,...).  gui.py is not
changed; these show what a change to it would bring.

* ``thin``: the live plot draws at most 2000 points per series (the axes
  are ~600 pixels wide) instead of 20000; ``save_png`` still draws all.
* ``switch``: ``sys.setswitchinterval(0.001)``: the Tk thread waits at
  most 1 ms (not 5 ms) for the GIL held by the download's worker thread.
* ``xstart`` (with ``blit``): the x axis starts at 16 s, not 1 s.
* ``blit``: the axes, ticks, labels and legend are drawn once into a
  cached background; an update restores it and draws only the five lines
  (``draw_artist`` + ``blit``).  The x limit grows by doubling, so a full
  redraw (with the constrained layout) happens only when it changes, on a
  new download, or when Tk resizes the canvas.
"""

from __future__ import annotations

import time


def patch_thin(gui) -> None:
    live_points = 2000
    plot = gui.ChunkPlot
    redraw, save = plot.redraw_if_due, plot.save_png

    def thinned(values):
        step = -(-len(values) // gui.MAX_PLOT_POINTS)
        return values if step <= 1 else values[::step]

    def live_thinned(values):
        step = -(-len(values) // live_points)
        return values if step <= 1 else values[::step]

    def save_png(self, path):
        gui.thinned = thinned
        try:
            save(self, path)
        finally:
            gui.thinned = live_thinned
    gui.thinned = live_thinned
    plot.redraw_if_due, plot.save_png = redraw, save_png


def patch_blit(gui) -> None:
    plot = gui.ChunkPlot
    init, orig_reset, save = plot.__init__, plot.reset, plot.save_png

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self._background = None
        self._x_limit = 1.0
        for line in self.lines.values():
            line.set_animated(True)  # left out of full draws
        self.canvas.mpl_connect("draw_event", lambda event: _keep(self))

    def _keep(self):
        """After every full draw (ours, or Tk's on a resize): keep the
        background and put the lines back on it."""
        self._background = self.canvas.copy_from_bbox(self.figure.bbox)
        _draw_lines(self)

    def _draw_lines(self):
        for line in self.lines.values():
            self.axes.draw_artist(line)
        self.canvas.blit(self.figure.bbox)

    def reset(self, chunks, title):
        orig_reset(self, chunks, title)
        self._x_limit = 1.0
        self._background = None

    def redraw_if_due(self, now, force=False):
        if not self.dirty or (not force and
                              now - self.drawn_at < gui.PLOT_EVERY_S):
            return
        for name, (xs, ys) in self.data.items():
            self.lines[name].set_data(gui.thinned(xs), gui.thinned(ys))
        want = max(1.0, self.x_max * 1.04)
        if want > self._x_limit or self._background is None or force:
            while self._x_limit < want:
                self._x_limit *= 2
            self.axes.set_xlim(0, self._x_limit)
            self.canvas.draw()  # full draw; draw_event calls _keep
        else:
            self.canvas.restore_region(self._background)
            _draw_lines(self)
        self.dirty = False
        self.drawn_at = now

    def save_png(self, path):
        for line in self.lines.values():
            line.set_animated(False)
        try:
            save(self, path)
        finally:
            for line in self.lines.values():
                line.set_animated(True)

    plot.__init__, plot.reset, plot.redraw_if_due, plot.save_png = (
        __init__, reset, redraw_if_due, save_png)


def patch_switch(gui) -> None:
    import sys
    sys.setswitchinterval(0.001)


def patch_xstart(gui) -> None:
    """With ``blit``: the x axis starts at 16 s instead of 1 s, so that a
    fast download needs no full redraw for a growing x limit."""
    plot = gui.ChunkPlot
    reset = plot.reset

    def start_wide(self, chunks, title):
        reset(self, chunks, title)
        self._x_limit = 16.0
    plot.reset = start_wide


def patch_trace(gui) -> None:
    """Print to stderr every full draw of the plot: when, how long, and
    the caller chain (to find what triggers them)."""
    import sys
    import traceback
    from matplotlib.backends.backend_tkagg import FigureCanvasTkAgg
    draw = FigureCanvasTkAgg.draw

    def traced(self):
        start = time.monotonic()
        draw(self)
        took = (time.monotonic() - start) * 1000
        where = " < ".join(f"{f.name}" for f in
                           reversed(traceback.extract_stack()[-6:-1]))
        print(f"full draw {took:6.1f} ms at {start:.3f}: {where}",
              file=sys.stderr)
    FigureCanvasTkAgg.draw = traced
    resize = FigureCanvasTkAgg.resize

    def traced_resize(self, event):
        print(f"canvas resized to {event.width}x{event.height} at "
              f"{time.monotonic():.3f}", file=sys.stderr)
        resize(self, event)
    FigureCanvasTkAgg.resize = traced_resize


PATCHES = {"trace": patch_trace, "thin": patch_thin, "blit": patch_blit, "switch": patch_switch,
           "xstart": patch_xstart}


def apply(names: str, gui) -> None:
    for name in filter(None, (names or "").split(",")):
        PATCHES[name](gui)
    gui._whatif_applied_at = time.monotonic()
