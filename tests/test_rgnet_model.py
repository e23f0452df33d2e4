"""RGNet model: output maps per variant and backbone, the paper's 37 x 37 map, Fig. 6 helpers vs NumPy, He init,
variant arguments and configuration errors."""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from training_helpers import config_file

from jaxgraphs import models
from jaxgraphs.configs import rgnet as rgnet_configs
from jaxgraphs.errors import ConfigError
from jaxgraphs.models import rgnet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNGS = {"params": jax.random.key(0), "dropout": jax.random.key(1)}


def output_shapes(module, size=40, batch=2):
  images = jnp.zeros((batch, size, size, 3), jnp.float32)
  outputs, _ = jax.eval_shape(module.init_with_output, RNGS, images)
  return {key: value.shape for key, value in outputs.items()}


def load_config(name, arg=None):
  return config_file(name, arg)


def tiny_model(arg=""):
  """RGNet as configs/rgnet_shapes.py:ARG,tiny builds it: the unit tests' widths (DenseNet by default)."""
  return models.build_model(load_config("rgnet_shapes", f"{arg},tiny").model, None)


STAGES = {
  "fcn": ("fcn",),
  "fcn_a": ("fcn", "aspp"),
  "fcn_g": ("fcn", "graph"),
  "fcn_a_g": ("fcn", "aspp", "graph"),
  "fcn_c_c": ("fcn", "aspp", "graph"),
}


@pytest.mark.parametrize("variant", sorted(STAGES))
def test_region_outputs_of_each_variant(variant):
  shapes = output_shapes(tiny_model(variant))
  # 40 px at output stride 8 -> 5 x 5 regions.
  expected = {
    "logits": (2, 2),
    "region_logits": (2, 5, 5, 2),
    "region_scores": (2, 5, 5, 2),
    "region_quality": (2, 5, 5),
    "query_region": (2,),
    **{f"similarity_{stage}": (2, 5, 5) for stage in STAGES[variant]},
  }
  assert shapes == expected


@pytest.mark.parametrize("kind,outputs", [("binary", 2), ("regression", 1), ("distribution", 10)])
def test_fc_cnn_is_global_pool_and_fc(kind, outputs):
  shapes = output_shapes(tiny_model(f"fc_cnn,kind={kind}"), size=64)
  assert shapes["logits"] == (2, outputs)
  assert "region_scores" not in shapes
  assert ("distribution" in shapes) == (kind == "distribution")


@pytest.mark.parametrize("backbone", ["vgg16", "resnet101"])
def test_other_backbones_at_output_stride_8(backbone):
  module = tiny_model(f"backbone={backbone}")
  assert module.backbone == backbone
  assert output_shapes(module, size=64)["region_scores"] == (2, 8, 8, 2)
  _, variables = jax.eval_shape(module.init_with_output, RNGS, jnp.zeros((1, 64, 64, 3)))
  if backbone == "vgg16":  # fc6 and fc7 become convolutions (Sec. 4.2): 7 x 7 from conv5's 8 x width channels
    width, fc_width = module.backbone_kwargs["width"], module.backbone_kwargs["fc_width"]
    assert variables["params"]["backbone"]["classifier_0"]["kernel"].shape == (7, 7, 8 * width, fc_width)


def test_densenet121_gives_the_papers_37_by_37_map_and_d_prime():
  module = models.build_model(load_config("rgnet_ava").model, None)
  images = jnp.zeros((1, 300, 300, 3), jnp.float32)
  outputs, variables = jax.eval_shape(module.init_with_output, RNGS, images)
  assert outputs["region_scores"].shape == (1, 37, 37, 2)
  # d' = 1024 + 4 * 64: the graph's A, B and W are d' x d'.
  graph = variables["params"]["head"]["region_graph"]
  assert graph["phi"]["kernel"].shape == (1280, 1280)
  assert graph["weight_2"]["kernel"].shape == (1280, 1280)


