"""Helpers shared by the real-dataset loaders: clear errors, metadata parsing, seeded splits."""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from audiocil.data.audio_io import ON_BAD_FILE, check_table_files, missing_files
from audiocil.data.catalog import ClipTable
from audiocil.errors import ConfigError, DataError

log = logging.getLogger("audiocil.data.loaders")


class DatasetNotFound(DataError, FileNotFoundError):
    """The dataset (or one of its metadata files) is not where the loader looks for it."""


class MetadataError(DataError, ValueError):
    """A metadata file exists but does not have the expected content."""


def check_on_bad_file(on_bad_file: str) -> str:
    if on_bad_file not in ON_BAD_FILE:
        raise ConfigError(f"dataset.on_bad_file={on_bad_file}: must be error or skip")
    return on_bad_file


def not_found(dataset: str, missing: str | Path, layout: str, source: str) -> DatasetNotFound:
    """An error saying what is missing, the layout expected, and where the data is published.

    Args:
        dataset: display name, e.g. ``"NSynth-100"``.
        missing: the path that was looked for and not found.
        layout: indented text showing which files go where.
        source: where the data and metadata are published (text only, nothing is fetched).
    """
    return DatasetNotFound(
        f"{dataset}: {missing} not found.\n"
        f"Expected layout:\n{layout.rstrip()}\n"
        f"{source.rstrip()}\n"
        f"audiocil never downloads data: fetch it yourself and point dataset.root at it."
    )


