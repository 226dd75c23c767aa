"""Stage sequencing: stages run in order with their own epochs and trained parameters, a
frozen module keeps its BatchNorm statistics, and a run killed inside the second stage
resumes there and ends with the uninterrupted run's figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from audiocil.engine.sequencer import TaskSequencer
from audiocil.run import run, strategy_from_checkpoint
from tests.conftest import TINY, compose_cfg
from tests.engine.test_resume import env, kill_when

HERE = Path(__file__).resolve().parent
SEARCH = f"hydra.searchpath=[file://{HERE / 'conf'}]"
PROTOCOL = [*TINY, SEARCH, "method=two_stage", "method.first_task.epochs=2",
            "method.later_tasks.epochs=2", "method.first_task.optimizer.lr=0.05",
            "method.later_tasks.optimizer.lr=0.05", "method.batch_size=32",
            "trainer.limit_val_batches=0"]


def test_two_stage_method_composes_from_one_short_yaml(shared_root):
    cfg = compose_cfg(PROTOCOL, shared_root)
    assert cfg.method._target_ == "tests.engine.two_stage.TwoStage"
    assert cfg.method.head_stage.optimizer._target_ == "torch.optim.SGD"
    assert len((HERE / "conf/method/two_stage.yaml").read_text().splitlines()) < 20


@pytest.fixture(scope="module")
def sequenced(shared_root, tmp_path_factory):
    """One run; the strategy's record of (task, stage, epoch, trained parameters), and the
    backbone around the head stage."""
    out = tmp_path_factory.mktemp("stages")
    snaps: dict = {}
    original = TaskSequencer.run_stage

    def run_stage(self, task, index, stage, strategy, dm, *args):
        if stage.name == "head":
            snaps[task.index, "before"] = {k: v.clone() for k, v in strategy.network.backbone.state_dict().items()}
        trainer = original(self, task, index, stage, strategy, dm, *args)
        if stage.name == "head":
            snaps[task.index, "after"] = {k: v.clone() for k, v in strategy.network.backbone.state_dict().items()}
            snaps.setdefault("seen", []).extend(strategy.seen)
            strategy.seen.clear()
        return trainer

    TaskSequencer.run_stage = run_stage
    try:
        run(compose_cfg(PROTOCOL, shared_root), out)
    finally:
        TaskSequencer.run_stage = original
    return out, snaps


def test_stages_run_in_order_with_their_epochs(sequenced):
    _, snaps = sequenced
    order = [(t, s, e) for t, s, e, _ in snaps["seen"]]
    assert order == [(0, "train", 0), (0, "train", 1), (0, "head", 0), (0, "head", 1), (0, "head", 2),
                     (1, "train", 0), (1, "train", 1), (1, "head", 0), (1, "head", 1), (1, "head", 2)]


def test_each_stage_trains_its_own_parameters(sequenced):
    _, snaps = sequenced
    for _, stage, _, trained in snaps["seen"]:
        if stage == "head":
            assert trained and all(n.startswith("network.head.") for n in trained), trained
        else:
            assert any(n.startswith("network.backbone.") for n in trained)
            assert any(n.startswith("network.head.") for n in trained)


def test_the_frozen_backbone_is_untouched_by_the_head_stage(sequenced):
    _, snaps = sequenced
    for t in (0, 1):
        before, after = snaps[t, "before"], snaps[t, "after"]
        for k in before:  # weights and BatchNorm running statistics alike
            assert torch.equal(before[k], after[k]), (t, k)


def test_the_method_uses_a_cosine_head_and_learns(sequenced):
    run_dir, _ = sequenced
    res = json.loads((run_dir / "results.json").read_text())
    assert res["accuracy_per_step"][0] > 2 * 100 / 4
    s = strategy_from_checkpoint(run_dir / "checkpoints" / "task_1.pt")
    assert type(s.network.head).__name__ == "CosineHead" and s.network.head.num_classes == 8


def cli(root: Path, run_dir: Path) -> list[str]:
    over = [o for o in PROTOCOL if "epochs" not in o] + [
        "method.first_task.epochs=2", "method.later_tasks.epochs=2", "method.head_stage.epochs=4",
        "dataset.loader.n_classes=12", f"paths.root_dir={root}"]
    return [sys.executable, "-m", "audiocil", *over, f"hydra.run.dir={run_dir}"]


def test_killed_inside_the_second_stage_resumes_there(tmp_path_factory):
    root = tmp_path_factory.mktemp("stage_resume")
    ref = root / "uninterrupted"
    subprocess.run(cli(root, ref), env=env(), check=True, capture_output=True, cwd=HERE.parents[1])
    expected = json.loads((ref / "results.json").read_text())
    killed = root / "killed"
    kill_when(cli(root, killed), killed / "checkpoints/task_1/stage1_head/last.ckpt")
    assert (killed / "checkpoints/task_1/stage0_train.pt").exists()
    out = subprocess.run([sys.executable, "-m", "audiocil", f"resume={killed}"], env=env(),
                         capture_output=True, text=True, cwd=HERE.parents[1])
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resuming after its stage 0" in out.stderr + out.stdout
    got = json.loads((killed / "results.json").read_text())
    for key in ("accuracy_matrix", "avg_incremental_accuracy", "forgetting", "params_per_task"):
        assert got[key] == expected[key], key
