"""VGG11 for CIFAR-10 as in AdaBelief's `models/vgg.py` (configuration 'A', no BatchNorm)."""
import math

import torch
from torch import nn

# Channels of configuration 'A'; "M" is a 2x2 max-pool. Five pools take 32x32 down to 1x1.
VGG11_LAYERS = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(nn.Module):
    def __init__(self, layers=VGG11_LAYERS, num_classes: int = 10, width: float = 1.0):
        super().__init__()
        # Build order (features, classifier, then conv re-init) matches the reference, so one seed gives its weights.
        self.features = _conv_layers(layers, width)
        features_out = _scaled([c for c in layers if c != "M"][-1], width)
        hidden = _scaled(512, width)
        self.classifier = nn.Sequential(
            nn.Dropout(0.5),
            nn.Linear(features_out, hidden),
            nn.ReLU(True),
            nn.Dropout(0.5),
            nn.Linear(hidden, hidden),
            nn.ReLU(True),
            nn.Linear(hidden, num_classes),
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def _conv_layers(layers, width: float) -> nn.Sequential:
    modules: list[nn.Module] = []
    in_channels = 3
    for layer in layers:
        if layer == "M":
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            out_channels = _scaled(layer, width)
            modules += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = out_channels
    return nn.Sequential(*modules)


def vgg11(num_classes: int = 10, width: float = 1.0) -> VGG:
    return VGG(VGG11_LAYERS, num_classes, width)


def _scaled(channels: int, width: float) -> int:
    """`channels` times `width`, rounded, at least 1; width 1 keeps the reference size exactly."""
    return max(1, round(channels * width))
