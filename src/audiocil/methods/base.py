"""The strategy base class every CIL method builds on.

A strategy is a LightningModule with a growing network and hooks that the task sequencer
(:mod:`audiocil.engine.sequencer`) calls for each task:

* :meth:`before_task` grows the network for the task's classes;
* :meth:`stages` lists the task's training stages (:class:`audiocil.core.Stage`); the
  sequencer runs one stock ``Trainer.fit`` per stage. The default is one stage, ``train``,
  with the ``first_task`` / ``later_tasks`` settings, on :meth:`train_indices` (the task's
  clips plus exemplars) with :meth:`training_loss`;
* :meth:`after_task` does the end-of-task work (exemplars, class means, ...).

A method that distils from the network the previous task left derives from
:class:`DistillingStrategy`, which makes and drops that frozen teacher around each task.

Evaluation asks :meth:`eval_logits` for the logits of every classifier the method reports
(``cnn``, ``nme``, ...: any names).

What differs between single-label and multi-label learning (the loss, the distillation,
the validation figure, how exemplars are chosen and replayed) comes from the scenario's
objective (:mod:`audiocil.objectives`), never from a branch here.

Checkpoints hold state, not objects: the resolved config, the log of structural changes
(methods decorated with :func:`structural`, replayed on a freshly built strategy), the
state dict, and each method's extra state (:meth:`extra_state`: exemplar indices, Fisher,
... as tensors and plain data) inside it.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import ClassVar

import lightning as L
import numpy as np
import torch
from torch import nn

from audiocil.core import Objective, Stage, Task
from audiocil.data.embeddings import fingerprint
from audiocil.data.frontend import Frontend
from audiocil.data.memory import ExemplarMemory, FeatureBank
from audiocil.heads import IncrementalLinear
from audiocil.methods.memo import OutputMemo
from audiocil.metrics.task_accuracy import TaskAccuracy
from audiocil.objectives import SingleLabel
from audiocil.optim import build, param_groups

_PLAIN = (int, float, bool, str, type(None))


def _is_plain(value) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return isinstance(value, _PLAIN)


def structural(fn):
    """Mark a strategy method that changes its modules (grows a head, adds a backbone,
    freezes a teacher copy, ...). Each call is logged with its (plain-data) arguments; a
    checkpoint stores the log, and loading replays it on a freshly built strategy before
    loading the state dict, so the model is rebuilt from the config, never unpickled."""

    @functools.wraps(fn)
    def logged(self, *args, **kwargs):
        if not _is_plain(list(args)) or not _is_plain(kwargs):
            raise TypeError(f"{type(self).__name__}.{fn.__name__}: a structural change takes "
                            f"plain data (ints, floats, strings, lists), got {args!r} {kwargs!r}")
        depth = self.__dict__.setdefault("_structural_depth", 0)
        if depth == 0:
            self._structure.append([fn.__name__, list(args), dict(kwargs)])
        self._structural_depth = depth + 1
        try:
            return fn(self, *args, **kwargs)
        finally:
            self._structural_depth = depth

    logged.structural = True  # type: ignore[attr-defined]
    return logged


class FrozenCopy(nn.Module):
    """A frozen copy of a module, kept in eval mode even when its parent is set to train."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = copy.deepcopy(module)
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.module.eval()

    def train(self, mode: bool = True) -> FrozenCopy:
        super().train(False)
        return self

    def forward(self, *args, **kwargs):
        with torch.no_grad():
            return self.module(*args, **kwargs)


class Network(nn.Module):
    """Front end + backbone + growing linear head. ``forward`` returns (logits, features)."""

    def __init__(self, frontend: Frontend, backbone: nn.Module) -> None:
        super().__init__()
        self.frontend, self.backbone = frontend, backbone
        self.head = IncrementalLinear(backbone.out_dim)

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.frontend(batch))  # (B, D)

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.embed(batch)
        return self.head(feats), feats  # (B, C), (B, D)


