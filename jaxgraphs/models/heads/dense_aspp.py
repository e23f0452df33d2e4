"""DenseASPP as used by RGNet (Sec. 3.1, Fig. 4), following the DenseASPP authors' code.

Block(r): [BN]-ReLU-1x1 conv(-> inter)-BN-ReLU-3x3 conv(dilation r, padding r, -> out)-dropout.
Cascade: feature = concat(block_r(feature), feature) for r in rates, so the output has
d + len(rates) * out channels (d' = d + 4 * 64 in the paper).

As in that code, the first block has no leading BN (the backbone ends with its own BN,
DenseNet's norm5; `first_block_norm=True` adds one), the convolutions have biases, and the
dropout is channel-wise (torch's Dropout2d: whole feature maps are dropped). That code sets
BN momentum 3e-4 (torch convention); RGNet does not say, so the default is torch's 0.1
(docs/paper_details.md, RGNet network).

That code's DenseNet-121 also ends with a transition after dense block 4: BN-ReLU-1x1 conv (1024 -> 512, no
bias, randomly initialised) and its final BN on the 512 channels. `DenseASPPTransition` is that layer on
torchvision's DenseNet output ReLU(norm5(block 4)), whose norm5 stands in for the transition's BN:
1x1 conv -> BN -> ReLU (the ReLU keeps the head's input non-negative, as without the transition). RGNet's
text (d' = d + 4 * 64, d the backbone's channels) does not have it, so RGNet uses it only on request
(`config.model.transition_features=512`).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxgraphs.models.layers.batch_norm import BatchNorm

Dtype = Any


def batch_norm(momentum: float, dtype: Dtype, param_dtype: Dtype, name: str) -> nn.Module:
  """The project's torch-matching BatchNorm (momentum in torch's convention)."""
  return BatchNorm(momentum=momentum, dtype=dtype, param_dtype=param_dtype, name=name)


class DenseASPPBlock(nn.Module):
  """One atrous block: [BN]-ReLU-1x1 conv-BN-ReLU-3x3 dilated conv-channel dropout; returns (B, H, W, out)."""

  dilation: int
  inter_features: int = 128
  out_features: int = 64
  dropout_rate: float = 0.1
  leading_norm: bool = True
  bn_momentum: float = 0.1
  kernel_init: Any = nn.initializers.he_normal()
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def _conv(self, features: int, kernel: int, dilation: int, name: str) -> nn.Conv:
    """A biased 'same' conv; padding = dilation for the 3x3 keeps H x W."""
    padding = dilation * (kernel // 2)
    return nn.Conv(
      features,
      (kernel, kernel),
      kernel_dilation=(dilation, dilation),
      padding=((padding, padding), (padding, padding)),
      kernel_init=self.kernel_init,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name=name,
    )

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Applies the block to an NHWC map."""
    if self.leading_norm:
      x = batch_norm(self.bn_momentum, self.dtype, self.param_dtype, "norm_1")(x, train=train)
    x = nn.relu(x)
    x = self._conv(self.inter_features, 1, 1, "conv_1")(x)
    x = batch_norm(self.bn_momentum, self.dtype, self.param_dtype, "norm_2")(x, train=train)
    x = nn.relu(x)
    x = self._conv(self.out_features, 3, self.dilation, "conv_2")(x)
    # broadcast over H and W: drops whole channels like torch's Dropout2d.
    return nn.Dropout(self.dropout_rate, broadcast_dims=(1, 2))(x, deterministic=not train)


class DenseASPPTransition(nn.Module):
  """The DenseASPP code's transition after DenseNet block 4 on a ReLU(BN) map: 1x1 conv (no bias) -> BN -> ReLU."""

  features: int = 512
  bn_momentum: float = 0.1
  kernel_init: Any = nn.initializers.he_normal()
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Maps an NHWC map (B, H, W, d) to (B, H, W, features)."""
    x = nn.Conv(
      self.features,
      (1, 1),
      use_bias=False,
      kernel_init=self.kernel_init,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="conv",
    )(x.astype(self.dtype))
    return nn.relu(batch_norm(self.bn_momentum, self.dtype, self.param_dtype, "norm")(x, train=train))


class DenseASPP(nn.Module):
  """Cascade of DenseASPPBlocks, feature = concat(block_r(feature), feature); out: d + len(rates) * out_features."""

  rates: Sequence[int] = (3, 6, 12, 18)
  inter_features: int = 128
  out_features: int = 64
  dropout_rate: float = 0.1
  first_block_norm: bool = False
  bn_momentum: float = 0.1
  kernel_init: Any = nn.initializers.he_normal()
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Applies the cascade to an NHWC map (B, H, W, d)."""
    if not self.rates:
      raise ValueError("DenseASPP: rates must name at least one dilation rate")
    feature = x.astype(self.dtype)
    for index, rate in enumerate(self.rates):
      block = DenseASPPBlock(
        dilation=rate,
        inter_features=self.inter_features,
        out_features=self.out_features,
        dropout_rate=self.dropout_rate,
        leading_norm=self.first_block_norm or index > 0,
        bn_momentum=self.bn_momentum,
        kernel_init=self.kernel_init,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name=f"block_{index}_rate_{rate}",
      )
      feature = jnp.concatenate([block(feature, train=train), feature], axis=-1)
    return feature
