"""Features served from the cache's memory map: same values and results as the in-RAM copy,
a bounded resident window, and only the global rank 0 builds a missing cache entry."""

from __future__ import annotations

import json
import pickle
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

import audiocil.run as run_module
from audiocil.data import cache as C
from audiocil.data.datamodule import CILDataModule, FileFeatures, launch_rank
from tests.conftest import TINY, compose_cfg, epochs
from tests.data.test_cache import FRONTEND, make_dataset


def mapped_rss(path: str) -> int:
    """Resident bytes of this process's mappings of ``path`` (Linux /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(" ", 1)[0]
        if "-" in head and not line.startswith(("Rss", "Pss")) and not head.endswith(":"):
            inside = line.rstrip().endswith(path)
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1]) * 1024
    return total


@pytest.fixture
def npy(tmp_path) -> tuple[Path, np.ndarray]:
    arr = np.random.default_rng(0).standard_normal((40, 8, 32)).astype(np.float16)
    np.save(tmp_path / "data.npy", arr)
    return tmp_path / "data.npy", arr


def test_file_features_index_like_a_tensor(npy):
    path, arr = npy
    x = FileFeatures(path)
    ref = torch.from_numpy(arr)
    assert len(x) == 40 and x.shape == (40, 8, 32) and x.dtype == torch.float16
    assert x.element_size() == 2
    idx = np.array([5, 3, 3, 39])
    for key in (7, np.int64(7), -1, idx, idx.tolist(), torch.from_numpy(idx), slice(2, 9),
                slice(None, None, 3), slice(30, 2, -4), np.array([-2, 4, 5, 6, 7]),
                np.zeros(0, np.int64)):
        got = x[key]
        as_numpy = np.asarray(key) if isinstance(key, (list, torch.Tensor)) else key
        want = torch.from_numpy(np.ascontiguousarray(arr[as_numpy]))  # numpy: negative steps
        assert isinstance(got, torch.Tensor) and torch.equal(got, want), key
    got = x[idx]
    got += 1  # a copy: the file is untouched
    assert torch.equal(x[idx], ref[idx])
    again = pickle.loads(pickle.dumps(x))  # what a spawned DataLoader worker receives
    assert torch.equal(again[idx], ref[idx])


def test_file_features_say_what_is_out_of_range(npy):
    x = FileFeatures(npy[0])
    for key in (40, -41, np.array([0, 40]), [[0, 1]]):
        with pytest.raises(IndexError, match="data.npy"):
            x[key]


def test_a_truncated_entry_is_named(tmp_path, npy):
    path, _ = npy
    cut = tmp_path / "cut.npy"
    cut.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(OSError, match="cut.npy.*truncated"):
        FileFeatures(cut)


def resident_kb() -> int:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            return int(line.split()[1])
    raise AssertionError("no Rss line")


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc")
def test_reading_random_rows_keeps_nothing_of_the_file_resident(tmp_path):
    """The rows go through the page cache, not through a map of the file: a map's pages stay
    in the resident set of the process that read them (and a kernel with large folios maps
    far more than the row: 0.8 MB per 51 KB row here), which is what made a 50 000-clip run
    hold 1.4 GB of its cache."""
    arr = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float16,
                                    shape=(4096, 128, 64))  # 16 KiB rows, 64 MiB
    arr[:] = 1
    arr.flush()
    del arr
    x = FileFeatures(tmp_path / "big.npy")
    rows = np.random.default_rng(0).integers(0, 4096, size=(64, 8))  # 8 MiB in all
    x[rows[0]]  # the first read's allocations
    before = resident_kb()
    for batch in rows:
        assert float(x[batch].double().sum()) == 8 * 128 * 64
    assert resident_kb() - before < 4096  # under 4 MiB: one batch is 128 KiB
    assert mapped_rss(x.path) == 0


@pytest.fixture
def datamodules(tmp_path):
    ds = make_dataset(tmp_path)
    dms = {}
    for serve in ("copy", "file"):
        dm = CILDataModule(ds, [1, 0], str(tmp_path / "cache"), FRONTEND, seed=3, serve=serve)
        dm.prepare()
        dms[serve] = dm
    return dms


def test_the_file_serves_what_the_copy_serves(datamodules):
    copy, served = datamodules["copy"], datamodules["file"]
    assert isinstance(copy.data["train"], torch.Tensor)
    assert isinstance(served.data["train"], FileFeatures)
    assert served.sample_nbytes == copy.sample_nbytes == 8 * 32 * 2
    idx = np.array([3, 0, 2])
    for split in ("train", "val", "test"):
        assert torch.equal(served.data[split][idx], copy.data[split][idx])
    for dm in (copy, served):
        dm.set_own(np.arange(4), n_seen=2)
        dm.set_task(0, np.arange(4), 2, batch_size=3)
    batches = [[list(dm.train_dataloader()), list(dm.test_dataloader())] for dm in (copy, served)]
    for (x1, y1, i1), (x2, y2, i2) in zip(*(b[0] + b[1] for b in batches), strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2) and torch.equal(i1, i2)
    served.num_workers = 1  # a forked DataLoader worker reads through the same descriptor
    assert all(torch.equal(a[0], b[0]) for a, b in
               zip(served.train_dataloader(), batches[0][0], strict=True))
    m1, s1 = copy.first_task_stats([0, 1])
    m2, s2 = served.first_task_stats([0, 1])
    assert torch.equal(m1, m2) and torch.equal(s1, s2)
    with pytest.raises(ValueError, match="serve must be"):
        CILDataModule(copy.dataset, [0, 1], "x", FRONTEND, serve="ram")


@pytest.mark.slow  # ~45 s on a loaded 2-core machine: two runs and a dataset build
def test_a_tiny_run_gives_the_same_figures_from_the_file_and_from_ram(tmp_path, monkeypatch):
    """iCaRL reads exemplars and class means through dm.data[split][indices]."""
    monkeypatch.setenv(run_module.RUN_DIR_ENV, "")
    figures = {}
    for serve in ("copy", "file"):
        monkeypatch.setattr(run_module, "CILDataModule", partial(CILDataModule, serve=serve))
        cfg = compose_cfg([*TINY, *epochs(1), "method=icarl", "method.memory.size=16",
                           "trainer.limit_train_batches=2", "trainer.limit_val_batches=0"],
                          tmp_path)
        run_module.run(cfg, tmp_path / serve)
        res = json.loads((tmp_path / serve / "results.json").read_text())
        figures[serve] = {k: res[k] for k in ("accuracy_matrix", "nme", "memory_samples")}
    assert figures["file"] == figures["copy"]


# ---- several ranks ------------------------------------------------------------------------

@pytest.mark.parametrize(("env", "rank"), [
    ({}, 0), ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, 0), ({"LOCAL_RANK": "1"}, 1),
    ({"NODE_RANK": "2"}, 2), ({"RANK": "3"}, 3)])
def test_launch_rank_reads_what_the_launchers_set(env, rank, monkeypatch):
    for var in ("RANK", "GLOBAL_RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_NTASKS", "SLURM_PROCID",
                "TORCHELASTIC_RUN_ID", "LSB_JOBID", "KUBERNETES_PORT", "OMPI_COMM_WORLD_RANK"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert launch_rank() == rank


def test_a_non_builder_waits_for_the_entry_and_never_builds(tmp_path, monkeypatch):
    ds = make_dataset(tmp_path)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    built = []
    real_build = C._build_entry
    monkeypatch.setattr(C, "_build_entry", lambda *a, **k: (built.append(a[0]), real_build(*a, **k)))
    got = {}

    def waiter():
        got["entry"] = C.cached_array(ds, "train", cache_dir, FRONTEND, build=False,
                                      wait_seconds=60, poll_seconds=0.05)

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)
    assert "entry" not in got and not any(p.name.startswith("tiny-train") for p in cache_dir.iterdir())
    data, _, meta = C.cached_array(ds, "train", cache_dir, FRONTEND)  # rank 0 builds
    t.join(30)
    assert len(built) == 1
    assert np.array_equal(got["entry"][0], data) and got["entry"][2]["key"] == meta["key"]
    with pytest.raises(TimeoutError, match="global rank 0"):
        C.cached_array(ds, "val", cache_dir, FRONTEND, build=False, wait_seconds=0.2,
                       poll_seconds=0.05)
    assert len(built) == 1


def test_eval_clips_per_class_limits_evaluation_and_says_so(tmp_path, monkeypatch, capsys):
    """data.eval_clips_per_class=k: every seen class is tested on its first k clips (synth20:
    20 test clips per class -> 3), training is untouched, results.json records k and the
    summary says the figures are not benchmark figures."""
    from audiocil.data.catalog import AudioDataset, ClipTable

    monkeypatch.setenv(run_module.RUN_DIR_ENV, "")
    cfg = compose_cfg([*TINY, *epochs(1), "method=finetune", "trainer.limit_train_batches=2",
                       "data.eval_clips_per_class=3"], tmp_path)
    run_module.run(cfg, tmp_path / "run")
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["eval_clips_per_class"] == 3
    assert "NOT A BENCHMARK FIGURE: evaluated on the first 3 clip(s)" in capsys.readouterr().out
    # accuracies over 4 classes x 3 clips: multiples of 100/12
    for row in res["accuracy_matrix"]:
        assert all(abs(a * 12 / 100 - round(a * 12 / 100)) < 1e-6 for a in row if a is not None)

    # the selection itself: the first k of each class in file order (multi-label: the union)
    tables = {s: ClipTable([f"{s}{i}.wav" for i in range(6)], np.array([0, 1, 0, 0, 1, 1]))
              for s in ("train", "val", "test")}
    dm = CILDataModule(AudioDataset("t", ["a", "b"], 8000, 0.1, False, tables), [0, 1],
                       str(tmp_path), {}, eval_per_class=2)
    dm.targets = {s: torch.tensor([0, 1, 0, 0, 1, 1]) for s in tables}
    assert dm.eval_subset(np.arange(6), "test").tolist() == [0, 1, 2, 4]
    multi = np.array([[1, 0], [1, 1], [1, 0], [0, 1], [0, 1]])
    dm.dataset = AudioDataset("t", ["a", "b"], 8000, 0.1, True, {
        s: ClipTable([f"{s}{i}.wav" for i in range(5)], multi) for s in tables})
    dm.targets = {"test": torch.from_numpy(multi.astype(np.float32))}
    assert dm.eval_subset(np.arange(5), "test").tolist() == [0, 1, 3]
    with pytest.raises(ValueError, match="eval_clips_per_class"):
        CILDataModule(dm.dataset, [0, 1], str(tmp_path), {}, eval_per_class=0)