class Strategy(L.LightningModule):
    """Shared machinery: network, stages, exemplar memory, evaluation.

    Args:
        backbone: the feature extractor (reports ``out_dim``).
        frontend: the input front end (log-mel / normalisation / SpecAugment).
        objective: the scenario's objective (:mod:`audiocil.objectives`).
        first_task: the training stage of task 0: ``epochs``, ``optimizer``, ``scheduler``
            (:mod:`audiocil.optim`).
        later_tasks: the same for tasks 1..T-1.
        batch_size: training batch size.
        memory: ``{size, per_class, selection}`` for rehearsal methods, or None.
        seed: seeds exemplar selection.
    """

    #: the scenarios whose protocol the method handles; every method class declares its own
    #: (checked at start-up, before any dataset is built)
    scenarios: ClassVar[tuple[str, ...]] = ()
    #: MB of frozen-module outputs kept per stage (:meth:`frozen`); 0: recompute every batch.
    #: Set from ``data.teacher_outputs`` / ``data.teacher_cache_mb`` by ``audiocil.run``.
    teacher_memo_mb: float = 0.0
    #: True when every reported classifier reads only the encoder's embedding:
    #: ``eval_logits(x) == embedding_logits(self.network.embed(x))`` (such a method does not
    #: override :meth:`eval_logits`). Test passes and :meth:`embed_indices` then embed each
    #: clip once per encoder state (:mod:`audiocil.data.embeddings`), so a frozen encoder
    #: costs one embedding per clip for the whole run, trials and sessions included.
    evaluates_embeddings: ClassVar[bool] = False
    #: True when the method keeps ``class_means`` (C, D): the unit-norm mean of each class's
    #: exemplars, for a nearest-mean-of-exemplars classifier (iCaRL's). :meth:`after_task`
    #: then sets them (:meth:`set_exemplar_means`) from the embeddings herding used.
    keeps_exemplar_means: ClassVar[bool] = False

    def __init__(self, backbone: nn.Module, frontend: Frontend, first_task: Mapping,
                 later_tasks: Mapping, batch_size: int = 64, memory: Mapping | None = None,
                 seed: int = 0, objective: Objective | None = None) -> None:
        super().__init__()
        self._structure: list = []
        self.objective = objective if objective is not None else SingleLabel()
        self.network = Network(frontend, backbone)
        self.first_task, self.later_tasks = dict(first_task), dict(later_tasks)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.memory = ExemplarMemory(**dict(memory), seed=seed) if memory else None
        self.task: Task | None = None
        self.stage: Stage | None = None
        self._groups: list[dict] = []
        self._eval_modules: list[nn.Module] = []
        self.eval_metrics = nn.ModuleDict()
        self._memo: OutputMemo | None = None

    # ---- sizes ---------------------------------------------------------------------------
    @property
    def known(self) -> int:
        """Classes learnt before the current task."""
        return self.task.known if self.task else 0

    @property
    def total(self) -> int:
        """Classes known once the current task is learnt."""
        return self.task.total if self.task else 0

    @property
    def embedding_dim(self) -> int:
        """D, the width of ``self.network.embed``'s output."""
        return int(self.network.backbone.out_dim)

    @property
    def multilabel(self) -> bool:
        return bool(self.objective.multilabel)

    def optim_cfg(self, task: Task | None = None) -> dict:
        """The ``first_task`` or ``later_tasks`` settings of a task (default: the current)."""
        task = task or self.task
        return self.first_task if task is None or task.index == 0 else self.later_tasks

    # ---- structure (replayed when a checkpoint is loaded) ---------------------------------
    @structural
    def grow_head(self, n_new: int) -> None:
        self.network.head.grow(n_new)

    def reinitialise(self, n_classes: int) -> None:
        """Start from scratch: fresh backbone weights and a fresh head over ``n_classes``
        (upper bounds trained anew at each task). Shapes are unchanged: not structural."""
        for m in self.network.backbone.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        self.network.head = IncrementalLinear(self.network.backbone.out_dim, n_classes)

    def structure_log(self) -> list:
        return copy.deepcopy(self._structure)

    def replay_structure(self, log: list) -> None:
        """Apply the structural changes of ``log`` that this strategy has not made yet."""
        done = len(self._structure)
        if self._structure != log[:done]:
            raise ValueError("checkpoint: its structure log does not extend this strategy's "
                             f"({self._structure[:3]}... vs {log[:3]}...)")
        for name, args, kwargs in log[done:]:
            fn = getattr(self, name, None)
            if not getattr(fn, "structural", False):
                raise ValueError(f"checkpoint: {type(self).__name__}.{name} is not a structural "
                                 "change of this method (was the checkpoint made by another?)")
            fn(*args, **kwargs)

    # ---- state beyond the state dict (in every checkpoint) -------------------------------
    def extra_state(self) -> dict:
        """Method state that is not a parameter or buffer, as tensors and plain data."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore :meth:`extra_state`."""

    def get_extra_state(self) -> dict:
        return {"memory": self.memory.state_dict() if self.memory is not None else None,
                "method": self.extra_state()}

    def set_extra_state(self, state: dict) -> None:
        if self.memory is not None and state.get("memory") is not None:
            self.memory.load_state_dict(state["memory"])
        self.load_extra_state(state.get("method") or {})

    # ---- hooks -----------------------------------------------------------------------------
    def before_task(self, task: Task, dm) -> None:
        """Grow the classifier for the task's new classes."""
        self.task = task
        self.objective.note_task(task)
        self.grow_head(task.new)

    def stages(self, task: Task, dm) -> list[Stage]:
        """The task's training stages; by default one, ``train``."""
        return [self.train_stage(task)]

    def train_stage(self, task: Task, name: str = "train", optim: Mapping | None = None,
                    **kwargs) -> Stage:
        """A stage with the task's ``first_task`` / ``later_tasks`` settings (or ``optim``)."""
        optim = dict(optim if optim is not None else self.optim_cfg(task))
        return Stage(name, int(optim["epochs"]), optim=optim, **kwargs)

    def train_indices(self, task: Task, dm) -> np.ndarray:
        """The task's own training clips (as the scenario chose them), plus exemplars."""
        if self.memory is None or len(self.memory) == 0:
            return dm.own_indices
        return self.objective.replay_indices(self.memory, dm)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The objective's loss over every seen class. Returns (loss, extra values to log)."""
        logits, _ = self.network(x)
        return self.objective.loss(logits, y), {}

    def after_task(self, task: Task, dm) -> None:
        """Update the exemplar memory, if the method keeps one, and then, with
        :attr:`keeps_exemplar_means`, the class means: one :meth:`feature_bank` for both,
        so every clip is embedded once, on this device."""
        if self.memory is None:
            return
        bank = self.feature_bank(dm)
        self.objective.update_memory(self.memory, task, dm, bank)
        if self.keeps_exemplar_means:
            self.set_exemplar_means(task.total, bank)

    def set_exemplar_means(self, n_classes: int, bank: FeatureBank) -> None:
        """``class_means`` (n_classes, D): the unit-norm mean of the unit-norm embeddings of
        each class's exemplars (a zero row for a class without any), from ``bank``'s rows;
        the exemplars it does not hold yet are embedded in one pass."""
        assert self.memory is not None
        means = bank.class_means(self.memory.exemplars, n_classes, self.embedding_dim)
        self.class_means = means.to(self.device)

    def eval_logits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits of each classifier the method reports, over the seen classes."""
        return self.embedding_logits(self.network.embed(x))

    def embedding_logits(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`eval_logits` from encoder embeddings ``h`` (B, D), for methods whose
        classifiers read nothing else (by default the network's head)."""
        return {"cnn": self.network.head(h)}

    def eval_logits_names(self) -> tuple[str, ...]:
        return ("cnn",)

    # ---- stages (the sequencer enters and leaves them) -------------------------------------
    def default_parameters(self) -> list[nn.Parameter]:
        """Every parameter outside frozen copies (teachers, frozen backbones)."""
        frozen = {id(p) for m in self.modules() if isinstance(m, FrozenCopy) for p in m.parameters()}
        return [p for p in self.parameters() if id(p) not in frozen]

    def enter_stage(self, stage: Stage) -> None:
        """Train only the stage's parameters; keep fully frozen modules in eval mode."""
        self.stage = stage
        groups = param_groups(stage.params() if stage.params else self.default_parameters())
        trained = {id(p) for g in groups for p in g["params"]}
        for p in self.parameters():
            p.requires_grad_(id(p) in trained)
        self._groups = groups
        keep_eval: list[tuple[str, nn.Module]] = []  # outermost modules with nothing to train
        for name, m in self.named_modules():
            if m is self or any(name.startswith(f"{n}.") for n, _ in keep_eval):
                continue
            params = list(m.parameters())
            if params and not any(id(p) in trained for p in params):
                keep_eval.append((name, m))
        self._eval_modules = [m for _, m in keep_eval]
        self._eval_modules += list(stage.eval_modules() if stage.eval_modules else [])
        self.train(self.training)
        # a frozen module's output for a clip is fixed inside a stage when the clip's input is:
        # cached log-mels without SpecAugment, and the stage's items are the clips themselves
        fixed = all(f.logmel is None and f.spec_augment is None
                    for f in self.modules() if isinstance(f, Frontend))
        use = self.teacher_memo_mb > 0 and stage.dataset is None and fixed
        self._memo = OutputMemo(int(self.teacher_memo_mb * 2**20)) if use else None

    def leave_stage(self) -> None:
        self.stage, self._groups, self._eval_modules, self._memo = None, [], [], None
        frozen = {id(p) for m in self.modules() if isinstance(m, FrozenCopy) for p in m.parameters()}
        for p in self.parameters():
            p.requires_grad_(id(p) not in frozen)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            for m in self._eval_modules:
                m.eval()
        return self

    # ---- helpers shared by methods ---------------------------------------------------------
    def frozen(self, module: nn.Module, x: torch.Tensor, **kwargs):
        """``module(x, **kwargs)`` of a frozen module (a teacher) on the current training
        batch, whose rows ``x`` must be the batch's clips in order: computed once per clip and
        stage when the inputs are fixed (:mod:`audiocil.methods.memo`), else every batch."""
        return self._memo(module, x, **kwargs) if self._memo is not None else module(x, **kwargs)

    @torch.no_grad()
    def embed_indices(self, dm, indices: np.ndarray, split: str = "train",
                      net: nn.Module | None = None, on_device: bool = False) -> torch.Tensor:
        """(N, D) float32 embeddings of clips (default: training clips), computed in eval mode
        on this device in batches of 256, returned on the CPU (``on_device``: on this
        device). Every module's mode is restored afterwards (so a module a stage keeps in
        eval mode stays so). With :attr:`evaluates_embeddings` the network's are served from
        the datamodule's :class:`~audiocil.data.embeddings.EmbeddingCache`."""
        net = net or self.network
        data = dm.data[split]

        def embed(idx: np.ndarray, keep: bool = False) -> torch.Tensor:
            modes = [(m, m.training) for m in net.modules()]
            net.eval()
            out = [net.embed(data[idx[a:a + 256]].to(self.device)).float()
                   for a in range(0, len(idx), 256)]
            for m, mode in modes:
                m.training = mode
            if not out:
                return torch.zeros(0, 0, device=self.device if keep else "cpu")
            return torch.cat(out) if keep else torch.cat([o.cpu() for o in out])

        cache = getattr(dm, "embeddings", None)
        if not self.evaluates_embeddings or net is not self.network or cache is None:
            return embed(np.asarray(indices), keep=on_device)
        key = fingerprint(self.network, skip=("head.",))
        rows = cache.get(key, split, np.asarray(indices), len(data), embed)
        return rows.to(self.device) if on_device else rows

    def feature_bank(self, dm) -> FeatureBank:
        """A :class:`~audiocil.data.memory.FeatureBank` of training-clip embeddings by the
        network as it is now, kept on this device (valid while the network is unchanged)."""
        return FeatureBank(lambda idx: self.embed_indices(dm, idx, on_device=True))

    def test_pass(self, trainer, dm, split: str, positions=None) -> None:
        """Update the metrics of :meth:`setup_eval` with the clips of classes ``positions``
        (default: every seen class) of ``split``.

        ``trainer.test`` over the clips; or, with :attr:`evaluates_embeddings` (at full
        precision), :meth:`embedding_logits` on the embeddings of :meth:`embed_indices`, in
        the loader's batches and order (each rank its own shard): the same figures, without
        embedding a clip twice under one encoder state.
        """
        loader = dm.eval_dataloader(split, positions)
        if not self.evaluates_embeddings or str(trainer.precision) not in ("32-true", "32"):
            trainer.test(self, dataloaders=loader, verbose=False)
            return
        idx = loader.dataset.indices
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
            idx = idx[rank::world]  # this rank's shard, as UnpaddedDistributedSampler's
        h = self.embed_indices(dm, idx, split)
        targets = dm.targets[split]
        was = self.training
        self.eval()
        with torch.inference_mode():
            for a in range(0, len(idx), loader.batch_size):
                part = idx[a:a + loader.batch_size]
                y = targets[part].to(self.device)
                for name, logits in self.embedding_logits(h[a:a + len(part)].to(self.device)).items():
                    self.eval_metrics[name].update(logits.float(), y)
        self.train(was)

    # ---- Lightning ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)[0]

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y, idx = batch
        stage = self.stage
        loss_fn = stage.loss if stage is not None and stage.loss is not None else self.training_loss
        if self._memo is not None:
            self._memo.batch = [int(i) for i in idx]
        try:
            loss, extra = loss_fn(x, y)  # loss None: the stage takes no optimizer step
        finally:
            if self._memo is not None:
                self._memo.batch = None
        prefix = "train" if stage is None or stage.name == "train" else stage.name
        if loss is not None:
            self.log(f"{prefix}/loss", loss, prog_bar=True, batch_size=len(y))
        for k, v in extra.items():
            self.log(f"{prefix}/{k}", v, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y, _ = batch
        name, value = self.objective.val_score(self.eval_logits(x)["cnn"], y)
        self.log(f"val/{name}", value, prog_bar=True, batch_size=len(y), sync_dist=True)

    def setup_eval(self, task_of_class: torch.Tensor, n_tasks: int) -> None:
        """Fresh per-task accuracy metrics before a test pass."""
        names = list(self.eval_logits_names())
        self.eval_metrics = nn.ModuleDict(
            {n: TaskAccuracy(task_of_class, n_tasks).to(self.device) for n in names})

    def test_step(self, batch, batch_idx: int) -> None:
        x, y, _ = batch
        for name, logits in self.eval_logits(x).items():
            self.eval_metrics[name].update(logits.float(), y)

    def configure_optimizers(self):
        stage = self.stage
        if stage is None or stage.optim is None or not self._groups:
            return None
        steps = self.trainer.estimated_stepping_batches // max(int(stage.optim["epochs"]), 1)
        return build(stage.optim, self._groups, steps)


class DistillingStrategy(Strategy):
    """A strategy that learns each task after the first against a frozen teacher: a copy of
    what it had learnt when the task started (:class:`FrozenCopy`), made in
    :meth:`before_task` before the head grows and dropped in :meth:`after_task`, so a
    teacher is neither in the task checkpoints nor counted in ``params_per_task``.

    :meth:`make_teacher` and :meth:`drop_teacher` are structural: a checkpoint taken inside a
    task replays them by name. What the teacher freezes is :meth:`teacher_module`'s choice
    (default: backbone + head), and whether a task has one is :meth:`needs_teacher`'s.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.teacher: FrozenCopy | None = None

    def teacher_module(self) -> nn.Module:
        """What the teacher is a frozen copy of: backbone + head (called before the head
        grows, so its outputs are the old classes' logits)."""
        return nn.Sequential(self.network.backbone, self.network.head)

    def needs_teacher(self, task: Task) -> bool:
        """Whether ``task`` is learnt against a teacher: every task after the first."""
        return task.index > 0

    @structural
    def make_teacher(self) -> None:
        """Freeze a copy of what was learnt so far (:meth:`teacher_module`)."""
        self.teacher = FrozenCopy(self.teacher_module())

    @structural
    def drop_teacher(self) -> None:
        self.teacher = None

    def before_task(self, task: Task, dm) -> None:
        if self.needs_teacher(task):
            self.make_teacher()
        super().before_task(task, dm)

    def after_task(self, task: Task, dm) -> None:
        if self.teacher is not None:
            self.drop_teacher()  # the next task freezes a fresh one
        super().after_task(task, dm)
