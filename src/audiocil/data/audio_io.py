"""Reading audio clips with soundfile: mono, resampled, padded or cropped to a fixed length.

Every clip that cannot be used raises :class:`BadAudioFile`, whose message names the file,
says what is wrong with it and what to do. Nothing here ever substitutes silence for a clip
it could not read.

* :func:`load_clip` reads one clip (optionally starting ``offset_s`` seconds into a longer
  file), mixes it down to mono, resamples it and pads or crops it to ``num_samples``.
* :func:`load_table` reads every clip of a :class:`~audiocil.data.catalog.ClipTable`, either
  stopping at the first bad file (``on_bad_file="error"``) or dropping bad files and
  reporting them (``on_bad_file="skip"``).
* :func:`check_table_files` is a cheap start-up check that every listed file exists.

Fixed-length policy: clips shorter than ``num_samples`` are zero-padded at the end; longer
clips are cropped. ``crop="center"`` (evaluation) and ``crop="start"`` are deterministic,
``crop="random"`` (training) draws the window from the given random generator.
"""

from __future__ import annotations

import logging
import math
import os
import struct
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from audiocil.errors import AudioError

if TYPE_CHECKING:  # pragma: no cover
    from audiocil.data.catalog import ClipTable

log = logging.getLogger(__name__)

#: Source sample rates outside this range are treated as a corrupt header, not resampled.
MIN_SOURCE_RATE = 1_000
MAX_SOURCE_RATE = 768_000

CROP_MODES = ("start", "center", "random")
ON_BAD_FILE = ("error", "skip")

_FIX_HINT = (
    "Re-extract or re-download this file from the dataset release (or delete the row "
    "that lists it), or set dataset.on_bad_file=skip to drop unusable clips."
)


class BadAudioFile(AudioError):
    """A clip that cannot be used; the message names the file and what to do.

    Attributes:
        path: the offending file, when known.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class MissingAudioFiles(BadAudioFile):
    """Files listed in a dataset's metadata are not on disk.

    Attributes:
        missing: every missing path (not only the ones quoted in the message).
    """

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message, path=missing[0] if missing else None)
        self.missing = missing


def _bad(path: str, reason: str, hint: str = _FIX_HINT) -> BadAudioFile:
    return BadAudioFile(f"bad audio file {path}: {reason}. {hint}", path=path)


# ----------------------------------------------------------------------------------------
# fixed-length policy


def _window_start(n: int, num_samples: int, crop: str, rng: np.random.Generator | None) -> int:
    """First sample of the ``num_samples`` window kept out of ``n > num_samples`` samples."""
    if crop == "start":
        return 0
    if crop == "center":
        return (n - num_samples) // 2
    if crop == "random":
        gen = rng if rng is not None else np.random.default_rng()
        return int(gen.integers(0, n - num_samples + 1))
    raise ValueError(f"crop must be one of {'|'.join(CROP_MODES)}, got {crop!r}")


def fix_length(wave: np.ndarray, num_samples: int, crop: str = "center",
               rng: np.random.Generator | None = None) -> np.ndarray:
    """Pad with zeros or crop ``wave`` (S,) to ``num_samples``.

    Args:
        crop: ``"start"`` keeps the beginning, ``"center"`` the middle (deterministic, for
            evaluation), ``"random"`` a random window drawn from ``rng`` (training).
    """
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {'|'.join(CROP_MODES)}, got {crop!r}")
    n = len(wave)
    if n == num_samples:
        return wave
    if n < num_samples:
        return np.pad(wave, (0, num_samples - n))
    start = _window_start(n, num_samples, crop, rng)
    return wave[start:start + num_samples]


# ----------------------------------------------------------------------------------------
# file checks


def _check_riff_header(path: str, size: int) -> None:
    """Catch WAV problems libsndfile lets through: a data chunk cut short, rate 0.

    libsndfile silently returns fewer frames when a WAV file's audio data was truncated
    (an interrupted copy or extraction), so the declared chunk size is compared with the
    bytes actually present. Only plain RIFF/WAVE files with a definite data size are checked.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 13)
    except OSError as err:
        raise _bad(path, f"cannot be opened ({err})") from err
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(head):
        chunk_id = head[pos:pos + 4]
        (chunk_size,) = struct.unpack("<I", head[pos + 4:pos + 8])
        body = pos + 8
        if chunk_id == b"fmt " and body + 8 <= len(head):
            (rate,) = struct.unpack("<I", head[body + 4:body + 8])
            if rate == 0:
                raise _bad(path, "its WAV header declares a sample rate of 0 Hz, so it cannot "
                                 "be resampled (corrupt header)")
        elif chunk_id == b"data":
            if chunk_size in (0, 0xFFFFFFFF):  # empty, or a streamed file of unknown length
                if chunk_size == 0:
                    raise _bad(path, "its WAV data chunk is empty (the file holds no audio "
                                     "samples)")
                return
            if body + chunk_size > size:
                raise _bad(path, f"it is truncated: the WAV header declares {chunk_size} bytes "
                                 f"of audio but only {max(size - body, 0)} are present (an "
                                 f"interrupted copy or extraction?)")
            return
        pos = body + chunk_size + (chunk_size & 1)


