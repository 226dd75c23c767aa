"""Continual-learning summaries as pure functions of the accuracy matrix.

``R[t][j]`` is the accuracy (percent) on task ``j``'s test classes after training task
``t``; row ``t`` holds ``t + 1`` entries (tasks not yet seen are not scored).
"""

from __future__ import annotations

from collections.abc import Sequence

Matrix = Sequence[Sequence[float]]


def _check(R: Matrix) -> None:
    for t, row in enumerate(R):
        if len(row) != t + 1:
            raise ValueError(f"accuracy matrix row {t} has {len(row)} entries, expected {t + 1}")


def average_incremental_accuracy(acc_per_step: Sequence[float]) -> float:
    """Mean of the accuracy over all seen classes after each step, the first step included."""
    return float(sum(acc_per_step) / len(acc_per_step))


def forgetting(R: Matrix) -> float:
    """Average forgetting (Chaudhry et al., 2018) after the last task.

    For each earlier task j: the best accuracy it had after any earlier step minus its
    accuracy now; averaged over j < T-1. Zero for a single task.
    """
    _check(R)
    T = len(R)
    if T < 2:
        return 0.0
    drops = [max(R[t][j] for t in range(j, T - 1)) - R[T - 1][j] for j in range(T - 1)]
    return float(sum(drops) / len(drops))


def backward_transfer(R: Matrix) -> float:
    """BWT (Lopez-Paz & Ranzato, 2017): mean over j < T-1 of R[T-1][j] - R[j][j]."""
    _check(R)
    T = len(R)
    if T < 2:
        return 0.0
    return float(sum(R[T - 1][j] - R[j][j] for j in range(T - 1)) / (T - 1))


def forgetting_per_step(R: Matrix) -> list[float]:
    """Forgetting measured after each step (0 after the first)."""
    return [forgetting(R[: t + 1]) for t in range(len(R))]


def summarize(R: Matrix, acc_per_step: Sequence[float]) -> dict[str, float]:
    """The headline figures of a run from its accuracy matrix and per-step accuracy."""
    return {
        "avg_incremental_accuracy": average_incremental_accuracy(acc_per_step),
        "last_accuracy": float(acc_per_step[-1]),
        "forgetting": forgetting(R),
        "bwt": backward_transfer(R),
    }
