"""Log-Sum-Exp (RGNet eq. 4) and global average pooling against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgraphs.models.layers.pooling import global_average_pool, lse_pool


def numpy_lse(y, r, mask=None):
  """Eq. 4 literally, in float64: (1/r) log(1/|valid| sum_valid exp(r y)) per (batch, channel)."""
  y = np.asarray(y, np.float64)
  valid = np.ones(y.shape[:-1], bool) if mask is None else np.asarray(mask)
  out = np.zeros((y.shape[0], y.shape[-1]))
  for b in range(y.shape[0]):
    for c in range(y.shape[-1]):
      values = y[b, ..., c][valid[b]]
      out[b, c] = np.log(np.mean(np.exp(r * values))) / r
  return out


def region_scores(seed=0, shape=(3, 9, 9, 2)):
  return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


def test_lse_matches_equation_4():
  y = region_scores()
  np.testing.assert_allclose(lse_pool(jnp.asarray(y), 4.0), numpy_lse(y, 4.0), rtol=1e-6, atol=1e-6)


def test_lse_with_mask_uses_only_valid_regions():
  y = region_scores(seed=1)
  mask = np.random.default_rng(1).random(y.shape[:-1]) > 0.5
  pooled = lse_pool(jnp.asarray(y), 4.0, mask=jnp.asarray(mask))
  np.testing.assert_allclose(pooled, numpy_lse(y, 4.0, mask), rtol=1e-6, atol=1e-6)
  garbage = np.where(mask[..., None], y, 1e3).astype(np.float32)
  np.testing.assert_allclose(lse_pool(jnp.asarray(garbage), 4.0, mask=jnp.asarray(mask)), pooled, rtol=1e-6)


def test_lse_small_r_is_the_mean():
  y = region_scores(seed=2)
  np.testing.assert_allclose(lse_pool(jnp.asarray(y), 1e-4), y.mean(axis=(1, 2)), rtol=1e-5, atol=1e-5)


def test_lse_large_r_is_the_max():
  y = region_scores(seed=3)
  r = 1e4
  pooled = np.asarray(lse_pool(jnp.asarray(y), r))
  maxima = y.max(axis=(1, 2))
  # max - log(HW)/r <= LSE <= max
  assert np.all(pooled <= maxima + 1e-6)
  assert np.all(pooled >= maxima - np.log(81) / r - 1e-6)


def test_lse_gradient_is_finite_and_sums_to_one_per_channel():
  y = jnp.asarray(region_scores(seed=4)) * 50.0
  for r in (1e-4, 4.0, 1e4):
    grad = jax.grad(lambda t: jnp.sum(lse_pool(t, r)))(y)
    assert np.all(np.isfinite(grad))
    # d LSE / d y_i = softmax(r y)_i: a distribution over regions for each (batch, channel)
    np.testing.assert_allclose(np.sum(grad, axis=(1, 2)), 1.0, rtol=1e-5)


def test_lse_rejects_non_positive_r():
  with pytest.raises(ValueError, match="r must be > 0"):
    lse_pool(jnp.zeros((1, 2, 2, 2)), 0.0)


def test_global_average_pool_with_and_without_mask():
  y = region_scores(seed=5, shape=(2, 4, 5, 3))
  np.testing.assert_allclose(global_average_pool(jnp.asarray(y)), y.mean(axis=(1, 2)), rtol=1e-6)
  mask = np.zeros((2, 4, 5), bool)
  mask[0, :2] = True
  mask[1, :, :1] = True
  expected = np.stack([y[0, :2].mean(axis=(0, 1)), y[1, :, :1].mean(axis=(0, 1))])
  np.testing.assert_allclose(global_average_pool(jnp.asarray(y), jnp.asarray(mask)), expected, rtol=1e-6)


def test_mask_of_wrong_shape_raises():
  with pytest.raises(ValueError, match="mask shape"):
    lse_pool(jnp.zeros((1, 3, 3, 2)), 4.0, mask=jnp.ones((1, 3, 3, 2), bool))
