"""tasks/generation.py, WGAN / WGAN-GP (PROTOCOL.md §3, Table 4) on the shared trainer: batches a function of (seed,
epoch), every kind × optimizer for one epoch with the as-run hyperparameters, WGAN's clamp after critic steps only,
the gradient penalty, AdaLA's two look-aheads (ADALA.md: what they evaluate and what they must leave alone), resume
bit for bit, FID rows and sample grids. (The GAN configs' as-run values: tests/unit/test_config.py; build_task:
tasks/test_build_task.py; the images' resize: data/test_gan_images.py; the FID's keys: tasks/test_gan_fid.py.)

Everything is tiny (width 1/16, 26 synthetic images, Inception at 64 dims on a handful of samples) and offline:
Inception runs on a random-weights file in a temporary TORCH_HOME, and torch hub's downloader is stubbed to fail.
"""

from __future__ import annotations

import copy
import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from adala_bench import optim
from adala_bench.metrics import fid as fid_module
from adala_bench.metrics.fid import FIDError, activation_statistics, paper_preprocess
from adala_bench.catalog import OPTIMIZER_ORDER
from adala_bench.config import CONF_DIR
from adala_bench.data.cifar10 import cifar10_arrays
from adala_bench.data.gan_images import resize_like_pil, to_unit_range
from adala_bench.models.dcgan import gradient_penalty
from adala_bench.settings import FidSettings, OptimizerSpec, Schedule, TrainerSettings
from adala_bench.store import SAMPLES_FILE
from adala_bench.tasks import gan_fid, generation
from adala_bench.tasks.gan_fid import train_images_fingerprint
from adala_bench.tasks.generation import WassersteinGAN
from adala_bench.trainer import Progress, Trainer
from helpers import assert_same, final_state

pytestmark = pytest.mark.usefixtures("no_network")  # conftest: every download fails, as offline

CPU = torch.device("cpu")
KINDS = ("wgan", "wgan_gp")
N_TRAIN, BATCH = 26, 4  # 7 batches, the last one short (2 images); generator steps at batches 0 and 5
WIDTH = 0.0625  # ngf = ndf = 4
SMALL_FID = FidSettings(dims=64, every=0, curve_samples=2, final_samples=2, batch_size=50)


# ---- fixtures --------------------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def torch_home(random_home, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(random_home))
    return random_home


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gan_data")


@pytest.fixture(scope="module")
def data(data_root):
    return cifar10_arrays(data_root, "synthetic", N_TRAIN, 5)


@pytest.fixture(scope="module")
def stats_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fid_stats")


@pytest.fixture
def make_task(data, stats_dir):
    def make(kind="wgan", *, epochs=1, fid=SMALL_FID, seed=0, batch_size=BATCH, init_seed=0):
        torch.manual_seed(init_seed)  # the runner seeds before it builds the task
        return WassersteinGAN(data, kind=kind, width=WIDTH, batch_size=batch_size, epochs=epochs, seed=seed,
                              device=CPU, data_fingerprint=train_images_fingerprint(data), fid_cache_dir=stats_dir,
                              fid=fid)

    return make


def gan_spec(name: str, **override) -> OptimizerSpec:
    """The as-run hyperparameters from conf/hparams/gan/<name>.yaml, as the task's defaults list picks them."""
    hparams = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "hparams" / "gan" / f"{name}.yaml"))
    return OptimizerSpec(name, {**hparams, **override})


def make_trainer(task, spec, *, epochs=1, lookahead_batch="next"):
    return Trainer(task, {"critic": spec, "generator": spec}, epochs=epochs, schedule=Schedule(), device=CPU,
                   settings=TrainerSettings(lookahead_batch=lookahead_batch))


