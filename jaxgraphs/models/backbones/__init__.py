"""Backbones in torchvision's layout, built by name with `build_backbone`."""

import functools

from jaxgraphs.errors import ConfigError

from jaxgraphs.models.backbones.densenet import DenseNet
from jaxgraphs.models.backbones.resnet import ResNet
from jaxgraphs.models.backbones.vgg import VGG

BACKBONES = {
  **{f"resnet{depth}": functools.partial(ResNet, depth=depth) for depth in (18, 34, 50, 101, 152)},
  **{f"densenet{depth}": functools.partial(DenseNet, depth=depth) for depth in (121, 161, 169, 201)},
  **{f"vgg{depth}": functools.partial(VGG, depth=depth) for depth in (11, 13, 16, 19)},
  **{f"vgg{depth}_bn": functools.partial(VGG, depth=depth, batch_norm=True) for depth in (11, 13, 16, 19)},
}


def build_backbone(name: str, **kwargs):
  """The backbone registered as `name` (e.g. 'resnet101', 'densenet121', 'vgg16_bn') with `kwargs` as attributes."""
  if name not in BACKBONES:
    raise ConfigError(f"config.model.backbone={name!r} is not a known backbone; valid names: {', '.join(BACKBONES)}")
  return BACKBONES[name](**kwargs)
