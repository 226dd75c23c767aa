"""Finetune: train on each task's data alone, with no defence against forgetting.

The lower bound of class-incremental learning: the scenario objective's loss over every
class seen so far (cross-entropy; multi-label: binary cross-entropy, the phase's labels
only), on the new task's clips only, as the reference toolbox's ``finetune``.
"""

from audiocil.methods.base import Strategy


class Finetune(Strategy):
    """Naive sequential training; everything it needs is in :class:`Strategy`."""

    scenarios = ("standard", "fewshot", "multilabel")
