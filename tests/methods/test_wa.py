"""WA on a tiny stream of synth20 built to be biased: 4 + 4 classes, 40 training clips per
new class against 2 exemplars per old class.

The claim: after aligning, the mean norm of the new classes' head rows equals the old rows'
(to float precision), the old rows and the biases are untouched, and the share of test
predictions that go to a new class drops.
"""

from __future__ import annotations

import pytest
import torch

from audiocil.methods.wa import WA
from tests.conftest import TINY, epochs, run_tiny, strategy_after

CHANCE = 100 / 8
PROTOCOL = [*TINY, *epochs(8, 4, lr=0.05), "trainer.limit_val_batches=0", "method=wa",
            "method.memory.size=8"]


@pytest.fixture(scope="module")
def wa_run(shared_root, tmp_path_factory):
    """One WA run; the head before and after aligning, and the test features, per task."""
    out = tmp_path_factory.mktemp("wa")
    seen: dict[int, dict] = {}
    after_task = WA.after_task

    def spy(self, task, dm):
        head = self.network.head
        before = (head.weight.detach().clone(), head.bias.detach().clone())
        after_task(self, task, dm)
        test = dm.indices_of(range(task.total), "test")
        feats = self.embed_indices(dm, test, split="test")
        seen[task.index] = {"before": before, "after": (head.weight.detach().clone(), head.bias.detach().clone()),
                            "feats": feats, "known": task.known}

    WA.after_task = spy
    try:
        res = run_tiny(PROTOCOL, shared_root, out)
    finally:
        WA.after_task = after_task
    return out, res, seen


def new_share(feats: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, known: int) -> float:
    """Share of the clips whose top-scoring class is a new one."""
    return float(((feats @ weight.T + bias).argmax(1) >= known).float().mean())


def test_aligning_equalises_mean_row_norms_and_lowers_the_new_class_share(wa_run):
    _, _, seen = wa_run
    s = seen[1]
    (w0, b0), (w1, b1), k = s["before"], s["after"], s["known"]
    norms = w1.norm(dim=1)
    assert norms[k:].mean() == pytest.approx(float(norms[:k].mean()), rel=1e-6)
    assert w0[k:].norm(dim=1).mean() > 1.05 * w0[:k].norm(dim=1).mean()  # the bias WA corrects
    assert torch.equal(w1[:k], w0[:k]) and torch.equal(b1, b0)  # old rows and biases untouched
    before, after = new_share(s["feats"], w0, b0, k), new_share(s["feats"], w1, b1, k)
    print(f"WA: new-class share of predictions {before:.3f} -> {after:.3f}")
    assert after < before, (before, after)
    assert before > 0.55  # the stream is biased: most test clips (half of them old) went to new classes
    # task 0 has nothing to align
    assert torch.equal(seen[0]["before"][0], seen[0]["after"][0])


def test_wa_learns_with_both_classifiers(wa_run):
    run_dir, res, seen = wa_run
    assert res["completed_tasks"] == 2 and list(res["classifiers"]) == ["cnn", "nme"]
    for name in ("cnn", "nme"):
        figs = res["classifiers"][name]
        assert figs["accuracy_per_step"][0] > 2 * 25.0, (name, figs["accuracy_per_step"])
        assert figs["accuracy_per_step"][-1] > 2 * CHANCE, (name, figs["accuracy_per_step"])
    s = strategy_after(run_dir, 1)
    assert s.teacher is None and s.class_means.shape == (8, s.network.backbone.out_dim)
    assert len(s.gammas) == 1 and s.gammas[0] < 1.0  # round trip of the extra state
    assert torch.equal(s.network.head.weight, seen[1]["after"][0])  # the aligned head is the one saved


def test_weight_clipping_keeps_the_head_non_negative(shared_root, tmp_path):
    res = run_tiny([*PROTOCOL, "method.clip_weights=true", "method.first_task.epochs=3"], shared_root, tmp_path)
    assert res["completed_tasks"] == 2
    s = strategy_after(tmp_path, 1)
    w = s.network.head.weight.detach()
    assert float(w.min()) >= 0.0 and float(w.max()) > 0.0


# a tiny few-shot stream: 8 base classes, then 2 sessions of 4-way 3-shot
FEWSHOT = ["dataset=synth20", "dataset.loader.n_classes=16", "dataset.frontend.n_mels=32",
           "dataset.frontend.hop_length=512", "backbone.width=8", "trainer.enable_progress_bar=false",
           "logger=csv", "scenario=fewshot", "scenario.base_classes=8", "scenario.ways=4",
           "scenario.shots=3", "scenario.sessions=2", *epochs(4, 4, lr=0.05),
           "trainer.limit_val_batches=0", "method.memory.size=32"]


def test_wa_runs_few_shot_sessions(shared_root, tmp_path):
    """Aligning equalises mean norms in whichever direction: after a session of 3 shots the
    new rows may be the shorter ones."""
    res = run_tiny([*FEWSHOT, "method=wa"], shared_root, tmp_path)
    assert res["scenario"] == "fewshot" and len(res["accuracy_per_session"]) == 3
    assert res["accuracy_per_session"][0] > 3 * 100 / 8
    assert res["last_accuracy"] > 2 * 100 / 16, res["accuracy_per_session"]
    s = strategy_after(tmp_path, 2)
    w = s.network.head.weight.detach().norm(dim=1)
    assert w[12:].mean() == pytest.approx(float(w[:12].mean()), rel=1e-5)
    assert len(s.gammas) == 2


@pytest.mark.parametrize("target,scenario", [("audiocil.methods.wa.WA", "multilabel"),
                                             ("audiocil.methods.bic.BiC", "multilabel"),
                                             ("audiocil.methods.bic.BiC", "fewshot")])
def test_single_label_corrections_refuse_their_scenarios(target, scenario):
    """WA and BiC correct the softmax bias toward new classes (see their docstrings)."""
    from audiocil.run import check_support

    with pytest.raises(ValueError, match=f"does not support scenario={scenario}"):
        check_support(target, scenario)
