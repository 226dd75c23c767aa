"""Where the configs live, the OmegaConf resolvers they use, and the start-up checks
(:func:`validate_run`: the schema of :mod:`audiocil.schema`, the method's keys, its scenarios)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from audiocil.errors import ConfigError
from audiocil.schema import (  # noqa: F401 - the schema's names, for methods and scripts
    AnyOf,
    Bool,
    Choice,
    Int,
    IntList,
    Num,
    Opt,
    Spec,
    Str,
    check_against_tasks,
    validate,
)

_PACKAGED = Path(__file__).resolve().parent / "conf"  # inside a built wheel
_CHECKOUT = Path(__file__).resolve().parents[2] / "conf"  # an editable install of a checkout
CONFIG_DIR = _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT


def _run_dir(resume: str | None, fresh: str) -> str:
    """Hydra's run directory: the resumed run's own, or a fresh one. A resume target that is
    not a resumable run is refused here, before Hydra creates the directory."""
    if resume:
        from audiocil.engine.rundir import check_resume_target

        check_resume_target(resume)
        return str(resume)
    return fresh


def _output_subdir(resume: str | None, stamp: str, run_dir: str | None = None) -> str:
    """Hydra's record of this invocation; a resume keeps the original ``.hydra`` intact, and
    so does a new invocation pointed at a directory that already has one (it is refused)."""
    if resume:
        return f".hydra-resume-{stamp}"
    return f".hydra-{stamp}" if run_dir and (Path(run_dir) / ".hydra").exists() else ".hydra"


def compose(overrides: list[str]):
    """The run config (``conf/config.yaml`` with ``overrides``), as ``python -m audiocil``
    composes it, for scripts and tests that call :func:`audiocil.run.run` themselves."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


def register_resolvers() -> None:
    for name, fn in (("audiocil.run_dir", _run_dir), ("audiocil.output_subdir", _output_subdir)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


#: the keys of a training stage's settings (``method.first_task``, ``method.later_tasks``, ...)
STAGE_KEYS = {"epochs", "optimizer", "scheduler"}


def accepted_kwargs(target) -> tuple[set[str], bool]:
    """The keyword arguments a class or function accepts: (names, accepts any)."""
    import inspect

    names: set[str] = set()
    for fn in ([c.__init__ for c in target.__mro__ if "__init__" in c.__dict__]
               if isinstance(target, type) else [target]):
        params = inspect.signature(fn).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names, False
    return names, True


def check_node(node, where: str, reserved: set[str] = frozenset()) -> None:
    """Fail, naming the key, when a ``_target_`` node holds a key its target does not take;
    recurse into nested nodes (stage settings, optimizers, schedulers)."""
    from hydra.utils import get_object
    from omegaconf import DictConfig, ListConfig

    if isinstance(node, ListConfig):
        return
    if not isinstance(node, DictConfig):
        return
    keys = {str(k) for k in node.keys()}
    if "_target_" in node:
        target = get_object(node._target_)
        names, any_kw = accepted_kwargs(target)
        own = {k for k in keys if not k.startswith("_")} - set(reserved)
        bad = sorted(own - names) if not any_kw else []
        if bad:
            raise ConfigError(f"{where}.{bad[0]}: {node._target_} takes no argument {bad[0]!r} "
                             f"(it takes: {', '.join(sorted(names - {'self'}))}); check the spelling")
    elif "epochs" in keys and "optimizer" in keys:  # a training stage's settings
        bad = sorted(keys - STAGE_KEYS)
        if bad:
            raise ConfigError(f"{where}.{bad[0]}: a stage's settings are "
                             f"{', '.join(sorted(STAGE_KEYS))}; got {bad[0]!r}")
    for k in keys:
        if not k.startswith("_"):
            check_node(node[k], f"{where}.{k}")


def check_method_config(node) -> None:
    """Check ``cfg.method`` against the method's constructor and its stages' optimizers and
    schedulers, before anything is built: a misspelt key fails with its name."""
    check_node(node, "method", reserved={"name"})


def check_main(argv: list[str]) -> int:
    """``audiocil check [OVERRIDES...]``: compose the config as ``python -m audiocil`` would,
    validate it (schema, method/scenario pairing, method keys) and write nothing."""
    from audiocil.errors import report

    try:
        cfg = compose(argv)
        validate_run(cfg)
    except Exception as err:  # noqa: BLE001 - reported for a person, or re-raised
        code = report(err)
        if code is None:
            raise
        return code
    print(f"config OK: method={cfg.method.name} dataset={cfg.dataset.name} "
          f"scenario={cfg.scenario.name} (nothing was run)")
    return 0


def validate_run(cfg) -> None:
    """Everything checked before a run writes, builds or loads anything: the schema, the
    method's keys and its support of the scenario."""
    from hydra.utils import get_class

    validate(cfg)
    check_method_config(cfg.method)
    cls = get_class(cfg.method._target_)
    supported = cls.__dict__.get("scenarios") or ()
    if not supported:
        raise TypeError(f"method class {cls.__name__} does not declare the scenarios it "
                        "supports (a class attribute `scenarios = (...)`)")
    if cfg.scenario.name not in supported:
        raise ConfigError(f"method {cls.__name__} does not support scenario={cfg.scenario.name} "
                          f"(it supports: {', '.join(supported)}); pick another method or scenario")
