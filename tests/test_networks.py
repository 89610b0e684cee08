"""Tests for rain2avoid.networks (small inputs, CPU, seeded)."""

import pytest
import torch
import torch.nn.functional as F

from rain2avoid.networks import (
    BACKBONES,
    DnCNN,
    DRSformer,
    ResNet,
    Restormer,
    UNet,
    build_network,
    crop_to,
    pad_to_multiple,
)
from rain2avoid.networks.drsformer import TopKAttention

NAMES = sorted(BACKBONES)
# The transformers at full size take seconds per step even on tiny inputs: the generic
# tests below use narrow, shallow copies (same code); their full sizes are tested apart.
SMALL = {"restormer": dict(dim=8, blocks=(1, 1, 1, 1), refinement_blocks=1),
         "drsformer": dict(dim=8, blocks=(1, 1, 1, 1))}


def make(name):
    return build_network(name, **SMALL.get(name, {}))


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
    net = make(name).eval()
    with torch.no_grad():
        y = net(torch.rand(shape))
    assert y.shape == shape and y.dtype == torch.float32 and torch.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(1, 3, 37, 53), (2, 3, 16, 16)])
def test_shape_preserved_train(name, shape):
    torch.manual_seed(0)
    net = make(name).train()
    y = net(torch.rand(shape))
    y.mean().backward()
    assert y.shape == shape


def test_unknown_name():
    with pytest.raises(ValueError, match="dncnn.*drsformer.*fast.*resnet.*restormer.*unet"):
        build_network("nope")
    assert isinstance(build_network("UNet"), UNet)


@pytest.mark.parametrize("name", NAMES)
def test_adam_lowers_mse(name):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    target = F.avg_pool2d(x, 3, 1, 1)  # a fixed smoothed copy
    net = make(name).train()
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
    net = make(name).eval()
    x = torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        assert torch.equal(net(x), net(x))


@pytest.mark.parametrize("name", NAMES)
def test_odd_sizes_are_padded_and_cropped_back(name):
    # The output on an odd-sized image is the output on the image padded to the
    # network's multiple, cropped back: nothing is resized or lost.
    torch.manual_seed(0)
    net = make(name).eval()
    x = torch.rand(1, 3, 37, 53)
    padded, size = pad_to_multiple(x, getattr(net, "multiple", 1))
    with torch.no_grad():
        assert torch.allclose(net(x), crop_to(net(padded), size), atol=1e-6)


def test_reference_dncnn():
    net = DnCNN()
    assert n_params(net) == 558_336
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 17 and all(c.bias is None for c in convs)
    # The output is the last conv's, not the input minus it.
    torch.nn.init.zeros_(convs[-1].weight)
    assert torch.equal(net.eval()(torch.rand(1, 3, 8, 8)), torch.zeros(1, 3, 8, 8))


def test_reference_resnet():
    net = ResNet()
    # ResNet-18 without its classifier (11,689,512 - 513,000) + the decoder; the reference's
    # module also holds the unused classifier: 14,511,147.
    encoder = sum(p.numel() for m in (net.stem, net.stages) for p in m.parameters())
    assert encoder == 11_689_512 - 513_000
    assert n_params(net) == 13_998_147 and n_params(net) + 513_000 == 14_511_147
    assert [len(s) for s in net.stages] == [2, 2, 2, 2]
    assert [(u.in_channels, u.out_channels, u.kernel_size, u.stride) for u in net.ups] == [
        (512, 256, (4, 4), (2, 2)), (256, 128, (4, 4), (2, 2)), (128, 64, (4, 4), (2, 2)),
        (64, 64, (4, 4), (2, 2)), (64, 3, (4, 4), (2, 2))]
    assert all(u.bias is not None for u in net.ups)


@pytest.mark.parametrize("cls, count", [(Restormer, 26_126_644), (DRSformer, 15_609_136)])
def test_transformers_full_size(cls, count):
    net = cls()
    assert n_params(net) == count          # the reference's default configurations
    assert not [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.bias is not None]
    torch.manual_seed(0)
    x = torch.rand(1, 3, 37, 53)            # not a multiple of 8: padded to 40 x 56 and cropped back
    with torch.no_grad():
        y = net.eval()(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_restormer_layout():
    net = Restormer()
    assert [len(e) for e in net.encoders] + [len(net.latent)] == [4, 6, 6, 8]
    assert [len(d) for d in net.decoders] + [len(net.refinement)] == [6, 6, 4, 4]
    assert [e[0].attention.heads for e in net.encoders] + [net.latent[0].attention.heads] == [1, 2, 4, 8]
    assert [e[0].norm1.weight.numel() for e in net.encoders] == [48, 96, 192]
    assert net.decoders[2][0].norm1.weight.numel() == 96       # level 1 keeps 2 x 48 channels
    assert net.encoders[0][0].feed_forward.project_out.in_channels == int(48 * 2.66)


def test_top_k_attention_keeps_the_largest_scores():
    attn = TopKAttention(dim=30, heads=1)
    scores = torch.randn(2, 1, 30, 30)
    for level, keep in enumerate((15, 20, 22, 24)):             # floor(30 * 1/2, 2/3, 3/4, 4/5)
        with torch.no_grad():
            attn.level_weights.zero_()
            attn.level_weights[level] = 1
        weights = attn.mix(scores)
        assert torch.equal((weights > 0).sum(-1), torch.full((2, 1, 30), keep))
        assert torch.allclose(weights.sum(-1), torch.ones(2, 1, 30))
        # the kept entries are each row's largest scores
        assert torch.equal(weights > 0, scores >= scores.topk(keep, dim=-1).values[..., -1:])


@pytest.mark.parametrize("name", ["restormer", "drsformer"])
def test_saving_memory_gives_the_same_gradients(name):
    x = torch.rand(1, 3, 16, 24)
    grads = []
    for save in (True, False):
        torch.manual_seed(0)
        net = build_network(name, save_memory=save, **SMALL[name]).train()
        net(x).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-7)
