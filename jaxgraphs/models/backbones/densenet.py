"""DenseNet-121/161/169/201 in torchvision's layout, fully convolutional at output stride 32, 16 or 8.

Parameters live under `features/...` and `classifier` exactly as torchvision's state_dict
(`features.denseblock3.denselayer5.conv2.weight` -> `features/denseblock3/denselayer5/conv2/kernel`).
At output stride 8 (RGNet) the average pooling of transition2 and transition3 is removed and dense
blocks 3 and 4 use dilation 2 and 4 in their 3x3 convolutions: a 300x300 input gives a 37x37 map.
"""

from typing import Any

import jax.numpy as jnp
from flax import linen as nn

from jaxgraphs.models.backbones.common import average_pool_2x2, check_output_stride, conv, global_average_pool, max_pool
from jaxgraphs.models.layers.batch_norm import BatchNorm

# depth: (growth_rate, block_config, num_init_features), as torchvision.models.densenetXXX.
ARCHITECTURES = {
  121: (32, (6, 12, 24, 16), 64),
  161: (48, (6, 12, 36, 24), 96),
  169: (32, (6, 12, 32, 32), 64),
  201: (32, (6, 12, 48, 32), 64),
}
# output_stride: (transitions that keep their pooling, dilation of blocks 1-4).
STRIDE_PLANS = {
  32: ((True, True, True), (1, 1, 1, 1)),
  16: ((True, True, False), (1, 1, 1, 2)),
  8: ((True, False, False), (1, 1, 2, 4)),
}


class DenseLayer(nn.Module):
  """BN-ReLU-1x1 conv (bn_size * growth) - BN-ReLU-3x3 conv (growth) on the concatenation of all earlier maps.

  It takes the earlier maps as a tuple and concatenates them itself, so under remat only the individual
  maps are kept for the backward pass, as torchvision's memory_efficient DenseNet does.
  """

  growth_rate: int
  bn_size: int = 4
  dilation: int = 1
  drop_rate: float = 0.0
  frozen_bn: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs: tuple, train: bool = False):
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = jnp.concatenate(inputs, axis=-1)
    x = nn.relu(BatchNorm(frozen=self.frozen_bn, name="norm1", **kw)(x, train))
    x = conv(self.bn_size * self.growth_rate, 1, name="conv1", **kw)(x)
    x = nn.relu(BatchNorm(frozen=self.frozen_bn, name="norm2", **kw)(x, train))
    x = conv(self.growth_rate, 3, 1, self.dilation, name="conv2", **kw)(x)
    if self.drop_rate > 0:
      x = nn.Dropout(self.drop_rate, deterministic=not train)(x)
    return x


class DenseBlock(nn.Module):
  """`num_layers` dense layers, each adding `growth_rate` channels; returns the concatenation of all maps."""

  num_layers: int
  growth_rate: int
  bn_size: int = 4
  dilation: int = 1
  drop_rate: float = 0.0
  frozen_bn: bool = False
  remat: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    layer_cls = nn.remat(DenseLayer, static_argnums=(2,)) if self.remat else DenseLayer
    maps = (x,)
    for index in range(self.num_layers):
      maps += (
        layer_cls(
          self.growth_rate,
          self.bn_size,
          self.dilation,
          self.drop_rate,
          self.frozen_bn,
          self.dtype,
          self.param_dtype,
          name=f"denselayer{index + 1}",
        )(maps, train),
      )
    return jnp.concatenate(maps, axis=-1)


class Transition(nn.Module):
  """BN-ReLU-1x1 conv halving the channels, then 2x2 average pooling unless the stride became dilation."""

  features: int
  pool: bool = True
  frozen_bn: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = nn.relu(BatchNorm(frozen=self.frozen_bn, name="norm", **kw)(x, train))
    x = conv(self.features, 1, name="conv", **kw)(x)
    return average_pool_2x2(x) if self.pool else x


class DenseNetFeatures(nn.Module):
  """torchvision's `DenseNet.features`: stem, four dense blocks with transitions, final norm5 (+ ReLU)."""

  growth_rate: int
  block_config: tuple[int, ...]
  num_init_features: int
  bn_size: int = 4
  drop_rate: float = 0.0
  output_stride: int = 32
  frozen_bn: bool = False
  remat: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    check_output_stride("DenseNet", self.output_stride)
    keep_pooling, dilations = STRIDE_PLANS[self.output_stride]
    outputs = {}
    x = conv(self.num_init_features, 7, 2, name="conv0", **kw)(x)
    x = nn.relu(BatchNorm(frozen=self.frozen_bn, name="norm0", **kw)(x, train))
    x = max_pool(x, 3, 2, padding=1)
    outputs["stem"] = x

    num_features = self.num_init_features
    for block, num_layers in enumerate(self.block_config):
      x = DenseBlock(
        num_layers,
        self.growth_rate,
        self.bn_size,
        dilations[block],
        self.drop_rate,
        self.frozen_bn,
        self.remat,
        name=f"denseblock{block + 1}",
        **kw,
      )(x, train)
      num_features += num_layers * self.growth_rate
      outputs[f"denseblock{block + 1}"] = x
      if block < len(self.block_config) - 1:
        num_features //= 2
        x = Transition(
          num_features, keep_pooling[block], frozen_bn=self.frozen_bn, name=f"transition{block + 1}", **kw
        )(x, train)
        outputs[f"transition{block + 1}"] = x

    # torchvision applies the ReLU after norm5 in DenseNet.forward; every head wants it too.
    outputs["feature_map"] = nn.relu(BatchNorm(frozen=self.frozen_bn, name="norm5", **kw)(x, train))
    return outputs


class DenseNet(nn.Module):
  """torchvision DenseNet returning every stage's map; `num_classes=None` is fully convolutional.

  Output keys: 'stem' (after pool0), 'denseblock1'..'denseblock4', 'transition1'..'transition3',
  'feature_map' (ReLU(norm5(denseblock4)), 1024 channels for DenseNet-121), and with num_classes also
  'pre_logits' (global average pool) and 'logits'. growth_rate/block_config/num_init_features override the
  depth's values (tiny test networks). remat recomputes each dense layer in the backward pass.
  """

  depth: int = 121
  output_stride: int = 32
  num_classes: int | None = None
  frozen_bn: bool = False
  remat: bool = False
  growth_rate: int | None = None
  block_config: tuple[int, ...] | None = None
  num_init_features: int | None = None
  bn_size: int = 4
  drop_rate: float = 0.0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.depth not in ARCHITECTURES:
      raise ValueError(f"DenseNet depth must be one of {sorted(ARCHITECTURES)}, got {self.depth}")
    growth_rate, block_config, num_init_features = ARCHITECTURES[self.depth]
    outputs = DenseNetFeatures(
      growth_rate=self.growth_rate or growth_rate,
      block_config=self.block_config or block_config,
      num_init_features=self.num_init_features or num_init_features,
      bn_size=self.bn_size,
      drop_rate=self.drop_rate,
      output_stride=self.output_stride,
      frozen_bn=self.frozen_bn,
      remat=self.remat,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="features",
    )(x, train)
    if self.num_classes is not None:
      outputs["pre_logits"] = global_average_pool(outputs["feature_map"], self.dtype)
      outputs["logits"] = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype, name="classifier")(
        outputs["pre_logits"]
      )
    return outputs
