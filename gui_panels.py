"""The window's parts, built and relabelled (language switch), holding
their widgets; ``gui.App`` wires them to actions and events."""

from __future__ import annotations

import tkinter as tk
import tkinter.font as tkfont
from tkinter import ttk

import gui_state
import i18n
from gui_widgets import HEADING_PAD_PX, OneLine, Tooltip, heading_width
from i18n import N_

ORDERS = (None, "sequential", "random", "semi-random")
SEEDER_ROWS = 3
SONG_ROWS = 6       # asked for; the pane gives what fits (>= 5 at 1024x768)
RUN_ROWS = 4
ADDRESS_SAMPLE = "127.0.0.22:65535"  # the widest address a class types
STATE_SAMPLE = "alive · 999 ms"  # a state with its round-trip time


class Labels:
    """Widgets whose text is a msgid: set now and after every language
    switch."""

    def __init__(self):
        self.bound: list = []

    def bind(self, widget, message: str, option: str = "text"):
        self.bound.append(lambda: widget.configure(
            **{option: i18n._(message)}))
        self.bound[-1]()
        return widget

    def call(self, apply) -> None:
        """Run ``apply()`` now and after every language switch."""
        self.bound.append(apply)
        apply()

    def apply(self) -> None:
        for apply in self.bound:
            apply()


def table(parent, labels: Labels, columns, height: int,
          selectmode: str = "browse", wide: bool = False):
    """A Treeview with translated headings and a vertical scrollbar, in a
    frame of its own: (frame, tree).  columns = (id, msgid, width,
    anchor[, value msgids]); a column is widened to fit its heading and
    values in every language, so a switch never changes the layout."""
    frame = ttk.Frame(parent)
    tree = ttk.Treeview(frame, columns=[c[0] for c in columns],
                        show="headings", height=height,
                        selectmode=selectmode)
    heading_font = tkfont.nametofont("TkHeadingFont", root=parent)
    body_font = tkfont.nametofont("TkDefaultFont", root=parent)
    for column, message, width, anchor, *values in columns:
        fit = max([heading_width(heading_font, message)] +
                  [heading_width(body_font, value)
                   for value in (values[0] if values else ())])
        tree.column(column, width=max(width, fit), minwidth=fit,
                    anchor=anchor, stretch=column == columns[0][0])
        labels.call(lambda c=column, m=message:
                    tree.heading(c, text=i18n._(m)))
    bar = ttk.Scrollbar(frame, orient="vertical", command=tree.yview)
    tree.configure(yscrollcommand=bar.set)
    tree.grid(row=0, column=0, sticky="nsew")
    bar.grid(row=0, column=1, sticky="ns")
    if wide:  # more columns than the room: scroll sideways too
        across = ttk.Scrollbar(frame, orient="horizontal",
                               command=tree.xview)
        tree.configure(xscrollcommand=across.set)
        across.grid(row=1, column=0, sticky="ew")
    frame.columnconfigure(0, weight=1)
    frame.rowconfigure(0, weight=1)
    return frame, tree


class SeedersPanel:
    def __init__(self, parent, labels: Labels, addresses: str, refresh):
        self.frame = labels.bind(ttk.LabelFrame(parent, padding=4),
                                 N_("Seeders"))
        labels.bind(ttk.Label(self.frame), N_("Addresses:")).grid(
            row=0, column=0, sticky="w")
        self.var = tk.StringVar(value=addresses)
        entry = ttk.Entry(self.frame, textvariable=self.var, width=12)
        entry.grid(row=0, column=1, sticky="ew", padx=4)
        entry.bind("<Return>", lambda event: refresh())
        self.refresh_button = labels.bind(
            ttk.Button(self.frame, command=refresh), N_("Refresh"))
        self.refresh_button.grid(row=0, column=2)
        frame, self.tree = table(self.frame, labels, (
            ("address", N_("Address"), 120, "w", (ADDRESS_SAMPLE,)),
            ("state", N_("State"), 90, "w",
             (N_("no answer"), N_("gone"), STATE_SAMPLE)),
            ("order", N_("Order"), 96, "w",
             tuple(i18n.ORDER_NAMES.values())[1:])), height=SEEDER_ROWS)
        frame.grid(row=1, column=0, columnspan=3, sticky="nsew", pady=(4, 0))
        self.frame.columnconfigure(1, weight=1)
        self.frame.rowconfigure(1, weight=1)

    def fill(self, rows, gone: set) -> None:
        self.tree.delete(*self.tree.get_children())
        for row in rows:
            state = N_("gone") if row.address in gone else \
                N_("alive") if row.alive else N_("no answer")
            shown = i18n._(state)
            if row.alive and row.rtt_ms is not None and state != "gone":
                shown += " · " + i18n.decimal(
                    row.rtt_ms, 1 if row.rtt_ms < 10 else 0) + " ms"
            order = i18n.order_name(row.order) if row.alive else "—"
            self.tree.insert("", "end", values=(row.address, shown, order))


