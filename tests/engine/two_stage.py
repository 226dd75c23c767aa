"""A test method (not a user method) that needs what the spine offers: two training stages,
a cosine head with several proxies per class, and the backbone's feature maps. It is one
module and one short yaml (``tests/engine/conf/method/two_stage.yaml``)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from audiocil.core import Stage, Task
from audiocil.heads import CosineHead
from audiocil.methods.base import Strategy


class TwoStage(Strategy):
    """Stage ``train``: cross-entropy on a cosine head plus a small penalty on the stage maps;
    stage ``head``: the head alone (the backbone frozen, BatchNorm statistics included)."""

    scenarios = ("standard",)

    def __init__(self, *args, proxies: int, map_weight: float, head_stage: Mapping,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.network.head = CosineHead(self.network.backbone.out_dim, proxies=proxies,
                                       scale_init=8.0)
        self.map_weight, self.head_stage = float(map_weight), dict(head_stage)
        self.seen: list[tuple[int, str, int, tuple[str, ...]]] = []

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        h, maps = self.network.backbone(self.network.frontend(x), return_maps=True)
        pod = sum(m.pow(2).mean() for m in maps) / len(maps)
        return self.objective.loss(self.network.head(h), y) + self.map_weight * pod, {"maps": pod}

    def stages(self, task: Task, dm) -> list[Stage]:
        head = Stage("head", int(self.head_stage["epochs"]), optim=self.head_stage,
                     params=lambda: list(self.network.head.parameters()))
        return [self.train_stage(task), head]

    def on_train_epoch_start(self) -> None:
        trained = tuple(n for n, p in self.named_parameters() if p.requires_grad)
        self.seen.append((self.task.index, self.stage.name,
                          self.trainer.current_epoch, trained))
