"""Frozen encoders embed once (issue 13, item 2): the cache's key and rows, and whole runs
whose results.json is the same with the cache as with re-embedding every clip."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from hydra.utils import get_class

from audiocil.backbones.smallcnn import SmallCNN
from audiocil.data import embeddings
from audiocil.data.embeddings import EmbeddingCache, fingerprint
from audiocil.data.frontend import Frontend
from audiocil.methods.base import FrozenCopy, Network, Strategy
from audiocil.run import run
from tests.conftest import compose_cfg
from tests.fewshot.test_fewshot_methods import FEWSHOT, METHODS, OWN_LR
from tests.test_configs import names


def small_network() -> Network:
    torch.manual_seed(0)
    return Network(Frontend(32), SmallCNN(width=8))


def test_the_fingerprint_follows_the_content_not_the_identity():
    net = small_network()
    key = fingerprint(net, skip=("head.",))
    twin = small_network()  # another module with the same weights
    assert fingerprint(twin, skip=("head.",)) == key
    net.head.grow(3)  # the head is not the encoder
    assert fingerprint(net, skip=("head.",)) == key
    assert fingerprint(net) != fingerprint(twin)
    with torch.no_grad():  # one weight, in place, even through .data
        next(net.backbone.parameters()).data.view(-1)[0] += 1e-6
    assert fingerprint(net, skip=("head.",)) != key
    bn = next(m for m in twin.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    bn.running_mean[0] += 1.0  # a buffer
    assert fingerprint(twin, skip=("head.",)) != key


def test_a_frozen_copy_keeps_the_fingerprint_of_its_frozen_state():
    net = small_network()
    frozen = copy.deepcopy(net)
    frozen.backbone = FrozenCopy(frozen.backbone)
    key = fingerprint(frozen)
    frozen.train()  # a FrozenCopy stays in eval mode: its BatchNorm statistics cannot move
    frozen.backbone(torch.randn(4, 1, 32, 32))
    assert fingerprint(frozen) == key


def test_the_cache_embeds_each_row_once_per_key():
    calls: list[list[int]] = []

    def embed(idx: np.ndarray) -> torch.Tensor:  # row i embeds to (i, 2 i)
        calls.append(idx.tolist())
        return torch.tensor([[float(i), 2.0 * i] for i in idx])

    cache = EmbeddingCache(batch_size=2)
    out = cache.get("a", "test", np.array([3, 1, 3]), 5, embed)
    assert out.tolist() == [[3, 6], [1, 2], [3, 6]] and calls == [[1, 3]]
    out = cache.get("a", "test", np.array([0, 1, 2, 4]), 5, embed)
    assert out.tolist() == [[0, 0], [1, 2], [2, 4], [4, 8]]
    assert calls == [[1, 3], [0, 2], [4]]  # only the missing rows, two at a time
    cache.get("a", "val", np.array([1]), 2, embed)  # splits are apart
    assert calls[-1] == [1]
    cache.get("b", "test", np.array([1]), 5, embed)  # another encoder state: embedded again
    assert calls[-1] == [1] and cache.computed == 7 and cache.served == 9
    assert cache.have["test"].sum() == 1 and "val" not in cache.have


def test_a_method_that_evaluates_embeddings_does_not_override_eval_logits(shared_root):
    """``evaluates_embeddings`` promises eval_logits(x) == embedding_logits(embed(x)); the
    base class's eval_logits is exactly that, so an override could break the promise."""
    opted = []
    for name in names("method"):
        cls = _method_class(name, shared_root)
        if cls.evaluates_embeddings:
            opted.append(name)
            assert cls.eval_logits is Strategy.eval_logits, name
    assert {"prototype", "pan", "meta_sc", "amfo", "acil", "ds_al", "fetril"} <= set(opted)
    assert "finetune" not in opted  # its encoder trains in every task


def _method_class(method: str, root) -> type:
    return get_class(compose_cfg([f"method={method}"], root).method._target_)


# ---- whole runs: the cache against re-embedding ----------------------------------------
EXTRA = {"acil": ["method.buffer_size=64"], "ds_al": ["method.buffer_size=64"],
         "fetril": ["method.later_tasks.epochs=3", "method.classifier=svm"]}


def _run(method: str, run_dir, shared_root) -> dict:
    common = [o for o in FEWSHOT if method not in OWN_LR or "first_task.optimizer.lr" not in o]
    cfg = compose_cfg([f"method={method}", *common, *METHODS.get(method, []),
                       *EXTRA.get(method, [])], shared_root)
    run(cfg, run_dir)
    out = json.loads((run_dir / "results.json").read_text())
    for key in ("time_s_per_task", "cost_per_task"):  # wall-clock figures
        out.pop(key)
    return out


@pytest.mark.parametrize("method", ["prototype", "pan", "meta_sc", "amfo", "acil", "fetril"])
def test_cached_embeddings_give_the_figures_of_re_embedding(method, shared_root, tmp_path,
                                                            monkeypatch):
    """Two trials of two sessions, float32: results.json (test and validation figures, shots,
    per trial) is identical with the cache and with every clip re-embedded at every pass."""
    caches: list[EmbeddingCache] = []
    init = EmbeddingCache.__init__

    def tracked(self, *a, **k):
        init(self, *a, **k)
        caches.append(self)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        monkeypatch.setattr(embeddings.EmbeddingCache, "__init__", tracked)
        cached = _run(method, tmp_path / "cached", shared_root)
        cls = _method_class(method, shared_root)
        monkeypatch.setattr(cls, "evaluates_embeddings", False)  # every pass re-embeds
        fresh = _run(method, tmp_path / "fresh", shared_root)
    finally:
        torch.set_num_threads(threads)
    assert cached == fresh
    cache = caches[0]  # the cached run's: nothing went through the second run's
    assert cache.served > cache.computed > 0
    # the encoder never changed after the base session: no clip was embedded twice,
    # trial restarts included
    assert cache.computed == sum(int(h.sum()) for h in cache.have.values())
    assert caches[1].computed == 0  # the re-embedding run did not use one


def test_a_test_clip_is_embedded_once_for_the_whole_few_shot_run(shared_root, tmp_path,
                                                                 monkeypatch):
    """Prototype, two trials: the frozen encoder embeds each test clip of the 16 classes
    once, although it is tested on 8, 12, 16, 12, 16 classes' clips after its 5 tasks."""
    rows: list[int] = []
    embed = Network.embed

    def counted(self, batch):
        rows.append(len(batch))
        return embed(self, batch)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        monkeypatch.setattr(Network, "embed", counted)
        cfg = compose_cfg(["method=prototype", *FEWSHOT, "trainer.limit_val_batches=0",
                           "method.first_task.epochs=1"], shared_root)
        res_rows = []

        original_get = EmbeddingCache.get

        def get(self, key, split, indices, n_rows, fn):
            before = len(rows)
            out = original_get(self, key, split, indices, n_rows, fn)
            res_rows.append((split, len(indices), sum(rows[before:])))
            return out

        monkeypatch.setattr(EmbeddingCache, "get", get)
        run(cfg, tmp_path)
    finally:
        torch.set_num_threads(threads)
    tests = [(n, done) for split, n, done in res_rows if split == "test"]
    per_class = tests[0][0] // 8
    assert [n for n, _ in tests] == [8 * per_class, 12 * per_class, 16 * per_class,
                                     12 * per_class, 16 * per_class]
    assert [done for _, done in tests] == [8 * per_class, 4 * per_class, 4 * per_class, 0, 0]
