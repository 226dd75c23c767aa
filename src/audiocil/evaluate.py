"""Evaluate a saved task checkpoint on the test data of every class it has seen.

    python -m audiocil.evaluate outputs/cil/runs/<time> [--task K] [--devices N]

With ``--devices 2`` on a CPU the test set is sharded over two gloo processes; each clip is
scored exactly once, so the figures equal the single-process ones.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import OmegaConf

from audiocil.config import register_resolvers
from audiocil.engine import checkpoints
from audiocil.run import build_datamodule, build_named, load_strategy


def evaluate(run_dir: Path, task: int | None = None, devices: int = 1,
             accelerator: str = "cpu") -> dict:
    """Scores of the checkpoint after ``task`` (default: the last finished one)."""
    register_resolvers()
    cfg = OmegaConf.load(run_dir / "config.yaml")
    ckpt = run_dir / "checkpoints" / f"task_{task}.pt" if task is not None else \
        checkpoints.latest_task_checkpoint(run_dir)
    if ckpt is None or not ckpt.exists():
        raise FileNotFoundError(f"{run_dir}: no task checkpoint {ckpt or 'checkpoints/task_*.pt'}")
    state = checkpoints.load(ckpt)
    dataset = instantiate(cfg.dataset.loader)
    scenario = build_named(cfg.scenario)
    order, tasks = scenario.make_tasks(dataset)
    strategy = load_strategy(cfg, state, scenario.objective)
    strategy.task = tasks[state["task"]]
    dm = build_datamodule(cfg, dataset, order)
    dm.prepare()
    dm.load_state_dict(state["datamodule"])
    trainer = L.Trainer(accelerator=accelerator, devices=devices,
                        strategy="ddp" if devices > 1 else "auto", logger=False,
                        enable_progress_bar=False, enable_model_summary=False)
    return scenario.evaluate(trainer, strategy, dm, tasks[state["task"]], tasks)


def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/test_docs_commands.py parses the documented ones with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--task", type=int, default=None)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="write the scores as JSON here")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    scores = evaluate(args.run_dir, args.task, args.devices, args.accelerator)
    if L.fabric.utilities.rank_zero.rank_zero_only.rank == 0:
        text = json.dumps(scores, indent=1)
        if args.out:
            args.out.write_text(text)
        print(text)


if __name__ == "__main__":
    main()
