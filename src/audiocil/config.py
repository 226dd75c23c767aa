"""Where the configs live, and the OmegaConf resolvers they use."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

_PACKAGED = Path(__file__).resolve().parent / "conf"  # inside a built wheel
_CHECKOUT = Path(__file__).resolve().parents[2] / "conf"  # an editable install of a checkout
CONFIG_DIR = _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT


def _run_dir(resume: str | None, fresh: str) -> str:
    """Hydra's run directory: the resumed run's own, or a fresh one."""
    return str(resume) if resume else fresh


def _output_subdir(resume: str | None, stamp: str) -> str:
    """Hydra's record of this invocation; a resume keeps the original ``.hydra`` intact."""
    return f".hydra-resume-{stamp}" if resume else ".hydra"


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
