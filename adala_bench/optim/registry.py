"""The ten optimizers of the benchmark, built by name with the hyperparameter names torch.optim and the packages use.

Defaults are each class's own; every task family's as-run values live in the config files.
Which implementation stands for each reference optimizer (PROTOCOL.md §5):
- adala: this package's AdaLA.
- adabelief: adabelief-pytorch with weight_decouple=False (True only if asked, to pair AdaLA's decoupled ablation),
  rectify=False, amsgrad=False and eps passed explicitly; with these flags 0.2.1 runs the 0.0.5 step
  (including ε added into the stored s) and prints nothing.
- sgd, adam, adamw: torch.optim.
- radam: torch.optim.RAdam(decoupled_weight_decay=True). The reference (LiyuanLucasLiu/RAdam, degenerated_to_sgd)
  rectifies when N_sma >= 5, torch when rho_t > 5: they differ only at rho_t == 5 exactly. With β2 = 0.999,
  rho_t = 1, 2.0, 3.0, 4.0, 4.996 at t = 1..5, so both take plain momentum steps θ ← θ − lr·m/bc1 (after the
  decoupled decay θ ← θ(1 − lr·wd)) for steps 1-5 and rectified steps from t = 6; the trajectories agree to rounding
  (checked in float64: ≤ 2e-15 over 20 steps). Left over: the reference's per-group 10-slot step-size cache
  (a cache of the same values) and its fp32 copy of half-precision parameters.
- yogi: torch_optimizer.Yogi (the reference's source), eps 1e-3 and initial_accumulator 1e-6 unless given.
- adabound: the `adabound` package's AdaBound (the reference), with its deprecated-overload warnings silenced.
- msvag, fromage: this package's MSVAG and Fromage.
- asgd: torch.optim.ASGD (capturable on CUDA: no host sync per parameter), only as what PTB's SGD switches to
  (never a benchmark row).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import adabound
import torch
import torch_optimizer
from adabelief_pytorch import AdaBelief
from torch.optim import Optimizer

from adala_bench.catalog import OPTIMIZER_ORDER

from .adala import AdaLA
from .common import check_hparams, check_types
from .fromage import Fromage
from .msvag import MSVAG



class QuietAdaBound(adabound.AdaBound):
    """The reference AdaBound; its step uses torch overloads deprecated since torch 1.5, whose warnings are muted."""

    def step(self, closure=None):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"This overload of \w+_? is deprecated", category=UserWarning)
            return super().step(closure)


def _adabelief(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, weight_decouple=False) -> Optimizer:
    # eps 1e-8 is 0.0.5's default (0.2.1's own is 1e-16); the other flags pin the 0.0.5 step
    return AdaBelief(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, weight_decouple=weight_decouple,
                     rectify=False, amsgrad=False, fixed_decay=False, print_change_log=False)


def _radam(params, **hparams: Any) -> Optimizer:
    return torch.optim.RAdam(params, decoupled_weight_decay=True, **hparams)


class DeviceASGD(torch.optim.ASGD):
    """torch's ASGD, capturable where its parameters are on CUDA. Otherwise its step reads each parameter's step
    count back to the host (`mu.item()` and `_get_value(eta)` per tensor, or `_get_value(step)` per tensor in the
    foreach path): a blocking sync per parameter per step. Capturable keeps eta and mu on the device; the CPU allows
    no capturable step, so there it is torch's plain one. The choice follows the parameters, not the checkpoint (a
    run may resume on another device), and is no hyperparameter (no run directory changes name)."""

    def __init__(self, params, **hparams: Any):
        params = list(params)  # tensors, as the trainer passes them
        super().__init__(params, capturable=capturable_on(params), **hparams)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        capturable = self.defaults["capturable"]
        super().load_state_dict(state_dict)  # moves `step` to the parameter's device only if the saver was capturable
        for group in self.param_groups:
            group["capturable"] = capturable
            for p in group["params"]:
                if capturable and "step" in self.state.get(p, {}):
                    self.state[p]["step"] = self.state[p]["step"].to(p.device, torch.float32)


def capturable_on(params: list[torch.Tensor]) -> bool:
    return bool(params) and all(p.is_cuda for p in params)


@dataclass(frozen=True)
class _Spec:
    factory: Callable[..., Optimizer]
    hparams: tuple[str, ...]
    required: tuple[str, ...] = ()


_SPECS: dict[str, _Spec] = {
    "adala": _Spec(AdaLA, ("lr", "betas", "eps", "weight_decay", "weight_decouple", "residual", "lookahead_weight",
                            "foreach")),
    "adabelief": _Spec(_adabelief, ("lr", "betas", "eps", "weight_decay", "weight_decouple")),
    "sgd": _Spec(torch.optim.SGD, ("lr", "momentum", "dampening", "weight_decay", "nesterov", "foreach")),
    "adabound": _Spec(QuietAdaBound, ("lr", "betas", "final_lr", "gamma", "eps", "weight_decay", "amsbound")),
    "yogi": _Spec(torch_optimizer.Yogi, ("lr", "betas", "eps", "initial_accumulator", "weight_decay")),
    "adam": _Spec(torch.optim.Adam, ("lr", "betas", "eps", "weight_decay", "amsgrad", "foreach")),
    "msvag": _Spec(MSVAG, ("lr", "betas", "eps", "weight_decay")),
    "radam": _Spec(_radam, ("lr", "betas", "eps", "weight_decay", "foreach")),
    "adamw": _Spec(torch.optim.AdamW, ("lr", "betas", "eps", "weight_decay", "amsgrad", "foreach")),
    "fromage": _Spec(Fromage, ("lr",), required=("lr",)),
    # Not one of the ten: PTB's SGD switches to it on a test-loss plateau (tasks/language.py), as the reference.
    "asgd": _Spec(DeviceASGD, ("lr", "lambd", "alpha", "t0", "weight_decay", "foreach")),
}


def build(name: str, params, **hparams: Any) -> Optimizer:
    """Optimizer `name` over params, e.g. build("sgd", model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4).

    A dotted import path ("torch.optim.Adamax", "my_module.MyOptimizer") builds that class instead: any torch
    Optimizer, benchmarked through the same trainer (`optimizer=custom optimizer._target_=...`).
    """
    if name not in _SPECS and "." in name:
        return build_imported(name, params, **hparams)
    if name not in _SPECS:
        raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZER_ORDER)}, or a class's import path")
    spec = _SPECS[name]
    unknown = sorted(set(hparams) - set(spec.hparams))
    if unknown:
        raise ValueError(f"unknown hyperparameter {', '.join(map(repr, unknown))} for optimizer {name!r}; "
                         f"allowed: {', '.join(spec.hparams)}")
    missing = [key for key in spec.required if key not in hparams]
    if missing:
        raise ValueError(f"optimizer {name!r} needs {', '.join(missing)}")
    check_types(hparams)
    if "betas" in hparams:
        hparams["betas"] = tuple(hparams["betas"])  # YAML gives a list
    # some packages don't validate (adabelief-pytorch: weight_decay), so check all uniformly here
    check_hparams(**{key: hparams[key] for key in ("lr", "betas", "eps", "weight_decay") if key in hparams})
    return spec.factory(params, **hparams)


def on_plateau(name: str, hparams: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """What optimizer `name` becomes when the task's plateau rule fires (the trainer asks after every epoch), as
    (name, hyperparameters), or None where it stays. The AWD-LSTM reference's switch: SGD becomes
    ASGD(lr = SGD's configured lr, t0 = 0, lambd = 0, the same weight decay), which with lambd 0 is plain SGD again at
    the undecayed lr, averaging the iterates from then on."""
    if name != "sgd":
        return None
    return "asgd", {"lr": hparams["lr"], "t0": 0, "lambd": 0.0, "weight_decay": hparams.get("weight_decay", 0.0)}


def needs_closure(optimizer: Optimizer) -> bool:
    """True when optimizer.step must be given a closure (AdaLA's look-ahead)."""
    return getattr(optimizer, "requires_closure", False)


def build_imported(path: str, params, **hparams: Any) -> Optimizer:
    """The optimizer class at import path `path`, constructed as cls(params, **hparams); ValueError in one line when
    it cannot be imported, is not an Optimizer, or refuses the arguments."""
    module_name, _, class_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"optimizer class {path!r} cannot be imported ({type(error).__name__}: {error}); "
                         f"give a module on PYTHONPATH and a class in it, e.g. torch.optim.Adamax") from None
    if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
        raise ValueError(f"optimizer class {path!r} is not a torch.optim.Optimizer subclass")
    if "betas" in hparams:
        hparams["betas"] = tuple(hparams["betas"])
    try:
        return cls(params, **hparams)
    except (TypeError, ValueError) as error:
        message = " ".join(str(error).split())
        raise ValueError(f"optimizer class {path!r} cannot be constructed with {hparams}: {message}") from None
