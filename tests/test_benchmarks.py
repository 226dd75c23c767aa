"""The benchmark scripts compose the overrides they pass to every method (they are not run
here: they take minutes to hours)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from audiocil.config import compose

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))  # as `python benchmarks/<script>.py` has it


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # as an import would (dataclasses look their module up there)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("method", ["finetune", "prototype", "meta_sc", "pan", "amfo", "icarl"])
def test_fewshot_table_overrides_compose(method):
    mod = load("fewshot_table")
    args = mod.build_parser().parse_args(["--methods", method])
    cfg = compose(mod.overrides(method, args))
    assert cfg.method.name == method and cfg.method.first_task.scheduler.kind == "cosine"


@pytest.mark.parametrize("method", ["finetune", "icarl", "ewc", "der", "joint", "lwf", "replay"])
def test_standard_table_overrides_compose(method):
    mod = load("standard_table")
    args = mod.build_parser().parse_args(["--epochs", "3"])
    cfg = compose(mod.overrides(method, args))
    assert cfg.scenario.init_cls == 10 and cfg.method.first_task.epochs == 3
    assert cfg.method.later_tasks.scheduler.kind == "cosine"
    if cfg.method.memory:
        assert cfg.method.memory.size == 1000
    if method == "ewc":  # no stage node of its own: the Fisher pass is one epoch by design
        assert "fisher" not in cfg.method


@pytest.mark.parametrize("method", ["indl", "ft", "fe", "at", "iod", "ifd", "iodfd"])
def test_multilabel_table_methods_compose(method):
    mod = load("multilabel_table")
    cfg = compose(["experiment=gmmix50_iodfd", f"method={method}", "trainer.enable_progress_bar=false"])
    assert set(mod.phase0_settings(cfg)["method"]) == set(mod.PHASE0_KEYS)


def test_multilabel_table_shares_phase0_through_a_state_checkpoint(shared_root, tmp_path):
    import json

    from audiocil.run import run
    from tests.conftest import TINY, compose_cfg, epochs
    from tests.multilabel.synthmix import SYNTHMIX

    mod = load("multilabel_table")
    proto = [*TINY, *SYNTHMIX, "scenario.increment=4", *epochs(2, 1), "trainer.limit_val_batches=0"]
    src = tmp_path / "indl"
    run(compose_cfg([*proto, "method=indl"], shared_root), src)
    cfg = compose_cfg([*proto, "method=iod"], shared_root)
    assert mod.start_from_shared_phase0(cfg, src, tmp_path / "iod")
    res = run(cfg, tmp_path / "iod")
    first = json.loads((src / "results.json").read_text())
    assert res["f1_matrix"][0] == first["f1_matrix"][0]  # phase 0 is the same model
    assert res["phase0_from"] == str(src) and res["completed_tasks"] == 2


def test_bench_fewshot_sessions_splits_the_base_session_from_the_sessions():
    mod = load("bench_fewshot_sessions")
    costs = [{"task": 0, "session": 0, "time_s": 60.0}, {"task": 1, "session": 1, "time_s": 3.0},
             {"task": 2, "session": 2, "time_s": 1.0}, {"task": 3, "session": 1, "time_s": 2.0},
             {"task": 4, "session": 2, "time_s": 2.0}]
    got = mod.summarise({"cost_per_task": costs, "n_trials": 2}, 70.0, project_trials=100)
    assert got["base_session_s"] == 60.0 and got["sessions"] == 4 and got["sessions_s"] == 8.0
    assert got["session_median_s"] == 2.0 and got["startup_and_end_s"] == 2.0
    assert got["projected_100_trials_min"] == round((70 - 8 + 4 * 100) / 60, 1)


def test_peer_protocol_overrides_compose_and_its_render_is_a_split_folder(tmp_path):
    """benchmarks/peer_protocol.py: the protocol's settings compose and pass the schema; a tiny
    render (2 programs, 3 train + 1 test + 2 val notes) is made once and read by
    dataset=folder's split=folders: the given val folder, train and test untouched."""
    from audiocil.data.loaders.folder import load_folder
    from audiocil.schema import validate

    mod = load("peer_protocol")
    args = mod.build_parser().parse_args(["--epochs", "2"])
    cfg = compose(mod.overrides(args, tmp_path / "data"))
    validate(cfg)
    assert (cfg.method.name, cfg.backbone.name, cfg.method.memory.size) == ("icarl", "resnet18", 200)
    assert (cfg.scenario.init_cls, cfg.scenario.increment, cfg.scenario.class_order_seed) == (5, 5, 1993)
    assert (cfg.dataset.frontend.n_fft, cfg.dataset.frontend.hop_length, cfg.dataset.frontend.n_mels) \
        == (2048, 1024, 128)
    assert cfg.method.first_task.epochs == cfg.method.later_tasks.epochs == 2
    assert cfg.dataset.loader.split == "folders"

    small = mod.build_parser().parse_args(["--programs", "0,40", "--train", "3", "--test", "1",
                                           "--val", "2", "--data-dir", str(tmp_path / "d")])
    data = mod.render(small)
    assert mod.render(small) == data  # made once: the second call finds it
    ds = load_folder(str(data), split="folders", val_fraction=0.34, clip_seconds=4.0)
    assert ds.class_names == [mod.class_name(0), mod.class_name(40)]
    assert [len(ds.splits[k]) for k in ("train", "test", "val")] == [6, 2, 4]
    notes = {s: {(Path(p).parent.name, *map(int, Path(p).stem.split("-"))) for p in t.paths}
             for s, t in ds.splits.items()}
    assert not notes["test"] & (notes["train"] | notes["val"])  # disjoint (pitch, velocity) pairs
    assert not notes["train"] & notes["val"]
    assert all((p, v) in [(a, b) for a in mod.PITCHES for b in mod.VELOCITIES]
               for _, p, v in notes["test"])
    import soundfile as sf

    wave, sr = sf.read(ds.splits["test"].paths[0])
    assert sr == 16000 and len(wave) == 64000 and abs(abs(wave).max() - 0.9) < 1e-3


