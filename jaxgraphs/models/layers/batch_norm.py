"""Batch normalisation that matches torch.nn.BatchNorm2d, with a frozen mode for fine-tuning."""

from typing import Any

import jax.numpy as jnp
from flax import linen as nn
from jax import lax


class BatchNorm(nn.Module):
  """torch-compatible batch norm over all axes but the last; `frozen` uses running stats without updating them."""

  momentum: float = 0.1  # torch's convention: the weight of the new batch in the running average
  epsilon: float = 1e-5
  frozen: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    features = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (features,), self.param_dtype)
    bias = self.param("bias", nn.initializers.zeros, (features,), self.param_dtype)
    running_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((features,), jnp.float32))
    running_var = self.variable("batch_stats", "var", lambda: jnp.ones((features,), jnp.float32))

    if train and not self.frozen:
      mean, var = self._batch_moments(x)
      if not self.is_initializing():
        count = x.size // features
        # torch stores the unbiased variance in its running average but normalises with the biased one.
        unbiased_var = var * (count / (count - 1))
        running_mean.value = (1 - self.momentum) * running_mean.value + self.momentum * mean
        running_var.value = (1 - self.momentum) * running_var.value + self.momentum * unbiased_var
    else:
      mean, var = running_mean.value, running_var.value

    # One multiply-add per element; the per-channel factors are computed once in fp32.
    multiplier = scale.astype(jnp.float32) * lax.rsqrt(var + self.epsilon)
    offset = bias.astype(jnp.float32) - mean * multiplier
    return x.astype(self.dtype) * multiplier.astype(self.dtype) + offset.astype(self.dtype)

  def _batch_moments(self, x):
    """Mean and biased variance per channel, in fp32, over every axis but the last."""
    count = x.size // x.shape[-1]
    if count < 2 and not self.is_initializing():
      raise ValueError(
        f"BatchNorm {self.path!r}: train-mode statistics need more than one value per channel, got input "
        f"shape {x.shape}; use a larger batch or frozen batch norm."
      )
    axes = tuple(range(x.ndim - 1))
    x = x.astype(jnp.float32)
    mean = jnp.mean(x, axes)
    # Two passes (not E[x^2] - E[x]^2) so the variance stays accurate when |mean| >> std.
    var = jnp.mean(jnp.square(x - mean), axes)
    return mean, var
