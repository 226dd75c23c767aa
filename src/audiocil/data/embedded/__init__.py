"""Embedded datasets: real instrument audio rendered locally from a General-MIDI SoundFont.

A newcomer has no dataset on disk; these are made on first use, deterministically from a
seed, with no system package and no download (the SoundFont ships with ``pretty_midi``):

- ``gm100`` (:mod:`.gm100`): NSynth-style 4 s notes of 100 GM instruments, written in the
  NSynth + NSynth-100 few-shot CIL layout and read by the NSynth loader.
- ``gmmix50`` (:mod:`.gmmix50`): 5 s multi-label soundscapes of 1-4 events from 50 classes
  (GM drum-kit hits and instrument notes).

Both are built once into ``<data_dir>/<name>-<settings hash>`` by :func:`cached_build`:
the files are written into a temporary sibling directory that is renamed into place only
when complete (with ``manifest.json`` inside), under an exclusive file lock, so a killed
build never leaves a directory that looks complete and two processes never both build.
Under DDP only the global rank 0 builds; the other ranks wait for its manifest (on a file
system shared by several machines, whatever its locks do).

Versions. ``format_version`` is part of the settings (and so of the directory's name):
version 2 (the default) renders with :mod:`.sampler` and the one-pass recording chain
(:func:`.variation.record`), in about a minute; version 1 (midirenderer and
:func:`.variation.vary`, minutes to tens of minutes) stays buildable, byte for byte, for
figures measured on it. See each dataset's module notes for what differs.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import struct
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

MANIFEST = "manifest.json"
#: How long a rank other than 0 waits for rank 0's build (seconds).
BUILD_WAIT_SECONDS = float(os.environ.get("AUDIOCIL_CACHE_WAIT_S", 4 * 3600))


def write_wav(path: str | os.PathLike, wave: np.ndarray, sample_rate: int) -> None:
    """Write a mono 16-bit PCM WAV in one ``write`` (version-2 datasets).

    Samples are ``round(x * 32768)`` clipped to [-32768, 32767], so reading them back as
    float (divided by 32768, as soundfile does) gives ``x`` to within half a step (but
    +1.0, which reads back as 32767 / 32768). The
    header is the canonical 44 bytes (RIFF, ``fmt `` PCM, ``data``). libsndfile writes the
    same header but rounds differently and writes in many small pieces (about 6x the CPU,
    and much slower still on a busy machine), which is why version 1 keeps it.
    """
    pcm = np.clip(np.rint(np.asarray(wave, np.float32) * np.float32(32768.0)),
                  -32768, 32767).astype("<i2")
    n = pcm.nbytes
    header = (b"RIFF" + struct.pack("<I", 36 + n) + b"WAVEfmt "
              + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, 2 * sample_rate, 2, 16)
              + b"data" + struct.pack("<I", n))
    with open(path, "wb") as fh:
        fh.write(header + pcm.tobytes())


def settings_hash(settings: dict) -> str:
    """sha256 of the canonical JSON of ``settings``."""
    blob = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def content_hash(root: str | os.PathLike) -> str:
    """sha256 over every file under ``root`` but the manifest, in sorted path order.

    Each file contributes its relative POSIX path and the sha256 of its bytes, so the
    figure depends on the audio and metadata only (not on timestamps or build order).
    """
    root = Path(root)
    h = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)
    for p in files:
        fh_hash = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                fh_hash.update(block)
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + fh_hash.digest())
    return h.hexdigest()


def read_manifest(path: str | os.PathLike) -> dict:
    with open(Path(path) / MANIFEST, encoding="utf-8") as fh:
        return json.load(fh)


def is_complete(path: str | os.PathLike) -> bool:
    return (Path(path) / MANIFEST).is_file()


def cached_build(data_dir: str | os.PathLike, name: str, settings: dict,
                 build: Callable[[Path], dict], log: Callable[[str], None] = print) -> Path:
    """Return ``<data_dir>/<name>-<hash8>``, building it first when it is not there.

    Args:
        data_dir: parent directory of the cached datasets (created if needed).
        name: dataset name, the directory prefix.
        settings: everything the content depends on (JSON-serialisable); its hash names
            the directory, so other settings build another copy.
        build: writes the dataset into the directory it is given and returns extra
            manifest entries. It runs with the lock held, in a temporary directory.
        log: progress messages.

    The manifest records the settings, their hash, the content hash and what ``build``
    returned. A leftover temporary directory from a killed build is removed.
    """
    data_dir = Path(data_dir).expanduser()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = settings_hash(settings)[:8]
    final = data_dir / f"{name}-{key}"
    if is_complete(final):
        return final
    from audiocil.data.cache import launch_rank

    if launch_rank() != 0:  # the global rank 0 builds; the others wait for its manifest
        return _wait_for_build(final, name, log)
    lock_path = data_dir / f".{name}-{key}.lock"
    with open(lock_path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"[{name}] another process is building {final}; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if is_complete(final):
                return final
            for stale in data_dir.glob(f".{name}-{key}.tmp-*"):
                log(f"[{name}] removing an unfinished build {stale}")
                shutil.rmtree(stale, ignore_errors=True)
            if final.exists():  # no manifest: not ours to trust
                log(f"[{name}] removing incomplete {final}")
                shutil.rmtree(final)
            tmp = data_dir / f".{name}-{key}.tmp-{os.getpid()}"
            tmp.mkdir()
            t0 = time.monotonic()
            try:
                extra = build(tmp)
                manifest = {
                    "name": name,
                    "settings_hash": key,
                    "settings": settings,
                    "content_sha256": content_hash(tmp),
                    "build_seconds": round(time.monotonic() - t0, 1),
                    **extra,
                }
                with open(tmp / MANIFEST, "w", encoding="utf-8") as fh:
                    json.dump(manifest, fh, indent=1, sort_keys=False, default=str)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            log(f"[{name}] built {final} in {manifest['build_seconds']:.0f} s "
                f"(content sha256 {manifest['content_sha256'][:12]})")
            return final
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _wait_for_build(final: Path, name: str, log: Callable[[str], None],
                    wait_seconds: float | None = None, poll_seconds: float = 2.0) -> Path:
    wait_seconds = BUILD_WAIT_SECONDS if wait_seconds is None else wait_seconds
    log(f"[{name}] waiting for the global rank 0 to build {final}")
    start = time.monotonic()
    while not is_complete(final):
        if time.monotonic() - start > wait_seconds:
            raise TimeoutError(f"waited {wait_seconds:.0f} s for the global rank 0 to build "
                               f"{final}; is rank 0 running and does it see the same "
                               "paths.data_dir?")
        time.sleep(poll_seconds)
    return final
