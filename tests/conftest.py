"""Shared test fixtures: compose real configs with tiny overrides and run them."""

from __future__ import annotations

import os
from collections.abc import Callable
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


def compose_cfg(overrides: list[str], root: Path) -> DictConfig:
    return compose([f"paths.root_dir={root}", *overrides])


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
