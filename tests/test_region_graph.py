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


def bn_variables(graph, x, seed):
  """The graph's variables with random kernels, BN scales, biases and running statistics."""
  shapes = jax.eval_shape(graph.init, jax.random.PRNGKey(0), x)
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if "var" in name or "scale" in name:
      return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
    return (rng.normal(size=leaf.shape) * 0.3).astype(np.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def numpy_batch_norm(x, params, stats, name, train):
  """torch's BatchNorm2d: running statistics in eval mode, the biased batch variance in train mode."""
  flat = x.reshape(-1, x.shape[-1])
  mean, var = (flat.mean(0), flat.var(0)) if train else (stats[name]["mean"], stats[name]["var"])
  return (x - mean) / np.sqrt(var + 1e-5) * params[name]["scale"] + params[name]["bias"]


def numpy_region_graph_bn(x, variables, num_layers, train):
  """Sec. 3.3's BN before each weight layer: S from phi(BN(X)), theta(BN(X)); Z = ReLU(BN(S Z) W)."""
  p, stats = (
    jax.tree_util.tree_map(lambda t: np.asarray(t, np.float64), variables[k]) for k in ("params", "batch_stats")
  )
  nodes = np.asarray(x, np.float64).reshape(x.shape[0], -1, x.shape[-1])
  phi = numpy_batch_norm(nodes, p, stats, "phi_norm", train) @ p["phi"]["kernel"]
  theta = numpy_batch_norm(nodes, p, stats, "theta_norm", train) @ p["theta"]["kernel"]
  similarity = row_softmax(np.einsum("bid,bjd->bij", phi, theta))
  for layer in range(num_layers):
    propagated = numpy_batch_norm(similarity @ nodes, p, stats, f"weight_{layer}_norm", train)
    nodes = np.maximum(propagated @ p[f"weight_{layer}"]["kernel"], 0.0)
  return nodes.reshape(x.shape), similarity


@pytest.mark.parametrize("train", [False, True])
def test_batch_norm_before_each_weight_matches_numpy(train):
  x = feature_map(seed=4)
  graph = RegionGraph(batch_norm=True)
  variables = bn_variables(graph, x, seed=4)
  assert set(variables) == {"params", "batch_stats"}
  assert set(variables["batch_stats"]) == {"phi_norm", "theta_norm", "weight_0_norm", "weight_1_norm", "weight_2_norm"}
  if train:
    (out, similarities), _ = graph.apply(variables, x, return_similarity=True, train=True, mutable=["batch_stats"])
  else:
    out, similarities = graph.apply(variables, x, return_similarity=True)
  expected, expected_similarity = numpy_region_graph_bn(x, variables, num_layers=3, train=train)
  np.testing.assert_allclose(similarities[0], expected_similarity, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
  # The BNs are not identities here, so the check above would fail without them.
  assert not np.allclose(expected, numpy_region_graph(x, variables["params"], num_layers=3)[0], atol=1e-2)


def test_batch_norm_off_is_the_graph_without_it():
  x = feature_map(seed=5)
  variables = RegionGraph().init(jax.random.PRNGKey(5), x)
  assert list(variables) == ["params"]
  assert set(variables["params"]) == {"phi", "theta", "weight_0", "weight_1", "weight_2"}
  want, _ = RegionGraph().apply(variables, x)
  got_eval, _ = RegionGraph(batch_norm=False).apply(variables, x)
  got_train, _ = RegionGraph(batch_norm=False).apply(variables, x, train=True)
  np.testing.assert_array_equal(got_eval, want)
  np.testing.assert_array_equal(got_train, want)
  np.testing.assert_allclose(want, numpy_region_graph(x, variables["params"], num_layers=3)[0], rtol=1e-4, atol=1e-5)
