"""Mean ± std tables of groups of runs, as Markdown, CSV and LaTeX.

Replicates. In a standard or multi-label group every run (seed, class order) is one
replicate; in a few-shot group every (run, trial) is one. Means are over replicates; stds are
sample standard deviations (ddof 1, as :func:`audiocil.metrics.fewshot.mean_std`); ``n`` is
the number of replicates. Everything comes from ``results_long.csv``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from audiocil.report.runs import Group, Run

#: per scenario: the run-level figures of the summary table (metric, heading), the per-step
#: curves (metric, heading) and what a step is called
SCENARIOS: dict[str, dict] = {
    "standard": {
        "summary": [("avg_incremental_accuracy", "AA (%)"), ("last_accuracy", "Last (%)"),
                    ("forgetting", "Forgetting (pp)"), ("bwt", "BWT (pp)"),
                    ("val_avg_incremental_accuracy", "Val AA (%)")],
        "steps": [("accuracy", "Accuracy over all seen classes (%)")],
        "step": "Task",
    },
    "fewshot": {
        "summary": [("aa", "AA (%)"), ("last_accuracy", "Last (%)"), ("pd", "PD (pp)"),
                    ("mean_hm", "Mean HM (%)"), ("cpi", "CPI"),
                    ("val_avg_base_accuracy", "Val base (%)")],
        "steps": [("accuracy", "Accuracy over all seen classes (%)"),
                  ("base_accuracy", "Base-class accuracy (%)"),
                  ("novel_accuracy", "Novel-class accuracy (%)"),
                  ("hm", "Harmonic mean of base and novel (%)")],
        "step": "Session",
    },
    "multilabel": {
        "summary": [("avg_macro_f1", "Avg macro-F1 (%)"), ("avg_map", "Avg mAP (%)"),
                    ("last_macro_f1", "Last macro-F1 (%)"), ("last_map", "Last mAP (%)"),
                    ("avg_forgetting", "Avg forgetting (pp)"),
                    ("val_avg_macro_f1", "Val macro-F1 (%)")],
        "steps": [("macro_f1", "Macro-F1 over seen classes (%)"), ("map", "mAP over seen classes (%)")],
        "step": "Phase",
    },
}
#: the cost columns (metric, heading, scale)
COST = [("time_s", "Wall time (s)", 1.0), ("train_samples_per_s", "Train samples/s", 1.0),
        ("peak_host_memory_bytes", "Peak host memory (MiB)", 2.0**-20),
        ("peak_accelerator_memory_bytes", "Peak accelerator memory (MiB)", 2.0**-20),
        ("params", "Parameters (M)", 1e-6), ("memory_bytes", "Exemplar memory (MiB)", 2.0**-20)]


def spec(scenario: str, runs: Sequence[Run] = ()) -> dict:
    """The scenario's table and curve figures; for an unknown scenario, every run-level
    figure of the first classifier."""
    if scenario in SCENARIOS:
        return SCENARIOS[scenario]
    names = sorted({r["metric"] for run in runs for r in run.rows
                    if r["step"] is None and r["classifier"]})
    return {"summary": [(n, n) for n in names], "steps": [], "step": "Step"}


@dataclass(frozen=True)
class Stat:
    mean: float | None
    std: float | None
    n: int

    def text(self, digits: int = 2) -> str:
        if self.mean is None:
            return "-"
        if self.n < 2 or self.std is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"

    def latex(self, digits: int = 2) -> str:
        if self.mean is None:
            return "--"
        if self.n < 2 or self.std is None:
            return f"${self.mean:.{digits}f}$"
        return f"${self.mean:.{digits}f} \\pm {self.std:.{digits}f}$"


def stat(values: Sequence[float]) -> Stat:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return Stat(None, None, 0)
    return Stat(float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size))


def replicates(group: Group, classifier: str, metric: str, step: int | None = None) -> list[float]:
    """One value per replicate (run, or run and trial) of ``metric`` at ``step``."""
    out = []
    for run in group.runs:
        for r in run.rows:
            if r["classifier"] == classifier and r["metric"] == metric and r["step"] == step:
                out.append(r["value"])
    return out


def steps_of(group: Group, classifier: str, metric: str) -> list[int]:
    return sorted({r["step"] for run in group.runs for r in run.rows
                   if r["classifier"] == classifier and r["metric"] == metric
                   and r["step"] is not None})


def curve(group: Group, classifier: str, metric: str) -> tuple[list[int], list[Stat]]:
    """Steps and the mean ± std of ``metric`` at each, over replicates."""
    steps = steps_of(group, classifier, metric)
    return steps, [stat(replicates(group, classifier, metric, s)) for s in steps]


def classes_seen(group: Group) -> dict[int, float]:
    """Step -> classes seen after it (from the runs' ``n_classes`` rows)."""
    out: dict[int, float] = {}
    for run in group.runs:
        for r in run.rows:
            if r["classifier"] == "" and r["metric"] == "n_classes" and r["step"] is not None:
                out.setdefault(r["step"], r["value"])
    return out


def group_classifiers(group: Group) -> list[str]:
    return list(dict.fromkeys(c for run in group.runs for c in run.classifiers()))


@dataclass
class Table:
    """A table: a title, column headings, and rows of cells (str, or :class:`Stat`)."""

    title: str
    columns: list[str]
    rows: list[list]
    note: str = ""
    labels: int = 2  # how many leading columns label a row

    def markdown(self) -> str:
        out = [f"**{self.title}**", ""] if self.title else []
        out.append("| " + " | ".join(self.columns) + " |")
        out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.columns))) + "|")
        for row in self.rows:
            out.append("| " + " | ".join(c.text() if isinstance(c, Stat) else str(c) for c in row) + " |")
        if self.note:
            out += ["", self.note]
        return "\n".join(out)

    def latex(self) -> str:
        cols = "l" * self.labels + "r" * (len(self.columns) - self.labels)
        out = ["% " + self.title, "\\begin{tabular}{" + cols + "}", "\\toprule",
               " & ".join(_tex(c) for c in self.columns) + " \\\\", "\\midrule"]
        for row in self.rows:
            out.append(" & ".join(c.latex() if isinstance(c, Stat) else _tex(str(c))
                                  for c in row) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}"]
        return "\n".join(out)

    def csv_rows(self) -> list[dict]:
        """Tidy rows: the label cells, then one row per numeric cell (mean, std, n)."""
        out = []
        k = self.labels
        for row in self.rows:
            labels = dict(zip(self.columns[:k], (str(c) for c in row[:k]), strict=False))
            for col, cell in zip(self.columns[k:], row[k:], strict=False):
                if isinstance(cell, Stat):
                    out.append({"table": self.title, **labels, "column": col, "mean": cell.mean,
                                "std": cell.std, "replicates": cell.n})
        return out


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#",
        "{": r"\{", "}": r"\}", "$": r"\$", "~": r"\textasciitilde{}", "^": r"\^{}",
        "±": r"$\pm$"}


