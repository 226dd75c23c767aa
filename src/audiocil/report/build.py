"""Write a report: tables (Markdown, CSV, LaTeX), figures (PNG, PDF) and ``report.md``.

``write_report(paths, out)`` reads the runs under ``paths`` (:mod:`audiocil.report.runs`),
groups them, and writes into ``out``:

* ``report.md``: the protocol, the tables, the figures, the jobs without complete results;
* ``tables.md``, ``tables.csv`` (tidy: one row per cell with mean, std, n), ``tables.tex``;
* ``<dataset>-<scenario>_<figure>.png`` / ``.pdf``: per scenario, see :data:`FIGURES`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from audiocil.report import figures as F
from audiocil.report.runs import Group, Problem, Run, group_runs, load_runs, sections
from audiocil.report.tables import Table, cost_table, spec, step_table, summary_table, tables_csv
from audiocil.results.io import atomic_write_text

log = logging.getLogger(__name__)

#: per scenario: the run-level figures drawn as bars, and the matrix drawn per run
FIGURES = {
    "standard": {"bars": [("forgetting", "Forgetting (pp)"), ("last_accuracy", "Last accuracy (%)")],
                 "matrix": ("accuracy_matrix", "Top-1 accuracy (%)")},
    "fewshot": {"bars": [("pd", "Performance drop PD (pp)"), ("last_accuracy", "Last accuracy (%)")],
                "matrix": ("accuracy_matrix", "Top-1 accuracy (%)")},
    "multilabel": {"bars": [("avg_forgetting", "Avg forgetting (pp)"),
                            ("last_macro_f1", "Last macro-F1 (%)")],
                   "matrix": ("f1_matrix", "Macro-F1 (%)")},
}


@dataclass
class Report:
    out: Path
    runs: list[Run]
    problems: list[Problem]
    groups: list[Group]
    tables: list[Table] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


def write_report(paths: Sequence[str | Path], out: str | Path, compare: str | None = None,
                 matrices: bool = True) -> Report:
    """Read, group, and write the report of the runs under ``paths`` into ``out``."""
    out = Path(out)
    runs, problems = load_runs(paths)
    out.mkdir(parents=True, exist_ok=True)
    groups, notes = group_runs(runs, compare)
    rep = Report(out, runs, problems, groups)
    md = ["# audiocil report", "", f"Runs: {len(runs)} complete"
          + (f", {len(problems)} without complete results (listed below)" if problems else "")
          + f"; read from {', '.join(str(p) for p in paths)}.", ""]
    md += [f"- note: {n}" for n in notes] + ([""] if notes else [])
    for name, sec in sections(groups):
        scen = sec[0].runs[0].scenario
        sp, figs = spec(scen, [r for g in sec for r in g.runs]), FIGURES.get(scen, {})
        md += [f"## {name}", "", f"Protocol: {F.protocol(sec)}", ""]
        tabs = [t for t in (summary_table(sec, scen), step_table(sec, scen), cost_table(sec)) if t]
        for t in tabs:
            t.title = f"{name}: {t.title}"
            md += [t.markdown(), ""]
        rep.tables += tabs
        drawn: list[tuple[str, list[Path]]] = []
        for metric, heading in sp["steps"][: 1 if scen == "fewshot" else 2]:
            drawn.append((heading, F.accuracy_curves(sec, metric, heading, sp["step"],
                                                     out / f"{name}_{metric}")))
        if scen == "fewshot":
            drawn.append(("Few-shot sessions", F.fewshot_sessions(sec, out / f"{name}_sessions")))
        if figs.get("bars"):
            drawn.append(("Per method", F.bars(sec, figs["bars"], out / f"{name}_bars")))
        if matrices and figs.get("matrix"):
            metric, label = figs["matrix"]
            for g in sec:
                for r in g.runs:
                    c = r.classifiers()[0]
                    paths_ = F.matrix_heatmap(r, c, metric, label, sp["step"],
                                              out / f"{name}_matrix_{_slug(r.name)}")
                    if paths_:
                        drawn.append((f"{r.method} seed {r.seed} ({r.name})", paths_))
        for heading, ps in drawn:
            md += [f"![{heading}]({ps[0].name})", ""]
            rep.figures += ps
    if problems:
        md += ["## Jobs without complete results", "",
               "| job | status | completed | overrides | error |", "|---|---|---|---|---|"]
        for p in problems:
            err = (p.error or "").replace("|", "\\|").replace("\n", " ")[:300]
            md.append(f"| {p.path} | {p.status} | {p.completed or '-'} | "
                      f"{' '.join(p.overrides) or '-'} | {err or '-'} |")
        md.append("")
    if not runs:
        md += ["No complete run found.", ""]
    atomic_write_text(out / "report.md", "\n".join(md))
    atomic_write_text(out / "tables.md", "\n\n".join(t.markdown() for t in rep.tables) + "\n")
    atomic_write_text(out / "tables.csv", tables_csv(rep.tables))
    atomic_write_text(out / "tables.tex", "\n\n".join(t.latex() for t in rep.tables) + "\n")
    return rep


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def write_run_figures(run_dir: str | Path) -> Path | None:
    """A finished run's own report (curve, heatmap, tables) in ``<run_dir>/report``; a
    failure is logged, never raised (the results are already written)."""
    try:
        return write_report([run_dir], Path(run_dir) / "report").out
    except Exception:  # noqa: BLE001 - a figure must not fail a finished run
        log.exception("could not draw the run's figures (results.json is written)")
        return None
