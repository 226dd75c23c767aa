"""What a scenario decides, so that no method has to know which scenario it runs in.

A scenario turns a dataset into tasks, chooses each task's own training clips, evaluates
the model after each task and keeps the run's record. The task sequencer only calls these.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from audiocil.data.catalog import AudioDataset
from audiocil.scenarios.standard import Task


class Record(Protocol):
    """The figures of a run, step by step; written as results.json after every task."""

    meta: dict

    def add_step(self, task: Task, scores: dict, info: dict) -> None: ...
    def to_json(self) -> dict: ...
    def csv_text(self) -> str: ...
    def table(self) -> str: ...
    def state_dict(self) -> dict: ...


class Scenario(Protocol):
    name: str
    multilabel: bool

    def make_tasks(self, dataset: AudioDataset) -> tuple[list[int], list[Task]]:
        """The class order and the tasks."""
        ...

    def own_indices(self, task: Task, dm) -> np.ndarray:
        """The task's own training clips (all of its classes' clips, or a few shots)."""
        ...

    def evaluate(self, trainer, strategy, dm, task: Task, tasks: list[Task]) -> dict:
        """Scores after ``task`` on the test clips of every class seen so far."""
        ...

    def new_record(self, meta: dict) -> Record: ...

    def record_from_state(self, state: dict) -> Record: ...
