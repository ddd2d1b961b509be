"""The generic training loop, shared by every task family: lr schedule, the look-ahead closure, clipping, evaluation,
divergence, and the state a checkpoint needs. It computes and returns; the run store writes (store.RunDir).

A task (the workload: models, data, loss, evaluation) gives the trainer this surface (`Task` below):

- `players`: the (model, optimizer) pairs, by name. Each `Player` is one module whose parameters one optimizer
  updates, and an optional `after_step` hook run after that optimizer's real step (never inside a look-ahead):
  classification and PTB have one player, "model"; a GAN has "critic" and "generator".
- `train_batches(epoch)`: the epoch's minibatches, random access, a function of (seed, epoch) only, so resume and
  the look-ahead batch are exact.
- `moves(batches, index)`: the optimizer steps of batch `index`, in order, each a `Move`: which player steps, g_t's
  minibatch (`lookahead_batch=same` evaluates g' on it too), the minibatch `lookahead_batch=next` evaluates g' on
  (the task's "next one": classification and PTB the following batch, wrapping at the end of the epoch; a GAN's
  critic its own batch, a GAN's generator the next batch's z), and a per-step lr factor (PTB: seq_len / 70). It
  only chooses batches: every forward pass happens in `loss`, inside the trainer's autocast.
- `initial_carry()` and the `carry` argument of `loss`: the state a stateful task carries from batch to batch
  (PTB's hidden state), reset at the start of every epoch; None for stateless tasks. The trainer detaches it.
- `loss(player, batch, carry) -> Loss`: a training-mode forward at the current parameters: the value to
  back-propagate, per-batch sums for the epoch's metrics (tensors on the device, or Python numbers for what the
  host knows, like counts: a tensor made from a host number would be a blocking copy per step), the outgoing carry.
  A forward that must leave a module's buffers as they are (a GAN generator step remaking the batch's G(z)) runs
  inside `buffers_kept`.
- `summarize_train(sums)` and `evaluate(epoch)`: the epoch's metrics.
- optionally `artifacts(epoch)`: files for the run directory after this epoch, {relative path: bytes} (a GAN's
  sample grids), written by the run store.
- optionally `plateau(rows)`: whether the task's plateau rule fires after the last of the epoch rows (PTB: the
  test loss stopped improving). Then every optimizer that `optim.on_plateau` names a successor for is replaced
  (SGD → ASGD); the replacement is recorded in that epoch's metrics row and carried by the checkpoint.

The look-ahead closure protocol lives here, once (ADALA.md): an optimizer that asks for a closure (AdaLA) gets one
that zeroes the gradients, evaluates the player's loss at the tentative parameters on the look-ahead minibatch
(`next` or `same`), starting from the same incoming carry and discarding its outgoing one, back-propagates, clips g'
exactly as g, and leaves every model's buffers (BatchNorm statistics) as they were (`buffers_kept`: the pass
updates clones). The per-step lr factor is in the param groups while the optimizer steps, so it scales the
tentative step too.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_map
from tqdm import tqdm

from adala_bench import optim
from adala_bench.seeding import rng_state, set_rng_state
from adala_bench.settings import OptimizerSpec, Schedule, TrainerSettings


@dataclass
class Player:
    """One (model, optimizer) pair: the module whose parameters one optimizer updates."""

    module: nn.Module
    # Run after the optimizer's real step, never inside a look-ahead (WGAN: clamp the critic's weights).
    after_step: Callable[[], None] | None = None
    # False where a loss differentiates through the module twice (WGAN-GP's gradient penalty): torch.compile's
    # aot_autograd has no double backward, so profile=fast leaves this module uncompiled.
    compilable: bool = True


@dataclass
class Move:
    """One optimizer step within a training batch."""

    player: str
    batch: Any  # g_t's minibatch, and g' 's under lookahead_batch=same
    next_batch: Any  # g' 's minibatch under lookahead_batch=next
    lr_factor: float = 1.0  # this step's lr multiplier (PTB: seq_len / 70)


@dataclass
class Loss:
    value: Tensor  # what is back-propagated
    # per-batch sums, accumulated over the epoch (in fp32: see epoch_sum); counts the host knows as Python numbers
    sums: dict[str, Tensor | float] = field(default_factory=dict)
    carry: Any = None  # a stateful task's outgoing state


class Task(Protocol):
    players: dict[str, Player]

    def train_batches(self, epoch: int) -> Sequence[Any]: ...

    def moves(self, batches: Sequence[Any], index: int) -> list[Move]: ...

    def initial_carry(self) -> Any: ...

    def loss(self, player: str, batch: Any, carry: Any) -> Loss: ...

    def summarize_train(self, sums: dict[str, Tensor | float]) -> dict[str, float]: ...

    def evaluate(self, epoch: int) -> dict[str, float]: ...


@dataclass
class Progress:
    """Everything about the run's position that a checkpoint must carry besides models and optimizers."""

    epoch: int = 0  # the next epoch to run
    step: int = 0  # training batches done
    grad_evals: int = 0  # gradient evaluations, all players, look-aheads included
    grad_evals_by_player: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0  # training time, evaluation excluded
    metrics: list[dict[str, Any]] = field(default_factory=list)


