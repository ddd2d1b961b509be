"""The trainer's closure protocol: which minibatch AdaLA looks ahead on, and what the look-ahead pass must not touch."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from adala_bench import optim
from adala_bench.runner import optimizer_hparams
from adala_bench.tasks import build_task
from adala_bench.trainer import Progress, Schedule, Trainer

CPU = torch.device("cpu")


def make(smoke, *overrides):
    cfg = smoke("task=cifar10_resnet34", "optimizer=adala", *overrides)
    torch.manual_seed(0)
    task = build_task(cfg, CPU)
    optimizer = optim.build("adala", task.model.parameters(), **optimizer_hparams(cfg))
    trainer = Trainer(task, optimizer, epochs=1, schedule=Schedule(), device=CPU,
                      lookahead_batch=cfg.optimizer.lookahead_batch)
    return task, optimizer, trainer


@pytest.mark.parametrize("lookahead_batch", ["next", "same"])
def test_adala_looks_ahead_on_the_chosen_minibatch(smoke, lookahead_batch):
    """One trainer epoch equals a hand-written loop whose closure uses batch i+1 (wrapping) or batch i."""
    task, optimizer, trainer = make(smoke, "batch_size=64", f"optimizer.lookahead_batch={lookahead_batch}")
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


def test_lr_schedule_decays_at_milestones(smoke):
    task, optimizer, _ = make(smoke)
    trainer = Trainer(task, optimizer, epochs=3, schedule=Schedule([1, 2], 0.1), device=CPU)
    assert [Schedule([150], 0.1).factor(e) for e in (0, 149, 150, 199)] == [1, 1, 0.1, 0.1]
    lrs = []
    for epoch in range(3):
        lrs.append(trainer.train_epoch(Progress(epoch=epoch))["lr"])
    assert lrs == pytest.approx([1e-3, 1e-4, 1e-5])
