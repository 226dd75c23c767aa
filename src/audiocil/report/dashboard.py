"""Dashboards: each task's figures in W&B and TensorBoard, with the task as the step axis.

:func:`build_logger` makes the configured Lightning logger; a W&B run is grouped by its
sweep (every job of a multirun shares the group ``sweep-<sweep dir name>``; a single run is
its own group) and tagged with its method, dataset and scenario, unless
``logger.group`` / ``logger.tags`` say otherwise. :class:`Dashboard` is called by the task
sequencer after each task's results are written; from the record's long-format rows (so
any scenario) it logs under ``cil/``:

* every per-step figure of the task's step, per classifier: ``cil/<classifier>/<metric>``
  (accuracy, old/new accuracy, forgetting, validation accuracy; few-shot: base/novel
  accuracy and HM of the session; multi-label: macro/micro-F1, mAP, forgetting) and
  ``cil/n_classes`` (classes seen);
* every run-level figure so far (``cil/cnn/avg_incremental_accuracy``, ...), the cost of
  the task (``cil/cost/<figure>``), and ``task`` (the x axis), ``trial``, ``session``;
* every matrix (accuracy, F1, mAP) as a table (W&B ``Table``; TensorBoard text) and as an
  image.

W&B keeps its step axis for training (``trainer/global_step``, Lightning's); the ``cil/``
figures are plotted against ``task`` (``define_metric``). TensorBoard gets the same scalars
and images with ``global_step`` = task index.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig

log = logging.getLogger(__name__)
PREFIX = "cil"


def sweep_group(run_dir: Path) -> str:
    """``sweep-<name of the sweep directory>`` in a Hydra multirun, else the run's name."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        if str(hc.mode) == "RunMode.MULTIRUN":
            return f"sweep-{Path(str(hc.sweep.dir)).name}"
    except (ValueError, ImportError):  # no Hydra app: a script or a test called run()
        pass
    return Path(run_dir).name


def build_logger(cfg: DictConfig, run_dir: Path):
    """The configured Lightning logger in ``run_dir`` (False without one)."""
    from hydra.utils import instantiate

    node = cfg.logger
    if not node:
        return False
    extra: dict = {}
    if str(node.get("_target_", "")).endswith("WandbLogger"):
        if node.get("group", None) is None:
            extra["group"] = sweep_group(run_dir)
        if node.get("tags", None) is None:
            extra["tags"] = [str(cfg.method.name), str(cfg.dataset.name), str(cfg.scenario.name)]
        os.environ.setdefault("WANDB_SILENT", "true")
    return instantiate(node, save_dir=str(run_dir), **extra)


