"""The task sequencer: drives a stream of tasks, stage by stage, through stock Trainers.

For each task it (1) reseeds, (2) lets the scenario choose the task's clips and the
strategy grow, (3) runs each of the strategy's stages (:class:`audiocil.core.Stage`) with a
fresh ``Trainer.fit`` (so DDP re-wraps the grown model and every stage gets logging,
progress, precision and epoch checkpoints), (4) runs the strategy's end-of-task work,
(5) tests on every class seen so far, and (6) writes a task checkpoint, the per-step CSV
and ``results.json``. Between the stages of a task it writes a stage checkpoint, so a run
killed in a later stage resumes there. As a callback it reseeds every batch from
(seed, task, stage, epoch, batch) and keeps the logger's step counter running across
fits, so an interrupted stage resumed from its last epoch repeats the same batches.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.seed import seed_everything

from audiocil.core import Record, Scenario, Stage, Task
from audiocil.engine import checkpoints, preemption
from audiocil.engine.cost import TaskCost
from audiocil.results import write_outputs

log = logging.getLogger(__name__)


def sync_from_rank_zero(module: torch.nn.Module) -> None:
    """Under DDP, copy rank 0's parameters and buffers to every rank.

    Gradients keep the parameters in step, but each rank's last batches update its own
    BatchNorm statistics; end-of-task work (herding, class means) must see one model.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    for tensor in module.state_dict().values():
        if isinstance(tensor, torch.Tensor):
            torch.distributed.broadcast(tensor, src=0)


