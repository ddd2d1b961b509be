"""data/augment.py: CIFAR-10's training augmentation (random crop with padding, horizontal flip) and normalisation on
tensors, equal to torchvision's image by image with the drawn randomness; batches a function of (seed, epoch) only;
evaluation batches in order, unaugmented, covering the set once; the last partial batch kept; bad inputs refused;
the same batches on a GPU as on the CPU."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.v2.functional as TF
from PIL import Image

from adala_bench.data.augment import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    ImageBatcher,
    normalize,
    random_crop_flip,
)

MEAN = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)


def random_images(count: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def reference_crop_flip(image: torch.Tensor, top: int, left: int, flip: bool) -> torch.Tensor:
    """torchvision's RandomCrop(32, padding=4) + RandomHorizontalFlip, with the draws given."""
    cropped = TF.crop(TF.pad(image, [4]), top, left, 32, 32)
    return TF.horizontal_flip(cropped) if flip else cropped


def reference_to_tensor_normalize(image_chw: torch.Tensor) -> torch.Tensor:
    """The reference's ToTensor + Normalize, applied to the PIL image the dataset would hold."""
    pil = Image.fromarray(image_chw.permute(1, 2, 0).numpy())
    return T.Normalize(CIFAR10_MEAN, CIFAR10_STD)(T.ToTensor()(pil))


def test_crop_and_flip_equal_torchvision_image_by_image():
    images = random_images(40)
    generator = torch.Generator().manual_seed(1)
    offsets_y = torch.randint(0, 9, (40,), generator=generator)
    offsets_x = torch.randint(0, 9, (40,), generator=generator)
    offsets_y[:4], offsets_x[:4] = torch.tensor([0, 8, 0, 8]), torch.tensor([0, 8, 8, 0])  # the corners
    flips = torch.rand(40, generator=generator) < 0.5
    flips[:4] = torch.tensor([True, False, True, False])
    batch = random_crop_flip(images, offsets_y, offsets_x, flips)
    assert batch.dtype == torch.uint8 and batch.shape == images.shape
    for i in range(40):
        expected = reference_crop_flip(images[i], int(offsets_y[i]), int(offsets_x[i]), bool(flips[i]))
        assert torch.equal(batch[i], expected), i
    # Zero padding is in pixel space: a corner crop keeps 4 rows and 4 columns of exact zeros.
    assert batch[0, :, :4].eq(0).all() and batch[0, :, :, -4:].eq(0).all()  # top-left crop, mirrored


def test_centre_crop_without_flip_is_the_identity():
    images = random_images(5)
    centre = torch.full((5,), 4)
    assert torch.equal(random_crop_flip(images, centre, centre, torch.zeros(5, dtype=torch.bool)), images)


def test_normalize_equals_to_tensor_then_normalize():
    images = random_images(6)
    ours = normalize(images, MEAN, STD)
    assert ours.dtype == torch.float32
    for i in range(6):
        assert torch.equal(ours[i], reference_to_tensor_normalize(images[i]))  # the same float ops, bit for bit


def test_train_batches_equal_the_reference_pipeline_with_the_drawn_randomness():
    images, labels = random_images(50), torch.arange(50) % 10
    epoch = ImageBatcher(images, labels, 16, train=True, seed=3, device="cpu").epoch(2)
    x, y = epoch[1]
    for row in range(16):
        k = 16 + row  # position in the epoch
        index = int(epoch.order[k])
        augmented = reference_crop_flip(images[index], int(epoch.offsets_y[k]), int(epoch.offsets_x[k]),
                                        bool(epoch.flips[k]))
        assert torch.equal(x[row], reference_to_tensor_normalize(augmented))
        assert y[row] == labels[index]


def test_each_train_epoch_is_a_permutation_with_varied_augmentation():
    labels = torch.arange(2000)  # label = image index, to read the order back
    batcher = ImageBatcher(random_images(2000), labels, 128, train=True, seed=0, device="cpu")
    epoch = batcher.epoch(0)
    seen = torch.cat([y for _, y in epoch])
    assert torch.equal(seen, epoch.order)
    assert torch.equal(seen.sort().values, labels)
    assert not torch.equal(seen, labels)
    assert torch.unique(epoch.offsets_y).tolist() == list(range(9))
    assert torch.unique(epoch.offsets_x).tolist() == list(range(9))
    assert 0.45 < epoch.flips.float().mean() < 0.55


def test_batches_depend_on_seed_and_epoch_only():
    images, labels = random_images(300), torch.arange(300)
    first = ImageBatcher(images, labels, 64, train=True, seed=7, device="cpu")
    resumed = ImageBatcher(images, labels, 64, train=True, seed=7, device="cpu")  # as after a restart
    a, b = first.epoch(4), resumed.epoch(4)
    for i in reversed(range(len(a))):  # any access order, e.g. a trainer looking one batch ahead
        assert torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1])
    assert torch.equal(a[-1][0], a[len(a) - 1][0])
    assert not torch.equal(first.epoch(5).order, a.order)
    assert not torch.equal(ImageBatcher(images, labels, 64, train=True, seed=8).epoch(4).order, a.order)


def test_eval_batches_are_in_order_unaugmented_and_cover_the_set_once():
    images, labels = random_images(300), torch.arange(300) % 10
    epoch = ImageBatcher(images, labels, 128, train=False, seed=0, device="cpu").epoch(0)
    assert [len(y) for _, y in epoch] == [128, 128, 44]
    x = torch.cat([x for x, _ in epoch])
    assert torch.equal(torch.cat([y for _, y in epoch]), labels)
    assert torch.equal(x, normalize(images, MEAN, STD))


def test_last_partial_batch_is_kept():
    batcher = ImageBatcher(random_images(300), torch.zeros(300, dtype=torch.long), 128, train=True, seed=0)
    epoch = batcher.epoch(0)
    assert [len(y) for _, y in epoch] == [128, 128, 44]
    assert epoch[2][0].shape == (44, 3, 32, 32)
    with pytest.raises(IndexError, match="batch 3 out of range; this epoch has 3 batches"):
        epoch[3]
    # The reference's 50k training images in batches of 128: 391 batches (no copy: one image broadcast).
    one_image = torch.zeros(1, 3, 32, 32, dtype=torch.uint8).expand(50_000, 3, 32, 32)
    assert len(ImageBatcher(one_image, torch.zeros(50_000, dtype=torch.long), 128, train=True, seed=0)) == 391


def test_bad_inputs_are_rejected():
    images, labels = random_images(4), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"images must be uint8 \[N, 3, H, W\], got torch.float32"):
        ImageBatcher(images.float(), labels, 2, train=True, seed=0)
    with pytest.raises(ValueError, match="labels must be"):
        ImageBatcher(images, labels[:3], 2, train=True, seed=0)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        ImageBatcher(images, labels, 0, train=True, seed=0)
    with pytest.raises(ValueError, match="epoch must be an int >= 0, got -1"):
        ImageBatcher(images, labels, 2, train=True, seed=0).epoch(-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_batches_equal_cpu_batches():
    images, labels = random_images(300), torch.arange(300)
    cpu = ImageBatcher(images, labels, 128, train=True, seed=1, device="cpu").epoch(3)
    gpu = ImageBatcher(images, labels, 128, train=True, seed=1, device="cuda").epoch(3)
    for i in range(len(cpu)):
        assert gpu[i][0].device.type == "cuda"
        torch.testing.assert_close(gpu[i][0].cpu(), cpu[i][0], rtol=0, atol=1e-6)
        assert torch.equal(gpu[i][1].cpu(), cpu[i][1])
