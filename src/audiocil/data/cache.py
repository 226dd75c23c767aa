"""The feature cache: log-mels (or waveforms) computed once, checked on every open.

An entry is ``<cache_dir>/<dataset>-<split>-<key>/`` holding ``data.npy`` (float16 log-mels
(N, F, T) or waveforms (N, S)), ``keep.npy`` ((N,) bool, False for clips skipped as bad) and
``meta.json`` (what it was built from, which clips were skipped, and checksums).

Key. ``key`` hashes everything that changes the cached arrays (:func:`key_fields`): the
clip list (path, offset, size and modification time of each file, or "missing"), the
sample rate and clip length, the log-mel settings, the bad-file policy
(``dataset.loader.on_bad_file``), the versions of the libraries that decode, resample and
transform the audio, and :data:`CACHE_FORMAT_VERSION` (the reading and building code).
Which clips get skipped is an output of the build, not an input: it is determined by the
files (size, mtime), the policy and the code, all in the key, and it is recorded in
``meta.json`` (``skipped``, ``skipped_index``) and checked against ``keep.npy`` on open.
A file rewritten with the same size *and* modification time is not noticed.

Checksums. At build time every file of the entry is hashed in blocks of :data:`BLOCK_BYTES`
(blake2b, 8 bytes per block) into ``meta.json``, and ``meta.json`` carries a digest of
itself. Every open, whatever ``data.verify_cache`` says, checks ``meta.json`` against its
checksum, the size of every file, ``keep.npy`` in full (it is tiny) and the array headers;
``off`` reads no block of ``data.npy`` beyond that, ``quick`` (the default) checks
:data:`QUICK_BLOCKS` evenly spaced blocks of it, the first and the last among them (at most
16 MiB read), ``full`` checks every block. Guarantee: any change of size (truncation) is
caught even with ``off``; ``quick`` also catches any change to the first or last block and
any damaged stretch longer than 1/15 of ``data.npy``, so a whole file overwritten in place
(random bytes, zeros, another array of the same shape) is always caught; smaller damage
between the sampled blocks is caught only by ``full`` or by ``audiocil cache verify``.

Bad entries. A corrupt or truncated entry is reported with its path and reason (a
warning), moved aside and deleted under the entry's lock, and rebuilt. When it cannot be
rebuilt (the cache folder is read-only, or source audio that existed at build time can no
longer be read) the run stops with :class:`CorruptCacheEntry` saying what to delete; nothing
on disk is changed then. Other entries are never touched.

Concurrency. A builder holds ``flock`` on ``.<entry>.lock``, writes into its own hidden
``.<entry>.tmp-<host>-<pid>/``, fsyncs the files and renames the folder into place
(atomic), so readers (which take no lock) see a whole entry or none. On one host flock
makes builders of one entry take turns: the first builds, the others open its entry. On a
file system shared by several machines flock excludes across machines only where the file
system implements it so (Linux NFS client with server-side locking: yes; NFS mounted with
``local_lock=flock``/``nolock``, Lustre with ``localflock``: per machine only; Lustre
without the ``flock`` option: flock fails, and the cache warns and goes on unlocked). Where
it does not, two machines may build one entry at the same time: each in its own folder,
the first rename wins, the other finds the entry in place, deletes its own copy and opens
the winner's. Duplicate work is possible there, a torn or mixed entry is not.

Several ranks. ``cached_array(build=False)`` never builds: it opens the entry, waiting
(polling) until another process has built or repaired it. The datamodule passes it on every
rank but the global rank 0, so on a cache folder shared by several machines one process
builds an entry and the others wait, whatever the file system's locks do.

Orphans. A build killed with SIGKILL (or by power loss) leaves its ``.tmp-<host>-<pid>``
folder; every open sweeps the cache folder and removes a leftover only when its entry's
lock is free and its builder is provably gone: on this host, its pid is not running; on
another host (or a leftover of the format-1 code, named ``.tmp-<pid>``), nothing in it has
changed for :data:`FOREIGN_ORPHAN_AGE_S` seconds. Machines that share a cache folder must
have distinct host names. Lock files stay (they are empty); never delete them while jobs run.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio

from audiocil.data.audio_io import ON_BAD_FILE, load_table
from audiocil.data.catalog import AudioDataset, ClipTable
from audiocil.data.frontend import LogMel
from audiocil.errors import DataError
from audiocil.progress import Progress

log = logging.getLogger(__name__)

#: Bump whenever the code changes what an entry holds or how it is laid out; entries of
#: another format are never opened (``audiocil cache verify`` lists them as OLD).
#: 3: log-mels projected in float64 (:class:`LogMel` ``exact``), the same for any thread count.
CACHE_FORMAT_VERSION = 3
VERIFY_MODES = ("off", "quick", "full")
#: Checksum block size, recorded per file in ``meta.json`` (changing it needs no bump).
BLOCK_BYTES = 1 << 20
#: Blocks of ``data.npy`` checked on every open with ``data.verify_cache=quick``.
QUICK_BLOCKS = 16
#: A leftover of a builder on another host is removed only after this long untouched.
FOREIGN_ORPHAN_AGE_S = 24 * 3600

_LOGMEL_KEYS = ("sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max", "log_floor")
_ARRAYS = ("data.npy", "keep.npy")
_HOST = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "unknown-host"
_LEFTOVER = re.compile(r"^\.(?P<entry>.+?)\.(?P<kind>tmp|corrupt)-(?:(?P<host>.+)-)?(?P<pid>\d+)$")
_ENTRY_NAME = re.compile(r"^.+-(train|val|test)-[0-9a-f]{24}$")
_NO_LOCKS = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)
_warned_unlocked: set[str] = set()


class CorruptCacheEntry(DataError):
    """An entry whose files do not match what was recorded when it was built.

    Attributes:
        entry: the entry folder.
        reason: what is wrong, naming the file.
    """

    def __init__(self, entry: Path, reason: str, advice: str | None = None) -> None:
        self.entry, self.reason = Path(entry), reason
        advice = advice or f"Delete {entry}; the next run rebuilds it."
        super().__init__(f"feature cache entry {entry} is corrupt: {reason}. {advice}")


class CacheNotWritable(DataError, PermissionError):
    """The cache folder cannot be written and holds no usable entry."""


# ---- key --------------------------------------------------------------------------------
def key_fields(sample_rate: int, num_samples: int, frontend: Mapping | None,
               on_bad_file: str) -> dict:
    """Every setting that shapes the cached arrays (the per-file stamps come on top)."""
    libs = {"libsndfile": soundfile.__libsndfile_version__, "resampler": _resampler()}
    if frontend:
        libs.update(torch=torch.__version__, torchaudio=torchaudio.__version__)
    return {"format": CACHE_FORMAT_VERSION, "sample_rate": int(sample_rate),
            "num_samples": int(num_samples), "dtype": "float16", "on_bad_file": on_bad_file,
            "frontend": None if not frontend else
            {k: None if frontend[k] is None else float(frontend[k]) for k in _LOGMEL_KEYS},
            "libraries": libs}


def _resampler() -> str:
    """The library :func:`audiocil.data.audio_io._resample` uses, with its version."""
    try:
        import soxr
    except ImportError:  # pragma: no cover - audio_io then falls back to scipy
        import scipy

        return f"scipy {scipy.__version__}"
    return f"soxr {soxr.__version__}"


def file_stamps(table: ClipTable) -> list[str]:
    """One ``path|offset|size:mtime_ns`` (or ``|missing``) line per clip."""
    offsets = table.offsets if table.offsets is not None else np.zeros(len(table))
    stamps = []
    for path, off in zip(table.paths, offsets, strict=True):
        try:
            st = os.stat(path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except (FileNotFoundError, NotADirectoryError):
            stamp = "missing"
        stamps.append(f"{path}|{float(off):.6f}|{stamp}")
    return stamps


def cache_key(fields: Mapping, stamps: list[str]) -> str:
    """sha256 of :func:`key_fields` and :func:`file_stamps`, 24 hex digits."""
    h = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    for line in stamps:
        h.update(f"{line}\n".encode())
    return h.hexdigest()[:24]


# ---- build ------------------------------------------------------------------------------
def table_split(dataset: AudioDataset, table: ClipTable) -> str:
    return next((k for k, v in dataset.splits.items() if v is table), "?")


def _build(table: ClipTable, dataset: AudioDataset, frontend: Mapping | None, out: Path,
           on_bad_file: str, chunk: int) -> dict:
    n = len(table)
    mel = LogMel(**{k: frontend[k] for k in _LOGMEL_KEYS}, exact=True) if frontend else None
    data = None
    keep = np.ones(n, dtype=bool)
    skipped: list[str] = []
    starts = list(range(0, n, chunk))

    def read(a: int) -> tuple:
        sub = ClipTable(table.paths[a:a + chunk], table.targets[a:a + chunk],
                        None if table.offsets is None else table.offsets[a:a + chunk])
        return load_table(sub, dataset.sample_rate, dataset.num_samples, on_bad_file=on_bad_file)

    t0 = time.time()
    what = f"feature cache {dataset.name}/{table_split(dataset, table)}"
    with ThreadPoolExecutor(max_workers=2) as pool, Progress(n, what, "clip") as bar:
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
            bar.update(len(arr))
    assert data is not None
    shape = list(data.shape)
    data.flush()
    del data
    np.save(out / "keep.npy", keep)
    return {"n": n, "shape": shape, "skipped": skipped,
            "skipped_index": np.flatnonzero(~keep).tolist(), "seconds": time.time() - t0}


def _block_digests(path: Path, block: int, only: Iterator[int] | None = None,
                   fsync: bool = False) -> dict[int, str]:
    """blake2b-64 of each ``block``-byte block of ``path`` (all, or the ``only`` ones)."""
    out = {}
    with open(path, "rb") as f:
        if fsync:
            os.fsync(f.fileno())
        indices = only if only is not None else range(-(-os.fstat(f.fileno()).st_size // block))
        for i in indices:
            f.seek(i * block)
            out[i] = hashlib.blake2b(f.read(block), digest_size=8).hexdigest()
    return out


def _meta_digest(meta: Mapping) -> str:
    body = {k: v for k, v in meta.items() if k != "self_blake2b64"}
    return hashlib.blake2b(json.dumps(body, sort_keys=True).encode(), digest_size=8).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _build_entry(entry: Path, table: ClipTable, dataset: AudioDataset, split: str,
                 frontend: Mapping | None, on_bad_file: str, chunk: int, key: str,
                 fields: Mapping) -> None:
    root = entry.parent
    tmp = root / f".{entry.name}.tmp-{_HOST}-{os.getpid()}"
    if tmp.exists():  # ours: a failed earlier attempt of this very process
        shutil.rmtree(tmp)
    tmp.mkdir()
    kind = "log-mel" if frontend else "waveform"
    log.info("building the %s cache of %s/%s (%d clips) in %s", kind, dataset.name, split,
             len(table), entry)
    try:
        built = _build(table, dataset, frontend, tmp, on_bad_file, chunk)
        files = {}
        for name in _ARRAYS:
            digests = _block_digests(tmp / name, BLOCK_BYTES, fsync=True)
            files[name] = {"size": (tmp / name).stat().st_size, "block_bytes": BLOCK_BYTES,
                           "blake2b64": [digests[i] for i in range(len(digests))]}
        meta = {"format": CACHE_FORMAT_VERSION, "key": key, "dataset": dataset.name,
                "split": split, "kind": kind, "on_bad_file": on_bad_file, "dtype": "float16",
                "fields": dict(fields), "frontend": dict(frontend or {}),
                "built": {"host": _HOST, "pid": os.getpid(), "seconds": built.pop("seconds"),
                          "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
                **built, "files": files}
        meta = json.loads(json.dumps(meta))  # the digest is of what a reader will parse
        meta["self_blake2b64"] = _meta_digest(meta)
        with open(tmp / "meta.json", "w") as f:
            f.write(json.dumps(meta, indent=1))
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
    except BaseException:  # also Ctrl-C: leave no half-built folder behind
        _remove_tree(tmp, "the folder of a failed build")
        raise
    if not _publish(tmp, entry):
        log.info("another builder (not serialised with this one: its lock does not reach "
                 "here) finished %s first; using its copy", entry)


def _publish(tmp: Path, entry: Path) -> bool:
    """Rename ``tmp`` to ``entry`` (atomic); False, and ``tmp`` removed, if ``entry`` won."""
    try:
        os.replace(tmp, entry)
    except OSError as err:
        if err.errno in (errno.ENOTEMPTY, errno.EEXIST) and entry.is_dir():
            _remove_tree(tmp, "a duplicate build")
            return False
        raise
    _fsync_dir(entry.parent)
    return True


def _remove_tree(path: Path, what: str) -> None:
    """Delete ``path``; a failure is logged with the path and what to do, not raised
    (callers use this for clean-up that must not hide the error they are handling)."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass  # removed by someone else meanwhile: the goal is reached
    except OSError as err:
        log.warning("could not delete %s (%s): %s; delete it by hand (no running job "
                    "uses it)", path, what, err)


