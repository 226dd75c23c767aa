"""Every file in conf/ is composed and instantiated with tiny overrides."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from audiocil.config import CONFIG_DIR
from audiocil.run import build_named, build_strategy, make_trainer_factory
from tests.conftest import TINY, compose_cfg
from tests.data import fixtures as F


def names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def test_every_group_is_there():
    for group in ("method", "dataset", "backbone", "scenario", "trainer", "logger", "paths",
                  "hydra", "debug", "experiment"):
        assert (CONFIG_DIR / group).is_dir(), group


@pytest.mark.parametrize("method", names("method"))
def test_method_configs_build(method, shared_root):
    cfg = compose_cfg([*TINY, f"method={method}"], shared_root)
    strategy = build_strategy(cfg)
    assert isinstance(strategy, L.LightningModule)
    assert cfg.method.name == method
    for key in ("first_task", "later_tasks", "batch_size"):
        assert key in cfg.method, f"conf/method/{method}.yaml lacks {key}"


@pytest.mark.parametrize("backbone", names("backbone"))
def test_backbone_configs_build_and_report_their_size(backbone, shared_root):
    cfg = compose_cfg([*TINY, f"backbone={backbone}"], shared_root)
    net = build_named(cfg.backbone).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 1, cfg.dataset.frontend.n_mels, 100))  # cnn14 follows the front end
    assert out.shape == (2, net.out_dim)


# real datasets: a fixture in the release's layout, and the overrides that point at it
REAL = {
    "nsynth100": (lambda r: F.make_nsynth(r), []),
    "nsynth200": (lambda r: F.make_nsynth(r, prefix="nsynth-200-fs"), []),
    "nsynth300": (lambda r: F.make_nsynth(r, prefix="nsynth-300-fs"), []),
    "nsynth400": (lambda r: F.make_nsynth(r, prefix="nsynth-400-fs"), []),
    "ls100": (lambda r: F.make_ls100(r), []),
    "fsc89": (lambda r: F.make_fsc89(r), []),
    "esc50": (lambda r: F.make_esc50(r), ["dataset.loader.test_fold=2"]),
    "urbansound8k": (lambda r: F.make_urbansound8k(r), ["dataset.loader.test_fold=3"]),
    "speechcommands": (lambda r: F.make_speechcommands(r), ["dataset.loader.words=[no,up,yes]"]),
    "audioset_strong": (lambda r: F.make_audioset_strong(r), ["dataset.loader.num_classes=3"]),
    "fsd50k": (lambda r: F.make_fsd50k(r), ["dataset.loader.num_classes=3"]),
    "folder": (lambda r: F.make_folder(r), []),
}
EMBEDDED_TINY = {  # the embedded datasets, shrunk so that they build in seconds
    "synth20": ["dataset.loader.n_classes=4"],
    "gm100": ["dataset.loader.n_classes=3", "dataset.loader.notes_per_split=[2,1,1]",
              "+dataset.loader.programs=[0,24,40,56]"],
    "gmmix50": ["dataset.loader.n_drum_classes=2", "dataset.loader.n_program_classes=2",
                "dataset.loader.clips_per_split=[8,4,4]", "+dataset.loader.programs=[0,24,40]",
                "+dataset.loader.drum_keys=[36,38,42]"],
}


@pytest.mark.parametrize("dataset", names("dataset"))
def test_dataset_configs_load(dataset, shared_root, tmp_path):
    if dataset in REAL:
        make, extra = REAL[dataset]
        make(tmp_path / "data")
        overrides = [f"dataset.root={tmp_path / 'data'}", *extra]
    else:
        assert dataset in EMBEDDED_TINY, f"add conf/dataset/{dataset}.yaml to this test"
        overrides = EMBEDDED_TINY[dataset]
    cfg = compose_cfg([f"dataset={dataset}", *overrides], shared_root)
    ds = instantiate(cfg.dataset.loader)
    assert ds.num_classes > 1 and all(len(ds.splits[s]) for s in ("train", "val", "test"))
    assert ds.sample_rate == cfg.dataset.frontend.sample_rate


@pytest.mark.parametrize("scenario", names("scenario"))
def test_scenario_configs_build(scenario, shared_root):
    tiny = [o for o in TINY if not o.startswith("scenario.")]  # each scenario has its own keys
    cfg = compose_cfg([*tiny, f"scenario={scenario}"], shared_root)
    assert build_named(cfg.scenario).name == scenario


@pytest.mark.parametrize("trainer", names("trainer"))
def test_trainer_configs_build(trainer, shared_root, tmp_path):
    # GPU and multi-process settings are composed as written, then built on one CPU
    cfg = compose_cfg([*TINY, f"trainer={trainer}", "trainer.accelerator=cpu",
                       "trainer.devices=1", "trainer.strategy=auto"], shared_root)
    written = OmegaConf.load(CONFIG_DIR / "trainer" / f"{trainer}.yaml")
    assert written is not None
    t = make_trainer_factory(cfg, tmp_path, logger=False)(max_epochs=1, callbacks=[])
    assert isinstance(t, L.Trainer)


@pytest.mark.parametrize("logger", names("logger"))
def test_logger_configs_build(logger, shared_root, tmp_path):
    cfg = compose_cfg([*TINY, f"logger={logger}"], shared_root)
    lg = instantiate(cfg.logger, save_dir=str(tmp_path))
    assert lg is not None


@pytest.mark.parametrize("group", ["debug", "experiment", "paths", "hydra", "local"])
def test_other_groups_compose(group, shared_root):
    for name in names(group):
        overrides = [] if group == "hydra" else [f"{group}={name}"]
        cfg = compose_cfg(overrides, shared_root)
        assert cfg.method.name and cfg.dataset.name


def test_typos_fail_at_composition(shared_root):
    with pytest.raises(Exception, match="epohcs"):
        compose_cfg([*TINY, "method.first_task.epohcs=3"], shared_root)


def test_help_lists_groups():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "audiocil", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for group in ("method", "dataset", "backbone", "scenario", "trainer", "logger", "debug"):
        assert f"{group}:" in out
    assert "icarl" in out and "resnet18" in out


def test_configs_ship_with_the_package():
    assert (Path(CONFIG_DIR) / "config.yaml").exists()


@pytest.mark.parametrize("dataset", [n for n in names("dataset") if n != "synth20"])
def test_dataset_on_bad_file_and_soundfont_reach_the_loader(dataset, shared_root):
    # the spellings a user tries first; dataset.loader.<key> works too (it overrides)
    overrides = [f"dataset={dataset}", "dataset.on_bad_file=skip"]
    if dataset in ("gm100", "gmmix50"):
        overrides.append("dataset.soundfont=/sf/any.sf2")
    loader = compose_cfg(overrides, shared_root).dataset.loader
    assert loader.on_bad_file == "skip"
    assert loader.get("soundfont", "/sf/any.sf2") == "/sf/any.sf2"
    assert compose_cfg([f"dataset={dataset}", "dataset.loader.on_bad_file=skip"],
                       shared_root).dataset.loader.on_bad_file == "skip"


@pytest.mark.parametrize("method", names("method"))
def test_method_defaults_pass_the_schema(method, shared_root):
    """A method's shipped yaml passes the start-up checks in every scenario it declares (a
    closed-form stage it forgot to declare, or a rehearsal method without a memory, fails)."""
    from hydra.utils import get_class

    from audiocil.schema import validate

    cls = get_class(compose_cfg([f"method={method}"], shared_root).method._target_)
    extra = {"standard": [], "fewshot": ["experiment=gm100_fscil"],
             "multilabel": ["experiment=gmmix50_iodfd"]}
    for scenario in cls.scenarios:
        validate(compose_cfg([*extra[scenario], f"method={method}"], shared_root))
