"""Every bad input a new user can give, built here, with the exact behaviour asserted: a clear
error naming the file or key (exit 2, no traceback, no Hydra hint), or a counted skip where
the user asked for it, and nothing already written lost.

The command line is called in this process (``audiocil.__main__.main`` with its argv), as a
user calls it; a few cases also run it as a subprocess to see the real exit code and output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from audiocil.__main__ import main
from audiocil.engine import rundir
from audiocil.errors import EXIT_USER_ERROR
from tests.conftest import TINY, epochs
from tests.data import fixtures as F

FAST = [*epochs(1), "trainer.limit_train_batches=2", "trainer.limit_val_batches=0"]
SMALL = ["backbone.width=8", "dataset.frontend.n_mels=32", "dataset.frontend.hop_length=512",
         "trainer.enable_progress_bar=false", "logger=csv", *FAST]


def cli(argv: list[str], capsys, monkeypatch) -> tuple[int, str]:
    """Run ``audiocil <argv>`` in this process: (exit code, what it printed on stderr)."""
    monkeypatch.setattr(sys, "argv", ["audiocil", *argv])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # restored afterwards (main sets it)
    monkeypatch.delenv("AUDIOCIL_RUN_DIR", raising=False)
    monkeypatch.delenv("AUDIOCIL_TRACEBACK", raising=False)
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err


def assert_user_error(code: int, err: str, *words: str) -> str:
    """Exit 2, one block naming what is wrong, no traceback, no Hydra hint."""
    assert code == EXIT_USER_ERROR, err[-2000:]
    assert "Traceback" not in err and "HYDRA_FULL_ERROR" not in err, err[-2000:]
    block = err[err.index("audiocil: "):]
    for w in words:
        assert w in block, (w, block)
    assert block.rstrip().endswith("(AUDIOCIL_TRACEBACK=1 shows the traceback)")
    return block


def snapshot(*folders: Path) -> dict[str, str]:
    """Hashes of every file under ``folders`` but the logs (which later invocations extend)."""
    out = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and p.suffix != ".log":
                out[str(p)] = hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest()
    return out


def unchanged(before: dict[str, str]) -> bool:
    """Every file of ``before`` is still there, byte for byte (new files may have appeared)."""
    now = {k: hashlib.blake2b(Path(k).read_bytes(), digest_size=16).hexdigest()
           for k in before if Path(k).is_file()}
    return now == before


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """An earlier, finished run and its cache, in the root every case below uses."""
    root = tmp_path_factory.mktemp("badinput")
    run_dir = root / "earlier"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("AUDIOCIL_RUN_DIR", None)
    out = subprocess.run([sys.executable, "-m", "audiocil", *TINY, *FAST, f"paths.root_dir={root}",
                          f"hydra.run.dir={run_dir}"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return root, run_dir, snapshot(run_dir, root / "outputs" / "cache")


def base(earlier, tmp_path) -> list[str]:
    root, _, _ = earlier
    return [f"paths.root_dir={root}", f"hydra.run.dir={tmp_path / 'run'}"]


# ---- config values -----------------------------------------------------------------------
ISSUE_CASES = {  # the issue's own examples: key=value, then what the message must say
    "memory-size": (["method=replay", "method.memory.size=-5"],
                    "method.memory.size=-5: must be a whole number >= 1, or null"),
    "zero-epochs": (["method.first_task.epochs=0"],
                    "method.first_task.epochs=0: must be a whole number >= 1 (0 epochs would "
                    "score an untrained model; Finetune fits no stage in closed form)"),
    "lr-abc": (["method.first_task.optimizer.lr=abc"],
               "method.first_task.optimizer.lr=abc: must be a number > 0"),
    "seed": (["seed=-1"], "seed=-1: must be a whole number in 0..4294967295"),
    "folder-no-root": (["dataset=folder"], "dataset.root is not set: dataset=folder reads audio "
                                           "from a folder you give"),
}


@pytest.mark.parametrize("case", sorted(ISSUE_CASES))
def test_the_issues_config_values_stop_before_any_work(case, earlier, tmp_path, capsys, monkeypatch):
    overrides, message = ISSUE_CASES[case]
    _, _, before = earlier
    tiny = [] if "dataset=folder" in overrides else TINY  # TINY sets synth20's own keys
    code, err = cli([*tiny, *base(earlier, tmp_path), *overrides], capsys, monkeypatch)
    assert_user_error(code, err, message, "marked failed (FAILED); nothing to resume")
    run = tmp_path / "run"
    assert rundir.status(run) == "failed" and not (run / "config.yaml").exists()
    assert not (run / "checkpoints").exists()
    assert unchanged(before)  # the earlier run and the cache are untouched


# every out-of-range value the schema knows, through `audiocil check` (composes, writes nothing)
RANGES = [
    (["method=replay", "method.memory.size=0"], "method.memory.size=0: must be a whole number >= 1, or null"),
    (["method=replay", "method.memory.per_class=5"], "method.memory: set exactly one of size (2000) and per_class (5)"),
    (["method=replay", "method.memory=null"], "method.memory=null: method=replay needs a memory"),
    (["method=icarl", "method.memory.selection=best"], "method.memory.selection=best: must be one of herding|random"),
    (["method.later_tasks.epochs=0"], "method.later_tasks.epochs=0: must be a whole number >= 1"),
    (["method=meta_sc", "scenario=fewshot", "method.later_tasks.epochs=0"],
     "method.later_tasks.epochs=0: must be a whole number >= 1 (0 epochs would score an "
     "untrained model; MetaSC fits no stage in closed form)"),
    (["method=pan", "scenario=fewshot", "method.meta.stage.epochs=0"],
     "method.meta.stage.epochs=0: must be a whole number >= 1 (0 epochs would score an untrained "
     "model; PAN fits only later_tasks in closed form)"),
    (["method.first_task.epochs=2.5"], "method.first_task.epochs=2.5: must be a whole number >= 1"),
    (["method.first_task.optimizer.lr=0"], "method.first_task.optimizer.lr=0: must be a number > 0"),
    (["method.later_tasks.optimizer.lr=-0.1"], "method.later_tasks.optimizer.lr=-0.1: must be a number > 0"),
    (["method.first_task.optimizer.weight_decay=-1"], "weight_decay=-1: must be a number >= 0"),
    (["method.first_task.optimizer.momentum=1"], "momentum=1: must be a number in [0, 1)"),
    (["method.first_task.optimizer.nesterov=true", "method.first_task.optimizer.momentum=0"],
     "method.first_task.optimizer.nesterov=true: needs method.first_task.optimizer.momentum > 0"),
    (["optimizer@method.first_task.optimizer=adam", "method.first_task.optimizer.betas=[0.9,1.5]"],
     "method.first_task.optimizer.betas=[0.9,1.5]: must be two numbers in [0, 1)"),
    (["method.first_task.scheduler.kind=step"], "method.first_task.scheduler.kind=step: must be one of multistep|cosine|onecycle|constant"),
    (["method.first_task.scheduler.milestones=[60,-1]"], "milestones=[60,-1]: must be a list of whole numbers >= 0"),
    (["method.first_task.scheduler.gamma=0"], "method.first_task.scheduler.gamma=0: must be a number > 0"),
    (["method.first_task.scheduler.warmup_epochs=500"], "warmup_epochs=500: must be a whole number in 0..200"),
    (["method=lwf", "method.T=0"], "method.T=0: must be a number > 0"),
    (["method=lwf", "method.lamda=-3"], "method.lamda=-3: must be a number >= 0"),
    (["method=ewc", "method.fisher_mode=test"], "method.fisher_mode=test: must be one of train|eval"),
    (["method.batch_size=0"], "method.batch_size=0: must be a whole number >= 1"),
    (["scenario.init_cls=0"], "scenario.init_cls=0: must be a whole number >= 1"),
    (["scenario.increment=-2"], "scenario.increment=-2: must be a whole number >= 1"),
    (["scenario.class_order=[1,1,2]"], "scenario.class_order=[1,1,2]: must be a list of whole numbers >= 0, without repeats"),
    (["scenario=fewshot", "method=prototype", "scenario.shots=0"], "scenario.shots=0: must be a whole number >= 1"),
    (["scenario=fewshot", "method=prototype", "scenario.ways=0"], "scenario.ways=0: must be a whole number >= 1"),
    (["scenario=fewshot", "method=prototype", "scenario.trials=0"], "scenario.trials=0: must be a whole number >= 1"),
    (["scenario=fewshot", "method=prototype", "scenario.sessions=0"], "scenario.sessions=0: must be a whole number >= 1, or null"),
    (["seed=abc"], "seed=abc: must be a whole number in 0..4294967295"),
    (["data.cache=disk"], "data.cache=disk: must be one of features|waveform"),
    (["data.num_workers=-1"], "data.num_workers=-1: must be a whole number >= 0"),
    (["data.verify_cache=always"], "data.verify_cache=always: must be one of off|quick|full"),
    (["trainer.limit_train_batches=0"], "trainer.limit_train_batches=0: must be a whole number >= 1, or a number in (0, 1]"),
    (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps=0: must be a whole number >= 1"),
    (["dataset.frontend.f_max=9000"], "dataset.frontend.f_max=9000: must be a number <= 8000"),
    (["dataset.frontend.n_mels=0"], "dataset.frontend.n_mels=0: must be a whole number >= 1"),
    (["dataset.on_bad_file=ignore"], "dataset.on_bad_file=ignore: must be one of error|skip"),
    (["backbone.dropout=1.5"], "backbone.dropout=1.5: must be a number in [0, 1)"),
    (["method=joint", "scenario=fewshot"], "method Joint does not support scenario=fewshot (it supports: standard)"),
]


@pytest.mark.parametrize("overrides, message", RANGES, ids=[" ".join(o) for o, _ in RANGES])
def test_every_out_of_range_value_is_named_with_what_is_allowed(overrides, message, capsys,
                                                                monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, err = cli(["check", *overrides], capsys, monkeypatch)
    assert_user_error(code, err, message)
    assert list(tmp_path.iterdir()) == []  # a dry check writes nothing


@pytest.mark.parametrize("overrides", [["method=prototype", "scenario=fewshot"],
                                       ["method=pan", "scenario=fewshot"],
                                       ["method=replay", "method.memory.size=null",
                                        "method.memory.per_class=20"]])
def test_declared_closed_form_stages_and_right_values_pass(overrides, capsys, monkeypatch, tmp_path):
    """The few-shot prototype methods' ``later_tasks.epochs: 0`` is a closed-form fit."""
    monkeypatch.chdir(tmp_path)
    code, err = cli(["check", *overrides], capsys, monkeypatch)
    assert code == 0, err


