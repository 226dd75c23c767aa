"""``python -m audiocil method=<m> dataset=<d> ...``: the Hydra entry point.

A first word in :data:`SUBCOMMANDS` goes to that tool's ``main(argv)`` instead, before Hydra
reads argv (``audiocil cache verify [PATH...]``, ``audiocil report PATH...``,
``audiocil methods``; ``python -m audiocil <word> ...`` alike).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from audiocil.config import CONFIG_DIR, register_resolvers

register_resolvers()


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def run_experiment(cfg: DictConfig) -> float:
    """Run one experiment; return the figure that sweeps optimise, ``optimized_metric``
    (default ``val_objective``: validation clips only, see :mod:`audiocil.results.objective`)."""
    from audiocil.results.objective import swept_value
    from audiocil.run import run  # imported late: `--help` stays fast

    results = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    return swept_value(results, cfg.optimized_metric)


#: ``audiocil <word> ...`` -> the module whose ``main(argv)`` handles it
SUBCOMMANDS = {"cache": "audiocil.data.cache", "report": "audiocil.report.cli",
               "methods": "audiocil.listing"}


def main() -> float | None:
    """The ``audiocil`` console script: a tool of :data:`SUBCOMMANDS` or a Hydra run."""
    if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
        tool = importlib.import_module(SUBCOMMANDS[sys.argv[1]])
        raise SystemExit(tool.main(sys.argv[2:]))
    return run_experiment()


if __name__ == "__main__":
    main()
