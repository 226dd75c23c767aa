"""A small CNN for CPU runs: four conv blocks, global pooling, ~0.3M parameters."""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """Conv(32)-Conv(64)-Conv(128)-Conv(256) with 2x2 pooling, global mean+max pooling and a
    batch-normalised embedding.

    Args:
        in_channels: input channels (1 for a log-mel spectrogram).
        width: channels of the first block; each later block doubles it.
        dropout: dropout on the embedding.

    Shapes: (B, in_channels, F, T) -> (B, out_dim) with ``out_dim = 8 * width``.
    ``forward(x, return_maps=True)`` also returns the outputs of the four blocks
    (``n_stages = 4``): (B, w, F/2, T/2), (B, 2w, F/4, T/4), (B, 4w, F/8, T/8),
    (B, 8w, F/8, T/8) (each after its pooling; sizes floored).
    """

    def __init__(self, in_channels: int = 1, width: int = 32, dropout: float = 0.1) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _block(in_channels, w, True),
            _block(w, 2 * w, True),
            _block(2 * w, 4 * w, True),
            _block(4 * w, 8 * w, False),
        )
        self.norm = nn.BatchNorm1d(8 * w)  # keeps the embedding's scale steady at PyCIL's lr 0.1
        self.dropout = nn.Dropout(dropout)
        self.out_dim = 8 * w
        self.stage_channels = [w, 2 * w, 4 * w, 8 * w]
        self.n_stages = len(self.stage_channels)

    def forward(self, x: torch.Tensor, return_maps: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """The embedding (B, out_dim); with ``return_maps`` also the blocks' maps (see above)."""
        maps: list[torch.Tensor] = []
        if return_maps:
            h = x
            for block in self.features:
                h = block(h)
                maps.append(h)
        else:
            h = self.features(x)  # (B, 8w, F/8, T/8)
        h = h.mean(dim=(2, 3)) + h.amax(dim=(2, 3))  # (B, 8w)
        emb = self.dropout(self.norm(h))
        return (emb, maps) if return_maps else emb
