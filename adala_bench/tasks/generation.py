"""CIFAR-10 generation with WGAN and WGAN-GP as the reference ran them (PROTOCOL.md §3; Table 4).

Data: the 50k training images, resized 32→64 once on the training device exactly as torchvision's `Resize(64)` on a
PIL image followed by `ToTensor` (PIL's bilinear filter, which rounds to 8 bits after its horizontal and after its
vertical pass), then scaled to [-1, 1]; no augmentation. Each epoch draws, on the CPU from a generator seeded by
(seed, epoch) alone, the permutation, the latent z ~ N(0, I) (N, 100, 1, 1) of every image, and WGAN-GP's
interpolation weights; so an epoch's batches (64, the short last one kept) are the same on any device and on resume.

Steps, as the reference's loop: a critic step on every batch, a generator step on every 5th (index % 5 == 0), each
computed in `loss` (so inside the trainer's autocast; `moves` only chooses batches). The critic's loss makes
fake = G(z) once per batch, without a graph, in train mode: G's BatchNorm statistics move once per batch, as with the
reference's one `fake = netG(noise)`; then d_loss = −mean(D(real)) + mean(D(fake)) with real and fake in separate
forward passes
(+ 10 · gradient penalty for WGAN-GP); after the step WGAN clamps every critic parameter to ±0.01. The generator's
loss makes G(z) of the same batch again, with its graph and G's buffers kept (trainer.buffers_kept: the statistics
moved once already), and takes −mean(D(fake)). G did not change in between and a train-mode BatchNorm normalises
with the batch's own statistics, so this is the reference's fake, value for value.

AdaLA's look-ahead (ADALA.md): the critic's is on the step's own batch, fakes included (G fixed: the batch keeps
the fakes its critic's loss made); the generator's makes G(z) at its tentative parameters, with the step's z for
`same` and the next batch's z for `next`. The trainer keeps every buffer of both networks through a look-ahead pass.

Metrics: per-epoch means over the steps of d_loss, wasserstein_estimate (mean D(real) − mean D(fake)), gp (the
penalty before ×10, WGAN-GP) and g_loss. FID (tasks/gan_fid.py: the generator in eval mode, as the reference's
`netG.eval()`): `fid` after the last epoch with `final_samples` fakes (the protocol's value, Table 4), `fid_curve`
with `curve_samples` after every `every`-th other epoch; each row with an FID carries `fid_real_weights`: 1 for
pytorch-fid's weights, 0 for anything else (the random weights of tests and the demo: not a real FID; the report
flags such cells).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchvision.utils import save_image

from adala_bench.data import batch_span
from adala_bench.data.cifar10 import Cifar10Arrays
from adala_bench.data.gan_images import resize_like_pil, to_unit_range
from adala_bench.metrics.fid import FIDError, ensure_inception_weights
from adala_bench.models.dcgan import LATENT, Critic, Generator, clamp_, gradient_penalty
from adala_bench.seeding import SAMPLES_STREAM, derived_seed, epoch_seed
from adala_bench.settings import FidSettings
from adala_bench.tasks.gan_fid import GeneratorFid
from adala_bench.trainer import Loss, Move, Player, buffers_kept

IMAGE_SIZE = 64  # Resize(64)
N_CRITIC = 5  # --n_critic: a generator step when batch index % 5 == 0
CLIP_VALUE = 0.01  # --clip_value (WGAN)
GP_WEIGHT = 10.0  # λ (WGAN-GP)
SAMPLE_GRID = 64  # fixed-noise images in each samples/*.png (8 x 8)


@dataclass
class GanBatch:
    """One training batch, the critic's: real images in [-1, 1], their latent z, WGAN-GP's interpolation weights, and
    G(z) once the critic's loss made it. A generator step's batch is z alone."""

    real: torch.Tensor  # [B, 3, 64, 64]
    z: torch.Tensor  # [B, 100, 1, 1]
    alpha: torch.Tensor  # [B]
    fake: torch.Tensor | None = None  # G(z) without a graph: made by the critic's loss, reused by its look-ahead


class GanEpoch(Sequence):
    """One epoch's batches, made when asked for (random access, so the trainer can look ahead)."""

    def __init__(self, images: torch.Tensor, order: torch.Tensor, noise: torch.Tensor, alphas: torch.Tensor,
                 batch_size: int):
        self.images, self.order, self.z, self.alphas, self.batch_size = images, order, noise, alphas, batch_size

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def _span(self, index: int) -> slice:
        return batch_span(index, len(self), self.batch_size)

    def __getitem__(self, index: int) -> GanBatch:
        span = self._span(index)
        real = to_unit_range(self.images.index_select(0, self.order[span]))
        return GanBatch(real, self.z[span], self.alphas[span])

    def noise(self, index: int) -> torch.Tensor:
        """Batch `index`'s z alone (a generator look-ahead on `next` needs no images)."""
        return self.z[self._span(index)]


