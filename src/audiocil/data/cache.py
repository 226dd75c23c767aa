"""The feature cache: log-mels (or waveforms) computed once per (files, front-end settings).

An entry lives in ``<cache_dir>/<key>/`` where ``key`` hashes the list of clips (path,
size, modification time, offset), the audio settings and the front-end settings. Every
method, task, epoch and run that needs the same features memory-maps the same ``data.npy``.
A builder writes into a private temporary directory and renames it into place, under a
file lock, so concurrent multirun jobs never see (or make) a half-written entry.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from audiocil.data.audio_io import load_table
from audiocil.data.catalog import AudioDataset, ClipTable
from audiocil.data.frontend import LogMel

log = logging.getLogger(__name__)
CACHE_VERSION = 1


def cache_key(table: ClipTable, sample_rate: int, num_samples: int,
              frontend: Mapping | None) -> str:
    """sha256 of the clip list (with sizes and mtimes) and every setting that shapes the data."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, "sr": sample_rate, "n": num_samples,
                         "frontend": dict(frontend) if frontend else None}, sort_keys=True).encode())
    offsets = table.offsets if table.offsets is not None else np.zeros(len(table))
    for path, off in zip(table.paths, offsets, strict=True):
        try:
            st = os.stat(path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(f"{path}|{float(off):.6f}|{stamp}\n".encode())
    return h.hexdigest()[:24]


def _logmel(frontend: Mapping) -> LogMel:
    keys = ("sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max", "log_floor")
    return LogMel(**{k: frontend[k] for k in keys})


def _build(table: ClipTable, dataset: AudioDataset, frontend: Mapping | None, out: Path,
           on_bad_file: str, chunk: int) -> dict:
    n = len(table)
    mel = _logmel(frontend) if frontend else None
    data = None
    keep = np.ones(n, dtype=bool)
    skipped: list[str] = []
    starts = list(range(0, n, chunk))

    def read(a: int) -> tuple:
        sub = ClipTable(table.paths[a:a + chunk], table.targets[a:a + chunk],
                        None if table.offsets is None else table.offsets[a:a + chunk])
        return load_table(sub, dataset.sample_rate, dataset.num_samples, on_bad_file=on_bad_file)

    t0 = time.time()
    with ThreadPoolExecutor(max_workers=2) as pool:
        for a, (waves, kept, msgs) in zip(starts, pool.map(read, starts), strict=True):
            waves = torch.from_numpy(np.ascontiguousarray(waves))
            if mel is not None:
                with torch.no_grad():
                    arr = mel(waves)[:, 0].numpy()  # (b, F, T)
            else:
                arr = waves.numpy()  # (b, S)
            if data is None:
                data = np.lib.format.open_memmap(out / "data.npy", mode="w+", dtype=np.float16,
                                                 shape=(n, *arr.shape[1:]))
            data[a:a + len(arr)] = arr.astype(np.float16)
            keep[a:a + len(arr)] = kept
            skipped += msgs
            done = min(a + chunk, n)
            if done == n or (a // chunk) % 20 == 0:
                log.info("feature cache: %d/%d clips (%.0f clips/s)", done, n,
                         done / max(time.time() - t0, 1e-9))
    assert data is not None
    data.flush()
    del data
    np.save(out / "keep.npy", keep)
    return {"n": n, "skipped": skipped, "seconds": time.time() - t0}


def cached_array(dataset: AudioDataset, split: str, cache_dir: str | os.PathLike,
                 frontend: Mapping | None, on_bad_file: str = "error",
                 chunk: int = 128) -> tuple[np.ndarray, np.ndarray, dict]:
    """Memory-mapped features of one split, built on first use.

    Args:
        frontend: log-mel settings; None caches waveforms (the front end then runs on the
            training device).

    Returns:
        ``(data, keep, meta)``: data (N, F, T) log-mels or (N, S) waveforms as float16,
        read-only memmap; keep (N,) bool, False for files skipped as bad; meta with the
        build facts (``skipped`` messages among them).
    """
    table = dataset.splits[split]
    key = cache_key(table, dataset.sample_rate, dataset.num_samples, frontend)
    root = Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    entry = root / f"{dataset.name}-{split}-{key}"
    if not (entry / "meta.json").exists():
        with open(root / f".{entry.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another job may be building this very entry
            if not (entry / "meta.json").exists():
                tmp = root / f".{entry.name}.tmp-{os.getpid()}"
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir()
                kind = "log-mel" if frontend else "waveform"
                log.info("building the %s cache of %s/%s (%d clips) in %s", kind, dataset.name,
                         split, len(table), entry)
                meta = _build(table, dataset, frontend, tmp, on_bad_file, chunk)
                meta.update(dataset=dataset.name, split=split, frontend=dict(frontend or {}))
                (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
                os.replace(tmp, entry)  # atomic: the entry appears whole or not at all
    meta = json.loads((entry / "meta.json").read_text())
    if meta["skipped"]:
        log.warning("%s/%s: %d bad file(s) skipped (dataset.on_bad_file=skip)", dataset.name,
                    split, len(meta["skipped"]))
    data = np.load(entry / "data.npy", mmap_mode="r")
    keep = np.load(entry / "keep.npy")
    return data, keep, meta
