"""Every method class declares the scenarios it supports (no inherited default), and
``python -m audiocil`` refuses a wrong pairing before any dataset is built or loaded."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra.utils import get_class

from audiocil.config import CONFIG_DIR, compose
from audiocil.methods.base import Strategy
from audiocil.run import check_support

METHODS = sorted(p.stem for p in (CONFIG_DIR / "method").glob("*.yaml"))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_declares_its_scenarios(method):
    cls = get_class(compose([f"method={method}"]).method._target_)
    assert "scenarios" in cls.__dict__, f"{cls.__name__} inherits its scenarios"
    assert set(cls.__dict__["scenarios"]) <= {"standard", "fewshot", "multilabel"}
    assert cls.__dict__["scenarios"]


def test_an_undeclared_method_is_refused():
    class Quiet(Strategy):
        pass

    with pytest.raises(TypeError, match="does not declare"):
        check_support(Quiet, "standard")


@pytest.mark.parametrize("method,scenario", [("joint", "fewshot"), ("ewc", "fewshot"),
                                             ("der", "multilabel"), ("iodfd", "standard"),
                                             ("pan", "standard")])
def test_a_wrong_pairing_stops_before_any_data(method, scenario, tmp_path):
    """The dataset root does not exist: the error must be the pairing's, not the data's."""
    out = subprocess.run([sys.executable, "-m", "audiocil", f"method={method}",
                          f"scenario={scenario}", "dataset=nsynth100",
                          f"dataset.root={tmp_path / 'nowhere'}", f"paths.root_dir={tmp_path}",
                          f"hydra.run.dir={tmp_path / 'run'}"],
                         capture_output=True, text=True, env={"HYDRA_FULL_ERROR": "0",
                                                                "PATH": "/usr/bin:/bin"})
    assert out.returncode != 0
    assert f"does not support scenario={scenario}" in out.stderr, out.stderr[-2000:]
    assert "it supports:" in out.stderr
    assert not (tmp_path / "cache").exists() and not (tmp_path / "data").exists()
