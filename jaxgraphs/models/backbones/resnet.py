"""ResNet-18/34/50/101/152 in torchvision's layout, with DeepLab-style dilation for output stride 16 or 8.

Submodule names follow torchvision's state_dict keys with `.<index>` written `_<index>`
(`layer1.0.downsample.1.running_var` -> `layer1_0/downsample_1` batch_stats `var`), so converting
torchvision weights is a mechanical rename (the convert_torchvision tool).
"""

from typing import Any, Sequence

import jax.numpy as jnp
from flax import linen as nn

from jaxgraphs.models.backbones.common import check_output_stride, conv, global_average_pool, max_pool
from jaxgraphs.models.layers.batch_norm import BatchNorm

STAGES = ("layer1", "layer2", "layer3", "layer4")
# torchvision's replace_stride_with_dilation for layer2, layer3, layer4.
REPLACE_STRIDE_WITH_DILATION = {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}


class BasicBlock(nn.Module):
  """Two 3x3 convolutions and a shortcut; both convolutions take the block's dilation.

  torchvision refuses dilation in BasicBlock; here ResNet-18/34 dilate both 3x3 convolutions.
  """

  planes: int
  stride: int = 1
  dilation: int = 1
  downsample: bool = False
  frozen_bn: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  expansion = 1

  @nn.compact
  def __call__(self, x, train: bool = False):
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    norm = lambda name: BatchNorm(frozen=self.frozen_bn, name=name, **kw)
    y = conv(self.planes, 3, self.stride, self.dilation, name="conv1", **kw)(x)
    y = nn.relu(norm("bn1")(y, train))
    y = conv(self.planes, 3, 1, self.dilation, name="conv2", **kw)(y)
    y = norm("bn2")(y, train)
    if self.downsample:
      x = conv(self.planes, 1, self.stride, name="downsample_0", **kw)(x)
      x = norm("downsample_1")(x, train)
    return nn.relu(y + x.astype(y.dtype))


class Bottleneck(nn.Module):
  """1x1 reduce, 3x3 (carrying the stride and dilation, torchvision's ResNet v1.5), 1x1 expand, shortcut."""

  planes: int
  stride: int = 1
  dilation: int = 1
  downsample: bool = False
  frozen_bn: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  expansion = 4

  @nn.compact
  def __call__(self, x, train: bool = False):
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    norm = lambda name: BatchNorm(frozen=self.frozen_bn, name=name, **kw)
    y = conv(self.planes, 1, name="conv1", **kw)(x)
    y = nn.relu(norm("bn1")(y, train))
    y = conv(self.planes, 3, self.stride, self.dilation, name="conv2", **kw)(y)
    y = nn.relu(norm("bn2")(y, train))
    y = conv(self.planes * self.expansion, 1, name="conv3", **kw)(y)
    y = norm("bn3")(y, train)
    if self.downsample:
      x = conv(self.planes * self.expansion, 1, self.stride, name="downsample_0", **kw)(x)
      x = norm("downsample_1")(x, train)
    return nn.relu(y + x.astype(y.dtype))


ARCHITECTURES = {
  18: (BasicBlock, (2, 2, 2, 2)),
  34: (BasicBlock, (3, 4, 6, 3)),
  50: (Bottleneck, (3, 4, 6, 3)),
  101: (Bottleneck, (3, 4, 23, 3)),
  152: (Bottleneck, (3, 8, 36, 3)),
}


def stage_strides_and_dilations(output_stride: int, stage_sizes: Sequence[int]):
  """Per block (stride, dilation) for each stage, exactly as torchvision's _make_layer assigns them.

  A stage turned into dilation keeps the previous dilation in its first block and uses the new one after.
  """
  check_output_stride("ResNet", output_stride)
  dilate_flags = (False,) + REPLACE_STRIDE_WITH_DILATION[output_stride]
  dilation, plan = 1, []
  for index, (num_blocks, dilate) in enumerate(zip(stage_sizes, dilate_flags)):
    stride = 1 if index == 0 else 2
    previous_dilation = dilation
    if dilate:
      dilation *= stride
      stride = 1
    plan.append([(stride, previous_dilation)] + [(1, dilation)] * (num_blocks - 1))
  return plan


class ResNet(nn.Module):
  """torchvision ResNet returning every stage's feature map; `num_classes=None` is fully convolutional.

  Output keys: 'stem' (after the max-pool), 'layer1'..'layer4', 'feature_map' (= 'layer4'), and with
  num_classes also 'pre_logits' (global average pool) and 'logits'. `frozen_bn` is True (all batch norms
  use running statistics without updating them) or a tuple of stage names from ('stem', 'layer1', ...,
  'layer4') to freeze only those (SSGRL trains layer4 with live batch norm and freezes the rest).
  """

  depth: int
  width: int = 64
  output_stride: int = 32
  num_classes: int | None = None
  frozen_bn: bool | tuple[str, ...] = False
  stage_sizes: tuple[int, ...] | None = None
  remat: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def _is_frozen(self, stage):
    if isinstance(self.frozen_bn, bool):
      return self.frozen_bn
    unknown = set(self.frozen_bn) - {"stem", *STAGES}
    if unknown:
      raise ValueError(f"ResNet frozen_bn names unknown stages {sorted(unknown)}; valid: stem, {', '.join(STAGES)}")
    return stage in self.frozen_bn

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.depth not in ARCHITECTURES:
      raise ValueError(f"ResNet depth must be one of {sorted(ARCHITECTURES)}, got {self.depth}")
    block_cls, default_sizes = ARCHITECTURES[self.depth]
    expansion = block_cls.expansion
    stage_sizes = self.stage_sizes or default_sizes
    if len(stage_sizes) != 4:
      raise ValueError(f"ResNet stage_sizes needs 4 entries, got {stage_sizes}")
    if self.remat:
      # Keeps only block inputs for the backward pass; `train` (argument 2 after self, x) is static.
      block_cls = nn.remat(block_cls, static_argnums=(2,))
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)

    features = {}
    x = conv(self.width, 7, 2, name="conv1", **kw)(x)
    x = BatchNorm(frozen=self._is_frozen("stem"), name="bn1", **kw)(x, train)
    x = max_pool(nn.relu(x), 3, 2, padding=1)
    features["stem"] = x

    in_channels = self.width
    plan = stage_strides_and_dilations(self.output_stride, stage_sizes)
    for index, (stage, blocks) in enumerate(zip(STAGES, plan)):
      planes = self.width * 2**index
      for block_index, (stride, dilation) in enumerate(blocks):
        downsample = block_index == 0 and (stride != 1 or in_channels != planes * expansion)
        x = block_cls(
          planes, stride, dilation, downsample, frozen_bn=self._is_frozen(stage), name=f"{stage}_{block_index}", **kw
        )(x, train)
        in_channels = planes * expansion
      features[stage] = x
    features["feature_map"] = x

    if self.num_classes is not None:
      features["pre_logits"] = global_average_pool(x, self.dtype)
      features["logits"] = nn.Dense(self.num_classes, name="fc", **kw)(features["pre_logits"])
    return features
