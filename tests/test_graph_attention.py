"""graph_propagate / GraphAttention against a float64 NumPy transcription, across implementations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgraphs.models.layers.graph_attention import GraphAttention, graph_propagate, resolve_implementation

RTOL, ATOL = 1e-5, 1e-6


def numpy_propagate(
  q, k, v, mask=None, *, normalization="softmax", similarity="dot", scale=1.0, sigmoid_row_normalize=False
):
  """Plain NumPy: S = normalise_rows(scale * sim(q, k)) over valid keys; returns (S v, S)."""
  q, k, v = (np.asarray(t, np.float64) for t in (q, k, v))
  if similarity == "dot":
    logits = scale * np.einsum("bnd,bmd->bnm", q, k)
  else:
    logits = -scale * np.sum((q[:, :, None, :] - k[:, None, :, :]) ** 2, axis=-1)
  valid = np.ones(logits.shape, bool)
  if mask is not None:
    valid = np.broadcast_to(np.asarray(mask)[:, None, :], logits.shape)
  if normalization == "softmax":
    shifted = np.where(valid, logits, -np.inf)
    weights = np.exp(shifted - shifted.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
  else:
    weights = np.where(valid, 1.0 / (1.0 + np.exp(-logits)), 0.0)
    if sigmoid_row_normalize:
      weights /= weights.sum(axis=-1, keepdims=True)
  return np.einsum("bnm,bmd->bnd", weights, v), weights


def random_inputs(seed=0, batch=2, queries=11, keys=11, qk_dim=6, v_dim=5):
  rng = np.random.default_rng(seed)
  q = rng.normal(size=(batch, queries, qk_dim)).astype(np.float32) * 0.5
  k = rng.normal(size=(batch, keys, qk_dim)).astype(np.float32) * 0.5
  v = rng.normal(size=(batch, keys, v_dim)).astype(np.float32)
  mask = rng.random((batch, keys)) > 0.3
  mask[:, 0] = True  # every row keeps a real key
  return q, k, v, mask


@pytest.mark.parametrize("implementation", ["explicit", "fused", "blocked"])
@pytest.mark.parametrize("similarity", ["dot", "euclidean"])
@pytest.mark.parametrize("use_mask", [False, True])
def test_softmax_matches_numpy(implementation, similarity, use_mask):
  q, k, v, mask = random_inputs()
  mask = mask if use_mask else None
  out = graph_propagate(q, k, v, mask, similarity=similarity, implementation=implementation, block_size=4)
  expected, _ = numpy_propagate(q, k, v, mask, similarity=similarity)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("implementation", ["fused", "blocked"])
@pytest.mark.parametrize("similarity", ["dot", "euclidean"])
def test_memory_light_implementations_equal_explicit_with_mask(implementation, similarity):
  q, k, v, mask = random_inputs(seed=1, queries=7, keys=13, qk_dim=4, v_dim=9)
  explicit = graph_propagate(q, k, v, mask, similarity=similarity, implementation="explicit")
  other = graph_propagate(q, k, v, mask, similarity=similarity, implementation=implementation, block_size=5)
  assert other.shape == (2, 7, 9)
  np.testing.assert_allclose(other, explicit, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("implementation", ["fused", "blocked"])
@pytest.mark.parametrize("similarity", ["dot", "euclidean"])
def test_gradients_equal_explicit(implementation, similarity):
  q, k, v, mask = random_inputs(seed=2)

  def loss(impl):
    def f(q_, k_, v_):
      out = graph_propagate(q_, k_, v_, mask, similarity=similarity, implementation=impl, block_size=4)
      return jnp.sum(jnp.sin(out))

    return f

  expected = jax.grad(loss("explicit"), argnums=(0, 1, 2))(q, k, v)
  got = jax.grad(loss(implementation), argnums=(0, 1, 2))(q, k, v)
  for name, g, e in zip("qkv", got, expected):
    np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5, err_msg=f"d{name}")


@pytest.mark.parametrize("similarity", ["dot", "euclidean"])
@pytest.mark.parametrize("block_size, query_block_size", [(5, None), (5, 3), (4, 7), (13, 2), (100, 100), (1, 1)])
def test_blocked_values_and_gradients_equal_explicit_for_any_blocks(similarity, block_size, query_block_size):
  # 13 keys and 7 queries: blocks that divide neither, single blocks, blocks larger than the inputs.
  q, k, v, mask = random_inputs(seed=8, queries=7, keys=13, qk_dim=4, v_dim=9)

  def loss(impl):
    def f(q_, k_, v_):
      out = graph_propagate(
        q_,
        k_,
        v_,
        mask,
        similarity=similarity,
        implementation=impl,
        block_size=block_size,
        query_block_size=query_block_size,
      )
      return jnp.sum(jnp.sin(out)), out

    return f

  (_, expected_out), expected = jax.value_and_grad(loss("explicit"), argnums=(0, 1, 2), has_aux=True)(q, k, v)
  (_, out), got = jax.value_and_grad(loss("blocked"), argnums=(0, 1, 2), has_aux=True)(q, k, v)
  np.testing.assert_allclose(out, expected_out, rtol=RTOL, atol=ATOL)
  for name, g, e in zip("qkv", got, expected):
    np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5, err_msg=f"d{name}")


@pytest.mark.parametrize("row_normalize", [False, True])
def test_sigmoid_matches_numpy(row_normalize):
  q, k, v, mask = random_inputs(seed=3)
  out, weights = graph_propagate(
    q, k, v, mask, normalization="sigmoid", sigmoid_row_normalize=row_normalize, return_similarity=True
  )
  expected, expected_weights = numpy_propagate(
    q, k, v, mask, normalization="sigmoid", sigmoid_row_normalize=row_normalize
  )
  np.testing.assert_allclose(weights, expected_weights, rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_scale_multiplies_logits():
  q, k, v, _ = random_inputs(seed=4)
  out = graph_propagate(q, k, v, scale=0.25)
  expected, _ = numpy_propagate(q, k, v, scale=0.25)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  unscaled, _ = numpy_propagate(q, k, v)
  assert not np.allclose(out, unscaled, atol=1e-3)


def test_returned_similarity_is_row_stochastic_and_ignores_masked_keys():
  q, k, v, mask = random_inputs(seed=5)
  _, weights = graph_propagate(q, k, v, mask, return_similarity=True)
  assert weights.shape == (2, 11, 11)
  np.testing.assert_allclose(np.sum(weights, axis=-1), 1.0, rtol=1e-6)
  assert np.all(np.asarray(weights)[np.broadcast_to(~mask[:, None, :], weights.shape)] == 0.0)


def jaxpr_shapes(fn, *args) -> list[tuple[int, ...]]:
  """The shapes of every array fn's jaxpr builds, nested jaxprs (loops, custom VJPs) included."""
  shapes = []

  def collect(jaxpr):
    for eqn in jaxpr.eqns:
      shapes.extend(tuple(var.aval.shape) for var in eqn.outvars if hasattr(var.aval, "shape"))
      for param in eqn.params.values():
        for sub in param if isinstance(param, (tuple, list)) else (param,):
          inner = getattr(sub, "jaxpr", None)
          if inner is not None:
            collect(getattr(inner, "jaxpr", inner))

  collect(jax.make_jaxpr(fn)(*args).jaxpr)
  return shapes


