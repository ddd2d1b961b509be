"""CIFAR-10 classifiers of PROTOCOL.md §1, built by name."""
from torch import nn

from adala_bench.models.densenet import densenet121
from adala_bench.models.resnet import resnet34
from adala_bench.models.vgg import vgg11

_BUILDERS = {"vgg11": vgg11, "resnet34": resnet34, "densenet121": densenet121}
CIFAR_MODELS = tuple(_BUILDERS)


def build_model(name: str, num_classes: int = 10, width: float = 1.0) -> nn.Module:
    """The named CIFAR-10 model; `width` < 1 shrinks every channel count (1.0 is the reference architecture).

    Seeding is the caller's: call torch.manual_seed before this to fix the initial weights.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(CIFAR_MODELS)}")
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width!r}")
    if not (isinstance(num_classes, int) and num_classes >= 1):
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return _BUILDERS[name](num_classes=num_classes, width=width)


__all__ = ["CIFAR_MODELS", "build_model", "densenet121", "resnet34", "vgg11"]
