"""FeTrIL: Feature Translation for Exemplar-Free Class-Incremental Learning (Petit et al.,
WACV 2023; reference code: PyCIL's ``models/fetril.py``, as in the audio CIL toolbox).

Task 0: the backbone and a linear head are trained with cross-entropy (SGD lr 0.1,
momentum 0.9, 200 epochs, cosine annealing, weight decay 5e-4, batch 128). Then the backbone
is frozen for good (a :class:`FrozenCopy`: no gradient, always in eval mode) and only the
mean feature of each class is kept (``class_means``; no exemplars). At each later task the
task's features are computed once; each old class c is paired with the new class n(c) whose
mean is the most cosine-similar, and the features of n(c) translated by ``mu_c - mu_n(c)``
stand in for c (:mod:`audiocil.losses.fetril`: their mean is exactly ``mu_c``). Only the
linear head is trained on these real + pseudo features (stage ``classifier``: 50 epochs,
SGD lr 0.05, momentum 0.9, weight decay 5e-4, cosine, batch 128), as a Lightning stage whose
data are the feature tensors (:attr:`audiocil.core.Stage.dataset`). The head's old rows are
kept and trained on, as the reference.

``classifier: svm`` also fits the paper's classifier, a linear SVM (scikit-learn
``LinearSVC``, C = 1, squared hinge, one-vs-rest) on the same L2-normalised features after
every task, and reports it as ``svm`` beside the linear head's ``cnn``; its weights are
buffers, so they are in every checkpoint. ``classifier: linear`` (PyCIL's reported
classifier) fits no SVM.

Fixed from the reference: its SVM call at task 0 reads a feature set that only later tasks
build (an AttributeError): here the task-0 SVM is fitted on the base classes' features. The
reference only logs the SVM's test accuracy; here it is a reported classifier. Deviation:
the ``classifier`` stage skips the per-epoch validation pass (it would run the frozen
backbone over the validation clips every epoch for a progress-bar figure; nothing selects
on it).

Scenarios: ``standard`` and ``fewshot`` (the AudioCIL README reports FeTrIL in few-shot CIL:
after the base session each session's K shots per class give both the new classes' real
features and, translated, the old classes' pseudo-features). Multi-label is refused: a class
mean and the translation of one class's clips onto another are defined for clips of one
class; a multi-label clip's other labels would be carried over unchanged or lost.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from audiocil.core import Stage, Task
from audiocil.heads.functional import class_means
from audiocil.losses.fetril import nearest_new_class, pseudo_features
from audiocil.methods.base import FrozenCopy, Strategy, structural
from audiocil.schema import POS, Choice, Int


class FeTrIL(Strategy):
    """Args (beyond :class:`Strategy`'s):
        classifier: ``linear`` (the head only) or ``svm`` (also a reported LinearSVC).
        svm_C: the SVM's C (1.0).
        svm_max_iter: liblinear's iteration cap (scikit-learn's default, 1000).
    """

    scenarios = ("standard", "fewshot")
    config_ranges = {"classifier": Choice("linear", "svm"), "svm_C": POS, "svm_max_iter": Int(1)}
    evaluates_embeddings = True  # the frozen backbone's clips are embedded once for the run

    def __init__(self, *args, classifier: str, svm_C: float, svm_max_iter: int,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if classifier not in ("linear", "svm"):
            raise ValueError(f"method.classifier must be linear|svm, got {classifier!r}")
        if self.memory is not None:
            raise ValueError("method=fetril is exemplar-free: set method.memory: null")
        self.classifier, self.svm_C, self.svm_max_iter = classifier, float(svm_C), int(svm_max_iter)
        dim = self.network.backbone.out_dim
        self.register_buffer("class_means", torch.zeros(0, dim))  # (C, D) stored means
        self.register_buffer("svm_weight", torch.zeros(0, dim))   # (C, D)
        self.register_buffer("svm_bias", torch.zeros(0))          # (C,)
        self._features: tuple[int, torch.Tensor, torch.Tensor] | None = None

    @property
    def frozen(self) -> bool:
        return isinstance(self.network.backbone, FrozenCopy)

    @structural
    def freeze_backbone(self) -> None:
        """After task 0: the backbone never changes again (BatchNorm statistics included)."""
        self.network.backbone = FrozenCopy(self.network.backbone)

    # ---- features ------------------------------------------------------------------------
    def task_features(self, dm) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, D) frozen features and (N,) class positions of the task's own clips; computed
        once per task (they cannot change: the backbone is frozen)."""
        task = self.task
        assert task is not None and self.frozen
        if self._features is None or self._features[0] != task.index:
            idx = np.asarray(dm.own_indices)
            self._features = (task.index, self.embed_indices(dm, idx),
                              dm.targets["train"][idx].long())
        return self._features[1], self._features[2]

    def feature_set(self, dm) -> TensorDataset:
        """Items (feature, class, i): the new classes' real features, then for each old class
        c the features of its nearest new class n(c) translated onto its stored mean."""
        feats, labels = self.task_features(dm)
        k, new = self.known, range(self.known, self.total)
        xs, ys = [feats], [labels]
        if k > 0:
            mu_new = class_means(feats, labels, new)  # (new, D)
            old = self.class_means[:k].to(feats)
            for c, n in enumerate(nearest_new_class(old, mu_new).tolist()):
                xs.append(pseudo_features(feats[labels == k + n], mu_new[n], old[c]))
                ys.append(torch.full((len(xs[-1]),), c, dtype=torch.long))
        x, y = torch.cat(xs), torch.cat(ys)
        return TensorDataset(x, y, torch.arange(len(y)))

    def make_feature_set(self, dm) -> None:
        """The classifier stage's items, once per stage (the features do not change)."""
        self._feature_set = self.feature_set(dm)

    # ---- stages --------------------------------------------------------------------------
    def stages(self, task: Task, dm) -> list[Stage]:
        if task.index == 0 or not self.frozen:
            return [self.train_stage(task)]
        return [self.train_stage(task, "classifier", begin=self.make_feature_set,
                                 dataset=lambda epoch: self._feature_set,
                                 params=lambda: list(self.network.head.parameters()),
                                 loss=self.feature_loss, validate=False)]

    def feature_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Cross-entropy of the head on a batch of (real or pseudo) features (B, D)."""
        return self.objective.loss(self.network.head(x), y), {}

    def after_task(self, task: Task, dm) -> None:
        if not self.frozen:
            self.freeze_backbone()
        feats, labels = self.task_features(dm)
        means = class_means(feats, labels, range(task.known, task.total))
        self.class_means = torch.cat([self.class_means[:task.known], means.to(self.class_means)])
        if self.classifier == "svm":
            data = self.feature_set(dm)
            self.fit_svm(data.tensors[0], data.tensors[1])
        self._features = None

    # ---- the SVM -------------------------------------------------------------------------
    def fit_svm(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One-vs-rest LinearSVC on L2-normalised features (N, D) of classes 0..total-1."""
        from sklearn.svm import LinearSVC

        svm = LinearSVC(C=self.svm_C, max_iter=self.svm_max_iter, random_state=self.seed)
        svm.fit(F.normalize(x.double(), dim=1).numpy(), y.numpy())
        w = torch.as_tensor(svm.coef_, dtype=torch.float32)
        b = torch.as_tensor(svm.intercept_, dtype=torch.float32)
        if len(svm.classes_) == 2:  # sklearn keeps one row for two classes: class 1's margin
            w, b = torch.cat([torch.zeros_like(w), w]), torch.cat([torch.zeros_like(b), b])
        if svm.classes_.tolist() != list(range(self.total)):  # every class has (pseudo) features
            raise RuntimeError(f"FeTrIL SVM: classes {svm.classes_.tolist()}, expected 0..{self.total - 1}")
        self.svm_weight, self.svm_bias = w.to(self.svm_weight), b.to(self.svm_bias)

    def embedding_logits(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"cnn": self.network.head(h)}
        if self.classifier == "svm":
            out["svm"] = F.normalize(h.float(), dim=1) @ self.svm_weight.T + self.svm_bias
        return out

    def eval_logits_names(self) -> tuple[str, ...]:
        return ("cnn", "svm") if self.classifier == "svm" else ("cnn",)
