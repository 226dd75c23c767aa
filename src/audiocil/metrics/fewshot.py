"""Few-shot class-incremental figures, as pure functions of per-class test counts.

After each session ``s`` (0 = the base session) the model is tested on the full test sets
of every class seen so far; the scenario hands over, per class position, the number of
correct top-1 predictions and of test clips. Classes ``0..B-1`` are the base classes and
session ``s >= 1`` adds positions ``B + (s-1)W .. B + sW - 1`` (``W`` ways).

Per session: the accuracy over all seen classes, over the base classes, over the novel
classes (every class after the base session) and their harmonic mean, the accuracy of each
session's own classes (a row of the accuracy matrix) and of the current session's classes.
Per run: the average accuracy AA (mean over sessions, base included) and the performance
dropping rate PD = A_0 - A_last (Tao et al., CVPR 2020), and the indices of META-SC (Li,
Cao, Li, Xie, He, "Few-shot class-incremental audio classification using stochastic
classifier", Interspeech 2023; ``utils/utils.py`` of its code): the amnesia rate
AR = (B_0 - B_last) / B_0 of the base-class accuracy B_s, the memory stock ratio
MSR = 1 - AR and the comprehensive performance index CPI = a MSR + (1 - a) mean_{s>=1} N_s
(N_s: novel-class accuracy, a = 0.5). The META-SC code holds AR, MSR and the accuracies as
fractions; here every figure is in percent (AR, MSR and CPI are 100 x the code's figures).

Accuracies are pooled over the clips of a group of classes (correct / clips). META-SC's
code averages per-class accuracies instead; the two agree when every class has as many
test clips, as in LS-100, NSynth-100 and gm100.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _pooled(correct: Sequence[int], count: Sequence[int], classes: range) -> float | None:
    n = sum(count[c] for c in classes)
    if not len(classes) or n == 0:
        return None
    return 100.0 * sum(correct[c] for c in classes) / n


def harmonic_mean(a: float | None, b: float | None) -> float | None:
    """2ab / (a + b); 0 when both are 0, None when either is missing."""
    if a is None or b is None:
        return None
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def session_groups(base: int, ways: int, session: int) -> list[range]:
    """Class positions of each session up to ``session``: the base classes, then W at a time."""
    return [range(0, base)] + [range(base + (s - 1) * ways, base + s * ways)
                               for s in range(1, session + 1)]


def session_figures(correct: Sequence[int], count: Sequence[int], base: int, ways: int,
                    session: int) -> dict:
    """The figures after one session.

    Args:
        correct: (C,) correct top-1 predictions per seen class position.
        count: (C,) test clips per seen class position.
        base: number of base classes B.
        ways: classes per incremental session W.
        session: 0 for the base session.
    """
    n = base + session * ways
    if len(correct) != n or len(count) != n:
        raise ValueError(f"session {session} has {n} seen classes, got {len(correct)} counts")
    groups = session_groups(base, ways, session)
    acc_all = _pooled(correct, count, range(n))
    acc_base = _pooled(correct, count, range(base))
    acc_novel = _pooled(correct, count, range(base, n)) if session else None
    return {
        "accuracy": acc_all,
        "base_accuracy": acc_base,
        "novel_accuracy": acc_novel,
        "hm": harmonic_mean(acc_base, acc_novel),
        "accuracy_row": [_pooled(correct, count, g) for g in groups],
        "current_accuracy": _pooled(correct, count, groups[-1]),
    }


def average_accuracy(acc: Sequence[float]) -> float:
    """AA: the mean accuracy over sessions, the base session included."""
    return float(np.mean(acc))


def performance_dropping_rate(acc: Sequence[float]) -> float:
    """PD = A_0 - A_last (percentage points)."""
    return float(acc[0] - acc[-1])


def amnesia_rate(base_acc: Sequence[float]) -> float:
    """AR (META-SC): the relative loss of base-class accuracy, (B_0 - B_last) / B_0, in %."""
    if base_acc[0] == 0:
        return 0.0
    return float(100.0 * (base_acc[0] - base_acc[-1]) / base_acc[0])


def memory_stock_ratio(base_acc: Sequence[float]) -> float:
    """MSR (META-SC) = 100 - AR, in %."""
    return 100.0 - amnesia_rate(base_acc)


def cpi(base_acc: Sequence[float], novel_acc: Sequence[float | None], alpha: float = 0.5
        ) -> float | None:
    """CPI (META-SC) = alpha MSR + (1 - alpha) mean novel-class accuracy of sessions >= 1."""
    novel = [a for a in novel_acc[1:] if a is not None]
    if not novel:
        return None
    return float(alpha * memory_stock_ratio(base_acc) + (1 - alpha) * np.mean(novel))


def run_figures(sessions: Sequence[dict], alpha: float = 0.5) -> dict:
    """Per-session lists and the run's indices from :func:`session_figures` of each session."""
    acc = [s["accuracy"] for s in sessions]
    base = [s["base_accuracy"] for s in sessions]
    novel = [s["novel_accuracy"] for s in sessions]
    hm = [s["hm"] for s in sessions]
    later = [x for x in novel[1:] if x is not None]
    later_hm = [x for x in hm[1:] if x is not None]
    return {
        "accuracy_per_session": acc,
        "base_accuracy_per_session": base,
        "novel_accuracy_per_session": novel,
        "hm_per_session": hm,
        "current_accuracy_per_session": [s["current_accuracy"] for s in sessions],
        "accuracy_matrix": [s["accuracy_row"] for s in sessions],
        "aa": average_accuracy(acc),
        "pd": performance_dropping_rate(acc),
        "last_accuracy": float(acc[-1]),
        "ar": amnesia_rate(base),
        "msr": memory_stock_ratio(base),
        "cpi": cpi(base, novel, alpha),
        "mean_novel_accuracy": float(np.mean(later)) if later else None,
        "mean_hm": float(np.mean(later_hm)) if later_hm else None,
    }


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof 1; 0 for one value) of the non-missing values."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return None, None
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def aggregate_trials(trials: Sequence[dict]) -> dict:
    """Mean and std over trials of every scalar index and, session by session, of each list.

    ``trials`` are :func:`run_figures` of complete trials; per-session lists may differ in
    length (a trial still running), each session averages the trials that reached it.
    """
    out: dict = {"n_trials": len(trials)}
    if not trials:
        return out
    for key, value in trials[0].items():
        if key == "accuracy_matrix":
            continue
        if isinstance(value, list):
            longest = max(len(t[key]) for t in trials)
            cols = [mean_std([t[key][i] for t in trials if i < len(t[key])]) for i in range(longest)]
            out[key] = [m for m, _ in cols]
            out[key + "_std"] = [s for _, s in cols]
        else:
            out[key], out[key + "_std"] = mean_std([t[key] for t in trials])
    rows = max(len(t["accuracy_matrix"]) for t in trials)
    out["accuracy_matrix"] = [
        [mean_std([t["accuracy_matrix"][r][j] for t in trials if r < len(t["accuracy_matrix"])])[0]
         for j in range(r + 1)] for r in range(rows)]
    return out
