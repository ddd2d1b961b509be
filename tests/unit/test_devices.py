"""adala_bench.devices: which device a run gets, and the one line when it cannot have the one it asks for; the line
that names it; the precision a CPU computes fast; TF32 off for FID; what `compile` needs on CUDA.

This machine has no GPU and torch.cuda.is_available() is really False here. A GPU that nvidia-smi lists but torch
cannot use is a fake `nvidia-smi` on PATH (a script printing what the real one prints for its query); where a test
needs torch to see GPUs, torch.cuda's counters are stubbed, and it says so.
"""

from __future__ import annotations

import os
import stat

import pytest
import torch

from adala_bench import devices
from adala_bench.devices import (DeviceError, device_line, hidden_gpu, missing_c_compiler, precision_that_runs,
                                 resolve_device, tf32_off)

H100 = "NVIDIA H100 80GB HBM3, 535.104.05"


@pytest.fixture
def nvidia_smi(tmp_path, monkeypatch):
    """Put a fake nvidia-smi first on PATH that prints `lines` for its CSV query."""

    def install(*lines: str, status: int = 0):
        folder = tmp_path / "fake-bin"
        folder.mkdir(exist_ok=True)
        script = folder / "nvidia-smi"
        body = "".join(f"echo '{line}'\n" for line in lines)
        query = "*--query-gpu=name,driver_version*"
        script.write_text(f"#!/bin/sh\ncase \"$*\" in {query}) {body};; esac\nexit {status}\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")

    return install


@pytest.mark.parametrize("name", ["auto", "cuda", "cuda:1"])
def test_a_gpu_torch_cannot_use_stops_auto_and_cuda_in_one_line(nvidia_smi, name):
    nvidia_smi(H100, H100)
    assert not torch.cuda.is_available()  # really: a CPU-only machine, as a GPU box with a too-new torch looks to torch
    with pytest.raises(DeviceError) as error:
        resolve_device(name)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"nvidia-smi lists 2 GPU(s) (NVIDIA H100 80GB HBM3, driver 535.104.05), but torch "
                              f"{torch.__version__}, built for CUDA {torch.version.cuda}, cannot use them: install a "
                              "torch build for that driver")
    assert message.endswith("or train on the CPU with device=cpu")


def test_device_cpu_is_never_refused_and_auto_without_a_gpu_is_the_cpu(nvidia_smi, monkeypatch):
    nvidia_smi(H100)
    assert resolve_device("cpu") == torch.device("cpu")
    nvidia_smi()  # nvidia-smi present, no GPU listed
    assert hidden_gpu() is None and resolve_device("auto") == torch.device("cpu")
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi at all
    assert hidden_gpu() is None and resolve_device("auto") == torch.device("cpu")
    with pytest.raises(DeviceError, match="^device 'cuda' asked for, but no CUDA device is available; use device=cpu"):
        resolve_device("cuda")


def test_a_failing_nvidia_smi_hides_no_gpu(nvidia_smi):
    nvidia_smi(H100, status=9)  # e.g. "NVIDIA-SMI has failed because it couldn't communicate with the driver"
    assert hidden_gpu() is None


@pytest.fixture
def visible_gpus(monkeypatch):
    """Stubbed: torch sees `count` CUDA devices, cuda:`current` current (this machine has none)."""

    def see(count: int, current: int = 0):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: current)

    return see


def test_cuda_devices_come_with_their_index_and_one_beyond_the_visible_ones_is_refused(visible_gpus):
    visible_gpus(2, current=1)
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(DeviceError, match=r"^device 'cuda:2' asked for, but 2 CUDA device\(s\) are visible \(cuda:0 "
                                          r"to cuda:1; CUDA_VISIBLE_DEVICES="):
        resolve_device("cuda:2")


def test_the_device_line_names_device_torch_cuda_and_cudnn(monkeypatch):
    assert device_line(torch.device("cpu")) == (f"device cpu ({torch.cpu.get_capabilities()['cpu_name']}), torch "
                                                f"{torch.__version__}, {torch.get_num_threads()} thread(s)")
    # stubbed: the GPU's name and cuDNN's version number (9.10.2 as torch reports it)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91002)
    assert device_line(torch.device("cuda", 0)) == (f"device cuda:0 (NVIDIA H100 80GB HBM3), torch "
                                                    f"{torch.__version__}, CUDA {torch.version.cuda}, cuDNN 9.10.2")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 8902)
    assert device_line(torch.device("cuda", 0)).endswith(", cuDNN 8.9.2")


@pytest.mark.parametrize("features, expected", [
    ({"avx512_bf16": True, "avx2": True}, "bf16"),  # this machine (AMD EPYC with AVX-512 BF16)
    ({"amx_bf16": True, "amx_tile": True}, "bf16"),  # Sapphire Rapids
    ({"avx2": True, "avx512_f": True}, "fp32"),  # AVX-512 without BF16 (Skylake): bf16 emulated, several times slower
    ({"neon": True, "bf16": True}, "bf16"),  # ARM with the BF16 extension
    ({"neon": True}, "fp32"),
])
def test_bf16_runs_on_cpus_with_bf16_units_only(monkeypatch, features, expected):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"cpu_name": "stub", **features})
    assert precision_that_runs("bf16", torch.device("cpu")) == expected
    assert precision_that_runs("fp32", torch.device("cpu")) == "fp32"
    assert precision_that_runs("bf16", torch.device("cuda", 0)) == "bf16"


def test_this_machine_has_bf16_units():
    """Recorded here so that a change of machine shows: the fast-profile tests then train in bf16."""
    assert devices.cpu_has_bf16_units() == torch.cpu.get_capabilities().get("avx512_bf16", False)


SWITCHES = (torch.backends.cuda.matmul, torch.backends.cudnn.conv, torch.backends.cudnn.rnn)


@pytest.mark.parametrize("before", ["tf32", "ieee", "none"])
def test_tf32_off_turns_every_switch_off_inside_and_restores_them(before):
    saved = [switch.fp32_precision for switch in SWITCHES]
    try:
        for switch in SWITCHES:
            switch.fp32_precision = before
        with tf32_off():
            assert [switch.fp32_precision for switch in SWITCHES] == ["ieee"] * 3
        assert [switch.fp32_precision for switch in SWITCHES] == [before] * 3
    finally:
        for switch, value in zip(SWITCHES, saved):
            switch.fp32_precision = value


def test_compile_on_cuda_needs_a_c_compiler_as_triton_looks_for_one(tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(folder))  # no gcc, no clang
    assert missing_c_compiler() == ("trainer.compile=true on CUDA needs a C compiler for Triton, and neither gcc nor "
                                    "clang is on PATH: install one (e.g. apt-get install gcc), set CC, or run with "
                                    "trainer.compile=false")
    monkeypatch.setenv("CC", "/nowhere/cc")
    assert missing_c_compiler().startswith("CC='/nowhere/cc' is not an executable C compiler, which Triton")
    monkeypatch.delenv("CC")
    clang = folder / "clang"
    clang.write_text("#!/bin/sh\n")
    clang.chmod(0o755)
    assert missing_c_compiler() is None
