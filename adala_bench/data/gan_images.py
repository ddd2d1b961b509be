"""The GAN's images as the reference prepared them: CIFAR-10 train images resized 32→64 as torchvision's PIL
`Resize(64)` does, then `ToTensor` and `Normalize(0.5, 0.5)` into [-1, 1]."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def to_unit_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 -> [-1, 1] float32 with the operations of ToTensor (x/255) then Normalize(0.5, 0.5) ((x − 0.5)/0.5)."""
    return images_uint8.float().div_(255).sub_(0.5).div_(0.5)


def resize_like_pil(images: torch.Tensor, size: int, chunk: int = 5000) -> torch.Tensor:
    """uint8 [N, C, H, W] -> uint8 [N, C, size, size], equal to PIL's bilinear `resize` (torchvision's Resize on a PIL
    image) for upsampling square images.

    For upsampling, PIL's bilinear filter has support 1 and pixel centres at +0.5, the same weights as
    F.interpolate(bilinear, align_corners=False); PIL applies it as two 8-bit passes, horizontal then vertical, each
    rounded half up (its fixed-point weights, here multiples of 1/4, are exact). So: interpolate the width, round,
    interpolate the height, round. Every value is exact in float32, so the result is the same on any device.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
    height, width = images.shape[2:]
    if height != width or size < height:
        raise ValueError(f"only upsampling square images is supported, got {height}x{width} -> {size}x{size}")
    out = torch.empty((len(images), images.shape[1], size, size), dtype=torch.uint8, device=images.device)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].float()
        for shape in ((height, size), (size, size)):  # the horizontal pass, then the vertical one
            x = F.interpolate(x, size=shape, mode="bilinear", align_corners=False).add_(0.5).floor_().clamp_(0, 255)
        out[start:start + chunk] = x.to(torch.uint8)
    return out
