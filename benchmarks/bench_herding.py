"""Exemplar selection + class means at the end of a task: the time they take.

Two figures, each the median of ``--repeats``:

* ``features``: herding ``--per-class`` exemplars in each of ``--classes`` classes of
  ``--clips`` clips with ``--dim``-d features already computed (on ``--device``), then the
  unit-norm class means of the exemplars, as a method's end of task asks for them;
* ``after_task``: a real iCaRL ``after_task`` (exemplars of the new classes, then class
  means of every class, embedding included) on gm100-shaped data: the last of 5 tasks
  (80 known + 20 new classes, 100 training clips of 128 x 63 log-mels per class, random
  values, a memory of 2000), with ``--backbone``.

The script runs on the code it is given, so the same command measures the code before
batched herding (per-class herding on the CPU, class means re-embedded) and after:

    PYTHONPATH=src python benchmarks/bench_herding.py --classes 100 --clips 100 --dim 512
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", type=int, default=100, help="classes herded at once (features)")
    p.add_argument("--clips", type=int, default=100, help="candidate clips per class (features)")
    p.add_argument("--dim", type=int, default=512, help="feature width (features)")
    p.add_argument("--per-class", type=int, default=20, help="exemplars per class (features)")
    p.add_argument("--backbone", default="smallcnn", help="backbone of the after_task figure")
    p.add_argument("--skip-after-task", action="store_true", help="only the features figure")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    return p


def batched() -> bool:
    """Whether this code herds all of a task's classes at once (the code after issue 13.4)."""
    import audiocil.data.memory as memory

    return hasattr(memory, "FeatureBank")


def time_features(a: argparse.Namespace) -> float:
    """Seconds to select the exemplars of every class and compute their class means."""
    from audiocil.data.memory import ExemplarMemory
    from audiocil.heads.functional import class_mean

    g = torch.Generator().manual_seed(0)
    feats = torch.randn(a.classes * a.clips, a.dim, generator=g).to(a.device)  # (N, D)
    classes = {c: np.arange(c * a.clips, (c + 1) * a.clips) for c in range(a.classes)}

    def embed(idx: np.ndarray) -> torch.Tensor:  # a lookup: the features are computed
        return feats[torch.from_numpy(idx).to(a.device)]

    def once() -> float:
        memory = ExemplarMemory(size=None, per_class=a.per_class)
        t0 = time.perf_counter()
        if batched():
            from audiocil.data.memory import FeatureBank

            bank = FeatureBank(embed)
            memory.update(classes, bank, a.classes)
            means = bank.class_means(memory.exemplars, a.classes, a.dim)
        else:  # the methods' loop before: one class at a time, on the CPU
            memory.update(classes, lambda idx: embed(idx).float().cpu(), a.classes)
            means = torch.stack([class_mean(embed(memory.exemplars[c]).float().cpu())
                                 for c in range(a.classes)]).to(a.device)
        if means.is_cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    once()  # warm-up
    return statistics.median(once() for _ in range(a.repeats))


class ShapedData:
    """A stand-in for the datamodule: gm100's training split as iCaRL's end of task reads it
    (100 classes x 100 clips of (128, 63) log-mels, random float16 values)."""

    def __init__(self, n_classes: int = 100, clips: int = 100, known: int = 80) -> None:
        g = torch.Generator().manual_seed(0)
        self.data = {"train": torch.randn(n_classes * clips, 128, 63, generator=g).half()}
        self.position = np.repeat(np.arange(n_classes), clips)
        self.own_indices = np.flatnonzero(self.position >= known)
        self.embeddings = None

    def by_class(self, positions, split: str = "train", within=None) -> dict[int, np.ndarray]:
        pool = np.arange(len(self.position)) if within is None else np.asarray(within)
        return {int(c): pool[self.position[pool] == c] for c in positions}


def time_after_task(a: argparse.Namespace) -> float:
    """Seconds of iCaRL's ``after_task`` at the last of 5 gm100 tasks (embedding included)."""
    from audiocil.config import compose
    from audiocil.core import Task
    from audiocil.run import build_strategy

    cfg = compose(["method=icarl", "dataset=gm100", f"backbone={a.backbone}", "method.memory.size=2000"])
    strategy = build_strategy(cfg).to(a.device)
    strategy.grow_head(100)
    dm = ShapedData()
    task = Task(4, tuple(range(80, 100)), 80, 100)
    strategy.task = task
    rng = np.random.default_rng(0)
    old = {c: rng.permutation(np.arange(c * 100, (c + 1) * 100))[:25] for c in range(80)}  # 2000 // 80

    def once() -> float:
        strategy.memory.exemplars = {c: v.copy() for c, v in old.items()}
        t0 = time.perf_counter()
        strategy.after_task(task, dm)
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    once()
    return statistics.median(once() for _ in range(a.repeats))


def main() -> None:
    a = build_parser().parse_args()
    torch.set_num_threads(a.threads)
    code = "batched (after)" if batched() else "one class at a time (before)"
    print(f"code: {code}; device {a.device}, {a.threads} threads; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    t = time_features(a)
    print(f"features: {a.classes} classes x {a.clips} clips, {a.dim}-d, {a.per_class} per class: "
          f"{t:.3f} s", flush=True)
    if not a.skip_after_task:
        t = time_after_task(a)
        print(f"after_task: iCaRL, {a.backbone}, 80 + 20 classes of gm100's shape, memory 2000: "
              f"{t:.2f} s", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
