"""The PNG of ``p2p_facom.py swarm``: what sharing buys, drawn.

Panels, each when the runs hold its data:

* time to serve everyone against the number of leechers (log x), with
  and without sharing (``--scale``);
* where the leechers' chunks came from: the seeder or other leechers, in
  songs, per swarm;
* the three pick policies side by side: start-up, stalls, completion
  (``--policies``);
* for a single swarm: each leecher's completion and start-up.
"""

from __future__ import annotations

import i18n
from i18n import N_, _, text as tr

SHARE_COLOR, ALONE_COLOR = "#1b9e77", "#d95f02"
SEEDER_COLOR, PEERS_COLOR = "#d95f02", "#1b9e77"
BAR_WIDTH = 0.6
POLICY_COLORS = {"sequential": "#1b9e77", "rarest": "#d95f02",
                 "deadline": "#7570b3"}


def panels_for(runs) -> list:
    """The drawing functions whose data the runs hold, in order."""
    chosen = []
    if any(run.kind == "scale" for run in runs):
        chosen.append(draw_scale)
    chosen.append(draw_sources)
    if any(run.kind == "policy" for run in runs):
        chosen.append(draw_policies)
    if len(runs) == 1:
        chosen.append(draw_leechers)
    return chosen


def draw(path: str, runs, conditions: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    chosen = panels_for(runs)
    fig = Figure(figsize=(7 * len(chosen), 7), dpi=100)
    FigureCanvasAgg(fig)
    fig.suptitle(_("Swarm: what sharing buys") + "\n" + conditions,
                 fontsize=16)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.82, bottom=0.2,
                        wspace=0.3)
    for n, panel in enumerate(chosen):
        ax = fig.add_subplot(1, len(chosen), n + 1)
        panel(ax, runs)
        ax.tick_params(labelsize=11)
        ax.grid(alpha=0.3)
    fig.savefig(path)


def draw_scale(ax, runs) -> None:
    for share, color, label in ((True, SHARE_COLOR, _("with sharing")),
                                (False, ALONE_COLOR, _("without sharing"))):
        points = sorted((run.peers, run.serve_all_s) for run in runs
                        if run.kind == "scale" and run.share == share
                        and run.serve_all_s is not None)
        if points:
            ax.plot([n for n, _t in points], [t for _n, t in points], "o-",
                    color=color, linewidth=3, markersize=8, label=label)
    alone = sorted({(run.peers, run.alone_s) for run in runs
                    if run.kind == "scale" and run.alone_s})
    if alone:
        ax.plot([n for n, _t in alone], [t for _n, t in alone], "--",
                color=ALONE_COLOR, linewidth=1.5,
                label=_("the seeder alone: N songs at its rate"))
    ax.set_xscale("log")
    ax.set_xlabel(_("leechers (log scale)"), fontsize=13)
    ax.set_ylabel(_("time to serve everyone (s)"), fontsize=13)
    ax.set_title(_("Completion against N"), fontsize=14)
    ax.legend(fontsize=11)


def draw_sources(ax, runs) -> None:
    shown = runs[-12:]  # the last dozen swarms at most: bars stay legible
    labels = [run.label for run in shown]
    seeder = [sum(r.from_seeder for r in run.rows) / run.song_chunks
              for run in shown]
    peers = [sum(r.from_peers for r in run.rows) / run.song_chunks
             for run in shown]
    x = range(len(shown))
    ax.bar(x, seeder, BAR_WIDTH, color=SEEDER_COLOR,
           label=_("from the seeder"))
    ax.bar(x, peers, BAR_WIDTH, bottom=seeder, color=PEERS_COLOR,
           label=_("from other leechers"))
    ax.set_xlim(-1, max(len(shown), 2))  # one swarm: a bar, not a wall
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels, fontsize=10, rotation=35, ha="right")
    ax.set_ylabel(_("songs received"), fontsize=13)
    ax.set_title(_("Chunks served by the seeder vs by peers"), fontsize=14)
    ax.legend(fontsize=11)


def draw_policies(ax, runs) -> None:
    policy_runs = [run for run in runs if run.kind == "policy"]
    measures = ((_("start-up (s)"), lambda run: run.median("startup_s")),
                (_("stalls per leecher"),
                 lambda run: run.summary()["stalls"]),
                (_("completion (s)"),
                 lambda run: run.median("completion_s")))
    width = 0.8 / max(len(policy_runs), 1)
    for k, run in enumerate(policy_runs):
        values = [measure(run) or 0.0 for _title, measure in measures]
        xs = [m + (k - (len(policy_runs) - 1) / 2) * width
              for m in range(len(measures))]
        ax.bar(xs, values, width, color=POLICY_COLORS.get(run.pick, "grey"),
               label=run.pick)
        for x, value in zip(xs, values):
            ax.annotate(i18n.decimal(value, 1), (x, value), ha="center",
                        va="bottom", fontsize=10)
    ax.set_xticks(range(len(measures)))
    ax.set_xticklabels([title for title, _m in measures], fontsize=11)
    peers = policy_runs[0].peers if policy_runs else 0
    ax.set_title(tr(N_("Pick policies, {n} leechers (medians)"), n=peers),
                 fontsize=14)
    ax.legend(fontsize=11)


def draw_leechers(ax, runs) -> None:
    rows = sorted(runs[0].rows, key=lambda r: r.completion_s or 0.0)
    x = range(1, len(rows) + 1)
    ax.plot(x, [r.completion_s for r in rows], "o-", color=SHARE_COLOR,
            label=_("completion (s)"))
    ax.plot(x, [r.startup_s for r in rows], "s", color=ALONE_COLOR,
            label=_("start-up (s)"))
    ax.set_xlabel(_("leechers, by completion"), fontsize=13)
    ax.set_ylabel(_("seconds since joining"), fontsize=13)
    ax.set_title(_("Each leecher"), fontsize=14)
    ax.legend(fontsize=11)
