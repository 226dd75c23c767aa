"""ACIL on a tiny stream (synth20, 3 tasks of 4 classes): after every task the classifier is
the ridge regression on every task's buffered features, computed here directly in float64
from the frozen backbone, whatever the IL batch size; the backbone is bit-identical after
the base task; it learns; it keeps no exemplar; a crash in the analytic stage resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from audiocil.methods.acil import ACIL
from audiocil.run import build_strategy, check_support
from tests.conftest import TINY, epochs, run_tiny, strategy_after

CLASSES = 12
STREAM = [*TINY, f"dataset.loader.n_classes={CLASSES}", *epochs(6),
          "trainer.limit_val_batches=0", "method.buffer_size=256"]
FEWSHOT = [*(o for o in TINY if not o.startswith(("scenario.", "dataset.loader.n_classes"))),
           f"dataset.loader.n_classes={CLASSES}", *epochs(6),
           "scenario=fewshot", "scenario.base_classes=4", "scenario.ways=4", "scenario.shots=3",
           "scenario.sessions=2", "trainer.limit_val_batches=0", "method.buffer_size=256"]


def run_recorded(method: str, root: Path, run_dir: Path, *extra: str,
                 stream: list[str] = STREAM) -> dict:
    """Run a stream; record the datamodule, each task's own clips and the backbone's state
    when each analytic fit starts. Returns {results, dm, own, backbone, run_dir}."""
    seen: dict = {"own": [], "backbone": []}
    fit = ACIL.fit_analytic

    def spy(self, dm):
        seen["dm"] = dm
        seen["own"].append(dm.own_indices.copy())
        seen["backbone"].append(backbone_state(self))
        fit(self, dm)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ACIL, "fit_analytic", spy)
        res = run_tiny([f"method={method}", *stream, *extra], root, run_dir)
    return {**seen, "results": res, "run_dir": run_dir}


def backbone_state(strategy) -> dict[str, torch.Tensor]:
    """The backbone's parameters and BatchNorm statistics (frozen or not)."""
    bb = strategy.network.backbone
    bb = getattr(bb, "module", bb)
    return {k: v.detach().clone() for k, v in bb.state_dict().items()}


def after(run: dict, task: int):
    return strategy_after(run["run_dir"], task)


def buffered(strategy, dm, idx, split: str = "train") -> torch.Tensor:
    """(N, buffer) float64: the frozen backbone's embeddings times the buffer's weights,
    without the buffer's activation (each test applies its own)."""
    strategy.eval()
    with torch.no_grad():
        f = torch.cat([strategy.network.embed(dm.data[split][idx[a:a + 64]])
                       for a in range(0, len(idx), 64)])
    return f.double() @ strategy.buffer.weight.T


def joint_ridge(X: torch.Tensor, y: torch.Tensor, n_classes: int, gamma: float) -> torch.Tensor:
    """(sum X^T X + gamma I)^-1 sum X^T Y, in one solve."""
    Y = torch.nn.functional.one_hot(y, n_classes).double()
    return torch.linalg.solve(X.T @ X + gamma * torch.eye(X.shape[1], dtype=X.dtype), X.T @ Y)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def seen_clips(rec: dict, task: int) -> tuple[np.ndarray, torch.Tensor]:
    """Every clip the first ``task + 1`` tasks trained on, and their class positions."""
    idx = np.concatenate(rec["own"][:task + 1])
    return idx, rec["dm"].targets["train"][idx].long()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_root):
    return {b: run_recorded("acil", shared_root, tmp_path_factory.mktemp(f"acil{b}"),
                            f"method.il_batch_size={b}") for b in (4096, 7)}