TRAIN_TINY = ["dataset.loader.n_classes=8", "scenario.init_cls=4", "scenario.increment=4",
              "dataset.frontend.n_mels=32", "dataset.frontend.hop_length=512", "backbone.width=8",
              "logger=csv"]


def test_bench_train_measures_finetune_and_a_method_with_a_teacher(shared_root, tmp_path, capsys):
    """benchmarks/bench_train.py on synth20: model-only and end-to-end samples/s of the second
    task's stage of finetune and of LwF (whose step includes its teacher's forward), finite
    and positive, in the printed table."""
    import math

    mod = load("bench_train")
    argv = ["--dataset", "synth20", "--methods", "finetune,lwf", "--steps", "1", "--epochs", "1",
            "--batch", "16", "--limit-batches", "3", "--first-batches", "1", "--threads", "1",
            "--root", str(shared_root), "--out", str(tmp_path / "out"),
            *[f"--set={o}" for o in TRAIN_TINY]]
    rows = mod.main(argv)
    assert [(r.method, r.task, r.stage, r.batch) for r in rows] == [("finetune", 1, "train", 16),
                                                                    ("lwf", 1, "train", 16)]
    for r in rows:
        assert len(r.model_only_passes) == 2  # before and after the end-to-end task
        for v in (r.model_only, r.end_to_end, r.ratio, r.model_only_step, r.steady, r.ratio_steady,
                  r.model_only_cpu, r.end_to_end_cpu, r.ratio_cpu):
            assert v is not None and math.isfinite(v) and v > 0, r
        assert r.items > 3 * 16  # the stage's clips per epoch, not the batches it was limited to
    out = capsys.readouterr().out
    assert "| lwf | 1 | train | 16 |" in out and "device cpu (no CUDA)" in out
    assert (tmp_path / "out" / "table.md").read_text().count("| finetune |") == 1


def test_bench_train_stage_notes_and_settings():
    """Closed-form and fixed-embedding stages say n/a (no ratio); the first task is measured
    where the encoder is frozen after it; every trained stage gets --epochs, a closed-form
    one keeps its 0; AMP on a CPU falls back to bf16 as Lightning does."""
    import torch

    mod = load("bench_train")
    closed = mod.Row("acil", 1, "analytic", note=mod.CLOSED_FORM)
    fixed = mod.Row("fetril", 1, "classifier", 128, 400, 900.0, 300.0, note=mod.FIXED_ITEMS)
    ok = mod.Row("lwf", 1, "train", 128, 2000, 100.0, 97.0, model_only_cpu=50.0, end_to_end_cpu=49.0)
    assert closed.ratio is None and fixed.ratio is None and ok.ratio == 0.97
    assert ok.ratio_cpu == 0.98 and ok.ratio_steady is None
    text = mod.table([closed, fixed, ok])
    assert "| acil | 1 | analytic | - | - | - | - | n/a |" in text and "| 0.97 |" in text
    assert mod.Row("der", 1, "train", 128, 2000, 100.0, 300.0, devices=4).ratio == 0.75

    args = mod.build_parser().parse_args(["--epochs", "3"])
    for method, first in [("acil", True), ("fetril", True), ("lwf", False)]:
        cfg = compose(mod.overrides(method, args))
        assert mod.measures_first_task(cfg, args) is first
        assert cfg.method.first_task.epochs == 3 and cfg.data.teacher_outputs == "recompute"
        assert cfg.method.later_tasks.epochs == (0 if method == "acil" else 3)
    cfg = compose(mod.overrides("foster", args))
    assert cfg.method.compression.epochs == 3 and cfg.trainer.accelerator == "cpu"
    autocast, scaler = mod.amp_of("16-mixed", torch.device("cpu"))
    with autocast():
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert scaler is None and mod.amp_of("32-true", torch.device("cpu"))[1] is None
