"""The demo's first run (``gui.py --autostart``): the window downloads
its ``--song`` by itself, preview on, as soon as the seeders have listed
it, and a note above everything says so and what to try next.  When no
seeder answers or none has the song, the note says that instead.

A window opened without ``--autostart`` waits for a click, as always.
"""

from __future__ import annotations

from tkinter import ttk

import cli
import i18n
from i18n import N_

NOTE_PAD = (10, 3)        # px around the text: short, for 1024x768
NOTE_BACKGROUND = "#fff4c2"  # a pale yellow: a note, not an error
NOTE_BORDER = "#d9b300"

STARTED = N_("Demo: this first download started by itself ({song}, "
             "order: {order}, preview on). Next: pick another order and "
             "press “Download again”, then compare the runs in the "
             "“Runs and comparison” tab.")
NO_SEEDER = N_("Demo: no seeder answered ({addresses}), so the first "
               "download did not start: check that the seeders run and "
               "press Refresh.")
NO_SONG = N_("Demo: no seeder has {song}, so the first download did not "
             "start: pick a song in the list and press Download.")


class Note:
    """A pale banner across the top of the window with a Hide button;
    hidden until ``show``.  Its text follows language switches."""

    def __init__(self, root, labels):
        style = ttk.Style(root)
        style.configure("Note.TFrame", background=NOTE_BACKGROUND,
                        bordercolor=NOTE_BORDER, relief="solid")
        style.configure("Note.TLabel", background=NOTE_BACKGROUND)
        self.frame = ttk.Frame(root, style="Note.TFrame", padding=NOTE_PAD,
                               borderwidth=1)
        # the button first: packed after the wrapping label it would get
        # what is left, and be cut
        self.hide_button = labels.bind(
            ttk.Button(self.frame, command=self.hide), N_("Hide"))
        self.hide_button.pack(side="right", padx=(8, 0))
        self.label = ttk.Label(self.frame, style="Note.TLabel",
                               justify="left")
        self.label.pack(side="left", fill="x", expand=True)
        # wrap to the room the label gets, whatever the window's width
        self.label.bind("<Configure>", lambda event: self.label.configure(
            wraplength=max(event.width - 4, 100)))
        self.message: tuple[str, dict] | None = None
        labels.call(self._show_text)

    def show(self, message: str, **params) -> None:
        """``params``' callables are called each time the text is shown
        (a language switch translates what they return)."""
        self.message = (message, params)
        self._show_text()
        self.frame.grid(row=0, column=0, sticky="ew", padx=6, pady=(4, 0))

    def hide(self) -> None:
        self.frame.grid_remove()

    @property
    def visible(self) -> bool:
        return bool(self.frame.winfo_ismapped())

    @property
    def text(self) -> str:
        return self.label.cget("text")

    def _show_text(self) -> None:
        if self.message is not None:
            message, params = self.message
            self.label.configure(text=i18n.text(message, **{
                key: value() if callable(value) else value
                for key, value in params.items()}))


class Autostart:
    """Starts the first download once, when the first refresh listed the
    wanted song; else tells why it could not.  ``pending`` is False for
    a window opened without ``--autostart``."""

    def __init__(self, app, note: Note):
        self.app = app
        self.note = note
        self.pending = bool(app.settings.autostart and app.settings.song)

    def songs_listed(self) -> None:
        """A search answered: start if the wanted song is selected now."""
        app = self.app
        if not self.pending or not app.state.song_selected:
            return
        self.pending = False
        view = app.view
        view.download.preview_var.set(True)
        app.start_download(again=True)  # a fresh run, even if here
        if app.state.downloading:
            order = view.download.order()
            self.note.show(STARTED, song=app.selected_song().info.name,
                           order=lambda: i18n.order_name(order))

    def seeders_checked(self) -> None:
        """The first refresh ended: if nothing started, say why."""
        if not self.pending:
            return
        self.pending = False
        state = self.app.state
        if any(row.alive for row in state.peer_rows):
            self.note.show(NO_SONG, song=self.app.settings.song)
        else:
            self.note.show(NO_SEEDER, addresses=", ".join(
                cli.format_address(a) for a in state.pinged or ()))