class SongsPanel:
    def __init__(self, parent, labels: Labels, search, download, typed):
        self.frame = labels.bind(ttk.LabelFrame(parent, padding=4),
                                 N_("Songs"))
        self.var = tk.StringVar()
        entry = ttk.Entry(self.frame, textvariable=self.var)
        entry.grid(row=0, column=0, sticky="ew", padx=(0, 4))
        entry.bind("<Return>", lambda event: search())
        entry.bind("<KeyRelease>", lambda event: typed())
        self.search_button = labels.bind(
            ttk.Button(self.frame, command=search), N_("Search"))
        self.search_button.grid(row=0, column=1)
        frame, self.tree = table(self.frame, labels, (
            ("name", N_("Name"), 140, "w"),
            ("size", N_("Size"), 70, "e"),
            ("duration", N_("Duration"), 70, "e"),
            ("sources", N_("Seeders"), 60, "center")), height=SONG_ROWS)
        frame.grid(row=1, column=0, columnspan=2, sticky="nsew",
                   pady=(4, 0))
        self.tree.bind("<Double-1>", lambda event: download())
        self.frame.columnconfigure(0, weight=1)
        self.frame.rowconfigure(1, weight=1)
        self.songs: list = []  # the songs listed, in the tree's order
        Tooltip(self.tree, self._hovered_name)

    def _hovered_name(self) -> str:
        """A long name cut by its column, in full."""
        tree = self.tree
        x = tree.winfo_pointerx() - tree.winfo_rootx()
        y = tree.winfo_pointery() - tree.winfo_rooty()
        row = tree.identify_row(y)
        if not row or tree.identify_column(x) != "#1":
            return ""
        name = self.songs[int(row)].info.name
        font = tkfont.nametofont("TkDefaultFont", root=tree)
        return name if font.measure(name) + 8 > tree.column("name",
                                                            "width") else ""

    def fill(self, songs, keep_selection: bool = False) -> None:
        selected = self.selected()
        self.songs = list(songs)
        tree = self.tree
        tree.delete(*tree.get_children())
        for n, song in enumerate(self.songs):
            tree.insert("", "end", iid=str(n), values=song_row(song))
        if keep_selection and selected in self.songs:
            self.select_index(self.songs.index(selected))

    def selected(self):
        selection = self.tree.selection()
        return self.songs[int(selection[0])] if selection else None

    def select_index(self, index: int) -> None:
        iid = str(index)
        self.tree.selection_set(iid)
        self.tree.focus(iid)
        self.tree.see(iid)


def song_row(song) -> tuple:
    """The song list's columns for one song: name, size, length,
    seeders (the terminal's ``leecher.print_songs`` shows the same)."""
    info = song.info
    return (info.name, i18n.size(info.size), i18n.duration(info.duration_ms),
            len(song.sources))


