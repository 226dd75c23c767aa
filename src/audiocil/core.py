"""The types every layer shares: a task, a training stage, and the scenario, objective and
record protocols. This module imports nothing of audiocil, so every other module may
import it (layers import downwards only; ``tests/test_imports.py`` checks it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch


@dataclass(frozen=True)
class Task:
    """One step of the stream.

    Attributes:
        index: 0-based task id.
        classes: original dataset class ids learnt in this task, in class order.
        known: number of classes learnt before this task (their positions are 0..known-1).
        total: number of classes known once this task is learnt.
    """

    index: int
    classes: tuple[int, ...]
    known: int
    total: int

    @property
    def new(self) -> int:
        return self.total - self.known


@dataclass(frozen=True)
class FewShotTask(Task):
    """A :class:`Task` that knows its trial and session (0 = the base session)."""

    trial: int = 0
    session: int = 0


#: one batch's loss: (inputs, targets) -> (loss, extra values to log); a loss of None takes
#: no optimizer step (a pass that only accumulates, e.g. EWC's Fisher)
StageLoss = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor | None, dict]]


@dataclass
class Stage:
    """One training stage of a task, run by the task sequencer as one stock ``Trainer.fit``.

    A task is an ordered list of stages (most methods: one, ``train``). Each stage has its own
    epochs, training clips, trained parameters, optimizer, scheduler and loss, and so its own
    logging, progress bar, DDP, precision and epoch checkpoints (a run killed inside a stage
    resumes inside it). A stage with ``epochs == 0`` runs no Lightning epoch: only its
    ``begin`` and ``end`` (a closed-form fit, for example).

    Attributes:
        name: unique within the task; names the stage's checkpoint folder and log keys.
        epochs: Lightning epochs (0: closed form only).
        optim: the stage's optimisation config: ``optimizer`` and ``scheduler`` nodes built by
            Hydra (``_partial_: true``), see :mod:`audiocil.optim`; None with zero epochs.
        params: the parameter groups the stage trains (``[{"params": [...], "lr": ...}]`` or
            a flat list of parameters); every other parameter is frozen during the stage
            (``requires_grad`` off, and modules whose parameters are all frozen stay in eval
            mode, so their BatchNorm statistics do not move). None: every parameter.
        indices: the stage's training clips (dataset indices into the train split), or a
            callable ``dm -> indices`` evaluated when the stage starts; None: the task's
            training clips (the method's ``train_indices``).
        loss: the batch loss; None: the method's ``training_loss``.
        begin: work before the first epoch (called again when a killed stage resumes, so
            it must depend only on the state at the stage's start).
        end: work after the last epoch (a closed-form fit, weight aligning, ...).
        batch_size: the stage's batch size; None: the method's.
        eval_modules: modules kept in eval mode during the stage although they train
            (e.g. an encoder trained with frozen BatchNorm statistics).
        validate: the validation loop during training: True at
            ``trainer.check_val_every_n_epoch`` (only the progress bar's and the logger's
            ``val/`` figure read it); ``"every_epoch"`` every epoch whatever that interval,
            for a stage that reads each epoch's figure (best-epoch selection, early
            stopping); False never. The task's validation figure (``val_objective``) is
            computed after the task either way.
        sampler: how training batches are drawn: ``shuffle`` (a permutation per epoch),
            ``balanced`` (multi-label class-balanced draws) or episodes
            ``{n_way, n_per, n_batches}`` (few-shot).
        dataset: the stage's own training items instead of clips: a callable ``epoch ->
            Dataset`` of ``(x, y, index)`` items (fixed embeddings of a frozen encoder,
            pseudo-features redrawn every few epochs, ...), asked again at every epoch;
            ``x`` may be a tuple of tensors. The loss then receives what it serves.
    """

    name: str
    epochs: int
    optim: dict | None = None
    params: Callable[[], Iterable] | None = None
    indices: np.ndarray | Callable[[Any], np.ndarray] | None = None
    loss: StageLoss | None = None
    begin: Callable[[Any], None] | None = None
    end: Callable[[Any], None] | None = None
    batch_size: int | None = None
    eval_modules: Callable[[], Iterable[torch.nn.Module]] | None = None
    validate: bool | str = True
    sampler: str | dict = "shuffle"
    dataset: Callable[[int], Any] | None = None


class Objective(Protocol):
    """What differs between single-label and multi-label learning, provided by the scenario
    so that no method branches on it: the loss, the distillation of a teacher's outputs, the
    validation figure, and how exemplars are chosen and replayed."""

    multilabel: bool

    def loss(self, logits: torch.Tensor, y: torch.Tensor, lo: int = 0,
             hi: int | None = None) -> torch.Tensor:
        """The classification loss over the logits of class positions ``lo..hi-1``."""
        ...

    def distill(self, student: torch.Tensor, teacher: torch.Tensor, T: float) -> torch.Tensor:
        """The distillation of the teacher's outputs into the student's (same classes)."""
        ...

    def val_score(self, logits: torch.Tensor, y: torch.Tensor) -> tuple[str, torch.Tensor]:
        """(name, value in percent) of the per-batch validation figure."""
        ...


class Record(Protocol):
    """The figures of a run, step by step; written as results.json after every task."""

    meta: dict

    def add_step(self, task: Task, scores: dict, info: dict) -> None: ...
    def to_json(self) -> dict: ...
    def csv_text(self) -> str: ...
    def long_rows(self) -> list[dict]: ...
    def table(self) -> str: ...
    def state_dict(self) -> dict: ...


class Scenario(Protocol):
    name: str
    objective: Objective

    def make_tasks(self, dataset) -> tuple[list[int], list[Task]]:
        """The class order and the tasks."""
        ...

    def own_indices(self, task: Task, dm) -> np.ndarray:
        """The task's own training clips (all of its classes' clips, or a few shots)."""
        ...

    def evaluate(self, trainer, strategy, dm, task: Task, tasks: list[Task]) -> dict:
        """Scores after ``task`` on the test clips of every class seen so far."""
        ...

    def validate(self, trainer, strategy, dm, task: Task, tasks: list[Task]) -> dict:
        """Figures after ``task`` on validation clips only (carved from the training data):
        what the run's ``val_objective``, the figure sweeps optimise, is made of. Called
        before :meth:`evaluate`; must not read the test split."""
        ...

    def new_record(self, meta: dict) -> Record: ...

    def record_from_state(self, state: dict) -> Record: ...
