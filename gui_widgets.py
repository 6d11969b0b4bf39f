"""Small Tk widgets of the window: one-line labels cut with "…", tooltips,
a scrolled frame, the statistics panel, fonts and styles (with zoom)."""

from __future__ import annotations

import tkinter as tk
import tkinter.font as tkfont
from tkinter import ttk

import gui_state
import i18n
from i18n import N_

FONT_SIZE = 11          # readable on a projector at 1024x768
FONT_SIZES = (8, 20)    # the zoom's limits
HEADING_PAD_PX = 14     # a Treeview heading's padding and borders, + a margin
TOOLTIP_DELAY_MS = 500
COMPACT_BUTTON_PAD = (5, 3)  # px, x and y (the theme's: 5 and 5)
COMPACT_CHOICE_PAD = (2, 1)  # px (the theme's: 2 and 2)
NAMED_FONTS = ("TkDefaultFont", "TkTextFont", "TkMenuFont",
               "TkHeadingFont")


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


class Tooltip:
    """Shows ``text()`` in a small window while the pointer rests on
    ``widget`` (for names cut with "…")."""

    def __init__(self, widget, text):
        self.widget = widget
        self.text = text
        self.tip = None
        self.pending = None
        widget.bind("<Enter>", self._schedule, add="+")
        widget.bind("<Leave>", self.hide, add="+")
        widget.bind("<ButtonPress>", self.hide, add="+")

    def _schedule(self, event=None) -> None:
        self.hide()
        self.pending = self.widget.after(TOOLTIP_DELAY_MS, self.show)

    def show(self) -> None:
        self.pending = None
        words = self.text()
        if not words:
            return
        self.tip = tk.Toplevel(self.widget)
        self.tip.wm_overrideredirect(True)
        x = self.widget.winfo_rootx() + 10
        y = self.widget.winfo_rooty() + self.widget.winfo_height() + 4
        self.tip.wm_geometry(f"+{x}+{y}")
        tk.Label(self.tip, text=words, background="#ffffe0",
                 relief="solid", borderwidth=1, justify="left",
                 wraplength=600, padx=4, pady=2).pack()

    def hide(self, event=None) -> None:
        if self.pending is not None:
            self.widget.after_cancel(self.pending)
            self.pending = None
        if self.tip is not None:
            self.tip.destroy()
            self.tip = None


class OneLine:
    """Shows a text in ``label`` on one line, cut with "…" when it is
    wider than the label, the whole text in a tooltip.  The label asks
    for no width of its own: its text changes many times a second during
    a download, and if that widened the left column, the plot's canvas
    would shrink and be fully redrawn each time.  ``tip``: what the
    tooltip says instead (a longer sentence than the text)."""

    def __init__(self, label, font, tip=None):
        self.label = label
        self.font = font
        self.text = ""
        self.width = 0  # pixels for the text, once the label is laid out
        label.configure(width=1, anchor="w")
        label.bind("<Configure>", self._on_configure)
        Tooltip(label, tip or (lambda: self.text if self.cut() else ""))

    def show(self, text: str) -> None:
        if text != self.text:
            self.text = text
            self._fit()

    def cut(self) -> bool:
        return self.label.cget("text") != self.text

    def _on_configure(self, event) -> None:
        if event.width != self.width:
            self.width = event.width
            self._fit()

    def _fit(self) -> None:
        self.label.configure(text=ellipsized(self.text, self.width,
                                             self.font.measure))


class ScrolledFrame:
    """A frame (``inner``) in a canvas with a vertical scrollbar: for
    content taller than the room the window gives it."""

    def __init__(self, master):
        self.outer = ttk.Frame(master)
        background = ttk.Style(master).lookup("TFrame", "background")
        self.canvas = tk.Canvas(self.outer, highlightthickness=0,
                                borderwidth=0, height=60,
                                background=background or "white")
        bar = ttk.Scrollbar(self.outer, orient="vertical",
                            command=self.canvas.yview)
        self.canvas.configure(yscrollcommand=bar.set)
        self.inner = ttk.Frame(self.canvas)
        self._window = self.canvas.create_window((0, 0), window=self.inner,
                                                 anchor="nw")
        self.canvas.grid(row=0, column=0, sticky="nsew")
        bar.grid(row=0, column=1, sticky="ns")
        self.outer.columnconfigure(0, weight=1)
        self.outer.rowconfigure(0, weight=1)
        self.inner.bind("<Configure>", self._on_inner)
        self.canvas.bind("<Configure>", self._on_canvas)

    def _on_inner(self, event) -> None:
        self.canvas.configure(scrollregion=self.canvas.bbox("all"))

    def _on_canvas(self, event) -> None:
        self.canvas.itemconfigure(self._window, width=event.width)


