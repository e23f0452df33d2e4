"""RGNetHead: output shapes and stages per variant and task, eq. 4 pooling, config errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgraphs.models.heads.rgnet_head import RGNetHead

BATCH, HEIGHT, WIDTH, CHANNELS = 2, 9, 9, 16
SMALL = dict(aspp_inter_features=8, aspp_out_features=4)  # d' = 16 + 4 * 4 = 32


def backbone_map(seed=0):
  return np.random.default_rng(seed).normal(size=(BATCH, HEIGHT, WIDTH, CHANNELS)).astype(np.float32) * 0.3


def random_variables(module, x, seed=0):
  """Variables with the module's structure filled by NumPy (jitting Flax init compiles slowly on CPU)."""
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), x)
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if "var" in name or "scale" in name:
      return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
    fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) > 1 else 10
    return (rng.normal(size=leaf.shape) / np.sqrt(fan_in)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def run(head, x, **kwargs):
  variables = random_variables(head, x)
  return variables, head.apply(variables, x, **kwargs)


STAGES = {
  "fcn": ({"features_fcn"}, 16),
  "fcn_a": ({"features_fcn", "features_aspp"}, 32),
  "fcn_g": ({"features_fcn", "features_graph"}, 16),
  "fcn_a_g": ({"features_fcn", "features_aspp", "features_graph"}, 32),
  "fcn_c_c": ({"features_fcn", "features_aspp", "features_graph"}, 32),
}


@pytest.mark.parametrize("variant", sorted(STAGES))
def test_variant_stages_and_shapes(variant):
  stages, last_width = STAGES[variant]
  out, _ = jax.eval_shape(RGNetHead(variant=variant, **SMALL).init_with_output, jax.random.PRNGKey(0), backbone_map())
  assert set(out) == stages | {"logits", "region_logits", "region_scores"}
  assert out["logits"].shape == (BATCH, 2)
  assert out["region_scores"].shape == (BATCH, HEIGHT, WIDTH, 2)
  last_stage = (
    "features_graph" if "features_graph" in stages else "features_aspp" if "features_aspp" in stages else "features_fcn"
  )
  assert out[last_stage].shape == (BATCH, HEIGHT, WIDTH, last_width)


@pytest.mark.parametrize("task, outputs", [("classification", 2), ("distribution", 10), ("regression", 1)])
def test_task_outputs(task, outputs):
  _, out = run(RGNetHead(task=task, **SMALL), backbone_map(1))
  assert out["logits"].shape == (BATCH, outputs)
  assert out["region_scores"].shape == (BATCH, HEIGHT, WIDTH, outputs)
  if task == "regression":
    np.testing.assert_array_equal(out["region_scores"], out["region_logits"])
  else:  # a softmax per region (Y^c_ij in [0, 1], summing to 1 over c)
    np.testing.assert_allclose(np.sum(out["region_scores"], axis=-1), 1.0, rtol=1e-6)


def test_logits_are_equation_4_of_the_region_scores():
  _, out = run(RGNetHead(lse_r=4.0, **SMALL), backbone_map(2))
  y = np.asarray(out["region_scores"], np.float64)
  expected = np.log(np.mean(np.exp(4.0 * y), axis=(1, 2))) / 4.0
  np.testing.assert_allclose(out["logits"], expected, rtol=1e-5)
  _, mean_out = run(RGNetHead(pooling="mean", **SMALL), backbone_map(2))
  np.testing.assert_allclose(mean_out["logits"], np.mean(np.asarray(mean_out["region_scores"]), axis=(1, 2)), rtol=1e-5)


def test_fcn_c_c_replaces_aspp_and_graph_with_as_many_convs():
  x = jnp.zeros((1, HEIGHT, WIDTH, CHANNELS))
  params = jax.eval_shape(RGNetHead(variant="fcn_c_c", **SMALL).init, jax.random.PRNGKey(0), x)["params"]
  assert sorted(params["aspp"]) == ["block_0_rate_1", "block_1_rate_1", "block_2_rate_1", "block_3_rate_1"]
  assert sorted(k for k in params if k.startswith("plain_conv")) == ["plain_conv_0", "plain_conv_1", "plain_conv_2"]
  assert "region_graph" not in params


def test_similarities_for_pictures_and_fused_graph_agree():
  x = backbone_map(3)
  variables, out = run(RGNetHead(**SMALL), x, return_similarity=True)
  assert [s.shape for s in out["similarities"]] == [(BATCH, HEIGHT * WIDTH, HEIGHT * WIDTH)]
  fused = RGNetHead(graph_implementation="fused", **SMALL).apply(variables, x)
  np.testing.assert_allclose(fused["logits"], out["logits"], rtol=1e-5, atol=1e-6)


def test_train_mode_needs_dropout_rng_and_updates_batch_stats():
  x = backbone_map(4)
  head = RGNetHead(**SMALL)
  variables = random_variables(head, x)
  out, updates = head.apply(variables, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)}, mutable=["batch_stats"])
  assert out["logits"].shape == (BATCH, 2)
  assert set(updates["batch_stats"]["aspp"]) == set(variables["batch_stats"]["aspp"])


