"""The trainer's seam: the closure protocol (which minibatch AdaLA looks ahead on, what the look-ahead pass must not
touch), several (model, optimizer) pairs, stateful batches, per-step lr factors, clipping of g and g', an optimizer
replaced mid-run, and resume bit for bit."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from torch.nn import functional as F

from adala_bench import optim
from adala_bench.config import RunConfig
from adala_bench.settings import OptimizerSpec, Schedule, TrainerSettings
from adala_bench.tasks import build_task
from adala_bench.trainer import Move, Progress, Trainer
from helpers import Relay, assert_same, final_state

CPU = torch.device("cpu")
ADALA = OptimizerSpec("adala", {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8})
SGD = OptimizerSpec("sgd", {"lr": 0.05, "weight_decay": 1e-3})


def make(smoke, *overrides):
    run = RunConfig.of(smoke("task=cifar10_resnet34", "optimizer=adala", *overrides))
    torch.manual_seed(0)
    task = build_task(run, CPU)
    trainer = Trainer(task, {"model": run.optimizer}, epochs=1, schedule=Schedule(), device=CPU,
                      settings=TrainerSettings(lookahead_batch=run.trainer.lookahead_batch))
    return task, trainer.optimizers["model"], trainer


@pytest.mark.parametrize("lookahead_batch", ["next", "same"])
def test_adala_looks_ahead_on_the_chosen_minibatch(smoke, lookahead_batch):
    """One trainer epoch equals a hand-written loop whose closure uses batch i+1 (wrapping) or batch i."""
    task, optimizer, trainer = make(smoke, "batch_size=64", f"trainer.lookahead_batch={lookahead_batch}")
    model = copy.deepcopy(task.model)
    reference = optim.build("adala", model.parameters(), **{k: v for k, v in optimizer.defaults.items() if k != "foreach"})
    batches = task.train_batches(0)
    assert len(batches) == 4

    def loss_on(batch):
        images, labels = batch
        return F.cross_entropy(model(images), labels)

    model.train()
    for index in range(len(batches)):
        reference.zero_grad()
        loss_on(batches[index]).backward()
        lookahead = batches[(index + 1) % len(batches)] if lookahead_batch == "next" else batches[index]
        buffers = [b.clone() for b in model.buffers()]

        def closure():
            reference.zero_grad()
            loss = loss_on(lookahead)
            loss.backward()
            with torch.no_grad():
                for buffer, saved in zip(model.buffers(), buffers):
                    buffer.copy_(saved)
            return loss

        reference.step(closure)

    row = trainer.train_epoch(Progress())
    assert row["grad_evals"] == 8 and row["step"] == 4
    for (name, mine), theirs in zip(task.model.state_dict().items(), model.state_dict().values()):
        assert torch.equal(mine, theirs), name


def test_the_lookahead_pass_leaves_batchnorm_buffers_untouched(smoke):
    """After one AdaLA step the BatchNorm statistics are those of the one real forward pass."""
    task, optimizer, trainer = make(smoke, "batch_size=256")
    batches = task.train_batches(0)
    assert len(batches) == 1
    expected = copy.deepcopy(task.model).train()
    with torch.no_grad():
        expected(batches[0][0])
    parameters_before = [p.detach().clone() for p in task.model.parameters()]

    trainer.train_epoch(Progress())

    for (name, buffer), want in zip(task.model.named_buffers(), expected.buffers()):
        assert torch.equal(buffer, want), name
    tracked = [b for n, b in task.model.named_buffers() if n.endswith("num_batches_tracked")]
    assert tracked and all(int(b) == 1 for b in tracked)
    changed = [not torch.equal(p, q) for p, q in zip(task.model.parameters(), parameters_before)]
    assert all(changed)  # the model's own parameters moved (the reference code's failure was that they did not)
    assert optimizer.param_groups[0]["params"][0] is next(task.model.parameters())


def test_lr_schedule_decays_at_milestones():
    task = Relay(seed=0)
    spec = OptimizerSpec("adala", {"lr": 1e-3})
    trainer = Trainer(task, {"a": spec, "b": spec}, epochs=3, schedule=Schedule([1, 2], 0.1), device=CPU)
    assert [Schedule([150], 0.1).factor(e) for e in (0, 149, 150, 199)] == [1, 1, 0.1, 0.1]
    assert [Schedule([100, 145], 0.1).factor(e, since=120) for e in (121, 145, 199)] == [1, 0.1, 0.1]
    lrs = []
    for epoch in range(3):
        lrs.append(trainer.train_epoch(Progress(epoch=epoch))["lr"])
    assert lrs == pytest.approx([1e-3, 1e-4, 1e-5])


def test_a_bad_lookahead_batch_is_refused():
    with pytest.raises(ValueError, match="trainer.lookahead_batch='previous' is not allowed; allowed: next, same"):
        TrainerSettings(lookahead_batch="previous")


def relay_trainer(epochs=3, *, switch=False, lookahead_batch="next", clip=None, spec=ADALA, b_spec=None):
    task = Relay(seed=7, switch=switch)
    trainer = Trainer(task, {"a": spec, "b": b_spec or spec}, epochs=epochs, schedule=Schedule([2], 0.5), device=CPU,
                      settings=TrainerSettings(lookahead_batch=lookahead_batch, clip_grad_norm=clip))
    return task, trainer


@pytest.mark.parametrize("lookahead_batch", ["next", "same"])
def test_two_players_with_adala_and_a_stateful_stream_resume_bit_for_bit(lookahead_batch):
    """a (AdaLA) and b (SGD) over a carried state; the plateau after epoch 0 makes b ASGD (optim.on_plateau) and
    leaves a alone; the run resumes bit for bit from a checkpoint after the switch."""
    task, trainer = relay_trainer(switch=True, lookahead_batch=lookahead_batch, clip=0.5, b_spec=SGD)
    for progress, _, _ in trainer.fit(Progress()):
        pass
    straight = final_state(trainer, progress)
    rows = progress.metrics
    assert [row["step"] for row in rows] == [5, 10, 15]
    # a: 5 steps of AdaLA (2 gradients each), b: 3 steps of SGD, then of ASGD (1 each): 13 per epoch
    assert [row["grad_evals"] for row in rows] == [13, 26, 39]
    assert [(row["grad_evals_a"], row["grad_evals_b"]) for row in rows] == [(10, 3), (20, 6), (30, 9)]
    assert rows[0]["optimizer_switch"] == "b=asgd" and "optimizer_switch" not in rows[1]
    assert isinstance(trainer.optimizers["b"], torch.optim.ASGD) and isinstance(trainer.optimizers["a"], optim.AdaLA)
    group = trainer.optimizers["b"].param_groups[0]
    assert (group["lambd"], group["t0"], group["weight_decay"]) == (0.0, 0, 1e-3)
    assert group["lr"] == pytest.approx(0.025)  # SGD's lr 0.05, halved at epoch 2 (the milestone after the switch)
    assert rows[2]["lr"] == pytest.approx(5e-3)  # a's lr, halved at epoch 2

    # interrupted after epoch 1: the saved state goes through bytes, into fresh objects, as a checkpoint would
    first_task, first = relay_trainer(switch=True, lookahead_batch=lookahead_batch, clip=0.5, b_spec=SGD)
    for progress, state, _ in first.fit(Progress()):
        if progress.epoch == 2:
            break
    buffer = io.BytesIO()
    torch.save(state, buffer)
    torch.manual_seed(12345)  # whatever the RNG did since, the checkpoint's RNG state wins
    second_task, second = relay_trainer(switch=True, lookahead_batch=lookahead_batch, clip=0.5, b_spec=SGD)
    assert isinstance(second.optimizers["b"], torch.optim.SGD)
    progress = second.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=False))
    assert isinstance(second.optimizers["b"], torch.optim.ASGD)  # the switch is carried by the checkpoint
    for progress, _, _ in second.fit(progress):
        pass
    assert_same(final_state(second, progress), straight)


def test_the_lookahead_restores_every_players_buffers_and_uses_the_incoming_state():
    """b's look-ahead runs a's BatchNorm in train mode: its statistics are put back. Both passes of a step start
    from the same carried h (the real pass's outgoing h is what the next move sees)."""
    task, trainer = relay_trainer(epochs=1)
    carries = []
    original_loss = task.loss

    def loss(player, batch, carry):
        carries.append((player, carry.clone()))
        return original_loss(player, batch, carry)

    task.loss = loss
    trainer.train_epoch(Progress())
    # a's BatchNorm saw exactly the real passes: 5 of a's moves and 3 of b's, never a look-ahead
    assert int(task.a[1].num_batches_tracked) == 8
    # per move: real pass, then look-ahead pass, from the same incoming h
    assert len(carries) == 16
    for (p1, real), (p2, lookahead) in zip(carries[0::2], carries[1::2]):
        assert p1 == p2 and torch.equal(real, lookahead)
    assert torch.equal(carries[0][1], torch.zeros(8, 4))
    assert not torch.equal(carries[2][1], torch.zeros(8, 4))  # the next move starts from a's outgoing h


def test_clipping_applies_to_g_and_to_the_lookahead_gradient():
    """With a tiny clip norm, g (seen in AdaLA's first moment) and g' (left in p.grad after the step) both have
    exactly the clip norm, as with clip_grad_norm_ on each."""
    clip = 1e-3
    task = Relay(seed=1)
    trainer = Trainer(task, {"a": ADALA, "b": ADALA}, epochs=1, schedule=Schedule(), device=CPU,
                      settings=TrainerSettings(clip_grad_norm=clip))
    batches = task.train_batches(0)
    trainer._step(Move("b", batches[0], batches[1]), torch.zeros(8, 4), epoch=0)
    optimizer = trainer.optimizers["b"]
    params = list(task.b.parameters())
    g_norm = torch.linalg.vector_norm(torch.stack([optimizer.state[p]["exp_avg"].norm() for p in params])) / (1 - 0.9)
    lookahead_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
    assert float(g_norm) == pytest.approx(clip, rel=1e-5)
    assert float(lookahead_norm) == pytest.approx(clip, rel=1e-5)
    # and without clipping both are far larger
    task = Relay(seed=1)
    trainer = Trainer(task, {"a": ADALA, "b": ADALA}, epochs=1, schedule=Schedule(), device=CPU)
    trainer._step(Move("b", batches[0], batches[1]), torch.zeros(8, 4), epoch=0)
    assert float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in task.b.parameters()]))) > 100 * clip


