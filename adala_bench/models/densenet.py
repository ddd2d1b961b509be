"""DenseNet121 for CIFAR-10 (3x3 stem, growth 32, reduction 0.5), as in AdaBelief's `models/densenet.py`."""
import math

import torch
import torch.nn.functional as F
from torch import nn


class Bottleneck(nn.Module):
    """BN-ReLU-conv1x1 (4*growth) then BN-ReLU-conv3x3 (growth); the new features are concatenated to the input."""

    def __init__(self, in_channels: int, growth_rate: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, 4 * growth_rate, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth_rate)
        self.conv2 = nn.Conv2d(4 * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([out, x], 1)


class Transition(nn.Module):
    """BN-ReLU-conv1x1 to fewer channels, then 2x2 average pool."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNet(nn.Module):
    def __init__(self, layers_per_block=(6, 12, 24, 16), growth_rate: int = 32, reduction: float = 0.5,
                 num_classes: int = 10):
        super().__init__()
        channels = 2 * growth_rate
        self.conv1 = nn.Conv2d(3, channels, kernel_size=3, padding=1, bias=False)
        dense_blocks, transitions = [], []
        for block, num_layers in enumerate(layers_per_block):
            dense_blocks.append(nn.Sequential(*(Bottleneck(channels + i * growth_rate, growth_rate)
                                                for i in range(num_layers))))
            channels += num_layers * growth_rate
            if block < len(layers_per_block) - 1:
                reduced = math.floor(channels * reduction)
                transitions.append(Transition(channels, reduced))
                channels = reduced
        # Attribute names follow the reference, so its checkpoints load by name.
        self.dense1, self.dense2, self.dense3, self.dense4 = dense_blocks
        self.trans1, self.trans2, self.trans3 = transitions
        self.bn = nn.BatchNorm2d(channels)
        self.linear = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.trans1(self.dense1(out))
        out = self.trans2(self.dense2(out))
        out = self.trans3(self.dense3(out))
        out = self.dense4(out)
        out = F.avg_pool2d(F.relu(self.bn(out)), 4)  # 4x4 -> 1x1 for 32x32 inputs
        return self.linear(out.flatten(1))


def densenet121(num_classes: int = 10, width: float = 1.0) -> DenseNet:
    return DenseNet((6, 12, 24, 16), growth_rate=_scaled(32, width), reduction=0.5, num_classes=num_classes)


def _scaled(channels: int, width: float) -> int:
    """`channels` times `width`, rounded, at least 1; width 1 keeps the reference size exactly."""
    return max(1, round(channels * width))
