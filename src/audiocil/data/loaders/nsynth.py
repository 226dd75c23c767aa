"""NSynth few-shot class-incremental benchmarks (NSynth-100/200/300/400).

Audio: the NSynth json/wav release (Engel et al., 2017), 4 s notes at 16 kHz::

    <root>/nsynth-train/audio/<filename>.wav    (+ examples.json, not needed here)
    <root>/nsynth-valid/audio/<filename>.wav
    <root>/nsynth-test/audio/<filename>.wav

Metadata: the published few-shot CIL split of the instruments, ``<prefix>`` being
``nsynth-100-fs``, ``nsynth-200-fs``, ``nsynth-300-fs`` or ``nsynth-400-fs``::

    <metadata_dir>/<prefix>_train.csv   header: filename,instrument,instrument_family,
    <metadata_dir>/<prefix>_val.csv             instrument_source,audio_source
    <metadata_dir>/<prefix>_test.csv
    <metadata_dir>/<prefix>_vocab.json  {"<instrument>": <label id>, ...}

Each CSV row names the clip ``<root>/<audio_source>/audio/<filename>.wav``. Class ``k`` is
the instrument whose vocabulary id is ``k``. Without ``metadata_dir`` the files are looked
for in ``<root>`` and ``<root>/<prefix>-meta``.
"""

from __future__ import annotations

import re

import numpy as np

from audiocil.data.catalog import SPLITS, AudioDataset, ClipTable
from audiocil.data.loaders._common import (
    MetadataError,
    abspath,
    check_on_bad_file,
    finalize,
    find_file,
    read_csv,
    read_json,
    require_dir,
)

HEADER = ("filename", "instrument", "instrument_family", "instrument_source", "audio_source")

SOURCE = (
    "NSynth audio (nsynth-{train,valid,test}.jsonwav.tar.gz): "
    "https://magenta.tensorflow.org/datasets/nsynth\n"
    "Few-shot CIL metadata (nsynth-100-fs ... nsynth-400-fs CSVs and vocab): "
    "https://github.com/chester-w-xie/FCAC_datasets (Nsynth_meta_for_FCAC/)"
)


def _layout(prefix: str) -> str:
    return (
        "  <root>/nsynth-train/audio/<filename>.wav   (and nsynth-valid/, nsynth-test/)\n"
        f"  <metadata_dir or root>/{prefix}_train.csv, {prefix}_val.csv, {prefix}_test.csv\n"
        f"      header: {','.join(HEADER)}\n"
        f"  <metadata_dir or root>/{prefix}_vocab.json   {{instrument: label id}}\n"
        "  each row's audio: <root>/<audio_source>/audio/<filename>.wav"
    )


def _default_name(prefix: str) -> str:
    m = re.fullmatch(r"nsynth-(\d+)-fs", prefix)
    return f"nsynth{m.group(1)}" if m else prefix


def load_nsynth(root: str, metadata_prefix: str = "nsynth-100-fs",
                metadata_dir: str | None = None, sample_rate: int = 16000,
                clip_seconds: float = 4.0, on_bad_file: str = "error",
                name: str | None = None) -> AudioDataset:
    """Load an NSynth few-shot CIL benchmark from local files (never downloads).

    Args:
        root: folder holding ``nsynth-train/``, ``nsynth-valid/``, ``nsynth-test/``.
        metadata_prefix: ``nsynth-100-fs`` (default), ``nsynth-200-fs``, ... .
        metadata_dir: folder of the CSVs and vocabulary; default ``root`` or
            ``root/<prefix>-meta``.
        sample_rate, clip_seconds: every clip is resampled / padded / cropped to these.
        on_bad_file: ``"error"`` fails on the first missing or bad file, ``"skip"`` drops
            them (recorded in ``info``; the audio reader honours ``info["on_bad_file"]``).
        name: dataset name; default ``nsynth<N>`` derived from the prefix.
    """
    check_on_bad_file(on_bad_file)
    layout = _layout(metadata_prefix)
    root_p = require_dir(root, "NSynth", layout, SOURCE)
    candidates = [metadata_dir] if metadata_dir else [root_p, root_p / f"{metadata_prefix}-meta"]
    vocab_path = find_file(f"{metadata_prefix}_vocab.json", candidates, "NSynth", layout, SOURCE)
    vocab = read_json(vocab_path)
    if not isinstance(vocab, dict) or not vocab:
        raise MetadataError(f"{vocab_path}: expected a JSON object {{instrument: label id}}")
    try:
        vocab = {str(k): int(v) for k, v in vocab.items()}
    except (TypeError, ValueError):
        raise MetadataError(f"{vocab_path}: label ids must be integers") from None
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise MetadataError(f"{vocab_path}: label ids must be exactly 0..{len(vocab) - 1}, "
                            f"each used once")
    class_names = [k for k, _ in sorted(vocab.items(), key=lambda kv: kv[1])]

    splits: dict[str, ClipTable] = {}
    sources: dict[str, str] = {}
    for split in SPLITS:
        csv_path = find_file(f"{metadata_prefix}_{split}.csv",
                             [vocab_path.parent], "NSynth", layout, SOURCE)
        rows = read_csv(csv_path, HEADER)
        paths, targets = [], []
        for lineno, row in enumerate(rows, start=2):
            inst = row["instrument"]
            if inst not in vocab:
                raise MetadataError(f"{csv_path}, line {lineno}: instrument {inst!r} is not in "
                                    f"{vocab_path.name}")
            if not row["filename"] or not row["audio_source"]:
                raise MetadataError(f"{csv_path}, line {lineno}: empty filename or "
                                    f"audio_source")
            paths.append(abspath(root_p, row["audio_source"], "audio", row["filename"] + ".wav"))
            targets.append(vocab[inst])
        splits[split] = ClipTable(paths=paths, targets=np.asarray(targets, dtype=np.int64))
        sources[split] = str(csv_path)
    splits, info = finalize(splits, sources, on_bad_file, "NSynth", layout, SOURCE)
    info.update(vocab=str(vocab_path), metadata_prefix=metadata_prefix, root=str(root_p))
    return AudioDataset(
        name=name or _default_name(metadata_prefix),
        class_names=class_names,
        sample_rate=int(sample_rate),
        clip_seconds=float(clip_seconds),
        multilabel=False,
        splits=splits,
        info=info,
    )
