"""CNN14 (PANNs): the architecture, its published parameter names, and checkpoint loading."""

from __future__ import annotations

import pytest
import torch

from audiocil.backbones.cnn14 import Cnn14

# (name, shape) of a PANNs Cnn14 checkpoint's "model" entry, as published (64 mels, 527 classes)
PANNS_SHAPES = {
    "bn0.weight": (64,), "bn0.running_var": (64,),
    "conv_block1.conv1.weight": (64, 1, 3, 3), "conv_block1.conv2.weight": (64, 64, 3, 3),
    "conv_block1.bn1.weight": (64,), "conv_block2.conv1.weight": (128, 64, 3, 3),
    "conv_block3.conv1.weight": (256, 128, 3, 3), "conv_block4.conv2.weight": (512, 512, 3, 3),
    "conv_block5.conv1.weight": (1024, 512, 3, 3), "conv_block6.conv2.weight": (2048, 2048, 3, 3),
    "conv_block6.bn2.num_batches_tracked": (), "fc1.weight": (2048, 2048), "fc1.bias": (2048,),
}


def panns_style_state(net: Cnn14, classes: int = 527) -> dict[str, torch.Tensor]:
    """A checkpoint state dict as PANNs writes it: our keys plus the ones we ignore."""
    g = torch.Generator().manual_seed(0)
    state = {k: (torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone())
             for k, v in net.state_dict().items()}
    state["spectrogram_extractor.stft.conv_real.weight"] = torch.randn(513, 1, 1024)
    state["logmel_extractor.melW"] = torch.randn(513, 64)
    state["fc_audioset.weight"] = torch.randn(classes, net.out_dim)
    state["fc_audioset.bias"] = torch.randn(classes)
    return state


def test_full_size_architecture_has_the_published_names_and_shapes():
    with torch.device("meta"):  # 80M parameters, no memory
        net = Cnn14(n_mels=64, width=64)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    for k, want in PANNS_SHAPES.items():
        assert shapes[k] == want, k
    assert net.out_dim == 2048
    assert not any(k.startswith(("fc_audioset", "spectrogram", "logmel")) for k in shapes)
    n_params = sum(p.numel() for p in net.parameters())
    assert 79e6 < n_params < 80e6  # PANNs' 80.8M minus fc_audioset (1.08M)


def test_forward_shapes_and_training_from_scratch():
    net = Cnn14(n_mels=32, width=4)
    x = torch.randn(3, 1, 32, 40)  # (B, 1, mels, frames)
    out = net(x)
    assert out.shape == (3, net.out_dim) == (3, 128)
    out.sum().backward()
    assert net.conv_block1.conv1.weight.grad is not None
    with pytest.raises(ValueError, match="backbone.n_mels"):
        net(torch.randn(2, 1, 64, 40))


def test_loads_a_panns_checkpoint_and_ignores_the_rest(tmp_path):
    net = Cnn14(n_mels=32, width=8)
    state = panns_style_state(net)
    path = tmp_path / "Cnn14_mAP=0.431.pth"
    torch.save({"model": state, "iteration": 600000}, path)
    loaded = Cnn14(n_mels=32, width=8, pretrained=str(path), pretrained_bn0="keep")
    own = loaded.state_dict()
    for k, v in own.items():
        assert torch.equal(v, state[k]), k
    # default: bn0 keeps its scale and shift, its running statistics are reset for our front end
    reset = Cnn14(n_mels=32, width=8, pretrained=str(path))
    assert torch.equal(reset.bn0.weight, state["bn0.weight"])
    assert torch.equal(reset.bn0.running_mean, torch.zeros(32))
    assert torch.equal(reset.bn0.running_var, torch.ones(32))
    assert torch.equal(reset.conv_block3.conv2.weight, state["conv_block3.conv2.weight"])


def test_clear_errors_name_the_file(tmp_path):
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        Cnn14(n_mels=32, width=8, pretrained=str(missing))
    state = panns_style_state(Cnn14(n_mels=32, width=8))
    del state["conv_block2.conv1.weight"]
    state["conv_block7.conv1.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pth"
    torch.save({"model": state}, bad)
    with pytest.raises(ValueError, match=r"bad\.pth.*missing 1 key.*conv_block2\.conv1\.weight"):
        Cnn14(n_mels=32, width=8, pretrained=str(bad))
    wrong = tmp_path / "wrong_width.pth"
    torch.save({"model": panns_style_state(Cnn14(n_mels=32, width=8))}, wrong)
    with pytest.raises(ValueError, match=r"wrong_width\.pth.*shape mismatch"):
        Cnn14(n_mels=32, width=4, pretrained=str(wrong))
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth"):
        Cnn14(n_mels=32, width=8, pretrained=str(junk))
