"""``python -m audiocil method=<m> dataset=<d> ...``: the Hydra entry point.

``audiocil cache verify [PATH...]`` (or ``python -m audiocil cache ...``) goes to the
feature-cache tool (:func:`audiocil.data.cache.main`) instead, before Hydra reads argv.
"""

from __future__ import annotations

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


def main() -> float | None:
    """The ``audiocil`` console script: ``audiocil cache ...`` or a Hydra run."""
    if len(sys.argv) > 1 and sys.argv[1] == "cache":
        from audiocil.data.cache import main as cache_main

        raise SystemExit(cache_main(sys.argv[2:]))
    return run_experiment()


if __name__ == "__main__":
    main()
