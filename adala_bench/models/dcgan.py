"""The 64x64 DCGAN generator and critic of PROTOCOL.md §3 (AdaBelief's `wgan/main.py` and `wgan-gp/main.py`).

Layer order and module names (`main.<i>`, `linear`) follow the reference, so its checkpoints
(`netG_epoch_99.pth`, `netD_epoch_99.pth`) load with `load_state_dict`, and one seed draws the same
initial weights in the same order as the reference's construction followed by `net.apply(weights_init)`.
"""

from __future__ import annotations

import torch
from torch import nn

from adala_bench.settings import CRITIC_KINDS

LATENT = 100
CHANNELS = 3


class Generator(nn.Module):
    """z (B, latent, 1, 1) -> images (B, 3, 64, 64) in [-1, 1]; ngf = 64 * width. Weights are initialised already."""

    def __init__(self, latent: int = LATENT, width: float = 1.0):
        super().__init__()
        if not (isinstance(latent, int) and latent >= 1):
            raise ValueError(f"latent must be a positive int, got {latent!r}")
        ngf = _scaled(64, width)
        self.latent = latent
        self.main = nn.Sequential(
            *_up(latent, ngf * 8, stride=1, padding=0),  # 4x4
            *_up(ngf * 8, ngf * 4),  # 8x8
            *_up(ngf * 4, ngf * 2),  # 16x16
            *_up(ngf * 2, ngf),  # 32x32
            nn.ConvTranspose2d(ngf, CHANNELS, 4, 2, 1, bias=False),  # 64x64
            nn.Tanh(),
        )
        self.apply(weights_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class Critic(nn.Module):
    """images (B, 3, 64, 64) -> scores (B,); ndf = 64 * width. Weights are initialised already.

    kind "wgan": the DCGAN discriminator, a 4x4 conv head and a Sigmoid (the reference applies the WGAN loss to
    these sigmoid outputs). kind "wgan_gp": the same trunk, then flatten and Linear(8*ndf*16 -> 1), no sigmoid.
    """

    def __init__(self, kind: str = "wgan", width: float = 1.0):
        super().__init__()
        if kind not in CRITIC_KINDS:
            raise ValueError(f"unknown critic kind {kind!r}; allowed: {', '.join(CRITIC_KINDS)}")
        ndf = _scaled(64, width)
        self.kind = kind
        trunk = [
            nn.Conv2d(CHANNELS, ndf, 4, 2, 1, bias=False),  # 32x32, no BatchNorm on the first layer
            nn.LeakyReLU(0.2, inplace=True),
            *_down(ndf, ndf * 2),  # 16x16
            *_down(ndf * 2, ndf * 4),  # 8x8
            *_down(ndf * 4, ndf * 8),  # 4x4
        ]
        if kind == "wgan":
            self.main = nn.Sequential(*trunk, nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())
        else:
            self.main = nn.Sequential(*trunk)
            self.linear = nn.Linear(ndf * 8 * 4 * 4, 1)  # keeps PyTorch's default init, as the reference
        self.apply(weights_init)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.main(images)
        if self.kind == "wgan_gp":
            out = self.linear(out.flatten(1))
        return out.view(-1)


def weights_init(module: nn.Module) -> None:
    """The reference's `weights_init`, for `net.apply`: it matches class names, so ConvTranspose2d counts as Conv.

    Conv weights ~ N(0, 0.02); BatchNorm weight ~ N(1, 0.02), bias 0; anything else (Linear) is left alone.
    """
    name = type(module).__name__
    if "Conv" in name:
        module.weight.data.normal_(0.0, 0.02)
    elif "BatchNorm" in name:
        module.weight.data.normal_(1.0, 0.02)
        module.bias.data.fill_(0)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None, alpha: torch.Tensor | None = None) -> torch.Tensor:
    """mean((||grad_x D(x_hat)||_2 - 1)^2) at x_hat = a*real + (1-a)*fake, a ~ U[0, 1] per sample; times λ by the caller.

    As the reference's `calc_gradient_penalty`: real and fake are detached, a is drawn on the CPU (or on
    `generator`'s device) with shape (B, 1, 1, 1), the gradient keeps its graph so the penalty trains the critic,
    and the norm runs over all dimensions but the batch. The critic runs in whatever mode it is in.
    `alpha` (B values, drawn by the caller) replaces the draw: a task that draws them ahead on the training device
    avoids a host-to-device copy (a sync) per step, and a look-ahead pass can reuse the step's interpolation.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake batches differ in shape: {tuple(real.shape)} vs {tuple(fake.shape)}")
    if alpha is None:
        device = generator.device if generator is not None else "cpu"
        alpha = torch.rand(real.size(0), 1, generator=generator, device=device)
    elif alpha.numel() != real.size(0):
        raise ValueError(f"alpha holds {alpha.numel()} values for a batch of {real.size(0)}")
    alpha = alpha.reshape(-1, 1, 1, 1).to(real)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat)
    (gradients,) = torch.autograd.grad(scores, x_hat, grad_outputs=torch.ones_like(scores),
                                       create_graph=True, retain_graph=True)
    return ((gradients.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


@torch.no_grad()
def clamp_(critic: nn.Module, clip_value: float = 0.01) -> None:
    """WGAN weight clipping after each critic step: every parameter, BatchNorm affine included, into ±clip_value."""
    if not clip_value > 0:
        raise ValueError(f"clip_value must be > 0, got {clip_value!r}")
    for parameter in critic.parameters():
        parameter.clamp_(-clip_value, clip_value)


def _up(in_channels: int, out_channels: int, stride: int = 2, padding: int = 1) -> list[nn.Module]:
    return [nn.ConvTranspose2d(in_channels, out_channels, 4, stride, padding, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(True)]


def _down(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 4, 2, 1, bias=False),
            nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2, inplace=True)]


def _scaled(channels: int, width: float) -> int:
    """`channels` times `width`, rounded, at least 1; width 1 keeps the reference size exactly."""
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width!r}")
    return max(1, round(channels * width))
