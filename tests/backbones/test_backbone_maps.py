"""Backbones: the embedding as before, and on request the stage feature maps (PODNet)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from audiocil.backbones.cnn14 import Cnn14
from audiocil.backbones.resnet import ResNet18
from audiocil.backbones.smallcnn import SmallCNN

X_SHAPE = (2, 1, 32, 64)  # (B, 1, F, T)

# backbone, expected (C, F, T) of each map for X_SHAPE, number of state-dict keys (unchanged)
CASES = {
    "smallcnn": (lambda: SmallCNN(width=4),
                 [(4, 16, 32), (8, 8, 16), (16, 4, 8), (32, 4, 8)], 29),
    "resnet18": (lambda: ResNet18(width=4),
                 [(4, 8, 16), (8, 4, 8), (16, 2, 4), (32, 1, 2)], 120),
    "resnet18_stem1": (lambda: ResNet18(width=4, stem_stride=1),
                       [(4, 32, 64), (8, 16, 32), (16, 8, 16), (32, 4, 8)], 120),
    "cnn14": (lambda: Cnn14(n_mels=32, width=2),
              [(2, 16, 32), (4, 8, 16), (8, 4, 8), (16, 2, 4), (32, 1, 2), (64, 1, 2)], 79),
}


def build(name: str):
    torch.manual_seed(0)
    make, shapes, n_keys = CASES[name]
    return make(), shapes, n_keys


@pytest.mark.parametrize("name", list(CASES))
def test_maps_have_the_documented_shapes(name):
    net, shapes, _ = build(name)
    emb, maps = net(torch.randn(X_SHAPE), return_maps=True)
    assert emb.shape == (2, net.out_dim)
    assert net.n_stages == len(maps) == len(shapes)
    assert [m.shape[1] for m in maps] == net.stage_channels
    assert [tuple(m.shape[1:]) for m in maps] == shapes


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("train", [False, True])
def test_the_embedding_is_unchanged_by_return_maps(name, train):
    net, _, n_keys = build(name)
    net.train(train)
    x = torch.randn(X_SHAPE)
    torch.manual_seed(1)  # the same dropout masks in both passes
    plain = net(x)
    torch.manual_seed(1)
    emb, _ = net(x, return_maps=True)
    assert isinstance(plain, torch.Tensor) and torch.equal(plain, emb)
    assert len(net.state_dict()) == n_keys  # no new modules, parameters or buffers


def test_the_maps_are_what_the_embedding_is_made_of():
    x = torch.randn(X_SHAPE)
    net, _, _ = build("resnet18")
    emb, maps = net.eval()(x, return_maps=True)
    assert torch.equal(maps[-1].mean(dim=(2, 3)), emb)
    assert torch.equal(net.stages[1](net.stages[0](net.stem(x))), maps[0])
    net, _, _ = build("smallcnn")
    emb, maps = net.eval()(x, return_maps=True)
    h = maps[-1].mean(dim=(2, 3)) + maps[-1].amax(dim=(2, 3))
    assert torch.equal(net.norm(h), emb)
    assert torch.equal(net.features[0](x), maps[0])
    net, _, _ = build("cnn14")
    emb, maps = net.eval()(x, return_maps=True)
    h = maps[-1].mean(dim=2)  # (B, C, F, T): over frequency
    h = h.amax(dim=2) + h.mean(dim=2)
    assert torch.allclose(F.relu(net.fc1(h)), emb, atol=1e-6)


def test_cnn14_maps_come_before_the_dropout():
    net, _, _ = build("cnn14")
    net.dropout = 0.9  # train mode: dropout after each block would zero most of a map
    x = torch.randn(X_SHAPE)
    _, train_maps = net.train()(x, return_maps=True)
    assert (train_maps[0] == 0).float().mean() < 0.5


@pytest.mark.parametrize("name", list(CASES))
def test_gradient_flows_from_every_map(name):
    net, _, _ = build(name)
    emb, maps = net(torch.randn(X_SHAPE), return_maps=True)
    first = next(net.parameters())
    for m in maps:
        net.zero_grad()
        m.pow(2).sum().backward(retain_graph=True)
        assert first.grad is not None and first.grad.abs().sum() > 0


def test_resnet18_starts_from_he_initialisation():
    """init=he: every convolution's weights have the fan-out He std sqrt(2 / (out * k * k))
    (the original's, PyCIL's and torchvision's); init=pytorch keeps the defaults, 2.4x
    smaller where a convolution keeps its width."""
    import math

    import torch
    from torch import nn

    from audiocil.backbones.resnet import ResNet18

    torch.manual_seed(0)
    for init, lo, hi in (("he", 0.9, 1.1), ("pytorch", 0.2, 0.6)):
        net = ResNet18(width=16, init=init)
        convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
        assert len(convs) == 20  # stem, 16 block convs, 3 shortcuts
        for conv in convs:
            out, cin, kh, kw = conv.weight.shape
            if init == "pytorch" and cin != out:
                continue  # the stem and the widening convolutions: fan-in != fan-out
            ratio = conv.weight.std().item() / math.sqrt(2.0 / (out * kh * kw))
            assert lo < ratio < hi, (init, conv, ratio)
    with pytest.raises(ValueError, match="backbone.init='xavier'"):
        ResNet18(init="xavier")
