"""``gmmix50``: multi-label soundscapes of General-MIDI drum hits and instrument notes.

Each clip is 5 s at 16 kHz and mixes 1 to 4 events of *different* classes at random
onsets and levels; its target is the multi-hot vector of the classes present. The 50
classes are 25 GM drum-kit sounds (percussion channel 10, one class per key) and 25 GM
melodic programs (one class per program, played at random pitches, velocities and
durations), chosen by the same measurement as gm100 (:func:`soundfont.select_distinct`):
silent and duplicate candidates are dropped, then the least distinct, drums first, then
programs, which are also compared with the chosen drums.

Every event is rendered on its own (so its level in the mix is set exactly and every
labelled event is present), normalised by its *active* RMS (frames within 30 dB of its
loudest), faded out over 50 ms, scaled by a level drawn in ``level_db`` and added at its
onset. The mixture then goes through the recording chain of
:mod:`audiocil.data.embedded.variation` (one room per clip, tilt, gain, noise; no detune).

Class ids alternate drum, program, drum, ... so that every block of consecutive classes
(e.g. a CIL protocol of 30 base classes + 4 phases of 5) holds both kinds.

On disk::

    <root>/audio/{train,val,test}/gmmix50_<split>_<index:05d>.wav
    <root>/gmmix50_{train,val,test}.csv     header filename,labels
                                            (file name with .wav; labels ';'-joined names)
    <root>/gmmix50_vocab.json               {class name: id 0..49}
    <root>/manifest.json                    settings, dropped candidates, hashes

Class names: ``drum_<key:03d>_<gm drum name>`` and ``<family>_<source>_<program:03d>``.

Versions (``format_version``, as for gm100): **2** (default, under a minute on 2 cores)
renders each event dry with :mod:`.sampler` and applies :func:`.variation.record` to the
mixture; **1** (tens of minutes) renders events with midirenderer and applies
:func:`.variation.vary`, byte for byte what audiocil built before version 2.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from audiocil.data.catalog import SPLITS, AudioDataset, ClipTable
from audiocil.data.embedded import cached_build, read_manifest, write_wav
from audiocil.data.embedded import soundfont as S
from audiocil.data.embedded.variation import Variation, draw, record, vary
from audiocil.progress import Progress

NAME = "gmmix50"
#: The default dataset version (module notes); 1 stays buildable byte for byte.
FORMAT_VERSION = 2
VERSIONS = (1, 2)
SAMPLE_RATE = 16000
CLIP_SECONDS = 5.0
CSV_HEADER = ("filename", "labels")
DRUM_OFFSET = 1000  # drum key k is candidate 1000 + k in the joint selection
SILENCE_DB = -90.0
DUPLICATE_DB = 1.5
CHUNK = 100  # clips per worker task
MIN_PITCHES = 12  # audible keys a program class needs

# gmmix50's own variation defaults: the mixture is already the hard part.
DEFAULT_VARIATION = dict(gain_db_min=-20.0, gain_db_max=-1.0, snr_db_min=10.0, snr_db_max=40.0,
                         noise_slope_max=2.0, detune_cents=0.0, room_rt60_ms_min=30.0,
                         room_rt60_ms_max=300.0, room_drr_db_min=0.0, room_drr_db_max=15.0,
                         tilt_db_per_octave=2.0, eq_db=0.0)


def class_name(key: int) -> str:
    return S.drum_class_str(key - DRUM_OFFSET) if key >= DRUM_OFFSET else S.instrument_str(key)


def _display(key: int) -> str:
    if key >= DRUM_OFFSET:
        return f"drum {S.drum_name(key - DRUM_OFFSET)}"
    return S.program_name(key)


def _interleave(drums: list[int], programs: list[int]) -> list[int]:
    out = []
    for i in range(max(len(drums), len(programs))):
        out += drums[i:i + 1] + programs[i:i + 1]
    return out


def plan_clips(seed: int, classes: list[int], n_clips: int, split: str,
               max_events: int, level_db: tuple[float, float],
               keys: dict[int, list[int]] | None = None) -> list[dict]:
    """The events of every clip of one split (deterministic in ``seed``).

    ``keys[program]`` lists the pitches a program may play (default: its nominal range).
    """
    keys = keys or {}
    s_idx = SPLITS.index(split)
    plans = []
    for i in range(n_clips):
        rng = np.random.default_rng([int(seed), 200, s_idx, i])
        k = int(rng.integers(1, min(max_events, len(classes)) + 1))
        chosen = sorted(int(c) for c in rng.choice(len(classes), size=k, replace=False))
        events = []
        for c in chosen:
            key = classes[c]
            if key >= DRUM_OFFSET:
                ev = S.NoteEvent(key - DRUM_OFFSET, int(rng.integers(60, 128)), 0.3, 2.0)
            else:
                lo, hi = S.pitch_range(key)
                pitches = keys.get(key) or list(range(lo, hi + 1))
                hold = round(float(rng.uniform(0.3, 2.0)), 3)
                ev = S.NoteEvent(int(pitches[int(rng.integers(len(pitches)))]),
                                 int(rng.integers(40, 128)), hold, hold + 1.0)
            onset = round(float(rng.uniform(0.0, CLIP_SECONDS - 0.5)), 4)
            level = float(rng.uniform(*level_db))
            events.append({"class": c, "key": key, "event": ev, "onset": onset,
                           "level_db": level})
        plans.append({"name": f"{NAME}_{split}_{i:05d}", "split": split, "index": i,
                      "events": events})
    return plans


def _active_rms(x: np.ndarray) -> float:
    hop = SAMPLE_RATE // 100
    n = len(x) // hop * hop
    if n == 0:
        return 0.0
    e = np.mean(x[:n].astype(np.float64).reshape(-1, hop) ** 2, axis=1)
    active = e[e >= e.max() * 1e-3]
    return float(np.sqrt(active.mean())) if active.size else 0.0


def _render_chunk(task: dict) -> dict:
    """Worker: render every event of a chunk of clips (grouped by class), mix, vary, write."""
    t0, c0 = time.monotonic(), time.process_time()
    by_key: dict[int, list[tuple[int, int]]] = {}
    for ci, plan in enumerate(task["plans"]):
        for ei, ev in enumerate(plan["events"]):
            by_key.setdefault(ev["key"], []).append((ci, ei))
    stems: dict[tuple[int, int], np.ndarray] = {}
    for key in sorted(by_key):
        idx = by_key[key]
        events = [task["plans"][ci]["events"][ei]["event"] for ci, ei in idx]
        drum = key >= DRUM_OFFSET
        clips = S.render_events(task["soundfont"], 0 if drum else key, events, is_drum=drum,
                                sample_rate=SAMPLE_RATE, engine=task["engine"])
        for pos, clip in zip(idx, clips, strict=True):
            stems[pos] = clip
    params = Variation.from_settings(task["variation"])
    n = int(round(CLIP_SECONDS * SAMPLE_RATE))
    fade = np.linspace(1.0, 0.0, SAMPLE_RATE // 20, dtype=np.float32)
    rows, quiet = [], []
    for ci, plan in enumerate(task["plans"]):
        mix = np.zeros(n, np.float32)
        present = set()
        for ei, ev in enumerate(plan["events"]):
            stem = stems[(ci, ei)].copy()
            rms = _active_rms(stem)
            if rms < 10 ** (SILENCE_DB / 20):
                quiet.append(plan["name"])
                continue
            stem[-len(fade):] *= fade
            stem *= 10 ** (ev["level_db"] / 20) / rms
            a = int(round(ev["onset"] * SAMPLE_RATE))
            seg = stem[: n - a]
            mix[a:a + len(seg)] += seg
            present.add(ev["class"])
        rng = np.random.default_rng([int(task["seed"]), 201, SPLITS.index(plan["split"]),
                                     plan["index"]])
        path = Path(task["out_dir"]) / "audio" / plan["split"] / f"{plan['name']}.wav"
        if task["engine"] == "midirenderer":  # version 1
            wave, _ = vary(mix, SAMPLE_RATE, params, rng, detune_ok=False)
            sf.write(path, wave, SAMPLE_RATE, subtype="PCM_16")
        else:
            wave = record(mix, SAMPLE_RATE, params, draw(params, rng, detune_ok=False), rng)
            write_wav(path, wave, SAMPLE_RATE)
        rows.append((plan["split"], f"{plan['name']}.wav", sorted(present)))
    return {"rows": rows, "quiet_events": quiet, "seconds": time.monotonic() - t0,
            "cpu_seconds": time.process_time() - c0, "n": len(task["plans"])}


def build_gmmix50(root: str | os.PathLike, seed: int = 0, soundfont: str | None = None, *,
                  n_drum_classes: int = 25, n_program_classes: int = 25,
                  clips_per_split=(3000, 600, 1200), max_events: int = 4,
                  level_db_min: float = -15.0, level_db_max: float = 0.0,
                  drum_keys: list[int] | None = None, programs: list[int] | None = None,
                  workers: int | None = None, verbose: bool = True,
                  format_version: int = FORMAT_VERSION, **variation) -> Path:
    """Build gmmix50 under ``root`` (once) and return its directory ``root/gmmix50-<hash8>``.

    Args:
        root: the cache parent directory (``paths.data_dir``).
        seed: drives the clip contents and the recording variation.
        soundfont: a General-MIDI ``.sf2``; default ``TimGM6mb.sf2`` from pretty_midi.
        n_drum_classes, n_program_classes: classes of each kind (default 25 + 25).
        clips_per_split: (train, val, test) clips.
        max_events: events per clip are drawn uniformly in 1..max_events.
        level_db_min, level_db_max: range of each event's level in the mix, dB.
        drum_keys, programs: candidates (default: GM keys 35..81, programs 0..127).
        workers: render processes (default: up to 2).
        verbose: print progress (a bar on a terminal, else a line per 10 %).
        format_version: 2 (default) or 1 (module notes).
        **variation: :class:`~audiocil.data.embedded.variation.Variation` fields
            overriding :data:`DEFAULT_VARIATION`.
    """
    params = Variation.from_kwargs(**{**DEFAULT_VARIATION, **variation})
    if format_version not in VERSIONS:
        raise ValueError(f"gmmix50 format_version must be one of {VERSIONS}, got "
                         f"{format_version}")
    engine = "midirenderer" if format_version == 1 else "sampler"
    sizes = tuple(int(n) for n in clips_per_split)
    if len(sizes) != 3 or min(sizes) < 1:
        raise ValueError(f"clips_per_split must be 3 positive counts, got {clips_per_split}")
    if not 1 <= max_events:
        raise ValueError(f"max_events must be >= 1, got {max_events}")
    if level_db_min > level_db_max:
        raise ValueError("level_db_min > level_db_max")
    sf_path = S.resolve_soundfont(soundfont)
    dkeys = sorted({int(k) for k in (S.GM_DRUM_KEYS if drum_keys is None else drum_keys)})
    progs = sorted({int(p) for p in (range(128) if programs is None else programs)})
    workers = min(2, os.cpu_count() or 1) if workers is None else max(1, int(workers))
    log = (lambda msg: print(msg, flush=True)) if verbose else (lambda msg: None)
    settings = {
        "format_version": int(format_version), "seed": int(seed), "soundfont": sf_path.name,
        "soundfont_sha256": S.file_sha256(sf_path), "n_drum_classes": int(n_drum_classes),
        "n_program_classes": int(n_program_classes), "clips_per_split": list(sizes),
        "max_events": int(max_events), "level_db": [float(level_db_min), float(level_db_max)],
        "candidate_drum_keys": dkeys, "candidate_programs": progs,
        "sample_rate": SAMPLE_RATE, "clip_seconds": CLIP_SECONDS, "silence_db": SILENCE_DB,
        "duplicate_db": DUPLICATE_DB, "variation": params.asdict(),
    }

    def build(tmp: Path) -> dict:
        total = sum(sizes)
        log(f"[gmmix50] building version {format_version}: {total} clips of {n_drum_classes} "
            f"drum + {n_program_classes} instrument classes from {sf_path.name} with {workers} "
            f"worker(s) (one-time)")
        t0 = time.monotonic()
        if engine == "sampler":
            from audiocil.data.embedded import sampler

            sampler.warm_up()  # compile before the workers fork (they inherit it)
        dprobes = S.probe_presets(sf_path, dkeys, is_drum=True, workers=workers, engine=engine)
        for p in dprobes:
            p.key += DRUM_OFFSET
        pprobes = S.probe_presets(sf_path, progs, workers=workers, scan=True, engine=engine)
        from audiocil.data.embedded.gm100 import playable_keys

        keys, narrow = {}, []
        for pr in pprobes:
            keys[pr.key] = playable_keys(pr.key, pr.audible_keys, MIN_PITCHES)
            if keys[pr.key] is None and pr.level_db >= SILENCE_DB:
                narrow.append({"key": pr.key, "name": S.program_name(pr.key),
                               "level_db": round(pr.level_db, 2),
                               "reason": "too_few_audible_keys",
                               "detail": f"{len(pr.audible_keys)} audible keys, "
                                         f"{MIN_PITCHES} needed"})
        pprobes = [pr for pr in pprobes if keys[pr.key] is not None or pr.level_db < SILENCE_DB]
        drums, dropped_d = S.select_distinct(dprobes, n_drum_classes, silence_db=SILENCE_DB,
                                             duplicate_db=DUPLICATE_DB, what="drum sound",
                                             name=_display)
        both, dropped_p = S.select_distinct([p for p in dprobes if p.key in drums] + pprobes,
                                            n_drum_classes + n_program_classes,
                                            silence_db=SILENCE_DB, duplicate_db=DUPLICATE_DB,
                                            what="drum sound or GM program", name=_display,
                                            protected=set(drums))
        prog_keys = [k for k in both if k < DRUM_OFFSET]
        classes = _interleave(drums, prog_keys)
        t_probe = time.monotonic() - t0
        log(f"[gmmix50] probed {len(dkeys)} drum keys and {len(progs)} programs in "
            f"{t_probe:.0f} s; kept {len(drums)} + {len(prog_keys)}")
        for split in SPLITS:
            (tmp / "audio" / split).mkdir(parents=True)
        plans = []
        for split, n in zip(SPLITS, sizes, strict=True):
            plans += plan_clips(seed, classes, n, split, max_events, (level_db_min, level_db_max),
                                keys)
        tasks = [{"plans": plans[i:i + CHUNK], "seed": int(seed), "soundfont": str(sf_path),
                  "variation": params.asdict(), "out_dir": str(tmp), "engine": engine}
                 for i in range(0, len(plans), CHUNK)]
        rows: dict[str, list] = {s: [] for s in SPLITS}
        quiet: list[str] = []
        done, cpu = 0, 0.0
        with Progress(total, "[gmmix50] rendering", "clip", emit=log) as bar:
            for res in S.parallel_map(_render_chunk, tasks, workers):
                for split, fname, labels in res["rows"]:
                    rows[split].append((fname, labels))
                quiet += res["quiet_events"]
                done += res["n"]
                cpu += res["cpu_seconds"]
                bar.update(res["n"])
        names = [class_name(k) for k in classes]
        for split in SPLITS:
            with open(tmp / f"{NAME}_{split}.csv", "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh, lineterminator="\n")
                w.writerow(CSV_HEADER)
                for fname, labels in sorted(rows[split]):
                    w.writerow([fname, ";".join(names[c] for c in labels)])
        with open(tmp / f"{NAME}_vocab.json", "w", encoding="utf-8") as fh:
            json.dump({nm: i for i, nm in enumerate(names)}, fh, indent=1)
        counts = {s: np.bincount([c for _, labels in rows[s] for c in labels],
                                 minlength=len(classes)) for s in SPLITS}
        return {
            "soundfont_path": str(sf_path), "workers": workers,
            "probe_seconds": round(t_probe, 1),
            "render_cpu_seconds": round(cpu, 1),
            "classes": [{"id": i, "name": class_name(k), "kind": "drum" if k >= DRUM_OFFSET
                         else "program", "gm_number": k % DRUM_OFFSET, "gm_name": _display(k),
                         **({} if k >= DRUM_OFFSET else {"pitches": keys[k]})}
                        for i, k in enumerate(classes)],
            "dropped_candidates": [{**d, "key": d["key"] % DRUM_OFFSET,
                                    "kind": "drum" if d["key"] >= DRUM_OFFSET else "program"}
                                   for d in dropped_d + dropped_p + narrow],
            "clips_per_split": dict(zip(SPLITS, sizes, strict=True)),
            "clips_per_class": {s: {"min": int(c.min()), "mean": round(float(c.mean()), 1),
                                    "max": int(c.max())} for s, c in counts.items()},
            "silent_events": quiet,
        }

    return cached_build(root, NAME, settings, build, log)


def read_gmmix50(root: str | os.PathLike, sample_rate: int = 16000, clip_seconds: float = 5.0,
                 on_bad_file: str = "error") -> AudioDataset:
    """Read a built gmmix50 directory into a multi-label :class:`AudioDataset`."""
    from audiocil.data.loaders._common import (
        MetadataError,
        abspath,
        check_on_bad_file,
        finalize,
        read_csv,
        read_json,
    )

    check_on_bad_file(on_bad_file)
    root = Path(root)
    vocab_path = root / f"{NAME}_vocab.json"
    vocab = {str(k): int(v) for k, v in read_json(vocab_path).items()}
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise MetadataError(f"{vocab_path}: ids must be exactly 0..{len(vocab) - 1}")
    names = [k for k, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    splits, sources = {}, {}
    for split in SPLITS:
        csv_path = root / f"{NAME}_{split}.csv"
        rows = read_csv(csv_path, CSV_HEADER)
        targets = np.zeros((len(rows), len(names)), np.uint8)
        paths = []
        for i, row in enumerate(rows):
            for lab in filter(None, row["labels"].split(";")):
                if lab not in vocab:
                    raise MetadataError(f"{csv_path}, line {i + 2}: unknown class {lab!r}")
                targets[i, vocab[lab]] = 1
            paths.append(abspath(root, "audio", split, row["filename"]))
        splits[split] = ClipTable(paths=paths, targets=targets)
        sources[split] = str(csv_path)
    splits, info = finalize(splits, sources, on_bad_file, NAME)
    return AudioDataset(name=NAME, class_names=names, sample_rate=int(sample_rate),
                        clip_seconds=float(clip_seconds), multilabel=True, splits=splits,
                        info=info)


def load_gmmix50(data_dir: str | os.PathLike, seed: int = 0, soundfont: str | None = None,
                 sample_rate: int = 16000, clip_seconds: float = 5.0,
                 on_bad_file: str = "error", n_drum_classes: int = 25,
                 n_program_classes: int = 25, clips_per_split=(3000, 600, 1200),
                 max_events: int = 4, level_db_min: float = -15.0, level_db_max: float = 0.0,
                 drum_keys: list[int] | None = None, programs: list[int] | None = None,
                 workers: int | None = None, verbose: bool = True,
                 format_version: int = FORMAT_VERSION, **variation) -> AudioDataset:
    """gmmix50, built into ``data_dir`` on first use: multi-label, (N, 50) uint8 targets.

    ``sample_rate`` and ``clip_seconds`` are what the clips are served at (the files are
    16 kHz, 5 s); the other arguments are those of :func:`build_gmmix50`.
    """
    root = build_gmmix50(data_dir, seed=seed, soundfont=soundfont,
                         n_drum_classes=n_drum_classes, n_program_classes=n_program_classes,
                         clips_per_split=clips_per_split, max_events=max_events,
                         level_db_min=level_db_min, level_db_max=level_db_max,
                         drum_keys=drum_keys, programs=programs, workers=workers,
                         verbose=verbose, format_version=format_version, **variation)
    ds = read_gmmix50(root, sample_rate=sample_rate, clip_seconds=clip_seconds,
                      on_bad_file=on_bad_file)
    man = read_manifest(root)
    ds.info.update(embedded_root=str(root), content_sha256=man["content_sha256"],
                   settings_hash=man["settings_hash"])
    return ds
