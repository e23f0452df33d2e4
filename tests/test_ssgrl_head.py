"""SSGRLHead against a loop transcription of SSGRL eqs. (3)-(10), for the full model and each Table 5 ablation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgraphs.models.heads.ssgrl_head import SSGRLHead
from ssgrl_numpy import randomize, ssgrl_head

B, H, W, N, C, DS, D1, D2, T = 2, 3, 3, 16, 5, 7, 8, 6, 2

VARIANTS = {
  "full": {},
  "without_sd": dict(use_semantic_decoupling=False),
  "without_sd_concat": dict(use_semantic_decoupling=False, concat_word_vectors=True),
  "without_si": dict(use_interaction=False),
  "final_state_only": dict(concat_initial_state=False),
  "reset_gate_bug": dict(shared_reset_gate_bug=True),
}


@pytest.fixture(scope="module")
def inputs():
  rng = np.random.default_rng(0)
  adjacency = rng.uniform(size=(C, C)).astype(np.float32)
  np.fill_diagonal(adjacency, 1.0)
  return (
    rng.standard_normal((B, H, W, N)).astype(np.float32),
    rng.standard_normal((C, DS)).astype(np.float32),
    adjacency,
  )


def make(**flags):
  return SSGRLHead(joint_dim=D1, attention_hidden_dim=D2, time_steps=T, **flags)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_matches_numpy_equations(inputs, variant):
  flags = VARIANTS[variant]
  module = make(**flags)
  params = randomize(module.init(jax.random.PRNGKey(0), *inputs)["params"], seed=1, scale=0.3)
  outputs = module.apply({"params": params}, *inputs)
  want = ssgrl_head(*inputs, params, time_steps=T, **flags)
  assert outputs["logits"].shape == (B, C) and outputs["logits"].dtype == jnp.float32
  np.testing.assert_allclose(outputs["logits"], want, rtol=1e-4, atol=1e-4)


def test_output_keys_and_modules_per_variant(inputs):
  expected_modules = {
    "full": {"semantic_decoupling", "graph_propagation", "output", "classifier"},
    "without_sd": {"graph_propagation", "output", "classifier"},
    "without_sd_concat": {"node_init", "graph_propagation", "output", "classifier"},
    "without_si": {"semantic_decoupling", "classifier"},
    "final_state_only": {"semantic_decoupling", "graph_propagation", "output", "classifier"},
    "reset_gate_bug": {"semantic_decoupling", "graph_propagation", "output", "classifier"},
  }
  for variant, flags in VARIANTS.items():
    module = make(**flags)
    variables = module.init(jax.random.PRNGKey(0), *inputs)
    assert set(variables["params"]) == expected_modules[variant], variant
    outputs = module.apply(variables, *inputs)
    has_sd = flags.get("use_semantic_decoupling", True)
    assert set(outputs) == ({"logits", "class_features", "attention"} if has_sd else {"logits", "class_features"})
    assert outputs["class_features"].shape == (B, C, N)
    if has_sd:
      assert outputs["attention"].shape == (B, C, H, W)


def test_output_layer_width_follows_concat_flag(inputs):
  full = make().init(jax.random.PRNGKey(0), *inputs)["params"]
  final_only = make(concat_initial_state=False).init(jax.random.PRNGKey(0), *inputs)["params"]
  assert full["output"]["kernel"].shape == (2 * N, N)
  assert final_only["output"]["kernel"].shape == (N, N)


def test_without_sd_nodes_start_from_the_pooled_feature(inputs):
  module = make(use_semantic_decoupling=False)
  variables = module.init(jax.random.PRNGKey(0), *inputs)
  nodes = module.apply(variables, *inputs)["class_features"]
  pooled = inputs[0].mean(axis=(1, 2))
  np.testing.assert_allclose(nodes, np.broadcast_to(pooled[:, None], (B, C, N)), rtol=1e-6, atol=1e-6)


def test_classifiers_are_unshared_with_pytorch_default_init(inputs):
  params = make().init(jax.random.PRNGKey(0), *inputs)["params"]
  classifier = params["classifier"]
  assert classifier["kernel"].shape == (C, N) and classifier["bias"].shape == (C,)
  bound = 1 / math.sqrt(N)
  assert np.abs(classifier["kernel"]).max() <= bound and np.abs(classifier["bias"]).max() <= bound
  assert np.abs(params["output"]["kernel"]).max() <= 1 / math.sqrt(2 * N)


def test_paper_sized_parameter_count_matches_the_official_modules():
  n, ds, d1, d2, c = 2048, 300, 1024, 1024, 80
  shapes = (
    jax.ShapeDtypeStruct((1, 9, 9, n), jnp.float32),
    jax.ShapeDtypeStruct((c, ds), jnp.float32),
    jax.ShapeDtypeStruct((c, c), jnp.float32),
  )
  params = jax.eval_shape(lambda *a: SSGRLHead().init(jax.random.PRNGKey(0), *a), *shapes)["params"]
  count = lambda tree: sum(math.prod(x.shape) for x in jax.tree.leaves(tree))
  semantic = n * d1 + ds * d1 + (d1 * d2 + d2) + (d2 + 1)  # fc_1, fc_2, fc_3, fc_a
  ggnn = 3 * (2 * n * n + n) + 3 * (n * n + n)  # fc_eq{3,4,5}_{w,u}
  output = 2 * n * n + n
  classifiers = c * n + c
  assert count(params["semantic_decoupling"]) == semantic
  assert count(params["graph_propagation"]) == ggnn
  assert count(params) == semantic + ggnn + output + classifiers


def test_bfloat16_jit_and_gradients(inputs):
  module = SSGRLHead(joint_dim=D1, attention_hidden_dim=D2, time_steps=1, dtype=jnp.bfloat16)  # 1 step: compiles fast
  variables = module.init(jax.random.PRNGKey(0), *inputs)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))

  @jax.jit
  def loss(params):
    logits = module.apply({"params": params}, *inputs)["logits"]
    return jnp.mean(jax.nn.softplus(-logits))

  grads = jax.grad(loss)(variables["params"])
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
  assert float(jnp.abs(grads["semantic_decoupling"]["image_proj"]["kernel"]).max()) > 0


def test_bad_configuration_and_shapes_raise(inputs):
  with pytest.raises(ValueError, match="concat_word_vectors=True .* needs use_semantic_decoupling=False"):
    make(concat_word_vectors=True).init(jax.random.PRNGKey(0), *inputs)
  feature_map, word_vectors, _ = inputs
  with pytest.raises(ValueError, match=r"adjacency has shape \(4, 4\) but there are 5 word vectors"):
    make().init(jax.random.PRNGKey(0), feature_map, word_vectors, np.eye(4, dtype=np.float32))
