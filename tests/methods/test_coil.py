"""COIL on three small tasks of synth20 (4 + 2 + 2 classes, so the old and new sides of each
plan differ in size): it learns; the paper's claim (the transport plans' marginals hold, and
the transported rows' mean norm is the old rows'); the class means use the exemplars only;
checkpoints rebuild."""

from __future__ import annotations

import pytest
import torch

from audiocil.methods.coil import COIL
from audiocil.solvers.transport import transport_weights
from tests.conftest import TINY, run_tiny, strategy_after

CHANCE = 100 / 8
PROTOCOL = [*[o for o in TINY if not o.startswith("scenario.")], "scenario.init_cls=4",
            "scenario.increment=2", "method=coil", "method.first_task.epochs=8",
            "method.later_tasks.epochs=8", "method.first_task.scheduler.milestones=[100]",
            "method.later_tasks.scheduler.milestones=[100]", "method.first_task.optimizer.lr=0.05",
            "method.later_tasks.optimizer.lr=0.05", "method.batch_size=32",
            "method.memory.size=80", "method.retro_every=3", "trainer.limit_val_batches=0"]


@pytest.fixture(scope="module")
def coil_run(tmp_path_factory):
    """One run; the plans, rows and clips the transport used at each task's start."""
    root = tmp_path_factory.mktemp("coil")
    seen: dict = {}
    before, retro = COIL.before_task, COIL.retrospective_transport

    def spy_before(self, task, dm):
        if task.index > 0:
            seen[task.index, "exemplars"] = {c: v.copy() for c, v in self.memory.exemplars.items()}
            seen[task.index, "own"] = {int(i) for i in dm.own_indices}
            read: set = set()
            embed = self.embed_indices
            self.embed_indices = lambda dm, idx, *a, **k: read.update(int(i) for i in idx) or embed(dm, idx, *a, **k)
        before(self, task, dm)
        if task.index > 0:
            del self.embed_indices
            seen[task.index, "read"] = read
        if task.index > 0:
            head = self.network.head
            seen[task.index] = {"plan": self.prospective_plan.clone(),
                                "old": torch.cat(head.old_parameters()).detach().clone(),
                                "new": head.new_parameters()[0].detach().clone(),
                                "sizes": (task.known, task.new)}

    def spy_retro(self, dm):
        retro(self, dm)
        seen.setdefault(("retro", self.task.index), []).append(self.retro_plan.clone())

    COIL.before_task, COIL.retrospective_transport = spy_before, spy_retro
    try:
        res = run_tiny(PROTOCOL, root, root / "run")
    finally:
        COIL.before_task, COIL.retrospective_transport = before, retro
    return res, root / "run", seen


def test_coil_learns_better_than_chance(coil_run):
    res, _, _ = coil_run
    assert res["completed_tasks"] == 3
    for name in ("cnn", "nme"):
        acc = res["accuracy_per_step"] if name == "cnn" else res[name]["accuracy_per_step"]
        assert acc[0] > 2 * 25.0 and acc[-1] > 2 * CHANCE, (name, acc)


@pytest.mark.parametrize("task", [1, 2])
def test_prospective_plan_marginals_and_the_transported_rows_norm(coil_run, task):
    _, _, seen = coil_run
    s = seen[task]
    known, new = s["sizes"]
    plan = s["plan"]
    assert plan.shape == (known, new) and (plan >= 0).all()
    assert torch.allclose(plan.sum(1), torch.full((known,), 1 / known, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(plan.sum(0), torch.full((new,), 1 / new, dtype=torch.float64), atol=1e-9)
    old, rows = s["old"], s["new"]
    assert old.shape[0] == known and rows.shape[0] == new
    # the new rows are the old rows carried along the plan, at the old rows' mean norm
    assert torch.allclose(rows, transport_weights(plan, old)[0], atol=1e-6)
    assert rows.norm(dim=1).mean() == pytest.approx(float(old.norm(dim=1).mean()), rel=1e-5)


def test_retrospective_plans_marginals(coil_run):
    _, _, seen = coil_run
    for task, (known, new) in ((1, (4, 2)), (2, (6, 2))):
        plans = seen["retro", task]
        assert len(plans) >= 7  # from the second epoch on, at least once an epoch
        for plan in plans:
            assert plan.shape == (new, known)
            assert torch.allclose(plan.sum(1), torch.full((new,), 1 / new, dtype=torch.float64), atol=1e-9)
            assert torch.allclose(plan.sum(0), torch.full((known,), 1 / known, dtype=torch.float64), atol=1e-9)


def test_class_means_read_the_exemplars_and_the_new_clips_only(coil_run):
    _, _, seen = coil_run
    for task in (1, 2):
        read = seen[task, "read"]
        exemplars = {int(i) for v in seen[task, "exemplars"].values() for i in v}
        known = seen[task]["sizes"][0]
        assert len(exemplars) == known * (80 // known)  # the memory the previous task left
        assert read == exemplars | seen[task, "own"]  # no other old-class clip


def test_checkpoint_rebuilds_the_strategy(coil_run):
    _, run_dir, _ = coil_run
    s = strategy_after(run_dir, 2)
    assert isinstance(s, COIL) and s.teacher is None
    assert s.network.head.chunk_sizes == [4, 2, 2] and s.class_means.shape == (8, 64)
    again = strategy_after(run_dir, 2)
    s.eval(), again.eval()
    x = torch.randn(3, 32, 32)
    a, b = s.eval_logits(x), again.eval_logits(x)
    assert all(torch.equal(a[k], b[k]) for k in ("cnn", "nme"))


def test_coil_refuses_other_scenarios():
    assert COIL.scenarios == ("standard",)
