"""trainer.py, the trainer's seam: the closure protocol (which minibatch AdaLA looks ahead on, what the look-ahead pass
must not touch), several (model, optimizer) pairs, stateful batches, per-step lr factors, clipping of g and g', an
optimizer replaced mid-run, and resume bit for bit; the epoch sums (fp32 whatever autocast made them, host counts
kept on the host); profile=fast observed from outside inside the step (issue 17, path 3); and no host sync inside a
step of any task family.

profile=fast: inside the trainer's step the network computes in bfloat16 and its convolution weights are
channels_last; under profile=paper the same observations give float32 and the default memory format; every model is
compiled but a critic that is differentiated twice. Nothing is read from TrainerSettings to decide what to expect:
the dtypes are those of the activations a forward hook sees while Trainer.train_epoch runs, the memory format is that
of the weight tensors. Compiling is left off (trainer.compile=false: it costs ~20 s on a CPU and is checked by the
compiled call each module gets); the profile itself is composed as shipped, so precision and channels_last come from
conf/profile/fast.yaml. (The backend flags the runner sets for a CUDA run: tests/e2e/test_runner_devices.py.)

No host sync: nothing in a step makes a device tensor of host data (`torch.tensor(n, device=...)`, `.cuda()`) or
reads a device value back (`.item()`, `float(t)`, `bool(t)`). On CUDA each is a blocking round trip, twice per AdaLA
step; the trainer reads its losses once per epoch. On this CPU-only machine nothing is actually copied, so the calls
that would copy on CUDA are intercepted by name (a TorchFunctionMode around each step and each `moves()` call), not
by what the device does. `.to(device)` is left out: torch's own clipping moves device tensors to their own device
with it (no copy), which a CPU cannot tell from a host-to-device move. The CUDA timings of scripts/gpu_check.sh show
the effect.
"""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from adala_bench import optim
from adala_bench.config import RunConfig
from adala_bench.runner import build_trainer
from adala_bench.settings import OptimizerSpec, Schedule, TrainerSettings
from adala_bench.tasks import build_task
from adala_bench.trainer import Loss, Move, Player, Progress, Trainer
from helpers import Relay, assert_same, compose, final_state

CPU = torch.device("cpu")
ADALA = OptimizerSpec("adala", {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8})
SGD = OptimizerSpec("sgd", {"lr": 0.05, "weight_decay": 1e-3})


def make(tmp_path, *overrides):
    """A smoke ResNet34 (it has BatchNorm) under AdaLA, on 64 synthetic images of its own."""
    run = RunConfig.of(compose("profile=smoke", "task=cifar10_resnet34", "optimizer=adala", f"data.root={tmp_path}",
                               "data.synthetic.n_train=64", "data.synthetic.n_test=16", *overrides))
    torch.manual_seed(0)
    task = build_task(run, CPU)
    trainer = Trainer(task, {"model": run.optimizer}, epochs=1, schedule=Schedule(), device=CPU,
                      settings=TrainerSettings(lookahead_batch=run.trainer.lookahead_batch))
    return task, trainer.optimizers["model"], trainer


@pytest.mark.parametrize("lookahead_batch", ["next", "same"])
def test_adala_looks_ahead_on_the_chosen_minibatch(tmp_path, lookahead_batch):
    """One trainer epoch equals a hand-written loop whose closure uses batch i+1 (wrapping) or batch i."""
    task, optimizer, trainer = make(tmp_path, "batch_size=16", f"trainer.lookahead_batch={lookahead_batch}")
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


def test_the_lookahead_pass_leaves_batchnorm_buffers_untouched(tmp_path):
    """After one AdaLA step the BatchNorm statistics are those of the one real forward pass."""
    task, optimizer, trainer = make(tmp_path, "batch_size=64")
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


# ---- epoch sums --------------------------------------------------------------------------------------------------

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


# ---- profile=fast inside the step --------------------------------------------------------------------------------

SMOKE_VALUES = ("epochs=1", "batch_size=32", "data.source=synthetic", "data.synthetic.n_train=256",
                "data.synthetic.n_test=128", "task.width=0.125")


def config(profile: str, data_root, tmp_path, *extra: str):
    overrides = ["task=cifar10_vgg11", "optimizer=adala", f"data.root={data_root}", f"results.root={tmp_path / 'runs'}",
                 *SMOKE_VALUES, *extra]
    if profile == "fast":
        return compose("profile=fast", "trainer.compile=false", *overrides)
    return compose(f"profile={profile}", *overrides)


def trainer_for(profile: str, data_root, tmp_path):
    torch.manual_seed(0)
    return build_trainer(RunConfig.of(config(profile, data_root, tmp_path, "device=cpu")), CPU)


