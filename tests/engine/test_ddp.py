"""DDP on two CPU processes (gloo): evaluation counts each clip once; training completes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import TINY, epochs

pytestmark = pytest.mark.slow


def env() -> dict:
    e = dict(os.environ)
    e.pop("AUDIOCIL_RUN_DIR", None)
    return e


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """A 2-process training run of a rehearsal method (memory + teacher + NME)."""
    root = tmp_path_factory.mktemp("ddp")
    run_dir = root / "run"
    cmd = [sys.executable, "-m", "audiocil", *TINY, *epochs(2), "method=icarl",
           "method.memory.size=40", "trainer=ddp_cpu", "trainer.limit_val_batches=0",
           f"paths.root_dir={root}", f"hydra.run.dir={run_dir}"]
    out = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    return run_dir


def test_two_process_training_completes_every_task(ddp_run):
    res = json.loads((ddp_run / "results.json").read_text())
    assert res["completed_tasks"] == len(res["tasks"]) == 2
    assert res["memory_samples"][-1] == 40
    assert res["nme"] is not None


def test_evaluation_is_identical_with_one_and_two_processes(ddp_run, tmp_path):
    scores = {}
    for devices in (1, 2):
        out = tmp_path / f"eval{devices}.json"
        cmd = [sys.executable, "-m", "audiocil.evaluate", str(ddp_run), "--task", "1",
               "--devices", str(devices), "--out", str(out)]
        res = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-4000:]
        scores[devices] = json.loads(out.read_text())
    assert scores[1] == scores[2]
    # every test clip of the 8 seen classes counted once (synth20: 20 test clips per class)
    assert sum(scores[2]["cnn"]["count_per_task"]) == 8 * 20
