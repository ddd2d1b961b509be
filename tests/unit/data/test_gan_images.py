"""data/gan_images.py: the GAN task's real images made 64x64 on the device, bit for bit as the reference's data path
made them on PIL images (torchvision's Resize(64), ToTensor, Normalize(0.5, 0.5))."""

from __future__ import annotations

import torch
import torchvision.transforms as TF
from PIL import Image
from torch.nn import functional as F

from adala_bench.data.cifar10 import cifar10_arrays
from adala_bench.data.gan_images import resize_like_pil, to_unit_range


def test_resize_equals_torchvision_resize64_on_pil_then_totensor_normalize(tmp_path):
    """Max difference 0: the device resize is bit-identical to Resize(64) → ToTensor → Normalize(0.5, 0.5) on PIL
    images, for the synthetic set and for uniform noise (which a single-pass float bilinear misses by one level)."""
    data = cifar10_arrays(tmp_path, "synthetic", 26, 5)
    noise = torch.randint(0, 256, (40, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    reference = TF.Compose([TF.Resize(64), TF.ToTensor(), TF.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    for images in (data.train_images, noise):
        expected = torch.stack([reference(Image.fromarray(image.permute(1, 2, 0).numpy())) for image in images])
        ours = to_unit_range(resize_like_pil(images, 64))
        assert ours.shape == (len(images), 3, 64, 64)
        assert (ours - expected).abs().max().item() == 0.0
    single_pass = F.interpolate(noise.float(), size=64, mode="bilinear", align_corners=False).round()
    assert (single_pass - resize_like_pil(noise, 64).float()).abs().max().item() == 1.0
