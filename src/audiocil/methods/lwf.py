"""LwF: Learning without Forgetting (Li & Hoiem, ECCV 2016; TPAMI 2017), in the
class-incremental form run by the reference toolbox (PyCIL's ``models/lwf.py``).

No exemplars. At the start of each task after the first, the network learnt so far is
frozen as a teacher. On the new task's clips the loss is cross-entropy over the *new*
classes' logits plus ``lamda`` times the distillation of the teacher's softened outputs
into the student's old-class logits (:func:`audiocil.losses.distillation.kd_loss`, soft
cross-entropy at temperature ``T``, no T² factor). PyCIL's settings: ``T`` = 2,
``lamda`` = 3; SGD lr 0.1, 200 epochs (milestones 60/120/160, weight decay 5e-4) on the
first task, 250 epochs (60/120/180/220, weight decay 2e-4) afterwards, batch 128.

Because the new classes are fitted against each other only, nothing pushes their logits
above the old classes' directly: in short runs new-class accuracy rises slowly.
``new_classes_only_ce: false`` gives the variant with cross-entropy over every seen class
(as FACIL's and Avalanche's LwF), which learns new classes fast and forgets old ones more.

The teacher sees the same front-end output as the student (so the two agree on any
SpecAugment masks, as they would on an augmented image in PyCIL). It exists only while a
task is learnt: made in :meth:`before_task`, dropped in :meth:`after_task`, so it is
neither in the task checkpoints nor counted in ``params_per_task``.

In the multi-label scenario the scenario's objective makes the same loss of sigmoids:
binary cross-entropy on the new classes' logits (or every seen class's) plus ``lamda`` times
the BCE of the student's old-class sigmoids towards the teacher's at temperature ``T``
(:class:`audiocil.objectives.MultiLabel`).
"""

from __future__ import annotations

import torch

from audiocil.methods.base import DistillingStrategy


class LwF(DistillingStrategy):
    """Args (beyond :class:`Strategy`'s):
        T: distillation temperature (PyCIL: 2).
        lamda: weight of the distillation term (PyCIL: 3 for LwF, 1 for iCaRL).
        new_classes_only_ce: in tasks > 0, cross-entropy over the new classes' logits only
            (PyCIL's LwF) rather than over every seen class (iCaRL).
        kd_scale_t2: multiply the distillation by T² (Hinton et al.); off as in PyCIL.
    """

    scenarios = ("standard", "fewshot", "multilabel")

    def __init__(self, *args, T: float, lamda: float, new_classes_only_ce: bool,
                 kd_scale_t2: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if new_classes_only_ce and self.memory is not None:
            raise ValueError("new_classes_only_ce needs memory: null "
                             "(exemplars of old classes would get negative targets)")
        self.T, self.lamda = float(T), float(lamda)
        self.new_classes_only_ce, self.kd_scale_t2 = new_classes_only_ce, kd_scale_t2

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        net, obj = self.network, self.objective
        z = net.frontend(x)
        logits = net.head(net.backbone(z))
        k = self.known
        if k == 0:
            return obj.loss(logits, y), {}
        assert self.teacher is not None, "before_task makes the teacher of every task > 0"
        ce = obj.loss(logits, y, lo=k if self.new_classes_only_ce else 0)
        kd = obj.distill(logits[:, :k], self.frozen(self.teacher, z), self.T, self.kd_scale_t2)
        return ce + self.lamda * kd, {"ce": ce.detach(), "kd": kd.detach()}
