"""SemanticDecoupling against a loop transcription of SSGRL eqs. (3)-(6), plus shapes, dtypes and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgraphs.models.heads.semantic_decoupling import SemanticDecoupling
from ssgrl_numpy import randomize, semantic_decoupling

B, H, W, N, C, DS, D1, D2 = 2, 3, 4, 16, 5, 7, 8, 6


@pytest.fixture(scope="module")
def inputs():
  rng = np.random.default_rng(0)
  return (rng.standard_normal((B, H, W, N)).astype(np.float32), rng.standard_normal((C, DS)).astype(np.float32))


@pytest.fixture(scope="module")
def module_and_params(inputs):
  module = SemanticDecoupling(joint_dim=D1, hidden_dim=D2)
  params = module.init(jax.random.PRNGKey(0), *inputs)["params"]
  return module, randomize(params, seed=1)


def test_parameter_shapes_and_biases(module_and_params):
  _, params = module_and_params
  shapes = jax.tree.map(np.shape, params)
  assert shapes == {
    "image_proj": {"kernel": (N, D1)},  # U, no bias
    "word_proj": {"kernel": (DS, D1)},  # V, no bias
    "joint_proj": {"kernel": (D1, D2), "bias": (D2,)},  # P, b
    "attention": {"kernel": (D2, 1), "bias": (1,)},  # f_a
  }


def test_matches_numpy_equations(inputs, module_and_params):
  module, params = module_and_params
  features, attention = module.apply({"params": params}, *inputs)
  want_features, want_attention = semantic_decoupling(*inputs, params)
  assert features.shape == (B, C, N) and attention.shape == (B, C, H, W)
  np.testing.assert_allclose(attention, want_attention, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(features, want_features, rtol=1e-4, atol=1e-5)
  # The check is only meaningful if attention is far from uniform.
  assert np.max(want_attention) > 3.0 / (H * W)


def test_attention_is_a_distribution_per_class(inputs, module_and_params):
  module, params = module_and_params
  _, attention = module.apply({"params": params}, *inputs)
  np.testing.assert_allclose(attention.sum(axis=(2, 3)), np.ones((B, C)), rtol=1e-5)
  assert np.all(attention >= 0)


def test_features_are_convex_combinations_of_raw_features(inputs, module_and_params):
  module, params = module_and_params
  features, attention = module.apply({"params": params}, *inputs)
  feature_map = inputs[0]
  rebuilt = np.einsum("bchw,bhwn->bcn", np.asarray(attention), feature_map)
  np.testing.assert_allclose(features, rebuilt, rtol=1e-5, atol=1e-6)


def test_gradients_reach_every_parameter_but_the_softmax_invariant_biases(inputs, module_and_params):
  module, params = module_and_params

  def loss(p):
    features, _ = module.apply({"params": p}, *inputs)
    return jnp.sum(features * jnp.arange(N))

  grads = jax.grad(loss)(params)
  for name in ("image_proj", "word_proj", "joint_proj", "attention"):
    assert np.abs(grads[name]["kernel"]).max() > 0, name
  # P's bias and f_a's bias add the same constant to all H*W logits of a class: softmax removes it.
  scale = np.abs(grads["attention"]["kernel"]).max()
  assert np.abs(grads["attention"]["bias"]).max() < 1e-5 * scale
  assert np.abs(grads["joint_proj"]["bias"]).max() < 1e-5 * scale


def test_bfloat16_compute_keeps_float32_params(inputs):
  module = SemanticDecoupling(joint_dim=D1, hidden_dim=D2, dtype=jnp.bfloat16)
  variables = module.init(jax.random.PRNGKey(0), *inputs)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))
  features, attention = module.apply(variables, *inputs)
  reference, _ = SemanticDecoupling(joint_dim=D1, hidden_dim=D2).apply(variables, *inputs)
  assert features.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(features, np.float32), reference, atol=0.1)


def test_bad_shapes_raise_clear_errors(inputs):
  module = SemanticDecoupling(joint_dim=D1, hidden_dim=D2)
  with pytest.raises(ValueError, match=r"feature_map must be \(B, H, W, N\)"):
    module.init(jax.random.PRNGKey(0), inputs[0][0], inputs[1])
  with pytest.raises(ValueError, match=r"word_vectors must be \(C, d_s\)"):
    module.init(jax.random.PRNGKey(0), inputs[0], inputs[1][0])
