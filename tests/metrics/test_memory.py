import numpy as np
import pytest
import torch

from audiocil.data.memory import ExemplarMemory, herding_select


def test_herding_picks_the_mean_first_and_is_deterministic():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7071, 0.7071], [1.0, 0.1]])
    order = herding_select(feats, 4)
    assert order[0] == 2  # closest to the class mean direction
    assert sorted(order) == [0, 1, 2, 3]
    assert herding_select(feats, 2) == order[:2]


def test_memory_budget_is_shared_and_shrinks():
    mem = ExemplarMemory(size=20, selection="random", seed=0)
    embed = lambda idx: torch.randn(len(idx), 4)  # noqa: E731 (not used by random)
    mem.update({0: np.arange(0, 30), 1: np.arange(30, 60)}, embed, n_classes=2)
    assert len(mem) == 20 and len(mem.exemplars[0]) == 10
    kept0 = mem.exemplars[0].copy()
    mem.update({2: np.arange(60, 90), 3: np.arange(90, 120)}, embed, n_classes=4)
    assert len(mem) == 20 and all(len(v) == 5 for v in mem.exemplars.values())
    assert mem.exemplars[0].tolist() == kept0[:5].tolist()  # shrinking keeps the best first
    assert set(mem.exemplars[3]) <= set(range(90, 120))
    assert mem.nbytes(sample_nbytes=100) == {"index_bytes": 160, "data_bytes": 2000}


def test_memory_fixed_per_class_and_herding():
    torch.manual_seed(0)
    feats = torch.randn(50, 8)
    mem = ExemplarMemory(size=None, per_class=3, selection="herding")
    mem.update({5: np.arange(100, 150)}, lambda idx: feats[idx - 100], n_classes=1)
    assert mem.exemplars[5].tolist() == (np.array(herding_select(feats, 3)) + 100).tolist()
    state = mem.state_dict()
    other = ExemplarMemory(size=None, per_class=3)
    other.load_state_dict(state)
    assert other.indices().tolist() == mem.indices().tolist()


def test_memory_config_errors():
    with pytest.raises(ValueError, match="exactly one"):
        ExemplarMemory(size=10, per_class=2)
    with pytest.raises(ValueError, match="herding"):
        ExemplarMemory(size=10, selection="best")