def test_the_per_step_lr_factor_scales_the_tentative_step_and_is_undone_after():
    """AdaLA's tentative point θ' (where the closure evaluates) uses lr · factor: checked against the formula at
    step 1 (m = (1−β1) g, s' = (1−β2)(g − m)² + ε)."""
    task = Relay(seed=2)
    trainer = Trainer(task, {"a": ADALA, "b": ADALA}, epochs=1, schedule=Schedule(), device=CPU)
    batches = task.train_batches(0)
    theta = task.b.weight.detach().clone()
    carry = torch.zeros(8, 4)
    task.a.eval()  # deterministic forward, so g can be recomputed here
    task.b.zero_grad()
    original = task.loss("b", batches[0], carry).value
    original.backward()
    g = task.b.weight.grad.clone()
    task.seen.clear()

    factor = 0.3
    trainer._step(Move("b", batches[0], batches[1], lr_factor=factor), carry, epoch=0)
    (_, at_real), (_, at_lookahead) = task.seen
    lr, (beta1, beta2), eps = 1e-2, (0.9, 0.999), 1e-8
    m = (1 - beta1) * g
    s = (1 - beta2) * (g - m) ** 2 + eps
    expected = theta - lr * factor / (1 - beta1) * m / (s.sqrt() / math.sqrt(1 - beta2) + eps)
    assert torch.equal(at_real, theta)
    torch.testing.assert_close(at_lookahead, expected, rtol=1e-6, atol=1e-9)
    assert trainer.optimizers["b"].param_groups[0]["lr"] == lr  # restored after the step


def test_optimizers_must_match_the_players():
    with pytest.raises(ValueError, match="players"):
        Trainer(Relay(seed=0), {"a": ADALA}, epochs=1, schedule=Schedule(), device=CPU)
