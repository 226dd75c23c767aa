"""How hard is gm100? Train a small CNN jointly on all classes and report test accuracy.

A dataset that a small CNN masters (99 %) tells continual-learning methods apart poorly;
gm100's recording-variation defaults are chosen so that this figure stays clearly below
saturation. Standalone (no Lightning, no Hydra): build or reuse the dataset, compute
log-mels (128 bins, n_fft 2048, hop 1024 at 16 kHz, as ``conf/dataset/gm100.yaml``), train
``audiocil.backbones.smallcnn.SmallCNN`` + a linear head with Adam, evaluate on test.

    PYTHONPATH=src python benchmarks/gm100_difficulty.py --data-dir outputs/data --epochs 12
    # a variation setting other than the defaults (builds another copy of the dataset):
    PYTHONPATH=src python benchmarks/gm100_difficulty.py --set snr_db_min=10 --set detune_cents=0
    # the dataset as built before version 2 (the README's figure was measured on it):
    PYTHONPATH=src python benchmarks/gm100_difficulty.py --data-dir outputs/data --format-version 1

Prints one line per epoch and a final JSON line with the figures.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import soundfile as sf
import torch
from torch import nn


def log_mels(paths: list[str], frontend: dict, batch: int = 256) -> torch.Tensor:
    """(N, 128, T) log-mel features of the listed 16 kHz clips."""
    from audiocil.data.frontend import LogMel

    mel = LogMel(**frontend)
    out = []
    for i in range(0, len(paths), batch):
        waves = np.stack([sf.read(p, dtype="float32")[0] for p in paths[i:i + batch]])
        with torch.no_grad():
            out.append(mel(torch.from_numpy(waves)).squeeze(1))
    return torch.cat(out)


def make_backbone(width: int) -> nn.Module:
    from audiocil.backbones.smallcnn import SmallCNN

    return SmallCNN(in_channels=1, width=width)


def train_eval(x: dict, y: dict, n_classes: int, epochs: int, width: int = 32,
               batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
               log=print) -> dict:
    """Joint training on x['train'] -> accuracy on x['val'] and x['test'] after each epoch."""
    torch.manual_seed(seed)
    mean = x["train"].mean(dim=(0, 2), keepdim=True)
    std = x["train"].std(dim=(0, 2), keepdim=True).clamp(min=1e-5)
    xs = {k: ((v - mean) / std).unsqueeze(1) for k, v in x.items()}
    backbone = make_backbone(width)
    model = nn.Sequential(backbone, nn.Linear(backbone.out_dim, n_classes))
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(xs["train"]) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)

    def accuracy(split: str) -> float:
        model.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(xs[split]), 256):
                pred = model(xs[split][i:i + 256]).argmax(1)
                correct += int((pred == y[split][i:i + 256]).sum())
        return correct / len(xs[split])

    history = []
    for epoch in range(1, epochs + 1):
        t0 = time.monotonic()
        model.train()
        order = torch.randperm(len(xs["train"]), generator=gen)
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            loss = nn.functional.cross_entropy(model(xs["train"][idx]), y["train"][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        row = {"epoch": epoch, "loss": total / len(order), "val_acc": accuracy("val"),
               "test_acc": accuracy("test"), "seconds": time.monotonic() - t0}
        history.append(row)
        log(f"epoch {epoch:2d}  loss {row['loss']:.3f}  val {row['val_acc']:.3f}  "
            f"test {row['test_acc']:.3f}  ({row['seconds']:.0f} s)")
    return {"params": n_params, "history": history, "test_acc": history[-1]["test_acc"],
            "val_acc": history[-1]["val_acc"]}


def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/test_docs_commands.py parses the documented ones with it)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="outputs/data")
    ap.add_argument("--seed", type=int, default=0, help="dataset seed")
    ap.add_argument("--n-classes", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--width", type=int, default=32, help="SmallCNN width (32: ~0.4M params)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--format-version", type=int, default=None,
                    help="gm100 dataset version (default: the current one)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a variation parameter (repeatable), e.g. snr_db_min=10")
    return ap


def main() -> None:
    args = build_parser().parse_args()
    torch.set_num_threads(args.threads)

    from audiocil.data.embedded.gm100 import load_gm100

    variation = {k: float(v) for k, v in (s.split("=", 1) for s in args.set)}
    t0 = time.monotonic()
    version = {} if args.format_version is None else {"format_version": args.format_version}
    ds = load_gm100(args.data_dir, seed=args.seed, n_classes=args.n_classes, **version,
                    **variation)
    t_build = time.monotonic() - t0
    frontend = dict(sample_rate=16000, n_fft=2048, hop_length=1024, n_mels=128, f_min=0.0,
                    f_max=8000.0, log_floor=1e-6)
    t0 = time.monotonic()
    x = {s: log_mels(t.paths, frontend) for s, t in ds.splits.items()}
    y = {s: torch.from_numpy(t.targets) for s, t in ds.splits.items()}
    t_feat = time.monotonic() - t0
    print(f"{ds.name}: {ds.num_classes} classes, " + ", ".join(
        f"{s} {len(t)}" for s, t in ds.splits.items()) + f"; features {tuple(x['train'].shape)}"
        f" in {t_feat:.0f} s (dataset ready in {t_build:.0f} s)", flush=True)
    res = train_eval(x, y, ds.num_classes, args.epochs, width=args.width,
                     batch_size=args.batch_size, lr=args.lr,
                     log=lambda m: print(m, flush=True))
    print(json.dumps({"dataset": ds.name, "root": ds.info.get("embedded_root"),
                      "format_version": args.format_version,
                      "content_sha256": ds.info.get("content_sha256"),
                      "n_classes": ds.num_classes, "epochs": args.epochs, "width": args.width,
                      "params": res["params"], "batch_size": args.batch_size, "lr": args.lr,
                      "variation": variation or "defaults", "val_acc": res["val_acc"],
                      "test_acc": res["test_acc"],
                      "train_seconds": round(sum(h["seconds"] for h in res["history"]))}))


if __name__ == "__main__":
    main()