class DownloadPanel:
    def __init__(self, parent, labels: Labels, settings, actions: dict):
        self.frame = labels.bind(ttk.LabelFrame(parent, padding=4),
                                 N_("Download"))
        labels.bind(ttk.Label(self.frame), N_("Order:")).grid(
            row=0, column=0, sticky="nw", padx=(0, 4))
        self.order_var = tk.StringVar(value=settings.order or "own")
        self.order_buttons = {}
        for n, order in enumerate(ORDERS):
            button = labels.bind(ttk.Radiobutton(
                self.frame, variable=self.order_var, value=order or "own",
                style="Compact.TRadiobutton"), i18n.ORDER_NAMES[order])
            button.grid(row=n // 2, column=1 + n % 2, sticky="w",
                        padx=(0, 6))
            self.order_buttons[order] = button
        row = ttk.Frame(self.frame)
        row.grid(row=3, column=0, columnspan=3, sticky="ew", pady=0)
        self.preview_var = tk.BooleanVar(value=settings.preview)
        labels.bind(ttk.Checkbutton(row, variable=self.preview_var),
                    N_("Preview while downloading")).pack(side="left")
        self.prebuffer_var = tk.StringVar(value=str(settings.prebuffer))
        box = self.prebuffer_box = ttk.Spinbox(
            row, width=4, textvariable=self.prebuffer_var)
        box.pack(side="right")
        # Tk's own arrows read "2,5" as 2 and write "3.0": ours step in
        # the language in use (arrow keys and the mouse wheel too).
        for sequence, direction in (("<<Increment>>", 1),
                                    ("<<Decrement>>", -1)):
            box.bind(sequence, lambda event, d=direction:
                     self._step_prebuffer(d))
        labels.call(self._show_prebuffer)
        labels.bind(ttk.Label(row), N_("Prebuffer (s):")).pack(
            side="right", padx=(6, 4))
        self._build_share_row(labels, settings, actions["share"])
        buttons = ttk.Frame(self.frame)
        buttons.grid(row=5, column=0, columnspan=3, sticky="ew", pady=(1, 1))
        self.buttons = {}
        for key, message, style in (
                ("download", N_("Download"), "Accent.TButton"),
                ("download_again", N_("Download again"), "Compact.TButton"),
                ("stop_download", N_("Stop"), "Compact.TButton")):
            button = labels.bind(ttk.Button(buttons, command=actions[key],
                                            style=style), message)
            button.pack(side="left", fill="x", expand=key == "download",
                        padx=(0, 4))
            self.buttons[key] = button
        self.progress_bar = ttk.Progressbar(self.frame, maximum=100)
        self.progress_bar.grid(row=6, column=0, columnspan=3, sticky="ew",
                               pady=(1, 0))
        self.progress_label = ttk.Label(self.frame, style="Small.TLabel")
        self.progress_line = OneLine(self.progress_label,
                                     parent.winfo_toplevel().p2p_fonts[0])
        self.progress_label.grid(row=7, column=0, columnspan=3, sticky="ew")
        self.frame.columnconfigure(2, weight=1)

    def _step_prebuffer(self, direction: int) -> str:
        stepped = gui_state.prebuffer_step(self.prebuffer_var.get(),
                                           direction)
        if stepped is not None:
            self.prebuffer_var.set(stepped)
        return "break"  # not Tk's own step as well

    def _show_prebuffer(self) -> None:
        """The prebuffer in the language in use: 2,0 in Portuguese."""
        value = gui_state.prebuffer_value(self.prebuffer_var.get())
        if value is not None:
            self.prebuffer_var.set(gui_state.prebuffer_text(value))

    def _build_share_row(self, labels: Labels, settings, toggled) -> None:
        """The switch "Share with other listeners" (a download serves the
        pieces it verified to the song's other listeners) and, next to
        it, the chunks it served ("↑ 57 chunks": room is short, in
        Portuguese above all); the whole sentence in its tooltip."""
        row = ttk.Frame(self.frame)
        row.grid(row=4, column=0, columnspan=3, sticky="ew", pady=0)
        self.share_var = tk.BooleanVar(value=settings.share)
        self.share_button = labels.bind(
            ttk.Checkbutton(row, variable=self.share_var, command=toggled),
            N_("Share with other listeners"))
        self.share_button.pack(side="left")
        served = ttk.Label(row, style="Small.TLabel")
        served.pack(side="left", fill="x", expand=True, padx=(8, 0))
        self.served_tip = ""  # "Served to others: 57 chunks to 2 ..."
        self.served_line = OneLine(served, self.frame.winfo_toplevel()
                                   .p2p_fonts[0], lambda: self.served_tip)

    def show_served(self, chunks: int | None, sentence: str) -> None:
        """``chunks`` served (None: no download yet) and the sentence
        that tells it all."""
        self.served_tip = sentence
        self.served_line.show("" if chunks is None else i18n.text(
            N_("↑ {chunks} chunks"), chunks=chunks))

    def order(self) -> str | None:
        value = self.order_var.get()
        return None if value == "own" else value


