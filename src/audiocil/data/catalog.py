"""What a dataset is, to the rest of audiocil: clip tables per split, class names, audio settings.

Every loader (synthetic, embedded, real benchmark, user folder) returns an
:class:`AudioDataset`. Nothing downstream knows where the clips came from: the feature
cache reads the listed files, the scenario splits the classes, the datamodule serves them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ClipTable:
    """Metadata of one split.

    Attributes:
        paths: absolute path of each clip's audio file, (N,).
        targets: class ids (N,) int64 for single-label data, or multi-hot (N, C) uint8.
        offsets: start of each clip inside its file in seconds (N,) float, or None for 0.
            FSC-89 cuts one-second clips out of longer soundscapes this way.
    """

    paths: list[str]
    targets: np.ndarray
    offsets: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.targets):
            raise ValueError(f"ClipTable: {len(self.paths)} paths but {len(self.targets)} targets")
        if self.offsets is not None and len(self.offsets) != len(self.paths):
            raise ValueError(f"ClipTable: {len(self.paths)} paths but {len(self.offsets)} offsets")

    def __len__(self) -> int:
        return len(self.paths)


@dataclass(frozen=True)
class AudioDataset:
    """A labelled audio dataset with train / val / test splits.

    Attributes:
        name: short name, e.g. ``"nsynth100"``.
        class_names: one name per class id; ``len(class_names)`` is the number of classes.
        sample_rate: rate every clip is resampled to, in Hz.
        clip_seconds: every clip is padded or cropped to this length.
        multilabel: True when ``targets`` are multi-hot.
        splits: ``{"train": ClipTable, "val": ClipTable, "test": ClipTable}``.
        info: free-form facts worth recording in results (e.g. skipped bad files).
    """

    name: str
    class_names: list[str]
    sample_rate: int
    clip_seconds: float
    multilabel: bool
    splits: dict[str, ClipTable]
    info: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_samples(self) -> int:
        """Samples per clip after padding or cropping."""
        return int(round(self.sample_rate * self.clip_seconds))

    def __post_init__(self) -> None:
        missing = [s for s in SPLITS if s not in self.splits]
        if missing:
            raise ValueError(f"dataset {self.name!r} has no {missing} split(s)")
        for split, table in self.splits.items():
            if len(table) == 0:
                raise ValueError(f"dataset {self.name!r}: the {split} split is empty")
            if self.multilabel:
                if table.targets.ndim != 2 or table.targets.shape[1] != self.num_classes:
                    raise ValueError(
                        f"dataset {self.name!r}: multi-label {split} targets must be (N, "
                        f"{self.num_classes}), got {table.targets.shape}"
                    )
            else:
                if table.targets.ndim != 1:
                    raise ValueError(f"dataset {self.name!r}: {split} targets must be (N,)")
                lo, hi = int(table.targets.min()), int(table.targets.max())
                if lo < 0 or hi >= self.num_classes:
                    raise ValueError(
                        f"dataset {self.name!r}: {split} labels span {lo}..{hi}, outside "
                        f"0..{self.num_classes - 1}"
                    )
