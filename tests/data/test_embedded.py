"""The embedded datasets gm100 and gmmix50: tiny builds rendered from the real SoundFont."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import audiocil
from audiocil.data.embedded import (
    _wait_for_build,
    cached_build,
    content_hash,
    read_manifest,
    settings_hash,
)
from audiocil.data.embedded import soundfont as S
from audiocil.data.embedded.gm100 import (
    CSV_HEADER,
    PREFIX,
    SPLIT_DIRS,
    build_gm100,
    load_gm100,
)
from audiocil.data.embedded.gmmix50 import build_gmmix50, load_gmmix50
from audiocil.data.embedded.variation import Variation, detune, draw, record, vary

TINY = dict(n_classes=4, notes_per_split=(8, 3, 4), programs=[0, 24, 40, 56, 73],
            workers=1, verbose=False)
MICRO = dict(n_classes=2, notes_per_split=(3, 1, 1), programs=[0, 40], workers=1,
             verbose=False)
NSYNTH_KEYS = {"note", "note_str", "instrument", "instrument_str", "instrument_family",
               "instrument_family_str", "instrument_source", "instrument_source_str", "pitch",
               "velocity", "sample_rate", "qualities", "qualities_str"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_gm100(tmp_path_factory.mktemp("gm100"), seed=0, **TINY)


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


# --- gm100 layout and schema ------------------------------------------------------------

def test_gm100_nsynth_layout_and_csv_schema(tiny):
    vocab = json.loads((tiny / f"{PREFIX}_vocab.json").read_text())
    assert sorted(vocab.values()) == list(range(4))
    for name in vocab:
        assert re.fullmatch(r"[a-z_]+_(acoustic|electronic|synthetic)_\d{3}", name)
    for split, (csv_split, folder) in enumerate(zip(("train", "val", "test"),
                                                    SPLIT_DIRS.values(), strict=True)):
        header, rows = _read_csv(tiny / f"{PREFIX}_{csv_split}.csv")
        assert tuple(header) == CSV_HEADER
        assert len(rows) == 4 * TINY["notes_per_split"][split]
        examples = json.loads((tiny / folder / "examples.json").read_text())
        assert set(examples) == {r["filename"] for r in rows}
        for row in rows:
            assert row["audio_source"] == folder
            assert row["instrument"] in vocab
            assert re.fullmatch(re.escape(row["instrument"]) + r"-\d{3}-\d{3}", row["filename"])
            ex = examples[row["filename"]]
            assert set(ex) == NSYNTH_KEYS
            assert ex["instrument_str"] == row["instrument"]
            assert ex["instrument_family_str"] == row["instrument_family"]
            assert ex["instrument_source_str"] == row["instrument_source"]
            assert ex["note_str"] == f"{row['instrument']}-{ex['pitch']:03d}-{ex['velocity']:03d}"
            assert len(ex["qualities"]) == 10
            wav = tiny / folder / "audio" / f"{row['filename']}.wav"
            info = sf.info(str(wav))
            assert (info.samplerate, info.frames, info.channels) == (16000, 64000, 1)
            assert info.subtype == "PCM_16"


def test_gm100_splits_have_disjoint_pitch_velocity_pairs(tiny):
    pitches = {c["instrument_str"]: set(c["pitches"]) for c in read_manifest(tiny)["classes"]}
    pairs: dict[str, dict[str, set]] = {}
    for split, folder in SPLIT_DIRS.items():
        for ex in json.loads((tiny / folder / "examples.json").read_text()).values():
            pairs.setdefault(ex["instrument_str"], {}).setdefault(split, set()).add(
                (ex["pitch"], ex["velocity"]))
    assert len(pairs) == 4
    for inst, by_split in pairs.items():
        sizes = [len(by_split[s]) for s in SPLIT_DIRS]
        assert sizes == list(TINY["notes_per_split"]), inst
        assert not by_split["train"] & by_split["val"]
        assert not by_split["train"] & by_split["test"]
        assert not by_split["val"] & by_split["test"]
        assert all(p in pitches[inst] for s in by_split.values() for p, _ in s)


def test_gm100_manifest_records_settings_and_dropped_presets(tiny):
    man = read_manifest(tiny)
    assert tiny.name == f"gm100-{man['settings_hash']}"
    assert man["content_sha256"] == content_hash(tiny)
    assert len(man["classes"]) == 4
    dropped = man["dropped_presets"]
    assert len(dropped) == 1 and dropped[0]["reason"] in ("silent", "duplicate", "least_distinct")
    kept = {c["program"] for c in man["classes"]}
    assert kept | {d["key"] for d in dropped} == set(TINY["programs"])


def test_load_gm100_goes_through_the_nsynth_loader(tiny):
    ds = load_gm100(tiny.parent, seed=0, **TINY)  # already built: only read
    assert ds.name == "gm100" and ds.num_classes == 4 and not ds.multilabel
    assert ds.info["metadata_prefix"] == PREFIX and ds.info["embedded_root"] == str(tiny)
    assert {s: len(t) for s, t in ds.splits.items()} == {"train": 32, "val": 12, "test": 16}
    for table in ds.splits.values():
        assert np.bincount(table.targets, minlength=4).min() > 0
        assert all(os.path.isfile(p) for p in table.paths)


def test_gm100_is_learnable(tiny):
    """A linear classifier on mean/std log-mel reaches twice chance (25 %) on 4 classes
    (16 test notes: one note is 6 points; version 1 scored 10/16, version 2 8/16)."""
    ds = load_gm100(tiny.parent, seed=0, **TINY)
    from audiocil.data.frontend import LogMel

    mel = LogMel(16000, 1024, 512, 64, f_max=8000.0)

    def feats(table):
        w = torch.from_numpy(np.stack([sf.read(p, dtype="float32")[0] for p in table.paths]))
        with torch.no_grad():
            m = mel(w).squeeze(1)
        return torch.cat([m.mean(-1), m.std(-1)], dim=1)

    xtr, xte = feats(ds.splits["train"]), feats(ds.splits["test"])
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-5
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    ytr = torch.from_numpy(ds.splits["train"].targets)
    yte = torch.from_numpy(ds.splits["test"].targets)
    torch.manual_seed(0)
    lin = torch.nn.Linear(xtr.shape[1], 4)
    opt = torch.optim.Adam(lin.parameters(), lr=0.05, weight_decay=1e-3)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(lin(xtr), ytr).backward()
        opt.step()
    acc = float((lin(xte).argmax(1) == yte).float().mean())
    assert acc >= 0.5, acc


# --- determinism ------------------------------------------------------------------------

def test_same_seed_same_content_hash_other_seed_differs(tmp_path):
    a = build_gm100(tmp_path / "a", seed=0, **MICRO)
    b = build_gm100(tmp_path / "b", seed=0, **MICRO)
    c = build_gm100(tmp_path / "c", seed=1, **MICRO)
    ha, hb, hc = (read_manifest(p)["content_sha256"] for p in (a, b, c))
    assert a.name == b.name != c.name
    assert ha == hb == content_hash(b)
    assert hc != ha


def test_settings_change_the_directory_and_are_validated(tmp_path):
    a = build_gm100(tmp_path, seed=0, **MICRO)
    b = build_gm100(tmp_path, seed=0, snr_db_min=20.0, **MICRO)
    assert a != b and a.parent == b.parent
    assert read_manifest(b)["settings"]["variation"]["snr_db_min"] == 20.0
    with pytest.raises(TypeError, match="unknown variation parameter"):
        build_gm100(tmp_path, seed=0, snr_db=3.0, **MICRO)


# --- versions ---------------------------------------------------------------------------------

# What the code before version 2 existed (commit 63d2d05) built for these settings: version 1
# must keep building exactly these bytes (the figures measured on it stay reproducible).
V1_MICRO = {"gm100": ("gm100-8386da7e", "ba9f75cc00c61b66ba5ff043a8b37d6a345cd9d7b08136a2a974368b44015d1a"),
            "gmmix50": ("gmmix50-73c44528",
                        "8eb4ab17cc8ed810b8097fa3255c313a412309dfb32e48224f6671257efe44c1")}


@pytest.mark.parametrize("name", ["gm100", "gmmix50"])
def test_version_1_still_builds_the_same_bytes(name, tmp_path):
    """(The pinned hashes depend on midirenderer, libsndfile and soxr giving the same
    samples; on another platform compare with a build by commit 63d2d05 instead.)"""
    if name == "gm100":
        root = build_gm100(tmp_path, seed=0, format_version=1, **MICRO)
    else:
        root = build_gmmix50(tmp_path, seed=0, format_version=1, **MIX)
    assert (root.name, read_manifest(root)["content_sha256"]) == V1_MICRO[name]


def test_version_1_defaults_name_the_existing_build():
    """gm100 built before version 2 lives in gm100-5226d99d: format_version=1 finds it."""
    from audiocil.data.embedded import gm100 as G

    sf_path = S.resolve_soundfont(None)
    v1 = G._settings(0, sf_path, 100, (100, 20, 50), list(range(128)), Variation(), 1)
    v2 = G._settings(0, sf_path, 100, (100, 20, 50), list(range(128)), Variation(), 2)
    assert settings_hash(v1)[:8] == "5226d99d" and settings_hash(v2)[:8] != "5226d99d"
    with pytest.raises(ValueError, match="format_version"):
        build_gm100("/nonexistent", format_version=3)


def test_version_2_changes_the_content_not_the_layout(tmp_path, tiny):
    v1 = build_gm100(tmp_path, seed=0, format_version=1, **TINY)
    assert v1.name != tiny.name
    assert read_manifest(tiny)["settings"]["format_version"] == 2
    assert read_manifest(v1)["content_sha256"] != read_manifest(tiny)["content_sha256"]
    files = sorted(p.relative_to(tiny).parts[0] for p in tiny.iterdir())
    assert files == sorted(p.relative_to(v1).parts[0] for p in v1.iterdir())


# --- measured preset selection ------------------------------------------------------------

def test_silent_and_duplicate_presets_are_detected_by_measurement():
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 4) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-t)).astype(np.float32)
    noise = (0.1 * rng.standard_normal(len(t)) * np.exp(-3 * t)).astype(np.float32)
    clips = {0: [tone] * 5, 1: [np.zeros_like(tone)] * 5, 2: [noise] * 5,
             3: [tone * 0.25] * 5}  # 3 = program 0 at another level: a duplicate
    probes = [S.PresetProbe(k, False, max(S.rms_db(c) for c in v), S.fingerprint(v))
              for k, v in clips.items()]
    kept, dropped = S.select_distinct(probes, 2)
    assert kept == [0, 2]
    reasons = {d["key"]: d["reason"] for d in dropped}
    assert reasons == {1: "silent", 3: "duplicate"}
    assert next(d for d in dropped if d["key"] == 3)["of"] == 0
    with pytest.raises(S.NotEnoughPresets, match="only 2 distinct"):
        S.select_distinct(probes, 3)


def test_least_distinct_are_dropped_to_reach_the_count_and_protected_stay():
    fps = {0: np.zeros(8), 1: np.full(8, 10.0), 2: np.full(8, 12.0), 3: np.full(8, 30.0)}
    probes = [S.PresetProbe(k, False, -30.0, f) for k, f in fps.items()]
    kept, dropped = S.select_distinct(probes, 3)
    assert kept == [0, 1, 3] and dropped[0]["key"] == 2
    kept, _ = S.select_distinct(probes, 3, protected={2})
    assert kept == [0, 2, 3]


def test_a_real_preset_renders_audibly_and_deterministically():
    sf_path = S.default_soundfont()
    ev = [S.NoteEvent(60, 100, 0.5, 1.0), S.NoteEvent(72, 50, 0.5, 1.0)]
    a = S.render_events(sf_path, 0, ev)
    b = S.render_events(sf_path, 0, ev)
    assert [len(x) for x in a] == [16000, 16000]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert min(S.rms_db(x) for x in a) > -70


# --- variation ----------------------------------------------------------------------------

def test_variation_is_seeded_bounded_and_does_what_it_says():
    t = np.arange(16000 * 2) / 16000
    clean = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    params = Variation()
    a, da = vary(clean, 16000, params, np.random.default_rng(1))
    b, _ = vary(clean, 16000, params, np.random.default_rng(1))
    c, _ = vary(clean, 16000, params, np.random.default_rng(2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape == clean.shape and np.abs(a).max() <= 1.0
    assert params.detune_cents >= abs(da["detune_cents"])
    off, _ = vary(clean, 16000, Variation.off(), np.random.default_rng(1))
    assert np.allclose(off, clean / 0.5 * 10 ** (-1 / 20), atol=1e-4)
    up = detune(clean, 100.0)  # one semitone up
    spec = np.abs(np.fft.rfft(up[:16000]))
    assert abs(np.argmax(spec) - 440 * 2 ** (1 / 12)) < 2
    with pytest.raises(ValueError):
        Variation(snr_db_min=30.0, snr_db_max=10.0)


def test_a_chain_without_eq_keeps_its_settings_and_draws():
    """eq_db = 0 leaves the settings (the dataset hash) and the random draws as they were
    before the EQ existed: the clip equals one made by the chain's other stages alone."""
    plain = Variation(eq_db=0.0)
    assert "eq_db" not in plain.asdict() and Variation().asdict()["eq_db"] == Variation().eq_db
    for v in (plain, Variation(eq_db=6.0)):
        assert Variation.from_settings(v.asdict()) == v
    t = np.arange(16000) / 16000
    clean = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    a, drawn = vary(clean, 16000, plain, np.random.default_rng(3))
    assert drawn["eq_bands"] == []
    b, _ = vary(clean, 16000, Variation(eq_db=6.0), np.random.default_rng(3))
    assert not np.array_equal(a, b)


