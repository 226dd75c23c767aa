"""``gm100``: 100 General-MIDI instruments as NSynth-style notes, rendered locally.

Each note is 4 s at 16 kHz, held for 3 s then released, like NSynth. Every class is one
GM melodic program of the SoundFont (default ``TimGM6mb.sf2`` from ``pretty_midi``); its
notes cover the instrument's playable range (:func:`soundfont.pitch_range`, a range per GM
family) at velocities 25, 50, 75, 100, 127. Each class has ``notes_per_split`` = 100 train
/ 20 validation / 50 test notes whose (pitch, velocity) pairs are all different, so no
pair is in two splits.

Which 100 of the 128 programs: each plays five probe notes (pitches 36..84, velocity 100)
and a short note at every key around its range. Silent presets (loudest probe below
``SILENCE_DB``), presets with too few audible keys, and duplicates (timbre fingerprint
within ``DUPLICATE_DB`` of a kept preset) are dropped, then the least distinct until 100
remain (:func:`soundfont.select_distinct`). ``manifest.json`` lists what was dropped and
why. Keys of the nominal range where a preset is silent are left out (and the range is
widened by the nearest audible keys if that leaves too few); a note that still comes out
silent (e.g. at a low velocity) is replaced by another pair of the same instrument.

Every clean note then goes through a seeded recording chain
(:mod:`audiocil.data.embedded.variation`: detune, short room, tilt, gain, noise), whose
strength is set by the ``variation`` keyword arguments. Clean renders are too easy (a small
CNN separates them almost perfectly); the defaults keep a small CNN trained jointly on all
100 classes well below saturation (see ``benchmarks/gm100_difficulty.py``).

On disk (the NSynth release layout plus the NSynth-100 few-shot CIL metadata)::

    <root>/nsynth-{train,valid,test}/audio/<instrument_str>-<pitch:03d>-<velocity:03d>.wav
    <root>/nsynth-{train,valid,test}/examples.json      NSynth's per-note schema
    <root>/nsynth-100-fs_{train,val,test}.csv          filename,instrument,instrument_family,
                                                       instrument_source,audio_source
    <root>/nsynth-100-fs_vocab.json                    {instrument_str: label 0..99}
    <root>/manifest.json                               settings, dropped presets, hashes

``instrument_str`` is ``<family>_<source>_<program:03d>`` (families and sources:
:data:`soundfont.FAMILIES`, :data:`soundfont.SOURCES`); labels follow program order.

Versions (``format_version``, part of the settings and so of the directory name):

- **2** (default, about a minute on 2 cores): every note rendered on its own by
  :mod:`.sampler` (rustysynth's voice model in numba, dry: no reverb or chorus, no tail of a
  neighbouring note), the detune rendered into the note, then one spectral pass of the
  recording chain (:func:`.variation.record`: room, tilt and EQ, noise at the drawn SNR;
  then the peak set to the drawn gain, so nothing clips).
- **1** (about 8 minutes): notes rendered in batches by midirenderer (with the SoundFont's
  reverb and chorus sends, whose tails run from one note's slot into the next), then
  :func:`.variation.vary` (detune by resampling, room, colour, peak gain, noise, clipping).
  Byte for byte what audiocil built before version 2 (``gm100-5226d99d`` for the defaults);
  the figures measured before version 2 were measured on it.

The two versions draw the same kinds of variation from the same ranges, but not the same
values (version 2 draws in another order), and may keep different presets (the probes are
rendered by each version's engine), so a result on one is not a result on the other.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from audiocil.data.catalog import AudioDataset
from audiocil.data.embedded import cached_build, read_manifest, write_wav
from audiocil.data.embedded import soundfont as S
from audiocil.data.embedded.variation import Variation, draw, record, vary
from audiocil.progress import Progress

NAME = "gm100"
#: The default dataset version (module notes); 1 stays buildable byte for byte.
FORMAT_VERSION = 2
VERSIONS = (1, 2)
SAMPLE_RATE = 16000
CLIP_SECONDS = 4.0
HOLD_SECONDS = 3.0
VELOCITIES = (25, 50, 75, 100, 127)
PREFIX = "nsynth-100-fs"
SPLIT_DIRS = {"train": "nsynth-train", "val": "nsynth-valid", "test": "nsynth-test"}
CSV_HEADER = ("filename", "instrument", "instrument_family", "instrument_source",
              "audio_source")
QUALITIES = ("bright", "dark", "distortion", "fast_decay", "long_release", "multiphonic",
             "nonlinear_env", "percussive", "reverb", "tempo-synced")
SILENCE_DB = -90.0
DUPLICATE_DB = 1.5


def _settings(seed: int, sf_path: Path, n_classes: int, notes_per_split: tuple[int, int, int],
              programs: list[int], variation: Variation, version: int) -> dict:
    return {
        "format_version": int(version),
        "seed": int(seed),
        "soundfont": sf_path.name,
        "soundfont_sha256": S.file_sha256(sf_path),
        "n_classes": int(n_classes),
        "notes_per_split": list(notes_per_split),
        "candidate_programs": list(programs),
        "velocities": list(VELOCITIES),
        "sample_rate": SAMPLE_RATE,
        "clip_seconds": CLIP_SECONDS,
        "hold_seconds": HOLD_SECONDS,
        "silence_db": SILENCE_DB,
        "duplicate_db": DUPLICATE_DB,
        "variation": variation.asdict(),
    }


def playable_keys(program: int, audible: list[int], n_pitches: int) -> list[int] | None:
    """The keys a class is played at: the audible keys of its nominal range, widened by
    the nearest audible keys outside it when fewer than ``n_pitches``; None if impossible."""
    lo, hi = S.pitch_range(program)
    keys = [k for k in audible if lo <= k <= hi]
    outside = sorted((k for k in audible if not lo <= k <= hi),
                     key=lambda k: (lo - k if k < lo else k - hi, k))
    keys += outside[:max(0, n_pitches - len(keys))]
    return sorted(keys) if len(keys) >= n_pitches else None


def note_pool(seed: int, program: int, keys: list[int]) -> list[tuple[int, int]]:
    """Every (pitch, velocity) of ``keys`` x :data:`VELOCITIES`, in a seeded random order."""
    pool = [(p, v) for p in keys for v in VELOCITIES]
    order = np.random.default_rng([int(seed), 100, int(program)]).permutation(len(pool))
    return [pool[i] for i in order]


def _envelope_qualities(clean: np.ndarray, drawn: dict) -> list[int]:
    """Heuristic NSynth qualities from the clean note's loudness envelope (others are 0).

    fast_decay: 20 dB down before the note-off; long_release: still within 40 dB of the
    peak in the last 250 ms; percussive: the peak comes in the first 50 ms and the level
    half a second later is 10 dB lower; reverb: the added room's DRR is below 3 dB.
    """
    hop = SAMPLE_RATE // 100
    frames = clean[: len(clean) // hop * hop].reshape(-1, hop)
    env = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-20)
    peak_i = int(np.argmax(env))
    peak = env[peak_i]
    off = int(HOLD_SECONDS * 100)
    q = dict.fromkeys(QUALITIES, 0)
    q["fast_decay"] = int(env[off - 25:off].mean() < peak - 20)
    q["long_release"] = int(env[-25:].mean() > peak - 40)
    q["percussive"] = int(peak_i < 5 and env[peak_i + 50] < peak - 10)
    q["reverb"] = int(drawn.get("drr_db", 99) < 3 and drawn.get("rt60_ms", 0) > 0)
    return [q[k] for k in QUALITIES]


def _render_instrument(task: dict) -> dict:
    """Worker: render, check, vary and write all notes of one program.

    Version 1 renders clean notes with midirenderer, then :func:`vary` draws and applies
    the recording chain; version 2 draws the chain first (:func:`draw`: its detune is
    rendered into the note by the sampler), then :func:`record` applies it.
    """
    t0, c0 = time.monotonic(), time.process_time()
    program, seed, version = task["program"], task["seed"], task["format_version"]
    need = sum(task["notes_per_split"])
    pool = task["pool"]
    params = Variation.from_settings(task["variation"])
    inst = S.instrument_str(program)
    audible: list[tuple] = []
    silent: list[list[int]] = []
    cursor = 0
    while len(audible) < need and cursor < len(pool):
        take = pool[cursor:cursor + (need - len(audible))]
        cursor += len(take)
        events = [S.NoteEvent(p, v, HOLD_SECONDS, CLIP_SECONDS) for p, v in take]
        if version == 1:
            chains: list = [None] * len(take)
            clips = S.render_events(task["soundfont"], program, events, sample_rate=SAMPLE_RATE)
        else:
            rngs = [np.random.default_rng([int(seed), 101, program, p, v]) for p, v in take]
            chains = [(rng, draw(params, rng)) for rng in rngs]
            clips = S.render_events(task["soundfont"], program, events, sample_rate=SAMPLE_RATE,
                                    engine="sampler",
                                    detune_cents=[d["detune_cents"] for _, d in chains])
        for pv, clip, chain in zip(take, clips, chains, strict=True):
            if S.rms_db(clip) < SILENCE_DB:
                silent.append(list(pv))
            else:
                audible.append((pv, clip, chain))
    if len(audible) < need:
        return {"program": program, "error": f"{inst}: only {len(audible)} audible notes of "
                f"{len(pool)} (pitch, velocity) pairs, {need} needed",
                "silent_notes": silent}
    out_dir = Path(task["out_dir"])
    records: dict[str, list[dict]] = {s: [] for s in SPLIT_DIRS}
    bounds = np.cumsum([0, *task["notes_per_split"]])
    for k, split in enumerate(SPLIT_DIRS):
        for (pitch, velocity), clean, chain in audible[bounds[k]:bounds[k + 1]]:
            if chain is None:
                rng = np.random.default_rng([int(seed), 101, program, pitch, velocity])
                wave, drawn = vary(clean, SAMPLE_RATE, params, rng)
            else:
                rng, drawn = chain
                wave = record(clean, SAMPLE_RATE, params, drawn, rng)
            note_str = f"{inst}-{pitch:03d}-{velocity:03d}"
            path = out_dir / SPLIT_DIRS[split] / "audio" / f"{note_str}.wav"
            if version == 1:
                sf.write(path, wave, SAMPLE_RATE, subtype="PCM_16")
            else:
                write_wav(path, wave, SAMPLE_RATE)
            records[split].append({"note_str": note_str, "pitch": pitch, "velocity": velocity,
                                   "qualities": _envelope_qualities(clean, drawn)})
    return {"program": program, "records": records, "silent_notes": silent,
            "seconds": time.monotonic() - t0, "cpu_seconds": time.process_time() - c0}


def _example(program: int, rec: dict) -> dict:
    family, source = S.gm_family(program), S.gm_source(program)
    return {
        "note": program * 100000 + rec["pitch"] * 1000 + rec["velocity"],
        "note_str": rec["note_str"],
        "instrument": program,
        "instrument_str": S.instrument_str(program),
        "instrument_family": S.FAMILIES.index(family),
        "instrument_family_str": family,
        "instrument_source": S.SOURCES.index(source),
        "instrument_source_str": source,
        "pitch": rec["pitch"],
        "velocity": rec["velocity"],
        "sample_rate": SAMPLE_RATE,
        "qualities": rec["qualities"],
        "qualities_str": [q for q, on in zip(QUALITIES, rec["qualities"], strict=True) if on],
    }


def _normalise_split_sizes(notes_per_split) -> tuple[int, int, int]:
    sizes = tuple(int(n) for n in notes_per_split)
    if len(sizes) != 3 or min(sizes) < 1:
        raise ValueError(f"notes_per_split must be 3 positive counts (train, val, test), got "
                         f"{notes_per_split}")
    return sizes


def build_gm100(root: str | os.PathLike, seed: int = 0, soundfont: str | None = None, *,
                n_classes: int = 100, notes_per_split=(100, 20, 50),
                programs: list[int] | None = None, workers: int | None = None,
                verbose: bool = True, format_version: int = FORMAT_VERSION,
                **variation) -> Path:
    """Build gm100 under ``root`` (once) and return its directory ``root/gm100-<hash8>``.

    Args:
        root: the cache parent directory (``paths.data_dir``).
        seed: drives the split of (pitch, velocity) pairs and the recording variation.
        soundfont: a General-MIDI ``.sf2``; default ``TimGM6mb.sf2`` from pretty_midi.
        n_classes: how many programs to keep (the most distinct; default 100).
        notes_per_split: (train, val, test) notes per class.
        programs: candidate GM programs (default all 128).
        workers: render processes (default: up to 2).
        verbose: print progress (a bar on a terminal, else a line per 10 %).
        format_version: 2 (default) or 1 (module notes).
        **variation: :class:`~audiocil.data.embedded.variation.Variation` fields.

    Same arguments -> same directory and byte-identical content (``manifest.json`` holds
    the content hash). Different arguments -> another directory.
    """
    params = Variation.from_kwargs(**variation)
    if format_version not in VERSIONS:
        raise ValueError(f"gm100 format_version must be one of {VERSIONS}, got {format_version}")
    engine = "midirenderer" if format_version == 1 else "sampler"
    sizes = _normalise_split_sizes(notes_per_split)
    sf_path = S.resolve_soundfont(soundfont)
    cands = sorted({int(p) for p in (range(128) if programs is None else programs)})
    if any(not 0 <= p < 128 for p in cands):
        raise ValueError(f"programs must be GM programs 0..127, got {cands}")
    if n_classes > len(cands):
        raise ValueError(f"n_classes={n_classes} but only {len(cands)} candidate programs")
    # pitches per class: enough (pitch, velocity) pairs for the splits plus 5 % spare for
    # notes that turn out silent at a low velocity
    n_pitches = -(-int(np.ceil(sum(sizes) * 1.05)) // len(VELOCITIES))
    workers = min(2, os.cpu_count() or 1) if workers is None else max(1, int(workers))
    log = (lambda msg: print(msg, flush=True)) if verbose else (lambda msg: None)
    settings = _settings(seed, sf_path, n_classes, sizes, cands, params, format_version)

    def build(tmp: Path) -> dict:
        log(f"[gm100] building version {format_version}: {n_classes} classes x {sum(sizes)} "
            f"notes from {sf_path.name} with {workers} worker(s) into {tmp.parent} (one-time, "
            f"{'a minute or two' if format_version > 1 else 'several minutes'})")
        t0 = time.monotonic()
        if engine == "sampler":
            from audiocil.data.embedded import sampler

            sampler.warm_up()  # compile before the workers fork (they inherit it)
        probes = S.probe_presets(sf_path, cands, workers=workers, scan=True, engine=engine)
        keys, narrow = {}, []
        for pr in probes:
            k = playable_keys(pr.key, pr.audible_keys, n_pitches)
            if k is None and pr.level_db >= SILENCE_DB:
                narrow.append({"key": pr.key, "name": S.program_name(pr.key),
                               "level_db": round(pr.level_db, 2),
                               "reason": "too_few_audible_keys",
                               "detail": f"{len(pr.audible_keys)} audible keys around its range"
                                         f", {n_pitches} needed"})
            keys[pr.key] = k
        kept, dropped = S.select_distinct([pr for pr in probes if keys[pr.key] is not None
                                           or pr.level_db < SILENCE_DB], n_classes,
                                          silence_db=SILENCE_DB, duplicate_db=DUPLICATE_DB,
                                          what="GM program", name=S.program_name)
        dropped = sorted(dropped + narrow, key=lambda d: d["key"])
        t_probe = time.monotonic() - t0
        n_dup = sum(d["reason"] != "least_distinct" for d in dropped)
        log(f"[gm100] probed {len(cands)} presets in {t_probe:.0f} s: kept {len(kept)}, "
            f"dropped {n_dup} silent/duplicate and {len(dropped) - n_dup} least distinct")
        for d in SPLIT_DIRS.values():
            (tmp / d / "audio").mkdir(parents=True)
        tasks = [{"program": p, "seed": int(seed), "pool": note_pool(seed, p, keys[p]),
                  "notes_per_split": sizes, "variation": params.asdict(),
                  "soundfont": str(sf_path), "out_dir": str(tmp),
                  "format_version": format_version} for p in kept]
        results = []
        with Progress(len(kept), "[gm100] rendering", "instrument", emit=log) as bar:
            for res in S.parallel_map(_render_instrument, tasks, workers):
                if "error" in res:
                    raise S.NotEnoughPresets("gm100: " + res["error"] + "; use fewer notes per "
                                             "split or another SoundFont")
                results.append(res)
                bar.update(1, note=S.program_name(res["program"]))
        silent = {S.program_name(r["program"]): len(r["silent_notes"]) for r in results
                  if r["silent_notes"]}
        if silent:
            log(f"[gm100] silent notes replaced: {silent}")
        vocab = {S.instrument_str(p): k for k, p in enumerate(kept)}
        for split, d in SPLIT_DIRS.items():
            examples = {}
            for res in results:
                for rec in res["records"][split]:
                    examples[rec["note_str"]] = _example(res["program"], rec)
            examples = dict(sorted(examples.items()))
            with open(tmp / d / "examples.json", "w", encoding="utf-8") as fh:
                json.dump(examples, fh, indent=1)
            with open(tmp / f"{PREFIX}_{split}.csv", "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh, lineterminator="\n")
                w.writerow(CSV_HEADER)
                for name, ex in examples.items():
                    w.writerow([name, ex["instrument_str"], ex["instrument_family_str"],
                                ex["instrument_source_str"], d])
        with open(tmp / f"{PREFIX}_vocab.json", "w", encoding="utf-8") as fh:
            json.dump(vocab, fh, indent=1)
        return {
            "soundfont_path": str(sf_path),
            "workers": workers,
            "probe_seconds": round(t_probe, 1),
            "render_cpu_seconds": round(sum(r["cpu_seconds"] for r in results), 1),
            "classes": [{"label": k, "instrument_str": S.instrument_str(p), "program": p,
                         "gm_name": S.program_name(p), "family": S.gm_family(p),
                         "source": S.gm_source(p), "nominal_range": list(S.pitch_range(p)),
                         "pitches": keys[p]}
                        for k, p in enumerate(kept)],
            "dropped_presets": dropped,
            "silent_notes_replaced": {S.instrument_str(r["program"]): r["silent_notes"]
                                      for r in results if r["silent_notes"]},
            "split_sizes": {s: sizes[k] * len(kept) for k, s in enumerate(SPLIT_DIRS)},
        }

    return cached_build(root, NAME, settings, build, log)


def load_gm100(data_dir: str | os.PathLike, seed: int = 0, soundfont: str | None = None,
               sample_rate: int = 16000, clip_seconds: float = 4.0, on_bad_file: str = "error",
               n_classes: int = 100, notes_per_split=(100, 20, 50),
               programs: list[int] | None = None, workers: int | None = None,
               verbose: bool = True, format_version: int = FORMAT_VERSION,
               **variation) -> AudioDataset:
    """The gm100 dataset, built into ``data_dir`` on first use, read by the NSynth loader.

    ``sample_rate`` and ``clip_seconds`` are what the clips are served at (the files are
    16 kHz, 4 s); the other arguments are those of :func:`build_gm100`.
    """
    from audiocil.data.loaders.nsynth import load_nsynth

    root = build_gm100(data_dir, seed=seed, soundfont=soundfont, n_classes=n_classes,
                       notes_per_split=notes_per_split, programs=programs, workers=workers,
                       verbose=verbose, format_version=format_version, **variation)
    ds = load_nsynth(str(root), metadata_prefix=PREFIX, sample_rate=sample_rate,
                     clip_seconds=clip_seconds, on_bad_file=on_bad_file, name=NAME)
    man = read_manifest(root)
    info = dict(ds.info)
    info.update(embedded_root=str(root), content_sha256=man["content_sha256"],
                settings_hash=man["settings_hash"],
                dropped_presets=[f"{d['name']} ({d['reason']})" for d in man["dropped_presets"]])
    return dataclasses.replace(ds, info=info)