def test_densenet_transition_option_halves_the_channels_before_the_head():
  # The DenseASPP code's 1024 -> 512 transition after block 4: d' becomes 512 + 4 * 64 = 768.
  config = load_config("rgnet_ava")
  assert config.model.transition_features == 0  # off by default, as RGNet's text
  images = jnp.zeros((1, 64, 64, 3), jnp.float32)
  params = {}
  for features in (0, 512):
    config.model.transition_features = features
    module = models.build_model(config.model, None)
    outputs, variables = jax.eval_shape(module.init_with_output, RNGS, images)
    assert outputs["region_scores"].shape == (1, 8, 8, 2)
    params[features] = variables["params"]
  assert "transition" not in params[0]
  transition = params[512]["transition"]
  assert transition["conv"]["kernel"].shape == (1, 1, 1024, 512) and "bias" not in transition["conv"]
  assert transition["norm"]["scale"].shape == (512,)
  for features, width in ((0, 1024), (512, 512)):
    head = params[features]["head"]
    assert head["aspp"]["block_0_rate_3"]["conv_1"]["kernel"].shape == (1, 1, width, 128)
    assert head["region_graph"]["phi"]["kernel"].shape == (width + 256, width + 256)


def test_similarity_to_region_is_cosine_similarity():
  rng = np.random.default_rng(0)
  features = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
  query = np.array([7, 0])
  got = np.asarray(rgnet.similarity_to_region(jnp.asarray(features), jnp.asarray(query)))
  for b in range(2):
    flat = features[b].reshape(12, 5)
    anchor = flat[query[b]]
    expected = flat @ anchor / (np.linalg.norm(flat, axis=1) * np.linalg.norm(anchor))
    np.testing.assert_allclose(got[b].reshape(12), expected, rtol=1e-5, atol=1e-6)
  assert got[0].reshape(12)[7] == pytest.approx(1.0, abs=1e-6)


def test_region_quality_per_kind():
  scores = np.random.default_rng(1).dirichlet(np.ones(10), size=(2, 3, 3)).astype(np.float32)
  expected_rating = (scores * np.arange(1, 11)).sum(-1)
  np.testing.assert_allclose(rgnet.region_quality(jnp.asarray(scores), "distribution"), expected_rating, rtol=1e-5)
  np.testing.assert_array_equal(rgnet.region_quality(jnp.asarray(scores[..., :2]), "binary"), scores[..., 1])
  np.testing.assert_array_equal(rgnet.region_quality(jnp.asarray(scores[..., :1]), "regression"), scores[..., 0])


def test_forward_values_query_region_and_similarity_maps():
  # Wide enough that no region's ReLU features are all zero (cosine similarity of a zero vector is 0 here).
  config = load_config("rgnet_shapes", "fcn_a_g,tiny")
  config.model.backbone_kwargs = {"growth_rate": 16, "block_config": (1, 1, 1, 1), "num_init_features": 32}
  module = models.build_model(config.model, None)
  images = jnp.asarray(np.random.default_rng(2).normal(size=(2, 40, 40, 3)), jnp.float32)
  outputs, _ = jax.jit(module.init_with_output)(RNGS, images)
  outputs = jax.tree.map(np.asarray, outputs)
  np.testing.assert_array_equal(outputs["region_quality"], outputs["region_scores"][..., 1])
  flat = outputs["region_quality"].reshape(2, -1)
  np.testing.assert_array_equal(outputs["query_region"], flat.argmax(axis=1))
  for stage in ("fcn", "aspp", "graph"):
    similarity = outputs[f"similarity_{stage}"].reshape(2, -1)
    np.testing.assert_allclose(similarity[np.arange(2), outputs["query_region"]], 1.0, atol=1e-5)
    assert np.all(similarity <= 1 + 1e-5) and np.all(similarity >= -1 - 1e-5)


def test_pooled_distribution_renormalises_lse_pooled_probabilities():
  pooled = np.array([[0.2, 0.3, 0.6], [0.0, 0.0, 1.0]], np.float32)
  got = np.asarray(rgnet.pooled_distribution(jnp.asarray(pooled)))
  np.testing.assert_allclose(got, pooled / pooled.sum(1, keepdims=True), rtol=1e-6)


