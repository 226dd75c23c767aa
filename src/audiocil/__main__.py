"""``python -m audiocil method=<m> dataset=<d> ...``: the Hydra entry point.

A first word in :data:`SUBCOMMANDS` goes to that tool instead, before Hydra reads argv:
``audiocil cache verify [PATH...]`` (the feature-cache tool), ``audiocil check
[OVERRIDES...]`` (validate a config without running anything), ``audiocil report PATH...``
and ``audiocil methods``; ``python -m audiocil <word> ...`` alike.

A user error (:mod:`audiocil.errors`) prints one block and exits with 2, without a
traceback (``AUDIOCIL_TRACEBACK=1`` adds it); any other error keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from audiocil.config import CONFIG_DIR, register_resolvers
from audiocil.errors import reported, run_reported

register_resolvers()


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def run_experiment(cfg: DictConfig) -> float:
    """Run one experiment; return the figure that sweeps optimise, ``optimized_metric``
    (default ``val_objective``: validation clips only, see :mod:`audiocil.results.objective`)."""
    from audiocil.results.objective import swept_value
    from audiocil.run import run  # imported late: `--help` stays fast

    with reported(single=HydraConfig.get().mode != RunMode.MULTIRUN):
        results = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    return swept_value(results, cfg.optimized_metric)


#: ``audiocil <word> ...`` -> ``module:function`` that handles it, called with the rest of argv
SUBCOMMANDS = {"cache": "audiocil.data.cache:main", "check": "audiocil.config:check_main",
               "report": "audiocil.report.cli:main", "methods": "audiocil.listing:main"}


def main() -> float | None:
    """The ``audiocil`` console script: a tool of :data:`SUBCOMMANDS` or a Hydra run."""
    if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
        module, _, name = SUBCOMMANDS[sys.argv[1]].partition(":")
        tool = getattr(importlib.import_module(module), name)
        raise SystemExit(run_reported(lambda: tool(sys.argv[2:])))
    return run_reported(run_experiment)


if __name__ == "__main__":
    main()
