"""Full-size backbones vs torchvision with random weights (needs torch; skipped otherwise)."""

import importlib

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="comparing with torchvision needs PyTorch (optional, not in CI)")
torchvision = pytest.importorskip("torchvision", reason="comparing with torchvision needs torchvision")

# pylint: disable=wrong-import-position
from jaxgraphs.models.backbones import build_backbone  # noqa: E402
from jaxgraphs.tools.convert_torchvision import convert_state_dict  # noqa: E402

pytestmark = pytest.mark.torch


def _load_generator():
  """The fixture generator module: its randomise / *_outputs / dilate_* helpers build the torch references."""
  return importlib.import_module("fixtures.make_backbone_fixtures")  # tests/ is on sys.path (conftest.py)


generator = _load_generator()
models = torchvision.models


CASES = {
  # name: (torch constructor, outputs function, Flax backbone name, Flax attributes)
  "resnet18": (lambda: models.resnet18(), generator.resnet_outputs, "resnet18", {}),
  "resnet34": (lambda: models.resnet34(), generator.resnet_outputs, "resnet34", {}),
  "resnet50": (lambda: models.resnet50(), generator.resnet_outputs, "resnet50", {}),
  "resnet50_os8": (
    lambda: models.resnet50(replace_stride_with_dilation=[False, True, True]),
    generator.resnet_outputs,
    "resnet50",
    {"output_stride": 8},
  ),
  "resnet101_os16": (
    lambda: models.resnet101(replace_stride_with_dilation=[False, False, True]),
    generator.resnet_outputs,
    "resnet101",
    {"output_stride": 16},
  ),
  "resnet152": (lambda: models.resnet152(), generator.resnet_outputs, "resnet152", {}),
  "densenet121": (lambda: models.densenet121(), generator.densenet_outputs, "densenet121", {}),
  "densenet121_os8": (
    lambda: generator.dilate_densenet(models.densenet121(), 8),
    generator.densenet_outputs,
    "densenet121",
    {"output_stride": 8},
  ),
  "densenet169": (lambda: models.densenet169(), generator.densenet_outputs, "densenet169", {}),
  "densenet201": (lambda: models.densenet201(), generator.densenet_outputs, "densenet201", {}),
  "vgg16": (lambda: models.vgg16(), generator.vgg_outputs, "vgg16", {}),
  "vgg16_bn": (lambda: models.vgg16_bn(), generator.vgg_outputs, "vgg16_bn", {}),
  "vgg16_bn_os8_fc_as_conv": (
    lambda: generator.dilate_vgg(models.vgg16_bn()),
    lambda model, x: generator.vgg_outputs(model, x, fc_as_conv_dilation=4),
    "vgg16_bn",
    {"output_stride": 8, "fc_as_conv": True},
  ),
}


# Cases of more than ~5 s on two CPU cores (VGG's 138M parameters, the deep DenseNets) are also marked slow.
SLOW = {"densenet169", "densenet201", "vgg16", "vgg16_bn", "vgg16_bn_os8_fc_as_conv"}


@pytest.mark.parametrize(
  "case", [pytest.param(case, marks=pytest.mark.slow) if case in SLOW else case for case in CASES]
)
def test_full_size_backbone_matches_torchvision(case):
  make_torch, outputs_fn, name, kwargs = CASES[case]
  torch.manual_seed(0)
  model = generator.randomise(make_torch(), seed=0).eval()
  x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
  with torch.no_grad():
    expected = {key: value.numpy() for key, value in outputs_fn(model, x).items()}
  variables = convert_state_dict(model.state_dict(), name)
  if kwargs.get("fc_as_conv"):
    variables["params"].pop("classifier_6")
  else:
    kwargs = dict(kwargs, num_classes=1000)
  flax_model = build_backbone(name, **kwargs)
  outputs = jax.jit(flax_model.apply)(variables, x.numpy().transpose(0, 2, 3, 1))
  for key, value in expected.items():
    value = value.transpose(0, 2, 3, 1) if value.ndim == 4 else value
    error = np.abs(np.asarray(outputs[key]) - value).max() / np.abs(value).max()
    assert error <= 1e-4, (key, error)
