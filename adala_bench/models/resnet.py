"""ResNet34, CIFAR variant (3x3 stem, no max-pool), as in AdaBelief's `models/resnet.py`."""
import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN; the shortcut is a 1x1 conv+BN when stride or channel count changes, identity otherwise."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, blocks_per_stage=(3, 4, 6, 3), num_classes: int = 10, width: float = 1.0):
        super().__init__()
        stem = _scaled(64, width)
        self.conv1 = nn.Conv2d(3, stem, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        in_channels = stem
        stages = []
        for stage, num_blocks in enumerate(blocks_per_stage):
            channels = _scaled(64 * 2**stage, width)
            first_stride = 1 if stage == 0 else 2
            blocks = []
            for stride in [first_stride] + [1] * (num_blocks - 1):
                blocks.append(BasicBlock(in_channels, channels, stride))
                in_channels = channels
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.linear = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4)  # 4x4 -> 1x1 for 32x32 inputs
        return self.linear(out.flatten(1))


def resnet34(num_classes: int = 10, width: float = 1.0) -> ResNet:
    return ResNet((3, 4, 6, 3), num_classes, width)


def _scaled(channels: int, width: float) -> int:
    """`channels` times `width`, rounded, at least 1; width 1 keeps the reference size exactly."""
    return max(1, round(channels * width))
