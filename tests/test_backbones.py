"""Backbones vs torchvision (fixtures from small torchvision networks; no torch needed), shapes, bf16, remat, BN."""

import functools
import glob
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from training_helpers import config_file

from jaxgraphs.models.backbones import VGG, DenseNet, ResNet, build_backbone, common
from jaxgraphs.models.backbones.common import adaptive_average_pool
from jaxgraphs.models.layers.batch_norm import BatchNorm
from jaxgraphs.tools.convert_torchvision import convert_state_dict

FIXTURES = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "fixtures", "backbones", "*.npz")))
TOLERANCE = 1e-4


def relative_error(actual, expected):
  """max |actual - expected| / max |expected|."""
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  assert actual.shape == expected.shape, (actual.shape, expected.shape)
  return np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-12)


def load_fixture(path):
  """(model, converted variables, fixture arrays, torch state_dict) of one fixture file."""
  arrays = dict(np.load(path))
  config = json.loads(str(arrays["config"]))
  state = {key[len("state/") :]: value for key, value in arrays.items() if key.startswith("state/")}
  model = build_backbone(
    config["backbone"], **{k: tuple(v) if isinstance(v, list) else v for k, v in config["kwargs"].items()}
  )
  return model, convert_state_dict(state, config["backbone"]), arrays, state


def fixture_id(path):
  return os.path.basename(path)[: -len(".npz")]


def test_fixtures_exist():
  assert len(FIXTURES) == 9, "run tests/fixtures/make_backbone_fixtures.py"


@pytest.mark.parametrize("path", FIXTURES, ids=fixture_id)
def test_eval_outputs_match_torchvision(path):
  model, variables, arrays, _ = load_fixture(path)
  outputs = model.apply(variables, arrays["input"].astype(np.float32))
  expected = {key[len("eval/") :]: value for key, value in arrays.items() if key.startswith("eval/")}
  expected.pop("fc_head", None)
  assert len(expected) >= 6
  for name, value in expected.items():
    assert relative_error(outputs[name], value) <= TOLERANCE, name
  if "rois" in arrays:
    fc7 = model.apply(variables, arrays["rois"].astype(np.float32), method=VGG.fc_head)
    assert relative_error(fc7, arrays["eval/fc_head"]) <= TOLERANCE


@pytest.mark.parametrize("path", FIXTURES, ids=fixture_id)
def test_train_mode_outputs_and_running_statistics_match_torchvision(path):
  model, variables, arrays, state = load_fixture(path)
  outputs, updates = model.apply(
    variables,
    arrays["input"].astype(np.float32),
    train=True,
    mutable=["batch_stats"],
    rngs={"dropout": jax.random.key(0)},
  )
  for key in (key for key in arrays if key.startswith("train/")):
    assert relative_error(outputs[key[len("train/") :]], arrays[key]) <= TOLERANCE, key
  trained = dict(
    state, **{key[len("train_state/") :]: value for key, value in arrays.items() if key.startswith("train_state/")}
  )
  expected = convert_state_dict(trained, "")["batch_stats"]
  if not expected:  # VGG without batch norm
    assert "batch_stats" not in variables or not variables["batch_stats"]
    return
  differences = jax.tree.map(relative_error, updates["batch_stats"], expected)
  assert max(jax.tree.leaves(differences)) <= TOLERANCE
  # The statistics did move, so the comparison above is not trivially about unchanged values.
  moved = jax.tree.map(relative_error, updates["batch_stats"], variables["batch_stats"])
  assert max(jax.tree.leaves(moved)) > 1e-2


def test_legacy_densenet_keys_convert_like_current_ones():
  _, variables, _, state = load_fixture(next(p for p in FIXTURES if "densenet_os32" in p))
  legacy = {key.replace("norm1", "norm.1").replace("conv2", "conv.2"): value for key, value in state.items()}
  assert any("norm.1" in key for key in legacy)
  converted = convert_state_dict(legacy, "densenet121")
  assert jax.tree.all(jax.tree.map(np.array_equal, converted, variables))


