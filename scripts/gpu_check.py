"""The first script a new GPU box runs (scripts/gpu_check.sh): what is wrong, within minutes, correctness first.

Correctness, each step on its own (a failing step is written down and the next one runs):
  device      the device line (GPU, driver, torch, CUDA, cuDNN), a GPU torch cannot use, Triton's C compiler
  resume      one CIFAR-10, one PTB and one GAN run under trainer.deterministic=true, interrupted after epoch 1 in
              one process and resumed in a FRESH one (seeing only its own GPU where there are several): equal to
              the straight run bit for bit (models, optimizer states, metrics, RNG states)
  cuda_rng    a CUDA RNG state saved on cuda:k with every GPU visible, restored in a process that sees only GPU k
  foreach     AdaLA's foreach step against its per-tensor step, in fp32 and under bf16 autocast with channels_last
              parameters
  lstm_dtype  PTB under profile=fast: the LSTM kernel gets fp32 with autocast off, the carried state stays fp32,
              the decoder computes in bf16
  gan_sums    a GAN epoch under profile=fast: the trainer's epoch sums against an fp64 sum of every step's values
  fid         FID of the same images through Inception on the device and on the CPU, with TF32 on and off before
Then (not with --quick) one timed epoch of each model in `paper` and in `fast` (the epoch after the compiling one),
each started only while the time budget lasts.

Each result is appended to results/reference/gpu_timings.md and written to gpu_timings.json beside it as soon as it
is known (a rehearsal, `--tiny` or a device other than CUDA, to results/gpu_check/rehearsal.md instead, so it never
stands in for the GPU's); the exit status is 1 if any step failed (2 for bad arguments), and a failed device step
stops the rest.
Data is the synthetic stand-in (at the real sizes for the timings: a device machine may have no internet); the FID
network is pytorch-fid's if its weights are in TORCH_HOME, else random weights written for the check.

    python scripts/gpu_check.py [--device cuda] [--quick] [--tiny] [--steps resume,fid,...] [--out FILE]

`--tiny` runs the same code at smoke sizes on any device (`--device cpu --tiny`: the rehearsal on a CPU).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from adala_bench.devices import CUBLAS_WORKSPACE_CONFIG  # noqa: E402 (torch reads it when cuBLAS first starts)

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)  # before torch touches CUDA (as runner.main)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from adala_bench import optim  # noqa: E402
from adala_bench.catalog import TASKS  # noqa: E402
from adala_bench.config import RunConfig, compose  # noqa: E402
from adala_bench.devices import (DeviceError, device_line, missing_c_compiler, resolve_device,  # noqa: E402
                                 set_backend_flags, set_tf32)
from adala_bench.files import atomic_write  # noqa: E402
from adala_bench.launch import visible_gpus  # noqa: E402
from adala_bench.runner import build_trainer, train_one  # noqa: E402
from adala_bench.seeding import rng_state, seed_everything, set_rng_state  # noqa: E402
from adala_bench.store import RunDir  # noqa: E402
from adala_bench.trainer import Progress, Trainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHECKS = ("device", "resume", "cuda_rng", "foreach", "lstm_dtype", "gan_sums", "fid")
# Cheapest to compile first, so that `fast`'s timings that fit the budget are as many as can be (DenseNet121: minutes).
TIMED = ("cifar10_vgg11", "ptb_lstm3", "gan_wgan_gp", "cifar10_resnet34", "cifar10_densenet121")
PROFILES = ("paper", "fast")
# The README's "under 8 minutes on one H100", less a margin: no timing starts that would end past it.
BUDGET_S = 7.5 * 60
REAL_SIZES = ["data.synthetic.n_train=50000", "data.synthetic.n_test=10000", "task.synthetic.n_train=929589",
              "task.synthetic.n_valid=73760", "task.synthetic.n_test=82430", "task.synthetic.vocab_size=10000"]


@dataclass
class Result:
    ok: bool
    detail: str
    values: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False


@dataclass
class Context:
    device: torch.device  # as --device gave it; the device step resolves it (cuda -> cuda:<current>)
    tiny: bool
    root: Path  # a temporary folder: data, runs, child logs
    asked: str = ""  # --device as given
    started: float = field(default_factory=time.perf_counter)
    children: dict[str, dict] = field(default_factory=dict)  # the resume step's reports: "first" here, "second"
    paper_epoch_s: dict[str, float] = field(default_factory=dict)  # for the time budget
    compile_s: float = 120.0  # the last compile's cost (an estimate until one is measured; TIMED grows)


# -- runs and sizes ------------------------------------------------------------------------------------------------

def resumed_tasks(tiny: bool) -> tuple[str, ...]:
    """One run per family for the resume check: convolutions (ResNet34 with BatchNorm; VGG11 when tiny, a fifth of
    the CPU time), the LSTM with dropout drawn from the device's RNG, the GAN's double backward and its FID."""
    return ("cifar10_vgg11" if tiny else "cifar10_resnet34", "ptb_lstm2", "gan_wgan_gp")


def small(family: str, tiny: bool) -> list[str]:
    """Sizes for the correctness steps: smoke's on a CPU, a little wider on a GPU (more kernels, still seconds)."""
    if tiny:  # on a CPU, Inception at 299 x 299 costs ~0.05 s an image: FIDs of 8 fakes against 8 images
        sizes = {"cifar10": ["data.synthetic.n_train=32", "data.synthetic.n_test=16"],
                 "ptb": ["task.synthetic.n_train=3000", "task.synthetic.n_valid=300", "task.synthetic.n_test=300"],
                 "gan": ["data.synthetic.n_train=32", "data.synthetic.n_test=16", "batch_size=16", "task.fid.dims=64",
                         "task.fid.real_images=8", "task.fid.final_samples=8"]}[family]
        return sizes + ["task.width=0.125"]
    sizes = {"cifar10": ["data.synthetic.n_train=2048", "data.synthetic.n_test=512", "batch_size=128"],
             "ptb": ["task.synthetic.n_train=20000", "batch_size=20"],
             "gan": ["data.synthetic.n_train=2048", "data.synthetic.n_test=512", "batch_size=64"]}[family]
    return sizes + ["task.width=0.5"]