def _describe_sf_error(err: Exception) -> str:
    msg = str(err)
    if "Format not recognised" in msg or "not recognised" in msg:
        return ("it is not a readable audio file: its bytes are not audio in any format "
                "libsndfile knows (a wrong file, a saved error page, or corrupt data)")
    return f"libsndfile cannot read it ({msg})"


def _open(path: str) -> sf.SoundFile:
    """Open ``path`` for reading, turning every failure into a :class:`BadAudioFile`."""
    if not os.path.exists(path):
        raise _bad(path, "file not found",
                   "Check dataset.root (and the metadata directory) points at the dataset "
                   "release, or set dataset.on_bad_file=skip to drop missing clips.")
    if os.path.isdir(path):
        raise _bad(path, "it is a directory, not an audio file")
    size = os.path.getsize(path)
    if size == 0:
        raise _bad(path, "the file is empty (0 bytes)")
    _check_riff_header(path, size)
    try:
        return sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise _bad(path, _describe_sf_error(err)) from err


def _check_target(sample_rate: int, num_samples: int) -> None:
    if not (MIN_SOURCE_RATE <= int(sample_rate) <= MAX_SOURCE_RATE):
        raise ValueError(f"target sample_rate must be in {MIN_SOURCE_RATE}..{MAX_SOURCE_RATE} "
                         f"Hz, got {sample_rate}")
    if int(num_samples) <= 0:
        raise ValueError(f"num_samples must be positive, got {num_samples}")


