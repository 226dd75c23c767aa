"""EWC, LwF, iCaRL and DER end to end on two small tasks of synth20 (4 + 4 classes).

Each run is a few epochs of a narrow SmallCNN; the assertions are about the mechanics
(penalty, teacher, class means, growth) and that every method beats chance (12.5 %).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from audiocil.backbones.smallcnn import SmallCNN
from audiocil.data.frontend import Frontend
from audiocil.methods.base import FrozenCopy
from audiocil.methods.der import DERNetwork, aux_targets, weight_align
from audiocil.methods.icarl import class_mean, nme_logits
from audiocil.methods.lwf import LwF
from tests.conftest import run_smoke, same_state, strategy_after

CHANCE = 100 / 8
EPOCHS = 8
SCHEDULE = ["method.batch_size=32", f"method.first_task.epochs={EPOCHS}", f"method.later_tasks.epochs={EPOCHS}",
            "method.first_task.scheduler.milestones=[100]", "method.later_tasks.scheduler.milestones=[100]",
            "method.first_task.optimizer.lr=0.05", "method.later_tasks.optimizer.lr=0.05"]


def run_method(method: str, root: Path, run_dir: Path, *extra: str) -> dict:
    return run_smoke(method, root, run_dir, *SCHEDULE, *extra)


def logged(run_dir: Path, key: str) -> list[list[float]]:
    """Values of a logged training metric, split into tasks (the epoch counter restarts)."""
    with open(next(run_dir.glob("logs/version_*/metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    tasks: list[list[float]] = []
    last_epoch = None
    for r in rows:
        if not r.get(key):
            continue
        epoch = int(r["epoch"])
        if last_epoch is None or epoch < last_epoch:
            tasks.append([])
        tasks[-1].append(float(r[key]))
        last_epoch = epoch
    return tasks


def assert_learns(res: dict, name: str = "cnn", factor: float = 2.0) -> None:
    """Both tasks done; the first task learnt; the final accuracy over 8 classes well above chance."""
    figs = res if name == "cnn" else res[name]
    assert res["completed_tasks"] == 2
    assert len(figs["accuracy_per_step"]) == 2
    assert figs["accuracy_per_step"][0] > 2 * 25.0, figs["accuracy_per_step"]  # 4 classes
    assert figs["accuracy_per_step"][-1] > factor * CHANCE, figs["accuracy_per_step"]


def test_ewc(shared_root, tmp_path):
    res = run_method("ewc", shared_root, tmp_path)
    assert_learns(res)
    pen = logged(tmp_path, "train/ewc")
    assert len(pen) == 2
    assert all(v == 0.0 for v in pen[0])  # no Fisher yet in the first task
    assert max(pen[1]) > 0.0
    s = strategy_after(tmp_path, 1)
    fisher, anchor = s.fisher, s.anchor
    assert fisher["head.weight"].shape[0] == 8 == anchor["head.weight"].shape[0]
    assert all(float(f.max()) <= 1e-4 for f in fisher.values())  # clamped
    assert any(float(f.sum()) > 0 for n, f in fisher.items() if n.startswith("backbone"))


@pytest.mark.parametrize("method", ["lwf", "icarl"])
def test_lwf_icarl_teacher_is_frozen(method, shared_root, tmp_path, monkeypatch):
    # snapshot the teacher when task 2 starts and when it ends (before it is dropped)
    seen: dict[str, dict] = {}
    before_task, after_task = LwF.before_task, LwF.after_task

    def spy_before(self, task, dm):
        before_task(self, task, dm)
        if task.index == 1:
            seen["start"] = {k: v.clone() for k, v in self.teacher.state_dict().items()}

    def spy_after(self, task, dm):
        if task.index == 1:
            seen["end"] = {k: v.clone() for k, v in self.teacher.state_dict().items()}
            seen["student"] = {k: v.clone() for k, v in self.network.backbone.state_dict().items()}
        after_task(self, task, dm)

    monkeypatch.setattr(LwF, "before_task", spy_before)
    monkeypatch.setattr(LwF, "after_task", spy_after)
    if method == "icarl":
        res = run_method(method, shared_root, tmp_path, "method.memory.size=80")
        assert_learns(res)
    else:
        # PyCIL's LwF fits the new classes with cross-entropy over their own logits only, so
        # they come to outscore the old classes slowly: a longer second task, and a lower bar
        res = run_method(method, shared_root, tmp_path, "method.later_tasks.epochs=20")
        assert_learns(res, factor=1.5)
        ft = run_method("finetune", shared_root, tmp_path / "finetune", "method.later_tasks.epochs=20")
        # distillation kept more of the old classes than plain finetuning on the same protocol
        assert res["old_accuracy_per_step"][1] > ft["old_accuracy_per_step"][1] + 5
    # the teacher is the network at the end of task 1 (BatchNorm statistics included) and
    # did not move during task 2, while the student did
    net0 = strategy_after(tmp_path, 0).network
    want = {f"module.0.{k}": v for k, v in net0.backbone.state_dict().items()}
    want.update({f"module.1.{k}": v for k, v in net0.head.state_dict().items()})
    assert same_state(seen["start"], want)
    assert same_state(seen["end"], want)
    assert not same_state(seen["student"], net0.backbone.state_dict())
    s1 = strategy_after(tmp_path, 1)
    assert s1.teacher is None  # dropped after the task: not in checkpoints nor params
    p0, p1 = res["params_per_task"]
    assert p1 - p0 == 4 * (s1.network.backbone.out_dim + 1)  # only the head grew
    if method == "icarl":
        assert res["nme"] is not None
        assert_learns(res, "nme")
        assert s1.class_means.shape == (8, s1.network.backbone.out_dim)
        assert torch.allclose(s1.class_means.norm(dim=1), torch.ones(8), atol=1e-5)
        assert res["memory_samples"] == [80, 80]
    else:
        assert res["nme"] is None


def one_class_at_a_time(features, counts, m, block=None):
    """herding_select_classes as the per-class reference loop computes it (-1: no pick)."""
    from tests.metrics.test_memory import reference_herding

    out = torch.full((len(counts), m), -1, dtype=torch.long)
    start = 0
    for row, n in enumerate(counts):
        picks = reference_herding(features[start:start + n], m)
        out[row, :len(picks)] = torch.tensor(picks, dtype=torch.long)
        start += n
    return out


def test_icarl_figures_are_those_of_one_class_at_a_time_herding(shared_root, tmp_path, monkeypatch):
    """Herding all of a task's classes at once on the device changed no exemplar and no
    figure of a run: iCaRL on 4 + 2 + 2 classes, 3 epochs per task, 5 exemplars per class at
    the end, against the same run with the per-class reference loop (issue 13, item 4)."""
    import audiocil.data.memory as memory

    extra = ("scenario.increment=2", "method.memory.size=40", "method.first_task.epochs=3",
             "method.later_tasks.epochs=3")
    runs = {}
    for name in ("batched", "reference"):
        if name == "reference":
            monkeypatch.setattr(memory, "herding_select_classes", one_class_at_a_time)
        res = run_method("icarl", shared_root, tmp_path / name, *extra)
        exemplars = strategy_after(tmp_path / name, 2).memory.exemplars
        runs[name] = (res["accuracy_matrix"], res["nme"]["accuracy_matrix"],
                      {int(c): v.tolist() for c, v in exemplars.items()})
    assert runs["batched"] == runs["reference"]
    assert sum(len(v) for v in runs["batched"][2].values()) == 40


def test_der_grows_and_freezes(shared_root, tmp_path):
    res = run_method("der", shared_root, tmp_path, "method.memory.size=80")
    assert_learns(res)
    p0, p1 = res["params_per_task"]
    assert p1 > 1.8 * p0  # a second backbone (plus a wider head and the auxiliary head)
    s0, s1 = strategy_after(tmp_path, 0), strategy_after(tmp_path, 1)
    assert len(s1.network.backbones) == 2
    old = s1.network.backbones[0]
    assert same_state(old.module.state_dict(), s0.network.backbones[0].state_dict())
    assert not any(p.requires_grad for p in old.parameters())
    assert s1.network.head.weight.shape == (8, 2 * s1.network.out_dim)
    assert s1.network.aux_head.out_features == 4 + 1
# ---- the small pure pieces of iCaRL and DER -------------------------------------------------


def test_nme_class_mean_and_logits():
    m = class_mean(torch.tensor([[2.0, 0.0], [0.0, 3.0]]))  # rows normalised, averaged, renormalised
    assert torch.allclose(m, torch.tensor([2**-0.5, 2**-0.5]))
    means = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    logits = nme_logits(torch.tensor([[5.0, 0.0], [0.0, -1.0]]), means)
    assert torch.allclose(logits, torch.tensor([[0.0, -2.0], [-2.0, -4.0]]), atol=1e-6)


def test_der_aux_targets_and_weight_align():
    y = torch.tensor([0, 3, 4, 5, 6])
    assert aux_targets(y, known=4).tolist() == [0, 0, 1, 2, 3]
    w = torch.tensor([[3.0, 4.0], [0.0, 1.0], [0.0, 2.0]])  # old row norm 5, new norms 1 and 2
    gamma = weight_align(w, n_new=2)
    assert gamma == pytest.approx(5 / 1.5)
    assert torch.allclose(w[1:].norm(dim=1).mean(), torch.tensor(5.0))
    assert torch.equal(w[0], torch.tensor([3.0, 4.0]))


@pytest.mark.parametrize("fresh", [False, True])
def test_der_network_expand(fresh):
    torch.manual_seed(0)
    net = DERNetwork(Frontend(32), SmallCNN(width=4))
    net.head.grow(3)
    old_w = net.head.weight.detach().clone()
    net.expand(2, fresh=fresh)
    d = net.out_dim
    assert isinstance(net.backbones[0], FrozenCopy) and len(net.backbones) == 2
    assert not any(p.requires_grad for p in net.backbones[0].parameters())
    assert all(p.requires_grad for p in net.backbones[1].parameters())
    same = same_state(net.backbones[0].module.state_dict(), net.backbones[1].state_dict())
    assert same != fresh  # PyCIL starts the new extractor from the last one's weights
    assert net.head.weight.shape == (5, 2 * d)
    assert torch.equal(net.head.weight[:3, :d], old_w)
    assert net.aux_head.out_features == 3
    net.train()
    assert not net.backbones[0].training and net.backbones[1].training
    logits, feats = net(torch.randn(2, 32, 32))
    assert logits.shape == (2, 5) and feats.shape == (2, 2 * d)
