"""Training throughput of every standard method: model-only against end-to-end samples/s.

For each method, on the second task (where teachers, memories and old heads exist), each
training stage is measured twice:

* **model-only**: the method's own training step, as its strategy computes it (the
  stage's loss, the frozen teacher's forward included, recomputed every step; the method's
  batch hooks, e.g. GEM's gradient projection; backward; the stage's optimizer step), on
  one batch of the stage's own items held in memory on the device (log-mels of the
  dataset's shape, or waveforms with ``--cache waveform``), repeated ``--steps`` times after
  two warm-up steps, on one device, in two passes: just before and just after the
  end-to-end task (so that a load that drifts weighs on both alike);
* **end-to-end**: the same stage of a real run of the toolbox: the task sequencer's stage,
  one stock ``Trainer.fit`` through the datamodule with the run's callbacks and logger, for
  ``--epochs`` epochs over the stage's clips; samples / seconds inside ``Trainer.fit``,
  counted as ``results.json``'s ``cost_per_task`` counts them (:class:`TaskCost`, here one per
  stage; the task's own figure is printed too).

and their ratio (goal: >= 0.95). Beside them: the median step of each loop (robust to the
bursts of a loaded machine) and their ratio, the fit's fixed cost (start-up, first batches,
end-of-stage checkpoint: its seconds beyond its samples at the median step's rate; an
estimate) and, on a CPU, both ratios per second of this process's CPU time. The end-to-end
run recomputes the teachers' outputs (``--teacher-outputs cache`` is the toolbox's default,
which skips them after a stage's first epoch). The first task only prepares the second: it trains
``--first-batches`` batches of one epoch, unless it is measured too: with ``--first-task``,
or for a method whose encoder is frozen after the first task (acil, ds_al: the later tasks
are fitted in closed form; fetril: they train a head on fixed embeddings), where the first
task is what trains the network. A stage of zero epochs (a closed-form fit) prints n/a.

    make bench-train
    make bench-train ARGS="--methods finetune,lwf,icarl --epochs 1"
    PYTHONPATH=src python benchmarks/bench_train.py --dataset synth20 --methods finetune,lwf --steps 5

GPU: the run takes CUDA's first device when there is one (else the CPU, said in the
output). ``--cache waveform`` caches audio and computes the log-mels on the device (the
in-memory batch is then waveforms); ``--precision 16-mixed`` or ``bf16-mixed`` sets
``trainer.precision`` and runs the model-only step under ``torch.autocast`` (with a gradient
scaler for fp16, as Lightning); ``--devices N`` trains the end-to-end stages on N devices
(DDP; on a CPU, N processes), while the model-only step stays on one device, so the ratio
is end-to-end / (N x model-only).

    PYTHONPATH=src python benchmarks/bench_train.py --methods finetune,icarl --precision bf16-mixed --cache waveform
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from bench_common import add_run_arguments, compose, extra_overrides, stage_nodes
from hydra.utils import get_class, instantiate
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.fabric.utilities.seed import seed_everything
from omegaconf import OmegaConf

#: the methods of the standard scenario (``python -m audiocil methods --scenario standard``,
#: without the few-shot ``prototype``): the reference toolbox's 16 and the joint upper bound
STANDARD = ("finetune", "replay", "ewc", "lwf", "icarl", "gem", "bic", "wa", "podnet", "der",
            "coil", "acil", "ds_al", "foster", "beef", "fetril", "joint")
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")
GOAL = 0.95
WARMUP = 2  # model-only steps before the clock starts
DISTINCT = 4  # model-only batches held in memory and taken in turn


@dataclass
class Row:
    """One stage of one task of one method."""

    method: str
    task: int
    stage: str
    batch: int | None = None
    items: int | None = None             # training items per epoch of the stage
    model_only: float | None = None      # samples/s
    end_to_end: float | None = None      # samples/s, summed over devices
    devices: int = 1
    note: str = ""
    model_only_cpu: float | None = None  # samples per second of this process's CPU time
    end_to_end_cpu: float | None = None  # the same, of one process (rank 0)
    model_only_step: float | None = None      # the median step's samples/s
    model_only_step_cpu: float | None = None  # the same per CPU-second
    steady: float | None = None          # end-to-end: the median step from batch WARMUP on, one process
    steady_cpu: float | None = None      # the same per CPU-second
    fixed_s: float | None = None         # fit seconds beyond its samples at the steady rate
    fixed_cpu_s: float | None = None     # the same in CPU seconds
    model_only_passes: list[float] | None = None  # samples/s of the pass before and after

    @property
    def ratio(self) -> float | None:
        """end-to-end / (devices x model-only); None where the stage says n/a."""
        if self.note.startswith("n/a") or not self.model_only or self.end_to_end is None:
            return None
        return self.end_to_end / (self.devices * self.model_only)

    @property
    def ratio_cpu(self) -> float | None:
        """The same ratio in samples per CPU-second (per process): what the toolbox adds in
        work, whatever share of the cores the process gets on a loaded machine."""
        if self.ratio is None or not self.model_only_cpu or self.end_to_end_cpu is None:
            return None
        return self.end_to_end_cpu / self.model_only_cpu

    @property
    def ratio_steady(self) -> float | None:
        """The median end-to-end step (one process) against the median model-only step: the
        toolbox's cost per step, without the fit's fixed cost (start-up, first batches,
        end-of-epoch work) and robust to bursts of load."""
        if self.ratio is None or self.steady is None or not self.model_only_step:
            return None
        return self.steady / self.model_only_step

    @property
    def ratio_steady_cpu(self) -> float | None:
        """:attr:`ratio_steady` per CPU-second."""
        if self.ratio is None or not self.model_only_step_cpu or self.steady_cpu is None:
            return None
        return self.steady_cpu / self.model_only_step_cpu


# ---- the command line --------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/test_docs_commands.py parses the documented ones with it)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="gm100")
    p.add_argument("--backbone", default="smallcnn")
    p.add_argument("--methods", default=",".join(STANDARD), help="comma list (default: every standard method)")
    p.add_argument("--batch", type=int, default=None, help="method.batch_size (default: each method's own)")
    p.add_argument("--steps", type=int, default=20,
                   help="timed model-only steps of each pass (after 2 warm-up steps)")
    p.add_argument("--epochs", type=int, default=1, help="epochs of every measured training stage")
    p.add_argument("--limit-batches", type=int, default=None,
                   help="trainer.limit_train_batches of the measured stages (default: whole epochs)")
    p.add_argument("--first-batches", type=int, default=2,
                   help="batches of the first task's one epoch when it only prepares the second")
    p.add_argument("--first-task", action="store_true", help="measure the first task's stages too")
    p.add_argument("--cache", choices=("features", "waveform"), default="features", help="data.cache")
    p.add_argument("--precision", choices=PRECISIONS, default="32-true", help="trainer.precision")
    p.add_argument("--devices", type=int, default=1,
                   help="trainer.devices of the end-to-end stages (model-only: one device)")
    p.add_argument("--teacher-outputs", choices=("recompute", "cache"), default="recompute",
                   help="data.teacher_outputs of the end-to-end run (model-only always recomputes; "
                        "cache skips the teacher in epochs after the first, so the ratio can pass 1)")
    add_run_arguments(p, out="outputs/bench_train", threads=torch.get_num_threads())
    return p


def device_of() -> torch.device:
    """CUDA's first device when there is one, else the CPU."""
    return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")