# ---------------------------------------------------------- statistics
STAT_NAMES = {
    "startup_s": N_("Start-up delay"),
    "continuity": N_("Continuity"),
    "stalls": N_("Stalls (time)"),
    "played_s": N_("Played"),
    "nacks_sent": N_("NACKs sent"),
    "chunks_retransmitted": N_("Retransmitted"),
    "chunks_received": N_("Received"),
    "chunks": N_("Chunks"),
    "elapsed_s": N_("Elapsed"),
    "goodput_Bps": N_("Goodput"),
    "size": N_("Size"),
    "duplicates": N_("Duplicates"),
    "datagrams_dropped_by_leecher": N_("Dropped on purpose"),
    "seeders_gone": N_("Seeders gone"),
    "per_peer": N_("Chunks per source"),
    "served": N_("Served to others"),
}
HINT_ROW = ()  # where the line explaining continuity goes
# Rows of two (left, right: continuity next to start-up) or of one, wide,
# across the panel.  At 1024x768 the panel shows three rows and a half
# (with the demo's note in Portuguese): what was served to others is the
# third, not below the fold; the line explaining continuity comes next.
STAT_LAYOUT = (
    ("startup_s", "continuity"), ("stalls", "played_s"), ("served",),
    HINT_ROW,
    ("nacks_sent", "chunks_retransmitted"), ("chunks_received", "chunks"),
    ("elapsed_s", "goodput_Bps"), ("size", "duplicates"),
    ("datagrams_dropped_by_leecher", "seeders_gone"),
    ("per_peer",),
)
NO_BREAK = "\u00a0"  # a space where a wrapped line may not break
WIDE_STATS = tuple(keys[0] for keys in STAT_LAYOUT if len(keys) == 1)
WIDE_MARGIN_PX = 12     # right of a wide row's text: the scrollbar's side
WIDE_MIN_PX = 120       # a wide row wraps no narrower, whatever the panel
CONTINUITY_HINT = N_(
    "Continuity: share of chunks that arrived before their turn to play "
    "(counted from the first sound; read it with the start-up delay).")


def stat_text(key: str, stats: dict) -> str:
    """One statistic as the panel shows it ("—" when unknown)."""
    value = stats.get(key)
    if key == "per_peer":
        return per_peer_text(gui_state.per_peer(stats),
                             stats.get("sources") or {})
    if key == "served":
        return served_text(stats)
    if key == "seeders_gone":
        return ", ".join(value) if value else "—"
    if value is None:
        return "—"
    if key == "size":
        return i18n.size(value)
    if key == "goodput_Bps":
        return i18n.size(value) + "/s"
    if key == "stalls" and stats.get("stall_s") is not None:
        return f"{value} ({i18n.seconds(stats['stall_s'])})"
    if key.endswith("_s"):
        return i18n.seconds(value)
    if key == "continuity":
        return i18n.decimal(100 * value, 1) + " %"
    return str(value)


def per_peer_text(counts: dict, kinds: dict) -> str:
    """'seeder 127.0.0.1: 24  ·  peer 127.0.0.22: 23' (ports only when
    they differ), seeders first; ``kinds``: {address: "seeder" or
    "peer"}, a source missing from it is a seeder."""
    labels = gui_state.source_labels({
        address: kinds.get(address, gui_state.SEEDER) for address in counts})
    return "  ·  ".join(  # a wrapped line breaks between sources only
        f"{labels[address]}: {count}".replace(" ", NO_BREAK)
        for address, count in sorted(
            counts.items(), key=lambda item: (
                kinds.get(item[0], gui_state.SEEDER) != gui_state.SEEDER,
                item[0]))) or "—"


def served_text(stats: dict) -> str:
    """'120 chunks to 3 listener(s)', from the live counters or the
    final statistics (``served_to``: who got how many)."""
    chunks = stats.get("served_chunks")
    if chunks is None:
        return "—"
    if not chunks and stats.get("shared") is False:
        return i18n._("not sharing")
    peers = stats.get("served_peers", len(stats.get("served_to") or {}))
    return i18n.text(N_("{chunks} chunks to {peers} listener(s)"),
                     chunks=chunks, peers=peers)


