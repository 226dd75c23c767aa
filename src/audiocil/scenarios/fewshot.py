"""The few-shot class-incremental scenario (FSCIL; Tao et al., CVPR 2020), as audio FCAC
benchmarks run it (Li et al.: META-SC, Interspeech 2023; PAN, IEEE TMM 2023; AMFO,
IEEE/ACM TASLP 2024).

A base session learns ``base_classes`` classes from all their training clips; then each of
``sessions`` incremental sessions brings ``ways`` new classes with ``shots`` training clips
each, drawn at random from that class's training clips (:func:`draw_shots`, seeded by
``shot_seed``). After every session the model is tested on the full test sets of every
class seen so far. Classes arrive in label order (``class_order_seed: null``), as in the
published protocols: the base classes are labels ``0..B-1``.

Trials. The papers average 100 draws of the shots. ``trials: N`` runs the incremental
sessions N times after ONE base session: the task list is the base session followed by
the N trials' sessions, each task carrying its ``trial`` and ``session``. The first
session of every trial after the first starts from the model saved after the base
session (:meth:`FewShotScenario.starts_from`; the task sequencer reloads
``checkpoints/task_0.pt``), and trial ``t`` draws its shots with the seed
``(shot_seed, t)``. Resuming works at any task, as in the standard scenario; only the base
checkpoint and the latest one are kept (:meth:`FewShotScenario.keep_checkpoint`).

Validation: methods that choose their base-session epoch do it on the base classes'
validation clips only (the scenario restricts the datamodule's validation set to them).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from audiocil.core import FewShotTask, Task
from audiocil.data.samplers import EpisodeBatchSampler, episode
from audiocil.errors import ConfigError
from audiocil.objectives import SingleLabel
from audiocil.results.fewshot import FewShotRecord
from audiocil.scenarios.standard import class_order

__all__ = ["EpisodeBatchSampler", "FewShotScenario", "FewShotTask", "draw_shots", "episode"]


def draw_shots(pools: Mapping[int, np.ndarray], shots: int, seed: int, trial: int = 0
               ) -> np.ndarray:
    """Pick ``shots`` training clips of each class, without replacement.

    Each class draws from its own generator seeded by ``(seed, trial, class id)``, so a
    class's shots do not depend on the other classes or on the session it arrives in.

    Args:
        pools: dataset class id -> indices of all its (valid) training clips.
        shots: clips per class.
        seed: the scenario's ``shot_seed``.
        trial: the trial number (another trial, other shots).

    Returns:
        (len(pools) * shots,) clip indices, class by class in the order of ``pools``.
    """
    out = []
    for cid, pool in pools.items():
        pool = np.sort(np.asarray(pool, dtype=np.int64))
        if len(pool) < shots:
            raise ConfigError(f"class {cid} has {len(pool)} training clips, fewer than "
                             f"scenario.shots={shots}")
        rng = np.random.default_rng([int(seed), int(trial), int(cid)])
        out.append(pool[rng.choice(len(pool), size=shots, replace=False)])
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


class FewShotScenario:
    """``scenario=fewshot``: a base session, then ``sessions`` x ``ways``-way ``shots``-shot.

    Args:
        base_classes: classes of the base session (B).
        ways: new classes per incremental session (W).
        shots: training clips per new class (K).
        sessions: incremental sessions; None = as many as the dataset's classes allow.
        shot_seed: seeds the draw of the shots.
        trials: how many times the incremental sessions are run after the one base session.
        class_order_seed: None keeps the label order (the published protocols).
        class_order: an explicit order instead.
        cpi_alpha: the weight of MSR in META-SC's CPI.
    """

    name = "fewshot"
    multilabel = False

    def __init__(self, base_classes: int, ways: int, shots: int, sessions: int | None = None,
                 shot_seed: int = 0, trials: int = 1, class_order_seed: int | None = None,
                 class_order: list[int] | None = None, cpi_alpha: float = 0.5) -> None:
        if min(base_classes, ways, shots, trials) < 1:
            raise ConfigError("scenario: base_classes, ways, shots and trials must be >= 1")
        self.base, self.ways, self.shots, self.sessions = base_classes, ways, shots, sessions
        self.shot_seed, self.trials, self.cpi_alpha = int(shot_seed), int(trials), cpi_alpha
        self.class_order_seed, self.explicit_order = class_order_seed, class_order
        self.objective = SingleLabel()

    def make_tasks(self, dataset) -> tuple[list[int], list[Task]]:
        if dataset.multilabel:
            raise ConfigError(f"dataset {dataset.name!r} is multi-label: scenario=fewshot is single-label")
        n = dataset.num_classes
        order = class_order(n, self.class_order_seed,
                            list(self.explicit_order) if self.explicit_order else None)
        if self.sessions is None:
            self.sessions = (n - self.base) // self.ways
        B, W, S = self.base, self.ways, self.sessions
        if S < 1 or B + S * W > n:
            raise ConfigError(f"scenario: {B} base classes + {S} sessions x {W} ways needs "
                             f"{B + S * W} classes with at least one session; the dataset has {n}")
        tasks: list[Task] = [FewShotTask(0, tuple(order[:B]), 0, B, trial=0, session=0)]
        for t in range(self.trials):
            for s in range(1, S + 1):
                a, b = B + (s - 1) * W, B + s * W
                tasks.append(FewShotTask(len(tasks), tuple(order[a:b]), a, b, trial=t, session=s))
        return order, tasks

    def own_indices(self, task: Task, dm) -> np.ndarray:
        """All training clips of the base classes, or K drawn clips of each new class."""
        dm.val_classes = list(range(self.base))  # validation: base classes only
        if task.known == 0:
            return dm.indices_of(range(task.total))
        pools = dm.by_class(range(task.known, task.total))
        trial = getattr(task, "trial", 0)
        return draw_shots({dm.order[p]: pools[p] for p in pools}, self.shots, self.shot_seed, trial)

    def starts_from(self, task: Task) -> int | None:
        """The task whose saved model this task starts from, when not the previous one."""
        if getattr(task, "session", 0) == 1 and getattr(task, "trial", 0) > 0:
            return 0
        return None

    def keep_checkpoint(self, index: int) -> bool:
        """Task checkpoints worth keeping once a later one exists: the base session's."""
        return index == 0

    def outputs_due(self, task: Task, tasks: list[Task]) -> bool:
        """Whether results.json, the CSVs and the summary are written after ``task``: after
        the base session and the last session of each trial, not after every session.
        They hold every trial so far, so writing them after each of 100 x 9 sessions cost
        time that grew with the run (on gm100, 280 of 898 s; quadratic in the sessions).
        The record itself grows after every session and is in every task checkpoint, so a
        resumed run loses nothing."""
        nxt = task.index + 1
        return nxt >= len(tasks) or tasks[nxt].session == 1  # the next starts a trial

    def evaluate(self, trainer, strategy, dm, task: Task, tasks: list[Task]) -> dict:
        """Correct top-1 predictions and test clips of every seen class, per classifier."""
        strategy.setup_eval(torch.arange(task.total), task.total)
        strategy.test_pass(trainer, dm, "test")
        out: dict = {"classifiers": {}}
        for name, metric in strategy.eval_metrics.items():
            r = metric.compute()
            count = r["count_per_task"].cpu().long()
            correct = (r["top1_per_task"].cpu() * count / 100).round().long()
            out["classifiers"][name] = {"correct": correct.tolist(), "count": count.tolist()}
        if task.known > 0:
            out["shots"] = [int(i) for i in dm.own_indices]
        return out

    def validate(self, trainer, strategy, dm, task: Task, tasks: list[Task]) -> dict:
        """Top-1 accuracy of the base classes' validation clips, classified among every seen
        class, per classifier. The novel classes have no validation clips: the protocol
        gives them their shots and nothing more."""
        strategy.setup_eval(torch.zeros(task.total, dtype=torch.long), 1)
        strategy.test_pass(trainer, dm, "val", range(self.base))
        return {name: {"base_accuracy": float(m.compute()["top1"])}
                for name, m in strategy.eval_metrics.items()}

    def new_record(self, meta: dict) -> FewShotRecord:
        return FewShotRecord(meta, self.base, self.ways, self.shots, int(self.sessions or 0),
                             self.trials, self.cpi_alpha)

    def record_from_state(self, state: dict) -> FewShotRecord:
        return FewShotRecord.from_state(state)