def overrides(method: str, a: argparse.Namespace) -> list[str]:
    """The run's config: the method's own settings, ``--epochs`` in every trained stage."""
    gpu = device_of().type == "cuda"
    out = [f"method={method}", f"dataset={a.dataset}", f"backbone={a.backbone}",
           "trainer.enable_progress_bar=false", f"data.cache={a.cache}",
           f"data.teacher_outputs={a.teacher_outputs}", f"trainer.precision={a.precision}",
           f"trainer.accelerator={'gpu' if gpu else 'cpu'}", f"trainer.devices={a.devices}"]
    if a.devices > 1:
        out.append("trainer.strategy=ddp")
    if a.batch:
        out.append(f"method.batch_size={a.batch}")
    if a.limit_batches:
        out.append(f"trainer.limit_train_batches={a.limit_batches}")
    cfg = compose(out, a.root)
    for node in stage_nodes(cfg.method):
        if int(OmegaConf.select(cfg, node).epochs) > 0:  # a closed-form stage stays so
            out.append(f"{node}.epochs={a.epochs}")
    return out + extra_overrides(method, a)


def measures_first_task(cfg, a: argparse.Namespace) -> bool:
    """Whether the first task is measured: asked for, or the method's encoder is frozen
    after it (later tasks fitted in closed form, or classifiers on fixed embeddings)."""
    from audiocil.schema import method_declarations

    cls = get_class(cfg.method._target_)
    closed = method_declarations(cls)[1]
    return a.first_task or "later_tasks" in closed or bool(cls.evaluates_embeddings)