def small_data(root: Path) -> Path:
    """The correctness steps' data root: one synthetic CIFAR-10 of one size (and its cached FID statistics)."""
    return root / "small-data"


def timed_run(task: str, profile: str, device: torch.device, root: Path, tiny: bool) -> RunConfig:
    """Real sizes (tiny: the correctness steps' sizes); a GAN's FID costs seconds: the timing is of training."""
    family = TASKS[task].family.name
    if tiny:
        sizes, data = small(family, True), small_data(root)
    else:
        prefix = {"cifar10": "data.", "gan": "data.", "ptb": "task.synthetic"}[family]
        sizes, data = [o for o in REAL_SIZES if o.startswith(prefix)], root / "data"
        if family == "gan":
            sizes += ["task.fid.dims=2048", "task.fid.final_samples=512", "task.fid.real_images=1024"]
    return RunConfig.of(compose(f"task={task}", "optimizer=adala", f"profile={profile}", "epochs=2",
                                f"device={device}", "data.source=synthetic", f"data.root={data}", *sizes))


# -- the steps -----------------------------------------------------------------------------------------------------

def check_device(ctx: Context) -> Result:
    """The device line, what nvidia-smi says, and whether `fast` can compile here."""
    smi = nvidia_smi()
    try:
        ctx.device = resolve_device(str(ctx.device))
    except DeviceError as error:
        return Result(False, f"{error} (nvidia-smi: {smi}; to rehearse this script on a CPU: --device cpu --tiny)",
                      {"nvidia_smi": smi})
    line = device_line(ctx.device)
    values = {"line": line, "nvidia_smi": smi, "torch": torch.__version__, "cuda": torch.version.cuda,
              "cudnn": torch.backends.cudnn.version() if ctx.device.type == "cuda" else None}
    if ctx.device.type == "cuda":
        values["visible_gpus"] = torch.cuda.device_count()
        if missing := missing_c_compiler():
            return Result(False, f"{line}; nvidia-smi: {smi}; {missing}", values)
    return Result(True, f"{line}; nvidia-smi: {smi}", values)


def nvidia_smi() -> str:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=index,name,driver_version,memory.total",
                               "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        return f"not available ({type(error).__name__})"
    return "; ".join(done.stdout.split("\n")).strip("; ") if done.returncode == 0 else f"exit {done.returncode}"


