"""GEM on a tiny stream of synth20 (6 + 3 + 3 classes: the first task is larger, so the
reference's "every task has the current task's size" would group the exemplars wrongly).

The claim is checked on the method's real hook during a real run: at every optimizer step
of the later tasks, the gradient the optimizer applies has a non-negative inner product with
the gradient of every earlier task's exemplar loss (computed here independently), and it is
the raw gradient, bit for bit, when no constraint is violated.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from audiocil.methods.gem import GEM
from audiocil.solvers.gem import project_gradient
from tests.conftest import TINY, compose_cfg, epochs, run_tiny, strategy_after

CHANCE = 100 / 12
SPANS = [[0, 6], [6, 9], [9, 12]]
PROTOCOL = [*TINY, "dataset.loader.n_classes=12", "scenario.init_cls=6", "scenario.increment=3",
            *epochs(6, 6, lr=0.05), "trainer.limit_val_batches=0", "trainer.log_every_n_steps=1"]


def flat_grad(params) -> torch.Tensor:
    return torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).reshape(-1).clone()
                      for p in params])


def reference_old_gradients(s: GEM, params, task: int) -> torch.Tensor:
    """Each earlier task's gradient, written independently of the method: cross-entropy of
    the task's exemplars over that task's logits (train mode: batch statistics and the
    backbone's dropout, as the current batch), BatchNorm statistics put back."""
    saved = {n: b.clone() for n, b in s.network.named_buffers()}
    rows = []
    with torch.enable_grad():
        for lo, hi in SPANS[:task]:
            idx = torch.cat([torch.as_tensor(s.memory.exemplars[c]) for c in range(lo, hi)])
            x, y = s.test_dm.data["train"][idx], s.test_dm.targets["train"][idx]
            logits = s.network(x)[0]
            loss = F.cross_entropy(logits[:, lo:hi], y - lo)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                                   for p, g in zip(params, grads, strict=True)]))
    with torch.no_grad():
        for n, b in s.network.named_buffers():
            b.copy_(saved[n])
    return torch.stack(rows)


@pytest.fixture(scope="module")
def gem_run(shared_root, tmp_path_factory):
    """One GEM run with a spy around its on_before_optimizer_step."""
    out = tmp_path_factory.mktemp("gem")
    steps: list[dict] = []
    untouched: list[int] = []  # tasks where a gradient agreeing with every old task was tried
    hook, load_memory = GEM.on_before_optimizer_step, GEM.load_memory

    def spy_load(self, dm):
        self.test_dm = dm
        load_memory(self, dm)

    def spy_hook(self, optimizer):
        params = [p for g in optimizer.param_groups for p in g["params"]]
        if self.task.index == 0:
            hook(self, optimizer)
            return
        rng = torch.get_rng_state()  # the same dropout masks for the test's and the hook's passes
        G = reference_old_gradients(self, params, self.task.index)
        raw = flat_grad(params)
        if not steps or steps[-1]["task"] != self.task.index:
            # a gradient that agrees with every old task: the hook must leave it exactly alone
            saved = [None if p.grad is None else p.grad.clone() for p in params]
            # the least-norm z with G z = 1 for every old task, scaled to the raw gradient's norm
            Gd = G.double()
            agree = (Gd.T @ torch.linalg.solve(Gd @ Gd.T, torch.ones(len(G), dtype=torch.float64)))
            agree = (agree * raw.norm() / agree.norm()).float()
            if (G @ agree >= 0).all():
                off = 0
                for p in params:
                    p.grad = agree[off:off + p.numel()].view_as(p).clone()
                    off += p.numel()
                torch.set_rng_state(rng)
                hook(self, optimizer)
                assert torch.equal(flat_grad(params), agree)
                untouched.append(self.task.index)
                for p, g in zip(params, saved, strict=True):
                    p.grad = g
        torch.set_rng_state(rng)
        hook(self, optimizer)
        steps.append({"task": self.task.index, "G": G, "raw": raw, "applied": flat_grad(params)})

    GEM.on_before_optimizer_step, GEM.load_memory = spy_hook, spy_load
    try:
        res = run_tiny([*PROTOCOL, "method=gem", "method.memory.size=48"], shared_root, out)
    finally:
        GEM.on_before_optimizer_step, GEM.load_memory = hook, load_memory
    return out, res, steps, untouched


