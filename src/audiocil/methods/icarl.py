"""iCaRL: Incremental Classifier and Representation Learning (Rebuffi et al., CVPR 2017),
as run by the reference toolbox (PyCIL's ``models/icarl.py``).

Representation learning: cross-entropy over every seen class on the new task's clips plus
the exemplars, plus the distillation of the previous network's softened outputs into the
old-class logits (weight 1, ``T`` = 2; PyCIL's softmax distillation rather than the paper's
sigmoid binary cross-entropy). Exemplars: a herding memory of 2000 clips shared by all seen
classes. Classification: besides the trained head ("cnn"), the nearest mean of exemplars
("nme"): after each task, the mean of the L2-normalised embeddings of each class's
exemplars (renormalised), computed with the current network; a clip goes to the class whose
mean is nearest in squared Euclidean distance between normalised vectors. The paper and its
code also average the embeddings of horizontally flipped images; flipping a spectrogram in
time or frequency is not label-preserving for audio, so no flip is used (PyCIL's current
code uses none either). PyCIL's schedule: SGD lr 0.1, 200 epochs (60/120/170, weight decay
5e-4), then 170 epochs (80/120, weight decay 2e-4), batch 128.
"""

from __future__ import annotations

import torch

from audiocil.heads.functional import class_mean, nme_logits  # noqa: F401 (class_mean: its old home)
from audiocil.methods.lwf import LwF


class ICaRL(LwF):
    """Args: as :class:`LwF` (``lamda`` 1, cross-entropy over all classes), plus a memory."""

    #: not LwF's multi-label support: herding and class means need single-label clips
    scenarios = ("standard", "fewshot")
    keeps_exemplar_means = True  # after each task, from the network just trained

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.memory is None:
            raise ValueError("method=icarl needs a memory: set method.memory.size or method.memory.per_class")
        self.register_buffer("class_means", torch.zeros(0, self.network.backbone.out_dim))

    def eval_logits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, feats = self.network(x)
        return {"cnn": logits, "nme": nme_logits(feats, self.class_means)}

    def eval_logits_names(self) -> tuple[str, ...]:
        return ("cnn", "nme")