@pytest.mark.parametrize(
  "name, kwargs, size, expected",
  [
    ("densenet121", {"output_stride": 8}, 300, (37, 37, 1024)),
    ("densenet121", {"output_stride": 16}, 300, (18, 18, 1024)),
    ("densenet121", {"output_stride": 32}, 300, (9, 9, 1024)),
    ("resnet101", {"output_stride": 8}, 576, (72, 72, 2048)),
    ("resnet101", {"output_stride": 16}, 576, (36, 36, 2048)),
    ("resnet101", {"output_stride": 32}, 576, (18, 18, 2048)),
    ("resnet18", {"output_stride": 8}, 224, (28, 28, 512)),
    ("vgg16", {"output_stride": 8}, 592, (74, 74, 512)),
    ("vgg16_bn", {"output_stride": 16, "fc_as_conv": True}, 592, (37, 37, 4096)),
    ("vgg16", {"output_stride": 32}, 592, (18, 18, 512)),
  ],
)
def test_feature_map_shape_at_output_stride(name, kwargs, size, expected):
  model = build_backbone(name, **kwargs)
  outputs, _ = jax.eval_shape(model.init_with_output, jax.random.key(0), jnp.zeros((1, size, size, 3)))
  assert outputs["feature_map"].shape == (1,) + expected


def test_classifier_forms_have_pre_logits_and_logits():
  for name in ("resnet50", "densenet121", "vgg16"):
    outputs, variables = jax.eval_shape(
      build_backbone(name, num_classes=1000).init_with_output, jax.random.key(0), jnp.zeros((2, 224, 224, 3))
    )
    assert outputs["logits"].shape == (2, 1000), name
    params = sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(variables["params"]))
    # torchvision's parameter counts.
    assert params == {"resnet50": 25_557_032, "densenet121": 7_978_856, "vgg16": 138_357_544}[name]


@functools.cache
def tiny_widths(backbone: str) -> dict:
  """The unit tests' widths of a backbone family: what configs/rgnet_shapes.py's ',tiny' argument gives it."""
  return dict(config_file("rgnet_shapes", f"backbone={backbone},tiny").model.backbone_kwargs)


# The tiny widths with more depth where a test needs it: a bottleneck ResNet with two blocks in layer4 and a
# DenseNet with two layers per block, so remat and frozen batch norm act on more than one block of a stage.
TINY = {
  "resnet": lambda **kw: ResNet(
    50, **{**tiny_widths("resnet101"), "stage_sizes": (1, 1, 1, 2)}, output_stride=8, num_classes=3, **kw
  ),
  "densenet": lambda **kw: DenseNet(
    **{**tiny_widths("densenet121"), "block_config": (2, 2, 2, 2)}, output_stride=8, num_classes=3, **kw
  ),
  "vgg_bn": lambda **kw: VGG(batch_norm=True, **tiny_widths("vgg16"), num_classes=3, **kw),
}


