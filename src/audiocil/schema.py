"""The config schema: every value a type and a range, checked at start-up.

:func:`validate` runs before anything is written, built or loaded (``audiocil.run.run`` and
``audiocil check``, through :func:`audiocil.config.validate_run`); a wrong value fails with a
:class:`~audiocil.errors.ConfigError` naming the key, the value and what is allowed. A value
is checked by the first rule that names its key:

1. the method's own ranges: a class attribute ``config_ranges = {"T": Num(gt=0), ...}``
   (keys relative to ``method``), else :data:`METHOD_RANGES` for the methods written before
   this mechanism; a method that fits a stage in closed form lists the stage nodes that may
   have 0 epochs in ``closed_form_stages = ("later_tasks",)`` (else :data:`CLOSED_FORM`), and
   a rehearsal method says ``needs_memory = True`` (else :data:`NEEDS_MEMORY`);
2. :data:`ROOT`, :data:`SCENARIOS`, :data:`DATASET`, :data:`BACKBONE` by key (``*`` is one key
   of any name, ``*_fraction`` a key ending so);
3. the nodes recognised by shape anywhere under ``method``: a training stage (``epochs`` +
   ``optimizer``), an optimizer (``_target_: torch.optim.*``), a schedule
   (``_target_: audiocil.optim.lr_schedule``) and ``method.memory``;
4. :data:`METHOD_NAMES`: numbers under names whose meaning is fixed (``T`` > 0, ``lamda``
   >= 0, ``*batch_size`` >= 1).

This module imports nothing of audiocil but :mod:`audiocil.errors` (inside functions).
"""

from __future__ import annotations

from omegaconf import OmegaConf