def _tex(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in s)


def summary_table(groups: Sequence[Group], scenario: str) -> Table:
    """Per group and classifier: ``n`` and the scenario's run-level figures, mean ± std."""
    sp = spec(scenario, [r for g in groups for r in g.runs])
    rows = []
    for g in groups:
        for c in group_classifiers(g):
            cells = [stat(replicates(g, c, m)) for m, _ in sp["summary"]]
            n = max((s.n for s in cells), default=0)
            rows.append([g.label, c, n, *cells])
    return Table("Summary (mean ± std over replicates)",
                 ["Method", "Classifier", "n", *(h for _, h in sp["summary"])], rows,
                 labels=3, note="n: replicates (seeds and class orders; few-shot: seeds x trials); std: sample "
                 "standard deviation (n-1). Val: validation clips carved from the training "
                 "data (the swept figure); every other figure is on the test split.")


def step_table(groups: Sequence[Group], scenario: str) -> Table | None:
    """The first per-step figure at every step, mean ± std, per group and classifier."""
    sp = spec(scenario)
    if not sp["steps"]:
        return None
    metric, heading = sp["steps"][0]
    steps = sorted({s for g in groups for c in group_classifiers(g)
                    for s in steps_of(g, c, metric)})
    rows = []
    for g in groups:
        for c in group_classifiers(g):
            rows.append([g.label, c, *(stat(replicates(g, c, metric, s)) for s in steps)])
    return Table(f"{heading} per {sp['step'].lower()}",
                 ["Method", "Classifier", *(f"{sp['step']} {s + 1}" for s in steps)], rows)


def cost_table(groups: Sequence[Group]) -> Table:
    """Cost per task (step), mean ± std over runs (and trials)."""
    rows = []
    for g in groups:
        for s in steps_of(g, "", "time_s"):
            cells = []
            for metric, _, scale in COST:
                st = stat(replicates(g, "", metric, s))
                cells.append(Stat(None if st.mean is None else st.mean * scale,
                                  None if st.std is None else st.std * scale, st.n))
            rows.append([g.label, str(s + 1), *cells])
    return Table("Cost per task (mean ± std over runs)",
                 ["Method", "Task", *(h for _, h, _ in COST)], rows,
                 note="Wall time covers training, end-of-task work, validation and test; samples/s "
                 "counts training samples (all epochs and stages) per second inside the fits; "
                 "peak host memory is the main process's resident set; exemplar memory is the "
                 "stored clips as held in memory.")


def tables_csv(tables: Sequence[Table]) -> str:
    rows = [r for t in tables for r in t.csv_rows()]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, keys)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
