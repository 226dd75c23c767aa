"""ESC-50: 2000 five-second environmental recordings, 50 classes, 5 folds (Piczak, 2015).

Expected layout (the GitHub release, unmodified)::

    <root>/meta/esc50.csv    header: filename,fold,target,category,esc10,src_file,take
    <root>/audio/<filename>  e.g. <root>/audio/1-100032-A-0.wav (5 s, 44.1 kHz mono)

One fold (``test_fold``) is the test split; validation clips are carved from the other
folds with a seeded, per-class draw that keeps the clips cut from one source recording
(``src_file``) together. Class ``k`` is the category whose ``target`` is ``k``.
"""

from __future__ import annotations

import numpy as np

from audiocil.data.catalog import AudioDataset, ClipTable
from audiocil.data.loaders._common import (
    MetadataError,
    abspath,
    as_int,
    carve,
    check_on_bad_file,
    finalize,
    find_file,
    read_csv,
    require_dir,
)

HEADER = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
NUM_FOLDS = 5
SOURCE = ("ESC-50 is published at https://github.com/karolpiczak/ESC-50 "
          "(download the repository archive and extract it; root is the folder holding "
          "meta/ and audio/)")
LAYOUT = (
    "  <root>/meta/esc50.csv    header: " + ",".join(HEADER) + "\n"
    "  <root>/audio/<filename>  e.g. <root>/audio/1-100032-A-0.wav"
)


def load_esc50(root: str, test_fold: int = 5, val_fraction: float = 0.1, seed: int = 0,
               sample_rate: int = 32000, clip_seconds: float = 5.0,
               on_bad_file: str = "error", esc10: bool = False) -> AudioDataset:
    """Load ESC-50 (or its ESC-10 subset) from a local copy (never downloads).

    Args:
        root: the extracted ESC-50 folder (holding ``meta/`` and ``audio/``).
        test_fold: fold 1..5 used as the test split.
        val_fraction: share of each class of the training folds carved out for validation.
        seed: seed of the validation carve.
        sample_rate, clip_seconds: clips are resampled / padded / cropped to these.
        on_bad_file: ``"error"`` or ``"skip"``.
        esc10: keep only the ten ESC-10 classes (relabelled 0..9 in ``target`` order).
    """
    check_on_bad_file(on_bad_file)
    if not 1 <= int(test_fold) <= NUM_FOLDS:
        raise ValueError(f"ESC-50 test_fold must be 1..{NUM_FOLDS}, got {test_fold}")
    root_p = require_dir(root, "ESC-50", LAYOUT, SOURCE)
    csv_path = find_file("esc50.csv", [root_p / "meta"], "ESC-50", LAYOUT, SOURCE)
    rows = read_csv(csv_path, HEADER)
    names: dict[int, str] = {}
    items = []
    for lineno, r in enumerate(rows, start=2):
        target = as_int(r["target"], csv_path, "target")
        fold = as_int(r["fold"], csv_path, "fold")
        if not 1 <= fold <= NUM_FOLDS:
            raise MetadataError(f"{csv_path}, line {lineno}: fold {fold} outside 1..{NUM_FOLDS}")
        if names.setdefault(target, r["category"]) != r["category"]:
            raise MetadataError(f"{csv_path}, line {lineno}: target {target} is both "
                                f"{names[target]!r} and {r['category']!r}")
        if esc10 and r["esc10"].strip().lower() not in ("true", "1"):
            continue
        items.append((r["filename"], fold, target, r["src_file"]))
    kept = sorted({t for _, _, t, _ in items})
    if not esc10 and kept != list(range(len(kept))):
        raise MetadataError(f"{csv_path}: targets must be 0..{len(kept) - 1}")
    relabel = {t: i for i, t in enumerate(kept)}
    class_names = [names[t] for t in kept]

    def table(sel: list[int]) -> ClipTable:
        return ClipTable(paths=[abspath(root_p, "audio", items[i][0]) for i in sel],
                         targets=np.asarray([relabel[items[i][2]] for i in sel], dtype=np.int64))

    test_idx = [i for i, it in enumerate(items) if it[1] == int(test_fold)]
    pool = [i for i, it in enumerate(items) if it[1] != int(test_fold)]
    rest, val = carve([items[i][2] for i in pool], val_fraction, seed,
                      groups=[items[i][3] for i in pool])
    splits = {"train": table([pool[i] for i in rest]), "val": table([pool[i] for i in val]),
              "test": table(test_idx)}
    sources = {s: str(csv_path) for s in splits}
    splits, info = finalize(splits, sources, on_bad_file, "ESC-50", LAYOUT, SOURCE)
    info.update(test_fold=int(test_fold), val_fraction=val_fraction, seed=seed, esc10=esc10)
    return AudioDataset(name="esc10" if esc10 else "esc50", class_names=class_names,
                        sample_rate=int(sample_rate), clip_seconds=float(clip_seconds),
                        multilabel=False, splits=splits, info=info)
