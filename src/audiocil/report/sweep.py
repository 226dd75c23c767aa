"""The Hydra callback that writes a sweep's report into its directory when the sweep ends
(``conf/hydra/default.yaml``: ``hydra.callbacks.sweep_report``).

Each job writes ``job_status.json`` into its own directory as it ends (COMPLETED or FAILED,
the error, its overrides, the value it returned), so a failed job is listed in the report,
not dropped. The report is written when the sweep ends, and also when it stops on a failed
job (Hydra's sweepers raise the first failure after their batch, before
``on_multirun_end``): then from an ``atexit`` handler, as the process exits. Only a process
killed outright (SIGKILL) writes none; ``audiocil report <sweep_dir>`` does it any time.
"""

from __future__ import annotations

import atexit
import json
import logging
import traceback
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from audiocil.report.runs import STATUS_FILE
from audiocil.results.io import atomic_write_text

log = logging.getLogger(__name__)


class SweepReport(Callback):
    """Writes ``<sweep_dir>/report`` when a multirun ends (:func:`write_report`).

    Args:
        enabled: false turns the sweep report off (``hydra.callbacks.sweep_report.enabled``).
        matrices: draw each run's accuracy-matrix heatmap (off for very large sweeps).
    """

    def __init__(self, enabled: bool = True, matrices: bool = True) -> None:
        self.enabled, self.matrices = enabled, matrices
        self.sweep_dir: Path | None = None
        self.done = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        atexit.register(self.write)  # also when a failed job makes the sweeper raise

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        out = Path(str(config.hydra.runtime.output_dir))
        status: dict = {"status": job_return.status.name,
                        "overrides": list(job_return.overrides or [])}
        if job_return.status == JobStatus.FAILED:
            try:
                job_return.return_value  # noqa: B018 - raises the job's exception
            except BaseException as err:  # noqa: BLE001
                status["error"] = f"{type(err).__name__}: {err}"
                status["traceback"] = "".join(traceback.format_exception(err))[-4000:]
        elif job_return.status == JobStatus.COMPLETED:
            value = job_return.return_value
            status["return_value"] = value if isinstance(value, (int, float)) else str(value)
        if out.is_dir():
            atomic_write_text(out / STATUS_FILE, json.dumps(status, indent=1))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.write()

    def write(self) -> None:
        if self.done or self.sweep_dir is None or not self.sweep_dir.is_dir():
            return
        self.done = True
        from audiocil.report.build import write_report  # matplotlib only when it is needed

        try:
            rep = write_report([self.sweep_dir], self.sweep_dir / "report",
                               matrices=self.matrices)
        except Exception:  # noqa: BLE001 - the jobs' results are written; say why, go on
            log.exception("could not write the sweep report; run: audiocil report %s",
                          self.sweep_dir)
            return
        failed = f", {len(rep.problems)} without complete results" if rep.problems else ""
        log.info("sweep report (%d run(s)%s): %s", len(rep.runs), failed, rep.out / "report.md")
        print(f"sweep report: {rep.out / 'report.md'}", flush=True)


