"""Finetune: train on each task's data alone, with no defence against forgetting.

The lower bound of class-incremental learning: cross-entropy over every class seen so
far, on the new task's clips only (as the reference toolbox's ``finetune``). In the
multi-label scenario: binary cross-entropy over every seen class, the phase's labels only.
"""

from audiocil.methods.base import Strategy


class Finetune(Strategy):
    """Naive sequential training; everything it needs is in :class:`Strategy`."""

    scenarios = (*Strategy.scenarios, "multilabel")
