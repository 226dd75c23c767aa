"""``trainer.precision=bf16-mixed`` on the CPU (issue 13, item 3): every standard method runs
its whole protocol (every stage, herding, closed-form fits, evaluation) under bf16 autocast,
its figures are finite and its float64/float32 pieces stay so."""

from __future__ import annotations

import math

import pytest
import torch

from audiocil.config import CONFIG_DIR
from tests.conftest import TINY, compose_cfg, run_config


def standard_methods() -> list[str]:
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    out = []
    for p in sorted((CONFIG_DIR / "method").glob("*.yaml")):
        target = OmegaConf.load(p).get("_target_")
        if target and "standard" in get_class(target).scenarios:
            out.append(p.stem)
    return out


@pytest.mark.parametrize("method", standard_methods())
def test_every_method_runs_under_bf16_autocast_on_the_cpu(method, shared_root, tmp_path):
    cfg = compose_cfg([*TINY, f"method={method}", "debug=smoke", "trainer.precision=bf16-mixed",
                       "trainer.max_steps=2", "method.batch_size=16"], shared_root)
    if cfg.method.get("memory"):
        key = "size" if cfg.method.memory.get("size") is not None else "per_class"
        cfg.method.memory[key] = 16 if key == "size" else 2
    res = run_config(cfg, tmp_path)
    assert res["completed_tasks"] == 2
    for name, figs in res["classifiers"].items():
        assert all(math.isfinite(v) for v in figs["accuracy_per_step"]), (name, figs)
    state = torch.load(tmp_path / "checkpoints" / "task_1.pt", weights_only=True)["strategy"]
    # autocast changes the compute, never what is stored: no parameter or buffer in bf16
    tensors = [v for v in state["state_dict"].values() if isinstance(v, torch.Tensor)]
    assert tensors and all(t.dtype != torch.bfloat16 for t in tensors)
