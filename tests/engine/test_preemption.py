"""The preemption handlers and the run-directory rules, without training (the signal sent to a
real run, then resumed, is in test_resume.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from audiocil.engine import preemption, rundir
from audiocil.errors import ConfigError, ResumeError


def test_a_signal_is_noted_and_the_run_stops_at_its_next_checkpoint(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stop, preemption.guard(tmp_path):
        preemption.check("before task 0")  # nothing yet
        os.kill(os.getpid(), signal.SIGTERM)  # the handler notes it, the run goes on
        assert preemption.requested()
        preemption.check("before task 1")
        pytest.fail("check() should have stopped the run")
    assert stop.value.code == 128 + signal.SIGTERM
    assert "stopped by SIGTERM before task 1" in (tmp_path / "PREEMPTED").read_text()
    assert signal.getsignal(signal.SIGTERM) == before  # the handlers are put back
    assert not preemption.requested()
    preemption.check("outside a run")  # no guard: nothing happens


def test_a_second_signal_stops_at_once(tmp_path):
    with pytest.raises(SystemExit) as stop, preemption.guard(tmp_path):
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR1)
        pytest.fail("the second signal should have stopped the run")
    assert stop.value.code == 128 + signal.SIGUSR1
    assert "second signal" in (tmp_path / "PREEMPTED").read_text()


def test_sigusr1_under_slurm_requeues_the_job(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'called'}\n")
    (bin_dir / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    with pytest.raises(SystemExit), preemption.guard(tmp_path / "run"):
        (tmp_path / "run").mkdir()
        os.kill(os.getpid(), signal.SIGUSR1)
        preemption.check("at the end of epoch 3")
    assert (tmp_path / "called").read_text().split() == ["requeue", "4242"]


def test_under_submitit_its_own_handler_runs_at_the_checkpoint(tmp_path, monkeypatch):
    calls = []

    def submitit_handler(signum, frame):  # checkpoint the job, requeue it, exit
        calls.append(signum)
        raise SystemExit(-1)

    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    previous = signal.signal(signal.SIGUSR2, submitit_handler)
    try:
        with pytest.raises(SystemExit) as stop, preemption.guard(tmp_path):
            os.kill(os.getpid(), signal.SIGUSR2)
            assert calls == []  # not at the signal: the epoch is finished first
            preemption.check("at the end of epoch 1")
        assert calls == [signal.SIGUSR2] and stop.value.code == -1
        assert (tmp_path / "PREEMPTED").exists()
    finally:
        signal.signal(signal.SIGUSR2, previous)


def _run(tmp_path: Path, config: dict, *markers: str) -> Path:
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(config))
    for m in markers:
        (tmp_path / m).write_text("x\n")
    return tmp_path


def test_a_preempted_run_of_the_same_config_is_continued_another_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    assert not rundir.continues_preempted(tmp_path, {"seed": 1})  # empty: a new run
    run = _run(tmp_path, {"seed": 1, "resume": None}, rundir.PREEMPTED)
    assert rundir.continues_preempted(run, {"seed": 1, "resume": None})
    with pytest.raises(ConfigError, match="a preempted run of another config"):
        rundir.continues_preempted(run, {"seed": 2, "resume": None})
    (run / rundir.PREEMPTED).unlink()
    with pytest.raises(ConfigError, match="already holds a run"):
        rundir.continues_preempted(run, {"seed": 1, "resume": None})
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # a requeued job killed before PREEMPTED
    assert rundir.continues_preempted(run, {"seed": 1, "resume": None})


def test_resume_targets(tmp_path):
    with pytest.raises(ResumeError, match="no such directory"):
        rundir.check_resume_target(tmp_path / "nope")
    assert not (tmp_path / "nope").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(ResumeError, match="a file, not a run directory"):
        rundir.check_resume_target(tmp_path / "file")
    (tmp_path / "run").mkdir()
    run = _run(tmp_path / "run", {"seed": 1})
    assert rundir.check_resume_target(run) == run and rundir.status(run) == "run"
    rundir.mark_failed(run, ConfigError("seed=-1: must be a whole number in 0..4294967295"))
    assert rundir.status(run) == "failed"
    with pytest.raises(ResumeError, match=r"failed before .*config error: seed=-1"):
        rundir.check_resume_target(run)


def test_failure_marking_spares_runs_with_checkpoints_and_preemptions(tmp_path):
    (tmp_path / "checkpoints").mkdir()

    def fails(err):
        with rundir.failure_marked(tmp_path, lambda: not rundir.has_progress(tmp_path)):
            raise err

    with pytest.raises(SystemExit):  # a preemption's exit, or submitit's requeue
        fails(SystemExit(143))
    assert not (tmp_path / rundir.FAILED).exists()
    with pytest.raises(RuntimeError):
        fails(RuntimeError("a bug"))
    assert "RuntimeError: a bug" in (tmp_path / rundir.FAILED).read_text()
    (tmp_path / rundir.FAILED).unlink()
    (tmp_path / "checkpoints" / "task_0.pt").write_bytes(b"")
    with pytest.raises(RuntimeError):
        fails(RuntimeError("after a task"))
    assert not (tmp_path / rundir.FAILED).exists()  # resumable: not marked