def _show(v) -> str:
    """A value as it is written on the command line."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_show(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_show(x)}" for k, x in v.items()) + "}"
    return str(v)


class Spec:
    """What a config value may be; ``allowed`` says it in words for the error message."""

    allowed = "anything"

    def ok(self, value) -> bool:  # pragma: no cover - every spec overrides it
        return True


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    import math

    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _bound(x) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


class Int(Spec):
    """A whole number (not a bool), ``lo <= v <= hi``."""

    def __init__(self, lo: int | None = None, hi: int | None = None) -> None:
        self.lo, self.hi = lo, hi
        if lo is not None and hi is not None:
            self.allowed = f"a whole number in {lo}..{hi}"
        elif lo is not None:
            self.allowed = f"a whole number >= {lo}"
        else:
            self.allowed = "a whole number"

    def ok(self, v) -> bool:
        return _is_int(v) and (self.lo is None or v >= self.lo) and (self.hi is None or v <= self.hi)


class Num(Spec):
    """A finite number; ``ge``/``gt`` and ``le``/``lt`` bound it."""

    def __init__(self, ge: float | None = None, le: float | None = None, *,
                 gt: float | None = None, lt: float | None = None) -> None:
        self.ge, self.le, self.gt, self.lt = ge, le, gt, lt
        lo = ge if ge is not None else gt
        hi = le if le is not None else lt
        if lo is not None and hi is not None:
            self.allowed = (f"a number in {'[' if ge is not None else '('}{_bound(lo)}, "
                            f"{_bound(hi)}{']' if le is not None else ')'}")
        elif lo is not None:
            self.allowed = f"a number {'>=' if ge is not None else '>'} {_bound(lo)}"
        elif hi is not None:
            self.allowed = f"a number {'<=' if le is not None else '<'} {_bound(hi)}"
        else:
            self.allowed = "a number"

    def ok(self, v) -> bool:
        return (_is_num(v) and (self.ge is None or v >= self.ge) and (self.gt is None or v > self.gt)
                and (self.le is None or v <= self.le) and (self.lt is None or v < self.lt))


class Choice(Spec):
    def __init__(self, *values) -> None:
        self.values = values
        self.allowed = "one of " + "|".join(_show(v) for v in values)

    def ok(self, v) -> bool:
        return any(v == c and type(v) is type(c) for c in self.values)


class Bool(Spec):
    allowed = "true or false"

    def ok(self, v) -> bool:
        return isinstance(v, bool)


class Str(Spec):
    allowed = "a string"

    def ok(self, v) -> bool:
        return isinstance(v, str) and v != ""


class IntList(Spec):
    """A list of whole numbers >= ``lo`` (``distinct``: no repeats; ``rising``: not falling)."""

    def __init__(self, lo: int = 0, distinct: bool = False, rising: bool = False) -> None:
        self.lo, self.distinct, self.rising = lo, distinct, rising
        extra = ", without repeats" if distinct else ", in increasing order" if rising else ""
        self.allowed = f"a list of whole numbers >= {lo}{extra}"

    def ok(self, v) -> bool:
        if not isinstance(v, list) or not all(_is_int(x) and x >= self.lo for x in v):
            return False
        if self.distinct and len(set(v)) != len(v):
            return False
        return not self.rising or all(a <= b for a, b in zip(v, v[1:], strict=False))


class AnyOf(Spec):
    """One of several specs (``Opt(s)`` is ``AnyOf(s, null)``)."""

    def __init__(self, *specs: Spec, null: bool = False) -> None:
        self.specs, self.null = specs, null
        words = [s.allowed for s in specs] + (["null"] if null else [])
        self.allowed = ", or ".join(words)

    def ok(self, v) -> bool:
        return (self.null and v is None) or any(s.ok(v) for s in self.specs)


def Opt(spec: Spec) -> AnyOf:  # noqa: N802 - reads as a type
    return AnyOf(spec, null=True)


POS, NONNEG = Num(gt=0), Num(ge=0)
UNIT, UNIT_OPEN_TOP = Num(0, 1), Num(0, lt=1)
SEED = Int(0, 2**32 - 1)

#: root keys (struct mode refuses unknown ones at composition)
ROOT: dict[str, Spec] = {
    "task_name": Str(), "seed": SEED, "resume": Opt(Str()), "optimized_metric": Str(),
    "data.cache": Choice("features", "waveform"), "data.num_workers": Int(0),
    "data.verify_cache": Choice("off", "quick", "full"),
    "data.teacher_outputs": Choice("cache", "recompute"), "data.teacher_cache_mb": NONNEG,
    "data.eval_clips_per_class": Opt(Int(1)),
    "augment.spec_augment": Bool(), "augment.freq_masks": Int(0), "augment.freq_width": Int(0),
    "augment.time_masks": Int(0), "augment.time_width": Int(0),
    "paths.*": Str(), "checkpoint.every_n_epochs": Int(1),
    "trainer.accelerator": Str(), "trainer.strategy": Str(), "trainer.num_nodes": Int(1),
    "trainer.devices": AnyOf(Int(1), Choice("auto", -1), Str(), IntList(0)),
    "trainer.precision": AnyOf(Str(), Choice(16, 32, 64)),
    # 0 training batches would score an untrained model
    "trainer.limit_train_batches": AnyOf(Int(1), Num(gt=0, le=1)),
    "trainer.limit_val_batches": AnyOf(Int(0), UNIT),
    "trainer.check_val_every_n_epoch": Opt(Int(1)), "trainer.log_every_n_steps": Int(1),
    "trainer.gradient_clip_val": Opt(NONNEG), "trainer.accumulate_grad_batches": Int(1),
    "trainer.deterministic": AnyOf(Bool(), Choice("warn")),
    "trainer.enable_progress_bar": Bool(), "trainer.enable_model_summary": Bool(),
}

_ORDER = {"class_order_seed": Opt(SEED), "class_order": Opt(IntList(0, distinct=True))}
#: each scenario's keys, by ``scenario.name``
SCENARIOS: dict[str, dict[str, Spec]] = {
    "standard": {"init_cls": Int(1), "increment": Int(1), **_ORDER},
    "multilabel": {"init_cls": Int(1), "increment": Int(1), "threshold": Num(gt=0, lt=1), **_ORDER},
    "fewshot": {"base_classes": Int(1), "ways": Int(1), "shots": Int(1), "sessions": Opt(Int(1)),
                "shot_seed": SEED, "trials": Int(1), "cpi_alpha": UNIT, **_ORDER},
}

DATASET: dict[str, Spec] = {
    "dataset.name": Str(), "dataset.root": Str(), "dataset.soundfont": Opt(Str()),
    "dataset.on_bad_file": Choice("error", "skip"),
    "dataset.loader.on_bad_file": Choice("error", "skip"),
    "dataset.frontend.sample_rate": Int(1000, 768000), "dataset.loader.sample_rate": Int(1000, 768000),
    "dataset.frontend.n_fft": Int(1), "dataset.frontend.hop_length": Int(1),
    "dataset.frontend.n_mels": Int(1), "dataset.frontend.f_min": NONNEG,
    "dataset.frontend.f_max": Opt(POS), "dataset.frontend.log_floor": POS,
    "dataset.loader.clip_seconds": POS, "dataset.loader.seed": SEED,
    "dataset.loader.*_fraction": UNIT_OPEN_TOP,
    "dataset.loader.n_classes": Int(1), "dataset.loader.num_classes": Int(1),
    "dataset.loader.workers": Opt(Int(1)),
    "dataset.loader.split": Choice("seeded", "folders", "manifest"),  # the folder loader's
    "dataset.loader.manifest": Opt(Str()),
}

BACKBONE: dict[str, Spec] = {
    "backbone.name": Str(), "backbone.width": Int(1), "backbone.in_channels": Int(1),
    "backbone.n_mels": Int(1), "backbone.stem_stride": Int(1), "backbone.block6_pool": Int(1),
    "backbone.dropout": UNIT_OPEN_TOP, "backbone.fc_dropout": UNIT_OPEN_TOP,
    "backbone.pretrained": Opt(Str()), "backbone.pretrained_bn0": Choice("reset_stats", "keep"),
    "backbone.init": Choice("he", "pytorch"),  # ResNet-18's
}

#: numbers under these names (anywhere under ``method``) have a fixed meaning
METHOD_NAMES: dict[str, Spec] = {
    "T": POS, "kd_T": POS, "temperature": POS, "lamda": NONNEG, "lamda_*": NONNEG,
    "lambda_*": NONNEG, "*_weight": NONNEG, "batch_size": Int(1), "*_batch_size": Int(1),
}

OPTIMIZER: dict[str, Spec] = {
    "lr": POS, "weight_decay": NONNEG, "momentum": UNIT_OPEN_TOP, "dampening": UNIT,
    "nesterov": Bool(), "eps": POS, "amsgrad": Bool(), "maximize": Bool(), "foreach": Opt(Bool()),
    "betas": Spec(),  # checked below: two numbers in [0, 1)
}

SCHEDULE: dict[str, Spec] = {
    "kind": Choice("multistep", "cosine", "onecycle", "constant"),
    "milestones": IntList(0, rising=True), "gamma": POS, "eta_min": NONNEG,
    "pct_start": Num(gt=0, lt=1), "div_factor": POS, "final_div_factor": POS,
    "warmup_epochs": Int(0), "warmup_start": Num(gt=0, le=1),
}

MEMORY: dict[str, Spec] = {"size": Opt(Int(1)), "per_class": Opt(Int(1)),
                           "selection": Choice("herding", "random")}

_MEMORY_WHY = {
    "size": " (the exemplars kept for all classes together; null when method.memory.per_class is set)",
    "per_class": " (the exemplars kept of each class; null when method.memory.size is set)"}

_FLAGS = {"new_classes_only_ce": Bool(), "kd_scale_t2": Bool()}
#: ranges of the methods written before ``config_ranges`` (keys relative to ``method``)
METHOD_RANGES: dict[str, dict[str, Spec]] = {
    "audiocil.methods.icarl.ICaRL": _FLAGS,
    "audiocil.methods.lwf.LwF": _FLAGS,
    "audiocil.methods.ewc.EWC": {"fisher_max": POS, "fisher_mode": Choice("train", "eval"),
                                 "new_classes_only_ce": Bool()},
    "audiocil.methods.der.DER": {"weight_align": Bool(), "init": Choice("previous", "fresh")},
    "audiocil.methods.joint.Joint": {"reinit": Bool()},
    "audiocil.methods.prototype.Prototype": {"scale": POS},
    "audiocil.methods.pan.PAN": {
        "scale": POS, "attn_dropout": UNIT_OPEN_TOP, "meta.episodes": Int(1),
        "meta.low_way": Int(1), "meta.way": Int(1), "meta.shot": Int(1), "meta.query": Int(1),
        "meta.pseudo_base_fraction": Num(gt=0, lt=1), "meta.lr_encoder": NONNEG},
    "audiocil.methods.meta_sc.MetaSC": {
        "scale": POS, "sigma_offset": Num(), "attn_dropout": UNIT_OPEN_TOP, "lamda_proto": UNIT,
        "episodes.n_way": Int(1), "episodes.n_per": Int(1), "episodes.n_batches": Int(1)},
    "audiocil.methods.amfo.AMFO": {
        "margin_scale": POS, "fused_scale": POS, "m_pos": Num(), "m_neg": Num(),
        "gamma": NONNEG, "hidden": Int(1), "base_loss.*": NONNEG, "session_loss.kd_T": POS,
        "session_loss.*": NONNEG, "replay.new_per_class": Int(0), "replay.old_per_class": Int(0),
        "replay.resample_every": Int(1), "replay.calibrate": Bool(),
        "replay.calibration_scale": POS},
    "audiocil.methods.multilabel.MultilabelCIL": {
        "loss_classes": Choice("new", "seen"), "train_data": Choice("phase", "seen"),
        "reinit": Bool(), "freeze_extractor": Bool(), "kd_reduction": Choice("mean", "batchmean"),
        "fd_scope": Choice("sample", "batch"), "lambda_exponent": NONNEG,
        "lambda_ratio": Choice("old", "total"), "sampler": Choice("balanced", "shuffle"),
        "pos_weight": AnyOf(POS, Choice("auto"), null=True)},
}
#: stage nodes that the methods written before ``closed_form_stages`` fit in closed form
#: (the few-shot prototype methods: new classes are the means of their shots)
CLOSED_FORM: dict[str, tuple[str, ...]] = {
    "audiocil.methods.prototype.Prototype": ("later_tasks",),
    "audiocil.methods.pan.PAN": ("later_tasks",),
}
#: rehearsal methods written before ``needs_memory``
NEEDS_MEMORY = {"audiocil.methods.replay.Replay", "audiocil.methods.icarl.ICaRL",
                "audiocil.methods.der.DER"}


def _matches(key: str, pattern: str) -> bool:
    from fnmatch import fnmatchcase

    parts, pats = key.split("."), pattern.split(".")
    return len(parts) == len(pats) and all(fnmatchcase(k, p) for k, p in zip(parts, pats, strict=True))


def _flat(tree, prefix: str = ""):
    """(dotted key, value) of every leaf of a plain tree; lists are leaves."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _flat(v, f"{prefix}{k}.")
        if not tree and prefix:
            yield prefix[:-1], tree
    else:
        yield prefix[:-1], tree


