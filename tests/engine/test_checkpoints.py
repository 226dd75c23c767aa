"""Checkpoints are state (tensors and plain data), loaded with weights_only=True: a file made
to run code on load is refused; a strategy rebuilt from the config and a checkpoint equals
the saved one."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from audiocil.engine import checkpoints
from audiocil.run import build_strategy, load_strategy


class Payload:
    """Unpickling this calls os.system: what a crafted checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_crafted_to_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "task_0.pt"
    torch.save({"format": checkpoints.FORMAT, "version": checkpoints.VERSION,
                "strategy": Payload(marker)}, path)
    with pytest.raises(checkpoints.CheckpointError, match="refusing to load .*task_0.pt"):
        checkpoints.load(path)
    assert not marker.exists()
    with open(path, "wb") as f:  # a bare pickle, not even torch's format
        pickle.dump(Payload(marker), f)
    with pytest.raises(checkpoints.CheckpointError, match="refusing"):
        checkpoints.load(path)
    assert not marker.exists()


def test_a_foreign_or_old_file_is_refused(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "a.pt")
    with pytest.raises(checkpoints.CheckpointError, match="not an audiocil checkpoint"):
        checkpoints.load(tmp_path / "a.pt")
    torch.save({"format": checkpoints.FORMAT, "version": 0}, tmp_path / "b.pt")
    with pytest.raises(checkpoints.CheckpointError, match="version 0"):
        checkpoints.load(tmp_path / "b.pt")


@pytest.mark.parametrize("method", ["icarl", "der", "ewc", "lwf"])
def test_rebuilt_from_config_and_state(method, make_cfg, tmp_path):
    """Grow a strategy as a run would (structure log), save it, rebuild it from the config."""
    from audiocil.core import Task

    cfg = make_cfg(f"method={method}", *(["method.memory.size=20"] if method in ("icarl", "der") else []))
    s = build_strategy(cfg)
    for t in (Task(0, (0, 1), 0, 2), Task(1, (2, 3), 2, 4)):
        s.task = t
        if t.index and hasattr(s, "make_teacher"):
            s.make_teacher()
        if t.index and hasattr(s, "expand"):
            s.expand(t.new)
        else:
            s.grow_head(t.new)
    if hasattr(s, "class_means"):
        s.class_means = torch.randn(4, s.class_means.shape[1])
    if s.memory is not None:
        s.memory.exemplars = {0: torch.arange(3).numpy(), 3: torch.arange(5, 7).numpy()}
    path = tmp_path / "task_1.pt"
    checkpoints.save(path, config={}, task=1, strategy=s, datamodule={}, sequencer={}, record={})
    again = load_strategy(cfg, checkpoints.load(path))
    a, b = s.state_dict(), again.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
    assert again.structure_log() == s.structure_log()
    if s.memory is not None:
        assert {c: v.tolist() for c, v in again.memory.exemplars.items()} == {0: [0, 1, 2], 3: [5, 6]}
