"""Optimizers and schedules are built from the config: every optimizer file and scheduler
kind, warm-up, parameter groups; a misspelt key fails before anything runs, naming it."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from audiocil.config import CONFIG_DIR, check_method_config
from audiocil.optim import build, lr_schedule, param_groups
from tests.conftest import TINY

OPTIMIZERS = sorted(p.stem for p in (CONFIG_DIR / "optimizer").glob("*.yaml"))


def rates(optim: dict, epochs: int, steps: int = 1, groups=None) -> list[float]:
    model = torch.nn.Linear(2, 2)
    out = build({**optim, "epochs": epochs}, groups or param_groups(model.parameters()), steps)
    opt, sched = (out["optimizer"], out["lr_scheduler"]) if isinstance(out, dict) else (out, None)
    seen = []
    for _ in range(epochs):
        for _ in range(steps):
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            if sched and sched["interval"] == "step":
                sched["scheduler"].step()
        if sched and sched["interval"] == "epoch":
            sched["scheduler"].step()
    return seen


def node(kind: str, **kw) -> dict:
    return {"_target_": "audiocil.optim.lr_schedule", "_partial_": True, "kind": kind, **kw}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_file_builds(name, make_cfg):
    cfg = make_cfg(f"optimizer@method.first_task.optimizer={name}")
    optim = OmegaConf.to_container(cfg.method.first_task, resolve=True)
    out = build(optim, param_groups(torch.nn.Linear(2, 2).parameters()), 4)
    opt = out["optimizer"] if isinstance(out, dict) else out
    assert type(opt).__name__.lower() == name
    assert opt.param_groups[0]["lr"] == optim["optimizer"]["lr"]


def test_sgd_settings_reach_the_optimizer(make_cfg):
    cfg = make_cfg("method.first_task.optimizer.nesterov=true", "method.first_task.optimizer.lr=0.3")
    out = build(OmegaConf.to_container(cfg.method.first_task, resolve=True),
                param_groups(torch.nn.Linear(2, 2).parameters()), 4)
    g = out["optimizer"].param_groups[0]
    assert g["nesterov"] and g["lr"] == 0.3 and g["momentum"] == 0.9


def test_multistep_cosine_constant_onecycle():
    sgd = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 1.0}
    assert rates({"optimizer": sgd, "scheduler": node("multistep", milestones=[2, 3], gamma=0.5)}, 4) \
        == [1.0, 1.0, 0.5, 0.25]
    cos = rates({"optimizer": sgd, "scheduler": node("cosine", eta_min=0.0)}, 4)
    assert cos[0] == 1.0 and cos[1] > cos[2] > cos[3] > 0
    assert rates({"optimizer": sgd, "scheduler": node("constant")}, 3) == [1.0] * 3
    one = rates({"optimizer": sgd, "scheduler": node("onecycle", pct_start=0.5)}, 2, steps=5)
    assert one[0] < max(one) and abs(max(one) - 1.0) < 1e-6 and one[-1] < one[0]


def test_linear_warmup_then_the_schedule():
    sgd = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 1.0}
    got = rates({"optimizer": sgd, "scheduler": node("multistep", milestones=[4], gamma=0.1,
                                                     warmup_epochs=2, warmup_start=0.5)}, 5)
    assert got[:3] == pytest.approx([0.5, 0.75, 1.0]) and got[3] == 1.0 and got[4] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="onecycle"):
        lr_schedule(torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1), epochs=3,
                    steps_per_epoch=1, kind="onecycle", warmup_epochs=1)
    with pytest.raises(ValueError, match="kind"):
        lr_schedule(torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1), epochs=3,
                    steps_per_epoch=1, kind="linear")


def test_parameter_groups_keep_their_own_rates():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    groups = param_groups([{"params": a.parameters(), "lr": 0.0, "weight_decay": 0.0},
                           {"params": b.parameters()}])
    sgd = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.5, "weight_decay": 0.1}
    opt = build({"optimizer": sgd, "scheduler": None, "epochs": 1}, groups, 1)
    assert [g["lr"] for g in opt.param_groups] == [0.0, 0.5]
    before = a.weight.detach().clone()
    (a(torch.ones(1, 2)).sum() + b(torch.ones(1, 2)).sum()).backward()
    opt.step()
    assert torch.equal(a.weight, before)  # lr 0: frozen


def test_a_misspelt_optimizer_key_fails_naming_it(make_cfg):
    with pytest.raises(Exception, match="momentom"):  # an override: Hydra's struct mode
        make_cfg("method.first_task.optimizer.momentom=0.5")
    cfg = make_cfg()
    OmegaConf.set_struct(cfg, False)
    cfg.method.first_task.optimizer.momentom = 0.5  # a typo written into a yaml
    with pytest.raises(ValueError, match=r"method\.first_task\.optimizer\.momentom"):
        check_method_config(cfg.method)
    cfg = make_cfg()
    OmegaConf.set_struct(cfg, False)
    cfg.method.later_tasks.scheduler.milestone = [3]
    with pytest.raises(ValueError, match=r"later_tasks\.scheduler\.milestone"):
        check_method_config(cfg.method)
    cfg = make_cfg()
    OmegaConf.set_struct(cfg, False)
    cfg.method.first_task.epoch = 3
    with pytest.raises(ValueError, match=r"first_task\.epoch"):
        check_method_config(cfg.method)
    cfg = make_cfg("method=lwf")
    OmegaConf.set_struct(cfg, False)
    cfg.method.lamdba = 3
    with pytest.raises(ValueError, match=r"method\.lamdba"):
        check_method_config(cfg.method)


def test_every_method_config_passes_the_check(make_cfg):
    methods = sorted(p.stem for p in (CONFIG_DIR / "method").glob("*.yaml"))
    assert len(methods) >= 17
    for m in methods:
        extra = ["scenario=multilabel"] if m in {"ft", "fe", "at", "indl", "iod", "ifd", "iodfd"} else []
        check_method_config(make_cfg(f"method={m}", *extra).method)
    assert TINY  # composed on the tiny protocol
