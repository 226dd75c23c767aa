"""The folder loader's given splits: ``root/{train,val,test}/<class>/`` and a CSV manifest."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from audiocil.data.loaders._common import DatasetNotFound, MetadataError
from audiocil.data.loaders.folder import load_folder
from audiocil.errors import ConfigError, DataError


def _fixtures():
    name = "audiocil_tests_data_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("fixtures.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


F = _fixtures()
CLASSES = ("cat", "dog", "owl")


def make_split_folders(root: Path, counts=None, classes=CLASSES) -> Path:
    """``root/{split}/<class>/<class>_<split>_<i>.wav``; ``counts`` = files per split."""
    counts = counts or {"train": 5, "test": 2}
    for s, n in counts.items():
        for c_i, cls in enumerate(classes):
            for i in range(n):
                F.write_tone(root / s / cls / f"{cls}_{s}_{i}.wav", seconds=0.1,
                             freq=300.0 + 100 * c_i)
    return root


def write_manifest(path: Path, rows, header=("path", "label", "split")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([list(header), *rows])
    return path


def manifest_rows(base: Path, counts=None) -> list[list[str]]:
    """Audio under ``base/audio/<class>/`` and the rows listing it (relative paths)."""
    counts = counts or {"train": 4, "val": 1, "test": 2}
    rows = []
    for c_i, cls in enumerate(CLASSES):
        for s, n in counts.items():
            for i in range(n):
                rel = f"audio/{cls}/{s}{i}.wav"
                F.write_tone(base / rel, seconds=0.1, freq=300.0 + 100 * c_i)
                rows.append([rel, cls, s])
    return rows


def _stems(table) -> list[str]:
    return [Path(p).name for p in table.paths]


# ---- split=folders -----------------------------------------------------------------------

def test_folders_with_val_keep_the_given_split(tmp_path):
    root = make_split_folders(tmp_path, {"train": 4, "val": 1, "test": 2})
    ds = load_folder(str(root), split="folders")
    assert ds.class_names == list(CLASSES)
    for s, n in (("train", 4), ("val", 1), ("test", 2)):
        assert np.bincount(ds.splits[s].targets).tolist() == [n] * 3
        assert all(f"_{s}_" in name for name in _stems(ds.splits[s]))  # nothing moved
    assert ds.info["split"] == "folders" and not ds.info["val_carved"]


def test_folders_without_val_carve_it_from_train_only(tmp_path):
    root = make_split_folders(tmp_path, {"train": 10, "test": 3})
    ds = load_folder(str(root), split="folders", val_fraction=0.2, seed=5)
    assert np.bincount(ds.splits["val"].targets).tolist() == [2, 2, 2]
    assert np.bincount(ds.splits["train"].targets).tolist() == [8, 8, 8]
    assert all("_train_" in n for n in _stems(ds.splits["val"]))
    assert np.bincount(ds.splits["test"].targets).tolist() == [3, 3, 3]  # test untouched
    assert not set(ds.splits["val"].paths) & set(ds.splits["train"].paths)
    assert ds.info["val_carved"]
    again = load_folder(str(root), split="folders", val_fraction=0.2, seed=5)
    assert again.splits["val"].paths == ds.splits["val"].paths
    other = load_folder(str(root), split="folders", val_fraction=0.2, seed=6)
    assert other.splits["val"].paths != ds.splits["val"].paths
    with pytest.raises(ConfigError, match="val_fraction=0.0: .* gives no val split"):
        load_folder(str(root), split="folders", val_fraction=0.0)


def test_folders_errors_name_the_path_and_the_fix(tmp_path):
    F.make_folder(tmp_path / "flat")  # the seeded layout, read as split folders
    with pytest.raises(DatasetNotFound, match=r"train split folder .*flat/train .*"
                                              r"dataset.loader.split=seeded"):
        load_folder(str(tmp_path / "flat"), split="folders")
    root = make_split_folders(tmp_path / "notest", {"train": 3})
    with pytest.raises(DatasetNotFound, match=r"test split folder .*notest/test"):
        load_folder(str(root), split="folders")
    root = make_split_folders(tmp_path / "extra", {"train": 3, "test": 1})
    F.write_tone(root / "test" / "bat" / "b.wav")
    with pytest.raises(MetadataError, match=r"extra/test/bat is a test class with no training "
                                            r"folder .*extra/train/bat. Add its training clips"):
        load_folder(str(root), split="folders")
    root = make_split_folders(tmp_path / "untested", {"train": 3, "test": 1}, classes=("cat",))
    F.write_tone(root / "train" / "dog" / "d.wav")
    with pytest.raises(MetadataError, match="training class 'dog' has no test folder"):
        load_folder(str(root), split="folders")
    root = make_split_folders(tmp_path / "emptyclass", {"train": 3, "test": 1})
    (root / "test" / "eel").mkdir()
    (root / "train" / "eel").mkdir()
    with pytest.raises(MetadataError, match=r"emptyclass/train/eel holds no audio file"):
        load_folder(str(root), split="folders")


# ---- split=manifest ----------------------------------------------------------------------

def test_manifest_reads_rows_relative_to_its_folder(tmp_path):
    base = tmp_path / "meta"
    rows = manifest_rows(base)
    write_manifest(base / "clips.csv", rows)
    # a relative manifest path starts at root
    ds = load_folder(str(tmp_path), split="manifest", manifest="meta/clips.csv")
    assert ds.class_names == list(CLASSES)
    for s, n in (("train", 4), ("val", 1), ("test", 2)):
        assert np.bincount(ds.splits[s].targets).tolist() == [n] * 3
        assert all(Path(p).name.startswith(s) for p in ds.splits[s].paths)
        assert all(Path(p).is_file() and Path(p).is_absolute() for p in ds.splits[s].paths)
    assert ds.info["manifest"] == str(base / "clips.csv")
    # the same rows without val: carved from train
    write_manifest(base / "noval.csv", [r for r in rows if r[2] != "val"])
    ds2 = load_folder(str(tmp_path), split="manifest", manifest=str(base / "noval.csv"),
                      val_fraction=0.25)
    assert np.bincount(ds2.splits["val"].targets).tolist() == [1, 1, 1]
    assert all(Path(p).name.startswith("train") for p in ds2.splits["val"].paths)


@pytest.mark.parametrize("edit, match", [
    (lambda rows: rows[:3] + [[rows[3][0], rows[3][1], "valid"]] + rows[4:],
     r"clips.csv, line 5: split 'valid' .* must be one of train, val, test"),
    (lambda rows: rows + [["audio/cat/nothere.wav", "cat", "train"]],
     r"clips.csv, line 23: the file audio/cat/nothere.wav .* does not exist. Fix the path"),
    (lambda rows: rows + [["audio/cat/test0.wav", "bat", "test"]],
     r"line 23: audio/cat/test0.wav is already listed on line"),
    (lambda rows: [r for r in rows if not (r[1] == "owl" and r[2] == "train")],
     r"clips.csv, line \d+: class 'owl' is in the (val|test) split but has no train row"),
    (lambda rows: [r for r in rows if not (r[1] == "dog" and r[2] == "test")],
     r"training class 'dog' has no test row"),
])
def test_manifest_errors_name_the_row_and_the_fix(tmp_path, edit, match):
    rows = manifest_rows(tmp_path)
    write_manifest(tmp_path / "clips.csv", edit(rows))
    with pytest.raises(DataError, match=match):
        load_folder(str(tmp_path), split="manifest", manifest="clips.csv")


def test_manifest_missing_file_skipped_on_request_and_bad_header(tmp_path):
    rows = manifest_rows(tmp_path) + [["audio/cat/nothere.wav", "cat", "train"]]
    write_manifest(tmp_path / "clips.csv", rows)
    ds = load_folder(str(tmp_path), split="manifest", manifest="clips.csv", on_bad_file="skip")
    assert len(ds.splits["train"]) == 12 and ds.info["skipped_missing"] == {"train": 1}
    write_manifest(tmp_path / "bad.csv", rows, header=("file", "label", "split"))
    with pytest.raises(MetadataError, match="expected exactly 'path,label,split'"):
        load_folder(str(tmp_path), split="manifest", manifest="bad.csv")
    with pytest.raises(DatasetNotFound, match=r"manifest .*none.csv .*relative path starts at"):
        load_folder(str(tmp_path), split="manifest", manifest="none.csv")


def test_split_and_manifest_keys_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="dataset.loader.split=random: must be one of"):
        load_folder(str(tmp_path), split="random")
    with pytest.raises(ConfigError, match="split=manifest needs dataset.loader.manifest"):
        load_folder(str(tmp_path), split="manifest")
    from audiocil.config import compose
    from audiocil.schema import validate

    base = ["dataset=folder", f"dataset.root={tmp_path}"]
    validate(compose(base + ["dataset.loader.split=folders"]))  # fine
    with pytest.raises(ConfigError, match=r"dataset.loader.manifest=null: must be the path of a "
                                          r"CSV path,label,split"):
        validate(compose(base + ["dataset.loader.split=manifest"]))
    with pytest.raises(ConfigError, match=r"dataset.loader.split=csv: must be one of "
                                          r"seeded\|folders\|manifest"):
        validate(compose(base + ["dataset.loader.split=csv"]))
    with pytest.raises(ConfigError, match=r"dataset.loader.manifest=x.csv: must be null with "
                                          r"dataset.loader.split=seeded"):
        validate(compose(base + ["dataset.loader.manifest=x.csv"]))


def test_config_reads_split_folders_end_to_end(tmp_path):
    """``dataset=folder dataset.loader.split=folders`` through Hydra's instantiate."""
    from hydra.utils import instantiate

    from audiocil.config import compose

    root = make_split_folders(tmp_path / "d", {"train": 4, "test": 2})
    cfg = compose(["dataset=folder", f"dataset.root={root}", "dataset.loader.split=folders",
                   f"paths.root_dir={tmp_path}"])
    ds = instantiate(cfg.dataset.loader)
    assert len(ds.splits["test"]) == 6 and ds.info["split"] == "folders"
