"""Writing a run's record: ``results.json``, ``metrics_per_step.csv`` and the long-format
``results_long.csv`` that reports and later tools read without knowing the scenario.

Long format: one row per (run, method, dataset, scenario, seed, trial, step, classifier,
metric, value). A per-step figure (``accuracy_per_step``, ``macro_f1_per_phase``, ...) gives
one row per step under its name without the suffix (``accuracy``); a matrix
(``accuracy_matrix``) one row per cell, ``metric`` naming the column (``accuracy_matrix[j]``,
``step`` the row); a run-level figure (``avg_incremental_accuracy``) one row with an empty
step.

Rows with an empty ``classifier`` describe the run rather than a classifier: per step its
cost (:mod:`audiocil.results.cost`) and ``n_classes`` (classes seen after the step); per run
``completed_tasks`` and ``tasks`` (a run with fewer completed tasks stopped early).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

#: version of the results.json / results_long.csv layout
SCHEMA_VERSION = 2
LONG_COLUMNS = ["run", "method", "dataset", "scenario", "seed", "trial", "step", "classifier",
                "metric", "value"]
_SUFFIXES = ("_per_step", "_per_session", "_per_phase")


def subset_note(meta: dict) -> list[str]:
    """The summary's first line when evaluation read only some clips per class, else none."""
    k = meta.get("eval_clips_per_class")
    return [] if k is None else [f"NOT A BENCHMARK FIGURE: evaluated on the first {k} clip(s) "
                                 f"of each class (data.eval_clips_per_class={k})"]


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def figure_rows(figures: dict, classifier: str, trial: int | None = None) -> list[dict]:
    """Long-format rows (without the run's columns) of one classifier's figures."""
    rows = []

    def add(step, metric, value):
        if _number(value):
            rows.append({"trial": trial, "step": step, "classifier": classifier,
                         "metric": metric, "value": float(value)})

    for key, value in figures.items():
        if _number(value):
            add(None, key, value)
        elif isinstance(value, list) and value and all(isinstance(r, list) for r in value):
            if key.endswith("_matrix"):
                for t, row in enumerate(value):
                    for j, v in enumerate(row):
                        add(t, f"{key}[{j}]", v)
        elif isinstance(value, list) and key.endswith(_SUFFIXES):
            name = next(key[: -len(s)] for s in _SUFFIXES if key.endswith(s))
            for t, v in enumerate(value):
                add(t, name, v)
    return rows


def long_table(record, run: str) -> list[dict]:
    """The record's long-format rows with the run's own columns."""
    m = record.meta
    head = {"run": run, "method": m.get("method"), "dataset": m.get("dataset"),
            "scenario": m.get("scenario"), "seed": m.get("seed")}
    progress = [{"trial": None, "step": None, "classifier": "", "metric": k, "value": float(v)}
                for k, v in (("completed_tasks", len(record.steps)),
                             ("tasks", len(m.get("tasks") or []) or len(record.steps)))]
    return [{**head, **row} for row in [*record.long_rows(), *progress]]


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_outputs(record, run_dir: Path) -> None:
    """results.json, metrics_per_step.csv and results_long.csv of any scenario's record."""
    atomic_write_text(run_dir / "results.json", json.dumps(record.to_json(), indent=1))
    atomic_write_text(run_dir / "metrics_per_step.csv", record.csv_text())
    buf = io.StringIO()
    w = csv.DictWriter(buf, LONG_COLUMNS)
    w.writeheader()
    w.writerows(long_table(record, run_dir.name))
    atomic_write_text(run_dir / "results_long.csv", buf.getvalue())


def read_long(path: Path) -> list[dict]:
    """The rows of a ``results_long.csv`` (values as floats, steps/trials as ints or None)."""
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for k in ("step", "trial"):
                row[k] = int(row[k]) if row[k] not in ("", None) else None
            row["value"] = float(row["value"])
            out.append(row)
    return out
