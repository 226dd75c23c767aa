"""The report's figures (matplotlib, Agg backend), each saved as PNG and PDF.

* :func:`accuracy_curves`: a per-step figure, one curve per group with its ±std band over
  replicates (the reference toolbox's Fig. 1: accuracy over all seen classes against the
  number of classes seen);
* :func:`matrix_heatmap`: R[t][j] of one run (accuracy, or per-block macro-F1);
* :func:`bars`: run-level figures per group with std error bars (forgetting, last accuracy);
* :func:`fewshot_sessions`: all / base / novel accuracy and their harmonic mean per session.

Every figure carries axis labels with units, the method names and the protocol (dataset,
classes per task, replicates).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from audiocil.report.runs import Group, Run  # noqa: E402
from audiocil.report.tables import classes_seen, curve, group_classifiers, replicates, stat  # noqa: E402

plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "axes.grid": True,
                     "grid.alpha": 0.3, "font.size": 9, "axes.titlesize": 10,
                     "legend.fontsize": 8})


def setting(run: Run) -> str:
    """The classes per task of a run's scenario (``10 base + 10 per task``)."""
    c, scen = run.config, run.scenario
    if scen == "fewshot":
        return (f"{c.get('scenario.base_classes')} base classes, {c.get('scenario.ways')}-way "
                f"{c.get('scenario.shots')}-shot x {c.get('scenario.sessions') or '?'} sessions")
    if scen in ("standard", "multilabel"):
        what = "phase" if scen == "multilabel" else "task"
        return f"{c.get('scenario.init_cls')} base + {c.get('scenario.increment')} per {what}"
    return scen


def protocol(groups: Sequence[Group]) -> str:
    """``dataset · scenario · classes per task · replicates`` of a set of groups."""
    run = groups[0].runs[0]
    reps = _seeds(groups)
    if run.scenario == "fewshot":
        trials = run.config.get("scenario.trials", 1)
        reps += f" x {trials} trial{'s' if trials != 1 else ''}"
    return f"{run.dataset} · {run.scenario} · {setting(run)} · {reps}"


def _seeds(groups: Sequence[Group]) -> str:
    counts = sorted({len(g.runs) for g in groups})
    n = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"{n} seed{'s' if n != '1' else ''} per method"


def save(fig, out: Path) -> list[Path]:
    """``out.png`` and ``out.pdf``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".png"), out.with_suffix(".pdf")]
    fig.tight_layout()
    for p in paths:
        fig.savefig(p, bbox_inches="tight")
    plt.close(fig)
    return paths


def _title(fig, what: str, groups: Sequence[Group]) -> None:
    fig.suptitle(f"{what}\n{protocol(groups)}", fontsize=9.5)


def accuracy_curves(groups: Sequence[Group], metric: str, ylabel: str, step_name: str,
                    out: Path, title: str | None = None) -> list[Path]:
    """``metric`` per step, one curve (mean) and band (± std) per group and classifier; the
    x axis is the number of classes seen where the runs record it."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    by_classes, ticks = True, set()
    for g in groups:
        seen = classes_seen(g)
        for c in group_classifiers(g):
            steps, stats = curve(g, c, metric)
            if not steps:
                continue
            if not all(s in seen for s in steps):
                by_classes = False
            x = np.array([seen.get(s, s + 1) if by_classes else s + 1 for s in steps], float)
            ticks |= set(x.tolist())
            m = np.array([s.mean if s.mean is not None else np.nan for s in stats])
            sd = np.array([s.std or 0.0 for s in stats])
            label = g.label if len(group_classifiers(g)) == 1 else f"{g.label} / {c}"
            n = max(s.n for s in stats)
            line, = ax.plot(x, m, marker="o", ms=4, label=f"{label} (n={n})")
            if n > 1:
                ax.fill_between(x, m - sd, m + sd, color=line.get_color(), alpha=0.18, lw=0)
    ax.set_xlabel("Number of classes seen" if by_classes else f"{step_name}")
    if 0 < len(ticks) <= 25:
        ax.set_xticks(sorted(ticks), [f"{t:g}" for t in sorted(ticks)])
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100 if metric != "forgetting" else None)
    ax.legend(loc="best")
    _title(fig, title or ylabel.replace(" (%)", ""), groups)
    return save(fig, out)


def matrix_of(rows: Sequence[dict], classifier: str, metric: str,
              trial: int | None = None) -> np.ndarray | None:
    """(T, J) matrix of the long rows ``metric[j]`` at step t (NaN above the diagonal);
    ``trial``: a few-shot run's trial (default: the first)."""
    cells = {}
    for r in rows:
        if r["classifier"] == classifier and r["metric"].startswith(metric + "["):
            if r["trial"] in ((None, 0) if trial is None else (trial,)):
                cells[(r["step"], int(r["metric"][len(metric) + 1:-1]))] = r["value"]
    if not cells:
        return None
    R = np.full((max(t for t, _ in cells) + 1, max(j for _, j in cells) + 1), np.nan)
    for (t, j), v in cells.items():
        R[t, j] = v
    return R


