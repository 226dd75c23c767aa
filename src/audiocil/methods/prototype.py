"""The prototype baseline of few-shot class-incremental learning, and what the few-shot
methods share (:class:`FewShotStrategy`).

Prototype (the "decoupled" baseline of few-shot CIL: a cosine nearest-class-mean
classifier on a frozen encoder, e.g. Zhang et al., CEC, CVPR 2021, and the "avg_cos" mode
of the META-SC / PAN code): the base session trains the encoder and a linear head with
cross-entropy, as :class:`~audiocil.methods.base.Strategy`; the epoch with the best
accuracy on the base classes' validation clips is kept. Then the encoder is frozen for
good: every class is represented by the mean embedding of its training clips (all of them
for base classes, the K shots for new ones) and a clip goes to the class of highest cosine
similarity. Nothing is trained after the base session, so nothing is forgotten.

It also runs in ``scenario=standard`` (new classes' means from all their clips).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

import numpy as np
import torch

from audiocil.core import Stage, Task
from audiocil.losses.fewshot import class_means, cosine_logits
from audiocil.methods.base import Strategy

log = logging.getLogger(__name__)


class FewShotStrategy(Strategy):
    """A strategy whose base session is trained by Lightning (stage ``train``) and whose
    incremental sessions are the method's own end-of-task work on a frozen encoder.

    Base session: the epoch with the best top-1 accuracy on the validation clips (which the
    few-shot scenario restricts to the base classes) is restored at the end of training;
    with no validation data (``trainer.limit_val_batches=0``) the last epoch is kept.

    A method classifies encoder embeddings (:meth:`classify`), and nothing else
    (:attr:`~audiocil.methods.base.Strategy.evaluates_embeddings`): once the encoder is frozen
    (after the base session) each clip is embedded once for the whole run, trials included;
    a session then costs its classifier update and the classification of cached embeddings.
    """

    evaluates_embeddings = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.best_epoch: int | None = None
        self._best: dict | None = None  # {"acc", "epoch", "state"} of the best epoch so far
        self._val_hits = torch.zeros(2)

    def stages(self, task: Task, dm) -> list[Stage]:
        """The base session's training; nothing is trained by Lightning in later sessions."""
        return [self.train_stage(task)] if task.known == 0 else []

    def train_stage(self, task: Task, name: str = "train", optim=None, **kwargs) -> Stage:
        """The base session's ``train`` stage validates every epoch: it keeps the best one."""
        if task.known == 0 and name == "train":
            kwargs.setdefault("validate", "every_epoch")
        return super().train_stage(task, name, optim, **kwargs)

    # ---- classification ---------------------------------------------------------------------
    def classify(self, h: torch.Tensor) -> torch.Tensor:
        """(B, C) logits over the seen classes from encoder embeddings (B, D)."""
        return self.network.head(h)

    def embedding_logits(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"cnn": self.classify(h)}

    def session_seed(self, task: Task) -> int:
        return hash((self.seed, task.index, 4231)) % (2**62)

    # ---- best epoch on validation -----------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val_hits = torch.zeros(2, device=self.device)

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y, _ = batch
        hit = (self.eval_logits(x)["cnn"].argmax(1) == y).float()
        self._val_hits += torch.stack([hit.sum(), torch.tensor(float(len(y)), device=hit.device)])
        self.log("val/acc", hit.mean() * 100, prog_bar=True, batch_size=len(y), sync_dist=True)

    def extra_state(self) -> dict:
        return {"best_epoch": self.best_epoch}

    def load_extra_state(self, state: dict) -> None:
        self.best_epoch = state.get("best_epoch")

    def selects_best_epoch(self) -> bool:
        """Only the base session's ``train`` stage keeps its best validation epoch."""
        return self.known == 0 and self.stage is not None and self.stage.name == "train"

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self.selects_best_epoch():
            return
        hits = self.trainer.strategy.reduce(self._val_hits, reduce_op="sum")
        acc = float(hits[0] / hits[1].clamp(min=1))
        if self._best is None or acc > self._best["acc"]:
            state = {k: v.detach().cpu().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)
                     for k, v in self.state_dict().items()}
            self._best = {"acc": acc, "epoch": self.trainer.current_epoch, "state": state}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["fewshot_best"] = self._best  # an epoch checkpoint resumes the search

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._best = checkpoint.get("fewshot_best")

    def on_train_end(self) -> None:
        if self._best is not None:
            self.load_state_dict(self._best["state"])
            self.best_epoch = self._best["epoch"]
            log.info("base session: epoch %d has the best validation accuracy (%.2f %%)",
                     self.best_epoch, self._best["acc"] * 100)
        self._best = None

    # ---- helpers ----------------------------------------------------------------------------
    @torch.no_grad()
    def features_of(self, dm, indices: np.ndarray, embed: Callable | None = None,
                    split: str = "train") -> torch.Tensor:
        """(N, D) embeddings of clips in eval mode, on this device (``embed`` defaults to the
        network's, served once per encoder state by :meth:`embed_indices`)."""
        if embed is None:
            return self.embed_indices(dm, np.asarray(indices), split).to(self.device)
        was = self.training
        self.eval()
        data = dm.data[split]
        out = [embed(data[indices[a:a + 256]].to(self.device)).float()
               for a in range(0, len(indices), 256)]
        self.train(was)
        return torch.cat(out)

    def labelled_features(self, dm, indices: np.ndarray, embed: Callable | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings and class positions of training clips."""
        labels = dm.targets["train"][indices].to(self.device)
        return self.features_of(dm, indices, embed), labels


class Prototype(FewShotStrategy):
    """Args (beyond :class:`Strategy`'s): ``scale`` multiplies the cosine logits (it changes
    no prediction; it only sets the scale of the reported logits)."""

    scenarios = ("standard", "fewshot")

    def __init__(self, *args, scale: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scale = float(scale)
        self.register_buffer("prototypes", torch.zeros(0, self.network.backbone.out_dim))

    def after_task(self, task: Task, dm) -> None:
        feats, labels = self.labelled_features(dm, dm.own_indices)
        means = class_means(feats, labels, range(task.known, task.total))
        self.prototypes = torch.cat([self.prototypes[:task.known], means.to(self.prototypes)])

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        if len(self.prototypes) < self.total:  # the base session, while training
            return self.network.head(h)
        return self.scale * cosine_logits(h, self.prototypes[:self.total])