def params(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def buffers(*modules) -> list[torch.Tensor]:
    return [b.detach().clone() for m in modules for b in m.buffers()]


def all_equal(xs, ys) -> bool:
    return len(xs) == len(ys) and all(torch.equal(x, y) for x, y in zip(xs, ys))


def tracked(module) -> int:
    """Forward passes a BatchNorm saw in train mode (every BatchNorm of a network sees the same passes)."""
    counts = {int(b) for n, b in module.named_buffers() if n.endswith("num_batches_tracked")}
    assert len(counts) == 1
    return counts.pop()


def adala_tentative(theta, g, lr, betas, eps):
    """AdaLA's tentative point θ' at its first step (ADALA.md, step 2 with m = s = 0 before, no weight decay)."""
    beta1, beta2 = betas
    m = (1 - beta1) * g
    s = (1 - beta2) * (g - m) ** 2 + eps
    return theta - lr / (1 - beta1) * m / (s.sqrt() / math.sqrt(1 - beta2) + eps)


def capture_gradients(optimizer) -> list[list[torch.Tensor]]:
    """Record g_t (p.grad as the trainer hands the optimizer its real step) at every step."""
    seen = []
    original = optimizer.step

    def step(*args, **kwargs):
        seen.append([p.grad.detach().clone() for group in optimizer.param_groups for p in group["params"]])
        return original(*args, **kwargs)

    optimizer.step = step
    return seen


# ---- initial weights and batches ---------------------------------------------------------------------------------

def test_initial_weights_do_not_depend_on_an_inception_built_before(make_task, monkeypatch):
    """Building Inception draws from the global RNG; it is built once per process, so it must not shift the seed."""
    monkeypatch.setattr(gan_fid, "_inception", {})
    cold = make_task()
    warm = make_task()
    assert len(gan_fid._inception) == 1
    assert all_equal(params(cold.generator), params(warm.generator))
    assert all_equal(params(cold.critic), params(warm.critic))
    torch.manual_seed(0)
    assert torch.equal(next(cold.generator.parameters()), next(generation.Generator(width=WIDTH).parameters()))


def test_batches_are_a_function_of_seed_and_epoch(make_task, data):
    task, again, other_seed = make_task(), make_task(init_seed=5), make_task(seed=1)
    batches = task.train_batches(1)
    assert len(batches) == 7 and [len(batches[i].real) for i in range(7)] == [4] * 6 + [2]
    for i in range(7):
        batch, same = batches[i], again.train_batches(1)[i]
        assert torch.equal(batch.real, same.real) and torch.equal(batch.z, same.z)
        assert torch.equal(batch.alpha, same.alpha) and torch.equal(batches.noise(i), batch.z)
        assert batch.z.shape == (len(batch.real), 100, 1, 1) and batch.alpha.shape == (len(batch.real),)
    assert not torch.equal(task.train_batches(0)[0].z, batches[0].z)
    assert not torch.equal(other_seed.train_batches(1)[0].z, batches[0].z)
    # every train image once per epoch, in [-1, 1] on the 8-bit levels of the resized image
    images = torch.cat([batches[i].real for i in range(7)])
    assert images.min() >= -1 and images.max() <= 1
    levels = (images * 0.5 + 0.5) * 255
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    resized = to_unit_range(resize_like_pil(data.train_images, 64))
    assert torch.equal(images[batches.order.argsort()], resized)


# ---- one epoch for every kind and optimizer ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(OPTIMIZER_ORDER))
def test_every_kind_and_optimizer_trains_an_epoch(make_task, monkeypatch, kind, name):
    """Finite losses; the clamp holds after every WGAN critic step and runs only there; a generator step leaves the
    critic's parameters alone; every BatchNorm saw exactly the real passes (look-aheads undone)."""
    task = make_task(kind)
    trainer = make_trainer(task, gan_spec(name))
    clamps = []
    if kind == "wgan":
        clamp = task.players["critic"].after_step
        task.players["critic"].after_step = lambda: (clamps.append(len(moves)), clamp())
    else:
        assert task.players["critic"].after_step is None and task.players["generator"].after_step is None
    moves = []
    original_step = Trainer._step

    def step(self, move, carry, epoch):
        critic_before = params(task.critic)
        loss = original_step(self, move, carry, epoch)
        moves.append(move.player)
        if move.player == "generator":
            assert all_equal(params(task.critic), critic_before)
        elif kind == "wgan":
            assert all(p.abs().max() <= 0.01 for p in task.critic.parameters())
        return loss

    monkeypatch.setattr(Trainer, "_step", step)
    row = trainer.train_epoch(Progress())

    assert moves == ["critic", "generator"] + ["critic"] * 4 + ["critic", "generator", "critic"]
    closure = optim.needs_closure(trainer.optimizers["critic"])
    assert (row["grad_evals_critic"], row["grad_evals_generator"]) == ((14, 4) if closure else (7, 2))
    for key in ("d_loss", "g_loss", "wasserstein_estimate", "fid") + (("gp",) if kind == "wgan_gp" else ()):
        assert isinstance(row[key], float) and math.isfinite(row[key]), key
    assert ("gp" in row) == (kind == "wgan_gp") and row["fid_real_weights"] == 0.0
    if kind == "wgan":  # after each critic move, never after a generator move
        assert clamps == [i for i, player in enumerate(moves) if player == "critic"]
    else:
        assert any(p.abs().max() > 0.01 for p in task.critic.parameters())
    # G: one train-mode forward per batch (the critic's loss); critic: real and fake (and x̂) per critic step,
    # D(fake) per G step
    assert tracked(task.generator) == 7
    assert tracked(task.critic) == 7 * (2 if kind == "wgan" else 3) + 2


# ---- losses ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_critic_loss_separate_passes_and_the_gradient_penalty(make_task, kind):
    task = make_task(kind)
    batch = task.moves(task.train_batches(0), 1)[0].batch
    reference, generator = copy.deepcopy(task.critic), copy.deepcopy(task.generator)
    with torch.no_grad():
        fake = generator(batch.z)  # train mode, as the reference's fake = netG(noise)
    before = tracked(task.critic)
    loss = task.loss("critic", batch, None)
    assert tracked(task.critic) == before + (2 if kind == "wgan" else 3)  # real, fake (and x̂): separate passes
    # the loss made G(z) in train mode, kept with the batch: G's statistics are those of that one forward
    assert torch.equal(batch.fake, fake) and not batch.fake.requires_grad
    assert tracked(task.generator) == 1 and all_equal(buffers(task.generator), buffers(generator))
    task.loss("critic", batch, None)  # again on the same batch (as its look-ahead): the same fakes, no G forward
    assert tracked(task.generator) == 1
    real_mean, fake_mean = reference(batch.real).mean(), reference(fake).mean()
    torch.testing.assert_close(loss.sums["wasserstein"], (real_mean - fake_mean).detach())
    if kind == "wgan":
        torch.testing.assert_close(loss.value, -real_mean + fake_mean)
        assert "gp" not in loss.sums
        return
    penalty = gradient_penalty(reference, batch.real, fake, alpha=batch.alpha)
    assert loss.sums["gp"] > 0 and penalty.item() > 0
    torch.testing.assert_close(loss.sums["gp"], penalty.detach())
    torch.testing.assert_close(loss.value, -real_mean + fake_mean + 10 * penalty)
    torch.testing.assert_close(loss.sums["d_loss"], loss.value.detach())
    # the penalty trains the critic, and the fakes carry no graph back into G
    assert all(p.grad is None for p in task.generator.parameters())
    with_gp = torch.autograd.grad(loss.value, list(task.critic.parameters()))
    fresh = copy.deepcopy(reference)
    without = torch.autograd.grad(-fresh(batch.real).mean() + fresh(fake).mean(), list(fresh.parameters()))
    assert any(not torch.allclose(a, b) for a, b in zip(with_gp, without))


def test_generator_loss_makes_g_of_z_with_its_graph_and_keeps_gs_statistics(make_task):
    """The generator step's G(z) is the batch's second G forward: the critic's loss moved G's statistics for the
    batch already, so this one leaves them (and their version counters) alone, yet back-propagates into G."""
    task = make_task()
    critic_move, move = task.moves(task.train_batches(0), 0)
    assert move.player == "generator" and torch.equal(move.batch, critic_move.batch.z)
    task.loss("critic", critic_move.batch, None)
    statistics, versions = buffers(task.generator), [b._version for b in task.generator.buffers()]
    critic_statistics = tracked(task.critic)
    critic, generator = copy.deepcopy(task.critic), copy.deepcopy(task.generator)
    loss = task.loss("generator", move.batch, None)
    assert torch.equal(loss.value, -critic(generator(move.batch)).mean())
    assert all_equal(buffers(task.generator), statistics) and tracked(task.generator) == 1
    assert [b._version for b in task.generator.buffers()] == versions
    assert tracked(task.critic) == critic_statistics + 1  # D(fake) in train mode, as the reference's netD(fake)
    loss.value.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in task.generator.parameters())


