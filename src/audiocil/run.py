"""One experiment: compose the parts from the config, run the task stream, write results."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from audiocil.config import check_against_tasks, validate_run
from audiocil.data.datamodule import CILDataModule
from audiocil.data.frontend import Frontend, LogMel, SpecAugment
from audiocil.engine import checkpoints, preemption, rundir
from audiocil.engine.sequencer import TaskSequencer
from audiocil.errors import ConfigError, ResumeError
from audiocil.progress import StreamProgress
from audiocil.report.dashboard import Dashboard, build_logger
from audiocil.results import atomic_write_text, write_outputs

log = logging.getLogger(__name__)
# Lightning's start-up notices (accelerator probes, tips) drown the per-task progress
for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
              "lightning.pytorch.trainer.connectors.checkpoint_connector",
              "lightning.pytorch.accelerators.cuda"):
    logging.getLogger(_name).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
RUN_DIR_ENV = "AUDIOCIL_RUN_DIR"  # lets DDP worker processes find their run directory


def build_frontend(cfg: DictConfig) -> Frontend:
    fe = cfg.dataset.frontend
    logmel = None
    if cfg.data.cache == "waveform":
        logmel = LogMel(fe.sample_rate, fe.n_fft, fe.hop_length, fe.n_mels, fe.f_min, fe.f_max,
                        fe.log_floor)
    aug = cfg.augment
    spec = SpecAugment(aug.freq_masks, aug.freq_width, aug.time_masks, aug.time_width) \
        if aug.spec_augment else None
    return Frontend(fe.n_mels, logmel, spec)


def build_strategy(cfg: DictConfig, objective=None) -> L.LightningModule:
    """The method's strategy, on the configured backbone and front end, with the scenario's
    objective (built from ``cfg.scenario`` when not given)."""
    if objective is None:
        objective = build_named(cfg.scenario).objective
    backbone = build_named(cfg.backbone)
    strategy = build_named(cfg.method, backbone=backbone, frontend=build_frontend(cfg),
                           seed=cfg.seed, objective=objective)
    data = cfg.get("data") or {}
    if data.get("teacher_outputs", "recompute") == "cache":
        strategy.teacher_memo_mb = float(data.get("teacher_cache_mb", 0))
    return strategy


def load_strategy(cfg: DictConfig, state: dict, objective=None) -> L.LightningModule:
    """A strategy rebuilt from the config and loaded with a checkpoint's state."""
    strategy = build_strategy(cfg, objective)
    checkpoints.restore_strategy(strategy, state["strategy"])
    return strategy


def strategy_from_checkpoint(path: Path) -> L.LightningModule:
    """The strategy saved in a task checkpoint ``<run_dir>/checkpoints/task_<t>.pt``, rebuilt
    from its run's ``config.yaml`` (for notebooks, tests and evaluation scripts)."""
    path = Path(path)
    cfg = OmegaConf.load(path.parent.parent / "config.yaml")
    state = checkpoints.load(path)
    strategy = load_strategy(cfg, state)  # type: ignore[arg-type]
    return strategy


def build_datamodule(cfg: DictConfig, dataset, order) -> CILDataModule:
    """The run's datamodule from ``cfg.data`` and the dataset's front end (not yet prepared)."""
    return CILDataModule(dataset, order, cfg.paths.cache_dir, dict(cfg.dataset.frontend),
                         cache=cfg.data.cache,
                         on_bad_file=cfg.dataset.loader.get("on_bad_file", "error"),
                         num_workers=cfg.data.num_workers, seed=cfg.seed,
                         verify_cache=cfg.data.get("verify_cache", "quick"),
                         eval_per_class=cfg.data.get("eval_clips_per_class"))


def build_named(node: DictConfig, **extra):
    """Instantiate a group config whose ``name`` key labels it rather than being an argument."""
    kwargs = OmegaConf.to_container(node, resolve=True)
    assert isinstance(kwargs, dict)
    cls = get_class(kwargs.pop("_target_"))
    kwargs.pop("name", None)
    return cls(**kwargs, **extra)