def assert_same_on_every_rank(value, what: str) -> None:
    """Under DDP, fail loudly if the ranks disagree (e.g. on the exemplars they keep)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    gathered: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, value)
    if any(g != gathered[0] for g in gathered):
        raise RuntimeError(f"DDP ranks disagree on the {what}; results would not be reproducible")


def checkpoint_due(epochs_done: int, every_n_epochs: int, last: bool, stopping: bool) -> bool:
    """Whether the epoch that just ended (``epochs_done`` of the stage so far) writes
    ``last.ckpt``: every ``every_n_epochs``-th epoch, the stage's last epoch (so a run killed
    after it, in the end-of-task work, does not train again), and an epoch at whose end the
    run stops for a preemption signal."""
    return epochs_done % every_n_epochs == 0 or last or stopping


class EpochCheckpoint(L.Callback):
    """Writes ``last.ckpt`` atomically at the end of a stage's training epochs (see
    :func:`checkpoint_due`; ``checkpoint.every_n_epochs``).

    A run killed between two checkpoints resumes from the last one written and repeats the
    epochs after it exactly (batches are drawn from (seed, task, stage, epoch, batch)). The
    write is synchronous: copying the tensors for a background write costs the training
    thread about as long as writing them (``benchmarks/bench_checkpoint.py``).
    """

    def __init__(self, path: Path, every_n_epochs: int = 1) -> None:
        if int(every_n_epochs) < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.path, self.every_n_epochs = path, int(every_n_epochs)
        self.writes, self.seconds = 0, 0.0

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        done = trainer.current_epoch + 1
        last = (done >= (trainer.max_epochs or 0) or trainer.should_stop
                or 0 <= (trainer.max_steps if trainer.max_steps is not None else -1) <= trainer.global_step)
        if not checkpoint_due(done, self.every_n_epochs, last, preemption.pending()):
            return
        t0 = time.perf_counter()
        tmp = self.path.with_name(self.path.name + ".tmp")
        trainer.save_checkpoint(tmp)
        if trainer.is_global_zero:
            tmp.replace(self.path)
        self.writes, self.seconds = self.writes + 1, self.seconds + time.perf_counter() - t0
        trainer.strategy.barrier()
        preemption.check(f"at the end of epoch {done} ({self.path} written)")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.writes and trainer.is_global_zero and self.path.exists():
            log.info("%s: %d epoch checkpoint(s) of %.1f MB, %.2f s each (checkpoint.every_n_epochs=%d)",
                     self.path, self.writes,
                     self.path.stat().st_size / 2**20, self.seconds / self.writes, self.every_n_epochs)


class TaskSequencer(L.Callback):
    """Runs the tasks and records the results.

    Args:
        scenario: chooses each task's clips, evaluates, keeps the record.
        tasks: the scenario's tasks.
        run_dir: the run's output directory.
        record: what is known of the run so far (restored on resume).
        seed: the run's seed.
        config: the run's resolved config (plain data), stored in every checkpoint.
        rebuild: makes a fresh strategy from a checkpoint's content (few-shot trials
            restart from the base session's checkpoint).
        after_task: called as ``fn(record, task)`` once each task's results are written
            (dashboards, progress); rank 0 only.
        checkpoint_every: a stage's epoch checkpoint is written every this many epochs
            (``checkpoint.every_n_epochs``; see :class:`EpochCheckpoint`).
    """

    def __init__(self, scenario: Scenario, tasks: list[Task], run_dir: Path, record: Record,
                 seed: int, config: dict, rebuild: Callable[[dict], L.LightningModule],
                 after_task: list[Callable[[Record, Task], None]] | None = None,
                 checkpoint_every: int = 1) -> None:
        self.scenario, self.tasks, self.run_dir = scenario, tasks, run_dir
        self.checkpoint_every = int(checkpoint_every)
        self.record, self.seed, self.config, self.rebuild = record, seed, config, rebuild
        self.after_task, self.cost = list(after_task or []), TaskCost()
        self.ckpt_dir = run_dir / "checkpoints"
        self.step_offset = 0
        self.current: Task | None = None
        self.stage_index = 0

    # ---- Lightning hooks ------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # continue the logger's step count across the per-stage trainers
        loop = trainer.fit_loop.epoch_loop
        loop._batches_that_stepped = max(loop._batches_that_stepped, self.step_offset)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch,
                             batch_idx: int) -> None:
        # dropout and augmentation draw from (seed, task, stage, epoch, batch): a run resumed
        # from an epoch checkpoint repeats exactly what the uninterrupted run would have done
        task = self.current.index if self.current else 0
        key = (self.seed, task, trainer.current_epoch, batch_idx)
        if self.stage_index:
            key = (*key, self.stage_index)
        torch.manual_seed(hash(key) % (2**62))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.step_offset = trainer.fit_loop.epoch_loop._batches_that_stepped

    def state_dict(self) -> dict:
        return {"step_offset": self.step_offset}

    def load_state_dict(self, state: dict) -> None:
        self.step_offset = state["step_offset"]

    # ---- the stream ------------------------------------------------------------------------
    def run(self, strategy, dm, make_trainer: Callable[..., L.Trainer], start: int = 0) -> Record:
        for task in self.tasks[start:]:
            preemption.check(f"before task {task.index}")
            # a scenario that repeats its later tasks (few-shot trials) restarts them from
            # the model saved after an earlier task rather than from the previous task's
            origin = getattr(self.scenario, "starts_from", lambda t: None)(task)
            if origin is not None:
                log.info("task %d starts from the model saved after task %d", task.index, origin)
                strategy = self.rebuild(checkpoints.load(self.ckpt_dir / f"task_{origin}.pt"))
            self.run_task(task, strategy, dm, make_trainer)
        return self.record

    def save(self, path: Path, task: Task, strategy, dm, stage: int | None = None) -> None:
        checkpoints.save(path, config=self.config, task=task.index, strategy=strategy,
                         datamodule=dm.state_dict(), sequencer=self.state_dict(),
                         record=self.record.state_dict(), stage=stage)

    def run_task(self, task: Task, strategy, dm, make_trainer: Callable[..., L.Trainer]) -> None:
        self.current, self.stage_index = task, 0
        self.cost.start()
        seed_everything(self.seed * 7919 + task.index, workers=True, verbose=False)
        log.info("task %d/%d: classes %d..%d (%d new)", task.index + 1, len(self.tasks),
                 task.known, task.total - 1, task.new)
        dm.set_own(self.scenario.own_indices(task, dm), task.total)
        strategy.before_task(task, dm)
        if task.index == 0:
            frontend = strategy.network.frontend
            mean, std = dm.first_task_stats(range(task.total), frontend if dm.cache == "waveform" else None)
            frontend.set_stats(mean, std)
        task_dir = self.ckpt_dir / f"task_{task.index}"
        task_dir.mkdir(parents=True, exist_ok=True)
        stages = strategy.stages(task, dm)
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"{type(strategy).__name__}: stage names must be unique, got {names}")
        first = self.resume_stages(task_dir, strategy, dm)
        trainer = None
        for i, stage in enumerate(stages):
            if i < first:
                continue
            trainer = self.run_stage(task, i, stage, strategy, dm, make_trainer, task_dir) or trainer
            if i < len(stages) - 1 and _is_global_zero(trainer):
                self.save(checkpoints.stage_checkpoint(task_dir, i, stage.name), task, strategy, dm, i)
            if i < len(stages) - 1:
                preemption.check(f"after stage {stage.name} of task {task.index}")
        self.stage_index = 0
        strategy.after_task(task, dm)
        memory = getattr(strategy, "memory", None)
        if memory is not None:
            assert_same_on_every_rank(memory.indices().tolist(), "exemplar indices")

        if trainer is None:  # no stage trained: a trainer only to test
            trainer = make_trainer(max_epochs=1, callbacks=[])
        val = self.scenario.validate(trainer, strategy, dm, task, self.tasks)  # before test
        scores = self.scenario.evaluate(trainer, strategy, dm, task, self.tasks)
        self.record.add_step(task, scores, {"val": val,
                                            **self.cost.finish(strategy, memory, dm.sample_nbytes)})
        if trainer.is_global_zero:
            self.save(self.ckpt_dir / f"task_{task.index}.pt", task, strategy, dm)
            shutil.rmtree(task_dir, ignore_errors=True)  # superseded by the task checkpoint
            keep = getattr(self.scenario, "keep_checkpoint", None)
            prev = self.ckpt_dir / f"task_{task.index - 1}.pt"
            if keep is not None and task.index > 0 and not keep(task.index - 1) and prev.exists():
                prev.unlink()  # the scenario needs only some of the earlier task checkpoints
            due = getattr(self.scenario, "outputs_due", None)
            if due is None or due(task, self.tasks):
                write_outputs(self.record, self.run_dir)
                log.info("\n%s", self.record.table())
            for fn in self.after_task:
                fn(self.record, task)
        trainer.strategy.barrier()

    def resume_stages(self, task_dir: Path, strategy, dm) -> int:
        """Restore the last finished stage of this task, if a stage checkpoint is there;
        returns the index of the first stage still to run."""
        path = checkpoints.latest_stage_checkpoint(task_dir)
        if path is None:
            return 0
        state = checkpoints.load(path)
        checkpoints.restore_strategy(strategy, state["strategy"])
        dm.load_state_dict(state["datamodule"])
        self.load_state_dict(state["sequencer"])
        log.info("task %d: resuming after its stage %d (%s)", state["task"], state["stage"], path.name)
        return int(state["stage"]) + 1

    def run_stage(self, task: Task, index: int, stage: Stage, strategy, dm,
                  make_trainer: Callable[..., L.Trainer], task_dir: Path) -> L.Trainer | None:
        """One stage: its clips, parameters and optimizer, one ``Trainer.fit``."""
        self.stage_index = index
        if index:  # later stages draw from their own seeds, whatever ran before them
            seed_everything(hash((self.seed, task.index, index)) % (2**31), workers=True, verbose=False)
        log.info("task %d, stage %s: %d epoch(s)", task.index, stage.name, stage.epochs)
        strategy.enter_stage(stage)
        try:
            if stage.begin is not None:
                stage.begin(dm)
            trainer = None
            if stage.epochs > 0:
                idx = stage.indices(dm) if callable(stage.indices) else stage.indices
                idx = strategy.train_indices(task, dm) if idx is None else np.asarray(idx)
                dm.set_task(task.index, idx, task.total, stage.batch_size or strategy.batch_size,
                            stage=index, sampler=stage.sampler, dataset=stage.dataset)
                last = (task_dir / "last.ckpt") if index == 0 else (task_dir / f"stage{index}_{stage.name}" / "last.ckpt")
                last.parent.mkdir(parents=True, exist_ok=True)
                trainer = make_trainer(max_epochs=stage.epochs,
                                       callbacks=[self, EpochCheckpoint(last, self.checkpoint_every), self.cost],
                                       validate=stage.validate, reload=stage.dataset is not None)
                resume_from = str(last) if last.exists() else None
                if resume_from:
                    log.info("task %d: resuming inside stage %s from %s", task.index, stage.name, last)
                trainer.fit(strategy, datamodule=dm, ckpt_path=resume_from, weights_only=True)
                strategy.to(trainer.strategy.root_device)  # fit's teardown leaves it on the CPU
                sync_from_rank_zero(strategy)
            if stage.end is not None:
                stage.end(dm)
        finally:
            strategy.leave_stage()
        return trainer


def _is_global_zero(trainer: L.Trainer | None) -> bool:
    if trainer is not None:
        return trainer.is_global_zero
    return L.fabric.utilities.rank_zero.rank_zero_only.rank == 0