def resume_devices(asked: str) -> tuple[str, str, dict[str, str]]:
    """(first process's device, resuming process's device, its environment): on CUDA the run starts on cuda:k (the
    last GPU unless --device names one) with every GPU visible, and resumes in a process that sees only GPU k, as an
    adala-sweep worker does."""
    device = torch.device(asked)
    if device.type != "cuda":
        return "cpu", "cpu", {}
    count = torch.cuda.device_count()
    index = device.index if device.index is not None else count - 1  # < count: the device step refused others
    return f"cuda:{index}", "cuda:0", {"CUDA_VISIBLE_DEVICES": visible_gpus(count, simulated=False)[index]}


def check_resume(ctx: Context) -> Result:
    """The straight runs and the interrupted ones' first epoch here; the resume in a fresh process."""
    first, second, env = resume_devices(ctx.asked)
    folder = ctx.root / "resume"
    try:
        ctx.children["first"] = start_runs(first, ctx.root, ctx.tiny)
    finally:  # this process goes on with other checks: as a run of the default settings leaves them
        set_backend_flags(ctx.device, deterministic=False, tf32=False)
    command = [sys.executable, str(Path(__file__).resolve()), "--resume-child", "--device", second, "--root",
               str(ctx.root), *(["--tiny"] if ctx.tiny else [])]
    log = ctx.root / "resume-child.log"
    with open(log, "w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd=ROOT)
    report = folder / "resumed.json"
    ctx.children["second"] = json.loads(report.read_text()) if report.exists() else {}
    if done.returncode != 0:
        tail = " / ".join(log.read_text().strip().splitlines()[-3:])
        return Result(False, f"the resuming process ({second}) exited {done.returncode}: {tail}")
    outcomes = {}
    for task in resumed_tasks(ctx.tiny):
        errors = [ctx.children[part]["runs"].get(task) for part in ("first", "second")]
        if any(errors):
            outcomes[task] = "; ".join(filter(None, errors))
            continue
        straight, resumed = (RunDir(RunConfig.of(resume_run(task, first, ctx.root, part, ctx.tiny)).path)
                             .load_checkpoint() for part in ("straight", "resumed"))
        outcomes[task] = first_difference(straight, resumed) or "equal"
    where = f"CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']}" if env else "the same devices"
    detail = (f"straight on {first}, resumed in a fresh process on {second} ({where}): "
              + ", ".join(f"{task} {outcome}" for task, outcome in outcomes.items()))
    return Result(all(outcome == "equal" for outcome in outcomes.values()), detail, {"outcomes": outcomes})


def resume_run(task: str, device: str, root: Path, part: str, tiny: bool):
    """A resume check's run (`part`: straight or resumed): the smoke profile, deterministic, the final FID only
    (each process measures one at most)."""
    family = TASKS[task].family.name
    return compose("profile=smoke", f"task={task}", "optimizer=adala", f"device={device}",
                   f"data.root={small_data(root)}", f"results.root={root / 'resume' / part}", *small(family, tiny),
                   "trainer.deterministic=true", *(["task.fid.every=0"] if family == "gan" else []))


def first_difference(a: Any, b: Any, where: str = "") -> str | None:
    """Where two checkpoints first differ ("" paths are the top), wall times left out; None when equal."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and \
            a.dtype == b.dtype and torch.equal(a, b)
        return None if same else f"differs at {where}"
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return f"keys differ at {where}: {sorted(set(a) ^ set(b), key=str)}"
        for key in a:
            if key != "wall_s" and (found := first_difference(a[key], b[key], f"{where}/{key}")):
                return found
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"lengths differ at {where}"
        for i, (x, y) in enumerate(zip(a, b)):
            if found := first_difference(x, y, f"{where}/{i}"):
                return found
        return None
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return None if np.array_equal(a, b) else f"differs at {where}"
    return None if a == b else f"differs at {where}: {a!r} != {b!r}"


def start_runs(device: str, root: Path, tiny: bool) -> dict[str, Any]:
    """The straight runs, the interrupted ones' first epoch, and a CUDA RNG state saved with the next draws."""
    dev = torch.device(device)
    (root / "resume").mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"device": device, "visible_gpus": torch.cuda.device_count(), "runs": {}}
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    torch.manual_seed(1234)
    torch.rand(3, device=dev)
    torch.save({"state": rng_state(dev), "next": torch.rand(8, device=dev).cpu()}, root / "resume" / "rng-probe.pt")
    for task in resumed_tasks(tiny):
        try:
            train_one(resume_run(task, device, root, "straight", tiny))
            stop_after_first_epoch(lambda: train_one(resume_run(task, device, root, "resumed", tiny)))
            report["runs"][task] = None
        except Exception as error:  # each run on its own: the others still run
            traceback.print_exc()
            report["runs"][task] = f"first process: {type(error).__name__}: {one_line(error)}"
    return report


