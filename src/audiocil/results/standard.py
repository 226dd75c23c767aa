"""The record of a standard class-incremental run: the accuracy matrix of every classifier
the method reports, and everything derived from it (:mod:`audiocil.metrics.continual`).

``results.json``, ``metrics_per_step.csv`` and ``results_long.csv`` are rewritten
atomically after every task from the record (:mod:`audiocil.results.io`); a resumed run
restores it from its last checkpoint.
"""

from __future__ import annotations

import csv
import io

from audiocil.core import Task
from audiocil.metrics.continual import forgetting_per_step, summarize
from audiocil.results.cost import cost_per_task, cost_rows
from audiocil.results.io import SCHEMA_VERSION, figure_rows, subset_note


def _weighted(acc: list[float], counts: list[int], which: range) -> float | None:
    n = sum(counts[j] for j in which)
    if n == 0:
        return None
    return sum(acc[j] * counts[j] for j in which) / n


def mean_of(values: list) -> float | None:
    """The mean, or None when a value is missing (a step without validation)."""
    if not values or any(v is None for v in values):
        return None
    return float(sum(values) / len(values))


def objective(figures: dict, key: str) -> dict:
    """``val_objective`` (the figure that sweeps optimise) and which figure it is."""
    return {"val_objective": figures.get(key), "val_objective_is": key}


class RunRecord:
    """The figures of a run, step by step.

    Besides the test figures, each step keeps the validation accuracy over the seen classes
    (``val_accuracy_per_step``; validation clips are carved from the training data), and
    their mean over steps, ``val_avg_incremental_accuracy``, is the run's ``val_objective``:
    the figure the entry point returns to a sweeper.

    Args:
        meta: ``method, dataset, scenario, seed, class_order, tasks`` (and anything else
            worth keeping at the top of ``results.json``).
    """

    #: the validation figure that is the run's ``val_objective``
    OBJECTIVE = "val_avg_incremental_accuracy"

    def __init__(self, meta: dict) -> None:
        self.meta = dict(meta)
        self.steps: list[dict] = []

    def add_step(self, task: Task, scores: dict[str, dict], info: dict) -> None:
        """Record one step: per-classifier scores and ``time_s, params, memory_*``."""
        step = {"task": task.index, "n_classes": task.total, **info, "classifiers": list(scores)}
        for name, s in scores.items():
            acc, counts = s["top1_per_task"], s["count_per_task"]
            t = task.index
            step[name] = {
                "accuracy_row": acc,
                "top5_row": s["topk_per_task"],
                "accuracy": s["top1"],
                "top5": s["topk"],
                "old_accuracy": _weighted(acc, counts, range(t)),
                "new_accuracy": acc[t],
                "test_clips_per_task": counts,
            }
        self.steps = [x for x in self.steps if x["task"] != task.index] + [step]

    def classifiers(self) -> list[str]:
        """The classifiers the method's evaluation returned, in its order ("cnn" first)."""
        return list(self.steps[0]["classifiers"]) if self.steps else []

    def figures(self, name: str = "cnn") -> dict:
        """The summary figures of one classifier, from its accuracy matrix."""
        R = [s[name]["accuracy_row"] for s in self.steps]
        per_step = [s[name]["accuracy"] for s in self.steps]
        out = {
            "accuracy_matrix": R,
            "accuracy_per_step": per_step,
            "top5_matrix": [s[name]["top5_row"] for s in self.steps],
            "top5_per_step": [s[name]["top5"] for s in self.steps],
            "old_accuracy_per_step": [s[name]["old_accuracy"] for s in self.steps],
            "new_accuracy_per_step": [s[name]["new_accuracy"] for s in self.steps],
            "forgetting_per_step": forgetting_per_step(R),
        }
        out.update(summarize(R, per_step))
        val = [(s.get("val") or {}).get(name, {}).get("accuracy") for s in self.steps]
        out["val_accuracy_per_step"] = val
        out["val_avg_incremental_accuracy"] = mean_of(val)
        return out

    def to_json(self) -> dict:
        out = {"schema_version": SCHEMA_VERSION, **self.meta}
        out["completed_tasks"] = len(self.steps)
        out.update(self.scores_json())
        out["time_s_per_task"] = [s["time_s"] for s in self.steps]
        out["params_per_task"] = [s["params"] for s in self.steps]
        out["memory_samples"] = [s["memory_samples"] for s in self.steps]
        out["memory_bytes"] = [s["memory_bytes"] for s in self.steps]
        out["cost_per_task"] = cost_per_task(self.steps)
        return out

    def scores_json(self) -> dict:
        """The scenario's figures in ``results.json``: those of the first classifier at the
        top level, ``nme`` (None where the method has none) and every classifier's under
        ``classifiers``."""
        names = self.classifiers()
        every = {n: self.figures(n) for n in names}
        top = every[names[0]] if names else {}
        return {**top, **objective(top, self.OBJECTIVE), "nme": every.get("nme"),
                "classifiers": every}

    def long_rows(self) -> list[dict]:
        """One row per (step, classifier, metric): the long-format table."""
        return [*(row for n in self.classifiers() for row in figure_rows(self.figures(n), n)),
                *cost_rows(self.steps)]

    def csv_columns(self, name: str) -> list[str]:
        """The per-step CSV columns of one classifier."""
        return [f"{name}_{c}" for c in ("accuracy", "top5", "old_accuracy", "new_accuracy",
                                         "forgetting")]

    def csv_values(self, step: dict, figures: dict, i: int) -> list:
        """The values of :meth:`csv_columns` at step ``i``."""
        return [step["accuracy"], step["top5"], step["old_accuracy"], step["new_accuracy"],
                figures["forgetting_per_step"][i]]

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        names = self.classifiers()
        w.writerow(["task", "n_classes", *(c for n in names for c in self.csv_columns(n)),
                    "time_s", "params", "memory_samples"])
        fig = {n: self.figures(n) for n in names}
        for i, s in enumerate(self.steps):
            row = [s["task"], s["n_classes"]]
            for n in names:
                row += self.csv_values(s[n], fig[n], i)
            w.writerow([*row, round(s["time_s"], 2), s["params"], s["memory_samples"]])
        return buf.getvalue()

    def table(self) -> str:
        """A plain-text table: per classifier, accuracy per step (over all seen classes),
        AA, last accuracy, forgetting and BWT."""
        m = self.meta
        head = (f"{m.get('method')} on {m.get('dataset')}: {len(self.steps)} of "
                f"{len(m.get('tasks', [])) or len(self.steps)} tasks, seed {m.get('seed')} "
                f"(accuracy %, all seen classes)")
        steps = "".join(f"{f'step {t + 1}':>8}" for t in range(len(self.steps)))
        columns = f"{'classifier':<10}{steps} | {'AA':>6} {'last':>6} {'forgetting':>10} {'BWT':>7}"
        lines = [*subset_note(m), head, columns]
        for n in self.classifiers():
            f = self.figures(n)
            acc = "".join(f"{a:8.1f}" for a in f["accuracy_per_step"])
            lines.append(f"{n:<10}{acc} | {f['avg_incremental_accuracy']:6.2f} "
                         f"{f['last_accuracy']:6.2f} {f['forgetting']:10.2f} {f['bwt']:7.2f}")
        return "\n".join(lines)

    def state_dict(self) -> dict:
        return {"meta": self.meta, "steps": self.steps}

    @classmethod
    def from_state(cls, state: dict):
        rec = cls(state["meta"])
        rec.steps = list(state["steps"])
        return rec
