"""Preemption: a cluster stops a job with a signal some time before it kills it.

While a run is going, SIGTERM, SIGUSR1 and SIGUSR2 do not kill it. The first one is noted
and the run stops at its next checkpoint: the end of the current epoch (right after the
epoch checkpoint ``checkpoints/task_<t>/last.ckpt`` is written), or the boundary of a stage
or task when no epoch is running. The run then writes ``PREEMPTED`` in its directory and
exits with ``128 + signal number`` (143 for SIGTERM, 138 for SIGUSR1, 140 for SIGUSR2).
A second signal stops it at once; the run then continues from its last full epoch, as after
a ``kill -9``.

Continuing is exact: an epoch checkpoint holds the model, optimizer, schedule and loop state,
and every batch is drawn and augmented from (seed, task, stage, epoch, batch), so the
resumed run repeats what the uninterrupted run would have done. It continues with
``resume=<run_dir>``, or by itself when the same command runs again in the same directory:
a requeued job (see :func:`audiocil.engine.rundir.continues_preempted`).

Requeueing:

* under the submitit launcher (``hydra/launcher=submitit_slurm``), submitit's own handler of
  its preemption signal (``SUBMITIT_PREEMPT_SIGNAL``, default USR2: ``signal_delay_s``
  before the time limit) is called at the checkpoint instead of at the signal: it requeues
  the same job, which continues the run;
* under plain SLURM (``#SBATCH --signal=B:USR1@120``, the convention of Lightning's SLURM
  plugin), SIGUSR1 requeues the job with ``scontrol requeue $SLURM_JOB_ID``; for SIGTERM
  (a preemption) SLURM requeues it itself when the partition says so. The batch script must
  run the same command in the same directory: pin ``hydra.run.dir``.

Under DDP every rank gets the signal (SLURM signals every task, Lightning forwards SIGTERM
to the processes it started); the ranks agree at each checkpoint on whether to stop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SIGNALS = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGUSR1", None),
                            getattr(signal, "SIGUSR2", None)) if s is not None)


class Preempted(BaseException):
    """The run stopped at a checkpoint because a preemption signal arrived.

    A BaseException, like KeyboardInterrupt: no ``except Exception`` on the way up (a bad
    file skipped, a cache build retried) may take it for an ordinary error.
    """

    def __init__(self, signum: int, where: str) -> None:
        self.signum, self.where = int(signum), where
        super().__init__(f"{signal.Signals(signum).name} {where}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class Preemption:
    """The signal handlers of one run (installed by :func:`guard`)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, object] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in SIGNALS:
            self.previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self.handle)

    def uninstall(self) -> None:
        """Put back the handlers found at :meth:`install` (kept in ``previous``)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, prev in self.previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, prev)  # type: ignore[arg-type]

    def handle(self, signum: int, frame) -> None:
        if self.signum is not None:
            raise Preempted(signum, "(a second signal: stopped at once)")
        self.signum = signum
        log.warning("received %s: the run stops at its next checkpoint (the end of this epoch, "
                    "stage or task) and can then be resumed; send it again to stop at once",
                    signal.Signals(signum).name)


_current: Preemption | None = None


def requested() -> bool:
    """Whether a preemption signal arrived (on this process)."""
    return _current is not None and _current.signum is not None


def _any_rank(flag: bool) -> bool:
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return flag
    device = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
    t = torch.tensor([1 if flag else 0], device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item())


def pending() -> bool:
    """Whether any rank got a preemption signal (a collective call under DDP: every rank
    must ask at the same point, as for :func:`check`)."""
    return _current is not None and _any_rank(_current.signum is not None)


def check(where: str) -> None:
    """At a checkpoint: stop here if any rank got a preemption signal.

    Raises:
        Preempted: with the signal and ``where`` the run stopped.
    """
    if _current is None:
        return
    if _any_rank(_current.signum is not None):
        raise Preempted(_current.signum or signal.SIGTERM, where)


@contextlib.contextmanager
def guard(run_dir: Path, is_rank_zero: bool = True):
    """Handle preemption signals for the length of a run in ``run_dir``: on a stop, write
    ``PREEMPTED``, requeue where a scheduler asks for it, and exit with ``128 + signal``."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from audiocil.engine import rundir

    global _current
    outer, _current = _current, Preemption()
    preemption = _current
    preemption.install()
    try:
        yield preemption
    except (Preempted, SIGTERMException) as err:
        stop = err if isinstance(err, Preempted) else Preempted(
            preemption.signum or signal.SIGTERM,
            "(Lightning's own SIGTERM check stopped its loop; the run continues from its last "
            "epoch checkpoint)")
        name = signal.Signals(stop.signum).name
        text = (f"stopped by {name} {stop.where}; continue with: python -m audiocil "
                f"resume={run_dir}  (or the same command again in the same directory)")
        if is_rank_zero:
            rundir.mark_preempted(run_dir, text)
        log.warning("%s", text)
        print(f"audiocil: preempted: {text}", file=sys.stderr, flush=True)
        preemption.uninstall()
        if is_rank_zero:
            _requeue(stop.signum, preemption.previous.get(stop.signum))
        raise SystemExit(stop.exit_code) from None
    finally:
        preemption.uninstall()
        _current = outer


def _requeue(signum: int, previous) -> None:
    """Requeue the job if a scheduler asked for it with this signal."""
    if os.environ.get("SUBMITIT_EXECUTOR") and callable(previous):
        # submitit's handler: checkpoint the job (the same call again), requeue, exit
        log.info("handing %s to submitit (checkpoint and requeue)", signal.Signals(signum).name)
        previous(signum, None)
        return
    job = os.environ.get("SLURM_JOB_ID")
    if job and signum == getattr(signal, "SIGUSR1", None) and not os.environ.get("SUBMITIT_EXECUTOR"):
        array = os.environ.get("SLURM_ARRAY_JOB_ID")
        if array:
            job = f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
        try:
            done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
        except OSError as err:
            log.warning("could not requeue SLURM job %s: %s", job, err)
            return
        if done.returncode == 0:
            log.info("requeued SLURM job %s", job)
        else:
            log.warning("scontrol requeue %s failed: %s", job, done.stderr.strip())
