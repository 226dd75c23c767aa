"""The record of a few-shot run: per session and trial, the correct predictions and test
clips of every seen class, for each classifier; its figures come from
:mod:`audiocil.metrics.fewshot`."""

from __future__ import annotations

import csv
import io

from audiocil.metrics.fewshot import aggregate_trials, run_figures, session_figures
from audiocil.results.cost import cost_per_task, cost_rows
from audiocil.results.io import SCHEMA_VERSION, figure_rows, subset_note
from audiocil.results.standard import mean_of, objective


class FewShotRecord:
    """The record of a few-shot run (the :class:`audiocil.core.Record` protocol).

    One step per task: the base session (shared by every trial), then each trial's
    sessions. A step keeps, per classifier ("cnn", and "nme" where the method has it), the
    correct predictions and test clips of every seen class, and the shots of the session.

    Validation. Only the base classes have validation clips (the novel classes have their
    shots and nothing more: a few-shot protocol gives no held-out novel clips). After every
    session the base classes' validation clips are classified among all seen classes:
    ``val_base_accuracy_per_session``; its mean over sessions, ``val_avg_base_accuracy``
    (mean over trials), is the run's ``val_objective``, what sweeps optimise. It rewards
    keeping the base classes and not mistaking them for novel ones; it cannot see how well
    the novel classes are learnt.

    Args:
        meta: the run's shared keys (method, dataset, scenario, seed, class_order, tasks...).
        base, ways, shots, sessions, trials: the protocol.
        alpha: the CPI weight (META-SC: 0.5).
    """

    OBJECTIVE = "val_avg_base_accuracy"

    def __init__(self, meta: dict, base: int, ways: int, shots: int, sessions: int,
                 trials: int = 1, alpha: float = 0.5) -> None:
        self.meta = dict(meta)
        self.protocol = {"base_classes": base, "ways": ways, "shots": shots,
                         "sessions": sessions, "trials": trials, "cpi_alpha": alpha}
        self.steps: list[dict] = []

    def add_step(self, task, scores: dict, info: dict) -> None:
        step = {"task": task.index, "trial": getattr(task, "trial", 0),
                "session": getattr(task, "session", task.index), "n_classes": task.total, **info,
                "shots": scores.get("shots"),
                "classifiers": {k: {"correct": list(v["correct"]), "count": list(v["count"])}
                                for k, v in scores["classifiers"].items()}}
        self.steps = sorted([s for s in self.steps if s["task"] != task.index] + [step],
                            key=lambda s: s["task"])

    # ---- figures ---------------------------------------------------------------------------
    def classifiers(self) -> list[str]:
        return list(self.steps[0]["classifiers"]) if self.steps else []

    def trial_sessions(self) -> dict[int, list[dict]]:
        """Trial -> its steps in session order, each starting with the shared base session."""
        base = [s for s in self.steps if s["session"] == 0]
        out: dict[int, list[dict]] = {}
        for s in self.steps:
            if s["session"] > 0:
                out.setdefault(s["trial"], list(base)).append(s)
        if not out and base:
            out[0] = list(base)
        return out

    def trial_figures(self, name: str) -> list[tuple[int, dict, bool]]:
        """(trial, :func:`run_figures`, complete) of every trial that has started."""
        p = self.protocol
        out = []
        for trial, steps in sorted(self.trial_sessions().items()):
            figs = [session_figures(s["classifiers"][name]["correct"], s["classifiers"][name]["count"],
                                    p["base_classes"], p["ways"], s["session"]) for s in steps]
            val = [(s.get("val") or {}).get(name, {}).get("base_accuracy") for s in steps]
            figures = {**run_figures(figs, p["cpi_alpha"]), "val_base_accuracy_per_session": val,
                       "val_avg_base_accuracy": mean_of(val)}
            out.append((trial, figures, len(steps) == p["sessions"] + 1))
        return out

    def summary(self, name: str) -> dict:
        """Mean and std over the complete trials (over the started ones while none is)."""
        trials = self.trial_figures(name)
        done = [f for _, f, complete in trials if complete] or [f for _, f, _ in trials]
        out = aggregate_trials(done)
        out["avg_incremental_accuracy"] = out.get("aa")
        out["trials"] = [{"trial": t, "complete": c, **f} for t, f, c in trials]
        return out

    def to_json(self) -> dict:
        out = {"schema_version": SCHEMA_VERSION, **self.meta}
        n_sessions = self.protocol["sessions"] + 1
        out["tasks"] = list(self.meta.get("tasks", []))[:n_sessions]  # one trial's sessions
        out["protocol"] = dict(self.protocol)
        out["completed_tasks"] = len(self.steps)
        names = self.classifiers()
        if names:
            out.update(self.summary(names[0]))
        out.update(objective(out, self.OBJECTIVE))
        out["nme"] = self.summary("nme") if "nme" in names and names[0] != "nme" else None
        out["classifiers"] = {n: self.summary(n) for n in names}
        out["shots"] = {str(t): {str(s["session"]): s["shots"] for s in steps if s["session"] > 0}
                        for t, steps in self.trial_sessions().items()}
        out["time_s_per_task"] = [s["time_s"] for s in self.steps]
        out["params_per_task"] = [s["params"] for s in self.steps]
        out["memory_samples"] = [s["memory_samples"] for s in self.steps]
        out["memory_bytes"] = [s.get("memory_bytes") for s in self.steps]
        out["cost_per_task"] = cost_per_task(self.steps)
        return out

    def long_rows(self) -> list[dict]:
        """One row per (trial, session, classifier, metric)."""
        return [*(row for n in self.classifiers() for trial, figs, _ in self.trial_figures(n)
                  for row in figure_rows(figs, n, trial)), *cost_rows(self.steps)]

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        names = self.classifiers()
        header = ["task", "trial", "session", "n_classes"]
        for n in names:
            header += [f"{n}_accuracy", f"{n}_base_accuracy", f"{n}_novel_accuracy", f"{n}_hm"]
        w.writerow(header + ["time_s", "params", "memory_samples"])
        p = self.protocol
        for s in self.steps:
            row = [s["task"], s["trial"], s["session"], s["n_classes"]]
            for n in names:
                f = session_figures(s["classifiers"][n]["correct"], s["classifiers"][n]["count"],
                                    p["base_classes"], p["ways"], s["session"])
                row += [f["accuracy"], f["base_accuracy"], f["novel_accuracy"], f["hm"]]
            w.writerow(row + [round(s["time_s"], 2), s["params"], s["memory_samples"]])
        return buf.getvalue()

    def table(self) -> str:
        """Accuracy per session (mean ± std over trials), AA, PD, AR, MSR, CPI."""
        def pm(m, s, fmt="{:.2f}"):
            return "-" if m is None else fmt.format(m) + ("" if not s else " ± " + fmt.format(s))

        lines = subset_note(self.meta)
        method = self.meta.get("method")
        for n in self.classifiers():
            f = self.summary(n)
            head = f"[{method}/{n}]"
            lines.append(f"{head} accuracy per session over {f['n_trials']} trial(s): "
                         + " ".join(f"{a:5.1f}" for a in f["accuracy_per_session"]))
            if f["n_trials"] > 1:
                lines.append(f"{head} std per session: "
                             + " ".join(f"{a:5.1f}" for a in f["accuracy_per_session_std"]))
            lines.append(f"{head} base/novel/HM after the last session: "
                         f"{pm(f['base_accuracy_per_session'][-1], None)} / "
                         f"{pm(f['novel_accuracy_per_session'][-1], None)} / "
                         f"{pm(f['hm_per_session'][-1], None)}")
            lines.append(f"{head} AA {pm(f['aa'], f['aa_std'])}  PD {pm(f['pd'], f['pd_std'])}  "
                         f"AR {pm(f['ar'], f['ar_std'])}  MSR {pm(f['msr'], f['msr_std'])}  "
                         f"CPI {pm(f['cpi'], f['cpi_std'])}")
        return "\n".join(lines)

    def state_dict(self) -> dict:
        return {"meta": self.meta, "protocol": self.protocol, "steps": self.steps}

    @classmethod
    def from_state(cls, state: dict) -> FewShotRecord:
        p = state["protocol"]
        rec = cls(state["meta"], p["base_classes"], p["ways"], p["shots"], p["sessions"],
                  p["trials"], p["cpi_alpha"])
        rec.steps = list(state["steps"])
        return rec
