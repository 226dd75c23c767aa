"""Finetune, Replay and Joint on one small protocol: each learns, and they rank as CIL says."""

from __future__ import annotations

import json

import pytest

from audiocil.metrics.continual import summarize
from audiocil.run import run
from tests.conftest import TINY, compose_cfg, epochs

CHANCE = 100 / 8
PROTOCOL = [*TINY, *epochs(8), "trainer.limit_val_batches=0"]
REQUIRED = ["method", "dataset", "scenario", "seed", "class_order", "tasks", "accuracy_matrix",
            "accuracy_per_step", "avg_incremental_accuracy", "last_accuracy", "forgetting", "bwt",
            "nme", "time_s_per_task", "params_per_task", "memory_samples"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol")
    out = {}
    for method in ("finetune", "replay", "joint"):
        extra = ["method.memory.size=80"] if method == "replay" else []
        cfg = compose_cfg([f"method={method}", *PROTOCOL, *extra], root)
        run(cfg, root / method)
        out[method] = json.loads((root / method / "results.json").read_text())
    return out


def test_results_json_has_every_key_and_consistent_figures(results):
    for method, res in results.items():
        missing = [k for k in REQUIRED if k not in res]
        assert not missing, f"{method}: results.json lacks {missing}"
        R = res["accuracy_matrix"]
        assert [len(row) for row in R] == [1, 2]
        assert res["tasks"] == [res["class_order"][:4], res["class_order"][4:]]
        again = summarize(R, res["accuracy_per_step"])
        for k, v in again.items():
            assert res[k] == pytest.approx(v)


def test_every_method_learns_better_than_chance(results):
    for method, res in results.items():
        assert res["accuracy_matrix"][0][0] > 3 * CHANCE, method
        assert res["last_accuracy"] > 2 * CHANCE, method


def test_finetune_forgets_more_than_replay(results):
    assert results["finetune"]["forgetting"] > results["replay"]["forgetting"] + 10
    assert results["replay"]["memory_samples"][-1] == 80
    assert results["finetune"]["memory_samples"][-1] == 0


def test_joint_is_the_upper_bound(results):
    joint = results["joint"]["last_accuracy"]
    assert joint >= results["replay"]["last_accuracy"]
    assert joint > results["finetune"]["last_accuracy"]
