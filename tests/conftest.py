"""Shared test fixtures: compose real configs with tiny overrides and run them."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from audiocil.config import compose, register_resolvers

register_resolvers()
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

# A tiny, fast protocol on the synthetic dataset: 8 classes, 2 tasks of 4.
TINY = [
    "dataset=synth20",
    "dataset.loader.n_classes=8",
    "scenario.init_cls=4",
    "scenario.increment=4",
    "dataset.frontend.n_mels=32",
    "dataset.frontend.hop_length=512",  # 32 x 32 log-mels
    "backbone.width=8",
    "trainer.enable_progress_bar=false",
    "logger=csv",
]


# debug=smoke's epochs (2 per stage) on TINY's stream, every batch of them, no validation
SMOKE = ["debug=smoke", *TINY, "trainer.limit_train_batches=1.0", "trainer.max_steps=-1",
         "trainer.limit_val_batches=0"]


def compose_cfg(overrides: list[str], root: Path) -> DictConfig:
    return compose([f"paths.root_dir={root}", *overrides])


def run_config(cfg: DictConfig, run_dir: Path) -> dict:
    """``audiocil.run.run(cfg, run_dir)`` as a fresh process starts it: without the run
    directory that an earlier run of this process recorded for DDP workers (``RUN_DIR_ENV``);
    the environment is restored afterwards. Returns the run's ``results.json`` content."""
    from audiocil.run import RUN_DIR_ENV, run

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(RUN_DIR_ENV, "")
        return run(cfg, run_dir)


def run_tiny(overrides: Sequence[str], root: Path, run_dir: Path) -> dict:
    """:func:`run_config` of ``overrides`` composed with ``paths.root_dir=root``."""
    return run_config(compose_cfg(list(overrides), root), run_dir)


def run_smoke(method: str, root: Path, run_dir: Path, *extra: str) -> dict:
    """``method`` on :data:`SMOKE`, with ``extra`` overrides (they win)."""
    return run_tiny([*SMOKE, f"method={method}", *extra], root, run_dir)


def strategy_after(run_dir: Path, task: int):
    """The strategy as task ``task`` of the run in ``run_dir`` left it (its checkpoint)."""
    from audiocil.run import strategy_from_checkpoint

    return strategy_from_checkpoint(Path(run_dir) / "checkpoints" / f"task_{task}.pt")


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of a module's tensors (parameters and buffers) by name."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()
            if isinstance(v, torch.Tensor)}


def same_state(a: dict, b: dict) -> bool:
    """Two state dicts with the same names and bit-identical tensors."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="session")
def shared_root(tmp_path_factory) -> Path:
    """One data + cache directory for the whole session: datasets are made once."""
    return tmp_path_factory.mktemp("audiocil_root")


@pytest.fixture
def make_cfg(shared_root) -> Callable[..., DictConfig]:
    def make(*overrides: str, tiny: bool = True) -> DictConfig:
        return compose_cfg([*(TINY if tiny else []), *overrides], shared_root)
    return make


def epochs(n_first: int, n_later: int | None = None, lr: float = 0.05) -> list[str]:
    """Overrides for a short constant-rate schedule."""
    n_later = n_first if n_later is None else n_later
    return [f"method.first_task.epochs={n_first}", f"method.later_tasks.epochs={n_later}",
            "method.first_task.scheduler.kind=constant", "method.later_tasks.scheduler.kind=constant",
            f"method.first_task.optimizer.lr={lr}", f"method.later_tasks.optimizer.lr={lr}",
            "method.batch_size=32"]