def check_support(method, scenario) -> None:
    """Refuse, at start-up, a method that would give a wrong result in this scenario.

    Args:
        method: the method's class (or a strategy, or its ``_target_`` path).
        scenario: the scenario's name (or a scenario).
    """
    if isinstance(method, str):
        method = get_class(method)
    cls = method if isinstance(method, type) else type(method)
    name = scenario if isinstance(scenario, str) else scenario.name
    if "scenarios" not in cls.__dict__ or not cls.__dict__["scenarios"]:
        raise TypeError(f"method class {cls.__name__} does not declare the scenarios it "
                        "supports (a class attribute `scenarios = (...)`)")
    supported = cls.__dict__["scenarios"]
    if name not in supported:
        raise ConfigError(
            f"method {cls.__name__} does not support scenario={name} "
            f"(it supports: {', '.join(supported)}); pick another method or scenario")


def make_trainer_factory(cfg: DictConfig, run_dir: Path, logger):
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert isinstance(trainer_kwargs, dict)

    def make(max_epochs: int, callbacks: list, validate: bool | str = True,
             reload: bool = False) -> L.Trainer:
        """``validate`` as :attr:`audiocil.core.Stage.validate`: True at
        ``trainer.check_val_every_n_epoch``, ``"every_epoch"`` every epoch, False never."""
        kwargs = dict(trainer_kwargs)
        if not validate:
            kwargs["limit_val_batches"] = 0
        elif validate == "every_epoch":  # something reads every epoch's figure
            kwargs["check_val_every_n_epoch"] = 1
        if reload:  # a stage whose items are re-made every epoch
            kwargs["reload_dataloaders_every_n_epochs"] = 1
        return L.Trainer(max_epochs=max_epochs, callbacks=callbacks, logger=logger,
                         default_root_dir=str(run_dir), enable_checkpointing=False,
                         num_sanity_val_steps=0, **kwargs)
    return make


latest_task_checkpoint = checkpoints.latest_task_checkpoint


def _is_ddp_worker() -> bool:
    """True in the processes that Lightning's DDP launcher starts beside rank 0."""
    return any(int(os.environ.get(k, "0") or 0) > 0 for k in ("LOCAL_RANK", "NODE_RANK"))


def resolve_run(cfg: DictConfig, hydra_dir: Path) -> tuple[DictConfig, Path]:
    """The config and directory of this run: a new one, or the one being resumed."""
    if _is_ddp_worker() and os.environ.get(RUN_DIR_ENV):  # rank 0 chose the directory
        run_dir = Path(os.environ[RUN_DIR_ENV])
        return OmegaConf.load(run_dir / "config.yaml"), run_dir  # type: ignore[return-value]
    if cfg.resume:
        run_dir = rundir.check_resume_target(cfg.resume)  # refused before anything is written
        log.info("resuming %s with its own config.yaml (other overrides are ignored)", run_dir)
        saved = OmegaConf.load(run_dir / "config.yaml")
        try:
            validate_run(saved)
        except ConfigError as err:  # the run's own config: overrides cannot fix it
            raise ResumeError(f"resume={cfg.resume}: its config.yaml does not pass the start-up "
                              f"checks of this audiocil:\n{err}") from err
        rundir.clear_preempted(run_dir)
        return saved, run_dir  # type: ignore[return-value]
    run_dir = hydra_dir
    if rundir.continues_preempted(run_dir, OmegaConf.to_container(cfg, resolve=True)):  # type: ignore[arg-type]
        log.info("continuing the preempted run in %s (the same config)", run_dir)
        rundir.clear_preempted(run_dir)
        return OmegaConf.load(run_dir / "config.yaml"), run_dir  # type: ignore[return-value]
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    return cfg, run_dir