def test_blocked_never_builds_a_node_by_node_array():
  q, k, v, _ = random_inputs(seed=6, queries=64, keys=64, qk_dim=4, v_dim=4)

  def loss(q_, k_, v_):
    return jnp.sum(graph_propagate(q_, k_, v_, implementation="blocked", block_size=16, query_block_size=32))

  shapes = jaxpr_shapes(jax.grad(loss, argnums=(0, 1, 2)), q, k, v)
  assert any(s[-2:] == (32, 16) for s in shapes)  # the per-tile logits are there
  # Neither the N x N matrix nor all queries against a key block (or all keys against a query block).
  assert not any(len(s) >= 2 and s[-2:] in {(64, 64), (64, 16), (64, 32), (16, 64), (32, 64)} for s in shapes)


@pytest.mark.parametrize(
  "num_nodes, dtype, options, expected",
  [
    (37 * 37, jnp.float32, {}, "explicit"),  # RGNet's paper-size map: S is 14 MiB per image
    (64 * 64, jnp.float32, {}, "explicit"),  # exactly 64 MiB
    (64 * 64 + 1, jnp.float32, {}, "blocked"),
    (75 * 75, jnp.float32, {}, "blocked"),
    (75 * 75, jnp.bfloat16, {}, "explicit"),  # 60.3 MiB in bf16
    (90 * 90, jnp.bfloat16, {}, "blocked"),
    (75 * 75, jnp.float32, {"return_similarity": True}, "explicit"),  # only explicit can return S
    (75 * 75, jnp.float32, {"normalization": "sigmoid"}, "explicit"),
    (37 * 37, jnp.float32, {"explicit_max_bytes": 37**4 * 4 - 1}, "blocked"),
  ],
)
def test_auto_is_explicit_while_one_similarity_matrix_fits_the_budget(num_nodes, dtype, options, expected):
  assert resolve_implementation("auto", num_nodes, num_nodes, dtype, **options) == expected
  assert resolve_implementation("blocked", num_nodes, num_nodes, dtype, **options) == "blocked"  # others as given


