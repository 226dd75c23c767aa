"""FOSTER on the tiny stream (synth20, 4 + 4 classes): the old extractor is bit-identical
after boosting, the student has one extractor, the class-balanced weights come from the real
counts and sum to C, both classifiers learn, few-shot sessions train on their shots, and a
run killed inside the compression stage resumes there with the uninterrupted run's figures."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from audiocil.backbones.smallcnn import SmallCNN
from audiocil.data.frontend import Frontend
from audiocil.evaluate import evaluate
from audiocil.losses.foster import class_balanced_weights
from audiocil.methods.base import FrozenCopy
from audiocil.methods.foster import FOSTER, FosterNetwork
from audiocil.run import check_support
from tests.conftest import TINY, compose_cfg, run_config, same_state, snapshot, strategy_after
from tests.engine.test_resume import env, kill_when

CHANCE = 100 / 8
ROOT = Path(__file__).resolve().parents[2]
SHORT = ["method=foster", "method.batch_size=32", "trainer.limit_val_batches=0",
         "method.first_task.optimizer.lr=0.05", "method.later_tasks.optimizer.lr=0.05",
         "method.compression.optimizer.lr=0.05"]


def epochs(first: int, boost: int, compress: int) -> list[str]:
    return [f"method.first_task.epochs={first}", f"method.later_tasks.epochs={boost}",
            f"method.compression.epochs={compress}"]


def run_spied(cfg, out: Path) -> tuple[dict, dict]:
    """Run, recording phi_old when boosting starts and ends and the per-task stage clips."""
    seen: dict = {}
    begin, compress = FOSTER.boosting_begin, FOSTER.compress

    @functools.wraps(begin)
    def spy_begin(self, dm):
        begin(self, dm)
        seen["start"] = snapshot(self.network.old_backbone.module)
        seen.setdefault("train_indices", []).append(self.train_indices(self.task, dm))

    @functools.wraps(compress)
    def spy_compress(self):
        seen["end"] = snapshot(self.network.old_backbone.module)
        seen["boosted_backbones"] = sum(isinstance(m, SmallCNN) for m in self.network.modules())
        compress(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FOSTER, "boosting_begin", spy_begin)
        mp.setattr(FOSTER, "compress", spy_compress)
        res = run_config(cfg, out)
    return res, seen


@pytest.fixture(scope="module")
def standard(shared_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("foster")
    res, seen = run_spied(compose_cfg([*TINY, *SHORT, *epochs(8, 6, 6)], shared_root), out)
    return out, res, seen


def test_both_classifiers_learn(standard):
    _, res, _ = standard
    assert res["completed_tasks"] == 2 and set(res["classifiers"]) == {"cnn", "teacher", "nme"}
    for name in ("cnn", "teacher", "nme"):
        acc = res["classifiers"][name]["accuracy_per_step"]
        assert acc[0] > 2 * 25.0 and acc[1] > 2 * CHANCE, (name, acc)
    assert res["classifiers"]["teacher"]["accuracy_per_step"][0] == res["accuracy_per_step"][0]


def test_the_old_extractor_is_unchanged_by_boosting(standard):
    out, _, seen = standard
    phi0 = strategy_after(out, 0).network.backbone.state_dict()
    assert any("running_mean" in k for k in phi0)  # BatchNorm statistics are compared too
    assert same_state(seen["start"], phi0)
    assert same_state(seen["end"], phi0)


def test_the_student_has_one_extractor(standard):
    out, res, seen = standard
    s = strategy_after(out, 1)
    assert seen["boosted_backbones"] == 2
    assert sum(isinstance(m, SmallCNN) for m in s.network.modules()) == 1
    assert s.network.old_backbone is None and s.network.fe_head is None
    assert s.network.head.weight.shape == (8, s.network.out_dim)
    assert isinstance(s.teacher, FrozenCopy)  # kept, frozen, for its evaluation
    assert sum(isinstance(m, SmallCNN) for m in s.teacher.modules()) == 2
    student = sum(p.numel() for p in s.network.parameters())
    p0, p1 = res["params_per_task"]
    assert student - p0 == 4 * (s.network.out_dim + 1)  # the student grew only its head


def test_class_balanced_weights_use_the_real_counts(standard):
    out, _, seen = standard
    s = strategy_after(out, 1)
    counts = [20] * 4 + [40] * 4  # 20 exemplars per old class, 40 clips per new class
    (idx,) = seen["train_indices"]
    assert len(idx) == sum(counts)
    for w, beta in ((s.boost_weights, 0.96), (s.compress_weights, 0.97)):
        assert float(w.sum()) == pytest.approx(8.0, abs=1e-5)
        assert torch.allclose(w.cpu(), class_balanced_weights(counts, beta))
        assert float(w[0]) > float(w[-1])  # old classes (fewer clips) weigh more


def test_the_task_checkpoint_reproduces_every_classifier(standard):
    out, res, _ = standard
    scores = evaluate(out)
    for name in ("cnn", "teacher", "nme"):
        assert scores[name]["top1_per_task"] == res["classifiers"][name]["accuracy_matrix"][-1]


def test_few_shot_sessions_train_on_their_shots(shared_root, tmp_path):
    tiny = [o for o in TINY if not o.startswith("scenario.")]
    cfg = compose_cfg([*tiny, *SHORT, *epochs(8, 4, 4), "scenario=fewshot", "scenario.base_classes=4",
                       "scenario.ways=2", "scenario.shots=5", "scenario.sessions=2"], shared_root)
    res, seen = run_spied(cfg, tmp_path)
    first, second = seen["train_indices"]
    assert len(first) == 4 * 20 + 2 * 5 and len(second) == 4 * 20 + 4 * 5
    s = strategy_after(tmp_path, 2)
    counts = [20] * 4 + [5] * 4  # the session classes keep their 5 shots as exemplars
    assert torch.allclose(s.boost_weights.cpu(), class_balanced_weights(counts, 0.96))
    for name in ("cnn", "teacher", "nme"):
        acc = res["classifiers"][name]["accuracy_per_session"]
        assert acc[0] > 50.0 and acc[-1] > 2 * CHANCE, (name, acc)


def test_boost_and_student_structure():
    torch.manual_seed(0)
    net = FosterNetwork(Frontend(32), SmallCNN(width=4))
    net.head.grow(3)
    d, w, b = net.out_dim, net.head.weight.detach().clone(), net.head.bias.detach().clone()
    phi = snapshot(net.backbone)
    net.boost(2)
    assert isinstance(net.old_backbone, FrozenCopy) and same_state(snapshot(net.old_backbone.module), phi)
    assert same_state(snapshot(net.backbone), phi)  # phi_new starts as a copy of phi_old
    assert not any(p.requires_grad for p in net.old_backbone.parameters())
    assert net.head.weight.shape == (5, 2 * d) and net.fe_head.out_features == 5
    assert torch.equal(net.head.weight[:3, :d], w) and torch.equal(net.head.bias[:3], b)
    net.train()
    assert not net.old_backbone.training and net.backbone.training
    logits, feats = net(torch.randn(2, 32, 32))
    assert logits.shape == (2, 5) and feats.shape == (2, 2 * d)
    s = net.student()
    assert s.old_backbone is None and same_state(snapshot(s.backbone), phi)
    assert all(p.requires_grad for p in s.backbone.parameters())
    assert s.head.weight.shape == (5, d) and torch.equal(s.head.weight[:3], w)
    assert s.frontend is net.frontend


def test_multilabel_is_refused():
    with pytest.raises(ValueError, match="does not support scenario=multilabel"):
        check_support(FOSTER, "multilabel")


# ---- kill -9 inside the compression stage ----------------------------------------------------


def cli(root: Path, run_dir: Path) -> list[str]:
    over = [*TINY, *SHORT, *epochs(2, 2, 4), f"paths.root_dir={root}"]
    return [sys.executable, "-m", "audiocil", *over, f"hydra.run.dir={run_dir}"]


def test_killed_inside_compression_resumes_there(shared_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("foster_resume")
    ref = root / "uninterrupted"
    subprocess.run(cli(shared_root, ref), env=env(), check=True, capture_output=True, cwd=ROOT)
    expected = json.loads((ref / "results.json").read_text())
    killed = root / "killed"
    kill_when(cli(shared_root, killed), killed / "checkpoints/task_1/stage1_compression/last.ckpt")
    assert (killed / "checkpoints/task_1/stage0_boosting.pt").exists()
    assert not (killed / "checkpoints/task_1.pt").exists()
    out = subprocess.run([sys.executable, "-m", "audiocil", f"resume={killed}"], env=env(),
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resuming after its stage 0" in out.stderr + out.stdout
    assert "resuming inside stage compression" in out.stderr + out.stdout
    got = json.loads((killed / "results.json").read_text())
    for key in ("accuracy_matrix", "avg_incremental_accuracy", "forgetting", "params_per_task",
                "classifiers"):
        assert got[key] == expected[key], key
