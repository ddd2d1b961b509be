"""tasks/__init__.py's build_task for all eight tasks (issue 17, path 4): what each one builds from a composed config,
held to architecture facts written out here by hand (the reference networks' channel counts, depths and sizes; the
smoke profile's eighth width), never read back from the settings the builder was given.

Two sizes each: the smoke profile (width 0.125) and the paper's networks (width 1.0, the paper's batch sizes) on the
synthetic data. The GANs' paper-sized build keeps the smoke FID's 64-d features over 64 real images (the protocol's
2048-d statistics of all train images take minutes on a CPU); their other FID settings stay the protocol's. And the
GAN's critic kind, FID settings, epochs and batch size as a composed smoke config names them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from adala_bench.config import RunConfig
from adala_bench.models.awd_lstm import AWDLSTM
from adala_bench.models.dcgan import Critic, Generator
from adala_bench.models.densenet import DenseNet
from adala_bench.models.resnet import ResNet
from adala_bench.models.vgg import VGG
from adala_bench.settings import FidSettings
from adala_bench.tasks import build_task, gan_fid
from adala_bench.tasks.classification import Cifar10Classification
from adala_bench.tasks.generation import WassersteinGAN
from adala_bench.tasks.language import PennTreebankLM

from helpers import compose

pytestmark = pytest.mark.usefixtures("no_network")

CPU = torch.device("cpu")
N_TRAIN, N_TEST = 256, 128  # conftest's data_root
PTB_TOKENS = {"train": 20000, "valid": 2000, "test": 2000}  # the task files' synthetic corpus, <eos> included
PTB_VOCAB = 200


@pytest.fixture(autouse=True)
def torch_home(random_home, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(random_home))
    return random_home


def build(size: str, task: str, data_root, tmp_path):
    data = [f"data.root={data_root}", f"results.root={tmp_path / 'runs'}", "device=cpu"]
    if size == "smoke":
        cfg = compose("profile=smoke", f"task={task}", "optimizer=adala", *data)
    else:
        cfg = compose("profile=paper", f"task={task}", "optimizer=adala", "data.source=synthetic",
                      f"data.synthetic.n_train={N_TRAIN}", f"data.synthetic.n_test={N_TEST}", *data,
                      *(["task.fid.dims=64", "task.fid.real_images=64"] if task.startswith("gan_") else []))
    torch.manual_seed(0)
    return build_task(RunConfig.of(cfg), CPU)


def layers(module: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in module.modules() if type(m) is kind]


# ---- CIFAR-10 ------------------------------------------------------------------------------------------------------

# (model class, batch size, facts) per size; the facts are checked by `cifar_facts` below.
CIFAR = {
    ("cifar10_vgg11", "smoke"): (VGG, 32, {"convs": (8, 16, 32, 32, 64, 64, 64, 64), "pools": 5,
                                           "linears": ((64, 64), (64, 64), (64, 10))}),
    ("cifar10_vgg11", "paper"): (VGG, 128, {"convs": (64, 128, 256, 256, 512, 512, 512, 512), "pools": 5,
                                            "linears": ((512, 512), (512, 512), (512, 10))}),
    ("cifar10_resnet34", "smoke"): (ResNet, 32, {"stem": 8, "stages": ((3, 8), (4, 16), (6, 32), (3, 64)),
                                                 "linears": ((64, 10),)}),
    ("cifar10_resnet34", "paper"): (ResNet, 128, {"stem": 64, "stages": ((3, 64), (4, 128), (6, 256), (3, 512)),
                                                  "linears": ((512, 10),)}),
    # DenseNet121: 6, 12, 24, 16 bottlenecks; growth 32 (4 at width 1/8); stem 2 x growth; transitions halve.
    ("cifar10_densenet121", "smoke"): (DenseNet, 32, {"stem": 8, "growth": 4, "blocks": (6, 12, 24, 16),
                                                      "transitions": ((32, 16), (64, 32), (128, 64)),
                                                      "linears": ((128, 10),)}),
    ("cifar10_densenet121", "paper"): (DenseNet, 128, {"stem": 64, "growth": 32, "blocks": (6, 12, 24, 16),
                                                       "transitions": ((256, 128), (512, 256), (1024, 512)),
                                                       "linears": ((1024, 10),)}),
}


def cifar_facts(model: nn.Module) -> dict:
    facts = {"linears": tuple((m.in_features, m.out_features) for m in layers(model, nn.Linear))}
    if isinstance(model, VGG):
        facts.update(convs=tuple(m.out_channels for m in layers(model, nn.Conv2d)),
                     pools=len(layers(model, nn.MaxPool2d)))
    elif isinstance(model, ResNet):
        stages = (model.layer1, model.layer2, model.layer3, model.layer4)
        facts.update(stem=model.conv1.out_channels,
                     stages=tuple((len(stage), stage[-1].conv2.out_channels) for stage in stages))
    else:
        blocks = (model.dense1, model.dense2, model.dense3, model.dense4)
        facts.update(stem=model.conv1.out_channels, growth=model.dense1[0].conv2.out_channels,
                     blocks=tuple(len(block) for block in blocks),
                     transitions=tuple((t.conv.in_channels, t.conv.out_channels)
                                       for t in (model.trans1, model.trans2, model.trans3)))
    return facts


@pytest.mark.parametrize("size", ["smoke", "paper"])
@pytest.mark.parametrize("task", ["cifar10_vgg11", "cifar10_resnet34", "cifar10_densenet121"])
def test_build_task_builds_the_cifar10_network_the_task_names(data_root, tmp_path, task, size):
    model_class, batch_size, facts = CIFAR[(task, size)]
    built = build(size, task, data_root, tmp_path)
    assert type(built) is Cifar10Classification and type(built.model) is model_class
    assert list(built.players) == ["model"] and built.players["model"].module is built.model
    assert cifar_facts(built.model) == facts
    assert built.model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert (built.train.batch_size, built.test.batch_size) == (batch_size, batch_size)
    assert (len(built.train.labels), len(built.test.labels), built.val) == (N_TRAIN, N_TEST, None)
    assert not built.train.images.is_floating_point() and built.train.train and not built.test.train


# ---- PTB -----------------------------------------------------------------------------------------------------------

PTB_SIZES = {"smoke": (32, 50, 144), "paper": (20, 400, 1150)}  # (batch, emsize, nhid): 400 x 1/8 = 50, 1150 x 1/8 = 143.75


@pytest.mark.parametrize("size", ["smoke", "paper"])
@pytest.mark.parametrize("task, nlayers", [("ptb_lstm1", 1), ("ptb_lstm2", 2), ("ptb_lstm3", 3)])
def test_build_task_builds_the_awd_lstm_the_task_names(data_root, tmp_path, task, nlayers, size):
    batch_size, emsize, nhid = PTB_SIZES[size]
    built = build(size, task, data_root, tmp_path)
    assert type(built) is PennTreebankLM and type(built.model) is AWDLSTM
    model = built.model
    # layer i reads emsize (first) or nhid, and is nhid wide except the last, which is emsize wide (tied decoder)
    expected = [(emsize if i == 0 else nhid, emsize if i == nlayers - 1 else nhid) for i in range(nlayers)]
    assert [(rnn.input_size, rnn.hidden_size) for rnn in model.rnns] == expected
    assert tuple(model.encoder.weight.shape) == (PTB_VOCAB, emsize) and model.decoder.weight is model.encoder.weight
    assert (model.dropout, model.dropouth, model.dropouti, model.dropoute) == (0.4, 0.25, 0.4, 0.1)
    assert [rnn.wdrop for rnn in model.rnns] == [0.5] * nlayers and not model.train_recurrent
    assert built.batch_size == batch_size
    # the token streams in columns: train at the run's batch, valid at 10, test at 1 (the remainder dropped)
    assert tuple(built.train_data.shape) == (PTB_TOKENS["train"] // batch_size, batch_size)
    assert tuple(built.val_data.shape) == (PTB_TOKENS["valid"] // 10, 10)
    assert tuple(built.test_data.shape) == (PTB_TOKENS["test"], 1)


# ---- GAN -----------------------------------------------------------------------------------------------------------

GAN = {  # (width in channels: ngf = ndf, batch, epochs, FID settings)
    "smoke": (8, 32, 2, FidSettings(dims=64, every=1, curve_samples=16, final_samples=32, real_images=64,
                                    batch_size=50)),
    "paper": (64, 64, 100, FidSettings(dims=64, every=0, curve_samples=5000, final_samples=64000, real_images=64,
                                       batch_size=50)),
}


@pytest.mark.parametrize("size", ["smoke", "paper"])
@pytest.mark.parametrize("task, kind", [("gan_wgan", "wgan"), ("gan_wgan_gp", "wgan_gp")])
def test_build_task_builds_the_gan_the_task_names(data_root, tmp_path, task, kind, size):
    channels, batch_size, epochs, fid = GAN[size]
    built = build(size, task, data_root, tmp_path)
    assert type(built) is WassersteinGAN and built.kind == kind
    assert type(built.generator) is Generator and type(built.critic) is Critic and built.critic.kind == kind
    assert set(built.players) == {"critic", "generator"}
    transposed = layers(built.generator, nn.ConvTranspose2d)
    assert [(m.in_channels, m.out_channels) for m in transposed] == [
        (100, 8 * channels), (8 * channels, 4 * channels), (4 * channels, 2 * channels), (2 * channels, channels),
        (channels, 3)]
    convs = layers(built.critic, nn.Conv2d)
    assert [(m.in_channels, m.out_channels) for m in convs][:4] == [
        (3, channels), (channels, 2 * channels), (2 * channels, 4 * channels), (4 * channels, 8 * channels)]
    if kind == "wgan":  # a 4x4 conv head and a sigmoid; weight clipping after each critic step
        assert (convs[-1].in_channels, convs[-1].out_channels) == (8 * channels, 1)
        assert isinstance(built.critic.main[-1], nn.Sigmoid) and not hasattr(built.critic, "linear")
        assert built.players["critic"].after_step is not None
    else:  # a linear head, no sigmoid, no clipping
        assert len(convs) == 4 and (built.critic.linear.in_features, built.critic.linear.out_features) == (
            8 * channels * 16, 1)
        assert not any(isinstance(m, nn.Sigmoid) for m in built.critic.modules())
        assert built.players["critic"].after_step is None
    assert built.players["generator"].after_step is None
    assert (built.batch_size, built.epochs, built.fid) == (batch_size, epochs, fid)
    assert built.images.dtype == torch.uint8 and tuple(built.images.shape) == (N_TRAIN, 3, 64, 64)
    mu, sigma = built.fid_meter.real_stats
    assert mu.shape == (64,) and sigma.shape == (64, 64)
    assert built.generator(torch.zeros(2, 100, 1, 1)).shape == (2, 3, 64, 64)


@pytest.mark.parametrize("task, kind", [("gan_wgan", "wgan"), ("gan_wgan_gp", "wgan_gp")])
def test_build_task_builds_the_gan_the_config_names(tmp_path, task, kind):
    """adala_bench.tasks.build_task itself, on a composed smoke config: the critic kind follows the task (the WGAN
    critic ends in a sigmoid and is clamped after its steps; the WGAN-GP one has a linear head and no clamp), and the
    FID settings, epochs and batch size are the config's (26 synthetic images of its own: not the shared data_root's
    sizes)."""
    data_root = tmp_path / "data"
    cfg = compose("profile=smoke", f"task={task}", "optimizer=adala", f"data.root={data_root}",
                  "data.synthetic.n_train=26", "data.synthetic.n_test=5", "task.width=0.0625",
                  "task.fid.final_samples=6", "task.fid.curve_samples=4", "task.fid.real_images=null")
    built = build_task(RunConfig.of(cfg), CPU)
    assert isinstance(built, WassersteinGAN) and built.kind == kind
    assert isinstance(built.critic.main[-1], torch.nn.Sigmoid) == (kind == "wgan")
    assert (built.players["critic"].after_step is not None) == (kind == "wgan")
    assert (built.epochs, built.batch_size, built.fid) == (2, 32, FidSettings(dims=64, every=1, curve_samples=4,
                                                                              final_samples=6, real_images=None))
    assert (data_root / "synthetic" / "fid-stats").is_dir()
    assert gan_fid.fid_cache_dir(data_root, "real") == data_root / "fid-stats"
