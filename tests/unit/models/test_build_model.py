"""models/__init__.py's build_model and the CIFAR-10 networks it builds (models/vgg.py, resnet.py, densenet.py):
full-width parameter counts against the reference's, VGG11's init and classifier, ResNet34's projection shortcuts,
DenseNet121's channel flow, seeded init at a small width, a few SGD steps lowering the loss, bad arguments refused."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from adala_bench.models import CIFAR_MODELS, build_model

# PROTOCOL.md §1: counts of the reference definitions.
REFERENCE_PARAMETERS = {"vgg11": (9_750_922, 22), "resnet34": (21_282_122, 110), "densenet121": (6_956_298, 362)}


@pytest.mark.parametrize("name", CIFAR_MODELS)
def test_full_width_parameter_counts_match_the_reference(name):
    parameters = list(build_model(name).parameters())
    assert (sum(p.numel() for p in parameters), len(parameters)) == REFERENCE_PARAMETERS[name]


def test_vgg11_conv_init_and_classifier():
    torch.manual_seed(0)
    model = build_model("vgg11")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 256, 512, 512, 512, 512]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    for conv in convs:
        assert torch.count_nonzero(conv.bias) == 0
        expected_std = math.sqrt(2.0 / (3 * 3 * conv.out_channels))
        assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.05)
    layers = list(model.classifier)
    assert [type(m) for m in layers] == [nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Linear]
    assert [(m.in_features, m.out_features) for m in layers if isinstance(m, nn.Linear)] == [
        (512, 512), (512, 512), (512, 10)]
    assert all(m.p == 0.5 for m in layers if isinstance(m, nn.Dropout))


def test_resnet34_has_projection_shortcuts_only_where_the_shape_changes():
    model = build_model("resnet34")
    assert [len(stage) for stage in (model.layer1, model.layer2, model.layer3, model.layer4)] == [3, 4, 6, 3]
    projections = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    assert [(p.in_channels, p.out_channels, p.stride) for p in projections] == [
        (64, 128, (2, 2)), (128, 256, (2, 2)), (256, 512, (2, 2))]
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert (model.linear.in_features, model.linear.out_features) == (512, 10)


def test_densenet121_channel_flow():
    model = build_model("densenet121")
    assert model.conv1.out_channels == 64
    assert [(t.conv.in_channels, t.conv.out_channels) for t in (model.trans1, model.trans2, model.trans3)] == [
        (256, 128), (512, 256), (1024, 512)]
    assert [len(b) for b in (model.dense1, model.dense2, model.dense3, model.dense4)] == [6, 12, 24, 16]
    assert model.linear.in_features == 1024


@pytest.mark.parametrize("name", CIFAR_MODELS)
def test_small_width_forward_shape_and_seeded_init(name):
    torch.manual_seed(3)
    model = build_model(name, num_classes=7, width=0.125)
    torch.manual_seed(3)
    same = build_model(name, num_classes=7, width=0.125)
    for (key, a), b in zip(model.state_dict().items(), same.state_dict().values()):
        assert torch.equal(a, b), key
    full = sum(p.numel() for p in build_model(name).parameters())
    assert sum(p.numel() for p in model.parameters()) < full / 20
    assert model(torch.randn(5, 3, 32, 32)).shape == (5, 7)


# VGG11 has no BatchNorm and its tiny dropout layers make momentum jumpy: plain SGD, more steps.
# The BN nets fit 16 images within a handful of momentum steps.
@pytest.mark.parametrize(("name", "steps", "lr", "momentum"), [
    ("vgg11", 30, 0.1, 0.0), ("resnet34", 5, 0.05, 0.9), ("densenet121", 5, 0.05, 0.9)])
def test_a_few_sgd_steps_lower_the_loss_on_a_fixed_batch(name, steps, lr, momentum):
    torch.manual_seed(0)
    model = build_model(name, width=0.125)
    labels = torch.arange(16) % 10
    images = torch.randn(10, 3, 1, 1)[labels] + 0.5 * torch.randn(16, 3, 32, 32)  # a colour per class, plus noise
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)

    def loss_now() -> float:
        torch.manual_seed(1)  # the same dropout masks each time, so the losses compare the weights only
        with torch.no_grad():
            return nn.functional.cross_entropy(model(images), labels).item()

    before = loss_now()
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    assert loss_now() < 0.95 * before


def test_bad_arguments_are_rejected_with_the_allowed_values():
    with pytest.raises(ValueError, match=r"unknown model 'vgg16'; allowed: vgg11, resnet34, densenet121"):
        build_model("vgg16")
    with pytest.raises(ValueError, match="width must be > 0, got 0"):
        build_model("vgg11", width=0)
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        build_model("resnet34", num_classes=0)