# ---- verification -----------------------------------------------------------------------
def blocks_to_check(n_blocks: int, mode: str) -> list[int]:
    """Block indices that ``mode`` checks: all, or :data:`QUICK_BLOCKS` evenly spaced ones
    from the first to the last (for ``quick``), or none (``off``)."""
    if mode == "off":
        return []
    if mode == "full" or n_blocks <= QUICK_BLOCKS:
        return list(range(n_blocks))
    return sorted({int(i) for i in np.linspace(0, n_blocks - 1, QUICK_BLOCKS).round()})


def read_meta(entry: Path) -> dict:
    """``meta.json`` of ``entry``, parsed (any format).

    Raises:
        CorruptCacheEntry: missing or not JSON.
    """
    path = Path(entry) / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise CorruptCacheEntry(entry, "meta.json is missing") from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptCacheEntry(entry, f"meta.json is not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise CorruptCacheEntry(entry, "meta.json does not hold a JSON object")
    return meta


def _check(entry: Path, mode: str) -> tuple[np.ndarray, np.ndarray, dict]:
    meta = read_meta(entry)
    if meta.get("format") != CACHE_FORMAT_VERSION:
        raise CorruptCacheEntry(entry, f"meta.json is of cache format {meta.get('format', 1)}, "
                                f"this code reads {CACHE_FORMAT_VERSION}")
    if meta.get("self_blake2b64") != _meta_digest(meta):
        raise CorruptCacheEntry(entry, "meta.json does not match its own checksum "
                                "(edited or damaged)")
    for name in _ARRAYS:
        rec, path = meta["files"][name], entry / name
        try:
            size = path.stat().st_size
        except FileNotFoundError as err:
            raise CorruptCacheEntry(entry, f"{name} is missing") from err
        if size != rec["size"]:
            raise CorruptCacheEntry(entry, f"{name} is {size} bytes, {rec['size']} expected "
                                    "(truncated, or replaced by other data)")
        n_blocks, block = len(rec["blake2b64"]), rec["block_bytes"]
        wanted = blocks_to_check(n_blocks, "full" if name == "keep.npy" else mode)
        for i, digest in _block_digests(path, block, iter(wanted)).items():
            if digest != rec["blake2b64"][i]:
                raise CorruptCacheEntry(
                    entry, f"{name} block {i} of {n_blocks} (bytes {i * block}-"
                    f"{min((i + 1) * block, size) - 1}) does not match the checksum recorded "
                    "when it was built (overwritten or damaged in place)")
    try:
        data = np.load(entry / "data.npy", mmap_mode="r")
        keep = np.load(entry / "keep.npy")
    except (ValueError, OSError) as err:
        raise CorruptCacheEntry(entry, f"cannot be read as arrays ({err})") from err
    if list(data.shape) != meta["shape"] or data.dtype != np.float16:
        raise CorruptCacheEntry(entry, f"data.npy holds {data.dtype} {list(data.shape)}, "
                                f"float16 {meta['shape']} expected")
    skipped = np.flatnonzero(~keep).tolist() if keep.dtype == bool else None
    if keep.shape != (meta["n"],) or skipped != meta["skipped_index"]:
        raise CorruptCacheEntry(entry, "keep.npy does not match the skipped clips recorded "
                                "in meta.json")
    return data, keep, meta


def verify_entry(entry: str | os.PathLike, mode: str = "full") -> dict:
    """Check one entry (see the module notes for what each mode guarantees).

    Returns:
        its ``meta.json``.

    Raises:
        CorruptCacheEntry: naming the entry, the file and what is wrong.
    """
    if mode not in VERIFY_MODES:
        raise ValueError(f"verify mode must be one of {'|'.join(VERIFY_MODES)}, got {mode!r}")
    return _check(Path(entry), mode)[2]


# ---- locks and leftovers ----------------------------------------------------------------
@contextmanager
def _entry_lock(root: Path, name: str, blocking: bool = True) -> Iterator[bool | None]:
    """Hold ``flock`` on ``.<name>.lock``: yields True, False (held by another, when not
    ``blocking``) or None (this file system has no flock: see the module notes)."""
    with open(root / f".{name}.lock", "a") as f:  # "a": never truncate a held lock file
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        except OSError as err:
            if err.errno not in _NO_LOCKS:
                raise
            if str(root) not in _warned_unlocked:
                _warned_unlocked.add(str(root))
                log.warning("file locks do not work in %s (%s): builders of one cache entry "
                            "are not serialised there (each builds its own copy, the first "
                            "rename wins, entries stay whole)", root, err)
            yield None
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _newest_mtime(folder: Path) -> float:
    newest = folder.lstat().st_mtime
    with os.scandir(folder) as it:
        for e in it:
            try:
                newest = max(newest, e.stat(follow_symlinks=False).st_mtime)
            except FileNotFoundError:
                continue  # deleted meanwhile
    return newest


def remove_orphans(root: str | os.PathLike, now: float | None = None) -> list[Path]:
    """Delete leftovers of killed builds in ``root`` whose builder is provably gone.

    A ``.<entry>.tmp-<host>-<pid>`` (or ``.corrupt-``) folder goes when the entry's lock is
    free and: ``host`` is this host and ``pid`` is not running; or it is from another host
    (or from the format-1 code, ``.tmp-<pid>``) and nothing in it changed for
    :data:`FOREIGN_ORPHAN_AGE_S` seconds.

    Returns:
        the folders removed.
    """
    root, now = Path(root), time.time() if now is None else now
    removed = []
    for child in sorted(root.iterdir()):
        m = _LEFTOVER.match(child.name)
        if not m or not child.is_dir():
            continue
        host, pid = m["host"], int(m["pid"])
        try:
            if host == _HOST:
                if pid == os.getpid() or _pid_alive(pid):
                    continue
                why = f"its builder, pid {pid} on this host, is gone"
            else:
                idle = now - _newest_mtime(child)
                if idle < FOREIGN_ORPHAN_AGE_S:
                    continue
                who = f"host {host}" if host else "audiocil's cache format 1"
                why = f"left by {who}, untouched for {idle / 3600:.0f} h"
        except FileNotFoundError:
            continue  # removed by someone else meanwhile
        with _entry_lock(root, m["entry"], blocking=False) as held:
            if held is False:
                continue  # a live builder of that entry holds its lock
            log.warning("removing %s, a leftover of a killed cache build (%s)", child, why)
            _remove_tree(child, "a leftover of a killed cache build")
            removed.append(child)
    return removed


def _readable(path: str) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def _rebuild_blocker(table: ClipTable, stamps: list[str]) -> str | None:
    """Why the entry of ``table`` could not be rebuilt as it was built, or None."""
    lost = [p for p, s in dict(zip(table.paths, stamps, strict=True)).items()
            if not s.endswith("|missing") and not _readable(p)]
    if lost:
        return (f"{len(lost)} source audio file(s) it was built from can no longer be read "
                f"(first: {lost[0]})")
    return None


def _discard(entry: Path, err: CorruptCacheEntry, table: ClipTable, stamps: list[str]) -> None:
    """Move a corrupt entry out of the way and delete it (under the entry's lock)."""
    blocker = _rebuild_blocker(table, stamps)
    if blocker:
        raise CorruptCacheEntry(entry, err.reason, advice=(
            f"It cannot be rebuilt: {blocker}. Nothing was changed on disk; make the audio "
            f"readable again, delete {entry}, and run again.")) from err
    log.warning("feature cache entry %s is corrupt (%s); moving it aside and rebuilding it",
                entry, err.reason)
    aside = entry.parent / f".{entry.name}.corrupt-{_HOST}-{os.getpid()}"
    if aside.exists():
        shutil.rmtree(aside)  # ours, from an earlier discard in this process
    try:
        os.replace(entry, aside)
    except FileNotFoundError:
        return  # discarded meanwhile by a builder that does not share our lock
    except OSError as move_err:
        raise CorruptCacheEntry(entry, err.reason, advice=(
            f"It cannot be moved aside ({move_err}): delete {entry} by hand and run again."
        )) from move_err
    _remove_tree(aside, "a corrupt cache entry, already moved aside")


# ---- the entry point --------------------------------------------------------------------
def launch_rank() -> int:
    """This process's global rank as its launcher set it, before any Trainer exists.

    Lightning's cluster environments (SLURM, TorchElastic/torchrun, LSF, MPI, Kubeflow)
    are asked first; otherwise the variables Lightning's own launcher sets (``NODE_RANK``,
    ``LOCAL_RANK``; a process it starts on node ``k > 0`` is never rank 0). 0 when nothing
    says otherwise (one process, or the first process of a Lightning-launched run).
    """
    from lightning.fabric.plugins import environments as E

    for name in ("SLURMEnvironment", "TorchElasticEnvironment", "LSFEnvironment",
                 "KubeflowEnvironment", "MPIEnvironment"):
        env_cls = getattr(E, name, None)
        try:
            if env_cls is not None and env_cls.detect():
                return int(env_cls().global_rank())
        except Exception:  # noqa: BLE001 - a half-configured environment: fall through
            continue
    for var in ("RANK", "GLOBAL_RANK"):
        if os.environ.get(var):
            return int(os.environ[var])
    node, local = int(os.environ.get("NODE_RANK", 0) or 0), int(os.environ.get("LOCAL_RANK", 0) or 0)
    return 0 if node == 0 and local == 0 else max(1, node)


def cached_array(dataset: AudioDataset, split: str, cache_dir: str | os.PathLike,
                 frontend: Mapping | None, on_bad_file: str = "error", verify: str = "quick",
                 chunk: int = 128, build: bool = True, wait_seconds: float = 4 * 3600,
                 poll_seconds: float = 2.0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Memory-mapped features of one split, built on first use, checked on every open.

    Args:
        frontend: log-mel settings; None caches waveforms (the front end then runs on the
            training device).
        on_bad_file: ``dataset.loader.on_bad_file``; part of the key.
        verify: ``data.verify_cache``: ``off``, ``quick`` or ``full`` (module notes).
        build: False never builds or repairs: waits (up to ``wait_seconds``, checking every
            ``poll_seconds``) until another process (the global rank 0) has put a whole,
            intact entry in place.

    Returns:
        ``(data, keep, meta)``: data (N, F, T) log-mels or (N, S) waveforms as float16,
        read-only memmap; keep (N,) bool, False for files skipped as bad; meta with the
        build facts (``skipped`` messages among them).

    Raises:
        CorruptCacheEntry: the entry is corrupt and cannot be rebuilt (says what to delete).
        PermissionError: the entry does not exist and ``cache_dir`` is not writable.
        TimeoutError: ``build=False`` and no intact entry appeared within ``wait_seconds``.
    """
    if on_bad_file not in ON_BAD_FILE:
        raise ValueError(f"on_bad_file must be 'error' or 'skip', got {on_bad_file!r}")
    if verify not in VERIFY_MODES:
        raise ValueError(f"data.verify_cache must be one of {'|'.join(VERIFY_MODES)}, "
                         f"got {verify!r}")
    table = dataset.splits[split]
    fields = key_fields(dataset.sample_rate, dataset.num_samples, frontend, on_bad_file)
    stamps = file_stamps(table)
    key = cache_key(fields, stamps)
    root = Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    entry = root / f"{dataset.name}-{split}-{key}"
    if not build:
        return _wait_for(entry, verify, key, len(table), wait_seconds, poll_seconds,
                         dataset.name, split)
    writable = _writable(root)
    if writable:
        remove_orphans(root)
    found = _open(entry, verify, key, len(table))
    if isinstance(found, tuple):
        return _opened(found, dataset.name, split, entry)
    if not writable:
        if found is not None:
            raise CorruptCacheEntry(entry, found.reason, advice=(
                f"It cannot be rebuilt: the cache folder {root} is not writable. Ask its "
                f"owner to delete {entry}, or point paths.cache_dir at a writable folder."))
        raise CacheNotWritable(f"the feature cache folder {root} is not writable and has no "
                               f"entry {entry.name} yet: point paths.cache_dir at a writable "
                               "folder")
    with _entry_lock(root, entry.name):  # another job may be building this very entry
        found = _open(entry, verify, key, len(table))  # ... or have just repaired it
        if not isinstance(found, tuple):
            if found is not None:
                _discard(entry, found, table, stamps)
            _build_entry(entry, table, dataset, split, frontend, on_bad_file, chunk, key, fields)
            found = _open(entry, verify, key, len(table))
            if not isinstance(found, tuple):
                raise found if found is not None else FileNotFoundError(entry)
    return _opened(found, dataset.name, split, entry)


def _wait_for(entry: Path, verify: str, key: str, n: int, wait_seconds: float,
              poll_seconds: float, name: str, split: str) -> tuple:
    """Open ``entry`` once another process has built it (see ``cached_array(build=False)``)."""
    start = time.monotonic()
    last_note = None
    while True:
        found = _open(entry, verify, key, n)
        if isinstance(found, tuple):
            return _opened(found, name, split, entry)
        waited = time.monotonic() - start
        if waited >= wait_seconds:
            state = "is corrupt" if found is not None else "does not exist"
            raise TimeoutError(f"waited {waited:.0f} s for the global rank 0 to build the "
                               f"feature cache entry {entry}, which still {state}; is rank 0 "
                               "running and does it see the same paths.cache_dir?")
        if last_note is None or time.monotonic() - last_note >= 60:
            last_note = time.monotonic()
            log.info("waiting for the global rank 0 to build the feature cache entry %s "
                     "(%.0f s so far)", entry, waited)
        time.sleep(poll_seconds)


def _open(entry: Path, verify: str, key: str,
          n: int) -> tuple[np.ndarray, np.ndarray, dict] | CorruptCacheEntry | None:
    """The checked entry, or the reason it is corrupt, or None when it does not exist."""
    if not entry.exists():
        return None
    try:
        data, keep, meta = _check(entry, verify)
    except CorruptCacheEntry as err:
        return err  # handed to the caller, which rebuilds or raises it
    if meta["key"] != key or meta["n"] != n:
        return CorruptCacheEntry(entry, f"meta.json is of key {meta['key']} with {meta['n']} "
                                 f"clips, {key} with {n} expected")
    return data, keep, meta


def _opened(found: tuple, name: str, split: str, entry: Path) -> tuple:
    meta = found[2]
    if meta["skipped"]:
        log.warning("%s/%s: %d bad file(s) skipped (dataset.on_bad_file=%s; cache "
                    "entry %s); first: %s", name, split, len(meta["skipped"]),
                    meta["on_bad_file"], entry, meta["skipped"][0])
    return found


# ---- `audiocil cache verify` ------------------------------------------------------------
def _entries(path: Path) -> list[Path]:
    def is_entry(p: Path) -> bool:
        return p.is_dir() and ((p / "meta.json").exists() or bool(_ENTRY_NAME.match(p.name)))

    if is_entry(path):
        return [path]
    return [p for p in sorted(path.iterdir()) if not p.name.startswith(".") and is_entry(p)]


def main(argv: list[str] | None = None) -> int:
    """``audiocil cache verify [--quick] [PATH...]``: check entries, one line each.

    Returns:
        the exit status: 0 when no entry is corrupt, 1 otherwise, 2 for a missing PATH.
    """
    parser = argparse.ArgumentParser(prog="audiocil cache", description="Feature cache tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("verify", help="check every block of every entry; one line each")
    cmd.add_argument("paths", nargs="*", type=Path,
                     help="cache folders or entry folders (default: the config's "
                          "paths.cache_dir)")
    cmd.add_argument("--quick", action="store_true",
                     help="only the check every run does on open (sizes, sampled blocks)")
    args = parser.parse_args(argv)
    if not args.paths:
        from audiocil.config import compose  # Hydra only when needed

        args.paths = [Path(compose([]).paths.cache_dir)]
    mode, status, counts = "quick" if args.quick else "full", 0, {}
    for path in args.paths:
        if not path.is_dir():
            print(f"{path}: no such folder", file=sys.stderr)
            status = 2
            continue
        for entry in _entries(path):
            try:
                fmt = read_meta(entry).get("format", 1)
                if fmt != CACHE_FORMAT_VERSION:
                    word = "OLD" if isinstance(fmt, int) and fmt < CACHE_FORMAT_VERSION else "OTHER"
                    line = (f"{entry}: cache format {fmt}; this audiocil reads "
                            f"{CACHE_FORMAT_VERSION} and never uses it: delete it")
                else:
                    verify_entry(entry, mode)
                    word, line = "OK", f"{entry} ({mode})"
            except CorruptCacheEntry as err:
                word = "CORRUPT"
                line = f"{entry}: {err.reason}; delete it (the next run rebuilds it)"
                status = max(status, 1)
            counts[word] = counts.get(word, 0) + 1
            print(f"{word:<8} {line}")
    summary = [f"{counts[w]} {w}" for w in ("OK", "CORRUPT", "OLD", "OTHER") if w in counts]
    print(", ".join(summary) or "no cache entries found")
    return status
