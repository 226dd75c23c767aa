"""The figure a sweep optimises is computed on validation clips only: replacing the test
split (random inputs, shuffled labels) must not move it, while the test figures move."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from audiocil.data.datamodule import CILDataModule
from audiocil.results.objective import swept_value
from audiocil.run import run
from tests.conftest import TINY, compose_cfg, epochs
from tests.multilabel.synthmix import SYNTHMIX

FEWSHOT = ["dataset.loader.n_classes=12", "scenario=fewshot", "scenario.base_classes=6",
           "scenario.ways=3", "scenario.shots=2", "scenario.sessions=2", "scenario.trials=2"]
SCENARIOS = {
    "standard": (["method=replay", "method.memory.size=40", *epochs(2)],
                 "val_avg_incremental_accuracy", "avg_incremental_accuracy"),
    "fewshot": (["method=prototype", *FEWSHOT, "method.first_task.epochs=2"],
                "val_avg_base_accuracy", "aa"),
    "multilabel": ([*SYNTHMIX, "method=ft", *epochs(2)], "val_avg_macro_f1", "avg_macro_f1"),
}


def scramble_test_split(monkeypatch) -> None:
    """Every datamodule built from now on serves noise with shuffled labels as its test split."""
    prepare = CILDataModule.prepare

    def scrambled(self):
        prepare(self)
        g = torch.Generator().manual_seed(0)
        x = self.data["test"]
        self.data["test"] = (torch.randn(x.shape, generator=g) * 3).to(x.dtype)
        y = self.targets["test"]
        self.targets["test"] = y[torch.randperm(len(y), generator=g)]

    monkeypatch.setattr(CILDataModule, "prepare", scrambled)


@pytest.mark.parametrize("scenario", ["standard", pytest.param("fewshot", marks=pytest.mark.slow),
                                      pytest.param("multilabel", marks=pytest.mark.slow)])
def test_the_swept_figure_does_not_read_the_test_split(scenario, shared_root, tmp_path,
                                                       monkeypatch):
    overrides, val_key, test_key = SCENARIOS[scenario]
    tiny = TINY if scenario == "standard" else [o for o in TINY if not o.startswith("scenario.")]
    if scenario == "multilabel":
        overrides = [*overrides, "scenario.init_cls=4", "scenario.increment=2"]
    cfg = compose_cfg([*tiny, *overrides], shared_root)
    assert cfg.optimized_metric in ("val_objective", val_key)
    clean = run(cfg, tmp_path / "clean")
    scramble_test_split(monkeypatch)
    scrambled = run(cfg, tmp_path / "scrambled")

    assert clean["val_objective_is"] == val_key
    assert swept_value(clean, cfg.optimized_metric) == swept_value(scrambled, cfg.optimized_metric)
    assert clean["val_objective"] == clean[val_key] is not None
    assert clean[test_key] != scrambled[test_key]  # the test split did change
    written = json.loads((tmp_path / "clean" / "results.json").read_text())
    assert written["val_objective"] == clean["val_objective"]  # and the test figures stay there
    assert np.isfinite(written[test_key])
    cost = written["cost_per_task"]  # and the cost of every task
    assert len(cost) == written["completed_tasks"]
    assert all(c["peak_host_memory_bytes"] > 2**20 and c["params"] > 0
               and c["time_s"] >= c["train_time_s"] >= 0 for c in cost)
    # a session fitted in closed form (prototype's) trains nothing: no samples/s to report
    assert all((c["train_samples_per_s"] or 0) > 0 for c in cost if c["train_time_s"] > 0)
    assert cost[0]["train_time_s"] > 0 and cost[0]["train_samples_per_s"] > 0


def test_a_test_figure_as_the_swept_metric_is_named_as_such(caplog):
    results = {"avg_incremental_accuracy": 50.0, "val_objective": 40.0}
    assert swept_value(results) == 40.0
    assert swept_value(results, "avg_incremental_accuracy") == 50.0
    assert "tunes on the test split" in caplog.text
    with pytest.raises(KeyError, match="val_objective"):
        swept_value(results, "val_typo")