def run(cfg: DictConfig, hydra_dir: Path) -> dict:
    """Run (or resume) one experiment and return its ``results.json`` content.

    Every config value is validated (:func:`audiocil.config.validate_run`) before anything is
    written, built or loaded. A run that stops by an error before it saved any checkpoint is
    marked ``FAILED``; one stopped by a preemption signal is marked ``PREEMPTED`` and exits
    with ``128 + signal`` (:mod:`audiocil.engine.rundir`, :mod:`audiocil.engine.preemption`).
    """
    hydra_dir, lead = Path(hydra_dir), not _is_ddp_worker()
    if not cfg.resume and lead:  # Hydra made the directory: say there why nothing ran
        with rundir.failure_marked(hydra_dir, lambda: hydra_dir.is_dir()
                                   and not (hydra_dir / rundir.CONFIG).exists()):
            validate_run(cfg)
    cfg, run_dir = resolve_run(cfg, hydra_dir)
    with rundir.failure_marked(run_dir, lambda: lead and not rundir.has_progress(run_dir)), \
            preemption.guard(run_dir, is_rank_zero=lead):
        return run_in(cfg, run_dir)


def run_in(cfg: DictConfig, run_dir: Path) -> dict:
    """The run itself, in its resolved directory (see :func:`run`)."""
    os.environ[RUN_DIR_ENV] = str(run_dir)
    torch.set_float32_matmul_precision("high")
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    # everything that can be refused without data was refused before (validate_run)
    dataset = instantiate(cfg.dataset.loader)
    scenario = build_named(cfg.scenario)
    order, tasks = scenario.make_tasks(dataset)
    check_against_tasks(cfg, tasks)  # values that depend on the classes, before any cache build
    dm = build_datamodule(cfg, dataset, order)
    dm.prepare()

    meta = {"method": cfg.method.name, "dataset": cfg.dataset.name, "scenario": cfg.scenario.name,
            "seed": cfg.seed, "backbone": cfg.backbone.name, "class_order": order,
            "class_names": [dataset.class_names[c] for c in order],
            "tasks": [list(t.classes) for t in tasks],
            "skipped_files": {k: len(v) for k, v in dm.skipped.items()},
            "skipped_missing": dict(dataset.info.get("skipped_missing", {})),
            "eval_clips_per_class": cfg.data.get("eval_clips_per_class")}
    strategy = build_strategy(cfg, scenario.objective)
    logger = build_logger(cfg, run_dir)  # W&B: grouped by sweep, tagged by method/dataset/scenario
    if logger:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    config = OmegaConf.to_container(cfg, resolve=True)
    dashboard = Dashboard(logger)  # each task's figures in W&B / TensorBoard
    sequencer = TaskSequencer(scenario, tasks, run_dir, scenario.new_record(meta), cfg.seed,
                              config, lambda state: load_strategy(cfg, state, scenario.objective),
                              after_task=[dashboard],
                              checkpoint_every=OmegaConf.select(cfg, "checkpoint.every_n_epochs",
                                                                default=1))  # runs from before the key: 1

    start = 0
    ckpt = latest_task_checkpoint(run_dir)
    if ckpt is not None:
        state = checkpoints.load(ckpt)
        checkpoints.restore_strategy(strategy, state["strategy"])
        dm.load_state_dict(state["datamodule"])
        sequencer.load_state_dict(state["sequencer"])
        sequencer.record = scenario.record_from_state(state["record"])
        start = state["task"] + 1
        log.info("resuming after task %d from %s", state["task"], ckpt)
    if start >= len(tasks):
        log.info("all %d tasks were already done", len(tasks))
    sequencer.after_task.append(StreamProgress(tasks, start))
    record = sequencer.run(strategy, dm, make_trainer_factory(cfg, run_dir, logger), start)
    if L.fabric.utilities.rank_zero.rank_zero_only.rank == 0:
        write_outputs(record, run_dir)
        from audiocil.report.build import write_run_figures  # matplotlib only here

        figures = write_run_figures(run_dir)  # its curve, heatmap and tables
        dashboard.close()
        print(f"\n== summary ==\n{record.table()}\nresults: {run_dir / 'results.json'}"
              + (f"\nreport: {figures / 'report.md'}" if figures else ""))
    return record.to_json()
