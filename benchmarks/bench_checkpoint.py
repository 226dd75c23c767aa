"""What an epoch checkpoint costs against the work it protects (issue 13 item 4).

For each backbone: the time of one training batch of an iCaRL-shaped step (the student's
forward, backward and SGD step with momentum, plus a frozen teacher's forward, batch 128 on
(1, 128, 63) log-mels: the peer protocol's input), and the time of writing ``last.ckpt``
the way :class:`audiocil.engine.sequencer.EpochCheckpoint` does (``Trainer.save_checkpoint``
of a module holding the network, its teacher and the optimizer's momentum, to a temporary
file then renamed), synchronously, and how long training is stalled when it is written in
the background (the tensors are copied first; the copy is the stall). It prints the ratio of
a checkpoint to an epoch for a few epoch sizes (batches per epoch) and the smallest
checkpoint interval that keeps the checkpoints under 1 % of the training time.

The module is a stand-in (``Standin``) with the state of an iCaRL checkpoint (the network,
the teacher, SGD momentum); it does not read data: batches are random tensors.

    PYTHONPATH=src python benchmarks/bench_checkpoint.py --backbones smallcnn,resnet18
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbones", default="smallcnn,resnet18")
    p.add_argument("--batches", type=int, default=4, help="timed training batches (after 1 warm-up)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--n-mels", type=int, default=128)
    p.add_argument("--frames", type=int, default=63)
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--writes", type=int, default=3, help="checkpoint writes timed (median)")
    p.add_argument("--epoch-batches", default="4,8,32",
                   help="epoch sizes to compare with (batches); 4: the peer protocol's later "
                        "tasks (5 x 54 new clips + 200 exemplars), 32: gm100's quickstart tasks "
                        "at batch 128")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dir", default=None, help="where the checkpoints are written (default: a temporary folder)")
    return p


def backbone(name: str) -> nn.Module:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    conf = Path(__file__).resolve().parents[1] / "conf" / "backbone" / f"{name}.yaml"
    node = OmegaConf.load(conf)
    node.pop("name", None)
    return instantiate(node)


class Standin(L.LightningModule):
    """An iCaRL-shaped step: CE + distillation from a frozen teacher."""

    def __init__(self, net: nn.Module, classes: int) -> None:
        super().__init__()
        self.network = nn.Sequential(net, nn.Linear(net.out_dim, classes))
        self.teacher = copy.deepcopy(self.network).requires_grad_(False).eval()
        self.batch_seconds: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.network(x)
        with torch.no_grad():
            old = self.teacher(x)
        k = logits.shape[1] // 2
        kd = F.kl_div(F.log_softmax(logits[:, :k] / 2, 1), F.softmax(old[:, :k] / 2, 1),
                      reduction="batchmean")
        return F.cross_entropy(logits, y) + kd

    def on_train_batch_start(self, batch, batch_idx):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.batch_seconds.append(time.perf_counter() - self._t0)

    def configure_optimizers(self):
        return torch.optim.SGD(self.network.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)


def measure(name: str, a: argparse.Namespace, where: Path) -> dict:
    torch.manual_seed(0)
    model = Standin(backbone(name), a.classes)
    n = a.batches + 1
    x = torch.randn(n * a.batch_size, 1, a.n_mels, a.frames)
    y = torch.randint(0, a.classes, (n * a.batch_size,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=a.batch_size)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, loader)
    batch_s = statistics.mean(model.batch_seconds[1:])  # the first batch warms up
    path = where / f"{name}.ckpt"
    sync = []
    for _ in range(a.writes):
        t0 = time.perf_counter()
        tmp = path.with_name(path.name + ".tmp")
        trainer.save_checkpoint(tmp)
        tmp.replace(path)
        sync.append(time.perf_counter() - t0)
    stall = []
    for _ in range(a.writes):  # the copy taken on the training thread before a background write
        t0 = time.perf_counter()
        ckpt = trainer._checkpoint_connector.dump_checkpoint(False)
        _ = [t.detach().clone() for t in _tensors(ckpt)]
        stall.append(time.perf_counter() - t0)
    return {"backbone": name, "params_m": sum(p.numel() for p in model.network.parameters()) / 1e6,
            "ckpt_mb": path.stat().st_size / 2**20, "batch_s": batch_s,
            "write_s": statistics.median(sync), "stall_s": statistics.median(stall)}


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def main(argv: list[str] | None = None) -> None:
    a = build_parser().parse_args(argv)
    torch.set_num_threads(a.threads)
    sizes = [int(s) for s in a.epoch_batches.split(",")]
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        rows = [measure(b, a, Path(tmp)) for b in a.backbones.split(",")]
    print(f"\nload average {os.getloadavg()[0]:.2f}, torch threads {a.threads}, batch {a.batch_size}, "
          f"input (1, {a.n_mels}, {a.frames})")
    print(f"{'backbone':<10}{'params M':>9}{'ckpt MB':>9}{'batch s':>9}{'write s':>9}{'stall s':>9}"
          + "".join(f"{f'ratio@{s}':>10}{f'n@{s}':>6}" for s in sizes))
    for r in rows:
        line = (f"{r['backbone']:<10}{r['params_m']:>9.2f}{r['ckpt_mb']:>9.1f}{r['batch_s']:>9.3f}"
                f"{r['write_s']:>9.3f}{r['stall_s']:>9.3f}")
        for s in sizes:
            ratio = r["write_s"] / (s * r["batch_s"])  # one write against one epoch
            line += f"{ratio:>10.3f}{max(1, -(-ratio // 0.01)):>6.0f}"
        print(line)
    print("ratio@B: one synchronous write / one epoch of B batches; n@B: the smallest interval "
          "(epochs) that keeps synchronous writes under 1 % of training")


if __name__ == "__main__":
    main()