def _qualname(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def method_declarations(cls) -> tuple[dict[str, Spec], tuple[str, ...], bool]:
    """A method class's (ranges, closed-form stages, needs a memory), from its own class
    attributes or, for the methods written before them, from this module's tables; ranges
    are collected along the class hierarchy (a subclass's entry wins)."""
    ranges: dict[str, Spec] = {}
    closed: tuple[str, ...] | None = None
    memory: bool | None = None
    for klass in cls.__mro__:
        own, name = klass.__dict__, _qualname(klass)
        for k, v in own.get("config_ranges", METHOD_RANGES.get(name, {})).items():
            ranges.setdefault(k, v)
        if closed is None and ("closed_form_stages" in own or name in CLOSED_FORM):
            closed = tuple(own.get("closed_form_stages", CLOSED_FORM.get(name, ())))
        if memory is None and ("needs_memory" in own or name in NEEDS_MEMORY):
            memory = bool(own.get("needs_memory", name in NEEDS_MEMORY))
    return ranges, closed or (), bool(memory)


class _Problems(list):
    def bad(self, key: str, value, allowed: str, why: str = "") -> None:
        self.append(f"{key}={_show(value)}: must be {allowed}{why}")

    def check(self, key: str, value, spec: Spec, why: str = "") -> None:
        if not spec.ok(value):
            self.bad(key, value, spec.allowed, why)


def _missing(node, prefix: str = "") -> list[str]:
    """Keys left ``???`` (mandatory values nobody set)."""
    from omegaconf import DictConfig

    out = []
    for key in node.keys():
        full = f"{prefix}{key}"
        if OmegaConf.is_missing(node, key):
            out.append(full)
        elif not OmegaConf.is_interpolation(node, key) and isinstance(node._get_node(key), DictConfig):
            out += _missing(node[key], f"{full}.")
    return out


def _missing_message(key: str, cfg) -> str:
    if key == "dataset.root":
        name = cfg.dataset.get("name", "?")
        return (f"dataset.root is not set: dataset={name} reads audio from a folder you give, "
                f"e.g. dataset.root=/data/{name} (conf/dataset/{name}.yaml shows the layout)")
    return f"{key} is not set (it is ??? in the config): add {key}=<value> to the command"


def validate(cfg) -> None:
    """Check every value of a composed run config against the schema, before anything is
    written, built or loaded.

    Raises:
        ConfigError: naming every wrong key, its value and what is allowed.
    """
    from omegaconf.errors import OmegaConfBaseException

    from audiocil.errors import ConfigError

    missing = _missing(cfg)
    if missing:
        raise ConfigError("\n".join(_missing_message(k, cfg) for k in missing))
    try:
        tree = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", "") or "the config"
        raise ConfigError(f"{key}: {str(err).splitlines()[0]}") from err
    assert isinstance(tree, dict)
    problems = _Problems()
    cls = _check_method(tree.get("method") or {}, problems)
    scenario = tree.get("scenario") or {}
    rules = {**ROOT, **DATASET, **BACKBONE,
             **{f"scenario.{k}": v for k, v in SCENARIOS.get(scenario.get("name"), {}).items()}}
    for key, value in _flat({k: v for k, v in tree.items() if k != "method"}):
        spec = next((s for p, s in rules.items() if _matches(key, p)), None)
        if spec is not None:
            problems.check(key, value, spec)
    _check_cross(tree, problems)
    if cls is not None:
        _check_trainer_keys(tree.get("trainer") or {}, problems)
    if problems:
        raise ConfigError("\n".join(problems))


def _check_method(method: dict, problems: _Problems):
    """The method node: its class's own ranges, stages, optimizers, schedules, memory."""
    from hydra.utils import get_class

    from audiocil.errors import ConfigError

    target = method.get("_target_")
    try:
        cls = get_class(target)
    except Exception as err:  # noqa: BLE001 - any import failure: the key is what is wrong
        raise ConfigError(f"method._target_={target}: cannot import it ({err})") from err
    ranges, closed, needs_memory = method_declarations(cls)
    done: set[str] = set()
    for key, value in _flat(method):
        spec = next((s for p, s in ranges.items() if _matches(key, p)), None)
        if spec is not None:
            problems.check(f"method.{key}", value, spec)
            done.add(key)
    _walk_method(method, "", cls, closed, problems, done)
    memory = method.get("memory", None)
    if memory is None and needs_memory:
        problems.append(f"method.memory=null: method={method.get('name')} needs a memory: set "
                        "method.memory.size (a budget shared by all classes) or "
                        "method.memory.per_class")
    if isinstance(memory, dict):
        for k, spec in MEMORY.items():
            if k in memory:
                problems.check(f"method.memory.{k}", memory[k], spec, _MEMORY_WHY.get(k, ""))
        if memory.get("size") is None and memory.get("per_class") is None and needs_memory:
            problems.append("method.memory: set method.memory.size or method.memory.per_class "
                            f"(method={method.get('name')} replays exemplars)")
        elif memory.get("size") is not None and memory.get("per_class") is not None:
            problems.append(f"method.memory: set exactly one of size ({memory['size']}) and "
                            f"per_class ({memory['per_class']}); the other must be null")
    for key, value in _flat(method):
        name = key.rpartition(".")[2]
        spec = next((s for p, s in METHOD_NAMES.items() if _matches(name, p)), None)
        if spec is not None and key not in done and not isinstance(value, str):
            problems.check(f"method.{key}", value, spec)
    return cls


def _walk_method(node, path: str, cls, closed: tuple[str, ...], problems: _Problems,
                 done: set[str]) -> None:
    if not isinstance(node, dict):
        return
    where = f"method.{path}" if path else "method"
    target = node.get("_target_")
    if isinstance(target, str) and target.startswith("torch.optim."):
        _check_optimizer(node, where, problems)
        done.update(f"{path}.{k}" for k in node)
        return
    if target == "audiocil.optim.lr_schedule":
        _check_schedule(node, where, None, problems)
        done.update(f"{path}.{k}" for k in node)
        return
    if "epochs" in node and "optimizer" in node:
        _check_stage(node, path, cls, closed, problems)
    for k, v in node.items():
        if k != "memory" or path:
            _walk_method(v, f"{path}.{k}" if path else str(k), cls, closed, problems, done)


def _check_stage(node: dict, path: str, cls, closed: tuple[str, ...], problems: _Problems) -> None:
    key, epochs = f"method.{path}.epochs", node.get("epochs")
    if epochs == 0 and _is_int(epochs) and path in closed:
        return
    if _is_int(epochs) and epochs == 0:
        fits = (f"{cls.__name__} fits only {', '.join(closed)} in closed form" if closed else
                f"{cls.__name__} fits no stage in closed form")
        problems.bad(key, epochs, "a whole number >= 1",
                     f" (0 epochs would score an untrained model; {fits})")
        return
    problems.check(key, epochs, Int(1))
    if node.get("optimizer") is None:
        problems.append(f"method.{path}.optimizer=null: a stage that trains ({epochs} epochs) "
                        "needs an optimizer, e.g. optimizer@method."
                        f"{path}.optimizer=sgd")
    sched = node.get("scheduler")
    if isinstance(sched, dict) and _is_int(epochs):
        warm = sched.get("warmup_epochs", 0)
        if _is_int(warm) and warm > epochs:
            problems.bad(f"method.{path}.scheduler.warmup_epochs", warm,
                         f"a whole number in 0..{epochs} (the stage's epochs)")


def _check_optimizer(node: dict, where: str, problems: _Problems) -> None:
    for k, spec in OPTIMIZER.items():
        if k in node and k != "betas":
            problems.check(f"{where}.{k}", node[k], spec)
    betas = node.get("betas")
    if "betas" in node and not (isinstance(betas, list) and len(betas) == 2
                                and all(UNIT_OPEN_TOP.ok(b) for b in betas)):
        problems.bad(f"{where}.betas", betas, "two numbers in [0, 1), e.g. [0.9,0.999]")
    if node.get("nesterov") is True and not (_is_num(node.get("momentum", 0))
                                             and node.get("momentum", 0) > 0
                                             and node.get("dampening", 0) == 0):
        problems.append(f"{where}.nesterov=true: needs {where}.momentum > 0 and "
                        f"{where}.dampening=0 (got momentum={_show(node.get('momentum', 0))}, "
                        f"dampening={_show(node.get('dampening', 0))})")


def _check_schedule(node: dict, where: str, epochs, problems: _Problems) -> None:
    for k, spec in SCHEDULE.items():
        if k in node:
            problems.check(f"{where}.{k}", node[k], spec)
    if node.get("kind") == "onecycle" and node.get("warmup_epochs", 0):
        problems.append(f"{where}.warmup_epochs={_show(node['warmup_epochs'])}: must be 0 with "
                        f"{where}.kind=onecycle (one-cycle warms up by itself: pct_start)")


def _check_cross(tree: dict, problems: _Problems) -> None:
    """Values that are fine alone but not together."""
    fe = (tree.get("dataset") or {}).get("frontend") or {}
    sr, f_min, f_max = fe.get("sample_rate"), fe.get("f_min"), fe.get("f_max")
    if _is_num(f_max) and _is_num(f_min) and f_max <= f_min:
        problems.bad("dataset.frontend.f_max", f_max,
                     f"a number > dataset.frontend.f_min ({_show(f_min)})")
    elif _is_num(f_max) and _is_int(sr) and f_max > sr / 2:
        problems.bad("dataset.frontend.f_max", f_max,
                     f"a number <= {_bound(sr / 2)} (half of dataset.frontend.sample_rate={sr})")
    bb = tree.get("backbone") or {}
    if _is_int(bb.get("n_mels")) and _is_int(fe.get("n_mels")) and bb["n_mels"] != fe["n_mels"]:
        problems.bad("backbone.n_mels", bb["n_mels"],
                     f"dataset.frontend.n_mels ({fe['n_mels']}): the backbone's input bins")
    loader = (tree.get("dataset") or {}).get("loader") or {}
    if loader.get("split") == "manifest" and loader.get("manifest") is None:
        problems.bad("dataset.loader.manifest", None, "the path of a CSV path,label,split",
                     " (dataset.loader.split=manifest reads it; relative to dataset.root)")
    elif loader.get("split") in ("seeded", "folders") and loader.get("manifest") is not None:
        problems.bad("dataset.loader.manifest", loader["manifest"], "null",
                     f" with dataset.loader.split={loader['split']} (a manifest is read only "
                     "with dataset.loader.split=manifest)")


def _check_trainer_keys(trainer: dict, problems: _Problems) -> None:
    import inspect

    import lightning as L

    params = inspect.signature(L.Trainer).parameters
    reserved = {"max_epochs", "callbacks", "logger", "default_root_dir", "enable_checkpointing",
                "num_sanity_val_steps"}  # set by the task sequencer
    for k in trainer:
        if k not in params:
            problems.append(f"trainer.{k}: lightning.Trainer takes no argument {k!r}")
        elif k in reserved:
            problems.append(f"trainer.{k}: set by audiocil for every stage; remove it")


def check_against_tasks(cfg, tasks) -> None:
    """Values that are in range but wrong for this stream of tasks (known once the dataset's
    catalog is read, before any audio is decoded or cached).

    Raises:
        ConfigError: a memory budget smaller than the number of classes (it would keep no
            exemplar of some classes, and rehearsal would quietly become fine-tuning).
    """
    from audiocil.errors import ConfigError

    memory = cfg.method.get("memory") if "method" in cfg else None
    if not tasks or memory is None or memory.get("size") is None:
        return
    n = max(t.total for t in tasks)
    if int(memory.size) < n:
        raise ConfigError(f"method.memory.size={memory.size}: must be >= {n}, the number of "
                          f"classes of this stream: a budget of {memory.size} shared by {n} "
                          f"classes keeps {int(memory.size) // n} exemplars of each; raise it "
                          "or set method.memory.per_class instead")