def resume_runs(device: str, root: Path, tiny: bool) -> None:
    """The fresh process of the resume check: restore the saved CUDA RNG state, resume the interrupted runs."""
    dev = torch.device(device)
    report: dict[str, Any] = {"device": device, "visible_gpus": torch.cuda.device_count(), "runs": {}}
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    saved = torch.load(root / "resume" / "rng-probe.pt", weights_only=False)
    set_rng_state(saved["state"], dev)
    report["rng_equal"] = bool(torch.equal(torch.rand(8, device=dev).cpu(), saved["next"]))
    for task in resumed_tasks(tiny):
        try:
            state = train_one(resume_run(task, device, root, "resumed", tiny))
            if state != "completed":
                raise RuntimeError(f"the resumed run ended {state}")
            report["runs"][task] = None
        except Exception as error:
            traceback.print_exc()
            report["runs"][task] = f"resuming process: {type(error).__name__}: {one_line(error)}"
    (root / "resume" / "resumed.json").write_text(json.dumps(report))


def stop_after_first_epoch(train: Callable[[], str]) -> None:
    """Run `train` with the trainer stopping (as Ctrl-C would) when it starts epoch 1."""
    original = Trainer.train_epoch

    def train_epoch(self, progress):
        if progress.epoch == 1:
            raise KeyboardInterrupt
        return original(self, progress)

    Trainer.train_epoch = train_epoch
    try:
        train()
        raise RuntimeError("the run was not interrupted")
    except KeyboardInterrupt:
        pass
    finally:
        Trainer.train_epoch = original


def check_cuda_rng(ctx: Context) -> Result:
    first, second = ctx.children.get("first"), ctx.children.get("second")
    if not first or not second or "rng_equal" not in second:
        return Result(False, "no report from the resume step's processes (run the resume step first)")
    counts = f"saved on {first['device']} with {first['visible_gpus']} GPU(s) visible, restored on " \
             f"{second['device']} with {second['visible_gpus']} visible"
    if ctx.device.type != "cuda":
        note = "no CUDA here: the CPU generator's state was carried instead, the CUDA restore was not exercised"
    elif first["visible_gpus"] == second["visible_gpus"]:
        note = ("one GPU here: checked with the same count on both sides; a different count is exercised with "
                "torch.cuda stubbed in tests/unit/test_seeding.py")
    else:
        note = "a different number of visible GPUs"
    equal = second["rng_equal"]
    return Result(equal, f"{counts}: next draws {'equal' if equal else 'DIFFER'} ({note})", {"equal": equal})


def check_foreach(ctx: Context) -> Result:
    """AdaLA's foreach and per-tensor steps on the device: fp32 on fixed gradients, then real steps of a small
    channels_last CNN under bf16 autocast, in deterministic mode so the two differ only by the optimizer."""
    plain = foreach_fp32(ctx.device)
    with deterministic(ctx.device):
        mixed = foreach_bf16_channels_last(ctx.device)
    # fp32: a few ulps of the parameters at most (fused kernels may round differently); bf16: a rounding that flips a
    # bf16 weight moves the next gradients a little, so 1% of how far the parameters moved
    ok = plain["max_diff"] <= 1e-6 * plain["scale"] and mixed["max_diff"] <= 1e-2 * mixed["moved"] \
        and mixed["channels_last"]
    detail = (f"fp32, 10 steps: bit-identical {plain['identical']}, largest difference {plain['max_diff']:.2g} "
              f"(largest parameter {plain['scale']:.2g}); bf16 autocast + channels_last, 3 steps: bit-identical "
              f"{mixed['identical']}, largest difference {mixed['max_diff']:.2g} (largest move "
              f"{mixed['moved']:.2g}), parameters still channels_last {mixed['channels_last']}")
    return Result(ok, detail, {"fp32": plain, "bf16_channels_last": mixed})