def test_colouring_tilts_and_boosts_the_right_frequencies():
    from audiocil.data.embedded.variation import colour

    rng = np.random.default_rng(0)
    white = rng.standard_normal(16000 * 4).astype(np.float32)

    def band_db(x, lo, hi):
        spec = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(len(x), 1 / 16000)
        return 10 * np.log10(spec[(f >= lo) & (f < hi)].mean())

    tilted = colour(white, 16000, 3.0)  # +3 dB/octave: 4 kHz is 6 dB up, 250 Hz 6 dB down
    assert band_db(tilted, 3800, 4200) - band_db(white, 3800, 4200) == pytest.approx(6, abs=0.5)
    assert band_db(tilted, 240, 260) - band_db(white, 240, 260) == pytest.approx(-6, abs=0.5)
    peaked = colour(white, 16000, 0.0, [(2000.0, 0.5, 9.0)])
    assert band_db(peaked, 1950, 2050) - band_db(white, 1950, 2050) == pytest.approx(9, abs=0.5)
    assert band_db(peaked, 200, 300) - band_db(white, 200, 300) == pytest.approx(0, abs=0.3)


def test_version_2_chain_is_seeded_and_keeps_its_promises():
    """record(): peak at gain_db, noise at the drawn SNR, a pass-through when all is off."""
    t = np.arange(16000 * 4) / 16000
    clean = (0.5 * np.sin(2 * np.pi * 440 * t) * np.minimum(1, 4 - t)).astype(np.float32)
    params = Variation()
    runs = []
    for seed in (1, 1, 2):
        rng = np.random.default_rng(seed)
        d = draw(params, rng)
        runs.append((record(clean, 16000, params, d, rng), d))
    (a, da), (b, _), (c, _) = runs
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.shape == clean.shape
    assert np.abs(a).max() == pytest.approx(10 ** (da["gain_db"] / 20), rel=1e-5)
    assert abs(da["detune_cents"]) <= params.detune_cents and len(da["eq_bands"]) == 3
    # the added noise sits at the drawn SNR (against the clean clip's power)
    quiet = Variation(snr_db_min=5.0, snr_db_max=5.0, room_rt60_ms_max=0.0, room_rt60_ms_min=0.0,
                      tilt_db_per_octave=0.0, eq_db=0.0)
    d = draw(quiet, np.random.default_rng(3))
    noisy = record(clean, 16000, quiet, d, np.random.default_rng(4))
    scale = np.dot(noisy, clean) / np.dot(clean, clean)
    snr = 10 * np.log10(np.mean((scale * clean) ** 2) / np.mean((noisy - scale * clean) ** 2))
    assert snr == pytest.approx(5.0, abs=0.3)
    off = Variation.off()
    out = record(clean, 16000, off, draw(off, np.random.default_rng(0)), np.random.default_rng(0))
    assert np.allclose(out, clean / 0.5 * 10 ** (-1 / 20), atol=1e-5)


