"""The task sequencer: drives a stream of tasks through stock Lightning Trainers.

For each task it (1) reseeds, (2) lets the strategy grow and chooses the training clips,
(3) fits with a fresh ``Trainer`` (so DDP re-wraps the grown model), (4) runs the
strategy's end-of-task work, (5) tests on every class seen so far, and (6) writes a task
checkpoint, the per-step CSV and ``results.json``. As a callback it also reseeds each
epoch from (seed, task, epoch) and keeps the logger's step counter running across tasks,
so an interrupted task resumed from its last epoch reproduces the same batches.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.utilities.seed import seed_everything

from audiocil.results import write_outputs
from audiocil.scenarios.base import Record, Scenario
from audiocil.scenarios.standard import Task

log = logging.getLogger(__name__)


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


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


class EpochCheckpoint(L.Callback):
    """Writes ``last.ckpt`` atomically at the end of every training epoch of a task."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        trainer.save_checkpoint(tmp)
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
        trainer.strategy.barrier()


class TaskSequencer(L.Callback):
    """Runs the tasks and records the results.

    Args:
        scenario: chooses each task's clips, evaluates, keeps the record.
        tasks: the scenario's tasks.
        run_dir: the run's output directory.
        record: what is known of the run so far (restored on resume).
        seed: the run's seed.
    """

    def __init__(self, scenario: Scenario, tasks: list[Task], run_dir: Path, record: Record,
                 seed: int) -> None:
        self.scenario, self.tasks, self.run_dir = scenario, tasks, run_dir
        self.record, self.seed = record, seed
        self.ckpt_dir = run_dir / "checkpoints"
        self.step_offset = 0
        self.current: Task | None = None

    # ---- Lightning hooks ------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # continue the logger's step count across the per-task trainers
        loop = trainer.fit_loop.epoch_loop
        loop._batches_that_stepped = max(loop._batches_that_stepped, self.step_offset)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch,
                             batch_idx: int) -> None:
        # dropout and augmentation draw from (seed, task, epoch, batch): a run resumed from an
        # epoch checkpoint repeats exactly what the uninterrupted run would have done
        task = self.current.index if self.current else 0
        torch.manual_seed(hash((self.seed, task, trainer.current_epoch, batch_idx)) % (2**62))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.step_offset = trainer.fit_loop.epoch_loop._batches_that_stepped

    def state_dict(self) -> dict:
        return {"step_offset": self.step_offset}

    def load_state_dict(self, state: dict) -> None:
        self.step_offset = state["step_offset"]

    # ---- the stream ------------------------------------------------------------------------
    def run(self, strategy, dm, make_trainer: Callable[..., L.Trainer], start: int = 0) -> Record:
        for task in self.tasks[start:]:
            # a scenario that repeats its later tasks (few-shot trials) restarts them from
            # the model saved after an earlier task rather than from the previous task's
            origin = getattr(self.scenario, "starts_from", lambda t: None)(task)
            if origin is not None:
                log.info("task %d starts from the model saved after task %d", task.index, origin)
                strategy = torch.load(self.ckpt_dir / f"task_{origin}.pt", map_location="cpu",
                                      weights_only=False)["strategy"]
            self.run_task(task, strategy, dm, make_trainer)
        return self.record

    def run_task(self, task: Task, strategy, dm, make_trainer: Callable[..., L.Trainer]) -> None:
        self.current = task
        t0 = time.time()
        seed_everything(self.seed * 7919 + task.index, workers=True, verbose=False)
        log.info("task %d/%d: classes %d..%d (%d new)", task.index + 1, len(self.tasks),
                 task.known, task.total - 1, task.new)
        dm.set_own(self.scenario.own_indices(task, dm))
        strategy.before_task(task, dm)
        if task.index == 0:
            frontend = strategy.network.frontend
            mean, std = dm.first_task_stats(range(task.total), frontend if dm.cache == "waveform" else None)
            frontend.set_stats(mean, std)
        dm.set_task(task.index, strategy.train_indices(task, dm), task.total, strategy.batch_size)

        task_dir = self.ckpt_dir / f"task_{task.index}"
        task_dir.mkdir(parents=True, exist_ok=True)
        last = task_dir / "last.ckpt"
        trainer = make_trainer(max_epochs=strategy.epochs(task),
                               callbacks=[self, EpochCheckpoint(last)])
        resume_from = str(last) if last.exists() else None
        if resume_from:
            log.info("task %d: resuming inside the task from %s", task.index, last)
        trainer.fit(strategy, datamodule=dm, ckpt_path=resume_from)
        strategy.to(trainer.strategy.root_device)  # fit's teardown leaves the model on the CPU
        sync_from_rank_zero(strategy)
        strategy.after_task(task, dm)
        memory = getattr(strategy, "memory", None)
        if memory is not None:
            assert_same_on_every_rank(memory.indices().tolist(), "exemplar indices")

        scores = self.scenario.evaluate(trainer, strategy, dm, task, self.tasks)
        self.record.add_step(task, scores, {
            "time_s": time.time() - t0,
            "params": sum(p.numel() for p in strategy.parameters()),
            "memory_samples": len(memory) if memory is not None else 0,
            "memory_bytes": memory.nbytes(dm.sample_nbytes) if memory is not None else None})
        if trainer.is_global_zero:
            _atomic_torch_save({"task": task.index, "strategy": strategy, "datamodule": dm.state_dict(),
                                "sequencer": self.state_dict(), "record": self.record.state_dict()},
                               self.ckpt_dir / f"task_{task.index}.pt")
            if last.exists():
                last.unlink()  # superseded by the task checkpoint
            keep = getattr(self.scenario, "keep_checkpoint", None)
            prev = self.ckpt_dir / f"task_{task.index - 1}.pt"
            if keep is not None and task.index > 0 and not keep(task.index - 1) and prev.exists():
                prev.unlink()  # the scenario needs only some of the earlier task checkpoints
            write_outputs(self.record, self.run_dir)
            log.info("\n%s", self.record.table())
        trainer.strategy.barrier()
