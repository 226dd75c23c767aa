"""Real-dataset loaders against tiny fixtures in the exact layout of each release."""

from __future__ import annotations

import csv
import importlib
import importlib.util
import inspect
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiocil.data.audio_io import BadAudioFile, MissingAudioFiles, load_table
from audiocil.data.catalog import AudioDataset
from audiocil.data.loaders._common import DatasetNotFound, MetadataError
from audiocil.data.loaders.audioset_strong import load_audioset_strong
from audiocil.data.loaders.esc50 import load_esc50
from audiocil.data.loaders.folder import load_folder
from audiocil.data.loaders.fsc89 import load_fsc89
from audiocil.data.loaders.fsd50k import load_fsd50k
from audiocil.data.loaders.ls100 import build_ls100, load_ls100, split_segment_names
from audiocil.data.loaders.ls100 import main as ls100_main
from audiocil.data.loaders.nsynth import load_nsynth
from audiocil.data.loaders.speechcommands import WORDS_V2, load_speechcommands
from audiocil.data.loaders.urbansound8k import load_urbansound8k

REPO = Path(__file__).resolve().parents[2]


def _load_fixtures():
    name = "audiocil_tests_data_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("fixtures.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


F = _load_fixtures()


def _rewrite_csv(path: Path, edit) -> None:
    rows = list(csv.reader(open(path, newline="")))
    rows = edit(rows)
    with open(path, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def _read_ok(ds: AudioDataset, split: str = "test") -> np.ndarray:
    waves, keep, skipped = load_table(ds.splits[split], ds.sample_rate, ds.num_samples)
    assert keep.all() and not skipped
    assert waves.shape == (len(ds.splits[split]), ds.num_samples)
    return waves


# ----------------------------------------------------------------------------------------
# NSynth


def test_nsynth_reads_the_release_layout(tmp_path):
    fx = F.make_nsynth(tmp_path)
    ds = load_nsynth(str(tmp_path))
    assert ds.name == "nsynth100" and not ds.multilabel
    assert ds.class_names == fx["class_names"]
    assert {s: len(t) for s, t in ds.splits.items()} == fx["rows"]
    assert ds.sample_rate == 16000 and ds.num_samples == 64000
    first = ds.splits["train"].paths[0]
    assert first == str(tmp_path / "nsynth-train" / "audio" / "guitar_electronic_017-041-075.wav")
    assert ds.splits["train"].targets[0] == 0
    assert ds.info["on_bad_file"] == "error"
    assert ds.info["metadata"]["train"].endswith("nsynth-100-fs_train.csv")
    waves = _read_ok(ds)
    assert np.abs(waves[:, 5000:]).max() == 0  # 0.25 s notes padded to 4 s


def test_nsynth_other_prefixes_and_metadata_locations(tmp_path):
    F.make_nsynth(tmp_path / "nsynth", prefix="nsynth-200-fs", meta_dir=tmp_path / "meta")
    ds = load_nsynth(str(tmp_path / "nsynth"), metadata_prefix="nsynth-200-fs",
                     metadata_dir=str(tmp_path / "meta"), sample_rate=8000, clip_seconds=1.0)
    assert ds.name == "nsynth200" and ds.num_samples == 8000
    F.make_nsynth(tmp_path / "n2", prefix="nsynth-100-fs",
                  meta_dir=tmp_path / "n2" / "nsynth-100-fs-meta")
    assert load_nsynth(str(tmp_path / "n2")).num_classes == 4
    F.make_nsynth(tmp_path / "gm", prefix="gm-100-fs")
    assert load_nsynth(str(tmp_path / "gm"), metadata_prefix="gm-100-fs").name == "gm-100-fs"


def test_nsynth_missing_root_names_the_expected_files(tmp_path):
    with pytest.raises(DatasetNotFound) as err:
        load_nsynth(str(tmp_path / "nowhere"))
    msg = str(err.value)
    for part in ("nowhere", "nsynth-train/audio/<filename>.wav", "nsynth-100-fs_train.csv",
                 "nsynth-100-fs_vocab.json", "magenta.tensorflow.org/datasets/nsynth",
                 "FCAC_datasets", "never downloads"):
        assert part in msg


def test_nsynth_missing_metadata_lists_where_it_looked(tmp_path):
    F.make_nsynth(tmp_path)
    (tmp_path / "nsynth-100-fs_test.csv").unlink()
    with pytest.raises(DatasetNotFound, match="nsynth-100-fs_test.csv") as err:
        load_nsynth(str(tmp_path))
    assert str(tmp_path / "nsynth-100-fs_test.csv") in str(err.value)


def test_nsynth_audio_not_extracted_explains_the_layout(tmp_path):
    F.make_nsynth(tmp_path)
    for src in ("nsynth-train", "nsynth-valid", "nsynth-test"):
        shutil.rmtree(tmp_path / src)
    with pytest.raises(DatasetNotFound) as err:
        load_nsynth(str(tmp_path))
    assert "none of the" in str(err.value) and "<audio_source>/audio" in str(err.value)


def test_nsynth_bad_header_names_file_and_expected_header(tmp_path):
    F.make_nsynth(tmp_path)
    path = tmp_path / "nsynth-100-fs_val.csv"
    _rewrite_csv(path, lambda rows: [["filename", "instrument", "label"]] + [r[:3] for r in rows[1:]])
    with pytest.raises(MetadataError) as err:
        load_nsynth(str(tmp_path))
    assert str(path) in str(err.value)
    assert "filename,instrument,instrument_family,instrument_source,audio_source" in str(err.value)


def test_nsynth_unknown_instrument_and_bad_vocab(tmp_path):
    F.make_nsynth(tmp_path)
    path = tmp_path / "nsynth-100-fs_train.csv"
    _rewrite_csv(path, lambda rows: rows[:2] + [["x-001-001", "flute_acoustic_002", "flute",
                                                  "acoustic", "nsynth-train"]])
    with pytest.raises(MetadataError, match="line 3: instrument 'flute_acoustic_002'"):
        load_nsynth(str(tmp_path))
    (tmp_path / "nsynth-100-fs_vocab.json").write_text(json.dumps({"a": 0, "b": 2}))
    with pytest.raises(MetadataError, match="0..1"):
        load_nsynth(str(tmp_path))


def test_nsynth_missing_audio_file_error_and_skip(tmp_path, caplog):
    F.make_nsynth(tmp_path)
    ds = load_nsynth(str(tmp_path))
    gone = Path(ds.splits["train"].paths[1])
    gone.unlink()
    with pytest.raises(MissingAudioFiles) as err:
        load_nsynth(str(tmp_path))
    assert str(gone) in str(err.value) and "nsynth-100-fs_train.csv" in str(err.value)
    assert "1 of 12" in str(err.value)
    with caplog.at_level(logging.WARNING):
        ds = load_nsynth(str(tmp_path), on_bad_file="skip")
    assert len(ds.splits["train"]) == 11 and str(gone) not in ds.splits["train"].paths
    assert ds.info["skipped_missing"] == {"train": 1} and ds.info["on_bad_file"] == "skip"
    assert "missing and were skipped" in caplog.text


def test_nsynth_corrupt_audio_is_caught_when_read(tmp_path):
    F.make_nsynth(tmp_path)
    ds = load_nsynth(str(tmp_path), on_bad_file="skip")
    bad = ds.splits["test"].paths[2]
    F.write_bad(Path(bad), "truncated_data")
    with pytest.raises(BadAudioFile, match="truncated") as err:
        load_table(ds.splits["test"], ds.sample_rate, ds.num_samples)
    assert bad in str(err.value)
    waves, keep, skipped = load_table(ds.splits["test"], ds.sample_rate, ds.num_samples,
                                      on_bad_file=ds.info["on_bad_file"])
    assert (~keep).sum() == 1 and not keep[2] and len(skipped) == 1


# ----------------------------------------------------------------------------------------
# LS-100


def test_ls100_reads_flat_segments(tmp_path):
    fx = F.make_ls100(tmp_path)
    ds = load_ls100(str(tmp_path))
    assert ds.name == "ls100" and ds.class_names == ["1069", "125", "19"]
    assert {s: len(t) for s, t in ds.splits.items()} == fx["rows"]
    assert ds.splits["test"].paths[0] == str(tmp_path / "1069_684.wav")
    assert ds.num_samples == 32000
    _read_ok(ds)
    meta = tmp_path / "meta"
    F.make_ls100(tmp_path / "seg", meta_dir=meta)
    assert load_ls100(str(tmp_path / "seg"), metadata_dir=str(meta)).num_classes == 3


def test_ls100_label_mismatch_and_missing_metadata(tmp_path):
    F.make_ls100(tmp_path)
    path = tmp_path / "librispeech_fscil_val.csv"
    _rewrite_csv(path, lambda rows: rows[:1] + [[rows[1][0], rows[1][1], "2"]] + rows[2:])
    with pytest.raises(MetadataError, match="speaker 1069 has label 2"):
        load_ls100(str(tmp_path))
    (tmp_path / "spk_mapping.json").unlink()
    with pytest.raises(DatasetNotFound) as err:
        load_ls100(str(tmp_path))
    assert "spk_mapping.json" in str(err.value) and "ls100 build" in str(err.value)


def test_ls100_split_follows_string_order_of_segment_names():
    plan = split_segment_names("1069", 13, (5, 2, 1))
    assert plan["train"] == ["1069_0.wav", "1069_1.wav", "1069_10.wav", "1069_11.wav",
                             "1069_12.wav"]
    assert plan["val"] == ["1069_2.wav", "1069_3.wav"] and plan["test"] == ["1069_4.wav"]
    # the published LS-100 test split of speaker 1069 starts at 1069_684.wav
    full = split_segment_names("1069", 754)
    assert full["test"][0] == "1069_684.wav" and full["val"][0] == "1069_549.wav"
    assert "1069_7.wav" in full["test"] and "1069_96.wav" not in sum(full.values(), [])
    with pytest.raises(ValueError, match="only 3 segments"):
        split_segment_names("19", 3, (2, 1, 1))


def test_ls100_build_command_on_a_fake_librispeech_tree(tmp_path):
    durations = {  # seconds per utterance, one list per chapter
        "19": [[0.45, 0.4], [0.5]],          # 1.35 s -> 13 segments of 0.1 s
        "125": [[0.9]],                       # 0.9 s
        "1069": [[0.3, 0.35], [0.25, 0.3]],  # 1.2 s
        "2007": [[0.6]],                      # 0.6 s: shortest, not kept
    }
    lib = F.make_librispeech(tmp_path / "LibriSpeech" / "train-clean-100", durations)
    out = tmp_path / "ls100"
    code = ls100_main(["build", "--librispeech", str(lib["top"]), "--out", str(out),
                       "--num-speakers", "3", "--segment-seconds", "0.1",
                       "--per-speaker", "5", "2", "1", "--quiet"])
    assert code == 0
    mapping = json.loads((out / "spk_mapping.json").read_text())
    assert mapping == {"1069": 0, "125": 1, "19": 2}
    ds = load_ls100(str(out), clip_seconds=0.1)
    assert {s: len(t) for s, t in ds.splits.items()} == {"train": 15, "val": 6, "test": 3}
    with open(out / "librispeech_fscil_train.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["filename", "speaker_id", "label"]
    assert rows[1:6] == [[f"1069_{k}.wav", "1069", "0"] for k in (0, 1, 10, 11, 2)]
    # segment k is samples [k*1600, (k+1)*1600) of the speaker's joined utterances
    stream = lib["streams"]["19"]
    seg, sr = sf.read(str(out / "19_10.wav"), dtype="float32")
    assert sr == 16000 and len(seg) == 1600
    np.testing.assert_allclose(seg, stream[16000:17600], atol=1e-4)
    assert not (out / "19_5.wav").exists()          # beyond the 8 used segments
    assert not any(out.glob("2007_*.wav"))
    # refuses to write into a non-empty folder without --overwrite
    with pytest.raises(FileExistsError):
        build_ls100(str(lib["top"]), str(out), num_speakers=3, segment_seconds=0.1,
                    counts=(5, 2, 1), verbose=False)


def test_ls100_build_reports_a_missing_or_wrong_tree(tmp_path, capsys):
    code = ls100_main(["build", "--librispeech", str(tmp_path / "nope"), "--out",
                       str(tmp_path / "o"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "<speaker>/<chapter>/<speaker>-<chapter>-<utterance>.flac" in err
    assert "openslr.org/12" in err
    (tmp_path / "empty").mkdir()
    assert ls100_main(["build", "--librispeech", str(tmp_path / "empty"), "--out",
                       str(tmp_path / "o"), "--quiet"]) == 2
    F.make_librispeech(tmp_path / "short", {"19": [[0.3]], "125": [[0.3]]})
    assert ls100_main(["build", "--librispeech", str(tmp_path / "short"), "--out",
                       str(tmp_path / "o2"), "--num-speakers", "2", "--quiet"]) == 2
    assert "yields only" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------
# FSC-89


def test_fsc89_cuts_clips_out_of_soundscapes(tmp_path):
    fx = F.make_fsc89(tmp_path)
    ds = load_fsc89(str(tmp_path))
    assert ds.name == "fsc89" and ds.num_classes == 6 and ds.class_names[0] == "Chirp_and_tweet"
    assert ds.info["layout"] == "soundscapes" and ds.info["setup"] == "setup1"
    assert {s: len(t) for s, t in ds.splits.items()} == fx["rows"]
    test = ds.splits["test"]
    assert test.paths[0] == str(tmp_path / "base" / "test" / fx["csv_rows"]["test"][0][1])
    np.testing.assert_allclose(test.offsets, [r[2] for r in fx["csv_rows"]["test"]])
    waves = _read_ok(ds)
    sc = fx["soundscape"]
    for i, row in enumerate(fx["csv_rows"]["test"]):
        first = int(round(row[2] * 44100))
        want = sc[first:first + 44100]
        np.testing.assert_array_equal(waves[i, :len(want)], want)
        np.testing.assert_array_equal(waves[i, len(want):], 0)


def test_fsc89_precut_clips_under_audio_and_separate_metadata(tmp_path):
    fx = F.make_fsc89(tmp_path / "FSD-MIX-CLIPS", setup="setup2", clips=True,
                      audio_subdir="audio", meta_dir=tmp_path / "FSC-89-meta" / "setup2")
    ds = load_fsc89(str(tmp_path / "FSD-MIX-CLIPS"), setup=2,
                    metadata_dir=str(tmp_path / "FSC-89-meta" / "setup2"))
    assert ds.info["layout"] == "clips" and ds.splits["train"].offsets is None
    row = fx["csv_rows"]["val"][0]
    assert ds.splits["val"].paths[0] == str(
        fx["audio"] / row[0] / row[1].replace(".wav", f"_{int(row[2] * 44100)}.wav"))
    _read_ok(ds, "val")


def test_fsc89_errors(tmp_path):
    with pytest.raises(DatasetNotFound) as err:
        load_fsc89(str(tmp_path / "missing"))
    assert "Fsc89-setup1-fsci_{train,val,test}.csv" in str(err.value)
    assert "data_folder,FSD_MIX_SED_filename,start_time,label" in str(err.value)
    F.make_fsc89(tmp_path)
    path = tmp_path / "Fsc89-setup1-fsci_test.csv"
    _rewrite_csv(path, lambda rows: rows + [["novel_test", "soundscape_1.wav", "0.5", "89"]])
    with pytest.raises(MetadataError, match="label 89 outside 0..5"):
        load_fsc89(str(tmp_path))
    _rewrite_csv(path, lambda rows: [["folder", "file", "start", "label"]] + rows[1:])
    with pytest.raises(MetadataError, match="expected exactly 'data_folder,FSD_MIX_SED_fil"):
        load_fsc89(str(tmp_path))


def test_fsc89_offset_past_the_end_of_a_soundscape(tmp_path):
    F.make_fsc89(tmp_path)
    path = tmp_path / "Fsc89-setup1-fsci_val.csv"
    _rewrite_csv(path, lambda rows: rows[:1] + [rows[1][:2] + ["9.0", rows[1][3]]] + rows[2:])
    ds = load_fsc89(str(tmp_path))
    with pytest.raises(BadAudioFile, match="past the end"):
        load_table(ds.splits["val"], ds.sample_rate, ds.num_samples)


# ----------------------------------------------------------------------------------------
# ESC-50, UrbanSound8K, Speech Commands


def test_esc50_folds_and_seeded_validation(tmp_path):
    F.make_esc50(tmp_path)
    ds = load_esc50(str(tmp_path), test_fold=2)
    assert ds.class_names == ["dog", "rooster", "pig"] and ds.sample_rate == 32000
    assert all(Path(p).name.startswith("2-") for p in ds.splits["test"].paths)
    assert len(ds.splits["test"]) == 6
    tr, va = ds.splits["train"].paths, ds.splits["val"].paths
    assert not set(tr) & set(va) and len(tr) + len(va) == 24
    assert sorted(ds.splits["val"].targets.tolist()) == [0, 0, 1, 1, 2, 2]
    src = lambda p: Path(p).name.split("-")[1]  # noqa: E731 - clips of one source together
    assert not {src(p) for p in tr} & {src(p) for p in va}
    assert load_esc50(str(tmp_path), test_fold=2).splits["val"].paths == va
    seeds = {tuple(load_esc50(str(tmp_path), test_fold=2, seed=s).splits["val"].paths)
             for s in range(6)}
    assert len(seeds) > 1
    _read_ok(ds)
    esc10 = load_esc50(str(tmp_path), esc10=True)
    assert esc10.name == "esc10" and esc10.class_names == ["dog", "rooster"]
    with pytest.raises(ValueError, match="test_fold"):
        load_esc50(str(tmp_path), test_fold=6)


def test_esc50_missing_and_bad_metadata(tmp_path):
    with pytest.raises(DatasetNotFound) as err:
        load_esc50(str(tmp_path))
    assert "meta/esc50.csv" in str(err.value) and "github.com/karolpiczak/ESC-50" in str(err.value)
    F.make_esc50(tmp_path)
    _rewrite_csv(tmp_path / "meta" / "esc50.csv", lambda rows: [r[:5] for r in rows])
    with pytest.raises(MetadataError, match="filename,fold,target,category,esc10,src_file,take"):
        load_esc50(str(tmp_path))


def test_urbansound8k_folds_mixed_formats(tmp_path):
    F.make_urbansound8k(tmp_path)
    ds = load_urbansound8k(str(tmp_path), test_fold=3, sample_rate=16000)
    assert ds.class_names == F.US_CLASSES and ds.num_samples == 64000
    assert all("/audio/fold3/" in p for p in ds.splits["test"].paths)
    assert not any("/audio/fold3/" in p for p in ds.splits["train"].paths)
    assert len(ds.splits["train"]) + len(ds.splits["val"]) == 54
    waves = _read_ok(ds)        # 8-bit, 24-bit, stereo, 8 / 22.05 / 44.1 / 48 kHz
    assert (np.abs(waves).max(axis=1) > 0.3).all()
    with pytest.raises(DatasetNotFound, match="UrbanSound8K.csv"):
        load_urbansound8k(str(tmp_path / "audio"))


def test_speechcommands_lists_and_background_noise(tmp_path):
    fx = F.make_speechcommands(tmp_path)
    ds = load_speechcommands(str(tmp_path), words=fx["words"])
    assert ds.class_names == ["no", "up", "yes"]
    assert len(ds.splits["train"]) == 3 * fx["train_per_word"]
    assert [str(Path(p).relative_to(tmp_path)) for p in ds.splits["val"].paths] == fx["val"]
    assert not any("_background_noise_" in p for s in ds.splits.values() for p in s.paths)
    _read_ok(ds, "val")
    assert len(WORDS_V2) == 35
    with pytest.raises(DatasetNotFound) as err:
        load_speechcommands(str(tmp_path))
    assert "backward" in str(err.value) and "speech_commands_v0.02" in str(err.value)
    (tmp_path / "testing_list.txt").write_text("\n".join(fx["test"] + ["yes/not_there.wav"]))
    with pytest.raises(MissingAudioFiles, match="not_there.wav"):
        load_speechcommands(str(tmp_path), words=fx["words"])


# ----------------------------------------------------------------------------------------
# multi-label: AudioSet strong, FSD50K


def test_audioset_strong_multi_hot_top_classes(tmp_path):
    fx = F.make_audioset_strong(tmp_path)
    ds = load_audioset_strong(str(tmp_path), num_classes=3)
    assert ds.multilabel and ds.class_names == ["Speech", "Music", "Dog"]
    assert ds.info["mids"] == fx["mids"][:3]
    for split in ds.splits.values():
        assert split.targets.dtype == np.uint8 and split.targets.shape[1] == 3
        assert split.targets.any(axis=1).all()
    assert len(ds.splits["train"]) + len(ds.splits["val"]) == sum(
        1 for i in range(12) if set(fx["labels_for"](i)) & set(fx["mids"][:3]))
    names = {Path(p).name for p in ds.splits["test"].paths}
    assert "ZqlGt800_TA_30000.wav" in names   # <segment_id>.wav
    assert "ZqlGt801_TA.wav" in names         # <YTID>.wav
    assert "YZqlGt802_TA.wav" in names        # Y<YTID>.wav
    _read_ok(ds)
    assert load_audioset_strong(str(tmp_path), num_classes=3).splits["val"].paths == \
        ds.splits["val"].paths


def test_audioset_strong_missing_audio_and_labels(tmp_path):
    F.make_audioset_strong(tmp_path)
    victim = next((tmp_path / "audio" / "eval").iterdir())
    victim.unlink()
    with pytest.raises(MissingAudioFiles, match="audioset_eval_strong.tsv"):
        load_audioset_strong(str(tmp_path), num_classes=3)
    ds = load_audioset_strong(str(tmp_path), num_classes=3, on_bad_file="skip")
    assert ds.info["skipped_missing"] == {"test": 1}
    (tmp_path / "mid_to_display_name.tsv").unlink()
    with pytest.raises(DatasetNotFound, match="mid_to_display_name.tsv"):
        load_audioset_strong(str(tmp_path))
    with pytest.raises(DatasetNotFound) as err:
        load_audioset_strong(str(tmp_path / "x"))
    assert "audio/train/<segment_id>.wav" in str(err.value)
    assert "research.google.com/audioset" in str(err.value)


def test_fsd50k_release_split_and_top_classes(tmp_path):
    fx = F.make_fsd50k(tmp_path)
    ds = load_fsd50k(str(tmp_path), num_classes=3)
    assert ds.multilabel and ds.class_names == ["Speech", "Music", "Bark"]
    assert len(ds.splits["val"]) == 3 and len(ds.splits["train"]) == 9
    assert ds.splits["test"].paths[0] == str(tmp_path / "FSD50K.eval_audio" / "37199.wav")
    first = ds.splits["train"].targets[0]     # 64760: Speech, Bark, Domestic animals
    np.testing.assert_array_equal(first, [1, 0, 1])
    _read_ok(ds)
    F.make_fsd50k(tmp_path / "nosplit", with_split=False)
    ds2 = load_fsd50k(str(tmp_path / "nosplit"), num_classes=3, val_fraction=0.25)
    assert len(ds2.splits["train"]) + len(ds2.splits["val"]) == len(fx["dev"])
    with pytest.raises(DatasetNotFound, match="FSD50K.ground_truth"):
        load_fsd50k(str(tmp_path / "nosplit" / "FSD50K.dev_audio"))


# ----------------------------------------------------------------------------------------
# user folder


def test_folder_seeded_stratified_split(tmp_path):
    fx = F.make_folder(tmp_path)
    ds = load_folder(str(tmp_path), val_fraction=0.2, test_fraction=0.2, seed=3)
    assert ds.class_names == fx["classes"]
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        assert np.bincount(ds.splits[split].targets).tolist() == [n] * 3
    all_paths = sum((t.paths for t in ds.splits.values()), [])
    assert len(set(all_paths)) == 30 and not any(p.endswith(".txt") for p in all_paths)
    assert any("/takes/" in p for p in all_paths)
    again = load_folder(str(tmp_path), val_fraction=0.2, test_fraction=0.2, seed=3)
    assert again.splits["test"].paths == ds.splits["test"].paths
    other = load_folder(str(tmp_path), val_fraction=0.2, test_fraction=0.2, seed=4)
    assert other.splits["test"].paths != ds.splits["test"].paths
    _read_ok(ds)


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetNotFound, match="<root>/<class_name>"):
        load_folder(str(tmp_path / "none"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFound, match="class sub-folders"):
        load_folder(str(tmp_path / "empty"))
    F.make_folder(tmp_path / "few", per_class=2)
    with pytest.raises(MetadataError, match="at least 3"):
        load_folder(str(tmp_path / "few"))
    with pytest.raises(ValueError, match="on_bad_file"):
        load_folder(str(tmp_path / "few"), on_bad_file="ignore")


# ----------------------------------------------------------------------------------------
# config files

CONFIGS = ["nsynth100", "nsynth200", "nsynth300", "nsynth400", "ls100", "fsc89", "esc50",
           "urbansound8k", "speechcommands", "audioset_strong", "fsd50k", "folder"]
PRESETS = {  # sample_rate, n_fft, hop_length, n_mels, f_min, f_max
    "ls100": (16000, 400, 160, 128, 0.0, 8000.0),
    "nsynth100": (16000, 2048, 1024, 128, 0.0, 8000.0),
    "fsc89": (44100, 2048, 1024, 128, 0.0, 22050.0),
    "audioset_strong": (32000, 1024, 320, 64, 50.0, 14000.0),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_dataset_config_schema(name):
    from omegaconf import OmegaConf

    path = REPO / "conf" / "dataset" / f"{name}.yaml"
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith(f"# python -m audiocil dataset={name} dataset.root=")
    node = OmegaConf.load(path)
    assert set(node) == {"name", "root", "on_bad_file", "loader", "frontend"} and node.name == name
    assert OmegaConf.is_missing(node, "root")
    assert set(node.frontend) == {"sample_rate", "n_fft", "hop_length", "n_mels", "f_min",
                                  "f_max", "log_floor"}
    cfg = OmegaConf.create({"dataset": node})
    cfg.dataset.root = "/data/x"
    loader = OmegaConf.to_container(cfg.dataset.loader, resolve=True)
    assert loader["root"] == "/data/x"
    assert loader["sample_rate"] == cfg.dataset.frontend.sample_rate
    assert loader["on_bad_file"] == "error"
    cfg.dataset.on_bad_file = "skip"  # the natural spelling reaches the loader
    assert cfg.dataset.loader.on_bad_file == "skip"
    module, fn = loader.pop("_target_").rsplit(".", 1)
    params = inspect.signature(getattr(importlib.import_module(module), fn)).parameters
    assert set(loader) <= set(params), set(loader) - set(params)
    if name in PRESETS:
        fe = cfg.dataset.frontend
        assert (fe.sample_rate, fe.n_fft, fe.hop_length, fe.n_mels, fe.f_min, fe.f_max) == \
            PRESETS[name]


def test_config_instantiates_the_loader(tmp_path):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    F.make_nsynth(tmp_path)
    cfg = OmegaConf.create({"dataset": OmegaConf.load(REPO / "conf/dataset/nsynth100.yaml")})
    cfg.dataset.root = str(tmp_path)
    OmegaConf.set_struct(cfg, True)
    ds = instantiate(cfg.dataset.loader)
    assert isinstance(ds, AudioDataset) and ds.name == "nsynth100" and ds.num_classes == 4