def test_version_2_colouring_matches_the_version_1_gain_curve():
    white = np.random.default_rng(0).standard_normal(16000 * 4).astype(np.float32)
    params = Variation(snr_db_min=200.0, snr_db_max=200.0, room_rt60_ms_min=0.0,
                       room_rt60_ms_max=0.0)
    d = {"detune_cents": 0.0, "rt60_ms": 0.0, "drr_db": 0.0, "tilt_db_per_octave": 3.0,
         "gain_db": -1.0, "snr_db": 200.0, "noise_slope": 0.0, "eq_bands": [(2000.0, 0.5, 9.0)]}
    from audiocil.data.embedded.variation import colour, set_peak

    v1 = set_peak(colour(white, 16000, 3.0, [(2000.0, 0.5, 9.0)]), -1.0)
    v2 = record(white, 16000, params, d, np.random.default_rng(0))
    assert np.allclose(v1, v2, atol=1e-4)


def test_write_wav_is_a_16_bit_wav_soundfile_reads_back(tmp_path):
    from audiocil.data.embedded import write_wav

    x = np.clip(np.random.default_rng(0).standard_normal(16003) * 0.3, -1, 0.999).astype(np.float32)
    write_wav(tmp_path / "a.wav", x, 16000)
    info = sf.info(str(tmp_path / "a.wav"))
    assert (info.samplerate, info.frames, info.channels, info.subtype) == (16000, 16003, 1, "PCM_16")
    y, _ = sf.read(str(tmp_path / "a.wav"), dtype="float32")
    assert np.abs(y - x).max() <= 0.5 / 32768 + 1e-9
    assert (tmp_path / "a.wav").stat().st_size == 44 + 2 * 16003