def foreach_fp32(device: torch.device) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(0)
    base = [torch.randn(shape, generator=generator).to(device) for shape in ((64, 3, 3, 3), (64,), (128, 64, 3, 3),
                                                                               (10, 512))]
    finals = []
    for foreach in (True, False):
        params = [b.clone().requires_grad_(True) for b in base]
        opt = optim.build("adala", params, lr=1e-3, weight_decay=5e-4, foreach=foreach)
        for step in range(10):
            gen = torch.Generator().manual_seed(step)
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen).to(device)

            def closure():
                for p in params:
                    p.grad = (p.detach() * 0.1).clone()
                return torch.zeros(())
            opt.step(closure)
        finals.append(params)
    return compare(base, *finals)


def foreach_bf16_channels_last(device: torch.device) -> dict[str, Any]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1),
                        nn.BatchNorm2d(32), nn.ReLU(), nn.AvgPool2d(16), nn.Flatten(), nn.Linear(32, 10))
    net = net.to(device, memory_format=torch.channels_last)
    generator = torch.Generator().manual_seed(1)
    batches = [(torch.randn(32, 3, 16, 16, generator=generator).to(device, memory_format=torch.channels_last),
                torch.randint(0, 10, (32,), generator=generator).to(device)) for _ in range(4)]
    start = [p.detach().clone() for p in net.parameters()]
    finals, formats = [], []
    for foreach in (True, False):
        model = copy.deepcopy(net)
        opt = optim.build("adala", model.parameters(), lr=1e-3, foreach=foreach)

        def loss_on(batch):
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return nn.functional.cross_entropy(model(batch[0]), batch[1])

        for index in range(3):
            opt.zero_grad()
            loss_on(batches[index]).backward()

            def closure(index=index):
                opt.zero_grad()
                loss = loss_on(batches[index + 1])
                loss.backward()
                return loss
            opt.step(closure)
        finals.append([p.detach() for p in model.parameters()])
        convolutions = [p for p in model.parameters() if p.ndim == 4]
        formats.append(all(p.is_contiguous(memory_format=torch.channels_last) for p in convolutions))
    return {**compare(start, *finals), "channels_last": all(formats)}


def compare(start: list[torch.Tensor], a: list[torch.Tensor], b: list[torch.Tensor]) -> dict[str, Any]:
    """How far apart the two paths' parameters end, against how far they moved and how large they are."""
    return {"identical": all(torch.equal(x, y) for x, y in zip(a, b)),
            "max_diff": max(float((x.detach() - y.detach()).abs().max()) for x, y in zip(a, b)),
            "moved": max(float((x.detach() - s).abs().max()) for x, s in zip(a, start)),
            "scale": max(float(x.detach().abs().max()) for x in a)}


class RecordRNN(TorchDispatchMode):
    """The RNN kernels' calls below autocast (cuDNN's `_cudnn_rnn` on CUDA, oneDNN's rnn layer on a CPU)."""

    def __init__(self):
        super().__init__()
        self.dtypes: set[torch.dtype] = set()
        self.calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if "rnn" in str(func) or "lstm" in str(func):
            self.calls += 1
            self.dtypes |= {a.dtype for a in torch.utils._pytree.tree_leaves(args)
                            if isinstance(a, torch.Tensor) and a.is_floating_point()}
        return func(*args, **(kwargs or {}))


