"""Task families. Each builds its model and data from the config and exposes the trainer's `Task` surface."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

FAMILIES = ("cifar10",)


def build_task(cfg: DictConfig, device: torch.device):
    if cfg.task.family == "cifar10":
        from adala_bench.tasks.classification import Cifar10Classification

        return Cifar10Classification(cfg, device)
    raise ValueError(f"unknown task family {cfg.task.family!r}; allowed: {', '.join(FAMILIES)}")
