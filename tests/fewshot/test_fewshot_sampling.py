"""The few-shot protocol: shot draws, episodes and the task list with trials."""

from __future__ import annotations

import numpy as np
import pytest

from audiocil.data.catalog import AudioDataset, ClipTable
from audiocil.scenarios.fewshot import EpisodeBatchSampler, FewShotScenario, draw_shots, episode

POOLS = {c: np.arange(100 * c, 100 * c + 40) for c in range(10, 15)}


def test_exactly_k_distinct_shots_per_class_from_its_own_pool():
    shots = draw_shots(POOLS, 5, seed=3)
    assert len(shots) == 5 * len(POOLS)
    for k, (c, pool) in enumerate(POOLS.items()):
        mine = shots[5 * k:5 * k + 5]
        assert len(set(mine.tolist())) == 5
        assert np.isin(mine, pool).all(), c


def test_shots_are_reproducible_and_differ_across_trials_and_seeds():
    a = draw_shots(POOLS, 5, seed=3, trial=0)
    assert np.array_equal(a, draw_shots(POOLS, 5, seed=3, trial=0))
    assert not np.array_equal(a, draw_shots(POOLS, 5, seed=3, trial=1))
    assert not np.array_equal(a, draw_shots(POOLS, 5, seed=4, trial=0))


def test_a_class_draw_does_not_depend_on_the_other_classes():
    alone = draw_shots({12: POOLS[12]}, 5, seed=3, trial=2)
    together = draw_shots(POOLS, 5, seed=3, trial=2)
    assert np.array_equal(alone, together[10:15])
    shuffled = draw_shots({12: POOLS[12][::-1]}, 5, seed=3, trial=2)  # pool order is irrelevant
    assert np.array_equal(alone, shuffled)


def test_too_few_clips_is_an_error():
    with pytest.raises(ValueError, match="fewer than"):
        draw_shots({0: np.arange(3)}, 5, seed=0)


def test_episode_and_episode_batches():
    labels = np.repeat(np.arange(6), 10)
    idx, chosen = episode(labels, np.arange(6), 3, 4, np.random.default_rng(0))
    assert idx.shape == (4, 3) and len(set(chosen.tolist())) == 3
    assert (labels[idx] == chosen[None]).all()  # column j holds class chosen[j]
    sampler = EpisodeBatchSampler(labels, n_way=2, n_per=5, n_batches=3, seed=1)
    batches = list(sampler)
    assert len(batches) == 3 and all(len(b) == 10 for b in batches)
    assert all(len(set(labels[b].tolist())) == 2 for b in batches)
    assert batches == list(sampler)  # same epoch, same batches
    sampler.set_epoch(1)
    assert batches != list(sampler)


def _dataset(n_classes: int) -> AudioDataset:
    table = ClipTable([f"{i}.wav" for i in range(n_classes)], np.arange(n_classes))
    return AudioDataset("toy", [str(c) for c in range(n_classes)], 16000, 1.0, False,
                        {"train": table, "val": table, "test": table})


def test_tasks_base_then_sessions_per_trial_in_label_order():
    sc = FewShotScenario(base_classes=6, ways=2, shots=1, sessions=3, trials=2)
    order, tasks = sc.make_tasks(_dataset(12))
    assert order == list(range(12))
    assert [t.index for t in tasks] == list(range(7))
    assert tasks[0].classes == tuple(range(6)) and tasks[0].session == 0
    assert [(t.trial, t.session, t.known, t.total) for t in tasks[1:]] == [
        (0, 1, 6, 8), (0, 2, 8, 10), (0, 3, 10, 12), (1, 1, 6, 8), (1, 2, 8, 10), (1, 3, 10, 12)]
    assert [sc.starts_from(t) for t in tasks] == [None, None, None, None, 0, None, None]
    assert sc.keep_checkpoint(0) and not sc.keep_checkpoint(3)
    # results are written after the base session and each trial's last session only
    assert [sc.outputs_due(t, tasks) for t in tasks] == [True, False, False, True, False, False, True]


def test_sessions_default_to_what_fits_and_too_many_is_an_error():
    sc = FewShotScenario(base_classes=6, ways=2, shots=1)
    _, tasks = sc.make_tasks(_dataset(11))
    assert sc.sessions == 2 and len(tasks) == 3
    with pytest.raises(ValueError, match="needs 14 classes"):
        FewShotScenario(base_classes=6, ways=2, shots=1, sessions=4).make_tasks(_dataset(12))
