"""The DCGAN generator and critics of PROTOCOL.md §3: shapes, parameter counts, init, gradient penalty, clipping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adala_bench.models.dcgan import Critic, Generator, clamp_, gradient_penalty, weights_init

# Counted from the reference definitions at ngf = ndf = 64 (all convolutions without bias):
# G: ConvT 100*512*16 + 512*256*16 + 256*128*16 + 128*64*16 + 64*3*16 = 3,574,784, BN 2*(512+256+128+64) = 1,920.
# D trunk: Conv 3*64*16 + 64*128*16 + 128*256*16 + 256*512*16 = 2,755,584, BN 2*(128+256+512) = 1,792;
# head: Conv 512*16 = 8,192 (wgan) or Linear 8192 + 1 bias (wgan_gp).
GENERATOR_PARAMS = 3_576_704
CRITIC_PARAMS = {"wgan": 2_765_568, "wgan_gp": 2_765_569}


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _convs(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


def test_shapes_and_output_ranges_at_reduced_width():
    z = torch.randn(5, 100, 1, 1)
    images = Generator(width=0.25)(z)
    assert images.shape == (5, 3, 64, 64) and images.abs().max() <= 1
    for kind in ("wgan", "wgan_gp"):
        scores = Critic(kind, width=0.25)(images)
        assert scores.shape == (5,)
    assert Critic("wgan", width=0.25)(images).min() >= 0  # sigmoid head


def test_reference_parameter_counts_names_and_biases():
    generator = Generator()
    assert _count(generator) == GENERATOR_PARAMS
    assert [m.out_channels for m in _convs(generator)] == [512, 256, 128, 64, 3]
    for kind, expected in CRITIC_PARAMS.items():
        critic = Critic(kind)
        assert _count(critic) == expected
        assert [m.out_channels for m in _convs(critic)] == [64, 128, 256, 512] + ([1] if kind == "wgan" else [])
    for model in (generator, Critic("wgan"), Critic("wgan_gp")):
        assert all(conv.bias is None for conv in _convs(model))
    gp = Critic("wgan_gp")
    assert gp.linear.bias is not None and gp.linear.in_features == 8192
    # The reference's module names, so its checkpoints load.
    assert [k for k in gp.state_dict() if k.endswith("weight")] == [
        "main.0.weight", "main.2.weight", "main.3.weight", "main.5.weight", "main.6.weight",
        "main.8.weight", "main.9.weight", "linear.weight"]
    assert "main.11.weight" in Critic("wgan").state_dict()


def test_width_scales_every_channel_and_rejects_bad_values():
    assert [m.out_channels for m in _convs(Generator(width=0.5))] == [256, 128, 64, 32, 3]
    assert Critic("wgan_gp", width=0.01).linear.in_features == 8 * 16  # ndf rounds up to 1
    with pytest.raises(ValueError, match="width must be > 0"):
        Generator(width=0)
    with pytest.raises(ValueError, match="unknown critic kind 'dcgan'; allowed: wgan, wgan_gp"):
        Critic("dcgan")


def test_weights_init_statistics_and_linear_left_alone():
    torch.manual_seed(0)
    critic = Critic("wgan_gp")
    conv = torch.cat([m.weight.flatten() for m in _convs(critic)])
    assert abs(conv.mean().item()) < 1e-3 and conv.std().item() == pytest.approx(0.02, rel=0.01)
    bn = [m for m in critic.modules() if isinstance(m, nn.BatchNorm2d)]
    bn_weight = torch.cat([m.weight for m in bn])
    assert bn_weight.mean().item() == pytest.approx(1.0, abs=3e-3)
    assert bn_weight.std().item() == pytest.approx(0.02, rel=0.15)
    assert all((m.bias == 0).all() for m in bn)
    bound = 1 / 8192 ** 0.5  # PyTorch's default Linear init, which the reference keeps
    assert critic.linear.weight.abs().max() <= bound and critic.linear.weight.std() > 0.5 * bound
    linear = nn.Linear(4, 2)
    before = linear.weight.clone()
    weights_init(linear)
    assert torch.equal(linear.weight, before)


def test_one_seed_gives_the_reference_construction_then_apply():
    """Our constructor draws in the reference's order: default init of main, then linear, then apply(weights_init)."""

    def reference_critic():
        ndf = 64
        model = nn.Module()
        model.main = nn.Sequential(
            nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True))
        model.linear = nn.Linear(4 * 4 * 8 * ndf, 1)
        return model.apply(weights_init)

    torch.manual_seed(3)
    reference = reference_critic().state_dict()
    torch.manual_seed(3)
    ours = Critic("wgan_gp").state_dict()
    assert reference.keys() == ours.keys()
    assert all(torch.equal(reference[k], ours[k]) for k in ours)


