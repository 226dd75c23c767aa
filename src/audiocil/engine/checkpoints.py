"""Checkpoints as state: tensors and plain data, never pickled objects.

A task checkpoint (``checkpoints/task_<t>.pt``) and a stage checkpoint
(``checkpoints/task_<t>/stage<s>_<name>.pt``, written between the stages of a task) hold:

* ``format`` / ``version``: what this file is;
* ``config``: the run's resolved config (plain data);
* ``task`` (and ``stage``): where the run stands;
* ``strategy``: ``structure`` (the log of structural changes, replayed on a strategy
  freshly built from the config) and ``state_dict`` (parameters, buffers and each method's
  extra state: exemplar indices, Fisher, class means, ...);
* ``datamodule``, ``sequencer``, ``record``: their ``state_dict()``.

Every load goes through :func:`load`, i.e. ``torch.load(weights_only=True)``: a file that
would run code when unpickled is refused with a message that names it. Lightning's epoch
checkpoints inside a stage (``last.ckpt``) are loaded the same way (``weights_only=True``).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from audiocil.errors import ResumeError

FORMAT = "audiocil.checkpoint"
VERSION = 1


class CheckpointError(ResumeError, RuntimeError):
    """A checkpoint that cannot be used (unsafe, not ours, or of another version)."""


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def strategy_state(strategy) -> dict:
    return {"structure": strategy.structure_log(), "state_dict": strategy.state_dict()}


def restore_strategy(strategy, state: dict) -> None:
    """Replay the structural changes of ``state`` on ``strategy``, then load its state dict.

    Buffers that grow with the classes (class means, prototype banks) are data, not
    structure: they take the checkpoint's shape before loading."""
    strategy.replay_structure(state["structure"])
    saved = state["state_dict"]
    for name, buf in list(strategy.named_buffers()):
        if name in saved and isinstance(saved[name], torch.Tensor) and saved[name].shape != buf.shape:
            owner = strategy.get_submodule(name.rpartition(".")[0]) if "." in name else strategy
            owner._buffers[name.rpartition(".")[2]] = torch.empty_like(saved[name]).to(buf.device)
    strategy.load_state_dict(saved)


def save(path: Path, *, config: dict, task: int, strategy, datamodule: dict, sequencer: dict,
         record: dict, stage: int | None = None) -> None:
    atomic_save({"format": FORMAT, "version": VERSION, "config": config, "task": task,
                 "stage": stage, "strategy": strategy_state(strategy), "datamodule": datamodule,
                 "sequencer": sequencer, "record": record}, path)


def load(path: Path) -> dict:
    """A checkpoint's content, loaded with ``weights_only=True``.

    Raises:
        CheckpointError: the file holds anything but tensors and plain data (it could run
            code when loaded), or is not an audiocil checkpoint of this version.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as e:
        raise CheckpointError(
            f"refusing to load {path}: it is not a checkpoint of tensors and plain data "
            f"(loading it could run code). Only load checkpoints written by audiocil. "
            f"[{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}]") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an audiocil checkpoint (no format {FORMAT!r})")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')} is not "
                              f"{VERSION}, the version this audiocil reads")
    return state


def latest_task_checkpoint(run_dir: Path) -> Path | None:
    found = sorted((run_dir / "checkpoints").glob("task_*.pt"),
                   key=lambda p: int(p.stem.split("_")[1]))
    return found[-1] if found else None


def stage_checkpoint(task_dir: Path, index: int, name: str) -> Path:
    return task_dir / f"stage{index}_{name}.pt"


def latest_stage_checkpoint(task_dir: Path) -> Path | None:
    """The checkpoint of the last finished stage of an unfinished task, if any."""
    found = sorted(task_dir.glob("stage*_*.pt"),
                   key=lambda p: int(p.name[len("stage"):].split("_")[0]))
    return found[-1] if found else None
