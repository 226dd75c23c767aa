"""The record of a multi-label run: macro/micro-F1 and mAP per phase and class block
(:mod:`audiocil.metrics.multilabel`)."""

from __future__ import annotations

from audiocil.core import Task
from audiocil.metrics.multilabel import average_forgetting, base_forgetting, mean_over_phases
from audiocil.results.cost import cost_rows
from audiocil.results.io import figure_rows, subset_note
from audiocil.results.standard import RunRecord, mean_of, objective


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


class MultilabelRecord(RunRecord):
    """The figures of a multi-label run, phase by phase (scores in percent).

    ``results.json`` holds the shared keys (``method, dataset, scenario, seed, class_order,
    tasks, time_s_per_task, params_per_task, memory_samples``) and:

    * per phase: ``macro_f1_per_phase``, ``micro_f1_per_phase``, ``map_per_phase``,
      ``map_thresholded_per_phase`` (the reference code's AP of 0/1 predictions);
    * per phase and class block: ``f1_matrix[t][j]`` (macro-F1 of the classes of phase j
      after phase t), ``map_matrix``, ``map_thresholded_matrix``;
    * ``forgetting_per_phase`` (Fr_t: base classes' macro-F1 after phase 0 minus after
      phase t), ``avg_forgetting`` (mean over t >= 1), and the same for mAP
      (``map_forgetting_per_phase``, ``avg_map_forgetting``);
    * averages over phases: ``avg_macro_f1``, ``avg_micro_f1``, ``avg_map``,
      ``avg_map_thresholded``; last values ``last_macro_f1``, ``last_map``;
    * ``last_f1_per_class``, ``last_ap_per_class`` in class-order positions;
    * on the validation clips (carved from the training data), ``val_macro_f1_per_phase``,
      ``val_map_per_phase`` and their means ``val_avg_macro_f1`` (the run's
      ``val_objective``, what sweeps optimise) and ``val_avg_map``.
    """

    OBJECTIVE = "val_avg_macro_f1"

    def add_step(self, task: Task, scores: dict[str, dict], info: dict) -> None:
        step = {"task": task.index, "n_classes": task.total, **info, "classifiers": list(scores)}
        for name, s in scores.items():
            step[name] = {
                "macro_f1": _pct(s["macro_f1"]),
                "micro_f1": _pct(s["micro_f1"]),
                "map": _pct(s["map"]),
                "map_thresholded": _pct(s["map_thresholded"]),
                "f1_row": [_pct(v) for v in s["f1_per_block"]],
                "map_row": [_pct(v) for v in s["map_per_block"]],
                "map_thresholded_row": [_pct(v) for v in s["map_thresholded_per_block"]],
                "f1_per_class": [_pct(v) for v in s["f1_per_class"]],
                "ap_per_class": [None if v != v else _pct(v) for v in s["ap_per_class"]],
                "positives_per_class": s["positives_per_class"],
                "test_clips": s["n_clips"],
            }
        self.steps = sorted([x for x in self.steps if x["task"] != task.index] + [step],
                            key=lambda x: x["task"])

    def figures(self, name: str = "cnn") -> dict:
        """The summary figures of one classifier."""
        st = [s[name] for s in self.steps]
        fr = base_forgetting([s["f1_row"][0] for s in st])
        base_map = [s["map_row"][0] for s in st]
        fr_map = base_forgetting(base_map) if None not in base_map else []
        per = {k: [s[k] for s in st] for k in ("macro_f1", "micro_f1", "map", "map_thresholded")}
        return {
            "macro_f1_per_phase": per["macro_f1"],
            "micro_f1_per_phase": per["micro_f1"],
            "map_per_phase": per["map"],
            "map_thresholded_per_phase": per["map_thresholded"],
            "f1_matrix": [s["f1_row"] for s in st],
            "map_matrix": [s["map_row"] for s in st],
            "map_thresholded_matrix": [s["map_thresholded_row"] for s in st],
            "forgetting_per_phase": fr,
            "avg_forgetting": average_forgetting(fr),
            "map_forgetting_per_phase": fr_map,
            "avg_map_forgetting": average_forgetting(fr_map) if fr_map else None,
            "avg_macro_f1": mean_over_phases(per["macro_f1"]),
            "avg_micro_f1": mean_over_phases(per["micro_f1"]),
            "avg_map": mean_over_phases(per["map"]),
            "avg_map_thresholded": mean_over_phases(per["map_thresholded"]),
            "last_macro_f1": per["macro_f1"][-1] if st else None,
            "last_micro_f1": per["micro_f1"][-1] if st else None,
            "last_map": per["map"][-1] if st else None,
            "last_f1_per_class": st[-1]["f1_per_class"] if st else [],
            "last_ap_per_class": st[-1]["ap_per_class"] if st else [],
            "test_clips": st[-1]["test_clips"] if st else 0,
            **self.val_figures(name),
        }

    def val_figures(self, name: str) -> dict:
        out = {}
        for key in ("macro_f1", "map"):
            per = [(s.get("val") or {}).get(name, {}).get(key) for s in self.steps]
            out[f"val_{key}_per_phase"] = per
            out[f"val_avg_{key}"] = mean_of(per)
        return out

    def scores_json(self) -> dict:
        names = self.classifiers()
        every = {n: self.figures(n) for n in names}
        top = every[names[0]] if names else {}
        return {"scores_in": "percent", **top, **objective(top, self.OBJECTIVE),
                "classifiers": every}

    def long_rows(self) -> list[dict]:
        return [*(row for n in self.classifiers() for row in figure_rows(self.figures(n), n)),
                *cost_rows(self.steps)]

    def csv_columns(self, name: str) -> list[str]:
        return [f"{name}_{c}" for c in ("macro_f1", "micro_f1", "map", "map_thresholded",
                                         "base_f1", "new_f1", "forgetting")]

    def csv_values(self, step: dict, figures: dict, i: int) -> list:
        return [step["macro_f1"], step["micro_f1"], step["map"], step["map_thresholded"],
                step["f1_row"][0], step["f1_row"][-1], figures["forgetting_per_phase"][i]]

    def table(self) -> str:
        """The end-of-run summary: F1 and mAP per phase, their averages, forgetting."""
        lines = subset_note(self.meta)
        m = self.meta.get("method")

        def fmt(v):
            return "  n/a" if v is None else f"{v:5.1f}"

        for n in self.classifiers():
            f = self.figures(n)
            lines.append(f"[{m}/{n}] macro-F1 per phase: "
                         + " ".join(fmt(v) for v in f["macro_f1_per_phase"]))
            lines.append(f"[{m}/{n}] mAP per phase:      "
                         + " ".join(fmt(v) for v in f["map_per_phase"]))
            lines.append(f"[{m}/{n}] forgetting (base macro-F1 drop) per phase: "
                         + " ".join(fmt(v) for v in f["forgetting_per_phase"]))
            lines.append(f"[{m}/{n}] avg macro-F1 {fmt(f['avg_macro_f1']).strip()}  "
                         f"avg micro-F1 {fmt(f['avg_micro_f1']).strip()}  "
                         f"avg mAP {fmt(f['avg_map']).strip()}  "
                         f"avg mAP(thresholded, reference code) "
                         f"{fmt(f['avg_map_thresholded']).strip()}  "
                         f"avg forgetting {fmt(f['avg_forgetting']).strip()}")
        return "\n".join(lines)