def check_lstm_dtype(ctx: Context) -> Result:
    run = RunConfig.of(compose("profile=fast", "trainer.compile=false", "task=ptb_lstm2", "optimizer=adala",
                               "epochs=1", f"device={ctx.device}", "data.source=synthetic",
                               f"data.root={small_data(ctx.root)}", *small("ptb", ctx.tiny)))
    seed_everything(0)
    trainer = build_trainer(run, ctx.device)
    if trainer.settings.precision != "bf16":
        return Result(False, f"profile=fast runs in {trainer.settings.precision} on {ctx.device} (no bf16 units): the "
                             "LSTM's autocast region is not exercised")
    task, seen = trainer.task, {}
    model_loss = task.loss
    recorder = RecordRNN()

    def loss(player, batch, carry):
        if seen:
            return model_loss(player, batch, carry)
        decoded = task.model.decoder.register_forward_hook(lambda m, a, out: seen.update(decoder=out.dtype))
        try:
            with recorder:
                result = model_loss(player, batch, carry)
        finally:
            decoded.remove()
        seen["carry"] = {t.dtype for state in result.carry for t in state}
        return result

    task.loss = loss
    trainer.train_epoch(Progress())
    ok = recorder.calls > 0 and recorder.dtypes == {torch.float32} and seen["carry"] == {torch.float32} \
        and seen["decoder"] == torch.bfloat16
    detail = (f"{recorder.calls} RNN kernel call(s) got {sorted(map(str, recorder.dtypes))}; carried state "
              f"{sorted(map(str, seen['carry']))}; decoder output {seen['decoder']}")
    return Result(ok, detail)


def check_gan_sums(ctx: Context) -> Result:
    # Adam: every loss call is a step's (AdaLA's look-ahead calls it again, and the trainer sums the step's only)
    run = RunConfig.of(compose("profile=fast", "trainer.compile=false", "task=gan_wgan_gp", "optimizer=adam",
                               "epochs=1", f"device={ctx.device}", "data.source=synthetic",
                               # tiny: the resume step's data and cached FID statistics; else 200 critic steps
                               *([f"data.root={small_data(ctx.root)}", *small("gan", True)] if ctx.tiny else
                                 [f"data.root={ctx.root / 'gan-data'}", "data.synthetic.n_train=12800",
                                  "task.width=0.5", "task.fid.dims=64", "task.fid.final_samples=32",
                                  "task.fid.real_images=64"])))
    seed_everything(0)
    trainer = build_trainer(run, ctx.device)
    task, exact, summed = trainer.task, {}, {}
    model_loss, summarize = task.loss, task.summarize_train

    def loss(player, batch, carry):
        result = model_loss(player, batch, carry)
        for key, value in result.sums.items():  # a host read per step: this check's own, not the trainer's
            exact[key] = exact.get(key, 0.0) + float(value)
        return result

    def summarize_train(sums):
        summed.update(sums)
        return summarize(sums)

    task.loss, task.summarize_train = loss, summarize_train
    trainer.train_epoch(Progress())
    worst, dtypes = 0.0, {}
    for key, value in exact.items():
        got = summed[key]
        dtypes[key] = str(got.dtype) if isinstance(got, torch.Tensor) else type(got).__name__
        worst = max(worst, abs(float(got) - value) / max(abs(value), 1e-3))
    steps = round(exact.get("d_steps", 0))
    ok = worst <= 1e-4 and all(dtype in ("torch.float32", "torch.float64", "int", "float", "torch.int64")
                               for dtype in dtypes.values())
    return Result(ok, f"{steps} critic steps: max relative difference to the fp64 sum {worst:.2g}; sums as {dtypes}",
                  {"relative": worst, "dtypes": dtypes})


def check_fid(ctx: Context) -> Result:
    """The same images' FID through Inception on the device (after TF32 was turned on, and off) and on the CPU."""
    from adala_bench.metrics.fid import activation_statistics, frechet_distance
    from adala_bench.tasks.gan_fid import inception_features

    dims, count = (64, 6) if ctx.tiny else (2048, 300)
    images = torch.rand(2 * count, 3, 64, 64, generator=torch.Generator().manual_seed(0))

    def fid_on(device: torch.device, tf32_before: bool) -> float:
        set_tf32(tf32_before)  # as a fast (True) or paper (False) run leaves it; Inception must not care
        features = inception_features(device, dims, 50).features(images)  # built once per device and process
        first, second = activation_statistics(features[:count]), activation_statistics(features[count:])
        return frechet_distance(*first, *second, device=device)

    with deterministic(ctx.device):
        after_tf32, on_device = [fid_on(ctx.device, tf32) for tf32 in (True, False)]
    on_cpu = on_device if ctx.device.type == "cpu" else fid_on(torch.device("cpu"), False)
    relative = abs(on_device - on_cpu) / abs(on_cpu)
    return Result(after_tf32 == on_device and relative <= 1e-3,
                  f"{2 * count} images, {dims}-d: FID on {ctx.device} {on_device:.6g} (TF32 on before: "
                  f"{after_tf32:.6g}), on the CPU {on_cpu:.6g}: relative difference {relative:.2g}",
                  {"device": on_device, "device_after_tf32": after_tf32, "cpu": on_cpu, "relative": relative})


