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


def overrides(root: Path) -> list[str]:
    return [*TINY, *epochs(4), "method=icarl", "method.memory.size=40",
            "dataset.loader.n_classes=12", f"paths.root_dir={root}", "trainer.limit_val_batches=0"]


def cli(root: Path, run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "audiocil", *overrides(root), f"hydra.run.dir={run_dir}", *extra]


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
    assert "nope" in out.stderr and "no such directory" in out.stderr
    assert not (tmp_path / "nope").exists()  # refused before Hydra made the directory


# ---- preemption: a signal mid-task, then resume ----------------------------------------------
def signal_when(cmd: list[str], marker: Path, sig: int, timeout: float = 300) -> subprocess.CompletedProcess:
    """Start ``cmd``, send ``sig`` once ``marker`` exists, and wait for the run to stop."""
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start = time.time()
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before {marker.name} appeared")
        if time.time() - start > timeout:
            proc.kill()
            pytest.fail(f"{marker} did not appear within {timeout} s")
        time.sleep(0.05)
    os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_sigterm_mid_task_saves_a_checkpoint_and_resume_matches(reference):
    root, expected = reference
    run_dir = root / "sigterm"
    out = signal_when(cli(root, run_dir), run_dir / "checkpoints/task_1/last.ckpt", signal.SIGTERM)
    assert out.returncode == 128 + signal.SIGTERM, out.stderr[-3000:]
    # at the end of an epoch: ours (after the epoch checkpoint), or Lightning's own SIGTERM
    # check right after it when the signal lands between the two
    assert "audiocil: preempted: stopped by SIGTERM" in out.stderr
    assert "Traceback" not in out.stderr
    assert (run_dir / "PREEMPTED").exists() and not (run_dir / "FAILED").exists()
    assert not (run_dir / "checkpoints" / "task_1.pt").exists()  # it stopped inside task 1
    done = subprocess.run([sys.executable, "-m", "audiocil", f"resume={run_dir}"], env=env(),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads((run_dir / "results.json").read_text())
    for key in FIGURES:
        assert got[key] == expected[key], key
    assert not (run_dir / "PREEMPTED").exists()


def test_sigusr1_then_the_same_command_again_continues_by_itself(reference):
    """A requeued job runs the same command in the same directory: it continues the run."""
    root, expected = reference
    run_dir = root / "sigusr1"
    out = signal_when(cli(root, run_dir), run_dir / "checkpoints/task_0.pt", signal.SIGUSR1)
    assert out.returncode == 128 + signal.SIGUSR1, out.stderr[-3000:]
    assert (run_dir / "PREEMPTED").exists()
    done = subprocess.run(cli(root, run_dir), env=env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads((run_dir / "results.json").read_text())
    for key in FIGURES:
        assert got[key] == expected[key], key


def _descendants(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for c in children:
            out += [c, *_descendants(c)]
    return out


def test_under_the_submitit_launcher_a_preempted_job_is_requeued_and_resumes(reference):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    if not Path("/proc/self/task").is_dir():
        pytest.skip("needs /proc to find the job process")
    root, expected = reference
    sweep = root / "submitit"
    cmd = [sys.executable, "-m", "audiocil", "-m", "hydra/launcher=submitit_local",
           "hydra.launcher.timeout_min=30", *overrides(root), f"hydra.sweep.dir={sweep}"]
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marker, start = sweep / "0" / "checkpoints" / "task_1" / "last.ckpt", time.time()
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() - start < 300, "the job did not reach task 1"
        time.sleep(0.05)
    jobs = [p for p in _descendants(proc.pid)
            if b"submitit.core._submit" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(jobs) == 1
    os.kill(jobs[0], signal.SIGUSR2)  # submitit's preemption signal
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    logs = "".join(p.read_text() for p in sweep.glob(".submitit/*/*_log.out"))
    assert "Requeued job" in logs and "continuing the preempted run" in logs
    got = json.loads((sweep / "0" / "results.json").read_text())
    for key in FIGURES:
        assert got[key] == expected[key], key