def test_every_forward_pass_runs_in_the_loss_inside_the_trainers_autocast(make_task):
    """moves() only chooses batches; every forward of both networks happens in loss(), which the trainer calls inside
    its autocast: under precision=bf16 the generator's fakes are bf16 for g_t as for g' (they were fp32 for g_t when
    moves() made them)."""
    task = make_task()
    forwards = []
    for name, module in (("critic", task.critic), ("generator", task.generator)):
        module.register_forward_hook(lambda module, inputs, output, name=name: forwards.append(
            (name, torch.is_autocast_enabled("cpu"), output.dtype)) if module.training else None)
    batches = task.train_batches(0)
    for index in range(len(batches)):
        task.moves(batches, index)
    assert forwards == []
    trainer = Trainer(task, {"critic": gan_spec("adala"), "generator": gan_spec("adala")}, epochs=1,
                      schedule=Schedule(), device=CPU, settings=TrainerSettings(precision="bf16"))
    trainer.train_epoch(Progress())
    generator_forwards = [f for f in forwards if f[0] == "generator"]
    # training (FID's eval-mode passes aside): one per batch for the critic's step (its look-ahead reuses the fakes),
    # one each for g_t and g' per generator step
    assert len(generator_forwards) == 7 + 2 * 2
    assert all(enabled for _, enabled, _ in forwards)
    assert {dtype for _, _, dtype in generator_forwards} == {torch.bfloat16}