class PlayerBar:
    """Play, pause, stop and the position: one row under everything."""

    def __init__(self, parent, labels: Labels, actions: dict):
        self.frame = ttk.Frame(parent, padding=(8, 2, 8, 2))
        self.buttons = {}
        for column, (key, message) in enumerate((
                ("play", N_("▶ Play")), ("pause", N_("❚❚ Pause")),
                ("stop_play", N_("■ Stop")))):
            button = labels.bind(ttk.Button(self.frame,
                                            command=actions[key]), message)
            button.grid(row=0, column=column, padx=(0, 4))
            self.buttons[key] = button
        self.position_bar = ttk.Progressbar(
            self.frame, maximum=1.0, length=160,
            style="Thin.Horizontal.TProgressbar")
        self.position_bar.grid(row=0, column=3, sticky="ew", padx=(6, 8))
        self.position_label = ttk.Label(self.frame)
        self.position_line = OneLine(self.position_label, tkfont.nametofont(
            "TkDefaultFont", root=parent))
        self.position_label.grid(row=0, column=4, sticky="ew")
        self.frame.columnconfigure(3, weight=1)
        self.frame.columnconfigure(4, weight=3)


def simulated_order_width(font) -> int:
    """Pixels the runs table's order column needs for the longest order
    with the simulated mark, in every language: the mark is what tells
    a simulated run from a real one."""
    return HEADING_PAD_PX + max(
        font.measure(i18n.translate(lang, N_("{order} (simulated)")).format(
            order=i18n.translate(lang, N_("semi-random"))))
        for lang in i18n.LANGUAGES)


class RunsPanel:
    """The session's runs, a table to pick some, and their comparison."""

    def __init__(self, parent, labels: Labels, actions: dict, background):
        from matplotlib.backends.backend_tkagg import FigureCanvasTkAgg
        from matplotlib.figure import Figure
        self.frame = ttk.Frame(parent, padding=4)
        top = ttk.Frame(self.frame)
        top.grid(row=0, column=0, sticky="nsew")
        frame, self.tree = table(top, labels, tuple(
            (column, message, width, "w" if column == "order" else "e")
            for column, message, width in gui_state.RUN_COLUMNS),
            height=RUN_ROWS, selectmode="extended", wide=True)
        frame.grid(row=0, column=0, sticky="nsew")
        fit = simulated_order_width(tkfont.nametofont("TkDefaultFont",
                                                      root=parent))
        self.tree.column("order", width=fit, minwidth=fit)
        self.tree.bind("<<TreeviewSelect>>",
                       lambda event: actions["compare"]())
        buttons = ttk.Frame(top)
        buttons.grid(row=1, column=0, sticky="ew", pady=(4, 0))
        self.buttons = {}
        for key, message in (("simulate", N_("Simulate")),
                             ("export_runs", N_("Export")),
                             ("clear_runs", N_("Clear"))):
            button = labels.bind(ttk.Button(buttons, command=actions[key]),
                                 message)
            button.pack(side="left", padx=(0, 4))
            self.buttons[key] = button
        note = ttk.Label(buttons, style="Small.TLabel")
        note.pack(side="left", fill="x", expand=True, padx=(8, 0))
        line = OneLine(note, parent.winfo_toplevel().p2p_fonts[0])
        labels.call(lambda: line.show(i18n._(
            "Simulate: the selected run's song and seeders, the order "
            "chosen now, on the simulated network.")))
        top.columnconfigure(0, weight=1)
        self.figure = Figure(figsize=(6, 3), dpi=100, facecolor=background)
        self.canvas = FigureCanvasTkAgg(self.figure, master=self.frame)
        self.canvas.get_tk_widget().configure(highlightthickness=0)
        self.canvas.get_tk_widget().grid(row=1, column=0, sticky="nsew",
                                         pady=(4, 0))
        self.frame.columnconfigure(0, weight=1)
        self.frame.rowconfigure(1, weight=1)

    def fill(self, runs) -> None:
        selected = set(self.tree.selection())
        self.tree.delete(*self.tree.get_children())
        for run in runs:
            self.tree.insert("", "end", iid=str(run.number),
                             values=gui_state.run_cells(run))
        keep = [iid for iid in selected if self.tree.exists(iid)]
        if keep:
            self.tree.selection_set(keep)

    def selected(self, runs) -> list:
        """The runs picked in the table; all of them when none is."""
        numbers = {int(iid) for iid in self.tree.selection()}
        return [run for run in runs if run.number in numbers] or list(runs)

    def simulation_base(self, runs):
        """The real run a simulation repeats: the first selected, else
        the last real one (None: no real run)."""
        real = [run for run in runs if not run.simulated]
        numbers = {int(iid) for iid in self.tree.selection()}
        picked = [run for run in real if run.number in numbers]
        return (picked or real or [None])[-1 if not picked else 0]

    def draw(self, runs) -> None:
        """The comparison of ``runs`` in the panel's figure."""
        import gui_plot
        self.figure.clear()
        if runs:
            gui_plot.draw_compare(self.figure, runs, small=True)
        self.canvas.draw_idle()


