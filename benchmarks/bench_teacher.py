"""Cached teacher outputs against recomputing them: training samples/s of distilling methods.

Each method runs twice on the same short protocol (``--dataset``, default the synthetic
synth20: 2 tasks of 10 classes; ``--epochs`` epochs per stage, smallcnn), once with ``data.teacher_outputs=cache`` and once
with ``=recompute``; the figure is the training samples/s of the tasks after the first
(where the teacher exists), from ``results.json``'s ``cost_per_task``, with both runs' accuracy matrices (they
must be equal: the memo changes the cost, not the result).

    PYTHONPATH=src python benchmarks/bench_teacher.py --methods lwf,icarl,foster
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import torch
from bench_common import compose


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="lwf,icarl,podnet,foster")
    p.add_argument("--dataset", default="synth20")
    p.add_argument("--classes", type=int, default=10, help="classes per task")
    p.add_argument("--epochs", type=int, default=3, help="epochs of every training stage")
    p.add_argument("--width", type=int, default=32, help="smallcnn width")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--root", default=".", help="paths.root_dir (where outputs/data is)")
    p.add_argument("--out", default="outputs/bench_teacher")
    return p


def overrides(method: str, mode: str, a: argparse.Namespace) -> list[str]:
    cfg = compose([f"method={method}"], a.root)
    stages = [k for k, v in cfg.method.items()
              if hasattr(v, "get") and v.get("epochs") is not None and v.get("optimizer") is not None]
    return [f"method={method}", f"dataset={a.dataset}", "backbone=smallcnn",
            f"backbone.width={a.width}", f"scenario.init_cls={a.classes}",
            f"scenario.increment={a.classes}",
            "trainer.enable_progress_bar=false", "logger=csv", "trainer.limit_val_batches=0",
            f"data.teacher_outputs={mode}",
            *[f"method.{s}.epochs={a.epochs}" for s in stages if int(cfg.method[s].epochs) > 0]]


def main() -> None:
    a = build_parser().parse_args()
    torch.set_num_threads(a.threads)
    from audiocil.run import run

    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for method in a.methods.split(","):
        rows = {}
        for mode in ("recompute", "cache"):
            run_dir = Path(a.out) / f"{method}-{mode}"
            shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run each time
            t0 = time.time()
            res = run(compose(overrides(method, mode, a), a.root), run_dir)
            later = res["cost_per_task"][1:]
            rate = sum(c["train_samples"] for c in later) / sum(c["train_time_s"] for c in later)
            rows[mode] = (rate, time.time() - t0, res["accuracy_matrix"])
        (rc, wr, mr), (cc, wc, mc) = rows["recompute"], rows["cache"]
        print(f"{method}: later tasks {rc:.1f} -> {cc:.1f} samples/s (x{cc / rc:.2f}); "
              f"run {wr:.0f} s -> {wc:.0f} s; same accuracy matrix: {mr == mc}", flush=True)
        json.dump(rows, open(Path(a.out) / f"{method}.json", "w"))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