# ---- AdaLA's look-aheads -----------------------------------------------------------------------------------------

def spy_losses(task):
    """Per loss call: the player, the batch, both networks' parameters at the call, every buffer after it."""
    calls = []
    original = task.loss

    def loss(player, batch, carry):
        at = (params(task.critic), params(task.generator))
        result = original(player, batch, carry)
        calls.append({"player": player, "batch": batch, "critic": at[0], "generator": at[1],
                      "buffers": buffers(task.critic, task.generator)})
        return result

    task.loss = loss
    return calls


ADALA_LR = 1e-2  # larger than the as-run 2e-4, so θ' is far from θ


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("lookahead_batch", ["next", "same"])
def test_critic_lookahead_at_tentative_parameters_leaves_generator_buffers_and_fakes(make_task, kind,
                                                                                     lookahead_batch):
    task = make_task(kind)
    spec = gan_spec("adala", lr=ADALA_LR)
    trainer = make_trainer(task, spec, lookahead_batch=lookahead_batch)
    batches = task.train_batches(0)
    critic_move = task.moves(batches, 3)[0]
    theta, generator_before = params(task.critic), params(task.generator)
    gradients = capture_gradients(trainer.optimizers["critic"])
    calls = spy_losses(task)
    fakes = []
    hook = task.generator.register_forward_hook(lambda module, inputs, output: fakes.append(output.detach().clone()))

    trainer._step(critic_move, None, epoch=0)
    hook.remove()

    assert [c["player"] for c in calls] == ["critic", "critic"]
    real, lookahead = calls
    assert all_equal(real["critic"], theta)
    expected = [adala_tentative(t, g, ADALA_LR, (0.5, 0.999), 1e-12) for t, g in zip(theta, gradients[0])]
    for at, want in zip(lookahead["critic"], expected):
        torch.testing.assert_close(at, want, rtol=1e-5, atol=1e-8)
    # every tensor moved but WGAN-GP's head bias, whose gradient −1 + 1 (real and fake means) is 0
    assert [torch.equal(at, start) for at, start in zip(lookahead["critic"], theta)] == \
        [name == "linear.bias" for name, _ in task.critic.named_parameters()]
    # G fixed: its parameters, the fakes (made once, by the real pass) and the real batch are the step's
    assert all_equal(lookahead["generator"], generator_before) and all_equal(params(task.generator), generator_before)
    assert lookahead["batch"] is real["batch"] and len(fakes) == 1 and torch.equal(real["batch"].fake, fakes[0])
    # every buffer of both networks is as the real pass left it; the parameters moved, and not to θ'
    assert all_equal(buffers(task.critic, task.generator), real["buffers"])
    after = params(task.critic)
    assert any(not torch.equal(a, t) for a, t in zip(after, theta))
    assert any(not torch.equal(a, l) for a, l in zip(after, lookahead["critic"]))
    if kind == "wgan":
        assert all(p.abs().max() <= 0.01 for p in after)
        assert any(p.abs().max() > 0.01 for p in lookahead["critic"])  # the clamp is not applied inside the look-ahead


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("lookahead_batch", ["next", "same"])
def test_generator_lookahead_remakes_g_at_tentative_parameters(make_task, kind, lookahead_batch):
    task = make_task(kind)
    trainer = make_trainer(task, gan_spec("adala", lr=ADALA_LR), lookahead_batch=lookahead_batch)
    batches = task.train_batches(0)
    critic_move, generator_move = task.moves(batches, 5)
    assert tracked(task.generator) == 0  # moves() makes nothing
    trainer._step(critic_move, None, epoch=0)
    assert tracked(task.generator) == 1  # the critic's loss made G(z) once in train mode; its look-ahead left no trace
    theta, critic_before = params(task.generator), params(task.critic)
    generator_buffers = buffers(task.generator)
    gradients = capture_gradients(trainer.optimizers["generator"])
    forwards = []
    hook = task.generator.register_forward_pre_hook(
        lambda module, inputs: forwards.append((inputs[0].clone(), params(module))))
    calls = spy_losses(task)

    trainer._step(generator_move, None, epoch=0)
    hook.remove()

    real, lookahead = calls
    assert real["batch"] is generator_move.batch
    # two G forwards in the move: g_t's at θ on z_5, the look-ahead's at θ' on z_5 (same) or z_6 (next)
    assert len(forwards) == 2
    assert torch.equal(forwards[0][0], batches.noise(5)) and all_equal(forwards[0][1], theta)
    z, at = forwards[1]
    assert torch.equal(z, batches.noise(5 if lookahead_batch == "same" else 6))
    expected = [adala_tentative(t, g, ADALA_LR, (0.5, 0.999), 1e-12) for t, g in zip(theta, gradients[0])]
    for value, want, start in zip(at, expected, theta):
        torch.testing.assert_close(value, want, rtol=1e-5, atol=1e-8)
        assert not torch.equal(value, start)  # every tensor of G moved to θ'
    # the critic is untouched, G's statistics are still those of the critic step's one forward, the critic's those
    # of the real pass; G's parameters moved (not to θ')
    assert all_equal(params(task.critic), critic_before) and all_equal(lookahead["critic"], critic_before)
    assert all_equal(buffers(task.generator), generator_buffers) and tracked(task.generator) == 1
    assert all_equal(buffers(task.critic, task.generator), real["buffers"])
    after = params(task.generator)
    assert any(not torch.equal(a, t) for a, t in zip(after, theta))
    assert any(not torch.equal(a, v) for a, v in zip(after, at))