# ---- the real run ------------------------------------------------------------------------
class Run:
    """The pieces of one run, built as ``audiocil.run.run_in`` builds them."""

    def __init__(self, cfg, run_dir: Path) -> None:
        from audiocil.config import check_against_tasks
        from audiocil.engine.sequencer import TaskSequencer
        from audiocil.report.dashboard import build_logger
        from audiocil.run import build_datamodule, build_named, build_strategy, load_strategy

        torch.set_float32_matmul_precision("high")
        seed_everything(cfg.seed, workers=True, verbose=False)
        self.cfg, self.run_dir = cfg, run_dir
        dataset = instantiate(cfg.dataset.loader)
        self.scenario = build_named(cfg.scenario)
        order, self.tasks = self.scenario.make_tasks(dataset)
        if len(self.tasks) < 2:
            raise SystemExit(f"bench_train: {cfg.dataset.name} makes {len(self.tasks)} task(s); "
                             "the benchmark measures the second")
        check_against_tasks(cfg, self.tasks)
        self.dm = build_datamodule(cfg, dataset, order)
        self.dm.prepare()
        self.strategy = build_strategy(cfg, self.scenario.objective)
        meta = {"method": cfg.method.name, "dataset": cfg.dataset.name,
                "scenario": cfg.scenario.name, "seed": cfg.seed, "backbone": cfg.backbone.name,
                "class_order": order, "tasks": [list(t.classes) for t in self.tasks]}
        self.logger = build_logger(cfg, run_dir)
        self.sequencer = TaskSequencer(
            self.scenario, self.tasks, run_dir, self.scenario.new_record(meta), cfg.seed,
            OmegaConf.to_container(cfg, resolve=True),
            lambda state: load_strategy(cfg, state, self.scenario.objective),
            checkpoint_every=cfg.checkpoint.every_n_epochs)
        self._build, self._load = build_strategy, load_strategy

    def trainer_factory(self, cfg):
        from audiocil.run import make_trainer_factory

        return make_trainer_factory(cfg, self.run_dir, self.logger)

    def fresh_strategy(self):
        return self._build(self.cfg, self.scenario.objective)

    def strategy_after(self, task: int):
        """The strategy as task ``task`` left it, from the run's task checkpoint."""
        from audiocil.engine import checkpoints

        state = checkpoints.load(self.run_dir / "checkpoints" / f"task_{task}.pt")
        return self._load(self.cfg, state, self.scenario.objective)


def median_rate(steps: list[tuple[float, float, int]], clock: int) -> float | None:
    """Samples per second of the median step of ``(wall s, CPU s, samples)`` steps, by the
    wall (``clock`` 0) or the CPU clock (1): robust to the bursts of a loaded machine."""
    per_sample = sorted(st[clock] / st[2] for st in steps if st[2])
    if not per_sample:
        return None
    mid = len(per_sample) // 2
    median = per_sample[mid] if len(per_sample) % 2 else (per_sample[mid - 1] + per_sample[mid]) / 2
    return 1.0 / median if median > 0 else None


class StageClock(L.Callback):
    """Beside :class:`TaskCost`'s wall seconds inside ``Trainer.fit``: this process's CPU
    seconds inside it, and the stage's steps from batch ``WARMUP`` on (counted over its
    epochs), each from the end of the batch before (data, hooks, logging, callbacks and the
    step itself), in wall and CPU seconds. DataLoader worker processes are not counted
    (``data.num_workers`` is 0 by default)."""

    def __init__(self) -> None:
        self.cpu_s, self.batches = 0.0, 0
        self.steps: list[tuple[float, float, int]] = []
        self._last: tuple[float, float] | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.cpu0 = time.process_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        now = (time.perf_counter(), time.process_time())
        if self.batches >= WARMUP and self._last is not None:
            self.steps.append((now[0] - self._last[0], now[1] - self._last[1], len(batch[1])))
        self._last, self.batches = now, self.batches + 1

    def on_train_end(self, trainer, pl_module) -> None:
        self.cpu_s += time.process_time() - self.cpu0