def matrix_figure(R: np.ndarray, label: str, step_name: str, title: str):
    """A heatmap of R[t][j], annotated; the caller saves or logs it."""
    T, J = R.shape
    size = max(3.6, 0.55 * J + 2.2)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(R, vmin=0, vmax=100, cmap="viridis", origin="upper")
    for t in range(T):
        for j in range(J):
            if np.isfinite(R[t, j]):
                ax.text(j, t, f"{R[t, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if R[t, j] < 60 else "black")
    ax.set_xticks(range(J), [str(j + 1) for j in range(J)])
    ax.set_yticks(range(T), [str(t + 1) for t in range(T)])
    ax.set_xlabel(f"Evaluated on the classes of {step_name.lower()} j")
    ax.set_ylabel(f"After training {step_name.lower()} t")
    ax.grid(False)
    fig.colorbar(im, ax=ax, label=label, fraction=0.046, pad=0.04)
    fig.suptitle(title, fontsize=9)
    return fig


def matrix_heatmap(run: Run, classifier: str, metric: str, label: str, step_name: str,
                   out: Path) -> list[Path] | None:
    """R[t][j] of one run (``metric[j]`` rows at step t): the lower triangle, annotated."""
    R = matrix_of(run.rows, classifier, metric)
    if R is None:
        return None
    trial = " (trial 1)" if run.scenario == "fewshot" else ""
    title = (f"{run.method} / {classifier}: {label.replace(' (%)', '')} matrix{trial}\n"
             f"{run.dataset} · {run.scenario} · {setting(run)} · seed {run.seed} · class order "
             f"seed {run.config.get('scenario.class_order_seed')} · run {run.name}")
    return save(matrix_figure(R, label, step_name, title), out)


def bars(groups: Sequence[Group], metrics: Sequence[tuple[str, str]], out: Path) -> list[Path]:
    """One panel per run-level metric: a bar per group (first classifier), ± std."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics) + 0.6, 3.9),
                             squeeze=False)
    labels = [g.label for g in groups]
    for ax, (metric, heading) in zip(axes[0], metrics, strict=True):
        stats = [stat(replicates(g, group_classifiers(g)[0], metric)) for g in groups]
        m = [s.mean if s.mean is not None else np.nan for s in stats]
        sd = [s.std if s.n > 1 and s.std is not None else 0.0 for s in stats]
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        ax.bar(range(len(groups)), m, yerr=sd, capsize=4,
               color=[colors[i % len(colors)] for i in range(len(groups))])
        for i, (v, e) in enumerate(zip(m, sd, strict=True)):
            if np.isfinite(v):  # the value beyond the end of the error bar
                ax.annotate(f"{v:.1f}", (i, v + e if v >= 0 else v - e), ha="center",
                            va="bottom" if v >= 0 else "top", fontsize=7,
                            xytext=(0, 2 if v >= 0 else -2), textcoords="offset points")
        ax.margins(y=0.12)
        ax.set_xticks(range(len(groups)), [f"{lab}\n(n={s.n})" for lab, s in zip(labels, stats, strict=True)],
                      rotation=20 if len(groups) > 3 else 0,
                      ha="right" if len(groups) > 3 else "center")
        ax.set_ylabel(heading)
        ax.set_title(heading.split(" (")[0])
        ax.axhline(0, color="black", lw=0.6)
    _title(fig, " and ".join(h.split(" (")[0] for _, h in metrics) + " per method", groups)
    return save(fig, out)


def fewshot_sessions(groups: Sequence[Group], out: Path) -> list[Path]:
    """Per group: accuracy over all seen classes, base, novel and HM per session, ± std over
    trials (and seeds)."""
    n = len(groups)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n + 0.4, 4.0), squeeze=False, sharey=True)
    for ax, g in zip(axes[0], groups, strict=True):
        c = group_classifiers(g)[0]
        for metric, label, style in (("accuracy", "all seen classes", "-o"),
                                     ("base_accuracy", "base classes", "--s"),
                                     ("novel_accuracy", "novel classes", ":^"),
                                     ("hm", "harmonic mean", "-.d")):
            steps, stats = curve(g, c, metric)
            pts = [(s, st) for s, st in zip(steps, stats, strict=True) if st.mean is not None]
            if not pts:
                continue
            x = np.array([s for s, _ in pts], float)
            m = np.array([st.mean for _, st in pts])
            sd = np.array([st.std or 0.0 for _, st in pts])
            line, = ax.plot(x, m, style, ms=4, label=label)
            ax.fill_between(x, m - sd, m + sd, color=line.get_color(), alpha=0.15, lw=0)
        sessions = curve(g, c, "accuracy")[0]
        if sessions:
            ax.set_xticks(sessions, [str(s) for s in sessions])
        reps = max((s.n for s in curve(g, c, "accuracy")[1]), default=0)
        ax.set_title(f"{g.label} / {c} (n={reps})")
        ax.set_xlabel("Session (0 = base session)")
        ax.set_ylim(0, 100)
        ax.legend(loc="lower left")
    axes[0][0].set_ylabel("Top-1 accuracy (%)")
    _title(fig, "Few-shot sessions: accuracy, base / novel classes and their harmonic mean",
           groups)
    return save(fig, out)
