"""What adala-train and adala-sweep say and do about the device: the device line every run starts with, the precision
that ran (status.json), `profile=fast` on a CPU without bf16 units, a GPU that torch cannot use, the cuBLAS setting
deterministic mode needs, `compile` on CUDA without a C compiler, trainer.deterministic=true on every family, and the backend flags the runner
sets (issue 17, path 3): TF32 and cudnn.benchmark on for a fast CUDA run, TF32 off and cudnn.benchmark on (as the
reference) for a paper one; trainer.deterministic=true turns benchmark off and deterministic algorithms on, in either
profile, and each run sets every flag both ways (read from torch's own flags, never from TrainerSettings).

This machine has no GPU: a GPU that nvidia-smi lists is a fake `nvidia-smi` on PATH; where a run must believe it is
on CUDA, the runner's device and torch.cuda's name lookup are stubbed, and the test says so.
"""

from __future__ import annotations

import os
import stat
import sys

import pytest
import torch

from adala_bench import launch, runner
from adala_bench.config import ConfigError
from adala_bench.runner import train_one
from adala_bench.store import RunDir
from helpers import compose, metrics_without_time, run_path

# profile=fast at smoke sizes on CPU (compiling costs ~20 s on a CPU and changes nothing here)
FAST_VGG = ("profile=fast", "trainer.compile=false", "task=cifar10_vgg11", "optimizer=adala", "epochs=1",
            "batch_size=32", "device=cpu", "data.source=synthetic", "data.synthetic.n_train=256",
            "data.synthetic.n_test=128", "task.width=0.125")


def fast_vgg(data_root, results, *extra):
    return compose(*FAST_VGG, f"data.root={data_root}", f"results.root={results}", *extra)


def vgg(profile: str, data_root, tmp_path, *extra):
    """FAST_VGG's run under `profile` (fast: as shipped, but for compile), its device left to `extra`."""
    switches = FAST_VGG[:2] if profile == "fast" else (f"profile={profile}",)
    return compose(*switches, *(o for o in FAST_VGG[2:] if o != "device=cpu"), f"data.root={data_root}",
                   f"results.root={tmp_path / 'runs'}", *extra)


@pytest.fixture
def fake_gpu_box(tmp_path, monkeypatch):
    """nvidia-smi lists an H100 that torch (a CPU-only machine here) cannot use."""
    folder = tmp_path / "fake-bin"
    folder.mkdir()
    script = folder / "nvidia-smi"
    script.write_text("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 535.104.05'\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture
def deterministic_algorithms():
    """torch's global switch, as it was after the test (a run sets it for itself)."""
    yield
    torch.use_deterministic_algorithms(False)


def test_a_run_starts_with_its_device_line_and_records_the_precision_that_ran(data_root, tmp_path, capsys):
    cfg = fast_vgg(data_root, tmp_path)
    assert train_one(cfg) == "completed"
    first = capsys.readouterr().out.splitlines()[0]
    cpu = torch.cpu.get_capabilities()["cpu_name"]
    assert first == f"adala-train: device cpu ({cpu}), torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
    status = RunDir(run_path(cfg)).read_status()
    assert (status["precision"], status["device"]) == ("bf16", f"cpu ({cpu})")


def test_fast_on_a_cpu_without_bf16_units_trains_in_fp32_and_says_so(data_root, tmp_path, monkeypatch, capsys):
    """This CPU has AVX-512 BF16; a CPU without (AVX2, Skylake's AVX-512) is the detection stubbed. The run then
    computes exactly what trainer.precision=fp32 computes, keeps its own name, and records fp32."""
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"cpu_name": "Intel Xeon (stub)", "avx2": True,
                                                                "avx512_f": True})
    cfg = fast_vgg(data_root, tmp_path / "fell_back")
    assert train_one(cfg) == "completed"
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == ("adala-train: this CPU (Intel Xeon (stub)) has no bf16 units (AVX-512 BF16, AMX or ARM BF16), "
                        "where bf16 is emulated and several times slower: trainer.precision=bf16 trains in fp32 here")
    fell_back = RunDir(run_path(cfg))
    assert fell_back.read_status()["precision"] == "fp32"
    asked_fp32 = fast_vgg(data_root, tmp_path / "fp32", "trainer.precision=fp32")
    assert train_one(asked_fp32) == "completed"
    assert run_path(asked_fp32).parent.name != fell_back.path.parent.name
    assert metrics_without_time(fell_back) == metrics_without_time(RunDir(run_path(asked_fp32)))