def test_a_misspelt_key_is_a_user_error_too(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, err = cli(["method.first_task.optimizer.lrr=0.1"], capsys, monkeypatch)
    assert_user_error(code, err, "method.first_task.optimizer.lrr")
    assert list(tmp_path.iterdir()) == []  # Hydra refused it before making a directory


def test_a_memory_smaller_than_the_classes_stops_before_the_cache(earlier, tmp_path, capsys,
                                                                   monkeypatch):
    _, _, before = earlier
    code, err = cli([*TINY, *base(earlier, tmp_path), "method=replay", "method.memory.size=5"],
                    capsys, monkeypatch)
    assert_user_error(code, err, "method.memory.size=5: must be >= 8, the number of classes")
    assert rundir.status(tmp_path / "run") == "failed"
    assert unchanged(before)


# ---- audio files -----------------------------------------------------------------------------
def folder_with(root: Path, bad: str | None, name: str = "x_bad.wav") -> Path:
    """A folder dataset of 4 classes x 4 good clips, and one bad file in class c0."""
    for c in range(4):
        for k in range(4):
            F.write_tone(root / f"c{c}" / f"{k}.wav", 16000, 0.3, 200.0 + 150 * c)
    if bad == "random":
        (root / "c0" / name).write_bytes(os.urandom(4096))
    elif bad == "header_only":
        F.write_tone(root / "c0" / name, 16000, 0.0)
    elif bad is not None:
        F.write_bad(root / "c0" / name, bad)
    return root / "c0" / name


def folder_run(earlier, tmp_path, data: Path, *extra: str) -> list[str]:
    return [*base(earlier, tmp_path), "dataset=folder", f"dataset.root={data}", "scenario.init_cls=2",
            "scenario.increment=2", *SMALL, *extra]


BAD_AUDIO = {  # kind of broken file -> what the message says about it
    "random": "it is not a readable audio file: its bytes are not audio",
    "garbage": "it is not a readable audio file",
    "empty": "the file is empty (0 bytes)",
    "truncated_data": "it is truncated: the WAV header declares",
    "truncated_header": "bad audio file",
    "nan_samples": "it contains NaN or infinite sample values",
    "rate_zero": "declares a sample rate of 0 Hz",
    "rate_absurd": "its sample rate is 3 Hz, outside the plausible range",
    "header_only": "holds no audio samples",
}


@pytest.mark.parametrize("kind", sorted(BAD_AUDIO))
def test_a_bad_audio_file_is_named_with_what_is_wrong(kind, earlier, tmp_path, capsys, monkeypatch):
    _, _, before = earlier
    path = folder_with(tmp_path / "data", kind)
    code, err = cli(folder_run(earlier, tmp_path, tmp_path / "data"), capsys, monkeypatch)
    block = assert_user_error(code, err, f"bad audio file {path}", BAD_AUDIO[kind],
                              "dataset.on_bad_file=skip")
    assert block.startswith("audiocil: data error: bad audio file")
    assert rundir.status(tmp_path / "run") == "failed"
    assert unchanged(before)


def test_skip_counts_the_bad_files_and_finishes(earlier, tmp_path, capsys, monkeypatch):
    folder_with(tmp_path / "data", "random")
    code, err = cli(folder_run(earlier, tmp_path, tmp_path / "data", "dataset.on_bad_file=skip"),
                    capsys, monkeypatch)
    assert code == 0, err[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert sum(results["skipped_files"].values()) == 1  # the one bad file, counted
    assert rundir.status(tmp_path / "run") == "run"


@pytest.mark.parametrize("kind", ["stereo", "other_rate", "too_short"])
def test_usable_odd_files_are_read(kind, tmp_path):
    """Stereo is mixed down, another rate is resampled, a short clip is padded: not errors."""
    from audiocil.data.audio_io import load_clip

    path = tmp_path / f"{kind}.wav"
    sr, seconds, channels = {"stereo": (16000, 0.5, 2), "other_rate": (44100, 0.5, 1),
                             "too_short": (16000, 0.01, 1)}[kind]
    F.write_tone(path, sr, seconds, channels=channels)
    wave = load_clip(str(path), 16000, 16000)
    assert wave.shape == (16000,) and np.isfinite(wave).all()
    if kind == "too_short":
        assert not wave[200:].any()  # zero padding after the 160 samples


def test_a_missing_file_is_named_or_counted_when_skipped(earlier, tmp_path, capsys, monkeypatch):
    _, _, before = earlier
    facts = F.make_nsynth(tmp_path / "nsynth")
    gone = next((tmp_path / "nsynth").rglob("*.wav"))
    gone.unlink()
    args = [*base(earlier, tmp_path), "dataset=nsynth100", f"dataset.root={facts['root']}",
            "scenario.init_cls=2", "scenario.increment=2", *SMALL]
    code, err = cli(args, capsys, monkeypatch)
    assert_user_error(code, err, "1 of", str(gone), "dataset.on_bad_file=skip")
    assert "\\n" not in err  # the list prints as lines, not as one repr
    assert unchanged(before)
    shutil.rmtree(tmp_path / "run")
    code, err = cli([*args, "dataset.on_bad_file=skip"], capsys, monkeypatch)
    assert code == 0, err[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert sum(results["skipped_missing"].values()) == 1


def test_a_missing_root_prints_the_layout_as_lines(earlier, tmp_path, capsys, monkeypatch):
    _, _, before = earlier
    code, err = cli([*base(earlier, tmp_path), "dataset=nsynth100",
                     f"dataset.root={tmp_path / 'nowhere'}"], capsys, monkeypatch)
    block = assert_user_error(code, err, f"directory {tmp_path / 'nowhere'} not found",
                              "Expected layout:", "point dataset.root at it")
    assert "\\n" not in block and len(block.splitlines()) > 5
    assert unchanged(before)


# ---- the feature cache -------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["corrupt-in-place", "truncated"])
def test_a_damaged_cache_entry_is_reported_and_rebuilt(damage, tmp_path, capsys, monkeypatch):
    args = [*TINY, *FAST, f"paths.root_dir={tmp_path}"]
    code, err = cli([*args, f"hydra.run.dir={tmp_path / 'first'}"], capsys, monkeypatch)
    assert code == 0, err[-3000:]
    first = json.loads((tmp_path / "first" / "results.json").read_text())
    kept = snapshot(tmp_path / "first")
    data = sorted((tmp_path / "outputs" / "cache").glob("*-train-*/data.npy"))[0]
    raw = bytearray(data.read_bytes())
    if damage == "truncated":
        data.write_bytes(bytes(raw[: len(raw) // 2]))
    else:
        raw[len(raw) // 2: len(raw) // 2 + 64] = os.urandom(64)
        data.write_bytes(bytes(raw))
    code, err = cli([*args, f"hydra.run.dir={tmp_path / 'second'}"], capsys, monkeypatch)
    assert code == 0, err[-3000:]
    log = (tmp_path / "second" / "audiocil.log").read_text()
    assert f"feature cache entry {data.parent} is corrupt" in log and "rebuilding it" in log
    second = json.loads((tmp_path / "second" / "results.json").read_text())
    assert second["accuracy_matrix"] == first["accuracy_matrix"]  # rebuilt to the same features
    assert unchanged(kept)


# ---- resume targets and run directories ----------------------------------------------------------
def test_resume_of_a_missing_directory_creates_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = cli([f"resume={tmp_path / 'nope'}"], capsys, monkeypatch)
    assert_user_error(code, err, f"resume={tmp_path / 'nope'}: no such directory")
    assert list(tmp_path.iterdir()) == []


def test_resume_of_a_failed_run_is_refused_with_its_reason(earlier, tmp_path, capsys, monkeypatch):
    code, _ = cli([*TINY, *base(earlier, tmp_path), "seed=-1"], capsys, monkeypatch)
    assert code == EXIT_USER_ERROR
    before = snapshot(tmp_path / "run")
    code, err = cli([f"resume={tmp_path / 'run'}"], capsys, monkeypatch)
    assert_user_error(code, err, "that run failed before it finished its first task",
                      "config error: seed=-1")
    assert unchanged(before) and len(snapshot(tmp_path / "run")) == len(before)


def test_resume_of_a_folder_that_is_not_a_run(tmp_path, capsys, monkeypatch):
    (tmp_path / "notes").mkdir()
    code, err = cli([f"resume={tmp_path / 'notes'}"], capsys, monkeypatch)
    assert_user_error(code, err, "no config.yaml there, so it is not a run directory")
    assert list((tmp_path / "notes").iterdir()) == []


def test_resume_with_a_corrupt_checkpoint_loses_nothing(earlier, tmp_path, capsys, monkeypatch):
    _, run_dir, _ = earlier
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    ckpt = sorted((copy / "checkpoints").glob("task_*.pt"))[-1]
    ckpt.write_bytes(b"not a checkpoint at all")
    before = snapshot(copy)
    code, err = cli([f"resume={copy}"], capsys, monkeypatch)
    assert_user_error(code, err, f"refusing to load {ckpt}")
    assert unchanged(before) and rundir.status(copy) == "run"


def test_a_new_run_into_an_existing_run_directory_is_refused(earlier, capsys, monkeypatch):
    root, run_dir, before = earlier
    code, err = cli([*TINY, *FAST, f"paths.root_dir={root}", f"hydra.run.dir={run_dir}",
                     "seed=7"], capsys, monkeypatch)
    assert_user_error(code, err, f"hydra.run.dir={run_dir} already holds a run (config.yaml)",
                      f"resume={run_dir}")
    assert unchanged(before)


# ---- the real command line -------------------------------------------------------------------------
def test_the_command_line_prints_one_block_and_exits_2(tmp_path):
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    out = subprocess.run([sys.executable, "-m", "audiocil", "method=replay", "method.memory.size=-5",
                          f"paths.root_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}"],
                         env=env, capture_output=True, text=True)
    assert out.returncode == EXIT_USER_ERROR
    assert out.stderr.strip().splitlines()[-3:] == [
        "audiocil: config error: method.memory.size=-5: must be a whole number >= 1, or null (the "
        "exemplars kept for all classes together; null when method.memory.per_class is set)",
        f"run directory {tmp_path / 'run'}: marked failed (FAILED); nothing to resume",
        "(AUDIOCIL_TRACEBACK=1 shows the traceback)"]
    out = subprocess.run([sys.executable, "-m", "audiocil", "check", "seed=-1"],
                         env=dict(env, AUDIOCIL_TRACEBACK="1"), capture_output=True, text=True)
    assert out.returncode == EXIT_USER_ERROR
    assert "Traceback" in out.stderr and out.stderr.rstrip().endswith(
        "seed=-1: must be a whole number in 0..4294967295")


def test_a_programming_error_keeps_its_traceback():
    code = ("import sys; sys.argv = ['audiocil', 'check']; import audiocil.config as c; "
            "c.validate_run = lambda cfg: 1 / 0; from audiocil.__main__ import main; main()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 1
    assert "Traceback" in out.stderr and "ZeroDivisionError" in out.stderr
    assert "audiocil: " not in out.stderr
