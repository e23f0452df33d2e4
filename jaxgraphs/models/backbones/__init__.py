"""Backbones in torchvision's layout, built by name with `build_backbone`."""

import functools

from jaxgraphs.models.backbones.resnet import ResNet

BACKBONES = {
    "resnet18": functools.partial(ResNet, depth=18),
    "resnet34": functools.partial(ResNet, depth=34),
    "resnet50": functools.partial(ResNet, depth=50),
    "resnet101": functools.partial(ResNet, depth=101),
    "resnet152": functools.partial(ResNet, depth=152),
}


def build_backbone(name: str, **kwargs):
  """The backbone module registered as `name` (e.g. 'resnet101'), built with `kwargs` as its attributes."""
  if name not in BACKBONES:
    raise ValueError(f'unknown backbone {name!r}; valid names: {", ".join(BACKBONES)}')
  return BACKBONES[name](**kwargs)