def test_a_gpu_that_torch_cannot_use_stops_adala_train_in_one_line_before_anything_is_written(
        fake_gpu_box, data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["adala-train", "profile=smoke", "device=auto", f"data.root={data_root}",
                                      f"results.root={tmp_path / 'runs'}", "task=cifar10_vgg11", "optimizer=sgd"])
    with pytest.raises(SystemExit) as exit_:
        runner.main()
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "adala-train: error: nvidia-smi lists 1 GPU(s) (NVIDIA H100 80GB HBM3, driver 535.104.05), but torch ")
    assert f"built for CUDA {torch.version.cuda}, cannot use them" in lines[0]
    assert not any((tmp_path / "runs").rglob("status.json"))


@pytest.mark.parametrize("given", [None, ":16:8"])
def test_adala_train_sets_cublas_workspace_config_before_any_run(monkeypatch, given):
    """cuBLAS reads it when it makes its handle; a value the user set is kept."""
    if given is None:
        monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    else:
        monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", given)
    seen = []
    monkeypatch.setattr(runner, "hydra_main", lambda: seen.append(os.environ.get("CUBLAS_WORKSPACE_CONFIG")))
    monkeypatch.setattr(sys, "argv", ["adala-train", "task=cifar10_vgg11"])
    runner.main()
    assert seen == [given or ":4096:8"]


def test_compile_on_cuda_without_a_c_compiler_stops_before_the_task_is_built(smoke, tmp_path, monkeypatch, capsys):
    """Stubbed: the run resolves to cuda:0 (and the GPU's name); PATH holds no gcc or clang and CC is unset."""
    monkeypatch.setattr(runner, "resolve_device", lambda name: torch.device("cuda", 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "a stubbed GPU")
    monkeypatch.setattr(runner, "build_trainer", lambda run, device: pytest.fail("the task was built"))
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="^trainer.compile=true on CUDA needs a C compiler for Triton, and neither "
                                          "gcc nor clang is on PATH"):
        train_one(smoke("profile=fast", "task=cifar10_vgg11", "optimizer=sgd", "device=cuda"))
    assert capsys.readouterr().out.startswith("adala-train: device cuda:0 (a stubbed GPU)")


SMALL = {"cifar10_vgg11": (), "ptb_lstm1": (),
         "gan_wgan_gp": ("batch_size=64", "task.fid.real_images=8", "task.fid.final_samples=8")}


@pytest.mark.usefixtures("deterministic_algorithms")
@pytest.mark.parametrize("task", SMALL)
def test_deterministic_runs_of_every_family_train_on_cpu_in_their_own_directory(smoke, random_home, monkeypatch, task):
    """Strict deterministic mode (an op without a deterministic kernel would stop the run) on each family's
    operations; the run is named `det`, and false names the run as before the switch existed."""
    monkeypatch.setenv("TORCH_HOME", str(random_home))
    overrides = (f"task={task}", "optimizer=adala", "epochs=1", *SMALL[task])
    cfg = smoke(*overrides, "trainer.deterministic=true")
    assert train_one(cfg) == "completed"
    tag, plain = run_path(cfg).parent.name, run_path(smoke(*overrides)).parent.name
    assert tag.split("-")[-2] == "det" and "det" not in plain.split("-")
    assert run_path(smoke(*overrides, "trainer.deterministic=false")).parent.name == plain
    assert RunDir(run_path(cfg)).read_metrics()[0]["epoch"] == 0


def test_adala_sweep_refuses_to_start_cpu_workers_on_a_gpu_box_torch_cannot_use(fake_gpu_box):
    with pytest.raises(launch.SweepError, match=r"^nvidia-smi lists 1 GPU\(s\) \(NVIDIA H100 80GB HBM3, driver "
                                               r"535\.104\.05\), but torch"):
        launch.make_launch(["--", "profile=smoke", "task=cifar10_vgg11", "optimizer=sgd"])
    # asked for the CPU, in either place: no check
    assert launch.make_launch(["--gpus", "0", "--", "profile=smoke", "task=cifar10_vgg11", "optimizer=sgd"]).workers == 1
    assert launch.make_launch(["--", "task=cifar10_vgg11", "optimizer=sgd", "device=cpu"]).workers == 1


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
        train_one(vgg(profile, data_root, tmp_path, "device=cuda:1", f"trainer.deterministic={deterministic}"))
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
            train_one(vgg(profile, data_root, tmp_path, "device=cpu"))
        assert seen.pop("device") == torch.device("cpu")
        assert seen == {**start, "deterministic_algorithms": False}
