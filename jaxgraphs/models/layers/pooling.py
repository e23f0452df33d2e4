"""Spatial pooling used by the heads: Log-Sum-Exp (RGNet eq. 4) and global average pooling."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

SPATIAL_AXES = (1, 2)  # NHWC


def _valid_mask(x, mask):
  """Broadcasts a spatial mask (mask has x's shape without the channel axis) against x."""
  if mask is None:
    return jnp.ones(x.shape, bool)
  if mask.shape != x.shape[:-1]:
    raise ValueError(f"pooling: mask shape {mask.shape} must equal the input shape without channels {x.shape[:-1]}")
  return jnp.broadcast_to(mask[..., None], x.shape).astype(bool)


def lse_pool(x, r: float = 4.0, mask=None, axis: Sequence[int] = SPATIAL_AXES):
  """Log-Sum-Exp pooling y = (1/r) log(mean_i exp(r x_i)) over `axis` (mean over valid positions).

  Written as y = m + (1/r) log1p(mean(expm1(r (x - m)))) with m the (valid) max, which is
  exact and stays accurate at both limits: r -> 0 gives the mean, r -> inf the max.
  A slice with no valid position pools to 0.
  """
  if r <= 0:
    raise ValueError(f"lse_pool: r must be > 0 (r -> 0 is average pooling); got r={r}")
  axis = tuple(axis)
  valid = _valid_mask(x, mask)
  compute_dtype = jnp.promote_types(x.dtype, jnp.float32)
  x = x.astype(compute_dtype)
  # The result does not depend on m, so its gradient is cut as in logsumexp.
  row_max = jax.lax.stop_gradient(jnp.max(jnp.where(valid, x, -jnp.inf), axis=axis, keepdims=True))
  row_max = jnp.where(jnp.isfinite(row_max), row_max, 0.0)
  shifted = jnp.where(valid, jnp.expm1(r * (x - row_max)), 0.0)
  count = jnp.maximum(jnp.sum(valid, axis=axis, keepdims=True), 1)
  pooled = row_max + jnp.log1p(jnp.sum(shifted, axis=axis, keepdims=True) / count) / r
  return jnp.squeeze(pooled, axis=axis)


def global_average_pool(x, mask=None, axis: Sequence[int] = SPATIAL_AXES):
  """Mean over `axis` (spatial by default), counting only valid positions when a mask is given."""
  axis = tuple(axis)
  valid = _valid_mask(x, mask)
  total = jnp.sum(jnp.where(valid, x, 0), axis=axis)
  count = jnp.maximum(jnp.sum(valid, axis=axis), 1)
  return total / count.astype(total.dtype)
