"""DenseASPP: one block against a NumPy transcription of the DenseASPP code, and the cascade's layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgraphs.models.heads.dense_aspp import DenseASPP, DenseASPPBlock

EPS = 1e-5


def numpy_conv(x, kernel, bias, dilation):
  """'Same' dilated convolution (padding = dilation * (k // 2)) with a (kh, kw, in, out) kernel."""
  kh, kw = kernel.shape[:2]
  pad_h, pad_w = dilation * (kh // 2), dilation * (kw // 2)
  padded = np.pad(x, ((0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)))
  height, width = x.shape[1:3]
  out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
  for u in range(kh):
    for v in range(kw):
      window = padded[:, u * dilation : u * dilation + height, v * dilation : v * dilation + width, :]
      out += window @ kernel[u, v]
  return out + bias


def numpy_batch_norm(x, params, stats):
  return (x - stats["mean"]) / np.sqrt(stats["var"] + EPS) * params["scale"] + params["bias"]


def randomise(tree, seed):
  """Fills a tree of shapes with positive random values (valid as BN variances too).

  NumPy instead of Flax init: jitting the initialisers compiles slowly on a CPU.
  """
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  rng = np.random.default_rng(seed)
  leaves = [rng.uniform(0.5, 1.5, size=leaf.shape).astype(np.float32) for leaf in leaves]
  return jax.tree_util.tree_unflatten(treedef, leaves)


def random_variables(module, x, seed=0):
  """Variables of `module` for input x, filled by NumPy."""
  return randomise(jax.eval_shape(module.init, jax.random.PRNGKey(0), x), seed)


def test_block_matches_numpy_transcription():
  x = np.random.default_rng(0).normal(size=(2, 9, 9, 16)).astype(np.float32)
  block = DenseASPPBlock(dilation=3, inter_features=8, out_features=4)
  variables = jax.eval_shape(block.init, jax.random.PRNGKey(0), x)
  stats = randomise(variables["batch_stats"], seed=1)
  params = randomise(variables["params"], seed=2)
  out = block.apply({"params": params, "batch_stats": stats}, x)

  p = jax.tree_util.tree_map(np.asarray, params)
  s = jax.tree_util.tree_map(np.asarray, stats)
  h = np.maximum(numpy_batch_norm(x, p["norm_1"], s["norm_1"]), 0)
  h = numpy_conv(h, p["conv_1"]["kernel"], p["conv_1"]["bias"], dilation=1)
  h = np.maximum(numpy_batch_norm(h, p["norm_2"], s["norm_2"]), 0)
  expected = numpy_conv(h, p["conv_2"]["kernel"], p["conv_2"]["bias"], dilation=3)
  assert out.shape == (2, 9, 9, 4)
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_cascade_has_d_plus_4_times_64_channels_and_keeps_the_input():
  x = np.random.default_rng(1).normal(size=(1, 9, 9, 16)).astype(np.float32)
  aspp = DenseASPP()
  variables = random_variables(aspp, x)
  out = aspp.apply(variables, x)
  assert out.shape == (1, 9, 9, 16 + 4 * 64)
  # concat(block(feature), feature) at every step: the input stays the last d channels.
  np.testing.assert_array_equal(out[..., -16:], x)
  kernels = {name: p["conv_2"]["kernel"].shape for name, p in variables["params"].items()}
  assert kernels == {
    "block_0_rate_3": (3, 3, 128, 64),
    "block_1_rate_6": (3, 3, 128, 64),
    "block_2_rate_12": (3, 3, 128, 64),
    "block_3_rate_18": (3, 3, 128, 64),
  }
  # the 1x1 conv of block i sees d + 64 * i channels
  for index, name in enumerate(kernels):
    assert variables["params"][name]["conv_1"]["kernel"].shape == (1, 1, 16 + 64 * index, 128)


def test_cascade_feeds_each_block_the_previous_concatenation():
  x = np.random.default_rng(2).normal(size=(1, 9, 9, 6)).astype(np.float32)
  aspp = DenseASPP(rates=(2, 4), inter_features=5, out_features=3)
  variables = random_variables(aspp, x)
  out = aspp.apply(variables, x)
  params = variables["params"]
  stats = variables["batch_stats"]
  first = DenseASPPBlock(dilation=2, inter_features=5, out_features=3, leading_norm=False).apply(
    {"params": params["block_0_rate_2"], "batch_stats": stats["block_0_rate_2"]}, x
  )
  feature = jnp.concatenate([first, x], axis=-1)
  second = DenseASPPBlock(dilation=4, inter_features=5, out_features=3).apply(
    {"params": params["block_1_rate_4"], "batch_stats": stats["block_1_rate_4"]}, feature
  )
  np.testing.assert_allclose(out, jnp.concatenate([second, feature], axis=-1), rtol=1e-6)


def test_first_block_has_no_leading_norm_unless_asked():
  x = jnp.zeros((1, 5, 5, 4))
  key = jax.random.PRNGKey(0)
  params = jax.eval_shape(DenseASPP(rates=(1, 2), inter_features=4, out_features=2).init, key, x)["params"]
  assert "norm_1" not in params["block_0_rate_1"] and "norm_1" in params["block_1_rate_2"]
  params = jax.eval_shape(
    DenseASPP(rates=(1, 2), inter_features=4, out_features=2, first_block_norm=True).init, key, x
  )["params"]
  assert "norm_1" in params["block_0_rate_1"]


def test_train_mode_drops_whole_channels_and_updates_batch_stats():
  x = np.random.default_rng(3).normal(size=(2, 6, 6, 4)).astype(np.float32)
  block = DenseASPPBlock(dilation=1, inter_features=4, out_features=32, dropout_rate=0.5)
  variables = random_variables(block, x)
  out, updates = block.apply(variables, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)}, mutable=["batch_stats"])
  zero_maps = np.all(np.asarray(out) == 0, axis=(1, 2))
  nonzero_anywhere = np.any(np.asarray(out) != 0, axis=(1, 2))
  assert zero_maps.any() and nonzero_anywhere.any()
  assert np.all(zero_maps | np.all(np.asarray(out) != 0, axis=(1, 2)))  # a map is dropped whole or kept whole
  assert not np.allclose(updates["batch_stats"]["norm_2"]["mean"], 0.0)


def test_empty_rates_raise():
  with pytest.raises(ValueError, match="rates"):
    DenseASPP(rates=()).init(jax.random.PRNGKey(0), jnp.zeros((1, 3, 3, 2)))