def random_variables(model, x, seed=0):
  """Variables of `model` filled with NumPy random values: avoids compiling the initialisers (slow on CPU)."""
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    if jax.tree_util.keystr(path).endswith("['var']"):
      return rng.uniform(0.5, 2.0, leaf.shape).astype(np.float32)
    fan_in = max(int(np.prod(leaf.shape[:-1])), 1)
    return (rng.normal(size=leaf.shape) / np.sqrt(fan_in)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(fill, jax.eval_shape(model.init, jax.random.key(0), x))


def test_bf16_compute_keeps_fp32_parameters():
  x = jax.random.normal(jax.random.key(1), (2, 24, 24, 3))
  variables = random_variables(TINY["resnet"](), x)
  bf16_model = TINY["resnet"](dtype=jnp.bfloat16)
  bf16_variables = jax.eval_shape(bf16_model.init, jax.random.key(0), x)
  assert {leaf.dtype for leaf in jax.tree.leaves(bf16_variables)} == {jnp.dtype(jnp.float32)}
  outputs = jax.jit(bf16_model.apply)(variables, x)
  assert outputs["feature_map"].dtype == jnp.bfloat16 and outputs["logits"].dtype == jnp.bfloat16
  reference = jax.jit(TINY["resnet"]().apply)(variables, x)
  assert relative_error(outputs["feature_map"], reference["feature_map"]) < 0.05


@pytest.mark.parametrize("name", ["resnet", "densenet"])
def test_remat_gives_the_same_outputs_and_gradients(name):
  x = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
  variables = random_variables(TINY[name](), x)

  @jax.jit
  def loss_and_grads(params):
    def loss(params, model):
      outputs, updates = model.apply(
        {"params": params, "batch_stats": variables["batch_stats"]}, x, train=True, mutable=["batch_stats"]
      )
      return jnp.sum(outputs["logits"] ** 2), updates

    return [jax.value_and_grad(loss, has_aux=True)(params, TINY[name](remat=remat)) for remat in (False, True)]

  ((value, updates), grads), ((remat_value, remat_updates), remat_grads) = loss_and_grads(variables["params"])
  assert np.allclose(value, remat_value, rtol=1e-6)
  assert max(jax.tree.leaves(jax.tree.map(relative_error, remat_updates, updates))) < 1e-6
  # Relative to the largest gradient: some (e.g. the first BN scale before train-mode BNs) are ~0 and pure noise.
  largest = max(np.abs(leaf).max() for leaf in jax.tree.leaves(grads))
  difference = max(np.abs(a - b).max() for a, b in zip(jax.tree.leaves(remat_grads), jax.tree.leaves(grads)))
  assert difference / largest < 1e-5


@pytest.mark.parametrize("name", TINY)
def test_frozen_batch_norm_uses_running_statistics_without_updating_them(name):
  x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
  variables = random_variables(TINY[name](), x)
  frozen = TINY[name](frozen_bn=True, dropout_rate=0.0) if name == "vgg_bn" else TINY[name](frozen_bn=True)
  outputs, updates = jax.jit(lambda v: frozen.apply(v, x, train=True, mutable=["batch_stats"]))(variables)
  assert jax.tree.all(jax.tree.map(np.array_equal, updates["batch_stats"], variables["batch_stats"]))
  evaluated = jax.jit(TINY[name]().apply)(variables, x)
  assert relative_error(outputs["logits"], evaluated["logits"]) < 1e-6


def test_resnet_freezes_batch_norm_of_named_stages_only():
  x = jax.random.normal(jax.random.key(1), (2, 24, 24, 3))
  variables = random_variables(TINY["resnet"](), x)
  model = TINY["resnet"](frozen_bn=("stem", "layer1", "layer2", "layer3"))
  _, updates = jax.jit(lambda v: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables)
  for module, stats in updates["batch_stats"].items():
    unchanged = jax.tree.all(jax.tree.map(np.array_equal, stats, variables["batch_stats"][module]))
    assert unchanged == (not module.startswith("layer4")), module
  with pytest.raises(ValueError, match="unknown stages.*layer5"):
    jax.eval_shape(TINY["resnet"](frozen_bn=("layer5",)).init, jax.random.key(0), x)


def test_batch_norm_matches_numpy_transcription_of_torch():
  x = np.random.default_rng(0).normal(2.0, 3.0, (4, 3, 5, 6)).astype(np.float32)
  variables = {
    "params": {
      "scale": np.array([1.0, 2.0, 0.5, 1.5, 1.0, 3.0], np.float32),
      "bias": np.linspace(-1, 1, 6).astype(np.float32),
    },
    "batch_stats": {"mean": np.full(6, 0.5, np.float32), "var": np.full(6, 2.0, np.float32)},
  }
  y, updates = BatchNorm().apply(variables, x, train=True, mutable=["batch_stats"])
  mean, biased_var = x.mean((0, 1, 2)), x.var((0, 1, 2))
  expected = (x - mean) / np.sqrt(biased_var + 1e-5) * variables["params"]["scale"] + variables["params"]["bias"]
  assert relative_error(y, expected) < 1e-5
  n = 4 * 3 * 5
  assert np.allclose(updates["batch_stats"]["mean"], 0.9 * 0.5 + 0.1 * mean, rtol=1e-6)
  assert np.allclose(updates["batch_stats"]["var"], 0.9 * 2.0 + 0.1 * biased_var * n / (n - 1), rtol=1e-6)
  evaluated = BatchNorm().apply(variables, x)
  assert (
    relative_error(
      evaluated, (x - 0.5) / np.sqrt(2.0 + 1e-5) * variables["params"]["scale"] + variables["params"]["bias"]
    )
    < 1e-6
  )
  with pytest.raises(ValueError, match="more than one value per channel"):
    BatchNorm().apply(variables, x[:1, :1, :1], train=True, mutable=["batch_stats"])


def test_batch_norm_statistics_cover_the_global_batch_when_sharded():
  script = textwrap.dedent("""
      import jax, jax.numpy as jnp, numpy as np
      from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
      from jaxgraphs.models.layers.batch_norm import BatchNorm
      assert jax.device_count() == 2
      x = np.random.default_rng(0).normal(size=(4, 3, 3, 5)).astype(np.float32)
      x[2:] += 10.0  # the second device's half has a different mean
      variables = BatchNorm().init(jax.random.key(0), x)
      apply = jax.jit(lambda v, x: BatchNorm().apply(v, x, train=True, mutable=["batch_stats"]))
      sharded = jax.device_put(x, NamedSharding(Mesh(jax.devices(), ("data",)), P("data")))
      (y, stats), (y_ref, stats_ref) = apply(variables, sharded), apply(variables, x)
      assert len(sharded.sharding.device_set) == 2
      np.testing.assert_allclose(stats["batch_stats"]["mean"], stats_ref["batch_stats"]["mean"], rtol=1e-6)
      np.testing.assert_allclose(stats["batch_stats"]["mean"], 0.1 * x.mean((0, 1, 2)), rtol=1e-5)
      np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), rtol=1e-5, atol=1e-5)
      print("ok")
  """)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
  result = subprocess.run(
    [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
  )
  assert result.stdout.strip() == "ok", result.stderr[-2000:]


def test_vgg_fc_head_takes_any_leading_shape_and_rejects_other_windows():
  widths = tiny_widths("vgg16")
  model = VGG(**widths, num_classes=3)
  channels, fc_width = 8 * widths["width"], widths["fc_width"]  # conv5's channels, fc6/fc7's
  variables = random_variables(model, jnp.zeros((1, 32, 32, 3)))
  rois = jax.random.normal(jax.random.key(1), (2, 5, 7, 7, channels))
  fc7 = model.apply(variables, rois, method=VGG.fc_head)
  assert fc7.shape == (2, 5, fc_width)
  flat = model.apply(variables, rois.reshape(10, 7, 7, channels), method=VGG.fc_head)
  assert relative_error(fc7.reshape(10, fc_width), flat) < 1e-6
  with pytest.raises(ValueError, match=r"\(\.\.\., 7, 7, C\)"):
    model.apply(variables, rois[..., :6, :6, :], method=VGG.fc_head)


def test_adaptive_average_pool_uses_torch_bins():
  x = np.arange(2 * 3 * 5 * 1, dtype=np.float32).reshape(2, 3, 5, 1)
  pooled = np.asarray(adaptive_average_pool(x, 2))
  # torch bins for 3 -> 2: [0, 2), [1, 3); for 5 -> 2: [0, 3), [2, 5).
  expected = np.stack(
    [np.stack([x[:, r0:r1, c0:c1].mean((1, 2)) for c0, c1 in ((0, 3), (2, 5))], 1) for r0, r1 in ((0, 2), (1, 3))], 1
  )
  np.testing.assert_allclose(pooled, expected)


def test_unknown_names_and_settings_fail_clearly():
  with pytest.raises(
    ValueError, match="backbone='resnet99' is not a known backbone; valid names: resnet18, .*densenet121.*vgg16_bn"
  ):
    build_backbone("resnet99")
  x = jnp.zeros((1, 32, 32, 3))
  with pytest.raises(ValueError, match="ResNet output_stride must be one of"):
    jax.eval_shape(ResNet(18, output_stride=4).init, jax.random.key(0), x)
  with pytest.raises(ValueError, match=r"VGG input \(1, 16, 16, 3\) is too small"):
    jax.eval_shape(VGG().init, jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  with pytest.raises(ValueError, match="DenseNet depth must be one of"):
    jax.eval_shape(DenseNet(100).init, jax.random.key(0), x)


@pytest.mark.parametrize("implementation", ["conv_with_tap_matmul_kernel_grad", "conv_as_im2col_matmul"])
@pytest.mark.parametrize("kernel_size, stride, dilation", [(3, 1, 1), (3, 2, 1), (3, 1, 2), (7, 2, 1), (3, 2, 4)])
def test_cpu_convolutions_equal_lax_convolution_and_its_gradients(implementation, kernel_size, stride, dilation):
  x = jax.random.normal(jax.random.key(0), (2, 11, 10, 3))
  kernel = jax.random.normal(jax.random.key(1), (kernel_size, kernel_size, 3, 4))

  def loss(conv_fn):
    return lambda x, kernel: jnp.sum(jnp.sin(conv_fn(x, kernel, stride, dilation)))

  reference, candidate = common._conv, getattr(common, implementation)  # pylint: disable=protected-access
  assert relative_error(candidate(x, kernel, stride, dilation), reference(x, kernel, stride, dilation)) < 1e-5
  expected = jax.grad(loss(reference), argnums=(0, 1))(x, kernel)
  actual = jax.jit(jax.grad(loss(candidate), argnums=(0, 1)))(x, kernel)
  for name, a, e in zip(("input", "kernel"), actual, expected):
    assert relative_error(a, e) < 1e-5, name


POOLS = [(3, 2, 1), (2, 2, 0), (3, 1, 1)]  # kernel size, stride, padding


@pytest.mark.parametrize("kernel_size, stride, padding", POOLS)
def test_max_pool_matches_reduce_window_values_and_gradients(kernel_size, stride, padding):
  x = jax.random.normal(jax.random.key(0), (2, 9, 8, 3))

  def reference(x):
    return jax.lax.reduce_window(
      x,
      -jnp.inf,
      jax.lax.max,
      (1, kernel_size, kernel_size, 1),
      (1, stride, stride, 1),
      ((0, 0), (padding, padding), (padding, padding), (0, 0)),
    )

  def pooled(x):
    return common.max_pool(x, kernel_size, stride, padding, implementation="cpu_matmul")

  np.testing.assert_array_equal(pooled(x), reference(x))
  np.testing.assert_allclose(
    jax.grad(lambda x: jnp.sum(pooled(x) ** 2))(x), jax.grad(lambda x: jnp.sum(reference(x) ** 2))(x), rtol=1e-6
  )


@pytest.mark.parametrize("size", [6, 20])  # im2col (<= 16x16 outputs) and the tap-matmul kernel gradient
@pytest.mark.parametrize("kernel_size, stride, dilation", [(3, 1, 1), (3, 2, 2), (7, 2, 1)])
def test_conv2d_xla_and_cpu_matmul_paths_agree_in_value_and_gradient(size, kernel_size, stride, dilation):
  x = jax.random.normal(jax.random.key(0), (2, size, size, 3))

  def output_and_grads(implementation):
    module = common.Conv2d(5, kernel_size, stride, dilation, use_bias=True, implementation=implementation)
    params = module.init(jax.random.key(1), x)

    def loss(params, x):
      return jnp.sum(jnp.sin(module.apply(params, x)))

    return module.apply(params, x), jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)

  outputs, grads = {}, {}
  for implementation in ("xla", "cpu_matmul"):
    outputs[implementation], grads[implementation] = output_and_grads(implementation)
  assert relative_error(outputs["cpu_matmul"], outputs["xla"]) < 1e-5
  for a, e in zip(jax.tree.leaves(grads["cpu_matmul"]), jax.tree.leaves(grads["xla"])):
    assert relative_error(a, e) < 1e-5


@pytest.mark.parametrize("kernel_size, stride, padding", POOLS)
def test_max_pool_xla_and_cpu_matmul_paths_agree_in_value_and_gradient(kernel_size, stride, padding):
  x = jax.random.normal(jax.random.key(0), (2, 9, 8, 3))
  paths = {
    name: functools.partial(
      common.max_pool, kernel_size=kernel_size, stride=stride, padding=padding, implementation=name
    )
    for name in ("xla", "cpu_matmul")
  }
  np.testing.assert_array_equal(paths["xla"](x), paths["cpu_matmul"](x))
  np.testing.assert_allclose(
    jax.grad(lambda x: jnp.sum(paths["xla"](x) ** 2))(x),
    jax.grad(lambda x: jnp.sum(paths["cpu_matmul"](x) ** 2))(x),
    rtol=1e-6,
  )


@pytest.mark.parametrize("platform, expected", [("cpu", "cpu_matmul"), ("gpu", "xla"), ("cuda", "xla"), ("tpu", "xla")])
def test_a_platform_resolves_to_its_kernels_and_the_scope_reaches_every_layer(platform, expected):
  assert common.implementation_for_platform(platform) == expected
  x = jnp.zeros((1, 20, 20, 3))
  module = ResNet(18, **tiny_widths("resnet101"))
  params = jax.eval_shape(module.init, jax.random.key(0), x)
  with common.kernel_implementation(expected):
    jaxpr = str(jax.make_jaxpr(lambda p: jax.grad(lambda p: jnp.sum(module.apply(p, x)["layer4"]))(p))(params))
  # XLA's own convolution and pooling only on the 'xla' path; none on the CPU matmul path.
  assert ("conv_general_dilated" in jaxpr) == (expected == "xla")
  assert ("reduce_window_max" in jaxpr) == (expected == "xla")


def test_unknown_kernel_implementation_is_refused():
  with (
    pytest.raises(ValueError, match="kernel implementation 'cudnn' is not one of"),
    common.kernel_implementation("cudnn"),
  ):
    pass
