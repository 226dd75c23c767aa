"""What a run records: the accuracy matrix and everything derived from it, on disk.

``results.json`` and ``metrics_per_step.csv`` are rewritten atomically after every task
from the :class:`RunRecord`, which a resumed run restores from its last task checkpoint.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from audiocil.metrics.continual import forgetting_per_step, summarize
from audiocil.scenarios.standard import Task


def _weighted(acc: list[float], counts: list[int], which: range) -> float | None:
    n = sum(counts[j] for j in which)
    if n == 0:
        return None
    return sum(acc[j] * counts[j] for j in which) / n


class RunRecord:
    """The figures of a run, step by step.

    Args:
        meta: ``method, dataset, scenario, seed, class_order, tasks`` (and anything else
            worth keeping at the top of ``results.json``).
    """

    def __init__(self, meta: dict) -> None:
        self.meta = dict(meta)
        self.steps: list[dict] = []

    def add_step(self, task: Task, scores: dict[str, dict], info: dict) -> None:
        """Record one step: per-classifier scores and ``time_s, params, memory_*``."""
        step = {"task": task.index, "n_classes": task.total, **info}
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
        return [k for k in ("cnn", "nme") if self.steps and k in self.steps[0]]

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
        return out

    def to_json(self) -> dict:
        out = dict(self.meta)
        out["completed_tasks"] = len(self.steps)
        out.update(self.figures("cnn"))
        out["nme"] = self.figures("nme") if "nme" in self.classifiers() else None
        out["time_s_per_task"] = [s["time_s"] for s in self.steps]
        out["params_per_task"] = [s["params"] for s in self.steps]
        out["memory_samples"] = [s["memory_samples"] for s in self.steps]
        out["memory_bytes"] = [s["memory_bytes"] for s in self.steps]
        return out

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        names = self.classifiers()
        header = ["task", "n_classes"]
        for n in names:
            header += [f"{n}_accuracy", f"{n}_top5", f"{n}_old_accuracy", f"{n}_new_accuracy",
                       f"{n}_forgetting"]
        header += ["time_s", "params", "memory_samples"]
        w.writerow(header)
        fig = {n: self.figures(n) for n in names}
        for i, s in enumerate(self.steps):
            row = [s["task"], s["n_classes"]]
            for n in names:
                row += [s[n]["accuracy"], s[n]["top5"], s[n]["old_accuracy"], s[n]["new_accuracy"],
                        fig[n]["forgetting_per_step"][i]]
            row += [round(s["time_s"], 2), s["params"], s["memory_samples"]]
            w.writerow(row)
        return buf.getvalue()

    def table(self) -> str:
        """A plain-text summary: accuracy per step, AA, last accuracy, forgetting."""
        lines = []
        for n in self.classifiers():
            f = self.figures(n)
            steps = " ".join(f"{a:5.1f}" for a in f["accuracy_per_step"])
            lines.append(f"[{self.meta.get('method')}/{n}] accuracy per step: {steps}")
            lines.append(f"[{self.meta.get('method')}/{n}] AA {f['avg_incremental_accuracy']:.2f}  "
                         f"last {f['last_accuracy']:.2f}  forgetting {f['forgetting']:.2f}  "
                         f"BWT {f['bwt']:.2f}")
        return "\n".join(lines)

    def state_dict(self) -> dict:
        return {"meta": self.meta, "steps": self.steps}

    @classmethod
    def from_state(cls, state: dict) -> RunRecord:
        rec = cls(state["meta"])
        rec.steps = list(state["steps"])
        return rec


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_outputs(record, run_dir: Path) -> None:
    """results.json and metrics_per_step.csv of any scenario's record, atomically."""
    atomic_write_text(run_dir / "results.json", json.dumps(record.to_json(), indent=1))
    atomic_write_text(run_dir / "metrics_per_step.csv", record.csv_text())