class Diverged(Exception):
    def __init__(self, epoch: int, step: int):
        super().__init__(f"non-finite training loss at epoch {epoch}, step {step}")
        self.epoch, self.step = epoch, step


def epoch_sum(value: Tensor | float) -> Tensor | float:
    """A per-batch sum as the epoch accumulates it: bf16 and fp16 tensors in fp32 (a bf16 sum of 0.3s stops growing
    at 128), other tensors and host numbers as they are."""
    if isinstance(value, Tensor):
        value = value.detach()
        return value.to(torch.promote_types(value.dtype, torch.float32)) if value.is_floating_point() else value
    return value


def detach(carry: Any) -> Any:
    """Truncated BPTT: the carried state keeps its values and drops its graph."""
    return tree_map(lambda value: value.detach() if isinstance(value, Tensor) else value, carry)


def submodules(*modules: nn.Module) -> list[nn.Module]:
    """Every module of the trees of `modules`, each once (a module shared by two trees too)."""
    return list({id(m): m for top in modules for m in top.modules()}.values())


def buffers_kept(*modules: nn.Module):
    """Forward passes inside leave every buffer of `modules` (BatchNorm's running statistics) as it was.

    Each buffer is swapped for a clone while inside, and the original put back after: the passes update the clones,
    the modules' own buffers are never written (so their version counters do not move either), and a graph made
    inside holds only the clones, so it back-propagates after. The look-ahead closure runs in it; so does a task's
    forward that must not count as one more batch of statistics (a GAN generator step remaking the batch's G(z)).
    """
    return buffers_kept_listed(submodules(*modules))


@contextmanager
def buffers_kept_listed(listed: Sequence[nn.Module]) -> Iterator[None]:
    """buffers_kept over modules already listed by `submodules` (the trainer lists its models' once, not per step)."""
    swapped = []
    for module in listed:
        for name, buffer in module._buffers.items():
            if buffer is not None:
                swapped.append((module, name, buffer))
                module._buffers[name] = buffer.clone()
    try:
        yield
    finally:
        for module, name, buffer in swapped:
            module._buffers[name] = buffer


