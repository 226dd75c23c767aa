"""The figure a sweep optimises: what the entry point returns to Hydra's sweeper.

``optimized_metric`` (``conf/config.yaml``) names a key of ``results.json``. The default,
``val_objective``, is computed on validation clips carved from the training data, never on
the test split, so a grid search or Optuna picks hyperparameters without seeing the test
clips; the test figures stay in ``results.json`` for the paper's table. Per scenario it is:

* standard: ``val_avg_incremental_accuracy``, the validation accuracy over the seen classes
  after each task, averaged over tasks;
* few-shot: ``val_avg_base_accuracy``, the base classes' validation accuracy (classified
  among every seen class) after each session, averaged over sessions and trials: the novel
  classes have no validation clips in a few-shot protocol;
* multi-label: ``val_avg_macro_f1``, the validation macro-F1 over the seen classes after
  each phase, averaged over phases.

``results.json`` says which one it is under ``val_objective_is``.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

#: the default ``optimized_metric``
VAL_OBJECTIVE = "val_objective"


def swept_value(results: dict, name: str = VAL_OBJECTIVE) -> float:
    """``results[name]`` as a float, with a warning when it is not a validation figure.

    Raises:
        KeyError: ``name`` is not a figure of the run (the message lists the validation ones).
    """
    if not name.startswith("val_"):
        log.warning("optimized_metric=%s is not a validation figure: a sweep on it tunes on "
                    "the test split. Use optimized_metric=%s (validation clips carved from the "
                    "training data).", name, VAL_OBJECTIVE)
    value = results.get(name)
    if value is None:
        known = sorted(k for k, v in results.items() if k.startswith("val_")
                       and isinstance(v, (int, float)))
        raise KeyError(f"optimized_metric={name}: the run has no such figure (validation "
                       f"figures: {', '.join(known)})")
    return float(value)