def convolutions(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("profile, dtype", [("fast", torch.bfloat16), ("paper", torch.float32)])
def test_activations_inside_the_step_are_bf16_under_fast_and_fp32_under_paper(data_root, tmp_path, profile, dtype):
    trainer = trainer_for(profile, data_root, tmp_path)
    model = trainer.task.model
    first_conv, last_linear = convolutions(model)[0], [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    seen = []

    def record(module, args, output):
        seen.append((module is first_conv, module.training, output.dtype))

    hooks = [first_conv.register_forward_hook(record), last_linear.register_forward_hook(record)]
    try:
        row = trainer.train_epoch(Progress())
    finally:
        for hook in hooks:
            hook.remove()
    in_step = [dtype_seen for _, training, dtype_seen in seen if training]
    # 8 batches of 32 images, each a step and AdaLA's look-ahead pass, through both hooked layers
    assert len(in_step) == 8 * 2 * 2
    assert set(in_step) == {dtype}
    assert row["grad_evals"] == 16
    # the parameters the optimizer updates stay float32 whatever the autocast
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.parametrize("profile", ["fast", "paper"])
def test_conv_weights_are_channels_last_under_fast_only(data_root, tmp_path, profile):
    convs = convolutions(trainer_for(profile, data_root, tmp_path).task.model)
    assert len(convs) == 8  # VGG11
    for conv in convs:
        weight = conv.weight
        assert weight.ndim == 4 and weight.shape[1] > 1 and weight.shape[2] > 1  # the two formats differ
        channels_last = weight.is_contiguous(memory_format=torch.channels_last)
        plain = weight.is_contiguous()
        assert (channels_last, plain) == ((True, False) if profile == "fast" else (False, True)), conv


@pytest.mark.parametrize("task, critic_compiled", [("gan_wgan_gp", False), ("gan_wgan", True)])
def test_fast_compiles_every_model_but_a_critic_that_is_differentiated_twice(data_root, tmp_path, random_home,
                                                                             monkeypatch, task, critic_compiled):
    """WGAN-GP's gradient penalty back-propagates through the critic twice, which torch.compile's aot_autograd cannot
    ("does not currently support double backward"): under profile=fast its critic stays eager, every other model
    is compiled (nn.Module.compile sets the module's compiled call)."""
    monkeypatch.setenv("TORCH_HOME", str(random_home))
    cfg = compose("profile=fast", f"task={task}", "optimizer=adam", "device=cpu", f"data.root={data_root}",
                  f"results.root={tmp_path / 'runs'}", "task.width=0.125", *SMOKE_VALUES[2:5],
                  "task.fid.dims=64", "task.fid.real_images=8")  # 8 real images: the FID is not what is checked
    players = build_trainer(RunConfig.of(cfg), CPU).task.players
    compiled = {name: player.module._compiled_call_impl is not None for name, player in players.items()}
    assert compiled == {"critic": critic_compiled, "generator": True}


def test_the_switches_reach_the_models():
    task = Relay(seed=0)
    Trainer(task, {"a": OptimizerSpec("sgd", {"lr": 0.1}), "b": OptimizerSpec("sgd", {"lr": 0.1})}, epochs=1,
            schedule=Schedule(), device=torch.device("cpu"), settings=TrainerSettings(compile=True, precision="bf16"))
    assert all(player.module._compiled_call_impl is not None for player in task.players.values())


# ---- no host sync inside a step ----------------------------------------------------------------------------------

FROM_HOST = {"tensor", "as_tensor", "asarray", "scalar_tensor", "from_numpy"}  # with device=...: a host->device copy
MOVES = {"cuda"}  # a copy of a host tensor to the GPU
TO_HOST = {"item", "__bool__", "__float__", "__int__", "tolist", "numpy"}  # a device->host read: a sync


class HostSyncs(TorchFunctionMode):
    def __init__(self, seen: list[str]):
        super().__init__()
        self.seen = seen

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if (name in FROM_HOST and kwargs.get("device") is not None) or name in MOVES or name in TO_HOST:
            self.seen.append(f"{name}{tuple(type(a).__name__ for a in args)} {sorted(kwargs)}")
        return func(*args, **kwargs)


FAMILIES = {
    "cifar10": ("task=cifar10_vgg11", "batch_size=64"),
    "ptb": ("task=ptb_lstm1", "task.synthetic.n_train=1500", "batch_size=4"),
    # 4 critic steps; the FID after the epoch (evaluation, not a step) of 8 fakes against 8 images: seconds less
    "gan": ("task=gan_wgan_gp", "batch_size=64", "task.fid.real_images=8", "task.fid.final_samples=8"),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_a_training_step_makes_no_host_copy_and_reads_nothing_back(smoke, random_home, monkeypatch, family):
    """AdaLA: the step, its look-ahead closure, clipping (PTB) and the optimizer's own step."""
    monkeypatch.setenv("TORCH_HOME", str(random_home))
    run = RunConfig.of(smoke(*FAMILIES[family], "optimizer=adala", "epochs=1"))
    torch.manual_seed(0)
    trainer = build_trainer(run, torch.device("cpu"))
    seen: list[str] = []
    steps = []
    step, moves = trainer._step, trainer.task.moves

    def watched_step(move, carry, epoch):
        steps.append(move.player)
        with HostSyncs(seen):
            return step(move, carry, epoch)

    def watched_moves(batches, index):
        with HostSyncs(seen):
            return moves(batches, index)

    monkeypatch.setattr(trainer, "_step", watched_step)
    monkeypatch.setattr(trainer.task, "moves", watched_moves)
    row = trainer.train_epoch(Progress())
    assert len(steps) >= 4 and row["step"] >= 4
    assert seen == []


def test_the_interceptor_sees_what_the_old_loss_did():
    """The old classification loss made `torch.tensor(len(labels), device=labels.device)`; a step's `.item()`."""
    seen: list[str] = []
    labels = torch.zeros(8, dtype=torch.long)
    with HostSyncs(seen):
        torch.tensor(len(labels), device=labels.device)
        labels.sum().item()
        torch.ones((), device=labels.device)  # filled on the device: no copy, nothing seen
    assert [entry.split("(")[0] for entry in seen] == ["tensor", "item"]
