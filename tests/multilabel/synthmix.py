"""A tiny multi-label dataset for tests: mixtures of 1-3 synth20-style classes per clip.

Each clip sums sounds of distinct classes (the source-filter classes of
:mod:`audiocil.data.synth`) at random levels; its target is the multi-hot vector of the
classes in it. Made in seconds; same signature as ``load_synth`` plus the split sizes, so
a test can point ``dataset.loader._target_`` at :func:`load_synthmix`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from audiocil.data.catalog import SPLITS, AudioDataset, ClipTable
from audiocil.data.synth import _class_formants, synth_clip


def build_synthmix(root: Path, n_classes: int, seed: int, sample_rate: int, clip_seconds: float,
                   sizes: dict[str, int], max_events: int) -> None:
    rng = np.random.default_rng(seed)
    formants = _class_formants(rng, n_classes)
    n = int(round(sample_rate * clip_seconds))
    tmp = root.with_name(root.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for s_idx, split in enumerate(SPLITS):
        (tmp / split).mkdir(parents=True)
        for i in range(sizes[split]):
            crng = np.random.default_rng([seed, s_idx, i])
            k = int(crng.integers(1, max_events + 1))
            classes = sorted(int(c) for c in crng.choice(n_classes, size=k, replace=False))
            mix = np.zeros(n, np.float32)
            for c in classes:
                mix += synth_clip(formants[c], crng, sample_rate, n) * crng.uniform(0.5, 1.0)
            mix *= 0.9 / (np.abs(mix).max() + 1e-9)
            name = f"{split}/{i:04d}.wav"
            sf.write(tmp / name, mix, sample_rate, subtype="PCM_16")
            rows.append([name, classes, split])
    (tmp / "meta.json").write_text(json.dumps({"classes": n_classes, "rows": rows}))
    try:
        os.replace(tmp, root)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)


def load_synthmix(data_dir: str, n_classes: int = 8, seed: int = 0, sample_rate: int = 16000,
                  clip_seconds: float = 1.0, train: int = 240, val: int = 24, test: int = 120,
                  max_events: int = 3) -> AudioDataset:
    sizes = {"train": train, "val": val, "test": test}
    key = f"{n_classes}-{seed}-{sample_rate}-{clip_seconds}-{sizes}-{max_events}"
    root = Path(data_dir) / f"synthmix{n_classes}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    if not (root / "meta.json").exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        build_synthmix(root, n_classes, seed, sample_rate, clip_seconds, sizes, max_events)
    rows = json.loads((root / "meta.json").read_text())["rows"]
    splits = {}
    for split in SPLITS:
        sel = [r for r in rows if r[2] == split]
        y = np.zeros((len(sel), n_classes), np.uint8)
        for j, r in enumerate(sel):
            y[j, r[1]] = 1
        splits[split] = ClipTable([str(root / r[0]) for r in sel], y)
    return AudioDataset(name=f"synthmix{n_classes}", class_names=[f"class{c:02d}" for c in range(n_classes)],
                        sample_rate=sample_rate, clip_seconds=clip_seconds, multilabel=True,
                        splits=splits, info={"root": str(root)})


#: overrides that turn the TINY protocol of tests/conftest.py into a multi-label one
SYNTHMIX = [
    "dataset.loader._target_=tests.multilabel.synthmix.load_synthmix",
    "dataset.name=synthmix8",
    "scenario=multilabel",
    "scenario.init_cls=4",
    "scenario.increment=2",
]
