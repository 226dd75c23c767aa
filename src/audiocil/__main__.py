"""``python -m audiocil method=<m> dataset=<d> ...``: the Hydra entry point.

``audiocil cache verify [PATH...]`` (or ``python -m audiocil cache ...``) goes to the
feature-cache tool (:func:`audiocil.data.cache.main`) instead, before Hydra reads argv;
``audiocil check [OVERRIDES...]`` validates a config without running anything
(:func:`audiocil.config.check_main`).

A user error (:mod:`audiocil.errors`) prints one block and exits with 2, without a
traceback (``AUDIOCIL_TRACEBACK=1`` adds it); any other error keeps its traceback.
"""

from __future__ import annotations

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
    """Run one experiment; return the metric that sweeps optimise (average incremental accuracy)."""
    from audiocil.run import run  # imported late: `--help` stays fast

    with reported(single=HydraConfig.get().mode != RunMode.MULTIRUN):
        results = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    return float(results[cfg.optimized_metric])


def main() -> float | None:
    """The ``audiocil`` console script: ``audiocil cache ...``, ``audiocil check ...`` or a
    Hydra run."""
    if len(sys.argv) > 1 and sys.argv[1] == "cache":
        from audiocil.data.cache import main as cache_main

        raise SystemExit(cache_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "check":
        from audiocil.config import check_main

        raise SystemExit(check_main(sys.argv[2:]))
    return run_reported(run_experiment)


if __name__ == "__main__":
    main()
