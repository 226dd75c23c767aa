"""Google Speech Commands v2: one-second 16 kHz utterances of 35 words (Warden, 2018).

Expected layout (``speech_commands_v0.02.tar.gz`` extracted, unmodified)::

    <root>/<word>/<speaker>_nohash_<n>.wav   e.g. <root>/yes/0a7c2a8d_nohash_0.wav
    <root>/validation_list.txt               one "<word>/<file>.wav" per line
    <root>/testing_list.txt
    <root>/_background_noise_/               (ignored)

Clips listed in ``validation_list.txt`` / ``testing_list.txt`` form the val / test splits,
every other clip of the chosen words the training split. Class ``k`` is ``words[k]``
(default: the 35 v2 words in alphabetical order).
"""

from __future__ import annotations

import os

import numpy as np

from audiocil.data.catalog import AudioDataset, ClipTable
from audiocil.data.loaders._common import (
    MetadataError,
    abspath,
    check_on_bad_file,
    finalize,
    find_file,
    not_found,
    require_dir,
)

WORDS_V2 = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward",
    "four", "go", "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on",
    "one", "right", "seven", "sheila", "six", "stop", "three", "tree", "two", "up", "visual",
    "wow", "yes", "zero",
)
SOURCE = ("Speech Commands v2 is published at "
          "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz "
          "(see https://www.tensorflow.org/datasets/catalog/speech_commands); root is the "
          "folder it extracts to")
LAYOUT = (
    "  <root>/<word>/<file>.wav   for the 35 words, e.g. <root>/yes/0a7c2a8d_nohash_0.wav\n"
    "  <root>/validation_list.txt, <root>/testing_list.txt   lines '<word>/<file>.wav'"
)


def _read_list(path) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.strip()
            if not line:
                continue
            if line.count("/") != 1 or not line.endswith(".wav"):
                raise MetadataError(f"{path}, line {lineno}: {line!r} is not of the form "
                                    f"'<word>/<file>.wav'")
            out.append(line)
    return out


def load_speechcommands(root: str, words: list[str] | None = None, sample_rate: int = 16000,
                        clip_seconds: float = 1.0, on_bad_file: str = "error") -> AudioDataset:
    """Load Speech Commands v2 from a local copy (never downloads).

    Args:
        root: the extracted dataset folder.
        words: the classes, in label order; default the 35 v2 words (alphabetical).
        sample_rate, clip_seconds: clips are resampled / padded / cropped to these.
        on_bad_file: ``"error"`` or ``"skip"``.
    """
    check_on_bad_file(on_bad_file)
    words = list(words) if words else list(WORDS_V2)
    if len(set(words)) != len(words):
        raise ValueError(f"words must be distinct, got {words}")
    root_p = require_dir(root, "Speech Commands", LAYOUT, SOURCE)
    val_path = find_file("validation_list.txt", [root_p], "Speech Commands", LAYOUT, SOURCE)
    test_path = find_file("testing_list.txt", [root_p], "Speech Commands", LAYOUT, SOURCE)
    absent = [w for w in words if not (root_p / w).is_dir()]
    if absent:
        raise not_found("Speech Commands", f"word folder(s) {', '.join(absent)} under {root_p}",
                        LAYOUT, SOURCE)
    label = {w: i for i, w in enumerate(words)}
    listed = {"val": _read_list(val_path), "test": _read_list(test_path)}
    held_out = set(listed["val"]) | set(listed["test"])
    train = []
    for w in words:
        with os.scandir(root_p / w) as it:
            names = sorted(e.name for e in it if e.is_file() and e.name.endswith(".wav"))
        train.extend(f"{w}/{n}" for n in names if f"{w}/{n}" not in held_out)
    rel = {"train": train,
           "val": [r for r in listed["val"] if r.split("/")[0] in label],
           "test": [r for r in listed["test"] if r.split("/")[0] in label]}
    splits = {
        s: ClipTable(paths=[abspath(root_p, r) for r in rel[s]],
                     targets=np.asarray([label[r.split("/")[0]] for r in rel[s]], dtype=np.int64))
        for s in ("train", "val", "test")
    }
    sources = {"train": f"{root_p}/<word>/ (minus the validation and testing lists)",
               "val": str(val_path), "test": str(test_path)}
    splits, info = finalize(splits, sources, on_bad_file, "Speech Commands", LAYOUT, SOURCE)
    return AudioDataset(name="speechcommands", class_names=words, sample_rate=int(sample_rate),
                        clip_seconds=float(clip_seconds), multilabel=False, splits=splits,
                        info=info)
