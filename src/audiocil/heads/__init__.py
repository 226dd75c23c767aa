"""Classifier heads that grow as classes arrive; each maps features (B, D) to logits (B, C).

:mod:`audiocil.heads.functional` holds the pure functions they use.
"""

from audiocil.heads.linear import IncrementalLinear

__all__ = ["IncrementalLinear"]