class WassersteinGAN:
    """Two players, "critic" (WGAN: clamped after each of its steps) and "generator"; stateless batches."""

    def __init__(self, data: Cifar10Arrays, *, kind: str, width: float, batch_size: int, epochs: int, seed: int,
                 device: torch.device | str, data_fingerprint: str, fid_cache_dir: str | Path, fid: FidSettings):
        count = len(data.train_images)
        if fid.real_images is not None and fid.real_images > count:
            raise FIDError(f"task.fid.real_images={fid.real_images} is more than the {count} training images")
        self.kind, self.batch_size, self.epochs, self.seed, self.fid = kind, batch_size, epochs, seed, fid
        self.device = torch.device(device)

        ensure_inception_weights()  # a missing weights file fails here, in one line, before anything slow
        self.images = resize_like_pil(data.train_images.to(self.device), IMAGE_SIZE)
        self.fid_meter = GeneratorFid(self.images, fid, device=self.device, cache_dir=fid_cache_dir,
                                      data_fingerprint=data_fingerprint)

        # In the reference's order (netG, then netD), each initialised as it is built: one seed, the same weights.
        self.generator = Generator(width=width).to(self.device)
        self.critic = Critic(kind, width=width).to(self.device)
        clamp = (lambda: clamp_(self.critic, CLIP_VALUE)) if kind == "wgan" else None
        self.players = {"critic": Player(self.critic, after_step=clamp, compilable=kind != "wgan_gp"),
                        "generator": Player(self.generator)}
        generator = torch.Generator().manual_seed(derived_seed(seed, 0, SAMPLES_STREAM))
        self.fixed_noise = torch.randn(SAMPLE_GRID, LATENT, 1, 1, generator=generator).to(self.device)

    # -- training ------------------------------------------------------------------------------------------------
    def train_batches(self, epoch: int) -> GanEpoch:
        count = len(self.images)
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        order = torch.randperm(count, generator=generator)
        noise = torch.randn(count, LATENT, 1, 1, generator=generator)
        alphas = torch.rand(count, generator=generator)
        return GanEpoch(self.images, order.to(self.device), noise.to(self.device), alphas.to(self.device),
                        self.batch_size)

    def moves(self, batches: GanEpoch, index: int) -> list[Move]:
        batch = batches[index]
        moves = [Move("critic", batch, next_batch=batch)]  # G fixed: the look-ahead's fakes are the step's
        if index % N_CRITIC == 0:
            moves.append(Move("generator", batch.z, next_batch=batches.noise((index + 1) % len(batches))))
        return moves

    def initial_carry(self) -> None:
        return None

    def loss(self, player: str, batch: GanBatch | torch.Tensor, carry: None) -> Loss:
        if player == "critic":
            if batch.fake is None:  # once per batch, in train mode: G's BatchNorm statistics move once
                with torch.no_grad():
                    batch.fake = self.generator(batch.z)
            fake = batch.fake
            real_mean = self.critic(batch.real).mean()
            fake_mean = self.critic(fake).mean()
            value = -real_mean + fake_mean
            sums = {"wasserstein": (real_mean - fake_mean).detach()}
            if self.kind == "wgan_gp":
                penalty = gradient_penalty(self.critic, batch.real, fake, alpha=batch.alpha)
                value = value + GP_WEIGHT * penalty
                sums["gp"] = penalty.detach()
            sums.update(d_loss=value.detach(), d_steps=1)
            return Loss(value, sums)
        if player == "generator":
            with buffers_kept(self.generator):  # the critic's loss counted this batch in G's statistics already
                fake = self.generator(batch)
            value = -self.critic(fake).mean()
            return Loss(value, {"g_loss": value.detach(), "g_steps": 1})
        raise ValueError(f"unknown player {player!r}; the players are critic and generator")

    def summarize_train(self, sums: dict[str, torch.Tensor | int]) -> dict[str, float]:
        d_steps, g_steps = sums["d_steps"], sums["g_steps"]
        metrics = {"d_loss": sums["d_loss"].item() / d_steps, "g_loss": sums["g_loss"].item() / g_steps,
                   "wasserstein_estimate": sums["wasserstein"].item() / d_steps}
        if "gp" in sums:
            metrics["gp"] = sums["gp"].item() / d_steps
        return metrics

    # -- evaluation ----------------------------------------------------------------------------------------------
    def fid_epoch(self, epoch: int) -> tuple[str, int] | None:
        """(metrics key, fakes) of the FID measured after `epoch`, or None."""
        if epoch == self.epochs - 1:
            return "fid", self.fid.final_samples
        if self.fid.every and (epoch + 1) % self.fid.every == 0:
            return "fid_curve", self.fid.curve_samples
        return None

    @torch.no_grad()
    def evaluate(self, epoch: int) -> dict[str, Any]:
        which = self.fid_epoch(epoch)
        if which is None:
            return {}
        key, samples = which
        real = float(self.fid_meter.real_weights)  # a number, like every other metrics value
        return {key: self.fid_meter(self.generator, samples, self.seed, epoch), "fid_real_weights": real}

    @torch.no_grad()
    def artifacts(self, epoch: int) -> dict[str, bytes]:
        """The fixed-noise 8 x 8 grid of the generator in eval mode: samples/epoch_XXX.png, and samples/final.png."""
        self.generator.eval()
        try:
            images = self.generator(self.fixed_noise).float().cpu()
        finally:
            self.generator.train()
        buffer = io.BytesIO()
        save_image(images, buffer, format="png", nrow=8, normalize=True)
        files = {f"samples/epoch_{epoch:03d}.png": buffer.getvalue()}
        if epoch == self.epochs - 1:
            files["samples/final.png"] = files[f"samples/epoch_{epoch:03d}.png"]
        return files
