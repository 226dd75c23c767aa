"""A run killed with SIGKILL and resumed ends with the same figures as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TINY, epochs

FIGURES = ["accuracy_matrix", "accuracy_per_step", "avg_incremental_accuracy", "last_accuracy",
           "forgetting", "bwt", "nme", "memory_samples", "params_per_task", "class_order", "tasks",
           "val_accuracy_per_step", "val_objective"]


def cli(root: Path, run_dir: Path, *extra: str) -> list[str]:
    overrides = [*TINY, *epochs(4), "method=icarl", "method.memory.size=40",
                 "dataset.loader.n_classes=12", f"paths.root_dir={root}", "trainer.limit_val_batches=0"]
    return [sys.executable, "-m", "audiocil", *overrides, f"hydra.run.dir={run_dir}", *extra]


def env() -> dict:
    e = dict(os.environ, PYTHONUNBUFFERED="1")
    e.pop("AUDIOCIL_RUN_DIR", None)
    return e


def kill_when(cmd: list[str], marker: Path, timeout: float = 300) -> None:
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.time()
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before {marker.name} appeared")
        if time.time() - start > timeout:
            proc.kill()
            pytest.fail(f"{marker} did not appear within {timeout} s")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    run_dir = root / "uninterrupted"
    subprocess.run(cli(root, run_dir), env=env(), check=True, capture_output=True)
    return root, json.loads((run_dir / "results.json").read_text())


@pytest.mark.parametrize("marker", ["checkpoints/task_0.pt", "checkpoints/task_1/last.ckpt"],
                         ids=["after-task", "inside-task"])
def test_resume_after_sigkill_matches_uninterrupted(reference, marker):
    root, expected = reference
    run_dir = root / f"killed-{marker.replace('/', '_')}"
    kill_when(cli(root, run_dir), run_dir / marker)
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()
              and ".hydra" in p.parts}
    out = subprocess.run([sys.executable, "-m", "audiocil", f"resume={run_dir}"], env=env(),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads((run_dir / "results.json").read_text())
    for key in FIGURES:
        assert got[key] == expected[key], key
    # the original Hydra record is untouched; the resume wrote its own beside it
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    assert list(run_dir.glob(".hydra-resume-*"))
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("task_*.pt")) == [
        "task_0.pt", "task_1.pt", "task_2.pt"]


def test_resume_of_a_missing_run_names_the_directory(tmp_path):
    out = subprocess.run([sys.executable, "-m", "audiocil", f"resume={tmp_path / 'nope'}"],
                         env=env(), capture_output=True, text=True)
    assert out.returncode != 0
    assert "nope" in out.stderr and "config.yaml" in out.stderr