class StatsPanel:
    """Every number of the terminal report, in two columns that scroll,
    start-up and continuity first, with a line explaining continuity."""

    def __init__(self, master):
        self.frame = ttk.LabelFrame(master, padding=(6, 2, 2, 4))
        self.scrolled = ScrolledFrame(self.frame)
        self.scrolled.outer.pack(fill="both", expand=True)
        body = self.scrolled.inner
        self.names: dict = {}
        self.values: dict = {}
        for row, keys in enumerate(STAT_LAYOUT):
            span = 3 if len(keys) == 1 else 1  # a wide one: the whole row
            for column, key in enumerate(keys):
                self._add(body, key, row, 2 * column, span=span)
        body.bind("<Configure>", self._wrap_wide, add="+")
        self.hint = ttk.Label(body, style="Small.TLabel")
        self.hint_line = OneLine(self.hint, master.winfo_toplevel()
                                 .p2p_fonts[0])
        self.hint.grid(row=STAT_LAYOUT.index(HINT_ROW), column=0,
                       columnspan=4, sticky="ew", pady=(0, 2))
        body.columnconfigure(1, weight=1)
        body.columnconfigure(3, weight=1)
        self.stats: dict = {}
        self.shown = Shown()
        self.relabel()

    def _add(self, body, key: str, row: int, column: int,
             span: int = 1) -> None:
        name = ttk.Label(body, style="StatName.TLabel")
        value = ttk.Label(body, text="—", style="StatValue.TLabel")
        name.grid(row=row, column=column, sticky="w", padx=(0, 4))
        value.grid(row=row, column=column + 1, columnspan=span,
                   sticky="w", padx=(0, 8))
        self.names[key] = name
        self.values[key] = value

    def _wrap_wide(self, event) -> None:
        """The rows that span the panel wrap at its width (a swarm may
        have many sources)."""
        for key in WIDE_STATS:
            value = self.values[key]
            room = event.width - value.winfo_x() - WIDE_MARGIN_PX
            self.shown.show(value, wraplength=max(room, WIDE_MIN_PX))

    def show(self, stats: dict) -> None:
        """``stats``: the download's (final) or the live counters."""
        self.stats = stats
        for key, label in self.values.items():
            self.shown.show(label, text=stat_text(key, stats))
        self._show_title()

    def relabel(self) -> None:
        self._show_title()
        for key, label in self.names.items():
            label.configure(text=i18n._(STAT_NAMES[key]) + ":")
        self.hint_line.show(i18n._(CONTINUITY_HINT))

    def _show_title(self) -> None:
        name = self.stats.get("file")
        self.shown.show(self.frame, text=i18n.text(
            N_("Statistics — {name}"), name=name) if name
            else i18n._("Statistics"))


# ---------------------------------------------------------------- style
def heading_width(font, message: str) -> int:
    """Pixels a Treeview column needs to show ``message`` in every
    language: the text, the heading's padding and border."""
    return HEADING_PAD_PX + max(font.measure(i18n.translate(lang, message))
                                for lang in i18n.LANGUAGES)


class Shown:
    """Configures widgets only with what changed since the last time.
    Every Tk call (a ``cget`` too) lets the GIL go, and a busy thread
    (download, player, plot painter) may keep it for a switch interval
    before the Tk thread gets it back."""

    def __init__(self):
        self.options: dict = {}  # widget name -> options last given

    def show(self, widget, **options) -> None:
        shown = self.options.setdefault(str(widget), {})
        changed = {key: value for key, value in options.items()
                   if shown.get(key) != value}
        if changed:
            widget.configure(**changed)
            shown.update(changed)


def enable(widget, on: bool) -> None:
    widget.state(["!disabled"] if on else ["disabled"])


def setup_style(root, size: int = FONT_SIZE) -> None:
    """Fonts big enough for a projector, the clam theme, status styles."""
    style = ttk.Style(root)
    if "clam" in style.theme_names():
        style.theme_use("clam")
    family = tkfont.nametofont("TkDefaultFont", root=root).actual("family")
    root.p2p_fonts = (  # Tk forgets fonts Python lets go
        tkfont.Font(root=root, family=family, size=size - 1),
        tkfont.Font(root=root, family=family, size=size, weight="bold"))
    set_font_size(root, size)
    style.configure("Treeview.Heading", font="TkHeadingFont")
    style.configure("TLabelframe.Label", font="TkHeadingFont")
    style.configure("Status.TLabel", padding=(10, 3), relief="sunken")
    style.configure("Error.Status.TLabel", foreground="#b00020")
    small, bold = root.p2p_fonts
    style.configure("Small.TLabel", font=small)
    style.configure("StatName.TLabel", foreground="#444444")
    style.configure("StatValue.TLabel", font=bold)
    # The download panel's rows, a few px shorter than the theme's (5 px
    # and 2 px of padding): at 1024x768 the songs table above them keeps
    # five rows with the share switch and the demo's note.
    style.configure("Accent.TButton", font=bold, padding=COMPACT_BUTTON_PAD)
    style.configure("Compact.TButton", padding=COMPACT_BUTTON_PAD)
    style.configure("Compact.TRadiobutton", padding=COMPACT_CHOICE_PAD)
    style.configure("Horizontal.TProgressbar", background="#2ca02c")
    style.configure("Thin.Horizontal.TProgressbar", thickness=8,
                    background="#ff7f0e")  # the colour of "played"


def set_font_size(root, size: int) -> int:
    """Every font of the window at ``size`` points (within FONT_SIZES);
    rows of tables follow.  Returns the size set."""
    size = max(FONT_SIZES[0], min(FONT_SIZES[1], size))
    for name in NAMED_FONTS:
        tkfont.nametofont(name, root=root).configure(size=size)
    tkfont.nametofont("TkHeadingFont", root=root).configure(weight="bold")
    small, bold = root.p2p_fonts
    small.configure(size=size - 1)
    bold.configure(size=size)
    line = tkfont.nametofont("TkDefaultFont", root=root).metrics("linespace")
    ttk.Style(root).configure("Treeview", rowheight=line + 4)
    return size
