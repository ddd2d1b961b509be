"""profile=fast does what it says, observed from outside (issue 17, path 3): inside the trainer's step the network
computes in bfloat16, its convolution weights are channels_last, and the runner turns on TF32 and cudnn.benchmark
for a CUDA run; under profile=paper the same observations give float32, the default memory format, TF32 off and
cudnn.benchmark on (as the reference). trainer.deterministic=true turns benchmark off and deterministic algorithms on,
in either profile, and each run sets every flag both ways.

Nothing is read from TrainerSettings to decide what to expect: the dtypes are those of the activations a forward
hook sees while Trainer.train_epoch runs, the memory format is that of the weight tensors, and the flags are torch's
own. Compiling is left off (trainer.compile=false: it costs ~20 s on a CPU and is checked elsewhere); the profile
itself is composed as shipped, so precision and channels_last come from conf/profile/fast.yaml.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adala_bench import runner
from adala_bench.config import RunConfig
from adala_bench.runner import build_trainer, train_one
from adala_bench.trainer import Progress

from helpers import compose

CPU = torch.device("cpu")
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


def test_the_fast_profile_composes_with_compile_on():
    """The one switch these tests turn off is on in the shipped profile (so the override above is the only change)."""
    assert compose("profile=fast", "task=cifar10_vgg11", "optimizer=adala").trainer.compile is True


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


class Built(Exception):
    """Raised in place of building the trainer, once the runner has set the backend flags."""


# TF32 through torch's fp32_precision switches ("tf32" or "ieee"), the API torch 2.14 asks for.
SWITCHES = {"cuda.matmul": torch.backends.cuda.matmul, "cudnn.conv": torch.backends.cudnn.conv,
            "cudnn.rnn": torch.backends.cudnn.rnn}
FLAGS = ("cudnn.benchmark", "cudnn.deterministic", "deterministic_algorithms", *SWITCHES)


def read_flags() -> dict[str, bool | str]:
    return {"cudnn.benchmark": torch.backends.cudnn.benchmark,
            "cudnn.deterministic": torch.backends.cudnn.deterministic,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            **{name: switch.fp32_precision for name, switch in SWITCHES.items()}}


def write_flags(values: dict[str, bool | str]) -> None:
    torch.backends.cudnn.benchmark = values["cudnn.benchmark"]
    torch.backends.cudnn.deterministic = values["cudnn.deterministic"]
    torch.use_deterministic_algorithms(values["deterministic_algorithms"])
    for name, switch in SWITCHES.items():
        switch.fp32_precision = values[name]


def opposite(values: dict[str, bool | str]) -> dict[str, bool | str]:
    return {name: ({"tf32": "ieee", "ieee": "tf32"}[value] if isinstance(value, str) else not value)
            for name, value in values.items()}


@pytest.fixture
def backend_flags():
    """Torch's global backend flags, put back as they were after the test."""
    saved = read_flags()
    yield
    write_flags(saved)


TF32 = {name: "tf32" for name in SWITCHES}
IEEE = {name: "ieee" for name in SWITCHES}
BENCHMARK = {"cudnn.benchmark": True, "cudnn.deterministic": False, "deterministic_algorithms": False}
DETERMINISTIC = {"cudnn.benchmark": False, "cudnn.deterministic": True, "deterministic_algorithms": True}


@pytest.mark.usefixtures("backend_flags")
@pytest.mark.parametrize("profile, deterministic, expected", [
    ("fast", "false", {**BENCHMARK, **TF32}),
    # the paper's protocol is plain fp32 (TF32 did not exist in torch 1.1); cudnn.benchmark as the reference
    ("paper", "false", {**BENCHMARK, **IEEE}),
    ("paper", "true", {**DETERMINISTIC, **IEEE}),
    ("fast", "true", {**DETERMINISTIC, **TF32}),  # TF32 is deterministic: only reproducibility is asked for
])
def test_the_runner_sets_tf32_cudnn_and_determinism_for_a_cuda_run(data_root, tmp_path, monkeypatch, profile,
                                                                   deterministic, expected):
    """train_one on cuda:1, on a CPU-only machine: the device is resolved to cuda:1 and torch.cuda.set_device is
    recorded instead of called (the two stubs); the flags are read at the moment the runner builds the trainer, which
    is where the run starts computing. Every flag starts at the other value: each run sets them both ways."""
    write_flags(opposite(expected))
    seen, current = {}, []

    def build(run, device):
        seen.update(read_flags(), device=device)
        raise Built

    monkeypatch.setattr(runner, "resolve_device", lambda name: torch.device("cuda", 1))
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "a stubbed GPU")
    monkeypatch.setattr(runner, "build_trainer", build)
    with pytest.raises(Built):
        train_one(config(profile, data_root, tmp_path, "device=cuda:1", f"trainer.deterministic={deterministic}"))
    assert seen.pop("device") == torch.device("cuda", 1) and current == [torch.device("cuda", 1)]
    assert seen == expected


@pytest.mark.usefixtures("backend_flags")
@pytest.mark.parametrize("profile", ["fast", "paper"])
def test_a_cpu_run_leaves_the_cuda_flags_alone(data_root, tmp_path, monkeypatch, profile):
    """Deterministic algorithms are torch's, not CUDA's: a CPU run sets them too (here: off, the default)."""
    for start in ({**BENCHMARK, **TF32}, {**opposite(BENCHMARK), **IEEE}):
        write_flags(start)
        seen = {}

        def build(run, device):
            seen.update(read_flags(), device=device)
            raise Built

        monkeypatch.setattr(runner, "build_trainer", build)
        with pytest.raises(Built):
            train_one(config(profile, data_root, tmp_path, "device=cpu"))
        assert seen.pop("device") == CPU
        assert seen == {**start, "deterministic_algorithms": False}


@pytest.mark.parametrize("task, critic_compiled", [("gan_wgan_gp", False), ("gan_wgan", True)])
def test_fast_compiles_every_model_but_a_critic_that_is_differentiated_twice(data_root, tmp_path, random_home,
                                                                             monkeypatch, task, critic_compiled):
    """WGAN-GP's gradient penalty back-propagates through the critic twice, which torch.compile's aot_autograd cannot
    ("does not currently support double backward"): under profile=fast its critic stays eager, every other model
    is compiled (nn.Module.compile sets the module's compiled call)."""
    monkeypatch.setenv("TORCH_HOME", str(random_home))
    cfg = compose("profile=fast", f"task={task}", "optimizer=adam", "device=cpu", f"data.root={data_root}",
                  f"results.root={tmp_path / 'runs'}", "task.width=0.125", *SMOKE_VALUES[2:5],
                  "task.fid.dims=64", "task.fid.real_images=64")
    players = build_trainer(RunConfig.of(cfg), CPU).task.players
    compiled = {name: player.module._compiled_call_impl is not None for name, player in players.items()}
    assert compiled == {"critic": critic_compiled, "generator": True}