def test_classifier_is_the_joint_ridge_whatever_the_batching(runs):
    W_final = {}
    for b, rec in runs.items():
        for t in range(3):
            s = after(rec, t)
            idx, y = seen_clips(rec, t)
            X = torch.relu(buffered(s, rec["dm"], idx))
            want = joint_ridge(X, y, 4 * (t + 1), 0.1)
            assert s.ridge.W.dtype == torch.float64 and s.ridge.W.shape == want.shape
            assert rel_err(s.ridge.W, want) < 1e-8, (b, t)
            inv = torch.linalg.inv(X.T @ X + 0.1 * torch.eye(X.shape[1], dtype=X.dtype))
            assert rel_err(s.ridge.R, inv) < 1e-8, (b, t)
        W_final[b] = s.ridge.W
        # the reported logits are buffer(f) @ W
        test_idx = rec["dm"].indices_of(range(CLASSES), "test")[:50]
        x = rec["dm"].data["test"][test_idx]
        got = s.eval_logits(x)["cnn"].double()
        assert torch.allclose(got, torch.relu(buffered(s, rec["dm"], test_idx, "test")) @ want,
                              atol=1e-4)
    assert len(runs[7]["own"][0]) > 7 * 10  # many batches against one
    assert rel_err(W_final[7], W_final[4096]) < 1e-8


def test_backbone_is_bit_identical_after_the_base_task(runs):
    rec = runs[4096]
    trained = rec["backbone"][0]  # when the base task's analytic fit starts
    for t in range(3):
        s = after(rec, t)
        state = backbone_state(s)
        assert state.keys() == trained.keys()
        assert all(torch.equal(state[k], trained[k]) for k in trained), t
        assert not any(p.requires_grad for p in s.network.backbone.parameters())
        s.train()
        assert not any(m.training for m in s.network.backbone.modules())
    for state in rec["backbone"][1:]:
        assert all(torch.equal(state[k], trained[k]) for k in trained)


def test_learns_better_than_chance_without_exemplars(runs, make_cfg):
    for rec in runs.values():
        res = rec["results"]
        assert res["completed_tasks"] == 3
        assert res["accuracy_per_step"][0] > 50, res["accuracy_per_step"]
        assert res["last_accuracy"] > 3 * 100 / CLASSES, res["accuracy_per_step"]
        assert res["memory_samples"] == [0, 0, 0] and res["nme"] is None
        assert after(rec, 2).memory is None
    bad = make_cfg("method=acil", "method.memory={size: 40, per_class: null, selection: herding}")
    with pytest.raises(ValueError, match="exemplar-free"):
        build_strategy(bad)
    with pytest.raises(ValueError, match="does not support scenario=multilabel"):
        check_support(ACIL, "multilabel")


def test_a_crash_in_the_analytic_stage_resumes_there(runs, shared_root, tmp_path):
    run_dir = tmp_path / "crashed"
    def crash(self, dm):
        raise RuntimeError("killed inside the analytic stage")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ACIL, "fit_analytic", crash)
        with pytest.raises(RuntimeError, match="killed"):
            run_tiny(["method=acil", *STREAM], shared_root, run_dir)
    assert (run_dir / "checkpoints/task_0/stage0_train.pt").exists()
    assert not (run_dir / "checkpoints/task_0.pt").exists()
    got = run_tiny([f"resume={run_dir}"], shared_root, run_dir)
    want = runs[4096]["results"]
    for key in ("accuracy_matrix", "avg_incremental_accuracy", "forgetting", "params_per_task"):
        assert got[key] == want[key], key
    assert json.loads((run_dir / "results.json").read_text())["accuracy_matrix"] == want["accuracy_matrix"]


def test_fewshot_sessions_extend_the_same_regression(shared_root, tmp_path):
    rec = run_recorded("acil", shared_root, tmp_path, "method.il_batch_size=5", stream=FEWSHOT)
    res = rec["results"]
    assert res["accuracy_per_session"][0] > 50
    assert res["last_accuracy"] > 3 * 100 / CLASSES
    assert res["novel_accuracy_per_session"][-1] > 2 * 100 / CLASSES
    assert [len(o) for o in rec["own"][1:]] == [12, 12]  # 4 ways x 3 shots
    s = after(rec, 2)
    idx, y = seen_clips(rec, 2)
    want = joint_ridge(torch.relu(buffered(s, rec["dm"], idx)), y, CLASSES, 0.1)
    assert rel_err(s.ridge.W, want) < 1e-8