class deterministic:
    """Deterministic algorithms on the device for a check, and the flags as they were after."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self):
        self.saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
                      torch.backends.cudnn.benchmark)
        set_backend_flags(self.device, deterministic=True, tf32=False)

    def __exit__(self, *exc):
        torch.use_deterministic_algorithms(self.saved[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = self.saved[1:]


def time_epoch(ctx: Context, task: str, profile: str) -> Result:
    run = timed_run(task, profile, ctx.device, ctx.root, ctx.tiny)
    seed_everything(0)
    set_backend_flags(ctx.device, deterministic=False, tf32=run.trainer.fast)
    trainer = build_trainer(run, ctx.device)
    started = time.perf_counter()
    progress = Progress()
    trainer.train_epoch(progress)
    first = time.perf_counter() - started
    if trainer.settings.compile:  # that epoch compiled the models: time the next one
        progress = Progress(epoch=1)
        trainer.train_epoch(progress)
    family = TASKS[task].family.name
    if family == "cifar10":
        amount = f"{len(trainer.task.train.labels) / progress.wall_s:,.0f} images/s"
    elif family == "ptb":
        amount = f"{trainer.task.train_data.numel() / progress.wall_s:,.0f} tokens/s"
    else:
        amount = f"{progress.step / progress.wall_s:,.1f} critic steps/s"
    if profile == "paper":
        ctx.paper_epoch_s[task] = first
    elif trainer.settings.compile:
        ctx.compile_s = max(first - progress.wall_s, 0.0)
    return Result(True, f"{amount}; train {progress.wall_s:.1f} s per epoch ({trainer.settings.precision}"
                        f"{', the 2nd epoch' if trainer.settings.compile else ''}), first epoch {first:.1f} s incl. "
                        f"eval{' and compile' if trainer.settings.compile else ''}",
                  {"train_s": progress.wall_s, "first_epoch_s": first, "throughput": amount})


# -- the report ----------------------------------------------------------------------------------------------------

class Report:
    """gpu_timings.md (a table, a row per step as it ends) and gpu_timings.json beside it (rewritten each time)."""

    def __init__(self, out: Path, header: dict[str, Any]):
        self.md, self.json = out, out.with_suffix(".json")
        self.data = {**header, "steps": [], "failed": [], "finished": None}
        out.parent.mkdir(parents=True, exist_ok=True)
        lines = ["# GPU check", "", *(f"- {key}: {value}" for key, value in header.items()), "",
                 "| step | result | s | detail |", "|---|---|---:|---|"]
        atomic_write(self.md, lambda file: file.write("\n".join(lines).encode() + b"\n"))
        self._write_json()

    def add(self, name: str, result: Result, seconds: float) -> None:
        verdict = "skipped" if result.skipped else "ok" if result.ok else "FAILED"
        with open(self.md, "a") as file:
            file.write(f"| {name} | {verdict} | {seconds:.1f} | {result.detail.replace('|', '/')} |\n")
        self.data["steps"].append({"step": name, "ok": result.ok, "skipped": result.skipped,
                                   "seconds": round(seconds, 2), "detail": result.detail, "values": result.values})
        if not result.ok:
            self.data["failed"].append(name)
        self._write_json()
        print(f"gpu_check: {name}: {verdict} ({seconds:.1f} s): {result.detail}", flush=True)

    def finish(self, note: str) -> None:
        with open(self.md, "a") as file:
            file.write(f"\n{note}\n")
        self.data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        self._write_json()

    def _write_json(self) -> None:
        text = json.dumps(self.data, indent=1, default=str)
        atomic_write(self.json, lambda file: file.write(text.encode()))


def run_step(report: Report, name: str, step: Callable[[], Result]) -> bool:
    started = time.perf_counter()
    try:
        result = step()
    except Exception as error:
        traceback.print_exc()
        result = Result(False, f"{type(error).__name__}: {one_line(error)}")
    report.add(name, result, time.perf_counter() - started)
    return result.ok


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:500]


STEPS: dict[str, Callable[[Context], Result]] = {
    "device": check_device, "resume": check_resume, "cuda_rng": check_cuda_rng, "foreach": check_foreach,
    "lstm_dtype": check_lstm_dtype, "gan_sums": check_gan_sums, "fid": check_fid,
}


def run_steps(args: argparse.Namespace, steps: list[str], ctx: Context) -> Report:
    from adala_bench.metrics.fid import inception_weights_file, weights_label

    report = Report(args.out, {
        "command": args.command,
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "data": f"synthetic stand-ins at {'smoke' if args.tiny else 'the real'} sizes",
        "Inception weights": f"{inception_weights_file()} ({weights_label()})"})
    for name in (step for step in CHECKS if step in steps):
        if not run_step(report, name, lambda: STEPS[name](ctx)) and name == "device":
            report.data["stopped"] = "the device step failed: nothing else can run on it"
            return report
    if "timing" in steps and not args.quick:
        for profile in PROFILES:
            for task in TIMED:
                spent = time.perf_counter() - ctx.started
                paper = ctx.paper_epoch_s.get(task, 0.0)
                expected = paper if profile == "paper" else 2 * paper + ctx.compile_s
                if spent + expected > args.budget:
                    report.add(f"time {task} {profile}", Result(True, f"{spent:.0f} s of the {args.budget:.0f} s "
                                                                      f"budget spent, and this one takes about "
                                                                      f"{expected:.0f} s", skipped=True), 0.0)
                    continue
                run_step(report, f"time {task} {profile}", lambda: time_epoch(ctx, task, profile))
    return report


def default_out(device: torch.device, tiny: bool) -> Path:
    """The GPU's reference timings only from a full-size run on CUDA; a rehearsal's report goes elsewhere."""
    if device.type == "cuda" and not tiny:
        return ROOT / "results" / "reference" / "gpu_timings.md"
    return ROOT / "results" / "gpu_check" / "rehearsal.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="smoke sizes (to rehearse the script on any device)")
    parser.add_argument("--quick", action="store_true", help="the correctness steps only (no timings)")
    parser.add_argument("--steps", default=",".join(CHECKS) + ",timing",
                        help="comma-separated steps to run; the device step always runs (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="the report (default: results/reference/gpu_timings.md on CUDA, "
                                                 "results/gpu_check/rehearsal.md for a rehearsal)")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds after which no timing starts")
    parser.add_argument("--resume-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.command = shlex.join(["python", "scripts/gpu_check.py", *(sys.argv[1:] if argv is None else argv)])
    if args.resume_child:
        resume_runs(args.device, args.root, args.tiny)
        return 0
    steps = ["device", *(step for step in args.steps.split(",") if step)]  # every other step needs its device
    allowed = (*CHECKS, "timing")
    for step in steps:
        if step not in allowed:
            print(f"gpu_check: error: step {step!r} is not allowed; allowed: {', '.join(allowed)}", file=sys.stderr)
            return 2
    try:
        device = torch.device(args.device)
    except RuntimeError:
        print(f"gpu_check: error: --device {args.device!r} is not a device; e.g. cuda, cuda:1, cpu", file=sys.stderr)
        return 2
    args.out = args.out or default_out(device, args.tiny)
    torch_home = os.environ.get("TORCH_HOME")
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(device, args.tiny, Path(tmp), asked=args.device)
        from adala_bench.metrics.fid import inception_weights_file, write_random_inception_weights
        if not inception_weights_file().is_file():  # no `make data` here (no internet): random weights
            os.environ["TORCH_HOME"] = str(ctx.root / "torch_home")
            write_random_inception_weights(ctx.root / "torch_home")
        try:
            report = run_steps(args, steps, ctx)
        finally:
            if torch_home is None:
                os.environ.pop("TORCH_HOME", None)
            else:
                os.environ["TORCH_HOME"] = torch_home
    failed = report.data["failed"]
    total = time.perf_counter() - ctx.started
    report.finish(f"{len(report.data['steps'])} step(s) in {total:.0f} s; "
                  + (f"FAILED: {', '.join(failed)}" if failed else "every check passed")
                  + (f"; stopped: {report.data['stopped']}" if "stopped" in report.data else ""))
    print(f"gpu_check: {'FAILED: ' + ', '.join(failed) if failed else 'every check passed'} ({total:.0f} s); "
          f"see {report.md} and {report.json}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
