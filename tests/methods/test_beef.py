"""BEEF on the tiny stream (synth20, 4 + 4 classes): the fused classifier's logits equal the
unfused model's, frozen backbones are bit-identical through a task, fusion trains only the
biases on a balanced set held out of the expansion data, the model grows one backbone per
task, and it learns."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from audiocil.backbones.smallcnn import SmallCNN
from audiocil.data.frontend import Frontend
from audiocil.evaluate import evaluate
from audiocil.methods.base import FrozenCopy
from audiocil.methods.beef import BEEF, BeefNetwork
from audiocil.run import check_support
from tests.conftest import TINY, run_tiny, same_state, snapshot, strategy_after

CHANCE = 100 / 8
PROTOCOL = ["method=beef", "method.batch_size=32", "trainer.limit_val_batches=0",
            "method.first_task.optimizer.lr=0.05", "method.later_tasks.optimizer.lr=0.05",
            "method.first_task.epochs=8", "method.later_tasks.epochs=6", "method.fusion.epochs=6",
            "method.fusion_per_class=10"]


def randomise(net: BeefNetwork) -> None:
    """Non-trivial values everywhere, old classifier bias and fusion biases included."""
    with torch.no_grad():
        for m in (net.new_fc, net.backward, net.forward_protos, net.biases):
            for p in m.parameters() if m is not None else []:
                p.normal_()
        if net.old_head is not None:
            net.old_head.module.bias.normal_()


@pytest.mark.parametrize("sizes", [(4, 4), (4, 3, 2)])
def test_the_fused_classifier_equals_the_unfused_model(sizes):
    torch.manual_seed(0)
    net = BeefNetwork(Frontend(32), SmallCNN(width=4)).eval()
    x = torch.randn(6, 32, 32)
    for n in sizes:
        net.start(n)
        randomise(net)
        net.eval()
        with torch.no_grad():
            unfused = net(x)[0]
            net.fuse()
            fused = net(x)[0]
        assert fused.shape == unfused.shape == (6, sum(net.task_sizes))
        assert torch.allclose(fused, unfused, rtol=1e-5, atol=1e-5), (fused - unfused).abs().max()
        assert isinstance(net.backbones[-1], FrozenCopy) and net.new_fc is None
    assert len(net.backbones) == len(sizes)
    assert net.old_head.module.weight.shape == (sum(sizes), len(sizes) * net.out_dim)


def test_a_new_backbone_starts_from_the_first():
    torch.manual_seed(0)
    net = BeefNetwork(Frontend(32), SmallCNN(width=4))
    net.start(3)
    with torch.no_grad():
        net.backbones[0].norm.running_mean.add_(1.0)
    net.fuse()
    net.start(2)
    first, new = net.backbones[0], net.backbones[1]
    assert same_state(first.module.state_dict(), new.state_dict())
    assert all(p.requires_grad for p in new.parameters())
    assert not any(p.requires_grad for p in first.parameters())
    assert net.backward.out_features == 1 and net.forward_protos.out_features == 5
    assert net.biases.alpha.shape == (1,) and net.new_fc.out_features == 2


@pytest.fixture(scope="module")
def spied(shared_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("beef")
    seen: dict = {}
    before_task, after_task, stages = BEEF.before_task, BEEF.after_task, BEEF.stages

    @functools.wraps(before_task)
    def spy_before(self, task, dm):
        before_task(self, task, dm)
        if task.index == 1:
            seen["start"] = [snapshot(b) for b in self.network.backbones[:-1]]

    @functools.wraps(after_task)
    def spy_after(self, task, dm):
        x = dm.data["test"][:48].to(self.device)
        if task.index == 1:
            seen["end"] = [snapshot(b) for b in self.network.backbones[:-1]]
            seen["expansion"] = self.train_indices(task, dm)
            seen["fusion"] = self.fusion_indices(dm)
            seen["own"], seen["memory"] = dm.own_indices, self.memory.indices()
            seen["labels"] = dm.class_positions("train")
            self.eval()
            with torch.no_grad():
                seen["unfused"] = self.network(x)[0]
        after_task(self, task, dm)
        if task.index == 1:
            self.eval()
            with torch.no_grad():
                seen["fused"] = self.network(x)[0]

    def spy_stages(self, task, dm):
        out = stages(self, task, dm)
        for s in out:
            if s.name == "fusion":
                s.begin = lambda dm: seen.__setitem__("fusion_begin", snapshot(self))
                s.end = lambda dm: seen.__setitem__("fusion_end", snapshot(self))
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(BEEF, "before_task", spy_before)
        mp.setattr(BEEF, "after_task", spy_after)
        mp.setattr(BEEF, "stages", spy_stages)
        res = run_tiny([*TINY, *PROTOCOL], shared_root, out)
    return out, res, seen


def test_beef_learns(spied):
    _, res, _ = spied
    assert res["completed_tasks"] == 2 and set(res["classifiers"]) == {"cnn", "nme"}
    for name in ("cnn", "nme"):
        acc = res["classifiers"][name]["accuracy_per_step"]
        assert acc[0] > 2 * 25.0 and acc[1] > 2 * CHANCE, (name, acc)


def test_fusing_after_training_keeps_the_logits(spied):
    _, _, seen = spied
    assert not torch.equal(seen["unfused"], torch.zeros_like(seen["unfused"]))
    assert torch.allclose(seen["fused"], seen["unfused"], rtol=1e-5, atol=1e-5)


def test_frozen_backbones_are_bit_identical_through_a_task(spied):
    out, _, seen = spied
    first = strategy_after(out, 0).network.backbones[0]
    assert any("running_mean" in k for k in first.state_dict())
    assert len(seen["start"]) == len(seen["end"]) == 1
    assert same_state(seen["start"][0], first.state_dict()) and same_state(seen["end"][0], first.state_dict())


def test_fusion_trains_only_the_biases(spied):
    _, _, seen = spied
    before, after = seen["fusion_begin"], seen["fusion_end"]
    moved = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert moved == ["network.biases.alpha", "network.biases.beta"], moved  # BN statistics too


def test_the_fusion_set_is_balanced_and_held_out_of_expansion(spied):
    _, _, seen = spied
    labels, fusion, expansion = seen["labels"], seen["fusion"], seen["expansion"]
    assert np.bincount(labels[fusion], minlength=8).tolist() == [10] * 8
    new = fusion[labels[fusion] >= 4]
    assert np.isin(new, seen["own"]).all() and not np.isin(new, expansion).any()
    old = fusion[labels[fusion] < 4]
    assert np.isin(old, seen["memory"]).all()  # the old classes' share: their exemplars
    assert len(expansion) == 4 * 20 + 4 * (40 - 10)


def test_one_backbone_per_task_and_the_checkpoint_reproduces_the_figures(spied):
    out, res, _ = spied
    s = strategy_after(out, 1)
    assert len(s.network.backbones) == 2 and all(isinstance(b, FrozenCopy) for b in s.network.backbones)
    assert s.network.old_head.module.weight.shape == (8, 2 * s.network.out_dim)
    p0, p1 = res["params_per_task"]
    assert p1 > 1.9 * p0
    scores = evaluate(Path(out))
    for name in ("cnn", "nme"):
        assert scores[name]["top1_per_task"] == res["classifiers"][name]["accuracy_matrix"][-1]


@pytest.mark.parametrize("scenario", ["fewshot", "multilabel"])
def test_fewshot_and_multilabel_are_refused(scenario):
    with pytest.raises(ValueError, match=f"does not support scenario={scenario}"):
        check_support(BEEF, scenario)