def _resample(wave: np.ndarray, src: int, dst: int, path: str) -> np.ndarray:
    if src == dst:
        return wave
    try:
        try:
            import soxr  # installed with librosa; fast for any rate ratio
        except ImportError:  # pragma: no cover - fall back to a polyphase filter
            from scipy.signal import resample_poly

            g = math.gcd(src, dst)
            out = resample_poly(wave, dst // g, src // g)
        else:
            out = soxr.resample(wave, src, dst, quality="HQ")
    except Exception as err:  # noqa: BLE001 - any failure here means this file is unusable
        raise _bad(path, f"resampling from {src} Hz to {dst} Hz failed ({err})") from err
    return np.ascontiguousarray(out, dtype=np.float32)


# ----------------------------------------------------------------------------------------
# reading


def load_clip(path: str, sample_rate: int, num_samples: int, offset_s: float = 0.0,
              crop: str = "start", rng: np.random.Generator | None = None) -> np.ndarray:
    """Read one clip as float32 mono at ``sample_rate``, exactly ``num_samples`` long.

    Args:
        path: audio file (any format libsndfile reads: wav, flac, ogg, mp3, aiff, ...).
        sample_rate: rate to resample to, in Hz.
        num_samples: length of the returned clip.
        offset_s: where the clip starts inside the file, in seconds (FSC-89 style clips cut
            out of longer soundscapes). Crops are taken from the audio after this point.
        crop: how a longer clip is cut down: ``"start"``, ``"center"`` or ``"random"``.
        rng: generator for ``crop="random"``.

    Raises:
        BadAudioFile: missing, empty, unreadable or truncated file, a sample rate that
            cannot be resampled, non-finite samples, or an offset past the end of the file.
    """
    path = os.fspath(path)
    _check_target(sample_rate, num_samples)
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {'|'.join(CROP_MODES)}, got {crop!r}")
    with _open(path) as snd:
        src_sr, frames = int(snd.samplerate), int(snd.frames)
        if not (MIN_SOURCE_RATE <= src_sr <= MAX_SOURCE_RATE):
            raise _bad(path, f"its sample rate is {src_sr} Hz, outside the plausible range "
                             f"{MIN_SOURCE_RATE}..{MAX_SOURCE_RATE} Hz, so it cannot be "
                             f"resampled to {sample_rate} Hz (corrupt header?)")
        if frames <= 0:
            raise _bad(path, "the file holds no audio samples")
        first = int(round(float(offset_s) * src_sr))
        if first < 0:
            raise _bad(path, f"negative clip offset {offset_s} s (check the metadata file)")
        if first >= frames:
            raise _bad(path, f"the clip offset {offset_s} s lies past the end of the file "
                             f"({frames / src_sr:.3f} s long): wrong file or wrong metadata")
        avail = frames - first
        ratio = sample_rate / src_sr
        out_avail = int(round(avail * ratio))
        skip = 0
        lo, hi = first, frames
        if out_avail > num_samples:
            # Read only the source window that covers the kept output window, plus a margin
            # on both sides so the resampler has context at the edges. The window starts on
            # a source sample that falls exactly on an output sample (a multiple of
            # src / gcd(src, dst)), so the crop matches resampling the whole file.
            out_start = _window_start(out_avail, num_samples, crop, rng)
            if src_sr == sample_rate:
                lo, hi, skip = first + out_start, first + out_start + num_samples, 0
            else:
                step = src_sr // math.gcd(src_sr, sample_rate)
                margin = int(math.ceil(0.01 * src_sr))
                rel_lo = max(0, int(math.floor(out_start / ratio)) - margin)
                rel_lo -= rel_lo % step
                lo = first + rel_lo
                skip = out_start - rel_lo * sample_rate // src_sr
                hi = min(frames, first + int(math.ceil((out_start + num_samples) / ratio))
                         + margin)
        try:
            snd.seek(lo)
            data = snd.read(hi - lo, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError) as err:
            raise _bad(path, f"reading its audio failed ({err}); the file is probably "
                             f"corrupt or truncated") from err
    if len(data) < hi - lo:
        raise _bad(path, f"it is truncated: the header promises {frames} frames but reading "
                         f"stopped after {lo + len(data)}")
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(wave)):
        raise _bad(path, "it contains NaN or infinite sample values")
    wave = _resample(np.ascontiguousarray(wave), src_sr, sample_rate, path)
    wave = wave[skip:skip + num_samples]
    if len(wave) < num_samples:
        wave = np.pad(wave, (0, num_samples - len(wave)))
    return wave.astype(np.float32, copy=False)


def _clip_rngs(crop: str, rng: np.random.Generator | int | None, n: int) -> list:
    if crop != "random":
        return [None] * n
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    seeds = gen.integers(0, 2**63 - 1, size=n)
    return [np.random.default_rng(int(s)) for s in seeds]


