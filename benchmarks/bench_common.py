"""What the table benchmarks share: run each labelled method once into ``<out>/<label>``
(a finished run is read, an interrupted one resumed) and rewrite the table after each."""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig


def compose(overrides: list[str], root: str):
    from audiocil.config import compose as compose_config

    return compose_config([f"paths.root_dir={root}", *overrides])


def add_run_arguments(p: argparse.ArgumentParser, out: str, threads: int = 1) -> None:
    """The arguments every table takes: threads, root, out, --set and --set-for."""
    p.add_argument("--threads", type=int, default=threads, help="torch threads")
    p.add_argument("--root", default=".", help="paths.root_dir: where outputs/data and the cache are")
    p.add_argument("--out", default=out)
    p.add_argument("--set", action="append", default=[], help="extra Hydra override, repeatable")
    p.add_argument("--set-for", action="append", default=[], metavar="LABEL:OVERRIDE",
                   help="an override for one method (label) only, repeatable")


def extra_overrides(label: str, a: argparse.Namespace) -> list[str]:
    """``--set`` for every method and ``--set-for LABEL:...`` for this one."""
    return list(a.set) + [o.split(":", 1)[1] for o in a.set_for if o.split(":", 1)[0] == label]


def stage_nodes(method_cfg, prefix: str = "method") -> list[str]:
    """Dotted keys of every training stage's settings in a method's config."""
    out = []
    for key, node in method_cfg.items():
        if isinstance(node, DictConfig):
            if "epochs" in node and "optimizer" in node:
                out.append(f"{prefix}.{key}")
            else:
                out += stage_nodes(node, f"{prefix}.{key}")
    return out


def run_table(labels: list[str], a: argparse.Namespace, overrides: Callable[[str], list[str]],
              finished: Callable[[Path], bool], table: Callable[[dict[str, dict]], str]) -> str:
    """Run (or read, or resume) every label's run; write ``<out>/table.md`` after each."""
    logging.basicConfig(format="%(message)s")  # the runs' own progress lines
    logging.getLogger("audiocil").setLevel(logging.INFO)

    from audiocil.run import run

    torch.set_num_threads(a.threads)
    out = Path(a.out)
    results: dict[str, dict] = {}
    text = ""
    for label in labels:
        t0 = time.time()
        run_dir = out / label
        if not finished(run_dir):
            if (run_dir / "config.yaml").exists():  # interrupted: resume
                cfg = compose([f"resume={run_dir.resolve()}"], a.root)
            else:
                cfg = compose(overrides(label), a.root)
            run(cfg, run_dir)
        results[label] = json.loads((run_dir / "results.json").read_text())
        print(f"{label}: {(time.time() - t0) / 60:.1f} min", flush=True)
        text = table(results)
        (out / "table.md").write_text(text + "\n")
    print("\n" + text)
    return text