class Trainer:
    def __init__(
        self,
        task: Task,
        optimizers: Mapping[str, OptimizerSpec],
        *,
        epochs: int,
        schedule: Schedule,
        device: torch.device,
        settings: TrainerSettings = TrainerSettings(),
    ):
        if set(optimizers) != set(task.players):
            raise ValueError(f"optimizers given for {sorted(optimizers)}, but the task's players are {sorted(task.players)}")
        self.task, self.epochs, self.schedule, self.device, self.settings = task, epochs, schedule, device, settings
        self.specs: dict[str, OptimizerSpec] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.base_lrs: dict[str, list[float]] = {}
        for player in task.players.values():
            if settings.channels_last:
                player.module.to(memory_format=torch.channels_last)
            if settings.compile and player.compilable:
                player.module.compile()  # in place: parameters and state_dict keys stay as they are
        for player, spec in optimizers.items():
            self._install(player, spec)
        # every model's modules, listed once: a look-ahead pass must leave all of their buffers as it found them
        self.submodules = submodules(*(player.module for player in task.players.values()))

    def _install(self, player: str, spec: OptimizerSpec) -> None:
        optimizer = spec.build(self.task.players[player].module.parameters())
        self.specs[player], self.optimizers[player] = spec, optimizer
        self.base_lrs[player] = [group["lr"] for group in optimizer.param_groups]

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def state_dict(self, progress: Progress) -> dict[str, Any]:
        return {
            "models": {name: player.module.state_dict() for name, player in self.task.players.items()},
            "optimizers": {name: {"spec": asdict(self.specs[name]), "state": optimizer.state_dict()}
                           for name, optimizer in self.optimizers.items()},
            "base_lrs": self.base_lrs,
            "progress": asdict(progress),
            "rng": rng_state(self.device),
        }

    def load_state_dict(self, state: dict[str, Any]) -> Progress:
        for name, player in self.task.players.items():
            player.module.load_state_dict(state["models"][name])
        for name, saved in state["optimizers"].items():
            spec = OptimizerSpec(**saved["spec"])
            if spec != self.specs[name]:  # switched mid-run (PTB's ASGD): rebuild what the checkpoint ran
                self._install(name, spec)
            self.optimizers[name].load_state_dict(saved["state"])
        self.base_lrs = state["base_lrs"]
        set_rng_state(state["rng"], self.device)
        return Progress(**state["progress"])

    # -- the loop ------------------------------------------------------------------------------------------------
    def fit(self, progress: Progress) -> Iterator[tuple[Progress, dict[str, Any], dict[str, bytes]]]:
        """Train from `progress` to the last epoch, yielding (progress, state to save, artifacts) after every epoch.

        Raises Diverged at the first non-finite training loss or metric; that epoch is not yielded.
        """
        artifacts = getattr(self.task, "artifacts", None)
        while progress.epoch < self.epochs:
            row = self.train_epoch(progress)
            progress.metrics.append(row)
            progress.epoch += 1
            yield progress, self.state_dict(progress), artifacts(progress.epoch - 1) if artifacts else {}

    def train_epoch(self, progress: Progress) -> dict[str, Any]:
        epoch = progress.epoch
        for player in self.optimizers:
            self._set_lr(player, epoch)
        for player in self.task.players.values():
            player.module.train()

        batches = self.task.train_batches(epoch)
        carry = self.task.initial_carry()
        # Losses stay on the device and are checked once per epoch: no host sync per step.
        losses: list[Tensor] = []
        loss_batch: list[int] = []
        sums: dict[str, Tensor | float] = {}
        evals = dict.fromkeys(self.optimizers, 0)
        started = time.perf_counter()
        # A bar within the epoch for a person at a terminal; nothing in logs and sweeps. It reads no tensor: no sync.
        bar = tqdm(total=len(batches), desc=f"epoch {epoch} ({epoch + 1}/{self.epochs})", unit="batch", leave=False,
                   file=sys.stdout, disable=not sys.stdout.isatty())
        for index in range(len(batches)):
            bar.update()
            for move in self.task.moves(batches, index):
                loss = self._step(move, carry, epoch)
                carry = detach(loss.carry)
                losses.append(loss.value.detach())
                loss_batch.append(index)
                evals[move.player] += 2 if optim.needs_closure(self.optimizers[move.player]) else 1
                for key, value in loss.sums.items():
                    sums[key] = sums[key] + epoch_sum(value) if key in sums else epoch_sum(value)
        bar.close()
        self._synchronize()
        finite = torch.isfinite(torch.stack(losses)) if losses else torch.ones(0, dtype=torch.bool)
        if not bool(finite.all()):
            raise Diverged(epoch, progress.step + loss_batch[int((~finite).nonzero()[0])])
        progress.step += len(batches)
        progress.grad_evals += sum(evals.values())
        for player, count in evals.items():
            progress.grad_evals_by_player[player] = progress.grad_evals_by_player.get(player, 0) + count
        progress.wall_s += time.perf_counter() - started

        first = next(iter(self.optimizers))
        row = {
            "epoch": epoch,
            "step": progress.step,
            "grad_evals": progress.grad_evals,
            "wall_s": round(progress.wall_s, 3),
            **({f"grad_evals_{p}": n for p, n in progress.grad_evals_by_player.items()} if len(evals) > 1 else {}),
            "lr": self.optimizers[first].param_groups[0]["lr"],
            **self.task.summarize_train(sums),
            **self._evaluate(epoch),
        }
        if not all(np.isfinite(v) for v in row.values() if isinstance(v, float)):
            raise Diverged(epoch, progress.step)
        self._maybe_switch(epoch, progress.metrics + [row], row)
        return row

    def _step(self, move: Move, carry: Any, epoch: int) -> Loss:
        """One optimizer step of one player: g_t, clipping, the step (with the look-ahead closure if it asks)."""
        optimizer = self.optimizers[move.player]
        if move.lr_factor != 1.0:
            self._set_lr(move.player, epoch, move.lr_factor)
        optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.task.loss(move.player, move.batch, carry)
        loss.value.backward()
        self._clip(move.player)
        if optim.needs_closure(optimizer):
            optimizer.step(self.lookahead_closure(move, carry))
        else:
            optimizer.step()
        if move.lr_factor != 1.0:
            self._set_lr(move.player, epoch)
        if (after_step := self.task.players[move.player].after_step) is not None:
            after_step()
        return loss

    def lookahead_closure(self, move: Move, carry: Any) -> Callable[[], Tensor]:
        """The closure AdaLA calls at its tentative point: loss and gradient on the look-ahead minibatch.

        `next` is the task's next minibatch (`move.next_batch`), `same` reuses g_t's. The pass starts from the same
        incoming carry and drops its outgoing one, clips g' as g was clipped, and leaves every model's buffers as
        they were, so it leaves no trace but the gradient.
        """
        batch = move.next_batch if self.settings.lookahead_batch == "next" else move.batch
        optimizer = self.optimizers[move.player]

        def closure() -> Tensor:
            optimizer.zero_grad(set_to_none=True)
            with buffers_kept_listed(self.submodules), self._autocast():
                loss = self.task.loss(move.player, batch, carry)
            loss.value.backward()
            self._clip(move.player)
            return loss.value

        return closure

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.settings.precision == "bf16")

    def _evaluate(self, epoch: int) -> dict[str, float]:
        with self._autocast():
            return self.task.evaluate(epoch)

    def _set_lr(self, player: str, epoch: int, factor: float = 1.0) -> None:
        decay = self.schedule.factor(epoch, since=self.specs[player].since_epoch)
        for group, base_lr in zip(self.optimizers[player].param_groups, self.base_lrs[player]):
            group["lr"] = base_lr * decay * factor

    def _clip(self, player: str) -> None:
        if self.settings.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.task.players[player].module.parameters(), self.settings.clip_grad_norm)

    def _maybe_switch(self, epoch: int, rows: list[dict[str, Any]], row: dict[str, Any]) -> None:
        """On the task's plateau, replace each optimizer by its successor (optim.on_plateau), starting at its own lr,
        and say so in the epoch's row."""
        plateau = getattr(self.task, "plateau", None)
        if plateau is None or not plateau(rows):
            return
        switched = []
        for player, spec in list(self.specs.items()):
            successor = optim.on_plateau(spec.name, spec.hparams)
            if successor is not None:
                name, hparams = successor
                self._install(player, OptimizerSpec(name, hparams, since_epoch=epoch))
                switched.append(f"{player}={name}")
        if switched:  # a flat string, like every other metrics value
            row["optimizer_switch"] = ",".join(switched)

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