def test_the_applied_gradient_never_opposes_an_old_task(gem_run):
    _, _, steps, untouched = gem_run
    assert {s["task"] for s in steps} == {1, 2}
    assert untouched == [1, 2]  # and the hook left it exactly alone
    n_violated = 0
    for s in steps:
        G, raw, applied = s["G"].double(), s["raw"].double(), s["applied"].double()
        assert G.shape[0] == s["task"]  # one constraint per earlier task
        tol = 1e-5 * G.norm(dim=1) * applied.norm()
        assert (G @ applied >= -tol).all(), (G @ raw, G @ applied)
        if (G @ raw >= 0).all():
            assert torch.equal(s["applied"], s["raw"])  # nothing violated: untouched
        else:
            n_violated += 1
            # the closest gradient that satisfies the constraints (margin 0)
            want, _ = project_gradient(s["raw"], s["G"])
            assert torch.allclose(s["applied"], want, rtol=1e-4, atol=1e-6 * float(raw.norm()))
    assert 0 < n_violated  # the projection was exercised
    print(f"GEM: {n_violated} of {len(steps)} steps projected")


def test_gem_keeps_the_real_task_ranges_and_learns(gem_run):
    run_dir, res, _, _ = gem_run
    assert res["completed_tasks"] == 3 and res["classifiers"].keys() == {"cnn"}
    assert res["accuracy_per_step"][0] > 3 * 100 / 6
    assert res["accuracy_per_step"][-1] > 2 * CHANCE, res["accuracy_per_step"]
    s = strategy_after(run_dir, 2)
    assert s.spans == SPANS  # round trip of the extra state
    assert res["memory_samples"] == [48, 45, 48]


def test_gem_forgets_less_than_finetune(gem_run, shared_root, tmp_path):
    _, res, _, _ = gem_run
    ft = run_tiny([*PROTOCOL, "method=finetune"], shared_root, tmp_path)
    assert res["old_accuracy_per_step"][-1] > ft["old_accuracy_per_step"][-1] + 10, (
        res["old_accuracy_per_step"], ft["old_accuracy_per_step"])
    assert res["forgetting"] < ft["forgetting"]
    print("GEM old accuracy", res["old_accuracy_per_step"], "finetune", ft["old_accuracy_per_step"])


def test_gem_runs_multilabel_with_binary_cross_entropy(shared_root, tmp_path):
    """The multi-label form: BCE over each phase's columns; it learns and beats finetuning."""
    from hydra.utils import instantiate

    from tests.multilabel.synthmix import SYNTHMIX

    ml = [*TINY, *SYNTHMIX, "scenario.increment=4", *epochs(5, 4, lr=0.05),
          "trainer.limit_val_batches=0"]
    res = run_tiny([*ml, "method=gem", "method.memory.size=48", "method.memory.selection=random"],
                   shared_root, tmp_path / "gem")
    ft = run_tiny([*ml, "method=finetune"], shared_root, tmp_path / "ft")
    p = instantiate(compose_cfg(ml, shared_root).dataset.loader).splits["test"].targets.mean(0)
    assert res["scenario"] == "multilabel" and res["completed_tasks"] == 2
    assert res["map_per_phase"][-1] > 100 * float(p.mean()) + 15, res["map_per_phase"]
    assert res["avg_forgetting"] < ft["avg_forgetting"], (res["avg_forgetting"], ft["avg_forgetting"])


# a tiny few-shot stream: 8 base classes, then 2 sessions of 4-way 3-shot
FEWSHOT = ["dataset=synth20", "dataset.loader.n_classes=16", "dataset.frontend.n_mels=32",
           "dataset.frontend.hop_length=512", "backbone.width=8", "trainer.enable_progress_bar=false",
           "logger=csv", "scenario=fewshot", "scenario.base_classes=8", "scenario.ways=4",
           "scenario.shots=3", "scenario.sessions=2", *epochs(4, 4, lr=0.05),
           "trainer.limit_val_batches=0", "method.memory.size=32"]


def test_gem_runs_few_shot_sessions(shared_root, tmp_path):
    """Each session's shots train under the constraints of the earlier sessions' exemplars."""
    res = run_tiny([*FEWSHOT, "method=gem"], shared_root, tmp_path)
    assert res["scenario"] == "fewshot" and len(res["accuracy_per_session"]) == 3
    assert res["accuracy_per_session"][0] > 3 * 100 / 8
    assert res["last_accuracy"] > 2 * 100 / 16, res["accuracy_per_session"]
    s = strategy_after(tmp_path, 2)
    assert s.spans == [[0, 8], [8, 12], [12, 16]]
