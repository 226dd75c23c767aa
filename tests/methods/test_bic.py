"""BiC on a tiny stream of synth20 built to be biased: 4 + 4 classes, 40 training clips per
new class against 4 exemplars per old class (1 of them held out for the bias stage).

The claims: the bias stage changes only the last task's (alpha, beta) (every other
parameter and buffer bit-identical), and raises the old classes' accuracy over the
uncorrected head's; the validation split comes from the new clips and the exemplars, never
from the test set, and stage train does not see it; a run killed inside the bias stage and
resumed ends with the uninterrupted run's figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from audiocil.engine.sequencer import TaskSequencer
from audiocil.methods.bic import BiC
from tests.conftest import TINY, epochs, run_tiny, strategy_after
from tests.engine.test_resume import env, kill_when

ROOT = Path(__file__).resolve().parents[2]
CHANCE = 100 / 8
PROTOCOL = [*TINY, *epochs(8, 4, lr=0.05), "trainer.limit_val_batches=0", "method=bic",
            "method.memory.size=16"]


@pytest.fixture(scope="module")
def bic_run(shared_root, tmp_path_factory):
    """One BiC run; the whole strategy state around each bias stage, and each task's split."""
    out = tmp_path_factory.mktemp("bic")
    seen: dict = {}
    run_stage, split = TaskSequencer.run_stage, BiC.split

    def spy_stage(self, task, index, stage, strategy, dm, *args):
        if stage.name == "bias":
            seen[task.index, "before"] = {k: v.clone() for k, v in strategy.state_dict().items()
                                          if isinstance(v, torch.Tensor)}
        trainer = run_stage(self, task, index, stage, strategy, dm, *args)
        if stage.name == "bias":
            seen[task.index, "after"] = {k: v.clone() for k, v in strategy.state_dict().items()
                                         if isinstance(v, torch.Tensor)}
        return trainer

    def spy_split(self, task, dm):
        train, val = split(self, task, dm)
        seen[task.index, "split"] = (train.copy(), val.copy(), dm.own_indices.copy(),
                                     self.memory.indices().copy(), dm.class_positions("train"))
        return train, val

    TaskSequencer.run_stage, BiC.split = spy_stage, spy_split
    try:
        res = run_tiny(PROTOCOL, shared_root, out)
    finally:
        TaskSequencer.run_stage, BiC.split = run_stage, split
    return out, res, seen


def test_the_bias_stage_changes_only_the_last_pair(bic_run):
    _, _, seen = bic_run
    before, after = seen[1, "before"], seen[1, "after"]
    assert before.keys() == after.keys()
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == ["network.bias.alphas.1", "network.bias.betas.1"], changed
    # it moved away from the identity (1, 0), and shrinks the new classes' logits
    assert float(before["network.bias.alphas.1"]) == 1.0 and float(before["network.bias.betas.1"]) == 0.0
    assert float(after["network.bias.alphas.1"]) < 1.0
    assert ("network.bias.alphas.0" in after) and float(after["network.bias.alphas.0"]) == 1.0
    assert (0, "before") not in seen  # no bias stage in the first task


def test_the_bias_stage_raises_old_class_accuracy(bic_run):
    _, res, _ = bic_run
    cnn, raw = res["classifiers"]["cnn"], res["classifiers"]["cnn_raw"]
    assert list(res["classifiers"]) == ["cnn", "cnn_raw", "nme"]
    print("BiC old accuracy: corrected", cnn["old_accuracy_per_step"], "uncorrected", raw["old_accuracy_per_step"])
    assert cnn["old_accuracy_per_step"][1] > raw["old_accuracy_per_step"][1] + 5
    assert cnn["new_accuracy_per_step"][1] < raw["new_accuracy_per_step"][1]  # less biased
    assert cnn["accuracy_per_step"][0] == raw["accuracy_per_step"][0]  # task 0: the identity
    assert res["accuracy_per_step"] == cnn["accuracy_per_step"]  # the corrected one is the main


def test_the_validation_split_is_held_out_from_new_clips_and_exemplars(bic_run):
    _, _, seen = bic_run
    train, val, own, memory, labels = seen[1, "split"]
    assert len(np.intersect1d(train, val)) == 0
    assert set(val) <= set(own) | set(memory)  # training clips only, never the test set
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.sort(np.concatenate([own, memory])))
    assert np.bincount(labels[val], minlength=8).tolist() == [1] * 8  # max(1, int(0.1 * 16 / 4))
    t0_train, t0_val, t0_own, _, _ = seen[0, "split"]
    assert len(t0_val) == 0 and np.array_equal(t0_train, t0_own)


def test_bic_learns_and_its_bias_loss_is_one_softmax(bic_run):
    run_dir, res, _ = bic_run
    for name in ("cnn", "nme"):
        figs = res["classifiers"][name]
        assert figs["accuracy_per_step"][0] > 2 * 25.0, (name, figs["accuracy_per_step"])
        assert figs["accuracy_per_step"][-1] > 2 * CHANCE, (name, figs["accuracy_per_step"])
    s = strategy_after(run_dir, 1).eval()
    assert s.teacher is None and s.network.bias.sizes == [4, 4]
    x, y = torch.randn(6, 32, 32), torch.tensor([0, 1, 2, 5, 6, 7])
    loss, _ = s.bias_loss(x, y)
    assert torch.allclose(loss, F.cross_entropy(s.network(x)[0], y))


# ---- kill -9 inside the bias stage ------------------------------------------------------------
def cli(root: Path, run_dir: Path) -> list[str]:
    over = [*TINY, *epochs(2, 2, lr=0.05), "trainer.limit_val_batches=0", "method=bic",
            "method.memory.size=24", "method.bias_stage.epochs=12", "dataset.loader.n_classes=12",
            f"paths.root_dir={root}"]
    return [sys.executable, "-m", "audiocil", *over, f"hydra.run.dir={run_dir}"]


def test_killed_inside_the_bias_stage_resumes_there(shared_root, tmp_path):
    ref = tmp_path / "uninterrupted"
    subprocess.run(cli(shared_root, ref), env=env(), check=True, capture_output=True, cwd=ROOT)
    expected = json.loads((ref / "results.json").read_text())
    killed = tmp_path / "killed"
    kill_when(cli(shared_root, killed), killed / "checkpoints/task_1/stage1_bias/last.ckpt")
    assert (killed / "checkpoints/task_1/stage0_train.pt").exists()
    assert not (killed / "checkpoints/task_1.pt").exists()  # killed inside task 1
    out = subprocess.run([sys.executable, "-m", "audiocil", f"resume={killed}"], env=env(),
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    logs = out.stderr + out.stdout
    assert "resuming after its stage 0" in logs and "resuming inside stage bias" in logs
    got = json.loads((killed / "results.json").read_text())
    assert got["completed_tasks"] == 3
    for key in ("accuracy_matrix", "avg_incremental_accuracy", "forgetting", "params_per_task",
                "memory_samples", "classifiers"):
        assert got[key] == expected[key], key
