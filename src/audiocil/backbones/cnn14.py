"""CNN14 of PANNs (Kong et al., "PANNs: Large-scale pretrained audio neural networks for
audio pattern recognition", IEEE/ACM TASLP 2020), the backbone of the multi-label CIL
reference (Mulimani & Mesaros, ICASSP 2024).

Six convolutional blocks (64, 128, 256, 512, 1024, 2048 channels), each two 3x3
convolutions with BatchNorm and ReLU followed by 2x2 average pooling (the sixth block pools
1x1 in PANNs, ``block6_pool``), dropout 0.2 after each block; then the mean over frequency,
max + mean over time, dropout 0.5, ``fc1`` 2048 -> 2048 with ReLU and dropout 0.5: the
2048-d embedding (``out_dim``). PANNs' ``bn0`` (BatchNorm over the mel bins) comes first.

Input: audiocil's front end gives a log-mel batch (B, 1, n_mels, T); PANNs' own layout is
(B, 1, T, n_mels), so the batch is transposed first and a PANNs checkpoint's convolution
kernels apply as they were trained. PANNs' spectrogram layers are not needed (the front end
makes the log-mels), and ``fc_audioset`` (the 527 AudioSet classes) is replaced by the CIL
head.

Pretrained weights: ``"backbone.pretrained='/path/Cnn14_mAP=0.431.pth'"`` (quoted: the name holds an ``=``) loads a local PANNs
checkpoint (a dict whose ``model`` entry is the state dict, with the published names
``bn0.*``, ``conv_block1.conv1.weight``, ..., ``fc1.*``); ``spectrogram_extractor.*``,
``logmel_extractor.*`` and ``fc_audioset.*`` are ignored. Nothing is downloaded. The front
end here standardises each mel bin (natural-log mels, first-phase statistics), whereas PANNs
feeds bn0 with dB log-mels: by default (``pretrained_bn0: reset_stats``) bn0 keeps its
learnt scale and shift but its running statistics are reset to mean 0, variance 1, which
matches a standardised input; ``keep`` keeps PANNs' statistics (for a front end that
reproduces PANNs' dB log-mels, 64 slaney mels at 32 kHz, 50-14000 Hz).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

#: checkpoint entries that are not part of this backbone
IGNORED_PREFIXES = ("spectrogram_extractor.", "logmel_extractor.", "fc_audioset.",
                    "spec_augmenter.")


class ConvBlock(nn.Module):
    """Two (3x3 conv, BatchNorm, ReLU), then average pooling. Names as in PANNs."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)
        for conv in (self.conv1, self.conv2):
            nn.init.xavier_uniform_(conv.weight)

    def forward(self, x: torch.Tensor, pool: int = 2) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool) if pool > 1 else x


