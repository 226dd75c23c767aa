"""The multi-label scenario: which clips and labels each phase trains on, and what is tested."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from audiocil.data.catalog import AudioDataset, ClipTable
from audiocil.data.datamodule import CILDataModule, ClassBalancedSampler
from audiocil.run import build_named
from audiocil.scenarios.multilabel import MultilabelScenario
from tests.conftest import TINY, compose_cfg
from tests.multilabel.synthmix import SYNTHMIX


@pytest.fixture(scope="module")
def stream(shared_root):
    cfg = compose_cfg([*TINY, *SYNTHMIX], shared_root)  # the dataset is made once per session
    dataset = instantiate(cfg.dataset.loader)
    scenario = build_named(cfg.scenario)
    order, tasks = scenario.make_tasks(dataset)
    dm = CILDataModule(dataset, order, cfg.paths.cache_dir, dict(cfg.dataset.frontend), seed=0)
    dm.prepare()
    return scenario, tasks, dm


def phase_batches(scenario, task, dm, sampler="shuffle"):
    dm.set_sampler(sampler)
    dm.set_own(scenario.own_indices(task, dm))
    dm.set_task(task.index, dm.own_indices, task.total, 16)
    return list(dm.train_dataloader())


def test_tasks_partition_the_classes(stream):
    scenario, tasks, dm = stream
    assert isinstance(scenario, MultilabelScenario) and scenario.multilabel
    assert [len(t.classes) for t in tasks] == [4, 2, 2]
    assert sorted(c for t in tasks for c in t.classes) == list(range(8))


def test_no_past_or_future_label_reaches_a_training_batch(stream):
    scenario, tasks, dm = stream
    full = dm.targets["train"]
    served = {}
    for task in tasks:
        for sampler in ("shuffle", "balanced"):
            for _, y, idx in phase_batches(scenario, task, dm, sampler):
                outside = torch.ones(y.shape[1], dtype=torch.bool)
                outside[task.known:task.total] = False
                assert y[:, outside].sum() == 0, f"phase {task.index}: a label of another phase leaked"
                assert (y[:, task.known:task.total].sum(1) > 0).all()  # every clip has a label of the phase
                # the phase's own labels are kept as they are
                assert torch.equal(y[:, task.known:task.total], full[idx][:, task.known:task.total])
                served.setdefault(task.index, set()).update(idx.tolist())
    # the phase's clips are exactly those carrying any of its classes; a clip may serve several phases
    for task in tasks:
        want = set(np.flatnonzero(full[:, task.known:task.total].sum(1).numpy() > 0).tolist())
        assert served[task.index] == want
    assert served[0] & served[1], "a clip with classes of two phases serves both"


def test_replayed_exemplars_keep_only_the_labels_of_their_phase(stream):
    from audiocil.methods.replay import Replay  # the base class's multi-label memory

    scenario, tasks, dm = stream
    cfg = compose_cfg([*TINY, *SYNTHMIX, "method=replay", "method.memory.size=24"], dm.cache_dir)
    from audiocil.run import build_strategy

    strategy = build_strategy(cfg)
    assert isinstance(strategy, Replay)
    t0, t1 = tasks[0], tasks[1]
    dm.set_own(scenario.own_indices(t0, dm))
    strategy.before_task(t0, dm)
    assert strategy.multilabel
    strategy.after_task(t0, dm)
    mem = strategy.memory.indices()
    assert len(mem) == len(np.unique(mem)) == 24 // 4 * 4  # quota per class, no clip twice
    dm.set_own(scenario.own_indices(t1, dm))
    strategy.before_task(t1, dm)
    idx = strategy.train_indices(t1, dm)
    dm.set_task(1, idx, t1.total, 16)
    ds = dm.subset(idx)
    full = dm.targets["train"]
    for i in idx:
        y = ds.target(int(i))
        kept = (full[i] > 0) & (y == 0)
        allowed = torch.zeros_like(y, dtype=torch.bool)
        allowed[t1.known:t1.total] = True
        if int(i) in set(mem.tolist()):
            allowed[t0.known:t0.total] = True
        assert y[~allowed].sum() == 0
        assert not kept[allowed].any()


def test_test_loader_serves_the_whole_test_set_once_even_sharded(stream):
    scenario, _, dm = stream
    dm.batch_size = 16
    whole = torch.cat([i for _, _, i in scenario.test_loader(dm)]).tolist()
    assert sorted(whole) == dm.valid["test"].tolist()
    # two ranks: disjoint shards whose union is the test set (no padding)
    from audiocil.data.datamodule import UnpaddedDistributedSampler

    ds = dm.subset(dm.valid["test"], "test")
    shards = [list(UnpaddedDistributedSampler(ds, 2, r)) for r in (0, 1)]
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == list(range(len(ds)))


def test_balanced_sampler_is_seeded_and_shards_one_draw():
    y = torch.zeros(10, 3)
    y[:8, 0] = 1
    y[8, 1] = 1
    y[9, 2] = 1
    s = ClassBalancedSampler(y, seed=3)
    draw = list(s)
    assert draw == list(ClassBalancedSampler(y, seed=3)) and len(draw) == 10
    # rare classes (one clip each) are drawn about as often as the frequent one
    s.set_epoch(1)
    many = []
    for e in range(30):
        s.set_epoch(e)
        many += list(s)
    counts = np.bincount([0 if i < 8 else i - 7 for i in many], minlength=3)
    assert counts.min() > 0.2 * len(many)
    r0, r1 = ClassBalancedSampler(y, 3, world=2, rank=0), ClassBalancedSampler(y, 3, world=2, rank=1)
    assert len(r0) == len(r1) == 5
    assert list(r0) == draw[0::2] and list(r1) == draw[1::2]  # one draw, shared out


def test_single_label_data_is_refused():
    table = ClipTable(["a.wav", "b.wav"], np.array([0, 1]))
    dataset = AudioDataset("single", ["x", "y"], 16000, 1.0, False,
                           {"train": table, "val": table, "test": table})
    with pytest.raises(ValueError, match="multi-label dataset"):
        MultilabelScenario(4, 4).make_tasks(dataset)
