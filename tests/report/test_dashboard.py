"""W&B (offline) and TensorBoard dashboards, read back from the files they wrote: each task's
figures with the task as the step axis, the matrices as tables and images, the config, the
sweep group and the method/dataset/scenario tags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from audiocil.report.dashboard import Dashboard, build_logger
from audiocil.results.io import read_long
from audiocil.scenarios.standard import split_tasks
from tests.conftest import compose_cfg
from tests.report.synthetic import fewshot_run, standard_run
from tests.report.wandb_files import read_run

R = [[90.0], [30.0, 95.0], [10.0, 20.0, 96.0]]


def replay(run_dir: Path, logger, record_dir: Path) -> None:
    """Feed the dashboard a finished run's record, task by task, as the sequencer does."""
    from audiocil.results import RunRecord

    full = json.loads((record_dir / "results.json").read_text())
    tasks = split_tasks(list(range(8)), 4, 2)
    rec = RunRecord({"method": "finetune", "dataset": "synth20", "scenario": "standard",
                     "seed": 1, "tasks": full["tasks"]})
    dash = Dashboard(logger)
    assert dash.active
    for t, task in enumerate(tasks):
        row = full["accuracy_matrix"][t]
        counts = [40 if j == 0 else 20 for j in range(len(row))]
        rec.add_step(task, {"cnn": {"top1_per_task": row, "topk_per_task": row,
                                    "top1": full["accuracy_per_step"][t],
                                    "topk": full["accuracy_per_step"][t], "count_per_task": counts}},
                     {"val": {"cnn": {"accuracy": 50.0 + t}}, "time_s": 1.0, "params": 10,
                      "memory_samples": 0, "memory_bytes": None, "train_samples_per_s": 100.0})
        dash(rec, task)
    dash.close()


@pytest.fixture
def finished(tmp_path, shared_root):
    return standard_run(tmp_path / "src", shared_root, "finetune", 1, R, [50.0, 51, 52])


def test_wandb_offline_files(finished, tmp_path, shared_root):
    cfg = compose_cfg(["logger=wandb", "method=finetune"], shared_root)
    logger = build_logger(cfg, tmp_path / "run")
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    replay(tmp_path / "run", logger, finished)
    got = read_run(tmp_path / "run")
    assert got["run"]["group"] == "run"  # no sweep: the run is its own group
    assert got["run"]["tags"] == ["finetune", cfg.dataset.name, "standard"]
    assert got["config"]["method"]["name"] == "finetune"
    rows = [h for h in got["history"] if "cil/task" in h]
    assert [h["cil/task"] for h in rows] == [0, 1, 2]
    res = json.loads((finished / "results.json").read_text())
    assert [h["cil/cnn/accuracy"] for h in rows] == pytest.approx(res["accuracy_per_step"])
    assert rows[2]["cil/cnn/forgetting"] == pytest.approx(res["forgetting"])
    assert rows[2]["cil/cnn/avg_incremental_accuracy"] == pytest.approx(res["avg_incremental_accuracy"])
    assert rows[1]["cil/cnn/old_accuracy"] == pytest.approx(30.0)
    assert rows[1]["cil/cnn/new_accuracy"] == pytest.approx(95.0)
    assert rows[2]["cil/cnn/val_accuracy"] == pytest.approx(52.0)
    files = got["file"].parent / "files"
    table = json.loads((files / rows[2]["cil/cnn/accuracy_matrix/path"]).read_text())
    assert [r[1:] for r in table["data"]] == [[90.0, None, None], [30.0, 95.0, None],
                                              [10.0, 20.0, 96.0]]
    image = files / rows[2]["cil/cnn/accuracy_matrix_image/path"]
    assert image.suffix == ".png" and image.stat().st_size > 5000


def test_wandb_groups_a_sweep(shared_root, tmp_path, monkeypatch):
    from audiocil.report import dashboard

    monkeypatch.setattr(dashboard, "sweep_group", lambda run_dir: "sweep-2026-01-01_00-00-00")
    cfg = compose_cfg(["logger=wandb", "logger.offline=true"], shared_root)
    logger = build_logger(cfg, tmp_path / "job0")
    assert logger._wandb_init["group"] == "sweep-2026-01-01_00-00-00"
    cfg = compose_cfg(["logger=wandb", "logger.group=mine", "logger.tags=[a]"], shared_root)
    assert build_logger(cfg, tmp_path / "job1")._wandb_init["group"] == "mine"


def test_tensorboard_events(finished, tmp_path, shared_root):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = compose_cfg(["logger=tensorboard"], shared_root)
    logger = build_logger(cfg, tmp_path / "run")
    replay(tmp_path / "run", logger, finished)
    ea = EventAccumulator(str(Path(logger.log_dir)), size_guidance={"images": 0, "scalars": 0,
                                                                    "tensors": 0})
    ea.Reload()
    res = json.loads((finished / "results.json").read_text())
    acc = ea.Scalars("cil/cnn/accuracy")
    assert [e.step for e in acc] == [0, 1, 2]
    assert [e.value for e in acc] == pytest.approx(res["accuracy_per_step"], rel=1e-6)
    assert ea.Scalars("cil/cnn/forgetting")[-1].value == pytest.approx(res["forgetting"])
    assert [e.step for e in ea.Images("cil/cnn/accuracy_matrix_image")] == [0, 1, 2]
    text = ea.Tensors("cil/cnn/accuracy_matrix/text_summary")[-1].tensor_proto.string_val[0]
    assert "| 3 | 10.00 | 20.00 | 96.00 |" in text.decode()
    assert ea.Scalars("cil/cost/train_samples_per_s")[0].value == 100.0


def test_fewshot_figures_per_session(tmp_path, shared_root):
    """A few-shot task logs its own trial's session: accuracy, base, novel, HM."""
    base = [9, 8, 7, 6]
    run = fewshot_run(tmp_path / "fs", shared_root, 1,
                      [[base, base + [5, 4], base + [5, 4, 3, 2]],
                       [base, base + [6, 5], base + [6, 5, 4, 3]]])
    from audiocil.core import FewShotTask
    from audiocil.results.fewshot import FewShotRecord

    state = json.loads((run / "results.json").read_text())
    rows = read_long(run / "results_long.csv")
    assert rows and state["val_objective_is"] == "val_avg_base_accuracy"
    rec = FewShotRecord({"method": "prototype"}, 4, 2, 2, 2, trials=2)
    tasks = [FewShotTask(0, (), 0, 4, trial=0, session=0), FewShotTask(1, (), 4, 6, trial=0, session=1),
             FewShotTask(2, (), 6, 8, trial=0, session=2), FewShotTask(3, (), 4, 6, trial=1, session=1)]
    correct = [base, base + [5, 4], base + [5, 4, 3, 2], base + [6, 5]]
    for task, c in zip(tasks, correct, strict=True):
        rec.add_step(task, {"classifiers": {"cnn": {"correct": c, "count": [10] * len(c)}}},
                     {"time_s": 1.0, "params": 1, "memory_samples": 0})
    scalars, matrices = Dashboard.figures(rec, tasks[3])
    assert scalars["trial"] == 1 and scalars["session"] == 1 and scalars["task"] == 3
    assert scalars["cnn/novel_accuracy"] == pytest.approx(55.0)
    assert scalars["cnn/base_accuracy"] == pytest.approx(75.0)
    assert scalars["cnn/hm"] == pytest.approx(2 * 75 * 55 / 130)
    assert matrices["cnn/accuracy_matrix"] == [[75.0, None], [75.0, 55.0]]  # R[t][j], j <= t