class StageClocks:
    """A trainer factory that adds a :class:`TaskCost` (the counting behind ``cost_per_task``)
    to every training stage's trainer, so each stage gets its own samples/s. A TaskCost
    resets the process's peak-memory marks when made: the run's memory figures are not
    meaningful here."""

    def __init__(self, make, run: Run, first_epoch_only: bool = False) -> None:
        self.make, self.run, self.first_epoch_only = make, run, first_epoch_only
        self.stages: list[dict] = []

    def __call__(self, max_epochs: int, callbacks: list, validate=True, reload: bool = False):
        from audiocil.engine.cost import TaskCost

        stage, dm = self.run.strategy.stage, self.run.dm
        if stage is None:  # a trainer only to test
            return self.make(max_epochs, callbacks, validate, reload)
        clock, cpu = TaskCost(), StageClock()
        items = len(dm.train_indices) if dm.stage_dataset is None else len(dm.stage_dataset(0))
        self.stages.append({"task": self.run.sequencer.current.index, "stage": stage.name,
                            "clock": clock, "cpu": cpu, "batch": dm.batch_size, "items": items})
        epochs = 1 if self.first_epoch_only else max_epochs
        return self.make(epochs, [*callbacks, clock, cpu], validate, reload)


def end_to_end(run: Run, measured: tuple[int, ...], a: argparse.Namespace,
               probe=None) -> tuple[list[dict], list[dict], dict[int, list]]:
    """Run the first two tasks through the task sequencer; per stage: samples/s inside
    ``Trainer.fit`` (``rate``) and the clocks' other figures, and the tasks'
    ``cost_per_task`` rows. ``probe(t)`` (the model-only measure) runs just before and just
    after each measured task ``t``, so that a load that drifts weighs on both sides alike;
    its results are returned by task."""
    cut = run.cfg.copy()
    cut.trainer.limit_train_batches = a.first_batches
    stages: list[dict] = []
    probes: dict[int, list] = {}
    for task in run.tasks[:2]:
        full = task.index in measured
        if full and probe is not None:
            probes[task.index] = [probe(task.index)]
        make = StageClocks(run.trainer_factory(run.cfg if full else cut), run, not full)
        run.sequencer.run_task(task, run.strategy, run.dm, make)
        if full and probe is not None:
            probes[task.index].append(probe(task.index))
        for s in make.stages:
            c, cpu = s.pop("clock"), s.pop("cpu")
            s["rate"] = c.samples * c.world / c.train_s if c.train_s > 0 and c.samples else None
            s["cpu_rate"] = c.samples / cpu.cpu_s if cpu.cpu_s > 0 and c.samples else None
            if device_of().type == "cpu":  # a GPU's steps are asynchronous
                s["steady_rate"] = median_rate(cpu.steps, 0)  # one process's
                s["steady_cpu_rate"] = median_rate(cpu.steps, 1)
            if s.get("steady_rate"):  # estimates: negative when the load varies a lot
                s["fixed_s"] = c.train_s - c.samples / s["steady_rate"]
            if s.get("steady_cpu_rate"):
                s["fixed_cpu_s"] = cpu.cpu_s - c.samples / s["steady_cpu_rate"]
            s["devices"] = c.world
        stages += [s for s in make.stages if full]
    costs = run.sequencer.record.to_json()["cost_per_task"]
    return stages, costs, probes


def pooled(passes: list[dict]) -> dict:
    """One stage's model-only figures over its passes: rates of the pooled samples and
    seconds, the median step of all their steps, and each pass's rate."""
    out = dict(passes[0])
    if "samples" not in out:  # a closed-form stage
        return out
    n, wall, cpu = (sum(p[k] for p in passes) for k in ("samples", "wall", "cpu"))
    times = [t for p in passes for t in p["times"]]
    out.update(rate=n / wall, cpu_rate=n / cpu if cpu > 0 else None, step=median_rate(times, 0),
               step_cpu=median_rate(times, 1), passes=[p["samples"] / p["wall"] for p in passes])
    return out


# ---- the model-only step ----------------------------------------------------------------
def to_device(obj, device: torch.device):
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(o, device) for o in obj)
    return obj.to(device) if isinstance(obj, torch.Tensor) else obj


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def amp_of(precision: str, device: torch.device):
    """(autocast context factory, gradient scaler or None) for a Lightning precision flag;
    fp16 on a CPU becomes bf16, as Lightning makes it."""
    dtype = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(precision)
    if dtype is None:
        return contextlib.nullcontext, None
    if dtype is torch.float16 and device.type == "cpu":
        dtype = torch.bfloat16
    scaler = torch.amp.GradScaler(device.type) if dtype is torch.float16 else None
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler


