"""FeTrIL on a tiny stream (synth20, 3 tasks of 4 classes, SVM on): each pseudo-class's
feature mean is the stored mean of its class; the backbone is bit-identical after task 0;
only the head learns afterwards, on fixed features served by a stage's own dataset; both
classifiers learn; a checkpoint rebuilds both; a run killed inside the classifier stage
resumes there with the uninterrupted figures; few-shot CIL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from audiocil.evaluate import evaluate
from audiocil.methods.fetril import FeTrIL
from audiocil.run import check_support
from tests.conftest import TINY, epochs, run_tiny, strategy_after
from tests.engine.test_resume import env, kill_when
from tests.methods.test_acil import backbone_state

CLASSES = 12
STREAM = [*TINY, f"dataset.loader.n_classes={CLASSES}", *epochs(6), "method.later_tasks.epochs=30",
          "trainer.limit_val_batches=0", "method.classifier=svm"]


@pytest.fixture(scope="module")
def stream(tmp_path_factory, shared_root):
    """One run; every feature set built, with the stored means it was built from."""
    run_dir = tmp_path_factory.mktemp("fetril")
    sets: list[dict] = []
    build = FeTrIL.feature_set

    def spy(self, dm):
        data = build(self, dm)
        sets.append({"task": self.task.index, "known": self.known, "total": self.total,
                     "means": self.class_means.clone(), "feats": self.task_features(dm),
                     "x": data.tensors[0], "y": data.tensors[1], "dm": dm})
        return data

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FeTrIL, "feature_set", spy)
        res = run_tiny(["method=fetril", *STREAM], shared_root, run_dir)
    return run_dir, res, sets


def test_each_pseudo_class_mean_is_the_stored_mean(stream):
    run_dir, _, sets = stream
    # built for the classifier stage (tasks 1, 2) and for the SVM (tasks 0, 1, 2)
    assert [s["task"] for s in sets] == [0, 1, 1, 2, 2]
    assert len(sets[0]["y"]) == len(sets[0]["feats"][1])  # task 0: real features only
    for s in sets[1:]:
        k, total, x, y = s["known"], s["total"], s["x"], s["y"]
        feats, labels = s["feats"]
        stored = strategy_after(run_dir, s["task"] - 1).class_means
        assert torch.equal(s["means"][:k], stored) and stored.shape[0] == k
        new_means = torch.stack([feats[labels == c].mean(0) for c in range(k, total)])
        pairs = (F.normalize(stored, dim=1) @ F.normalize(new_means, dim=1).T).argmax(1)
        assert torch.equal(x[y >= k], feats) and torch.equal(y[y >= k], labels)  # real, new
        for c in range(k):
            pseudo = x[y == c]
            assert torch.allclose(pseudo.mean(0), stored[c], atol=1e-5, rtol=0), c
            source = feats[labels == k + int(pairs[c])]  # the nearest new class by cosine
            assert pseudo.shape == source.shape
            assert torch.allclose(pseudo - stored[c], source - new_means[pairs[c]], atol=1e-5)
        # the new classes' stored means are their real features' means
        assert torch.allclose(strategy_after(run_dir, s["task"]).class_means[k:], new_means, atol=1e-6)


def test_backbone_is_bit_identical_after_task_0_and_only_the_head_learns(stream):
    run_dir = stream[0]
    s0, s1, s2 = (strategy_after(run_dir, t) for t in range(3))
    trained = backbone_state(s0)
    for s in (s1, s2):
        state = backbone_state(s)
        assert all(torch.equal(state[k], trained[k]) for k in trained)
        assert not any(p.requires_grad for p in s.network.backbone.parameters())
        s.train()
        assert not any(m.training for m in s.network.backbone.modules())
    assert not torch.equal(s1.network.head.weight[:4], s0.network.head.weight)  # old rows train
    assert s2.network.head.weight.shape == (CLASSES, s2.network.backbone.module.out_dim)


def test_both_classifiers_learn_without_exemplars(stream):
    _, res, _ = stream
    assert list(res["classifiers"]) == ["cnn", "svm"]
    for name in ("cnn", "svm"):
        fig = res["classifiers"][name]
        assert fig["accuracy_per_step"][0] > 50, (name, fig["accuracy_per_step"])
        assert fig["last_accuracy"] > 3 * 100 / CLASSES, (name, fig["accuracy_per_step"])
    assert res["memory_samples"] == [0, 0, 0]
    with pytest.raises(ValueError, match="does not support scenario=multilabel"):
        check_support(FeTrIL, "multilabel")


def test_a_checkpoint_rebuilds_both_classifiers(stream):
    run_dir, res, _ = stream
    scores = evaluate(run_dir, task=2)
    for name in ("cnn", "svm"):
        assert scores[name]["top1_per_task"] == res["classifiers"][name]["accuracy_matrix"][-1]


def test_a_stage_dataset_is_served_shuffled_once_per_epoch(stream):
    dm = stream[2][0]["dm"]
    items = TensorDataset(torch.arange(10.0)[:, None], torch.zeros(10, dtype=torch.long),
                          torch.arange(10))
    dm.set_task(1, dm.own_indices, 8, 4, dataset=lambda epoch: items)
    seen = [torch.cat([b[2] for b in dm.train_dataloader()]) for _ in range(2)]
    assert sorted(seen[0].tolist()) == list(range(10)) and torch.equal(seen[0], seen[1])
    assert dm.steps_per_epoch() == 3
    with pytest.raises(ValueError, match="shuffle"):
        dm.set_task(1, dm.own_indices, 8, 4, dataset=lambda epoch: items, sampler="balanced")
    dm.set_task(1, dm.own_indices, 8, 4)
    assert dm.stage_dataset is None


def cli(root: Path, run_dir: Path) -> list[str]:
    overrides = [*TINY, *epochs(2), "method=fetril", "method.later_tasks.epochs=20",
                 f"paths.root_dir={root}", "trainer.limit_val_batches=0"]  # 2 tasks
    return [sys.executable, "-m", "audiocil", *overrides, f"hydra.run.dir={run_dir}"]


def test_killed_inside_the_classifier_stage_resumes_there(shared_root, tmp_path):
    subprocess.run(cli(shared_root, tmp_path / "ref"), env=env(), check=True, capture_output=True)
    expected = json.loads((tmp_path / "ref" / "results.json").read_text())
    killed = tmp_path / "killed"
    kill_when(cli(shared_root, killed), killed / "checkpoints/task_1/last.ckpt")
    out = subprocess.run([sys.executable, "-m", "audiocil", f"resume={killed}"], env=env(),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resuming inside stage classifier" in out.stderr + out.stdout
    got = json.loads((killed / "results.json").read_text())
    for key in ("accuracy_matrix", "avg_incremental_accuracy", "forgetting", "params_per_task"):
        assert got[key] == expected[key], key


def test_fewshot(shared_root, tmp_path):
    fewshot = [*(o for o in TINY if not o.startswith(("scenario.", "dataset.loader.n_classes"))),
               f"dataset.loader.n_classes={CLASSES}", *epochs(6), "method.later_tasks.epochs=30",
               "scenario=fewshot", "scenario.base_classes=4", "scenario.ways=4",
               "scenario.shots=3", "scenario.sessions=2", "trainer.limit_val_batches=0",
               "method.classifier=svm"]
    res = run_tiny(["method=fetril", *fewshot], shared_root, tmp_path)
    for name in ("cnn", "svm"):
        fig = res["classifiers"][name]
        assert fig["accuracy_per_session"][0] > 50, name
        assert fig["last_accuracy"] > 3 * 100 / CLASSES, (name, fig["accuracy_per_session"])
        assert fig["novel_accuracy_per_session"][-1] > 2 * 100 / CLASSES, name
