"""``python -m audiocil method=<m> dataset=<d> ...``: the Hydra entry point."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from audiocil.config import CONFIG_DIR, register_resolvers

register_resolvers()


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """Run one experiment; return the metric that sweeps optimise (average incremental accuracy)."""
    from audiocil.run import run  # imported late: `--help` stays fast

    results = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    return float(results[cfg.optimized_metric])


if __name__ == "__main__":
    main()
