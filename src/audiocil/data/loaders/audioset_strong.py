"""AudioSet with the temporally-strong labels (Hershey et al., 2021), as multi-label clips.

AudioSet audio is not distributed by Google; you must already hold the 10 s clips locally.
Expected layout::

    <root>/audio/train/<segment_id>.wav   e.g. <root>/audio/train/YxlGt805lTA_30000.wav
    <root>/audio/eval/<segment_id>.wav
        (a file named <YTID>.wav or Y<YTID>.wav holding the 10 s clip is accepted too;
         .flac instead of .wav as well)
    <metadata_dir>/audioset_train_strong.tsv
    <metadata_dir>/audioset_eval_strong.tsv
        header (tab-separated): segment_id  start_time_seconds  end_time_seconds  label
        label is a /m/ MID; segment_id is <YTID>_<start in ms>
    <metadata_dir>/mid_to_display_name.tsv   lines "<MID><TAB><display name>" (no header)

``metadata_dir`` defaults to ``<root>`` (or ``<root>/metadata``). Each segment becomes one
clip whose targets are the classes of all its events (event times are not used). Only the
``num_classes`` most frequent classes of the training file (counted in segments) are kept,
class 0 being the most frequent; segments with none of them are dropped. The evaluation
file is the test split; validation segments are a seeded carve of the training file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from audiocil.data.catalog import AudioDataset, ClipTable
from audiocil.data.loaders._common import (
    MetadataError,
    abspath,
    as_float,
    carve,
    check_on_bad_file,
    finalize,
    find_file,
    iter_csv,
    multi_hot,
    rarest_label,
    require_dir,
    subset,
    top_classes,
)

HEADER = ("segment_id", "start_time_seconds", "end_time_seconds", "label")
TSV = {"train": "audioset_train_strong.tsv", "eval": "audioset_eval_strong.tsv"}
NAMES_TSV = "mid_to_display_name.tsv"
AUDIO_EXTS = (".wav", ".flac")
SOURCE = ("AudioSet strong labels (audioset_{train,eval}_strong.tsv, mid_to_display_name.tsv): "
          "https://research.google.com/audioset/download_strong.html\n"
          "The audio itself comes from YouTube and is not redistributed: use your own local "
          "copy of the 10 s segments.")
LAYOUT = (
    "  <root>/audio/train/<segment_id>.wav   e.g. <root>/audio/train/YxlGt805lTA_30000.wav\n"
    "  <root>/audio/eval/<segment_id>.wav     (<YTID>.wav or Y<YTID>.wav, .flac also accepted)\n"
    "  <metadata_dir or root>/audioset_train_strong.tsv, audioset_eval_strong.tsv\n"
    "      header (tab-separated): " + "  ".join(HEADER) + "\n"
    "  <metadata_dir or root>/mid_to_display_name.tsv   '<MID>\\t<display name>' per line"
)


def _read_names(path: Path) -> dict[str, str]:
    names = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip("\n\r")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 2:
                raise MetadataError(f"{path}, line {lineno}: expected '<MID><TAB><display "
                                    f"name>', got {line!r}")
            if not parts[0].startswith("/"):
                if lineno == 1:
                    continue  # a header line
                raise MetadataError(f"{path}, line {lineno}: {parts[0]!r} is not a /m/ MID")
            names[parts[0]] = parts[1]
    return names


def _segments(path: Path) -> dict[str, set[str]]:
    """``{segment_id: set of MIDs}`` in file order."""
    out: dict[str, set[str]] = {}
    for lineno, r in iter_csv(path, HEADER, delimiter="\t"):
        as_float(r["start_time_seconds"], path, "start_time_seconds")
        as_float(r["end_time_seconds"], path, "end_time_seconds")
        if not r["label"].startswith("/"):
            raise MetadataError(f"{path}, line {lineno}: label {r['label']!r} is not a /m/ MID")
        if "_" not in r["segment_id"]:
            raise MetadataError(f"{path}, line {lineno}: segment_id {r['segment_id']!r} is not "
                                f"of the form <YTID>_<start ms>")
        out.setdefault(r["segment_id"], set()).add(r["label"])
    return out


def _resolve(audio_dir: Path, segment_ids: list[str]) -> list[str]:
    """Audio path of each segment (the canonical ``<segment_id>.wav`` when none is found)."""
    present: set[str] = set()
    if audio_dir.is_dir():
        with os.scandir(audio_dir) as it:
            present = {e.name for e in it}
    out = []
    for seg in segment_ids:
        ytid = seg.rsplit("_", 1)[0]
        found = None
        for stem in (seg, ytid, "Y" + ytid):
            for ext in AUDIO_EXTS:
                if stem + ext in present:
                    found = stem + ext
                    break
            if found:
                break
        out.append(abspath(audio_dir, found or seg + ".wav"))
    return out


def load_audioset_strong(root: str, num_classes: int = 50, metadata_dir: str | None = None,
                         val_fraction: float = 0.1, seed: int = 0, sample_rate: int = 32000,
                         clip_seconds: float = 10.0,
                         on_bad_file: str = "error") -> AudioDataset:
    """Load local AudioSet clips with the strong labels as a multi-label dataset.

    Args:
        root: folder holding ``audio/train/`` and ``audio/eval/``.
        num_classes: keep this many most frequent classes (default 50).
        metadata_dir: folder of the label files; default ``root`` or ``root/metadata``.
        val_fraction, seed: the seeded validation carve from the training segments.
        sample_rate, clip_seconds: clips are resampled / padded / cropped to these.
        on_bad_file: ``"error"`` or ``"skip"`` (with AudioSet, some videos are usually
            missing from any local copy; ``"skip"`` drops them and records how many).
    """
    check_on_bad_file(on_bad_file)
    root_p = require_dir(root, "AudioSet (strong)", LAYOUT, SOURCE)
    meta = [metadata_dir] if metadata_dir else [root_p, root_p / "metadata"]
    paths = {k: find_file(v, meta, "AudioSet (strong)", LAYOUT, SOURCE) for k, v in TSV.items()}
    names_path = find_file(NAMES_TSV, [paths["train"].parent], "AudioSet (strong)", LAYOUT,
                           SOURCE)
    display = _read_names(names_path)
    segs = {k: _segments(p) for k, p in paths.items()}
    classes = top_classes(list(segs["train"].values()), num_classes)

    tables = {}
    for part, audio_split in (("train", "train"), ("eval", "eval")):
        ids = list(segs[part])
        targets = multi_hot([segs[part][s] for s in ids], classes)
        keep = np.flatnonzero(targets.any(axis=1))
        ids = [ids[i] for i in keep]
        tables[part] = ClipTable(paths=_resolve(root_p / "audio" / audio_split, ids),
                                 targets=targets[keep])
    train = tables["train"]
    groups = [os.path.basename(p).rsplit("_", 1)[0] for p in train.paths]
    rest, val = carve(rarest_label(train.targets), val_fraction, seed, groups=groups)
    splits = {"train": subset(train, rest), "val": subset(train, val), "test": tables["eval"]}
    sources = {"train": str(paths["train"]), "val": str(paths["train"]),
               "test": str(paths["eval"])}
    splits, info = finalize(splits, sources, on_bad_file, "AudioSet (strong)", LAYOUT, SOURCE)
    info.update(mids=classes, display_names=str(names_path), val_fraction=val_fraction,
                seed=seed)
    return AudioDataset(name="audioset_strong",
                        class_names=[display.get(m, m) for m in classes],
                        sample_rate=int(sample_rate), clip_seconds=float(clip_seconds),
                        multilabel=True, splits=splits, info=info)