@pytest.mark.parametrize("field, value", [("variant", "fcn_x"), ("task", "ranking"), ("pooling", "max")])
def test_bad_config_names_the_field(field, value):
  with pytest.raises(ValueError, match=f"RGNetHead.{field}"):
    RGNetHead(**{field: value}).init(jax.random.PRNGKey(0), jnp.zeros((1, 3, 3, 4)))


BN_WEIGHT_LAYERS = {
  "fcn": {"classifier_norm"},
  "fcn_a_g": {"classifier_norm", "region_graph"},
  "fcn_c_c": {"classifier_norm", "plain_conv_0_norm", "plain_conv_1_norm", "plain_conv_2_norm"},
}


@pytest.mark.parametrize("variant", sorted(BN_WEIGHT_LAYERS))
def test_batch_norm_before_weights_normalises_the_classifier_input(variant):
  x = backbone_map(5)
  head = RGNetHead(variant=variant, batch_norm_before_weights=True, **SMALL)
  variables, out = run(head, x)
  stats = variables["batch_stats"]
  assert set(stats) - {"aspp"} == BN_WEIGHT_LAYERS[variant]
  if variant == "fcn_a_g":
    assert set(stats["region_graph"]) == {f"{n}_norm" for n in ("phi", "theta", "weight_0", "weight_1", "weight_2")}
  # Classifier on BN(features) with the given running statistics, in NumPy.
  features = np.asarray(out.get("features_graph", out["features_fcn"]), np.float64)
  norm, conv = variables["params"]["classifier_norm"], variables["params"]["classifier"]
  normalised = (features - stats["classifier_norm"]["mean"]) / np.sqrt(stats["classifier_norm"]["var"] + 1e-5)
  normalised = normalised * norm["scale"] + norm["bias"]
  expected = normalised @ np.asarray(conv["kernel"][0, 0], np.float64) + conv["bias"]
  np.testing.assert_allclose(out["region_logits"], expected, rtol=1e-4, atol=1e-5)
  assert not np.allclose(features @ conv["kernel"][0, 0] + conv["bias"], expected, atol=1e-2)


@pytest.mark.parametrize("variant", ["fcn_a_g", "fcn_c_c"])
def test_batch_norm_before_weights_off_is_the_head_without_it(variant):
  x = backbone_map(6)
  default = RGNetHead(variant=variant, **SMALL)
  variables, want = run(default, x)
  assert not any("_norm" in jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(variables))
  got = RGNetHead(variant=variant, batch_norm_before_weights=False, **SMALL).apply(variables, x)
  for key in ("logits", "region_logits", "features_graph"):
    np.testing.assert_array_equal(got[key], want[key])
