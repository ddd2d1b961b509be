"""The trainer's epoch sums (trainer.epoch_sum): a task's per-batch sums accumulate in fp32 whatever autocast made
them, and counts the host knows come as Python numbers and stay so (no tensor of a host number per step)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adala_bench.settings import OptimizerSpec, Schedule
from adala_bench.trainer import Loss, Move, Player, Progress, Trainer

STEPS = 782  # a GAN epoch's critic steps on CIFAR-10 (50,000 / 64)


class ConstantSums:
    """One player whose every batch reports the same sums: a bf16 0.3 (as a loss under bf16 autocast is), an int64
    tensor and a host count."""

    def __init__(self):
        self.model = nn.Linear(1, 1)
        self.players = {"model": Player(self.model)}
        self.seen = None

    def train_batches(self, epoch):
        return [torch.ones(1, 1)] * STEPS

    def moves(self, batches, index):
        return [Move("model", batches[index], batches[index])]

    def initial_carry(self):
        return None

    def loss(self, player, batch, carry):
        value = self.model(batch).sum()
        return Loss(value, {"loss": torch.tensor(0.3, dtype=torch.bfloat16), "correct": torch.tensor(1),
                            "count": 1})

    def summarize_train(self, sums):
        self.seen = dict(sums)
        return {}

    def evaluate(self, epoch):
        return {}


def test_782_bf16_losses_of_0_3_sum_to_235_in_fp32_not_128():
    task = ConstantSums()
    Trainer(task, {"model": OptimizerSpec("sgd", {"lr": 0.0})}, epochs=1, schedule=Schedule(),
            device=torch.device("cpu")).train_epoch(Progress())
    loss, correct, count = task.seen["loss"], task.seen["correct"], task.seen["count"]
    each = float(torch.tensor(0.3, dtype=torch.bfloat16))  # 0.30078125: what bf16 holds of 0.3
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(STEPS * each, rel=1e-6)  # 235.21 (782 x 0.3 = 234.6 before bf16 rounding)
    # a bf16 accumulator stops at 128: there a bf16 step is 1.0 and + 0.3 rounds back down
    bf16_sum = torch.zeros((), dtype=torch.bfloat16)
    for _ in range(STEPS):
        bf16_sum += torch.tensor(0.3, dtype=torch.bfloat16)
    assert float(bf16_sum) == 128.0
    assert correct.dtype == torch.int64 and int(correct) == STEPS
    assert type(count) is int and count == STEPS
