"""``synth20``: a procedurally synthesised dataset that is made in seconds, for tests and smoke runs.

Each class is a source-filter sound: a harmonic source with a random pitch per clip,
shaped by the class's own spectral envelope (two or three formant resonances whose
centres jitter per clip), with a random amplitude envelope and background noise at a
random SNR. Classes therefore differ by spectral shape, not by pitch or loudness, and
neighbouring classes overlap enough that a classifier has to learn something.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from audiocil.data.catalog import AudioDataset, ClipTable

SPLIT_SIZES = {"train": 40, "val": 10, "test": 20}


def _class_formants(rng: np.random.Generator, n_classes: int) -> list[np.ndarray]:
    """(n_formants, 2) centre frequency (Hz) and bandwidth ratio per class."""
    out = []
    for _ in range(n_classes):
        k = int(rng.integers(2, 4))
        centres = np.sort(np.exp(rng.uniform(np.log(250), np.log(6000), size=k)))
        widths = rng.uniform(0.08, 0.3, size=k)
        out.append(np.stack([centres, widths], axis=1))
    return out


def synth_clip(formants: np.ndarray, rng: np.random.Generator, sample_rate: int,
               num_samples: int) -> np.ndarray:
    """One clip (S,) float32 of a class with the given formants."""
    t = np.arange(num_samples) / sample_rate
    f0 = float(np.exp(rng.uniform(np.log(90), np.log(420))))
    vibrato = 1 + 0.01 * np.sin(2 * np.pi * rng.uniform(3, 7) * t)
    phase = np.cumsum(f0 * vibrato / sample_rate) + rng.uniform()
    source = 2 * (phase % 1.0) - 1  # sawtooth: every harmonic present
    freqs = np.fft.rfftfreq(num_samples, 1 / sample_rate)
    jitter = formants[:, 0] * np.exp(rng.normal(0, 0.06, len(formants)))
    env = np.full(len(freqs), 0.02)
    for (_, width), centre in zip(formants, jitter, strict=True):
        env += np.exp(-0.5 * (np.log(np.maximum(freqs, 1.0) / centre) / width) ** 2)
    wave = np.fft.irfft(np.fft.rfft(source) * env, n=num_samples)
    attack = rng.uniform(0.005, 0.1)
    decay = rng.uniform(0.3, 2.0)
    onset = rng.uniform(0, 0.2)
    tt = np.clip(t - onset, 0, None)
    amp = np.minimum(tt / attack, 1.0) * np.exp(-tt / decay) * (t >= onset)
    wave = wave * amp
    wave /= np.abs(wave).max() + 1e-9
    snr_db = rng.uniform(5, 30)
    noise = rng.normal(0, 1, num_samples) * np.sqrt(np.mean(wave**2) / 10 ** (snr_db / 10))
    out = (wave + noise) * rng.uniform(0.2, 0.9) / (np.abs(wave + noise).max() + 1e-9)
    return out.astype(np.float32)


def build_synth(root: Path, n_classes: int, seed: int, sample_rate: int,
                clip_seconds: float) -> None:
    """Write the dataset's wav files and ``meta.json`` into ``root`` (atomically)."""
    rng = np.random.default_rng(seed)
    formants = _class_formants(rng, n_classes)
    num_samples = int(round(sample_rate * clip_seconds))
    tmp = root.with_name(root.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for c in range(n_classes):
        crng = np.random.default_rng([seed, c])
        (tmp / f"class{c:02d}").mkdir(parents=True)
        for split, n in SPLIT_SIZES.items():
            for i in range(n):
                name = f"class{c:02d}/{split}_{i:03d}.wav"
                sf.write(tmp / name, synth_clip(formants[c], crng, sample_rate, num_samples),
                         sample_rate, subtype="PCM_16")
                rows.append([name, c, split])
    (tmp / "meta.json").write_text(json.dumps({"classes": n_classes, "rows": rows}))
    try:
        os.replace(tmp, root)
    except OSError:  # another process finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)


def load_synth(data_dir: str, n_classes: int = 20, seed: int = 0, sample_rate: int = 16000,
               clip_seconds: float = 1.0) -> AudioDataset:
    """Make (once) and load the synthetic dataset under ``data_dir``."""
    tag = hashlib.sha256(f"{n_classes}-{seed}-{sample_rate}-{clip_seconds}".encode()).hexdigest()[:8]
    root = Path(data_dir) / f"synth{n_classes}-{tag}"
    if not (root / "meta.json").exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        build_synth(root, n_classes, seed, sample_rate, clip_seconds)
    rows = json.loads((root / "meta.json").read_text())["rows"]
    splits = {}
    for split in SPLIT_SIZES:
        sel = [r for r in rows if r[2] == split]
        splits[split] = ClipTable([str(root / r[0]) for r in sel],
                                  np.array([r[1] for r in sel], dtype=np.int64))
    return AudioDataset(name=f"synth{n_classes}", class_names=[f"class{c:02d}" for c in range(n_classes)],
                        sample_rate=sample_rate, clip_seconds=clip_seconds, multilabel=False,
                        splits=splits, info={"root": str(root)})
