"""RegionGraph against a NumPy transcription of RGNet eq. (1)-(3) with the module's own weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgraphs.models.heads.region_graph import RegionGraph

HEIGHT = WIDTH = 9
CHANNELS = 16


def feature_map(seed=0, batch=2):
  return np.random.default_rng(seed).normal(size=(batch, HEIGHT, WIDTH, CHANNELS)).astype(np.float32) * 0.3


def row_softmax(logits, mask=None):
  if mask is not None:
    logits = np.where(mask[:, None, :], logits, -np.inf)
  weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
  return weights / weights.sum(axis=-1, keepdims=True)


def numpy_region_graph(x, params, num_layers, per_layer=False, mask=None):
  """Eq. 1: s = (A x_i)^T (B x_j); eq. 2: row softmax; eq. 3: Z = ReLU(S X W), stacked."""
  p = jax.tree_util.tree_map(lambda t: np.asarray(t, np.float64), params)
  batch = x.shape[0]
  nodes = np.asarray(x, np.float64).reshape(batch, -1, x.shape[-1])
  node_mask = None if mask is None else np.asarray(mask).reshape(batch, -1)
  similarities = []
  for layer in range(num_layers):
    if layer == 0 or per_layer:
      suffix = f"_{layer}" if per_layer else ""
      phi = nodes @ p[f"phi{suffix}"]["kernel"]  # flax kernels are (in, out): x A^T in the paper's notation
      theta = nodes @ p[f"theta{suffix}"]["kernel"]
      similarity = row_softmax(np.einsum("bid,bjd->bij", phi, theta), node_mask)
      similarities.append(similarity)
    nodes = np.maximum(similarity @ nodes @ p[f"weight_{layer}"]["kernel"], 0.0)
  return nodes.reshape(x.shape), similarities


@pytest.mark.parametrize("per_layer", [False, True])
def test_matches_paper_equations(per_layer):
  x = feature_map()
  graph = RegionGraph(similarity_per_layer=per_layer)
  params = graph.init(jax.random.PRNGKey(0), x)["params"]
  out, similarities = graph.apply({"params": params}, x, return_similarity=True)
  expected, expected_similarities = numpy_region_graph(x, params, num_layers=3, per_layer=per_layer)
  assert out.shape == x.shape
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
  assert len(similarities) == (3 if per_layer else 1)
  for got, want in zip(similarities, expected_similarities):
    assert got.shape == (2, HEIGHT * WIDTH, HEIGHT * WIDTH)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_parameters_are_bias_free_d_by_d_maps_and_embed_is_configurable():
  x = jnp.zeros((1, HEIGHT, WIDTH, CHANNELS))
  params = jax.eval_shape(RegionGraph().init, jax.random.PRNGKey(0), x)["params"]
  assert {name: p["kernel"].shape for name, p in params.items()} == {
    "phi": (16, 16),
    "theta": (16, 16),
    "weight_0": (16, 16),
    "weight_1": (16, 16),
    "weight_2": (16, 16),
  }
  assert all(set(p) == {"kernel"} for p in params.values())
  params = jax.eval_shape(RegionGraph(embed_features=4, num_layers=2).init, jax.random.PRNGKey(0), x)["params"]
  assert params["phi"]["kernel"].shape == (16, 4) and "weight_2" not in params


@pytest.mark.parametrize("implementation", ["fused", "blocked"])
@pytest.mark.parametrize("per_layer", [False, True])
def test_memory_light_implementations_equal_explicit(implementation, per_layer):
  x = feature_map(seed=1)
  mask = np.random.default_rng(1).random((2, HEIGHT, WIDTH)) > 0.2
  explicit = RegionGraph(similarity_per_layer=per_layer)
  params = explicit.init(jax.random.PRNGKey(1), x)["params"]
  other = RegionGraph(similarity_per_layer=per_layer, implementation=implementation, block_size=32)
  want, _ = explicit.apply({"params": params}, x, mask)
  got, similarities = other.apply({"params": params}, x, mask)
  assert similarities == []
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_masked_regions_do_not_change_real_regions():
  x = feature_map(seed=2)
  mask = np.ones((2, HEIGHT, WIDTH), bool)
  mask[:, -3:, :] = False  # e.g. padding rows at the bottom
  graph = RegionGraph()
  params = graph.init(jax.random.PRNGKey(2), x)["params"]
  out, _ = graph.apply({"params": params}, x, mask)
  garbage = np.where(mask[..., None], x, 7.0).astype(np.float32)
  out_garbage, _ = graph.apply({"params": params}, garbage, mask)
  np.testing.assert_allclose(np.asarray(out_garbage)[mask], np.asarray(out)[mask], rtol=1e-5, atol=1e-6)
  expected, _ = numpy_region_graph(x, params, num_layers=3, mask=mask)
  np.testing.assert_allclose(np.asarray(out)[mask], expected[mask], rtol=1e-4, atol=1e-5)


def test_return_similarity_needs_explicit():
  x = feature_map(seed=3, batch=1)
  graph = RegionGraph(implementation="blocked")
  params = graph.init(jax.random.PRNGKey(0), x)["params"]
  with pytest.raises(ValueError, match="return_similarity=True needs implementation='explicit'"):
    graph.apply({"params": params}, x, return_similarity=True)


def test_zero_layers_raise():
  with pytest.raises(ValueError, match="num_layers"):
    RegionGraph(num_layers=0).init(jax.random.PRNGKey(0), feature_map(batch=1))