def test_new_layers_use_he_initialisation():
  # He et al. [13]: zero-mean weights with std sqrt(2 / fan_in) (flax draws a truncated normal with that std).
  fc = rgnet.FCCNNHead(num_outputs=256).init(RNGS, jnp.zeros((1, 2, 2, 200)))["params"]["classifier"]["kernel"]
  assert np.std(np.asarray(fc)) == pytest.approx(np.sqrt(2 / 200), rel=0.05)
  head = rgnet.RGNetHead(variant="fcn_g")  # as RGNet builds it: the head's default initialiser
  graph = head.init(RNGS, jnp.zeros((1, 4, 4, 300)))["params"]["region_graph"]
  for name in ("phi", "theta", "weight_0"):
    assert np.std(np.asarray(graph[name]["kernel"])) == pytest.approx(np.sqrt(2 / 300), rel=0.05)


def test_variant_argument_sets_model_and_task():
  config = load_config("rgnet_ava", "fcn_g,backbone=resnet101,r=2,layers=1,rates=3-6-12,pool=mean,kind=distribution")
  assert config.model.variant == "fcn_g"
  assert config.model.backbone == "resnet101"
  assert config.model.dont_load == (r"params/backbone/fc/.*",)
  assert config.model.head.lse_r == 2.0
  assert config.model.head.graph_layers == 1
  assert tuple(config.model.head.aspp_rates) == (3, 6, 12)
  assert config.model.head.pooling == "mean"
  assert config.task.kind == "distribution"
  assert config.checkpoint.best_metric == "task"  # the aesthetics task's: EMD, lower is better


def test_default_configs_follow_the_paper():
  ava = load_config("rgnet_ava")
  assert (ava.model.variant, ava.model.backbone, ava.task.kind) == ("fcn_a_g", "densenet121", "binary")
  assert tuple(ava.model.head.aspp_rates) == (3, 6, 12, 18) and ava.model.head.graph_layers == 3
  assert ava.model.head.lse_r == 4.0
  assert (ava.optimizer.name, ava.optimizer.learning_rate, ava.optimizer.weight_decay) == ("adam", 1e-4, 1e-5)
  assert (ava.optimizer.schedule.name, ava.optimizer.schedule.power) == ("poly", 0.9)
  assert ava.batch_size == 32
  assert load_config("rgnet_aadb").task.kind == "regression"
  fc_cnn = load_config("rgnet_ava", "fc_cnn")
  assert "resize(224)" in fc_cnn.data.pp_train and "random_scale_crop(1.05, 1.25, 224)" in fc_cnn.data.pp_train


@pytest.mark.parametrize(
  "arg,message",
  [
    ("fcn_x", "unknown variant 'fcn_x'"),
    ("backbone=alexnet", "bad token 'backbone=alexnet'"),
    ("rates=3-six", "bad token 'rates=3-six'"),
    ("depth=3", "bad token 'depth=3' (unknown key 'depth')"),
  ],
)
def test_bad_variant_argument_names_the_token(arg, message):
  with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
    rgnet_configs.parse_arg(arg)


def test_bad_model_config_names_the_key():
  config = load_config("rgnet_shapes")
  config.model.head.graph_depth = 2
  with pytest.raises(ConfigError, match=r"config.model.head has keys RGNetHead does not take: \['graph_depth'\]"):
    models.build_model(config.model, None)
  config = load_config("rgnet_shapes")
  config.model.variant = "fcn_b"
  with pytest.raises(ConfigError, match="config.model.variant='fcn_b'"):
    models.build_model(config.model, None)


def test_model_registry_builds_rgnet_from_config():
  config = load_config("rgnet_shapes", "fcn_c_c,kind=regression,layers=2")
  module = models.build_model(config.model, None)
  assert isinstance(module, rgnet.RGNet)
  assert (module.variant, module.kind, module.head_kwargs["graph_layers"]) == ("fcn_c_c", "regression", 2)
  assert module.head_kwargs["graph_embed_features"] is None  # 0 in the config: phi and theta keep d'


def test_configs_load_without_an_argument():
  # get_config(None) is what `main` calls to name a bad override; it must work without an argument.
  assert isinstance(load_config("rgnet_aadb"), ml_collections.ConfigDict)
