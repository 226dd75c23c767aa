"""Epoch checkpoints at ``checkpoint.every_n_epochs`` (always the stage's last epoch), and the
training-time validation loop only where something reads it (issue 13 item 4)."""

from __future__ import annotations

import json

import lightning as L
import pytest

from audiocil.core import Task
from audiocil.engine.sequencer import checkpoint_due
from audiocil.run import build_strategy, make_trainer_factory, run
from tests.conftest import TINY, compose_cfg, epochs


def test_checkpoint_due_every_n_epochs_the_last_one_and_on_a_stop():
    due = [e for e in range(1, 8) if checkpoint_due(e, 3, last=e == 7, stopping=False)]
    assert due == [3, 6, 7]
    assert [e for e in range(1, 5) if checkpoint_due(e, 1, e == 4, False)] == [1, 2, 3, 4]
    assert checkpoint_due(2, 3, last=False, stopping=True)  # a preemption signal: write now
    assert not checkpoint_due(2, 3, last=False, stopping=False)


def test_a_run_writes_epoch_checkpoints_at_the_interval(tmp_path, monkeypatch):
    written: list[tuple[int, str]] = []
    save = L.Trainer.save_checkpoint

    def spy(self, path, *args, **kwargs):
        written.append((self.current_epoch + 1, str(path)))
        return save(self, path, *args, **kwargs)

    monkeypatch.setattr(L.Trainer, "save_checkpoint", spy)
    cfg = compose_cfg([*TINY, *epochs(3), "checkpoint.every_n_epochs=2", "trainer.limit_val_batches=0"],
                      tmp_path)
    run(cfg, tmp_path / "run")
    per_task = {}
    for epoch, path in written:
        task = path.split("checkpoints/")[1].split("/")[0]
        per_task.setdefault(task, []).append(epoch)
    assert per_task == {"task_0": [2, 3], "task_1": [2, 3]}  # the interval, then the last epoch
    assert json.loads((tmp_path / "run" / "results.json").read_text())["completed_tasks"] == 2


def test_every_n_epochs_is_checked_by_the_schema(tmp_path):
    from audiocil.errors import ConfigError
    from audiocil.schema import validate

    with pytest.raises(ConfigError, match=r"checkpoint.every_n_epochs=0: must be a whole number >= 1"):
        validate(compose_cfg([*TINY, "checkpoint.every_n_epochs=0"], tmp_path))


def test_validation_runs_at_its_interval_or_every_epoch_where_it_is_read(tmp_path):
    cfg = compose_cfg([*TINY, "trainer.check_val_every_n_epoch=4"], tmp_path)
    make = make_trainer_factory(cfg, tmp_path, logger=False)
    assert make(max_epochs=8, callbacks=[]).check_val_every_n_epoch == 4
    assert make(max_epochs=8, callbacks=[], validate="every_epoch").check_val_every_n_epoch == 1
    assert make(max_epochs=8, callbacks=[], validate=False).limit_val_batches == 0


def test_only_the_few_shot_base_session_validates_every_epoch(tmp_path):
    base, later = Task(0, (0, 1, 2, 3), 0, 4), Task(1, (4, 5), 4, 6)
    cfg = compose_cfg(["dataset=synth20", "dataset.loader.n_classes=8", "backbone.width=8",
                       "scenario=fewshot", "scenario.base_classes=4", "scenario.ways=2",
                       "scenario.shots=2", "method=prototype"], tmp_path)
    proto = build_strategy(cfg)
    assert proto.train_stage(base).validate == "every_epoch"  # it keeps its best epoch
    assert proto.train_stage(later).validate is True
    cil = build_strategy(compose_cfg([*TINY, "method=icarl", "method.memory.size=20"], tmp_path))
    assert cil.stages(base, None)[0].validate is True  # the interval: nothing else reads it