def load_table(table: ClipTable, sample_rate: int, num_samples: int,
               on_bad_file: str = "error", crop: str = "center",
               rng: np.random.Generator | int | None = None,
               num_workers: int = 1) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read every clip of ``table``.

    Args:
        table: the clips (paths, and offsets for clips cut out of longer files).
        sample_rate, num_samples: output rate and length of every clip.
        on_bad_file: ``"error"`` raises :class:`BadAudioFile` at the first bad file;
            ``"skip"`` drops bad files, logs a warning with their count and returns their
            messages.
        crop: fixed-length policy for long clips (``"center"`` for evaluation,
            ``"random"`` for training; see :func:`fix_length`). Tables with ``offsets``
            list clips cut out of longer files: each clip is the ``num_samples`` window
            starting at its offset, whatever ``crop`` says.
        rng: generator or seed for ``crop="random"``; one sub-generator is drawn per clip
            up front, so the result does not depend on ``num_workers``.
        num_workers: reader threads (libsndfile and the resampler release the GIL).

    Returns:
        ``(waves, keep_mask, skipped)``: ``waves`` is (N, num_samples) float32 with one row
        per table row; rows of skipped files are filled with NaN so that forgetting to
        apply ``keep_mask`` cannot go unnoticed (use ``waves[keep_mask]``). ``keep_mask``
        is (N,) bool, ``skipped`` one message per dropped file.

    Raises:
        BadAudioFile: a bad file with ``on_bad_file="error"``. (With ``"skip"`` nothing is
            raised even when every clip is bad: callers may read a split in chunks.)
    """
    if on_bad_file not in ON_BAD_FILE:
        raise ValueError(f"on_bad_file must be 'error' or 'skip', got {on_bad_file!r}")
    _check_target(sample_rate, num_samples)
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {'|'.join(CROP_MODES)}, got {crop!r}")
    n = len(table)
    if table.offsets is not None:
        offsets, crop = table.offsets, "start"
    else:
        offsets = np.zeros(n)
    rngs = _clip_rngs(crop, rng, n)
    waves = np.empty((n, int(num_samples)), dtype=np.float32)
    keep = np.ones(n, dtype=bool)
    skipped: list[str] = []

    def read(i: int) -> np.ndarray | BadAudioFile:
        try:
            return load_clip(table.paths[i], sample_rate, num_samples, float(offsets[i]),
                             crop=crop, rng=rngs[i])
        except BadAudioFile as err:
            if on_bad_file == "error":
                raise
            return err

    if num_workers > 1 and n > 1:
        with ThreadPoolExecutor(max_workers=num_workers) as pool:
            results: Iterable = pool.map(read, range(n))
            _collect(results, waves, keep, skipped)
    else:
        _collect((read(i) for i in range(n)), waves, keep, skipped)

    if skipped:
        log.warning("skipped %d of %d clips that could not be read (on_bad_file=skip); "
                    "first: %s", len(skipped), n, skipped[0])
    return waves, keep, skipped


def _collect(results: Iterable, waves: np.ndarray, keep: np.ndarray,
             skipped: list[str]) -> None:
    for i, res in enumerate(results):
        if isinstance(res, BadAudioFile):
            keep[i] = False
            waves[i] = np.nan
            skipped.append(str(res))
        else:
            waves[i] = res


# ----------------------------------------------------------------------------------------
# start-up checks


def missing_files(paths: Iterable[str]) -> np.ndarray:
    """Bool mask of the ``paths`` that are not existing files (each path stat'ed once)."""
    seen: dict[str, bool] = {}
    out = []
    for p in paths:
        if p not in seen:
            seen[p] = not os.path.isfile(p)
        out.append(seen[p])
    return np.asarray(out, dtype=bool)


def check_table_files(table: ClipTable, source: str | None = None,
                      max_listed: int = 10) -> None:
    """Fail fast, at start-up, when files listed in ``table`` are not on disk.

    Only checks existence (one ``stat`` per distinct file), not readability.

    Args:
        source: what listed the files (e.g. the metadata CSV), quoted in the message.
        max_listed: how many missing files the message quotes.

    Raises:
        MissingAudioFiles: naming up to ``max_listed`` missing files and how many in all.
    """
    mask = missing_files(table.paths)
    if not mask.any():
        return
    missing = list(dict.fromkeys(p for p, m in zip(table.paths, mask, strict=True) if m))
    distinct = len(set(table.paths))
    shown = "\n  ".join(missing[:max_listed])
    more = f"\n  ... and {len(missing) - max_listed} more" if len(missing) > max_listed else ""
    where = f" listed in {source}" if source else ""
    if len(missing) == distinct:
        advice = ("None of the listed files exists: dataset.root (or the metadata directory) "
                  "probably points at the wrong folder, or the audio has not been extracted "
                  "there yet.")
    else:
        advice = ("Restore them from the dataset release, or set "
                  "dataset.on_bad_file=skip to drop the clips that are missing.")
    raise MissingAudioFiles(
        f"{len(missing)} of {distinct} audio files{where} do not exist:\n  {shown}{more}\n"
        f"{advice}", missing=missing)