class Cnn14(nn.Module):
    """PANNs CNN14 as a feature extractor.

    Args:
        n_mels: mel bins of the input (bn0's size; 64 for a PANNs checkpoint).
        width: channels of the first block (64 in PANNs; each block doubles them). Smaller
            widths are for tests and CPU runs and cannot load a PANNs checkpoint.
        block6_pool: pooling of the last block (1 as PANNs; 2 as the IODFD authors' code).
        dropout: dropout after each block (0.2 in PANNs).
        fc_dropout: dropout before and after fc1 (0.5 in PANNs).
        pretrained: path of a local PANNs checkpoint, or None (train from scratch).
        pretrained_bn0: ``reset_stats`` or ``keep`` (see the module docstring).
        in_channels: must be 1 (a log-mel spectrogram).

    Shapes: (B, 1, n_mels, T) -> (B, out_dim), ``out_dim = 32 * width`` (2048).
    ``forward(x, return_maps=True)`` also returns the outputs of the six conv blocks
    (``n_stages = 6``; channels ``stage_channels`` = w .. 32w), each after its pooling and
    before the dropout that follows it, in audiocil's (B, C, F, T) layout (transposed back
    from PANNs' (B, C, T, F)): after block i = 1..5, F and T are divided by 2**i
    (floored); block 6 divides them by ``block6_pool`` once more (1: not at all).
    """

    def __init__(self, n_mels: int = 64, width: int = 64, block6_pool: int = 1,
                 dropout: float = 0.2, fc_dropout: float = 0.5, pretrained: str | None = None,
                 pretrained_bn0: str = "reset_stats", in_channels: int = 1) -> None:
        super().__init__()
        if in_channels != 1:
            raise ValueError(f"cnn14 takes a one-channel log-mel input, got in_channels={in_channels}")
        if pretrained_bn0 not in ("reset_stats", "keep"):
            raise ValueError(f"pretrained_bn0 must be reset_stats|keep, got {pretrained_bn0!r}")
        w = width
        chans = [1, w, 2 * w, 4 * w, 8 * w, 16 * w, 32 * w]
        self.bn0 = nn.BatchNorm2d(n_mels)
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", ConvBlock(chans[i], chans[i + 1]))
        self.fc1 = nn.Linear(32 * w, 32 * w)
        nn.init.xavier_uniform_(self.fc1.weight)
        nn.init.zeros_(self.fc1.bias)
        self.block6_pool, self.dropout, self.fc_dropout = int(block6_pool), dropout, fc_dropout
        self.out_dim = 32 * w
        self.stage_channels = chans[1:]
        self.n_stages = len(self.stage_channels)
        if pretrained:
            self.load_panns(pretrained, reset_bn0_stats=pretrained_bn0 == "reset_stats")

    def forward(self, x: torch.Tensor, return_maps: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """The embedding (B, out_dim); with ``return_maps`` also the blocks' maps (see above)."""
        if x.shape[2] != self.bn0.num_features:
            raise ValueError(f"cnn14 was built for {self.bn0.num_features} mel bins (backbone.n_mels) "
                             f"but gets {x.shape[2]}: set backbone.n_mels=dataset.frontend.n_mels")
        x = x.transpose(2, 3)  # (B, 1, F, T) -> PANNs' (B, 1, T, F)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # BatchNorm over the mel bins
        maps: list[torch.Tensor] = []
        for i in range(1, 7):
            block = getattr(self, f"conv_block{i}")
            x = block(x, pool=self.block6_pool if i == 6 else 2)
            if return_maps:
                maps.append(x.transpose(2, 3))  # (B, C, T', F') -> (B, C, F', T')
            x = F.dropout(x, p=self.dropout, training=self.training)
        x = x.mean(dim=3)  # over frequency: (B, C, T')
        x = x.amax(dim=2) + x.mean(dim=2)  # max + mean over time: (B, C)
        x = F.dropout(x, p=self.fc_dropout, training=self.training)
        x = F.relu(self.fc1(x))
        emb = F.dropout(x, p=self.fc_dropout, training=self.training)
        return (emb, maps) if return_maps else emb

    def load_panns(self, path: str | Path, reset_bn0_stats: bool = True) -> None:
        """Load a local PANNs checkpoint (see the module docstring); clear errors name the file."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"backbone.pretrained={path}: no such file. Give the path of a PANNs CNN14 "
                "checkpoint on this machine (e.g. Cnn14_mAP=0.431.pth from the PANNs release); "
                "nothing is downloaded.")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # not a torch file, or not plain tensors
            raise ValueError(f"backbone.pretrained={path}: cannot read it as a PyTorch "
                             f"checkpoint ({type(e).__name__}: {e})") from e
        state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(state, dict):
            raise ValueError(f"backbone.pretrained={path}: expected a dict with a 'model' state "
                             f"dict (PANNs' format), got {type(ckpt).__name__}")
        state = {k.removeprefix("module."): v for k, v in state.items()
                 if not k.removeprefix("module.").startswith(IGNORED_PREFIXES)}
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
        if missing or unexpected or wrong:
            parts = []
            if missing:
                parts.append(f"missing {len(missing)} key(s), e.g. {missing[:3]}")
            if unexpected:
                parts.append(f"unexpected {len(unexpected)} key(s), e.g. {unexpected[:3]}")
            if wrong:
                k = wrong[0]
                parts.append(f"{len(wrong)} shape mismatch(es), e.g. {k}: checkpoint "
                             f"{tuple(state[k].shape)} vs model {tuple(own[k].shape)}")
            raise ValueError(
                f"backbone.pretrained={path} does not match CNN14(n_mels={self.bn0.num_features}, "
                f"width={self.out_dim // 32}): " + "; ".join(parts)
                + ". A PANNs CNN14 checkpoint needs width=64 and n_mels=64.")
        self.load_state_dict(state)
        if reset_bn0_stats:
            self.bn0.reset_running_stats()
