"""LS-100: few-shot class-incremental speaker identification on LibriSpeech.

100 speakers of LibriSpeech train-clean-100 (Panayotov et al., 2015), two-second 16 kHz
segments, 500 / 150 / 100 train / val / test segments per speaker. Expected layout::

    <root>/<speaker>_<k>.wav              e.g. 1069_684.wav (flat, no sub-folders)
    <metadata_dir>/librispeech_fscil_train.csv   header: filename,speaker_id,label
    <metadata_dir>/librispeech_fscil_val.csv
    <metadata_dir>/librispeech_fscil_test.csv
    <metadata_dir>/spk_mapping.json              {"<speaker id>": <label>, ...}

``metadata_dir`` defaults to ``root``. The segments are not distributed as audio: build them
from a local copy of LibriSpeech train-clean-100 with::

    python -m audiocil.data.loaders.ls100 build \\
        --librispeech /data/LibriSpeech/train-clean-100 --out /data/ls100

which writes the segments, the three CSVs and ``spk_mapping.json`` the published way (see
:func:`build_ls100`).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from audiocil.data.catalog import SPLITS, AudioDataset, ClipTable
from audiocil.data.loaders._common import (
    DatasetNotFound,
    MetadataError,
    abspath,
    as_int,
    check_on_bad_file,
    finalize,
    find_file,
    read_csv,
    read_json,
    require_dir,
)

HEADER = ("filename", "speaker_id", "label")
CSV_NAME = "librispeech_fscil_{split}.csv"
MAPPING_NAME = "spk_mapping.json"

SOURCE = (
    "LS-100 metadata (CSVs, spk_mapping.json): https://github.com/vinceasvp/FCAC (data/LS100/)\n"
    "LibriSpeech train-clean-100 (to build the segments): https://www.openslr.org/12\n"
    "Build the segments with: python -m audiocil.data.loaders.ls100 build "
    "--librispeech <LibriSpeech/train-clean-100> --out <root>"
)

LAYOUT = (
    "  <root>/<speaker>_<k>.wav   e.g. <root>/1069_684.wav (2 s, 16 kHz, flat folder)\n"
    "  <metadata_dir or root>/librispeech_fscil_{train,val,test}.csv\n"
    f"      header: {','.join(HEADER)}\n"
    "  <metadata_dir or root>/spk_mapping.json   {speaker id: label}"
)


def load_ls100(root: str, metadata_dir: str | None = None, sample_rate: int = 16000,
               clip_seconds: float = 2.0, on_bad_file: str = "error") -> AudioDataset:
    """Load LS-100 from local segments and metadata (never downloads).

    Args:
        root: the flat folder of ``<speaker>_<k>.wav`` segments.
        metadata_dir: folder of the CSVs and ``spk_mapping.json``; default ``root``.
        sample_rate, clip_seconds: every clip is resampled / padded / cropped to these.
        on_bad_file: ``"error"`` or ``"skip"`` (see :func:`audiocil.data.audio_io.load_table`).
    """
    check_on_bad_file(on_bad_file)
    root_p = require_dir(root, "LS-100", LAYOUT, SOURCE)
    meta = [metadata_dir or root_p]
    map_path = find_file(MAPPING_NAME, meta, "LS-100", LAYOUT, SOURCE)
    mapping = read_json(map_path)
    if not isinstance(mapping, dict) or not mapping:
        raise MetadataError(f"{map_path}: expected a JSON object {{speaker id: label}}")
    try:
        mapping = {str(k): int(v) for k, v in mapping.items()}
    except (TypeError, ValueError):
        raise MetadataError(f"{map_path}: labels must be integers") from None
    if sorted(mapping.values()) != list(range(len(mapping))):
        raise MetadataError(f"{map_path}: labels must be exactly 0..{len(mapping) - 1}, "
                            f"each used once")
    class_names = [k for k, _ in sorted(mapping.items(), key=lambda kv: kv[1])]

    splits, sources = {}, {}
    for split in SPLITS:
        csv_path = find_file(CSV_NAME.format(split=split), meta, "LS-100", LAYOUT, SOURCE)
        rows = read_csv(csv_path, HEADER)
        paths, targets = [], []
        for lineno, row in enumerate(rows, start=2):
            spk = row["speaker_id"]
            label = as_int(row["label"], csv_path, "label")
            if mapping.get(spk) != label:
                raise MetadataError(
                    f"{csv_path}, line {lineno}: speaker {spk} has label {label}, but "
                    f"{map_path.name} maps it to {mapping.get(spk, 'nothing')}")
            paths.append(abspath(root_p, row["filename"]))
            targets.append(label)
        splits[split] = ClipTable(paths=paths, targets=np.asarray(targets, dtype=np.int64))
        sources[split] = str(csv_path)
    splits, info = finalize(splits, sources, on_bad_file, "LS-100", LAYOUT, SOURCE)
    info.update(speaker_mapping=str(map_path), root=str(root_p))
    return AudioDataset(name="ls100", class_names=class_names, sample_rate=int(sample_rate),
                        clip_seconds=float(clip_seconds), multilabel=False, splits=splits,
                        info=info)


# ----------------------------------------------------------------------------------------
# building the segments from LibriSpeech

_UTT = re.compile(r"(\d+)-(\d+)-(\d+)\.flac")

LIBRISPEECH_LAYOUT = (
    "  <librispeech>/<speaker>/<chapter>/<speaker>-<chapter>-<utterance>.flac\n"
    "  e.g. LibriSpeech/train-clean-100/19/198/19-198-0001.flac"
)


def _scan_librispeech(top: Path) -> dict[str, list[Path]]:
    """``{speaker id: utterance files in (chapter, utterance) order}``."""
    if not top.is_dir():
        raise DatasetNotFound(
            f"LibriSpeech: directory {top} not found.\nExpected layout:\n{LIBRISPEECH_LAYOUT}\n"
            f"LibriSpeech train-clean-100 is published at https://www.openslr.org/12 "
            f"(train-clean-100.tar.gz); extract it and pass the train-clean-100 folder.")
    speakers: dict[str, list[tuple[int, int, Path]]] = {}
    for spk_dir in sorted(p for p in top.iterdir() if p.is_dir() and p.name.isdigit()):
        for chap_dir in (p for p in spk_dir.iterdir() if p.is_dir() and p.name.isdigit()):
            for f in chap_dir.iterdir():
                m = _UTT.fullmatch(f.name)
                if m and m.group(1) == spk_dir.name and m.group(2) == chap_dir.name:
                    speakers.setdefault(spk_dir.name, []).append(
                        (int(m.group(2)), int(m.group(3)), f))
    if not speakers:
        raise DatasetNotFound(
            f"LibriSpeech: no utterances found under {top}.\nExpected layout:\n"
            f"{LIBRISPEECH_LAYOUT}\nPass the train-clean-100 folder itself (the one holding "
            f"the numbered speaker folders).")
    return {s: [f for _, _, f in sorted(items)] for s, items in speakers.items()}


def split_segment_names(speaker: str, num_segments: int,
                        counts: tuple[int, int, int] = (500, 150, 100)) -> dict[str, list[str]]:
    """Which of a speaker's segments go to train / val / test, the published way.

    The published LS-100 files take the segment file names ``<speaker>_<k>.wav`` for
    ``k = 0 .. num_segments-1`` in *string* order and give the first ``counts[0]`` to train,
    the next ``counts[1]`` to val and the next ``counts[2]`` to test; the rest are unused.
    (So e.g. ``1069_7.wav`` is a test clip while ``1069_100.wav`` is a training clip.)
    """
    need = sum(counts)
    if num_segments < need:
        raise ValueError(f"speaker {speaker} yields only {num_segments} segments, "
                         f"{need} needed")
    names = sorted(f"{speaker}_{k}.wav" for k in range(num_segments))[:need]
    a, b = counts[0], counts[0] + counts[1]
    return {"train": names[:a], "val": names[a:b], "test": names[b:need]}


def build_ls100(librispeech: str, out: str, num_speakers: int = 100,
                segment_seconds: float = 2.0, counts: tuple[int, int, int] = (500, 150, 100),
                sample_rate: int = 16000, overwrite: bool = False,
                verbose: bool = True) -> dict:
    """Cut LS-100 segments out of a local LibriSpeech train-clean-100 tree.

    Procedure (matching the published LS-100 files):

    1. the ``num_speakers`` speakers with the longest total audio duration (ties broken by
       speaker id) are kept; labels ``0..num_speakers-1`` follow the speaker ids sorted as
       strings (``"1069" < "125" < "19"``);
    2. each speaker's utterances are joined in (chapter, utterance) order and cut into
       consecutive, non-overlapping ``segment_seconds`` segments numbered ``k = 0, 1, ...``
       (the trailing partial segment is dropped), file ``<speaker>_<k>.wav``, 16-bit PCM;
    3. train / val / test segments per speaker are chosen by :func:`split_segment_names`.

    Writes the segments flat into ``out`` together with ``librispeech_fscil_{train,val,
    test}.csv`` and ``spk_mapping.json``; only segments that belong to a split are written.

    Returns:
        a summary: speakers, label mapping and row counts.
    """
    top = Path(librispeech).expanduser()
    out_p = Path(out).expanduser()
    utterances = _scan_librispeech(top)
    if out_p.exists() and any(out_p.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_p} is not empty; pass --overwrite to write into it anyway")
    out_p.mkdir(parents=True, exist_ok=True)
    seg_len = int(round(segment_seconds * sample_rate))

    def say(msg: str) -> None:
        if verbose:
            print(msg, file=sys.stderr, flush=True)

    say(f"measuring {sum(map(len, utterances.values()))} utterances of {len(utterances)} "
        f"speakers under {top}")
    total: dict[str, int] = {}      # samples at sample_rate, per speaker
    for spk, files in utterances.items():
        n = 0
        for f in files:
            try:
                info = sf.info(str(f))
            except (sf.LibsndfileError, RuntimeError) as err:
                raise MetadataError(f"cannot read LibriSpeech utterance {f} ({err}); "
                                    f"re-extract it from train-clean-100.tar.gz") from err
            n += int(round(info.frames * sample_rate / info.samplerate))
        total[spk] = n
    if len(total) < num_speakers:
        raise ValueError(f"{top} holds {len(total)} speakers, {num_speakers} needed")
    ranked = sorted(total, key=lambda s: (-total[s], s))[:num_speakers]
    chosen = sorted(ranked)
    mapping = {spk: i for i, spk in enumerate(chosen)}

    rows: dict[str, list[tuple[str, str, int]]] = {s: [] for s in SPLITS}
    for spk in chosen:
        plan = split_segment_names(spk, total[spk] // seg_len, counts)
        wanted = {name for names in plan.values() for name in names}
        say(f"speaker {spk} (label {mapping[spk]}): {total[spk] / sample_rate:.1f} s, "
            f"{total[spk] // seg_len} segments")
        k = 0
        carry = np.zeros(0, dtype=np.float32)
        for f in utterances[spk]:
            wave, sr = sf.read(str(f), dtype="float32", always_2d=True)
            wave = wave.mean(axis=1)
            if sr != sample_rate:
                import soxr

                wave = soxr.resample(wave, sr, sample_rate).astype(np.float32)
            carry = np.concatenate([carry, wave])
            start = 0
            while len(carry) - start >= seg_len:
                name = f"{spk}_{k}.wav"
                if name in wanted:
                    sf.write(str(out_p / name), carry[start:start + seg_len], sample_rate,
                             subtype="PCM_16")
                start += seg_len
                k += 1
            carry = carry[start:]
        for split in SPLITS:
            rows[split].extend((name, spk, mapping[spk]) for name in plan[split])

    for split in SPLITS:
        with open(out_p / CSV_NAME.format(split=split), "w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(HEADER)
            writer.writerows(rows[split])
    with open(out_p / MAPPING_NAME, "w") as fh:
        json.dump(mapping, fh, indent=2)
        fh.write("\n")
    summary = {"speakers": chosen, "mapping": mapping,
               "rows": {s: len(r) for s, r in rows.items()}, "out": str(out_p)}
    say(f"wrote {sum(summary['rows'].values())} segments and metadata to {out_p}")
    return summary


def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/test_docs_commands.py parses the documented ones with it)."""
    parser = argparse.ArgumentParser(prog="python -m audiocil.data.loaders.ls100",
                                     description="LS-100 utilities")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="cut LS-100 segments from LibriSpeech train-clean-100")
    b.add_argument("--librispeech", required=True,
                   help="the LibriSpeech/train-clean-100 folder (<spk>/<chapter>/*.flac)")
    b.add_argument("--out", required=True, help="output folder (becomes dataset.root)")
    b.add_argument("--num-speakers", type=int, default=100)
    b.add_argument("--segment-seconds", type=float, default=2.0)
    b.add_argument("--per-speaker", type=int, nargs=3, default=(500, 150, 100),
                   metavar=("TRAIN", "VAL", "TEST"))
    b.add_argument("--sample-rate", type=int, default=16000)
    b.add_argument("--overwrite", action="store_true")
    b.add_argument("--quiet", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        build_ls100(args.librispeech, args.out, num_speakers=args.num_speakers,
                    segment_seconds=args.segment_seconds, counts=tuple(args.per_speaker),
                    sample_rate=args.sample_rate, overwrite=args.overwrite,
                    verbose=not args.quiet)
    except (DatasetNotFound, MetadataError, FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

