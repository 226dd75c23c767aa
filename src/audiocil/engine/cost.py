"""What a task costs: wall time, training throughput, peak memory.

:class:`TaskCost` is a Lightning callback that the task sequencer adds to every stage's
trainer; it counts the training samples and the time spent inside ``Trainer.fit``, and
tracks the peak host memory (resident set) and the peak accelerator memory of the task.

Peak host memory is the process's high-water mark (``VmHWM``), reset at the start of each
task through ``/proc/self/clear_refs`` where Linux allows it; elsewhere it is the process's
peak so far (``getrusage``), which only grows. It covers the main process (data loader
workers, 0 by default, are not counted). Peak accelerator memory is CUDA's
``max_memory_allocated`` on this process's device, reset per task; None without CUDA.
"""

from __future__ import annotations

import resource
import sys
import time

import lightning as L
import torch


def _reset_host_peak() -> bool:
    """Reset the process's peak resident set (Linux >= 4.0); True when it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_host_memory_bytes() -> int:
    """The process's peak resident set since the last reset (or since it started)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB on Linux


class TaskCost(L.Callback):
    """Counts one task's training samples and time; reports its cost at the end.

    Call :meth:`start` as the task starts and :meth:`finish` once it is evaluated; in
    between, pass it among the callbacks of every stage's trainer.
    """

    def __init__(self) -> None:
        self.start()

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.samples, self.train_s, self.world = 0, 0.0, 1
        self._fit_t0: float | None = None
        _reset_host_peak()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.reset_peak_memory_stats()

    # ---- Lightning hooks -----------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.world = trainer.world_size
        self._fit_t0 = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs,
                           batch, batch_idx: int) -> None:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        self.samples += int(len(x))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._fit_t0 is not None:
            self.train_s += time.perf_counter() - self._fit_t0
            self._fit_t0 = None

    # ---- the figures -----------------------------------------------------------------------
    def finish(self, strategy: torch.nn.Module, memory=None, sample_nbytes: int = 0) -> dict:
        """The task's cost (:data:`audiocil.results.cost.COST_FIELDS`): samples summed over DDP ranks, seconds of
        wall time for the whole task (training, end-of-task work, evaluation) and for the
        training fits alone."""
        samples = self.samples * self.world
        accel = None
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            accel = int(torch.cuda.max_memory_allocated())
        return {
            "time_s": time.perf_counter() - self.t0,
            "train_time_s": self.train_s,
            "train_samples": samples,
            "train_samples_per_s": samples / self.train_s if self.train_s > 0 else None,
            "peak_host_memory_bytes": peak_host_memory_bytes(),
            "peak_accelerator_memory_bytes": accel,
            "params": sum(p.numel() for p in strategy.parameters()),
            "memory_samples": len(memory) if memory is not None else 0,
            "memory_bytes": memory.nbytes(sample_nbytes) if memory is not None else None,
        }
