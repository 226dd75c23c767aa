"""A cosine classifier with k proxies per class and a learnable scale, stored per task.

The head of UCIR (Hou et al., CVPR 2019: one normalised weight per class, a learnt scale
sigma), COIL (Zhou et al., ACM MM 2021: UCIR's head, new-class weights set by optimal
transport) and PODNet (Douillard et al., ECCV 2020: the "local similarity classifier",
LSC, with k = 10 proxies per class merged by a softmax over their cosines).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from audiocil.heads.functional import cosine_logits

MERGES = ("softmax", "max", "mean")


class CosineHead(nn.Module):
    """Scaled cosine logits, ``sigma * merge_k cos(f, w_ck)``, with the weights of each task
    in their own parameter, so that an optimiser can treat old and new classes apart.

    A class c has k proxies w_c1..w_ck. With s_k = cos(f, w_ck) its logit is
    ``sigma * sum_k softmax_k(s) s_k`` (PODNet's LSC; the softmax has no temperature, as in
    the paper), or the max or mean of the s_k; with k = 1 simply ``sigma * s_1``.

    Weights: ``weights`` is a ParameterList with one chunk per :meth:`grow` call, chunk t of
    shape (n_t * k, D), row ``c * k + j`` being proxy j of the chunk's class c. Initialised
    uniform in +-1/sqrt(D) (UCIR's cosine layer); the norm does not change the logits.

    Args:
        in_dim: feature size D.
        proxies: k, proxies per class (PODNet: 10; UCIR, COIL: 1).
        scale_init: sigma at creation (1 in PODNet and in PyCIL's UCIR / COIL heads).
        learn_scale: sigma is a Parameter (``scale_parameters()``) if True, else a buffer.
        merge: ``softmax`` (LSC), ``max`` or ``mean`` of a class's proxy cosines.
        num_classes: outputs at creation (as one first chunk), or 0.

    Shapes: (B, D) -> (B, C).

    Loading a state dict with more chunks than the head has adds the missing chunks (with
    the saved shapes), so a grown head loads into a freshly built one.
    """

    def __init__(self, in_dim: int, proxies: int = 1, scale_init: float = 1.0,
                 learn_scale: bool = True, merge: str = "softmax", num_classes: int = 0) -> None:
        super().__init__()
        if proxies < 1:
            raise ValueError(f"proxies must be >= 1, got {proxies}")
        if merge not in MERGES:
            raise ValueError(f"merge must be one of {'|'.join(MERGES)}, got {merge!r}")
        self.in_dim, self.proxies, self.merge = int(in_dim), int(proxies), merge
        self.weights = nn.ParameterList()
        scale = torch.tensor(float(scale_init))
        self.scale: torch.Tensor
        if learn_scale:
            self.scale = nn.Parameter(scale)
        else:
            self.register_buffer("scale", scale)
        if num_classes:
            self.grow(num_classes)

    # ---- sizes ---------------------------------------------------------------------------
    @property
    def chunk_sizes(self) -> list[int]:
        """Classes of each chunk (task), in order."""
        return [w.shape[0] // self.proxies for w in self.weights]

    @property
    def num_classes(self) -> int:
        return sum(self.chunk_sizes)

    # ---- growth and initialisation ----------------------------------------------------------
    def grow(self, n_new: int) -> None:
        """Append a chunk of ``n_new`` classes (k proxies each); older chunks are untouched."""
        if n_new < 1:
            raise ValueError(f"grow needs n_new >= 1, got {n_new}")
        bound = 1.0 / math.sqrt(self.in_dim)
        w = torch.empty(n_new * self.proxies, self.in_dim, device=self.scale.device,
                        dtype=self.scale.dtype).uniform_(-bound, bound)
        self.weights.append(nn.Parameter(w))

    @torch.no_grad()
    def init_rows(self, weight: torch.Tensor) -> None:
        """Set the newest chunk's proxies from ``weight`` (n, k, D), or (n, D) when k = 1.

        n is the newest chunk's class count. E.g. COIL's transported weights or imprinted
        class means. The values are copied as given (the Parameter stays the same object).
        """
        if not len(self.weights):
            raise ValueError("init_rows: the head has no classes yet; call grow first")
        n, k, d = self.chunk_sizes[-1], self.proxies, self.in_dim
        if weight.dim() == 2:
            if k != 1:  # identical proxies would get identical gradients and never part
                raise ValueError(f"init_rows: give (n, k, D) = ({n}, {k}, {d}) weights for "
                                 f"k = {k} proxies, got {tuple(weight.shape)}")
            weight = weight.unsqueeze(1)
        if tuple(weight.shape) != (n, k, d):
            raise ValueError(f"init_rows: the newest chunk needs ({n}, {k}, {d}) weights, "
                             f"got {tuple(weight.shape)}")
        self.weights[-1].copy_(weight.reshape(n * k, d))

    # ---- parameter groups ----------------------------------------------------------------
    def old_parameters(self) -> list[nn.Parameter]:
        """The chunks of every task but the last (PODNet gives them lr 0)."""
        return list(self.weights)[:-1]

    def new_parameters(self) -> list[nn.Parameter]:
        """The last task's chunk ([] before the first :meth:`grow`)."""
        return list(self.weights)[-1:]

    def scale_parameters(self) -> list[nn.Parameter]:
        """[sigma] if it is learnt, else []."""
        return [self.scale] if isinstance(self.scale, nn.Parameter) else []

    # ---- scores ----------------------------------------------------------------------------
    def proxy_cosines(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, k) cosine of each normalised feature (B, D) with each normalised proxy."""
        B, k = features.shape[0], self.proxies
        if not len(self.weights):
            return features.new_zeros(B, 0, k)
        w = torch.cat(list(self.weights)) if len(self.weights) > 1 else self.weights[0]
        return cosine_logits(features, w).view(B, -1, k)

    def cosines(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C) un-scaled class scores: the proxies' cosines merged (see the class doc)."""
        s = self.proxy_cosines(features)  # (B, C, k)
        if self.proxies == 1:
            return s[..., 0]
        if self.merge == "softmax":
            return (F.softmax(s, dim=-1) * s).sum(-1)
        if self.merge == "max":
            return s.amax(-1)
        return s.mean(-1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.scale * self.cosines(features)  # (B, C)

    # ---- checkpoints ---------------------------------------------------------------------
    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # add the chunks a grown head saved, before the ParameterList loads them
        while True:
            key = f"{prefix}weights.{len(self.weights)}"
            w = state_dict.get(key)
            if (w is None or w.dim() != 2 or w.shape[1] != self.in_dim or w.shape[0] == 0
                    or w.shape[0] % self.proxies):
                break
            self.weights.append(nn.Parameter(torch.empty(
                w.shape, device=self.scale.device, dtype=self.scale.dtype)))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (f"in_dim={self.in_dim}, proxies={self.proxies}, merge={self.merge}, "
                f"chunks={self.chunk_sizes}, learn_scale={bool(self.scale_parameters())}")