class Dashboard:
    """Logs each finished task's figures to the W&B and TensorBoard loggers among ``logger``.

    Args:
        logger: a Lightning logger, a list of them, or False; others than W&B and
            TensorBoard are left alone (the CSV logger has the results files already).
    """

    def __init__(self, logger) -> None:
        loggers = logger if isinstance(logger, (list, tuple)) else [logger] if logger else []
        self.wandb = [lg for lg in loggers if type(lg).__name__ == "WandbLogger"]
        self.tensorboard = [lg for lg in loggers if type(lg).__name__ == "TensorBoardLogger"]
        self._defined = False

    @property
    def active(self) -> bool:
        return bool(self.wandb or self.tensorboard)

    # ---- what a task gives ---------------------------------------------------------------
    @staticmethod
    def figures(record, task) -> tuple[dict[str, float], dict[str, list[list[float | None]]]]:
        """Scalars and matrices of ``task`` from the record's long rows."""
        fewshot = hasattr(task, "session")  # rows of the task's trial only
        trial, step = getattr(task, "trial", None), getattr(task, "session", task.index)
        scalars: dict[str, float] = {"task": float(task.index)}
        if fewshot:
            scalars.update(trial=float(trial or 0), session=float(step))
        matrices: dict[str, dict[tuple[int, int], float]] = {}
        for r in record.long_rows():
            if fewshot and r["trial"] != trial:
                continue
            who = r["classifier"] or "cost"
            if "[" in r["metric"]:  # a matrix cell
                if r["step"] is not None and r["step"] <= step:
                    name, j = r["metric"].split("[")
                    matrices.setdefault(f"{who}/{name}", {})[(r["step"], int(j[:-1]))] = r["value"]
            elif r["step"] is None or r["step"] == step:
                name = r["metric"] if r["metric"] == "n_classes" else f"{who}/{r['metric']}"
                scalars[name] = r["value"]
        out = {}
        for name, cells in matrices.items():
            T, J = max(t for t, _ in cells) + 1, max(j for _, j in cells) + 1
            out[name] = [[cells.get((t, j)) for j in range(J)] for t in range(T)]
        return scalars, out

    # ---- logging ---------------------------------------------------------------------------
    def __call__(self, record, task) -> None:
        if not self.active:
            return
        try:
            scalars, matrices = self.figures(record, task)
            images = {k: _image(v, k, task) for k, v in matrices.items()}
            for lg in self.wandb:
                self._log_wandb(lg, scalars, matrices, images)
            for lg in self.tensorboard:
                self._log_tensorboard(lg, scalars, matrices, images, task.index)
        except Exception:  # noqa: BLE001 - a dashboard must not stop a run
            log.exception("could not log task %d to the dashboards", task.index)
        finally:
            import matplotlib.pyplot as plt

            plt.close("all")

    def _log_wandb(self, lg, scalars, matrices, images) -> None:
        import wandb

        exp = lg.experiment
        if not self._defined:
            exp.define_metric(f"{PREFIX}/task")
            exp.define_metric(f"{PREFIX}/*", step_metric=f"{PREFIX}/task")
            self._defined = True
        data: dict = {f"{PREFIX}/{k}": v for k, v in scalars.items()}
        for k, R in matrices.items():
            J = max(len(r) for r in R)
            data[f"{PREFIX}/{k}"] = wandb.Table(
                columns=["after", *(f"{j + 1}" for j in range(J))],
                data=[[t + 1, *row, *[None] * (J - len(row))] for t, row in enumerate(R)])
            data[f"{PREFIX}/{k}_image"] = wandb.Image(images[k])
        exp.log(data)

    def _log_tensorboard(self, lg, scalars, matrices, images, step: int) -> None:
        w = lg.experiment
        for k, v in scalars.items():
            if k != "task":
                w.add_scalar(f"{PREFIX}/{k}", v, step)
        for k, R in matrices.items():
            J = max(len(r) for r in R)
            head = "| after | " + " | ".join(str(j + 1) for j in range(J)) + " |"
            lines = [head, "|---" * (J + 1) + "|"]
            lines += [f"| {t + 1} | " + " | ".join("" if v is None else f"{v:.2f}" for v in row)
                      + " |" for t, row in enumerate(R)]
            w.add_text(f"{PREFIX}/{k}", "\n".join(lines), step)
            w.add_figure(f"{PREFIX}/{k}_image", images[k], step, close=False)
        w.flush()

    def close(self) -> None:
        """Finish the W&B run (writes its summary) and flush TensorBoard."""
        for lg in self.wandb:
            try:
                lg.experiment.finish()
            except Exception:  # noqa: BLE001
                log.exception("could not finish the W&B run")
        for lg in self.tensorboard:
            lg.experiment.flush()


def _image(R, name: str, task):
    import numpy as np

    from audiocil.report.figures import matrix_figure

    J = max(len(r) for r in R)
    A = np.array([[np.nan if v is None else v for v in row] + [np.nan] * (J - len(row))
                  for row in R], dtype=float)
    label = "Macro-F1 (%)" if "f1" in name else "mAP (%)" if "map" in name else "Accuracy (%)"
    step = "phase" if "f1" in name or "map" in name else "task"
    return matrix_figure(A, label, step, f"{name} after task {task.index + 1}")
