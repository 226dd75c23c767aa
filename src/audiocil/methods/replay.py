"""Replay: finetune on the new task's clips plus a memory of exemplars of old classes.

Follows the reference toolbox's ``replay``: cross-entropy over all seen classes on the
union of new data and exemplars; exemplars are chosen by herding with a fixed total
budget (``memory.size`` = 2000 in PyCIL) shared by all classes seen so far.

In the multi-label scenario the objective makes it binary cross-entropy over every seen
class, with exemplars drawn at random among each phase's clips (herding by class is
ill-defined for clips with several classes) and replayed with the labels of the phase they
were stored in (:class:`audiocil.objectives.MultiLabel`).
"""

from audiocil.methods.base import Strategy


class Replay(Strategy):
    """Rehearsal with an exemplar memory; the memory is the base class's."""

    scenarios = ("standard", "multilabel")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.memory is None:
            raise ValueError("method=replay needs a memory: set method.memory.size or method.memory.per_class")