def test_a_rank_other_than_0_waits_for_the_build(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    for var in ("RANK", "NODE_RANK", "SLURM_NTASKS", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    key = settings_hash({"x": 1})[:8]

    def rank0():
        time.sleep(0.3)
        done = tmp_path / f"toy-{key}"
        done.mkdir()
        (done / "manifest.json").write_text("{}")

    threading.Thread(target=rank0).start()
    monkeypatch.setattr("audiocil.data.embedded._wait_for_build",
                        partial(_wait_for_build, poll_seconds=0.05))

    def must_not_build(tmp):
        raise AssertionError("a rank other than 0 built")

    out = cached_build(tmp_path, "toy", {"x": 1}, must_not_build, log=lambda m: None)
    assert out == tmp_path / f"toy-{key}"
    with pytest.raises(TimeoutError, match="global rank 0"):
        _wait_for_build(tmp_path / "never", "toy", lambda m: None, wait_seconds=0.1,
                        poll_seconds=0.02)


# --- cache, lock, atomicity ---------------------------------------------------------------

def test_failed_build_leaves_nothing_and_stale_tmp_is_cleaned(tmp_path):
    def broken(tmp: Path) -> dict:
        (tmp / "half.wav").write_bytes(b"RIFF")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        cached_build(tmp_path, "toy", {"x": 1}, broken, log=lambda m: None)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []
    # a SIGKILLed build leaves its temporary directory: the next build removes it
    stale = tmp_path / f".toy-{settings_hash({'x': 1})[:8]}.tmp-1"
    stale.mkdir()
    out = cached_build(tmp_path, "toy", {"x": 1}, lambda tmp: (tmp / "a").write_text("a") and {},
                       log=lambda m: None)
    assert not stale.exists() and (out / "a").read_text() == "a"
    assert read_manifest(out)["content_sha256"] == content_hash(out)


def test_concurrent_builds_make_one_intact_dataset(tmp_path):
    src = str(Path(audiocil.__file__).resolve().parents[1])
    code = textwrap.dedent(f"""
        from audiocil.data.embedded.gm100 import build_gm100
        p = build_gm100({str(tmp_path)!r}, seed=0, n_classes=2, notes_per_split=(3, 1, 1),
                        programs=[0, 40], workers=1)
        print("RESULT", p)
    """)
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    results = {line.split(" ", 1)[1] for o in outs for line in o.splitlines()
               if line.startswith("RESULT")}
    assert len(results) == 1
    root = Path(results.pop())
    assert sum(o.count("[gm100] building") for o in outs) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [root.name]
    assert not list(tmp_path.glob(".*.tmp-*"))
    assert read_manifest(root)["content_sha256"] == content_hash(root)


# --- gmmix50 ------------------------------------------------------------------------------

MIX = dict(n_drum_classes=2, n_program_classes=2, clips_per_split=(12, 4, 4),
           drum_keys=[36, 42, 49], programs=[0, 40], workers=1, verbose=False)


@pytest.fixture(scope="module")
def tiny_mix(tmp_path_factory):
    return load_gmmix50(tmp_path_factory.mktemp("gmmix50"), seed=0, **MIX)


def test_gmmix50_multilabel_layout_and_targets(tiny_mix):
    ds = tiny_mix
    root = Path(ds.info["embedded_root"])
    assert ds.multilabel and ds.num_classes == 4 and ds.clip_seconds == 5.0
    vocab = json.loads((root / "gmmix50_vocab.json").read_text())
    assert [k for k, _ in sorted(vocab.items(), key=lambda kv: kv[1])] == ds.class_names
    kinds = ["drum" if n.startswith("drum_") else "program" for n in ds.class_names]
    assert kinds == ["drum", "program", "drum", "program"]
    for split, n in zip(("train", "val", "test"), MIX["clips_per_split"], strict=True):
        header, rows = _read_csv(root / f"gmmix50_{split}.csv")
        assert header == ["filename", "labels"] and len(rows) == n
        table = ds.splits[split]
        assert table.targets.shape == (n, 4) and table.targets.dtype == np.uint8
        assert 1 <= table.targets.sum(1).min() and table.targets.sum(1).max() <= 4
        for row, path, target in zip(rows, table.paths, table.targets, strict=True):
            assert path == str(root / "audio" / split / row["filename"])
            assert set(row["labels"].split(";")) == {ds.class_names[i] for i in
                                                     np.flatnonzero(target)}
            info = sf.info(path)
            assert (info.samplerate, info.frames) == (16000, 80000)
    man = read_manifest(root)
    assert man["content_sha256"] == content_hash(root)
    assert {d["kind"] for d in man["dropped_candidates"]} == {"drum"}


@pytest.mark.slow
def test_gmmix50_same_seed_same_hash(tmp_path, tiny_mix):
    again = load_gmmix50(tmp_path, seed=0, **MIX)
    assert again.info["content_sha256"] == tiny_mix.info["content_sha256"]


# --- full size (minutes) ------------------------------------------------------------------

@pytest.mark.slow
def test_full_gm100_has_100_classes_of_170_distinct_notes(tmp_path):
    ds = load_gm100(os.environ.get("AUDIOCIL_TEST_DATA", tmp_path), seed=0)
    assert ds.num_classes == 100
    for split, n in (("train", 100), ("val", 20), ("test", 50)):
        assert np.array_equal(np.bincount(ds.splits[split].targets), np.full(100, n))
    man = read_manifest(ds.info["embedded_root"])
    assert len(man["dropped_presets"]) == 28


@pytest.mark.slow
def test_full_gmmix50_has_enough_clips_per_class(tmp_path):
    ds = load_gmmix50(os.environ.get("AUDIOCIL_TEST_DATA", tmp_path), seed=0)
    assert ds.num_classes == 50
    assert ds.splits["train"].targets.sum(0).min() >= 60
    assert ds.splits["test"].targets.sum(0).min() >= 20


# --- Hydra configs ------------------------------------------------------------------------

def _compose(overrides: list[str]):
    from audiocil.config import compose

    return compose(overrides)


@pytest.mark.parametrize("name", ["gm100", "gmmix50"])
def test_dataset_yaml_matches_the_loader_defaults(name):
    import inspect

    from hydra.utils import get_method
    from omegaconf import OmegaConf

    from audiocil.data.embedded.gmmix50 import DEFAULT_VARIATION

    cfg = _compose([f"dataset={name}", "paths.root_dir=/nonexistent"])
    loader = OmegaConf.to_container(cfg.dataset.loader, resolve=True)
    fn = get_method(loader.pop("_target_"))
    params = inspect.signature(fn).parameters
    var_defaults = Variation().asdict() if name == "gm100" else DEFAULT_VARIATION
    for key, value in loader.items():
        if key in var_defaults:
            assert value == var_defaults[key], key
        elif key not in ("data_dir", "sample_rate"):
            default = params[key].default
            assert value == (list(default) if isinstance(default, tuple) else default), key
    assert set(var_defaults) <= set(loader)
    assert cfg.dataset.name == name and loader["sample_rate"] == cfg.dataset.frontend.sample_rate


def test_gm100_yaml_instantiates_a_dataset(tmp_path):
    from hydra.utils import instantiate

    cfg = _compose(["dataset=gm100", f"paths.data_dir={tmp_path}",
                    "dataset.loader.n_classes=2", "dataset.loader.notes_per_split=[3,1,1]",
                    "dataset.loader.workers=1", "+dataset.loader.programs=[0,40]"])
    ds = instantiate(cfg.dataset.loader)
    assert ds.name == "gm100" and ds.num_classes == 2 and len(ds.splits["train"]) == 6


def test_playable_keys_skip_silent_keys_and_widen_when_needed():
    from audiocil.data.embedded.gm100 import playable_keys

    lo, hi = S.pitch_range(73)
    audible = list(range(lo - 12, lo + 10))  # silent above lo + 9
    assert playable_keys(73, audible, 10) == list(range(lo, lo + 10))
    assert playable_keys(73, audible, 13) == list(range(lo - 3, lo + 10))
    assert playable_keys(73, audible, 40) is None


def test_render_workers_stop_under_a_runs_preemption_handler(tmp_path):
    """The embedded builders render in a process pool inside a run, whose preemption handler
    notes SIGTERM and goes on. The pool stops its workers with SIGTERM when it closes: they
    must not inherit the handler, or the build never returns after its last render (a fresh
    clone's `make run` hung there). Run in a child process with a timeout."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        from pathlib import Path
        from audiocil.engine import preemption
        from audiocil.data.embedded.soundfont import parallel_map
        with preemption.guard(Path({str(tmp_path)!r})):
            print(list(parallel_map(abs, [-1, -2, -3, -4], 2)))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("[1, 2, 3, 4]")
    assert "received SIGTERM" not in done.stderr
