"""PODNet on two small tasks of synth20 (4 + 4 classes): it learns; the paper's claim (both
distillation terms are exactly zero when the model equals its teacher, at the start of a
task, and the adaptive factor is sqrt(2) at the second of two equal tasks); the old proxies
do not move in the first stage; the balanced finetuning stays within the memory budget and
leaves the backbone alone; checkpoints rebuild; the users' first command runs on data laid
out as the NSynth release; a run killed inside the finetune stage resumes there."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from audiocil.engine.sequencer import TaskSequencer
from audiocil.methods.podnet import PODNet
from audiocil.run import RUN_DIR_ENV
from tests.conftest import TINY, run_tiny, snapshot, strategy_after
from tests.data import fixtures as F
from tests.engine.test_resume import env, kill_when

REPO = Path(__file__).resolve().parents[2]
CHANCE = 100 / 8
SHORT = ["method.first_task.epochs=8", "method.later_tasks.epochs=8", "method.finetune.epochs=3",
         "method.first_task.optimizer.lr=0.05", "method.later_tasks.optimizer.lr=0.05",
         "method.batch_size=32", "method.memory.size=80", "trainer.limit_val_batches=0"]


@pytest.fixture(scope="module")
def podnet_run(tmp_path_factory):
    """One run, with what each stage of task 1 saw when it started and ended."""
    root = tmp_path_factory.mktemp("podnet")
    seen: dict = {}
    original = TaskSequencer.run_stage

    def run_stage(self, task, index, stage, strategy, dm, *args):
        if task.index == 1:
            net = strategy.network
            seen[stage.name, "start"] = {"head": [w.detach().clone() for w in net.head.weights],
                                         "scale": float(net.head.scale.detach()), "backbone": snapshot(net.backbone)}
            if stage.name == "train":
                was = strategy.training
                strategy.eval()
                with torch.no_grad():
                    z = net.frontend(dm.data["train"][dm.own_indices[:24]])
                    h, maps = net.backbone(z, return_maps=True)
                    seen["terms_at_start"] = [float(t) for t in strategy.distillation_terms(z, h, maps)]
                strategy.train(was)
                seen["factor"] = strategy.factor
        trainer = original(self, task, index, stage, strategy, dm, *args)
        if task.index == 1:
            net = strategy.network
            if stage.name == "finetune":  # the clips it trained on (set up by its begin)
                seen["finetune_set"] = dm.train_indices.copy()
            seen[stage.name, "end"] = {"head": [w.detach().clone() for w in net.head.weights],
                                       "scale": float(net.head.scale.detach()), "backbone": snapshot(net.backbone)}
        return trainer

    TaskSequencer.run_stage = run_stage
    try:
        res = run_tiny([*TINY, "method=podnet", *SHORT], root, root / "run")
    finally:
        TaskSequencer.run_stage = original
    return res, root / "run", seen


def test_podnet_learns_better_than_chance(podnet_run):
    res, _, _ = podnet_run
    assert res["completed_tasks"] == 2
    for name in ("cnn", "nme"):
        acc = res["accuracy_per_step"] if name == "cnn" else res[name]["accuracy_per_step"]
        assert acc[0] > 2 * 25.0 and acc[-1] > 2 * CHANCE, (name, acc)


def test_distillation_is_exactly_zero_when_the_model_is_its_teacher(podnet_run):
    _, _, seen = podnet_run
    assert seen["terms_at_start"] == [0.0, 0.0]  # POD-flat, POD-spatial
    assert seen["factor"] == pytest.approx(math.sqrt(2)) and seen["factor"] == math.sqrt(8 / 4)


def test_old_proxies_do_not_move_in_the_first_stage(podnet_run):
    _, _, seen = podnet_run
    start, end = seen["train", "start"], seen["train", "end"]
    assert len(start["head"]) == 2 and start["head"][0].shape == (4 * 10, 64)  # 10 proxies a class
    assert torch.equal(start["head"][0], end["head"][0])  # old proxies: lr 0, no weight decay
    assert not torch.equal(start["head"][1], end["head"][1])  # new proxies learn
    assert start["scale"] != end["scale"]  # so does sigma
    assert any(not torch.equal(start["backbone"][k], end["backbone"][k]) for k in start["backbone"])


def test_balanced_finetuning_within_budget_trains_the_head_only(podnet_run):
    _, run_dir, seen = podnet_run
    s1 = strategy_after(run_dir, 1)
    ft = np.asarray(seen["finetune_set"])
    assert len(ft) == 80 == len(s1.memory)  # the memory at its final quota: 80 // 8 = 10 a class
    assert sorted(ft.tolist()) == sorted(s1.memory.indices().tolist())
    assert all(len(v) == 10 for v in s1.memory.exemplars.values()) and len(s1.memory.exemplars) == 8
    start, end = seen["finetune", "start"], seen["finetune", "end"]
    for k in start["backbone"]:  # weights and BatchNorm statistics alike
        assert torch.equal(start["backbone"][k], end["backbone"][k]), k
    assert not torch.equal(start["head"][0], end["head"][0])  # every proxy is finetuned


def test_checkpoint_rebuilds_the_strategy(podnet_run):
    _, run_dir, _ = podnet_run
    s = strategy_after(run_dir, 1)
    assert isinstance(s, PODNet) and s.teacher is None  # the teacher lives only within a task
    assert s.network.head.num_classes == 8 and s.network.head.chunk_sizes == [4, 4]
    assert s.class_means.shape == (8, 64)
    again = strategy_after(run_dir, 1)
    s.eval(), again.eval()
    x = torch.randn(3, 32, 32)
    a, b = s.eval_logits(x), again.eval_logits(x)
    assert all(torch.equal(a[k], b[k]) for k in ("cnn", "nme"))


def test_podnet_refuses_other_scenarios():
    assert PODNet.scenarios == ("standard",)


# ---- the users' first command, on data laid out as the NSynth release ---------------------

TINY_CLI = ["backbone.width=8", "dataset.frontend.n_mels=32", "scenario.init_cls=2",
            "scenario.increment=2", "method.first_task.epochs=2", "method.later_tasks.epochs=2",
            "method.finetune.epochs=2", "method.batch_size=8", "trainer.enable_progress_bar=false"]


def test_first_command_runs_on_the_nsynth100_layout(tmp_path):
    fx = F.make_nsynth(tmp_path / "nsynth")  # 4 instruments, NSynth-100 few-shot CIL metadata
    out = subprocess.run([sys.executable, "-m", "audiocil", "method=podnet", "dataset=nsynth100",
                          f"dataset.root={fx['root']}", *TINY_CLI, f"paths.root_dir={tmp_path}",
                          f"hydra.run.dir={tmp_path / 'run'}"],
                         env=env(), capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["completed_tasks"] == 2 and res["dataset"] == "nsynth100"
    assert sorted(res["class_names"]) == sorted(fx["class_names"])
    assert res["nme"] is not None
    assert "task 1, stage finetune" in out.stderr + out.stdout


# ---- kill -9 inside the second stage ------------------------------------------------------


def cli(root: Path, run_dir: Path) -> list[str]:
    over = [*TINY, *[o for o in SHORT if "epochs" not in o], "method.first_task.epochs=2",
            "method.later_tasks.epochs=2", "method.finetune.epochs=4", "method=podnet",
            f"paths.root_dir={root}"]
    return [sys.executable, "-m", "audiocil", *over, f"hydra.run.dir={run_dir}"]


def test_killed_inside_the_finetune_stage_resumes_there(tmp_path_factory, monkeypatch):
    monkeypatch.setenv(RUN_DIR_ENV, "")
    root = tmp_path_factory.mktemp("podnet_resume")
    ref = root / "uninterrupted"
    subprocess.run(cli(root, ref), env=env(), check=True, capture_output=True, cwd=REPO)
    expected = json.loads((ref / "results.json").read_text())
    killed = root / "killed"
    kill_when(cli(root, killed), killed / "checkpoints/task_1/stage1_finetune/last.ckpt")
    assert (killed / "checkpoints/task_1/stage0_train.pt").exists()
    out = subprocess.run([sys.executable, "-m", "audiocil", f"resume={killed}"], env=env(),
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resuming after its stage 0" in out.stderr + out.stdout
    assert "resuming inside stage finetune" in out.stderr + out.stdout
    got = json.loads((killed / "results.json").read_text())
    for key in ("accuracy_matrix", "avg_incremental_accuracy", "forgetting", "params_per_task",
                "memory_samples"):
        assert got[key] == expected[key], key
    assert got["nme"]["accuracy_matrix"] == expected["nme"]["accuracy_matrix"]


def test_the_margin_acts_on_the_true_class_only():
    """The reference subtracts the margin from every logit, where it cancels; ours does not."""
    from audiocil.losses.pod import nca_loss

    torch.manual_seed(0)
    s, y = torch.randn(6, 5), torch.randint(0, 5, (6,))
    kw = {"scale": 1.0, "exclude_positive": True, "hinge": False}
    ours, none = nca_loss(s, y, margin=0.6, **kw), nca_loss(s, y, margin=0.0, **kw)
    reference = nca_loss(s - 0.6, y, margin=0.0, **kw)  # the margin on every logit
    assert torch.allclose(reference, none) and ours > none + 0.5
