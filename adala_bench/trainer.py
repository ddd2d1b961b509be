"""The generic training loop: lr schedule, the optimizer-closure protocol, evaluation, metrics, checkpoints.

Tasks supply models, batches, a loss and an evaluation (see `Task`); the trainer owns everything else, so every task
and every optimizer share one code path. An optimizer that asks for a closure (`requires_closure`, AdaLA) gets one
that evaluates the loss on the look-ahead minibatch at the optimizer's current (tentative) parameters, with the
model's buffers (BatchNorm statistics) put back as they were afterwards (ADALA.md).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from adala_bench.optim import needs_closure
from adala_bench.store import RunDir

LOOKAHEAD_BATCHES = ("next", "same")


class Task(Protocol):
    """What a task family provides to the trainer."""

    model: nn.Module

    def train_batches(self, epoch: int) -> Sequence[Any]:
        """The epoch's minibatches, random access, deterministic in (seed, epoch)."""

    def forward_loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training-mode forward: the loss to back-propagate and per-batch sums to accumulate over the epoch."""

    def summarize_train(self, sums: dict[str, torch.Tensor]) -> dict[str, float]:
        """Epoch training metrics from the accumulated sums."""

    def evaluate(self) -> dict[str, float]:
        """Evaluation metrics (test, and validation where held out), model in eval mode."""


@dataclass
class Schedule:
    """Step decay at the start of epochs: lr = base · gamma^(number of milestones ≤ epoch)."""

    milestones: Sequence[int] = ()
    gamma: float = 0.1

    def factor(self, epoch: int) -> float:
        return self.gamma ** sum(epoch >= m for m in self.milestones)


@dataclass
class Progress:
    """Everything about the run's position that a checkpoint must carry besides model and optimizer."""

    epoch: int = 0  # the next epoch to run
    step: int = 0
    grad_evals: int = 0
    wall_s: float = 0.0
    metrics: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Outcome:
    state: str  # completed | diverged
    progress: Progress
    diverged_at: dict[str, int] | None = None


class Diverged(Exception):
    def __init__(self, epoch: int, step: int):
        super().__init__(f"non-finite training loss at epoch {epoch}, step {step}")
        self.epoch, self.step = epoch, step


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    def __init__(
        self,
        task: Task,
        optimizer: torch.optim.Optimizer,
        *,
        epochs: int,
        schedule: Schedule,
        device: torch.device,
        lookahead_batch: str = "next",
        on_epoch_end: Callable[[Progress], None] | None = None,
    ):
        if lookahead_batch not in LOOKAHEAD_BATCHES:
            raise ValueError(f"lookahead_batch {lookahead_batch!r} is not one of: {', '.join(LOOKAHEAD_BATCHES)}")
        self.task, self.optimizer = task, optimizer
        self.epochs, self.schedule, self.device = epochs, schedule, device
        self.lookahead_batch = lookahead_batch
        self.on_epoch_end = on_epoch_end
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.evals_per_step = 2 if needs_closure(optimizer) else 1

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def state_dict(self, progress: Progress) -> dict[str, Any]:
        return {
            "model": self.task.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "base_lrs": self.base_lrs,
            "progress": progress.__dict__,
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> Progress:
        self.task.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.base_lrs = state["base_lrs"]
        set_rng_state(state["rng"])
        return Progress(**state["progress"])

    # -- the loop ------------------------------------------------------------------------------------------------
    def fit(self, run: RunDir, progress: Progress) -> Outcome:
        """Train from `progress` to the last epoch, checkpointing after every epoch."""
        while progress.epoch < self.epochs:
            try:
                row = self.train_epoch(progress)
            except Diverged as diverged:
                return Outcome("diverged", progress, {"epoch": diverged.epoch, "step": diverged.step})
            progress.metrics.append(row)
            progress.epoch += 1
            run.save_checkpoint(self.state_dict(progress))
            run.write_metrics(progress.metrics)
            if self.on_epoch_end is not None:
                self.on_epoch_end(progress)
        return Outcome("completed", progress)

    def train_epoch(self, progress: Progress) -> dict[str, Any]:
        epoch = progress.epoch
        lr_factor = self.schedule.factor(epoch)
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base_lr * lr_factor

        model, batches = self.task.model, self.task.train_batches(epoch)
        model.train()
        # Losses stay on the device and are checked once per epoch: no host sync per step.
        losses = torch.empty(len(batches), device=self.device)
        sums: dict[str, torch.Tensor] = {}
        started = time.perf_counter()
        for index in range(len(batches)):
            batch = batches[index]
            self.optimizer.zero_grad(set_to_none=True)
            loss, batch_sums = self.task.forward_loss(batch)
            loss.backward()
            if self.evals_per_step == 2:
                self.optimizer.step(self.lookahead_closure(batches, index))
            else:
                self.optimizer.step()
            losses[index] = loss.detach()
            for key, value in batch_sums.items():
                sums[key] = sums[key] + value.detach() if key in sums else value.detach()
        self._synchronize()
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            first_bad = int((~finite).nonzero()[0])
            raise Diverged(epoch, progress.step + first_bad)
        progress.step += len(batches)
        progress.grad_evals += len(batches) * self.evals_per_step
        progress.wall_s += time.perf_counter() - started

        row = {
            "epoch": epoch,
            "step": progress.step,
            "grad_evals": progress.grad_evals,
            "wall_s": round(progress.wall_s, 3),
            "lr": self.optimizer.param_groups[0]["lr"],
            **self.task.summarize_train(sums),
            **self.task.evaluate(),
        }
        if not all(np.isfinite(v) for v in row.values() if isinstance(v, float)):
            raise Diverged(epoch, progress.step)
        return row

    def lookahead_closure(self, batches: Sequence[Any], index: int) -> Callable[[], torch.Tensor]:
        """The closure AdaLA calls at its tentative point: loss and gradient on the look-ahead minibatch.

        `next` is the batch the loader yields next (the last batch wraps to the epoch's first); `same` reuses g_t's.
        The model's buffers are restored afterwards, so the look-ahead pass leaves no trace but the gradient.
        """
        lookahead_index = (index + 1) % len(batches) if self.lookahead_batch == "next" else index
        model = self.task.model

        def closure() -> torch.Tensor:
            saved = [buffer.clone() for buffer in model.buffers()]
            self.optimizer.zero_grad(set_to_none=True)
            loss, _ = self.task.forward_loss(batches[lookahead_index])
            loss.backward()
            with torch.no_grad():
                for buffer, value in zip(model.buffers(), saved):
                    buffer.copy_(value)
            return loss

        return closure

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