def timed_steps(strategy, stage, batches: list, steps: int, device: torch.device, precision: str,
                steps_per_epoch: int) -> dict:
    """The stage's training step on in-memory batches (taken in turn), ``steps`` times after
    WARMUP steps: ``samples``, ``wall`` and ``cpu`` seconds (this process's CPU time) of the
    timed steps, and each one's ``(wall s, CPU s, samples)`` in ``times`` (on a CPU).

    The step follows Lightning's automatic optimisation: the method's batch-start hook, its
    loss under autocast, zero_grad, backward (scaled for fp16), unscale, the method's
    after-backward and before-optimizer-step hooks, the optimizer step (and a per-step
    schedule), the batch-end hook. No logging, no reseeding, no callbacks: those are the
    toolbox's, counted in the end-to-end figure."""
    from audiocil.optim import build

    batches = [to_device(b, device) for b in batches]
    loss_fn = stage.loss if stage.loss is not None else strategy.training_loss
    opt, sched = None, None
    if stage.optim is not None and strategy._groups:
        built = build(stage.optim, strategy._groups, steps_per_epoch)
        opt = built["optimizer"] if isinstance(built, dict) else built
        conf = built.get("lr_scheduler") if isinstance(built, dict) else None
        sched = conf["scheduler"] if conf and conf.get("interval") == "step" else None
    autocast, scaler = amp_of(precision, device)
    strategy.train()
    strategy.on_fit_start()
    t0 = c0 = 0.0
    times: list[tuple[float, float, int]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer warns and does nothing
        for i in range(WARMUP + steps):
            if i == WARMUP:
                sync(device)
                t0, c0 = time.perf_counter(), time.process_time()
            start = (time.perf_counter(), time.process_time())
            x, y, idx = batch = batches[i % len(batches)]
            strategy.on_train_batch_start(batch, i)
            with autocast():
                loss, _ = loss_fn(x, y)
            if loss is not None and opt is not None:
                opt.zero_grad(set_to_none=True)
                (scaler.scale(loss) if scaler else loss).backward()
                if scaler:
                    scaler.unscale_(opt)
                strategy.on_after_backward()
                strategy.on_before_optimizer_step(opt)
                if scaler:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
                if sched is not None:
                    sched.step()
            strategy.on_train_batch_end(loss, batch, i)
            if i >= WARMUP and device.type == "cpu":  # on a GPU it would need a sync per step
                times.append((time.perf_counter() - start[0], time.process_time() - start[1], len(y)))
    return {"samples": steps * len(y), "wall": time.perf_counter() - t0,
            "cpu": time.process_time() - c0, "times": times}


def model_only(run: Run, strategy, task, a: argparse.Namespace) -> dict[str, dict]:
    """Stage name -> {epochs, fixed_items, and for a trained stage batch and
    :func:`timed_steps`'s figures} of every stage of ``task`` in order, with ``strategy`` in
    the state before the task; the stages follow each other as in the run (each one's ``begin``
    and ``end``), each trained only by its timed steps."""
    device, dm = device_of(), run.dm
    dm.trainer = None  # a single-device loader, whatever the end-to-end run used
    seed_everything(run.cfg.seed * 7919 + task.index, workers=True, verbose=False)
    strategy.to(device)
    dm.set_own(run.scenario.own_indices(task, dm), task.total)  # as the sequencer's run_task
    strategy.before_task(task, dm)
    if task.index == 0:
        frontend = strategy.network.frontend
        frontend.set_stats(*dm.first_task_stats(range(task.total),
                                                frontend if dm.cache == "waveform" else None))
    out: dict[str, dict] = {}
    for i, stage in enumerate(strategy.stages(task, dm)):
        out[stage.name] = {"epochs": stage.epochs, "fixed_items": stage.dataset is not None}
        strategy.enter_stage(stage)
        strategy._memo = None  # the teacher's forward is part of the step
        try:
            if stage.begin is not None:
                stage.begin(dm)
            strategy.to(device)
            if stage.epochs > 0:
                idx = stage.indices(dm) if callable(stage.indices) else stage.indices
                idx = strategy.train_indices(task, dm) if idx is None else np.asarray(idx)
                dm.set_task(task.index, idx, task.total, stage.batch_size or strategy.batch_size,
                            stage=i, sampler=stage.sampler, dataset=stage.dataset)
                loader = dm.train_dataloader()
                batches = list(itertools.islice(loader, DISTINCT))  # in memory from here on
                batches = [b for b in batches if len(b[1]) == len(batches[0][1])]  # one size
                out[stage.name].update(batch=len(batches[0][1]), **timed_steps(
                    strategy, stage, batches, a.steps, device, a.precision, len(loader)))
            if stage.end is not None:
                stage.end(dm)
        finally:
            strategy.leave_stage()
    return out


# ---- one method --------------------------------------------------------------------------
CLOSED_FORM = "n/a: closed form (no gradient step)"
FIXED_ITEMS = ("n/a: a head on fixed embeddings, not clips (one (B, D) linear layer per step: "
               "the loop's fixed per-step cost dominates)")


def measure(method: str, a: argparse.Namespace) -> tuple[list[Row], list[dict]]:
    """Rows of one method (every stage of the measured tasks) and its tasks' ``cost_per_task``.
    In a DDP worker process only the end-to-end part runs (and no row is made)."""
    from audiocil.config import validate_run

    cfg = compose(overrides(method, a), a.root)
    validate_run(cfg)
    run = Run(cfg, Path(a.out) / method)
    measured = (0, 1) if measures_first_task(cfg, a) else (1,)
    lead = rank_zero_only.rank == 0  # a DDP worker only trains

    def probe(t: int) -> dict[str, dict]:
        strategy = run.fresh_strategy() if t == 0 else run.strategy_after(t - 1)
        return model_only(run, strategy, run.tasks[t], a)

    stages, costs, probes = end_to_end(run, measured, a, probe if lead else None)
    if not lead:
        return [], costs
    rows = []
    for t in measured:
        trained = {s["stage"]: s for s in stages if s["task"] == t}
        for name in probes[t][0]:
            m, s = pooled([p[name] for p in probes[t]]), trained.get(name, {})
            row = Row(method, t, name, batch=m.get("batch") or s.get("batch"), items=s.get("items"),
                      model_only=m.get("rate"), end_to_end=s.get("rate"),
                      devices=s.get("devices", a.devices))
            row.steady, row.fixed_s = s.get("steady_rate"), s.get("fixed_s")
            row.model_only_step, row.model_only_passes = m.get("step"), m.get("passes")
            if device_of().type == "cpu":  # on a GPU the CPU time says nothing of the work
                row.model_only_cpu, row.end_to_end_cpu = m.get("cpu_rate"), s.get("cpu_rate")
                row.model_only_step_cpu, row.steady_cpu = m.get("step_cpu"), s.get("steady_cpu_rate")
                row.fixed_cpu_s = s.get("fixed_cpu_s")
            row.note = CLOSED_FORM if m["epochs"] == 0 else FIXED_ITEMS if m["fixed_items"] else ""
            if row.ratio is not None and row.ratio < GOAL:
                row.note = f"below {GOAL}"
            rows.append(row)
    return rows, costs


# ---- output ------------------------------------------------------------------------------
def fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def ratio_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def line(row: Row) -> str:
    out = (f"  task {row.task} {row.stage:<12} batch {fmt(row.batch, 'd'):>4}  "
           f"{fmt(row.items, 'd'):>5} items/epoch  model-only {fmt(row.model_only):>7}  "
           f"end-to-end {fmt(row.end_to_end):>7} samples/s  ratio {ratio_text(row.ratio)}"
           + (f"  ({row.note})" if row.note else ""))
    if row.model_only_passes:
        out += ("\n  " + " " * 19 + "model-only before / after the task: "
                + " / ".join(fmt(v) for v in row.model_only_passes) + " samples/s")
    if row.steady is not None:
        out += (f"\n  {'':<19}median step {fmt(row.model_only_step)} / {fmt(row.steady)} samples/s, "
                f"ratio {ratio_text(row.ratio_steady)}; fixed cost {fmt(row.fixed_s, '.2f')} s per fit")
    if row.model_only_cpu:
        out += (f"; per CPU-second {fmt(row.model_only_cpu)} / {fmt(row.end_to_end_cpu)}, ratio "
                f"{ratio_text(row.ratio_cpu)}, median step {ratio_text(row.ratio_steady_cpu)}, "
                f"fixed cost {fmt(row.fixed_cpu_s, '.2f')} CPU-s per fit")
    return out


def table(rows: list[Row], devices: int = 1) -> str:
    """A Markdown table; the CPU-time columns only where they were measured (on a CPU)."""
    cpu = any(r.model_only_cpu for r in rows)
    ratio = "ratio" if devices == 1 else f"ratio (e2e / {devices} x model-only)"
    cols = ["method", "task", "stage", "batch", "items/epoch", "model-only samples/s",
            "end-to-end samples/s", ratio, "median-step ratio", "fixed s per fit"]
    cols += ["ratio (CPU time)", "median-step ratio (CPU time)", "fixed CPU-s per fit"] if cpu else []
    out = ["| " + " | ".join([*cols, "note"]) + " |", "|" + "---|" * (len(cols) + 1)]
    for r in rows:
        cells = [r.method, str(r.task), r.stage, fmt(r.batch, "d"), fmt(r.items, "d"),
                 fmt(r.model_only), fmt(r.end_to_end), ratio_text(r.ratio),
                 ratio_text(r.ratio_steady), fmt(r.fixed_s, ".2f")]
        if cpu:
            cells += [ratio_text(r.ratio_cpu), ratio_text(r.ratio_steady_cpu), fmt(r.fixed_cpu_s, ".2f")]
        out.append("| " + " | ".join([*cells, r.note]) + " |")
    return "\n".join(out)


def header(a: argparse.Namespace) -> str:
    device = device_of()
    where = (f"device {device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda"
             else "device cpu (no CUDA" + (": 16-mixed runs as bf16-mixed, as Lightning does"
                                           if a.precision == "16-mixed" else "") + ")")
    ddp = (f"end-to-end on {a.devices} devices (DDP), model-only on one"
           if a.devices > 1 else "1 device")
    return (f"bench_train: {a.dataset}, {a.backbone}, {where}, {ddp}, precision {a.precision}, "
            f"data.cache={a.cache}, data.teacher_outputs={a.teacher_outputs} (model-only: "
            f"recomputed), torch threads {torch.get_num_threads()}, "
            f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n"
            f"model-only: {a.steps} timed steps on one in-memory batch (after {WARMUP}), "
            f"before and after the end-to-end task; "
            f"end-to-end: {a.epochs} epoch(s) of Trainer.fit per stage, samples / time in fit "
            f"(as cost_per_task); goal: ratio >= {GOAL}"
            + ("; per CPU-second: the same work over this process's CPU time (robust to "
               "the load)" if device.type == "cpu" else ""))


def main(argv: list[str] | None = None) -> list[Row]:
    import logging

    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    a = build_parser().parse_args(argv)
    torch.set_num_threads(a.threads)
    logging.getLogger("audiocil").setLevel(logging.WARNING)
    lead = rank_zero_only.rank == 0  # DDP workers re-run this script: they train, not print
    methods = [m for m in a.methods.split(",") if m]
    if lead:
        for m in methods:  # before the first fit, so before any DDP worker exists
            shutil.rmtree(Path(a.out) / m, ignore_errors=True)
        print(header(a), flush=True)
    rows: list[Row] = []
    for m in methods:
        t0 = time.time()
        got, costs = measure(m, a)
        if not lead:
            continue
        cost = costs[1]
        task1 = (f"{fmt(cost['train_samples_per_s'])} samples/s ({cost['train_samples']} samples "
                 f"in {cost['train_time_s']:.1f} s of Trainer.fit)" if cost["train_samples"]
                 else "no training sample (nothing trained by gradient)")
        print(f"{m}: task 1 as cost_per_task records it: {task1}; {time.time() - t0:.0f} s",
              flush=True)
        for r in got:
            print(line(r), flush=True)
        rows += got
    if lead:
        text = table(rows, a.devices)
        Path(a.out).mkdir(parents=True, exist_ok=True)
        (Path(a.out) / "table.md").write_text(text + "\n")
        print(f"\nload average after: {os.getloadavg()[0]:.2f}\n\n{text}")
        slow = [f"{r.method}/{r.stage}" for r in rows if r.ratio is not None and r.ratio < GOAL]
        print(f"\nbelow {GOAL}: {', '.join(slow) if slow else 'none'}")
    return rows


if __name__ == "__main__":
    main()