def test_gradient_penalty_of_a_linear_critic_is_analytic():
    """D(x) = w.x + b has gradient w at every x: penalty (||w|| - 1)^2, and d/dw = 2(||w|| - 1) w / ||w||."""
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 1), nn.Flatten(0))
    real, fake = torch.randn(6, 3, 4, 4), torch.randn(6, 3, 4, 4)
    penalty = gradient_penalty(critic, real, fake)
    w = critic[1].weight.detach().flatten()
    norm = w.norm()
    assert penalty.item() == pytest.approx(((norm - 1) ** 2).item(), rel=1e-6)
    penalty.backward()  # create_graph: the penalty trains the critic
    expected = 2 * (norm - 1) * w / norm
    torch.testing.assert_close(critic[1].weight.grad.flatten(), expected, rtol=1e-5, atol=1e-7)
    assert critic[1].bias.grad is None  # the gradient in x does not depend on the bias


def test_gradient_penalty_of_a_quadratic_critic_matches_hand_computation():
    """D(x) = c/2 ||x||^2 per sample has gradient c x: penalty mean((c ||x_hat|| - 1)^2) at the drawn alphas."""
    c = 0.3

    def critic(x):
        return 0.5 * c * (x ** 2).flatten(1).sum(1)

    torch.manual_seed(1)
    real = torch.randn(5, 3, 2, 2, requires_grad=True)
    fake_source = torch.randn(5, 3, 2, 2, requires_grad=True)
    fake = fake_source * 2
    penalty = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(7))
    alpha = torch.rand(5, 1, generator=torch.Generator().manual_seed(7)).view(-1, 1, 1, 1)
    x_hat = alpha * real.detach() + (1 - alpha) * fake.detach()
    expected = ((c * x_hat.flatten(1).norm(dim=1) - 1) ** 2).mean()
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-6)
    penalty.backward()
    assert real.grad is None and fake_source.grad is None  # real and fake are detached, as the reference's .data


def test_gradient_penalty_backpropagates_through_the_dcgan_critic():
    torch.manual_seed(0)
    critic = Critic("wgan_gp", width=0.125)
    real, fake = torch.rand(4, 3, 64, 64) * 2 - 1, Generator(width=0.125)(torch.randn(4, 100, 1, 1))
    penalty = gradient_penalty(critic, real, fake)
    penalty.backward()
    assert penalty.item() > 0
    for conv in _convs(critic) + [critic.linear]:
        assert torch.isfinite(conv.weight.grad).all() and conv.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"real and fake batches differ in shape: \(4, 3, 64, 64\) vs \(2, 3, 64, 64\)"):
        gradient_penalty(critic, real, fake[:2])


def test_clamp_covers_every_parameter_including_batchnorm_affine():
    critic = Critic("wgan", width=0.125)
    bn = critic.main[3]
    assert bn.weight.min() > 0.5  # BN weights start near 1, far outside the clip range
    with torch.no_grad():
        for parameter in critic.parameters():
            parameter.uniform_(-2, 2)
    running_var = bn.running_var.clone()
    clamp_(critic, 0.01)
    assert all(p.abs().max() <= 0.01 for p in critic.parameters())
    assert (bn.weight.abs() == 0.01).any() and (bn.bias.abs() == 0.01).any()
    assert torch.equal(bn.running_var, running_var)  # buffers are not parameters
    with pytest.raises(ValueError, match="clip_value must be > 0, got 0"):
        clamp_(critic, 0)
