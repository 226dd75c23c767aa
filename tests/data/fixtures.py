"""Tiny on-disk fixtures in the exact layout and schema of the real dataset releases.

Audio is synthesised (short sine tones); file and folder names follow the real releases.
Every ``make_*`` function writes under the given folder and returns a dict of the facts a
test needs (root, class names, expected rows per split, ...).
"""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

# ----------------------------------------------------------------------------------------
# audio


def tone(sr: int, seconds: float, freq: float = 440.0, channels: int = 1,
         amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    wave = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    if channels == 1:
        return wave
    return np.stack([wave * (c + 1) / channels for c in range(channels)], axis=1)


def ramp(n: int) -> np.ndarray:
    """A signal whose every sample is distinct, to check offsets and crops exactly."""
    return (np.arange(n, dtype=np.float32) / n - 0.5).astype(np.float32)


def write_audio(path: Path, wave: np.ndarray, sr: int, subtype: str | None = "PCM_16",
                fmt: str | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave, sr, subtype=subtype, format=fmt)
    return path


def write_tone(path: Path, sr: int = 16000, seconds: float = 0.25, freq: float = 440.0,
               channels: int = 1, subtype: str | None = "PCM_16") -> Path:
    return write_audio(path, tone(sr, seconds, freq, channels), sr, subtype)


BAD_KINDS = ("garbage", "empty", "truncated_header", "truncated_data", "rate_zero",
             "rate_absurd", "nan_samples")


def write_bad(path: Path, kind: str) -> Path:
    """Write a broken audio file of one of :data:`BAD_KINDS`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8)
                         .tobytes())
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "nan_samples":
        wave = tone(16000, 0.1)
        wave[10] = np.nan
        write_audio(path, wave, 16000, subtype="FLOAT")
    else:
        write_tone(path, 16000, 0.25)
        data = bytearray(path.read_bytes())
        if kind == "truncated_header":
            data = data[:22]
        elif kind == "truncated_data":
            data = data[:len(data) // 2]
        elif kind in ("rate_zero", "rate_absurd"):
            rate = 0 if kind == "rate_zero" else 3
            data[24:28] = struct.pack("<I", rate)
            data[28:32] = struct.pack("<I", rate * 2)
        else:
            raise ValueError(kind)
        path.write_bytes(bytes(data))
    return path


def write_csv(path: Path, header, rows, delimiter: str = ",") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        if header is not None:
            w.writerow(header)
        w.writerows(rows)
    return path


# ----------------------------------------------------------------------------------------
# NSynth (+ few-shot CIL metadata)

NSYNTH_HEADER = ["filename", "instrument", "instrument_family", "instrument_source",
                 "audio_source"]
NSYNTH_INSTRUMENTS = ["guitar_electronic_017", "keyboard_acoustic_017",
                      "mallet_acoustic_054", "bass_synthetic_087"]


def make_nsynth(root: Path, prefix: str = "nsynth-100-fs", meta_dir: Path | None = None,
                per_split: tuple[int, int, int] = (3, 2, 2), seconds: float = 0.25) -> dict:
    """NSynth json/wav layout + ``<prefix>_{train,val,test}.csv`` and ``_vocab.json``."""
    root, meta = Path(root), Path(meta_dir or root)
    sources = ["nsynth-train", "nsynth-valid", "nsynth-test"]
    examples: dict[str, dict] = {s: {} for s in sources}
    rows: dict[str, list] = {"train": [], "val": [], "test": []}
    notes = [(41, 75), (61, 50), (70, 100), (92, 75), (101, 100), (93, 50), (21, 100)]
    for label, inst in enumerate(NSYNTH_INSTRUMENTS):
        family, source = inst.split("_")[:2]
        k = 0
        for split, n in zip(rows, per_split, strict=True):
            for _ in range(n):
                pitch, vel = notes[k % len(notes)]
                fname = f"{inst}-{pitch:03d}-{vel:03d}"
                src = sources[(label + k) % 3]
                write_tone(root / src / "audio" / f"{fname}.wav", 16000, seconds,
                           110.0 * (label + 1))
                examples[src][fname] = {"instrument_str": inst, "pitch": pitch,
                                        "velocity": vel, "sample_rate": 16000}
                rows[split].append([fname, inst, family, source, src])
                k += 1
    for src, ex in examples.items():
        (root / src).mkdir(parents=True, exist_ok=True)
        (root / src / "examples.json").write_text(json.dumps(ex))
    for split, r in rows.items():
        write_csv(meta / f"{prefix}_{split}.csv", NSYNTH_HEADER, r)
    vocab = {inst: i for i, inst in enumerate(NSYNTH_INSTRUMENTS)}
    (meta / f"{prefix}_vocab.json").write_text(json.dumps(vocab))
    return {"root": root, "meta": meta, "class_names": list(NSYNTH_INSTRUMENTS),
            "rows": {s: len(r) for s, r in rows.items()}, "csv_rows": rows}


# ----------------------------------------------------------------------------------------
# LS-100 (segments) and LibriSpeech (source tree)

LS_SPEAKERS = ["1069", "125", "19"]
LS_SEGMENTS = {"train": [0, 1, 10], "val": [549, 55], "test": [684]}


def make_ls100(root: Path, meta_dir: Path | None = None, seconds: float = 0.25) -> dict:
    """Flat ``<spk>_<k>.wav`` segments + ``librispeech_fscil_*.csv`` + ``spk_mapping.json``."""
    root, meta = Path(root), Path(meta_dir or root)
    mapping = {spk: i for i, spk in enumerate(sorted(LS_SPEAKERS))}
    rows: dict[str, list] = {s: [] for s in LS_SEGMENTS}
    for spk in sorted(LS_SPEAKERS):
        for split, ks in LS_SEGMENTS.items():
            for k in sorted(ks, key=str):
                name = f"{spk}_{k}.wav"
                write_tone(root / name, 16000, seconds, 200.0 + 50 * mapping[spk])
                rows[split].append([name, spk, mapping[spk]])
    for split, r in rows.items():
        write_csv(meta / f"librispeech_fscil_{split}.csv", ["filename", "speaker_id", "label"], r)
    (meta / "spk_mapping.json").write_text(json.dumps(mapping, indent=2))
    return {"root": root, "meta": meta, "mapping": mapping,
            "rows": {s: len(r) for s, r in rows.items()}}


def make_librispeech(top: Path, durations: dict[str, list[list[float]]],
                     sr: int = 16000) -> dict:
    """``<top>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac`` trees.

    ``durations[spk]`` is one list of utterance durations per chapter. Each speaker's audio
    is a ramp continuing across utterances, so segments can be checked exactly.
    """
    top = Path(top)
    streams = {}
    for s_i, (spk, chapters) in enumerate(durations.items()):
        pieces = []
        for c_i, utts in enumerate(chapters):
            chapter = str(100 + 7 * c_i + s_i)
            for u_i, dur in enumerate(utts):
                n = int(round(dur * sr))
                offset = sum(len(p) for p in pieces)
                wave = (((offset + np.arange(n)) % 1000) / 1000.0 - 0.5).astype(np.float32)
                path = top / spk / chapter / f"{spk}-{chapter}-{u_i:04d}.flac"
                write_audio(path, wave, sr, subtype="PCM_16")
                pieces.append(sf.read(str(path), dtype="float32")[0])
        streams[spk] = np.concatenate(pieces)
    (top / "README.TXT").parent.mkdir(parents=True, exist_ok=True)
    (top / "README.TXT").write_text("fake LibriSpeech train-clean-100\n")
    return {"top": top, "streams": streams}


# ----------------------------------------------------------------------------------------
# FSC-89 (FSD-MIX-SED soundscapes or FSD-MIX-CLIPS clips)

FSC_HEADER = ["data_folder", "FSD_MIX_SED_filename", "start_time", "label"]
FSC_VOCAB = ["Chirp_and_tweet", "Shatter", "Crack", "Cutlery_and_silverware", "Hiss",
             "Splash_and_splatter"]
FSC_SR = 44100


def make_fsc89(root: Path, setup: str = "setup1", meta_dir: Path | None = None,
               clips: bool = False, audio_subdir: str = "",
               soundscape_seconds: float = 1.5) -> dict:
    """FSD-MIX-SED soundscapes (or pre-cut clips) + ``Fsc89-<setup>-fsci_*.csv`` + vocabulary.

    Base classes 0-3 in ``base/{train,val,test}``, novel classes 4-5 in ``novel_val`` /
    ``novel_test`` as in the published setup. Each soundscape is a ramp, so the clip at
    ``start_time`` can be checked exactly.
    """
    root, meta = Path(root), Path(meta_dir or root)
    audio = root / audio_subdir if audio_subdir else root
    plan = {
        "train": [("base/train", c) for c in range(4) for _ in range(2)]
        + [("novel_val", 4), ("novel_test", 5)] * 2,
        "val": [("base/val", c) for c in range(4)],
        "test": [("base/test", c) for c in range(4)] + [("novel_test", 4), ("novel_test", 5)],
    }
    starts = [0.33, 0.0, 0.5, 0.12]
    rows: dict[str, list] = {s: [] for s in plan}
    number = 14804
    n = int(soundscape_seconds * FSC_SR)
    for split, items in plan.items():
        for j, (folder, label) in enumerate(items):
            name = f"soundscape_{number}.wav"
            st = starts[j % len(starts)]
            wave = ramp(n)
            if clips:
                first = int(st * FSC_SR)
                write_audio(audio / folder / f"soundscape_{number}_{first}.wav",
                            wave[first:first + FSC_SR], FSC_SR, subtype="FLOAT")
            else:
                write_audio(audio / folder / name, wave, FSC_SR, subtype="FLOAT")
            rows[split].append([folder, name, st, label])
            number += 13
    for split, r in rows.items():
        write_csv(meta / f"Fsc89-{setup}-fsci_{split}.csv", FSC_HEADER, r)
    (meta / "vocabulary_of_FSC-89.json").write_text(json.dumps(FSC_VOCAB))
    return {"root": root, "audio": audio, "meta": meta, "rows": {s: len(r) for s, r in rows.items()},
            "csv_rows": rows, "soundscape": ramp(n)}


# ----------------------------------------------------------------------------------------
# ESC-50, UrbanSound8K, Speech Commands

ESC_HEADER = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
ESC_CLASSES = [("dog", True), ("rooster", True), ("pig", False)]


def make_esc50(root: Path, per_fold_class: int = 2) -> dict:
    root = Path(root)
    rows = []
    for fold in range(1, 6):
        for target, (cat, esc10) in enumerate(ESC_CLASSES):
            src = f"{100032 + 1000 * fold + 10 * target}"
            for t in range(per_fold_class):
                take = "ABCDEFG"[t]
                fname = f"{fold}-{src}-{take}-{target}.wav"
                write_tone(root / "audio" / fname, 44100, 0.2, 300.0 + 100 * target)
                rows.append([fname, fold, target, cat, str(esc10), src, take])
    write_csv(root / "meta" / "esc50.csv", ESC_HEADER, rows)
    return {"root": root, "rows": rows, "class_names": [c for c, _ in ESC_CLASSES]}


US_HEADER = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
US_CLASSES = ["air_conditioner", "car_horn", "children_playing"]


def make_urbansound8k(root: Path) -> dict:
    """Ten folds, three classes; files at assorted rates, channel counts and bit depths."""
    root = Path(root)
    formats = [(44100, 2, "PCM_16"), (22050, 1, "PCM_U8"), (48000, 2, "PCM_24"),
               (8000, 1, "PCM_16")]
    rows = []
    for fold in range(1, 11):
        for cid, cls in enumerate(US_CLASSES):
            for occ in range(2):
                fsid = 101415 + 100 * fold + 10 * cid + (occ // 2)
                fname = f"{fsid}-{cid}-{occ}-{fold % 3}.wav"
                sr, ch, sub = formats[(fold + cid + occ) % len(formats)]
                write_audio(root / "audio" / f"fold{fold}" / fname, tone(sr, 0.2, 500.0, ch),
                            sr, subtype=sub)
                rows.append([fname, fsid, 0.0, 0.2, 1, fold, cid, cls])
    write_csv(root / "metadata" / "UrbanSound8K.csv", US_HEADER, rows)
    return {"root": root, "rows": rows, "class_names": US_CLASSES}


def make_speechcommands(root: Path, words=("no", "up", "yes"), per_word: int = 5) -> dict:
    root = Path(root)
    val, test = [], []
    for w in words:
        for i in range(per_word):
            name = f"{0x0a7c2a8d + i:08x}_nohash_{i % 2}.wav"
            write_tone(root / w / name, 16000, 0.25, 400.0)
            if i == 0:
                val.append(f"{w}/{name}")
            elif i == 1:
                test.append(f"{w}/{name}")
    write_tone(root / "_background_noise_" / "white_noise.wav", 16000, 0.5)
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    (root / "LICENSE").write_text("CC-BY-4.0\n")
    return {"root": root, "words": list(words), "val": val, "test": test,
            "train_per_word": per_word - 2}


# ----------------------------------------------------------------------------------------
# AudioSet strong labels, FSD50K

AS_HEADER = ["segment_id", "start_time_seconds", "end_time_seconds", "label"]
AS_NAMES = {"/m/09x0r": "Speech", "/m/04rlf": "Music", "/m/0bt9lr": "Dog",
            "/m/07yv9": "Vehicle", "/m/01h8n0": "Conversation"}


def make_audioset_strong(root: Path, n_train: int = 12, n_eval: int = 4) -> dict:
    """Strong-label TSVs (several event rows per segment) + mid names + 10 s-clip audio."""
    root = Path(root)
    mids = list(AS_NAMES)
    # label frequency in train: Speech > Music > Dog > Vehicle > Conversation
    def labels_for(i: int) -> list[str]:
        out = [mids[0]] if i % 4 != 3 else []
        if i % 2 == 0:
            out.append(mids[1])
        if i % 3 == 0:
            out.append(mids[2])
        if i % 5 == 0:
            out.append(mids[3])
        if i == 7:
            out.append(mids[4])
        return out or [mids[4]]

    seg_ids = {}
    for part, n in (("train", n_train), ("eval", n_eval)):
        rows, ids = [], []
        for i in range(n):
            ytid = f"{'Yx' if part == 'train' else 'Zq'}lGt8{i:02d}_TA"  # YTIDs may hold '_'
            seg = f"{ytid}_{30000 + 1000 * i}"
            ids.append(seg)
            for j, mid in enumerate(labels_for(i + (1 if part == "eval" else 0))):
                rows.append([seg, f"{0.5 * j:.3f}", f"{0.5 * j + 1.2:.3f}", mid])
            # most audio is named <segment_id>.wav, some <YTID>.wav or Y<YTID>.wav
            stem = seg if i % 3 == 0 else (ytid if i % 3 == 1 else "Y" + ytid)
            write_tone(root / "audio" / part / f"{stem}.wav", 32000, 0.2, 600.0)
        write_csv(root / f"audioset_{part}_strong.tsv", AS_HEADER, rows, delimiter="\t")
        seg_ids[part] = ids
    write_csv(root / "mid_to_display_name.tsv", None, list(AS_NAMES.items()), delimiter="\t")
    return {"root": root, "mids": mids, "segments": seg_ids, "labels_for": labels_for}


FSD_VOCAB = [("Bark", "/m/05tny_"), ("Music", "/m/04rlf"), ("Speech", "/m/09x0r"),
             ("Domestic_animals_and_pets", "/m/068hy"), ("Guitar", "/m/0342h")]


def make_fsd50k(root: Path, with_split: bool = True) -> dict:
    root = Path(root)
    gt = root / "FSD50K.ground_truth"
    write_csv(gt / "vocabulary.csv", None, [[i, n, m] for i, (n, m) in enumerate(FSD_VOCAB)])

    def labels(i: int) -> list[int]:
        out = [2] if i % 2 == 0 else [1]
        if i % 3 == 0:
            out += [0, 3]
        if i == 5:
            out.append(4)
        return out

    dev, ev = [], []
    for i in range(12):
        fname = str(64760 + i)
        lab = labels(i)
        row = [fname, ",".join(FSD_VOCAB[j][0] for j in lab), ",".join(FSD_VOCAB[j][1] for j in lab)]
        if with_split:
            row.append("val" if i % 4 == 1 else "train")
        dev.append(row)
        write_tone(root / "FSD50K.dev_audio" / f"{fname}.wav", 44100, 0.2, 700.0)
    for i in range(4):
        fname = str(37199 + i)
        lab = labels(i + 1)
        ev.append([fname, ",".join(FSD_VOCAB[j][0] for j in lab),
                   ",".join(FSD_VOCAB[j][1] for j in lab)])
        write_tone(root / "FSD50K.eval_audio" / f"{fname}.wav", 44100, 0.2, 700.0)
    write_csv(gt / "dev.csv", ["fname", "labels", "mids"] + (["split"] if with_split else []), dev)
    write_csv(gt / "eval.csv", ["fname", "labels", "mids"], ev)
    return {"root": root, "dev": dev, "eval": ev}


# ----------------------------------------------------------------------------------------
# user folder


def make_folder(root: Path, classes=("cat", "dog", "owl"), per_class: int = 10) -> dict:
    root = Path(root)
    kinds = [(".wav", "WAV", "PCM_16"), (".flac", "FLAC", "PCM_16"), (".ogg", "OGG", "VORBIS")]
    for c_i, cls in enumerate(classes):
        for i in range(per_class):
            ext, fmt, sub = kinds[i % 3]
            sub_dir = "takes" if i == per_class - 1 else ""
            write_audio(root / cls / sub_dir / f"{cls}_{i:03d}{ext}",
                        tone(16000, 0.2, 300.0 + 100 * c_i), 16000, subtype=sub, fmt=fmt)
        (root / cls / "notes.txt").write_text("not audio\n")
    (root / ".cache").mkdir(parents=True, exist_ok=True)
    return {"root": root, "classes": list(classes), "per_class": per_class}