def test_the_next_generator_lookahead_wraps_to_the_first_z(make_task):
    task = make_task(batch_size=5)  # 6 batches: generator steps at 0 and 5, and 5 is the last
    batches = task.train_batches(0)
    generator_move = task.moves(batches, 5)[1]
    assert torch.equal(generator_move.next_batch, batches.noise(0))
    assert torch.equal(generator_move.batch, batches.noise(5))  # g_t's z, and g' 's under `same`


# ---- resume ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, name", [("wgan", "adala"), ("wgan_gp", "adala")])
def test_resume_after_an_interrupted_epoch_is_bit_for_bit(make_task, kind, name):
    fid = FidSettings(dims=64, every=1, curve_samples=4, final_samples=6)
    trainer = make_trainer(make_task(kind, epochs=3, fid=fid), gan_spec(name), epochs=3)
    for progress, _, artifacts in trainer.fit(Progress()):
        pass
    straight, straight_artifacts = final_state(trainer, progress), artifacts
    assert [("fid_curve" in r, "fid" in r) for r in progress.metrics] == [(True, False), (True, False), (False, True)]

    first = make_trainer(make_task(kind, epochs=3, fid=fid), gan_spec(name), epochs=3)
    for progress, state, _ in first.fit(Progress()):
        if progress.epoch == 2:
            break  # epoch 2 was interrupted: resume from the checkpoint written after epoch 1
    buffer = io.BytesIO()
    torch.save(state, buffer)
    second_task = make_task(kind, epochs=3, fid=fid, init_seed=12345)  # other initial weights: the checkpoint wins
    second = make_trainer(second_task, gan_spec(name), epochs=3)
    progress = second.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=False))
    assert progress.epoch == 2
    for progress, _, artifacts in second.fit(progress):
        pass
    assert_same(final_state(second, progress), straight)
    assert artifacts == straight_artifacts


