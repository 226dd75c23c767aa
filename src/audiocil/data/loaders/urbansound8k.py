"""UrbanSound8K: 8732 urban sound excerpts (<= 4 s), 10 classes, 10 folds (Salamon et al., 2014).

Expected layout (the official release, unmodified)::

    <root>/metadata/UrbanSound8K.csv
        header: slice_file_name,fsID,start,end,salience,fold,classID,class
    <root>/audio/fold<k>/<slice_file_name>   e.g. <root>/audio/fold1/101415-3-0-2.wav

One fold (``test_fold``) is the test split; validation clips are carved from the other
folds with a seeded, per-class draw that keeps the excerpts of one Freesound recording
(``fsID``) together. The files come at many sample rates and bit depths; all are resampled.
Class ``k`` is the class whose ``classID`` is ``k``.
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

HEADER = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")
NUM_FOLDS = 10
SOURCE = ("UrbanSound8K is published at https://urbansounddataset.weebly.com/urbansound8k.html "
          "(also on Zenodo as UrbanSound8K.tar.gz); root is the extracted UrbanSound8K folder")
LAYOUT = (
    "  <root>/metadata/UrbanSound8K.csv   header: " + ",".join(HEADER) + "\n"
    "  <root>/audio/fold<k>/<slice_file_name>   e.g. <root>/audio/fold1/101415-3-0-2.wav"
)


def load_urbansound8k(root: str, test_fold: int = 10, val_fraction: float = 0.1,
                      seed: int = 0, sample_rate: int = 32000, clip_seconds: float = 4.0,
                      on_bad_file: str = "error") -> AudioDataset:
    """Load UrbanSound8K from a local copy (never downloads).

    Args:
        root: the extracted ``UrbanSound8K`` folder (holding ``metadata/`` and ``audio/``).
        test_fold: fold 1..10 used as the test split.
        val_fraction: share of each class of the training folds carved out for validation.
        seed: seed of the validation carve.
        sample_rate, clip_seconds: clips are resampled / padded / cropped to these.
        on_bad_file: ``"error"`` or ``"skip"``.
    """
    check_on_bad_file(on_bad_file)
    if not 1 <= int(test_fold) <= NUM_FOLDS:
        raise ValueError(f"UrbanSound8K test_fold must be 1..{NUM_FOLDS}, got {test_fold}")
    root_p = require_dir(root, "UrbanSound8K", LAYOUT, SOURCE)
    csv_path = find_file("UrbanSound8K.csv", [root_p / "metadata"], "UrbanSound8K", LAYOUT,
                         SOURCE)
    rows = read_csv(csv_path, HEADER)
    names: dict[int, str] = {}
    items = []
    for lineno, r in enumerate(rows, start=2):
        cid = as_int(r["classID"], csv_path, "classID")
        fold = as_int(r["fold"], csv_path, "fold")
        if not 1 <= fold <= NUM_FOLDS:
            raise MetadataError(f"{csv_path}, line {lineno}: fold {fold} outside 1..{NUM_FOLDS}")
        if names.setdefault(cid, r["class"]) != r["class"]:
            raise MetadataError(f"{csv_path}, line {lineno}: classID {cid} is both "
                                f"{names[cid]!r} and {r['class']!r}")
        items.append((abspath(root_p, "audio", f"fold{fold}", r["slice_file_name"]), fold, cid,
                      r["fsID"]))
    if sorted(names) != list(range(len(names))):
        raise MetadataError(f"{csv_path}: classID values must be 0..{len(names) - 1}")
    class_names = [names[i] for i in range(len(names))]

    def table(sel) -> ClipTable:
        return ClipTable(paths=[items[i][0] for i in sel],
                         targets=np.asarray([items[i][2] for i in sel], dtype=np.int64))

    test_idx = [i for i, it in enumerate(items) if it[1] == int(test_fold)]
    pool = [i for i, it in enumerate(items) if it[1] != int(test_fold)]
    rest, val = carve([items[i][2] for i in pool], val_fraction, seed,
                      groups=[items[i][3] for i in pool])
    splits = {"train": table([pool[i] for i in rest]), "val": table([pool[i] for i in val]),
              "test": table(test_idx)}
    sources = {s: str(csv_path) for s in splits}
    splits, info = finalize(splits, sources, on_bad_file, "UrbanSound8K", LAYOUT, SOURCE)
    info.update(test_fold=int(test_fold), val_fraction=val_fraction, seed=seed)
    return AudioDataset(name="urbansound8k", class_names=class_names,
                        sample_rate=int(sample_rate), clip_seconds=float(clip_seconds),
                        multilabel=False, splits=splits, info=info)
