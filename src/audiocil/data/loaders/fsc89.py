"""FSC-89: few-shot class-incremental sound event classification on FSD-MIX-CLIPS.

89 classes of FSD50K sounds mixed into 10 s soundscapes (FSD-MIX-SED, Wang et al. 2021);
every clip is the one-second window starting at ``start_time`` in its soundscape, 44.1 kHz.
Two audio layouts are accepted (``layout="auto"`` picks the one present)::

    soundscapes (default): <root>/<data_folder>/<FSD_MIX_SED_filename>
        e.g. <root>/base/train/soundscape_66976.wav, clip cut at start_time seconds
    clips (pre-cut FSD-MIX-CLIPS): <root>/<data_folder>/<stem>_<int(start_time*44100)>.wav
        e.g. <root>/base/test/soundscape_14804_279152.wav

``<root>/audio/`` is used instead of ``<root>`` when the folders are there. Metadata (the
published FSC-89 files, ``<setup>`` being ``setup1``, ``setup2`` or ``mini``)::

    <metadata_dir>/Fsc89-<setup>-fsci_{train,val,test}.csv
        header: data_folder,FSD_MIX_SED_filename,start_time,label
    <metadata_dir>/vocabulary_of_FSC-89.json   ["Chirp_and_tweet", ...]  (label id = index)

Without ``metadata_dir`` they are looked for in ``<root>``, ``<root>/FSC-89-meta/<setup>``
and ``<root>/<setup>``; the vocabulary also one level above the CSVs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audiocil.data.catalog import SPLITS, AudioDataset, ClipTable
from audiocil.data.loaders._common import (
    MetadataError,
    abspath,
    as_float,
    as_int,
    check_on_bad_file,
    finalize,
    find_file,
    read_csv,
    read_json,
    require_dir,
)

HEADER = ("data_folder", "FSD_MIX_SED_filename", "start_time", "label")
VOCAB_NAME = "vocabulary_of_FSC-89.json"
#: FSD-MIX-CLIPS names pre-cut clips after the start sample at this rate.
CLIP_NAME_RATE = 44100

SOURCE = (
    "FSD-MIX-SED soundscapes / FSD-MIX-CLIPS audio (Wang et al., 2021): see "
    "https://github.com/wangyu/rethink-audio-fsl for the data release and generation scripts\n"
    "FSC-89 metadata (Fsc89-setup{1,2}-fsci_*.csv, vocabulary_of_FSC-89.json): "
    "https://github.com/chester-w-xie/FCAC_datasets (FSC-89-meta/)"
)


def _setup_tag(setup: int | str) -> str:
    s = str(setup).strip()
    if s.isdigit():
        return f"setup{s}"
    return s


def _layout(tag: str) -> str:
    return (
        "  <root>/<data_folder>/<FSD_MIX_SED_filename>   soundscapes, e.g. "
        "<root>/base/train/soundscape_66976.wav\n"
        "    (or pre-cut clips <root>/<data_folder>/<stem>_<int(start_time*44100)>.wav; "
        "<root>/audio/... also accepted)\n"
        f"  <metadata_dir or root>/Fsc89-{tag}-fsci_{{train,val,test}}.csv\n"
        f"      header: {','.join(HEADER)}\n"
        f"  <metadata_dir or root>/{VOCAB_NAME}   [class name, ...] (label id = position)"
    )


def _clip_name(filename: str, start: float) -> str:
    stem = filename[:-4] if filename.lower().endswith(".wav") else filename
    return f"{stem}_{int(start * CLIP_NAME_RATE)}.wav"


def _pick_layout(root: Path, rows: list[dict], layout: str) -> tuple[Path, str]:
    """Audio folder and layout, by probing the first rows of the training CSV."""
    bases = [root, root / "audio"]
    layouts = ["soundscapes", "clips"] if layout == "auto" else [layout]
    probe = rows[:20]
    for base in bases:
        for lay in layouts:
            for r in probe:
                name = r["FSD_MIX_SED_filename"]
                if lay == "clips":
                    name = _clip_name(name, float(r["start_time"]))
                if (base / r["data_folder"] / name).is_file():
                    return base, lay
    return root, layouts[0]


def load_fsc89(root: str, setup: int | str = 1, metadata_dir: str | None = None,
               sample_rate: int = 44100, clip_seconds: float = 1.0,
               on_bad_file: str = "error", layout: str = "auto") -> AudioDataset:
    """Load FSC-89 from local FSD-MIX-SED / FSD-MIX-CLIPS audio (never downloads).

    Args:
        root: audio folder holding ``base/{train,val,test}/``, ``novel_val/``,
            ``novel_test/`` (or ``<root>/audio/`` holding them).
        setup: ``1`` or ``2`` (the published FSC-89 setups) or another tag such as
            ``"mini"``, selecting ``Fsc89-<tag>-fsci_*.csv``.
        metadata_dir: folder of the CSVs (and vocabulary); see the module docstring.
        sample_rate, clip_seconds: clips are resampled / padded / cropped to these.
        on_bad_file: ``"error"`` or ``"skip"``.
        layout: ``"auto"``, ``"soundscapes"`` (clips cut at ``start_time``, via
            ``ClipTable.offsets``) or ``"clips"`` (pre-cut one-second files).
    """
    check_on_bad_file(on_bad_file)
    if layout not in ("auto", "soundscapes", "clips"):
        raise ValueError(f"layout must be auto|soundscapes|clips, got {layout!r}")
    tag = _setup_tag(setup)
    lay_text = _layout(tag)
    root_p = require_dir(root, "FSC-89", lay_text, SOURCE)
    candidates = ([metadata_dir] if metadata_dir else
                  [root_p, root_p / "FSC-89-meta" / tag, root_p / tag])
    csv_paths = {s: None for s in SPLITS}
    csv_paths["train"] = find_file(f"Fsc89-{tag}-fsci_train.csv", candidates, "FSC-89",
                                   lay_text, SOURCE)
    meta_dir = csv_paths["train"].parent
    for split in ("val", "test"):
        csv_paths[split] = find_file(f"Fsc89-{tag}-fsci_{split}.csv", [meta_dir], "FSC-89",
                                     lay_text, SOURCE)
    vocab_path = find_file(VOCAB_NAME, [meta_dir, meta_dir.parent], "FSC-89", lay_text, SOURCE)
    vocab = read_json(vocab_path)
    if isinstance(vocab, dict):
        try:
            items = sorted(((int(v), str(k)) for k, v in vocab.items()))
        except (TypeError, ValueError):
            raise MetadataError(f"{vocab_path}: expected a list of class names or an object "
                                f"{{class name: label id}}") from None
        if [i for i, _ in items] != list(range(len(items))):
            raise MetadataError(f"{vocab_path}: label ids must be exactly 0..{len(items) - 1}")
        class_names = [n for _, n in items]
    elif isinstance(vocab, list) and vocab and all(isinstance(v, str) for v in vocab):
        class_names = list(vocab)
    else:
        raise MetadataError(f"{vocab_path}: expected a list of class names (label id = "
                            f"position)")

    rows = {s: read_csv(csv_paths[s], HEADER) for s in SPLITS}
    audio_root, chosen = _pick_layout(root_p, rows["train"], layout)
    splits, sources = {}, {}
    for split in SPLITS:
        path = csv_paths[split]
        paths, targets, offsets = [], [], []
        for lineno, r in enumerate(rows[split], start=2):
            label = as_int(r["label"], path, "label")
            if not 0 <= label < len(class_names):
                raise MetadataError(f"{path}, line {lineno}: label {label} outside "
                                    f"0..{len(class_names) - 1} ({vocab_path.name} has "
                                    f"{len(class_names)} classes)")
            start = as_float(r["start_time"], path, "start_time")
            if start < 0:
                raise MetadataError(f"{path}, line {lineno}: negative start_time {start}")
            name = r["FSD_MIX_SED_filename"]
            if chosen == "clips":
                name = _clip_name(name, start)
                start = 0.0
            paths.append(abspath(audio_root, r["data_folder"], name))
            targets.append(label)
            offsets.append(start)
        splits[split] = ClipTable(
            paths=paths, targets=np.asarray(targets, dtype=np.int64),
            offsets=np.asarray(offsets, dtype=np.float64) if chosen == "soundscapes" else None)
        sources[split] = str(path)
    splits, info = finalize(splits, sources, on_bad_file, "FSC-89", lay_text, SOURCE)
    info.update(vocabulary=str(vocab_path), setup=tag, layout=chosen,
                audio_root=str(audio_root))
    return AudioDataset(name="fsc89", class_names=class_names, sample_rate=int(sample_rate),
                        clip_seconds=float(clip_seconds), multilabel=False, splits=splits,
                        info=info)

