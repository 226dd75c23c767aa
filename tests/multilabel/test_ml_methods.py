"""Every multi-label method learns on a tiny multi-label stream; single-label-only methods
refuse the scenario at start-up."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from audiocil.run import build_named, build_strategy, check_support, run
from tests.conftest import TINY, compose_cfg, epochs
from tests.multilabel.synthmix import SYNTHMIX

ML_METHODS = ["ft", "fe", "at", "indl", "iod", "ifd", "iodfd"]
SINGLE_LABEL_METHODS_THAT_RUN = ["finetune", "replay", "lwf"]
PROTOCOL = [*TINY, *SYNTHMIX, "scenario.increment=4", *epochs(5, 4, lr=0.05),
            "trainer.limit_val_batches=0"]
EXTRA = {"replay": ["method.memory.size=48", "method.memory.selection=random"]}


@pytest.fixture(scope="module")
def results(shared_root, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("ml_methods")
    out = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest, on a busy machine by far
    try:
        for method in ML_METHODS + SINGLE_LABEL_METHODS_THAT_RUN:
            cfg = compose_cfg([*PROTOCOL, f"method={method}", *EXTRA.get(method, [])], shared_root)
            run(cfg, out_dir / method)
            out[method] = json.loads((out_dir / method / "results.json").read_text())
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="module")
def chance(shared_root):
    """Scores of a learner that knows nothing: AP = prevalence, F1 of always saying yes."""
    ds = instantiate(compose_cfg([*PROTOCOL], shared_root).dataset.loader)
    p = ds.splits["test"].targets.mean(0)
    return {"map": 100 * float(p.mean()), "f1": 100 * float(np.mean(2 * p / (1 + p)))}


def test_results_hold_the_multilabel_figures(results):
    for method, res in results.items():
        assert res["scenario"] == "multilabel" and res["completed_tasks"] == 2, method
        for key in ("f1_matrix", "map_matrix", "macro_f1_per_phase", "micro_f1_per_phase",
                    "map_per_phase", "map_thresholded_per_phase", "forgetting_per_phase",
                    "avg_forgetting", "avg_macro_f1", "avg_map", "time_s_per_task",
                    "params_per_task", "memory_samples", "class_order", "tasks"):
            assert key in res, (method, key)
        assert [len(r) for r in res["f1_matrix"]] == [1, 2]
        assert res["test_clips"] == 120  # the whole test set, each clip once


def test_every_method_learns_better_than_chance(results, chance):
    for method, res in results.items():
        assert res["macro_f1_per_phase"][0] > chance["f1"] + 10, (method, res["macro_f1_per_phase"])
        assert res["map_per_phase"][-1] > chance["map"] + 15, (method, res["map_per_phase"])
        assert res["f1_matrix"][-1][-1] > chance["f1"], (method, "new classes not learnt")


def test_forgetting_ranks_as_the_methods_say(results):
    fr = {m: r["avg_forgetting"] for m, r in results.items()}
    assert fr["fe"] == 0.0  # frozen extractor and old classifier rows: nothing can change
    assert fr["ft"] > fr["indl"] and fr["ft"] > fr["iodfd"]
    assert fr["finetune"] > fr["replay"]
    assert results["replay"]["memory_samples"][-1] > 0
    assert results["at"]["map_per_phase"][-1] >= results["ft"]["map_per_phase"][-1]


@pytest.mark.parametrize("method", ["icarl", "der", "ewc", "joint"])
def test_single_label_only_methods_refuse_the_scenario(method, shared_root):
    cfg = compose_cfg([*TINY, *SYNTHMIX, f"method={method}"], shared_root)
    with pytest.raises(ValueError, match="does not support scenario=multilabel"):
        check_support(build_strategy(cfg), build_named(cfg.scenario))


def test_refusal_comes_at_start_up(shared_root, tmp_path):
    cfg = compose_cfg([*TINY, *SYNTHMIX, "method=icarl"], shared_root)
    with pytest.raises(ValueError, match="ICaRL does not support scenario=multilabel"):
        run(cfg, tmp_path / "icarl")
    assert not (tmp_path / "icarl" / "checkpoints").exists()  # nothing was trained


def test_multilabel_methods_refuse_single_label_scenarios(shared_root):
    cfg = compose_cfg([*TINY, "method=iodfd"], shared_root)
    with pytest.raises(ValueError, match="MultilabelCIL does not support scenario=standard"):
        check_support(build_strategy(cfg), build_named(cfg.scenario))
