"""The training device and torch's backend switches, in one place.

    resolve_device(name)          `auto`, `cpu`, `cuda`, `cuda:k` -> a torch.device, or one line saying why not
                                  (a GPU that nvidia-smi lists but this torch build cannot use is named, with the
                                  driver and torch's CUDA version)
    device_line(device)           what a run prints first: the device, torch, CUDA and cuDNN versions
    precision_that_runs(...)      bf16 where the device computes it in hardware, else fp32 (a CPU without bf16 units)
    set_backend_flags(...)        cuDNN, TF32 and determinism for one run, set both ways (a sweep runs many jobs in
                                  one process), and the run's CUDA device made current
    tf32_off()                    a context with TF32 off (FID's Inception, whatever the run allows)
    missing_c_compiler(...)       what `compile` on CUDA lacks: Triton builds its launcher with a C compiler

TF32 is set through torch's `fp32_precision` switches, the API torch 2.9+ asks for ("We suggest only using the new
API"; the `allow_tf32` flags are to be deprecated, and mixing the two makes torch refuse to read them).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class DeviceError(ValueError):
    """A device that cannot be had, said in one line (the runner reports it as a config error)."""


# What cuBLAS reads when it creates a handle, so that its kernels are deterministic (torch refuses deterministic mode
# on CUDA without it); adala-train sets it before anything touches CUDA.
CUBLAS_WORKSPACE_CONFIG = ":4096:8"
# The CPU features that compute bf16 in hardware; without them torch emulates bf16 (issue 23: 0.17x the fp32 speed).
CPU_BF16_UNITS = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")  # x86 AVX-512 BF16, AMX; ARM BF16, SVE BF16


def resolve_device(name: str) -> torch.device:
    """`auto` is the current CUDA device when torch can use one, else the CPU; a CUDA device comes with its index.

    Refused in one line: a CUDA device where torch sees none or fewer, and `auto` or `cuda*` where nvidia-smi lists a
    GPU that this torch build cannot use (it would train on the CPU, silently, for days)."""
    if name == "cpu":
        return torch.device("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "NVIDIA driver too old" warning: hidden_gpu says it in one line
        available = torch.cuda.is_available()
    if not available:
        if (hidden := hidden_gpu()) is not None:
            raise DeviceError(hidden)
        if name == "auto":
            return torch.device("cpu")
        raise DeviceError(f"device {name!r} asked for, but no CUDA device is available; use device=cpu or device=auto")
    device = torch.device("cuda" if name == "auto" else name)
    index = torch.cuda.current_device() if device.index is None else device.index
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"device {name!r} asked for, but {count} CUDA device(s) are visible (cuda:0 to "
                          f"cuda:{count - 1}; CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
    return torch.device("cuda", index)


def hidden_gpu() -> str | None:
    """One line naming the GPU nvidia-smi lists when torch cannot use it (None when nvidia-smi lists none): the
    driver is older than this torch build's CUDA, or torch is a CPU build."""
    try:
        listed = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = [line.rsplit(",", 1) for line in listed.stdout.splitlines() if "," in line]
    if listed.returncode != 0 or not gpus:
        return None
    name, driver = (part.strip() for part in gpus[0])
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA (a CPU-only build)"
    return (f"nvidia-smi lists {len(gpus)} GPU(s) ({name}, driver {driver}), but torch {torch.__version__}, built "
            f"for {build}, cannot use them: install a torch build for that driver (pip install torch --index-url "
            f"https://download.pytorch.org/whl/cu<version>, see https://pytorch.org/get-started/locally/), or train "
            f"on the CPU with device=cpu")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return torch.cpu.get_capabilities().get("cpu_name") or platform.processor() or platform.machine()


def device_line(device: torch.device) -> str:
    """e.g. `device cuda:0 (NVIDIA H100 80GB HBM3), torch 2.14.1+cu130, CUDA 13.0, cuDNN 9.10.2`."""
    line = f"device {device} ({device_name(device)}), torch {torch.__version__}"
    if device.type == "cuda":
        line += f", CUDA {torch.version.cuda}, cuDNN {_cudnn_version()}"
    else:
        line += f", {torch.get_num_threads()} thread(s)"
    return line


def _cudnn_version() -> str:
    version = torch.backends.cudnn.version()
    if version is None:
        return "none"
    major, rest = (version // 10000, version % 10000) if version >= 90000 else (version // 1000, version % 1000)
    return f"{major}.{rest // 100}.{rest % 100}"


def cpu_has_bf16_units() -> bool:
    capabilities = torch.cpu.get_capabilities()
    return any(capabilities.get(feature, False) for feature in CPU_BF16_UNITS)


def precision_that_runs(precision: str, device: torch.device) -> str:
    """The precision a run computes in: bf16 as asked, except on a CPU without bf16 units, where it is emulated and
    several times slower than fp32 (the run then keeps fp32 and says so)."""
    if precision == "bf16" and device.type == "cpu" and not cpu_has_bf16_units():
        return "fp32"
    return precision


def set_backend_flags(device: torch.device, *, deterministic: bool, tf32: bool) -> None:
    """Everything global a run's numbers depend on, set for this run both ways (a sweep runs many jobs in one
    process, and a job must not inherit the one before)."""
    torch.use_deterministic_algorithms(deterministic)  # strict: an op without a deterministic kernel raises, named
    if device.type == "cuda":
        torch.cuda.set_device(device)  # cuda:k's own stream, handles and RNG are then the current ones
        torch.backends.cudnn.deterministic = deterministic
        # The reference benchmarks (the fastest algorithms, which may differ from one process to the next).
        torch.backends.cudnn.benchmark = not deterministic
        set_tf32(tf32)


TF32_SWITCHES = (torch.backends.cuda.matmul, torch.backends.cudnn.conv, torch.backends.cudnn.rnn)


def set_tf32(allowed: bool) -> None:
    for switch in TF32_SWITCHES:
        switch.fp32_precision = "tf32" if allowed else "ieee"


@contextmanager
def tf32_off() -> Iterator[None]:
    """TF32 off for CUDA matmuls, convolutions and RNNs inside; the switches as they were after."""
    saved = [switch.fp32_precision for switch in TF32_SWITCHES]
    set_tf32(False)
    try:
        yield
    finally:
        for switch, value in zip(TF32_SWITCHES, saved):
            switch.fp32_precision = value


def missing_c_compiler() -> str | None:
    """None when Triton will find a C compiler (CC, else gcc or clang on PATH, as triton.runtime.build looks), else
    one line saying what to do. Triton compiles its kernel launcher with it the first time `compile` runs on CUDA."""
    named = os.environ.get("CC")
    if named is not None and not shutil.which(named):
        return (f"CC={named!r} is not an executable C compiler, which Triton (trainer.compile=true on CUDA) needs: "
                "fix CC, or run with trainer.compile=false")
    if named is not None or shutil.which("gcc") or shutil.which("clang"):
        return None
    return ("trainer.compile=true on CUDA needs a C compiler for Triton, and neither gcc nor clang is on PATH: install "
            "one (e.g. apt-get install gcc), set CC, or run with trainer.compile=false")