# ---- FID and artifacts -----------------------------------------------------------------------------------------

def test_fid_rows_at_the_right_epochs_with_the_weights_label(make_task, monkeypatch):
    task = make_task(epochs=5, fid=FidSettings(dims=64, every=2, curve_samples=4, final_samples=6))
    measured = []
    original = task.fid_meter.__call__
    monkeypatch.setattr(task, "fid_meter", lambda generator, samples, seed, epoch: measured.append((samples, epoch))
                        or original(generator, samples, seed, epoch))
    monkeypatch.setattr(task.fid_meter, "real_weights", False, raising=False)
    rows = {epoch: task.evaluate(epoch) for epoch in range(5)}
    assert rows[0] == rows[2] == {}
    assert set(rows[1]) == set(rows[3]) == {"fid_curve", "fid_real_weights"}
    assert set(rows[4]) == {"fid", "fid_real_weights"}  # the last epoch: the protocol's FID, with final_samples
    assert measured == [(4, 1), (4, 3), (6, 4)]
    assert all(row["fid_real_weights"] == 0.0 for row in rows.values() if row)
    assert all(math.isfinite(v) and v > 0 for row in rows.values() for k, v in row.items() if k != "fid_real_weights")
    assert task.evaluate(4) == rows[4]  # the fakes are a function of (seed, epoch)
    assert task.generator.training
    assert make_task(epochs=5, fid=SMALL_FID).fid_epoch(3) is None  # every = 0: only the final FID


def test_real_statistics_are_the_resized_train_images_cached_once(make_task, data, stats_dir, monkeypatch):
    fid = FidSettings(dims=64, final_samples=6, real_images=10)
    task = make_task(fid=fid)
    files = list(stats_dir.glob("fid-real-paper64-n10-d64-*.npz"))
    assert len(files) == 1
    meter = task.fid_meter
    features = meter.features.features(paper_preprocess(to_unit_range(resize_like_pil(data.train_images[:10], 64))))
    mu, sigma = activation_statistics(features)
    np.testing.assert_allclose(meter.real_stats[0], mu, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(meter.real_stats[1], sigma, rtol=1e-6, atol=1e-9)
    monkeypatch.setattr(gan_fid.GeneratorFid, "_statistics", lambda self, batches: pytest.fail("recomputed"))
    again = make_task(fid=fid)
    assert np.array_equal(again.fid_meter.real_stats[1], meter.real_stats[1])
    with pytest.raises(FIDError, match="task.fid.real_images=27 is more than the 26 training images"):
        make_task(fid=FidSettings(dims=64, real_images=27))
    with pytest.raises(ValueError, match="task.fid.dims=100 is not allowed"):
        FidSettings(dims=100)


def test_artifacts_are_png_grids_at_the_right_names(make_task):
    task = make_task(epochs=3)
    before = buffers(task.generator)
    first = task.artifacts(0)
    assert list(first) == ["samples/epoch_000.png"]
    last = task.artifacts(2)
    assert sorted(last) == ["samples/epoch_002.png", "samples/final.png"]
    assert last["samples/final.png"] == last["samples/epoch_002.png"] == first["samples/epoch_000.png"]
    assert SAMPLES_FILE in last  # where the report's sample figure reads it
    image = Image.open(io.BytesIO(first["samples/epoch_000.png"]))
    assert first["samples/epoch_000.png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert image.format == "PNG" and image.size == (8 * 66 + 2, 8 * 66 + 2)  # 8 x 8 of 64 px, padding 2
    assert task.generator.training and all_equal(buffers(task.generator), before)
    assert make_task(epochs=3, seed=1).artifacts(0)["samples/epoch_000.png"] != first["samples/epoch_000.png"]


def test_a_missing_weights_file_fails_at_construction_in_one_line(make_task, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(FIDError) as error:
        make_task()
    message = str(error.value)
    assert "\n" not in message and fid_module.WEIGHTS_FILE in message
    assert str(tmp_path / "empty" / "hub" / "checkpoints") in message
