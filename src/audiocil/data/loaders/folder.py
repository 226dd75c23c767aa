"""Your own audio: one sub-folder per class, split by a seeded draw, by folders or by a CSV.

Which split is used is ``split`` (``dataset.loader.split``):

- ``seeded`` (default)::

      <root>/<class_name>/<any name>.wav     (.flac, .ogg, .mp3, .aiff also read;
      <root>/<class_name>/sub/dir/<x>.flac    files in nested folders count too)

  each class is split with a seeded draw into train / val / test by ``val_fraction`` and
  ``test_fraction``; a class needs at least 3 files so that every split gets one.
- ``folders``: the split you were given, one folder per split::

      <root>/train/<class_name>/*.wav
      <root>/test/<class_name>/*.wav
      <root>/val/<class_name>/*.wav          (optional)

  every class of ``test`` (and ``val``) must be a class of ``train`` and every training
  class needs test clips.
- ``manifest``: a CSV file ``manifest`` (relative to ``root`` unless absolute) with the
  header ``path,label,split``, one row per clip: ``path`` relative to the manifest's folder
  (or absolute), ``label`` the class name, ``split`` one of ``train``, ``val``, ``test``.
  A path may be listed once only.

Without a ``val`` split (``folders`` with no ``val/``, a manifest without ``val`` rows),
validation clips are a seeded carve of ``val_fraction`` of each training class
(``test_fraction`` is not used: the test split is yours). Classes are the class names in
sorted order (folders whose name starts with ``.`` or ``_`` are ignored).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from audiocil.data.catalog import SPLITS, AudioDataset, ClipTable
from audiocil.data.loaders._common import (
    MetadataError,
    carve,
    check_on_bad_file,
    finalize,
    iter_csv,
    not_found,
    require_dir,
)
from audiocil.errors import ConfigError

EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
SPLIT_MODES = ("seeded", "folders", "manifest")
MANIFEST_HEADER = ("path", "label", "split")
SOURCE = "This loader reads your own recordings; nothing is published or downloaded."
LAYOUT = (
    "  <root>/<class_name>/*.wav   (also .flac, .ogg, .mp3, .aiff; nested folders allowed)\n"
    "  e.g. <root>/dog/bark_001.wav, <root>/cat/meow_17.flac"
)
LAYOUT_FOLDERS = (
    "  <root>/train/<class_name>/*.wav   (also .flac, .ogg, .mp3, .aiff; nested folders allowed)\n"
    "  <root>/test/<class_name>/*.wav\n"
    "  <root>/val/<class_name>/*.wav     (optional: else carved from train by val_fraction)\n"
    "  (for <root>/<class_name>/*.wav with a seeded split: dataset.loader.split=seeded)"
)
LAYOUT_MANIFEST = (
    "  <manifest>.csv with the header path,label,split, e.g.\n"
    "    path,label,split\n"
    "    dog/bark_001.wav,dog,train\n"
    "    dog/bark_002.wav,dog,test\n"
    "  (paths relative to the manifest's folder; split: train, val or test)"
)


def _audio_files(folder: str, extensions: tuple[str, ...]) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(os.path.join(dirpath, f) for f in filenames
                   if f.lower().endswith(extensions) and not f.startswith("."))
    return sorted(os.path.abspath(p) for p in out)


def _class_dirs(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder)
                  if e.is_dir() and not e.name.startswith((".", "_")))


def load_folder(root: str, split: str = "seeded", manifest: str | None = None,
                val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
                sample_rate: int = 16000, clip_seconds: float = 1.0, on_bad_file: str = "error",
                extensions: tuple[str, ...] = EXTENSIONS, name: str = "folder") -> AudioDataset:
    """Load your own audio with a seeded split, a given split in folders, or a CSV manifest.

    Args:
        root: the dataset folder (``seeded``: its class sub-folders; ``folders``: its
            ``train/``, ``test/`` and optional ``val/``; ``manifest``: where a relative
            ``manifest`` path starts).
        split: ``seeded``, ``folders`` or ``manifest`` (module notes).
        manifest: the CSV of ``split=manifest`` (``path,label,split``); None otherwise.
        val_fraction: share of each class for val (``seeded``), or carved from the training
            clips when no val split is given (``folders``, ``manifest``).
        test_fraction: share of each class for test (``seeded`` only).
        seed: seed of the split / the val carve (the same files and seed give the same split).
        sample_rate, clip_seconds: clips are resampled / padded / cropped to these.
        on_bad_file: ``"error"`` or ``"skip"`` (also for files a manifest lists but that
            are missing).
        extensions: file name endings that count as audio.
        name: dataset name recorded with results.
    """
    check_on_bad_file(on_bad_file)
    if split not in SPLIT_MODES:
        raise ConfigError(f"dataset.loader.split={split}: must be one of {'|'.join(SPLIT_MODES)}")
    if (split == "manifest") != (manifest is not None):
        raise ConfigError(
            f"dataset.loader.manifest={manifest if manifest is not None else 'null'} with "
            f"dataset.loader.split={split}: a manifest is read only with split=manifest, and "
            f"split=manifest needs dataset.loader.manifest=<path of the CSV path,label,split>")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1
            and val_fraction + test_fraction < 1):
        raise ConfigError(f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) "
                          f"must be in [0, 1) and sum to less than 1")
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    if split == "seeded":
        root_p, class_names, parts, sources = _seeded(root, val_fraction, test_fraction, seed, exts)
        layout = LAYOUT
    elif split == "folders":
        root_p, class_names, parts, sources = _folders(root, exts)
        layout = LAYOUT_FOLDERS
    else:
        root_p, class_names, parts, sources = _manifest(root, manifest, on_bad_file)  # type: ignore[arg-type]
        layout = LAYOUT_MANIFEST
    carved = split != "seeded" and not parts["val"]
    if carved:
        parts = _carve_val(parts, val_fraction, seed, sources["train"])
        sources["val"] = f"{sources['train']} (val carved by val_fraction={val_fraction})"
    splits = {s: ClipTable(paths=[p for p, _ in v],
                           targets=np.asarray([t for _, t in v], dtype=np.int64))
              for s, v in parts.items()}
    splits, info = finalize(splits, sources, on_bad_file, "folder dataset", layout, SOURCE)
    info.update(root=str(root_p), split=split, val_fraction=val_fraction, seed=seed,
                val_carved=carved)
    if split == "seeded":
        info["test_fraction"] = test_fraction
    if manifest is not None:
        info["manifest"] = sources["train"]
    return AudioDataset(name=name, class_names=class_names, sample_rate=int(sample_rate),
                        clip_seconds=float(clip_seconds), multilabel=False, splits=splits,
                        info=info)


Parts = dict[str, list[tuple[str, int]]]


def _seeded(root: str, val_fraction: float, test_fraction: float, seed: int,
            exts: tuple[str, ...]) -> tuple[Path, list[str], Parts, dict[str, str]]:
    root_p = require_dir(root, "folder dataset", LAYOUT, SOURCE)
    class_names = _class_dirs(root_p)
    if not class_names:
        raise not_found("folder dataset", f"class sub-folders in {root_p}", LAYOUT, SOURCE)
    rng = np.random.default_rng(seed)
    parts: Parts = {"train": [], "val": [], "test": []}
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
        for s, idx in cut.items():
            parts[s].extend((files[i], label) for i in sorted(idx))
    return root_p, class_names, parts, {s: str(root_p) for s in SPLITS}


def _folders(root: str, exts: tuple[str, ...]) -> tuple[Path, list[str], Parts, dict[str, str]]:
    """``root/{train,val,test}/<class>/...`` (val optional)."""
    root_p = require_dir(root, "folder dataset (split=folders)", LAYOUT_FOLDERS, SOURCE)
    for s in ("train", "test"):
        if not (root_p / s).is_dir():
            others = [c for c in _class_dirs(root_p) if c not in SPLITS]
            hint = (f" ({root_p} holds {', '.join(others[:3])}{', ...' if len(others) > 3 else ''}:"
                    f" class folders? Then dataset.loader.split=seeded)") if others else ""
            raise not_found("folder dataset (split=folders)",
                            f"the {s} split folder {root_p / s}{hint}", LAYOUT_FOLDERS, SOURCE)
    present = [s for s in SPLITS if (root_p / s).is_dir()]
    classes = {s: _class_dirs(root_p / s) for s in present}
    class_names = classes["train"]
    if not class_names:
        raise not_found("folder dataset (split=folders)",
                        f"class sub-folders in {root_p / 'train'}", LAYOUT_FOLDERS, SOURCE)
    for s in present:
        if s == "train":
            continue
        extra = [c for c in classes[s] if c not in class_names]
        if extra:
            raise MetadataError(
                f"folder dataset: {root_p / s / extra[0]} is a {s} class with no training "
                f"folder {root_p / 'train' / extra[0]}"
                + (f" (also: {', '.join(extra[1:4])}{', ...' if len(extra) > 4 else ''})"
                   if len(extra) > 1 else "")
                + f". Add its training clips under {root_p / 'train' / extra[0]}, or remove the "
                  f"{s} folder (or fix a misspelt class name).")
    no_test = [c for c in class_names if c not in classes["test"]]
    if no_test:
        raise MetadataError(
            f"folder dataset: training class {no_test[0]!r} has no test folder "
            f"{root_p / 'test' / no_test[0]}"
            + (f" (nor do {', '.join(no_test[1:4])}{', ...' if len(no_test) > 4 else ''})"
               if len(no_test) > 1 else "")
            + ". Every class is tested: add its test clips there, or remove the class.")
    label = {c: i for i, c in enumerate(class_names)}
    parts: Parts = {"train": [], "val": [], "test": []}
    for s in present:
        for cls in classes[s]:
            files = _audio_files(str(root_p / s / cls), exts)
            if not files and s != "val":
                raise MetadataError(
                    f"folder dataset: {root_p / s / cls} holds no audio file with endings "
                    f"{', '.join(exts)}. Add its clips, or remove the class from every split.")
            parts[s].extend((f, label[cls]) for f in files)
    return root_p, class_names, parts, {s: str(root_p / s) for s in present}


def _manifest(root: str, manifest: str, on_bad_file: str
              ) -> tuple[Path, list[str], Parts, dict[str, str]]:
    """The rows of a ``path,label,split`` CSV (paths relative to its folder)."""
    path = Path(manifest).expanduser()
    if not path.is_absolute():
        path = Path(root).expanduser() / path
    if not path.is_file():
        raise not_found("folder dataset (split=manifest)",
                        f"manifest {path} (dataset.loader.manifest={manifest}; a relative path "
                        f"starts at dataset.root={root})", LAYOUT_MANIFEST, SOURCE)
    base = path.parent
    rows: list[tuple[int, str, str, str]] = []
    seen: dict[str, int] = {}
    for line, row in iter_csv(path, MANIFEST_HEADER):
        if not row["path"] or not row["label"]:
            raise MetadataError(f"{path}, line {line}: empty {'path' if not row['path'] else 'label'}"
                                f"; every row needs path,label,split")
        if row["split"] not in SPLITS:
            raise MetadataError(
                f"{path}, line {line}: split {row['split']!r} (for {row['path']}): must be one of "
                f"{', '.join(SPLITS)}. Fix the row, or drop it to leave the clip out.")
        clip = os.path.abspath(os.path.join(base, row["path"]))
        if clip in seen:
            raise MetadataError(f"{path}, line {line}: {row['path']} is already listed on line "
                                f"{seen[clip]}; a clip may be in one split only, once")
        seen[clip] = line
        if on_bad_file == "error" and not os.path.isfile(clip):
            raise MetadataError(
                f"{path}, line {line}: the file {row['path']} ({clip}) does not exist. Fix the "
                f"path (relative to the manifest's folder {base}), drop the row, or set "
                f"dataset.on_bad_file=skip to leave missing files out.")
        rows.append((line, clip, row["label"], row["split"]))
    class_names = sorted({lab for _, _, lab, s in rows if s == "train"})
    if not class_names:
        raise MetadataError(f"{path} has no train rows; every class needs training clips")
    for s in ("val", "test"):
        extra = [(ln, lab) for ln, _, lab, sp in rows if sp == s and lab not in class_names]
        if extra:
            raise MetadataError(
                f"{path}, line {extra[0][0]}: class {extra[0][1]!r} is in the {s} split but has no "
                f"train row. Add its training clips, or fix the label (labels are compared "
                f"exactly, case included).")
    tested = {lab for _, _, lab, s in rows if s == "test"}
    no_test = [c for c in class_names if c not in tested]
    if no_test:
        raise MetadataError(
            f"{path}: training class {no_test[0]!r} has no test row"
            + (f" (nor do {', '.join(map(repr, no_test[1:4]))})" if len(no_test) > 1 else "")
            + ". Every class is tested: add test rows for it, or remove its rows.")
    label = {c: i for i, c in enumerate(class_names)}
    parts: Parts = {"train": [], "val": [], "test": []}
    for _, clip, lab, s in rows:
        parts[s].append((clip, label[lab]))
    return base, class_names, parts, {s: str(path) for s in SPLITS}


def _carve_val(parts: Parts, val_fraction: float, seed: int, source: str) -> Parts:
    """Carve a seeded ``val_fraction`` of each training class into val."""
    if val_fraction <= 0:
        raise ConfigError(
            f"dataset.loader.val_fraction={val_fraction}: {source} gives no val split, so "
            f"validation clips are carved from the training clips; set a fraction in (0, 1) "
            f"(e.g. 0.1), or give a val split (a val/ folder, or val rows in the manifest)")
    train = parts["train"]
    rest, val = carve([t for _, t in train], val_fraction, seed)
    return {"train": [train[i] for i in rest], "val": [train[i] for i in val],
            "test": parts["test"]}
