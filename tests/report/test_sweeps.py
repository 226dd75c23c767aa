"""Launchers and sweepers as researchers use them: the configs compose; a sweep writes its
report into its directory, listing a failed job; joblib jobs share one feature cache;
submitit's local executor runs a two-job sweep; Optuna maximises the validation objective."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import get_class

from audiocil.config import CONFIG_DIR, register_resolvers
from tests.conftest import TINY

REPO = Path(__file__).resolve().parents[2]
QUICK = [*TINY, "method.first_task.epochs=1", "method.later_tasks.epochs=1",
         "trainer.limit_val_batches=0"]


def hydra_cfg(overrides: list[str]):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


def sweep(tmp_path: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
           "AUDIOCIL_PROGRESS": "lines"}
    return subprocess.run([sys.executable, "-m", "audiocil", "-m", *args,
                           f"paths.root_dir={tmp_path}", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=tmp_path)


SWEEP_CONFIGS = sorted(str(p.relative_to(CONFIG_DIR).with_suffix("")) for p in
                       [*(CONFIG_DIR / "hydra" / "launcher").glob("*.yaml"),
                        *(CONFIG_DIR / "hparams_search").glob("*.yaml")])


@pytest.mark.parametrize("name", SWEEP_CONFIGS)
def test_every_launcher_and_search_config_composes(name):
    group, _, option = name.rpartition("/")
    cfg = hydra_cfg([f"{group}={option}"])
    node = cfg.hydra.launcher if group == "hydra/launcher" else cfg.hydra.sweeper
    assert get_class(node._target_)


def test_launcher_and_sweeper_configs_compose():
    slurm = hydra_cfg(["hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                       "hydra.launcher.gpus_per_node=2", "hydra.launcher.timeout_min=90",
                       "hydra.launcher.array_parallelism=4"]).hydra.launcher
    assert slurm._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (slurm.partition, slurm.gpus_per_node, slurm.timeout_min, slurm.array_parallelism) \
        == ("gpu", 2, 90, 4)
    local = hydra_cfg(["hydra/launcher=local"]).hydra.launcher
    assert local._target_.endswith("JoblibLauncher") and local.n_jobs == 2
    cfg = hydra_cfg(["hparams_search=lwf_optuna"])
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.sweeper.direction == "maximize"
    assert cfg.method.name == "lwf" and cfg.optimized_metric == "val_objective"
    assert set(cfg.hydra.sweeper.params) == {"method.lamda", "method.T"}
    assert "sweep_report" in cfg.hydra.callbacks


def test_a_sweep_writes_its_report_and_lists_the_failed_job(tmp_path):
    # job 1 asks for more base classes than the dataset has: it fails before any data
    out = sweep(tmp_path, *QUICK, "scenario.init_cls=4,99", "seed=1")
    assert out.returncode != 0  # Hydra reports the failure...
    report = tmp_path / "sweep" / "report" / "report.md"
    assert report.is_file(), out.stderr[-3000:]  # ...and the report is written all the same
    md = report.read_text()
    assert "| finetune | cnn | 1 |" in md
    assert "FAILED" in md and "scenario.init_cls=99" in md and "ConfigError" in md
    status = json.loads((tmp_path / "sweep" / "0" / "job_status.json").read_text())
    results = json.loads((tmp_path / "sweep" / "0" / "results.json").read_text())
    assert status["status"] == "COMPLETED" and status["return_value"] == results["val_objective"]
    assert (tmp_path / "sweep" / "0" / "report" / "synth20-standard_accuracy.png").is_file()


@pytest.mark.slow
def test_joblib_jobs_share_one_feature_cache(tmp_path):
    out = sweep(tmp_path, "hydra/launcher=local", *QUICK, "seed=1,2")
    assert out.returncode == 0, out.stderr[-3000:]
    for job in ("0", "1"):
        assert (tmp_path / "sweep" / job / "results.json").is_file()
    entries = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "outputs" / "cache").iterdir()
                     if p.is_dir() and not p.name.startswith("."))
    assert entries == ["synth8-test", "synth8-train", "synth8-val"]  # built once, shared
    assert (tmp_path / "sweep" / "report" / "report.md").is_file()


@pytest.mark.slow
def test_submitit_local_executor_runs_a_two_job_sweep(tmp_path):
    out = sweep(tmp_path, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=20",
                *QUICK, "method=finetune,replay")
    assert out.returncode == 0, out.stderr[-3000:]
    for job, method in (("0", "finetune"), ("1", "replay")):
        res = json.loads((tmp_path / "sweep" / job / "results.json").read_text())
        assert res["method"] == method and res["completed_tasks"] == 2
    assert list((tmp_path / "sweep" / ".submitit").iterdir())  # went through submitit
    md = (tmp_path / "sweep" / "report" / "report.md").read_text()
    assert "| finetune | cnn | 1 |" in md and "| replay | cnn | 1 |" in md


@pytest.mark.slow
def test_optuna_maximises_the_validation_objective(tmp_path):
    out = sweep(tmp_path, "hparams_search=lwf_optuna", "hydra.sweeper.n_trials=2",
                "hydra.sweeper.sampler.n_startup_trials=2", *QUICK)
    assert out.returncode == 0, out.stderr[-3000:]
    best = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    vals = [json.loads((tmp_path / "sweep" / j / "results.json").read_text())["val_objective"]
            for j in ("0", "1")]
    assert best["best_value"] == pytest.approx(max(vals))
