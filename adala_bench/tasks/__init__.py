"""Task families. `build_task` is the one place that reads a task's settings out of the Hydra config; each family
takes explicit arguments and exposes the trainer's `Task` surface (adala_bench.trainer)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from adala_bench.catalog import FAMILIES


def build_task(cfg: DictConfig, device: torch.device):
    """The task the config names, its data loaded and checked, its models built on `device` (seed first)."""
    family = cfg.task.family
    if family == "cifar10":
        from adala_bench.tasks.classification import Cifar10Classification, cifar10_data

        data = cifar10_data(cfg.data.root, cfg.data.source, cfg.data.synthetic.n_train, cfg.data.synthetic.n_test)
        return Cifar10Classification(data, arch=cfg.task.arch, width=cfg.task.width, batch_size=cfg.batch_size,
                                     val_size=cfg.data.val_size, seed=cfg.seed, device=device)
    raise ValueError(f"task family {family!r} is not built yet; built: cifar10 (known: {', '.join(FAMILIES)})")