def build_menu(root, labels: Labels, app):
    """File, View and Language menus and their keys: (menu bar, the
    language's variable)."""
    bar = tk.Menu(root, tearoff=False)
    files = tk.Menu(bar, tearoff=False)
    entries = ((N_("Save plot (PNG)…"), app.files.ask_save_png),
               (N_("Save statistics (JSON)…"), app.files.ask_save_json),
               (N_("Save statistics (CSV)…"), app.files.ask_save_csv),
               (N_("Save capture (pcap)…"), app.files.ask_save_pcap),
               (N_("Export the compared runs"), app.files.export_runs))
    for _, command in entries:
        files.add_command(command=command)
    files.add_separator()
    files.add_command(command=app.close, accelerator="Ctrl+Q")
    view = tk.Menu(bar, tearoff=False)
    view.add_command(command=lambda: app.zoom(1),
                     accelerator="Ctrl++")
    view.add_command(command=lambda: app.zoom(-1),
                     accelerator="Ctrl+-")
    languages = tk.Menu(bar, tearoff=False)
    lang_var = tk.StringVar(value=i18n.language())
    for code, name in i18n.LANGUAGE_NAMES:
        languages.add_radiobutton(
            label=name, value=code, variable=lang_var,
            command=lambda: app.set_language(lang_var.get()))
    for menu in (files, view, languages):
        bar.add_cascade(menu=menu)
    root.configure(menu=bar)
    bind = root.bind_all
    bind("<Control-q>", lambda event: app.close())
    for key in ("<Control-plus>", "<Control-equal>", "<Control-KP_Add>"):
        bind(key, lambda event: app.zoom(1))
    for key in ("<Control-minus>", "<Control-KP_Subtract>"):
        bind(key, lambda event: app.zoom(-1))

    def apply():
        for index, message in enumerate((N_("File"), N_("View"),
                                         N_("Language"))):
            bar.entryconfigure(index, label=i18n._(message))
        for index, (message, _) in enumerate(entries):
            files.entryconfigure(index, label=i18n._(message))
        files.entryconfigure(len(entries) + 1, label=i18n._("Quit"))
        view.entryconfigure(0, label=i18n._("Bigger text"))
        view.entryconfigure(1, label=i18n._("Smaller text"))
    labels.call(apply)
    return bar, lang_var
