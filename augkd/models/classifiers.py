"""Classifier zoo: small CNNs for the built-in benchmark and torchvision models by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from augkd.basics.architectures import TORCHVISION
from augkd.basics.errors import ModelError
from augkd.models.layout import fast_layout

if TYPE_CHECKING:
    from augkd.basics.config import StudentConfig


def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class SmallCNN(nn.Module):
    """A few conv-BN-ReLU stages and global pooling. BatchNorm matters: Module 1
    matches the teacher's running statistics."""

    def __init__(self, num_classes: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for i, width in enumerate(widths):
            layers += _conv_block(c_in, width)
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            c_in = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _adapt_stem_to_small_inputs(model: nn.Module) -> None:
    """Drop the early downsampling of ImageNet stems so 16-32 px inputs keep spatial size."""
    if hasattr(model, "maxpool"):
        model.maxpool = nn.Identity()
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
            module.stride = (1, 1)
            break


def _torchvision(name: str) -> Callable[[int, bool, bool], nn.Module]:
    def build(num_classes: int, pretrained: bool, small_input: bool) -> nn.Module:
        import torchvision

        builder = getattr(torchvision.models, name)
        if pretrained:
            model = builder(weights=None)
            model.load_state_dict(local_pretrained_weights(name))
            _replace_head(model, num_classes)
        else:
            model = builder(num_classes=num_classes)
        if small_input:
            _adapt_stem_to_small_inputs(model)
        return model

    return build


def local_pretrained_weights(name: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights for ``name`` from its local cache, loaded safely.

    Nothing is downloaded (a cluster node or this machine may have no internet): the file
    torchvision would fetch must already be in TORCH_HOME/hub/checkpoints."""
    import os
    from urllib.parse import urlparse

    import torchvision

    url = torchvision.models.get_model_weights(name).DEFAULT.url
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))
    if not os.path.isfile(path):
        raise ModelError(
            f"ImageNet weights for '{name}' are not in torchvision's local cache ('{path}'); copy "
            f"them there from {url}, or set teacher.pretrained / student.pretrained to false."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ModelError(
            f"ImageNet weights '{path}' could not be loaded safely ({error}); replace the file."
        ) from None


def _replace_head(model: nn.Module, num_classes: int) -> None:
    if hasattr(model, "fc"):
        model.fc = nn.Linear(model.fc.in_features, num_classes)
        return
    head = model.classifier
    last = head[-1] if isinstance(head, nn.Sequential) else head
    replacement = nn.Linear(last.in_features, num_classes)
    if isinstance(head, nn.Sequential):
        head[-1] = replacement
    else:
        model.classifier = replacement


CLASSIFIERS: dict[str, Callable[[int, bool, bool], nn.Module]] = {
    "small_cnn": lambda n, _p, _s: SmallCNN(n, (32, 64, 128)),
    "tiny_cnn": lambda n, _p, _s: SmallCNN(n, (16, 32, 64)),
    **{name: _torchvision(name) for name in TORCHVISION},
}
"""One builder per name of augkd.basics.architectures.ARCHITECTURES, in its order."""


def build_classifier(
    arch: str, num_classes: int, pretrained: bool = False, small_input: bool = True
) -> nn.Module:
    if arch not in CLASSIFIERS:
        raise ModelError(
            f"Unknown architecture '{arch}'; choose one of: {', '.join(sorted(CLASSIFIERS))}."
        )
    return fast_layout(CLASSIFIERS[arch](num_classes, pretrained, small_input))


def build_student(
    settings: StudentConfig, num_classes: int, pretrained: bool | None = None
) -> nn.Module:
    """The configured student; ``pretrained=False`` skips fetching weights about to be
    replaced (a checkpoint's)."""
    use_pretrained = settings.pretrained if pretrained is None else pretrained
    return build_classifier(settings.arch, num_classes, use_pretrained, settings.small_input)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
