"""Classifier heads that grow as classes arrive; each maps features (B, D) to logits (B, C).

- :class:`IncrementalLinear`: a linear layer (the default head of every method).
- :class:`CosineHead`: scaled cosine with k proxies per class, weights per task
  (UCIR / COIL; PODNet's local similarity classifier).
- :class:`BiasCorrection`: BiC's per-task (alpha, beta) on a head's logits.
- :class:`PrototypeBank`: nearest class mean by cosine or Euclidean distance (iCaRL's NME).

:mod:`audiocil.heads.functional` holds the pure functions they use.
"""

from audiocil.heads.bias import BiasCorrection
from audiocil.heads.cosine import CosineHead
from audiocil.heads.linear import IncrementalLinear
from audiocil.heads.prototype import PrototypeBank

__all__ = ["BiasCorrection", "CosineHead", "IncrementalLinear", "PrototypeBank"]
