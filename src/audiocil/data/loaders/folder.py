"""Your own audio: one sub-folder per class.

Expected layout::

    <root>/<class_name>/<any name>.wav     (.flac, .ogg, .mp3, .aiff also read;
    <root>/<class_name>/sub/dir/<x>.flac    files in nested folders count too)

Classes are the sub-folder names in sorted order (folders whose name starts with ``.`` or
``_`` are ignored). Each class is split with a seeded draw into train / val / test by the
given fractions; a class needs at least 3 files so that every split gets one.
"""

from __future__ import annotations

import os

import numpy as np

from audiocil.data.catalog import AudioDataset, ClipTable
from audiocil.data.loaders._common import (
    MetadataError,
    check_on_bad_file,
    finalize,
    not_found,
    require_dir,
)
from audiocil.errors import ConfigError

EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
SOURCE = "This loader reads your own recordings; nothing is published or downloaded."
LAYOUT = (
    "  <root>/<class_name>/*.wav   (also .flac, .ogg, .mp3, .aiff; nested folders allowed)\n"
    "  e.g. <root>/dog/bark_001.wav, <root>/cat/meow_17.flac"
)


def _audio_files(folder: str, extensions: tuple[str, ...]) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(os.path.join(dirpath, f) for f in filenames
                   if f.lower().endswith(extensions) and not f.startswith("."))
    return sorted(os.path.abspath(p) for p in out)


def load_folder(root: str, val_fraction: float = 0.1, test_fraction: float = 0.2,
                seed: int = 0, sample_rate: int = 16000, clip_seconds: float = 1.0,
                on_bad_file: str = "error", extensions: tuple[str, ...] = EXTENSIONS,
                name: str = "folder") -> AudioDataset:
    """Load ``root/<class_name>/*.{wav,flac,ogg,...}`` with a seeded stratified split.

    Args:
        root: the folder of class sub-folders.
        val_fraction, test_fraction: share of each class for val / test (rounded, at least
            one file each).
        seed: seed of the split (the same files and seed give the same split).
        sample_rate, clip_seconds: clips are resampled / padded / cropped to these.
        on_bad_file: ``"error"`` or ``"skip"``.
        extensions: file name endings that count as audio.
        name: dataset name recorded with results.
    """
    check_on_bad_file(on_bad_file)
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1
            and val_fraction + test_fraction < 1):
        raise ConfigError(f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) "
                         f"must be in [0, 1) and sum to less than 1")
    root_p = require_dir(root, "folder dataset", LAYOUT, SOURCE)
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    class_names = sorted(e.name for e in os.scandir(root_p)
                         if e.is_dir() and not e.name.startswith((".", "_")))
    if not class_names:
        raise not_found("folder dataset", f"class sub-folders in {root_p}", LAYOUT, SOURCE)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[tuple[str, int]]] = {"train": [], "val": [], "test": []}
    for label, cls in enumerate(class_names):
        files = _audio_files(str(root_p / cls), exts)
        if len(files) < 3:
            raise MetadataError(
                f"folder dataset: class {cls!r} ({root_p / cls}) has {len(files)} audio "
                f"file(s) with endings {', '.join(exts)}; at least 3 are needed (one per "
                f"split). Add files or remove the folder.")
        order = rng.permutation(len(files))
        n_test = max(1, int(round(test_fraction * len(files))))
        n_val = max(1, int(round(val_fraction * len(files))))
        n_train = len(files) - n_test - n_val
        if n_train < 1:
            n_val, n_train = n_val - 1, 1
        cut = {"test": order[:n_test], "val": order[n_test:n_test + n_val],
               "train": order[n_test + n_val:]}
        for split, idx in cut.items():
            parts[split].extend((files[i], label) for i in sorted(idx))
    splits = {s: ClipTable(paths=[p for p, _ in v],
                           targets=np.asarray([t for _, t in v], dtype=np.int64))
              for s, v in parts.items()}
    sources = {s: str(root_p) for s in splits}
    splits, info = finalize(splits, sources, on_bad_file, "folder dataset", LAYOUT, SOURCE)
    info.update(root=str(root_p), val_fraction=val_fraction, test_fraction=test_fraction,
                seed=seed)
    return AudioDataset(name=name, class_names=class_names, sample_rate=int(sample_rate),
                        clip_seconds=float(clip_seconds), multilabel=False, splits=splits,
                        info=info)
