"""VGG-11/13/16/19 with and without batch norm in torchvision's layout, fully convolutional at stride 32/16/8.

Parameters are named as torchvision's state_dict: `features_<index>` for the convolutions (and batch
norms) at their index in torchvision's `features` Sequential, `classifier_0/3/6` for fc6, fc7 and fc8.
classifier_0 keeps its kernel as (7, 7, C, 4096), so the same weights serve three uses:
  * the classifier (AdaptiveAvgPool(7) -> fc6 -> fc7 -> fc8), as torchvision's vgg16 / vgg16_bn;
  * `fc_head` on RoI features of shape (..., 7, 7, C): the 4096-d fc7 representation (LinkNet);
  * with `fc_as_conv`, fc6 as a 7x7 convolution (dilated by 32 / output_stride, DeepLab's choice of keeping
    fc6's field of view) and fc7 as a 1x1 convolution over the whole map.
Below output stride 32 the last one or two max-pools become 3x3 stride-1 pools (DeepLab-LargeFOV) and the
convolutions after each of them are dilated by 2 (then 4).
"""

from typing import Any

import jax.numpy as jnp
from flax import linen as nn
from jax import lax

from jaxgraphs.models.backbones.common import adaptive_average_pool, check_output_stride, conv, max_pool
from jaxgraphs.models.layers.batch_norm import BatchNorm

# depth: convolutions per block, as torchvision's cfgs "A", "B", "D", "E".
ARCHITECTURES = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
BLOCK_WIDTHS = (64, 128, 256, 512, 512)
# output_stride: how many of the five max-pools subsample.
SUBSAMPLING_POOLS = {32: 5, 16: 4, 8: 3}


class FullyConnected7x7(nn.Module):
  """fc6: a Linear over a 7x7xC window, applied to 7x7 inputs or as a (dilated) 7x7 convolution over a map."""

  features: int
  window: int = 7
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, dilation: int | None = None):
    """With dilation None, x is (..., 7, 7, C) -> (..., features); else a 'same' convolution over NHWC maps."""
    kernel = self.param(
      "kernel", nn.initializers.normal(0.01), (self.window, self.window, x.shape[-1], self.features), self.param_dtype
    )
    bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
    x, kernel, bias = x.astype(self.dtype), kernel.astype(self.dtype), bias.astype(self.dtype)
    if dilation is None:
      if x.shape[-3:-1] != (self.window, self.window):
        raise ValueError(f"VGG fc6 as a dense layer needs (..., {self.window}, {self.window}, C) inputs, got {x.shape}")
      return jnp.einsum("...hwc,hwcf->...f", x, kernel) + bias
    pad = dilation * (self.window - 1) // 2
    y = lax.conv_general_dilated(
      x,
      kernel,
      (1, 1),
      ((pad, pad), (pad, pad)),
      rhs_dilation=(dilation, dilation),
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return y + bias


class VGG(nn.Module):
  """torchvision VGG returning every block's map; `num_classes=None` is fully convolutional.

  Output keys: 'block1'..'block5' (after each block's last ReLU, before its max-pool: conv1_2 ... conv5_3),
  'pool5', then 'fc6', 'fc7' when the fc layers run (classifier form, or fc_as_conv), 'feature_map' (fc7
  with fc_as_conv, else pool5) and with num_classes 'pre_logits' (= fc7) and 'logits'. `fc_head` maps RoI
  features (..., 7, 7, C) to fc7. `width`, `fc_width` and `stage_sizes` shrink the network for tests.
  """

  depth: int = 16
  batch_norm: bool = False
  output_stride: int = 32
  num_classes: int | None = None
  fc_as_conv: bool = False
  frozen_bn: bool = False
  dropout_rate: float = 0.5
  width: int = 64
  fc_width: int = 4096
  stage_sizes: tuple[int, ...] | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def setup(self):
    if self.depth not in ARCHITECTURES:
      raise ValueError(f"VGG depth must be one of {sorted(ARCHITECTURES)}, got {self.depth}")
    check_output_stride("VGG", self.output_stride)
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    stage_sizes = self.stage_sizes or ARCHITECTURES[self.depth]
    # Module indices follow torchvision's make_layers: conv, [bn], relu per convolution; one max-pool per block.
    features, plan, index = {}, [], 0
    for block, num_convs in enumerate(stage_sizes):
      dilation = 2 ** max(0, block - SUBSAMPLING_POOLS[self.output_stride])  # 2 after one stride-1 pool, 4 after two
      channels = BLOCK_WIDTHS[block] * self.width // 64
      conv_indices = []
      for _ in range(num_convs):
        features[index] = conv(channels, 3, 1, dilation, use_bias=True, name=None, **kw)
        if self.batch_norm:
          features[index + 1] = BatchNorm(frozen=self.frozen_bn, **kw)
        conv_indices.append(index)
        index += 3 if self.batch_norm else 2
      plan.append(tuple(conv_indices))
      index += 1  # the max-pool
    self.features = features
    self.plan = tuple(plan)
    self.classifier = {
      0: FullyConnected7x7(self.fc_width, **kw),
      3: nn.Dense(self.fc_width, kernel_init=nn.initializers.normal(0.01), **kw),
      **(
        {6: nn.Dense(self.num_classes, kernel_init=nn.initializers.normal(0.01), **kw)}
        if self.num_classes is not None
        else {}
      ),
    }
    self.dropout = nn.Dropout(self.dropout_rate)

  def __call__(self, x, train: bool = False):
    input_shape, outputs = x.shape, {}
    for block, conv_indices in enumerate(self.plan):
      for index in conv_indices:
        x = self.features[index](x)
        if self.batch_norm:
          x = self.features[index + 1](x, train)
        x = nn.relu(x)
      outputs[f"block{block + 1}"] = x
      if block < SUBSAMPLING_POOLS[self.output_stride]:
        x = max_pool(x, 2, 2)
      else:
        x = max_pool(x, 3, 1, padding=1)
    if 0 in x.shape[-3:-1]:
      raise ValueError(f"VGG input {input_shape} is too small: nothing is left after the max-pools")
    outputs["pool5"] = outputs["feature_map"] = x

    if self.num_classes is not None:
      pooled = adaptive_average_pool(x, 7).astype(self.dtype)
      outputs["fc6"] = self.dropout(nn.relu(self.classifier[0](pooled)), deterministic=not train)
      outputs["fc7"] = outputs["pre_logits"] = self.fc7(outputs["fc6"], train)
      outputs["logits"] = self.classifier[6](outputs["fc7"])
    elif self.fc_as_conv:
      fc6_dilation = 32 // self.output_stride
      outputs["fc6"] = self.dropout(nn.relu(self.classifier[0](x, fc6_dilation)), deterministic=not train)
      outputs["fc7"] = outputs["feature_map"] = self.fc7(outputs["fc6"], train)
    return outputs

  def fc_head(self, rois, train: bool = False):
    """fc7 features (..., 4096) of RoI-pooled features (..., 7, 7, C): fc6-ReLU-dropout-fc7-ReLU-dropout."""
    x = self.dropout(nn.relu(self.classifier[0](rois)), deterministic=not train)
    return self.fc7(x, train)

  def fc7(self, x, train: bool):
    """fc7-ReLU-dropout on fc6's output, of any leading shape (a 1x1 convolution on maps)."""
    return self.dropout(nn.relu(self.classifier[3](x)), deterministic=not train)
