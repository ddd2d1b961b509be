"""Task families. `build_task` is the one place that reads a task's settings out of the Hydra config; each family
takes explicit arguments and exposes the trainer's `Task` surface (adala_bench.trainer)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf

from adala_bench.catalog import FAMILIES


def build_task(cfg: DictConfig, device: torch.device):
    """The task the config names, its data loaded and checked, its models built on `device` (seed first)."""
    family = cfg.task.family
    if family == "cifar10":
        from adala_bench.tasks.classification import Cifar10Classification, cifar10_data

        data = cifar10_data(cfg.data.root, cfg.data.source, cfg.data.synthetic.n_train, cfg.data.synthetic.n_test)
        return Cifar10Classification(data, arch=cfg.task.arch, width=cfg.task.width, batch_size=cfg.batch_size,
                                     val_size=cfg.data.val_size, seed=cfg.seed, device=device)
    if family == "ptb":
        from adala_bench.tasks.language import LstmSettings, PennTreebankLM, ptb_corpus

        if cfg.data.val_size:
            raise ValueError(f"data.val_size={cfg.data.val_size} is not allowed for {cfg.task.name}; PTB's "
                             f"validation set is valid.txt (val_ppl in every row), so it must be 0")
        sizes = cfg.task.synthetic
        corpus = ptb_corpus(cfg.data.root, cfg.data.source, sizes.n_train, sizes.n_valid, sizes.n_test, sizes.vocab_size)
        lstm = LstmSettings(nlayers=cfg.task.nlayers, emsize=scaled(400, cfg.task.width), nhid=scaled(1150, cfg.task.width),
                            train_recurrent=cfg.task.lstm.train_recurrent)
        return PennTreebankLM(corpus, lstm, batch_size=cfg.batch_size, seed=cfg.seed, device=device)
    if family == "gan":
        from adala_bench.tasks.generation import (FidSettings, WassersteinGAN, fid_cache_dir, gan_data,
                                                  train_images_fingerprint)

        if cfg.data.val_size:
            raise ValueError(f"data.val_size={cfg.data.val_size} is not allowed for {cfg.task.name}; the GAN "
                             f"trains on all train images and has no validation metric, so it must be 0")
        data = gan_data(cfg.data.root, cfg.data.source, cfg.data.synthetic.n_train, cfg.data.synthetic.n_test)
        return WassersteinGAN(data, kind=cfg.task.kind, width=cfg.task.width, batch_size=cfg.batch_size,
                              epochs=cfg.epochs, seed=cfg.seed, device=device,
                              data_fingerprint=train_images_fingerprint(data),
                              fid_cache_dir=fid_cache_dir(cfg.data.root, cfg.data.source),
                              fid=FidSettings(**OmegaConf.to_container(cfg.task.fid, resolve=True)))
    raise ValueError(f"task family {family!r} is not built yet; known: {', '.join(FAMILIES)}")


def scaled(size: int, width: float) -> int:
    """`size` times the task's width multiplier, rounded, at least 1 (width 1.0 is the reference network)."""
    if not width > 0:
        raise ValueError(f"task.width={width!r} is not allowed; it must be > 0")
    return max(1, round(size * width))
