"""ResNet-18 (He et al., 2016) on a one-channel log-mel input.

The reference audio CIL toolbox uses ResNet-18; here its first convolution takes the
single log-mel channel directly instead of repeating the spectrogram to three channels.
Convolutions start from He et al.'s initialisation (normal, fan-out, ReLU gain), as in the
original paper, torchvision and the reference toolbox (PyCIL's ``convs/resnet.py``);
``init="pytorch"`` keeps PyTorch's layer defaults (uniform, fan-in, gain for a leaky ReLU
of slope sqrt(5)), whose weights are 2.4x smaller in the convolutions that keep their width,
so that those BatchNorm-normalised layers take larger steps at the same learning rate.
"""

from __future__ import annotations

import torch
from torch import nn

INITS = ("he", "pytorch")


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return torch.relu(h + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18: stem, four stages of two basic blocks, global average pooling.

    Args:
        in_channels: 1 for a log-mel spectrogram.
        width: channels of the first stage (64 in the original).
        stem_stride: stride of the 7x7 stem convolution and the max-pool after it; 2 as in
            the original, 1 for short inputs.
        init: ``he`` (the original's) or ``pytorch`` (the layers' defaults), see above.

    Shapes: (B, in_channels, F, T) -> (B, out_dim) with ``out_dim = 8 * width``.
    ``forward(x, return_maps=True)`` also returns the outputs of the four stages (layer1-4
    of the original, each the output of its second block; ``n_stages = 4``), with
    ``stage_channels`` w, 2w, 4w, 8w and sizes F/4, F/8, F/16, F/32 (T alike) for
    ``stem_stride=2``, F, F/2, F/4, F/8 for ``stem_stride=1`` (sizes rounded up).
    """

    def __init__(self, in_channels: int = 1, width: int = 64, stem_stride: int = 2,
                 init: str = "he") -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"backbone.init={init!r}: expected one of {', '.join(INITS)}")
        w = width
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, w, 7, stem_stride, 3, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stem_stride, 1),
        )
        stages = []
        cin = w
        for i, cout in enumerate([w, 2 * w, 4 * w, 8 * w]):
            stride = 1 if i == 0 else 2
            stages += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.out_dim = 8 * w
        self.stage_channels = [w, 2 * w, 4 * w, 8 * w]
        self.n_stages = len(self.stage_channels)
        if init == "he":
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor, return_maps: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """The embedding (B, out_dim); with ``return_maps`` also the stages' maps (see above)."""
        if not return_maps:
            return self.stages(self.stem(x)).mean(dim=(2, 3))  # (B, 8w)
        h, maps = self.stem(x), []
        for i, block in enumerate(self.stages):
            h = block(h)
            if i % 2 == 1:  # a stage is two blocks
                maps.append(h)
        return h.mean(dim=(2, 3)), maps
