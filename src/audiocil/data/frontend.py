"""The feature front end: log-mel on the training device, input normalisation, SpecAugment."""

from __future__ import annotations

import torch
import torchaudio
from torch import nn


class LogMel(nn.Module):
    """Waveforms (B, S) -> log-mel spectrograms (B, 1, n_mels, T), T = 1 + S // hop_length.

    Args (beyond the spectrogram's):
        exact: project the power spectrum onto the mel bank and take the log in float64
            (then float32). In float32 the projection's sums are ordered by the matrix
            library's blocking, which depends on the thread count and the batch size, so the
            same clip's log-mels could differ in the last bit between two machines; in
            float64 those differences sit far below float32's (and the cache's float16's)
            rounding, so the result is the same for any thread count and batch. The feature
            cache uses it: a cache built anywhere holds the same bytes.
    """

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int,
                 f_min: float = 0.0, f_max: float | None = None, log_floor: float = 1e-6,
                 exact: bool = False) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
            f_min=f_min, f_max=f_max, power=2.0,
        )
        self.log_floor = log_floor
        self.exact = bool(exact)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        with torch.autocast(wave.device.type, enabled=False):
            if not self.exact:
                spec = self.mel(wave.float())  # (B, n_mels, T)
                return torch.log(spec + self.log_floor).unsqueeze(1)
            power = self.mel.spectrogram(wave.float()).double()  # (B, freq, T)
            fb = self.mel.mel_scale.fb.double()  # (freq, n_mels)
            spec = torch.matmul(power.transpose(-1, -2), fb).transpose(-1, -2)
            return torch.log(spec + self.log_floor).float().unsqueeze(1)


class SpecAugment(nn.Module):
    """Time and frequency masks (Park et al., 2019) on training batches (B, 1, F, T)."""

    def __init__(self, freq_masks: int = 2, freq_width: int = 8, time_masks: int = 2,
                 time_width: int = 8) -> None:
        super().__init__()
        self.masks = nn.ModuleList(
            [torchaudio.transforms.FrequencyMasking(freq_width, iid_masks=True)] * freq_masks
            + [torchaudio.transforms.TimeMasking(time_width, iid_masks=True)] * time_masks
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        for mask in self.masks:
            x = mask(x)
        return x


class Frontend(nn.Module):
    """What turns a served batch into the backbone's input.

    Args:
        logmel: a :class:`LogMel` when batches are waveforms (cache mode ``waveform``),
            None when they are cached log-mels already.
        spec_augment: a :class:`SpecAugment`, or None.

    The per-mel-bin mean and std are buffers set once from the first task's training data
    (:meth:`set_stats`), so they travel with every checkpoint.
    """

    def __init__(self, n_mels: int, logmel: LogMel | None = None,
                 spec_augment: SpecAugment | None = None) -> None:
        super().__init__()
        self.logmel = logmel
        self.spec_augment = spec_augment
        self.register_buffer("mean", torch.zeros(1, 1, n_mels, 1))
        self.register_buffer("std", torch.ones(1, 1, n_mels, 1))

    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """mean, std: (n_mels,) statistics of the first task's log-mels."""
        self.mean.copy_(mean.view_as(self.mean))
        self.std.copy_(std.clamp(min=1e-5).view_as(self.std))

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        """Log-mels (B, 1, F, T) from a served batch, before normalisation."""
        if self.logmel is not None:
            return self.logmel(batch)
        return batch.float().unsqueeze(1)  # cached (B, F, T) -> (B, 1, F, T)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        x = (self.features(batch) - self.mean) / self.std
        if self.spec_augment is not None:
            x = self.spec_augment(x)
        return x
