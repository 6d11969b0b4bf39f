"""Saving from the window: one download's plot and statistics (with a
save dialog), the compared runs (straight into the download folder,
named after the song and the orders: no dialog, no file manager)."""

from __future__ import annotations

import os
import shutil
import threading

import cli
import gui_state
import gui_worker as gw
import i18n
import leecher
from i18n import N_

try:
    from tkinter import filedialog
except ImportError:  # python3-tk is not installed
    filedialog = None

SAVE_TYPES = {".png": N_("PNG image"), ".json": N_("JSON file"),
              ".csv": N_("CSV file"), ".pcap": N_("pcap capture")}


class Files:
    """The window's saving and exporting (``App.files``)."""

    def __init__(self, app):
        self.app = app

    def _ask_path(self, kind: str | None, extension: str) -> str | None:
        run = self.app.state.last_run()
        if run is None:
            self.app.view.set_status(
                N_("Nothing to save yet: download a song first."), "error")
            return None
        return filedialog.asksaveasfilename(
            parent=self.app.root, defaultextension=extension,
            filetypes=[(i18n._(SAVE_TYPES[extension]), "*" + extension),
                       (i18n._("All files"), "*")],
            initialdir=self.app.settings.output,
            initialfile=gui_state.default_name(run.song, run.orders, kind,
                                               extension)) or None

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

    def ask_save_pcap(self) -> None:
        if self._capture() is None:
            return
        path = self._ask_path(None, ".pcap")
        if path:
            self.save_capture(path)

    def save_capture(self, path: str) -> None:
        """A copy of the last download's capture (the worker's temporary
        file, which the next download replaces)."""
        capture = self._capture()
        if capture is not None:
            self._saving(path, lambda: shutil.copyfile(capture, path))

    def _capture(self) -> str | None:
        capture = self.app.worker.capture_path
        if capture is None:
            self.app.view.set_status(
                N_("No capture yet: download a song first."), "error")
        return capture

    def save_plot_png(self, path: str) -> None:
        run = self.app.state.last_run()
        title = run.label() if run else self.app.view.plot.title
        self._saving(path, lambda: self.app.view.plot.save_png(path, title))

    def save_stats_json(self, path: str) -> None:
        stats, rows = self._stats_and_rows()
        if stats is not None:
            self._in_background(path, lambda: leecher.write_json(
                path, stats, rows))

    def save_stats_csv(self, path: str) -> None:
        stats, rows = self._stats_and_rows()
        if stats is not None:
            self._in_background(path, lambda: gui_state.write_stats_csv(
                path, stats, rows))

    def _stats_and_rows(self):
        run = self.app.state.last_run()
        if run is None or not run.stats:
            self.app.view.set_status(
                N_("Nothing to save yet: download a song first."), "error")
            return None, None
        return dict(run.stats), run.timeline()

    def export_runs(self, folder: str | None = None) -> list[str]:
        """The compared runs as PNG (with a title), JSON and CSV in the
        download folder, named after the song and the orders: no dialog,
        no file manager.  Returns the paths."""
        runs = self.app.view.runs.selected(self.app.state.runs)
        if not runs:
            self.app.view.set_status(N_("No run to export yet."), "error")
            return []
        import gui_plot
        folder = folder or self.app.settings.output
        stem = gui_state.file_stem(
            "+".join(dict.fromkeys(run.song for run in runs)),
            [o for run in runs for o in run.orders])
        paths = [os.path.join(folder, f"{stem}-compare{ext}")
                 for ext in (".png", ".json", ".csv")]
        self._saving(", ".join(paths), lambda: (
            gui_plot.compare_figure(runs).savefig(paths[0], dpi=150),
            gui_state.write_runs_json(paths[1], runs),
            gui_state.write_runs_csv(paths[2], runs)))
        return paths

    def _saving(self, path: str, write) -> None:
        try:
            write()
        except (OSError, ValueError) as exc:
            self.app.view.set_status(N_("Cannot save {path}: {text}"), "error",
                                 path=path, text=cli.one_line(exc))
            return
        self.app.view.set_status(N_("Saved {path}."), path=path)

    def _in_background(self, path: str, write) -> None:
        """Write on a short-lived thread (a long song's timeline takes a
        while); the result comes back on the inbox."""
        def run():
            try:
                write()
            except (cli.RunError, OSError) as exc:
                self.app.inbox.put(gw.JobFailed("save", N_(
                    "Cannot save {path}: {text}"), {
                    "path": path, "text": cli.one_line(exc)}))
                return
            self.app.inbox.put(gw.Saved(path))
        threading.Thread(target=run, name="save", daemon=True).start()
