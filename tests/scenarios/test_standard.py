import numpy as np
import pytest

from audiocil.scenarios.standard import class_order, split_tasks


def test_class_order_matches_reference_toolbox():
    np.random.seed(1993)
    assert class_order(100, 1993) == np.random.permutation(100).tolist()


def test_class_order_explicit_and_invalid():
    assert class_order(3, explicit=[2, 0, 1]) == [2, 0, 1]
    with pytest.raises(ValueError, match="exactly once"):
        class_order(3, explicit=[0, 0, 1])


@pytest.mark.parametrize("n,init,inc", [(100, 50, 10), (100, 10, 10), (20, 4, 4), (23, 10, 5), (7, 7, 3)])
def test_split_is_a_partition_in_order(n, init, inc):
    order = class_order(n, seed=3)
    tasks = split_tasks(order, init, inc)
    flat = [c for t in tasks for c in t.classes]
    assert flat == order  # every class exactly once, disjoint, in order
    assert len(tasks[0].classes) == init
    assert all(len(t.classes) == inc for t in tasks[1:-1])
    assert 0 < len(tasks[-1].classes) <= max(inc, init)
    for a, b in zip(tasks, tasks[1:], strict=False):
        assert b.known == a.total


def test_remainder_is_the_last_task():
    tasks = split_tasks(list(range(23)), 10, 5)
    assert [len(t.classes) for t in tasks] == [10, 5, 5, 3]


def test_split_is_deterministic_and_seed_dependent():
    assert split_tasks(class_order(50, 1), 10, 10) == split_tasks(class_order(50, 1), 10, 10)
    assert class_order(50, 1) != class_order(50, 2)


def test_bad_split_arguments():
    with pytest.raises(ValueError, match="init_cls"):
        split_tasks(list(range(5)), 6, 1)
    with pytest.raises(ValueError, match="increment"):
        split_tasks(list(range(5)), 2, 0)