@pytest.mark.parametrize("explicit_max_bytes, builds_the_matrix", [(64 * 64 * 4, True), (64 * 64 * 4 - 1, False)])
def test_auto_computes_what_explicit_does_and_builds_s_only_within_its_budget(explicit_max_bytes, builds_the_matrix):
  q, k, v, mask = random_inputs(seed=8, queries=64, keys=64, qk_dim=4, v_dim=3)

  def loss(implementation):
    def fn(q_, k_, v_):
      out = graph_propagate(
        q_, k_, v_, mask, implementation=implementation, block_size=16, explicit_max_bytes=explicit_max_bytes
      )
      return jnp.sum(out**2), out

    return fn

  (_, out), grads = jax.value_and_grad(loss("auto"), argnums=(0, 1, 2), has_aux=True)(q, k, v)
  (_, want_out), want_grads = jax.value_and_grad(loss("explicit"), argnums=(0, 1, 2), has_aux=True)(q, k, v)
  np.testing.assert_allclose(out, want_out, rtol=RTOL, atol=ATOL)
  for got, want in zip(grads, want_grads):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  shapes = jaxpr_shapes(jax.grad(lambda *a: loss("auto")(*a)[0], argnums=(0, 1, 2)), q, k, v)
  assert any(s[-2:] == (64, 64) for s in shapes) == builds_the_matrix


def test_graph_attention_module_uses_its_projections():
  x = np.random.default_rng(7).normal(size=(2, 10, 8)).astype(np.float32) * 0.5
  module = GraphAttention(qk_features=4, value_features=6)
  params = module.init(jax.random.PRNGKey(0), x)["params"]
  out = module.apply({"params": params}, x)
  q, k, v = (x @ np.asarray(params[name]["kernel"]) for name in ("query", "key", "value"))
  expected, _ = numpy_propagate(q, k, v)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  identity_values = GraphAttention(qk_features=4)
  params = identity_values.init(jax.random.PRNGKey(0), x)["params"]
  assert set(params) == {"query", "key"}
  assert identity_values.apply({"params": params}, x).shape == x.shape


@pytest.mark.parametrize(
  "kwargs, message",
  [
    ({"normalization": "sigmoid", "implementation": "fused"}, "needs implementation='explicit'"),
    ({"normalization": "sigmoid", "implementation": "blocked"}, "needs implementation='explicit'"),
    ({"return_similarity": True, "implementation": "blocked"}, "return_similarity=True"),
    ({"similarity": "cosine"}, "similarity='cosine'"),
    ({"implementation": "flash"}, "implementation='flash'"),
    ({"normalization": "relu"}, "normalization='relu'"),
    ({"implementation": "blocked", "block_size": 0}, "block sizes must be >= 1"),
    ({"implementation": "blocked", "query_block_size": 0}, "block sizes must be >= 1"),
  ],
)
def test_bad_options_raise(kwargs, message):
  q, k, v, _ = random_inputs()
  with pytest.raises(ValueError, match=message):
    graph_propagate(q, k, v, **kwargs)


def test_bad_shapes_raise():
  q, k, v, mask = random_inputs()
  with pytest.raises(ValueError, match="feature sizes differ"):
    graph_propagate(q[..., :3], k, v)
  with pytest.raises(ValueError, match="node counts differ"):
    graph_propagate(q, k, v[:, :4])
  with pytest.raises(ValueError, match="mask must be"):
    graph_propagate(q, k, v, mask[:, :4])