def require_dir(path: str | Path, dataset: str, layout: str, source: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_dir():
        raise not_found(dataset, f"directory {path}", layout, source)
    return path


def find_file(name: str, candidates: Sequence[str | Path], dataset: str, layout: str,
              source: str) -> Path:
    """First ``candidates[i] / name`` that exists, else an error listing where it looked."""
    tried = [Path(c).expanduser() / name for c in candidates if c is not None]
    for p in tried:
        if p.is_file():
            return p
    where = "\n".join(f"  {p}" for p in tried)
    raise not_found(dataset, f"metadata file {name!r} (looked for:\n{where}\n)", layout, source)


def iter_csv(path: Path, header: Sequence[str], *, delimiter: str = ",",
             optional: Sequence[str] = ()) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` of a CSV/TSV file whose header must be exactly ``header``.

    Args:
        optional: trailing columns of ``header`` that may be absent.
    """
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            got = [h.strip() for h in next(reader)]
        except StopIteration:
            raise MetadataError(f"{path} is empty; expected a header line "
                                f"{delimiter.join(header)!r}") from None
        required = list(header[:len(header) - len(optional)])
        if got not in [required + list(optional[:k]) for k in range(len(optional) + 1)]:
            raise MetadataError(
                f"{path}: unexpected header {delimiter.join(got)!r}; expected exactly "
                f"{delimiter.join(header)!r}"
                + (f" (the last column(s) {list(optional)} are optional)" if optional else "")
                + ". Is this the right file, unmodified from the release?")
        any_row = False
        for values in reader:
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(got):
                raise MetadataError(f"{path}, line {reader.line_num}: {len(values)} fields, "
                                    f"expected {len(got)} ({delimiter.join(got)})")
            any_row = True
            yield reader.line_num, {k: v.strip() for k, v in zip(got, values, strict=True)}
    if not any_row:
        raise MetadataError(f"{path} has a header but no rows")


def read_csv(path: Path, header: Sequence[str], *, delimiter: str = ",",
             optional: Sequence[str] = ()) -> list[dict[str, str]]:
    """Rows of a CSV/TSV file whose header must be exactly ``header`` (see :func:`iter_csv`)."""
    return [row for _, row in iter_csv(path, header, delimiter=delimiter, optional=optional)]


def read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as err:
        raise MetadataError(f"{path} is not valid JSON ({err})") from err


def as_int(value: str, path: Path, column: str) -> int:
    try:
        return int(value)
    except ValueError:
        pass
    try:
        f = float(value)
        if f.is_integer():
            return int(f)
    except ValueError:
        pass
    raise MetadataError(f"{path}: column {column!r} holds {value!r}, expected an integer")


def as_float(value: str, path: Path, column: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise MetadataError(f"{path}: column {column!r} holds {value!r}, expected a "
                            f"number") from None


def finalize(splits: dict[str, ClipTable], sources: dict[str, str], on_bad_file: str,
             dataset: str, layout: str = "", source: str = "") -> tuple[dict[str, ClipTable], dict]:
    """Check that every listed audio file exists, before any training starts.

    When none of a split's files exists, the root is wrong (or the audio was never
    extracted): that raises :class:`DatasetNotFound` with the expected ``layout`` and the
    ``source`` of the data, whatever ``on_bad_file`` says. Otherwise, with
    ``on_bad_file="error"`` missing files raise
    :class:`~audiocil.data.audio_io.MissingAudioFiles` (naming up to 10 of them and the
    metadata file that lists them); with ``"skip"`` their rows are dropped and counted.
    Unreadable files are found later, when the audio is read.

    Returns:
        the (possibly filtered) splits and facts for ``AudioDataset.info``.
    """
    info: dict = {"on_bad_file": on_bad_file, "metadata": dict(sources)}
    out = {}
    dropped: dict[str, int] = {}
    for split, table in splits.items():
        if len(table) == 0:
            listed = f" ({sources[split]})" if split in sources else ""
            raise MetadataError(f"{dataset}: the {split} split{listed} lists no clips")
        miss = missing_files(table.paths)
        if miss.all():
            listed = f" listed in {sources[split]}" if split in sources else ""
            raise DatasetNotFound(
                f"{dataset}: none of the {len(table)} {split} audio files{listed} exists, "
                f"e.g. {table.paths[0]}\nExpected layout:\n{layout.rstrip()}\n{source.rstrip()}"
                f"\naudiocil never downloads data: check dataset.root, or fetch the audio.")
        if not miss.any():
            out[split] = table
            continue
        if on_bad_file == "error":
            check_table_files(table, source=sources.get(split))
        keep = ~miss
        dropped[split] = int(miss.sum())
        first = next(p for p, m in zip(table.paths, miss, strict=True) if m)
        log.warning("%s: %d of %d %s clips listed in %s are missing and were skipped "
                    "(on_bad_file=skip); first: %s", dataset, dropped[split], len(table),
                    split, sources.get(split, "the metadata"), first)
        out[split] = subset(table, np.flatnonzero(keep))
    if dropped:
        info["skipped_missing"] = dropped
    return out, info


def subset(table: ClipTable, idx: Iterable[int]) -> ClipTable:
    idx = np.asarray(list(idx), dtype=np.int64)
    return ClipTable(
        paths=[table.paths[i] for i in idx],
        targets=table.targets[idx],
        offsets=None if table.offsets is None else table.offsets[idx],
    )


def carve(labels: Sequence, fraction: float, seed: int,
          groups: Sequence | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, per-class split of ``range(len(labels))`` into (rest, carved) index arrays.

    About ``fraction`` of each class goes to the carved part, at least one item when the
    class has two or more items, never all of a class. With ``groups`` (e.g. source
    recording ids) whole groups move together, so near-duplicates do not straddle the split.
    ``labels`` may hold any hashable per-item key (for multi-label data, e.g. the first label).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"split fraction must be in [0, 1), got {fraction}")
    n = len(labels)
    rng = np.random.default_rng(seed)
    group_of = list(range(n)) if groups is None else list(groups)
    by_class: dict = {}
    for i, lab in enumerate(labels):
        by_class.setdefault(lab, {}).setdefault(group_of[i], []).append(i)
    carved: list[int] = []
    for lab in sorted(by_class, key=str):
        gdict = by_class[lab]
        keys = sorted(gdict, key=str)
        order = rng.permutation(len(keys))
        size = sum(len(v) for v in gdict.values())
        want = int(round(fraction * size))
        if fraction > 0 and size >= 2:
            want = max(want, 1)
        taken = 0
        for j in order[:-1] if len(keys) > 1 else []:
            if taken >= want:
                break
            carved.extend(gdict[keys[j]])
            taken += len(gdict[keys[j]])
    carved_arr = np.array(sorted(carved), dtype=np.int64)
    rest = np.setdiff1d(np.arange(n, dtype=np.int64), carved_arr)
    return rest, carved_arr


def abspath(*parts: str | Path) -> str:
    return os.path.abspath(os.path.join(*[os.fspath(p) for p in parts]))


def top_classes(label_sets: Sequence[Iterable[str]], n: int) -> list[str]:
    """The ``n`` labels found in most items (ties: label string order), most frequent first."""
    counts: dict[str, int] = {}
    for labels in label_sets:
        for lab in set(labels):
            counts[lab] = counts.get(lab, 0) + 1
    if n <= 0:
        raise ValueError(f"number of classes must be positive, got {n}")
    return sorted(counts, key=lambda k: (-counts[k], k))[:n]


def multi_hot(label_sets: Sequence[Iterable[str]], classes: Sequence[str]) -> np.ndarray:
    """(N, C) uint8 targets of ``label_sets`` over ``classes`` (other labels ignored)."""
    index = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(label_sets), len(classes)), dtype=np.uint8)
    for row, labels in enumerate(label_sets):
        for lab in labels:
            j = index.get(lab)
            if j is not None:
                out[row, j] = 1
    return out


def rarest_label(targets: np.ndarray) -> list[int]:
    """For multi-hot rows, the id of each row's least frequent positive class (a stratum)."""
    freq = targets.sum(axis=0).astype(np.int64)
    big = int(freq.max()) + 1 if len(freq) else 1
    masked = np.where(targets > 0, freq[None, :], big)
    return [int(i) for i in masked.argmin(axis=1)]
