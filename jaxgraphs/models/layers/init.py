"""PyTorch's default initialisation, for layers ported from PyTorch code (SSGRL's heads)."""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def torch_uniform(fan_in: int):
  """Initializer drawing from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), torch.nn.Linear's default for weight and bias."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)

  return init


class TorchLinear(nn.Module):
  """y = x @ kernel + bias with torch.nn.Linear's default init; `kernel` (in, out) and `bias` are readable attributes."""

  in_features: int
  out_features: int
  use_bias: bool = True
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def setup(self):
    # Fan-in is an attribute (not read from the input) so a parent can read the weights without calling the layer.
    self.kernel = self.param(
      "kernel", torch_uniform(self.in_features), (self.in_features, self.out_features), self.param_dtype
    )
    self.bias = (
      self.param("bias", torch_uniform(self.in_features), (self.out_features,), self.param_dtype)
      if self.use_bias
      else None
    )

  def __call__(self, x):
    if x.shape[-1] != self.in_features:
      raise ValueError(f"{self.name}: expected inputs with last dimension {self.in_features}, got shape {x.shape}")
    y = jnp.dot(x.astype(self.dtype), self.kernel.astype(self.dtype))
    if self.bias is not None:
      y = y + self.bias.astype(self.dtype)
    return y
