"""FSD50K: 51k Freesound clips (0.3-30 s) with 200 AudioSet-ontology classes (Fonseca et al.).

Expected layout (the Zenodo release, extracted, unmodified)::

    <root>/FSD50K.ground_truth/dev.csv         header: fname,labels,mids,split
    <root>/FSD50K.ground_truth/eval.csv        header: fname,labels,mids
    <root>/FSD50K.ground_truth/vocabulary.csv  lines "<index>,<label>,<mid>" (no header)
    <root>/FSD50K.dev_audio/<fname>.wav        e.g. <root>/FSD50K.dev_audio/64760.wav
    <root>/FSD50K.eval_audio/<fname>.wav

Multi-label. Only the ``num_classes`` most frequent classes of the training split (counted
in clips; note FSD50K labels include their ontology ancestors) are kept, class 0 being the
most frequent, and clips with none of them are dropped. Splits: ``dev.csv`` rows with
``split=train`` / ``split=val`` and ``eval.csv``; without a ``split`` column, validation
clips are a seeded carve of the dev set.
"""

from __future__ import annotations

import csv

import numpy as np

from audiocil.data.catalog import AudioDataset, ClipTable
from audiocil.data.loaders._common import (
    MetadataError,
    abspath,
    carve,
    check_on_bad_file,
    finalize,
    find_file,
    multi_hot,
    rarest_label,
    read_csv,
    require_dir,
    subset,
    top_classes,
)

DEV_HEADER = ("fname", "labels", "mids", "split")
EVAL_HEADER = ("fname", "labels", "mids")
GT = "FSD50K.ground_truth"
SOURCE = "FSD50K is published at https://zenodo.org/record/4060432 (extract every archive into root)"
LAYOUT = (
    f"  <root>/{GT}/dev.csv    header: {','.join(DEV_HEADER)}\n"
    f"  <root>/{GT}/eval.csv   header: {','.join(EVAL_HEADER)}\n"
    f"  <root>/{GT}/vocabulary.csv   '<index>,<label>,<mid>' per line\n"
    "  <root>/FSD50K.dev_audio/<fname>.wav, <root>/FSD50K.eval_audio/<fname>.wav"
)


def _vocabulary(path) -> dict[str, str]:
    """``{mid: label}``."""
    out = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if not row:
                continue
            if len(row) != 3:
                raise MetadataError(f"{path}, line {lineno}: expected '<index>,<label>,<mid>'")
            if not row[2].startswith("/"):
                if lineno == 1:
                    continue  # a header line
                raise MetadataError(f"{path}, line {lineno}: {row[2]!r} is not a /m/ MID")
            out[row[2]] = row[1]
    return out


def _mids(rows: list[dict], path, vocab: dict[str, str]) -> list[list[str]]:
    out = []
    for lineno, r in enumerate(rows, start=2):
        mids = [m.strip() for m in r["mids"].split(",") if m.strip()]
        unknown = [m for m in mids if m not in vocab]
        if not mids or unknown:
            raise MetadataError(f"{path}, line {lineno}: mids {r['mids']!r} "
                                + (f"include {unknown} not in vocabulary.csv" if unknown
                                   else "is empty"))
        out.append(mids)
    return out


def load_fsd50k(root: str, num_classes: int = 50, val_fraction: float = 0.1, seed: int = 0,
                sample_rate: int = 32000, clip_seconds: float = 10.0,
                on_bad_file: str = "error", metadata_dir: str | None = None) -> AudioDataset:
    """Load FSD50K from a local copy as a multi-label dataset (never downloads).

    Args:
        root: folder holding ``FSD50K.ground_truth/``, ``FSD50K.dev_audio/``,
            ``FSD50K.eval_audio/``.
        num_classes: keep this many most frequent classes (default 50).
        val_fraction, seed: only used when ``dev.csv`` has no ``split`` column.
        sample_rate, clip_seconds: clips are resampled / padded / cropped to these.
        on_bad_file: ``"error"`` or ``"skip"``.
        metadata_dir: folder of the ground-truth CSVs; default ``<root>/FSD50K.ground_truth``.
    """
    check_on_bad_file(on_bad_file)
    root_p = require_dir(root, "FSD50K", LAYOUT, SOURCE)
    meta = [metadata_dir or root_p / GT]
    dev_path = find_file("dev.csv", meta, "FSD50K", LAYOUT, SOURCE)
    eval_path = find_file("eval.csv", meta, "FSD50K", LAYOUT, SOURCE)
    vocab_path = find_file("vocabulary.csv", meta, "FSD50K", LAYOUT, SOURCE)
    vocab = _vocabulary(vocab_path)
    dev_rows = read_csv(dev_path, DEV_HEADER, optional=("split",))
    eval_rows = read_csv(eval_path, EVAL_HEADER)
    dev_mids = _mids(dev_rows, dev_path, vocab)
    eval_mids = _mids(eval_rows, eval_path, vocab)

    has_split = "split" in dev_rows[0]
    if has_split:
        bad = [r["split"] for r in dev_rows if r["split"] not in ("train", "val")]
        if bad:
            raise MetadataError(f"{dev_path}: split column holds {bad[0]!r}, expected train|val")
        is_train = [r["split"] == "train" for r in dev_rows]
    else:
        is_train = [True] * len(dev_rows)
    classes = top_classes([m for m, t in zip(dev_mids, is_train, strict=True) if t], num_classes)

    def table(rows, mids, folder) -> tuple[ClipTable, np.ndarray]:
        targets = multi_hot(mids, classes)
        keep = np.flatnonzero(targets.any(axis=1))
        return ClipTable(paths=[abspath(root_p, folder, rows[i]["fname"] + ".wav") for i in keep],
                         targets=targets[keep]), keep

    dev, dev_keep = table(dev_rows, dev_mids, "FSD50K.dev_audio")
    test, _ = table(eval_rows, eval_mids, "FSD50K.eval_audio")
    if has_split:
        flags = np.asarray(is_train)[dev_keep]
        train_idx, val_idx = np.flatnonzero(flags), np.flatnonzero(~flags)
    else:
        train_idx, val_idx = carve(rarest_label(dev.targets), val_fraction, seed)
    splits = {"train": subset(dev, train_idx), "val": subset(dev, val_idx), "test": test}
    sources = {"train": str(dev_path), "val": str(dev_path), "test": str(eval_path)}
    splits, info = finalize(splits, sources, on_bad_file, "FSD50K", LAYOUT, SOURCE)
    info.update(mids=classes, vocabulary=str(vocab_path),
                val="dev.csv split column" if has_split else f"seeded carve ({seed})")
    return AudioDataset(name="fsd50k", class_names=[vocab[m] for m in classes],
                        sample_rate=int(sample_rate), clip_seconds=float(clip_seconds),
                        multilabel=True, splits=splits, info=info)
