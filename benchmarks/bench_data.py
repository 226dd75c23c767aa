"""Data-pipeline benchmark: is training compute-bound?

    make bench-data                      # gm100 (the default dataset), both backbones
    make bench-data ARGS="--dataset synth20 --backbones smallcnn"

Prints, on this machine: cold feature extraction (clips/s), samples/s served from the cache,
model-only training samples/s per backbone on tensors already in memory, end-to-end training
samples/s through the datamodule and a Lightning Trainer, and their ratio (goal >= 0.9).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate

from audiocil.config import compose
from audiocil.data.cache import cached_array
from audiocil.data.datamodule import CILDataModule
from audiocil.run import build_strategy
from audiocil.scenarios.standard import Task


def cfg_for(dataset: str, backbone: str, root: str, batch: int):
    return compose([f"dataset={dataset}", f"backbone={backbone}", f"paths.root_dir={root}",
                    f"method.batch_size={batch}", "method=finetune"])


def model_only(strategy, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """fwd + bwd + SGD step on one in-memory batch, repeated."""
    opt = torch.optim.SGD(strategy.parameters(), lr=0.01, momentum=0.9)
    strategy.train()
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(strategy.network(x)[0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * len(y) / (time.perf_counter() - t0)


def end_to_end(strategy, dm, steps: int) -> float:
    """Lightning fit over the datamodule for ``steps`` batches (data + model + loop)."""
    class Clock(L.Callback):  # from the third batch on: samples actually trained / time
        samples = 0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 2:
                self.t0 = time.perf_counter()
            if batch_idx >= 2:
                self.samples += len(batch[1])

        def on_train_epoch_end(self, trainer, pl_module):
            self.t1 = time.perf_counter()

    clock = Clock()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=steps + 2, limit_val_batches=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[clock], accelerator="cpu")
    trainer.fit(strategy, datamodule=dm)
    if clock.samples < steps * dm.batch_size:
        raise ValueError(f"the task has too few clips for {steps} timed batches")
    return clock.samples / (clock.t1 - clock.t0)


def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/test_docs_commands.py parses the documented ones with it)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="gm100")
    ap.add_argument("--backbones", nargs="+", default=["smallcnn", "resnet18"])
    ap.add_argument("--root", default=".", help="paths.root_dir (where the dataset is made)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cold-clips", type=int, default=1000, help="clips for the cold extraction")
    return ap


def main() -> None:
    args = build_parser().parse_args()

    cfg = cfg_for(args.dataset, args.backbones[0], args.root, args.batch)
    dataset = instantiate(cfg.dataset.loader)
    print(f"dataset {dataset.name}: {dataset.num_classes} classes, "
          f"{len(dataset.splits['train'])} train clips of {dataset.clip_seconds} s, "
          f"torch threads {torch.get_num_threads()}")

    # 1. cold extraction into a throw-away cache
    from audiocil.data.catalog import AudioDataset, ClipTable
    t = dataset.splits["train"]
    n = min(args.cold_clips, len(t))
    sub = AudioDataset(dataset.name + "-bench", dataset.class_names, dataset.sample_rate,
                       dataset.clip_seconds, dataset.multilabel,
                       {s: ClipTable(t.paths[:n], t.targets[:n]) for s in ("train", "val", "test")})
    tmp = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    cached_array(sub, "train", tmp, dict(cfg.dataset.frontend))
    cold = n / (time.perf_counter() - t0)
    shutil.rmtree(tmp)
    print(f"cold feature extraction      {cold:9.1f} clips/s  ({n} clips)")

    # 2. served from the (warm) cache
    order = list(range(dataset.num_classes))
    dm = CILDataModule(dataset, order, cfg.paths.cache_dir, dict(cfg.dataset.frontend),
                       num_workers=cfg.data.num_workers)
    dm.prepare()
    k = dataset.num_classes  # every class: enough batches for the timed steps
    task = Task(0, tuple(range(k)), 0, k)
    dm.set_own(dm.indices_of(range(k)))
    dm.set_task(0, dm.own_indices, k, args.batch)
    t0 = time.perf_counter()
    served = sum(len(b[1]) for b in dm.train_dataloader())
    print(f"served from cache            {served / (time.perf_counter() - t0):9.1f} samples/s")

    # 3-4. per backbone: model-only vs end-to-end
    for bb in args.backbones:
        cfg = cfg_for(args.dataset, bb, args.root, args.batch)
        strategy = build_strategy(cfg)
        strategy.before_task(task, dm)
        x = dm.data["train"][dm.own_indices[: args.batch]]
        y = dm.targets["train"][dm.own_indices[: args.batch]]
        mo = model_only(strategy, x, y, args.steps)
        e2e = end_to_end(strategy, dm, args.steps)
        print(f"{bb:10s} model-only        {mo:9.1f} samples/s")
        print(f"{bb:10s} end-to-end        {e2e:9.1f} samples/s   ratio {e2e / mo:.2f}")


if __name__ == "__main__":
    main()
