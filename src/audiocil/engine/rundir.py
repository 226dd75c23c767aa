"""What a run directory holds, and what may be done with it.

A directory is a run once it holds ``config.yaml`` (written when the run starts, after its
config was validated). Two marker files say how a run that did not finish ended:

* ``FAILED``: the run stopped before it finished its first task (a config, data, audio or
  programming error, or an interruption before any checkpoint). The file holds the error.
  Nothing in the directory can be resumed: ``resume=`` refuses it, and a report should list
  it as failed. Start a new run once the cause is fixed.
* ``PREEMPTED``: the run was stopped by a signal (SIGTERM, SIGUSR1, SIGUSR2) after its
  checkpoints were written (see :mod:`audiocil.engine.preemption`). ``resume=<dir>``
  continues it; so does the same command again (a requeued cluster job), as long as its
  config is the same. The marker is removed when the run continues.

A run that fails after its first task keeps its checkpoints and is resumed as usual.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from audiocil.errors import ConfigError, ResumeError, find_user_error

FAILED = "FAILED"
PREEMPTED = "PREEMPTED"
CONFIG = "config.yaml"


def status(run_dir: str | Path) -> str:
    """``failed`` (``FAILED``), ``preempted`` (``PREEMPTED``), ``run`` (a run that finished or
    may be resumed: its results.json says how far it got) or ``none`` (not a run)."""
    run_dir = Path(run_dir)
    if (run_dir / FAILED).exists():
        return "failed"
    if not (run_dir / CONFIG).is_file():
        return "none"
    return "preempted" if (run_dir / PREEMPTED).exists() else "run"


def failure_reason(run_dir: Path) -> str:
    try:
        return (run_dir / FAILED).read_text().strip().splitlines()[0]
    except (OSError, IndexError):
        return "unknown"


def check_resume_target(path: str | Path) -> Path:
    """The run directory ``resume=`` points at, if it can be resumed; nothing is created.

    Raises:
        ResumeError: no such directory, not a run, or a run that failed before its first task.
    """
    run_dir = Path(path).expanduser()
    if not run_dir.exists():
        raise ResumeError(f"resume={path}: no such directory. Point resume= at the run directory "
                          "of an earlier run (it holds config.yaml, checkpoints/ and results.json), "
                          "e.g. resume=outputs/cil/runs/YYYY-MM-DD_HH-MM-SS")
    if not run_dir.is_dir():
        raise ResumeError(f"resume={path}: this is a file, not a run directory")
    if (run_dir / FAILED).exists():
        raise ResumeError(
            f"resume={path}: that run failed before it finished its first task "
            f"({FAILED}: {failure_reason(run_dir)}), so there is nothing to resume. Fix the cause "
            "and start a new run (without resume=).")
    if not (run_dir / CONFIG).is_file():
        raise ResumeError(f"resume={path}: no config.yaml there, so it is not a run directory. "
                          "Point resume= at the run directory of an earlier run (it holds "
                          "config.yaml, checkpoints/ and results.json).")
    return run_dir


def continues_preempted(run_dir: Path, config: dict) -> bool:
    """Whether a fresh invocation may use ``run_dir``: True if it holds a preempted run of the
    same config (a requeued job: continue it), False if it holds no run.

    Raises:
        ConfigError: ``run_dir`` holds another run (its files would be overwritten).
    """
    from omegaconf import OmegaConf

    if (run_dir / FAILED).exists():
        raise ConfigError(f"hydra.run.dir={run_dir} holds a run that failed ({FAILED}: "
                          f"{failure_reason(run_dir)}); choose another directory or delete it")
    if not (run_dir / CONFIG).is_file():
        return False
    if (run_dir / PREEMPTED).exists() or requeued():
        saved = OmegaConf.to_container(OmegaConf.load(run_dir / CONFIG))
        if _comparable(saved) == _comparable(config):
            return True
        raise ConfigError(f"hydra.run.dir={run_dir} holds a preempted run of another config; "
                          f"continue it with resume={run_dir}, or choose another directory")
    raise ConfigError(f"hydra.run.dir={run_dir} already holds a run (config.yaml); continue it "
                      f"with resume={run_dir}, or choose another directory")


def requeued() -> bool:
    """Whether this process is a cluster job run again after a preemption or a requeue (it
    may have been killed before it could write ``PREEMPTED``)."""
    return os.environ.get("SLURM_RESTART_COUNT", "0") not in ("", "0") or bool(
        os.environ.get("SUBMITIT_EXECUTOR"))


def _comparable(config) -> dict:
    out = dict(config) if isinstance(config, dict) else {}
    out.pop("resume", None)
    return out


def has_progress(run_dir: Path) -> bool:
    """Whether the run saved anything to continue from (a task, stage or epoch checkpoint)."""
    ckpt = run_dir / "checkpoints"
    return ckpt.is_dir() and any(p.is_file() and p.suffix in (".pt", ".ckpt") for p in ckpt.rglob("*"))


def mark_failed(run_dir: Path, err: BaseException) -> Path:
    """Write ``FAILED`` with the error (first line: what happened)."""
    user = find_user_error(err)
    shown = user or err
    kind = user.kind if user is not None else type(err).__name__
    text = (f"{kind}: {str(shown).strip().splitlines()[0] if str(shown).strip() else type(err).__name__}\n"
            f"\n{str(shown).strip()}\n\nfailed at {time.strftime('%Y-%m-%d %H:%M:%S')} before the "
            "first task finished; nothing here can be resumed. Fix the cause and start a new run.\n")
    path = run_dir / FAILED
    with contextlib.suppress(OSError):
        path.write_text(text)
    return path


def mark_preempted(run_dir: Path, text: str) -> None:
    with contextlib.suppress(OSError):
        (run_dir / PREEMPTED).write_text(text.rstrip() + "\n")


def clear_preempted(run_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (run_dir / PREEMPTED).unlink(missing_ok=True)


@contextlib.contextmanager
def failure_marked(run_dir: Path, mark: Callable[[], bool]):
    """Write ``FAILED`` in ``run_dir`` when the block stops by an error and ``mark()`` says
    the directory holds nothing to continue from (a preemption or a requeue's exit is not a
    failure: see :mod:`audiocil.engine.preemption`)."""
    try:
        yield
    except SystemExit:
        raise
    except BaseException as err:
        if mark():
            path = mark_failed(run_dir, err)
            note = f"run directory {run_dir}: marked failed ({path.name}); nothing to resume"
            target = find_user_error(err)
            if target is not None:
                target.notes = [*target.notes, note]
            elif hasattr(err, "add_note"):  # Python >= 3.11: printed with the traceback
                err.add_note(note)
        raise
