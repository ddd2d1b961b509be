"""Task families. `build_task` makes the task a run's typed settings describe (config.RunConfig); each family takes
explicit arguments and exposes the trainer's `Task` surface (adala_bench.trainer)."""

from __future__ import annotations

import torch

from adala_bench.config import RunConfig
from adala_bench.settings import GanTaskSettings, ImageTaskSettings, LanguageTaskSettings


def build_task(run: RunConfig, device: torch.device):
    """The task of `run`, its data loaded and checked, its models built on `device` (seed the RNGs first)."""
    settings, data = run.task_settings, run.data
    batch_size, seed = run.run.batch_size, run.run.seed
    if isinstance(settings, ImageTaskSettings):
        from adala_bench.data.cifar10 import cifar10_arrays
        from adala_bench.tasks.classification import Cifar10Classification

        arrays = cifar10_arrays(data.root, data.source, data.n_train, data.n_test)
        return Cifar10Classification(arrays, arch=settings.arch, width=settings.width, batch_size=batch_size,
                                     val_size=data.val_size, seed=seed, device=device)
    if isinstance(settings, LanguageTaskSettings):
        from adala_bench.data.ptb import ptb_corpus
        from adala_bench.tasks.language import PennTreebankLM

        _no_validation_split(run, "PTB's validation set is valid.txt (val_ppl in every row)")
        corpus = ptb_corpus(data.root, data.source, settings.n_train, settings.n_valid, settings.n_test,
                            settings.vocab_size)
        return PennTreebankLM(corpus, settings, batch_size=batch_size, seed=seed, device=device)
    if isinstance(settings, GanTaskSettings):
        from adala_bench.data.cifar10 import cifar10_arrays
        from adala_bench.tasks.gan_fid import fid_cache_dir, train_images_fingerprint
        from adala_bench.tasks.generation import WassersteinGAN

        _no_validation_split(run, "the GAN trains on all train images and has no validation metric")
        arrays = cifar10_arrays(data.root, data.source, data.n_train, data.n_test)
        return WassersteinGAN(arrays, kind=settings.kind, width=settings.width, batch_size=batch_size,
                              epochs=run.run.epochs, seed=seed, device=device,
                              data_fingerprint=train_images_fingerprint(arrays),
                              fid_cache_dir=fid_cache_dir(data.root, data.source), fid=settings.fid)
    raise TypeError(f"no task is built from {type(settings).__name__}")


def _no_validation_split(run: RunConfig, why: str) -> None:
    if run.data.val_size:
        raise ValueError(f"data.val_size={run.data.val_size} is not allowed for {run.task}; {why}, so it must be 0")
