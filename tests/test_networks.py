"""Tests for rain2avoid.networks (small inputs, CPU, seeded)."""

import pytest
import torch
import torch.nn.functional as F

from rain2avoid.networks import BACKBONES, UNet, build_network, crop_to, pad_to_multiple

NAMES = sorted(BACKBONES)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Run single-threaded: small convs gain nothing from threads, and on a
    busy machine spinning worker threads can make them many times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def n_params(net):
    return sum(p.numel() for p in net.parameters())


def test_unet_matches_reference():
    net = UNet()
    assert abs(n_params(net) - 4.54e6) / 4.54e6 < 0.01
    assert n_params(net) == 4_540_052
    assert net.enc1[0].weight.shape == (64, 3, 7, 7)
    assert net.enc2[0].weight.shape == (128, 64, 5, 5)
    assert net.enc3[0].weight.shape == (256, 128, 5, 5)
    assert net.enc4[0].weight.shape == (512, 256, 3, 3)
    assert net.dec3[0].weight.shape == (256, 768, 3, 3)
    assert net.dec2[0].weight.shape == (128, 384, 3, 3)
    assert net.dec1[0].weight.shape == (64, 192, 3, 3)
    assert net.out.weight.shape == (3, 67, 3, 3)
    assert net.out.bias is not None and net.out.bias.shape == (3,)
    assert isinstance(net.dec1[2], torch.nn.LeakyReLU) and net.dec1[2].negative_slope == 0.2
    # the variant with conv biases before BN is also "about 4.54 M"
    assert abs(n_params(UNet(bias=True)) - 4.54e6) / 4.54e6 < 0.01


def test_fast_is_small():
    assert 20_000 <= n_params(build_network("fast")) <= 100_000


@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (1, 3, 7, 3), (2, 3, 16, 16), (1, 3, 37, 53)])
def test_pad_and_crop(shape):
    x = torch.rand(shape)
    for m in (4, 16, 32):
        y, size = pad_to_multiple(x, m)
        assert y.shape[-2] % m == 0 and y.shape[-1] % m == 0
        assert torch.equal(crop_to(y, size), x)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(1, 3, 37, 53), (2, 3, 16, 16), (1, 3, 5, 7)])
def test_shape_preserved_eval(name, shape):
    torch.manual_seed(0)
    net = build_network(name).eval()
    with torch.no_grad():
        y = net(torch.rand(shape))
    assert y.shape == shape and y.dtype == torch.float32 and torch.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(1, 3, 37, 53), (2, 3, 16, 16)])
def test_shape_preserved_train(name, shape):
    torch.manual_seed(0)
    net = build_network(name).train()
    y = net(torch.rand(shape))
    y.mean().backward()
    assert y.shape == shape


def test_unknown_name():
    with pytest.raises(ValueError, match="dncnn.*fast.*resnet.*unet"):
        build_network("nope")
    assert isinstance(build_network("UNet"), UNet)


@pytest.mark.parametrize("name", NAMES)
def test_adam_lowers_mse(name):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    target = F.avg_pool2d(x, 3, 1, 1)  # a fixed smoothed copy
    net = build_network(name).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = F.mse_loss(net(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("name", NAMES)
def test_eval_deterministic(name):
    torch.manual_seed(1)
    net = build_network(name).eval()
    x = torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
