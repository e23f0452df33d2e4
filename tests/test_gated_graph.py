"""GatedGraphPropagation against a loop transcription of SSGRL eqs. (8)-(9); the reset-gate bug flag; init."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgraphs.models.heads.gated_graph import GatedGraphPropagation
from ssgrl_numpy import gated_graph, randomize

B, C, D, T = 2, 5, 6, 3


@pytest.fixture(scope="module")
def inputs():
  rng = np.random.default_rng(0)
  nodes = rng.standard_normal((B, C, D)).astype(np.float32)
  adjacency = rng.uniform(size=(C, C)).astype(np.float32)  # Asymmetric: the two message halves differ.
  np.fill_diagonal(adjacency, 1.0)
  return nodes, adjacency


@pytest.fixture(scope="module")
def params(inputs):
  variables = GatedGraphPropagation(time_steps=T).init(jax.random.PRNGKey(0), *inputs)
  return randomize(variables["params"], seed=1)


def test_parameter_shapes(params):
  shapes = jax.tree.map(np.shape, params)
  for gate in ("update_gate", "reset_gate", "candidate"):
    assert shapes[f"{gate}_w"] == {"kernel": (2 * D, D), "bias": (D,)}
    assert shapes[f"{gate}_u"] == {"kernel": (D, D), "bias": (D,)}
  assert len(shapes) == 6


def test_matches_numpy_equations(inputs, params):
  got = GatedGraphPropagation(time_steps=T).apply({"params": params}, *inputs)
  want = gated_graph(*inputs, params, time_steps=T)
  assert got.shape == (B, C, D)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_message_uses_both_directions_of_the_graph(inputs, params):
  nodes, adjacency = inputs
  module = GatedGraphPropagation(time_steps=1)
  forward = module.apply({"params": params}, nodes, adjacency)
  backward = module.apply({"params": params}, nodes, adjacency.T)
  assert np.abs(np.asarray(forward) - np.asarray(backward)).max() > 1e-3
  np.testing.assert_allclose(backward, gated_graph(nodes, adjacency.T, params, time_steps=1), rtol=1e-4, atol=1e-5)


def test_zero_steps_is_identity(inputs, params):
  got = GatedGraphPropagation(time_steps=0).apply({"params": params}, *inputs)
  np.testing.assert_array_equal(got, inputs[0])


def test_bug_flag_drops_only_the_reset_gate_state_weights(inputs, params):
  bug_params = GatedGraphPropagation(time_steps=T, shared_reset_gate_bug=True).init(jax.random.PRNGKey(0), *inputs)[
    "params"
  ]
  assert set(params) - set(bug_params) == {"reset_gate_u"}
  assert set(bug_params) <= set(params)


def test_bug_flag_matches_numpy_with_reset_gate_using_update_weights(inputs, params):
  bug_params = {k: v for k, v in params.items() if k != "reset_gate_u"}
  got = GatedGraphPropagation(time_steps=T, shared_reset_gate_bug=True).apply({"params": bug_params}, *inputs)
  want = gated_graph(*inputs, params, time_steps=T, shared_reset_gate_bug=True)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  correct = GatedGraphPropagation(time_steps=T).apply({"params": params}, *inputs)
  assert np.abs(np.asarray(got) - np.asarray(correct)).max() > 1e-3


def test_bug_flag_changes_exactly_the_reset_gate(inputs, params):
  # With U_r := U_z the correct model computes what the buggy one computes: nothing else differs.
  tied = dict(params, reset_gate_u=params["update_gate_u"])
  correct = GatedGraphPropagation(time_steps=T).apply({"params": tied}, *inputs)
  bug_params = {k: v for k, v in params.items() if k != "reset_gate_u"}
  buggy = GatedGraphPropagation(time_steps=T, shared_reset_gate_bug=True).apply({"params": bug_params}, *inputs)
  np.testing.assert_allclose(buggy, correct, rtol=1e-6, atol=1e-7)


def test_pytorch_default_init_bounds(inputs):
  params = GatedGraphPropagation(time_steps=T).init(jax.random.PRNGKey(3), *inputs)["params"]
  for name, layer in params.items():
    fan_in = layer["kernel"].shape[0]
    bound = 1 / math.sqrt(fan_in)
    for leaf in (layer["kernel"], layer["bias"]):
      assert np.abs(leaf).max() <= bound, name
      assert np.abs(leaf).max() > 0.5 * bound, name  # Uniform over the whole range, not a narrower one.


def test_adjacency_is_a_constant(inputs, params):
  nodes, adjacency = inputs
  module = GatedGraphPropagation(time_steps=T)
  grad = jax.grad(lambda a: jnp.sum(module.apply({"params": params}, nodes, a)))(jnp.asarray(adjacency))
  np.testing.assert_array_equal(grad, 0.0)


def test_wrong_adjacency_shape_raises(inputs):
  nodes, _ = inputs
  with pytest.raises(ValueError, match=r"adjacency must be \(5, 5\) for 5 nodes, got shape \(4, 4\)"):
    GatedGraphPropagation().init(jax.random.PRNGKey(0), nodes, np.eye(4, dtype=np.float32))
