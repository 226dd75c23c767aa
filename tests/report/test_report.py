"""audiocil report: groups, mean ± std recomputed from each run's results.json, every
format and figure, failed and incomplete jobs listed, --compare, any scenario."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from audiocil.report.build import write_report
from audiocil.report.cli import main
from tests.report.synthetic import fewshot_run, multilabel_run, standard_run

R = {  # (method, seed) -> accuracy matrix
    ("finetune", 1): [[90.0], [30.0, 95.0], [10.0, 20.0, 96.0]],
    ("finetune", 2): [[80.0], [40.0, 85.0], [20.0, 30.0, 90.0]],
    ("replay", 1): [[90.0], [70.0, 90.0], [60.0, 70.0, 88.0]],
    ("replay", 2): [[85.0], [75.0, 80.0], [65.0, 60.0, 86.0]],
}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, shared_root):
    root = tmp_path_factory.mktemp("sweep")
    for i, ((method, seed), rows) in enumerate(sorted(R.items())):
        standard_run(root / str(i), shared_root, method, seed, rows, [50.0 + i, 60.0, 70.0])
    # a job that failed before writing anything, and one killed after its first task
    failed = root / "4"
    (failed / ".hydra").mkdir(parents=True)
    (failed / ".hydra" / "overrides.yaml").write_text("- method=replay\n- seed=3\n")
    (failed / "job_status.json").write_text(json.dumps(
        {"status": "FAILED", "error": "ValueError: scenario.init_cls=99 must be in 1..8"}))
    standard_run(root / "5", shared_root, "replay", 4, R[("replay", 1)], [1, 2, 3], stop_after=1)
    # a single run (no sweep callback) that marked itself failed (audiocil.engine.rundir)
    marked = root / "6"
    (marked / ".hydra").mkdir(parents=True)
    (marked / "FAILED").write_text("config error: method.memory.size=-5: must be >= 1\n")
    return root


def test_means_and_stds_are_those_of_the_runs_results_json(sweep, tmp_path):
    rep = write_report([sweep], tmp_path)
    assert [g.label for g in rep.groups] == ["finetune", "replay"]
    assert {p.path.name: p.status for p in rep.problems} == {"4": "FAILED", "5": "incomplete",
                                                             "6": "FAILED"}
    assert next(p for p in rep.problems if p.path.name == "6").error.startswith("config error")
    rows = list(csv.DictReader(open(tmp_path / "tables.csv")))
    for method in ("finetune", "replay"):
        res = [json.loads((sweep / str(i) / "results.json").read_text())
               for i, (m, _) in enumerate(sorted(R)) if m == method]
        for key, column in (("avg_incremental_accuracy", "AA (%)"), ("forgetting", "Forgetting (pp)"),
                            ("last_accuracy", "Last (%)"),
                            ("val_avg_incremental_accuracy", "Val AA (%)")):
            cell = next(r for r in rows if r["Method"] == method and r["column"] == column)
            values = [r[key] for r in res]
            assert float(cell["mean"]) == pytest.approx(np.mean(values))
            assert float(cell["std"]) == pytest.approx(np.std(values, ddof=1))
            assert cell["replicates"] == "2"
        step3 = next(r for r in rows if r["Method"] == method and r["column"] == "Task 3")
        assert float(step3["mean"]) == pytest.approx(np.mean([r["accuracy_per_step"][2] for r in res]))


def test_every_format_and_figure_is_written(sweep, tmp_path):
    rep = write_report([sweep], tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "| finetune | cnn | 2 |" in md and "±" in md
    assert "Jobs without complete results" in md and "scenario.init_cls=99" in md
    assert "1 of 3 tasks" in md and "method=replay seed=3" in md
    tex = (tmp_path / "tables.tex").read_text()
    assert "\\pm" in tex and "\\toprule" in tex and "AA (\\%)" in tex
    names = {p.name for p in rep.figures}
    for stem in ("synth20-standard_accuracy", "synth20-standard_bars",
                 *(f"synth20-standard_matrix_{i}" for i in range(4))):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names, stem
    for p in rep.figures:
        assert p.stat().st_size > 5000, p
        assert f"]({p.name})" in md or p.suffix == ".pdf"
    assert "cost per task" in (tmp_path / "tables.md").read_text().lower()


def test_compare_groups_by_a_config_key(tmp_path, shared_root):
    for i, bs in enumerate((16, 16, 32, 32)):
        standard_run(tmp_path / "runs" / str(i), shared_root, "replay", i, R[("replay", 1 + i % 2)],
                     [50.0, 50, 50], extra=[f"method.batch_size={bs}", f"method.first_task.epochs={i}"])
    rep = write_report([tmp_path / "runs"], tmp_path / "out", compare="method.batch_size")
    assert [g.label for g in rep.groups] == ["replay (method.batch_size=16)",
                                             "replay (method.batch_size=32)"]
    assert [len(g.runs) for g in rep.groups] == [2, 2]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "also differ in method.first_task.epochs" in md
    # without --compare, the differing keys name the groups
    rep = write_report([tmp_path / "runs"], tmp_path / "out2")
    assert len(rep.groups) == 4 and "method.batch_size=16" in rep.groups[0].label


def test_fewshot_and_multilabel_runs(tmp_path, shared_root):
    base = [9, 8, 7, 6]
    for seed in (1, 2):
        fewshot_run(tmp_path / "fs" / str(seed), shared_root, seed,
                    [[base, base + [5, 4], base + [5, 4, 3, 2]],
                     [base, base + [6, 5], base + [6, 5, 4, 3]]])
        multilabel_run(tmp_path / "ml" / str(seed), shared_root, seed,
                       [[0.6], [0.4, 0.5], [0.3, 0.4, 0.5]])
    rep = write_report([tmp_path / "fs", tmp_path / "ml"], tmp_path / "out")
    names = {p.name for p in rep.figures}
    assert {"synth20-fewshot_sessions.png", "synth20-fewshot_accuracy.png",
            "synthmix8-multilabel_macro_f1.png", "synthmix8-multilabel_map.png",
            "synthmix8-multilabel_matrix_1.png"} <= names
    rows = list(csv.DictReader(open(tmp_path / "out" / "tables.csv")))
    aa = next(r for r in rows if r["Method"] == "prototype" and r["column"] == "AA (%)")
    assert aa["replicates"] == "4"  # 2 seeds x 2 trials
    per_trial = [t["aa"] for s in (1, 2) for t in
                 json.loads((tmp_path / "fs" / str(s) / "results.json").read_text())["trials"]]
    assert float(aa["mean"]) == pytest.approx(np.mean(per_trial))
    assert float(aa["std"]) == pytest.approx(np.std(per_trial, ddof=1))
    f1 = next(r for r in rows if r["Method"] == "ft" and r["column"] == "Avg macro-F1 (%)")
    assert float(f1["mean"]) == pytest.approx(100 * np.mean([0.6, 0.45, 0.4]))


def test_cli(sweep, tmp_path, capsys):
    shutil.copytree(sweep / "0", tmp_path / "run")
    assert main([str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "1 run(s) in 1 group(s)" in out and (tmp_path / "run" / "report" / "report.md").is_file()
    assert main([str(tmp_path / "nowhere")]) == 2
    assert main([str(sweep), "--out", str(tmp_path / "o"), "--compare", "method.nokey"]) == 2
